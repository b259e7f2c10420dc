/* experiment.c: experiment assignment — slots, slot tables, minimal-move rebalancing and HMAC-signed request ids. */
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "base/error.h"
#include "base/hash.h"
#include "models/experiment.h"

#define MAC_BYTES 4
#define MAX_ID_LEN 64

uint32_t recd_experiment_slot(const char *salt, size_t salt_len, const char *user, size_t user_len)
{
    return (uint32_t)(recd_hash_bytes(user, user_len, recd_hash_id(salt, salt_len)) % RECD_EXPERIMENT_SLOTS);
}

int recd_experiment_weights_valid(const uint32_t *weights, size_t n_arms)
{
    uint64_t sum = 0;
    if (n_arms == 0 || n_arms > RECD_EXPERIMENT_MAX_ARMS)
        return 0;
    for (size_t i = 0; i < n_arms; ++i)
        sum += weights[i];
    return sum == RECD_EXPERIMENT_SLOTS;
}

void recd_experiment_initial_slots(const uint32_t *weights, size_t n_arms, uint8_t *slots)
{
    size_t pos = 0;
    memset(slots, 0, RECD_EXPERIMENT_SLOTS);
    if (!recd_experiment_weights_valid(weights, n_arms))
        return;
    for (size_t i = 0; i < n_arms; ++i)
        for (uint32_t j = 0; j < weights[i]; ++j)
            slots[pos++] = (uint8_t)i;
}

int recd_experiment_rebalance(uint8_t *slots, const uint32_t *old_weights, const uint32_t *new_weights, size_t n_arms)
{
    uint32_t count[RECD_EXPERIMENT_MAX_ARMS] = {0};
    int64_t surplus[RECD_EXPERIMENT_MAX_ARMS]; /* > 0: slots the arm gives up; < 0: slots it takes */
    size_t taker = 0;
    int moved = 0;

    if (!recd_experiment_weights_valid(old_weights, n_arms) || !recd_experiment_weights_valid(new_weights, n_arms))
        return RECD_EINVAL;
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s) {
        if (slots[s] >= n_arms)
            return RECD_EINVAL;
        ++count[slots[s]];
    }
    for (size_t i = 0; i < n_arms; ++i) {
        if (count[i] != old_weights[i])
            return RECD_EINVAL;
        surplus[i] = (int64_t)old_weights[i] - (int64_t)new_weights[i];
    }
    for (size_t s = 0; s < RECD_EXPERIMENT_SLOTS; ++s) {
        uint8_t from = slots[s];
        if (surplus[from] <= 0)
            continue;
        while (surplus[taker] >= 0)
            ++taker; /* a giver exists, so a taker does: the surpluses sum to zero */
        slots[s] = (uint8_t)taker;
        --surplus[from];
        ++surplus[taker];
        ++moved;
    }
    return moved;
}

static int valid_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Reads n lowercase hex digits at *p into *v; advances *p. */
static int read_hex(const char **p, const char *end, size_t n, uint64_t *v)
{
    *v = 0;
    if ((size_t)(end - *p) < n)
        return -1;
    for (size_t i = 0; i < n; ++i) {
        int d = hex_value((*p)[i]);
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint64_t)d;
    }
    *p += n;
    return 0;
}

/* Reads a canonical decimal (no sign, no leading zero) that fits in uint64_t and is at most max. */
static int read_decimal(const char **p, const char *end, uint64_t max, uint64_t *v)
{
    const char *s = *p;
    *v = 0;
    if (s == end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9'))
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; ++s) {
        uint64_t d = (uint64_t)(*s - '0');
        if (*v > (max - d) / 10)
            return -1;
        *v = *v * 10 + d;
    }
    *p = s;
    return 0;
}

static int expect_dot(const char **p, const char *end)
{
    if (*p == end || **p != '.')
        return -1;
    ++*p;
    return 0;
}

/* The MAC of an id's signed part (everything before its last '.'). */
static int compute_mac(const char *salt, size_t salt_len, const char *msg, size_t len, unsigned char mac[MAC_BYTES])
{
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int full_len = 0;
    static const unsigned char empty_key[1] = {0};
    /* HMAC with a zero-length key needs a non-NULL pointer */
    if (HMAC(EVP_sha256(), salt_len ? (const void *)salt : empty_key, (int)salt_len, (const unsigned char *)msg, len, full,
             &full_len) == NULL ||
        full_len < MAC_BYTES)
        return -1;
    memcpy(mac, full, MAC_BYTES);
    return 0;
}

