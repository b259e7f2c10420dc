/* trainer.c: the algorithm table (ALS, BPR, biased MF, popularity), fitted models and how they score, split protocols over
 * unique entries, evaluation with every metric, and the tuning search spaces. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include "base/hash.h"
#include "base/alloc.h"
#include "train/trainer.h"

/* ---- the table ------------------------------------------------------------------------------------------------------ */

static float *popularity_of(const recd_csr_t *m)
{
    float *p = recd_xcalloc(m->n_cols, sizeof(float));
    recd_popularity_compute(m, p);
    return p;
}

static void als_init(void *p)
{
    recd_als_params_init(p);
}

static int als_fit(const recd_csr_t *m, const void *params, const recd_fit_hooks_t *h, recd_fitted_t *out)
{
    recd_als_params_t p = *(const recd_als_params_t *)params;
    p.hooks = *h;
    int ret = recd_als_train(m, &p, &out->user_factors, &out->item_factors);
    if (ret != RECD_OK)
        return ret;
    out->n_factors = p.factors;
    out->alpha = p.alpha;
    out->reg = p.reg;
    return RECD_OK;
}

static void bpr_init(void *p)
{
    recd_bpr_params_init(p);
}

static int bpr_fit(const recd_csr_t *m, const void *params, const recd_fit_hooks_t *h, recd_fitted_t *out)
{
    recd_bpr_params_t p = *(const recd_bpr_params_t *)params;
    p.hooks = *h;
    int ret = recd_bpr_train(m, &p, &out->user_factors, &out->item_factors, &out->item_bias);
    if (ret != RECD_OK)
        return ret;
    out->n_factors = p.factors;
    /* recd folds unknown users into any factor model by least squares; these keep that solve well conditioned */
    out->alpha = 1.0f;
    out->reg = 1.0f;
    return RECD_OK;
}

static void mf_init(void *p)
{
    recd_mf_params_init(p);
}

static int mf_fit(const recd_csr_t *m, const void *params, const recd_fit_hooks_t *h, recd_fitted_t *out)
{
    recd_mf_params_t p = *(const recd_mf_params_t *)params;
    p.hooks = *h;
    int ret = recd_mf_train(m, &p, &out->user_factors, &out->item_factors, &out->user_bias, &out->item_bias, &out->global_bias);
    if (ret != RECD_OK)
        return ret;
    out->n_factors = p.factors;
    out->alpha = 1.0f;
    out->reg = 1.0f;
    return RECD_OK;
}

static void popularity_init(void *p)
{
}

static int popularity_fit(const recd_csr_t *m, const void *params, const recd_fit_hooks_t *h, recd_fitted_t *out)
{
    /* the popularity array is filled by recd_fit for every kind */
    return RECD_OK;
}

#define U32 RECD_PARAM_U32
#define FLT RECD_PARAM_FLOAT
#define F(type, field) offsetof(type, field)

static const recd_param_def_t als_params[] = {
    {"factors", U32, F(recd_als_params_t, factors), 1, 1024, 16, 256, 1, "32,64,128", "latent factors", NULL},
    {"iterations", U32, F(recd_als_params_t, iterations), 1, 1000, 10, 30, 0, "15", "alternating least-squares sweeps", NULL},
    {"alpha", FLT, F(recd_als_params_t, alpha), 0, 1e6, 0.25, 16, 1, "0.5,1,2,4", "confidence c = 1 + alpha * value", NULL},
    {"reg", FLT, F(recd_als_params_t, reg), 0, 1e9, 1, 200, 1, "10,25,50,100", "L2 regularisation", NULL},
    {"solver", U32, F(recd_als_params_t, solver), 0, 1, 0, 0, 0, NULL, "per-row solver", "cholesky,cg"},
    {"cg_steps", U32, F(recd_als_params_t, cg_steps), 1, 100, 0, 0, 0, NULL, "conjugate-gradient steps per row (cg)", NULL},
};
_Static_assert(sizeof(recd_als_solver_t) == sizeof(uint32_t), "the solver is stored as a u32 parameter");

static const recd_param_def_t bpr_params[] = {
    {"factors", U32, F(recd_bpr_params_t, factors), 1, 1024, 32, 256, 1, "64,128", "latent factors", NULL},
    {"epochs", U32, F(recd_bpr_params_t, epochs), 1, 10000, 50, 300, 0, "100,200", "SGD epochs of nnz samples", NULL},
    {"learning_rate", FLT, F(recd_bpr_params_t, learning_rate), 1e-6, 10, 0.005, 0.1, 1, "0.01,0.025,0.05", "SGD step size", NULL},
    {"reg", FLT, F(recd_bpr_params_t, reg), 0, 1000, 0.001, 0.1, 1, "0.005,0.02", "L2 on factors", NULL},
    {"bias_reg", FLT, F(recd_bpr_params_t, bias_reg), 0, 1000, 0.001, 0.1, 1, "0.01", "L2 on item biases", NULL},
};

