/* config.c: recd's configuration — its option table (config/options.h does the parsing) and the rules that tie keys together. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "config/options.h"
#include "base/error.h"
#include "base/log.h"

static int check_listen(const char *value, char *err, size_t errlen);
static int check_log_level(const char *value, char *err, size_t errlen);
static int check_nonempty(const char *value, char *err, size_t errlen);
static int check_redis(const char *value, char *err, size_t errlen);
static int check_models(const char *value, char *err, size_t errlen);
static int check_search(const char *value, char *err, size_t errlen);

#define OFF(field) offsetof(recd_config_t, field)

static const recd_option_t options[] = {
    {"listen", RECD_OPT_STRING, OFF(listen), "127.0.0.1:8080", 0, 0, check_listen, "HOST:PORT",
     "Address to listen on: HOST:PORT or [IPv6]:PORT; port 0 picks a free port."},
    {"threads", RECD_OPT_U32, OFF(threads), "0", 0, 256, NULL, "N",
     "Worker threads, each with its own event loop; 0 = one per core."},
    {"registry", RECD_OPT_STRING, OFF(registry), "registry", 0, 0, check_nonempty, "DIR",
     "Model registry directory: one folder per model, one per version inside it."},
    {"model", RECD_OPT_LIST, OFF(model), "default", 0, 0, check_models, "NAME",
     "Models served from the registry: repeat the flag, or give them comma-separated (an array in the file). `*` serves every "
     "model in the registry, including ones published later. Requests name one with `model`; the first listed is the default "
     "(with `*` first: the first name in byte order)."},
    {"max_loaded_bytes", RECD_OPT_U64, OFF(max_loaded_bytes), "0", 0, UINT64_C(1) << 62, NULL, "BYTES",
     "Memory budget of the loaded model versions, all models together. Each model's active version always loads and counts "
     "against it; a pin, experiment arm or rollback standby that would pass it is refused, logged and counted in "
     "recd_model_refusals_total{reason=\"budget\"}, and serving goes on. 0: no limit."},
    {"events_path", RECD_OPT_STRING, OFF(events_path), "data/events.jsonl", 0, 0, check_nonempty, "FILE",
     "Embedded event log: POST /v1/events appends JSON lines here."},
    {"events_fsync", RECD_OPT_BOOL, OFF(events_fsync), "false", 0, 1, NULL, "BOOL",
     "fdatasync the event log before answering 202 (otherwise it is flushed only)."},
    {"kafka", RECD_OPT_STRING, OFF(kafka), "", 0, 0, NULL, "BROKERS",
     "Kafka bootstrap brokers (HOST:PORT,...). Set: POST /v1/events appends to the write-ahead log in wal_dir, answers "
     "202 after its fsync and produces to the topic recd.events keyed by user; events_path is not written. Empty: the "
     "embedded event log."},
    {"wal_dir", RECD_OPT_STRING, OFF(wal_dir), "data/wal", 0, 0, check_nonempty, "DIR",
     "Write-ahead log of events not yet confirmed by Kafka (with kafka set); one process per directory."},
    {"wal_max_bytes", RECD_OPT_U64, OFF(wal_max_bytes), "1073741824", 4096, UINT64_C(1) << 44, NULL, "BYTES",
     "Size limit of the write-ahead log; beyond it POST /v1/events answers 503 with Retry-After."},
    {"max_body_bytes", RECD_OPT_U64, OFF(max_body_bytes), "1048576", 1024, UINT64_C(1) << 30, NULL, "BYTES",
     "Request bodies larger than this are answered 413."},
    {"default_k", RECD_OPT_U32, OFF(default_k), "10", 1, 100000, NULL, "K", "Number of items returned when a request gives no k."},
    {"max_k", RECD_OPT_U32, OFF(max_k), "1000", 1, 100000, NULL, "K", "Largest k a request may ask for (at least default_k)."},
    {"score_threads", RECD_OPT_U32, OFF(score_threads), "0", 0, 256, NULL, "N",
     "Scoring threads: requests with a user vector are scored, filtered and ranked there, never on an event loop; 0 = one "
     "per online CPU."},
    {"score_batch_max", RECD_OPT_U32, OFF(score_batch_max), "32", 1, 1024, NULL, "N",
     "Most requests of one model version a scoring thread scans together, in one pass over the items."},
    {"score_batch_window_us", RECD_OPT_U32, OFF(score_batch_window_us), "2000", 0, 100000, NULL, "US",
     "Longest a scoring thread with a partial batch waits for more requests of its version, and never more than about a "
     "sixteenth of one scan of that version (1 ms for 1M items x 64 factors, 2 us for MovieLens 100K); 0 = it takes only "
     "what is queued."},
    {"score_queue_max", RECD_OPT_U32, OFF(score_queue_max), "0", 0, 1000000, NULL, "N",
     "Requests waiting for a scoring thread beyond which new ones are answered 503 with Retry-After (counted in "
     "recd_score_shed_total); 0 = 4 x score_threads x score_batch_max."},
    {"score_inline_max", RECD_OPT_U32, OFF(score_inline_max), "262144", 0, 100000000, NULL, "N",
     "Versions of at most this many item x factor products (items times factors) are scanned on the event loop itself: "
     "such a scan takes about 20 us, less than the hop to a scoring thread and back; 0 = every scan goes to the scoring "
     "threads."},
    {"bf16_tiles", RECD_OPT_BOOL, OFF(bf16_tiles), "true", 0, 1, NULL, "BOOL",
     "On a CPU with AVX-512 BF16, give each version a bf16 copy of its item rows (half their float32 size again), which "
     "exact search scores first to choose candidates, then re-ranks them from the float32 rows: the answers are the exact "
     "ones, in about a third of the time (docs/SCORING.md). Ignored elsewhere."},
    {"search", RECD_OPT_STRING, OFF(search), "exact", 0, 0, check_search, "MODE",
     "Search of a request that does not choose one (its search parameter): exact, or approximate (the version's index "
     "when it has one, else exact; answers say which ran)."},
    {"max_recent_items", RECD_OPT_U32, OFF(max_recent_items), "50", 1, 100000, NULL, "N",
     "Recent items kept in memory per user for fold-in."},
    {"max_users", RECD_OPT_U32, OFF(max_users), "1000000", 1, 1000000000, NULL, "N",
     "Users kept in memory by the embedded user state; beyond it the least recently updated user of a shard is evicted."},
    {"reload_interval_ms", RECD_OPT_U32, OFF(reload_interval_ms), "1000", 10, 3600000, NULL, "MS",
     "How often the registry is checked for new model versions."},
    {"log_level", RECD_OPT_STRING, OFF(log_level), "info", 0, 0, check_log_level, "LEVEL",
     "Lowest level logged to stderr: debug, info, warn or error."},
    {"jwt_hs256_secret_file", RECD_OPT_STRING, OFF(jwt_hs256_secret_file), "", 0, 0, NULL, "FILE",
     "File holding the HS256 secret (at least 32 bytes) that signs JWTs; only HS256 tokens are accepted then. Empty: none."},
    {"jwt_rs256_public_key", RECD_OPT_STRING, OFF(jwt_rs256_public_key), "", 0, 0, NULL, "FILE",
     "PEM file of the RSA public key that verifies JWTs; only RS256 tokens are accepted then. Empty: none."},
    {"jwt_clock_skew_s", RECD_OPT_U32, OFF(jwt_clock_skew_s), "30", 0, 3600, NULL, "SECONDS",
     "Clock-skew allowance when checking a JWT's exp and nbf."},
    {"jwt_public_scopes", RECD_OPT_BOOL, OFF(jwt_public_scopes), "false", 0, 1, NULL, "BOOL",
     "Public endpoints need a JWT too: recs:read for recommendations and similar items, events:write for events."},
    {"redis", RECD_OPT_STRING, OFF(redis), "", 0, 0, check_redis, "HOST:PORT",
     "Redis holding the users' vectors and recent items (docs/REDIS.md); empty: the embedded in-memory user state."},
    {"redis_timeout_ms", RECD_OPT_U32, OFF(redis_timeout_ms), "5", 1, 60000, NULL, "MS",
     "Deadline of one Redis lookup; a request that misses it is served without the user's stored state."},
    {"redis_vec_ttl_s", RECD_OPT_U32, OFF(redis_vec_ttl_s), "604800", 1, 315360000, NULL, "SECONDS",
     "Expiry of a user's vectors (and their stamp) in Redis, renewed by every write."},
    {"redis_recent_ttl_s", RECD_OPT_U32, OFF(redis_recent_ttl_s), "2592000", 1, 315360000, NULL, "SECONDS",
     "Expiry of a user's recent items in Redis, renewed by every append."},
};

static const recd_options_t spec = {options, sizeof(options) / sizeof(options[0]), "RECD", 1};

static int check_nonempty(const char *value, char *err, size_t errlen)
{
    if (value[0] == '\0') {
        snprintf(err, errlen, "must not be empty");
        return RECD_EINVAL;
    }
    return RECD_OK;
}

/* "" (none) or HOST:PORT with a port other than 0. */
static int check_redis(const char *value, char *err, size_t errlen)
{
    uint16_t port;
    if (value[0] == '\0' || (recd_config_parse_listen(value, NULL, 0, &port) == RECD_OK && port != 0))
        return RECD_OK;
    snprintf(err, errlen, "must be HOST:PORT with a port from 1 to 65535, got \"%s\"", value);
    return RECD_EINVAL;
}

