/* test_experiment.c: experiment assignment — split, stickiness, minimal-move ramps, signed request ids. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include "base/error.h"
#include "base/hash.h"
#include "models/experiment.h"

#define N_USERS 10000

static uint32_t slot_of(const char *salt, int user)
{
    char id[32];
    int len = snprintf(id, sizeof(id), "user-%d", user);
    return recd_experiment_slot(salt, strlen(salt), id, (size_t)len);
}

static void count_arms(const uint8_t *slots, uint32_t *count, size_t n_arms)
{
    memset(count, 0, sizeof(*count) * n_arms);
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s)
        ++count[slots[s]];
}

/* The slot is the contract's formula, so every replica (and recdctl) computes the same one. */
static void test_experiment_slot_formula(void **state)
{
    assert_int_equal(recd_experiment_slot("s1", 2, "u42", 3), recd_hash_bytes("u42", 3, recd_hash_id("s1", 2)) % 10000);
    assert_int_equal(recd_experiment_slot("s1", 2, "u42", 3), recd_experiment_slot("s1", 2, "u42", 3));
}

static void test_experiment_initial_slots(void **state)
{
    uint8_t slots[RECD_EXPERIMENT_SLOTS];
    uint32_t count[3];
    recd_experiment_initial_slots((const uint32_t[]){5000, 3000, 2000}, 3, slots);
    count_arms(slots, count, 3);
    assert_int_equal(count[0], 5000);
    assert_int_equal(count[1], 3000);
    assert_int_equal(count[2], 2000);
    /* weights that do not sum to 10,000 are refused: all slots go to arm 0 */
    recd_experiment_initial_slots((const uint32_t[]){5000, 3000}, 2, slots);
    count_arms(slots, count, 2);
    assert_int_equal(count[0], RECD_EXPERIMENT_SLOTS);
    assert_false(recd_experiment_weights_valid((const uint32_t[]){5000, 3000}, 2));
    assert_false(recd_experiment_weights_valid((const uint32_t[]){10000}, 0));
    assert_true(recd_experiment_weights_valid((const uint32_t[]){10000}, 1));
}

/* 90/10 over 10,000 user ids: the canary gets 10% within +-1%, and every user keeps their arm. */
static void test_experiment_split_and_stickiness(void **state)
{
    uint8_t slots[RECD_EXPERIMENT_SLOTS];
    unsigned canary = 0, same_under_other_salt = 0;
    recd_experiment_initial_slots((const uint32_t[]){9000, 1000}, 2, slots);
    for (int u = 0; u < N_USERS; ++u) {
        uint8_t arm = slots[slot_of("s1", u)];
        canary += arm == 1;
        for (int again = 0; again < 3; ++again)
            assert_int_equal(slots[slot_of("s1", u)], arm);
        same_under_other_salt += arm == 1 && slots[slot_of("s2", u)] == 1;
    }
    if (canary < 900 || canary > 1100)
        fail_msg("canary got %u of %d users", canary, N_USERS);
    /* another salt is an independent split: about 10% of the canary users are in the other canary, not all of them */
    if (same_under_other_salt > 200)
        fail_msg("%u of %u canary users share the other salt's canary", same_under_other_salt, canary);
}

/* 90/10 -> 75/25 -> 90/10: each step moves exactly 1,500 slots (15% of users, within +-1%), only from the shrinking arm to
 * the growing one, and the way back returns the very slots the ramp took. */
static void test_experiment_ramp_up_and_back(void **state)
{
    uint8_t initial[RECD_EXPERIMENT_SLOTS], slots[RECD_EXPERIMENT_SLOTS];
    const uint32_t w10[] = {9000, 1000}, w25[] = {7500, 2500};
    unsigned moved_users = 0;

    recd_experiment_initial_slots(w10, 2, initial);
    memcpy(slots, initial, sizeof(slots));
    assert_int_equal(recd_experiment_rebalance(slots, w10, w25, 2), 1500);
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s)
        if (slots[s] != initial[s])
            assert_true(initial[s] == 0 && slots[s] == 1);
    for (int u = 0; u < N_USERS; ++u) {
        uint32_t s = slot_of("s1", u);
        moved_users += slots[s] != initial[s];
    }
    if (moved_users < 1400 || moved_users > 1600)
        fail_msg("%u of %d users moved for 15%%", moved_users, N_USERS);

    uint8_t at25[RECD_EXPERIMENT_SLOTS];
    memcpy(at25, slots, sizeof(slots));
    assert_int_equal(recd_experiment_rebalance(slots, w25, w10, 2), 1500);
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s)
        if (slots[s] != at25[s])
            assert_true(at25[s] == 1 && slots[s] == 0);
    assert_memory_equal(slots, initial, sizeof(slots));
}

