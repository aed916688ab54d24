/*
 * cli.h: the redline CLI's subcommands, one per file. Each takes its own
 * argv (argv[0] is the subcommand's name) and returns the exit status.
 */
#ifndef REDLINE_CLI_H
#define REDLINE_CLI_H

/* warmup.c: `redline warmup --config FILE [--upstream NAME=URL]...` */
int cli_warmup(int argc, char **argv);

#endif
