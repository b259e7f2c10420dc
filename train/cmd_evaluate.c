/* cmd_evaluate.c: `recd-train evaluate` — fit on the train part of a split (or K folds) and score the test part; or, with
 * --artifact, score a published artifact through recd's serving pipeline on the test part of the same split. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "base/alloc.h"
#include "base/log.h"
#include "serve/serve.h"
#include "store/feature_store.h"
#include "train/cli_internal.h"

/* Scores an artifact for the dataset's users through recd's own serving pipeline, so the figures are of the model as recd
 * serves it by construction: a serve state over an in-memory feature store (empty: nothing is remembered offline), a serve
 * worker holding the artifact, and recd_serve_recommend for each user exactly as GET /recommendations calls it, with k the
 * artifact's whole catalogue. Each answered item scores what recd answered; what recd never answers (the user's training
 * items, non-finite scores) scores -inf. The evaluation calls the scorer from several threads and a worker belongs to one
 * thread at a time, so each call borrows an idle worker (one is created when none is idle). */
typedef struct st_artifact_scorer_t {
    recd_model_t *m;
    recd_logger_t log;
    recd_feature_store_t *store;
    recd_serve_t *serve;
    pthread_mutex_t lock;
    recd_serve_worker_t **idle; /* workers not in use; at most n_workers */
    size_t n_idle, n_workers, cap;
    const recd_idmap_t *users; /* dataset user index -> id */
    int64_t *user_map;         /* dataset user -> artifact user or -1 */
    int64_t *item_map;         /* dataset item -> artifact item or -1 */
    size_t n_items;            /* dataset items */
} artifact_scorer_t;

static int artifact_scorer_init(artifact_scorer_t *s, recd_model_t *m)
{
    size_t n_items = recd_model_n_items(m);
    s->m = m;
    if (n_items > UINT32_MAX || pthread_mutex_init(&s->lock, NULL) != 0)
        return RECD_EINVAL;
    s->log = (recd_logger_t){RECD_LOG_ERROR, STDERR_FILENO};
    s->store = recd_memory_store_create(1, 1, NULL);
    s->serve = recd_serve_create(&(recd_serve_config_t){.max_k = (uint32_t)n_items}, s->store, NULL, &s->log);
    return RECD_OK;
}

static void artifact_scorer_dispose(artifact_scorer_t *s)
{
    if (s->serve == NULL)
        return;
    for (size_t i = 0; i != s->n_idle; ++i)
        recd_serve_worker_free(s->idle[i]);
    free(s->idle);
    recd_serve_free(s->serve);
    recd_feature_store_free(s->store);
    pthread_mutex_destroy(&s->lock);
}

static recd_serve_worker_t *take_worker(artifact_scorer_t *s)
{
    recd_serve_worker_t *sw = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->n_idle != 0) {
        sw = s->idle[--s->n_idle];
    } else {
        sw = recd_serve_worker_create(s->serve, s->n_workers, s->n_workers + 1);
        ++s->n_workers;
        recd_model_retain(s->m);
        recd_serve_worker_set_model(sw, s->m);
    }
    pthread_mutex_unlock(&s->lock);
    return sw;
}

static void give_back_worker(artifact_scorer_t *s, recd_serve_worker_t *sw)
{
    pthread_mutex_lock(&s->lock);
    if (s->n_idle == s->cap) {
        s->cap = s->cap != 0 ? s->cap * 2 : 8;
        s->idle = recd_xreallocarray(s->idle, s->cap, sizeof(*s->idle));
    }
    s->idle[s->n_idle++] = sw;
    pthread_mutex_unlock(&s->lock);
}

static void on_answer(recd_serve_ctx_t *ctx, void *data)
{
    *(int *)data = 1;
}

