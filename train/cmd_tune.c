/* cmd_tune.c: `recd-train tune` — candidates from a grid or a random search, successive halving on validation folds carved
 * from the rows the published model learns from (train/tune.c), the winner refitted for test figures, then published. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "base/hash.h"
#include "train/cli_internal.h"

#define MAX_ALGOS 8

typedef struct st_candidate_t {
    recd_cli_setup_t setup;
    recd_eval_result_t validation; /* on the first validation fold */
    recd_tune_tally_t tally;       /* the metric averaged over the folds it was scored on */
    double fit_seconds;            /* on the first fold */
    int is_default;
} candidate_t;

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static candidate_t *push_candidate(candidate_t **c, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        *cap = *cap != 0 ? *cap * 2 : 16;
        *c = recd_xreallocarray(*c, *cap, sizeof(**c));
    }
    candidate_t *x = &(*c)[(*n)++];
    memset(x, 0, sizeof(*x));
    return x;
}

/* Appends an algorithm's candidates to *c: its default configuration (the flags applied) always first, then the grid
 * (sampled down so that default + sample fit the budget) or random draws. Returns 0 or RECD_CLI_EXIT_USAGE. */
static int add_candidates(const recd_cli_options_t *o, const recd_cli_setup_t *base, uint64_t *rng, candidate_t **c, size_t *n,
                          size_t *cap)
{
    const recd_algorithm_t *a = base->a;
    char *list = NULL, err[512];
    size_t count;
    candidate_t *d = push_candidate(c, n, cap);
    d->setup = *base;
    d->is_default = 1;
    if (a->n_params == 0) /* popularity: the default is the only candidate */
        return 0;
    size_t room = o->budget > 1 ? o->budget - 1 : 0;
    if (o->random_search) {
        count = room;
    } else {
        long g = recd_grid_expand(a, base->params, o->grid, base->fixed, &list, err, sizeof(err));
        if (g < 0) {
            fprintf(o->err, "recd-train: %s\n", err);
            return RECD_CLI_EXIT_USAGE;
        }
        count = (size_t)g;
    }
    /* the grid without the default, which is already in */
    size_t *pick = calloc(count + 1, sizeof(size_t)), n_pick = 0;
    for (size_t i = 0; i != count; ++i)
        if (o->random_search || memcmp(list + i * a->params_size, base->params, a->params_size) != 0)
            pick[n_pick++] = i;
    size_t take = n_pick;
    if (!o->random_search && n_pick > room) { /* a seeded sample of the grid, kept in grid order */
        for (size_t i = 0; i != room; ++i) {
            size_t j = i + (size_t)(recd_splitmix64(rng) % (n_pick - i)), t = pick[i];
            pick[i] = pick[j];
            pick[j] = t;
        }
        take = room;
        qsort(pick, take, sizeof(size_t), cmp_size);
        fprintf(o->err, "tune: %s grid has %zu candidates besides the default; sampling %zu of them (--budget %u)\n", a->name,
                n_pick, take, o->budget);
    }
    for (size_t i = 0; i != take; ++i) {
        candidate_t *x = push_candidate(c, n, cap);
        x->setup = *base;
        if (o->random_search)
            recd_random_params(a, base->params, base->fixed, rng, x->setup.params);
        else
            memcpy(x->setup.params, list + pick[i] * a->params_size, a->params_size);
    }
    free(pick);
    free(list);
    return 0;
}

static json_t *candidate_json(const candidate_t *c, const recd_eval_metric_t *m)
{
    json_t *j =
        json_pack("{s:s, s:o, s:o, s:f, s:b, s:b, s:i}", "algorithm", c->setup.a->name, "params",
                  recd_params_json(c->setup.a, c->setup.params), "validation", recd_eval_result_json(&c->validation), "fit_seconds",
                  c->fit_seconds, "failed", c->tally.failed, "default", c->is_default, "folds_scored", (int)c->tally.folds_scored);
    json_object_set_new(j, m->name, isfinite(c->tally.score) ? json_real(c->tally.score) : json_null());
    return j;
}

/* What the search's callbacks need: the options, the candidates, the folds and the progress line. */
typedef struct st_tune_run_t {
    const recd_cli_options_t *o;
    candidate_t *cand;
    size_t n_cand, n_folds;
    const recd_cli_split_t *folds;
    recd_progress_t progress;
} tune_run_t;

