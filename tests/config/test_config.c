/* test_config.c: defaults, file/env/flag precedence, every validation error, help text, README table, JSON round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "config/config.h"
#include "config/options.h"
#include "models/model.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Writes text to a fresh temporary file; returns its path (static buffer per call site is fine in tests: caller copies). */
static void write_temp(char *path, size_t len, const char *text)
{
    snprintf(path, len, "/tmp/recd-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Loads text as a config file onto defaults; returns the code, message in err. */
static int load_text(recd_config_t *c, const char *text, char *err, size_t errlen)
{
    char path[64];
    write_temp(path, sizeof(path), text);
    recd_config_init(c);
    int ret = recd_config_load_file(c, path, err, errlen);
    unlink(path);
    return ret;
}

static void expect_file_error(const char *text, int code, const char *needle1, const char *needle2)
{
    recd_config_t c;
    char err[512] = "";
    int ret = load_text(&c, text, err, sizeof(err));
    recd_config_dispose(&c);
    if (ret != code || strstr(err, needle1) == NULL || (needle2 != NULL && strstr(err, needle2) == NULL))
        fail_msg("file %s: got %d \"%s\", want %d with \"%s\" and \"%s\"", text, ret, err, code, needle1,
                 needle2 != NULL ? needle2 : "");
}

static void expect_parse_error(char **argv, int argc, char **envp, const char *needle1, const char *needle2)
{
    recd_config_t c;
    char err[512] = "";
    int help = 0;
    recd_config_init(&c);
    int ret = recd_config_parse(&c, argc, argv, envp, &help, err, sizeof(err));
    recd_config_dispose(&c);
    if (ret != RECD_EINVAL || strstr(err, needle1) == NULL || (needle2 != NULL && strstr(err, needle2) == NULL))
        fail_msg("parse: got %d \"%s\", want EINVAL with \"%s\" and \"%s\"", ret, err, needle1, needle2 != NULL ? needle2 : "");
}

static void test_config_defaults(void **state)
{
    recd_config_t c;
    recd_config_init(&c);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_int_equal(c.threads, 0);
    assert_string_equal(c.registry, "registry");
    assert_string_equal(c.model, "default");
    assert_string_equal(c.events_path, "data/events.jsonl");
    assert_int_equal(c.events_fsync, 0);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.default_k, 10);
    assert_int_equal(c.max_k, 1000);
    assert_int_equal(c.max_recent_items, 50);
    assert_int_equal(c.max_users, 1000000);
    assert_int_equal(c.reload_interval_ms, 1000);
    assert_string_equal(c.log_level, "info");
    char err[256];
    assert_int_equal(recd_config_check(&c, err, sizeof(err)), RECD_OK);
    recd_config_dispose(&c);
    assert_null(c.listen);
    recd_config_dispose(&c); /* twice is harmless */
}

static void test_config_parse_no_args_gives_defaults(void **state)
{
    recd_config_t c, d;
    char err[256], a[1024], b[1024];
    int help = 1;
    char *argv[] = {"recd"};
    char *envp[] = {"PATH=/usr/bin", "RECD_DATA_DIR=/elsewhere", "RECD_SOURCE_DIR=/x", NULL};
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(argv), argv, envp, &help, err, sizeof(err)), RECD_OK);
    assert_int_equal(help, 0);
    recd_config_init(&d);
    assert_int_equal(recd_config_to_json(&c, a, sizeof(a)), RECD_OK);
    assert_int_equal(recd_config_to_json(&d, b, sizeof(b)), RECD_OK);
    assert_string_equal(a, b);
    recd_config_dispose(&c);
    recd_config_dispose(&d);
    /* NULL envp is accepted */
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(argv), argv, NULL, &help, err, sizeof(err)), RECD_OK);
    recd_config_dispose(&c);
}

