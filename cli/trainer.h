/*
 * trainer: the training loops of rlpipe — supervised fine-tuning on teacher traces (the R1 "cold
 * start") and the GRPO loop (rollout -> verify -> reward -> advantages -> update -> log). Their
 * learning-rate schedules are rl_lr_at (policy/optim.h); the RL update is policy/update.h.
 *
 * Owns: its optimizer state while a loop runs (created and freed inside each call).
 */
#ifndef RL_TRAINER_H
#define RL_TRAINER_H

#include "cli/run.h"
#include "policy/optim.h"

typedef struct rl_sft_result {
    int steps;
    double seconds;
    double final_loss;   // loss of the last step
    double tokens_per_s; // tokens through forward+backward per second
} rl_sft_result;

// Supervised fine-tuning of r->model per cfg->sft; steps are logged to r->run_id when r->log is
// open (phase "sft"). Reports held-out pass@1 every sft.eval_every steps when that is > 0.
int rl_sft(rl_run *r, rl_progress *prog, rl_sft_result *out, rl_err *err);

typedef struct rl_distill_result {
    int steps;
    double seconds;
    double final_loss, final_tau; // loss and mean tau of the last step
    double tokens_per_s;
    double perplexity_start, pass_at_1_start; // held-out, before the first step
    double perplexity, pass_at_1;             // held-out, after the last step
    rl_eval_result eval;                      // the last held-out evaluation
} rl_distill_result;

// Token-level distillation of r->model from `teacher` (forward only; same backend and
// vocabulary) per cfg->distill (cli/distill.md). Logs steps (phase "distill") with a
// distill_steps row each, and evaluations (split "heldout": pass@1; split "teacher_text":
// perplexity) at step 0, every distill.eval_every steps and at the end.
int rl_distill(rl_run *r, rl_model *teacher, rl_progress *prog, rl_distill_result *out,
               rl_err *err);

typedef struct rl_train_result {
    int steps;             // updates completed (including any before a resume)
    double seconds;        // wall time of the RL loop in this process
    rl_eval_result before; // held-out evaluation at RL step 0 (when done in this process)
    rl_eval_result after;  // held-out evaluation after the last step
    int have_before, have_after;
} rl_train_result;

// The GRPO loop per cfg->algorithm / rollout / eval / checkpoint, on r->model, logged to
// r->run_id. With resume, continues from the newest checkpoint in checkpoint.dir (rows logged
// after it are deleted first, so they are replaced, not duplicated). Saves checkpoints every
// checkpoint.every steps and at the end.
int rl_grpo_train(rl_run *r, rl_progress *prog, int resume, rl_train_result *out, rl_err *err);

#endif
