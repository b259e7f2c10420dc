/* updater.c: recd-updater's core — event parsing, grouping by user, the two Redis scripts, and the fold-in. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/alloc.h"
#include "base/error.h"
#include "base/text.h"
#include "models/event.h"
#include "serve/fold.h"
#include "updater/updater.h"

#define MAX_ID_BYTES 256       /* user and item ids, as recd's API accepts them */
#define MAX_EVENT_ID_BYTES 128 /* Contract A */
#define CHUNK_BYTES 65536

/* KEYS[1] recent list, KEYS[2..] recd:e:{<user>}:<id>; ARGV[1] dedup TTL, ARGV[2] max recent, ARGV[3] recent TTL, ARGV[4..]
 * entries. An event is pushed exactly when its dedup key was set, in one atomic step. */
static const char apply_script[] = "local applied = 0\n"
                                   "for i = 2, #KEYS do\n"
                                   "  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then\n"
                                   "    redis.call('LPUSH', KEYS[1], ARGV[i + 2])\n"
                                   "    applied = applied + 1\n"
                                   "  end\n"
                                   "end\n"
                                   "if applied > 0 then\n"
                                   "  redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)\n"
                                   "  redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
                                   "end\n"
                                   "local list = redis.call('LRANGE', KEYS[1], 0, -1)\n"
                                   "table.insert(list, 1, applied)\n"
                                   "return list\n";

/* KEYS[1] vec hash, KEYS[2] stamp; ARGV[1] "<model>@", ARGV[2] field, ARGV[3] bytes, ARGV[4] TTL, ARGV[5] stamp value. The
 * model's other versions' vectors were folded from an older list: drop them, so a rollback re-folds instead of serving
 * them. */
static const char vector_script[] = "for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
                                    "  if f ~= ARGV[2] and string.sub(f, 1, #ARGV[1]) == ARGV[1] then\n"
                                    "    redis.call('HDEL', KEYS[1], f)\n"
                                    "  end\n"
                                    "end\n"
                                    "redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])\n"
                                    "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
                                    "redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])\n"
                                    "return 1\n";

typedef struct st_chunk_t {
    struct st_chunk_t *next;
    size_t used, cap;
    char data[];
} chunk_t;

struct st_recd_updater_batch_t {
    chunk_t *chunks; /* the newest first */
    recd_updater_event_t *events;
    size_t n_events, cap_events;
    recd_updater_event_t *grouped; /* events reordered by user */
    recd_updater_user_t *users;
    size_t n_users, cap_grouped;
};