static void test_config_file_override(void **state)
{
    recd_config_t c;
    char err[256] = "";
    assert_int_equal(load_text(&c,
                               "{\"listen\": \"[::1]:9090\", \"threads\": 4, \"events_fsync\": true, \"max_body_bytes\": 4096,"
                               " \"log_level\": \"debug\", \"model\": \"ml100k\"}",
                               err, sizeof(err)),
                     RECD_OK);
    assert_string_equal(c.listen, "[::1]:9090");
    assert_int_equal(c.threads, 4);
    assert_int_equal(c.events_fsync, 1);
    assert_int_equal(c.max_body_bytes, 4096);
    assert_string_equal(c.log_level, "debug");
    assert_string_equal(c.model, "ml100k");
    /* keys absent from the file keep their defaults */
    assert_string_equal(c.registry, "registry");
    assert_int_equal(c.max_k, 1000);
    recd_config_dispose(&c);
}

/* The shipped config/recd.json names every key with its default value. */
static void test_config_shipped_file_matches_defaults(void **state)
{
    const char *src = getenv("RECD_SOURCE_DIR");
    assert_non_null(src);
    char path[1024], err[512] = "", a[1024], b[1024];
    snprintf(path, sizeof(path), "%s/config/recd.json", src);
    recd_config_t c, d;
    recd_config_init(&c);
    recd_config_init(&d);
    /* start from changed values so that a key missing from the file would show up as a difference */
    assert_int_equal(recd_config_set(&c, "threads", "7", err, sizeof(err)), RECD_OK);
    assert_int_equal(recd_config_set(&c, "log_level", "error", err, sizeof(err)), RECD_OK);
    assert_int_equal(recd_config_load_file(&c, path, err, sizeof(err)), RECD_OK);
    assert_int_equal(recd_config_to_json(&c, a, sizeof(a)), RECD_OK);
    assert_int_equal(recd_config_to_json(&d, b, sizeof(b)), RECD_OK);
    assert_string_equal(a, b);
    json_t *file = json_load_file(path, 0, NULL), *defaults = json_loads(b, 0, NULL);
    assert_non_null(file);
    assert_non_null(defaults);
    assert_int_equal(json_object_size(file), json_object_size(defaults));
    json_decref(file);
    json_decref(defaults);
    recd_config_dispose(&c);
    recd_config_dispose(&d);
}

static void test_config_env_overrides_file(void **state)
{
    char path[64], cfg_env[128], err[512] = "";
    write_temp(path, sizeof(path), "{\"threads\": 2, \"model\": \"from_file\", \"max_k\": 500}");
    snprintf(cfg_env, sizeof(cfg_env), "RECD_CONFIG=%s", path);
    char *envp[] = {cfg_env, "RECD_THREADS=3", "RECD_EVENTS_FSYNC=yes", "RECD_THREADSX=9", NULL};
    char *argv[] = {"recd"};
    recd_config_t c;
    int help;
    recd_config_init(&c);
    int ret = recd_config_parse(&c, ARGC(argv), argv, envp, &help, err, sizeof(err));
    unlink(path);
    assert_int_equal(ret, RECD_OK);
    assert_int_equal(c.threads, 3);            /* env beats file */
    assert_string_equal(c.model, "from_file"); /* file beats default */
    assert_int_equal(c.max_k, 500);
    assert_int_equal(c.events_fsync, 1);
    recd_config_dispose(&c);
}

static void test_config_flag_overrides_env(void **state)
{
    char path[64], path2[64], cfg_flag[128], cfg_env[128], err[512] = "";
    write_temp(path, sizeof(path), "{\"threads\": 2, \"registry\": \"flag_file\"}");
    write_temp(path2, sizeof(path2), "{\"registry\": \"env_file\", \"model\": \"env_file\"}");
    snprintf(cfg_flag, sizeof(cfg_flag), "--config=%s", path);
    snprintf(cfg_env, sizeof(cfg_env), "RECD_CONFIG=%s", path2);
    char *envp[] = {cfg_env, "RECD_THREADS=3", "RECD_MAX_K=40", "RECD_LOG_LEVEL=warn", NULL};
    char *argv[] = {"recd", "--threads",      "5",        "--max-k=50",  "--default_k",
                    "20",   "--events-fsync", "--listen", "localhost:0", cfg_flag};
    recd_config_t c;
    int help;
    recd_config_init(&c);
    int ret = recd_config_parse(&c, ARGC(argv), argv, envp, &help, err, sizeof(err));
    unlink(path);
    unlink(path2);
    if (ret != RECD_OK)
        fail_msg("%s", err);
    assert_int_equal(c.threads, 5);      /* flag beats env */
    assert_int_equal(c.max_k, 50);       /* --key=value, '-' form */
    assert_int_equal(c.default_k, 20);   /* '_' form */
    assert_int_equal(c.events_fsync, 1); /* boolean alone */
    assert_string_equal(c.listen, "localhost:0");
    assert_string_equal(c.registry, "flag_file"); /* --config beats RECD_CONFIG */
    assert_string_equal(c.model, "default");      /* RECD_CONFIG's file was not read */
    assert_string_equal(c.log_level, "warn");     /* env kept where no flag */
    recd_config_dispose(&c);
}

