/* codec.c: pure JSON codecs of API v1 — request parsing and validation into structs, response rendering into pool memory. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include "base/error.h"
#include "api/api_internal.h"

/* ---- request parsing ------------------------------------------------------------------------------------------- */

static json_t *load_object(const char *body, size_t len, recd_api_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        recd_api_error_set(err, 400, "invalid_argument", "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                           jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        recd_api_error_set(err, 400, "invalid_argument", "the body must be a JSON object");
        return NULL;
    }
    return root;
}

static h2o_iovec_t pool_string(h2o_mem_pool_t *pool, json_t *s)
{
    return h2o_strdup(pool, json_string_value(s), json_string_length(s));
}

/* Reads an id member: a string passing recd_api_check_id. field is the name used in messages. */
static int get_id(json_t *v, const char *field, h2o_mem_pool_t *pool, h2o_iovec_t *out, recd_api_error_t *err)
{
    if (!json_is_string(v))
        return recd_api_error_set(err, 400, "invalid_argument", "%s must be a string", field);
    *out = pool_string(pool, v);
    return recd_api_check_id(field, *out, err);
}

static int get_id_list(json_t *v, const char *field, h2o_mem_pool_t *pool, h2o_iovec_t **out, size_t *n, recd_api_error_t *err)
{
    char name[64];
    if (!json_is_array(v))
        return recd_api_error_set(err, 400, "invalid_argument", "%s must be an array of strings", field);
    if (json_array_size(v) > RECD_API_MAX_LIST)
        return recd_api_error_set(err, 400, "invalid_argument", "%s has more than %d entries", field, RECD_API_MAX_LIST);
    *n = json_array_size(v);
    *out = h2o_mem_alloc_pool(pool, sizeof(**out) * (*n ? *n : 1));
    for (size_t i = 0; i < *n; ++i) {
        snprintf(name, sizeof(name), "%s[%zu]", field, i);
        if (get_id(json_array_get(v, i), name, pool, &(*out)[i], err) != 0)
            return -1;
    }
    return 0;
}

/* search=exact|approximate (anything else is a 400). */
static int parse_search(const char *s, size_t len, const char *field, int *out, recd_api_error_t *err)
{
    if (len == 5 && memcmp(s, "exact", 5) == 0)
        *out = RECD_SERVE_SEARCH_EXACT;
    else if (len == 11 && memcmp(s, "approximate", 11) == 0)
        *out = RECD_SERVE_SEARCH_APPROXIMATE;
    else
        return recd_api_error_set(err, 400, "invalid_argument", "%s must be \"exact\" or \"approximate\"", field);
    return 0;
}

