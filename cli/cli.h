/*
 * cli: the `rlpipe` command-line front end. main() dispatches `rlpipe <command> ...` to one
 * function per command (cli/cmd_<command>.c); each returns the process exit code.
 *
 * Exit codes (every command): 0 success; 2 bad usage or bad input (a one-line message naming the
 * file, line, key or tensor); 1 internal failure. --help on every command prints its usage to
 * stdout and exits 0.
 *
 * Owns: nothing global; commands receive argv and return a code.
 */
#ifndef RL_CLI_H
#define RL_CLI_H

#include "kernels/rl_error.h"

struct rl_config; // cli/config.h

enum { CLI_EXIT_OK = 0, CLI_EXIT_INTERNAL = 1, CLI_EXIT_USAGE = 2 };

// A command: argv[0] is the command name ("config"), argv[1..] its arguments.
typedef int (*cli_command_fn)(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    const char *summary; // one line for `rlpipe --help`
    cli_command_fn run;
} cli_command;

// Prints "rlpipe: <message>" on stderr and returns the exit code for the error's kind.
int cli_report(const rl_err *err);

// Prints "rlpipe <command>: <message> (see rlpipe <command> --help)" and returns 2.
int cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// 1 if argv[1..] contains -h or --help.
int cli_wants_help(int argc, char **argv);

// Options of a run command: `--name VALUE` (value != NULL) or a flag `--name` (flag != NULL).
typedef struct cli_opt {
    const char *name;   // without the dashes: "model"
    const char **value; // receives the option's argument
    int *flag;          // set to 1 when the flag is present
} cli_opt;

// Parses `CONFIG [--set k=v]... [options]` for a run command: at most max_positional positional
// arguments, --set collected into *sets (rl_malloc'ed array of borrowed argv strings; free() it).
// Returns 0, or the exit code 2 after printing a usage error.
int cli_parse_run_args(const char *command, int argc, char **argv, const cli_opt *opts, int n_opts,
                       const char **positional, int max_positional, int *n_positional, char ***sets,
                       int *n_sets);

// The prologue of a command that runs one config: parses `CONFIG [--set k=v]... [options]` with
// exactly one CONFIG and loads it with the --set overrides applied. Returns 0 with *cfg loaded
// (the caller rl_config_free()s it), or the exit code after printing the error (nothing to free).
int cli_load_run_config(const char *command, int argc, char **argv, const cli_opt *opts, int n_opts,
                        struct rl_config *cfg);

// The commands, each in cli/cmd_<name>.c.
int cmd_config(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logprobs(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_plan(int argc, char **argv);

// The from-scratch model shape of a config's model section (HF defaults for every field the
// section does not name; the vocabulary is left to the caller, who knows the tokenizer).
struct rl_cfg_model;
struct rl_model_config;
void cli_model_shape(const struct rl_cfg_model *s, struct rl_model_config *mc);

#endif