static void test_config_bool_flag_forms(void **state)
{
    char err[256];
    int help;
    recd_config_t c;
    char *a1[] = {"recd", "--events-fsync", "false", "--threads", "1"};
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(a1), a1, NULL, &help, err, sizeof(err)), RECD_OK);
    assert_int_equal(c.events_fsync, 0);
    assert_int_equal(c.threads, 1);
    recd_config_dispose(&c);
    char *a2[] = {"recd", "--events_fsync=on"};
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(a2), a2, NULL, &help, err, sizeof(err)), RECD_OK);
    assert_int_equal(c.events_fsync, 1);
    recd_config_dispose(&c);
    char *a3[] = {"recd", "--events-fsync=maybe"};
    expect_parse_error(a3, ARGC(a3), NULL, "--events-fsync", "true or false");
    char *e4[] = {"RECD_EVENTS_FSYNC=2", NULL};
    char *a4[] = {"recd"};
    expect_parse_error(a4, ARGC(a4), e4, "RECD_EVENTS_FSYNC", "true or false");
}

static void test_config_help(void **state)
{
    char err[256];
    int help = 0;
    recd_config_t c;
    char *argv[] = {"recd", "--threads", "999", "--help"};
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(argv), argv, NULL, &help, err, sizeof(err)), RECD_OK);
    assert_int_equal(help, 1);
    recd_config_dispose(&c);
    char *argv2[] = {"recd", "-h"};
    help = 0;
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(argv2), argv2, NULL, &help, err, sizeof(err)), RECD_OK);
    assert_int_equal(help, 1);
    recd_config_dispose(&c);
}

/* Every key from to_json, with its flag and env spellings, appears in --help and in the Markdown table. */
static void test_config_help_mentions_every_key(void **state)
{
    char *text = NULL, *md = NULL, buf[1024];
    size_t len = 0, mdlen = 0;
    FILE *out = open_memstream(&text, &len);
    recd_config_print_help(out, "recd");
    fclose(out);
    out = open_memstream(&md, &mdlen);
    recd_config_print_markdown(out);
    fclose(out);
    assert_non_null(strstr(text, "Usage: recd"));
    assert_non_null(strstr(text, "--config FILE"));
    assert_non_null(strstr(text, "RECD_CONFIG"));

    recd_config_t c;
    recd_config_init(&c);
    assert_int_equal(recd_config_to_json(&c, buf, sizeof(buf)), RECD_OK);
    json_t *obj = json_loads(buf, 0, NULL);
    assert_non_null(obj);
    assert_int_equal(json_object_size(obj), 32);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char flag[64], env[64], keyword[64];
        snprintf(flag, sizeof(flag), "--%s ", key);
        for (char *p = flag; *p != '\0'; ++p)
            if (*p == '_')
                *p = '-';
        snprintf(env, sizeof(env), "RECD_%s", key);
        for (char *p = env; *p != '\0'; ++p)
            *p = (char)toupper((unsigned char)*p);
        snprintf(keyword, sizeof(keyword), "key %s,", key);
        if (strstr(text, flag) == NULL || strstr(text, env) == NULL || strstr(text, keyword) == NULL)
            fail_msg("--help lacks %s / %s / %s", flag, env, keyword);
        snprintf(keyword, sizeof(keyword), "| `%s` |", key);
        if (strstr(md, keyword) == NULL || strstr(md, env) == NULL)
            fail_msg("markdown table lacks %s", key);
    }
    json_decref(obj);
    recd_config_dispose(&c);
    free(text);
    free(md);
}