static void *batch_alloc(recd_updater_batch_t *b, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    chunk_t *c = b->chunks;
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > CHUNK_BYTES ? size : CHUNK_BYTES;
        c = recd_xmalloc(sizeof(*c) + cap);
        c->used = 0;
        c->cap = cap;
        c->next = b->chunks;
        b->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

recd_updater_batch_t *recd_updater_batch_create(void)
{
    return recd_xcalloc(1, sizeof(recd_updater_batch_t));
}

void recd_updater_batch_reset(recd_updater_batch_t *b)
{
    /* keep the first chunk (the oldest), drop the others: a batch's memory settles at one chunk in steady state */
    chunk_t *c = b->chunks, *keep = NULL;
    while (c != NULL) {
        chunk_t *next = c->next;
        if (next == NULL) {
            keep = c;
        } else {
            free(c);
        }
        c = next;
    }
    if (keep != NULL)
        keep->used = 0;
    b->chunks = keep;
    b->n_events = 0;
    b->n_users = 0;
}

void recd_updater_batch_free(recd_updater_batch_t *b)
{
    if (b == NULL)
        return;
    recd_updater_batch_reset(b);
    free(b->chunks);
    free(b->events);
    free(b->grouped);
    free(b->users);
    free(b);
}

char *recd_updater_batch_strdup(recd_updater_batch_t *b, const char *s, size_t len)
{
    char *p = batch_alloc(b, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

size_t recd_updater_batch_n_events(const recd_updater_batch_t *b)
{
    return b->n_events;
}

/* ---- parsing --------------------------------------------------------------------------------------------------- */

static int format_error(char *err, size_t errlen, const char *fmt, const char *field)
{
    snprintf(err, errlen, fmt, field);
    return RECD_EFORMAT;
}

static int event_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > MAX_EVENT_ID_BYTES)
        return 0;
    for (size_t i = 0; i < len; ++i) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* A user or item id: a non-empty UTF-8 string of at most MAX_ID_BYTES, as recd accepted it. */
static int get_id(json_t *root, const char *field, const char **out, size_t *len, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, field);
    if (!json_is_string(v))
        return format_error(err, errlen, "%s must be a string", field);
    *out = json_string_value(v);
    *len = json_string_length(v);
    if (*len == 0 || *len > MAX_ID_BYTES || !recd_utf8_valid(*out, *len))
        return format_error(err, errlen, "%s must be 1..256 bytes of UTF-8 without NUL", field);
    return 0;
}

int recd_updater_batch_add(recd_updater_batch_t *b, const char *value, size_t len, int64_t seq, const char *fallback_id, char *err,
                           size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(value, len, JSON_REJECT_DUPLICATES, &jerr), *v;
    recd_updater_event_t ev = {.seq = seq};
    const char *user, *item, *id = fallback_id;
    size_t user_len, item_len, id_len = strlen(fallback_id);
    int ret = RECD_EFORMAT, type;

    if (root == NULL) {
        snprintf(err, errlen, "not JSON: %s", jerr.text);
        goto Exit;
    }
    if (!json_is_object(root)) {
        ret = format_error(err, errlen, "%s", "the value must be a JSON object");
        goto Exit;
    }
    if (!json_is_integer(v = json_object_get(root, "v")) || json_integer_value(v) != 1) {
        ret = format_error(err, errlen, "%s must be the integer 1", "v");
        goto Exit;
    }
    if ((v = json_object_get(root, "event_id")) != NULL) {
        if (!json_is_string(v) || !event_id_valid(json_string_value(v), json_string_length(v))) {
            ret = format_error(err, errlen, "%s must be 1..128 bytes of [A-Za-z0-9_.:-]", "event_id");
            goto Exit;
        }
        id = json_string_value(v);
        id_len = json_string_length(v);
    }
    if ((ret = get_id(root, "user", &user, &user_len, err, errlen)) != 0 ||
        (ret = get_id(root, "item", &item, &item_len, err, errlen)) != 0)
        goto Exit;
    ret = RECD_EFORMAT;
    v = json_object_get(root, "type");
    if ((type = json_is_string(v) ? recd_event_type_parse(json_string_value(v), json_string_length(v)) : -1) < 0) {
        format_error(err, errlen, "%s must be one of view, click, add_to_cart, purchase, rating", "type");
        goto Exit;
    }
    if (!json_is_number(v = json_object_get(root, "ts")) || !isfinite(ev.ts = json_number_value(v))) {
        format_error(err, errlen, "%s must be a number (Unix seconds)", "ts");
        goto Exit;
    }
    double weight = 0;
    if ((v = json_object_get(root, "value")) != NULL) {
        if (!json_is_number(v) || !isfinite(weight = json_number_value(v))) {
            format_error(err, errlen, "%s must be a number", "value");
            goto Exit;
        }
    } else if (type == RECD_EVENT_RATING) {
        format_error(err, errlen, "%s is required for a rating", "value");
        goto Exit;
    }
    ev.weight = (float)recd_event_weight_of((recd_event_type_t)type, weight);
    ev.event_id = recd_updater_batch_strdup(b, id, id_len);
    ev.event_id_len = id_len;
    ev.user = recd_updater_batch_strdup(b, user, user_len);
    ev.user_len = user_len;
    ev.item = recd_updater_batch_strdup(b, item, item_len);
    ev.item_len = item_len;
    if (b->n_events == b->cap_events)
        b->events = recd_xreallocarray(b->events, b->cap_events = b->cap_events ? 2 * b->cap_events : 256, sizeof(*b->events));
    b->events[b->n_events++] = ev;
    ret = 0;
Exit:
    json_decref(root);
    return ret;
}

/* ---- grouping -------------------------------------------------------------------------------------------------- */

typedef struct st_ref_t {
    const recd_updater_event_t *ev;
    size_t index;
} ref_t;

static int cmp_user_then_index(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    size_t n = x->ev->user_len < y->ev->user_len ? x->ev->user_len : y->ev->user_len;
    int c = memcmp(x->ev->user, y->ev->user, n);
    if (c == 0)
        c = (x->ev->user_len > y->ev->user_len) - (x->ev->user_len < y->ev->user_len);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

const recd_updater_user_t *recd_updater_batch_users(recd_updater_batch_t *b, size_t *n)
{
    size_t n_events = b->n_events;
    if (n_events > b->cap_grouped) {
        free(b->grouped);
        free(b->users);
        b->grouped = recd_xmalloc(sizeof(*b->grouped) * n_events);
        b->users = recd_xmalloc(sizeof(*b->users) * n_events);
        b->cap_grouped = n_events;
    }
    ref_t *refs = recd_xmalloc(sizeof(*refs) * (n_events ? n_events : 1));
    for (size_t i = 0; i < n_events; ++i)
        refs[i] = (ref_t){&b->events[i], i};
    qsort(refs, n_events, sizeof(*refs), cmp_user_then_index);
    b->n_users = 0;
    size_t *first = recd_xmalloc(sizeof(*first) * (n_events ? n_events : 1));
    for (size_t i = 0; i < n_events; ++i) {
        b->grouped[i] = *refs[i].ev;
        if (i == 0 || cmp_user_then_index(&(ref_t){refs[i - 1].ev, 0}, &(ref_t){refs[i].ev, 0}) != 0) {
            first[b->n_users] = refs[i].index;
            b->users[b->n_users++] = (recd_updater_user_t){refs[i].ev->user, refs[i].ev->user_len, &b->grouped[i], 0};
        }
        b->users[b->n_users - 1].n_events++;
    }
    /* users in the order of their first event in the batch (a stable, readable order for logs and tests) */
    for (size_t u = 1; u < b->n_users; ++u) {
        recd_updater_user_t x = b->users[u];
        size_t fx = first[u], j = u;
        for (; j > 0 && first[j - 1] > fx; --j) {
            b->users[j] = b->users[j - 1];
            first[j] = first[j - 1];
        }
        b->users[j] = x;
        first[j] = fx;
    }
    free(first);
    free(refs);
    *n = b->n_users;
    return b->users;
}

/* ---- commands -------------------------------------------------------------------------------------------------- */

static void cmd_init(recd_updater_batch_t *b, recd_updater_cmd_t *c, int argc)
{
    c->argc = 0;
    c->argv = batch_alloc(b, sizeof(*c->argv) * (size_t)argc);
    c->argvlen = batch_alloc(b, sizeof(*c->argvlen) * (size_t)argc);
}

static void cmd_arg(recd_updater_cmd_t *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->argvlen[c->argc++] = len;
}

static void cmd_argf(recd_updater_batch_t *b, recd_updater_cmd_t *c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cmd_argf(recd_updater_batch_t *b, recd_updater_cmd_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = batch_alloc(b, (size_t)len + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    cmd_arg(c, s, (size_t)len);
}

/* recd:u:{<user>}:<kind>: {user} is the Redis Cluster hash tag, so one user's keys share a slot */
static void cmd_user_key(recd_updater_batch_t *b, recd_updater_cmd_t *c, const char *user, size_t len, const char *kind)
{
    cmd_argf(b, c, "recd:u:{%.*s}:%s", (int)len, user, kind);
}

const char *recd_updater_entry_format(recd_updater_batch_t *b, const recd_updater_event_t *ev, size_t *len)
{
    char w[32];
    int n = snprintf(w, sizeof(w), "%.9g\t", ev->weight); /* %.9g: a float32 reads back exactly */
    char *s = batch_alloc(b, (size_t)n + ev->item_len + 1);
    memcpy(s, w, (size_t)n);
    memcpy(s + n, ev->item, ev->item_len);
    s[n + ev->item_len] = '\0';
    *len = (size_t)n + ev->item_len;
    return s;
}

int recd_updater_entry_parse(const char *s, size_t len, recd_updater_entry_t *out)
{
    const char *tab = memchr(s, '\t', len);
    char num[32];
    if (tab == NULL || tab == s || (size_t)(tab - s) >= sizeof(num) || tab + 1 == s + len)
        return RECD_EFORMAT;
    memcpy(num, s, (size_t)(tab - s));
    num[tab - s] = '\0';
    char *end;
    float w = strtof(num, &end);
    if (*end != '\0' || !isfinite(w))
        return RECD_EFORMAT;
    *out = (recd_updater_entry_t){tab + 1, (size_t)(s + len - tab - 1), w};
    return 0;
}

void recd_updater_cmd_apply(recd_updater_batch_t *b, const recd_updater_user_t *u, const recd_updater_limits_t *lim,
                            recd_updater_cmd_t *out)
{
    cmd_init(b, out, 3 + 1 + (int)u->n_events + 3 + (int)u->n_events);
    cmd_arg(out, "EVAL", 4);
    cmd_arg(out, apply_script, sizeof(apply_script) - 1);
    cmd_argf(b, out, "%zu", 1 + u->n_events);
    cmd_user_key(b, out, u->user, u->user_len, "recent");
    for (size_t i = 0; i < u->n_events; ++i)
        /* the user's hash tag: the script's keys all hash to the user's slot, as Redis Cluster requires */
        cmd_argf(b, out, "recd:e:{%.*s}:%.*s", (int)u->user_len, u->user, (int)u->events[i].event_id_len, u->events[i].event_id);
    cmd_argf(b, out, "%u", lim->dedup_ttl_s);
    cmd_argf(b, out, "%u", lim->max_recent);
    cmd_argf(b, out, "%u", lim->recent_ttl_s);
    for (size_t i = 0; i < u->n_events; ++i) {
        size_t len;
        const char *e = recd_updater_entry_format(b, &u->events[i], &len);
        cmd_arg(out, e, len);
    }
}

void recd_updater_cmd_vector(recd_updater_batch_t *b, const recd_updater_user_t *u, const char *model, uint64_t version,
                             int64_t seq, const float *vec, uint32_t n_factors, const recd_updater_limits_t *lim,
                             recd_updater_cmd_t *out)
{
    cmd_init(b, out, 10);
    cmd_arg(out, "EVAL", 4);
    cmd_arg(out, vector_script, sizeof(vector_script) - 1);
    cmd_arg(out, "2", 1);
    cmd_user_key(b, out, u->user, u->user_len, "vec");
    cmd_user_key(b, out, u->user, u->user_len, "stamp");
    cmd_argf(b, out, "%s@", model);
    cmd_argf(b, out, "%s@%llu", model, (unsigned long long)version);
    unsigned char *bytes = batch_alloc(b, (size_t)n_factors * 4 + 1);
    for (uint32_t f = 0; f < n_factors; ++f) {
        uint32_t x;
        memcpy(&x, &vec[f], 4);
        for (int k = 0; k < 4; ++k)
            bytes[4 * f + (uint32_t)k] = (unsigned char)(x >> (8 * k)); /* little-endian whatever the host */
    }
    cmd_arg(out, (const char *)bytes, (size_t)n_factors * 4);
    cmd_argf(b, out, "%u", lim->vec_ttl_s);
    cmd_argf(b, out, "%s@%llu %lld", model, (unsigned long long)version, (long long)seq);
}

/* ---- versions and fold-in -------------------------------------------------------------------------------------- */

recd_model_t *recd_updater_user_model(const recd_catalog_t *c, const char *model, const char *user, size_t user_len)
{
    size_t n = 0, len = strlen(model);
    const recd_control_experiment_t *e = recd_catalog_experiments(c, model, len, &n);
    /* the same choice as recd's route stage: the first enabled experiment with arms routes the user by slot */
    for (size_t i = 0; i < n; ++i)
        if (recd_control_experiment_routes(&e[i]))
            return recd_catalog_version(c, model, len, e[i].arms[recd_control_arm_of(&e[i], user, user_len)].version);
    return recd_catalog_active(c, model, len);
}

typedef struct st_scratch_t {
    void *blocks[8];
    size_t n;
} scratch_t;

/* recd_serve_fold_user makes three allocations; they are freed together after the fold */
static void *scratch_alloc(void *ctx, size_t size)
{
    scratch_t *s = ctx;
    if (s->n == sizeof(s->blocks) / sizeof(s->blocks[0])) {
        fprintf(stderr, "recd-updater: fold scratch exhausted\n");
        abort();
    }
    return s->blocks[s->n++] = recd_xmalloc(size ? size : 1);
}

int recd_updater_fold(const recd_model_t *m, const char *user, size_t user_len, const recd_updater_entry_t *entries, size_t n,
                      float *vec)
{
    if (recd_model_n_factors(m) == 0)
        return RECD_EINVAL;
    uint32_t *items = recd_xmalloc(sizeof(*items) * (n ? n : 1));
    float *weights = recd_xmalloc(sizeof(*weights) * (n ? n : 1));
    size_t known = 0;
    for (size_t i = 0; i < n; ++i) {
        int64_t j = recd_model_find_item(m, entries[i].item, entries[i].item_len);
        if (j >= 0) {
            items[known] = (uint32_t)j;
            weights[known++] = entries[i].weight;
        }
    }
    scratch_t scratch = {.n = 0};
    int ret = recd_serve_fold_user(m, recd_model_find_user(m, user, user_len), items, weights, known, scratch_alloc, &scratch, vec);
    for (size_t i = 0; i < scratch.n; ++i)
        free(scratch.blocks[i]);
    free(items);
    free(weights);
    return ret;
}