static const recd_param_def_t mf_params[] = {
    {"factors", U32, F(recd_mf_params_t, factors), 1, 1024, 16, 200, 1, "50,100", "latent factors", NULL},
    {"epochs", U32, F(recd_mf_params_t, epochs), 1, 10000, 20, 150, 0, "50,100", "SGD epochs over the ratings", NULL},
    {"learning_rate", FLT, F(recd_mf_params_t, learning_rate), 1e-6, 10, 0.002, 0.02, 1, "0.005,0.01", "SGD step size", NULL},
    {"reg", FLT, F(recd_mf_params_t, reg), 0, 1000, 0.01, 0.3, 1, "0.05,0.1", "L2 on factors", NULL},
    {"bias_reg", FLT, F(recd_mf_params_t, bias_reg), 0, 1000, 0.005, 0.1, 1, "0.02", "L2 on user and item biases", NULL},
    {"init_std", FLT, F(recd_mf_params_t, init_std), 0, 10, 0.01, 0.1, 1, "0.02", "std of the initial factors", NULL},
};

#undef U32
#undef FLT
#undef F

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

const recd_algorithm_t recd_algorithms[] = {
    {"als", RECD_MODEL_ALS, 0, "iteration", sizeof(recd_als_params_t), als_init, als_params, N_OF(als_params), als_fit},
    {"bpr", RECD_MODEL_BPR, 0, "epoch", sizeof(recd_bpr_params_t), bpr_init, bpr_params, N_OF(bpr_params), bpr_fit},
    {"biased_mf", RECD_MODEL_BIASED_MF, 1, "epoch", sizeof(recd_mf_params_t), mf_init, mf_params, N_OF(mf_params), mf_fit},
    {"popularity", RECD_MODEL_POPULARITY, 0, "iteration", 0, popularity_init, NULL, 0, popularity_fit},
};
const size_t recd_n_algorithms = N_OF(recd_algorithms);

_Static_assert(sizeof(recd_als_params_t) <= RECD_PARAMS_MAX_SIZE && sizeof(recd_bpr_params_t) <= RECD_PARAMS_MAX_SIZE &&
                   sizeof(recd_mf_params_t) <= RECD_PARAMS_MAX_SIZE,
               "RECD_PARAMS_MAX_SIZE too small");

const recd_algorithm_t *recd_algorithm_find(const char *name)
{
    for (size_t i = 0; i != recd_n_algorithms; ++i)
        if (strcmp(recd_algorithms[i].name, name) == 0 ||
            (strcmp(name, "mf") == 0 && strcmp(recd_algorithms[i].name, "biased_mf") == 0))
            return &recd_algorithms[i];
    return NULL;
}

/* Compares a parameter name with '_' and '-' taken as the same. */
static int same_name(const char *a, const char *b, size_t blen)
{
    size_t i = 0;
    for (; i != blen && a[i] != '\0'; ++i) {
        char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
        if (x != y)
            return 0;
    }
    return i == blen && a[i] == '\0';
}

const recd_param_def_t *recd_algorithm_param(const recd_algorithm_t *a, const char *name)
{
    for (size_t i = 0; i != a->n_params; ++i)
        if (same_name(a->params[i].name, name, strlen(name)))
            return &a->params[i];
    return NULL;
}

static const recd_param_def_t *param_n(const recd_algorithm_t *a, const char *name, size_t len)
{
    for (size_t i = 0; i != a->n_params; ++i)
        if (same_name(a->params[i].name, name, len))
            return &a->params[i];
    return NULL;
}

double recd_param_get(const recd_param_def_t *d, const void *params)
{
    const char *p = (const char *)params + d->offset;
    if (d->type == RECD_PARAM_U32) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return v;
    }
    float f;
    memcpy(&f, p, sizeof(f));
    return f;
}

void recd_param_set(const recd_param_def_t *d, void *params, double v)
{
    char *p = (char *)params + d->offset;
    if (v < d->min)
        v = d->min;
    if (v > d->max)
        v = d->max;
    if (d->type == RECD_PARAM_U32) {
        uint32_t u = (uint32_t)llround(v);
        memcpy(p, &u, sizeof(u));
    } else {
        float f = (float)v;
        memcpy(p, &f, sizeof(f));
    }
}

/* The index of name among d's comma-separated choices, or -1. */
static int choice_index(const recd_param_def_t *d, const char *name, size_t len)
{
    const char *p = d->choices;
    for (int i = 0; p != NULL && *p != '\0'; ++i) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, len) == 0)
            return i;
        p = end != NULL ? end + 1 : p + n;
    }
    return -1;
}

