/* cmd_train.c: `recd-train train` — fit on every accepted row (or, with --holdout-test, the train part of a split),
 * optionally evaluate a twin trained on the train part, choose the fold-in pair, publish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "base/clock.h"
#include "train/cli_internal.h"

int recd_cli_train(const recd_cli_options_t *o, const recd_cli_param_flags_t *pf)
{
    recd_cli_dataset_t d = {0};
    recd_cli_setup_t s;
    recd_cli_split_t split = {0};
    recd_csr_t all = {0};
    recd_fitted_t f = {0};
    recd_curve_t curve = {0};
    json_t *params = NULL, *evaluation = json_object(), *data_info = NULL, *summary = NULL, *seconds = json_object();
    char created[32], artifact[4096];
    int exit_code = 1;
    double t_start = recd_monotonic_seconds(), wall, cpu;
    const recd_algorithm_t *a = recd_cli_single_algorithm(o);

    if (a == NULL) {
        exit_code = RECD_CLI_EXIT_USAGE;
        goto Exit;
    }
    if ((exit_code = recd_cli_setup_algorithm(o, pf, a, 1, &s)) != 0)
        goto Exit;
    exit_code = 1;
    recd_cli_now_iso(created, sizeof(created));
    recd_interactions_init(&d.data);
    if (recd_cli_load_dataset(o, &d) != 0)
        goto Exit;
    json_object_set_new(seconds, "ingest", json_real(d.seconds));
    if (recd_entries_csr(&d.entries, &all) != RECD_OK)
        goto Exit;
    params = recd_params_json(a, s.params);
    json_object_set_new(params, "threads", json_integer(o->threads));
    json_object_set_new(params, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(evaluation, "evaluated", json_false());

    const recd_csr_t *published_rows = &all;
    const char *trained_on = "all interactions";
    if (o->evaluate || o->holdout_test) {
        double t0 = recd_monotonic_seconds();
        if (recd_cli_split(o, &d.entries, o->protocol, o->test_ratio, o->seed, 0, o->folds, &split) != RECD_OK)
            goto Exit;
        recd_eval_options_t eo = recd_cli_eval_options(o, a, &split.train);
        curve = (recd_curve_t){.algorithm = a, .train = &split.train, .test = &split.test, .eval = eo, .selected = o->metric};
        curve.n_factors =
            (uint32_t)(recd_algorithm_param(a, "factors") ? recd_param_get(recd_algorithm_param(a, "factors"), s.params) : 0);
        if (recd_cli_fit(o, &s, &split.train, "split: ", &curve, &f, &wall, &cpu) != RECD_OK)
            goto Exit;
        recd_eval_result_t r;
        int ret = recd_evaluate_fitted(&f, &split.train, &split.test, &eo, &r);
        if (ret != RECD_OK) {
            fprintf(o->err, "recd-train: evaluation failed: %s\n", recd_strerror(ret));
            goto Exit;
        }
        json_object_set_new(evaluation, "evaluated", json_true());
        recd_cli_protocol_json(o, evaluation, &split);
        recd_cli_merge_metrics(evaluation, &r);
        json_object_set_new(evaluation, "fit_seconds", json_real(wall));
        json_object_set_new(evaluation, "fit_cpu_seconds", json_real(cpu));
        json_object_set_new(evaluation, "model_trained_on", json_string("the train part of the split"));
        json_object_set_new(evaluation, "curve", recd_curve_json(&curve));
        json_object_set_new(seconds, "evaluate", json_real(recd_monotonic_seconds() - t0));
        const char *label = "test";
        fprintf(o->err, "evaluation (%s split, %zu train / %zu test interactions):\n", recd_protocol_name(o->protocol),
                split.train.nnz, split.test.nnz);
        recd_cli_print_metrics(o->err, &label, &r, 1);
        if (recd_cli_write_chart(o, &curve, a->name, "test metric") != 0)
            goto Exit;
        if (o->holdout_test) {
            published_rows = &split.train;
            trained_on = "the train part of the split only (the test part was held out)";
            json_object_set_new(evaluation, "published_model", json_string("this model (trained on the train part)"));
            json_object_set_new(seconds, "fit", json_real(wall));
            json_object_set_new(seconds, "fit_cpu", json_real(cpu));
        } else {
            json_object_set_new(evaluation, "published_model",
                                json_string("trained on all interactions with the same parameters; these figures are of the "
                                            "model trained on the train part"));
            recd_fitted_dispose(&f);
        }
    }
    if (!o->holdout_test) {
        recd_curve_t all_curve = {.selected = o->metric};
        if (recd_cli_fit(o, &s, &all, "", o->evaluate ? NULL : &all_curve, &f, &wall, &cpu) != RECD_OK) {
            recd_curve_dispose(&all_curve);
            goto Exit;
        }
        json_object_set_new(seconds, "fit", json_real(wall));
        json_object_set_new(seconds, "fit_cpu", json_real(cpu));
        if (!o->evaluate && recd_cli_write_chart(o, &all_curve, a->name, "validation metric (no split: use --evaluate)") != 0) {
            recd_curve_dispose(&all_curve);
            goto Exit;
        }
        recd_curve_dispose(&all_curve);
    }

    if (recd_cli_has_fold_in_choice(a)) { /* on a validation split of the rows the published model learned from */
        recd_cli_split_t val;
        recd_fold_in_choice_t choice;
        if (recd_cli_split(o, o->holdout_test ? &split.train_e : &d.entries,
                           o->protocol == RECD_PROTOCOL_KFOLD ? RECD_PROTOCOL_STRATIFIED : o->protocol, o->test_ratio, o->seed + 1,
                           0, 0, &val) != RECD_OK)
            goto Exit;
        int ret = recd_cli_choose_fold_in(o, &s, &val, &choice);
        recd_cli_split_dispose(&val);
        if (ret != RECD_OK)
            goto Exit;
        f.alpha = choice.alpha;
        f.reg = choice.reg;
        json_object_set_new(evaluation, "fold_in", recd_fold_in_choice_json(&choice));
    }
    double t0 = recd_monotonic_seconds();
    data_info = recd_cli_data_info_json(o, &d);
    recd_cli_publication_t pub = {a->name, params, data_info, evaluation, NULL, trained_on, created, !o->holdout_test};
    uint64_t version;
    if (recd_cli_publish(o, &d, &f, published_rows, &pub, &version, artifact, sizeof(artifact)) != 0)
        goto Exit;
    json_object_set_new(seconds, "publish", json_real(recd_monotonic_seconds() - t0));
    json_object_set_new(seconds, "total", json_real(recd_monotonic_seconds() - t_start));
    summary = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:O, s:O, s:O, s:s, s:s}", "command", "train", "model", o->model,
                        "version", (json_int_t)version, "algorithm", a->name, "users", (json_int_t)all.n_rows, "items",
                        (json_int_t)all.n_cols, "interactions", (json_int_t)all.nnz, "params", params, "seconds", seconds,
                        "evaluation", evaluation, "artifact", artifact, "trained_on", trained_on);
    exit_code = summary != NULL ? recd_cli_write_report(o, summary) : 1;
Exit:
    recd_curve_dispose(&curve);
    recd_fitted_dispose(&f);
    recd_cli_split_dispose(&split);
    recd_csr_dispose(&all);
    json_decref(params);
    json_decref(evaluation);
    json_decref(data_info);
    json_decref(summary);
    json_decref(seconds);
    recd_cli_dataset_dispose(&d);
    return exit_code;
}
