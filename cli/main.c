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
    {"config", "show, check and document run configs (YAML)", cmd_config},
    {"logs", "query a rollout log: runs, steps, rollouts, one rollout, read-only SQL", cmd_logs},
    {"tokenize", "text to token ids and back, as JSON lines", cmd_tokenize},
    {"model", "create (init) and inspect (info) Hugging Face model directories", cmd_model},
    {"logprobs", "per-token log-probabilities of token sequences under a model", cmd_logprobs},
    {"verify", "score JSON lines of completions with the reward verifiers", cmd_verify},
    {"train", "the whole recipe: cold-start SFT, then GRPO against the verifiers", cmd_train},
    {"sft", "cold-start supervised fine-tuning on teacher traces or a JSONL file", cmd_sft},
    {"sample", "generate completions and show their verifier scores", cmd_sample},
    {"eval", "held-out pass@1 / pass@k and per-verifier means", cmd_eval},
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
