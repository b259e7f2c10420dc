/* auth.c: JWT verification with libjwt (signature) plus the checks libjwt 1.10 leaves to its caller (pinned algorithm,
 * exp, nbf, scopes), and a per-thread cache of verified tokens. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "base/alloc.h"
#include <strings.h>
#include "api/auth.h"

#define MAX_TOKEN_BYTES 8192
#define MAX_KEY_BYTES 65536
#define MIN_HS256_SECRET 32 /* RFC 7518 3.2: a key of at least the hash's size */
#define CACHE_ENTRIES 64

struct st_recd_auth_t {
    recd_auth_alg_t alg;
    unsigned char *key;
    size_t keylen;
    uint32_t skew_s;
};

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

recd_auth_t *recd_auth_create(recd_auth_alg_t alg, const unsigned char *key, size_t keylen, uint32_t skew_s, char *err,
                              size_t errlen)
{
    if (alg == RECD_AUTH_HS256) {
        if (keylen < MIN_HS256_SECRET) {
            fail(err, errlen, "the HS256 secret has %zu bytes; it needs at least %d", keylen, MIN_HS256_SECRET);
            return NULL;
        }
    } else if (alg == RECD_AUTH_RS256) {
        /* parse once here, so a wrong file fails at start-up and not on the first request */
        BIO *bio = BIO_new_mem_buf(key, (int)keylen);
        EVP_PKEY *pk = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        int is_rsa = pk != NULL && EVP_PKEY_base_id(pk) == EVP_PKEY_RSA;
        EVP_PKEY_free(pk);
        BIO_free(bio);
        if (!is_rsa) {
            fail(err, errlen, "the RS256 key is not a PEM RSA public key (\"-----BEGIN PUBLIC KEY-----\")");
            return NULL;
        }
    } else {
        fail(err, errlen, "unknown JWT algorithm");
        return NULL;
    }
    recd_auth_t *a = recd_xcalloc(1, sizeof(*a));
    a->alg = alg;
    a->key = recd_xmalloc(keylen + 1);
    memcpy(a->key, key, keylen);
    a->key[keylen] = '\0';
    a->keylen = keylen;
    a->skew_s = skew_s;
    return a;
}

/* Reads a whole small file into a malloc'ed buffer. */
static unsigned char *read_small_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf;
    if (fp == NULL) {
        fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = recd_xmalloc(MAX_KEY_BYTES + 1);
    *len = fread(buf, 1, MAX_KEY_BYTES + 1, fp);
    if (ferror(fp) || *len > MAX_KEY_BYTES) {
        fail(err, errlen, ferror(fp) ? "cannot read %s" : "%s is larger than 64 KiB: not a key file", path);
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    return buf;
}

recd_auth_t *recd_auth_create_from_files(const char *hs256_file, const char *rs256_file, uint32_t skew_s, char *err, size_t errlen)
{
    int hs = hs256_file != NULL && hs256_file[0] != '\0';
    const char *path = hs ? hs256_file : rs256_file;
    size_t len;
    unsigned char *key;
    recd_auth_t *a = NULL;

    if (path == NULL || path[0] == '\0') {
        fail(err, errlen, "no JWT key file given");
        return NULL;
    }
    if ((key = read_small_file(path, &len, err, errlen)) == NULL)
        return NULL;
    if (hs)
        while (len > 0 && (key[len - 1] == '\n' || key[len - 1] == '\r'))
            --len;
    char why[200];
    if ((a = recd_auth_create(hs ? RECD_AUTH_HS256 : RECD_AUTH_RS256, key, len, skew_s, why, sizeof(why))) == NULL)
        fail(err, errlen, "%s: %s", path, why);
    OPENSSL_cleanse(key, len);
    free(key);
    return a;
}

void recd_auth_free(recd_auth_t *a)
{
    if (a == NULL)
        return;
    OPENSSL_cleanse(a->key, a->keylen);
    free(a->key);
    free(a);
}

const char *recd_auth_alg_name(const recd_auth_t *a)
{
    return a->alg == RECD_AUTH_HS256 ? "HS256" : "RS256";
}

/* The recd scopes named in a space-separated scope claim. */
static unsigned parse_scopes(const char *s)
{
    static const struct {
        const char *name;
        unsigned bit;
    } known[] = {
        {"admin", RECD_AUTH_SCOPE_ADMIN}, {"recs:read", RECD_AUTH_SCOPE_RECS_READ}, {"events:write", RECD_AUTH_SCOPE_EVENTS_WRITE}};
    unsigned scopes = 0;
    while (s != NULL && *s != '\0') {
        while (*s == ' ')
            ++s;
        size_t n = strcspn(s, " ");
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); ++i)
            if (n == strlen(known[i].name) && memcmp(s, known[i].name, n) == 0)
                scopes |= known[i].bit;
        s += n;
    }
    return scopes;
}

/* An integer claim: 1 with *out, 0 when absent, -1 when present but not an integer. */
static int int_claim(jwt_t *jwt, const char *name, int64_t *out)
{
    errno = 0;
    long v = jwt_get_grant_int(jwt, name);
    if (errno == ENOENT)
        return 0;
    if (errno != 0)
        return -1;
    *out = v;
    return 1;
}

