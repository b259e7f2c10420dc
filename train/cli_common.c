/* cli_common.c: the steps recd-train's subcommands share — reading the dataset, splits, fitting with progress lines,
 * evaluation options, the readable table, reports and charts. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "base/clock.h"
#include "train/cli_internal.h"

static const char *const merge_names[] = {"sum", "max", "last"};
/* CPU seconds used by every thread of the process so far (user + system). */
double recd_cli_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* SHA-256 of a file's bytes as lowercase hex. */
static int sha256_file(const char *path, char hex[65])
{
    unsigned char buf[1 << 16], md[32];
    unsigned int mdlen = 0;
    int ret = -1;
    FILE *fp = fopen(path, "rb");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (fp == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto Exit;
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), fp)) != 0)
        if (EVP_DigestUpdate(ctx, buf, n) != 1)
            goto Exit;
    if (ferror(fp) || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
        goto Exit;
    for (int i = 0; i != 32; ++i)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ret = 0;
Exit:
    if (fp != NULL)
        fclose(fp);
    EVP_MD_CTX_free(ctx);
    return ret;
}

/* SHA-256 of the accepted rows (ids, value, timestamp), for input read from standard input, which cannot be read twice. */
static int sha256_rows(const recd_interactions_t *x, char hex[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    int ret = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto Exit;
    for (size_t i = 0; i != x->n; ++i) {
        const char *u = recd_idmap_id(x->users, x->user[i]), *it = recd_idmap_id(x->items, x->item[i]);
        if (EVP_DigestUpdate(ctx, u, strlen(u) + 1) != 1 || EVP_DigestUpdate(ctx, it, strlen(it) + 1) != 1 ||
            EVP_DigestUpdate(ctx, &x->value[i], sizeof(x->value[i])) != 1 ||
            EVP_DigestUpdate(ctx, &x->ts[i], sizeof(x->ts[i])) != 1)
            goto Exit;
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
        goto Exit;
    for (int i = 0; i != 32; ++i)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ret = 0;
Exit:
    EVP_MD_CTX_free(ctx);
    return ret;
}

void recd_cli_dataset_dispose(recd_cli_dataset_t *d)
{
    recd_entries_dispose(&d->entries);
    recd_ingest_report_dispose(&d->report);
    recd_interactions_dispose(&d->data);
}

/* Reads, validates, cleanses and merges the input; prints what it did on o->err. Returns 0 or 1 (message printed). */
int recd_cli_load_dataset(const recd_cli_options_t *o, recd_cli_dataset_t *d)
{
    char err[1024] = "";
    int ret;
    double t0 = recd_monotonic_seconds();
    d->from_stdin = strcmp(o->input, "-") == 0;
    if (!d->from_stdin && sha256_file(o->input, d->fingerprint) != 0) {
        fprintf(o->err, "recd-train: cannot read %s: %s\n", o->input, strerror(errno));
        return 1;
    }
    if ((ret = recd_ingest_file(o->input, &o->ingest, &d->data, &d->report, err, sizeof(err))) != RECD_OK) {
        fprintf(o->err, "recd-train: %s: %s\n", o->input, err[0] != '\0' ? err : recd_strerror(ret));
        return 1;
    }
    const recd_ingest_report_t *r = &d->report;
    fprintf(o->err, "ingest: %s format=%s read=%llu accepted=%llu rejected=%llu", o->input, recd_format_name(r->format),
            (unsigned long long)r->rows_read, (unsigned long long)r->rows_accepted, (unsigned long long)r->rows_rejected);
    for (int i = 0; i != RECD_REJECT__COUNT; ++i)
        if (r->rejected[i] != 0)
            fprintf(o->err, " %s=%llu", recd_reject_name((recd_reject_t)i), (unsigned long long)r->rejected[i]);
    fprintf(o->err, "\n");
    for (size_t i = 0; i != r->n_samples; ++i)
        fprintf(o->err, "ingest: rejected line %llu (%s): %s\n", (unsigned long long)r->samples[i].line,
                recd_reject_name(r->samples[i].reason), r->samples[i].text);
    if (d->from_stdin && sha256_rows(&d->data, d->fingerprint) != 0) {
        fprintf(o->err, "recd-train: cannot compute the data fingerprint\n");
        return 1;
    }
    if ((o->min_user > 1 || o->min_item > 1) &&
        recd_interactions_kcore(&d->data, o->min_user, o->min_item, &d->kcore_removed) == RECD_OK)
        fprintf(o->err, "cleanse: k-core (users >= %u items, items >= %u users) removed %llu rows, %zu left\n", o->min_user,
                o->min_item, (unsigned long long)d->kcore_removed, d->data.n);
    if (o->normalize != RECD_NORMALIZE_NONE && recd_interactions_normalize(&d->data, o->normalize) != RECD_OK) {
        fprintf(o->err, "recd-train: --normalize %s cannot be applied to these values (log1p needs values >= 0)\n",
                recd_normalize_name(o->normalize));
        return 1;
    }
    if (d->data.n == 0) {
        fprintf(o->err, "recd-train: %s: no interactions left, nothing to train\n", o->input);
        return 1;
    }
    if ((ret = recd_entries_from_interactions(&d->data, o->merge, &d->entries)) != RECD_OK) {
        fprintf(o->err, "recd-train: cannot build the interaction matrix: %s\n", recd_strerror(ret));
        return 1;
    }
    fprintf(o->err, "matrix: %zu users x %zu items, %zu distinct interactions\n", d->entries.n_rows, d->entries.n_cols,
            d->entries.n);
    d->seconds = recd_monotonic_seconds() - t0;
    return 0;
}

json_t *recd_cli_data_info_json(const recd_cli_options_t *o, const recd_cli_dataset_t *d)
{
    json_t *info = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "path", o->input, "format", recd_format_name(d->report.format), "sha256",
        d->fingerprint, "rows_read", (json_int_t)d->report.rows_read, "rows_rejected", (json_int_t)d->report.rows_rejected, "users",
        (json_int_t)d->entries.n_rows, "items", (json_int_t)d->entries.n_cols, "interactions", (json_int_t)d->entries.n);
    json_object_set_new(info, "sha256_of", json_string(d->from_stdin ? "accepted rows" : "input bytes"));
    json_object_set_new(info, "cleanse",
                        json_pack("{s:i, s:i, s:I, s:s, s:s}", "min_user_interactions", (int)o->min_user, "min_item_interactions",
                                  (int)o->min_item, "kcore_rows_removed", (json_int_t)d->kcore_removed, "normalize",
                                  recd_normalize_name(o->normalize), "merge", merge_names[o->merge]));
    return info;
}

/* The observed rating range of a matrix's values (predictions of explicit models are clipped to it). */
static void value_range(const recd_csr_t *m, float *lo, float *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t j = 0; j != m->nnz; ++j) {
        *lo = m->val[j] < *lo ? m->val[j] : *lo;
        *hi = m->val[j] > *hi ? m->val[j] : *hi;
    }
    if (m->nnz == 0)
        *lo = *hi = 0;
}

