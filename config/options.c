/* options.c: the option engine — one table drives defaults, a JSON file, <PREFIX>_<KEY> variables, --flags, validation,
 * help and JSON output. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "base/alloc.h"
#include "base/error.h"
#include "config/options.h"

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
}

/* The flag spelling of a key: "max_k" -> "max-k". */
static void flag_name(const char *key, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%s", key);
    for (char *p = buf; *p != '\0'; ++p)
        if (*p == '_')
            *p = '-';
}

static const recd_option_t *find_option(const recd_options_t *spec, const char *key)
{
    for (size_t i = 0; i != spec->n_options; ++i)
        if (strcmp(spec->options[i].key, key) == 0)
            return &spec->options[i];
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
static const char *suggest_key(const recd_options_t *spec, const char *key)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i != spec->n_options; ++i) {
        size_t d = edit_distance(key, spec->options[i].key);
        if (d < best_d) {
            best_d = d;
            best = spec->options[i].key;
        }
    }
    if (best == NULL && strlen(key) >= 3) {
        for (size_t i = 0; i != spec->n_options; ++i)
            if (strncmp(spec->options[i].key, key, strlen(key)) == 0 || strstr(spec->options[i].key, key) != NULL)
                return spec->options[i].key;
    }
    return best;
}

static void unknown_key_err(const recd_options_t *spec, const char *where, const char *key, char *err, size_t errlen)
{
    const char *s = suggest_key(spec, key);
    if (s != NULL)
        set_err(err, errlen, "%s: unknown key \"%s\" (did you mean \"%s\"?)", where, key, s);
    else
        set_err(err, errlen, "%s: unknown key \"%s\" (see --help for the list)", where, key);
}

static void *field(void *c, const recd_option_t *o)
{
    return (char *)c + o->offset;
}

static const void *cfield(const void *c, const recd_option_t *o)
{
    return (const char *)c + o->offset;
}

static const char *type_name(recd_option_type_t t)
{
    switch (t) {
    case RECD_OPT_STRING:
        return "string";
    case RECD_OPT_U32:
    case RECD_OPT_U64:
        return "integer";
    case RECD_OPT_BOOL:
        return "boolean";
    case RECD_OPT_LIST:
        return "list";
    }
    return "?";
}

static int store_string(void *c, const recd_option_t *o, const char *where, const char *value, char *err, size_t errlen)
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