int recd_codec_parse_recs_query(const char *q, size_t len, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool,
                                recd_recs_request_t *out, recd_api_error_t *err)
{
    recd_query_param_t params[RECD_QUERY_MAX_PARAMS];
    const h2o_iovec_t *v;
    size_t n;

    memset(out, 0, sizeof(*out));
    out->k = default_k;
    if (recd_query_parse(q, len, pool, params, RECD_QUERY_MAX_PARAMS, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; ++i)
        if (!h2o_memis(params[i].name.base, params[i].name.len, H2O_STRLIT("user")) &&
            !h2o_memis(params[i].name.base, params[i].name.len, H2O_STRLIT("k")) &&
            !h2o_memis(params[i].name.base, params[i].name.len, H2O_STRLIT("model")) &&
            !h2o_memis(params[i].name.base, params[i].name.len, H2O_STRLIT("search")))
            return recd_api_error_set(err, 400, "invalid_argument",
                                      "unknown query parameter '%.*s' (expected user, k, model, search)",
                                      (int)(params[i].name.len > 64 ? 64 : params[i].name.len), params[i].name.base);
    if ((v = recd_query_find(params, n, "user")) == NULL)
        return recd_api_error_set(err, 400, "invalid_argument", "user is required");
    if (recd_api_check_id("user", *v, err) != 0)
        return -1;
    out->user = *v;
    if ((v = recd_query_find(params, n, "k")) != NULL && recd_api_parse_k(*v, max_k, &out->k, err) != 0)
        return -1;
    if ((v = recd_query_find(params, n, "model")) != NULL) {
        if (recd_api_check_model(*v, err) != 0)
            return -1;
        out->model = *v;
    }
    if ((v = recd_query_find(params, n, "search")) != NULL && parse_search(v->base, v->len, "search", &out->search, err) != 0)
        return -1;
    return 0;
}

int recd_codec_parse_recs_object(json_t *root, const char *prefix, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool,
                                 recd_recs_request_t *out, recd_api_error_t *err)
{
    json_t *v;
    const char *key;
    char field[64];

    memset(out, 0, sizeof(*out));
    out->k = default_k;
    if (!json_is_object(root))
        return recd_api_error_set(err, 400, "invalid_argument", "%s must be a JSON object", prefix[0] ? prefix : "the body");
#define FIELD(name) (snprintf(field, sizeof(field), "%s%s", prefix, name), field)
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "user") != 0 && strcmp(key, "k") != 0 && strcmp(key, "recent_items") != 0 && strcmp(key, "exclude") != 0 &&
            strcmp(key, "model") != 0 && strcmp(key, "search") != 0)
            return recd_api_error_set(err, 400, "invalid_argument",
                                      "unknown field '%s%.64s' (expected user, k, recent_items, exclude, model, search)", prefix,
                                      key);
    }
    if ((v = json_object_get(root, "user")) == NULL)
        return recd_api_error_set(err, 400, "invalid_argument", "%s is required", FIELD("user"));
    if (get_id(v, FIELD("user"), pool, &out->user, err) != 0)
        return -1;
    if ((v = json_object_get(root, "k")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (json_int_t)max_k)
            return recd_api_error_set(err, 400, "invalid_argument", "%s must be an integer in 1..%u", FIELD("k"), max_k);
        out->k = (uint32_t)json_integer_value(v);
    }
    if ((v = json_object_get(root, "recent_items")) != NULL &&
        get_id_list(v, FIELD("recent_items"), pool, &out->recent_items, &out->n_recent, err) != 0)
        return -1;
    if ((v = json_object_get(root, "exclude")) != NULL &&
        get_id_list(v, FIELD("exclude"), pool, &out->exclude, &out->n_exclude, err) != 0)
        return -1;
    if ((v = json_object_get(root, "model")) != NULL) {
        if (!json_is_string(v))
            return recd_api_error_set(err, 400, "invalid_argument", "%s must be a string", FIELD("model"));
        out->model = pool_string(pool, v);
        if (recd_api_check_model(out->model, err) != 0)
            return -1;
    }
    if ((v = json_object_get(root, "search")) != NULL) {
        if (!json_is_string(v))
            return recd_api_error_set(err, 400, "invalid_argument", "%s must be \"exact\" or \"approximate\"", FIELD("search"));
        if (parse_search(json_string_value(v), json_string_length(v), FIELD("search"), &out->search, err) != 0)
            return -1;
    }
#undef FIELD
    return 0;
}

int recd_codec_parse_recs_body(const char *body, size_t len, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool,
                               recd_recs_request_t *out, recd_api_error_t *err)
{
    json_t *root;
    memset(out, 0, sizeof(*out));
    if ((root = load_object(body, len, err)) == NULL)
        return -1;
    int ret = recd_codec_parse_recs_object(root, "", default_k, max_k, pool, out, err);
    json_decref(root);
    return ret;
}

int recd_codec_parse_recs_batch(const char *body, size_t len, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool,
                                recd_recs_request_t **out, recd_api_error_t **errs, size_t *n, recd_api_error_t *err)
{
    json_t *root, *requests, *v;
    const char *key;
    char prefix[32];
    int ret = -1;

    if ((root = load_object(body, len, err)) == NULL)
        return -1;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "requests") != 0) {
            recd_api_error_set(err, 400, "invalid_argument", "unknown field '%.64s' (expected requests)", key);
            goto Exit;
        }
    }
    if (!json_is_array(requests = json_object_get(root, "requests")) || json_array_size(requests) == 0 ||
        json_array_size(requests) > RECD_API_MAX_BATCH) {
        recd_api_error_set(err, 400, "invalid_argument", "requests must be an array of 1..%d request objects", RECD_API_MAX_BATCH);
        goto Exit;
    }
    *n = json_array_size(requests);
    *out = h2o_mem_alloc_pool(pool, sizeof(**out) * *n);
    *errs = h2o_mem_alloc_pool(pool, sizeof(**errs) * *n);
    for (size_t i = 0; i < *n; ++i) {
        snprintf(prefix, sizeof(prefix), "requests[%zu].", i);
        (*errs)[i].status = 0;
        if (recd_codec_parse_recs_object(json_array_get(requests, i), prefix, default_k, max_k, pool, &(*out)[i], &(*errs)[i]) !=
                0 &&
            !json_is_object(json_array_get(requests, i)))
            recd_api_error_set(&(*errs)[i], 400, "invalid_argument", "requests[%zu] must be a JSON object", i);
    }
    ret = 0;
