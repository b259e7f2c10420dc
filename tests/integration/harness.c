/* harness.c: integration-test harness: a temp registry with a generated artifact and the real recd, on tests/support. */
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tests/integration/harness.h"
#include "tests/support/net.h"

/* Long enough for recd's own drain (2 s) under sanitizers; a server that takes longer is killed and the stop fails. */
#define STOP_GRACE_MS 15000

int harness_write_artifact(const char *path, int variant, int corrupt)
{
    return support_fixture_write_artifact(path, variant, corrupt);
}

uint64_t harness_publish(const char *registry, int variant, int corrupt)
{
    return support_fixture_publish(registry, HARNESS_MODEL, variant, corrupt);
}

/* Makes the temp dir (log, events) and, unless registry is given, names a registry there. */
static int make_dir(harness_t *h, const char *registry)
{
    memset(h, 0, sizeof(*h));
    h->pid = -1;
    if (support_tmpdir_create(h->dir, sizeof(h->dir), "recd-it") != 0)
        return -1;
    if (registry != NULL)
        snprintf(h->registry, sizeof(h->registry), "%s", registry);
    else
        snprintf(h->registry, sizeof(h->registry), "%s/registry", h->dir);
    snprintf(h->events, sizeof(h->events), "%s/events.jsonl", h->dir);
    snprintf(h->log, sizeof(h->log), "%s/recd.log", h->dir);
    return 0;
}

static int launch(harness_t *h, const char *model, const char *const *extra_args)
{
    char binary[1024], listen[32];
    const char *argv[64];
    int argc = 0;

    if ((h->port = support_free_port()) < 0)
        return -1;
    support_binary_path("recd", binary, sizeof(binary));
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", h->port);
    argv[argc++] = binary;
    const char *fixed[] = {
        "--registry",           h->registry, "--model", model, "--listen", listen, "--threads", "2", "--events-path", h->events,
        "--reload-interval-ms", "100"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); ++i)
        argv[argc++] = fixed[i];
    for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL && argc < 62; ++i)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;

    support_proc_spec_t spec = {.argv = argv, .log = h->log, .port = h->port, .probe = support_probe_recd};
    if (support_proc_start(&h->proc, &spec) != 0)
        return -1;
    h->pid = h->proc.pid;
    return 0;
}

int harness_start(harness_t *h, const char *const *extra_args)
{
    if (make_dir(h, NULL) != 0 || harness_publish(h->registry, 0, 0) != 1)
        return -1;
    return launch(h, HARNESS_MODEL, extra_args);
}

int harness_start_registry(harness_t *h, const char *registry, const char *model, const char *const *extra_args)
{
    if (make_dir(h, registry) != 0)
        return -1;
    return launch(h, model, extra_args);
}

int harness_stop(harness_t *h)
{
    int ret = -1;
    if (h->pid > 0) {
        ret = support_proc_stop(&h->proc, STOP_GRACE_MS);
        if (ret != 0) {
            char cmd[400];
            fprintf(stderr, "harness: recd exit status %d (raw %d); its log:\n", ret, h->proc.status);
            snprintf(cmd, sizeof(cmd), "tail -n 40 '%s' >&2", h->log);
            if (system(cmd) != 0)
                fprintf(stderr, "harness: cannot show the log\n");
        }
        h->pid = -1;
    }
    support_remove_tree(h->dir);
    return ret;
}

int harness_write_jwt_secret(const char *path)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    int ok = fprintf(fp, "%s\n", HARNESS_JWT_SECRET) > 0;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

char *harness_token(const char *scope, long exp_in)
{
    jwt_t *jwt;
    if (jwt_new(&jwt) != 0)
        return NULL;
    jwt_add_grant_int(jwt, "exp", (long)time(NULL) + exp_in);
    if (scope != NULL)
        jwt_add_grant(jwt, "scope", scope);
    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)HARNESS_JWT_SECRET, (int)strlen(HARNESS_JWT_SECRET));
    char *t = jwt_encode_str(jwt);
    jwt_free(jwt);
    return t;
}

int harness_call(int port, const char *method, const char *path, const char *tok, const char *body, json_t **out,
                 harness_response_t *keep)
{
    char headers[4096] = "";
    harness_response_t res;
    if (out != NULL)
        *out = NULL;
    if (tok != NULL)
        snprintf(headers, sizeof(headers), "Authorization: Bearer %s\r\n", tok);
    if (harness_request(port, method, path, body != NULL ? "application/json" : NULL, body, body != NULL ? strlen(body) : 0,
                        headers[0] != '\0' ? headers : NULL, &res) != 0)
        return -1;
    int status = res.status;
    if (out != NULL)
        *out = json_loads(res.body, 0, NULL);
    if (keep != NULL)
        *keep = res;
    else
        harness_response_free(&res);
    return status;
}

double harness_metric(int port, const char *sample)
{
    harness_response_t res;
    double v = -1;
    size_t len = strlen(sample);
    if (harness_get(port, "/metrics", &res) != 0)
        return -1;
    for (const char *p = res.body; res.status == 200 && p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
        if (strncmp(p, sample, len) == 0 && p[len] == ' ')
            v = strtod(p + len + 1, NULL);
    harness_response_free(&res);
    return v;
}

int harness_log_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    char line[8192];
    int found = 0;
    if (fp == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), fp) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(fp);
    return found;
}

void harness_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}
