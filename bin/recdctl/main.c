/* main.c: recdctl — the command line for recd's admin API (models, activation, rollback, experiments) over a small
 * blocking HTTP/1.1 client. */
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <jansson.h>

#define EXIT_ERROR 1 /* the server refused, or could not be reached */
#define EXIT_USAGE 2

static const char usage[] =
    "Usage: recdctl [--url URL] [--token TOKEN] [--json] COMMAND ...\n"
    "\n"
    "Commands:\n"
    "  models                          models, their versions, states and evaluation\n"
    "  activate NAME VERSION           make VERSION the active version of model NAME\n"
    "  rollback NAME                   go back to the previous active version of NAME\n"
    "  experiment set ID FILE|-        create or replace experiment ID from a JSON file (- = stdin)\n"
    "  experiment show ID              the experiment's arms, weights and status\n"
    "  experiment report ID            per-arm counts, CTR, lift and the sample-ratio check\n"
    "  experiment delete ID            remove the experiment (its users return to the active version)\n"
    "  experiment ramp ID ARM WEIGHT   set ARM's weight (basis points, 0..10000); the other arms give or take the\n"
    "                                  difference in proportion to their weights, so the total stays 10000\n"
    "\n"
    "--url defaults to $RECD_URL, else http://127.0.0.1:8080; --token to $RECD_TOKEN (a JWT with the admin scope).\n"
    "--json prints the server's JSON answer as it is. Exit status: 0 success, 1 error (the message says which), 2 usage.\n";

typedef struct {
    char host[256], port[8], prefix[256];
    const char *token;
    int json;
} client_t;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("recdctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(EXIT_ERROR);
}

static int parse_url(client_t *c, const char *url)
{
    const char *p = url, *hs, *he, *ps;
    if (strncmp(p, "http://", 7) != 0)
        return -1; /* plain HTTP only: put a TLS-terminating proxy in front for anything else */
    p += 7;
    hs = p;
    if (*p == '[') {
        hs = ++p;
        if ((he = strchr(p, ']')) == NULL)
            return -1;
        p = he + 1;
    } else {
        he = p + strcspn(p, ":/");
        p = he;
    }
    if ((size_t)(he - hs) == 0 || (size_t)(he - hs) >= sizeof(c->host))
        return -1;
    memcpy(c->host, hs, (size_t)(he - hs));
    c->host[he - hs] = '\0';
    snprintf(c->port, sizeof(c->port), "80");
    if (*p == ':') {
        ps = ++p;
        p += strspn(p, "0123456789");
        if (p == ps || p - ps > 5)
            return -1;
        snprintf(c->port, sizeof(c->port), "%.*s", (int)(p - ps), ps);
    }
    if (*p != '\0' && *p != '/')
        return -1;
    snprintf(c->prefix, sizeof(c->prefix), "%s", p);
    size_t n = strlen(c->prefix);
    if (n > 0 && c->prefix[n - 1] == '/')
        c->prefix[n - 1] = '\0';
    return 0;
}