Exit:
    json_decref(root);
    return ret;
}

int recd_codec_parse_similar_query(const char *q, size_t len, uint32_t default_k, uint32_t max_k, h2o_mem_pool_t *pool, uint32_t *k,
                                   h2o_iovec_t *model, recd_api_error_t *err)
{
    recd_query_param_t params[RECD_QUERY_MAX_PARAMS];
    const h2o_iovec_t *v;
    size_t n;

    *k = default_k;
    *model = h2o_iovec_init(NULL, 0);
    if (recd_query_parse(q, len, pool, params, RECD_QUERY_MAX_PARAMS, &n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; ++i)
        if (!h2o_memis(params[i].name.base, params[i].name.len, H2O_STRLIT("k")) &&
            !h2o_memis(params[i].name.base, params[i].name.len, H2O_STRLIT("model")))
            return recd_api_error_set(err, 400, "invalid_argument", "unknown query parameter '%.*s' (expected k, model)",
                                      (int)(params[i].name.len > 64 ? 64 : params[i].name.len), params[i].name.base);
    if ((v = recd_query_find(params, n, "k")) != NULL && recd_api_parse_k(*v, max_k, k, err) != 0)
        return -1;
    if ((v = recd_query_find(params, n, "model")) != NULL) {
        if (recd_api_check_model(*v, err) != 0)
            return -1;
        *model = *v;
    }
    return 0;
}

/* ---- events ------------------------------------------------------------------------------------------------------ */

float recd_event_weight(const recd_event_t *ev)
{
    return (float)recd_event_weight_of(ev->type, ev->value);
}

int recd_codec_parse_iso8601(const char *s, size_t len, double *epoch)
{
    return recd_iso8601_parse(s, len, RECD_ISO8601_STRICT, epoch);
}

static int parse_event(json_t *obj, const char *prefix, double now, h2o_mem_pool_t *pool, recd_event_t *ev, recd_api_error_t *err)
{
    char field[64];
    const char *key;
    json_t *v;

    memset(ev, 0, sizeof(*ev));
    if (!json_is_object(obj))
        return recd_api_error_set(err, 400, "invalid_argument", "%s must be an object", prefix[0] ? prefix : "event");
#define FIELD(name) (snprintf(field, sizeof(field), "%s%s%s", prefix, prefix[0] ? "." : "", (name)), field)
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "user") != 0 && strcmp(key, "item") != 0 && strcmp(key, "type") != 0 && strcmp(key, "value") != 0 &&
            strcmp(key, "ts") != 0 && strcmp(key, "request_id") != 0 && strcmp(key, "event_id") != 0)
            return recd_api_error_set(err, 400, "invalid_argument",
                                      "%s: unknown field (expected user, item, type, value, ts, request_id, event_id)", FIELD(key));
    }
    if ((v = json_object_get(obj, "event_id")) != NULL) {
        if (!json_is_string(v) || !recd_event_id_valid(json_string_value(v), json_string_length(v)))
            return recd_api_error_set(err, 400, "invalid_argument", "%s must be 1..%d characters of A-Z a-z 0-9 _ . : -",
                                      FIELD("event_id"), RECD_EVENT_ID_MAX_BYTES);
        ev->event_id = pool_string(pool, v);
    }
    if ((v = json_object_get(obj, "user")) == NULL)
        return recd_api_error_set(err, 400, "invalid_argument", "%s is required", FIELD("user"));
    if (get_id(v, FIELD("user"), pool, &ev->user, err) != 0)
        return -1;
    if ((v = json_object_get(obj, "item")) == NULL)
        return recd_api_error_set(err, 400, "invalid_argument", "%s is required", FIELD("item"));
    if (get_id(v, FIELD("item"), pool, &ev->item, err) != 0)
        return -1;
    if ((v = json_object_get(obj, "type")) == NULL)
        return recd_api_error_set(err, 400, "invalid_argument", "%s is required", FIELD("type"));
    {
        int t = json_is_string(v) ? recd_event_type_parse(json_string_value(v), json_string_length(v)) : -1;
        if (t < 0)
            return recd_api_error_set(err, 400, "invalid_argument", "%s must be one of view, click, add_to_cart, purchase, rating",
                                      FIELD("type"));
        ev->type = (recd_event_type_t)t;
    }
    if ((v = json_object_get(obj, "value")) != NULL) {
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return recd_api_error_set(err, 400, "invalid_argument", "%s must be a number", FIELD("value"));
        ev->has_value = 1;
        ev->value = json_number_value(v);
    } else if (ev->type == RECD_EVENT_RATING) {
        return recd_api_error_set(err, 400, "invalid_argument", "%s is required for a rating", FIELD("value"));
    }
    ev->ts = now;
    if ((v = json_object_get(obj, "ts")) != NULL) {
        if (json_is_number(v)) {
            ev->ts = json_number_value(v);
            if (!isfinite(ev->ts) || ev->ts < 0)
                return recd_api_error_set(err, 400, "invalid_argument", "%s must be non-negative epoch seconds", FIELD("ts"));
        } else if (!json_is_string(v) || recd_codec_parse_iso8601(json_string_value(v), json_string_length(v), &ev->ts) != 0) {
            return recd_api_error_set(err, 400, "invalid_argument",
                                      "%s must be epoch seconds or an ISO-8601 time like 2024-05-01T12:00:00Z", FIELD("ts"));
        }
    }
    if ((v = json_object_get(obj, "request_id")) != NULL) {
        if (!json_is_string(v))
            return recd_api_error_set(err, 400, "invalid_argument", "%s must be a string", FIELD("request_id"));
        ev->request_id = pool_string(pool, v);
        if (ev->request_id.len > RECD_API_MAX_ID_BYTES || !recd_utf8_valid(ev->request_id.base, ev->request_id.len))
            return recd_api_error_set(err, 400, "invalid_argument", "%s must be valid UTF-8 of at most %d bytes",
                                      FIELD("request_id"), RECD_API_MAX_ID_BYTES);
    }
