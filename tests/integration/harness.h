/* harness.h: integration-test harness: a temp registry with real artifacts and the real recd binary, on tests/support. */
#ifndef RECD_TESTS_INTEGRATION_HARNESS_H
#define RECD_TESTS_INTEGRATION_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "tests/support/fixtures.h"
#include "tests/support/http.h"
#include "tests/support/proc.h"

#define HARNESS_MODEL "demo"
#define HARNESS_N_GROUPS SUPPORT_FIXTURE_N_GROUPS
#define HARNESS_ITEMS_PER_GROUP SUPPORT_FIXTURE_ITEMS_PER_GROUP
#define HARNESS_USERS_PER_GROUP SUPPORT_FIXTURE_USERS_PER_GROUP

/** The HS256 secret harness_write_jwt_secret writes and harness_token signs with. */
#define HARNESS_JWT_SECRET "integration-secret-0123456789abcdef0123456789"

/** A running recd and the temp directory it works in. */
typedef struct st_harness_t {
    char dir[256];      /* temp dir (removed by harness_stop) */
    char registry[300]; /* <dir>/registry */
    char events[300];   /* <dir>/events.jsonl */
    char log[300];      /* <dir>/recd.log: the server's stdout and stderr */
    pid_t pid;
    int port;
    support_proc_t proc;
} harness_t;

/** Publishes the generated artifact (support_fixture_write_artifact) as the next version of HARNESS_MODEL. Returns the
 * version or 0. */
uint64_t harness_publish(const char *registry, int variant, int corrupt);
/** Writes the generated artifact to path. Returns 0 or -1. */
int harness_write_artifact(const char *path, int variant, int corrupt);

/**
 * Creates the temp dir and registry with version 1, starts recd on 127.0.0.1 on a free port with --threads 2 (plus extra
 * args, NULL terminated) and waits until its /healthz answers with its own pid. Returns 0 or -1 (the log stays in h->log
 * until harness_stop).
 */
int harness_start(harness_t *h, const char *const *extra_args);
/** The same for a registry the caller filled (kept by harness_stop): recd serves its model `model`. Returns 0 or -1. */
int harness_start_registry(harness_t *h, const char *registry, const char *model, const char *const *extra_args);
/** Sends SIGTERM, waits and returns the exit status (-1 when it did not exit normally); removes the temp dir. */
int harness_stop(harness_t *h);

/* The integration tests' short names for the tests/support HTTP client. */
typedef support_http_response_t harness_response_t;

/** See support_http_request. */
static inline int harness_request(int port, const char *method, const char *path, const char *content_type, const char *body,
                                  size_t body_len, const char *extra_headers, harness_response_t *res)
{
    return support_http_request(port, method, path, content_type, body, body_len, extra_headers, res);
}
/** See support_http_get. */
static inline int harness_get(int port, const char *path, harness_response_t *res)
{
    return support_http_get(port, path, res);
}
/** See support_http_post_json. */
static inline int harness_post_json(int port, const char *path, const char *body, harness_response_t *res)
{
    return support_http_post_json(port, path, body, res);
}
/** See support_http_header. */
static inline const char *harness_header(const harness_response_t *res, const char *name, char *out, size_t outlen)
{
    return support_http_header(res, name, out, outlen);
}
/** See support_http_response_free. */
static inline void harness_response_free(harness_response_t *res)
{
    support_http_response_free(res);
}
/** See support_http_raw. */
static inline ssize_t harness_raw(int port, const char *data, size_t len, char *buf, size_t buflen)
{
    return support_http_raw(port, data, len, buf, buflen);
}

/** Writes HARNESS_JWT_SECRET (and a newline) to path, for --jwt-hs256-secret-file. Returns 0 or -1. */
int harness_write_jwt_secret(const char *path);
/** An HS256 token signed with HARNESS_JWT_SECRET, expiring exp_in seconds from now, with scope (may be NULL); free() it. */
char *harness_token(const char *scope, long exp_in);
/**
 * One request with an optional bearer token tok and JSON body (may be NULL). Returns the status, or -1 on a transport error;
 * *out (may be NULL) receives the parsed body (NULL when not JSON), *keep (may be NULL) the whole response to free.
 */
int harness_call(int port, const char *method, const char *path, const char *tok, const char *body, json_t **out,
                 harness_response_t *keep);
/** The value of a sample in /metrics (name and labels exactly as recd writes them), or -1 when absent or unreachable. */
double harness_metric(int port, const char *sample);
/** 1 when a line of the file at path contains needle. */
int harness_log_contains(const char *path, const char *needle);
/** Sleeps ms milliseconds. */
void harness_sleep_ms(int ms);

#endif
