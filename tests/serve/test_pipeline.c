/* test_pipeline.c: the serving pipeline without sockets — each kind of user, exclusions, fold-in, late answers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "base/error.h"
#include "serve/fold.h"
#include "serve/score_pool.h"
#include "serve/serve.h"

#define N_USERS 3
#define N_ITEMS 10
#define N_FACTORS 3
#define MAX_K 20

typedef struct st_fixture_t {
    char dir[64];
    int seq;
    recd_metrics_t *metrics;
    recd_logger_t log;
    recd_feature_store_t *store;
    recd_serve_t *serve;
    recd_serve_worker_t *sw;
    recd_model_t *model; /* the test's own reference */
} fixture_t;

/* Deterministic uniform floats in [-1, 1). */
static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/*
 * An ALS model with users u0..u<n_users-1> and items <prefix>0..<n_items-1> (n_users >= 2, n_items >= 10): u0 trained on
 * items 1 (1), 4 (3), 6 (2), u1 on 2 and 3; popularity repeats 1, 9, 4, 6, 2, 4, 0, 4, 8, 3 (ties among 2, 5 and 7).
 */
static recd_model_t *make_model_sized(fixture_t *fx, const char *name, const char *prefix, uint64_t version, uint64_t seed,
                                      size_t n_users, size_t n_items, uint32_t n_factors)
{
    static const uint32_t rows[] = {0, 0, 0, 1, 1};
    static const uint32_t cols[] = {1, 4, 6, 2, 3};
    static const float vals[] = {1, 3, 2, 1, 1};
    static const float pop10[10] = {1, 9, 4, 6, 2, 4, 0, 4, 8, 3};
    char path[128], err[256] = "";
    char **uids = calloc(n_users, sizeof(*uids)), **iids = calloc(n_items, sizeof(*iids));
    float *uf = calloc(n_users * n_factors, sizeof(float)), *itf = calloc(n_items * n_factors, sizeof(float));
    float *pop = calloc(n_items, sizeof(float));
    recd_csr_t ui;

    for (size_t i = 0; i < n_users; ++i)
        assert_true(asprintf(&uids[i], "u%zu", i) > 0);
    for (size_t i = 0; i < n_items; ++i) {
        assert_true(asprintf(&iids[i], "%s%zu", prefix, i) > 0);
        pop[i] = pop10[i % 10];
    }
    for (size_t i = 0; i < n_users * n_factors; ++i)
        uf[i] = rnd(&seed);
    for (size_t i = 0; i < n_items * n_factors; ++i)
        itf[i] = rnd(&seed);
    assert_int_equal(recd_csr_from_coo(&ui, n_users, n_items, rows, cols, vals, 5, RECD_MERGE_SUM), 0);
    recd_model_spec_t spec = {.kind = RECD_MODEL_ALS,
                              .n_factors = n_factors,
                              .n_users = n_users,
                              .n_items = n_items,
                              .user_ids = (const char *const *)uids,
                              .item_ids = (const char *const *)iids,
                              .user_factors = uf,
                              .item_factors = itf,
                              .item_popularity = pop,
                              .alpha = 2.0f,
                              .reg = 0.1f,
                              .user_items = &ui,
                              .metadata_json = "{}"};
    snprintf(path, sizeof(path), "%s/m%d.recd", fx->dir, fx->seq++);
    if (recd_model_write(&spec, path, err, sizeof(err)) != 0)
        fail_msg("write: %s", err);
    recd_model_t *m = recd_model_open(path, err, sizeof(err));
    if (m == NULL)
        fail_msg("open: %s", err);
    unlink(path); /* the mapping stays valid */
    recd_model_set_identity(m, name, version);
    for (size_t i = 0; i < n_users; ++i)
        free(uids[i]);
    for (size_t i = 0; i < n_items; ++i)
        free(iids[i]);
    free(uids);
    free(iids);
    free(uf);
    free(itf);
    free(pop);
    recd_csr_dispose(&ui);
    return m;
}