/* One request; returns the status and the body (malloc'ed, NUL-terminated) in *out. Dies on a transport error. */
static int http(const client_t *c, const char *method, const char *path, const char *body, char **out)
{
    struct addrinfo hints = {0}, *ai, *a;
    int fd = -1, gai;
    hints.ai_socktype = SOCK_STREAM;
    if ((gai = getaddrinfo(c->host, c->port, &hints, &ai)) != 0)
        die("cannot resolve %s: %s", c->host, gai_strerror(gai));
    int saved = 0;
    for (a = ai; a != NULL && fd < 0; a = a->ai_next) {
        if ((fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0)) < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        die("cannot connect to http://%s:%s: %s (is recd running there? see --url / RECD_URL)", c->host, c->port, strerror(saved));

    size_t blen = body != NULL ? strlen(body) : 0, cap = 1024 + blen + (c->token ? strlen(c->token) : 0);
    char *req = malloc(cap);
    int n = snprintf(req, cap, "%s %s%s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\nAccept: application/json\r\n%s%s%s", method,
                     c->prefix, path, c->host, c->port, c->token ? "Authorization: Bearer " : "", c->token ? c->token : "",
                     c->token ? "\r\n" : "");
    if (body != NULL)
        n += snprintf(req + n, cap - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", blen, body);
    else
        n += snprintf(req + n, cap - (size_t)n, "%s\r\n", strcmp(method, "GET") == 0 ? "" : "Content-Length: 0\r\n");
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w <= 0) {
            free(req);
            die("cannot send to http://%s:%s: %s", c->host, c->port, strerror(errno));
        }
        off += (size_t)w;
    }
    free(req);

    size_t len = 0, rcap = 65536;
    char *buf = malloc(rcap);
    for (;;) {
        if (len + 1 >= rcap)
            buf = realloc(buf, rcap *= 2);
        ssize_t r = recv(fd, buf + len, rcap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            die("cannot read the answer: %s", strerror(errno));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status;
    char *eoh = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || eoh == NULL) {
        free(buf);
        die("not an HTTP answer from http://%s:%s", c->host, c->port);
    }
    *out = strdup(eoh + 4);
    free(buf);
    return status;
}

/* Sends the request; on a non-2xx answer prints the server's error message and exits 1. Returns the parsed JSON. */
static json_t *call(const client_t *c, const char *method, const char *path, const char *body)
{
    char *text;
    int status = http(c, method, path, body, &text);
    json_t *j = json_loads(text, 0, NULL);
    if (status < 200 || status > 299 || j == NULL) {
        /* the message is copied out so nothing is left allocated when the process exits */
        char message[1024];
        json_t *e = json_object_get(json_object_get(j, "error"), "message");
        snprintf(message, sizeof(message), "%s", json_is_string(e) ? json_string_value(e) : text);
        json_decref(j);
        free(text);
        if (status < 200 || status > 299)
            die("%s %s: HTTP %d: %s", method, path, status, message);
        die("%s %s: the answer is not JSON", method, path);
    }
    if (c->json)
        printf("%s\n", text);
    free(text);
    return j;
}

static void print_models(json_t *j)
{
    size_t i, k;
    json_t *m, *v;
    printf("%-20s %-8s %-8s %-7s %s\n", "MODEL", "VERSION", "STATE", "LOADED", "EVALUATION");
    json_array_foreach(json_object_get(j, "models"), i, m)
    {
        json_array_foreach(json_object_get(m, "versions"), k, v)
        {
            char eval[200] = "";
            json_t *metrics = json_object_get(json_object_get(v, "evaluation"), "metrics");
            const char *key;
            json_t *x;
            size_t n = 0;
            json_object_foreach(metrics, key, x)
            {
                if (json_is_number(x) && n < sizeof(eval) - 40)
                    n += (size_t)snprintf(eval + n, sizeof(eval) - n, "%s%s=%.4g", n ? " " : "", key, json_number_value(x));
            }
            printf("%-20s %-8lld %-8s %-7s %s\n", json_string_value(json_object_get(m, "name")),
                   (long long)json_integer_value(json_object_get(v, "version")), json_string_value(json_object_get(v, "state")),
                   json_is_true(json_object_get(v, "loaded")) ? "yes" : "no", eval);
        }
        printf("%-20s generation %lld, %zu experiment(s)\n", "", (long long)json_integer_value(json_object_get(m, "generation")),
               json_array_size(json_object_get(m, "experiments")));
    }
}

static void print_experiment(json_t *j)
{
    size_t i;
    json_t *a;
    printf("experiment %s on model %s: %s, %s, slot table v%lld, generation %lld\n", json_string_value(json_object_get(j, "id")),
           json_string_value(json_object_get(j, "model")), json_is_true(json_object_get(j, "enabled")) ? "enabled" : "disabled",
           json_string_value(json_object_get(j, "status")), (long long)json_integer_value(json_object_get(j, "table_version")),
           (long long)json_integer_value(json_object_get(j, "generation")));
    const char *reason = json_string_value(json_object_get(j, "reason"));
    if (reason != NULL && reason[0] != '\0')
        printf("reason: %s\n", reason);
    printf("%-20s %-24s %8s %8s\n", "ARM", "MODEL", "WEIGHT", "SHARE");
    json_array_foreach(json_object_get(j, "arms"), i, a)
    {
        long long w = json_integer_value(json_object_get(a, "weight"));
        printf("%-20s %-24s %8lld %7.2f%%\n", json_string_value(json_object_get(a, "name")),
               json_string_value(json_object_get(a, "model")), w, w / 100.0);
    }
}

/* Sets arm's weight and spreads the difference over the other arms in proportion to their weights (largest remainder). */
static void ramp(json_t *arms, const char *arm, long long weight)
{
    size_t n = json_array_size(arms), target = n, i;
    long long others = 0, left, share[64];
    double frac[64];
    for (i = 0; i < n; ++i) {
        if (strcmp(json_string_value(json_object_get(json_array_get(arms, i), "name")), arm) == 0)
            target = i;
        else
            others += json_integer_value(json_object_get(json_array_get(arms, i), "weight"));
    }
    if (target == n)
        die("the experiment has no arm \"%s\"", arm);
    if (n == 1 && weight != 10000)
        die("a single arm always has weight 10000");
    left = 10000 - weight;
    long long given = 0;
    for (i = 0; i < n && n <= 64; ++i) {
        if (i == target)
            continue;
        long long w = json_integer_value(json_object_get(json_array_get(arms, i), "weight"));
        double exact = others > 0 ? (double)left * (double)w / (double)others : (double)left / (double)(n - 1);
        share[i] = (long long)exact;
        frac[i] = exact - (double)share[i];
        given += share[i];
    }
    while (given < left) { /* the rounding remainder, one basis point each to the largest fractions */
        size_t best = n;
        for (i = 0; i < n; ++i)
            if (i != target && (best == n || frac[i] > frac[best]))
                best = i;
        ++share[best];
        frac[best] = -1;
        ++given;
    }
    for (i = 0; i < n; ++i)
        json_object_set_new(json_array_get(arms, i), "weight", json_integer(i == target ? weight : share[i]));
}

/* The PUT body of an experiment as GET shows it. */
static json_t *put_body(json_t *e)
{
    json_t *arms = json_array(), *a;
    size_t i;
    json_array_foreach(json_object_get(e, "arms"), i, a)
        json_array_append_new(arms, json_pack("{s:O,s:O,s:O}", "name", json_object_get(a, "name"), "model",
                                              json_object_get(a, "model"), "weight", json_object_get(a, "weight")));
    json_t *b =
        json_pack("{s:O,s:O,s:o}", "salt", json_object_get(e, "salt"), "enabled", json_object_get(e, "enabled"), "arms", arms);
    if (json_is_object(json_object_get(e, "guardrails")))
        json_object_set(b, "guardrails", json_object_get(e, "guardrails"));
    return b;
}

static char *read_all(FILE *fp)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, fp)) > 0)
        if ((len += r) + 1 >= cap)
            buf = realloc(buf, cap *= 2);
    buf[len] = '\0';
    return buf;
}