/* ---- training with progress lines ---------------------------------------------------------------------------------- */

typedef struct st_iter_print_t {
    FILE *err;
    const char *prefix;
    uint32_t iterations;
} iter_print_t;

static int print_iteration(void *data, uint32_t iteration, double loss, double seconds)
{
    iter_print_t *p = data;
    fprintf(p->err, "%siter %u/%u loss=%.6g %.3fs\n", p->prefix, iteration, p->iterations, loss, seconds);
    return 0;
}

static uint32_t total_iterations(const recd_cli_setup_t *s)
{
    const recd_param_def_t *d = recd_algorithm_param(s->a, "iterations");
    if (d == NULL)
        d = recd_algorithm_param(s->a, "epochs");
    return d != NULL ? (uint32_t)recd_param_get(d, s->params) : 1;
}

/* Trains s on m. prefix != NULL prints a line per iteration; curve != NULL records loss (and snapshots when its test is
 * set). Prints a message on failure. */
int recd_cli_fit(const recd_cli_options_t *o, const recd_cli_setup_t *s, const recd_csr_t *m, const char *prefix,
                 recd_curve_t *curve, recd_fitted_t *out, double *wall, double *cpu)
{
    iter_print_t printer = {o->err, prefix, total_iterations(s)};
    recd_fit_hooks_t hooks = {.threads = o->threads, .seed = o->seed};
    if (prefix != NULL) {
        hooks.on_progress = print_iteration;
        hooks.progress_data = &printer;
    }
    if (curve != NULL) {
        /* the per-iteration metric costs an evaluation per iteration (inside the fit time): only for a chart */
        if (o->chart_path == NULL)
            curve->test = NULL;
        recd_curve_attach(curve, &hooks);
    }
    double t0 = recd_monotonic_seconds(), c0 = recd_cli_cpu_seconds();
    int ret = recd_fit(s->a, m, s->params, &hooks, out);
    if (wall != NULL)
        *wall = recd_monotonic_seconds() - t0;
    if (cpu != NULL)
        *cpu = recd_cli_cpu_seconds() - c0;
    if (ret != RECD_OK)
        fprintf(o->err, "recd-train: training %s failed: %s%s\n", s->a->name, recd_strerror(ret),
                ret == RECD_ENUMERIC ? " (a per-row system was not positive definite: values below 0 give confidences below 1; "
                                       "use values >= 0 or a larger --reg)"
                                     : "");
    return ret;
}

