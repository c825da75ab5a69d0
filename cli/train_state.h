/*
 * train_state: trainer checkpoints — everything needed to resume a GRPO run exactly.
 *
 *   <checkpoint.dir>/step-00000040/
 *       model/                 the policy as a Hugging Face directory (F32, bit-exact)
 *       optimizer.safetensors  AdamW moments "adam.m", "adam.v" [n_params] (F32)
 *       trainer_state.json     {"step", "data_pos", "adam_step", "nonfinite_streak", "seed"}
 *       rlpipe_checkpoint.json {"step"}: the marker that says rlpipe wrote this directory
 *   <checkpoint.dir>/reference/   the frozen reference policy (only when kl_coef > 0)
 *
 * A checkpoint is written into a temporary sibling directory and renamed into place in one step,
 * so a directory named step-N is always complete: a process killed while saving leaves the
 * previous checkpoints untouched (its .tmp-step-* directory is removed by the next run or resume,
 * rl_run_open_output). Pruning (checkpoint.keep) deletes only directories that carry the marker
 * with their own step; anything else named step-N is left alone. The random streams are counter-based (kernels/rng.h), so the
 * step and data position are all the randomness state there is.
 *
 * Owns: nothing beyond each call.
 */
#ifndef RL_TRAIN_STATE_H
#define RL_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/rl_error.h"
#include "policy/model.h"
#include "policy/optim.h"

#define RL_CKPT_MARKER "rlpipe_checkpoint.json"

typedef struct rl_train_state {
    int step;             // updates completed
    int64_t data_pos;     // next index of the training prompt stream
    int nonfinite_streak; // consecutive skipped (non-finite) updates
    uint64_t seed;
} rl_train_state;

// Saves a checkpoint for state->step under root and deletes all but the newest `keep` (0 = keep
// all). tokenizer: "byte" or a tokenizer path, stored with the model.
int rl_train_ckpt_save(const char *root, const rl_model *m, const rl_adamw *opt,
                       const rl_train_state *state, const char *tokenizer, int keep, rl_err *err);

// The same from host copies of the AdamW moments mh, vh [n] taken after adam_step updates and of
// the float32 master xh [n] (NULL when the optimizer has none; data parallel: rank 0 gathers
// every rank's shard first).
int rl_train_ckpt_save_moments(const char *root, const rl_model *m, const float *mh,
                               const float *vh, const float *xh, size_t n, int adam_step,
                               const rl_train_state *state, const char *tokenizer, int keep,
                               rl_err *err);

// The newest complete checkpoint under root (a step-N directory holding trainer_state.json): 1 and
// its path (and step) when there is one, 0 when there is none.
int rl_train_ckpt_latest(const char *root, char *path, size_t size, int *step);

// Restores weights into m (same shape), the optimizer moments into opt and the state.
int rl_train_ckpt_load(const char *dir, rl_model *m, rl_adamw *opt, rl_train_state *state,
                       rl_err *err);
// The same for an optimizer over the shard [lo, lo + opt->n) of the parameters (ZeRO-1): the
// checkpoint holds every parameter's moments, whatever the world size that wrote it.
int rl_train_ckpt_load_shard(const char *dir, rl_model *m, rl_adamw *opt, size_t lo,
                             rl_train_state *state, rl_err *err);

#endif