static int check_search(const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "exact") == 0 || strcmp(value, "approximate") == 0)
        return RECD_OK;
    snprintf(err, errlen, "must be exact or approximate, got \"%s\"", value);
    return RECD_EINVAL;
}

/* A list of model names: each element non-empty and given once ("*" for every model; names are checked by the registry). */
static int check_models(const char *value, char *err, size_t errlen)
{
    size_t n;
    char **items = recd_options_list_items(value, &n);
    int ret = RECD_OK;
    for (size_t i = 0; i < n && ret == RECD_OK; ++i) {
        if (items[i][0] == '\0') {
            snprintf(err, errlen, "must be model names separated by commas, got \"%s\"", value);
            ret = RECD_EINVAL;
        }
        for (size_t j = 0; j < i && ret == RECD_OK; ++j) {
            if (strcmp(items[i], items[j]) == 0) {
                snprintf(err, errlen, "names \"%s\" twice", items[i]);
                ret = RECD_EINVAL;
            }
        }
    }
    if (n == 0) {
        snprintf(err, errlen, "must not be empty: name at least one model, or \"*\"");
        ret = RECD_EINVAL;
    }
    free(items);
    return ret;
}

static int check_log_level(const char *value, char *err, size_t errlen)
{
    if (recd_log_parse_level(value) >= 0)
        return RECD_OK;
    snprintf(err, errlen, "must be one of debug, info, warn, error, got \"%s\"", value);
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
        snprintf(err, errlen, "must be HOST:PORT or [IPv6]:PORT with port 0..65535, got \"%s\"", value);
        return RECD_EINVAL;
    }
    return RECD_OK;
}