/* Fits a candidate on one validation fold's train part and returns its metric on the validation part (NaN on failure). */
static double score_candidate(void *data, size_t i, size_t fold)
{
    tune_run_t *t = data;
    const recd_cli_options_t *o = t->o;
    candidate_t *c = &t->cand[i];
    const recd_cli_split_t *split = &t->folds[fold];
    recd_fitted_t f = {0};
    recd_eval_result_t r = {0};
    double wall = 0;
    int failed = 0;
    if (recd_cli_fit(o, &c->setup, &split->train, NULL, NULL, &f, &wall, NULL) != RECD_OK) {
        failed = 1;
    } else {
        recd_eval_options_t eo = recd_cli_eval_options(o, c->setup.a, &split->train);
        eo.sampled_negatives = 0;
        if (recd_evaluate_fitted(&f, &split->train, &split->test, &eo, &r) != RECD_OK)
            failed = 1;
    }
    recd_fitted_dispose(&f);
    if (fold == 0) {
        c->validation = r;
        c->fit_seconds = wall;
    }
    return failed ? NAN : recd_eval_metric_value(&o->metric, &r);
}

static void on_candidate_scored(void *data, size_t i, size_t fold, const recd_tune_tally_t *tally, int leads)
{
    tune_run_t *t = data;
    const candidate_t *c = &t->cand[i];
    char desc[256], line[512];
    recd_params_format(c->setup.a, c->setup.params, desc, sizeof(desc));
    if (fold == 0)
        snprintf(line, sizeof(line), "candidate %zu/%zu %s %s%s: validation %s=%.4f (%.2fs)%s", i + 1, t->n_cand, c->setup.a->name,
                 desc, c->is_default ? " (default)" : "", t->o->metric.name, tally->score, c->fit_seconds,
                 leads ? " best so far" : "");
    else
        snprintf(line, sizeof(line), "fold %zu/%zu %s %s: mean validation %s=%.4f", fold + 1, t->n_folds, c->setup.a->name, desc,
                 t->o->metric.name, tally->score);
    recd_progress_step(&t->progress, line);
}

