/* eval_rating.c: rating-prediction metrics (RMSE, MAE, R^2) and the K-fold cross-validation split. */
#include <math.h>
#include <string.h>
#include "models/model.h"
#include "models/train_internal.h"

int recd_eval_rating(const recd_csr_t *test, recd_rating_predict_cb predict, void *data, recd_rating_metrics_t *out)
{
    if (test == NULL || predict == NULL || out == NULL || test->nnz == 0 || test->row_ptr == NULL || test->col == NULL ||
        test->val == NULL)
        return RECD_EINVAL;

    double sum = 0, sse = 0, sae = 0;
    for (size_t u = 0; u != test->n_rows; ++u) {
        for (uint64_t j = test->row_ptr[u]; j != test->row_ptr[u + 1]; ++j) {
            double truth = test->val[j], err = truth - (double)predict(data, (uint32_t)u, test->col[j]);
            sum += truth;
            sse += err * err;
            sae += fabs(err);
        }
    }
    /* the total sum of squares in a second pass about the exact mean, not from sum of squares minus square of sum */
    double mean = sum / (double)test->nnz, sst = 0;
    for (size_t j = 0; j != test->nnz; ++j) {
        double d = test->val[j] - mean;
        sst += d * d;
    }

    out->n = test->nnz;
    out->rmse = sqrt(sse / (double)test->nnz);
    out->mae = sae / (double)test->nnz;
    if (sst > 0)
        out->r2 = 1.0 - sse / sst;
    else
        out->r2 = sse == 0 ? 1.0 : 0.0;
    return RECD_OK;
}

int recd_split_kfold(const recd_csr_t *m, uint32_t folds, uint32_t fold, uint64_t seed, recd_csr_t *train, recd_csr_t *test)
{
    if (train != NULL)
        memset(train, 0, sizeof(*train));
    if (test != NULL)
        memset(test, 0, sizeof(*test));
    if (m == NULL || train == NULL || test == NULL || folds < 2 || fold >= folds || m->row_ptr == NULL ||
        (m->nnz != 0 && (m->col == NULL || m->val == NULL)))
        return RECD_EINVAL;

    /* shuffle the entry indexes; the entries landing at positions [start, stop) of the shuffled order form the test fold,
     * chunks cut as Surprise's KFold cuts them */
    size_t *perm = recd_xmalloc(m->nnz * sizeof(*perm));
    for (size_t j = 0; j != m->nnz; ++j)
        perm[j] = j;
    uint64_t rng = seed;
    for (size_t n = m->nnz; n > 1; --n) {
        size_t j = (size_t)recd_rand_below(&rng, n);
        size_t t = perm[n - 1];
        perm[n - 1] = perm[j];
        perm[j] = t;
    }
    size_t base = m->nnz / folds, extra = m->nnz % folds;
    size_t start = fold * base + (fold < extra ? fold : extra);
    size_t stop = start + base + (fold < extra);
    unsigned char *in_test = recd_xcalloc(m->nnz != 0 ? m->nnz : 1, 1);
    for (size_t p = start; p != stop; ++p)
        in_test[perm[p]] = 1;
    free(perm);

    recd_csr_t *outs[2] = {train, test};
    size_t counts[2] = {m->nnz - (stop - start), stop - start};
    for (int o = 0; o != 2; ++o) {
        outs[o]->n_rows = m->n_rows;
        outs[o]->n_cols = m->n_cols;
        outs[o]->nnz = counts[o];
        outs[o]->row_ptr = recd_xmalloc((m->n_rows + 1) * sizeof(*outs[o]->row_ptr));
        outs[o]->col = recd_xmalloc(counts[o] * sizeof(*outs[o]->col));
        outs[o]->val = recd_xmalloc(counts[o] * sizeof(*outs[o]->val));
        outs[o]->row_ptr[0] = 0;
    }
    /* walking m's rows in order keeps every output row sorted */
    size_t fill[2] = {0, 0};
    for (size_t u = 0; u != m->n_rows; ++u) {
        for (uint64_t j = m->row_ptr[u]; j != m->row_ptr[u + 1]; ++j) {
            recd_csr_t *o = outs[in_test[j]];
            size_t at = fill[in_test[j]]++;
            o->col[at] = m->col[j];
            o->val[at] = m->val[j];
        }
        train->row_ptr[u + 1] = fill[0];
        test->row_ptr[u + 1] = fill[1];
    }
    free(in_test);
    return RECD_OK;
}
