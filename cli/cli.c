// cli: shared helpers of the commands (error reporting, usage errors, the run-config prologue).
// See cli.h.
#include "cli/cli.h"

#include "cli/config.h"
#include "policy/hf_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_report(const rl_err *err) {
    fprintf(stderr, "rlpipe: %s\n", err->msg[0] ? err->msg : "unknown error");
    return err->kind == RL_EINPUT ? CLI_EXIT_USAGE : CLI_EXIT_INTERNAL;
}

int cli_usage_error(const char *command, const char *fmt, ...) {
    char msg[RL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "rlpipe %s: %s (see rlpipe %s --help)\n", command, msg, command);
    return CLI_EXIT_USAGE;
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    }
    return 0;
}

int cli_parse_run_args(const char *command, int argc, char **argv, const cli_opt *opts, int n_opts,
                       const char **positional, int max_positional, int *n_positional, char ***sets,
                       int *n_sets) {
    *n_positional = 0;
    *n_sets = 0;
    *sets = rl_calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--set") == 0) {
            if (i + 1 >= argc) return cli_usage_error(command, "--set needs key=value");
            (*sets)[(*n_sets)++] = argv[++i];
            continue;
        }
        if (strncmp(arg, "--set=", 6) == 0) {
            (*sets)[(*n_sets)++] = argv[i] + 6;
            continue;
        }
        if (arg[0] == '-' && arg[1] == '-') {
            const char *name = arg + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const cli_opt *o = NULL;
            for (int k = 0; k < n_opts; k++)
                if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0)
                    o = &opts[k];
            if (!o) return cli_usage_error(command, "unknown option '%s'", arg);
            if (o->flag) {
                if (eq) return cli_usage_error(command, "option --%s takes no value", o->name);
                *o->flag = 1;
            } else if (eq) {
                *o->value = eq + 1;
            } else {
                if (i + 1 >= argc)
                    return cli_usage_error(command, "option --%s needs a value", o->name);
                *o->value = argv[++i];
            }
            continue;
        }
        if (arg[0] == '-' && arg[1]) return cli_usage_error(command, "unknown option '%s'", arg);
        if (*n_positional >= max_positional)
            return cli_usage_error(command, "unexpected argument '%s'", arg);
        positional[(*n_positional)++] = arg;
    }
    return 0;
}

int cli_load_run_config(const char *command, int argc, char **argv, const cli_opt *opts, int n_opts,
                        rl_config *cfg) {
    const char *pos[1];
    char **sets;
    int n_pos, n_sets;
    int rc = cli_parse_run_args(command, argc, argv, opts, n_opts, pos, 1, &n_pos, &sets, &n_sets);
    if (rc == 0 && n_pos != 1) rc = cli_usage_error(command, "expected one CONFIG file");
    if (rc == 0) {
        rl_err err = {0};
        if (rl_config_from_args(cfg, pos[0], sets, n_sets, &err)) {
            rc = cli_report(&err);
            rl_config_free(cfg);
        }
    }
    free(sets);
    return rc;
}

void cli_model_shape(const rl_cfg_model *s, rl_model_config *mc) {
    rl_hf_config_defaults(mc);
    mc->hidden_size = s->hidden_size;
    mc->num_hidden_layers = s->num_hidden_layers;
    mc->num_attention_heads = s->num_attention_heads;
    mc->num_key_value_heads = s->num_key_value_heads;
    mc->head_dim = 0;
    mc->intermediate_size = s->intermediate_size;
    mc->max_position_embeddings = s->max_position_embeddings;
    mc->rope_theta = s->rope_theta;
    mc->rms_norm_eps = s->rms_norm_eps;
    mc->tie_word_embeddings = s->tie_word_embeddings;
    mc->use_sliding_window = s->use_sliding_window;
    mc->sliding_window = s->sliding_window;
    mc->max_window_layers = s->max_window_layers;
    mc->attention_bias = 1;
}
