/* harness.c: integration-test harness — temp registry with real artifacts, the real recd binary, a tiny HTTP/1.1 client. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "models/model.h"
#include "registry/registry.h"
#include "tests/integration/harness.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

int harness_write_artifact(const char *path, int variant, int corrupt)
{
    enum { G = HARNESS_N_GROUPS, NI = G * HARNESS_ITEMS_PER_GROUP, NU = G * HARNESS_USERS_PER_GROUP, F = G };
    char *user_ids[NU], *item_ids[NI], err[256];
    float user_f[NU * F], item_f[NI * F], pop[NI];
    uint32_t rows[NU * 3], cols[NU * 3];
    recd_csr_t csr = {0};
    int ret = -1;

    for (int i = 0; i < NI; ++i) {
        int g = i / HARNESS_ITEMS_PER_GROUP, n = i % HARNESS_ITEMS_PER_GROUP;
        item_ids[i] = malloc(16);
        snprintf(item_ids[i], 16, "i%d%d", g, n);
        for (int f = 0; f < F; ++f)
            item_f[i * F + f] =
                f == g ? 1.0f - 0.05f * (float)((n + variant * 3) % HARNESS_ITEMS_PER_GROUP) : 0.02f * (float)((i + f) % 3);
        pop[i] = (float)(NI - i) + (variant ? (float)(i % 7) : 0);
    }
    for (int u = 0; u < NU; ++u) {
        int g = u / HARNESS_USERS_PER_GROUP;
        user_ids[u] = malloc(16);
        snprintf(user_ids[u], 16, "u%d%d", g, u % HARNESS_USERS_PER_GROUP);
        for (int f = 0; f < F; ++f)
            user_f[u * F + f] = f == g ? 1.0f : 0.0f;
        for (int j = 0; j < 3; ++j) {
            rows[u * 3 + j] = (uint32_t)u;
            cols[u * 3 + j] = (uint32_t)(g * HARNESS_ITEMS_PER_GROUP + j);
        }
    }
    if (recd_csr_from_coo(&csr, NU, NI, rows, cols, NULL, NU * 3, RECD_MERGE_SUM) != 0)
        goto Exit;
    recd_model_spec_t spec = {.kind = RECD_MODEL_ALS,
                              .n_factors = F,
                              .n_users = NU,
                              .n_items = NI,
                              .user_ids = (const char *const *)user_ids,
                              .item_ids = (const char *const *)item_ids,
                              .user_factors = user_f,
                              .item_factors = item_f,
                              .item_popularity = pop,
                              .alpha = 10.0f,
                              .reg = 0.1f,
                              .user_items = &csr,
                              .metadata_json = "{\"trainer\":\"harness\"}"};
    if (recd_model_write(&spec, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "harness: %s\n", err);
        goto Exit;
    }
    if (corrupt) {
        int fd = open(path, O_RDWR);
        unsigned char c;
        struct stat st;
        fstat(fd, &st);
        pread(fd, &c, 1, st.st_size / 2);
        c ^= 0x5a;
        pwrite(fd, &c, 1, st.st_size / 2);
        close(fd);
    }
    ret = 0;
Exit:
    recd_csr_dispose(&csr);
    for (int i = 0; i < NI; ++i)
        free(item_ids[i]);
    for (int u = 0; u < NU; ++u)
        free(user_ids[u]);
    return ret;
}

uint64_t harness_publish(const char *registry, int variant, int corrupt)
{
    char staging[1024], path[1200];
    uint64_t version = 0;
    if (recd_registry_stage(registry, HARNESS_MODEL, staging, sizeof(staging)) != 0)
        return 0;
    snprintf(path, sizeof(path), "%s/%s", staging, RECD_REGISTRY_ARTIFACT);
    if (harness_write_artifact(path, variant, corrupt) != 0 ||
        recd_registry_commit(registry, HARNESS_MODEL, staging, &version) != 0)
        return 0;
    return version;
}

static int read_port(const char *log)
{
    char buf[8192];
    FILE *fp = fopen(log, "r");
    int port = -1;
    if (fp == NULL)
        return -1;
    while (fgets(buf, sizeof(buf), fp) != NULL) {
        char *p;
        if (strstr(buf, "\"msg\":\"listening\"") != NULL && (p = strstr(buf, "\"port\":")) != NULL) {
            port = atoi(p + 7);
            break;
        }
    }
    fclose(fp);
    return port;
}

/* Makes the temp dir (log, events) and, unless registry is given, a registry there. */
static int make_dir(harness_t *h, const char *registry)
{
    char tmpl[] = "/tmp/recd-it-XXXXXX";
    memset(h, 0, sizeof(*h));
    h->pid = -1;
    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(h->dir, sizeof(h->dir), "%s", tmpl);
    if (registry != NULL)
        snprintf(h->registry, sizeof(h->registry), "%s", registry);
    else
        snprintf(h->registry, sizeof(h->registry), "%s/registry", h->dir);
    snprintf(h->events, sizeof(h->events), "%s/events.jsonl", h->dir);
    snprintf(h->log, sizeof(h->log), "%s/recd.log", h->dir);
    return 0;
}

static int launch(harness_t *h, const char *model, const char *const *extra_args);

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

