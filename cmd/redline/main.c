/*
 * main.c: the redline command line. It exists to give the operational tasks
 * around a redline service one binary: each subcommand lives in its own file
 * (warmup.c, ...) and is listed here.
 *
 *   redline warmup --config FILE [--upstream NAME=URL]...
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    { "warmup", cli_warmup, "run the cold-start checks of a config's upstreams once; exit 0 or 1" },
};

static void usage(FILE *out)
{
    fputs("usage: redline COMMAND [ARGS]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "redline: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