/* Writes the name of choice index i of d into buf. */
static void choice_name(const recd_param_def_t *d, int i, char *buf, size_t len)
{
    const char *p = d->choices;
    for (int j = 0; p != NULL && *p != '\0'; ++j) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (j == i) {
            snprintf(buf, len, "%.*s", (int)n, p);
            return;
        }
        p = end != NULL ? end + 1 : p + n;
    }
    snprintf(buf, len, "%d", i);
}

int recd_param_parse(const recd_param_def_t *d, const char *s, double *out)
{
    char *end;
    if (d->choices != NULL) {
        int i = choice_index(d, s, strlen(s));
        if (i < 0)
            return -1;
        *out = i;
        return 0;
    }
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < d->min || v > d->max)
        return -1;
    if (d->type == RECD_PARAM_U32 && (v != floor(v) || strchr(s, '.') != NULL || strpbrk(s, "eE") != NULL))
        return -1;
    *out = v;
    return 0;
}

json_t *recd_params_json(const recd_algorithm_t *a, const void *params)
{
    json_t *o = json_object();
    for (size_t i = 0; i != a->n_params; ++i) {
        const recd_param_def_t *d = &a->params[i];
        double v = recd_param_get(d, params);
        if (d->choices != NULL) {
            char name[32];
            choice_name(d, (int)v, name, sizeof(name));
            json_object_set_new(o, d->name, json_string(name));
        } else {
            char shortest[32]; /* a float's shortest decimal (0.025, not 0.02500000037252903) */
            snprintf(shortest, sizeof(shortest), "%.7g", v);
            json_object_set_new(o, d->name,
                                d->type == RECD_PARAM_U32 ? json_integer((json_int_t)v) : json_real(strtod(shortest, NULL)));
        }
    }
    return o;
}

