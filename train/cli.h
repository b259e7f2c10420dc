/* cli.h: recd-train's command line, callable in-process (bin/recd-train only dispatches to it; tests call it directly). */
#ifndef RECD_TRAIN_CLI_H
#define RECD_TRAIN_CLI_H

#include <stdio.h>

/**
 * Runs recd-train with argv (argv[0] is the program name; the subcommand train, evaluate or tune, when given, comes
 * next). The JSON report goes to out (unless --report), progress, tables and messages to err. Returns the exit status:
 * 0 success, 1 failure, 2 usage error. argv is not modified. Not thread-safe (option parsing uses getopt_long's globals).
 */
int recd_train_cli(int argc, char **argv, FILE *out, FILE *err);

#endif
