/* config.c: one table of keys drives defaults, JSON file, RECD_<KEY> env vars, --flags, validation, help and to_json. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "config/config.h"
#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"

typedef enum en_option_type_t { OPT_STRING, OPT_U32, OPT_U64, OPT_BOOL } option_type_t;

/* Validates a string value; returns 0 or writes why it is wrong into err. */
typedef int (*check_string_fn)(const char *value, char *err, size_t errlen);

typedef struct st_option_t {
    const char *key;
    option_type_t type;
    size_t offset;
    const char *def;   /* default in string form, parsed through the same path as a flag */
    uint64_t min, max; /* inclusive range for numbers */
    check_string_fn check;
    const char *metavar; /* placeholder in --help */
    const char *doc;
} option_t;

static int check_listen(const char *value, char *err, size_t errlen);
static int check_log_level(const char *value, char *err, size_t errlen);
static int check_nonempty(const char *value, char *err, size_t errlen);

#define OFF(field) offsetof(recd_config_t, field)

static const option_t options[] = {
    {"listen", OPT_STRING, OFF(listen), "127.0.0.1:8080", 0, 0, check_listen, "HOST:PORT",
     "Address to listen on: HOST:PORT or [IPv6]:PORT; port 0 picks a free port."},
    {"threads", OPT_U32, OFF(threads), "0", 0, 256, NULL, "N", "Worker threads, each with its own event loop; 0 = one per core."},
    {"registry", OPT_STRING, OFF(registry), "registry", 0, 0, check_nonempty, "DIR",
     "Model registry directory: one folder per model, one per version inside it."},
    {"model", OPT_STRING, OFF(model), "default", 0, 0, check_nonempty, "NAME", "Name of the model served from the registry."},
    {"events_path", OPT_STRING, OFF(events_path), "data/events.jsonl", 0, 0, check_nonempty, "FILE",
     "Embedded event log: POST /v1/events appends JSON lines here."},
    {"events_fsync", OPT_BOOL, OFF(events_fsync), "false", 0, 1, NULL, "BOOL",
     "fdatasync the event log before answering 202 (otherwise it is flushed only)."},
    {"max_body_bytes", OPT_U64, OFF(max_body_bytes), "1048576", 1024, UINT64_C(1) << 30, NULL, "BYTES",
     "Request bodies larger than this are answered 413."},
    {"default_k", OPT_U32, OFF(default_k), "10", 1, 100000, NULL, "K", "Number of items returned when a request gives no k."},
    {"max_k", OPT_U32, OFF(max_k), "1000", 1, 100000, NULL, "K", "Largest k a request may ask for (at least default_k)."},
    {"max_recent_items", OPT_U32, OFF(max_recent_items), "50", 1, 100000, NULL, "N",
     "Recent items kept in memory per user for fold-in."},
    {"max_users", OPT_U32, OFF(max_users), "1000000", 1, 1000000000, NULL, "N",
     "Users kept in memory by the embedded user state; beyond it the least recently updated user of a shard is evicted."},
    {"reload_interval_ms", OPT_U32, OFF(reload_interval_ms), "1000", 10, 3600000, NULL, "MS",
     "How often the registry is checked for new model versions."},
    {"log_level", OPT_STRING, OFF(log_level), "info", 0, 0, check_log_level, "LEVEL",
     "Lowest level logged to stderr: debug, info, warn or error."},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
}

static const option_t *find_option(const char *key)
{
    for (size_t i = 0; i != N_OPTIONS; ++i)
        if (strcmp(options[i].key, key) == 0)
            return &options[i];
    return NULL;
}