static int launch(harness_t *h, const char *model, const char *const *extra_args)
{
    const char *bindir = getenv("RECD_BINARY_DIR");
    char binary[1024];
    const char *argv[64];
    int argc = 0;

    snprintf(binary, sizeof(binary), "%s/recd", bindir != NULL ? bindir : ".");
    argv[argc++] = binary;
    const char *fixed[] = {"--registry",           h->registry, "--model", model,           "--listen",
                           "127.0.0.1:0",          "--threads", "2",       "--events-path", h->events,
                           "--reload-interval-ms", "100"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); ++i)
        argv[argc++] = fixed[i];
    for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL && argc < 62; ++i)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;

    if ((h->pid = fork()) < 0)
        return -1;
    if (h->pid == 0) {
        int fd = open(h->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        /* a failed assertion skips harness_stop: the server must still go when the test process does */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        execv(binary, (char *const *)argv);
        fprintf(stderr, "harness: cannot exec %s: %s\n", binary, strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 300; ++i) { /* up to 30 s under sanitizers */
        int status;
        if ((h->port = read_port(h->log)) > 0)
            return 0;
        if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
            fprintf(stderr, "harness: recd exited before listening (status %d); log %s\n", status, h->log);
            h->pid = -1;
            return -1;
        }
        sleep_ms(100);
    }
    return -1;
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: cannot remove %s\n", dir);
}

int harness_stop(harness_t *h)
{
    int status = 0, ret = -1;
    if (h->pid > 0) {
        kill(h->pid, SIGTERM);
        if (waitpid(h->pid, &status, 0) == h->pid && WIFEXITED(status))
            ret = WEXITSTATUS(status);
        if (ret != 0) {
            char cmd[400];
            fprintf(stderr, "harness: recd exit status %d (raw %d); its log:\n", ret, status);
            snprintf(cmd, sizeof(cmd), "tail -n 40 '%s' >&2", h->log);
            if (system(cmd) != 0)
                fprintf(stderr, "harness: cannot show the log\n");
        }
        h->pid = -1;
    }
    if (h->dir[0] != '\0' && getenv("RECD_KEEP_TMP") == NULL)
        remove_tree(h->dir);
    return ret;
}

static int connect_loopback(int port)
{
    struct sockaddr_in sin = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {10, 0};
    if (fd < 0)
        return -1;
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n, len -= (size_t)n;
    }
    return 0;
}

/* Reads until EOF (the request said Connection: close) into a malloc'ed buffer. */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

ssize_t harness_raw(int port, const char *data, size_t len, char *buf, size_t buflen)
{
    int fd = connect_loopback(port);
    size_t n = 0;
    if (fd < 0)
        return -1;
    if (send_all(fd, data, len) != 0) {
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r = recv(fd, buf + n, buflen - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (n += (size_t)r) >= buflen - 1)
            break;
    }
    buf[n] = '\0';
    close(fd);
    return (ssize_t)n;
}

int harness_request(int port, const char *method, const char *path, const char *content_type, const char *body, size_t body_len,
                    const char *extra_headers, harness_response_t *res)
{
    char head[2048];
    size_t raw_len;
    char *raw = NULL, *sep;
    int fd, n;

    memset(res, 0, sizeof(*res));
    if ((fd = connect_loopback(port)) < 0)
        return -1;
    n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n", method, path, port);
    if (content_type != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\n", content_type);
    if (body != NULL)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "%s\r\n", extra_headers != NULL ? extra_headers : "");
    if (send_all(fd, head, (size_t)n) != 0 || (body != NULL && send_all(fd, body, body_len) != 0)) {
        close(fd);
        return -1;
    }
    raw = read_all(fd, &raw_len);
    close(fd);
    if (raw_len < 12 || strncmp(raw, "HTTP/1.1 ", 9) != 0 || (sep = strstr(raw, "\r\n\r\n")) == NULL) {
        free(raw);
        return -1;
    }
    res->status = atoi(raw + 9);
    res->headers = strndup(raw, (size_t)(sep - raw) + 2);
    res->body_len = raw_len - (size_t)(sep + 4 - raw);
    res->body = malloc(res->body_len + 1);
    memcpy(res->body, sep + 4, res->body_len);
    res->body[res->body_len] = '\0';
    char cl[32];
    if (harness_header(res, "content-length", cl, sizeof(cl)) != NULL) {
        res->has_content_length = 1;
        if ((size_t)atol(cl) != res->body_len) {
            free(raw);
            harness_response_free(res);
            return -1;
        }
    }
    free(raw);
    return 0;
}

int harness_get(int port, const char *path, harness_response_t *res)
{
    return harness_request(port, "GET", path, NULL, NULL, 0, NULL, res);
}

int harness_post_json(int port, const char *path, const char *body, harness_response_t *res)
{
    return harness_request(port, "POST", path, "application/json", body, strlen(body), NULL, res);
}

const char *harness_header(const harness_response_t *res, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = strstr(res->headers, "\r\n");
    while (p != NULL && p[2] != '\0') {
        p += 2;
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL)
            break;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                ++v;
            snprintf(out, outlen, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol;
    }
    return NULL;
}

void harness_response_free(harness_response_t *res)
{
    free(res->headers);
    free(res->body);
    memset(res, 0, sizeof(*res));
}