/* README.md's Configuration section holds exactly the table recd_config_print_markdown prints. */
static void test_config_readme_table_matches(void **state)
{
    const char *src = getenv("RECD_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof(path), "%s/README.md", src);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        fail_msg("cannot open %s", path);
    char *readme = NULL;
    size_t cap = 0, rlen = 0;
    FILE *acc = open_memstream(&readme, &cap);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        fwrite(chunk, 1, n, acc);
    fclose(fp);
    fclose(acc);
    rlen = strlen(readme);
    (void)rlen;
    char *md = NULL;
    size_t mdlen = 0;
    FILE *out = open_memstream(&md, &mdlen);
    recd_config_print_markdown(out);
    fclose(out);
    if (strstr(readme, "## Configuration") == NULL || strstr(readme, md) == NULL)
        fail_msg("README.md's ## Configuration section must contain exactly this table:\n%s", md);
    free(readme);
    free(md);
}

static void test_config_to_json_round_trip(void **state)
{
    recd_config_t c, d;
    char err[512] = "", a[1024], b[1024], path[64];
    recd_config_init(&c);
    const char *kv[][2] = {{"listen", "[::1]:1234"},
                           {"threads", "3"},
                           {"registry", "/srv/reg \"quoted\""},
                           {"model", "m-1"},
                           {"events_path", "ev.jsonl"},
                           {"events_fsync", "true"},
                           {"max_body_bytes", "2048"},
                           {"default_k", "7"},
                           {"max_k", "70"},
                           {"max_recent_items", "9"},
                           {"max_users", "12345"},
                           {"reload_interval_ms", "250"},
                           {"log_level", "error"}};
    for (size_t i = 0; i != sizeof(kv) / sizeof(kv[0]); ++i)
        if (recd_config_set(&c, kv[i][0], kv[i][1], err, sizeof(err)) != RECD_OK)
            fail_msg("%s", err);
    assert_int_equal(recd_config_to_json(&c, a, sizeof(a)), RECD_OK);
    write_temp(path, sizeof(path), a);
    recd_config_init(&d);
    int ret = recd_config_load_file(&d, path, err, sizeof(err));
    unlink(path);
    if (ret != RECD_OK)
        fail_msg("%s", err);
    assert_string_equal(d.registry, "/srv/reg \"quoted\"");
    assert_int_equal(d.reload_interval_ms, 250);
    assert_int_equal(recd_config_to_json(&d, b, sizeof(b)), RECD_OK);
    assert_string_equal(a, b);
    /* too small a buffer is an error, not a truncation */
    assert_int_equal(recd_config_to_json(&d, b, 16), RECD_EINVAL);
    recd_config_dispose(&c);
    recd_config_dispose(&d);
}

/* model is a list: a repeated flag appends (replacing what the file or a variable set), a variable and a file string are
 * comma-separated, a file array is joined; duplicates and empty names are refused. */
static void test_config_model_list(void **state)
{
    recd_config_t c;
    char err[256] = "", path[64], cfg_env[128], json[1024];
    int help;
    size_t n;

    write_temp(path, sizeof(path), "{\"model\": [\"a\", \"b\"], \"max_loaded_bytes\": 4096}");
    snprintf(cfg_env, sizeof(cfg_env), "RECD_CONFIG=%s", path);
    char *envp_file[] = {cfg_env, NULL};
    char *argv0[] = {"recd"};
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(argv0), argv0, envp_file, &help, err, sizeof(err)), RECD_OK);
    assert_string_equal(c.model, "a,b");
    assert_int_equal(c.max_loaded_bytes, 4096);
    assert_int_equal(recd_config_to_json(&c, json, sizeof(json)), RECD_OK);
    assert_non_null(strstr(json, "\"model\":[\"a\",\"b\"]"));
    recd_config_dispose(&c);

    char *argv[] = {"recd", "--model", "x", "--model=y", "--model", "*"};
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(argv), argv, envp_file, &help, err, sizeof(err)), RECD_OK);
    assert_string_equal(c.model, "x,y,*"); /* the flags replace the file's list, then append */
    char **items = recd_options_list_items(c.model, &n);
    assert_int_equal(n, 3);
    assert_string_equal(items[0], "x");
    assert_string_equal(items[2], "*");
    free(items);
    recd_config_dispose(&c);
    unlink(path);

    char *envp[] = {"RECD_MODEL=m1,m2", NULL};
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(argv0), argv0, envp, &help, err, sizeof(err)), RECD_OK);
    assert_string_equal(c.model, "m1,m2");
    recd_config_dispose(&c);

    char *dup[] = {"recd", "--model", "x", "--model", "x"};
    expect_parse_error(dup, ARGC(dup), NULL, "names \"x\" twice", "--model");
    char *empty[] = {"recd", "--model", "a,,b"};
    expect_parse_error(empty, ARGC(empty), NULL, "model names separated by commas", NULL);
    expect_file_error("{\"model\": []}", RECD_EINVAL, "model must be a JSON string or a non-empty array", NULL);
    expect_file_error("{\"model\": [\"a,b\"]}", RECD_EINVAL, "model[0] must be a non-empty string without commas", NULL);
    expect_file_error("{\"model\": [\"a\", \"a\"]}", RECD_EINVAL, "names \"a\" twice", NULL);
    expect_file_error("{\"model\": 3}", RECD_EINVAL, "model must be a JSON string or a non-empty array", NULL);
}

