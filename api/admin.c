/* admin.c: the admin thread — admin operations (control-file writes that fsync, registry reads) run off the event loops.
 *
 * DESIGN: a handler copies what the operation needs (path parameter, body) into a heap job and queues it; one admin thread
 * runs jobs in order (so two writes from one replica never race for the control file's lock) and posts each finished job
 * to the loop it came from with h2o_multithread_send_message, where the reply is sent. The request's pool holds a guard:
 * a request that goes away first clears the job's pointer to it, so the late reply touches nothing. The context counts its
 * jobs in flight (recd_api_pending), so a stopping worker keeps its loop running until every job came back. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "api/api_internal.h"

struct st_recd_api_admin_t {
    pthread_t tid;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    recd_api_job_t *head, *tail;
    int stopping;
};

static void *admin_main(void *arg)
{
    struct st_recd_api_admin_t *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->mutex);
        while (a->head == NULL && !a->stopping)
            pthread_cond_wait(&a->cond, &a->mutex);
        recd_api_job_t *job = a->head;
        if (job != NULL && (a->head = job->next) == NULL)
            a->tail = NULL;
        pthread_mutex_unlock(&a->mutex);
        if (job == NULL)
            return NULL; /* stopping and drained */
        job->run(job);
        if (job->reply == NULL)
            recd_api_job_error(job, 500, "internal", "the operation gave no answer");
        h2o_multithread_send_message(&job->actx->admin_receiver, &job->super);
    }
}

struct st_recd_api_admin_t *recd_api_admin_start(void)
{
    struct st_recd_api_admin_t *a = recd_xcalloc(1, sizeof(*a));
    pthread_mutex_init(&a->mutex, NULL);
    pthread_cond_init(&a->cond, NULL);
    h2o_multithread_create_thread(&a->tid, NULL, admin_main, a); /* aborts on failure */
    return a;
}

void recd_api_admin_stop(struct st_recd_api_admin_t *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mutex);
    a->stopping = 1;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mutex);
    pthread_join(a->tid, NULL);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mutex);
    free(a);
}

static void job_free(recd_api_job_t *job)
{
    free(job->arg);
    free(job->body);
    free(job->reply);
    free(job);
}

static void on_guard_dispose(void *data)
{
    recd_api_job_t **guard = data;
    if (*guard != NULL) {
        (*guard)->call = NULL;
        (*guard)->guard = NULL;
    }
}

void recd_api_job_submit(recd_api_call_t *call, recd_api_job_cb run, const char *arg, size_t arg_len)
{
    h2o_req_t *req = call->req;
    recd_api_job_t *job = recd_xcalloc(1, sizeof(*job));
    struct st_recd_api_admin_t *a = call->api->admin;

    job->api = call->api;
    job->actx = call->ctx;
    job->call = call;
    job->run = run;
    job->arg = recd_xmalloc(arg_len + 1);
    memcpy(job->arg, arg, arg_len);
    job->arg[arg_len] = '\0';
    job->body = recd_xmalloc(req->entity.len + 1);
    if (req->entity.len > 0)
        memcpy(job->body, req->entity.base, req->entity.len);
    job->body[req->entity.len] = '\0';
    job->body_len = req->entity.len;
    job->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*job->guard), on_guard_dispose);
    *job->guard = job;
    ++call->ctx->pending_admin;

    pthread_mutex_lock(&a->mutex);
    if (a->tail != NULL)
        a->tail->next = job;
    else
        a->head = job;
    a->tail = job;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mutex);
}

void recd_api_job_reply(recd_api_job_t *job, int status, json_t *body)
{
    free(job->reply);
    job->status = status;
    job->reply = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (job->reply == NULL) {
        fprintf(stderr, "recd: out of memory\n");
        abort();
    }
}

void recd_api_job_error(recd_api_job_t *job, int status, const char *code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    recd_api_job_reply(job, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
}

void recd_api_on_admin_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        recd_api_job_t *job = H2O_STRUCT_FROM_MEMBER(recd_api_job_t, super.link, messages->next);
        h2o_linklist_unlink(&job->super.link);
        --job->actx->pending_admin;
        if (job->call != NULL) {
            h2o_req_t *req = job->call->req;
            size_t len = strlen(job->reply);
            char *body = h2o_mem_alloc_pool(&req->pool, len + 1);
            memcpy(body, job->reply, len + 1);
            *job->guard = NULL;
            recd_api_reply(req, job->status, "application/json", body, len);
            recd_api_end(job->call);
        }
        job_free(job);
    }
}
