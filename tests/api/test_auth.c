/* test_auth.c: JWT checks without sockets — valid, expired, not-yet-valid, bad signature, wrong or "none" algorithm
 * (including HS256 signed with the RSA public key), missing scope, the header forms, the cache and the key files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "api/auth.h"

#define NOW 1764500000
#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

/* An RSA key pair as PEM strings (malloc'ed). */
typedef struct {
    char *priv, *pub;
} keypair_t;

static char *bio_string(BIO *bio)
{
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    return s;
}

static keypair_t make_rsa(void)
{
    keypair_t kp;
    EVP_PKEY *pk = EVP_RSA_gen(2048);
    assert_non_null(pk);
    BIO *b1 = BIO_new(BIO_s_mem()), *b2 = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b1, pk, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(PEM_write_bio_PUBKEY(b2, pk), 1);
    kp.priv = bio_string(b1);
    kp.pub = bio_string(b2);
    BIO_free(b1);
    BIO_free(b2);
    EVP_PKEY_free(pk);
    return kp;
}

static void free_rsa(keypair_t *kp)
{
    free(kp->priv);
    free(kp->pub);
}

/* A token signed with alg and key; exp/nbf 0 leave the claim out; scope NULL leaves it out. Caller frees. */
static char *make_token(jwt_alg_t alg, const char *key, long exp, long nbf, const char *scope)
{
    jwt_t *jwt;
    assert_int_equal(jwt_new(&jwt), 0);
    if (exp != 0)
        assert_int_equal(jwt_add_grant_int(jwt, "exp", exp), 0);
    if (nbf != 0)
        assert_int_equal(jwt_add_grant_int(jwt, "nbf", nbf), 0);
    if (scope != NULL)
        assert_int_equal(jwt_add_grant(jwt, "scope", scope), 0);
    assert_int_equal(jwt_add_grant(jwt, "sub", "tester"), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, key != NULL ? (int)strlen(key) : 0), 0);
    char *tok = jwt_encode_str(jwt);
    assert_non_null(tok);
    jwt_free(jwt);
    return tok;
}

/* recd_auth_check with a "Bearer <token>" header and no cache. */
static int check(const recd_auth_t *a, const char *token, unsigned need, int64_t now, char *why, size_t whylen)
{
    char header[8192];
    snprintf(header, sizeof(header), "Bearer %s", token);
    return recd_auth_check(a, NULL, header, strlen(header), need, now, why, whylen);
}

static recd_auth_t *hs256(void)
{
    char err[256];
    recd_auth_t *a = recd_auth_create(RECD_AUTH_HS256, (const unsigned char *)SECRET, strlen(SECRET), 30, err, sizeof(err));
    assert_non_null(a);
    return a;
}

static void test_auth_hs256_valid_expired_nbf(void **state)
{
    recd_auth_t *a = hs256();
    char why[256], *t;

    t = make_token(JWT_ALG_HS256, SECRET, NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 0);
    /* expired: beyond the 30 s allowance is refused, within it accepted */
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW + 60 + 31, why, sizeof(why)), 401);
    assert_non_null(strstr(why, "expired"));
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW + 60 + 29, why, sizeof(why)), 0);
    free(t);

    t = make_token(JWT_ALG_HS256, SECRET, NOW + 600, NOW + 300, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    assert_non_null(strstr(why, "not valid yet"));
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW + 280, why, sizeof(why)), 0);
    free(t);

    /* no exp at all: refused (a token must not live forever) */
    t = make_token(JWT_ALG_HS256, SECRET, 0, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    assert_non_null(strstr(why, "no exp"));
    free(t);
    recd_auth_free(a);
}

static void test_auth_hs256_wrong_signature(void **state)
{
    recd_auth_t *a = hs256();
    char why[256];
    char *t = make_token(JWT_ALG_HS256, "another-secret-of-enough-length-0123456789", NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    free(t);
    /* a valid token with one payload character changed */
    t = make_token(JWT_ALG_HS256, SECRET, NOW + 60, 0, "recs:read");
    char *dot = strchr(t, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_RECS_READ, NOW, why, sizeof(why)), 401);
    free(t);
    recd_auth_free(a);
}

static void test_auth_scopes(void **state)
{
    recd_auth_t *a = hs256();
    char why[256], *t;

    t = make_token(JWT_ALG_HS256, SECRET, NOW + 60, 0, "recs:read events:write");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_RECS_READ, NOW, why, sizeof(why)), 0);
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_EVENTS_WRITE, NOW, why, sizeof(why)), 0);
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 403);
    assert_non_null(strstr(why, "admin"));
    free(t);
    /* a scope is a whole word: "administrator" and "xadmin" are not "admin" */
    t = make_token(JWT_ALG_HS256, SECRET, NOW + 60, 0, "administrator xadmin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 403);
    free(t);
    t = make_token(JWT_ALG_HS256, SECRET, NOW + 60, 0, NULL);
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 403);
    free(t);
    t = make_token(JWT_ALG_HS256, SECRET, NOW + 60, 0, "  recs:read   admin ");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 0);
    free(t);
    recd_auth_free(a);
}

