// rlpipe: main() and the command table. Each command lives in cli/cmd_<name>.c.
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static int cmd_version(int argc, char **argv) {
    printf("rlpipe %s\n", RLPIPE_VERSION);
    return CLI_EXIT_OK;
}

static const cli_command COMMANDS[] = {
    // One line per command, in the order `rlpipe --help` lists them.
    {"version", "print the version", cmd_version},
};

static const int N_COMMANDS = (int)(sizeof COMMANDS / sizeof COMMANDS[0]);

static void print_usage(FILE *out) {
    fprintf(out, "usage: rlpipe <command> [options]\n\n"
                 "R1-style RL post-training for reasoning language models.\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\nRun `rlpipe <command> --help` for a command's options. Exit codes: 0 ok, "
                 "2 bad usage or input, 1 internal failure.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) return cmd_version(argc - 1, argv + 1);
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(name, COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "rlpipe: unknown command '%s' (see rlpipe --help)\n", name);
    return CLI_EXIT_USAGE;
}
