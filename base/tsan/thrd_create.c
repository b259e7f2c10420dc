/*
 * thrd_create.c: linked into every executable of a ThreadSanitizer build only (see the top-level CMakeLists.txt).
 *
 * librdkafka starts its threads with C11 thrd_create, which glibc (2.34 and later) implements by calling its internal
 * pthread_create directly, past TSan's interceptor: TSan then never sets up those threads and crashes in the first
 * allocation they make. This definition takes precedence over glibc's (the executable comes first in symbol lookup)
 * and starts the thread through pthread_create, which TSan intercepts. thrd_join and thrd_detach go the same way (glibc's
 * skip the interceptors too, so TSan would report every detached librdkafka thread as leaked).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

typedef struct st_c11_start_t {
    thrd_start_t func;
    void *arg;
} c11_start_t;

static void *run_c11_thread(void *data)
{
    c11_start_t start = *(c11_start_t *)data;
    free(data);
    /* glibc's thrd_join reads the int result back from the pointer-sized one */
    return (void *)(intptr_t)start.func(start.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
    c11_start_t *start = malloc(sizeof(*start));
    if (start == NULL)
        return thrd_nomem;
    start->func = func;
    start->arg = arg;
    int rc = pthread_create((pthread_t *)thr, NULL, run_c11_thread, start);
    if (rc != 0) {
        free(start);
        return rc == ENOMEM || rc == EAGAIN ? thrd_nomem : thrd_error;
    }
    return thrd_success;
}

int thrd_join(thrd_t thr, int *res)
{
    void *value;
    if (pthread_join((pthread_t)thr, &value) != 0)
        return thrd_error;
    if (res != NULL)
        *res = (int)(intptr_t)value;
    return thrd_success;
}

int thrd_detach(thrd_t thr)
{
    return pthread_detach((pthread_t)thr) == 0 ? thrd_success : thrd_error;
}
