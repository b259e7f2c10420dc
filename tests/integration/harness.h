/* harness.h: integration-test harness — a temp registry with real artifacts, the real recd binary, a tiny HTTP client. */
#ifndef RECD_TESTS_INTEGRATION_HARNESS_H
#define RECD_TESTS_INTEGRATION_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HARNESS_MODEL "demo"
#define HARNESS_N_GROUPS 4
#define HARNESS_ITEMS_PER_GROUP 10
#define HARNESS_USERS_PER_GROUP 8

/** A running recd and the temp directory it works in. */
typedef struct st_harness_t {
    char dir[256];      /* temp dir (removed by harness_stop) */
    char registry[300]; /* <dir>/registry */
    char events[300];   /* <dir>/events.jsonl */
    char log[300];      /* <dir>/recd.log: the server's stderr */
    pid_t pid;
    int port;
} harness_t;

/**
 * Writes a real ALS-shaped artifact with planted structure and publishes it as the next version of HARNESS_MODEL in
 * registry: HARNESS_N_GROUPS taste groups; items "i<g><n>" load on factor g; users "u<g><n>" on their group's factor and
 * interacted with the first three items of it. variant shifts the item factors (so a new version ranks differently).
 * corrupt flips one byte of the artifact after writing (the checksum then fails). Returns the version or 0 on failure.
 */
uint64_t harness_publish(const char *registry, int variant, int corrupt);
/** Writes the same artifact to path (via path.tmp and rename, like recd_model_write). Returns 0 or -1. */
int harness_write_artifact(const char *path, int variant, int corrupt);

/** Creates the temp dir and registry with version 1, starts recd on 127.0.0.1:0 with --threads 2 (plus extra args, NULL
 * terminated) and waits for its "listening" line. Returns 0 or -1. */
int harness_start(harness_t *h, const char *const *extra_args);
/** The same for a registry the caller filled (kept by harness_stop): recd serves its model `model`. Returns 0 or -1. */
int harness_start_registry(harness_t *h, const char *registry, const char *model, const char *const *extra_args);
/** Sends SIGTERM, waits and returns the exit status (-1 when it did not exit normally); removes the temp dir. */
int harness_stop(harness_t *h);

/** One HTTP response; body is NUL-terminated, both freed by harness_response_free. */
typedef struct st_harness_response_t {
    int status;
    char *headers; /* raw header block */
    char *body;
    size_t body_len;
    int has_content_length;
} harness_response_t;

/**
 * Sends one HTTP/1.1 request (Connection: close) to 127.0.0.1:port and reads the whole response. content_type may be NULL
 * (no header); body may be NULL. extra_headers is raw "Name: value\r\n" lines or NULL. Returns 0 or -1 on a transport error.
 */
int harness_request(int port, const char *method, const char *path, const char *content_type, const char *body, size_t body_len,
                    const char *extra_headers, harness_response_t *res);
/** Convenience: GET. */
int harness_get(int port, const char *path, harness_response_t *res);
/** Convenience: POST with Content-Type: application/json. */
int harness_post_json(int port, const char *path, const char *body, harness_response_t *res);
/** The value of a header (case-insensitive name) copied into out, or NULL. */
const char *harness_header(const harness_response_t *res, const char *name, char *out, size_t outlen);
void harness_response_free(harness_response_t *res);

/** Sends raw bytes and reads until the server closes; returns the number of bytes read into buf (NUL-terminated) or -1. */
ssize_t harness_raw(int port, const char *data, size_t len, char *buf, size_t buflen);

#endif