void recd_params_format(const recd_algorithm_t *a, const void *params, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i != a->n_params && off < len; ++i) {
        const recd_param_def_t *d = &a->params[i];
        char value[32];
        if (d->choices != NULL)
            choice_name(d, (int)recd_param_get(d, params), value, sizeof(value));
        else
            snprintf(value, sizeof(value), "%.4g", recd_param_get(d, params));
        int n = snprintf(buf + off, len - off, "%s%s=%s", i != 0 ? " " : "", d->name, value);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

int recd_fit(const recd_algorithm_t *a, const recd_csr_t *m, const void *params, const recd_fit_hooks_t *hooks, recd_fitted_t *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = a->kind;
    out->n_users = m->n_rows;
    out->n_items = m->n_cols;
    int ret = a->fit(m, params, hooks, out);
    if (ret != RECD_OK) {
        recd_fitted_dispose(out);
        return ret;
    }
    out->popularity = popularity_of(m);
    return RECD_OK;
}

void recd_fitted_dispose(recd_fitted_t *f)
{
    free(f->user_factors);
    free(f->item_factors);
    free(f->user_bias);
    free(f->item_bias);
    free(f->popularity);
    memset(f, 0, sizeof(*f));
}

void recd_fitted_scorer(const recd_fitted_t *f, recd_scorer_t *out)
{
    *out = (recd_scorer_t){.kind = f->kind,
                           .n_factors = f->n_factors,
                           .n_users = f->n_users,
                           .n_items = f->n_items,
                           .item_factors = f->item_factors,
                           .item_bias = f->item_bias,
                           .user_bias = f->user_bias,
                           .popularity = f->popularity,
                           .global_bias = f->global_bias};
}

void recd_fitted_score_vector(const recd_fitted_t *f, const float *user_vec, int64_t user, float *scores)
{
    recd_scorer_t s;
    recd_fitted_scorer(f, &s);
    recd_scorer_score(&s, user_vec, user, scores);
}

void recd_fitted_score(const recd_fitted_t *f, uint32_t user, float *scores)
{
    recd_fitted_score_vector(f, f->user_factors != NULL ? f->user_factors + (size_t)user * f->n_factors : NULL, user, scores);
}

void recd_fitted_spec(const recd_fitted_t *f, const char *const *user_ids, const char *const *item_ids,
                      const recd_csr_t *user_items, const char *metadata_json, recd_model_spec_t *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->kind = f->kind;
    spec->n_factors = f->item_factors != NULL ? f->n_factors : 0;
    spec->n_users = f->n_users;
    spec->n_items = f->n_items;
    spec->user_ids = user_ids;
    spec->item_ids = item_ids;
    spec->user_factors = spec->n_factors != 0 ? f->user_factors : NULL;
    spec->item_factors = spec->n_factors != 0 ? f->item_factors : NULL;
    spec->item_popularity = f->popularity;
    spec->user_bias = f->user_bias;
    spec->item_bias = f->item_bias;
    spec->global_bias = f->global_bias;
    spec->alpha = f->alpha;
    spec->reg = f->reg;
    spec->user_items = user_items;
    spec->metadata_json = metadata_json;
}

/* ---- entries and splits --------------------------------------------------------------------------------------------- */

static void entries_alloc(recd_entries_t *e, size_t n_rows, size_t n_cols, size_t n)
{
    e->n_rows = n_rows;
    e->n_cols = n_cols;
    e->n = n;
    e->row = recd_xcalloc(n, sizeof(*e->row));
    e->col = recd_xcalloc(n, sizeof(*e->col));
    e->val = recd_xcalloc(n, sizeof(*e->val));
    e->ts = recd_xcalloc(n, sizeof(*e->ts));
}

int recd_entries_from_interactions(const recd_interactions_t *x, recd_merge_t merge, recd_entries_t *out)
{
    recd_csr_t m = {0};
    size_t n_users = recd_idmap_size(x->users), n_items = recd_idmap_size(x->items);
    memset(out, 0, sizeof(*out));
    int ret = recd_csr_from_coo(&m, n_users, n_items, x->user, x->item, x->value, x->n, merge);
    if (ret != RECD_OK)
        return ret;
    entries_alloc(out, n_users, n_items, m.nnz);
    for (size_t u = 0; u != n_users; ++u)
        for (uint64_t j = m.row_ptr[u]; j != m.row_ptr[u + 1]; ++j) {
            out->row[j] = (uint32_t)u;
            out->col[j] = m.col[j];
            out->val[j] = m.val[j];
            out->ts[j] = INT64_MIN;
        }
    /* each entry's timestamp is the latest of the rows merged into it */
    for (size_t i = 0; i != x->n; ++i) {
        uint64_t lo = m.row_ptr[x->user[i]], hi = m.row_ptr[x->user[i] + 1];
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (m.col[mid] < x->item[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (x->ts[i] > out->ts[lo])
            out->ts[lo] = x->ts[i];
    }
    recd_csr_dispose(&m);
    return RECD_OK;
}

void recd_entries_dispose(recd_entries_t *e)
{
    free(e->row);
    free(e->col);
    free(e->val);
    free(e->ts);
    memset(e, 0, sizeof(*e));
}

int recd_entries_csr(const recd_entries_t *e, recd_csr_t *out)
{
    return recd_csr_from_coo(out, e->n_rows, e->n_cols, e->row, e->col, e->val, e->n, RECD_MERGE_SUM);
}

static const char *const protocol_names[] = {"stratified", "temporal", "leave-last-out", "kfold"};

const char *recd_protocol_name(recd_protocol_t p)
{
    return (unsigned)p < N_OF(protocol_names) ? protocol_names[p] : "unknown";
}

int recd_protocol_parse(const char *s, recd_protocol_t *out)
{
    for (size_t i = 0; i != N_OF(protocol_names); ++i)
        if (strcmp(s, protocol_names[i]) == 0) {
            *out = (recd_protocol_t)i;
            return 0;
        }
    if (strcmp(s, "leave_last_out") == 0 || strcmp(s, "loo") == 0) {
        *out = RECD_PROTOCOL_LEAVE_LAST_OUT;
        return 0;
    }
    return -1;
}

const char *recd_protocol_description(recd_protocol_t p)
{
    switch (p) {
    case RECD_PROTOCOL_STRATIFIED:
        return "per-user stratified random split: round(test_ratio * n) of each user's interactions to test (users with fewer "
               "than 2 stay in train)";
    case RECD_PROTOCOL_TEMPORAL:
        return "global temporal cut: the latest test_ratio of all interactions to test";
    case RECD_PROTOCOL_LEAVE_LAST_OUT:
        return "per-user leave-last-out: each user's latest interaction to test (users with 1 stay in train)";
    case RECD_PROTOCOL_KFOLD:
        return "K-fold cross-validation over all interactions (seeded shuffle, metrics averaged over the folds)";
    }
    return "unknown";
}

int recd_entries_split(const recd_entries_t *e, recd_protocol_t protocol, double test_ratio, uint64_t seed, uint32_t fold,
                       uint32_t folds, recd_entries_t *train, recd_entries_t *test)
{
    uint8_t *is_test = recd_xcalloc(e->n, 1);
    int ret;
    memset(train, 0, sizeof(*train));
    memset(test, 0, sizeof(*test));
    switch (protocol) {
    case RECD_PROTOCOL_STRATIFIED:
        ret = recd_split_stratified_mask(e->row, e->n, e->n_rows, test_ratio, seed, is_test);
        break;
    case RECD_PROTOCOL_TEMPORAL:
        ret = recd_split_temporal_mask(e->ts, e->n, test_ratio, is_test);
        break;
    case RECD_PROTOCOL_LEAVE_LAST_OUT:
        ret = recd_split_leave_last_out_mask(e->row, e->ts, e->n, e->n_rows, is_test);
        break;
    case RECD_PROTOCOL_KFOLD: {
        if (fold >= folds) {
            ret = RECD_EINVAL;
            break;
        }
        uint32_t *fold_of = recd_xcalloc(e->n, sizeof(*fold_of));
        if ((ret = recd_split_kfold_mask(e->n, folds, seed, fold_of)) == RECD_OK)
            for (size_t i = 0; i != e->n; ++i)
                is_test[i] = fold_of[i] == fold;
        free(fold_of);
    } break;
    default:
        ret = RECD_EINVAL;
    }
    if (ret != RECD_OK)
        goto Exit;
    size_t n_test = 0;
    for (size_t i = 0; i != e->n; ++i)
        n_test += is_test[i] != 0;
    entries_alloc(train, e->n_rows, e->n_cols, e->n - n_test);
    entries_alloc(test, e->n_rows, e->n_cols, n_test);
    size_t a = 0, b = 0;
    for (size_t i = 0; i != e->n; ++i) {
        recd_entries_t *d = is_test[i] ? test : train;
        size_t j = is_test[i] ? b++ : a++;
        d->row[j] = e->row[i];
        d->col[j] = e->col[i];
        d->val[j] = e->val[i];
        d->ts[j] = e->ts[i];
    }
Exit:
    free(is_test);
    return ret;
}

/* ---- evaluation ----------------------------------------------------------------------------------------------------- */

typedef struct st_rating_adapter_t {
    recd_eval_score_cb score;
    void *data;
    float *scores;
    int64_t user; /* whose scores are cached */
    float min_rating, max_rating;
} rating_adapter_t;

/* recd_eval_rating walks the test matrix row by row on one thread, so one user's score vector serves all its ratings. */
static float predict_from_scores(void *data, uint32_t user, uint32_t item)
{
    rating_adapter_t *r = data;
    if (r->user != (int64_t)user) {
        r->score(r->data, user, r->scores);
        r->user = user;
    }
    float v = r->scores[item];
    if (r->min_rating < r->max_rating)
        v = v < r->min_rating ? r->min_rating : v > r->max_rating ? r->max_rating : v;
    return v;
}

int recd_evaluate(const recd_csr_t *train, const recd_csr_t *test, const recd_eval_options_t *o, recd_eval_score_cb score,
                  void *data, recd_eval_result_t *out)
{
    int ret;
    memset(out, 0, sizeof(*out));
    if ((ret = recd_eval_ranking(train, test, o->k, score, data, o->threads, &out->ranking)) != RECD_OK)
        return ret;
    if (o->sampled_negatives != 0) {
        out->sampled_protocol.n_negatives = o->sampled_negatives;
        out->sampled_protocol.seed = o->seed;
        if ((ret = recd_eval_sampled(train, test, o->k, &out->sampled_protocol, score, data, o->threads, &out->sampled)) != RECD_OK)
            return ret;
        out->has_sampled = 1;
    }
    if (o->rating_metrics && test->nnz != 0) {
        rating_adapter_t r = {score, data, recd_xcalloc(test->n_cols, sizeof(float)), -1, o->min_rating, o->max_rating};
        ret = recd_eval_rating(test, predict_from_scores, &r, &out->rating);
        free(r.scores);
        if (ret != RECD_OK)
            return ret;
        out->has_rating = 1;
    }
    return RECD_OK;
}

static void score_fitted(void *data, uint32_t user, float *scores)
{
    recd_fitted_score(data, user, scores);
}

int recd_evaluate_fitted(const recd_fitted_t *f, const recd_csr_t *train, const recd_csr_t *test, const recd_eval_options_t *o,
                         recd_eval_result_t *out)
{
    return recd_evaluate(train, test, o, score_fitted, (void *)f, out);
}

static json_t *ranking_json(const recd_ranking_metrics_t *m)
{
    return json_pack("{s:i, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "k", (int)m->k, "users", (json_int_t)m->users,
                     "pairs", (json_int_t)m->pairs, "precision", m->precision, "recall", m->recall, "ndcg", m->ndcg, "map", m->map,
                     "hit_rate", m->hit_rate, "mrr", m->mrr, "auc", m->auc, "coverage", m->coverage, "auc_users",
                     (json_int_t)m->auc_users);
}

json_t *recd_eval_result_json(const recd_eval_result_t *r)
{
    json_t *o = ranking_json(&r->ranking);
    if (r->has_sampled) {
        json_t *s = ranking_json(&r->sampled);
        json_object_del(s, "coverage");
        json_object_set_new(s, "negatives", json_integer(r->sampled_protocol.n_negatives));
        json_object_set_new(s, "seed", json_integer((json_int_t)r->sampled_protocol.seed));
        json_object_set_new(o, "sampled", s);
    }
    if (r->has_rating)
        json_object_set_new(o, "rating",
                            json_pack("{s:I, s:f, s:f, s:f}", "n", (json_int_t)r->rating.n, "rmse", r->rating.rmse, "mae",
                                      r->rating.mae, "r2", r->rating.r2));
    return o;
}

enum { M_PRECISION = 0, M_RECALL, M_NDCG, M_MAP, M_HR, M_MRR, M_AUC, M_COVERAGE, M_RMSE, M_MAE, M_R2 };

int recd_eval_metric_parse(const char *s, recd_eval_metric_t *out)
{
    static const struct {
        const char *name;
        int which, lower;
    } names[] = {{"precision", M_PRECISION, 0},
                 {"p", M_PRECISION, 0},
                 {"recall", M_RECALL, 0},
                 {"r", M_RECALL, 0},
                 {"ndcg", M_NDCG, 0},
                 {"map", M_MAP, 0},
                 {"hr", M_HR, 0},
                 {"hit_rate", M_HR, 0},
                 {"mrr", M_MRR, 0},
                 {"auc", M_AUC, 0},
                 {"coverage", M_COVERAGE, 0},
                 {"rmse", M_RMSE, 1},
                 {"mae", M_MAE, 1},
                 {"r2", M_R2, 0}};
    const char *at = strchr(s, '@');
    size_t len = at != NULL ? (size_t)(at - s) : strlen(s);
    uint32_t k = 10;
    if (at != NULL) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(at + 1, &end, 10);
        if (errno != 0 || end == at + 1 || *end != '\0' || v < 1 || v > 1000)
            return -1;
        k = (uint32_t)v;
    }
    for (size_t i = 0; i != N_OF(names); ++i) {
        if (strlen(names[i].name) == len && strncasecmp(names[i].name, s, len) == 0) {
            int ranked = names[i].which <= M_MRR;
            if (at != NULL && !ranked)
                return -1;
            out->which = names[i].which;
            out->k = k;
            out->lower_is_better = names[i].lower;
            static const char *const canonical[] = {"precision", "recall",   "ndcg", "map", "hr", "mrr",
                                                    "auc",       "coverage", "rmse", "mae", "r2"};
            if (ranked)
                snprintf(out->name, sizeof(out->name), "%s@%u", canonical[out->which], k);
            else
                snprintf(out->name, sizeof(out->name), "%s", canonical[out->which]);
            return 0;
        }
    }
    return -1;
}

double recd_eval_metric_value(const recd_eval_metric_t *m, const recd_eval_result_t *r)
{
    const recd_ranking_metrics_t *x = &r->ranking;
    switch (m->which) {
    case M_PRECISION:
        return x->precision;
    case M_RECALL:
        return x->recall;
    case M_NDCG:
        return x->ndcg;
    case M_MAP:
        return x->map;
    case M_HR:
        return x->hit_rate;
    case M_MRR:
        return x->mrr;
    case M_AUC:
        return x->auc;
    case M_COVERAGE:
        return x->coverage;
    case M_RMSE:
        return r->has_rating ? r->rating.rmse : NAN;
    case M_MAE:
        return r->has_rating ? r->rating.mae : NAN;
    case M_R2:
        return r->has_rating ? r->rating.r2 : NAN;
    }
    return NAN;
}

/* ---- curves ------------------------------------------------------------------------------------------------------- */

void recd_curve_dispose(recd_curve_t *c)
{
    free(c->loss_iter);
    free(c->loss);
    free(c->metric_iter);
    free(c->metric);
    c->loss_iter = c->metric_iter = NULL;
    c->loss = c->metric = NULL;
    c->n_loss = c->n_metric = c->cap_loss = c->cap_metric = 0;
}

static void push(uint32_t **iters, double **vals, size_t *n, size_t *cap, uint32_t it, double v)
{
    if (*n == *cap) {
        *cap = *cap != 0 ? *cap * 2 : 32;
        *iters = recd_xrealloc(*iters, *cap * sizeof(**iters));
        *vals = recd_xrealloc(*vals, *cap * sizeof(**vals));
    }
    (*iters)[*n] = it;
    (*vals)[*n] = v;
    ++*n;
}

static int curve_on_progress(void *data, uint32_t iteration, double loss, double seconds)
{
    recd_curve_t *c = data;
    if (isfinite(loss))
        push(&c->loss_iter, &c->loss, &c->n_loss, &c->cap_loss, iteration, loss);
    return c->next_progress != NULL ? c->next_progress(c->next_progress_data, iteration, loss, seconds) : 0;
}

static void curve_on_snapshot(void *data, uint32_t iteration, const float *user_factors, const float *item_factors,
                              const float *item_bias)
{
    recd_curve_t *c = data;
    if (c->test == NULL || c->train == NULL || item_factors == NULL || user_factors == NULL)
        return;
    /* a borrowed view of the trainer's arrays: ranking needs x_u . y_i (+ b_i); mu + b_u do not change a user's order */
    recd_fitted_t view = {.kind = c->algorithm->kind,
                          .n_factors = c->n_factors,
                          .n_users = c->train->n_rows,
                          .n_items = c->train->n_cols,
                          .user_factors = (float *)user_factors,
                          .item_factors = (float *)item_factors,
                          .item_bias = (float *)item_bias};
    recd_eval_options_t o = c->eval;
    o.sampled_negatives = 0;
    o.rating_metrics = 0;
    recd_eval_result_t r;
    if (recd_evaluate_fitted(&view, c->train, c->test, &o, &r) == RECD_OK) {
        double v = recd_eval_metric_value(&c->selected, &r);
        if (isfinite(v))
            push(&c->metric_iter, &c->metric, &c->n_metric, &c->cap_metric, iteration, v);
    }
}

void recd_curve_attach(recd_curve_t *c, recd_fit_hooks_t *hooks)
{
    c->next_progress = hooks->on_progress;
    c->next_progress_data = hooks->progress_data;
    hooks->on_progress = curve_on_progress;
    hooks->progress_data = c;
    if (c->train != NULL && c->test != NULL && c->algorithm != NULL && c->algorithm->kind != RECD_MODEL_POPULARITY) {
        hooks->on_snapshot = curve_on_snapshot;
        hooks->snapshot_data = c;
    }
}

json_t *recd_curve_json(const recd_curve_t *c)
{
    json_t *loss = json_array(), *metric = json_array();
    for (size_t i = 0; i != c->n_loss; ++i)
        json_array_append_new(loss, json_pack("[i, f]", (int)c->loss_iter[i], c->loss[i]));
    for (size_t i = 0; i != c->n_metric; ++i)
        json_array_append_new(metric, json_pack("[i, f]", (int)c->metric_iter[i], c->metric[i]));
    return json_pack("{s:o, s:s, s:o}", "loss", loss, "metric", c->selected.name, "validation", metric);
}

/* ---- search spaces ------------------------------------------------------------------------------------------------ */

/* Visits each "key=v1,v2" of a grid string; returns -1 with a message for a malformed one. */
typedef int (*grid_visit_cb)(void *data, const char *key, size_t key_len, const char *values, size_t values_len);

static int grid_walk(const char *grid, grid_visit_cb visit, void *data, char *err, size_t errlen)
{
    const char *p = grid;
    while (*p != '\0') {
        const char *end = strchr(p, ';');
        if (end == NULL)
            end = p + strlen(p);
        while (p < end && *p == ' ')
            ++p;
        if (p != end) {
            const char *eq = memchr(p, '=', (size_t)(end - p));
            if (eq == NULL || eq == p || eq + 1 == end) {
                snprintf(err, errlen, "--grid: \"%.*s\" is not name=v1,v2,...", (int)(end - p), p);
                return -1;
            }
            if (visit(data, p, (size_t)(eq - p), eq + 1, (size_t)(end - eq - 1)) != 0) {
                snprintf(err, errlen, "--grid: bad entry \"%.*s\"", (int)(end - p), p);
                return -1;
            }
        }
        p = *end == ';' ? end + 1 : end;
    }
    return 0;
}

typedef struct st_grid_check_t {
    const recd_algorithm_t *const *algos;
    size_t n;
    char *err;
    size_t errlen;
} grid_check_t;

/* Splits "als.reg" into the algorithm it is limited to (*algo, *algo_len; 0 when unqualified) and the parameter name. */
static void split_key(const char **key, size_t *key_len, const char **algo, size_t *algo_len)
{
    const char *dot = memchr(*key, '.', *key_len);
    *algo = NULL;
    *algo_len = 0;
    if (dot != NULL) {
        *algo = *key;
        *algo_len = (size_t)(dot - *key);
        *key_len -= *algo_len + 1;
        *key = dot + 1;
    }
}

/* Whether a grid key applies to a: unqualified, or qualified with a's name. */
static int key_applies(const recd_algorithm_t *a, const char *algo, size_t algo_len)
{
    return algo == NULL || (strlen(a->name) == algo_len && strncmp(a->name, algo, algo_len) == 0);
}

static int check_visit(void *data, const char *key, size_t key_len, const char *values, size_t values_len)
{
    grid_check_t *g = data;
    const char *algo;
    size_t algo_len;
    split_key(&key, &key_len, &algo, &algo_len);
    for (size_t i = 0; i != g->n; ++i)
        if (key_applies(g->algos[i], algo, algo_len) && param_n(g->algos[i], key, key_len) != NULL)
            return 0;
    return -1;
}

int recd_grid_check(const recd_algorithm_t *const *algos, size_t n, const char *grid, char *err, size_t errlen)
{
    grid_check_t g = {algos, n, err, errlen};
    if (grid_walk(grid, check_visit, &g, err, errlen) != 0) {
        size_t l = strlen(err);
        snprintf(err + l, errlen - l, " (no chosen algorithm has that parameter, or a value is missing)");
        return -1;
    }
    return 0;
}

typedef struct st_grid_axis_t {
    const recd_param_def_t *def;
    double values[64];
    size_t n;
} grid_axis_t;

typedef struct st_grid_expand_t {
    const recd_algorithm_t *a;
    grid_axis_t axes[16];
    size_t n_axes;
} grid_expand_t;

static int parse_values(const recd_param_def_t *d, const char *values, size_t len, grid_axis_t *axis)
{
    char buf[1024];
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, values, len);
    buf[len] = '\0';
    axis->def = d;
    axis->n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            ++tok;
        double v;
        if (axis->n == N_OF(axis->values) || recd_param_parse(d, tok, &v) != 0)
            return -1;
        axis->values[axis->n++] = v;
    }
    return axis->n != 0 ? 0 : -1;
}