int recd_experiment_request_id_encode(uint64_t nonce, const char *experiment, size_t experiment_len, uint64_t table_version,
                                      uint32_t arm, const char *salt, size_t salt_len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    char buf[RECD_EXPERIMENT_REQUEST_ID_MAX + 1], digits[24];
    size_t len = 0;
    unsigned char mac[MAC_BYTES];

    if (experiment_len == 0 || experiment_len > MAX_ID_LEN || arm >= RECD_EXPERIMENT_MAX_ARMS)
        return RECD_EINVAL;
    for (size_t i = 0; i < experiment_len; ++i)
        if (!valid_id_char(experiment[i]))
            return RECD_EINVAL;
    for (int i = 15; i >= 0; --i)
        buf[len + (size_t)i] = hex[(nonce >> (4 * (15 - i))) & 15];
    len += 16;
    buf[len++] = '.';
    memcpy(buf + len, experiment, experiment_len);
    len += experiment_len;
    buf[len++] = '.';
    for (uint64_t pass = 0; pass < 2; ++pass) {
        uint64_t v = pass == 0 ? table_version : arm;
        size_t n = 0;
        do
            digits[n++] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        while (n > 0)
            buf[len++] = digits[--n];
        buf[len++] = '.';
    }
    if (compute_mac(salt, salt_len, buf, len - 1, mac) != 0)
        return RECD_EINVAL;
    for (size_t i = 0; i < MAC_BYTES; ++i) {
        buf[len++] = hex[mac[i] >> 4];
        buf[len++] = hex[mac[i] & 15];
    }
    if (len + 1 > outlen)
        return RECD_EINVAL;
    memcpy(out, buf, len);
    out[len] = '\0';
    return (int)len;
}

/* Parses everything; *signed_len receives the length of the signed part and mac the MAC as written. */
static int parse(const char *id, size_t len, recd_experiment_request_id_t *out, size_t *signed_len, unsigned char mac[MAC_BYTES])
{
    const char *p = id, *end = id + len;
    uint64_t v;

    if (id == NULL || len > RECD_EXPERIMENT_REQUEST_ID_MAX || read_hex(&p, end, 16, &out->nonce) != 0 || expect_dot(&p, end) != 0)
        return -1;
    out->experiment = p;
    while (p < end && valid_id_char(*p))
        ++p;
    out->experiment_len = (size_t)(p - out->experiment);
    if (out->experiment_len == 0 || out->experiment_len > MAX_ID_LEN || expect_dot(&p, end) != 0 ||
        read_decimal(&p, end, UINT64_MAX, &out->table_version) != 0 || expect_dot(&p, end) != 0 ||
        read_decimal(&p, end, RECD_EXPERIMENT_MAX_ARMS - 1, &v) != 0)
        return -1;
    out->arm = (uint32_t)v;
    *signed_len = (size_t)(p - id);
    if (expect_dot(&p, end) != 0 || read_hex(&p, end, 2 * MAC_BYTES, &v) != 0 || p != end)
        return -1;
    for (int i = MAC_BYTES - 1; i >= 0; --i, v >>= 8)
        mac[i] = (unsigned char)(v & 0xff);
    return 0;
}

int recd_experiment_request_id_parse(const char *id, size_t len, recd_experiment_request_id_t *out)
{
    size_t signed_len;
    unsigned char mac[MAC_BYTES];
    return parse(id, len, out, &signed_len, mac);
}

int recd_experiment_request_id_decode(const char *id, size_t len, const char *salt, size_t salt_len,
                                      recd_experiment_request_id_t *out)
{
    size_t signed_len;
    unsigned char given[MAC_BYTES], expected[MAC_BYTES], diff = 0;

    if (parse(id, len, out, &signed_len, given) != 0 || compute_mac(salt, salt_len, id, signed_len, expected) != 0)
        return -1;
    for (size_t i = 0; i < MAC_BYTES; ++i)
        diff |= given[i] ^ expected[i];
    return diff == 0 ? (int)out->arm : -1;
}
