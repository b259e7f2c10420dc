/* query.c: query-string parsing with percent-decoding, and the id / k validation every endpoint shares. Pure. */
#include <stdio.h>
#include <string.h>
#include "api/api_internal.h"
#include "registry/registry.h"

int recd_api_error_set(recd_api_error_t *err, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int recd_percent_decode(const char *s, size_t len, int plus_is_space, h2o_mem_pool_t *pool, h2o_iovec_t *out)
{
    char *dst = h2o_mem_alloc_pool(pool, len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; ++i) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len)
                return -1;
            if ((hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return -1;
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            dst[o++] = ' ';
        } else {
            dst[o++] = c;
        }
    }
    dst[o] = '\0';
    *out = h2o_iovec_init(dst, o);
    return 0;
}

int recd_query_parse(const char *q, size_t len, h2o_mem_pool_t *pool, recd_query_param_t *params, size_t max, size_t *n,
                     recd_api_error_t *err)
{
    size_t pos = 0;
    *n = 0;
    while (pos < len) {
        const char *piece = q + pos, *amp = memchr(piece, '&', len - pos), *eq;
        size_t plen = amp != NULL ? (size_t)(amp - piece) : len - pos;
        h2o_iovec_t name, value;
        pos += plen + 1;
        if (plen == 0)
            continue;
        eq = memchr(piece, '=', plen);
        size_t nlen = eq != NULL ? (size_t)(eq - piece) : plen;
        if (recd_percent_decode(piece, nlen, 1, pool, &name) != 0 ||
            (eq != NULL && recd_percent_decode(eq + 1, plen - nlen - 1, 1, pool, &value) != 0))
            return recd_api_error_set(err, 400, "invalid_argument", "malformed percent-encoding in the query string");
        if (eq == NULL)
            value = h2o_iovec_init("", 0);
        if (!recd_utf8_valid(name.base, name.len) || !recd_utf8_valid(value.base, value.len))
            return recd_api_error_set(err, 400, "invalid_argument", "query parameters must be valid UTF-8 without NUL");
        if (name.len == 0)
            return recd_api_error_set(err, 400, "invalid_argument", "query parameter without a name");
        for (size_t i = 0; i < *n; ++i)
            if (h2o_memis(params[i].name.base, params[i].name.len, name.base, name.len))
                return recd_api_error_set(err, 400, "invalid_argument", "query parameter '%.*s' is repeated",
                                          (int)(name.len > 64 ? 64 : name.len), name.base);
        if (*n == max)
            return recd_api_error_set(err, 400, "invalid_argument", "too many query parameters (at most %zu)", max);
        params[*n].name = name;
        params[*n].value = value;
        ++*n;
    }
    return 0;
}

const h2o_iovec_t *recd_query_find(const recd_query_param_t *params, size_t n, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < n; ++i)
        if (h2o_memis(params[i].name.base, params[i].name.len, name, nlen))
            return &params[i].value;
    return NULL;
}

int recd_api_check_id(const char *field, h2o_iovec_t id, recd_api_error_t *err)
{
    if (id.len == 0)
        return recd_api_error_set(err, 400, "invalid_argument", "%s must be a non-empty string", field);
    if (id.len > RECD_API_MAX_ID_BYTES)
        return recd_api_error_set(err, 400, "invalid_argument", "%s is longer than %d bytes", field, RECD_API_MAX_ID_BYTES);
    if (!recd_utf8_valid(id.base, id.len))
        return recd_api_error_set(err, 400, "invalid_argument", "%s must be valid UTF-8 without NUL", field);
    return 0;
}

int recd_api_check_model(h2o_iovec_t name, recd_api_error_t *err)
{
    char buf[65];
    if (name.len == 0 || name.len >= sizeof(buf))
        goto Error;
    memcpy(buf, name.base, name.len);
    buf[name.len] = '\0';
    if (memchr(name.base, '\0', name.len) == NULL && recd_registry_valid_name(buf))
        return 0;
Error:
    return recd_api_error_set(err, 400, "invalid_argument",
                              "model must be a model name: 1..64 of [A-Za-z0-9_.-], not starting with '.'");
}

int recd_api_parse_k(h2o_iovec_t s, uint32_t max_k, uint32_t *k, recd_api_error_t *err)
{
    uint64_t v = 0;
    if (s.len == 0 || s.len > 10)
        goto Error;
    for (size_t i = 0; i < s.len; ++i) {
        if (s.base[i] < '0' || s.base[i] > '9')
            goto Error;
        v = v * 10 + (uint64_t)(s.base[i] - '0');
    }
    if (v < 1 || v > max_k)
        goto Error;
    *k = (uint32_t)v;
    return 0;
Error:
    return recd_api_error_set(err, 400, "invalid_argument", "k must be an integer in 1..%u", max_k);
}