/* 1% -> 5% -> 25% -> 100%: nobody ever leaves the canary, and each step moves exactly the growth. */
static void test_experiment_canary_ramp_keeps_users(void **state)
{
    static const uint32_t steps[][2] = {{9900, 100}, {9500, 500}, {7500, 2500}, {0, 10000}};
    uint8_t slots[RECD_EXPERIMENT_SLOTS], before[RECD_EXPERIMENT_SLOTS];
    recd_experiment_initial_slots(steps[0], 2, slots);
    for (size_t i = 1; i < 4; ++i) {
        memcpy(before, slots, sizeof(slots));
        assert_int_equal(recd_experiment_rebalance(slots, steps[i - 1], steps[i], 2), (int)(steps[i][1] - steps[i - 1][1]));
        for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s)
            if (before[s] == 1)
                assert_int_equal(slots[s], 1);
    }
}

/* Three arms (a holdout is just one more): an arm whose weight stays keeps its very slots. */
static void test_experiment_three_arms(void **state)
{
    const uint32_t from[] = {5000, 3000, 2000}, to[] = {2000, 3000, 5000};
    uint8_t slots[RECD_EXPERIMENT_SLOTS], before[RECD_EXPERIMENT_SLOTS];
    uint32_t count[3];
    recd_experiment_initial_slots(from, 3, slots);
    memcpy(before, slots, sizeof(slots));
    assert_int_equal(recd_experiment_rebalance(slots, from, to, 3), 3000);
    count_arms(slots, count, 3);
    assert_int_equal(count[0], 2000);
    assert_int_equal(count[1], 3000);
    assert_int_equal(count[2], 5000);
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s) {
        assert_true((before[s] == 1) == (slots[s] == 1));
        if (slots[s] != before[s])
            assert_true(before[s] == 0 && slots[s] == 2);
    }
}

/* A table that does not hold the old weights, or invalid weights, is refused and left as it was. */
static void test_experiment_rebalance_refuses(void **state)
{
    uint8_t slots[RECD_EXPERIMENT_SLOTS], before[RECD_EXPERIMENT_SLOTS];
    recd_experiment_initial_slots((const uint32_t[]){9000, 1000}, 2, slots);
    memcpy(before, slots, sizeof(slots));
    assert_int_equal(recd_experiment_rebalance(slots, (const uint32_t[]){8000, 2000}, (const uint32_t[]){5000, 5000}, 2),
                     RECD_EINVAL);
    assert_int_equal(recd_experiment_rebalance(slots, (const uint32_t[]){9000, 1000}, (const uint32_t[]){5000, 4000}, 2),
                     RECD_EINVAL);
    slots[0] = 5; /* an arm index beyond n_arms */
    assert_int_equal(recd_experiment_rebalance(slots, (const uint32_t[]){9000, 1000}, (const uint32_t[]){5000, 5000}, 2),
                     RECD_EINVAL);
    slots[0] = before[0];
    assert_memory_equal(slots, before, sizeof(slots));
    assert_int_equal(recd_experiment_rebalance(slots, (const uint32_t[]){9000, 1000}, (const uint32_t[]){9000, 1000}, 2), 0);
}

