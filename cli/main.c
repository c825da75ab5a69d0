// rlpipe: main() and the command table. Each command lives in cli/cmd_<name>.c.
#include "cli/cli.h"

#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    {"distill", "token-level distillation from a teacher model (dynamic temperature)", cmd_distill},
    {"sample", "generate completions and show their verifier scores", cmd_sample},
    {"eval", "held-out pass@1 / pass@k and per-verifier means", cmd_eval},
    {"report", "an HTML report (curves, evals, samples) and PNGs from run logs", cmd_report},
    {"serve", "an OpenAI-compatible HTTP server for a model directory", cmd_serve},
    {"plan", "GPU memory per GPU for a run config (ZeRO stages, recomputation, KV)", cmd_plan},
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

// OpenMP worker threads spin while they wait for work, by default for long enough (~300,000
// iterations) that when anything else runs on the machine (another job, a verifier's sandboxed
// program, a compiler) a spinning thread holds a core its partner needs and a tiny model's step
// can take 3-10x longer. A short spin (GOMP_SPINCOUNT=1000) keeps the fast hand-offs between
// back-to-back parallel regions that batched decoding needs and then sleeps (see README,
// Performance). libgomp reads its settings when it is loaded, before main(), so rlpipe
// re-executes itself once with the short spin unless the user chose a policy.
static void prefer_short_openmp_spin(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", "1000", 1) != 0) return;
    execv("/proc/self/exe", argv);
    // exec failed (no /proc): carry on with the default policy.
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
    // after the answers that need no threads, so `rlpipe --help` starts in one exec
    prefer_short_openmp_spin(argv);
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(name, COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "rlpipe: unknown command '%s' (see rlpipe --help)\n", name);
    return CLI_EXIT_USAGE;
}