static void score_artifact(void *data, uint32_t user, float *scores)
{
    artifact_scorer_t *s = data;
    size_t n_art = recd_model_n_items(s->m);
    recd_serve_worker_t *sw = take_worker(s);
    recd_serve_ctx_t *ctx = recd_serve_ctx_create(sw);
    const char *id = recd_idmap_id(s->users, user);
    recd_serve_recs_request_t rq = {.user = {id, strlen(id)}, .k = (uint32_t)n_art};
    int answered = 0;
    if (recd_serve_recommend(ctx, &rq, on_answer, &answered) != 0 || !answered) {
        /* the in-memory store answers every lookup at once: a pending answer here is a bug, not bad input */
        fprintf(stderr, "recd-train: the serving pipeline did not answer at once\n");
        abort();
    }
    const recd_serve_result_t *res = recd_serve_ctx_result(ctx);
    float *served = recd_serve_ctx_alloc(ctx, (n_art != 0 ? n_art : 1) * sizeof(float));
    for (size_t i = 0; i != n_art; ++i)
        served[i] = -INFINITY;
    for (size_t i = 0; i != res->n_items; ++i)
        served[res->items[i].index] = res->items[i].score;
    for (size_t i = 0; i != s->n_items; ++i)
        scores[i] = s->item_map[i] >= 0 ? served[s->item_map[i]] : -INFINITY;
    recd_serve_ctx_release(ctx);
    give_back_worker(s, sw);
}

