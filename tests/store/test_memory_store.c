/* test_memory_store.c: the in-memory feature store keeps recent items per user, at most max_users users (LRU per shard),
 * and serves a stored vector only for the version and state it was folded from. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/error.h"
#include "store/feature_store.h"

#define N_SHARDS 64 /* memory_store.c's shard count: max_users 64 means one user per shard */

/* A test arena: every block is remembered and freed by arena_clear. */
typedef struct st_arena_t {
    void *blocks[64];
    size_t n;
} arena_t;

static void *arena_alloc(void *p, size_t size)
{
    arena_t *a = p;
    assert_true(a->n < 64);
    return a->blocks[a->n++] = malloc(size ? size : 1);
}

static void arena_clear(arena_t *a)
{
    while (a->n > 0)
        free(a->blocks[--a->n]);
}

static void add_one(recd_feature_store_t *us, const char *user, const char *item)
{
    recd_feature_item_t it = {item, strlen(item), 1.0f};
    recd_feature_store_append(us, user, strlen(user), &it, 1);
}

/* Looks a user up for version and width, into arena. */
static int get_user(recd_feature_store_t *us, const char *user, uint64_t version, uint32_t n_factors, arena_t *arena,
                    recd_feature_user_t *out)
{
    recd_feature_query_t q = {user, strlen(user), version, n_factors, arena_alloc, arena, "m"};
    /* the in-memory store always answers at once, so no callback is given */
    return recd_feature_store_get(us, &q, out, NULL, NULL);
}

/* Returns the number of items the user has, or -1 when the user is unknown. */
static int n_items(recd_feature_store_t *us, const char *user)
{
    arena_t arena = {0};
    recd_feature_user_t snap;
    int ret = get_user(us, user, 1, 4, &arena, &snap);
    int n = ret == 0 ? (int)snap.n_items : -1;
    if (ret != 0)
        assert_int_equal(ret, RECD_ENOTFOUND);
    arena_clear(&arena);
    return n;
}

/* Whether a and b fall in the same shard, told from the outside: with one user per shard, adding b evicts a. */
static int same_shard(const char *a, const char *b)
{
    recd_feature_store_t *us = recd_memory_store_create(4, N_SHARDS, NULL);
    add_one(us, a, "i");
    add_one(us, b, "i");
    int same = n_items(us, a) < 0;
    recd_feature_store_free(us);
    return same;
}

/* Finds two users other than "anchor" that share its shard. */
static void find_shard_mates(char mate1[32], char mate2[32])
{
    int found = 0;
    for (int i = 0; i < 100000 && found < 2; ++i) {
        char cand[32];
        snprintf(cand, sizeof(cand), "user-%d", i);
        if (same_shard("anchor", cand))
            snprintf(found++ == 0 ? mate1 : mate2, 32, "%s", cand);
    }
    assert_int_equal(found, 2);
}

static void test_memory_store_count_never_exceeds_cap(void **state)
{
    recd_metrics_t *m = recd_metrics_create(1);
    recd_feature_store_t *us = recd_memory_store_create(3, N_SHARDS, m);
    recd_metric_t *evicted = recd_metrics_counter(m, "recd_users_evicted_total", "", NULL);
    uint64_t created = 0;
    char user[32];
    for (int i = 0; i < 3000; ++i) {
        /* mostly new users, some re-adds of earlier (maybe evicted) ones */
        snprintf(user, sizeof(user), "u%d", i % 7 == 0 ? i / 7 : i);
        if (n_items(us, user) < 0)
            ++created;
        add_one(us, user, "item");
        size_t count = recd_feature_store_count(us);
        if (count > N_SHARDS)
            fail_msg("%zu users kept with max_users %d", count, N_SHARDS);
        /* the user just added is always there */
        assert_true(n_items(us, user) > 0);
        assert_int_equal(created - recd_metric_value(evicted), count);
    }
    /* every shard saw many users, so every shard is full now; the users found are exactly the ones counted */
    assert_int_equal(recd_feature_store_count(us), N_SHARDS);
    size_t found = 0;
    for (int i = 0; i < 3000; ++i) {
        snprintf(user, sizeof(user), "u%d", i);
        found += n_items(us, user) >= 0;
    }
    assert_int_equal(found, N_SHARDS);
    size_t len;
    char *text = recd_metrics_render(m, &len);
    char line[64];
    snprintf(line, sizeof(line), "\nrecd_users_evicted_total %llu\n", (unsigned long long)(created - N_SHARDS));
    if (strstr(text, line) == NULL)
        fail_msg("missing%s--- in ---\n%s", line, text);
    free(text);
    recd_feature_store_free(us);
    recd_metrics_free(m);
}