static void test_auth_header_forms(void **state)
{
    recd_auth_t *a = hs256();
    char why[256];
    char *t = make_token(JWT_ALG_HS256, SECRET, NOW + 60, 0, "admin");
    char header[4096];

    assert_int_equal(recd_auth_check(a, NULL, NULL, 0, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    assert_non_null(strstr(why, "missing"));
    snprintf(header, sizeof(header), "Basic %s", t);
    assert_int_equal(recd_auth_check(a, NULL, header, strlen(header), RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    snprintf(header, sizeof(header), "bearer %s", t); /* the scheme is case-insensitive */
    assert_int_equal(recd_auth_check(a, NULL, header, strlen(header), RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 0);
    assert_int_equal(recd_auth_check(a, NULL, "Bearer ", 7, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    assert_int_equal(check(a, "not.a.token", RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    assert_int_equal(check(a, "....", RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    /* a header value with an embedded NUL is refused, not truncated */
    memcpy(header, "Bearer ", 7);
    memcpy(header + 7, t, strlen(t) + 1);
    assert_int_equal(recd_auth_check(a, NULL, header, 7 + strlen(t) + 1, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    free(t);
    recd_auth_free(a);
}

static void test_auth_rs256_and_alg_confusion(void **state)
{
    keypair_t kp = make_rsa(), other = make_rsa();
    char err[256], why[256], *t;
    recd_auth_t *a = recd_auth_create(RECD_AUTH_RS256, (const unsigned char *)kp.pub, strlen(kp.pub), 30, err, sizeof(err));
    assert_non_null(a);
    assert_string_equal(recd_auth_alg_name(a), "RS256");

    t = make_token(JWT_ALG_RS256, kp.priv, NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 0);
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW + 100, why, sizeof(why)), 401);
    free(t);
    /* signed by another RSA key */
    t = make_token(JWT_ALG_RS256, other.priv, NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    free(t);
    /* alg confusion: HS256 with the RSA public key PEM as the HMAC secret (libjwt's decode accepts it) */
    t = make_token(JWT_ALG_HS256, kp.pub, NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    assert_non_null(strstr(why, "HS256"));
    free(t);
    /* alg none: no signature at all */
    t = make_token(JWT_ALG_NONE, NULL, NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    free(t);
    /* RS384 with the right key is still not the pinned algorithm */
    t = make_token(JWT_ALG_RS384, kp.priv, NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    free(t);
    recd_auth_free(a);

    /* an HS256 verifier refuses RS256 tokens and alg none */
    a = hs256();
    t = make_token(JWT_ALG_RS256, kp.priv, NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    free(t);
    t = make_token(JWT_ALG_NONE, NULL, NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 401);
    free(t);
    recd_auth_free(a);
    free_rsa(&kp);
    free_rsa(&other);
}

static void test_auth_cache_rechecks_time(void **state)
{
    recd_auth_t *a = hs256();
    recd_auth_cache_t *c = recd_auth_cache_create();
    char why[256], header[4096];
    char *t = make_token(JWT_ALG_HS256, SECRET, NOW + 60, 0, "recs:read");
    snprintf(header, sizeof(header), "Bearer %s", t);
    size_t n = strlen(header);

    assert_int_equal(recd_auth_check(a, c, header, n, RECD_AUTH_SCOPE_RECS_READ, NOW, why, sizeof(why)), 0);
    assert_int_equal(recd_auth_check(a, c, header, n, RECD_AUTH_SCOPE_RECS_READ, NOW + 1, why, sizeof(why)), 0);
    /* a cached token keeps its scopes and expires on time */
    assert_int_equal(recd_auth_check(a, c, header, n, RECD_AUTH_SCOPE_ADMIN, NOW + 1, why, sizeof(why)), 403);
    assert_int_equal(recd_auth_check(a, c, header, n, RECD_AUTH_SCOPE_RECS_READ, NOW + 100, why, sizeof(why)), 401);
    /* a tampered copy of a cached token is verified afresh */
    header[n - 2] = header[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(recd_auth_check(a, c, header, n, RECD_AUTH_SCOPE_RECS_READ, NOW, why, sizeof(why)), 401);
    free(t);
    recd_auth_cache_free(c);
    recd_auth_free(a);
}

static void test_auth_keys(void **state)
{
    char err[256], path[] = "/tmp/recd-auth-XXXXXX", why[256];
    assert_null(recd_auth_create(RECD_AUTH_HS256, (const unsigned char *)"short", 5, 30, err, sizeof(err)));
    assert_non_null(strstr(err, "at least 32"));
    assert_null(recd_auth_create(RECD_AUTH_RS256, (const unsigned char *)SECRET, strlen(SECRET), 30, err, sizeof(err)));
    assert_non_null(strstr(err, "PEM"));
    assert_null(recd_auth_create_from_files("/nonexistent/secret", "", 30, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/secret"));

    /* a secret file's trailing newline is not part of the secret */
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, SECRET "\n", strlen(SECRET) + 1), (ssize_t)strlen(SECRET) + 1);
    close(fd);
    recd_auth_t *a = recd_auth_create_from_files(path, "", 30, err, sizeof(err));
    assert_non_null(a);
    char *t = make_token(JWT_ALG_HS256, SECRET, NOW + 60, 0, "admin");
    assert_int_equal(check(a, t, RECD_AUTH_SCOPE_ADMIN, NOW, why, sizeof(why)), 0);
    free(t);
    recd_auth_free(a);
    unlink(path);
}

int test_auth_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_hs256_valid_expired_nbf),
        cmocka_unit_test(test_auth_hs256_wrong_signature),
        cmocka_unit_test(test_auth_scopes),
        cmocka_unit_test(test_auth_header_forms),
        cmocka_unit_test(test_auth_rs256_and_alg_confusion),
        cmocka_unit_test(test_auth_cache_rechecks_time),
        cmocka_unit_test(test_auth_keys),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
