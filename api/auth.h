/* auth.h: JWT bearer-token checks for the API — one pinned algorithm (HS256 or RS256), exp/nbf with a clock-skew allowance,
 * scopes from the space-separated "scope" claim. Pure: no sockets, no h2o, so tests check tokens directly. */
#ifndef RECD_API_AUTH_H
#define RECD_API_AUTH_H

#include <stddef.h>
#include <stdint.h>

/** Scopes recd knows (bits). A token's other scopes are ignored. */
enum {
    RECD_AUTH_SCOPE_ADMIN = 1,        /* "admin": /v1/models, /v1/experiments */
    RECD_AUTH_SCOPE_RECS_READ = 2,    /* "recs:read": recommendations and similar items, when public endpoints need tokens */
    RECD_AUTH_SCOPE_EVENTS_WRITE = 4, /* "events:write": POST /v1/events, likewise */
};

/** The algorithm a verifier is pinned to: every token whose header names another one is refused. */
typedef enum en_recd_auth_alg_t { RECD_AUTH_HS256 = 1, RECD_AUTH_RS256 = 2 } recd_auth_alg_t;

typedef struct st_recd_auth_t recd_auth_t;

/**
 * A verifier for alg with key (HS256: the shared secret, at least 32 bytes; RS256: a PEM RSA public key), copied.
 * skew_s is allowed on exp and nbf. Returns NULL with a message in err when the key is unusable.
 */
recd_auth_t *recd_auth_create(recd_auth_alg_t alg, const unsigned char *key, size_t keylen, uint32_t skew_s, char *err,
                              size_t errlen);
/**
 * A verifier from the configuration's key files: hs256_file or rs256_file (exactly one of them non-empty; a trailing newline
 * of the secret file is not part of the secret). Returns NULL with a message in err when the file cannot be read or the
 * key is unusable.
 */
recd_auth_t *recd_auth_create_from_files(const char *hs256_file, const char *rs256_file, uint32_t skew_s, char *err, size_t errlen);
/** Frees; accepts NULL. */
void recd_auth_free(recd_auth_t *a);
/** The pinned algorithm's name ("HS256" or "RS256"). */
const char *recd_auth_alg_name(const recd_auth_t *a);

/** What a verified token grants: its recd scopes (RECD_AUTH_SCOPE_* bits) and validity window (Unix seconds). */
typedef struct st_recd_auth_grant_t {
    unsigned scopes;
    int64_t exp, nbf; /* nbf 0 when the token has none */
} recd_auth_grant_t;

/**
 * Verifies token (len bytes, without "Bearer "): signature with the pinned key, header alg equal to the pinned one (so
 * alg=none and an HS256 token signed with the RSA public key are refused), a numeric exp (required) not before now - skew,
 * nbf (optional) not after now + skew. Thread-safe. Returns 0 with *grant filled, or -1 with the reason in why.
 */
int recd_auth_verify(const recd_auth_t *a, const char *token, size_t len, int64_t now, recd_auth_grant_t *grant, char *why,
                     size_t whylen);

/** A small per-thread cache of verified tokens (RS256 verification costs hundreds of microseconds). Not thread-safe. */
typedef struct st_recd_auth_cache_t recd_auth_cache_t;
/** Creates an empty cache; aborts on out of memory. */
recd_auth_cache_t *recd_auth_cache_create(void);
/** Frees; accepts NULL. */
void recd_auth_cache_free(recd_auth_cache_t *c);

/**
 * Checks an Authorization header value (NULL when absent) for the scopes in need (all of them): verifies the token, or
 * finds it in cache (may be NULL) and re-checks its time window. Returns 0 when allowed, 401 for a missing, malformed,
 * badly signed, expired or not-yet-valid token, 403 for a valid token without the scope; why says which.
 */
int recd_auth_check(const recd_auth_t *a, recd_auth_cache_t *cache, const char *authorization, size_t len, unsigned need,
                    int64_t now, char *why, size_t whylen);

#endif