/* Levenshtein distance, capped at small strings (keys are short). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; ++j)
        prev[j] = j;
    for (size_t i = 1; i <= la; ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; ++j) {
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1, sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t best = del < ins ? del : ins;
            cur[j] = best < sub ? best : sub;
        }
        memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
    }
    return prev[lb];
}

/* The closest known key if it is plausibly a typo (or a prefix), else NULL. */
static const char *suggest_key(const char *key)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i != N_OPTIONS; ++i) {
        size_t d = edit_distance(key, options[i].key);
        if (d < best_d) {
            best_d = d;
            best = options[i].key;
        }
    }
    if (best == NULL && strlen(key) >= 3) {
        for (size_t i = 0; i != N_OPTIONS; ++i)
            if (strncmp(options[i].key, key, strlen(key)) == 0 || strstr(options[i].key, key) != NULL)
                return options[i].key;
    }
    return best;
}

static void unknown_key_err(const char *where, const char *key, char *err, size_t errlen)
{
    const char *s = suggest_key(key);
    if (s != NULL)
        set_err(err, errlen, "%s: unknown key \"%s\" (did you mean \"%s\"?)", where, key, s);
    else
        set_err(err, errlen, "%s: unknown key \"%s\" (see --help for the list)", where, key);
}

static int check_nonempty(const char *value, char *err, size_t errlen)
{
    if (value[0] == '\0') {
        set_err(err, errlen, "must not be empty");
        return RECD_EINVAL;
    }
    return RECD_OK;
}

static int check_log_level(const char *value, char *err, size_t errlen)
{
    if (recd_log_parse_level(value) >= 0)
        return RECD_OK;
    set_err(err, errlen, "must be one of debug, info, warn, error, got \"%s\"", value);
    return RECD_EINVAL;
}

int recd_config_parse_listen(const char *listen, char *host, size_t hostlen, uint16_t *port)
{
    const char *host_start, *host_end, *p;
    if (listen[0] == '[') {
        host_start = listen + 1;
        if ((host_end = strchr(host_start, ']')) == NULL || host_end[1] != ':')
            return RECD_EINVAL;
        p = host_end + 2;
        /* an IPv6 literal: hex digits, ':' and '.' (IPv4-mapped) and a '%zone' */
        for (const char *q = host_start; q != host_end; ++q)
            if (!(isxdigit((unsigned char)*q) || *q == ':' || *q == '.' || *q == '%'))
                return RECD_EINVAL;
    } else {
        host_start = listen;
        if ((host_end = strrchr(listen, ':')) == NULL)
            return RECD_EINVAL;
        p = host_end + 1;
        for (const char *q = host_start; q != host_end; ++q)
            if (!(isalnum((unsigned char)*q) || *q == '.' || *q == '-' || *q == '_'))
                return RECD_EINVAL; /* includes a bare IPv6 address without brackets */
    }
    if (host_end == host_start)
        return RECD_EINVAL;
    if (*p == '\0' || strlen(p) > 5)
        return RECD_EINVAL;
    unsigned long v = 0;
    for (const char *q = p; *q != '\0'; ++q) {
        if (!isdigit((unsigned char)*q))
            return RECD_EINVAL;
        v = v * 10 + (unsigned long)(*q - '0');
    }
    if (v > 65535)
        return RECD_EINVAL;
    size_t hl = (size_t)(host_end - host_start);
    if (host != NULL) {
        if (hl + 1 > hostlen)
            return RECD_EINVAL;
        memcpy(host, host_start, hl);
        host[hl] = '\0';
    }
    if (port != NULL)
        *port = (uint16_t)v;
    return RECD_OK;
}

static int check_listen(const char *value, char *err, size_t errlen)
{
    char host[256];
    if (recd_config_parse_listen(value, host, sizeof(host), NULL) != RECD_OK) {
        set_err(err, errlen, "must be HOST:PORT or [IPv6]:PORT with port 0..65535, got \"%s\"", value);
        return RECD_EINVAL;
    }
    return RECD_OK;
}

static void *field(recd_config_t *c, const option_t *o)
{
    return (char *)c + o->offset;
}

static const void *cfield(const recd_config_t *c, const option_t *o)
{
    return (const char *)c + o->offset;
}

static const char *type_name(option_type_t t)
{
    switch (t) {
    case OPT_STRING:
        return "string";
    case OPT_U32:
    case OPT_U64:
        return "integer";
    case OPT_BOOL:
        return "boolean";
    }
    return "?";
}

