/* test_jsonw.c: the JSON writer over the heap and over a caller's allocator. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "base/jsonw.h"

typedef struct st_arena_t {
    void *blocks[64];
    size_t n;
} arena_t;

static void *arena_alloc(void *ctx, size_t size)
{
    arena_t *a = ctx;
    assert_true(a->n < 64);
    return a->blocks[a->n++] = malloc(size);
}

static void check_output(recd_jw_t *w)
{
    recd_jw_lit(w, "{\"s\":");
    recd_jw_str(w, "q\"\t", 3);
    recd_jw_lit(w, ",\"n\":");
    recd_jw_i64(w, -42);
    recd_jw_lit(w, ",\"u\":");
    recd_jw_u64(w, 18446744073709551615u);
    recd_jw_lit(w, ",\"d\":");
    recd_jw_double(w, 0.5);
    recd_jw_lit(w, "}");
    const char want[] = "{\"s\":\"q\\\"\\t\",\"n\":-42,\"u\":18446744073709551615,\"d\":0.5}";
    assert_int_equal(w->len, sizeof(want) - 1);
    assert_memory_equal(w->buf, want, w->len);
}

static void test_jsonw_heap_and_arena(void **state)
{
    recd_jw_t w;
    recd_jw_init(&w, NULL, NULL, 4); /* tiny, so it grows several times */
    check_output(&w);
    recd_jw_dispose(&w);

    arena_t a = {{0}, 0};
    recd_jw_init(&w, arena_alloc, &a, 4);
    check_output(&w);
    assert_true(a.n > 1); /* grew by copying into bigger blocks */
    for (size_t i = 0; i < a.n; ++i)
        free(a.blocks[i]);
}

int test_jsonw_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonw_heap_and_arena),
    };
    return cmocka_run_group_tests_name("jsonw", tests, NULL, NULL);
}
