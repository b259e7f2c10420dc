/* publish.c: publishing a trained model — the artifact, its manifest and evaluation, staged and committed to the registry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "base/hash.h"
#include "models/scan.h"
#include "registry/registry.h"
#include "train/cli_internal.h"

/* Users sampled to measure the recall@10 of a compact scan against float32. */
#define COMPACT_RECALL_USERS 1000

/* The --factor-type sections of f: the compact item factors (and int8 scales) in extras, whose buffers the caller frees
 * (*data, *scales). Measures the recall@10 of the compact scan against the exact float32 scan on a sample of the users,
 * prints it and records it in metadata. Returns how many sections it made (0 for f32 or a model without factors). */
static size_t compact_extras(const recd_cli_options_t *o, const recd_fitted_t *f, json_t *metadata, recd_artifact_extra_t extras[2],
                             void **data, float **scales)
{
    uint32_t type = o->factor_type;
    *data = NULL;
    *scales = NULL;
    if (type != RECD_FACTORS_F32 && (f->item_factors == NULL || f->n_factors == 0)) {
        fprintf(o->err, "note: --factor-type %s ignored: a %s model has no item factors\n", recd_factor_type_name(type),
                recd_model_kind_name(f->kind));
        type = RECD_FACTORS_F32;
    }
    json_object_set_new(metadata, "factor_type", json_string(recd_factor_type_name(type)));
    if (type == RECD_FACTORS_F32)
        return 0;
    size_t n = f->n_items * f->n_factors, bytes = n * (type == RECD_FACTORS_INT8 ? 1 : 2);
    *data = recd_xmalloc(bytes + 1);
    if (type == RECD_FACTORS_INT8)
        *scales = recd_xmalloc((f->n_items + 1) * sizeof(float));
    recd_factors_encode(type, f->item_factors, f->n_items, f->n_factors, *data, *scales);
    recd_scorer_t s;
    recd_fitted_scorer(f, &s);
    s.factor_type = type;
    s.item_factors_compact = *data;
    s.item_scales = *scales;
    recd_compact_bounds(&s, &s.compact_bounds);
    size_t users = f->n_users < COMPACT_RECALL_USERS ? f->n_users : COMPACT_RECALL_USERS;
    double candidates;
    double recall = recd_scan_recall(&s, f->user_factors, f->n_users, users, 10, o->seed, &candidates);
    int scanned = recd_scan_reads_compact(&s);
    if (scanned)
        fprintf(o->err,
                "compact item factors %s (%.1f MB beside %.1f MB of f32): recall@10 against the exact f32 scan %.4f on %zu "
                "users (exact by construction), %.1f candidates re-ranked in f32 per query\n",
                recd_factor_type_name(type), (double)bytes / 1e6, (double)n * 4 / 1e6, recall, users, candidates);
    else
        fprintf(o->err,
                "compact item factors %s (%.1f MB beside %.1f MB of f32): unread, the f32 rows are below 1 MiB and recd "
                "scans them exactly\n",
                recd_factor_type_name(type), (double)bytes / 1e6, (double)n * 4 / 1e6);
    json_object_set_new(metadata, "factor_recall_at_10",
                        json_pack("{s:f, s:f, s:I, s:s, s:b}", "recall", recall, "candidates", candidates, "users",
                                  (json_int_t)users, "against", "the exact float32 scan, top 10, no exclusions",
                                  "compact_rows_scanned", scanned));
    extras[0] = (recd_artifact_extra_t){type, *data, bytes};
    if (type != RECD_FACTORS_INT8)
        return 1;
    extras[1] = (recd_artifact_extra_t){RECD_ARTIFACT_INT8_SCALES, *scales, f->n_items * sizeof(float)};
    return 2;
}

/* Users sampled to tune the index's probe count, and as many others to measure its recall@10. */
#define ANN_RECALL_USERS 1000

/* Copies the vectors of `count` users drawn with seed (without repeats, in index order) into vecs and their indexes into
 * users, skipping the first `skip` of the draw; returns how many it took. */
static size_t sample_users(const recd_fitted_t *f, uint64_t seed, size_t skip, size_t count, float *vecs, int64_t *users)
{
    size_t n = f->n_users, taken = 0;
    uint32_t *order = recd_xmalloc((n + 1) * sizeof(uint32_t));
    uint64_t rng = seed;
    for (size_t i = 0; i != n; ++i)
        order[i] = (uint32_t)i;
    for (size_t i = 0; i != n && i < skip + count; ++i) { /* partial Fisher-Yates */
        size_t j = i + (size_t)recd_rand_below(&rng, n - i);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
        if (i >= skip) {
            memcpy(vecs + taken * f->n_factors, f->user_factors + (size_t)t * f->n_factors, f->n_factors * sizeof(float));
            users[taken++] = t;
        }
    }
    free(order);
    return taken;
}