static int store_string(recd_config_t *c, const option_t *o, const char *where, const char *value, char *err, size_t errlen)
{
    char why[200];
    if (o->check != NULL && o->check(value, why, sizeof(why)) != RECD_OK) {
        set_err(err, errlen, "%s: %s %s", where, o->key, why);
        return RECD_EINVAL;
    }
    char **slot = field(c, o);
    free(*slot);
    *slot = recd_xstrdup(value);
    return RECD_OK;
}

static int store_uint(recd_config_t *c, const option_t *o, const char *where, uint64_t value, char *err, size_t errlen)
{
    if (value < o->min || value > o->max) {
        set_err(err, errlen, "%s: %s must be %llu..%llu, got %llu", where, o->key, (unsigned long long)o->min,
                (unsigned long long)o->max, (unsigned long long)value);
        return RECD_EINVAL;
    }
    if (o->type == OPT_U32)
        *(uint32_t *)field(c, o) = (uint32_t)value;
    else
        *(uint64_t *)field(c, o) = value;
    return RECD_OK;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i != 4; ++i) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

/* Sets an option from its textual form (flag or env var); where names the source in messages. */
static int set_from_string(recd_config_t *c, const option_t *o, const char *where, const char *value, char *err, size_t errlen)
{
    switch (o->type) {
    case OPT_STRING:
        return store_string(c, o, where, value, err, errlen);
    case OPT_U32:
    case OPT_U64: {
        char *end;
        if (!isdigit((unsigned char)value[0])) {
            set_err(err, errlen, "%s: %s must be an integer %llu..%llu, got \"%s\"", where, o->key, (unsigned long long)o->min,
                    (unsigned long long)o->max, value);
            return RECD_EINVAL;
        }
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (*end != '\0') {
            set_err(err, errlen, "%s: %s must be an integer %llu..%llu, got \"%s\"", where, o->key, (unsigned long long)o->min,
                    (unsigned long long)o->max, value);
            return RECD_EINVAL;
        }
        if (errno == ERANGE) {
            set_err(err, errlen, "%s: %s must be %llu..%llu, got \"%s\"", where, o->key, (unsigned long long)o->min,
                    (unsigned long long)o->max, value);
            return RECD_EINVAL;
        }
        return store_uint(c, o, where, v, err, errlen);
    }
    case OPT_BOOL: {
        int b;
        if (!parse_bool(value, &b)) {
            set_err(err, errlen, "%s: %s must be true or false, got \"%s\"", where, o->key, value);
            return RECD_EINVAL;
        }
        *(int *)field(c, o) = b;
        return RECD_OK;
    }
    }
    return RECD_EINVAL;
}

/* Sets an option from a JSON value of the matching type. */
static int set_from_json(recd_config_t *c, const option_t *o, const char *where, json_t *v, char *err, size_t errlen)
{
    switch (o->type) {
    case OPT_STRING:
        if (!json_is_string(v))
            goto WrongType;
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            set_err(err, errlen, "%s: %s must not contain NUL characters", where, o->key);
            return RECD_EINVAL;
        }
        return store_string(c, o, where, json_string_value(v), err, errlen);
    case OPT_U32:
    case OPT_U64:
        if (!json_is_integer(v))
            goto WrongType;
        if (json_integer_value(v) < 0) {
            set_err(err, errlen, "%s: %s must be %llu..%llu, got %lld", where, o->key, (unsigned long long)o->min,
                    (unsigned long long)o->max, (long long)json_integer_value(v));
            return RECD_EINVAL;
        }
        return store_uint(c, o, where, (uint64_t)json_integer_value(v), err, errlen);
    case OPT_BOOL:
        if (!json_is_boolean(v))
            goto WrongType;
        *(int *)field(c, o) = json_is_true(v);
        return RECD_OK;
    }
WrongType:
    set_err(err, errlen, "%s: %s must be a JSON %s", where, o->key, type_name(o->type));
    return RECD_EINVAL;
}