static int evaluate_artifact(const recd_cli_options_t *o, const recd_cli_dataset_t *d, json_t *report)
{
    recd_cli_split_t split = {0};
    artifact_scorer_t s = {0};
    char err[1024] = "";
    int exit_code = 1;
    json_t *ev = json_object();

    recd_model_t *m = recd_model_open(o->artifact, err, sizeof(err));
    if (m == NULL) {
        fprintf(o->err, "recd-train: %s: %s\n", o->artifact, err);
        goto Exit;
    }
    if (artifact_scorer_init(&s, m) != RECD_OK) {
        fprintf(o->err, "recd-train: %s: cannot set up the serving pipeline for it\n", o->artifact);
        goto Exit;
    }
    if (recd_cli_split(o, &d->entries, o->protocol, o->test_ratio, o->seed, 0, o->folds, &split) != RECD_OK)
        goto Exit;
    s.n_items = d->entries.n_cols;
    s.users = d->data.users;
    s.user_map = calloc(d->entries.n_rows + 1, sizeof(int64_t));
    s.item_map = calloc(d->entries.n_cols + 1, sizeof(int64_t));
    if (s.user_map == NULL || s.item_map == NULL) {
        fprintf(o->err, "recd-train: out of memory\n");
        goto Exit;
    }
    size_t known_users = 0, known_items = 0, art_train = 0, leaked = 0;
    for (size_t u = 0; u != d->entries.n_rows; ++u) {
        const char *id = recd_idmap_id(d->data.users, (uint32_t)u);
        s.user_map[u] = recd_model_find_user(s.m, id, strlen(id));
        known_users += s.user_map[u] >= 0;
    }
    for (size_t i = 0; i != d->entries.n_cols; ++i) {
        const char *id = recd_idmap_id(d->data.items, (uint32_t)i);
        s.item_map[i] = recd_model_find_item(s.m, id, strlen(id));
        known_items += s.item_map[i] >= 0;
    }
    for (size_t u = 0; u != recd_model_n_users(s.m); ++u) {
        const uint32_t *items;
        const float *values;
        size_t n;
        recd_model_user_items(s.m, (uint32_t)u, &items, &values, &n);
        art_train += n;
    }
    /* a test interaction among the artifact's training rows means it was not trained on this split's train part */
    for (size_t u = 0; u != split.test.n_rows; ++u) {
        if (s.user_map[u] < 0)
            continue;
        const uint32_t *items;
        const float *values;
        size_t n;
        recd_model_user_items(s.m, (uint32_t)s.user_map[u], &items, &values, &n);
        for (uint64_t j = split.test.row_ptr[u]; j != split.test.row_ptr[u + 1]; ++j)
            if (s.item_map[split.test.col[j]] >= 0 && recd_cli_contains_sorted(items, n, (uint32_t)s.item_map[split.test.col[j]]))
                ++leaked;
    }
    fprintf(o->err,
            "artifact: %s kind=%s users=%zu items=%zu training interactions=%zu; dataset users known %zu/%zu, items %zu/%zu\n",
            o->artifact, recd_model_kind_name(recd_model_kind(s.m)), recd_model_n_users(s.m), recd_model_n_items(s.m), art_train,
            known_users, d->entries.n_rows, known_items, d->entries.n_cols);
    if (leaked != 0) {
        fprintf(o->err,
                "recd-train: %s was trained on %zu of the %zu test interactions of this split: its test metrics would be "
                "meaningless. Evaluate it on the split it was trained with (same --protocol, --test-ratio, --seed and input) or "
                "publish a model trained on the train part (recd-train train --holdout-test, recd-train tune)\n",
                o->artifact, leaked, split.test.nnz);
        goto Exit;
    }
    const recd_algorithm_t *a = recd_algorithm_find(recd_model_kind_name(recd_model_kind(s.m)));
    recd_eval_options_t eo = recd_cli_eval_options(o, a, &split.train);
    recd_eval_result_t r;
    int ret = recd_evaluate(&split.train, &split.test, &eo, score_artifact, &s, &r);
    if (ret != RECD_OK) {
        fprintf(o->err, "recd-train: evaluation failed: %s\n", recd_strerror(ret));
        goto Exit;
    }
    json_object_set_new(ev, "evaluated", json_true());
    recd_cli_protocol_json(o, ev, &split);
    recd_cli_merge_metrics(ev, &r);
    json_object_set_new(ev, "scored_as",
                        json_string("recd serves it: each test user's recommendations from recd's serving pipeline "
                                    "(recd_serve_recommend, nothing remembered) over the whole catalogue; the artifact's seen "
                                    "items excluded, popularity for users it does not know"));
    json_object_set_new(report, "evaluation", ev);
    ev = NULL;
    json_object_set_new(report, "artifact",
                        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "path", o->artifact, "kind",
                                  recd_model_kind_name(recd_model_kind(s.m)), "sha256", recd_model_sha256(s.m), "users",
                                  (json_int_t)recd_model_n_users(s.m), "items", (json_int_t)recd_model_n_items(s.m),
                                  "training_interactions", (json_int_t)art_train, "test_interactions_in_training",
                                  (json_int_t)leaked, "dataset_users_known", (json_int_t)known_users, "dataset_items_known",
                                  (json_int_t)known_items));
    {
        size_t mlen;
        const char *meta = recd_model_metadata(s.m, &mlen);
        json_t *mj = json_loadb(meta, mlen, 0, NULL);
        if (mj != NULL) {
            json_t *p = json_object_get(mj, "params");
            if (p != NULL)
                json_object_set(report, "params", p);
            json_t *t = json_object_get(mj, "trained_on");
            if (t != NULL)
                json_object_set(json_object_get(report, "artifact"), "trained_on", t);
            json_decref(mj);
        }
    }
    const char *label = "artifact";
    fprintf(o->err, "evaluation of the artifact (%s split, %zu train / %zu test interactions):\n", recd_protocol_name(o->protocol),
            split.train.nnz, split.test.nnz);
    recd_cli_print_metrics(o->err, &label, &r, 1);
    exit_code = 0;
Exit:
    json_decref(ev);
    free(s.user_map);
    free(s.item_map);
    artifact_scorer_dispose(&s);
    recd_model_release(s.m);
    recd_cli_split_dispose(&split);
    return exit_code;
}