static int valid_segment(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 64)
        return 0;
    for (; *s; ++s)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' ||
              *s == '.'))
            return 0;
    return 1;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "recdctl: %s\n\n%s", msg, usage);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    client_t c = {0};
    const char *url = getenv("RECD_URL");
    char path[512];
    int i = 1;

    c.token = getenv("RECD_TOKEN");
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; ++i) {
        if (strcmp(argv[i], "--json") == 0)
            c.json = 1;
        else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc)
            c.token = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else
            return usage_error("unknown flag or missing value");
    }
    if (c.token != NULL && c.token[0] == '\0')
        c.token = NULL;
    if (parse_url(&c, url != NULL && url[0] != '\0' ? url : "http://127.0.0.1:8080") != 0)
        return usage_error("the URL must be http://HOST[:PORT][/PREFIX]");
    if (i >= argc)
        return usage_error("no command");
    const char *cmd = argv[i++];
    int n = argc - i;
    char **args = argv + i;
    for (int k = 0; k < n; ++k)
        if (!(strcmp(cmd, "experiment") == 0 && k == 2 && strcmp(args[0], "set") == 0) && !valid_segment(args[k]))
            return usage_error("names, ids and numbers are 1..64 of [A-Za-z0-9_.-]");

    if (strcmp(cmd, "models") == 0 && n == 0) {
        json_t *j = call(&c, "GET", "/v1/models", NULL);
        if (!c.json)
            print_models(j);
        json_decref(j);
    } else if ((strcmp(cmd, "activate") == 0 && n == 2) || (strcmp(cmd, "rollback") == 0 && n == 1)) {
        char body[64], *end;
        json_t *j;
        snprintf(path, sizeof(path), "/v1/models/%s/%s", args[0], cmd);
        if (n == 2) {
            unsigned long long v = strtoull(args[1], &end, 10);
            if (*end != '\0' || v == 0)
                return usage_error("VERSION must be a positive integer");
            snprintf(body, sizeof(body), "{\"version\":%llu}", v);
        }
        j = call(&c, "POST", path, n == 2 ? body : NULL);
        if (!c.json) {
            json_t *prev = json_object_get(j, "previous");
            printf("%s: active version %lld", args[0], (long long)json_integer_value(json_object_get(j, "active")));
            if (json_is_integer(prev))
                printf(" (was %lld)", (long long)json_integer_value(prev));
            printf(", generation %lld\n", (long long)json_integer_value(json_object_get(j, "generation")));
        }
        json_decref(j);
    } else if (strcmp(cmd, "experiment") == 0 && n >= 2) {
        const char *sub = args[0], *id = args[1];
        snprintf(path, sizeof(path), "/v1/experiments/%s", id);
        json_t *j = NULL;
        if (strcmp(sub, "show") == 0 && n == 2) {
            j = call(&c, "GET", path, NULL);
            if (!c.json)
                print_experiment(j);
        } else if (strcmp(sub, "delete") == 0 && n == 2) {
            j = call(&c, "DELETE", path, NULL);
            if (!c.json)
                printf("experiment %s deleted, generation %lld\n", id,
                       (long long)json_integer_value(json_object_get(j, "generation")));
        } else if (strcmp(sub, "report") == 0 && n == 2) {
            snprintf(path, sizeof(path), "/v1/experiments/%s/report", id);
            j = call(&c, "GET", path, NULL);
            if (!c.json) {
                char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                printf("%s\n", s);
                free(s);
            }
        } else if (strcmp(sub, "set") == 0 && n == 3) {
            FILE *fp = strcmp(args[2], "-") == 0 ? stdin : fopen(args[2], "r");
            if (fp == NULL)
                die("cannot open %s: %s", args[2], strerror(errno));
            char *body = read_all(fp);
            if (fp != stdin)
                fclose(fp);
            j = call(&c, "PUT", path, body);
            free(body);
            if (!c.json)
                print_experiment(j);
        } else if (strcmp(sub, "ramp") == 0 && n == 4) {
            char *end;
            long long w = strtoll(args[3], &end, 10);
            if (*end != '\0' || w < 0 || w > 10000)
                return usage_error("WEIGHT must be 0..10000 basis points (100 = 1%)");
            int saved_json = c.json;
            c.json = 0;
            json_t *e = call(&c, "GET", path, NULL);
            ramp(json_object_get(e, "arms"), args[2], w);
            json_t *b = put_body(e);
            char *body = json_dumps(b, JSON_COMPACT);
            c.json = saved_json;
            j = call(&c, "PUT", path, body);
            free(body);
            json_decref(b);
            json_decref(e);
            if (!c.json)
                print_experiment(j);
        } else {
            return usage_error("unknown experiment command or wrong number of arguments");
        }
        json_decref(j);
    } else {
        return usage_error("unknown command or wrong number of arguments");
    }
    return 0;
}