void recd_config_init(recd_config_t *c)
{
    char err[256];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i != N_OPTIONS; ++i) {
        if (set_from_string(c, &options[i], "default", options[i].def, err, sizeof(err)) != RECD_OK) {
            fprintf(stderr, "recd: invalid built-in default: %s\n", err);
            abort();
        }
    }
}

void recd_config_dispose(recd_config_t *c)
{
    for (size_t i = 0; i != N_OPTIONS; ++i) {
        if (options[i].type == OPT_STRING) {
            char **slot = field(c, &options[i]);
            free(*slot);
            *slot = NULL;
        }
    }
}

int recd_config_check(const recd_config_t *c, char *err, size_t errlen)
{
    if (c->default_k > c->max_k) {
        set_err(err, errlen, "default_k (%u) must not exceed max_k (%u)", c->default_k, c->max_k);
        return RECD_EINVAL;
    }
    return RECD_OK;
}

int recd_config_load_file(recd_config_t *c, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = NULL;
    int ret = RECD_OK;
    char where[512];

    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        set_err(err, errlen, "config file %s: %s", path, strerror(errno));
        ret = RECD_EIO;
        goto Exit;
    }
    root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
    fclose(fp);
    if (root == NULL) {
        set_err(err, errlen, "config file %s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
        ret = RECD_EFORMAT;
        goto Exit;
    }
    if (!json_is_object(root)) {
        set_err(err, errlen, "config file %s: must hold a JSON object", path);
        ret = RECD_EFORMAT;
        goto Exit;
    }
    snprintf(where, sizeof(where), "config file %s", path);
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        const option_t *o = find_option(key);
        if (o == NULL) {
            unknown_key_err(where, key, err, errlen);
            ret = RECD_EINVAL;
            goto Exit;
        }
        if ((ret = set_from_json(c, o, where, value, err, errlen)) != RECD_OK)
            goto Exit;
    }

Exit:
    json_decref(root);
    return ret;
}

/* Writes the env var name of a key ("RECD_MAX_K") into buf. */
static void env_name(const char *key, char *buf, size_t buflen)
{
    size_t n = snprintf(buf, buflen, "RECD_%s", key);
    for (size_t i = 5; i < n && i < buflen; ++i)
        buf[i] = (char)toupper((unsigned char)buf[i]);
}

int recd_config_apply_env(recd_config_t *c, char *const *envp, char *err, size_t errlen)
{
    if (envp == NULL)
        return RECD_OK;
    /* Only the variables named after keys are read: other RECD_* variables (RECD_CONFIG, RECD_DATA_DIR, ...) belong to
     * other tools, so an unknown one is not an error. */
    for (size_t i = 0; i != N_OPTIONS; ++i) {
        char name[64];
        env_name(options[i].key, name, sizeof(name));
        size_t nl = strlen(name);
        for (char *const *e = envp; *e != NULL; ++e) {
            if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=') {
                int ret = set_from_string(c, &options[i], name, *e + nl + 1, err, errlen);
                if (ret != RECD_OK)
                    return ret;
            }
        }
    }
    return RECD_OK;
}

/* "max-body-bytes" -> "max_body_bytes" into buf; returns 0 when it does not fit. */
static int normalise_key(const char *s, size_t len, char *buf, size_t buflen)
{
    if (len + 1 > buflen)
        return 0;
    for (size_t i = 0; i != len; ++i)
        buf[i] = s[i] == '-' ? '_' : s[i];
    buf[len] = '\0';
    return 1;
}

int recd_config_set(recd_config_t *c, const char *key, const char *value, char *err, size_t errlen)
{
    char norm[64];
    const option_t *o = NULL;
    if (normalise_key(key, strlen(key), norm, sizeof(norm)))
        o = find_option(norm);
    if (o == NULL) {
        unknown_key_err("config", normalise_key(key, strlen(key), norm, sizeof(norm)) ? norm : key, err, errlen);
        return RECD_EINVAL;
    }
    return set_from_string(c, o, "config", value, err, errlen);
}

