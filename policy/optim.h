/*
 * optim: AdamW over flat parameter and gradient blocks.
 *
 * The optimizer never sees a model: it is given the length of a flat float block and a list of
 * spans saying which parts get weight decay (matrices) and which do not (norms, biases). It owns
 * the Adam moments m and v (backend memory, the same layout as the block) and the step count.
 * Sharding the optimizer state across ranks later (ZeRO-1) means creating it over one rank's
 * slice of the block, with the spans cut to that slice: nothing else changes.
 *
 *     rl_adamw *opt;
 *     rl_adamw_create(&opt, be, n_params, spans, n_spans, &err);
 *     ...  rl_adamw_step(opt, params, grads, &hp, clip_scale);
 *
 * Update rule (PyTorch AdamW, decoupled weight decay, bias-corrected moments):
 *   g = grad * grad_scale;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  t = step (1-based)
 *   p -= lr * ( m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd * p )   with wd = 0 outside decay spans
 *
 * Mixed precision (a backend whose act type is bfloat16): the parameters the model reads are a
 * bfloat16 working copy; the optimizer owns their float32 master copy (llm.c's master weights).
 * Each step updates the master in float32 and writes the working copy from it by stochastic
 * rounding (kernels/bf16.h), seeded from rl_adamw_set_seed's seed, the step and the span, so a
 * run is reproducible bit for bit and small updates are not lost to round-to-nearest. The master
 * starts as the widened working copy at the first step (or comes from a training checkpoint,
 * rl_adamw_master_upload, so resuming is exact). Gradients and moments are float32 always.
 *
 * Also the learning-rate schedules (rl_lr_at) the training loops share.
 *
 * Owns: m and v (backend memory) and its copy of the spans.
 */
#ifndef RL_OPTIM_H
#define RL_OPTIM_H

#include "kernels/backend.h"
#include "kernels/rl_error.h"

#include <stddef.h>
#include <stdint.h>

// A run of the flat block [offset, offset + count) that does (decay = 1) or does not get weight
// decay. The spans given to the optimizer cover the block exactly, in order, without overlap.
typedef struct rl_param_span {
    size_t offset;
    size_t count;
    int decay;
} rl_param_span;

typedef struct rl_adamw_hparams {
    float lr;
    float beta1;        // 0.9
    float beta2;        // 0.95 or 0.999
    float eps;          // 1e-8
    float weight_decay; // applied on decay spans only
} rl_adamw_hparams;

typedef struct rl_adamw {
    const rl_backend *be;
    size_t n;             // length of the flat blocks this optimizer updates
    float *m;             // [n] first moments (backend memory)
    float *v;             // [n] second moments (backend memory)
    int step;             // updates done so far (the next update uses step + 1)
    rl_dtype param_dt;    // element type of the parameters given to rl_adamw_step (be->act)
    float *master;        // [n] float32 master weights when param_dt is not float32, else NULL
    int master_ready;     // master holds the current weights (0: taken from the parameters at
                          // the next step)
    uint64_t seed;        // stochastic-rounding seed (rl_adamw_set_seed)
    rl_param_span *spans; // [n_spans] host copy, covering [0, n)
    int n_spans;
} rl_adamw;

// Creates the optimizer state (zero moments, step 0) for parameters of the backend's act type;
// a float32 master copy is allocated when that type is not float32. Fails (RL_EINPUT) if the
// spans do not tile [0, n) in order.
int rl_adamw_create(rl_adamw **out, const rl_backend *be, size_t n, const rl_param_span *spans,
                    int n_spans, rl_err *err);
void rl_adamw_free(rl_adamw *opt);

// One update of params[n] (act type) from grads[n] (float32), both backend memory, gradients
// multiplied by grad_scale first (1 = none; rl_clip_scale gives the clipping factor). Increments
// step. With a master copy: the master is updated and params rewritten from it by stochastic
// rounding.
void rl_adamw_step(rl_adamw *opt, void *params, const float *grads, const rl_adamw_hparams *hp,
                   float grad_scale);

// The seed of the stochastic rounding (default 0): the run seed, so a run is reproducible.
void rl_adamw_set_seed(rl_adamw *opt, uint64_t seed);

// Master copy access for checkpoints (no-ops without a master): download copies the
// master to a host array of n floats (widening the working copy first if the master has not been
// taken from it yet: pass the parameters); upload sets it. rl_adamw_master_reset says the
// parameters were changed outside the optimizer: the next step takes the master from them.
int rl_adamw_has_master(const rl_adamw *opt);
void rl_adamw_master_download(rl_adamw *opt, const void *params, float *host);
void rl_adamw_master_upload(rl_adamw *opt, const float *host);
void rl_adamw_master_reset(rl_adamw *opt);

// The gradient multiplier of global-norm clipping: min(1, max_norm / norm); 1 when max_norm <= 0.
float rl_clip_scale(double grad_norm, float max_norm);

// Checkpoint access: copies the moments to host arrays of n floats each (download) or from them
// (upload, which also sets the step count).
void rl_adamw_state_download(const rl_adamw *opt, float *m_host, float *v_host);
void rl_adamw_state_upload(rl_adamw *opt, const float *m_host, const float *v_host, int step);

// Learning-rate schedules after warmup (the config's *.lr_schedule values are these).
typedef enum rl_lr_schedule {
    RL_LR_CONSTANT = 0,
    RL_LR_COSINE = 1,
    RL_LR_LINEAR = 2
} rl_lr_schedule;

// Learning rate at `progress` in [0, 1] of the run after `step` updates: linear warmup over
// warmup_steps, then constant, linear or cosine decay to lr * min_lr_ratio.
double rl_lr_at(int schedule, double lr, int warmup_steps, double min_lr_ratio, int step,
                double progress);

#endif