#undef FIELD
    return 0;
}

int recd_codec_parse_events(const char *body, size_t len, double now, h2o_mem_pool_t *pool, recd_event_t **events, size_t *n,
                            recd_api_error_t *err)
{
    json_t *root, *list;
    int ret = -1;

    if ((root = load_object(body, len, err)) == NULL)
        return -1;
    if ((list = json_object_get(root, "events")) != NULL) {
        char prefix[32];
        if (json_object_size(root) != 1) {
            recd_api_error_set(err, 400, "invalid_argument", "a batch body has only the member \"events\"");
            goto Exit;
        }
        if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > RECD_API_MAX_EVENTS) {
            recd_api_error_set(err, 400, "invalid_argument", "events must be an array of 1..%d events", RECD_API_MAX_EVENTS);
            goto Exit;
        }
        *n = json_array_size(list);
        *events = h2o_mem_alloc_pool(pool, sizeof(**events) * *n);
        for (size_t i = 0; i < *n; ++i) {
            snprintf(prefix, sizeof(prefix), "events[%zu]", i);
            if (parse_event(json_array_get(list, i), prefix, now, pool, &(*events)[i], err) != 0)
                goto Exit;
        }
    } else {
        *n = 1;
        *events = h2o_mem_alloc_pool(pool, sizeof(**events));
        if (parse_event(root, "", now, pool, *events, err) != 0)
            goto Exit;
    }
    ret = 0;
Exit:
    json_decref(root);
    return ret;
}

int recd_codec_assign_event_ids(recd_event_t *events, size_t n, double now, h2o_mem_pool_t *pool)
{
    uint64_t unix_ms = (uint64_t)(now * 1000);

    for (size_t i = 0; i < n; ++i) {
        uint8_t random[RECD_EVENT_ID_RANDOM_BYTES];
        if (events[i].event_id.base != NULL)
            continue;
        if (getrandom(random, sizeof(random), 0) != (ssize_t)sizeof(random))
            return RECD_EIO;
        char *id = h2o_mem_alloc_pool(pool, RECD_EVENT_ID_LEN + 1);
        recd_event_id_format(id, unix_ms, random);
        events[i].event_id = h2o_iovec_init(id, RECD_EVENT_ID_LEN);
    }
    return 0;
}

void recd_codec_render_event_line(recd_jw_t *w, const recd_event_t *ev, double received_at)
{
    char tmp[64];
    int n;
    recd_jw_lit(w, "{\"v\":1,\"event_id\":");
    recd_jw_str(w, ev->event_id.base, ev->event_id.len);
    recd_jw_lit(w, ",\"user\":");
    recd_jw_str(w, ev->user.base, ev->user.len);
    recd_jw_lit(w, ",\"item\":");
    recd_jw_str(w, ev->item.base, ev->item.len);
    recd_jw_lit(w, ",\"type\":\"");
    recd_jw_raw(w, recd_event_type_name(ev->type), strlen(recd_event_type_name(ev->type)));
    recd_jw_lit(w, "\"");
    n = snprintf(tmp, sizeof(tmp), ",\"ts\":%.17g", ev->ts);
    recd_jw_raw(w, tmp, (size_t)n);
    if (ev->has_value) {
        n = snprintf(tmp, sizeof(tmp), ",\"value\":%.17g", ev->value);
        recd_jw_raw(w, tmp, (size_t)n);
    }
    if (ev->request_id.base != NULL) {
        recd_jw_lit(w, ",\"request_id\":");
        recd_jw_str(w, ev->request_id.base, ev->request_id.len);
    }
    n = snprintf(tmp, sizeof(tmp), ",\"received_at\":%.3f}\n", received_at);
    recd_jw_raw(w, tmp, (size_t)n);
}