/* Mean and population standard deviation of the folds' metrics. */
static void fold_summary(const recd_eval_result_t *r, size_t n, recd_eval_result_t *mean, recd_eval_result_t *std)
{
    *mean = r[0];
    *std = r[0];
#define AVG(field)                                                                                                                 \
    do {                                                                                                                           \
        double s = 0, ss = 0;                                                                                                      \
        for (size_t i = 0; i != n; ++i)                                                                                            \
            s += r[i].field;                                                                                                       \
        s /= (double)n;                                                                                                            \
        for (size_t i = 0; i != n; ++i)                                                                                            \
            ss += (r[i].field - s) * (r[i].field - s);                                                                             \
        mean->field = s;                                                                                                           \
        std->field = sqrt(ss / (double)n);                                                                                         \
    } while (0)
    AVG(ranking.precision);
    AVG(ranking.recall);
    AVG(ranking.ndcg);
    AVG(ranking.map);
    AVG(ranking.hit_rate);
    AVG(ranking.mrr);
    AVG(ranking.auc);
    AVG(ranking.coverage);
    AVG(sampled.precision);
    AVG(sampled.recall);
    AVG(sampled.ndcg);
    AVG(sampled.map);
    AVG(sampled.hit_rate);
    AVG(sampled.mrr);
    AVG(sampled.auc);
    AVG(rating.rmse);
    AVG(rating.mae);
    AVG(rating.r2);
#undef AVG
    std->ranking.users = mean->ranking.users = 0;
    for (size_t i = 0; i != n; ++i)
        mean->ranking.users += r[i].ranking.users;
    mean->ranking.users /= n;
}

