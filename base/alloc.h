/* alloc.h: allocation that aborts with a message on out of memory. */
#ifndef RECD_BASE_ALLOC_H
#define RECD_BASE_ALLOC_H

#include <stddef.h>

/*
 * The recd_x* allocators never return NULL: when memory runs out they print "recd: out of memory (N bytes)" on stderr
 * and abort, so callers need no failure path (STYLE.md: out of memory aborts with a message). A size or count of 0
 * allocates one byte, so the result is always a distinct pointer the caller frees with free(). Buffers sized by client
 * input must not use them: those need a failing try_ variant that turns an absurd size into an error reply.
 */

/** malloc that aborts with a message on out of memory. */
void *recd_xmalloc(size_t size) __attribute__((malloc, returns_nonnull, warn_unused_result, alloc_size(1)));
/** calloc (zeroed n * size bytes) that aborts with a message when n * size overflows or memory runs out. */
void *recd_xcalloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull, warn_unused_result, alloc_size(1, 2)));
/** realloc that aborts with a message on out of memory; p may be NULL. p is invalid afterwards, use the result. */
void *recd_xrealloc(void *p, size_t size) __attribute__((returns_nonnull, warn_unused_result, alloc_size(2)));
/** recd_xrealloc of n * size bytes (new bytes uninitialised); aborts with a message when n * size overflows. */
void *recd_xreallocarray(void *p, size_t n, size_t size) __attribute__((returns_nonnull, warn_unused_result, alloc_size(2, 3)));
/**
 * aligned_alloc that aborts with a message on out of memory. align is a power of two; size is rounded up to a multiple
 * of it (as C11 requires), so a size of 0 allocates align bytes.
 */
void *recd_xaligned_alloc(size_t align, size_t size) __attribute__((malloc, returns_nonnull, warn_unused_result));
/** strdup that aborts with a message on out of memory. */
char *recd_xstrdup(const char *s) __attribute__((malloc, returns_nonnull, warn_unused_result));
/** strndup (at most n bytes of s, always NUL-terminated) that aborts with a message on out of memory. */
char *recd_xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull, warn_unused_result));

#endif
