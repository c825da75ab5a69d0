// cmd_sample: `rlpipe sample`: generate completions and show their verifier scores.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/run.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: rlpipe sample [CONFIG] [--model DIR] [--prompt TEXT] [--n N] [--k K]\n"
        "                     [--temperature T] [--set key=value]...\n\n"
        "Generates completions from a policy and prints each with its reward and verifier\n"
        "scores. With --prompt, samples K completions of TEXT (no reference answer, so accuracy\n"
        "is 'skipped'); otherwise the first N held-out problems (default 4). Without CONFIG the\n"
        "built-in defaults are used (give --model then).\n\n"
        "options:\n"
        "  --model DIR       the policy (default: model.path, <out_dir>/final or <out_dir>/sft)\n"
        "  --prompt TEXT     a problem of your own (rendered through data.prompt_template)\n"
        "  --n N             held-out problems to sample (default 4)\n"
        "  --k K             samples per problem (default 1)\n"
        "  --temperature T   sampling temperature (default eval.temperature; 0 = greedy)\n"
        "  --set key=value   override a config key (repeatable)\n"
        "  -h, --help        this help\n");
}

static void print_sample(const rl_run *r, const rl_prompt *p, const rl_completion *c,
                         const rl_vresult *row, double reward) {
    printf("=== problem: %s\n", p->problem);
    if (p->answer) printf("    reference: %s\n", p->answer);
    printf("--- completion (%d tokens, %s):\n%s\n", c->n_tokens,
           c->finish == RL_FINISH_STOP ? "stop" : "length", c->text);
    printf("--- reward %.3f:", reward);
    for (int v = 0; v < r->n_verifiers; v++)
        printf(" %s %.3f%s", rl_reward_name(r->reward, v), row[v].score,
               row[v].status == RL_VERIFY_OK
                   ? ""
                   : (row[v].status == RL_VERIFY_SKIPPED ? " (skipped)" : " (error)"));
    printf("\n");
    for (int v = 0; v < r->n_verifiers; v++)
        if (row[v].detail[0]) printf("    %-13s %s\n", rl_reward_name(r->reward, v), row[v].detail);
    printf("\n");
}

int cmd_sample(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *model = NULL, *text = NULL, *ns = NULL, *ks = NULL, *ts = NULL, *pos[1];
    cli_opt opts[] = {{"model", &model, NULL},
                      {"prompt", &text, NULL},
                      {"n", &ns, NULL},
                      {"k", &ks, NULL},
                      {"temperature", &ts, NULL}};
    char **sets;
    int n_pos, n_sets;
    int rc = cli_parse_run_args("sample", argc, argv, opts, 5, pos, 1, &n_pos, &sets, &n_sets);
    int n = 4, k = 1;
    double temperature = -1;
    if (rc == 0 && n_pos == 0 && !model)
        rc = cli_usage_error("sample", "give a CONFIG or --model DIR");
    if (rc == 0 && ns && (n = atoi(ns)) < 1)
        rc = cli_usage_error("sample", "--n: expected a positive integer");
    if (rc == 0 && ks && (k = atoi(ks)) < 1)
        rc = cli_usage_error("sample", "--k: expected a positive integer");
    if (rc == 0 && ts) {
        char *end;
        temperature = strtod(ts, &end);
        if (*end || temperature < 0 || temperature > 10)
            rc = cli_usage_error("sample", "--temperature: expected a number in [0, 10]");
    }
    if (rc) {
        free(sets);
        return rc;
    }
    rl_err err = {0};
    rl_config cfg;
    rl_run run = {0};
    int code = CLI_EXIT_OK, n_prompts = 0;
    rl_batch b = {0};
    if (rl_config_from_args(&cfg, n_pos ? pos[0] : NULL, sets, n_sets, &err)) {
        code = cli_report(&err);
        goto done;
    }
    char found[4096];
    if (!model && !cfg.model.path[0] && rl_run_default_model(&cfg, found, sizeof found))
        model = found;
    if (rl_run_init(&run, &cfg, RL_RUN_MODEL | (text ? 0 : RL_RUN_DATA) | RL_RUN_REWARD, model,
                    &err)) {
        code = cli_report(&err);
        goto done;
    }
    if (temperature < 0) temperature = cfg.eval.temperature;
    n_prompts = text ? 1 : (n < rl_run_n_heldout(&run) ? n : rl_run_n_heldout(&run));
    rl_batch_alloc(&b, n_prompts, k, (size_t)run.n_verifiers * sizeof(rl_vresult));
    rl_gen_prompt *gp = rl_calloc((size_t)n_prompts, sizeof *gp);
    for (int i = 0; i < n_prompts; i++) {
        rl_prompt *p = &b.prompts[i];
        b.n_prompts = i + 1;
        if (text) {
            p->problem = rl_strdup(text);
            p->key = 0;
            if (rl_run_render(&run, p, &err)) break;
        } else if (rl_run_heldout_prompt(&run, i, p, &err))
            break;
        gp[i] = (rl_gen_prompt){p->ids.data, (int)p->ids.len, p->key, k};
    }
    int max_new = rl_run_max_new_tokens(&run, RL_GEN_SAMPLE);
    rl_gen_params gparams = rl_run_gen_params(&run, RL_GEN_SAMPLE, temperature);
    int total = n_prompts * k;
    rl_gen_stats st;
    if (err.kind != RL_OK || rl_run_engine(&run, total, max_new, &err) ||
        rl_generate(run.engine, &gparams, gp, n_prompts, b.comps, &st, &err) ||
        rl_run_score(&run, &b, 0, total, max_new, &err)) {
        code = cli_report(&err);
    } else {
        for (int i = 0; i < total; i++)
            print_sample(&run, &b.prompts[b.group[i]], &b.comps[i], rl_batch_verdicts(&b, i),
                         b.reward[i]);
        fprintf(stderr, "sample: %ld tokens in %.2f s (%.0f tokens/s)\n", st.new_tokens, st.seconds,
                st.tokens_per_s);
    }
    free(gp);
done:
    if (b.prompts) rl_batch_free(&b);
    rl_run_free(&run);
    rl_config_free(&cfg);
    free(sets);
    return code;
}