int recd_auth_verify(const recd_auth_t *a, const char *token, size_t len, int64_t now, recd_auth_grant_t *grant, char *why,
                     size_t whylen)
{
    char buf[MAX_TOKEN_BYTES + 1];
    jwt_t *jwt = NULL;
    int ret = -1, r;
    jwt_alg_t want = a->alg == RECD_AUTH_HS256 ? JWT_ALG_HS256 : JWT_ALG_RS256;

    *grant = (recd_auth_grant_t){0};
    if (len == 0 || len > MAX_TOKEN_BYTES || memchr(token, '\0', len) != NULL)
        return fail(why, whylen, len == 0 ? "empty token" : "malformed token");
    memcpy(buf, token, len);
    buf[len] = '\0';
    /* libjwt checks the signature only (and none at all for alg "none"): the algorithm, exp and nbf are checked below */
    if (jwt_decode(&jwt, buf, a->key, (int)a->keylen) != 0 || jwt == NULL)
        return fail(why, whylen, "invalid token (malformed or bad signature)");
    if (jwt_get_alg(jwt) != want) {
        fail(why, whylen, "token algorithm %s is not the configured %s", jwt_alg_str(jwt_get_alg(jwt)), recd_auth_alg_name(a));
        goto Exit;
    }
    if ((r = int_claim(jwt, "exp", &grant->exp)) <= 0) {
        fail(why, whylen, r == 0 ? "token has no exp claim" : "token exp claim is not an integer");
        goto Exit;
    }
    if ((r = int_claim(jwt, "nbf", &grant->nbf)) < 0) {
        fail(why, whylen, "token nbf claim is not an integer");
        goto Exit;
    }
    if (now - (int64_t)a->skew_s >= grant->exp) {
        fail(why, whylen, "token expired");
        goto Exit;
    }
    if (r > 0 && now + (int64_t)a->skew_s < grant->nbf) {
        fail(why, whylen, "token not valid yet (nbf)");
        goto Exit;
    }
    grant->scopes = parse_scopes(jwt_get_grant(jwt, "scope"));
    ret = 0;
Exit:
    jwt_free(jwt);
    return ret;
}

/* ---- cache of verified tokens ---------------------------------------------------------------------------------- */

typedef struct st_cache_entry_t {
    unsigned char digest[32]; /* SHA-256 of the token */
    int used;
    recd_auth_grant_t grant;
} cache_entry_t;

struct st_recd_auth_cache_t {
    cache_entry_t entries[CACHE_ENTRIES];
};

recd_auth_cache_t *recd_auth_cache_create(void)
{
    return recd_xcalloc(1, sizeof(recd_auth_cache_t));
}

void recd_auth_cache_free(recd_auth_cache_t *c)
{
    free(c);
}

int recd_auth_check(const recd_auth_t *a, recd_auth_cache_t *cache, const char *authorization, size_t len, unsigned need,
                    int64_t now, char *why, size_t whylen)
{
    recd_auth_grant_t grant;
    unsigned char digest[32];
    cache_entry_t *e = NULL;

    if (authorization == NULL) {
        fail(why, whylen, "missing Authorization: Bearer token");
        return 401;
    }
    if (len < 7 || strncasecmp(authorization, "Bearer ", 7) != 0) {
        fail(why, whylen, "the Authorization header must be \"Bearer <token>\"");
        return 401;
    }
    authorization += 7;
    len -= 7;
    while (len > 0 && authorization[0] == ' ')
        ++authorization, --len;
    while (len > 0 && authorization[len - 1] == ' ')
        --len;
    if (cache != NULL && len <= MAX_TOKEN_BYTES) {
        EVP_Digest(authorization, len, digest, NULL, EVP_sha256(), NULL);
        e = &cache->entries[(digest[0] | (unsigned)digest[1] << 8) % CACHE_ENTRIES];
    }
    if (e != NULL && e->used && memcmp(e->digest, digest, sizeof(digest)) == 0) {
        /* verified before: only its time window can have changed */
        grant = e->grant;
        if (now - (int64_t)a->skew_s >= grant.exp) {
            e->used = 0;
            fail(why, whylen, "token expired");
            return 401;
        }
        if (grant.nbf != 0 && now + (int64_t)a->skew_s < grant.nbf) {
            fail(why, whylen, "token not valid yet (nbf)");
            return 401;
        }
    } else {
        if (recd_auth_verify(a, authorization, len, now, &grant, why, whylen) != 0)
            return 401;
        if (e != NULL) {
            memcpy(e->digest, digest, sizeof(digest));
            e->grant = grant;
            e->used = 1;
        }
    }
    if ((grant.scopes & need) != need) {
        fail(why, whylen, "the token lacks the %s scope",
             (need & RECD_AUTH_SCOPE_ADMIN)       ? "admin"
             : (need & RECD_AUTH_SCOPE_RECS_READ) ? "recs:read"
                                                  : "events:write");
        return 403;
    }
    return 0;
}