recd_eval_options_t recd_cli_eval_options(const recd_cli_options_t *o, const recd_algorithm_t *a, const recd_csr_t *train)
{
    recd_eval_options_t e = {.k = o->k, .threads = o->threads, .sampled_negatives = o->sampled_negatives, .seed = o->seed};
    if (a != NULL && a->explicit_ratings) {
        e.rating_metrics = 1;
        value_range(train, &e.min_rating, &e.max_rating);
    }
    return e;
}

/* ---- the readable table -------------------------------------------------------------------------------------------- */

/* Prints the metrics of n results side by side (columns labelled), every row aligned. */
void recd_cli_print_metrics(FILE *out, const char *const *labels, const recd_eval_result_t *r, size_t n)
{
    char name[32];
    uint32_t k = r[0].ranking.k;
    fprintf(out, "%-22s", "metric");
    for (size_t i = 0; i != n; ++i)
        fprintf(out, " %10s", labels[i]);
    fprintf(out, "\n");
#define ROW(label, expr)                                                                                                           \
    do {                                                                                                                           \
        fprintf(out, "%-22s", label);                                                                                              \
        for (size_t i = 0; i != n; ++i)                                                                                            \
            fprintf(out, " %10.4f", (double)(expr));                                                                               \
        fprintf(out, "\n");                                                                                                        \
    } while (0)
    snprintf(name, sizeof(name), "P@%u", k);
    ROW(name, r[i].ranking.precision);
    snprintf(name, sizeof(name), "R@%u", k);
    ROW(name, r[i].ranking.recall);
    snprintf(name, sizeof(name), "nDCG@%u", k);
    ROW(name, r[i].ranking.ndcg);
    snprintf(name, sizeof(name), "MAP@%u", k);
    ROW(name, r[i].ranking.map);
    snprintf(name, sizeof(name), "HR@%u", k);
    ROW(name, r[i].ranking.hit_rate);
    snprintf(name, sizeof(name), "MRR@%u", k);
    ROW(name, r[i].ranking.mrr);
    ROW("AUC", r[i].ranking.auc);
    snprintf(name, sizeof(name), "coverage@%u", k);
    ROW(name, r[i].ranking.coverage);
    fprintf(out, "%-22s", "users");
    for (size_t i = 0; i != n; ++i)
        fprintf(out, " %10zu", r[i].ranking.users);
    fprintf(out, "\n");
    if (r[0].has_sampled) {
        snprintf(name, sizeof(name), "sampled(%u) HR@%u", r[0].sampled_protocol.n_negatives, k);
        ROW(name, r[i].sampled.hit_rate);
        snprintf(name, sizeof(name), "sampled nDCG@%u", k);
        ROW(name, r[i].sampled.ndcg);
        ROW("sampled MRR", r[i].sampled.mrr);
        ROW("sampled AUC", r[i].sampled.auc);
    }
    if (r[0].has_rating) {
        ROW("RMSE", r[i].rating.rmse);
        ROW("MAE", r[i].rating.mae);
        ROW("R2", r[i].rating.r2);
    }
#undef ROW
}

