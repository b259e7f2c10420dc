/* test_userstate.c: the in-memory user state keeps recent items per user and at most max_users users (LRU per shard). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

#define N_SHARDS 64 /* userstate.c's shard count: max_users 64 means one user per shard */

static void add_one(recd_userstate_t *us, const char *user, const char *item)
{
    recd_user_item_t it = {h2o_iovec_init(item, strlen(item)), 1.0f};
    recd_userstate_add(us, user, strlen(user), &it, 1);
}

/* Returns the number of items the user has, or -1 when the user is unknown. */
static int n_items(recd_userstate_t *us, const char *user)
{
    h2o_mem_pool_t pool;
    recd_user_snapshot_t snap;
    h2o_mem_init_pool(&pool);
    int ret = recd_userstate_get(us, user, strlen(user), 1, 4, &pool, &snap);
    int n = ret == 0 ? (int)snap.n_items : -1;
    if (ret != 0)
        assert_int_equal(ret, RECD_ENOTFOUND);
    h2o_mem_clear_pool(&pool);
    return n;
}

/* Whether a and b fall in the same shard, told from the outside: with one user per shard, adding b evicts a. */
static int same_shard(const char *a, const char *b)
{
    recd_userstate_t *us = recd_userstate_create(4, N_SHARDS, NULL);
    add_one(us, a, "i");
    add_one(us, b, "i");
    int same = n_items(us, a) < 0;
    recd_userstate_free(us);
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

static void test_userstate_count_never_exceeds_cap(void **state)
{
    recd_http_metrics_t *m = recd_http_metrics_create(1);
    recd_userstate_t *us = recd_userstate_create(3, N_SHARDS, m);
    uint64_t created = 0;
    char user[32];
    for (int i = 0; i < 3000; ++i) {
        /* mostly new users, some re-adds of earlier (maybe evicted) ones */
        snprintf(user, sizeof(user), "u%d", i % 7 == 0 ? i / 7 : i);
        if (n_items(us, user) < 0)
            ++created;
        add_one(us, user, "item");
        size_t count = recd_userstate_count(us);
        if (count > N_SHARDS)
            fail_msg("%zu users kept with max_users %d", count, N_SHARDS);
        /* the user just added is always there */
        assert_true(n_items(us, user) > 0);
        assert_int_equal(created - atomic_load(&m->users_evicted), count);
    }
    /* every shard saw many users, so every shard is full now; the users found are exactly the ones counted */
    assert_int_equal(recd_userstate_count(us), N_SHARDS);
    size_t found = 0;
    for (int i = 0; i < 3000; ++i) {
        snprintf(user, sizeof(user), "u%d", i);
        found += n_items(us, user) >= 0;
    }
    assert_int_equal(found, N_SHARDS);
    size_t len;
    char *text = recd_http_metrics_render(m, NULL, 0, &len);
    char line[64];
    snprintf(line, sizeof(line), "\nrecd_users_evicted_total %llu\n", (unsigned long long)(created - N_SHARDS));
    if (strstr(text, line) == NULL)
        fail_msg("missing%s--- in ---\n%s", line, text);
    free(text);
    recd_userstate_free(us);
    recd_http_metrics_free(m);
}

static void test_userstate_evicts_least_recently_updated(void **state)
{
    char b[32], c[32];
    find_shard_mates(b, c);

    /* two users per shard: anchor, b, then anchor again (an update), then c evicts b, not anchor */
    recd_userstate_t *us = recd_userstate_create(4, 2 * N_SHARDS, NULL);
    add_one(us, "anchor", "x");
    add_one(us, b, "y");
    add_one(us, "anchor", "z");
    add_one(us, c, "w");
    assert_int_equal(n_items(us, "anchor"), 2);
    assert_int_equal(n_items(us, b), -1);
    assert_int_equal(n_items(us, c), 1);
    assert_int_equal(recd_userstate_count(us), 2);
    recd_userstate_free(us);

    /* without the update the oldest, anchor, goes */
    us = recd_userstate_create(4, 2 * N_SHARDS, NULL);
    add_one(us, "anchor", "x");
    add_one(us, b, "y");
    add_one(us, c, "w");
    assert_int_equal(n_items(us, "anchor"), -1);
    assert_int_equal(n_items(us, b), 1);
    assert_int_equal(n_items(us, c), 1);
    recd_userstate_free(us);
}

static void test_userstate_evicted_user_starts_fresh(void **state)
{
    char b[32], c[32];
    find_shard_mates(b, c);
    recd_userstate_t *us = recd_userstate_create(4, N_SHARDS, NULL);
    float vec[4] = {1, 2, 3, 4};
    h2o_mem_pool_t pool;
    recd_user_snapshot_t snap;

    add_one(us, "anchor", "x");
    add_one(us, "anchor", "y");
    add_one(us, b, "z"); /* evicts anchor */
    /* a vector folded from anchor's old snapshot is dropped: the user is gone */
    recd_userstate_set_vector(us, "anchor", 6, 2, 1, vec, 4);
    assert_int_equal(n_items(us, "anchor"), -1);
    add_one(us, "anchor", "w"); /* evicts b; anchor comes back with only the new item and no vector */
    h2o_mem_init_pool(&pool);
    assert_int_equal(recd_userstate_get(us, "anchor", 6, 1, 4, &pool, &snap), 0);
    assert_int_equal(snap.n_items, 1);
    assert_memory_equal(snap.items[0].item.base, "w", 1);
    assert_int_equal(snap.seq, 1);
    assert_null(snap.vec);
    h2o_mem_clear_pool(&pool);
    assert_int_equal(n_items(us, b), -1);
    recd_userstate_free(us);
}

static void test_userstate_cap_rounds_up_per_shard(void **state)
{
    /* max_users 1 still keeps one user per shard (at least 1); 65 gives two per shard */
    char b[32], c[32];
    find_shard_mates(b, c);
    recd_userstate_t *us = recd_userstate_create(4, 1, NULL);
    add_one(us, "anchor", "x");
    add_one(us, b, "y");
    assert_int_equal(n_items(us, "anchor"), -1);
    assert_int_equal(n_items(us, b), 1);
    recd_userstate_free(us);
    us = recd_userstate_create(4, N_SHARDS + 1, NULL);
    add_one(us, "anchor", "x");
    add_one(us, b, "y");
    add_one(us, c, "z");
    assert_int_equal(n_items(us, "anchor"), -1);
    assert_int_equal(n_items(us, b), 1);
    assert_int_equal(n_items(us, c), 1);
    recd_userstate_free(us);
}

int test_userstate_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_userstate_count_never_exceeds_cap),
        cmocka_unit_test(test_userstate_evicts_least_recently_updated),
        cmocka_unit_test(test_userstate_evicted_user_starts_fresh),
        cmocka_unit_test(test_userstate_cap_rounds_up_per_shard),
    };
    return cmocka_run_group_tests_name("userstate", tests, NULL, NULL);
}