void recd_config_init(recd_config_t *c)
{
    memset(c, 0, sizeof(*c));
    recd_options_init(&spec, c);
}

void recd_config_dispose(recd_config_t *c)
{
    recd_options_dispose(&spec, c);
}

int recd_config_check(const recd_config_t *c, char *err, size_t errlen)
{
    if (c->default_k > c->max_k) {
        snprintf(err, errlen, "default_k (%u) must not exceed max_k (%u)", c->default_k, c->max_k);
        return RECD_EINVAL;
    }
    if (c->jwt_hs256_secret_file[0] != '\0' && c->jwt_rs256_public_key[0] != '\0') {
        snprintf(err, errlen,
                 "jwt_hs256_secret_file and jwt_rs256_public_key are exclusive: the algorithm is pinned by the one key given");
        return RECD_EINVAL;
    }
    if (c->jwt_public_scopes && c->jwt_hs256_secret_file[0] == '\0' && c->jwt_rs256_public_key[0] == '\0') {
        snprintf(err, errlen, "jwt_public_scopes needs jwt_hs256_secret_file or jwt_rs256_public_key");
        return RECD_EINVAL;
    }
    return RECD_OK;
}

int recd_config_load_file(recd_config_t *c, const char *path, char *err, size_t errlen)
{
    return recd_options_load_file(&spec, c, path, err, errlen);
}

int recd_config_apply_env(recd_config_t *c, char *const *envp, char *err, size_t errlen)
{
    return recd_options_apply_env(&spec, c, envp, err, errlen);
}

int recd_config_set(recd_config_t *c, const char *key, const char *value, char *err, size_t errlen)
{
    return recd_options_set(&spec, c, key, value, err, errlen);
}

int recd_config_parse(recd_config_t *c, int argc, char **argv, char *const *envp, int *want_help, char *err, size_t errlen)
{
    int ret = recd_options_parse(&spec, c, argc, argv, envp, want_help, err, errlen);
    if (ret != RECD_OK || *want_help)
        return ret;
    return recd_config_check(c, err, errlen);
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
    recd_options_print(&spec, out);
    fprintf(out, "  -h, --help\n      Print this help and exit.\n");
}

void recd_config_print_markdown(FILE *out)
{
    recd_options_print_markdown(&spec, out);
}

int recd_config_to_json(const recd_config_t *c, char *buf, size_t buflen)
{
    return recd_options_to_json(&spec, c, buf, buflen);
}