/*
 * The --ann section of f: builds the index (*ann, which the caller frees), tunes its probe count for --ann-recall on one
 * sample of the users unless --ann-probe fixed it, measures recall@10 against the exact scan on another sample, prints the
 * build time and the recall and records them in metadata ("ann"). Returns 1 with the section in *extra, 0 without an index,
 * -1 on failure (message printed).
 */
static int ann_extra(const recd_cli_options_t *o, const recd_fitted_t *f, json_t *metadata, recd_artifact_extra_t *extra,
                     recd_ann_t **ann)
{
    char err[256];
    *ann = NULL;
    if (o->ann_kind == RECD_ANN_NONE)
        return 0;
    if (f->item_factors == NULL || f->n_factors == 0 || f->user_factors == NULL || f->n_users == 0) {
        fprintf(o->err, "note: --ann %s ignored: a %s model has no factors to index\n", recd_ann_kind_name(o->ann_kind),
                recd_model_kind_name(f->kind));
        return 0;
    }
    recd_ann_params_t p = o->ann;
    p.threads = o->threads;
    p.seed = o->seed;
    recd_scorer_t s;
    recd_fitted_scorer(f, &s);
    const float *bias = (f->kind == RECD_MODEL_BPR || f->kind == RECD_MODEL_BIASED_MF) ? f->item_bias : NULL;
    double t0 = recd_monotonic_seconds();
    if ((*ann = recd_ann_build(f->item_factors, bias, f->n_items, f->n_factors, &p, err, sizeof(err))) == NULL) {
        fprintf(o->err, "recd-train: cannot build the ANN index: %s\n", err);
        return -1;
    }
    double build_seconds = recd_monotonic_seconds() - t0;
    s.ann = *ann;
    float *vecs = recd_xmalloc((2 * ANN_RECALL_USERS * (size_t)f->n_factors + 1) * sizeof(float));
    int64_t *users = recd_xmalloc(2 * ANN_RECALL_USERS * sizeof(int64_t));
    /* disjoint samples: the recall reported is not measured on the users the probe count was chosen for */
    size_t n_tune = sample_users(f, o->seed ^ 0x616e6e, 0, ANN_RECALL_USERS, vecs, users);
    size_t n_measure = sample_users(f, o->seed ^ 0x616e6e, n_tune, ANN_RECALL_USERS, vecs + n_tune * f->n_factors, users + n_tune);
    const float *measure_vecs = n_measure != 0 ? vecs + n_tune * f->n_factors : vecs;
    const int64_t *measure_users = n_measure != 0 ? users + n_tune : users;
    size_t measured = n_measure != 0 ? n_measure : n_tune;
    double tuned_recall = -1.0, recall = 0.0;
    t0 = recd_monotonic_seconds();
    int ret = RECD_OK;
    if (o->ann.n_probe == 0)
        ret = recd_ann_tune_n_probe(*ann, &s, vecs, users, n_tune, 10, o->ann_recall, &tuned_recall);
    if (ret == RECD_OK)
        ret = recd_ann_recall(&s, measure_vecs, measure_users, measured, 10, 0, &recall);
    double tune_seconds = recd_monotonic_seconds() - t0;
    free(vecs);
    free(users);
    if (ret != RECD_OK) {
        fprintf(o->err, "recd-train: cannot measure the ANN index: %s\n", recd_strerror(ret));
        return -1;
    }
    size_t bytes;
    extra->tag = RECD_ARTIFACT_ANN_INDEX;
    extra->data = recd_ann_bytes(*ann, &bytes);
    extra->size = bytes;
    fprintf(o->err,
            "ANN index %s: %u lists, %u probed per query, built in %.1f s (%.1f MB); recall@10 against the exact scan %.4f on "
            "%zu users%s\n",
            recd_ann_kind_name(o->ann_kind), recd_ann_n_lists(*ann), recd_ann_n_probe(*ann), build_seconds, (double)bytes / 1e6,
            recall, measured, n_measure != 0 ? " (not those the probe count was tuned on)" : " (the tuning users: too few users)");
    json_t *info =
        json_pack("{s:s, s:I, s:I, s:b, s:f, s:f, s:I, s:f, s:I, s:s}", "kind", recd_ann_kind_name(o->ann_kind), "n_lists",
                  (json_int_t)recd_ann_n_lists(*ann), "n_probe", (json_int_t)recd_ann_n_probe(*ann), "item_bias",
                  recd_ann_has_bias(*ann), "build_seconds", build_seconds, "tune_seconds", tune_seconds, "bytes", (json_int_t)bytes,
                  "recall_at_10", recall, "recall_users", (json_int_t)measured, "against", "the exact scan, top 10, no exclusions");
    if (info != NULL && recd_ann_has_bias(*ann))
        json_object_set_new(info, "bias_weight", json_real(recd_ann_bias_weight(*ann)));
    if (info != NULL && o->ann.n_probe == 0) {
        json_object_set_new(info, "target_recall", json_real(o->ann_recall));
        json_object_set_new(info, "tuning_recall", json_real(tuned_recall));
        json_object_set_new(info, "tuning_users", json_integer((json_int_t)n_tune));
    }
    json_object_set_new(metadata, "ann", info);
    return 1;
}

