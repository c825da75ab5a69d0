// cmd_config: `rlpipe config show|check|reference`: print, validate and document run configs.
// These commands only read: they never create a file or directory.
#include "cli/cli.h"
#include "cli/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: rlpipe config <subcommand> [options]\n"
    "\n"
    "Run configs are YAML files (configs/tiny.yaml, configs/examples/); every key has a default.\n"
    "\n"
    "subcommands:\n"
    "  show [CONFIG] [--set key=value]...    print the effective config as YAML (defaults filled "
    "in)\n"
    "  check [CONFIG] [--set key=value]...   validate; print a one-line summary (exit 0) or the\n"
    "                                        error (exit 2)\n"
    "  reference                             print the key reference as Markdown "
    "(configs/README.md)\n"
    "\n"
    "Without CONFIG the built-in defaults are used. Run `rlpipe config <subcommand> --help` for\n"
    "details.\n";

static const char *SET_HELP =
    "  --set key=value   override one key after loading (repeatable, applied in order), with the\n"
    "                    same checks as the file: --set rollout.temperature=0.7,\n"
    "                    --set rollout.stop='[\"</s>\",\"\\n\\n\"]', --set "
    "data.tasks=[arith,deriv].\n"
    "                    Values are YAML; a string key takes the text after '=' literally unless\n"
    "                    it starts with a quote.\n";

static void show_usage(FILE *out) {
    fprintf(out,
            "usage: rlpipe config show [CONFIG] [--set key=value]...\n\n"
            "Prints the effective config (every key, defaults and derived paths filled in) as\n"
            "YAML that loads back to the same config. Without CONFIG: the built-in defaults.\n\n"
            "options:\n%s  -h, --help        this help\n",
            SET_HELP);
}

static void check_usage(FILE *out) {
    fprintf(out,
            "usage: rlpipe config check [CONFIG] [--set key=value]...\n\n"
            "Validates the config (types, ranges, unknown keys, rules across keys) and prints\n"
            "a one-line summary. Exit 0 when valid, 2 with a one-line error naming the key and\n"
            "file:line:column otherwise. Creates nothing.\n\n"
            "options:\n%s  -h, --help        this help\n",
            SET_HELP);
}

static void reference_usage(FILE *out) {
    fprintf(out,
            "usage: rlpipe config reference\n\n"
            "Prints the Markdown reference of every config key (type, default, allowed values,\n"
            "meaning), generated from the schema; configs/README.md is this output.\n");
}

// Parsed `show`/`check` arguments: at most one CONFIG, any number of --set.
typedef struct config_args {
    const char *path;
    char **sets; // [n_sets] borrowed from argv
    int n_sets;
} config_args;

static int parse_args(const char *command, int argc, char **argv, config_args *a) {
    *a = (config_args){NULL, rl_calloc((size_t)argc + 1, sizeof(char *)), 0};
    int positional_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!positional_only && strcmp(arg, "--") == 0) {
            positional_only = 1;
        } else if (!positional_only && strcmp(arg, "--set") == 0) {
            if (i + 1 >= argc) return cli_usage_error(command, "--set needs key=value");
            a->sets[a->n_sets++] = argv[++i];
        } else if (!positional_only && strncmp(arg, "--set=", 6) == 0) {
            a->sets[a->n_sets++] = argv[i] + 6;
        } else if (!positional_only && arg[0] == '-' && arg[1]) {
            return cli_usage_error(command, "unknown option '%s'", arg);
        } else if (a->path) {
            return cli_usage_error(command, "one CONFIG only (got '%s' and '%s')", a->path, arg);
        } else {
            a->path = arg;
        }
    }
    return CLI_EXIT_OK;
}

static void summary(const rl_config *c, const char *path, int n_sets) {
    const rl_cfg_model *m = &c->model;
    char model[512];
    if (m->path[0])
        snprintf(model, sizeof model, "model %s", m->path);
    else
        snprintf(model, sizeof model, "model %d layers x %d from scratch", m->num_hidden_layers,
                 m->hidden_size);
    char data[512];
    if (c->data.source == RL_CFG_DATA_JSONL)
        snprintf(data, sizeof data, "data %s", c->data.train_path);
    else {
        size_t len = (size_t)snprintf(data, sizeof data, "tasks");
        for (int i = 0; i < c->data.tasks.n && len < sizeof data; i++)
            len += (size_t)snprintf(data + len, sizeof data - len, "%s%s", i ? "," : " ",
                                    c->data.tasks.v[i]);
    }
    printf("%s%s: OK (run %s -> %s; %s, %s tokenizer; %s; %d RL steps of %d prompts x %d; %d "
           "verifiers; device %s)\n",
           path ? path : "defaults", n_sets ? " with --set" : "", c->run.name, c->run.out_dir,
           model, rl_config_enum_name("tokenizer.kind", c->tokenizer.kind), data,
           c->algorithm.steps, c->rollout.prompts_per_step, c->rollout.group_size,
           c->reward.verifiers.n, rl_config_enum_name("run.device", c->run.device));
}

static int show_or_check(int argc, char **argv, int show) {
    const char *command = show ? "config show" : "config check";
    if (cli_wants_help(argc, argv)) {
        if (show)
            show_usage(stdout);
        else
            check_usage(stdout);
        return CLI_EXIT_OK;
    }
    config_args a;
    int rc = parse_args(command, argc, argv, &a);
    if (rc != CLI_EXIT_OK) {
        free(a.sets);
        return rc;
    }
    rl_config c;
    rl_err err = {0};
    if (rl_config_from_args(&c, a.path, a.sets, a.n_sets, &err) != 0) {
        rc = cli_report(&err);
    } else if (show) {
        char *text;
        if (rl_config_to_yaml(&c, &text, &err) != 0)
            rc = cli_report(&err);
        else {
            printf("# effective config: %s%s (rlpipe config show)\n",
                   a.path ? a.path : "built-in defaults", a.n_sets ? " with --set overrides" : "");
            fputs(text, stdout);
            free(text);
        }
    } else {
        summary(&c, a.path, a.n_sets);
    }
    rl_config_free(&c);
    free(a.sets);
    if (rc == CLI_EXIT_OK && fflush(stdout) != 0) {
        fprintf(stderr, "rlpipe: cannot write to stdout\n");
        return CLI_EXIT_INTERNAL;
    }
    return rc;
}

static int reference(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        reference_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 1) return cli_usage_error("config reference", "unexpected argument '%s'", argv[1]);
    if (rl_config_reference_markdown(stdout) != 0 || fflush(stdout) != 0) {
        fprintf(stderr, "rlpipe: cannot write to stdout\n");
        return CLI_EXIT_INTERNAL;
    }
    return CLI_EXIT_OK;
}

int cmd_config(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("config", "missing subcommand: show, check or reference");
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        fputs(USAGE, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(sub, "show") == 0) return show_or_check(argc - 1, argv + 1, 1);
    if (strcmp(sub, "check") == 0) return show_or_check(argc - 1, argv + 1, 0);
    if (strcmp(sub, "reference") == 0) return reference(argc - 1, argv + 1);
    return cli_usage_error("config", "unknown subcommand '%s'", sub);
}
