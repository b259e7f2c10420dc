/* tune.c: what `recd-train tune` and `train` choose on a validation split besides the model's own parameters — the fold-in
 * regularisation and confidence recd uses for users it folds in from their interactions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "base/alloc.h"
#include "train/trainer.h"

/* The pairs tried: a log grid wide enough for BPR's and MF's factor scales, plus the fixed pair recd used before. */
static const float fold_in_alphas[] = {2.0f, 8.0f, 32.0f, 128.0f};
static const float fold_in_regs[] = {1.0f, 10.0f, 100.0f, 1000.0f};
#define FOLD_IN_DEFAULT_ALPHA 1.0f
#define FOLD_IN_DEFAULT_REG 1.0f

typedef struct st_fold_in_scorer_t {
    const recd_fitted_t *f;
    const recd_csr_t *train;
    const float *gram;
    float alpha, reg;
} fold_in_scorer_t;

/* Scores a user as recd scores one it folds in: the vector solved from the user's train row, no stored user bias. */
static void score_folded(void *data, uint32_t user, float *scores)
{
    const fold_in_scorer_t *s = data;
    const recd_csr_t *t = s->train;
    size_t n = t->row_ptr[user + 1] - t->row_ptr[user];
    float *vec = recd_xmalloc(s->f->n_factors * sizeof(float));
    if (recd_fold_in_solve(s->gram, s->f->item_factors, s->f->n_items, s->f->n_factors, s->alpha, s->reg, t->col + t->row_ptr[user],
                           t->val + t->row_ptr[user], n, vec) != RECD_OK)
        memset(vec, 0, s->f->n_factors * sizeof(float)); /* recd then ranks by the biases alone */
    recd_fitted_score_vector(s->f, vec, -1, scores);
    free(vec);
}

static double score_pair(fold_in_scorer_t *s, float alpha, float reg, const recd_csr_t *validation, const recd_eval_options_t *o,
                         const recd_metric_t *metric)
{
    recd_eval_result_t r;
    recd_eval_options_t eo = *o;
    eo.sampled_negatives = 0;
    eo.rating_metrics = 0;
    s->alpha = alpha;
    s->reg = reg;
    if (recd_evaluate(s->train, validation, &eo, score_folded, s, &r) != RECD_OK)
        return NAN;
    return recd_metric_value(metric, &r);
}

static int improves(const recd_metric_t *m, double a, double b)
{
    if (!isfinite(a))
        return 0;
    if (!isfinite(b))
        return 1;
    return m->lower_is_better ? a < b : a > b;
}

int recd_fold_in_choose(const recd_fitted_t *f, const recd_csr_t *train, const recd_csr_t *validation, const recd_eval_options_t *o,
                        const recd_metric_t *metric, recd_fold_in_choice_t *out)
{
    memset(out, 0, sizeof(*out));
    out->alpha = FOLD_IN_DEFAULT_ALPHA;
    out->reg = FOLD_IN_DEFAULT_REG;
    out->score = out->default_score = NAN;
    if (f->item_factors == NULL || f->n_factors == 0 || train->n_cols != f->n_items || validation->n_rows != train->n_rows)
        return RECD_EINVAL;
    if (strncmp(metric->name, "rmse", 4) == 0 || strncmp(metric->name, "mae", 3) == 0 || strncmp(metric->name, "r2", 2) == 0)
        metric = NULL; /* rating metrics say nothing about a folded-in user's ranking: choose on nDCG */
    recd_metric_t ndcg;
    if (metric == NULL) {
        recd_metric_parse("ndcg@10", &ndcg);
        ndcg.k = o->k;
        metric = &ndcg;
    }
    size_t k = f->n_factors;
    float *gram = recd_xcalloc(k * k, sizeof(float));
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)f->n_items, 1.0f, f->item_factors, (int)k, 0.0f, gram, (int)k);
    for (size_t i = 0; i != k; ++i)
        for (size_t j = i + 1; j != k; ++j)
            gram[j * k + i] = gram[i * k + j];
    fold_in_scorer_t s = {.f = f, .train = train, .gram = gram};

    out->default_score = out->score = score_pair(&s, FOLD_IN_DEFAULT_ALPHA, FOLD_IN_DEFAULT_REG, validation, o, metric);
    out->tried = 1;
    for (size_t a = 0; a != sizeof(fold_in_alphas) / sizeof(fold_in_alphas[0]); ++a)
        for (size_t r = 0; r != sizeof(fold_in_regs) / sizeof(fold_in_regs[0]); ++r) {
            double v = score_pair(&s, fold_in_alphas[a], fold_in_regs[r], validation, o, metric);
            ++out->tried;
            if (improves(metric, v, out->score)) {
                out->score = v;
                out->alpha = fold_in_alphas[a];
                out->reg = fold_in_regs[r];
            }
        }
    snprintf(out->metric, sizeof(out->metric), "%s", metric->name);
    free(gram);
    return RECD_OK;
}

json_t *recd_fold_in_choice_json(const recd_fold_in_choice_t *c)
{
    json_t *j = json_pack("{s:f, s:f, s:s, s:i, s:s}", "alpha", (double)c->alpha, "reg", (double)c->reg, "metric", c->metric,
                          "pairs_tried", (int)c->tried, "scored_as",
                          "each validation user folded in from its train row (no stored vector, no user bias), as recd "
                          "folds in a user it does not know");
    json_object_set_new(j, "validation_score", isfinite(c->score) ? json_real(c->score) : json_null());
    json_object_set_new(j, "validation_score_at_alpha1_reg1",
                        isfinite(c->default_score) ? json_real(c->default_score) : json_null());
    return j;
}