static void test_memory_store_evicts_least_recently_updated(void **state)
{
    char b[32], c[32];
    find_shard_mates(b, c);

    /* two users per shard: anchor, b, then anchor again (an update), then c evicts b, not anchor */
    recd_feature_store_t *us = recd_memory_store_create(4, 2 * N_SHARDS, NULL);
    add_one(us, "anchor", "x");
    add_one(us, b, "y");
    add_one(us, "anchor", "z");
    add_one(us, c, "w");
    assert_int_equal(n_items(us, "anchor"), 2);
    assert_int_equal(n_items(us, b), -1);
    assert_int_equal(n_items(us, c), 1);
    assert_int_equal(recd_feature_store_count(us), 2);
    recd_feature_store_free(us);

    /* without the update the oldest, anchor, goes */
    us = recd_memory_store_create(4, 2 * N_SHARDS, NULL);
    add_one(us, "anchor", "x");
    add_one(us, b, "y");
    add_one(us, c, "w");
    assert_int_equal(n_items(us, "anchor"), -1);
    assert_int_equal(n_items(us, b), 1);
    assert_int_equal(n_items(us, c), 1);
    recd_feature_store_free(us);
}

static void test_memory_store_evicted_user_starts_fresh(void **state)
{
    char b[32], c[32];
    find_shard_mates(b, c);
    recd_feature_store_t *us = recd_memory_store_create(4, N_SHARDS, NULL);
    float vec[4] = {1, 2, 3, 4};
    arena_t arena = {0};
    recd_feature_user_t snap;

    add_one(us, "anchor", "x");
    add_one(us, "anchor", "y");
    add_one(us, b, "z"); /* evicts anchor */
    /* a vector folded from anchor's old snapshot is dropped: the user is gone */
    recd_feature_store_put_vector(us, "anchor", 6, 2, "m", 1, vec, 4);
    assert_int_equal(n_items(us, "anchor"), -1);
    add_one(us, "anchor", "w"); /* evicts b; anchor comes back with only the new item and no vector */
    assert_int_equal(get_user(us, "anchor", 1, 4, &arena, &snap), 0);
    assert_int_equal(snap.n_items, 1);
    assert_int_equal(snap.items[0].len, 1);
    assert_memory_equal(snap.items[0].id, "w", 1);
    assert_int_equal(snap.seq, 1);
    assert_null(snap.vec);
    arena_clear(&arena);
    assert_int_equal(n_items(us, b), -1);
    recd_feature_store_free(us);
}

static void test_memory_store_cap_rounds_up_per_shard(void **state)
{
    /* max_users 1 still keeps one user per shard (at least 1); 65 gives two per shard */
    char b[32], c[32];
    find_shard_mates(b, c);
    recd_feature_store_t *us = recd_memory_store_create(4, 1, NULL);
    add_one(us, "anchor", "x");
    add_one(us, b, "y");
    assert_int_equal(n_items(us, "anchor"), -1);
    assert_int_equal(n_items(us, b), 1);
    recd_feature_store_free(us);
    us = recd_memory_store_create(4, N_SHARDS + 1, NULL);
    add_one(us, "anchor", "x");
    add_one(us, b, "y");
    add_one(us, c, "z");
    assert_int_equal(n_items(us, "anchor"), -1);
    assert_int_equal(n_items(us, b), 1);
    assert_int_equal(n_items(us, c), 1);
    recd_feature_store_free(us);
}