static int store_uint(void *c, const recd_option_t *o, const char *where, uint64_t value, char *err, size_t errlen)
{
    if (value < o->min || value > o->max) {
        set_err(err, errlen, "%s: %s must be %llu..%llu, got %llu", where, o->key, (unsigned long long)o->min,
                (unsigned long long)o->max, (unsigned long long)value);
        return RECD_EINVAL;
    }
    if (o->type == RECD_OPT_U32)
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
static int set_from_string(void *c, const recd_option_t *o, const char *where, const char *value, char *err, size_t errlen)
{
    switch (o->type) {
    case RECD_OPT_STRING:
    case RECD_OPT_LIST:
        return store_string(c, o, where, value, err, errlen);
    case RECD_OPT_U32:
    case RECD_OPT_U64: {
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
    case RECD_OPT_BOOL: {
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

static int set_from_json(void *c, const recd_option_t *o, const char *where, json_t *v, char *err, size_t errlen);

/* A list option from a JSON array of strings: joined with commas, so each must be non-empty and free of commas. */
static int set_list_from_json(void *c, const recd_option_t *o, const char *where, json_t *v, char *err, size_t errlen)
{
    size_t i, len = 0;
    json_t *s;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        set_err(err, errlen, "%s: %s must be a JSON string or a non-empty array of strings", where, o->key);
        return RECD_EINVAL;
    }
    json_array_foreach(v, i, s)
    {
        if (!json_is_string(s) || json_string_length(s) == 0 || strlen(json_string_value(s)) != json_string_length(s) ||
            strchr(json_string_value(s), ',') != NULL) {
            set_err(err, errlen, "%s: %s[%zu] must be a non-empty string without commas or NUL characters", where, o->key, i);
            return RECD_EINVAL;
        }
        len += json_string_length(s) + 1;
    }
    char *joined = recd_xmalloc(len), *p = joined;
    json_array_foreach(v, i, s)
    {
        if (i != 0)
            *p++ = ',';
        memcpy(p, json_string_value(s), json_string_length(s));
        p += json_string_length(s);
    }
    *p = '\0';
    int ret = store_string(c, o, where, joined, err, errlen);
    free(joined);
    return ret;
}

/* Sets an option from a JSON value of the matching type. */
static int set_from_json(void *c, const recd_option_t *o, const char *where, json_t *v, char *err, size_t errlen)
{
    switch (o->type) {
    case RECD_OPT_STRING:
        if (!json_is_string(v))
            goto WrongType;
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            set_err(err, errlen, "%s: %s must not contain NUL characters", where, o->key);
            return RECD_EINVAL;
        }
        return store_string(c, o, where, json_string_value(v), err, errlen);
    case RECD_OPT_U32:
    case RECD_OPT_U64:
        if (!json_is_integer(v))
            goto WrongType;
        if (json_integer_value(v) < 0) {
            set_err(err, errlen, "%s: %s must be %llu..%llu, got %lld", where, o->key, (unsigned long long)o->min,
                    (unsigned long long)o->max, (long long)json_integer_value(v));
            return RECD_EINVAL;
        }
        return store_uint(c, o, where, (uint64_t)json_integer_value(v), err, errlen);
    case RECD_OPT_BOOL:
        if (!json_is_boolean(v))
            goto WrongType;
        *(int *)field(c, o) = json_is_true(v);
        return RECD_OK;
    case RECD_OPT_LIST:
        if (json_is_string(v))
            return set_from_json(c,
                                 &(recd_option_t){.key = o->key, .type = RECD_OPT_STRING, .offset = o->offset, .check = o->check},
                                 where, v, err, errlen);
        return set_list_from_json(c, o, where, v, err, errlen);
    }
WrongType:
    set_err(err, errlen, "%s: %s must be a JSON %s", where, o->key, type_name(o->type));
    return RECD_EINVAL;
}

int recd_options_load_file(const recd_options_t *spec, void *c, const char *path, char *err, size_t errlen)
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
        const recd_option_t *o = find_option(spec, key);
        if (o == NULL) {
            unknown_key_err(spec, where, key, err, errlen);
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
static void env_name(const recd_options_t *spec, const char *key, char *buf, size_t buflen)
{
    size_t plen = strlen(spec->env_prefix) + 1;
    size_t n = (size_t)snprintf(buf, buflen, "%s_%s", spec->env_prefix, key);
    for (size_t i = plen; i < n && i < buflen; ++i)
        buf[i] = (char)toupper((unsigned char)buf[i]);
}

int recd_options_apply_env(const recd_options_t *spec, void *c, char *const *envp, char *err, size_t errlen)
{
    if (envp == NULL || spec->env_prefix == NULL)
        return RECD_OK;
    /* Only the variables named after keys are read: other RECD_* variables (RECD_CONFIG, RECD_DATA_DIR, ...) belong to
     * other tools, so an unknown one is not an error. */
    for (size_t i = 0; i != spec->n_options; ++i) {
        char name[64];
        env_name(spec, spec->options[i].key, name, sizeof(name));
        size_t nl = strlen(name);
        for (char *const *e = envp; *e != NULL; ++e) {
            if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=') {
                int ret = set_from_string(c, &spec->options[i], name, *e + nl + 1, err, errlen);
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

int recd_options_set(const recd_options_t *spec, void *c, const char *key, const char *value, char *err, size_t errlen)
{
    char norm[64];
    const recd_option_t *o = NULL;
    if (normalise_key(key, strlen(key), norm, sizeof(norm)))
        o = find_option(spec, norm);
    if (o == NULL) {
        unknown_key_err(spec, "config", normalise_key(key, strlen(key), norm, sizeof(norm)) ? norm : key, err, errlen);
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
static int split_flag(const recd_options_t *spec, int argc, char **argv, int *i, char *key, size_t keylen, const char **value,
                      char *err, size_t errlen)
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
    if (!spec->has_config_file || strcmp(key, "config") != 0) {
        const recd_option_t *o = find_option(spec, key);
        if (o == NULL) {
            const char *s = suggest_key(spec, key);
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
        if (o->type == RECD_OPT_BOOL && eq == NULL) {
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

/* A required option (no default) still unset: NULL, or 0 below its range. */
static int check_required(const recd_options_t *spec, const void *c, char *err, size_t errlen)
{
    for (size_t i = 0; i != spec->n_options; ++i) {
        const recd_option_t *o = &spec->options[i];
        int missing = 0;
        if (o->def != NULL)
            continue;
        switch (o->type) {
        case RECD_OPT_STRING:
        case RECD_OPT_LIST:
            missing = *(char *const *)cfield(c, o) == NULL;
            break;
        case RECD_OPT_U32:
            missing = *(const uint32_t *)cfield(c, o) < o->min;
            break;
        case RECD_OPT_U64:
            missing = *(const uint64_t *)cfield(c, o) < o->min;
            break;
        case RECD_OPT_BOOL:
            break;
        }
        if (missing) {
            char flag[64];
            flag_name(o->key, flag, sizeof(flag));
            set_err(err, errlen, "--%s is required (see --help)", flag);
            return RECD_EINVAL;
        }
    }
    return RECD_OK;
}

int recd_options_parse(const recd_options_t *spec, void *c, int argc, char **argv, char *const *envp, int *want_help, char *err,
                       size_t errlen)
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
        if ((ret = split_flag(spec, argc, argv, &i, key, sizeof(key), &value, err, errlen)) != RECD_OK)
            return ret;
        if (spec->has_config_file && strcmp(key, "config") == 0)
            config_path = value;
    }
    if (config_path == NULL && spec->has_config_file && spec->env_prefix != NULL) {
        char name[64];
        snprintf(name, sizeof(name), "%s_CONFIG", spec->env_prefix);
        config_path = env_lookup(envp, name);
    }
    if (config_path != NULL && config_path[0] != '\0' &&
        (ret = recd_options_load_file(spec, c, config_path, err, errlen)) != RECD_OK)
        return ret;
    if ((ret = recd_options_apply_env(spec, c, envp, err, errlen)) != RECD_OK)
        return ret;

    /* pass 2: flags win over everything; a list flag given again appends */
    unsigned char *seen = recd_xcalloc(spec->n_options, 1);
    for (int i = 1; i < argc; ++i) {
        const char *flag = argv[i];
        if ((ret = split_flag(spec, argc, argv, &i, key, sizeof(key), &value, err, errlen)) != RECD_OK)
            goto Exit;
        if (spec->has_config_file && strcmp(key, "config") == 0)
            continue;
        char where[80];
        const char *eq = strchr(flag, '=');
        const recd_option_t *o = find_option(spec, key);
        snprintf(where, sizeof(where), "%.*s", eq != NULL ? (int)(eq - flag) : (int)strlen(flag), flag);
        if (o->type == RECD_OPT_LIST && seen[o - spec->options]) {
            const char *have = *(char *const *)cfield(c, o);
            size_t hl = strlen(have), vl = strlen(value);
            char *joined = recd_xmalloc(hl + vl + 2);
            memcpy(joined, have, hl);
            joined[hl] = ',';
            memcpy(joined + hl + 1, value, vl + 1);
            ret = set_from_string(c, o, where, joined, err, errlen);
            free(joined);
        } else {
            ret = set_from_string(c, o, where, value, err, errlen);
        }
        if (ret != RECD_OK)
            goto Exit;
        seen[o - spec->options] = 1;
    }
    ret = check_required(spec, c, err, errlen);
Exit:
    free(seen);
    return ret;
}

void recd_options_print(const recd_options_t *spec, FILE *out)
{
    for (size_t i = 0; i != spec->n_options; ++i) {
        const recd_option_t *o = &spec->options[i];
        char flag[64], env[64];
        flag_name(o->key, flag, sizeof(flag));
        fprintf(out, "  --%s %s\n      %s\n      key %s, %s", flag, o->metavar, o->doc, o->key, type_name(o->type));
        if (o->type == RECD_OPT_U32 || o->type == RECD_OPT_U64)
            fprintf(out, " %llu..%llu", (unsigned long long)o->min, (unsigned long long)o->max);
        fprintf(out, ", %s%s", o->def != NULL ? "default " : "required", o->def != NULL ? o->def : "");
        if (spec->env_prefix != NULL) {
            env_name(spec, o->key, env, sizeof(env));
            fprintf(out, ", env %s", env);
        }
        fprintf(out, "\n");
    }
}

void recd_options_print_markdown(const recd_options_t *spec, FILE *out)
{
    fprintf(out, "| key | flag | env | type | default | meaning |\n|---|---|---|---|---|---|\n");
    for (size_t i = 0; i != spec->n_options; ++i) {
        const recd_option_t *o = &spec->options[i];
        char flag[64], env[64] = "";
        flag_name(o->key, flag, sizeof(flag));
        if (spec->env_prefix != NULL)
            env_name(spec, o->key, env, sizeof(env));
        fprintf(out, "| `%s` | `--%s` | `%s` | %s", o->key, flag, env, type_name(o->type));
        if (o->type == RECD_OPT_U32 || o->type == RECD_OPT_U64)
            fprintf(out, " %llu..%llu", (unsigned long long)o->min, (unsigned long long)o->max);
        fprintf(out, " | `%s` | %s |\n", o->def != NULL ? o->def : "(required)", o->doc);
    }
}

int recd_options_to_json(const recd_options_t *spec, const void *c, char *buf, size_t buflen)
{
    json_t *obj = json_object();
    int ret = RECD_OK;
    if (obj == NULL) {
        fprintf(stderr, "recd: out of memory\n");
        abort();
    }
    for (size_t i = 0; i != spec->n_options; ++i) {
        const recd_option_t *o = &spec->options[i];
        json_t *v = NULL;
        switch (o->type) {
        case RECD_OPT_STRING: {
            const char *s = *(char *const *)cfield(c, o);
            v = s != NULL ? json_string(s) : json_null();
        } break;
        case RECD_OPT_U32:
            v = json_integer(*(const uint32_t *)cfield(c, o));
            break;
        case RECD_OPT_U64:
            v = json_integer((json_int_t) * (const uint64_t *)cfield(c, o));
            break;
        case RECD_OPT_BOOL:
            v = json_boolean(*(const int *)cfield(c, o));
            break;
        case RECD_OPT_LIST: {
            const char *s = *(char *const *)cfield(c, o);
            size_t n = 0;
            char **items = s != NULL ? recd_options_list_items(s, &n) : NULL;
            v = s != NULL ? json_array() : json_null();
            for (size_t k = 0; k < n && v != NULL; ++k)
                if (json_array_append_new(v, json_string(items[k])) != 0) {
                    json_decref(v);
                    v = NULL;
                }
            free(items);
        } break;
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

void recd_options_init(const recd_options_t *spec, void *c)
{
    char err[256];
    for (size_t i = 0; i != spec->n_options; ++i) {
        const recd_option_t *o = &spec->options[i];
        if (o->def != NULL && set_from_string(c, o, "default", o->def, err, sizeof(err)) != RECD_OK) {
            fprintf(stderr, "recd: invalid built-in default: %s\n", err);
            abort();
        }
    }
}

void recd_options_dispose(const recd_options_t *spec, void *c)
{
    for (size_t i = 0; i != spec->n_options; ++i) {
        if (spec->options[i].type == RECD_OPT_STRING || spec->options[i].type == RECD_OPT_LIST) {
            char **slot = field(c, &spec->options[i]);
            free(*slot);
            *slot = NULL;
        }
    }
}

char **recd_options_list_items(const char *value, size_t *n)
{
    size_t len = strlen(value), count = len != 0;
    for (const char *p = value; *p != '\0'; ++p)
        count += *p == ',';
    /* the pointers, then a copy of value whose commas become NULs */
    char **items = recd_xmalloc(count * sizeof(*items) + len + 1), *copy = (char *)(items + count);
    memcpy(copy, value, len + 1);
    *n = 0;
    for (char *p = copy; count != 0;) {
        items[(*n)++] = p;
        if ((p = strchr(p, ',')) == NULL)
            break;
        *p++ = '\0';
    }
    return items;
}
