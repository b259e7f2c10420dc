/* config: recd's server configuration — defaults, then the JSON file, then RECD_<KEY> env vars, then --flags. */
#ifndef RECD_CONFIG_CONFIG_H
#define RECD_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** Every key of config/recd.json. Strings are heap copies owned by the struct. */
typedef struct st_recd_config_t {
    char *listen;                   /* "HOST:PORT" (IPv6 as "[::1]:8080"); port 0 picks a free one */
    uint32_t threads;               /* worker threads, 0 = number of cores */
    char *registry;                 /* model registry directory */
    char *model;                    /* models served, comma-separated (recd_options_list_items); "*" = every model */
    uint64_t max_loaded_bytes;      /* budget of loaded versions beyond the active ones, 0 = none */
    char *events_path;              /* embedded event log (JSON lines) */
    int events_fsync;               /* fdatasync the event log before answering 202 */
    char *kafka;                    /* Kafka bootstrap brokers ("" = the embedded event log) */
    char *wal_dir;                  /* write-ahead log directory of the Kafka event sink */
    uint64_t wal_max_bytes;         /* its size limit (503 beyond it) */
    uint64_t max_body_bytes;        /* request bodies above this get 413 */
    uint32_t default_k;             /* k when the request has none */
    uint32_t max_k;                 /* largest k accepted */
    uint32_t score_threads;         /* scoring threads, 0 = one per online CPU */
    uint32_t score_batch_max;       /* most requests of one version scanned together */
    uint32_t score_batch_window_us; /* how long a partial batch waits for more */
    uint32_t score_queue_max;       /* queued scans beyond which requests get 503, 0 = 4 x threads x batch_max */
    uint32_t score_inline_max;      /* item x factor products up to which a scan runs on the event loop (0: never) */
    int bf16_tiles;                 /* build bf16 tiles of each version's item rows (AVX-512 BF16 CPUs) */
    char *search;                   /* default search: "exact" or "approximate" */
    uint32_t max_recent_items;      /* per-user recent events kept in memory */
    uint32_t max_users;             /* users kept in the in-memory user state (LRU eviction beyond it) */
    uint32_t reload_interval_ms;    /* registry poll period */
    char *log_level;                /* debug, info, warn, error */
    char *jwt_hs256_secret_file;    /* HS256 secret for JWTs ("" = none) */
    char *jwt_rs256_public_key;     /* RS256 public key PEM for JWTs ("" = none) */
    uint32_t jwt_clock_skew_s;      /* allowance on exp and nbf */
    int jwt_public_scopes;          /* public endpoints need recs:read / events:write */
    char *redis;                    /* "HOST:PORT" of the Redis feature store ("" = the in-memory store) */
    uint32_t redis_timeout_ms;      /* per-request deadline of a Redis lookup */
    uint32_t redis_vec_ttl_s;       /* EXPIRE of a user's vectors in Redis */
    uint32_t redis_recent_ttl_s;    /* EXPIRE of a user's recent items in Redis */
} recd_config_t;

/** Sets every key to its default (see recd_config_print_help). */
void recd_config_init(recd_config_t *c);
/** Frees the strings; accepts a zeroed struct. */
void recd_config_dispose(recd_config_t *c);

/**
 * Applies the JSON object in path. Unknown keys, wrong types and out-of-range values are errors naming the key. Returns
 * RECD_OK or a RECD_E* code with a message in err.
 */
int recd_config_load_file(recd_config_t *c, const char *path, char *err, size_t errlen);
/** Applies RECD_<KEY> variables (key upper-cased) from a NULL-terminated environ-style array. */
int recd_config_apply_env(recd_config_t *c, char *const *envp, char *err, size_t errlen);
/** Sets one key from its string form (as given by a flag or env var). */
int recd_config_set(recd_config_t *c, const char *key, const char *value, char *err, size_t errlen);

/**
 * The whole chain for a main(), applied on top of c (set up by recd_config_init, so it holds the defaults): the file
 * named by --config FILE or RECD_CONFIG (none by default); env vars; flags (--key value or --key=value, '-' and '_'
 * interchangeable; a boolean flag alone means true); then recd_config_check. *want_help is set for -h/--help, and then
 * nothing else is parsed. The caller disposes c whether or not the call succeeded. Returns RECD_OK, or a RECD_E* code
 * with a message in err naming the key, flag or variable at fault.
 */
int recd_config_parse(recd_config_t *c, int argc, char **argv, char *const *envp, int *want_help, char *err, size_t errlen);

/**
 * Checks the rules that tie keys together (default_k <= max_k; at most one JWT key; jwt_public_scopes needs a key).
 * recd_config_parse runs it last; callers that build a config with the lower-level calls run it themselves. Returns RECD_OK or
 * RECD_EINVAL with a message in err.
 */
int recd_config_check(const recd_config_t *c, char *err, size_t errlen);

/**
 * Splits a listen address ("127.0.0.1:8080", "localhost:0", "[::1]:8080") into its host (brackets removed, NUL-terminated
 * into host when not NULL) and port. Returns RECD_EINVAL for anything else, a port above 65535, or a host that does
 * not fit in hostlen.
 */
int recd_config_parse_listen(const char *listen, char *host, size_t hostlen, uint16_t *port);

/** Prints usage with every key, its type, default, env var and meaning. */
void recd_config_print_help(FILE *out, const char *argv0);

/** Prints the same key list as a Markdown table (the one in README.md's Configuration section; a test keeps them equal). */
void recd_config_print_markdown(FILE *out);

/**
 * Writes the effective configuration as a compact NUL-terminated JSON object, keys in table order (for logging and
 * GET /v1/config later). Returns RECD_EINVAL when it does not fit in buflen.
 */
int recd_config_to_json(const recd_config_t *c, char *buf, size_t buflen);

#endif