static const char *env_lookup(char *const *envp, const char *name)
{
    size_t nl = strlen(name);
    if (envp == NULL)
        return NULL;
    for (char *const *e = envp; *e != NULL; ++e)
        if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=')
            return *e + nl + 1;
    return NULL;
}

/* Splits argv[*i] ("--key", "--key=value") into a normalised key and its value (taking argv[*i + 1] when needed). */
static int split_flag(int argc, char **argv, int *i, char *key, size_t keylen, const char **value, char *err, size_t errlen)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        set_err(err, errlen, "unexpected argument \"%s\" (flags are --key value or --key=value; see --help)", arg);
        return RECD_EINVAL;
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
    if (!normalise_key(name, nlen, key, keylen)) {
        set_err(err, errlen, "unknown flag \"%s\" (see --help)", arg);
        return RECD_EINVAL;
    }
    if (strcmp(key, "config") != 0) {
        const option_t *o = find_option(key);
        if (o == NULL) {
            const char *s = suggest_key(key);
            if (s != NULL) {
                char flag[64];
                snprintf(flag, sizeof(flag), "%s", s);
                for (char *p = flag; *p != '\0'; ++p)
                    if (*p == '_')
                        *p = '-';
                set_err(err, errlen, "unknown flag \"--%.*s\" (did you mean \"--%s\"?)", (int)nlen, name, flag);
            } else {
                set_err(err, errlen, "unknown flag \"--%.*s\" (see --help)", (int)nlen, name);
            }
            return RECD_EINVAL;
        }
        if (o->type == OPT_BOOL && eq == NULL) {
            /* a boolean flag alone means true; a following true/false word is its value */
            int b;
            if (*i + 1 < argc && parse_bool(argv[*i + 1], &b)) {
                *value = argv[++*i];
            } else {
                *value = "true";
            }
            return RECD_OK;
        }
    }
    if (eq != NULL) {
        *value = eq + 1;
    } else {
        /* "--registry --model x" is a forgotten value, not a registry called "--model" (--key=--x still works) */
        if (*i + 1 >= argc || (strncmp(argv[*i + 1], "--", 2) == 0 && argv[*i + 1][2] != '\0')) {
            set_err(err, errlen, "flag --%.*s needs a value", (int)nlen, name);
            return RECD_EINVAL;
        }
        *value = argv[++*i];
    }
    return RECD_OK;
}

int recd_config_parse(recd_config_t *c, int argc, char **argv, char *const *envp, int *want_help, char *err, size_t errlen)
{
    const char *config_path = NULL;
    int ret;
    char key[64];
    const char *value;

    *want_help = 0;

    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            *want_help = 1;
            return RECD_OK;
        }
    }

    /* pass 1: syntax of every flag, and the config file to read first */
    for (int i = 1; i < argc; ++i) {
        if ((ret = split_flag(argc, argv, &i, key, sizeof(key), &value, err, errlen)) != RECD_OK)
            return ret;
        if (strcmp(key, "config") == 0)
            config_path = value;
    }
    if (config_path == NULL)
        config_path = env_lookup(envp, "RECD_CONFIG");
    if (config_path != NULL && config_path[0] != '\0' && (ret = recd_config_load_file(c, config_path, err, errlen)) != RECD_OK)
        return ret;
    if ((ret = recd_config_apply_env(c, envp, err, errlen)) != RECD_OK)
        return ret;

    /* pass 2: flags win over everything */
    for (int i = 1; i < argc; ++i) {
        const char *flag = argv[i];
        if ((ret = split_flag(argc, argv, &i, key, sizeof(key), &value, err, errlen)) != RECD_OK)
            return ret;
        if (strcmp(key, "config") == 0)
            continue;
        char where[80];
        const char *eq = strchr(flag, '=');
        snprintf(where, sizeof(where), "%.*s", eq != NULL ? (int)(eq - flag) : (int)strlen(flag), flag);
        if ((ret = set_from_string(c, find_option(key), where, value, err, errlen)) != RECD_OK)
            return ret;
    }
    return recd_config_check(c, err, errlen);
}

