/* options.h: one table of options drives defaults, a JSON file, <PREFIX>_<KEY> variables, --flags, validation, help and
 * JSON output — for recd's configuration and for every other program's flags. */
#ifndef RECD_CONFIG_OPTIONS_H
#define RECD_CONFIG_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/**
 * Option types. RECD_OPT_LIST is a char * holding comma-separated values: a repeated --flag appends to it (the first one given
 * replaces what the file or a variable set), a variable gives it comma-separated, the file as one string or an array of
 * strings; the check runs on the joined value.
 */
typedef enum en_recd_option_type_t { RECD_OPT_STRING, RECD_OPT_U32, RECD_OPT_U64, RECD_OPT_BOOL, RECD_OPT_LIST } recd_option_type_t;

/** Validates a string value; returns 0, or RECD_EINVAL with why it is wrong in err ("must be ..."). */
typedef int (*recd_option_check_cb)(const char *value, char *err, size_t errlen);

/**
 * One option: its key ("max_k"; the flag is --max-k, the variable <PREFIX>_MAX_K), its type and where it lives in the
 * target struct (a char * the struct owns for strings and lists, uint32_t, uint64_t or int), its default in string form (parsed
 * through the same path as a flag; NULL: required, no default), the inclusive range for numbers, an optional check for strings, and
 * the words of --help.
 */
typedef struct st_recd_option_t {
    const char *key;
    recd_option_type_t type;
    size_t offset;
    const char *def;
    uint64_t min, max;
    recd_option_check_cb check;
    const char *metavar;
    const char *doc;
} recd_option_t;

/** A program's option table. */
typedef struct st_recd_options_t {
    const recd_option_t *options;
    size_t n_options;
    const char *env_prefix; /* "RECD": variables are RECD_<KEY> and RECD_CONFIG names the file; NULL: flags only */
    int has_config_file;    /* --config FILE (and <PREFIX>_CONFIG) read a JSON object of these keys */
} recd_options_t;

/** Sets every option of target to its default (required ones stay zero/NULL). Aborts when a built-in default is invalid. */
void recd_options_init(const recd_options_t *spec, void *target);
/** Frees target's strings and sets them to NULL. */
void recd_options_dispose(const recd_options_t *spec, void *target);
/** Applies the JSON object in path; unknown keys, wrong types and out-of-range values are errors naming the key. */
int recd_options_load_file(const recd_options_t *spec, void *target, const char *path, char *err, size_t errlen);
/** Applies <PREFIX>_<KEY> variables (key upper-cased) from a NULL-terminated environ-style array. */
int recd_options_apply_env(const recd_options_t *spec, void *target, char *const *envp, char *err, size_t errlen);
/** Sets one option from its string form (as a flag or variable gives it); '-' and '_' are interchangeable in key. */
int recd_options_set(const recd_options_t *spec, void *target, const char *key, const char *value, char *err, size_t errlen);
/**
 * The whole chain for a main(): the --config file (when the table has one), variables, then flags (--key value or
 * --key=value; a boolean flag alone means true), and finally every required option must have been given. *want_help is set
 * for -h/--help, and then nothing else is parsed. Returns RECD_OK, or a RECD_E* code with a message in err naming the key,
 * flag or variable at fault (with a "did you mean" for a near miss).
 */
int recd_options_parse(const recd_options_t *spec, void *target, int argc, char **argv, char *const *envp, int *want_help,
                       char *err, size_t errlen);
/** Prints one entry per option: flag, metavar, meaning, type and range, default and variable. */
void recd_options_print(const recd_options_t *spec, FILE *out);
/** Prints the options as a Markdown table (key, flag, env, type, default, meaning). */
void recd_options_print_markdown(const recd_options_t *spec, FILE *out);
/**
 * Splits a list option's value at its commas into a malloc'ed array of *n NUL-terminated strings (one allocation: free the
 * array alone). An empty value gives *n 0.
 */
char **recd_options_list_items(const char *value, size_t *n);
/** Writes target as a compact NUL-terminated JSON object, keys in table order. Returns RECD_EINVAL when it does not fit. */
int recd_options_to_json(const recd_options_t *spec, const void *target, char *buf, size_t buflen);

#endif