static void test_config_file_errors(void **state)
{
    expect_file_error("{\"treads\": 2}", RECD_EINVAL, "unknown key \"treads\"", "did you mean \"threads\"");
    expect_file_error("{\"zzzzzzzz\": 2}", RECD_EINVAL, "unknown key \"zzzzzzzz\"", NULL);
    expect_file_error("{\"threads\": \"2\"}", RECD_EINVAL, "threads must be a JSON integer", NULL);
    expect_file_error("{\"threads\": 2.5}", RECD_EINVAL, "threads must be a JSON integer", NULL);
    expect_file_error("{\"listen\": 8080}", RECD_EINVAL, "listen must be a JSON string", NULL);
    expect_file_error("{\"events_fsync\": 1}", RECD_EINVAL, "events_fsync must be a JSON boolean", NULL);
    expect_file_error("{\"threads\": 257}", RECD_EINVAL, "threads must be 0..256, got 257", NULL);
    expect_file_error("{\"threads\": -1}", RECD_EINVAL, "threads must be 0..256, got -1", NULL);
    expect_file_error("{\"max_k\": 0}", RECD_EINVAL, "max_k must be 1..100000, got 0", NULL);
    expect_file_error("{\"max_k\": 100001}", RECD_EINVAL, "max_k must be 1..100000", NULL);
    expect_file_error("{\"max_users\": 0}", RECD_EINVAL, "max_users must be 1..1000000000, got 0", NULL);
    expect_file_error("{\"max_users\": 1000000001}", RECD_EINVAL, "max_users must be 1..1000000000", NULL);
    expect_file_error("{\"max_body_bytes\": 1023}", RECD_EINVAL, "max_body_bytes must be 1024..", NULL);
    expect_file_error("{\"log_level\": \"verbose\"}", RECD_EINVAL, "log_level must be one of debug, info, warn, error", NULL);
    expect_file_error("{\"model\": \"\"}", RECD_EINVAL, "model must not be empty", NULL);
    expect_file_error("{\"listen\": \"8080\"}", RECD_EINVAL, "listen must be HOST:PORT", NULL);
    expect_file_error("{\"threads\": 2", RECD_EFORMAT, "line 1", NULL);
    expect_file_error("[1, 2]", RECD_EFORMAT, "must hold a JSON object", NULL);
    expect_file_error("{\"threads\": 1, \"threads\": 2}", RECD_EFORMAT, "duplicate", NULL);

    recd_config_t c;
    char err[512] = "";
    recd_config_init(&c);
    assert_int_equal(recd_config_load_file(&c, "/nonexistent/recd.json", err, sizeof(err)), RECD_EIO);
    assert_non_null(strstr(err, "/nonexistent/recd.json"));
    recd_config_dispose(&c);
}

