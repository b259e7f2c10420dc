/* holder.c: the model holder — loads registry versions on a watcher thread and hands them to the workers by message.
 *
 * DESIGN: the holder keeps one reference to the newest good version. A watcher thread polls the registry every
 * reload_interval_ms; a newer version is opened (mmap + SHA-256 check) on the watcher thread, never on an event loop, then
 * every subscribed worker receives its own reference through h2o_multithread_send_message and swaps its pointer on its own
 * thread. Requests therefore read their worker's pointer without locks, and an old version is unmapped only when the last
 * worker has released it. A version that fails to open is remembered so it is logged once, and serving continues. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/server.h"

struct st_recd_holder_t {
    char *registry;
    char *name;
    const recd_logger_t *log;
    recd_metrics_t *metrics;
    pthread_mutex_t mutex; /* guards current */
    recd_model_t *current;
    uint64_t rejected; /* newest version that failed to open */
    H2O_VECTOR(h2o_multithread_receiver_t *) receivers;
    /* watcher */
    pthread_t tid;
    int running, stop;
    uint32_t interval_ms;
    pthread_cond_t cond; /* signalled by stop, with mutex */
};

static void *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) {
        fprintf(stderr, "recd: out of memory\n");
        abort();
    }
    return p;
}

static recd_model_t *open_version(recd_holder_t *h, uint64_t version, char *err, size_t errlen)
{
    char path[4096], openerr[512];
    recd_model_t *m;
    int ret;

    if ((ret = recd_registry_artifact_path(h->registry, h->name, version, path, sizeof(path))) != 0) {
        snprintf(err, errlen, "%s", recd_strerror(ret));
        return NULL;
    }
    if ((m = recd_model_open(path, openerr, sizeof(openerr))) == NULL) {
        snprintf(err, errlen, "%s: %s", path, openerr);
        return NULL;
    }
    recd_model_set_identity(m, h->name, version);
    return m;
}

recd_holder_t *recd_holder_create(const char *registry, const char *model, const recd_logger_t *log, recd_metrics_t *metrics,
                                  char *err, size_t errlen)
{
    recd_holder_t *h;
    uint64_t version;
    int ret;

    if ((ret = recd_registry_latest(registry, model, &version)) != 0) {
        snprintf(err, errlen, "no version of model \"%s\" in registry %s (%s)", model, registry, recd_strerror(ret));
        return NULL;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        fprintf(stderr, "recd: out of memory\n");
        abort();
    }
    h->registry = xstrdup(registry);
    h->name = xstrdup(model);
    h->log = log;
    h->metrics = metrics;
    pthread_mutex_init(&h->mutex, NULL);
    pthread_cond_init(&h->cond, NULL);
    if ((h->current = open_version(h, version, err, errlen)) == NULL) {
        atomic_fetch_add(&metrics->model_load_failures, 1);
        recd_holder_free(h);
        return NULL;
    }
    atomic_fetch_add(&metrics->model_loads, 1);
    return h;
}

void recd_holder_free(recd_holder_t *h)
{
    if (h == NULL)
        return;
    recd_holder_stop(h);
    recd_model_release(h->current);
    free(h->receivers.entries);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mutex);
    free(h->registry);
    free(h->name);
    free(h);
}

recd_model_t *recd_holder_acquire(recd_holder_t *h)
{
    recd_model_t *m;
    pthread_mutex_lock(&h->mutex);
    m = h->current;
    recd_model_retain(m);
    pthread_mutex_unlock(&h->mutex);
    return m;
}

void recd_holder_subscribe(recd_holder_t *h, h2o_multithread_receiver_t *receiver)
{
    pthread_mutex_lock(&h->mutex);
    h2o_vector_reserve(NULL, &h->receivers, h->receivers.size + 1);
    h->receivers.entries[h->receivers.size++] = receiver;
    pthread_mutex_unlock(&h->mutex);
}