static void test_memory_store_items_oldest_first_within_max_recent(void **state)
{
    recd_feature_store_t *us = recd_memory_store_create(3, 100, NULL);
    recd_feature_item_t batch[4] = {{"a", 1, 1.0f}, {"bb", 2, 2.0f}, {"c", 1, 3.0f}, {"dddd", 4, 5.0f}};
    arena_t arena = {0};
    recd_feature_user_t snap;

    recd_feature_store_append(us, "u", 1, batch, 2);
    recd_feature_store_append(us, "u", 1, batch + 2, 2); /* "a" falls out: max_recent is 3 */
    assert_int_equal(get_user(us, "u", 1, 4, &arena, &snap), 0);
    assert_int_equal(snap.n_items, 3);
    assert_int_equal(snap.seq, 2);
    const char *want[3] = {"bb", "c", "dddd"};
    const float weights[3] = {2.0f, 3.0f, 5.0f};
    for (size_t i = 0; i < 3; ++i) {
        assert_int_equal(snap.items[i].len, strlen(want[i]));
        assert_string_equal(snap.items[i].id, want[i]); /* copies are NUL-terminated */
        assert_true(snap.items[i].weight == weights[i]);
    }
    arena_clear(&arena);
    recd_feature_store_free(us);
}

/* Whether get returns a vector for user at version/width; copies it into out when it does. */
static int stored_vector(recd_feature_store_t *us, const char *user, uint64_t version, uint32_t nf, float *out)
{
    arena_t arena = {0};
    recd_feature_user_t snap;
    assert_int_equal(get_user(us, user, version, nf, &arena, &snap), 0);
    int has = snap.vec != NULL;
    if (has) {
        assert_int_equal(snap.n_factors, nf);
        memcpy(out, snap.vec, sizeof(float) * nf);
    }
    arena_clear(&arena);
    return has;
}

static void test_memory_store_vector_only_for_its_state_and_version(void **state)
{
    recd_feature_store_t *us = recd_memory_store_create(8, 100, NULL);
    const float v1[2] = {1.5f, -2.0f};
    float got[4];

    add_one(us, "u", "x"); /* seq 1 */
    recd_feature_store_put_vector(us, "u", 1, 1, "m", 7, v1, 2);
    assert_true(stored_vector(us, "u", 7, 2, got));
    assert_memory_equal(got, v1, sizeof(v1));
    /* another version, or another width, does not get it */
    assert_false(stored_vector(us, "u", 8, 2, got));
    assert_false(stored_vector(us, "u", 7, 4, got));
    /* a new interaction makes it stale: it was folded without that item */
    add_one(us, "u", "y"); /* seq 2 */
    assert_false(stored_vector(us, "u", 7, 2, got));
    /* a vector for an unknown user is dropped */
    recd_feature_store_put_vector(us, "nobody", 6, 1, "m", 7, v1, 2);
    assert_int_equal(n_items(us, "nobody"), -1);
    recd_feature_store_free(us);
}

static void test_memory_store_vector_never_goes_back_in_time(void **state)
{
    recd_feature_store_t *us = recd_memory_store_create(8, 100, NULL);
    const float newer[2] = {1, 1}, older[2] = {2, 2}, next_version[2] = {3, 3}, prev_version[2] = {4, 4};
    float got[2];

    add_one(us, "u", "x");
    add_one(us, "u", "y"); /* seq 2 */
    /* two folds finish out of order: the one from the newer state (seq 2) first, then one from seq 1 */
    recd_feature_store_put_vector(us, "u", 1, 2, "m", 7, newer, 2);
    recd_feature_store_put_vector(us, "u", 1, 1, "m", 7, older, 2);
    assert_true(stored_vector(us, "u", 7, 2, got));
    assert_memory_equal(got, newer, sizeof(newer));
    /* same state: a later version replaces it, an earlier one does not */
    recd_feature_store_put_vector(us, "u", 1, 2, "m", 8, next_version, 2);
    recd_feature_store_put_vector(us, "u", 1, 2, "m", 7, prev_version, 2);
    assert_false(stored_vector(us, "u", 7, 2, got));
    assert_true(stored_vector(us, "u", 8, 2, got));
    assert_memory_equal(got, next_version, sizeof(next_version));
    recd_feature_store_free(us);
}

int test_memory_store_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_store_count_never_exceeds_cap),
        cmocka_unit_test(test_memory_store_evicts_least_recently_updated),
        cmocka_unit_test(test_memory_store_evicted_user_starts_fresh),
        cmocka_unit_test(test_memory_store_cap_rounds_up_per_shard),
        cmocka_unit_test(test_memory_store_items_oldest_first_within_max_recent),
        cmocka_unit_test(test_memory_store_vector_only_for_its_state_and_version),
        cmocka_unit_test(test_memory_store_vector_never_goes_back_in_time),
    };
    return cmocka_run_group_tests_name("memory_store", tests, NULL, NULL);
}