static int expand_visit(void *data, const char *key, size_t key_len, const char *values, size_t values_len)
{
    grid_expand_t *g = data;
    const char *algo;
    size_t algo_len;
    split_key(&key, &key_len, &algo, &algo_len);
    const recd_param_def_t *d = key_applies(g->a, algo, algo_len) ? param_n(g->a, key, key_len) : NULL;
    if (d == NULL)
        return 0; /* another algorithm's parameter */
    for (size_t i = 0; i != g->n_axes; ++i)
        if (g->axes[i].def == d)
            return -1; /* given twice */
    if (g->n_axes == N_OF(g->axes))
        return -1;
    return parse_values(d, values, values_len, &g->axes[g->n_axes++]);
}

long recd_grid_expand(const recd_algorithm_t *a, const void *base, const char *grid, const uint8_t *fixed, char **out, char *err,
                      size_t errlen)
{
    grid_expand_t g = {.a = a};
    char e2[256];
    *out = NULL;
    if (grid != NULL) {
        if (grid_walk(grid, expand_visit, &g, e2, sizeof(e2)) != 0) {
            snprintf(err, errlen, "%s for %s (values must be in range; integers for integer parameters)", e2, a->name);
            return -1;
        }
    } else {
        /* the default grid: every parameter not fixed by a flag */
        for (size_t i = 0; i != a->n_params; ++i)
            if ((fixed == NULL || !fixed[i]) && a->params[i].grid != NULL)
                if (parse_values(&a->params[i], a->params[i].grid, strlen(a->params[i].grid), &g.axes[g.n_axes]) == 0)
                    ++g.n_axes;
    }
    size_t total = 1;
    for (size_t i = 0; i != g.n_axes; ++i) {
        total *= g.axes[i].n;
        if (total > 100000) {
            snprintf(err, errlen, "--grid for %s has more than 100000 candidates", a->name);
            return -1;
        }
    }
    size_t size = a->params_size != 0 ? a->params_size : 1;
    char *all = recd_xcalloc(total, size);
    for (size_t c = 0; c != total; ++c) {
        char *p = all + c * size;
        memcpy(p, base, a->params_size);
        size_t rest = c;
        /* the last axis varies fastest */
        for (size_t i = g.n_axes; i-- != 0;) {
            recd_param_set(g.axes[i].def, p, g.axes[i].values[rest % g.axes[i].n]);
            rest /= g.axes[i].n;
        }
    }
    *out = all;
    return (long)total;
}

void recd_random_params(const recd_algorithm_t *a, const void *base, const uint8_t *fixed, uint64_t *rng, void *out)
{
    memcpy(out, base, a->params_size);
    for (size_t i = 0; i != a->n_params; ++i) {
        const recd_param_def_t *d = &a->params[i];
        double u = (double)(recd_splitmix64(rng) >> 11) * 0x1.0p-53, v;
        if ((fixed != NULL && fixed[i]) || !(d->lo < d->hi))
            continue;
        if (d->log_scale && d->lo > 0)
            v = exp(log(d->lo) + u * (log(d->hi) - log(d->lo)));
        else
            v = d->lo + u * (d->hi - d->lo);
        if (d->type == RECD_PARAM_U32) {
            v = floor(v + 0.5);
        } else if (v > 0) { /* three significant digits: readable tables, no loss that matters */
            double scale = pow(10, 2 - floor(log10(v)));
            v = round(v * scale) / scale;
        }
        recd_param_set(d, out, v);
    }
}