int recd_holder_poll(recd_holder_t *h)
{
    char err[1024];
    uint64_t latest, current;
    recd_model_t *m;
    int ret;

    if ((ret = recd_registry_latest(h->registry, h->name, &latest)) != 0)
        return 0; /* the registry may be briefly unreadable; keep serving */
    pthread_mutex_lock(&h->mutex);
    current = recd_model_version(h->current);
    pthread_mutex_unlock(&h->mutex);
    if (latest <= current || latest == h->rejected)
        return 0;

    if ((m = open_version(h, latest, err, sizeof(err))) == NULL) {
        char qerr[1100], qname[200];
        h->rejected = latest;
        atomic_fetch_add(&h->metrics->model_load_failures, 1);
        recd_log(h->log, RECD_LOG_ERROR, "model version rejected", "\"model\":%s,\"version\":%llu,\"serving\":%llu,\"error\":%s",
                 recd_json_quote(qname, sizeof(qname), h->name, strlen(h->name)), (unsigned long long)latest,
                 (unsigned long long)current, recd_json_quote(qerr, sizeof(qerr), err, strlen(err)));
        return RECD_EFORMAT;
    }
    atomic_fetch_add(&h->metrics->model_loads, 1);

    pthread_mutex_lock(&h->mutex);
    recd_model_t *old = h->current;
    h->current = m;
    for (size_t i = 0; i < h->receivers.size; ++i) {
        recd_model_message_t *msg = calloc(1, sizeof(*msg));
        if (msg == NULL) {
            fprintf(stderr, "recd: out of memory\n");
            abort();
        }
        recd_model_retain(m);
        msg->model = m;
        h2o_multithread_send_message(h->receivers.entries[i], &msg->super);
    }
    pthread_mutex_unlock(&h->mutex);
    recd_model_release(old);

    {
        char qname[200];
        recd_log(h->log, RECD_LOG_INFO, "model loaded",
                 "\"model\":%s,\"version\":%llu,\"previous\":%llu,\"kind\":\"%s\",\"users\":%zu,\"items\":%zu,\"factors\":%u",
                 recd_json_quote(qname, sizeof(qname), h->name, strlen(h->name)), (unsigned long long)latest,
                 (unsigned long long)current, recd_model_kind_name(recd_model_kind(m)), recd_model_n_users(m),
                 recd_model_n_items(m), recd_model_n_factors(m));
    }
    return 1;
}

static void *watch_main(void *arg)
{
    recd_holder_t *h = arg;
    pthread_mutex_lock(&h->mutex);
    while (!h->stop) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += h->interval_ms / 1000;
        deadline.tv_nsec += (long)(h->interval_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000)
            deadline.tv_sec += 1, deadline.tv_nsec -= 1000000000;
        while (!h->stop && pthread_cond_timedwait(&h->cond, &h->mutex, &deadline) != ETIMEDOUT)
            ;
        if (h->stop)
            break;
        pthread_mutex_unlock(&h->mutex);
        recd_holder_poll(h);
        pthread_mutex_lock(&h->mutex);
    }
    pthread_mutex_unlock(&h->mutex);
    return NULL;
}

int recd_holder_start(recd_holder_t *h, uint32_t interval_ms)
{
    pthread_condattr_t attr;
    if (h->running)
        return 0;
    /* the condition variable waits on the monotonic clock so wall-clock jumps do not stall reloads */
    pthread_cond_destroy(&h->cond);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &attr);
    pthread_condattr_destroy(&attr);
    h->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    h->stop = 0;
    if (pthread_create(&h->tid, NULL, watch_main, h) != 0)
        return RECD_EIO;
    h->running = 1;
    return 0;
}

void recd_holder_stop(recd_holder_t *h)
{
    if (!h->running)
        return;
    pthread_mutex_lock(&h->mutex);
    h->stop = 1;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->mutex);
    pthread_join(h->tid, NULL);
    h->running = 0;
}