/* ---- responses ----------------------------------------------------------------------------------------------------- */

static void render_model(recd_jw_t *w, h2o_iovec_t model, uint64_t version)
{
    recd_jw_lit(w, "\"");
    recd_jw_escaped(w, model.base, model.len);
    recd_jw_lit(w, "@");
    recd_jw_u64(w, version);
    recd_jw_lit(w, "\"");
}

static void render_items(recd_jw_t *w, const recd_api_item_t *items, size_t n)
{
    recd_jw_lit(w, "[");
    for (size_t i = 0; i < n; ++i) {
        if (i != 0)
            recd_jw_lit(w, ",");
        recd_jw_lit(w, "{\"item\":");
        recd_jw_str(w, items[i].id.base, items[i].id.len);
        recd_jw_lit(w, ",\"score\":");
        recd_jw_double(w, items[i].score);
        recd_jw_lit(w, "}");
    }
    recd_jw_lit(w, "]");
}

/* A NUL-terminated string, or null. */
static void str_or_null(recd_jw_t *w, const char *s)
{
    if (s != NULL)
        recd_jw_str(w, s, strlen(s));
    else
        recd_jw_lit(w, "null");
}

void recd_codec_render_recs(recd_jw_t *w, h2o_iovec_t request_id, h2o_iovec_t user, h2o_iovec_t model, uint64_t version,
                            const char *experiment, const char *arm, const recd_api_item_t *items, size_t n, const char *fallback,
                            const char *search, const h2o_iovec_t *ignored, size_t n_ignored)
{
    recd_jw_lit(w, "{\"request_id\":");
    recd_jw_str(w, request_id.base, request_id.len);
    recd_jw_lit(w, ",\"user\":");
    recd_jw_str(w, user.base, user.len);
    recd_jw_lit(w, ",\"model\":");
    render_model(w, model, version);
    recd_jw_lit(w, ",\"experiment\":");
    str_or_null(w, experiment);
    recd_jw_lit(w, ",\"arm\":");
    str_or_null(w, arm);
    recd_jw_lit(w, ",\"items\":");
    render_items(w, items, n);
    recd_jw_lit(w, ",\"fallback\":");
    recd_jw_str(w, fallback, strlen(fallback));
    recd_jw_lit(w, ",\"search\":");
    recd_jw_str(w, search, strlen(search));
    if (n_ignored > 0) {
        recd_jw_lit(w, ",\"ignored_items\":[");
        for (size_t i = 0; i < n_ignored; ++i) {
            if (i != 0)
                recd_jw_lit(w, ",");
            recd_jw_str(w, ignored[i].base, ignored[i].len);
        }
        recd_jw_lit(w, "]");
    }
    recd_jw_lit(w, "}");
}

void recd_codec_render_similar(recd_jw_t *w, h2o_iovec_t item, h2o_iovec_t model, uint64_t version, const recd_api_item_t *items,
                               size_t n)
{
    recd_jw_lit(w, "{\"item\":");
    recd_jw_str(w, item.base, item.len);
    recd_jw_lit(w, ",\"model\":");
    render_model(w, model, version);
    recd_jw_lit(w, ",\"items\":");
    render_items(w, items, n);
    recd_jw_lit(w, "}");
}

void recd_codec_render_error(recd_jw_t *w, const char *code, const char *message)
{
    recd_jw_lit(w, "{\"error\":{\"code\":");
    recd_jw_str(w, code, strlen(code));
    recd_jw_lit(w, ",\"message\":");
    size_t len = strlen(message);
    if (recd_utf8_valid(message, len)) {
        recd_jw_str(w, message, len);
    } else {
        /* messages may quote client bytes; keep the answer valid JSON */
        char *copy = h2o_mem_alloc_pool((h2o_mem_pool_t *)w->ctx, len);
        for (size_t i = 0; i < len; ++i)
            copy[i] = (unsigned char)message[i] >= 0x80 ? '?' : message[i];
        recd_jw_str(w, copy, len);
    }
    recd_jw_lit(w, "}}");
}
