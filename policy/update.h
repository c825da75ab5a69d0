/*
 * update: one step's policy-gradient update over plain padded rows — reference log-probs once,
 * then epochs x minibatches of forward, PG loss (policy/grpo.h), backward, global-norm clipping
 * and AdamW (policy/optim.h), with non-finite updates skipped.
 *
 * It knows nothing of prompts, verifiers or the rollout log: a caller lays each sample out as one
 * row of prompt + completion tokens with next-token targets, behaviour log-probs and a mask on the
 * completion, and one advantage per row.
 *
 *     rl_pg_rows rows;
 *     rl_pg_rows_alloc(&rows, B, T);           // fill tokens/lengths/targets/old_logp/mask/adv
 *     rl_update_stats st;
 *     rl_policy_update(model, ref, opt, &rows, &params, &st, &err);
 *     rl_pg_rows_free(&rows);
 *
 * Minibatch mb of M covers rows [B·mb/M, B·(mb+1)/M) in order (no shuffling), repacked to the
 * longest row of that minibatch, so a row's numbers never depend on the padding of other
 * minibatches. The reference model is frozen, so its log-probs are computed for every minibatch
 * once, before the first epoch.
 *
 * Data parallel (p->comm with world > 1, policy/PARALLEL.md): each rank passes its own rows (whole
 * groups, so advantages were computed locally). Every rank runs the same number of minibatches,
 * min(minibatches, global B), minibatch mb being the union of every rank's local minibatch mb
 * (a rank with no rows in it still takes part). The loss normalisers (token and sequence counts)
 * are summed over ranks first, so each rank's loss is its share of the global loss and the SUM of
 * the ranks' gradients is the gradient of the global loss (the mean over the global batch). The
 * gradient is reduced before the norm is taken, so every rank clips and steps identically:
 *   zero = 0: all-reduce of the whole gradient block; every rank keeps the whole AdamW state;
 *   zero = 1: reduce-scatter, each rank updates its shard [lo, hi) of the float32 weights with its
 *             shard of the AdamW moments (an optimizer made by rl_update_optimizer), all-gather.
 * The statistics returned are global (the same on every rank).
 *
 * Owns: nothing between calls (per-call scratch only).
 */
#ifndef RL_UPDATE_H
#define RL_UPDATE_H

#include <stdint.h>

#include "kernels/comm.h"
#include "kernels/rl_error.h"
#include "policy/grpo.h"
#include "policy/model.h"
#include "policy/optim.h"

// B padded rows of length T. Row b holds lengths[b] tokens (the rest: token 0, target -1, mask 0,
// old_logp 0). targets[b,t] is the token that follows position t where it is trained on, else -1.
typedef struct rl_pg_rows {
    int B, T;
    int32_t *tokens;  // [B, T]
    int32_t *lengths; // [B]
    int32_t *targets; // [B, T]
    float *old_logp;  // [B, T] behaviour log-probs of the targets (sampling time)
    float *mask;      // [B, T] 1 where the token's loss counts
    float *adv;       // [B]    advantage of each row
    // Rows of the same batch left out because every term of theirs is exactly zero (advantage 0,
    // no KL, no entropy bonus): they still count in the loss normalisers, spread evenly over the
    // minibatches (see rl_pg_params.extra_seqs).
    int extra_seqs;
    double extra_tokens;
} rl_pg_rows;

// Zeroed rows (every target -1) of B x T; free with rl_pg_rows_free.
void rl_pg_rows_alloc(rl_pg_rows *r, int B, int T);
void rl_pg_rows_free(rl_pg_rows *r);

typedef struct rl_update_params {
    rl_pg_params pg;        // loss; pg.extra_seqs / extra_tokens are set per minibatch from rows
    rl_adamw_hparams adamw; // the learning rate of this step included
    float grad_clip;        // global-norm clip (<= 0: none)
    int epochs;             // passes over the rows
    int minibatches;        // optimizer steps per epoch (clamped to [1, B])
    const rl_comm *comm;    // NULL or world 1: one process
    int zero;               // 1: ZeRO-1 (opt holds this rank's shard; see rl_update_optimizer)
} rl_update_params;

// Means over the updates taken (skipped ones included), as logged per step.
typedef struct rl_update_stats {
    double loss, kl, entropy, clip_frac, grad_norm;
    int n_updates; // minibatch updates attempted (epochs x minibatches, or 0 when B == 0)
    int nonfinite; // 1 if at least one update was skipped for a non-finite loss or gradient norm
    double tokens; // Σ row lengths over every forward (the training tokens processed)
} rl_update_stats;

// The update of m from rows; ref (NULL when p->pg.kl_coef == 0) gives the reference log-probs.
// With B == 0 it does nothing and returns zero statistics. Errors come from the model (shapes,
// targets) and leave m partly updated only by the minibatches before the failure.
int rl_policy_update(rl_model *m, rl_model *ref, rl_adamw *opt, const rl_pg_rows *rows,
                     const rl_update_params *p, rl_update_stats *out, rl_err *err);

// One optimizer step after a backward pass of m, data parallel over comm (NULL or world 1: this
// process alone): m's gradient block is reduced (all-reduce, or reduce-scatter under zero) and
// stats[n_stats] (host numbers, summed over ranks in place) with it; the global gradient norm goes
// to *gnorm. Unless stats[0] (the loss, when n_stats > 0) or the norm is non-finite (then
// *skipped = 1 and nothing changes), AdamW steps with global-norm clipping at grad_clip (the
// shard, then an all-gather of the weights, under zero). Collective: every rank calls it.
int rl_update_apply(rl_model *m, rl_adamw *opt, const rl_comm *comm, int zero,
                    const rl_adamw_hparams *hp, float grad_clip, double *stats, int n_stats,
                    double *gnorm, int *skipped, rl_err *err);

// The parameter shard of this rank under ZeRO-1: [*lo, *hi) of n, each rank's shard padded to
// *shard = ceil(n / world) elements (the last ones may be shorter or empty).
void rl_update_shard(size_t n, const rl_comm *comm, size_t *lo, size_t *hi, size_t *shard);

// The optimizer rl_policy_update expects for m: over the whole parameter block, or, with zero
// and a comm of world > 1, over this rank's shard (the decay spans cut to it).
int rl_update_optimizer(rl_adamw **out, rl_model *m, const rl_comm *comm, int zero, rl_err *err);

// Checkpoints of a ZeRO-1 optimizer: the moments of every rank's shard gathered into full host
// arrays m_full, v_full [n] on rank 0 (ignored elsewhere; a collective, in pieces of at most
// 512 MiB per gather). n: the whole parameter count. (Loading reads each rank's slice straight
// from the checkpoint: cli/train_state.h, rl_train_ckpt_load_shard.)
int rl_update_opt_gather(const rl_adamw *opt, const rl_comm *comm, size_t n, float *m_full,
                         float *v_full, rl_err *err);

#endif