/* Writes value as DIR/NAME; prints what went wrong. */
static int write_json_file(FILE *err, const char *dir, const char *name, json_t *value)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (json_dump_file(value, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        fprintf(err, "recd-train: cannot write %s: %s\n", path, strerror(errno));
        return RECD_EIO;
    }
    return RECD_OK;
}

/* What a publication records besides the model itself. */
/* How many accepted input rows (before duplicates merge) have their (user, item) in m: the rows a model trained on m saw. */
static size_t rows_in_matrix(const recd_interactions_t *x, const recd_csr_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i != x->n; ++i) {
        uint32_t u = x->user[i];
        if (u < m->n_rows && recd_cli_contains_sorted(m->col + m->row_ptr[u], m->row_ptr[u + 1] - m->row_ptr[u], x->item[i]))
            ++n;
    }
    return n;
}

/* Writes the artifact, manifest.json and evaluation.json to a staging directory and publishes it as the next version.
 * On success *version and artifact receive the version and its artifact path. Returns 0 or 1 (message printed). */
int recd_cli_publish(const recd_cli_options_t *o, const recd_cli_dataset_t *d, const recd_fitted_t *f, const recd_csr_t *user_items,
                     const recd_cli_publication_t *pub, uint64_t *version, char *artifact, size_t artifact_len)
{
    char err[1024] = "", staging[4096] = "";
    char *metadata_str = NULL;
    json_t *metadata = NULL, *manifest = NULL;
    recd_artifact_extra_t extras[3];
    recd_ann_t *ann = NULL;
    void *compact = NULL;
    float *scales = NULL;
    size_t n_extras = 0;
    int exit_code = 1, ret;

    /* no published artifact drops rows silently: the manifest counts what the model saw */
    size_t rows = rows_in_matrix(&d->data, user_items);
    if (pub->all_rows && rows != d->data.n) {
        fprintf(o->err, "recd-train: the model would be trained on %zu of the %zu accepted rows; refusing to publish it\n", rows,
                d->data.n);
        return 1;
    }
    metadata = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:O, s:s, s:s}", "trainer", "recd-train", "trainer_version", RECD_VERSION,
                         "algorithm", pub->algorithm, "kind", recd_model_kind_name(f->kind), "params", pub->params, "data",
                         pub->data_info, "evaluation", pub->evaluation, "trained_on", pub->trained_on, "created", pub->created);
    if (metadata != NULL && pub->tuning != NULL)
        json_object_set(metadata, "tuning", pub->tuning);
    if (metadata != NULL) {
        n_extras = compact_extras(o, f, metadata, extras, &compact, &scales);
        int with_ann = ann_extra(o, f, metadata, &extras[n_extras], &ann);
        if (with_ann < 0)
            goto Exit;
        n_extras += (size_t)with_ann;
    }
    if (metadata == NULL || (metadata_str = json_dumps(metadata, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        fprintf(o->err, "recd-train: out of memory building the metadata\n");
        goto Exit;
    }
    recd_model_spec_t spec;
    recd_fitted_spec(f, recd_idmap_ids(d->data.users), recd_idmap_ids(d->data.items), user_items, metadata_str, &spec);
    spec.extras = extras;
    spec.n_extras = n_extras;
    if ((ret = recd_registry_stage(o->registry, o->model, staging, sizeof(staging))) != RECD_OK) {
        fprintf(o->err, "recd-train: cannot create a staging directory in %s: %s\n", o->registry, recd_strerror(ret));
        staging[0] = '\0';
        goto Exit;
    }
    snprintf(artifact, artifact_len, "%s/%s", staging, RECD_REGISTRY_ARTIFACT);
    if ((ret = recd_model_write(&spec, artifact, err, sizeof(err))) != RECD_OK) {
        fprintf(o->err, "recd-train: cannot write the artifact: %s\n", err);
        goto Exit;
    }
    { /* read it back: the checksum and every offset must verify before anything is published */
        recd_model_t *check = recd_model_open(artifact, err, sizeof(err));
        if (check == NULL) {
            fprintf(o->err, "recd-train: the written artifact does not load: %s\n", err);
            goto Exit;
        }
        manifest = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:O, s:s, s:s, s:s}", "model", o->model, "kind",
                             recd_model_kind_name(spec.kind), "algorithm", pub->algorithm, "artifact", RECD_REGISTRY_ARTIFACT,
                             "artifact_sha256", recd_model_sha256(check), "params", pub->params, "data", pub->data_info,
                             "trained_on", pub->trained_on, "created", pub->created, "trainer_version", RECD_VERSION);
        recd_model_release(check);
    }
    if (manifest == NULL) {
        fprintf(o->err, "recd-train: out of memory building the manifest\n");
        goto Exit;
    }
    if (pub->tuning != NULL)
        json_object_set(manifest, "tuning", pub->tuning);
    json_object_set(manifest, "evaluation", pub->evaluation);
    json_object_set_new(manifest, "trained_on_rows", json_integer((json_int_t)rows));
    json_object_set_new(manifest, "trained_on_interactions", json_integer((json_int_t)user_items->nnz));
    json_object_set_new(manifest, "accepted_rows", json_integer((json_int_t)d->data.n));
    json_object_set_new(manifest, "trained_on_every_accepted_row", json_boolean(rows == d->data.n));
    json_object_set_new(manifest, "held_out_figures",
                        json_string(rows == d->data.n ? "none: every accepted row trained this model (see evaluation.json for "
                                                        "what its figures are of)"
                                                      : "evaluation.json: the rows this model did not see"));
    if (f->kind == RECD_MODEL_BPR || f->kind == RECD_MODEL_BIASED_MF || f->kind == RECD_MODEL_ALS)
        json_object_set_new(manifest, "fold_in", json_pack("{s:f, s:f}", "alpha", (double)f->alpha, "reg", (double)f->reg));
    { /* the ingest report (per-reason reject counts and samples) documents what was dropped */
        char *report_json = recd_ingest_report_json(&d->report);
        json_t *ingest = report_json != NULL ? json_loads(report_json, 0, NULL) : NULL;
        free(report_json);
        if (ingest != NULL)
            json_object_set_new(manifest, "ingest", ingest);
    }
    if (write_json_file(o->err, staging, "manifest.json", manifest) != RECD_OK ||
        write_json_file(o->err, staging, "evaluation.json", pub->evaluation) != RECD_OK)
        goto Exit;
    if ((ret = recd_registry_commit(o->registry, o->model, staging, version)) != RECD_OK) {
        fprintf(o->err, "recd-train: cannot publish %s in %s: %s\n", o->model, o->registry, recd_strerror(ret));
        goto Exit;
    }
    staging[0] = '\0';
    recd_registry_artifact_path(o->registry, o->model, *version, artifact, artifact_len);
    fprintf(o->err, "published %s version %llu (%s, trained on %s): %s\n", o->model, (unsigned long long)*version, pub->algorithm,
            pub->trained_on, artifact);
    exit_code = 0;
Exit:
    if (staging[0] != '\0') { /* a failed run leaves no half-written version behind */
        char path[4200];
        static const char *const files[] = {RECD_REGISTRY_ARTIFACT, RECD_REGISTRY_ARTIFACT ".tmp", "manifest.json",
                                            "evaluation.json"};
        for (size_t i = 0; i != sizeof(files) / sizeof(files[0]); ++i) {
            snprintf(path, sizeof(path), "%s/%s", staging, files[i]);
            unlink(path);
        }
        rmdir(staging);
    }
    free(metadata_str);
    free(compact);
    free(scales);
    recd_ann_free(ann);
    json_decref(metadata);
    json_decref(manifest);
    return exit_code;
}