/* Writes the report to --report FILE or o->out. Returns 0 or 1 (message printed). */
int recd_cli_write_report(const recd_cli_options_t *o, json_t *report)
{
    if (o->report_path != NULL) {
        if (json_dump_file(report, o->report_path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
            fprintf(o->err, "recd-train: cannot write %s: %s\n", o->report_path, strerror(errno));
            return 1;
        }
        return 0;
    }
    if (json_dumpf(report, o->out, JSON_INDENT(2)) != 0 || fputc('\n', o->out) == EOF || fflush(o->out) != 0) {
        fprintf(o->err, "recd-train: cannot write the report\n");
        return 1;
    }
    return 0;
}

int recd_cli_write_chart(const recd_cli_options_t *o, const recd_curve_t *curve, const char *title, const char *metric_label)
{
    if (o->chart_path == NULL)
        return 0;
    if (recd_chart_write_svg(curve, title, metric_label, o->chart_path) != RECD_OK) {
        fprintf(o->err, "recd-train: cannot write %s: %s\n", o->chart_path, strerror(errno));
        return 1;
    }
    fprintf(o->err, "chart: %s (%zu loss points, %zu %s points)\n", o->chart_path, curve->n_loss, curve->n_metric, metric_label);
    return 0;
}

/* ---- splits ------------------------------------------------------------------------------------------------------- */

void recd_cli_split_dispose(recd_cli_split_t *s)
{
    recd_entries_dispose(&s->train_e);
    recd_entries_dispose(&s->test_e);
    recd_csr_dispose(&s->train);
    recd_csr_dispose(&s->test);
}

int recd_cli_split(const recd_cli_options_t *o, const recd_entries_t *e, recd_protocol_t p, double ratio, uint64_t seed,
                   uint32_t fold, uint32_t folds, recd_cli_split_t *s)
{
    memset(s, 0, sizeof(*s));
    if ((p == RECD_PROTOCOL_TEMPORAL || p == RECD_PROTOCOL_LEAVE_LAST_OUT) && e->n != 0) {
        size_t j = 1;
        while (j != e->n && e->ts[j] == e->ts[0])
            ++j;
        if (j == e->n)
            fprintf(o->err,
                    "recd-train: note: every interaction has the same timestamp (no --time-col?); the %s split "
                    "follows the input order\n",
                    recd_protocol_name(p));
    }
    int ret = recd_entries_split(e, p, ratio, seed, fold, folds, &s->train_e, &s->test_e);
    if (ret == RECD_OK && (ret = recd_entries_csr(&s->train_e, &s->train)) == RECD_OK)
        ret = recd_entries_csr(&s->test_e, &s->test);
    if (ret != RECD_OK) {
        fprintf(o->err, "recd-train: the %s split failed: %s\n", recd_protocol_name(p), recd_strerror(ret));
        recd_cli_split_dispose(s);
    } else if (s->test.nnz == 0) {
        fprintf(o->err, "recd-train: the %s split left no test interactions (too little data?)\n", recd_protocol_name(p));
        recd_cli_split_dispose(s);
        ret = RECD_EINVAL;
    }
    return ret;
}

/* The protocol part of an evaluation object. */
void recd_cli_protocol_json(const recd_cli_options_t *o, json_t *ev, const recd_cli_split_t *s)
{
    json_object_set_new(ev, "protocol", json_string(recd_protocol_name(o->protocol)));
    json_object_set_new(ev, "protocol_description", json_string(recd_protocol_description(o->protocol)));
    if (o->protocol == RECD_PROTOCOL_STRATIFIED || o->protocol == RECD_PROTOCOL_TEMPORAL)
        json_object_set_new(ev, "test_ratio", json_real(o->test_ratio));
    if (o->protocol == RECD_PROTOCOL_KFOLD)
        json_object_set_new(ev, "folds", json_integer(o->folds));
    json_object_set_new(ev, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(ev, "relevance", json_string("binary; items in the user's train part excluded from its ranking"));
    if (s != NULL) {
        json_object_set_new(ev, "train_interactions", json_integer((json_int_t)s->train.nnz));
        json_object_set_new(ev, "test_interactions", json_integer((json_int_t)s->test.nnz));
    }
}

int recd_cli_contains_sorted(const uint32_t *a, size_t n, uint32_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == v;
}

void recd_cli_now_iso(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Adds the metrics of r to ev at the top level (precision, ..., sampled, rating). */
void recd_cli_merge_metrics(json_t *ev, const recd_eval_result_t *r)
{
    json_t *m = recd_eval_result_json(r);
    json_object_update(ev, m);
    json_decref(m);
}

const recd_algorithm_t *recd_cli_single_algorithm(const recd_cli_options_t *o)
{
    const recd_algorithm_t *a = recd_algorithm_find(o->algorithm != NULL ? o->algorithm : "als");
    if (a == NULL)
        fprintf(o->err, "recd-train: --algorithm must be als, bpr, biased_mf or popularity (got \"%s\")\n", o->algorithm);
    return a;
}

/* BPR and biased MF: recd's fold-in pair, chosen on the first validation fold with the winner's parameters. */
int recd_cli_choose_fold_in(const recd_cli_options_t *o, const recd_cli_setup_t *s, const recd_cli_split_t *fold,
                            recd_fold_in_choice_t *choice)
{
    recd_fitted_t f = {0};
    int ret = recd_cli_fit(o, s, &fold->train, NULL, NULL, &f, NULL, NULL);
    if (ret == RECD_OK) {
        recd_eval_options_t eo = recd_cli_eval_options(o, s->a, &fold->train);
        ret = recd_fold_in_choose(&f, &fold->train, &fold->test, &eo, &o->metric, choice);
        if (ret != RECD_OK)
            fprintf(o->err, "recd-train: choosing the fold-in parameters failed: %s\n", recd_strerror(ret));
        else
            fprintf(o->err, "fold-in: alpha=%g reg=%g (validation %s %.4f; %.4f at alpha=1 reg=1, %zu pairs tried)\n",
                    (double)choice->alpha, (double)choice->reg, choice->metric, choice->score, choice->default_score,
                    choice->tried);
    }
    recd_fitted_dispose(&f);
    return ret;
}

int recd_cli_has_fold_in_choice(const recd_algorithm_t *a)
{
    return a->kind == RECD_MODEL_BPR || a->kind == RECD_MODEL_BIASED_MF;
}

uint32_t recd_cli_factors_of(const recd_cli_setup_t *s)
{
    const recd_param_def_t *d = recd_algorithm_param(s->a, "factors");
    return d != NULL ? (uint32_t)recd_param_get(d, s->params) : 0;
}
