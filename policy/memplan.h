/*
 * memplan: the GPU memory a training run needs, per GPU, computed from a model shape and the
 * run's batch sizes before anything is allocated (`rlpipe plan`, cli/plan.md).
 *
 * The terms follow what rlpipe allocates (policy/model.c, policy/optim.c, the rollout engine),
 * with `a` the size of the working element type (2 for bf16, 4 for float32), P parameters,
 * N = micro_batch * seq_len rows, C hidden, L layers, NH / NKV heads, hd head dim,
 * QKV = (NH + 2 NKV) hd, AD = NH hd, FF intermediate, V vocabulary:
 *
 *   model state   bf16: weights 2P + float32 gradients 4P + float32 master 4P + AdamW m, v 8P
 *                 (18 B per parameter); float32: weights (= master) 4P + gradients 4P + m, v 8P.
 *                 ZeRO-1 shards master and moments over the data-parallel ranks, ZeRO-2 also the
 *                 gradients, ZeRO-3 also the weights (plus two layers of gathered weights and one
 *                 layer of full gradients in flight).
 *   activations   saved for backward, per layer: residual in and after attention (2 N C a),
 *                 q|k|v (N QKV a), attention output (N AD a), gate|up (2 N FF a), and float32
 *                 statistics (two RMSNorm rstd N, attention log-sum-exp N NH); plus the last
 *                 residual, the final norm, one layer's scratch (norm, projection, SwiGLU),
 *                 per-token float32 values and int32 indices. With per-layer recomputation only
 *                 each layer's input residual is kept and one layer is re-materialised at a time.
 *   backward      one layer of activation gradients: N (2C + QKV + AD + 3FF) a.
 *   logits        the lm-head output in float32 chunks of logits_floats (16M floats = 64 MiB).
 *   KV cache      the rollout batch in paged blocks of RL_KV_BLOCK (64) positions, K and V of
 *                 NKV hd elements each per layer; the G samples of a prompt share its full
 *                 prompt blocks; a sliding-window layer keeps only the blocks its window sees.
 *   decode        the engine's scratch: rows (3C + QKV + AD + 3FF) a for a chunk of new tokens
 *                 and float32 logits for every live sequence.
 *   reserve       CUDA context, cuBLAS workspace and allocator slack (a fixed allowance).
 *
 * rlpipe keeps its blocks between phases (the activation block stays allocated while the
 * engine decodes), so the peak per GPU is the sum of every term above.
 *
 * Owns: nothing (pure functions over the caller's structs).
 */
#ifndef RL_MEMPLAN_H
#define RL_MEMPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "kernels/rl_error.h"
#include "policy/model_config.h"

#define RL_MEMPLAN_STAGES 4 // ZeRO stages 0..3

// The workload of one GPU.
typedef struct rl_memplan_params {
    int gpus;             // data-parallel ranks (>= 1)
    int tensor_parallel;  // tensor-parallel degree (1 = none; must divide gpus and heads)
    rl_dtype act;         // element type of weights and activations (RL_BF16 on GPUs)
    int micro_batch;      // sequences per forward + backward on one GPU
    int seq_len;          // tokens per training sequence (prompt + completion, padded)
    int rollout_seqs;     // sequences decoded at once on one GPU
    int prompt_len;       // prompt tokens of each rollout sequence
    int completion_len;   // generated tokens of each rollout sequence
    int group_size;       // samples per prompt (they share the prompt's full KV blocks)
    int decode_rows;      // new tokens per engine chunk (prefill chunk, 1024)
    size_t logits_floats; // lm-head output held at once, in floats (16M)
    double reserve_bytes; // CUDA context, cuBLAS workspace, allocator slack
} rl_memplan_params;

typedef struct rl_memplan {
    int64_t n_params;     // parameters as Hugging Face counts them
    int64_t layer_params; // parameters of one layer
    // model state per GPU by ZeRO stage, bytes
    double weights[RL_MEMPLAN_STAGES], grads[RL_MEMPLAN_STAGES], master[RL_MEMPLAN_STAGES],
        optim[RL_MEMPLAN_STAGES], gather[RL_MEMPLAN_STAGES];
    double state[RL_MEMPLAN_STAGES]; // the five above summed
    // activations of one micro-batch, bytes
    double acts_layers;    // every layer's saved tensors (no recomputation)
    double acts_recompute; // the layer inputs + one layer re-materialised
    double acts_common;    // final norm, scratch, per-token values, indices (both cases)
    double logits;         // the float32 lm-head chunk
    double grad_scratch;   // one layer of activation gradients
    double acts_total[2];  // [recompute] = layers or recompute, + common + logits + grad_scratch
    // rollout, bytes
    int64_t kv_blocks; // blocks of RL_KV_BLOCK positions over every layer
    double kv;         // paged: shared prompt blocks, window layers trimmed
    double kv_flat;    // every position of every sequence stored (no sharing, no windows)
    double decode;     // engine scratch
    double rollout_weights[RL_MEMPLAN_STAGES]; // full weights gathered for generation (ZeRO-3)
    double reserve;
    // the peak per GPU: state + activations + KV + decode + reserve
    double peak[RL_MEMPLAN_STAGES][2]; // [zero stage][recompute]
} rl_memplan;

// Parameters of a config as Hugging Face counts them (tied lm_head counted once); *layer gets
// one layer's share (NULL is fine).
int64_t rl_memplan_param_count(const rl_model_config *cfg, int64_t *layer);

// Fills *out. RL_EINPUT naming the field for a bad config (rl_model_check_config's checks) or a
// non-positive size in p.
int rl_memplan_compute(const rl_model_config *cfg, const rl_memplan_params *p, rl_memplan *out,
                       rl_err *err);

// KV-cache blocks of RL_KV_BLOCK positions for `seqs` sequences of prompt + completion tokens in
// groups of `group` (sharing the full prompt blocks), over every layer of cfg (window layers
// keep what their window sees). Exposed for tests.
int64_t rl_memplan_kv_blocks(const rl_model_config *cfg, int seqs, int prompt, int completion,
                             int group);

#endif
