/* alloc.c: the recd_x* allocators, which abort with a message on out of memory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"

__attribute__((noreturn, cold)) static void out_of_memory(size_t n, size_t size)
{
    if (n == 1)
        fprintf(stderr, "recd: out of memory (%zu bytes)\n", size);
    else
        fprintf(stderr, "recd: out of memory (%zu x %zu bytes)\n", n, size);
    abort();
}

void *recd_xmalloc(size_t size)
{
    void *p = malloc(size != 0 ? size : 1);
    if (p == NULL)
        out_of_memory(1, size);
    return p;
}

void *recd_xcalloc(size_t n, size_t size)
{
    size_t total;
    void *p;
    if (__builtin_mul_overflow(n, size, &total) || (p = calloc(1, total != 0 ? total : 1)) == NULL)
        out_of_memory(n, size);
    return p;
}

void *recd_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size != 0 ? size : 1);
    if (q == NULL)
        out_of_memory(1, size);
    return q;
}

void *recd_xreallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    void *q;
    if (__builtin_mul_overflow(n, size, &total) || (q = realloc(p, total != 0 ? total : 1)) == NULL)
        out_of_memory(n, size);
    return q;
}

void *recd_xaligned_alloc(size_t align, size_t size)
{
    size_t rounded;
    void *p;
    if (size == 0)
        size = 1;
    if (__builtin_add_overflow(size, align - 1, &rounded) || (p = aligned_alloc(align, rounded & ~(align - 1))) == NULL)
        out_of_memory(1, size);
    return p;
}

char *recd_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        out_of_memory(1, strlen(s) + 1);
    return p;
}

char *recd_xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        out_of_memory(1, strnlen(s, n) + 1);
    return p;
}
