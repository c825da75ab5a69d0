// cmd_eval: `rlpipe eval CONFIG`: pass@1 / pass@k and per-verifier means on the held-out set.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/run.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: rlpipe eval CONFIG [--model DIR] [--data FILE] [--k K] [--n N]\n"
        "                   [--temperature T] [--step S] [--set key=value]...\n\n"
        "Evaluates a policy on held-out problems with the configured verifiers: K samples per\n"
        "problem at temperature T (default eval.k = 8, eval.temperature = 0.6); pass@1 is the\n"
        "mean share of correct samples per problem, pass@K the share of problems with at least\n"
        "one correct sample. Prints a table and writes a row to the evals table of\n"
        "<out_dir>/rollouts.db (run \"<run.name>-eval\", split \"heldout\", step S).\n\n"
        "options:\n"
        "  --model DIR       the policy to evaluate (default: model.path, or <out_dir>/final,\n"
        "                    <out_dir>/sft when they exist)\n"
        "  --data FILE       a JSONL file whose every line is a held-out problem\n"
        "  --k K             samples per problem\n"
        "  --n N             evaluate only the first N problems\n"
        "  --temperature T   sampling temperature (0 = greedy)\n"
        "  --step S          the step number recorded with the result (default 0)\n"
        "  --set key=value   override a config key (repeatable)\n"
        "  -h, --help        this help\n");
}

static int parse_int(const char *s, const char *what, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > 1000000)
        return cli_usage_error("eval", "%s: expected an integer >= %d, got '%s'", what, lo, s);
    *out = (int)v;
    return 0;
}

int cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *model = NULL, *data = NULL, *ks = NULL, *ns = NULL, *ts = NULL, *ss = NULL, *pos[1];
    cli_opt opts[] = {{"model", &model, NULL}, {"data", &data, NULL},      {"k", &ks, NULL},
                      {"n", &ns, NULL},        {"temperature", &ts, NULL}, {"step", &ss, NULL}};
    char **sets;
    int n_pos, n_sets;
    int rc = cli_parse_run_args("eval", argc, argv, opts, 6, pos, 1, &n_pos, &sets, &n_sets);
    if (rc == 0 && n_pos != 1) rc = cli_usage_error("eval", "expected one CONFIG file");
    rl_config cfg;
    rl_config_defaults(&cfg);
    int k = -1, n = -1, step = 0;
    double temperature = -1;
    if (rc == 0 && ks) rc = parse_int(ks, "--k", 1, &k);
    if (rc == 0 && ns) rc = parse_int(ns, "--n", 1, &n);
    if (rc == 0 && ss) rc = parse_int(ss, "--step", 0, &step);
    if (rc == 0 && ts) {
        char *end;
        temperature = strtod(ts, &end);
        if (*end || temperature < 0 || temperature > 10)
            rc = cli_usage_error("eval", "--temperature: expected a number in [0, 10], got '%s'",
                                 ts);
    }
    if (rc) {
        free(sets);
        rl_config_free(&cfg);
        return rc;
    }
    rl_config_free(&cfg);
    rl_err err = {0};
    rl_run run = {0};
    int code = CLI_EXIT_OK;
    if (rl_config_from_args(&cfg, pos[0], sets, n_sets, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (data) {
        // Every line of FILE is a held-out problem: load it as a dataset that is all held-out.
        free(cfg.data.train_path);
        free(cfg.data.heldout_path);
        cfg.data.source = RL_CFG_DATA_JSONL;
        cfg.data.train_path = rl_strdup(data);
        cfg.data.heldout_path = rl_strdup(data);
    }
    char found[4096];
    if (!model && !cfg.model.path[0] && rl_run_default_model(&cfg, found, sizeof found))
        model = found;
    if (rl_run_init(&run, &cfg, RL_RUN_MODEL | RL_RUN_DATA | RL_RUN_REWARD, model, &err) ||
        rl_run_open_output(&run, &err)) {
        code = cli_report(&err);
        goto done;
    }
    char name[512];
    snprintf(name, sizeof name, "%s-eval", cfg.run.name);
    if (rl_run_start(&run, name, 1, &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (k < 0) k = cfg.eval.k;
    if (n < 0) n = cfg.eval.n;
    if (temperature < 0) temperature = cfg.eval.temperature;
    rl_eval_result e;
    if (rl_run_eval(&run, k, temperature, n, &e, &err) || rl_eval_log(&run, step, &e, &err)) {
        code = cli_report(&err);
        goto done;
    }
    rl_eval_print(&run, model ? model : (cfg.model.path[0] ? cfg.model.path : "init"), &e, 1,
                  stdout);
    fprintf(stderr, "eval: %d problems x %d samples in %.1f s (%.0f tokens/s)\n", e.n, e.k,
            e.seconds, e.tokens_per_s);
done:
    if (code != CLI_EXIT_OK && rl_run_stop_signal()) code = 128 + rl_run_stop_signal();
    rl_run_end(&run, code == CLI_EXIT_OK);
    rl_config_free(&cfg);
    free(sets);
    return code;
}
