/* recd-config: checks a configuration exactly as recd would read it and prints the effective JSON (or the key table). */
#include <stdio.h>
#include <string.h>
#include "config/config.h"

extern char **environ;

int main(int argc, char **argv)
{
    recd_config_t c;
    char err[512], json[4096];
    int help = 0, ret = 1;

    if (argc == 2 && strcmp(argv[1], "--markdown") == 0) {
        recd_config_print_markdown(stdout);
        return 0;
    }
    recd_config_init(&c);
    if (recd_config_parse(&c, argc, argv, environ, &help, err, sizeof(err)) != 0) {
        fprintf(stderr, "recd-config: %s\n", err);
        goto Exit;
    }
    if (help) {
        printf("recd-config: reads the configuration as recd does (same flags, RECD_* variables and --config file),\n"
               "prints the effective settings as JSON and exits 0, or names the first problem and exits 1.\n"
               "recd-config --markdown prints the key table of README.md. recd's options:\n\n");
        recd_config_print_help(stdout, "recd");
        ret = 0;
        goto Exit;
    }
    if (recd_config_to_json(&c, json, sizeof(json)) != 0) {
        fprintf(stderr, "recd-config: configuration too large to print\n");
        goto Exit;
    }
    printf("%s\n", json);
    ret = 0;
Exit:
    recd_config_dispose(&c);
    return ret;
}