/* The flag spelling of a key: "max_k" -> "max-k". */
static void flag_name(const char *key, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%s", key);
    for (char *p = buf; *p != '\0'; ++p)
        if (*p == '_')
            *p = '-';
}

void recd_config_print_help(FILE *out, const char *argv0)
{
    fprintf(out,
            "Usage: %s [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n"
            "\n"
            "recd serves recommendations from the latest model version in a registry over HTTP.\n"
            "Each setting is taken from, in increasing priority: its default, the JSON file named by\n"
            "--config FILE (or RECD_CONFIG; none by default; config/recd.json lists every key),\n"
            "the environment variable RECD_<KEY>, then the flag --<key>. In flag names '-' and '_'\n"
            "are interchangeable; a boolean flag given alone means true.\n"
            "\n"
            "Options:\n"
            "  --config FILE\n"
            "      JSON object with any of the keys below. env RECD_CONFIG\n",
            argv0 != NULL ? argv0 : "recd");
    for (size_t i = 0; i != N_OPTIONS; ++i) {
        const option_t *o = &options[i];
        char flag[64], env[64];
        flag_name(o->key, flag, sizeof(flag));
        env_name(o->key, env, sizeof(env));
        fprintf(out, "  --%s %s\n      %s\n      key %s, %s", flag, o->metavar, o->doc, o->key, type_name(o->type));
        if (o->type == OPT_U32 || o->type == OPT_U64)
            fprintf(out, " %llu..%llu", (unsigned long long)o->min, (unsigned long long)o->max);
        fprintf(out, ", default %s, env %s\n", o->def, env);
    }
    fprintf(out, "  -h, --help\n      Print this help and exit.\n");
}

void recd_config_print_markdown(FILE *out)
{
    fprintf(out, "| key | flag | env | type | default | meaning |\n|---|---|---|---|---|---|\n");
    for (size_t i = 0; i != N_OPTIONS; ++i) {
        const option_t *o = &options[i];
        char flag[64], env[64];
        flag_name(o->key, flag, sizeof(flag));
        env_name(o->key, env, sizeof(env));
        fprintf(out, "| `%s` | `--%s` | `%s` | %s", o->key, flag, env, type_name(o->type));
        if (o->type == OPT_U32 || o->type == OPT_U64)
            fprintf(out, " %llu..%llu", (unsigned long long)o->min, (unsigned long long)o->max);
        fprintf(out, " | `%s` | %s |\n", o->def, o->doc);
    }
}

int recd_config_to_json(const recd_config_t *c, char *buf, size_t buflen)
{
    json_t *obj = json_object();
    int ret = RECD_OK;
    if (obj == NULL) {
        fprintf(stderr, "recd: out of memory\n");
        abort();
    }
    for (size_t i = 0; i != N_OPTIONS; ++i) {
        const option_t *o = &options[i];
        json_t *v = NULL;
        switch (o->type) {
        case OPT_STRING: {
            const char *s = *(char *const *)cfield(c, o);
            v = s != NULL ? json_string(s) : json_null();
        } break;
        case OPT_U32:
            v = json_integer(*(const uint32_t *)cfield(c, o));
            break;
        case OPT_U64:
            v = json_integer((json_int_t) * (const uint64_t *)cfield(c, o));
            break;
        case OPT_BOOL:
            v = json_boolean(*(const int *)cfield(c, o));
            break;
        }
        if (v == NULL || json_object_set_new(obj, o->key, v) != 0) {
            fprintf(stderr, "recd: out of memory\n");
            abort();
        }
    }
    size_t n = json_dumpb(obj, buf, buflen, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (n == 0 || n >= buflen) {
        ret = RECD_EINVAL;
        goto Exit;
    }
    buf[n] = '\0';
Exit:
    json_decref(obj);
    return ret;
}
