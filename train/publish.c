/* publish.c: publishing a trained model — the artifact, its manifest and evaluation, staged and committed to the registry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "base/alloc.h"
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
    size_t users = f->n_users < COMPACT_RECALL_USERS ? f->n_users : COMPACT_RECALL_USERS;
    double recall = recd_scan_recall(&s, f->user_factors, f->n_users, users, 10, o->seed);
    fprintf(o->err,
            "compact item factors %s (%.1f MB beside %.1f MB of f32): recall@10 against the exact f32 scan %.4f on %zu users\n",
            recd_factor_type_name(type), (double)bytes / 1e6, (double)n * 4 / 1e6, recall, users);
    json_object_set_new(metadata, "factor_recall_at_10",
                        json_pack("{s:f, s:I, s:s}", "recall", recall, "users", (json_int_t)users, "against",
                                  "the exact float32 scan, top 10, no exclusions"));
    extras[0] = (recd_artifact_extra_t){type, *data, bytes};
    if (type != RECD_FACTORS_INT8)
        return 1;
    extras[1] = (recd_artifact_extra_t){RECD_ARTIFACT_INT8_SCALES, *scales, f->n_items * sizeof(float)};
    return 2;
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
    recd_artifact_extra_t extras[2];
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
    if (metadata != NULL)
        n_extras = compact_extras(o, f, metadata, extras, &compact, &scales);
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
    json_decref(metadata);
    json_decref(manifest);
    return exit_code;
}