static void test_experiment_request_id_round_trip(void **state)
{
    char id[RECD_EXPERIMENT_REQUEST_ID_MAX + 1];
    recd_experiment_request_id_t rid;
    int len = recd_experiment_request_id_encode(0x0123456789abcdefULL, "exp_1-a", 7, 4, 1, "s1", 2, id, sizeof(id));
    assert_int_equal(len, (int)strlen(id));
    assert_int_equal(len, 16 + 1 + 7 + 1 + 1 + 1 + 1 + 1 + 8);
    assert_memory_equal(id, "0123456789abcdef.exp_1-a.4.1.", 29);
    assert_int_equal(recd_experiment_request_id_decode(id, (size_t)len, "s1", 2, &rid), 1);
    assert_true(rid.nonce == 0x0123456789abcdefULL);
    assert_int_equal(rid.experiment_len, 7);
    assert_memory_equal(rid.experiment, "exp_1-a", 7);
    assert_true(rid.table_version == 4);
    assert_int_equal(rid.arm, 1);

    /* the longest id fits the advertised bound */
    char long_exp[65];
    memset(long_exp, 'x', 64);
    long_exp[64] = '\0';
    len = recd_experiment_request_id_encode(UINT64_MAX, long_exp, 64, UINT64_MAX, 61, "salt", 4, id, sizeof(id));
    assert_int_equal(len, RECD_EXPERIMENT_REQUEST_ID_MAX);
    assert_int_equal(recd_experiment_request_id_decode(id, (size_t)len, "salt", 4, &rid), 61);
    assert_true(rid.table_version == UINT64_MAX);
    assert_int_equal(recd_experiment_request_id_encode(1, long_exp, 64, UINT64_MAX, 61, "salt", 4, id, (size_t)len), RECD_EINVAL);
    assert_int_equal(recd_experiment_request_id_encode(1, "bad.id", 6, 1, 0, "s", 1, id, sizeof(id)), RECD_EINVAL);
    assert_int_equal(recd_experiment_request_id_encode(1, "", 0, 1, 0, "s", 1, id, sizeof(id)), RECD_EINVAL);
    assert_int_equal(recd_experiment_request_id_encode(1, "e", 1, 1, 62, "s", 1, id, sizeof(id)), RECD_EINVAL);
}

/* Every single-character change of a valid id, a wrong salt, truncations and non-canonical forms decode as -1. */
static void test_experiment_request_id_forgery(void **state)
{
    static const char alphabet[] = "0123456789abcdefABCDEF.-_xz";
    char id[RECD_EXPERIMENT_REQUEST_ID_MAX + 1], forged[RECD_EXPERIMENT_REQUEST_ID_MAX + 2];
    recd_experiment_request_id_t rid;
    int len = recd_experiment_request_id_encode(77, "exp1", 4, 12, 3, "s1", 2, id, sizeof(id));
    assert_true(len > 0);
    assert_int_equal(recd_experiment_request_id_decode(id, (size_t)len, "s2", 2, &rid), -1);
    assert_int_equal(recd_experiment_request_id_decode(id, (size_t)len, "s1", 2, &rid), 3);
    for (int i = 0; i < len; ++i)
        for (const char *c = alphabet; *c != '\0'; ++c) {
            if (*c == id[i])
                continue;
            memcpy(forged, id, (size_t)len);
            forged[i] = *c;
            if (recd_experiment_request_id_decode(forged, (size_t)len, "s1", 2, &rid) != -1)
                fail_msg("forged id %.*s accepted", len, forged);
        }
    for (int cut = 0; cut < len; ++cut)
        assert_int_equal(recd_experiment_request_id_decode(id, (size_t)cut, "s1", 2, &rid), -1);
    memcpy(forged, id, (size_t)len);
    forged[len] = '0';
    assert_int_equal(recd_experiment_request_id_decode(forged, (size_t)len + 1, "s1", 2, &rid), -1);
    assert_int_equal(recd_experiment_request_id_decode("0123456789abcdef", 16, "s1", 2, &rid), -1); /* plain id */
    assert_int_equal(recd_experiment_request_id_parse("0123456789abcdef", 16, &rid), -1);
    /* a leading zero in a number is garbled even though it reads as the same value */
    assert_int_equal(recd_experiment_request_id_parse("000000000000004d.exp1.012.3.00000000", 36, &rid), -1);
    assert_int_equal(recd_experiment_request_id_parse("000000000000004d.exp1.12.62.00000000", 36, &rid), -1);
    assert_int_equal(recd_experiment_request_id_parse("000000000000004d.exp1.12.61.00000000", 36, &rid), 0);
    assert_int_equal(recd_experiment_request_id_parse("000000000000004d.exp1.99999999999999999999.1.00000000", 53, &rid), -1);
    assert_int_equal(recd_experiment_request_id_decode(NULL, 0, "s1", 2, &rid), -1);
}

int test_experiment_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_experiment_slot_formula),
        cmocka_unit_test(test_experiment_initial_slots),
        cmocka_unit_test(test_experiment_split_and_stickiness),
        cmocka_unit_test(test_experiment_ramp_up_and_back),
        cmocka_unit_test(test_experiment_canary_ramp_keeps_users),
        cmocka_unit_test(test_experiment_three_arms),
        cmocka_unit_test(test_experiment_rebalance_refuses),
        cmocka_unit_test(test_experiment_request_id_round_trip),
        cmocka_unit_test(test_experiment_request_id_forgery),
    };
    return cmocka_run_group_tests_name("experiment", tests, NULL, NULL);
}