/* The small model most tests use: 3 users, 10 items, 3 factors. */
static recd_model_t *make_model(fixture_t *fx, const char *name, const char *prefix, uint64_t version, uint64_t seed)
{
    return make_model_sized(fx, name, prefix, version, seed, N_USERS, N_ITEMS, N_FACTORS);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    strcpy(fx->dir, "/tmp/recd-test-serve-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    fx->metrics = recd_metrics_create(1);
    fx->log = (recd_logger_t){RECD_LOG_ERROR, 2};
    fx->store = recd_memory_store_create(16, 1000, fx->metrics);
    fx->serve = recd_serve_create(&(recd_serve_config_t){.max_k = MAX_K}, fx->store, fx->metrics, &fx->log);
    fx->sw = recd_serve_worker_create(fx->serve, 0, 42);
    fx->model = make_model(fx, "demo", "i", 1, 7);
    recd_model_retain(fx->model);
    recd_serve_worker_set_model(fx->sw, fx->model); /* takes over the extra reference */
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    recd_serve_worker_free(fx->sw);
    recd_model_release(fx->model);
    recd_serve_free(fx->serve);
    recd_feature_store_free(fx->store);
    recd_metrics_free(fx->metrics);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static recd_serve_id_t id(const char *s)
{
    return (recd_serve_id_t){s, strlen(s)};
}

typedef struct st_done_t {
    int calls;
} done_t;

static void on_done(recd_serve_ctx_t *ctx, void *data)
{
    ((done_t *)data)->calls++;
}

/* Runs a request that completes at once and returns its context (the caller releases it). */
static recd_serve_ctx_t *run(fixture_t *fx, const recd_serve_recs_request_t *rq)
{
    done_t done = {0};
    recd_serve_ctx_t *ctx = recd_serve_ctx_create(fx->sw);
    assert_int_equal(recd_serve_recommend(ctx, rq, on_done, &done), 0);
    assert_int_equal(done.calls, 1);
    assert_int_equal(recd_serve_ctx_result(ctx)->err, 0);
    assert_true(recd_serve_ctx_timing(ctx)->done_ns >= recd_serve_ctx_timing(ctx)->started_ns);
    return ctx;
}

/* The reference answer: score with vec (or popularity when NULL), drop the excluded indexes, exact top-k. */
static size_t reference(const recd_model_t *m, const float *vec, int64_t user, const uint32_t *excluded, size_t n_excluded,
                        size_t k, recd_scored_t *out)
{
    float scores[N_ITEMS];
    if (vec != NULL)
        recd_model_score(m, vec, user, scores);
    else
        memcpy(scores, recd_model_popularity(m), sizeof(scores));
    for (size_t i = 0; i < n_excluded; ++i)
        scores[excluded[i]] = -INFINITY;
    return recd_topk(scores, N_ITEMS, k, out);
}

static void assert_items(const recd_serve_result_t *res, const recd_scored_t *want, size_t n)
{
    assert_int_equal(res->n_items, n);
    for (size_t i = 0; i < n; ++i) {
        assert_int_equal(res->items[i].index, want[i].index);
        assert_true(res->items[i].score == want[i].score);
    }
}

static void test_pipeline_known_user(void **state)
{
    fixture_t *fx = *state;
    recd_serve_recs_request_t rq = {.user = id("u0"), .k = 5};
    recd_serve_ctx_t *ctx = run(fx, &rq);
    const recd_serve_result_t *res = recd_serve_ctx_result(ctx);
    static const uint32_t trained[] = {1, 4, 6};
    recd_scored_t want[5];
    size_t n = reference(fx->model, recd_model_user_vector(fx->model, 0), 0, trained, 3, 5, want);

    assert_string_equal(res->fallback, "none");
    assert_int_equal(res->n_ignored, 0);
    assert_items(res, want, n);
    for (size_t i = 0; i < res->n_items; ++i) {
        char want_id[8];
        snprintf(want_id, sizeof(want_id), "i%u", res->items[i].index);
        assert_string_equal(res->items[i].id, want_id);
        assert_int_equal(res->items[i].len, strlen(want_id));
    }
    recd_serve_ctx_release(ctx);
}

static void test_pipeline_popular_order_with_exclusions(void **state)
{
    fixture_t *fx = *state;
    recd_serve_id_t exclude[] = {id("i8"), id("nope"), id("i5")};
    recd_serve_recs_request_t rq = {id("stranger"), 6, NULL, 0, exclude, 3, RECD_SERVE_SEARCH_DEFAULT};
    recd_serve_ctx_t *ctx = run(fx, &rq);
    const recd_serve_result_t *res = recd_serve_ctx_result(ctx);
    const uint32_t *order = recd_model_popular_order(fx->model);

    assert_string_equal(res->fallback, "popular");
    /* the precomputed order, skipping the exclusions: 1 (9), 3 (6), then the tie 2, 7 (4.0) by index, then 9 (3) */
    size_t j = 0;
    for (size_t i = 0; i < res->n_items; ++i, ++j) {
        while (order[j] == 8 || order[j] == 5)
            ++j;
        assert_int_equal(res->items[i].index, order[j]);
        assert_true(res->items[i].score == recd_model_popularity(fx->model)[order[j]]);
    }
    static const uint32_t want_order[] = {1, 3, 2, 7, 9, 4};
    assert_int_equal(res->n_items, 6);
    for (size_t i = 0; i < 6; ++i)
        assert_int_equal(res->items[i].index, want_order[i]);
    /* and it is what top-k over the popularity gives */
    static const uint32_t excluded[] = {8, 5};
    recd_scored_t want[6];
    assert_items(res, want, reference(fx->model, NULL, -1, excluded, 2, 6, want));
    recd_serve_ctx_release(ctx);

    /* the exclusion bits are cleared for the next request */
    rq.n_exclude = 0;
    ctx = run(fx, &rq);
    assert_int_equal(recd_serve_ctx_result(ctx)->items[0].index, 1);
    assert_int_equal(recd_serve_ctx_result(ctx)->items[1].index, 8);
    recd_serve_ctx_release(ctx);
}

static void test_pipeline_fold_in_sums_repeated_recent_items(void **state)
{
    fixture_t *fx = *state;
    recd_serve_id_t recent[] = {id("i3"), id("ghost"), id("i3"), id("i9"), id("ghost")};
    recd_serve_id_t exclude[] = {id("i0")};
    recd_serve_recs_request_t rq = {id("stranger"), 10, recent, 5, exclude, 1, RECD_SERVE_SEARCH_DEFAULT};
    recd_serve_ctx_t *ctx = run(fx, &rq);
    const recd_serve_result_t *res = recd_serve_ctx_result(ctx);

    assert_string_equal(res->fallback, "fold_in");
    /* unknown recent items are reported in request order, repeats included */
    assert_int_equal(res->n_ignored, 2);
    assert_int_equal(res->ignored[0].len, 5);
    assert_memory_equal(res->ignored[0].base, "ghost", 5);
    assert_memory_equal(res->ignored[1].base, "ghost", 5);
    /* i3 was given twice: it counts once with value 2 */
    static const uint32_t items[] = {3, 9};
    static const float values[] = {2, 1};
    float vec[N_FACTORS];
    assert_int_equal(recd_model_fold_in(fx->model, items, values, 2, vec), 0);
    static const uint32_t excluded[] = {3, 9, 0};
    recd_scored_t want[N_ITEMS];
    assert_items(res, want, reference(fx->model, vec, -1, excluded, 3, 10, want));
    recd_serve_ctx_release(ctx);
}

static void test_pipeline_fold_user_sums_history_and_extras(void **state)
{
    fixture_t *fx = *state;
    float got[N_FACTORS], want[N_FACTORS], once[N_FACTORS];
    recd_serve_ctx_t *ctx = recd_serve_ctx_create(fx->sw);
    /* u0 trained on 1 (1), 4 (3), 6 (2); extras 4 (+1.5) twice and 7 (1) */
    static const uint32_t extra[] = {4, 7, 4};
    static const float weights[] = {1.5f, 1.0f, 1.5f};
    assert_int_equal(recd_serve_fold_user(fx->model, 0, extra, weights, 3, recd_serve_ctx_alloc, ctx, got), 0);
    static const uint32_t items[] = {1, 4, 6, 7};
    static const float summed[] = {1, 6, 2, 1};
    assert_int_equal(recd_model_fold_in(fx->model, items, summed, 4, want), 0);
    assert_memory_equal(got, want, sizeof(want));
    /* assigning instead of summing would have given 4 the last value only */
    static const float assigned[] = {1, 1.5f, 2, 1};
    assert_int_equal(recd_model_fold_in(fx->model, items, assigned, 4, once), 0);
    assert_memory_not_equal(got, once, sizeof(once));
    /* nothing at all to fold */
    assert_int_equal(recd_serve_fold_user(fx->model, 2, NULL, NULL, 0, recd_serve_ctx_alloc, ctx, got), RECD_ENOTFOUND);
    recd_serve_ctx_release(ctx);
}

static void test_pipeline_remembered_user_refolded_once_per_version(void **state)
{
    fixture_t *fx = *state;
    recd_serve_event_t events[] = {{.user = id("u1"), .item = id("i5"), .weight = 1.0f},
                                   {.user = id("newbie"), .item = id("i8"), .weight = 2.0f},
                                   {.user = id("u1"), .item = id("i5"), .weight = 3.0f},
                                   {.user = id("u1"), .item = id("zzz"), .weight = 5.0f}};
    recd_serve_ctx_t *ctx = recd_serve_ctx_create(fx->sw);
    recd_serve_remember(ctx, events, 4);
    recd_serve_ctx_release(ctx);
    assert_int_equal(recd_feature_store_count(fx->store), 2);

    /* u1: history 2 (1), 3 (1) plus remembered 5 (1 + 3); the unknown item is remembered but not folded */
    recd_serve_id_t recent[] = {id("i0")};
    recd_serve_recs_request_t rq = {id("u1"), 10, recent, 1, NULL, 0, RECD_SERVE_SEARCH_DEFAULT};
    ctx = run(fx, &rq);
    const recd_serve_result_t *res = recd_serve_ctx_result(ctx);
    static const uint32_t items[] = {2, 3, 5};
    static const float values[] = {1, 1, 4};
    float vec[N_FACTORS];
    assert_int_equal(recd_model_fold_in(fx->model, items, values, 3, vec), 0);
    static const uint32_t excluded[] = {2, 3, 5, 0};
    recd_scored_t want[N_ITEMS];
    size_t n = reference(fx->model, vec, 1, excluded, 4, 10, want);
    assert_string_equal(res->fallback, "none");
    assert_items(res, want, n);
    recd_serve_ctx_release(ctx);

    /* the folded vector was stored for this version and state: the next request reads it back */
    recd_feature_user_t user;
    ctx = recd_serve_ctx_create(fx->sw);
    recd_feature_query_t q = {"u1", 2, 1, N_FACTORS, recd_serve_ctx_alloc, ctx, NULL};
    assert_int_equal(recd_feature_store_get(fx->store, &q, &user, NULL, NULL), 0);
    assert_non_null(user.vec);
    assert_memory_equal(user.vec, vec, sizeof(vec));
    recd_serve_ctx_release(ctx);
    ctx = run(fx, &rq);
    assert_items(recd_serve_ctx_result(ctx), want, n);
    recd_serve_ctx_release(ctx);

    /* a user recd only knows from events is folded in from them */
    rq.user = id("newbie");
    ctx = run(fx, &rq);
    assert_string_equal(recd_serve_ctx_result(ctx)->fallback, "fold_in");
    recd_serve_ctx_release(ctx);
}

/* A feature store that always answers later: the test completes the lookup by hand. */
typedef struct st_late_store_t {
    recd_feature_store_t super;
    recd_feature_get_cb cb;
    void *data;
    int gets;
} late_store_t;

static int late_get(recd_feature_store_t *s, const recd_feature_query_t *q, recd_feature_user_t *out, recd_feature_get_cb cb,
                    void *data)
{
    late_store_t *ls = (late_store_t *)s;
    memset(out, 0, sizeof(*out));
    ls->cb = cb;
    ls->data = data;
    ls->gets++;
    return RECD_FEATURE_PENDING;
}

static void late_append(recd_feature_store_t *s, const char *user, size_t len, const recd_feature_item_t *items, size_t n)
{
}

static void late_put_vector(recd_feature_store_t *s, const char *user, size_t len, uint64_t seq, const char *model,
                            uint64_t version, const float *vec, uint32_t nf)
{
}

static size_t late_count(recd_feature_store_t *s)
{
    return 0;
}

static void late_free(recd_feature_store_t *s)
{
}

static const recd_feature_store_ops_t late_ops = {late_get, late_append, late_put_vector, late_count, late_free};

static void test_pipeline_late_answer_keeps_its_version(void **state)
{
    fixture_t *fx = *state;
    late_store_t store = {.super = {&late_ops}};
    recd_serve_t *serve = recd_serve_create(&(recd_serve_config_t){.max_k = MAX_K}, &store.super, NULL, &fx->log);
    recd_serve_worker_t *sw = recd_serve_worker_create(serve, 0, 1);
    recd_model_t *v1 = make_model(fx, "demo", "old", 1, 11), *v2 = make_model(fx, "demo", "new", 2, 12);
    done_t done = {0};

    recd_serve_worker_set_model(sw, v1); /* the worker's reference is the only one the test does not hold */
    recd_serve_ctx_t *ctx = recd_serve_ctx_create(sw);
    recd_serve_recs_request_t rq = {.user = id("u0"), .k = 3};
    assert_int_equal(recd_serve_recommend(ctx, &rq, on_done, &done), RECD_SERVE_PENDING);
    assert_int_equal(done.calls, 0);
    /* the worker moves on: v1's last reference outside the context is dropped */
    recd_serve_worker_set_model(sw, v2);
    /* the caller keeps only the context; the store answers */
    store.cb(store.data, RECD_ENOTFOUND);
    assert_int_equal(done.calls, 1);
    const recd_serve_result_t *res = recd_serve_ctx_result(ctx);
    assert_ptr_equal(recd_serve_ctx_model(ctx), v1);
    assert_int_equal(recd_model_version(recd_serve_ctx_model(ctx)), 1);
    assert_string_equal(res->fallback, "none");
    assert_int_equal(res->n_items, 3);
    for (size_t i = 0; i < res->n_items; ++i)
        assert_memory_equal(res->items[i].id, "old", 3); /* v1's mapping is still there to read */
    recd_serve_ctx_release(ctx);

    /* a cancelled context never calls back, and the late answer frees it */
    ctx = recd_serve_ctx_create(sw);
    assert_int_equal(recd_serve_recommend(ctx, &rq, on_done, &done), RECD_SERVE_PENDING);
    recd_serve_ctx_cancel(ctx);
    recd_serve_ctx_release(ctx);
    recd_serve_worker_set_model(sw, NULL);
    store.cb(store.data, RECD_ENOTFOUND);
    assert_int_equal(done.calls, 1);

    /* without a version, the answer says so */
    ctx = recd_serve_ctx_create(sw);
    assert_int_equal(recd_serve_recommend(ctx, &rq, on_done, &done), 0);
    assert_int_equal(recd_serve_ctx_result(ctx)->err, RECD_ENOTFOUND);
    recd_serve_ctx_release(ctx);
    assert_int_equal(store.gets, 2);
    recd_serve_worker_free(sw);
    recd_serve_free(serve);
}

static void test_pipeline_similar_and_request_ids(void **state)
{
    fixture_t *fx = *state;
    recd_serve_ctx_t *ctx = recd_serve_ctx_create(fx->sw);
    recd_scored_t want[4];
    float scratch[N_ITEMS];
    done_t done = {0};
    assert_int_equal(recd_serve_similar(ctx, "i3", 2, 4, on_done, &done), 0);
    assert_int_equal(done.calls, 1);
    assert_int_equal(recd_serve_ctx_result(ctx)->err, 0);
    size_t n = recd_model_similar(fx->model, 3, 4, scratch, want);
    assert_items(recd_serve_ctx_result(ctx), want, n);
    recd_serve_ctx_release(ctx);
    ctx = recd_serve_ctx_create(fx->sw);
    assert_int_equal(recd_serve_similar(ctx, "i33", 3, 4, on_done, &done), 0);
    assert_int_equal(done.calls, 2);
    assert_int_equal(recd_serve_ctx_result(ctx)->err, RECD_ENOTFOUND);
    recd_serve_ctx_release(ctx);

    char a[17], b[17];
    recd_serve_worker_request_id(fx->sw, a);
    recd_serve_worker_request_id(fx->sw, b);
    assert_int_equal(strlen(a), 16);
    assert_string_not_equal(a, b);
}

/* ---- the scoring pool ------------------------------------------------------------------------------------------------ */

#define POOL_USERS 40
#define POOL_ITEMS 700
#define POOL_FACTORS 24
#define WAKE_TIMEOUT_S 30 /* a hang guard, not a measurement */

/* The test thread plays a worker's event loop: the pool's wake-ups are counted, and the test drains after each. */
typedef struct st_test_loop_t {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned wakes;
} test_loop_t;

static void on_test_wake(void *data)
{
    test_loop_t *l = data;
    pthread_mutex_lock(&l->lock);
    ++l->wakes;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

/* Drains sw after every wake until none of its scans is pending. */
static void run_until_idle(test_loop_t *l, recd_serve_worker_t *sw)
{
    unsigned seen = 0;
    while (recd_serve_worker_pending(sw) > 0) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += WAKE_TIMEOUT_S;
        pthread_mutex_lock(&l->lock);
        while (l->wakes == seen)
            if (pthread_cond_timedwait(&l->cond, &l->lock, &deadline) != 0)
                fail_msg("no wake-up from the scoring pool");
        seen = l->wakes;
        pthread_mutex_unlock(&l->lock);
        recd_serve_worker_drain(sw);
    }
}

/* A serving state with a pool of threads scoring threads (batches up to 32, no window), its own metrics registry. */
typedef struct st_pool_fixture_t {
    recd_metrics_t *metrics;
    recd_serve_t *serve;
    recd_serve_worker_t *alone;  /* not bound to a loop: scans at once, a batch of one */
    recd_serve_worker_t *looped; /* bound to loop: its scans go to the pool */
    test_loop_t loop;
} pool_fixture_t;

static void pool_fixture_init(pool_fixture_t *pf, fixture_t *fx, uint32_t threads, uint32_t queue_max)
{
    pf->metrics = recd_metrics_create(1);
    pf->serve = recd_serve_create(
        &(recd_serve_config_t){.max_k = MAX_K, .score_threads = threads, .score_batch_max = 32, .score_queue_max = queue_max},
        fx->store, pf->metrics, &fx->log);
    assert_non_null(pf->serve);
    assert_non_null(recd_serve_pool(pf->serve));
    pf->alone = recd_serve_worker_create(pf->serve, 0, 3);
    pf->looped = recd_serve_worker_create(pf->serve, 0, 4);
    pthread_mutex_init(&pf->loop.lock, NULL);
    pthread_cond_init(&pf->loop.cond, NULL);
    recd_serve_worker_use_loop(pf->looped, on_test_wake, &pf->loop);
}

static void pool_fixture_dispose(pool_fixture_t *pf)
{
    recd_serve_worker_free(pf->alone);
    recd_serve_worker_free(pf->looped);
    recd_serve_free(pf->serve);
    recd_metrics_free(pf->metrics);
    pthread_cond_destroy(&pf->loop.cond);
    pthread_mutex_destroy(&pf->loop.lock);
}

/* The value of the series line that starts with name (e.g. "recd_score_batch_size_sum") in pf's rendered metrics. */
static double rendered(pool_fixture_t *pf, const char *name)
{
    size_t len;
    char *text = recd_metrics_render(pf->metrics, &len), *line = text;
    double v = NAN;
    while (line != NULL && *line != '\0') {
        if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ' ') {
            v = strtod(line + strlen(name) + 1, NULL);
            break;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    free(text);
    return v;
}

/* Answers equal exactly: same items in the same order with bit-identical scores, the same fallback. */
static void assert_same_answer(const recd_serve_result_t *got, const recd_serve_result_t *want)
{
    assert_int_equal(got->err, want->err);
    assert_string_equal(got->fallback, want->fallback);
    assert_string_equal(got->search, want->search);
    assert_int_equal(got->n_items, want->n_items);
    for (size_t i = 0; i < got->n_items; ++i) {
        assert_int_equal(got->items[i].index, want->items[i].index);
        assert_memory_equal(&got->items[i].score, &want->items[i].score, sizeof(float));
        assert_string_equal(got->items[i].id, want->items[i].id);
    }
}

#define MAX_POOL_REQUESTS 16

/* Requests of every kind that scans, and the ids they point to. */
typedef struct st_pool_requests_t {
    recd_serve_recs_request_t rq[MAX_POOL_REQUESTS];
    char users[MAX_POOL_REQUESTS][16];
    char items[7][16];
    recd_serve_id_t recent[4], exclude[3];
    size_t n;
} pool_requests_t;

/* Known users with trained items, exclusions and recent items; folded-in strangers; items named <prefix><index>. */
static void pool_requests(pool_requests_t *r, const char *prefix)
{
    static const char *const suffixes[] = {"5", "77", "1", "300", "699"};
    static const uint32_t ks[] = {1, 5, 10, 20, 7, 3};
    for (size_t i = 0; i < 5; ++i)
        snprintf(r->items[i], sizeof(r->items[i]), "%s%s", prefix, suffixes[i]);
    r->recent[0] = r->recent[2] = id(r->items[0]);
    r->recent[1] = id(r->items[1]);
    r->recent[3] = id("nope");
    for (size_t i = 0; i < 3; ++i)
        r->exclude[i] = id(r->items[2 + i]);
    r->n = 0;
    for (size_t u = 0; u < 8; ++u, ++r->n) {
        snprintf(r->users[r->n], 16, "u%zu", u * 5);
        r->rq[r->n] = (recd_serve_recs_request_t){
            id(r->users[r->n]), ks[r->n % 6], r->recent, u % 2 ? 4 : 0, r->exclude, u % 3 ? 3 : 0, RECD_SERVE_SEARCH_DEFAULT};
    }
    for (size_t u = 0; u < 3; ++u, ++r->n) {
        snprintf(r->users[r->n], 16, "stranger%zu", u);
        r->rq[r->n] = (recd_serve_recs_request_t){id(r->users[r->n]),
                                                  ks[r->n % 6],
                                                  r->recent,
                                                  2 + u,
                                                  r->exclude,
                                                  u,
                                                  u == 1 ? RECD_SERVE_SEARCH_APPROXIMATE : RECD_SERVE_SEARCH_EXACT};
    }
}

static void test_pipeline_pool_batched_equals_alone(void **state)
{
    fixture_t *fx = *state;
    pool_fixture_t pf;
    pool_requests_t r;
    recd_serve_recs_request_t *rq = r.rq;
    recd_serve_ctx_t *batched[MAX_POOL_REQUESTS], *similar = NULL;
    done_t done = {0};

    pool_fixture_init(&pf, fx, 1, 0);
    recd_model_t *m = make_model_sized(fx, "demo", "i", 1, 99, POOL_USERS, POOL_ITEMS, POOL_FACTORS);
    recd_model_retain(m); /* one reference for each worker, and the test's own */
    recd_model_retain(m);
    recd_serve_worker_set_model(pf.alone, m);
    recd_serve_worker_set_model(pf.looped, m);
    pool_requests(&r, "i");
    size_t n = r.n;

    /* the pool holds until every request is queued, so they are scanned together; similar items run alone among them */
    recd_score_pool_hold(recd_serve_pool(pf.serve), n + 1);
    for (size_t i = 0; i < n; ++i) {
        batched[i] = recd_serve_ctx_create(pf.looped);
        assert_int_equal(recd_serve_recommend(batched[i], &rq[i], on_done, &done), RECD_SERVE_PENDING);
        if (i == n / 2) {
            similar = recd_serve_ctx_create(pf.looped);
            assert_int_equal(recd_serve_similar(similar, "i42", 3, 12, on_done, &done), RECD_SERVE_PENDING);
        }
    }
    assert_int_equal(done.calls, 0); /* nothing is answered on the submitting thread */
    run_until_idle(&pf.loop, pf.looped);
    assert_int_equal(done.calls, n + 1);
    recd_serve_ctx_t *similar_alone = recd_serve_ctx_create(pf.alone);
    assert_int_equal(recd_serve_similar(similar_alone, "i42", 3, 12, on_done, &done), 0);
    assert_int_equal(recd_serve_ctx_result(similar)->n_items, 12);
    for (size_t i = 0; i < 12; ++i) {
        assert_int_equal(recd_serve_ctx_result(similar)->items[i].index, recd_serve_ctx_result(similar_alone)->items[i].index);
        assert_memory_equal(&recd_serve_ctx_result(similar)->items[i].score, &recd_serve_ctx_result(similar_alone)->items[i].score,
                            sizeof(float));
    }
    recd_serve_ctx_release(similar);
    recd_serve_ctx_release(similar_alone);
    assert_true(rendered(&pf, "recd_score_batch_size_count") == 1.0);                     /* one scan ... */
    assert_true(rendered(&pf, "recd_score_batch_size_sum") == (double)n);                 /* ... of every request */
    assert_true(rendered(&pf, "recd_score_queue_wait_seconds_count") == (double)(n + 1)); /* similar items waited too */

    for (size_t i = 0; i < n; ++i) {
        recd_serve_ctx_t *alone = recd_serve_ctx_create(pf.alone);
        assert_int_equal(recd_serve_recommend(alone, &rq[i], on_done, &done), 0); /* scanned at once, a batch of one */
        assert_int_equal(recd_serve_ctx_result(batched[i])->err, 0);
        assert_true(recd_serve_ctx_result(batched[i])->n_items > 0);
        assert_same_answer(recd_serve_ctx_result(batched[i]), recd_serve_ctx_result(alone));
        assert_string_equal(recd_serve_ctx_result(batched[i])->search, "exact"); /* no version has an index */
        recd_serve_ctx_release(alone);
        recd_serve_ctx_release(batched[i]);
    }
    assert_true(rendered(&pf, "recd_score_batch_size_count") == 1.0); /* the worker without a loop never used the pool */
    pool_fixture_dispose(&pf);
    recd_model_release(m);
}

static void test_pipeline_pool_groups_by_version_and_keeps_it(void **state)
{
    fixture_t *fx = *state;
    pool_fixture_t pf;
    pool_requests_t r[2]; /* item ids of v1, of v2 */
    recd_serve_ctx_t *batched[MAX_POOL_REQUESTS];
    done_t done = {0};

    pool_fixture_init(&pf, fx, 2, 0);
    recd_model_t *v1 = make_model_sized(fx, "demo", "old", 1, 5, POOL_USERS, POOL_ITEMS, POOL_FACTORS);
    recd_model_t *v2 = make_model_sized(fx, "demo", "new", 2, 6, POOL_USERS, POOL_ITEMS, POOL_FACTORS);
    pool_requests(&r[0], "old");
    pool_requests(&r[1], "new");
    size_t n = r[0].n;
#define RQ(i) (&r[(i) < n / 2 ? 0 : 1].rq[i])

    recd_score_pool_hold(recd_serve_pool(pf.serve), n);
    recd_serve_worker_set_model(pf.looped, v1); /* the test keeps no reference of its own on v1 */
    for (size_t i = 0; i < n; ++i) {
        if (i == n / 2) {
            recd_model_retain(v2);
            recd_serve_worker_set_model(pf.looped, v2); /* a hot swap while the first half waits in the queue */
        }
        batched[i] = recd_serve_ctx_create(pf.looped);
        assert_int_equal(recd_serve_recommend(batched[i], RQ(i), on_done, &done), RECD_SERVE_PENDING);
    }
    run_until_idle(&pf.loop, pf.looped);
    assert_int_equal(done.calls, n);
    assert_true(rendered(&pf, "recd_score_batch_size_count") == 2.0); /* one scan per version */
    assert_true(rendered(&pf, "recd_score_batch_size_sum") == (double)n);

    for (size_t i = 0; i < n; ++i) {
        recd_model_t *version = recd_serve_ctx_model(batched[i]);
        assert_int_equal(recd_model_version(version), i < n / 2 ? 1 : 2);
        recd_model_retain(version);
        recd_serve_worker_set_model(pf.alone, version);
        recd_serve_ctx_t *alone = recd_serve_ctx_create(pf.alone);
        assert_int_equal(recd_serve_recommend(alone, RQ(i), on_done, &done), 0);
        assert_same_answer(recd_serve_ctx_result(batched[i]), recd_serve_ctx_result(alone));
        for (size_t j = 0; j < recd_serve_ctx_result(batched[i])->n_items; ++j) /* the old mapping is still there to read */
            assert_memory_equal(recd_serve_ctx_result(batched[i])->items[j].id, i < n / 2 ? "old" : "new", 3);
        recd_serve_ctx_release(alone);
        recd_serve_ctx_release(batched[i]);
    }
#undef RQ
    pool_fixture_dispose(&pf);
    recd_model_release(v2);
}

static void test_pipeline_pool_sheds_when_full(void **state)
{
    fixture_t *fx = *state;
    pool_fixture_t pf;
    recd_serve_recs_request_t rq = {.user = id("u0"), .k = 4};
    recd_serve_ctx_t *queued[3];
    done_t done = {0};

    pool_fixture_init(&pf, fx, 1, 3);
    recd_model_retain(fx->model);
    recd_serve_worker_set_model(pf.looped, fx->model);
    recd_score_pool_t *pool = recd_serve_pool(pf.serve);
    recd_score_pool_hold(pool, 1000); /* more than can ever queue: held until let go */
    for (size_t i = 0; i < 3; ++i) {
        queued[i] = recd_serve_ctx_create(pf.looped);
        assert_int_equal(recd_serve_recommend(queued[i], &rq, on_done, &done), RECD_SERVE_PENDING);
    }
    assert_int_equal(recd_score_pool_queued(pool), 3);

    /* full: the next request is refused at once, answered and counted */
    recd_serve_ctx_t *refused = recd_serve_ctx_create(pf.looped);
    assert_int_equal(recd_serve_recommend(refused, &rq, on_done, &done), 0);
    assert_int_equal(done.calls, 1);
    assert_int_equal(recd_serve_ctx_result(refused)->err, RECD_EBUSY);
    assert_int_equal(recd_serve_ctx_result(refused)->n_items, 0);
    recd_serve_ctx_release(refused);
    assert_int_equal(recd_metric_value(recd_metrics_counter(pf.metrics, "recd_score_shed_total", "", NULL)), 1);
    assert_int_equal(recd_score_pool_queued(pool), 3);

    /* a request whose client went away: cancelled while queued, its late answer only frees it */
    recd_serve_ctx_cancel(queued[1]);
    recd_serve_ctx_release(queued[1]);
    recd_score_pool_hold(pool, 0);
    run_until_idle(&pf.loop, pf.looped);
    assert_int_equal(done.calls, 3);
    for (size_t i = 0; i < 3; i += 2) {
        assert_int_equal(recd_serve_ctx_result(queued[i])->err, 0);
        assert_int_equal(recd_serve_ctx_result(queued[i])->n_items, 4);
        recd_serve_ctx_release(queued[i]);
    }
    /* the three were taken together; the cancelled one was not scanned */
    assert_true(rendered(&pf, "recd_score_batch_size_count") == 1.0);
    assert_true(rendered(&pf, "recd_score_batch_size_sum") == 2.0);
    assert_true(rendered(&pf, "recd_score_shed_total") == 1.0);
    assert_int_equal(recd_score_pool_queued(pool), 0);
    pool_fixture_dispose(&pf);
}

/* Many requests over three versions, in bursts, on two threads that gather with a window: every answer is the one the
 * same request gets alone, whatever batches formed. */
static void test_pipeline_pool_bursts_over_versions(void **state)
{
    fixture_t *fx = *state;
    enum { VERSIONS = 3, ROUNDS = 12, PER_ROUND = 10 };
    pool_fixture_t pf;
    pool_requests_t r[VERSIONS];
    recd_model_t *v[VERSIONS];
    recd_serve_ctx_t *ctx[ROUNDS * PER_ROUND];
    static const char *const prefixes[VERSIONS] = {"a", "b", "c"};
    done_t done = {0};

    pf.metrics = recd_metrics_create(1);
    pf.serve = recd_serve_create(&(recd_serve_config_t){.max_k = MAX_K,
                                                        .score_threads = 2,
                                                        .score_batch_max = 4,
                                                        .score_batch_window_us = 2000,
                                                        .score_queue_max = ROUNDS * PER_ROUND},
                                 fx->store, pf.metrics, &fx->log);
    pf.alone = recd_serve_worker_create(pf.serve, 0, 3);
    pf.looped = recd_serve_worker_create(pf.serve, 0, 4);
    pthread_mutex_init(&pf.loop.lock, NULL);
    pthread_cond_init(&pf.loop.cond, NULL);
    recd_serve_worker_use_loop(pf.looped, on_test_wake, &pf.loop);
    for (size_t i = 0; i < VERSIONS; ++i) {
        v[i] = make_model_sized(fx, "demo", prefixes[i], i + 1, 70 + i, POOL_USERS, POOL_ITEMS, POOL_FACTORS);
        pool_requests(&r[i], prefixes[i]);
    }
    for (size_t i = 0; i < ROUNDS * PER_ROUND; ++i) {
        size_t ver = (i * 7 + i / PER_ROUND) % VERSIONS;
        recd_model_retain(v[ver]);
        recd_serve_worker_set_model(pf.looped, v[ver]);
        ctx[i] = recd_serve_ctx_create(pf.looped);
        recd_serve_recommend(ctx[i], &r[ver].rq[i % r[ver].n], on_done, &done);
        if (i % PER_ROUND == PER_ROUND - 1)
            recd_serve_worker_drain(pf.looped); /* whatever is back already; the rest later */
    }
    run_until_idle(&pf.loop, pf.looped);
    assert_int_equal(done.calls, ROUNDS * PER_ROUND);
    assert_true(rendered(&pf, "recd_score_shed_total") == 0.0);
    for (size_t i = 0; i < ROUNDS * PER_ROUND; ++i) {
        size_t ver = (i * 7 + i / PER_ROUND) % VERSIONS;
        assert_ptr_equal(recd_serve_ctx_model(ctx[i]), v[ver]);
        recd_model_retain(v[ver]);
        recd_serve_worker_set_model(pf.alone, v[ver]);
        recd_serve_ctx_t *alone = recd_serve_ctx_create(pf.alone);
        assert_int_equal(recd_serve_recommend(alone, &r[ver].rq[i % r[ver].n], on_done, &done), 0);
        assert_same_answer(recd_serve_ctx_result(ctx[i]), recd_serve_ctx_result(alone));
        recd_serve_ctx_release(alone);
        recd_serve_ctx_release(ctx[i]);
    }
    pool_fixture_dispose(&pf);
    for (size_t i = 0; i < VERSIONS; ++i)
        recd_model_release(v[i]);
}

int test_pipeline_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipeline_known_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_popular_order_with_exclusions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_fold_in_sums_repeated_recent_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_fold_user_sums_history_and_extras, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_remembered_user_refolded_once_per_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_late_answer_keeps_its_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_similar_and_request_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_pool_batched_equals_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_pool_groups_by_version_and_keeps_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_pool_sheds_when_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_pool_bursts_over_versions, setup, teardown),
    };
    return cmocka_run_group_tests_name("pipeline", tests, NULL, NULL);
}