int recd_cli_tune(const recd_cli_options_t *o, const recd_cli_param_flags_t *pf)
{
    recd_cli_dataset_t d = {0};
    recd_cli_setup_t setups[MAX_ALGOS];
    const recd_algorithm_t *algos[MAX_ALGOS];
    size_t n_algos = 0, n_cand = 0, cap = 0, n_folds = 0;
    recd_tune_tally_t *tallies = NULL;
    candidate_t *cand = NULL;
    recd_cli_split_t outer = {0}, *folds = NULL;
    recd_csr_t all = {0};
    recd_fitted_t test_fit = {0}, published_fit = {0};
    recd_curve_t curve = {0};
    json_t *report = json_object(), *tuning = NULL, *evaluation = NULL, *data_info = NULL, *params = NULL;
    char created[32], artifact[4096], err[512];
    int exit_code = RECD_CLI_EXIT_USAGE;
    double t_start = recd_monotonic_seconds();

    /* the algorithms: one, a comma list, or all */
    const char *spec = o->algorithm != NULL ? o->algorithm : "als";
    if (strcmp(spec, "all") == 0) {
        for (size_t i = 0; i != recd_n_algorithms && n_algos != MAX_ALGOS; ++i)
            algos[n_algos++] = &recd_algorithms[i];
    } else {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", spec);
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            const recd_algorithm_t *a = recd_algorithm_find(tok);
            if (a == NULL || n_algos == MAX_ALGOS) {
                fprintf(o->err,
                        "recd-train: --algorithm must be all or a comma list of als, bpr, biased_mf, popularity (got "
                        "\"%s\")\n",
                        tok);
                goto Exit;
            }
            algos[n_algos++] = a;
        }
    }
    for (size_t j = 0; j != pf->n; ++j) { /* a parameter flag must belong to some chosen algorithm */
        if (o->param_value[j] == NULL)
            continue;
        size_t i = 0;
        while (i != n_algos && recd_algorithm_param(algos[i], pf->name[j]) == NULL)
            ++i;
        if (i == n_algos) {
            fprintf(o->err, "recd-train: --%s does not apply to the algorithms being tuned (%s)\n", pf->name[j], spec);
            goto Exit;
        }
    }
    for (size_t i = 0; i != n_algos; ++i)
        if (recd_cli_setup_algorithm(o, pf, algos[i], 0, &setups[i]) != 0)
            goto Exit;
    if (o->grid != NULL) {
        if (o->random_search) {
            fprintf(o->err, "recd-train: --grid is for --search grid; random search draws from each parameter's range\n");
            goto Exit;
        }
        if (recd_grid_check(algos, n_algos, o->grid, err, sizeof(err)) != 0) {
            fprintf(o->err, "recd-train: %s\n", err);
            goto Exit;
        }
    }
    uint64_t rng = o->seed ^ 0x74756e65ULL; /* "tune" */
    for (size_t i = 0; i != n_algos; ++i)
        if (add_candidates(o, &setups[i], &rng, &cand, &n_cand, &cap) != 0)
            goto Exit;
    exit_code = 1;
    recd_cli_now_iso(created, sizeof(created));

    recd_interactions_init(&d.data);
    if (recd_cli_load_dataset(o, &d) != 0)
        goto Exit;
    /* the outer split gives the test figures; the published model learns from every row, or with --holdout-test from the
     * train part only. Validation is carved once out of exactly those rows: K folds when the data is small enough and
     * the protocol is the random one, else one split by the protocol. */
    if (recd_cli_split(o, &d.entries, o->protocol, o->test_ratio, o->seed, 0, 0, &outer) != RECD_OK)
        goto Exit;
    const recd_entries_t *learn = o->holdout_test ? &outer.train_e : &d.entries;
    uint64_t validation_seed = o->seed + 1;
    int kfold = o->protocol == RECD_PROTOCOL_STRATIFIED && !o->validation_given && learn->n <= RECD_CLI_TUNE_KFOLD_MAX_INTERACTIONS;
    n_folds = kfold ? o->folds : 1;
    folds = calloc(n_folds, sizeof(*folds));
    for (size_t i = 0; i != n_folds; ++i)
        if (recd_cli_split(o, learn, kfold ? RECD_PROTOCOL_KFOLD : o->protocol, o->validation_ratio, validation_seed, (uint32_t)i,
                           (uint32_t)n_folds, &folds[i]) != RECD_OK)
            goto Exit;
    /* successive halving: every candidate on the first fold, the best third on the others; the mean over all folds decides */
    size_t n_keep = recd_tune_survivors(n_cand, n_folds);
    fprintf(o->err,
            "tune: %s split: %zu train / %zu test interactions (test figures); validation: %s of the %zu interactions the "
            "published model learns from (%zu train / %zu validation in the first); %zu candidates on the first fold%s, "
            "selecting on validation %s\n",
            recd_protocol_name(o->protocol), outer.train.nnz, outer.test.nnz, kfold ? "K-fold" : recd_protocol_name(o->protocol),
            learn->n, folds[0].train.nnz, folds[0].test.nnz, n_cand, n_folds > 1 ? ", the best third on every fold" : "",
            o->metric.name);

    tune_run_t run = {.o = o, .cand = cand, .n_cand = n_cand, .n_folds = n_folds, .folds = folds};
    recd_progress_init(&run.progress, o->err, n_cand + n_keep * (n_folds - 1));
    tallies = recd_xcalloc(n_cand, sizeof(*tallies));
    recd_tune_search_t search = {n_cand, n_folds, &o->metric, score_candidate, on_candidate_scored, &run};
    size_t best = recd_tune_halving(&search, tallies);
    recd_progress_finish(&run.progress);
    for (size_t i = 0; i != n_cand; ++i)
        cand[i].tally = tallies[i];
    if (best == SIZE_MAX) {
        fprintf(o->err, "recd-train: no candidate produced a finite validation %s\n", o->metric.name);
        goto Exit;
    }

    /* the candidates table, the params column as wide as its widest entry */
    int width = 6;
    for (size_t i = 0; i != n_cand; ++i) {
        char desc[256];
        recd_params_format(cand[i].setup.a, cand[i].setup.params, desc, sizeof(desc));
        width = (int)strlen(desc) > width ? (int)strlen(desc) : width;
    }
    fprintf(o->err, "\n%-3s %-10s %-*s %12s %6s %8s\n", "#", "algorithm", width, "params", o->metric.name, "folds", "fit s");
    json_t *cands = json_array();
    for (size_t i = 0; i != n_cand; ++i) {
        char desc[256];
        recd_params_format(cand[i].setup.a, cand[i].setup.params, desc, sizeof(desc));
        fprintf(o->err, "%-3zu %-10s %-*s %12.4f %6u %8.2f%s%s\n", i + 1, cand[i].setup.a->name, width, desc, cand[i].tally.score,
                cand[i].tally.folds_scored, cand[i].fit_seconds, cand[i].is_default ? "  (default)" : "",
                i == best ? "  <- best" : "");
        json_array_append_new(cands, candidate_json(&cand[i], &o->metric));
    }
    const candidate_t *w = &cand[best];
    recd_fold_in_choice_t fold_in = {0};
    int fold_in_chosen = 0;
    if (recd_cli_has_fold_in_choice(w->setup.a)) {
        if (recd_cli_choose_fold_in(o, &w->setup, &folds[0], &fold_in) != RECD_OK) {
            json_decref(cands);
            goto Exit;
        }
        fold_in_chosen = 1;
    }

    /* the test figures: the winner refitted on the outer train part, scored once on the outer test part */
    recd_eval_options_t eo = recd_cli_eval_options(o, w->setup.a, &outer.train);
    curve = (recd_curve_t){.algorithm = w->setup.a,
                           .n_factors = recd_cli_factors_of(&w->setup),
                           .train = &outer.train,
                           .test = &outer.test,
                           .eval = eo,
                           .selected = o->metric};
    double wall, cpu;
    fprintf(o->err, "tune: refitting %s on the outer train part (%zu interactions) for the test figures\n", w->setup.a->name,
            outer.train.nnz);
    if (recd_cli_fit(o, &w->setup, &outer.train, "refit: ", &curve, &test_fit, &wall, &cpu) != RECD_OK) {
        json_decref(cands);
        goto Exit;
    }
    recd_eval_result_t test;
    int ret = recd_evaluate_fitted(&test_fit, &outer.train, &outer.test, &eo, &test);
    if (ret != RECD_OK) {
        fprintf(o->err, "recd-train: evaluation failed: %s\n", recd_strerror(ret));
        json_decref(cands);
        goto Exit;
    }
    const char *labels[2] = {"validation", "test"};
    recd_eval_result_t both[2] = {w->validation, test};
    both[0].has_sampled = 0;
    if (test.has_sampled) { /* candidates are scored without the sampled protocol; print only what both columns have */
        both[1].has_sampled = 0;
    }
    fprintf(o->err, "\nbest: %s (validation: first fold; test: refit on the outer train part, scored on the outer test part)\n",
            w->setup.a->name);
    recd_cli_print_metrics(o->err, labels, both, 2);

    tuning = json_pack("{s:s, s:s, s:i, s:o, s:i, s:s, s:f, s:I, s:I, s:I}", "metric", o->metric.name, "search",
                       o->random_search ? "random" : "grid", "budget_per_algorithm", (int)o->budget, "candidates", cands, "best",
                       (int)best, "best_algorithm", w->setup.a->name, "best_validation_score", w->tally.score, "validation_seed",
                       (json_int_t)validation_seed, "inner_train_interactions", (json_int_t)folds[0].train.nnz,
                       "validation_interactions", (json_int_t)folds[0].test.nnz);
    json_object_set_new(tuning, "validation_scheme",
                        json_pack("{s:s, s:i, s:I, s:s, s:s}", "kind", kfold ? "kfold" : recd_protocol_name(o->protocol), "folds",
                                  (int)n_folds, "carved_from_interactions", (json_int_t)learn->n, "carved_from",
                                  o->holdout_test ? "the outer train part (what the published model learns from)"
                                                  : "every interaction (what the published model learns from)",
                                  "budget",
                                  n_folds > 1 ? "every candidate on fold 1; the best third on every fold; the best mean wins"
                                              : "every candidate on the one validation split"));
    if (!kfold)
        json_object_set_new(tuning, "validation_ratio", json_real(o->validation_ratio));
    if (o->grid != NULL)
        json_object_set_new(tuning, "grid", json_string(o->grid));
    json_object_set_new(tuning, "best_validation", recd_eval_result_json(&w->validation));
    json_object_set_new(tuning, "best_is_default", json_boolean(w->is_default));
    if (fold_in_chosen)
        json_object_set_new(tuning, "fold_in", recd_fold_in_choice_json(&fold_in));

    evaluation = json_object();
    json_object_set_new(evaluation, "evaluated", json_true());
    recd_cli_protocol_json(o, evaluation, &outer);
    recd_cli_merge_metrics(evaluation, &test);
    json_object_set_new(evaluation, "fit_seconds", json_real(wall));
    json_object_set_new(evaluation, "fit_cpu_seconds", json_real(cpu));
    json_object_set_new(evaluation, "model_trained_on",
                        json_string("test figures: the chosen parameters refitted on the train part of the split, scored once "
                                    "on its test part"));
    json_object_set_new(evaluation, "validation",
                        json_pack("{s:s, s:f, s:i, s:s}", "metric", o->metric.name, "value", w->tally.score, "folds", (int)n_folds,
                                  "figures", "candidates trained on the validation folds' train parts, mean over the folds"));
    json_object_set_new(evaluation, "curve", recd_curve_json(&curve));
    char chart_label[64];
    snprintf(chart_label, sizeof(chart_label), "test %s", o->metric.name);
    if (recd_cli_write_chart(o, &curve, w->setup.a->name, chart_label) != 0)
        goto Exit;

    const recd_csr_t *published_rows = &outer.train;
    const char *trained_on = "the train part of the split only (test part held out; validation rows included)";
    if (o->holdout_test) {
        json_object_set_new(evaluation, "published_model",
                            json_string("this model: trained on the train part, the test figures are its own"));
        json_object_set_new(evaluation, "published_model_held_out", json_true());
        published_fit = test_fit;
        memset(&test_fit, 0, sizeof(test_fit));
    } else {
        if (recd_entries_csr(&d.entries, &all) != RECD_OK)
            goto Exit;
        fprintf(o->err, "tune: fitting %s on all %zu interactions (the published model)\n", w->setup.a->name, all.nnz);
        if (recd_cli_fit(o, &w->setup, &all, "", NULL, &published_fit, NULL, NULL) != RECD_OK)
            goto Exit;
        published_rows = &all;
        trained_on = "all interactions";
        json_object_set_new(evaluation, "published_model",
                            json_string("trained on every interaction with the chosen parameters: it has no held-out figure of "
                                        "its own. The test figures are of the same parameters refitted on the train part; the "
                                        "validation folds covered every interaction, these test rows included"));
        json_object_set_new(evaluation, "published_model_held_out", json_false());
    }
    if (fold_in_chosen) {
        published_fit.alpha = fold_in.alpha;
        published_fit.reg = fold_in.reg;
    }

    params = recd_params_json(w->setup.a, w->setup.params);
    json_object_set_new(params, "threads", json_integer(o->threads));
    json_object_set_new(params, "seed", json_integer((json_int_t)o->seed));
    data_info = recd_cli_data_info_json(o, &d);
    recd_cli_publication_t pub = {w->setup.a->name, params, data_info, evaluation, tuning, trained_on, created, !o->holdout_test};
    uint64_t version;
    if (recd_cli_publish(o, &d, &published_fit, published_rows, &pub, &version, artifact, sizeof(artifact)) != 0)
        goto Exit;
    json_object_set_new(report, "command", json_string("tune"));
    json_object_set_new(report, "model", json_string(o->model));
    json_object_set_new(report, "version", json_integer((json_int_t)version));
    json_object_set_new(report, "artifact", json_string(artifact));
    json_object_set_new(report, "algorithm", json_string(w->setup.a->name));
    json_object_set(report, "params", params);
    json_object_set(report, "tuning", tuning);
    json_object_set(report, "evaluation", evaluation);
    json_object_set(report, "data", data_info);
    json_object_set_new(report, "trained_on", json_string(trained_on));
    json_object_set_new(report, "trained_on_interactions", json_integer((json_int_t)published_rows->nnz));
    json_object_set_new(report, "seconds", json_real(recd_monotonic_seconds() - t_start));
    exit_code = recd_cli_write_report(o, report);
Exit:
    free(cand);
    free(tallies);
    recd_curve_dispose(&curve);
    recd_fitted_dispose(&test_fit);
    recd_fitted_dispose(&published_fit);
    recd_cli_split_dispose(&outer);
    for (size_t i = 0; folds != NULL && i != n_folds; ++i)
        recd_cli_split_dispose(&folds[i]);
    free(folds);
    recd_csr_dispose(&all);
    json_decref(report);
    json_decref(tuning);
    json_decref(evaluation);
    json_decref(data_info);
    json_decref(params);
    recd_cli_dataset_dispose(&d);
    return exit_code;
}