int recd_cli_evaluate(const recd_cli_options_t *o, const recd_cli_param_flags_t *pf)
{
    recd_cli_dataset_t d = {0};
    recd_cli_setup_t s;
    recd_eval_result_t *results = NULL;
    recd_curve_t curve = {0};
    json_t *report = json_object(), *folds_json = NULL;
    int exit_code = 1;
    const recd_algorithm_t *a = NULL;

    if (o->artifact == NULL) {
        if ((a = recd_cli_single_algorithm(o)) == NULL) {
            exit_code = RECD_CLI_EXIT_USAGE;
            goto Exit;
        }
        if ((exit_code = recd_cli_setup_algorithm(o, pf, a, 1, &s)) != 0)
            goto Exit;
        exit_code = 1;
    }
    recd_interactions_init(&d.data);
    if (recd_cli_load_dataset(o, &d) != 0)
        goto Exit;
    json_object_set_new(report, "command", json_string("evaluate"));
    json_object_set_new(report, "data", recd_cli_data_info_json(o, &d));
    if (o->artifact != NULL) {
        exit_code = evaluate_artifact(o, &d, report);
        if (exit_code == 0)
            exit_code = recd_cli_write_report(o, report);
        goto Exit;
    }
    json_object_set_new(report, "algorithm", json_string(a->name));
    json_t *params = recd_params_json(a, s.params);
    json_object_set_new(params, "threads", json_integer(o->threads));
    json_object_set_new(params, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(report, "params", params);

    size_t n_runs = o->protocol == RECD_PROTOCOL_KFOLD ? o->folds : 1;
    results = calloc(n_runs, sizeof(*results));
    folds_json = json_array();
    json_t *ev = json_object();
    json_object_set_new(report, "evaluation", ev);
    json_object_set_new(ev, "evaluated", json_true());
    recd_cli_protocol_json(o, ev, NULL);
    size_t train_total = 0, test_total = 0;
    double fit_total = 0;
    for (size_t run = 0; run != n_runs; ++run) {
        recd_cli_split_t split;
        recd_fitted_t f = {0};
        char prefix[32];
        double wall, cpu;
        if (recd_cli_split(o, &d.entries, o->protocol, o->test_ratio, o->seed, (uint32_t)run, o->folds, &split) != RECD_OK)
            goto Exit;
        recd_eval_options_t eo = recd_cli_eval_options(o, a, &split.train);
        if (n_runs > 1)
            snprintf(prefix, sizeof(prefix), "fold %zu/%zu: ", run + 1, n_runs);
        else
            snprintf(prefix, sizeof(prefix), "split: ");
        if (run == 0) { /* the chart follows the first (or only) split */
            curve = (recd_curve_t){.algorithm = a,
                                   .n_factors = recd_cli_factors_of(&s),
                                   .train = &split.train,
                                   .test = &split.test,
                                   .eval = eo,
                                   .selected = o->metric};
        }
        int ret = recd_cli_fit(o, &s, &split.train, prefix, run == 0 ? &curve : NULL, &f, &wall, &cpu);
        if (ret == RECD_OK && (ret = recd_evaluate_fitted(&f, &split.train, &split.test, &eo, &results[run])) != RECD_OK)
            fprintf(o->err, "recd-train: evaluation failed: %s\n", recd_strerror(ret));
        curve.train = curve.test = NULL;
        json_t *fold = recd_eval_result_json(&results[run]);
        json_object_set_new(fold, "train_interactions", json_integer((json_int_t)split.train.nnz));
        json_object_set_new(fold, "test_interactions", json_integer((json_int_t)split.test.nnz));
        json_object_set_new(fold, "fit_seconds", json_real(wall));
        json_object_set_new(fold, "fit_cpu_seconds", json_real(cpu));
        json_array_append_new(folds_json, fold);
        train_total += split.train.nnz;
        test_total += split.test.nnz;
        fit_total += wall;
        recd_fitted_dispose(&f);
        recd_cli_split_dispose(&split);
        if (ret != RECD_OK)
            goto Exit;
    }
    if (n_runs > 1) {
        recd_eval_result_t mean, std;
        fold_summary(results, n_runs, &mean, &std);
        recd_cli_merge_metrics(ev, &mean);
        json_object_set_new(ev, "std", recd_eval_result_json(&std));
        json_object_set_new(ev, "folds_detail", folds_json);
        folds_json = NULL;
        json_object_set_new(ev, "train_interactions", json_integer((json_int_t)(train_total / n_runs)));
        json_object_set_new(ev, "test_interactions", json_integer((json_int_t)(test_total / n_runs)));
        const char *labels[101];
        char names[100][16];
        for (size_t i = 0; i != n_runs; ++i) {
            snprintf(names[i], sizeof(names[i]), "fold %zu", i + 1);
            labels[i] = names[i];
        }
        labels[n_runs] = "mean";
        recd_eval_result_t *all = calloc(n_runs + 1, sizeof(*all));
        memcpy(all, results, n_runs * sizeof(*all));
        all[n_runs] = mean;
        fprintf(o->err, "evaluation (%s, %zu folds):\n", a->name, n_runs);
        recd_cli_print_metrics(o->err, labels, all, n_runs + 1);
        free(all);
    } else {
        recd_cli_merge_metrics(ev, &results[0]);
        json_object_set_new(ev, "train_interactions", json_integer((json_int_t)train_total));
        json_object_set_new(ev, "test_interactions", json_integer((json_int_t)test_total));
        const char *label = "test";
        fprintf(o->err, "evaluation (%s, %s split, %zu train / %zu test interactions):\n", a->name, recd_protocol_name(o->protocol),
                train_total, test_total);
        recd_cli_print_metrics(o->err, &label, results, 1);
    }
    json_object_set_new(ev, "fit_seconds", json_real(fit_total / (double)n_runs));
    json_object_set_new(ev, "curve", recd_curve_json(&curve));
    char label[64];
    snprintf(label, sizeof(label), "test %s", o->metric.name);
    if (recd_cli_write_chart(o, &curve, a->name, label) != 0)
        goto Exit;
    exit_code = recd_cli_write_report(o, report);
Exit:
    free(results);
    recd_curve_dispose(&curve);
    json_decref(folds_json);
    json_decref(report);
    recd_cli_dataset_dispose(&d);
    return exit_code;
}
