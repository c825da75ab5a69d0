// cmd_distill: `rlpipe distill CONFIG`: token-level distillation from a teacher model directory,
// then the held-out table. The manual is cli/distill.md.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/trainer.h"
#include "policy/checkpoint.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: rlpipe distill CONFIG [--set key=value]... [--out DIR]\n\n"
        "Token-level distillation (cli/distill.md). The student (model.path, or a fresh model\n"
        "from the model section) learns the teacher's distribution at every completion token:\n"
        "loss tau^2 KL(teacher || student) (or reverse, distill.kl) at a temperature tau that is\n"
        "fixed or follows the teacher's normalised entropy times a decaying schedule\n"
        "(distill.tau). Completions come from the teacher (distill.source teacher), the SFT data\n"
        "(dataset) or the student itself, scored by the teacher (on_policy, as GKD). The\n"
        "teacher (distill.teacher, a Qwen2 directory with the student's vocabulary) runs forward\n"
        "only; distill.cache_topk > 0 scores it once into a top-k file reused across epochs.\n\n"
        "Writes into run.out_dir: rollouts.db (run \"<name>-distill\": steps, distill_steps,\n"
        "evals with held-out perplexity on teacher-written text and pass@1) and the student as a\n"
        "Hugging Face directory in <out_dir>/distill.\n\n"
        "options:\n"
        "  --set key=value   override a config key (repeatable)\n"
        "  --out DIR         where to save the student (default <out_dir>/distill)\n"
        "  -h, --help        this help\n");
}

// The teacher must speak the student's language: the same number of logits and, when the
// teacher directory carries a tokenizer, the same bytes for every token id.
static int check_vocab(const rl_run *r, const rl_model *teacher, const char *dir, rl_err *err) {
    if (teacher->V != r->model->V)
        return rl_fail(err, RL_EINPUT,
                       "distill.teacher: %s has a vocabulary of %d tokens, the student %d; "
                       "distillation needs the same vocabulary",
                       dir, teacher->V, r->model->V);
    char tpath[4096];
    rl_err probe = {0};
    if (rl_model_tokenizer_path(dir, tpath, sizeof tpath, &probe) != 0) return 0; // no tokenizer
    rl_tokenizer *tt = NULL;
    if (rl_tokenizer_load(&tt, tpath, err)) return rl_err_prefix(err, "distill.teacher: ");
    int n = rl_tokenizer_vocab_size(tt), rc = 0;
    if (n != rl_tokenizer_vocab_size(r->tok)) {
        rc = rl_fail(err, RL_EINPUT,
                     "distill.teacher: %s: its tokenizer has %d tokens, the student's %d", dir, n,
                     rl_tokenizer_vocab_size(r->tok));
    } else {
        for (int id = 0; id < n; id++) {
            size_t la = 0, lb = 0;
            const char *a = rl_tokenizer_token_bytes(tt, id, &la);
            const char *b = rl_tokenizer_token_bytes(r->tok, id, &lb);
            if (la != lb || (la && (!a || !b || memcmp(a, b, la) != 0))) {
                rc = rl_fail(err, RL_EINPUT,
                             "distill.teacher: %s: token %d differs from the student's "
                             "tokenizer; distillation needs the same vocabulary",
                             dir, id);
                break;
            }
        }
    }
    rl_tokenizer_free(tt);
    return rc;
}

int cmd_distill(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    const char *out_dir = NULL;
    cli_opt opts[] = {{"out", &out_dir, NULL}};
    rl_config cfg;
    int code = cli_load_run_config("distill", argc, argv, opts, 1, &cfg);
    if (code) return code;
    rl_err err = {0};
    rl_run run = {0};
    rl_model *teacher = NULL;
    unsigned what = RL_RUN_MODEL | RL_RUN_DATA | RL_RUN_REWARD;
    if (cfg.distill.source == RL_CFG_DISTILL_DATASET) what |= RL_RUN_SFT;
    // Everything that can fail on bad input is loaded before the run directory is created.
    if (!cfg.distill.teacher[0]) {
        rl_fail(&err, RL_EINPUT,
                "distill.teacher: rlpipe distill needs a teacher model directory (set "
                "distill.teacher)");
        code = cli_report(&err);
        goto done;
    }
    if (rl_run_init(&run, &cfg, what, NULL, &err) ||
        rl_model_load(&teacher, cfg.distill.teacher, run.be, &err) ||
        check_vocab(&run, teacher, cfg.distill.teacher, &err) || rl_run_open_output(&run, &err)) {
        code = cli_report(&err);
        goto done;
    }
    char run_name[512];
    snprintf(run_name, sizeof run_name, "%s-distill", cfg.run.name);
    if (rl_run_start(&run, run_name, 0, &err)) {
        code = cli_report(&err);
        goto done;
    }
    char save_dir[4096];
    snprintf(save_dir, sizeof save_dir, "%s/distill", cfg.run.out_dir);
    if (out_dir) snprintf(save_dir, sizeof save_dir, "%s", out_dir);

    rl_progress prog;
    rl_progress_start(&prog, stderr, cfg.logging.progress, "distill", cfg.distill.steps, 0);
    rl_distill_result res;
    if (rl_distill(&run, teacher, &prog, &res, &err)) {
        code = cli_report(&err);
        goto done;
    }
    fprintf(stderr, "distill: %d steps in %.1f s, %.0f tokens/s, final loss %.4f, mean tau %.3f\n",
            res.steps, res.seconds, res.tokens_per_s, res.final_loss, res.final_tau);
    if (rl_run_save_model(&run, save_dir, &err)) {
        code = cli_report(&err);
        goto done;
    }
    fprintf(stderr, "distill: student saved to %s\n", save_dir);
    rl_eval_print(&run, "distill", &res.eval, 1, stdout);
    printf("held-out perplexity on teacher text: %.4f (step 0: %.4f)\n", res.perplexity,
           res.perplexity_start);
done:
    rl_run_end(&run, code == CLI_EXIT_OK);
    rl_model_free(teacher);
    rl_config_free(&cfg);
    return code;
}
