/* api_internal.h: what the endpoint files of recd_api share — JSON writer, errors, query parsing, codecs, reply helpers. */
#ifndef RECD_API_API_INTERNAL_H
#define RECD_API_API_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <jansson.h>
#include "base/jsonw.h"
#include "base/text.h"
#include "models/event.h"
#include "api/api.h"

#define RECD_API_MAX_ID_BYTES 256
#define RECD_API_MAX_LIST 1000   /* recent_items / exclude entries */
#define RECD_API_MAX_EVENTS 1000 /* events per POST */

enum { RECD_API_GET = 1, RECD_API_POST = 2, RECD_API_PUT = 4, RECD_API_DELETE = 8 };

/* ---- errors -------------------------------------------------------------------------------------------------------- */

/** A client error found while parsing: HTTP status, machine code ("invalid_argument", ...) and a message for humans. */
typedef struct st_recd_api_error_t {
    int status;
    const char *code;
    char message[256];
} recd_api_error_t;

/** Fills err and returns -1 (so parsers can `return recd_api_error_set(...)`). */
int recd_api_error_set(recd_api_error_t *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- JSON writer into pool memory ---------------------------------------------------------------------------------- */

static inline void *recd_api_pool_alloc(void *pool, size_t size)
{
    return h2o_mem_alloc_pool((h2o_mem_pool_t *)pool, size);
}

/** Starts a JSON writer of cap bytes in request-pool memory (grows by copying into a bigger pool chunk). */
static inline void recd_jw_init_pool(recd_jw_t *w, h2o_mem_pool_t *pool, size_t cap)
{
    recd_jw_init(w, recd_api_pool_alloc, pool, cap);
}

/* ---- validation and query strings (query.c) -------------------------------------------------------------------------- */

/** A decoded query parameter (memory from the pool given to recd_query_parse). */
typedef struct st_recd_query_param_t {
    h2o_iovec_t name, value;
} recd_query_param_t;

#define RECD_QUERY_MAX_PARAMS 16

/**
 * Splits a query string (without the '?') on '&', percent-decodes names and values ('+' is a space) into params (at most
 * max). Empty pieces ("a=1&&b=2") are skipped. Fails with 400 invalid_argument on a bad percent escape, a repeated
 * parameter, too many parameters, or a name or value that is not valid UTF-8 / contains NUL.
 */
int recd_query_parse(const char *q, size_t len, h2o_mem_pool_t *pool, recd_query_param_t *params, size_t max, size_t *n,
                     recd_api_error_t *err);
/** The value of name, or NULL. */
const h2o_iovec_t *recd_query_find(const recd_query_param_t *params, size_t n, const char *name);
/** Percent-decodes s into pool memory (NUL-terminated); plus_is_space for query strings. Returns 0 or -1 on a bad escape. */
int recd_percent_decode(const char *s, size_t len, int plus_is_space, h2o_mem_pool_t *pool, h2o_iovec_t *out);
/** Checks an id (user, item): non-empty, at most 256 bytes, valid UTF-8, no NUL. field names it in the message. */
int recd_api_check_id(const char *field, h2o_iovec_t id, recd_api_error_t *err);
/** Parses k from a query value: a decimal integer in 1..max_k. */
int recd_api_parse_k(h2o_iovec_t s, uint32_t max_k, uint32_t *k, recd_api_error_t *err);
/** Checks a request's model name (a registry name: 1..64 of [A-Za-z0-9_.-], not starting with '.'); 400 otherwise. */
int recd_api_check_model(h2o_iovec_t name, recd_api_error_t *err);

/* ---- codecs (codec.c): pure request parsing and response rendering ------------------------------------------------- */

/** A recommendations request (GET query or POST body); strings point into pool memory. */
typedef struct st_recd_recs_request_t {
    h2o_iovec_t user;
    uint32_t k;
    h2o_iovec_t *recent_items;
    size_t n_recent;
    h2o_iovec_t *exclude;
    size_t n_exclude;
    h2o_iovec_t model; /* the model asked for; base NULL: the default */
    int search;        /* RECD_SERVE_SEARCH_*: exact, approximate, or the configured default when absent */
} recd_recs_request_t;

/** Parses GET /v1/recommendations?user=&k=&model=&search= (query without '?'; NULL/0 when absent). */
int recd_codec_parse_recs_query(const char *q, size_t len, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool,
                                recd_recs_request_t *out, recd_api_error_t *err);
/** Parses a POST /v1/recommendations body {user, k?, recent_items?, exclude?, model?, search?}; unknown members are errors. */
int recd_codec_parse_recs_body(const char *body, size_t len, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool,
                               recd_recs_request_t *out, recd_api_error_t *err);
/** recd_codec_parse_recs_body on an already parsed JSON value (one entry of a batch); messages start with prefix. */
int recd_codec_parse_recs_object(json_t *obj, const char *prefix, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool,
                                 recd_recs_request_t *out, recd_api_error_t *err);

#define RECD_API_MAX_BATCH 256 /* requests in one POST /v1/recommendations:batch */

/**
 * Parses a POST /v1/recommendations:batch body {"requests":[1..256 request objects]}. A body that is not that shape fails
 * (400). Each entry is parsed as a POST /v1/recommendations body into (*out)[i]; an entry that fails does not fail the batch:
 * its error goes to (*errs)[i] (status 0 when the entry is good). Arrays in pool memory.
 */
int recd_codec_parse_recs_batch(const char *body, size_t len, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool,
                                recd_recs_request_t **out, recd_api_error_t **errs, size_t *n, recd_api_error_t *err);
/** Parses the k and model of a similar-items query (other parameters are errors); *model's base is NULL when absent. */
int recd_codec_parse_similar_query(const char *q, size_t len, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool, uint32_t *k,
                                   h2o_iovec_t *model, recd_api_error_t *err);

/** One validated event; strings in pool memory. */
typedef struct st_recd_event_t {
    h2o_iovec_t event_id;               /* the client's, or assigned by recd_codec_assign_event_ids */
    h2o_iovec_t user, item, request_id; /* request_id.base NULL when absent */
    recd_event_type_t type;
    int has_value;
    double value;
    double ts; /* epoch seconds */
} recd_event_t;

/** The in-memory interaction weight of an event: view 1, click 2, add_to_cart 3, purchase 5, rating its value. */
float recd_event_weight(const recd_event_t *ev);

/**
 * Parses and validates POST /v1/events: one event object or {"events": [1..1000 events]}. Every event is checked before
 * anything is returned; the first bad one fails the whole request with a message naming its index and field. now is the
 * default ts.
 */
int recd_codec_parse_events(const char *body, size_t len, double now, h2o_mem_pool_t *pool, recd_event_t **events, size_t *n,
                            recd_api_error_t *err);
/** Parses an ISO-8601 UTC/offset timestamp ("2024-05-01T12:00:00Z", optional fraction, "+02:00"). Returns 0 or -1. */
int recd_codec_parse_iso8601(const char *s, size_t len, double *epoch);
/**
 * Gives every event the client sent without an event_id a fresh one (models/event.h: time-ordered, random), in pool
 * memory. Returns 0, or RECD_EIO when the system's random source failed (nothing is accepted then).
 */
int recd_codec_assign_event_ids(recd_event_t *events, size_t n, double now, h2o_mem_pool_t *pool);
/**
 * Appends one event as a JSON line: {"v":1,"event_id","user","item","type","ts","value"?,"request_id"?,"received_at"}
 * and "\n" — the event on the wire (Kafka's message value) and in the embedded log.
 */
void recd_codec_render_event_line(recd_jw_t *w, const recd_event_t *ev, double received_at);

/** One scored item of an answer. */
typedef struct st_recd_api_item_t {
    h2o_iovec_t id;
    float score;
} recd_api_item_t;

/**
 * Renders the recommendations answer; ignored (unknown recent items) is omitted when n_ignored is 0; experiment and arm
 * (NUL-terminated) render as null when NULL; search is "exact" or "approximate".
 */
void recd_codec_render_recs(recd_jw_t *w, h2o_iovec_t request_id, h2o_iovec_t user, h2o_iovec_t model, uint64_t version,
                            const char *experiment, const char *arm, const recd_api_item_t *items, size_t n, const char *fallback,
                            const char *search, const h2o_iovec_t *ignored, size_t n_ignored);
/** Renders {"item","model","items"} for similar items. */
void recd_codec_render_similar(recd_jw_t *w, h2o_iovec_t item, h2o_iovec_t model, uint64_t version, const recd_api_item_t *items,
                               size_t n);
/** Renders {"error":{"code","message"}}. */
void recd_codec_render_error(recd_jw_t *w, const char *code, const char *message);

/* ---- the API, its contexts and its calls (http.c) ------------------------------------------------------------------- */

#define RECD_API_STATUS_OTHER 500 /* index of the "other" status counter: statuses 100..599 have their own */

/** One endpoint's metrics: its latency histogram and its request counters, registered per status on first use. */
typedef struct st_recd_api_endpoint_t {
    struct st_recd_api_endpoint_t *next;
    char *name;
    recd_metric_t *duration;
    recd_metric_t *_Atomic by_status[RECD_API_STATUS_OTHER + 1];
} recd_api_endpoint_t;

struct st_recd_api_t {
    const recd_config_t *config;
    const recd_logger_t *log;
    recd_metrics_t *metrics;
    recd_serve_t *serve;
    recd_event_sink_t *events;
    recd_metric_t *events_accepted;
    recd_api_endpoint_t *endpoints;           /* every endpoint registered, newest first */
    recd_api_endpoint_t *other;               /* where unknown paths are counted */
    size_t storage_key;                       /* of the per-context state in h2o_context_t.storage */
    pthread_mutex_t attach_mutex;             /* h2o assigns a storage key on first use: not thread-safe by itself */
    struct st_recd_auth_t *auth;              /* NULL: no JWT key configured (admin endpoints refused, public ones open) */
    struct st_recd_catalog_loader_t *catalog; /* for the admin endpoints; NULL until recd_api_enable_control */
    struct st_recd_api_admin_t *admin;        /* the admin thread and its queue (admin.c) */
};

/** What the API keeps per worker context. */
typedef struct st_recd_api_context_t {
    recd_api_t *api;
    recd_serve_worker_t *serve;
    size_t slot;
    h2o_multithread_receiver_t events_receiver; /* event-sink completions, marshalled back to this loop */
    size_t pending_appends;                     /* event batches the sink has not answered yet (this loop only) */
    h2o_multithread_receiver_t admin_receiver;  /* admin jobs done on the admin thread, back to this loop */
    size_t pending_admin;                       /* admin jobs not answered yet (this loop only) */
    struct st_recd_auth_cache_t *auth_cache;    /* tokens this worker verified */
} recd_api_context_t;

/** Registers an endpoint's metrics under name (its histogram at once, so every endpoint renders). Call at start-up. */
recd_api_endpoint_t *recd_api_endpoint(recd_api_t *api, const char *name);
/** The API state of the context req runs on (attached with recd_api_attach). */
recd_api_context_t *recd_api_context_of(recd_api_t *api, h2o_req_t *req);

/** Per-request bookkeeping for metrics and the access log; in request-pool memory, so it lives as long as the request. */
typedef struct st_recd_api_call_t {
    h2o_req_t *req;
    recd_api_t *api;
    recd_api_context_t *ctx;
    recd_api_endpoint_t *ep;
    uint64_t t0_ns;
} recd_api_call_t;

/** Starts timing a request counted under ep. */
recd_api_call_t *recd_api_begin(h2o_req_t *req, recd_api_t *api, recd_api_endpoint_t *ep);
/** Records the request's status and latency in the worker's metrics slot and, at debug level, logs it. */
void recd_api_end(recd_api_call_t *call);
/** Counts one answer of status on ep in slot (registering the series on first use). */
void recd_api_count(recd_api_t *api, recd_api_endpoint_t *ep, size_t slot, int status, uint64_t duration_ns);

/** Sends body (memory that lives as long as the request) with Content-Type and Content-Length. */
void recd_api_reply(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);
/** Sends a JSON body. */
void recd_api_reply_json(h2o_req_t *req, int status, recd_jw_t *w);
/** Sends {"error":{"code","message"}} with status. */
void recd_api_reply_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/**
 * Answers a path that a handler's prefix caught but no endpoint serves: a JSON 404 "not_found", the same for every path,
 * counted under the "other" endpoint (not under the handler's) when the call ends.
 */
void recd_api_reply_not_found(recd_api_call_t *call);
/** Sends err. */
void recd_api_reply_api_error(h2o_req_t *req, const recd_api_error_t *err);
/** Returns 0 when the method is in allowed (RECD_API_* bits), else replies 405 with Allow and returns -1. */
int recd_api_method_or_reply(h2o_req_t *req, unsigned allowed);
/** For POST bodies: 413 over max_body_bytes, 415 unless Content-Type is application/json (charset allowed). 0 or -1. */
int recd_api_json_body_or_reply(h2o_req_t *req, uint64_t max_body_bytes);
/** The query string of req without '?', as (base, len); len 0 when there is none. */
h2o_iovec_t recd_api_query(h2o_req_t *req);
/** The path without the query string. */
h2o_iovec_t recd_api_path(h2o_req_t *req);
/** The reason phrase of an HTTP status ("Unknown" for one recd never sends). */
const char *recd_api_reason(int status);

/* ---- auth and admin jobs (auth_http.c, admin.c) ---------------------------------------------------------------- */

/**
 * Checks the request's bearer token for the scopes in need (RECD_AUTH_SCOPE_* bits). Public scopes pass without a token
 * unless jwt_public_scopes is set; the admin scope without a configured key is refused with 403 admin_disabled. Replies
 * 401 (with WWW-Authenticate: Bearer) or 403 and returns -1, or returns 0.
 */
int recd_api_authorize_or_reply(recd_api_call_t *call, unsigned need);

/** An admin operation: parsed, executed and rendered on the admin thread, answered on the request's loop. */
typedef struct st_recd_api_job_t recd_api_job_t;
/** Runs on the admin thread: fills the job's reply with recd_api_job_reply / _error. May block (disk, fsync). */
typedef void (*recd_api_job_cb)(recd_api_job_t *job);

struct st_recd_api_job_t {
    h2o_multithread_message_t super;
    struct st_recd_api_job_t *next; /* in the admin queue */
    recd_api_t *api;
    recd_api_context_t *actx;
    recd_api_call_t *call;            /* NULL once the request is gone */
    struct st_recd_api_job_t **guard; /* in the request's pool; NULL once the request is gone */
    recd_api_job_cb run;
    char *arg;  /* the path parameter (model name or experiment id), NUL-terminated */
    char *body; /* a copy of the request body, NUL-terminated */
    size_t body_len;
    int status; /* the reply, set by run */
    char *reply;
};

/**
 * Queues run for the admin thread with copies of arg (arg_len bytes) and the request body. The call ends when the reply
 * is sent on this loop; a request that goes away meanwhile is not touched (the job finishes and is dropped).
 */
void recd_api_job_submit(recd_api_call_t *call, recd_api_job_cb run, const char *arg, size_t arg_len);
/** Sets the job's reply: status and a JSON value (stolen). */
void recd_api_job_reply(recd_api_job_t *job, int status, json_t *body);
/** Sets the job's reply to {"error":{"code","message"}}. */
void recd_api_job_error(recd_api_job_t *job, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Starts the admin thread (recd_api_create calls it). */
struct st_recd_api_admin_t *recd_api_admin_start(void);
/** Stops and joins the admin thread, finishing what is queued; accepts NULL. */
void recd_api_admin_stop(struct st_recd_api_admin_t *admin);
/** The admin receiver's callback (admin.c). */
void recd_api_on_admin_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

void recd_api_register_models(h2o_pathconf_t *pathconf, recd_api_t *api);
void recd_api_register_experiments(h2o_pathconf_t *pathconf, recd_api_t *api);

/* ---- the bridge to the pipeline -------------------------------------------------------------------------------- */

/** A pipeline id viewing an h2o string (no copy). */
static inline recd_serve_id_t recd_api_id(h2o_iovec_t s)
{
    return (recd_serve_id_t){s.base, s.len};
}

/* ---- endpoint registration (one file each) --------------------------------------------------------------------- */

/*
 * Each creates its endpoint's handler on pathconf (owned by h2o's configuration from then on); the handler keeps api,
 * borrowed. A request whose path is not exactly the endpoint's (h2o matches prefixes) gets a JSON 404.
 */

void recd_api_register_recommendations(h2o_pathconf_t *pathconf, recd_api_t *api);
void recd_api_register_recommendations_batch(h2o_pathconf_t *pathconf, recd_api_t *api);
void recd_api_register_similar(h2o_pathconf_t *pathconf, recd_api_t *api);
void recd_api_register_events(h2o_pathconf_t *pathconf, recd_api_t *api);
void recd_api_register_healthz(h2o_pathconf_t *pathconf, recd_api_t *api);
void recd_api_register_readyz(h2o_pathconf_t *pathconf, recd_api_t *api);
void recd_api_register_metrics(h2o_pathconf_t *pathconf, recd_api_t *api);
void recd_api_register_not_found(h2o_pathconf_t *pathconf, recd_api_t *api);

/** The events endpoint's receiver: event-sink completions posted to this worker's loop (events.c). */
void recd_api_on_events_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

#endif
