/* main.c: recd-train — ingest an interaction log; train, evaluate or tune ALS, BPR, biased MF or popularity; publish the
 * model to a registry. The subcommands live in train/ (train/cli.h), so tests run them in-process. */
#include <stdio.h>
#include "train/cli.h"

int main(int argc, char **argv)
{
    return recd_train_cli(argc, argv, stdout, stderr);
}