static void test_config_listen_forms(void **state)
{
    char host[64];
    uint16_t port = 1;
    assert_int_equal(recd_config_parse_listen("127.0.0.1:8080", host, sizeof(host), &port), RECD_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(recd_config_parse_listen("[::1]:0", host, sizeof(host), &port), RECD_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(recd_config_parse_listen("localhost:65535", host, sizeof(host), &port), RECD_OK);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 65535);
    assert_int_equal(recd_config_parse_listen("0.0.0.0:80", NULL, 0, NULL), RECD_OK);
    const char *bad[] = {"8080",      ":8080", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:99999999", "127.0.0.1:80a", "::1:8080",
                         "[::1]8080", "[::1]", "[]:80",      "[::1:80",         "host name:80",       "127.0.0.1:-1",  ""};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        if (recd_config_parse_listen(bad[i], host, sizeof(host), &port) != RECD_EINVAL)
            fail_msg("accepted listen \"%s\"", bad[i]);
    assert_int_equal(recd_config_parse_listen("averylonghostname:80", host, 8, &port), RECD_EINVAL);
}

static void test_config_flag_errors(void **state)
{
    char *a1[] = {"recd", "--treads", "2"};
    expect_parse_error(a1, ARGC(a1), NULL, "unknown flag \"--treads\"", "did you mean \"--threads\"");
    char *a2[] = {"recd", "--max-body", "2"};
    expect_parse_error(a2, ARGC(a2), NULL, "unknown flag \"--max-body\"", "--max-body-bytes");
    char *a3[] = {"recd", "--threads"};
    expect_parse_error(a3, ARGC(a3), NULL, "flag --threads needs a value", NULL);
    char *a3b[] = {"recd", "--registry", "--model", "x"};
    expect_parse_error(a3b, ARGC(a3b), NULL, "flag --registry needs a value", NULL);
    char *a4[] = {"recd", "--config"};
    expect_parse_error(a4, ARGC(a4), NULL, "flag --config needs a value", NULL);
    char *a5[] = {"recd", "extra"};
    expect_parse_error(a5, ARGC(a5), NULL, "unexpected argument \"extra\"", NULL);
    char *a6[] = {"recd", "-t", "2"};
    expect_parse_error(a6, ARGC(a6), NULL, "unexpected argument \"-t\"", NULL);
    char *a7[] = {"recd", "--threads", "two"};
    expect_parse_error(a7, ARGC(a7), NULL, "--threads: threads must be an integer 0..256, got \"two\"", NULL);
    char *a8[] = {"recd", "--threads=-1"};
    expect_parse_error(a8, ARGC(a8), NULL, "--threads: threads must be an integer", NULL);
    char *a9[] = {"recd", "--max-body-bytes", "99999999999999999999999"};
    expect_parse_error(a9, ARGC(a9), NULL, "max_body_bytes must be 1024..", NULL);
    char *a10[] = {"recd", "--threads", "300"};
    expect_parse_error(a10, ARGC(a10), NULL, "--threads: threads must be 0..256, got 300", NULL);
    char *a11[] = {"recd", "--listen", "[::1]:70000"};
    expect_parse_error(a11, ARGC(a11), NULL, "--listen: listen must be HOST:PORT or [IPv6]:PORT", "70000");
    char *a12[] = {"recd", "--log-level", "loud"};
    expect_parse_error(a12, ARGC(a12), NULL, "log_level must be one of", "loud");
    char *a13[] = {"recd", "--default-k", "20", "--max-k", "10"};
    expect_parse_error(a13, ARGC(a13), NULL, "default_k (20) must not exceed max_k (10)", NULL);
    char *a14[] = {"recd", "--threads", "1 "};
    expect_parse_error(a14, ARGC(a14), NULL, "must be an integer", NULL);
    char *a15[] = {"recd", "--"};
    expect_parse_error(a15, ARGC(a15), NULL, "unexpected argument \"--\"", NULL);
    char *a16[] = {"recd", "--config", "/nonexistent/x.json"};
    recd_config_t c;
    char err[512];
    int help;
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(a16), a16, NULL, &help, err, sizeof(err)), RECD_EIO);
    recd_config_dispose(&c);
}

