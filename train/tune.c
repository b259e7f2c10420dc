/* tune.c: how `recd-train tune` searches — successive halving of candidates over validation folds — and what it and
 * `train` choose on a validation split besides the model's own parameters: the fold-in regularisation and confidence recd
 * uses for users it folds in from their interactions. */
#include <math.h>
#include <stdint.h>
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
                         const recd_eval_metric_t *metric)
{
    recd_eval_result_t r;
    recd_eval_options_t eo = *o;
    eo.sampled_negatives = 0;
    eo.rating_metrics = 0;
    s->alpha = alpha;
    s->reg = reg;
    if (recd_evaluate(s->train, validation, &eo, score_folded, s, &r) != RECD_OK)
        return NAN;
    return recd_eval_metric_value(metric, &r);
}

int recd_eval_metric_better(const recd_eval_metric_t *m, double a, double b)
{
    if (!isfinite(a))
        return 0;
    if (!isfinite(b))
        return 1;
    return m->lower_is_better ? a < b : a > b;
}

size_t recd_tune_survivors(size_t n_candidates, size_t n_folds)
{
    size_t n = n_folds > 1 ? (n_candidates + 2) / 3 : n_candidates;
    return n < 2 && n_candidates >= 2 ? 2 : n;
}

/* A candidate as the sort sees it: larger key is better (the metric negated when lower is better, -inf for non-finite). */
typedef struct st_rank_key_t {
    double key;
    size_t index;
} rank_key_t;

static int cmp_rank_key(const void *pa, const void *pb)
{
    const rank_key_t *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

void recd_tune_rank(const recd_tune_tally_t *tallies, size_t n, const recd_eval_metric_t *m, size_t *order)
{
    rank_key_t *keys = recd_xcalloc(n != 0 ? n : 1, sizeof(*keys));
    for (size_t i = 0; i != n; ++i) {
        double v = tallies[i].score;
        keys[i] = (rank_key_t){!isfinite(v) ? -INFINITY : m->lower_is_better ? -v : v, i};
    }
    qsort(keys, n, sizeof(*keys), cmp_rank_key);
    for (size_t i = 0; i != n; ++i)
        order[i] = keys[i].index;
    free(keys);
}

/* Scores candidate c on fold f and folds the value into its mean. */
static void score_on_fold(const recd_tune_search_t *s, recd_tune_tally_t *t, size_t c, size_t f, int leads_if_best, size_t *leader,
                          const recd_tune_tally_t *tallies)
{
    double v = s->score(s->data, c, f);
    if (!isfinite(v))
        t->failed = 1;
    if (!t->failed) {
        t->score = (t->score * t->folds_scored + v) / (t->folds_scored + 1);
        ++t->folds_scored;
    } else {
        t->score = NAN;
    }
    int leads = 0;
    if (leads_if_best && !t->failed &&
        (*leader == SIZE_MAX || recd_eval_metric_better(s->metric, t->score, tallies[*leader].score))) {
        *leader = c;
        leads = 1;
    }
    if (s->on_scored != NULL)
        s->on_scored(s->data, c, f, t, leads);
}

size_t recd_tune_halving(const recd_tune_search_t *s, recd_tune_tally_t *tallies)
{
    size_t n = s->n_candidates, leader = SIZE_MAX, best = SIZE_MAX;
    memset(tallies, 0, n * sizeof(*tallies));
    for (size_t c = 0; c != n; ++c)
        score_on_fold(s, &tallies[c], c, 0, 1, &leader, tallies);
    if (s->n_folds > 1) {
        size_t *order = recd_xcalloc(n != 0 ? n : 1, sizeof(*order)), keep = recd_tune_survivors(n, s->n_folds);
        recd_tune_rank(tallies, n, s->metric, order);
        for (size_t r = 0; r != keep; ++r)
            for (size_t f = 1; f != s->n_folds && !tallies[order[r]].failed; ++f)
                score_on_fold(s, &tallies[order[r]], order[r], f, 0, &leader, tallies);
        free(order);
    }
    for (size_t c = 0; c != n; ++c) /* among the candidates scored on every fold */
        if (!tallies[c].failed && tallies[c].folds_scored == s->n_folds &&
            (best == SIZE_MAX || recd_eval_metric_better(s->metric, tallies[c].score, tallies[best].score)))
            best = c;
    return best != SIZE_MAX && isfinite(tallies[best].score) ? best : SIZE_MAX;
}

int recd_fold_in_choose(const recd_fitted_t *f, const recd_csr_t *train, const recd_csr_t *validation, const recd_eval_options_t *o,
                        const recd_eval_metric_t *metric, recd_fold_in_choice_t *out)
{
    memset(out, 0, sizeof(*out));
    out->alpha = FOLD_IN_DEFAULT_ALPHA;
    out->reg = FOLD_IN_DEFAULT_REG;
    out->score = out->default_score = NAN;
    if (f->item_factors == NULL || f->n_factors == 0 || train->n_cols != f->n_items || validation->n_rows != train->n_rows)
        return RECD_EINVAL;
    if (strncmp(metric->name, "rmse", 4) == 0 || strncmp(metric->name, "mae", 3) == 0 || strncmp(metric->name, "r2", 2) == 0)
        metric = NULL; /* rating metrics say nothing about a folded-in user's ranking: choose on nDCG */
    recd_eval_metric_t ndcg;
    if (metric == NULL) {
        recd_eval_metric_parse("ndcg@10", &ndcg);
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
            if (recd_eval_metric_better(metric, v, out->score)) {
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