static void test_config_env_errors(void **state)
{
    char *argv[] = {"recd"};
    char *e1[] = {"RECD_MAX_K=0", NULL};
    expect_parse_error(argv, 1, e1, "RECD_MAX_K: max_k must be 1..100000, got 0", NULL);
    char *e2[] = {"RECD_THREADS=-3", NULL};
    expect_parse_error(argv, 1, e2, "RECD_THREADS: threads must be an integer", NULL);
    char *e3[] = {"RECD_LISTEN=nowhere", NULL};
    expect_parse_error(argv, 1, e3, "RECD_LISTEN: listen must be HOST:PORT", NULL);
    char *e5[] = {"RECD_MAX_USERS=0", NULL};
    expect_parse_error(argv, 1, e5, "RECD_MAX_USERS: max_users must be 1..1000000000, got 0", NULL);
    char *e4[] = {"RECD_DEFAULT_K=2000", NULL};
    expect_parse_error(argv, 1, e4, "default_k (2000) must not exceed max_k (1000)", NULL);
    /* an env error is fixed by a flag only if the env value is valid on its own: invalid values fail early */
    char *argv2[] = {"recd", "--max-k", "5000"};
    recd_config_t c;
    char err[256];
    int help;
    recd_config_init(&c);
    assert_int_equal(recd_config_parse(&c, ARGC(argv2), argv2, e4, &help, err, sizeof(err)), RECD_OK);
    assert_int_equal(c.default_k, 2000);
    assert_int_equal(c.max_k, 5000);
    recd_config_dispose(&c);
}

static void test_config_set(void **state)
{
    recd_config_t c;
    char err[256];
    recd_config_init(&c);
    assert_int_equal(recd_config_set(&c, "max-recent-items", "77", err, sizeof(err)), RECD_OK);
    assert_int_equal(c.max_recent_items, 77);
    assert_int_equal(recd_config_set(&c, "reload_interval_ms", "5", err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "reload_interval_ms must be 10..3600000, got 5"));
    assert_int_equal(recd_config_set(&c, "modle", "x", err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "did you mean \"model\""));
    assert_int_equal(recd_config_set(&c, "max-users", "64", err, sizeof(err)), RECD_OK);
    assert_int_equal(c.max_users, 64);
    assert_int_equal(recd_config_set(&c, "max_users", "1000000000", err, sizeof(err)), RECD_OK);
    assert_int_equal(c.max_users, 1000000000);
    assert_int_equal(recd_config_set(&c, "max_users", "1000000001", err, sizeof(err)), RECD_EINVAL);
    assert_non_null(strstr(err, "max_users must be 1..1000000000, got 1000000001"));
    assert_int_equal(c.max_users, 1000000000);
    assert_int_equal(recd_config_set(&c, "max_body_bytes", "4294967296", err, sizeof(err)), RECD_EINVAL);
    assert_int_equal(recd_config_set(&c, "max_body_bytes", "1073741824", err, sizeof(err)), RECD_OK);
    assert_int_equal(c.max_body_bytes, UINT64_C(1073741824));
    recd_config_dispose(&c);
}

int test_config_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_parse_no_args_gives_defaults),
        cmocka_unit_test(test_config_file_override),
        cmocka_unit_test(test_config_shipped_file_matches_defaults),
        cmocka_unit_test(test_config_env_overrides_file),
        cmocka_unit_test(test_config_flag_overrides_env),
        cmocka_unit_test(test_config_bool_flag_forms),
        cmocka_unit_test(test_config_help),
        cmocka_unit_test(test_config_help_mentions_every_key),
        cmocka_unit_test(test_config_readme_table_matches),
        cmocka_unit_test(test_config_to_json_round_trip),
        cmocka_unit_test(test_config_file_errors),
        cmocka_unit_test(test_config_model_list),
        cmocka_unit_test(test_config_listen_forms),
        cmocka_unit_test(test_config_flag_errors),
        cmocka_unit_test(test_config_env_errors),
        cmocka_unit_test(test_config_set),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
