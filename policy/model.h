/*
 * model: the Qwen2-architecture transformer, exactly as Hugging Face's Qwen2ForCausalLM computes
 * it (see ../shared/notes/qwen2-format.md), through a backend (kernels/backend.h), in the
 * backend's act type (float32, or bfloat16 on CUDA; policy/README.md "Precision and memory"):
 *
 *   x = embed_tokens[ids]
 *   per layer: h = RMSNorm(x); q,k,v = h W^T + b; RoPE(q, k) (NeoX half split, positions 0..);
 *              x += o_proj(softmax(q k^T / sqrt(hd) + causal/window mask) v)   (GQA: head h uses
 *              kv head h / (NH/NKV)); h = RMSNorm(x); x += down(silu(gate(h)) * up(h))
 *   logits = RMSNorm(x) lm_head^T              (lm_head = embed_tokens when tied)
 *
 * One rl_model serves training (forward over a batch of padded sequences, keeping activations,
 * then token log-probabilities and entropies, then backward of any objective that is linear in
 * them), scoring (the same without backward) and decoding (prefill and one token per live
 * sequence against a KV cache, logits returned on the host).
 *
 * Memory, all from the backend, llm.c style, each block described by one table of tensor specs
 * (name, element count, dtype; model_impl.h): one parameter block (act type; every tensor a
 * named view), one float32 gradient block (allocated on the first backward or zero_grad), one
 * activation block sized for the largest B*T seen so far (every layer's activations, or with
 * rl_model_set_recompute only each layer's input), one backward scratch block, one decode
 * scratch block, and a KV cache per rl_kv_cache. Nothing is allocated per step once the sizes
 * have been seen. With bfloat16 weights their float32 master copy belongs to the optimizer
 * (optim.h), not to the model.
 *
 * Parameter block layout (the optimizer sees it as one flat array): the matrices that get weight
 * decay first (wte, wqkv, wo, wgu, wdown, wlm), then the rest (bqkv, ln1w, ln2w, lnfw), each
 * tensor starting on a 16-element boundary. q, k and v of a layer are one fused [QKV, C] matrix
 * (rows of q_proj, then k_proj, then v_proj) and gate/up one [2*FF, C] matrix, so each layer
 * runs one matrix product for q|k|v and one for gate|up. Every Hugging Face tensor is still one
 * contiguous piece of the block; rl_model_tensor_info maps names to pieces.
 *
 * Owns: its config copy, the blocks above, host staging arrays. Not thread-safe: one caller at a
 * time per model.
 */
#ifndef RL_MODEL_H
#define RL_MODEL_H

#include "kernels/backend.h"
#include "kernels/rl_error.h"
#include "policy/model_config.h"
#include "policy/optim.h"

#include <stddef.h>
#include <stdint.h>

// Views into the parameter block: elements of the backend's act type (float32 or bfloat16; use
// rl_model__at / element counts, never float pointer arithmetic). The gradient block has the same
// layout in float32 (rl_model_wgrads). Shapes use C hidden, L layers, NH/NKV heads, hd head dim,
// QKV = (NH+2*NKV)*hd, FF, V.
typedef struct rl_model_weights {
    void *wte;  // [V, C]         act  model.embed_tokens.weight
    void *wqkv; // [L, QKV, C]    act  self_attn.{q,k,v}_proj.weight stacked by rows
    void *wo;   // [L, C, NH*hd]  act  self_attn.o_proj.weight
    void *wgu;  // [L, 2*FF, C]   act  mlp.gate_proj.weight rows [0,FF), mlp.up_proj.weight [FF,2FF)
    void *wdown; // [L, C, FF]     act  mlp.down_proj.weight
    void *wlm;   // [V, C]         act  lm_head.weight; == wte when tie_word_embeddings
    void *bqkv;  // [L, QKV]       act  self_attn.{q,k,v}_proj.bias; NULL when attention_bias == 0
    void *ln1w;  // [L, C]         act  input_layernorm.weight
    void *ln2w;  // [L, C]         act  post_attention_layernorm.weight
    void *lnfw;  // [C]            act  model.norm.weight
} rl_model_weights;

// The same views into the float32 gradient block (parameter gradients are float32 whatever the
// act type).
typedef struct rl_model_wgrads {
    float *wte, *wqkv, *wo, *wgu, *wdown, *wlm, *bqkv, *ln1w, *ln2w, *lnfw;
} rl_model_wgrads;

// One Hugging Face tensor: a contiguous piece of the parameter block.
typedef struct rl_model_tensor {
    char name[80];    // e.g. "model.layers.3.self_attn.k_proj.bias"
    int ndim;         // 1 or 2
    int64_t shape[2]; // HF shape ([out, in] for linear weights)
    size_t offset;    // first element in the parameter block
    size_t numel;
    int init; // rl_model_init_random: 0 normal(0, std), 1 zeros (bias), 2 ones (norm)
} rl_model_tensor;

// Activations of the last forward, N = B*T rows (allocated for rl_model.acts_rows rows). "act"
// tensors hold the backend's act type; statistics, logits and seeds are float32. Lk is the
// number of layers whose activations are kept: L, or 1 with layer recomputation (each layer's
// slot 0 is refilled from res[l] during the backward pass; see rl_model_set_recompute).
typedef struct rl_model_acts {
    void *res;     // [L+1, N, C]   act  residual stream entering layer l; res[L] leaves the last
    void *resmid;  // [Lk, N, C]    act  residual after the attention block
    float *rstd1;  // [Lk, N]       input_layernorm 1/rms
    float *rstd2;  // [Lk, N]       post_attention_layernorm 1/rms
    void *qkv;     // [Lk, N, QKV]  act  q|k|v after bias and RoPE
    void *att;     // [Lk, N, NH*hd] act attention output (o_proj input)
    float *lse;    // [Lk, N, NH]   attention softmax log-sum-exp
    void *gu;      // [Lk, N, 2*FF] act  gate|up projections
    void *lnf;     // [N, C]        act  final norm output (lm_head input)
    float *rstdf;  // [N]
    void *ln;      // [N, C]        act  scratch: a norm output (recomputed in backward)
    void *proj;    // [N, C]        act  scratch: o_proj / down_proj output before the residual add
    void *mlp;     // [N, FF]       act  scratch: silu(gate) * up (recomputed in backward)
    float *logits; // [chunk, V]    lm_head output for `chunk` rows at a time; also the fused
                   //               lm_head path's workspace (model.c plan_lm_head)
    void
        *dlogits_act; // [chunk, V]   act  logit gradients rounded to act (NULL when act is float32)
    float *logp;      // [N]           token log-probabilities
    float *ent;       // [N]           entropies
    float *dlogp;     // [N]           backward seeds
    float *dent;      // [N]
    float *lselm;     // [N]           lm_head log-sum-exp (fused lm_head path, for the backward)
    int32_t *tokens;  // [N]  input ids, -1 at padding
    int32_t *pos;     // [N]  position of each row in its sequence
    int32_t *targets; // [N]  next-token targets, -1 = none
    int32_t *lengths; // [B]
} rl_model_acts;

// Backward scratch (one layer's worth, reused top to bottom), act type.
typedef struct rl_model_grad_acts {
    void *dres; // [N, C]       gradient of the residual stream
    void *dln;  // [N, C]       gradient of a norm output
    void *dqkv; // [N, QKV]
    void *datt; // [N, NH*hd]
    void *dgu;  // [N, 2*FF]
    void *dmlp; // [N, FF]
} rl_model_grad_acts;

// Decode scratch, for up to `rows` new tokens at a time and `out_rows` logits rows.
typedef struct rl_model_decode {
    int rows, out_rows;
    void *x;                            // [rows, C]     act  residual stream
    void *ln;                           // [rows, C]     act
    void *qkv;                          // [rows, QKV]   act
    void *att;                          // [rows, NH*hd] act
    void *proj;                         // [rows, C]     act
    void *gu;                           // [rows, 2*FF]  act
    void *mlp;                          // [rows, FF]    act
    void *last;                         // [out_rows, C] act  rows whose logits are wanted
    float *logits;                      // [out_rows, V]
    int32_t *tokens, *pos, *slot;       // [rows] token, position and slot of each row
    int32_t *out_idx;                   // [out_rows] chunk rows whose logits are wanted
    int32_t *h_tokens, *h_pos, *h_slot; // [rows] host copies
    int32_t *h_out_idx, *h_out_dst;     // [out_rows] host: chunk row, logits row
    // CUDA graphs of the decode step, one per row bucket (model_decode.c; NULL until a bucket is
    // first seen, freed when the buffers above are reallocated or the KV cache changes)
    struct rl_decode_graphs *graphs;
    long graph_captures, graph_replays; // statistics: bucket graphs captured / launched so far
} rl_model_decode;

// Scoring scratch: one layer's worth of buffers, reused by every layer (rl_model_score_logits).
typedef struct rl_model_score {
    void *x, *mid;         // [N, C] act  residual stream before / after a layer's attention
    void *ln;              // [N, C] act
    void *qkv;             // [N, QKV] act
    void *att;             // [N, NH*hd] act
    float *lse;            // [N, NH]
    void *gu;              // [N, 2*FF] act
    void *mlp;             // [N, FF] act
    void *proj;            // [N, C] act
    float *logits;         // [chunk, V]
    int32_t *tokens, *pos; // [N]
    int32_t *lengths;      // [B]
    int32_t *targets;      // [N] rl_model_score_logprobs: next-token targets, -1 = none
    float *logp, *ent;     // [N] rl_model_score_logprobs: log-probs and entropies
} rl_model_score;

// Seconds spent per kind of work, accumulated while timing is enabled (each timed call
// synchronises the backend, so enable it only to measure).
typedef struct rl_model_timing {
    int enabled;
    double matmul;    // every matrix product, lm_head included
    double attention; // attention forward/backward, KV cache stores
    double other;     // norms, RoPE, SwiGLU, residuals, embedding, softmax/log-prob, copies
} rl_model_timing;

typedef struct rl_model {
    rl_model_config cfg;
    const rl_backend *be;
    int C, L, NH, NKV, hd, FF, V, QKV; // from cfg (hd resolved)

    rl_dtype act;       // element type of the parameter and activation blocks (be->act)
    void *params_block; // [n_params] act, backend memory
    size_t n_params;    // elements in the block (tensor sizes + alignment padding)
    size_t n_decay;     // elements in the leading weight-decay part of the block
    rl_model_weights params;
    rl_model_tensor *tensors; // [n_tensors] in Hugging Face state_dict order
    int n_tensors;

    float *grads_block; // [n_params] float32, NULL until the first backward / zero_grad
    rl_model_wgrads grads;

    void *acts_block; // activations, sized for acts_rows rows and acts_seqs sequences
    size_t acts_rows, acts_seqs;
    int recompute;        // 1: keep only each layer's input, recompute the layer in the backward
    int acts_recompute;   // the recompute mode acts_block was laid out for
    size_t logits_rows;   // rows of lm_head output computed at a time (acts.logits)
    size_t logits_budget; // floats of lm_head output held at once (16M by default; set it
                          // before the first forward to change the chunking)
    int lm_head_fused;    // the backend's fused lm_head + log-prob ops, when it has them: 0 (the
                          // default) when the logits of all rows do not fit logits_budget, 1
                          // always, -1 never (set it before a forward; see model.c)
    rl_model_acts acts;
    void *gacts_block;
    rl_model_grad_acts gacts;
    void *dec_block;
    rl_model_decode dec;
    void *score_block; // rl_model_score_logits scratch, sized for score_rows / score_seqs
    rl_model_score score;
    size_t score_rows, score_seqs, score_chunk;
    int prefill_rows;    // new tokens per prefill chunk (1024 by default)
    int batch_invariant; // the decode path's products (prefill and decode steps): 1 through
                         // be->matmul_rows (a row's bits never depend on its batch, so samples
                         // do not depend on scheduling), -1 through the backend's fastest
                         // products (cuBLAS tensor cores on CUDA), 0 (default) 1 on the CPU,
                         // -1 on CUDA (rollout.batch_invariant)
    int rows_invariant;  // set by the decode path while it runs: products through matmul_rows
    int eager_decode;    // 1: run a decode step op by op, never as a CUDA graph
                         // (rollout.cuda_graphs false); 0 (the default): replay graphs where the
                         // backend has them

    // state of the last forward / token_logprobs
    int B, T;          // shape of the last forward (0 before any)
    int have_logprobs; // token_logprobs ran after the last forward
    int logits_valid;  // acts.logits holds the lm_head output of all N rows
    float temperature;
    int32_t *h_tokens, *h_pos, *h_targets, *h_lengths; // host staging [acts_rows] / [acts_seqs]
    float *h_f1, *h_f2;                                // host staging [acts_rows]

    rl_param_span spans[2]; // decay / no-decay parts of the block
    rl_model_timing timing;
} rl_model;

// ---- creation -------------------------------------------------------------------------------

// Validates cfg (positive sizes, NH % NKV == 0, even head_dim <= RL_MAX_HEAD_DIM, theta and eps
// positive, a positive window when use_sliding_window) and allocates the parameter block (zeros).
// head_dim 0 means hidden_size / num_attention_heads. RL_EINPUT on a bad config.
int rl_model_create(rl_model **out, const rl_model_config *cfg, const rl_backend *be, rl_err *err);

// The checks rl_model_create makes, without allocating anything; *head_dim gets the resolved
// head dimension.
int rl_model_check_config(const rl_model_config *cfg, int *head_dim, rl_err *err);

// One tensor a config implies: its Hugging Face name and shape, and the config keys the shape
// comes from, with their values (for messages), e.g. "vocab_size 151936 x hidden_size 896".
typedef struct rl_model_tensor_spec {
    char name[80];
    int ndim;         // 1 or 2
    int64_t shape[2]; // shape[1] is 0 when ndim == 1
    char dims[160];
} rl_model_tensor_spec;

// Calls fn for every tensor a model with this config holds, in state_dict order, with the names
// and shapes rl_model_tensor_info would give, before anything is allocated (so a checkpoint can
// be checked against the config first). Returns -1 for a bad config (RL_EINPUT, as
// rl_model_create), else the first nonzero value fn returns, else 0.
int rl_model_config_tensors(const rl_model_config *cfg,
                            int (*fn)(void *ctx, const rl_model_tensor_spec *t), void *ctx,
                            rl_err *err);

// Hugging Face's _init_weights: every matrix (embedding, projections, lm_head) normal(0,
// init_std) (HF: initializer_range, 0.02), biases 0, norm weights 1. No residual-branch scaling.
// Deterministic: row r of tensor i (HF order) draws from rl_rng_stream(seed, RL_RNG_INIT, i, r).
void rl_model_init_random(rl_model *m, uint64_t seed, float init_std);

void rl_model_free(rl_model *m);

// The sliding window of layer l in tokens (0 = full causal): HF's layer_types rule,
// use_sliding_window && l >= max_window_layers.
int rl_model_layer_window(const rl_model *m, int l);

// ---- tensors (checkpoint I/O) -------------------------------------------------------------

int rl_model_num_tensors(const rl_model *m);

// Tensor i (0 <= i < rl_model_num_tensors) in Hugging Face state_dict order: its HF name, shape
// and data (backend memory of the model's act type: use rl_model_tensor_read / _write to move it
// from / to the host). Any output pointer may be NULL. Returns -1 for an index out of range.
int rl_model_tensor_info(const rl_model *m, int i, const char **name, int64_t shape[2], int *ndim,
                         void **data);

// Index of the tensor with this HF name, or -1.
int rl_model_find_tensor(const rl_model *m, const char *name);

// Copies tensor i to / from a host array of its numel floats. With a bfloat16 model the write
// rounds to nearest even (exact for values that came from a BF16 file) and the read widens
// exactly.
void rl_model_tensor_read(const rl_model *m, int i, float *host);
void rl_model_tensor_write(rl_model *m, int i, const float *host);

// ---- training and scoring -----------------------------------------------------------------

// Per-layer activation recomputation (train.recompute: layer). On, rl_model_forward keeps only
// each layer's input (the residual stream, L+1 of [N, C]) and one layer's worth of the other
// activations; rl_model_backward recomputes each layer's forward from its input just before its
// backward. About one extra forward of compute for roughly L times less activation memory.
// Gradients are bit-identical to those without recomputation (the same kernels on the same
// inputs). Takes effect at the next rl_model_forward.
void rl_model_set_recompute(rl_model *m, int on);

// Bytes of backend memory the activations of a forward over N rows and B sequences take, with or
// without recomputation (rl_model_forward's block; the backward scratch is separate).
size_t rl_model_acts_bytes(const rl_model *m, size_t N, size_t B, int recompute);

// Forward over B right-padded sequences: tokens [B,T] (host), lengths [B] (host, 0 <= len <= T;
// NULL = all T). Row b holds positions 0..lengths[b]-1; entries beyond the length are ignored
// (any value) and change nothing. Keeps the activations for token_logprobs and backward.
// RL_EINPUT for a token outside [0, V) inside a length, or a bad shape.
int rl_model_forward(rl_model *m, const int32_t *tokens, const int32_t *lengths, int B, int T,
                     rl_err *err);

// After rl_model_forward: for every position (b,t), with p = softmax(logits(b,t) / temperature),
// logp[b,t] = log p[targets[b,t]] (0 where the target is -1) and, if entropy is not NULL,
// entropy[b,t] = -sum p log p. targets [B,T] host (usually the next tokens; -1 = none); logp and
// entropy [B,T] host outputs, 0 at padded positions. Remembers targets and temperature for
// rl_model_backward. RL_EINPUT for a target outside [-1, V) or temperature <= 0.
int rl_model_token_logprobs(rl_model *m, const int32_t *targets, float temperature, float *logp,
                            float *entropy, rl_err *err);

// After rl_model_token_logprobs: ACCUMULATES into the gradient block the gradient of
//   sum_{b,t} dlogp[b,t] * logp[b,t] + dentropy[b,t] * entropy[b,t]
// (dlogp, dentropy [B,T] host; dentropy may be NULL; padded positions ignored). SFT
// cross-entropy is dlogp = -1/N at target positions; the GRPO surrogate, KL terms and the entropy
// bonus are other choices of the two seeds. Gradients wrt logits: dlogp (onehot - p)/temperature
// and -dentropy p (log p + H)/temperature. RL_EINTERNAL if token_logprobs has not run.
int rl_model_backward(rl_model *m, const float *dlogp, const float *dentropy, rl_err *err);

// After rl_model_forward (token_logprobs not needed): ACCUMULATES into the gradient block the
// gradient of any objective whose gradient with respect to the logits is dlogits [B,T,V] (host;
// rows at padded positions ignored). Distillation uses it: its loss depends on the whole
// distribution, not on one token's log-probability. Composed of the backend's existing ops (the
// seeds are uploaded into the logits buffer chunk by chunk and go through the lm_head's matmul
// backward), so every backend has it.
int rl_model_backward_logits(rl_model *m, const float *dlogits, rl_err *err);

// Scoring mode: logits [B,T,V] (host; zeros at padded positions) of B right-padded sequences
// (as rl_model_forward takes them), computed without keeping activations: every layer reuses
// one layer's buffers (a separate, smaller block), so a model that only scores (a distillation
// teacher) needs about 1/L of the activation memory of rl_model_forward. Leaves the training
// state (the last forward, token_logprobs, backward) untouched. Same results as
// rl_model_forward + rl_model_logits. RL_EINPUT as rl_model_forward.
int rl_model_score_logits(rl_model *m, const int32_t *tokens, const int32_t *lengths, int B, int T,
                          float *logits, rl_err *err);

// Scoring mode for log-probs: logp [B,T] (and entropy [B,T] unless NULL) of the targets, host,
// zeros at padded positions — the values rl_model_forward + rl_model_token_logprobs give, computed
// the way rl_model_score_logits is (one layer's buffers, no activations kept, the training state
// untouched). For a frozen reference model, held-out scoring and `rlpipe logprobs`. RL_EINPUT as
// rl_model_forward and rl_model_token_logprobs.
int rl_model_score_logprobs(rl_model *m, const int32_t *tokens, const int32_t *lengths, int B,
                            int T, const int32_t *targets, float temperature, float *logp,
                            float *entropy, rl_err *err);

// Logits of every position of the last forward, [B,T,V] host (zeros at padded positions).
int rl_model_logits(rl_model *m, float *logits, rl_err *err);

// ---- gradients and optimizer views ---------------------------------------------------------

void rl_model_zero_grad(rl_model *m);          // allocates the gradient block if needed
double rl_model_grad_norm(rl_model *m);        // sqrt(sum of squared gradients), 0 if none
void *rl_model_params(rl_model *m, size_t *n); // the flat parameter block (backend memory, act)
float *rl_model_grads(rl_model *m, size_t *n); // the flat float32 gradient block (allocates)
// The weight-decay spans of the flat block (matrices decay; norms and biases do not), to give
// to rl_adamw_create. Returns the array; *n receives its length.
const rl_param_span *rl_model_decay_spans(const rl_model *m, int *n);
size_t rl_model_num_weights(const rl_model *m); // parameters without padding, as HF counts them

// ---- incremental decoding ------------------------------------------------------------------

// Paged KV cache (vLLM's PagedAttention design, our own code). Positions are grouped in blocks
// of RL_KV_BLOCK; a sequence slot owns a row of a block table naming the pool blocks that hold
// its positions, so memory is taken block by block as a sequence grows instead of a fixed
// max_len per slot. Layers are split into groups by their sliding window (Qwen2's full-attention
// layers and window layers): each group has its own pool, table and free list, and a window
// group gives back the blocks its window can no longer see. Blocks are reference-counted: a fork
// shares every block of a prefix (the G samples of one prompt hold its prompt once); a block
// shared by several slots is copied before one of them writes into it (copy-on-write of the
// partial last block).
typedef struct rl_kv_group {
    int window;            // 0: full attention; > 0: the sliding window of its layers
    int n_layers;          // layers in the group
    int n_blocks;          // pool blocks
    size_t block_bytes;    // bytes of one block over the group's layers, keys and values
    void *block;           // backend memory holding k, v and table (a tensor-spec table)
    void *k, *v;           // [n_layers, n_blocks, RL_KV_BLOCK * kv_dim] act
    int32_t *table;        // [n_slots, max_blocks] backend: pool block of each (slot, block), -1
    int32_t *h_table;      // host copy (the truth; uploaded when changed)
    int *ref;              // [n_blocks] host: slots naming each block
    int *free_list;        // [n_blocks] host: stack of unused blocks
    int n_free, peak_used; // blocks unused now; most ever used at once
    int dirty;             // h_table changed since the last upload
} rl_kv_group;

typedef struct rl_kv_cache {
    const rl_backend *be;
    int n_slots, max_len, L, kv_dim; // kv_dim = NKV*hd
    int max_blocks;                  // block-table row length: ceil(max_len / RL_KV_BLOCK)
    int n_groups;
    rl_kv_group *group; // [n_groups]
    int *layer_group;   // [L] group of each layer
    int *layer_index;   // [L] the layer's index inside its group's pool
    int *len;           // [n_slots] host: tokens held per slot
    int keep_window;    // 1: window groups keep every block (to measure what freeing saves)
    long cow_copies;    // blocks copied on write so far
} rl_kv_cache;

// A cache for n_slots sequences of up to max_len tokens each, for this model's shape, with pools
// large enough that every slot can hold max_len tokens at once (nothing ever waits).
rl_kv_cache *rl_kv_cache_create(const rl_model *m, int n_slots, int max_len, rl_err *err);
// A cache whose pools share budget_bytes (0: as rl_kv_cache_create). A window group is given
// blocks in proportion to what one sequence can hold there: its window plus `chunk` positions
// appended at once (chunk <= 0: max_len). RL_EINPUT when the budget cannot hold one sequence of
// max_len tokens (the message says how many bytes it needs).
rl_kv_cache *rl_kv_cache_create_pool(const rl_model *m, int n_slots, int max_len,
                                     size_t budget_bytes, int chunk, rl_err *err);
void rl_kv_cache_free(rl_kv_cache *c);
void rl_kv_cache_reset(rl_kv_cache *c, int slot); // forget the slot's tokens, release its blocks
// dst := src's tokens, sharing src's blocks (dst's own are released first).
void rl_kv_cache_fork(rl_kv_cache *c, int dst, int src);
void rl_kv_cache_copy_slot(rl_kv_cache *c, int dst, int src); // = rl_kv_cache_fork
int rl_kv_cache_len(const rl_kv_cache *c, int slot);
// Makes room for n more tokens in slot: takes the blocks positions [len, len+n) need and copies
// a shared block that will be written. All or nothing: returns -1 (and changes nothing) when a
// pool has too few free blocks or len + n > max_len, else 0.
int rl_kv_cache_reserve(rl_kv_cache *c, int slot, int n);
// Blocks in use now / at most so far, over all groups, in bytes.
size_t rl_kv_cache_bytes_used(const rl_kv_cache *c);
size_t rl_kv_cache_bytes_peak(const rl_kv_cache *c);
size_t rl_kv_cache_bytes_total(const rl_kv_cache *c); // pool sizes
// Bytes of KV one token takes over all layers (keys and values).
size_t rl_kv_cache_token_bytes(const rl_kv_cache *c);
void rl_kv_cache_reset_peak(rl_kv_cache *c);

// Appends n_tokens[i] tokens (tokens[i] host) to slot slots[i] for i < n, at positions
// len(slot) .., all sequences batched together, and writes the logits of each sequence's last
// new token to logits[i*V ..] (host, [n, V]). Slots must be distinct and have room (blocks are
// reserved here when the caller has not: RL_EINTERNAL "KV cache pool exhausted" when a pool runs
// out). A row's logits do not depend on the other rows of the call (how many, which, chunking):
// the products go through the backend's batch-invariant matmul_rows (kernels/kernels.h) unless
// m->batch_invariant turns it off (then they are the backend's fastest). On a backend with
// graph capture (CUDA), a call in which every sequence adds one token and n <= 512 is padded to a
// batch bucket (1, 2, 4, .. 512 rows) and replayed as that bucket's CUDA graph (captured on first
// use; m->eager_decode = 1 runs the same padded rows op by op, with the same bits; model_decode.c
// says what the graphs capture).
int rl_model_prefill(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                     const int32_t *const *tokens, const int32_t *n_tokens, float *logits,
                     rl_err *err);
// rl_model_prefill with logits [n, V] (float32) in backend memory: they never leave the device
// (for the sampling op, be->sample).
int rl_model_prefill_be(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                        const int32_t *const *tokens, const int32_t *n_tokens, float *logits,
                        rl_err *err);

// One new token per live sequence: tokens[i] goes to slot slots[i] at position len(slot);
// logits [n, V] host. The n rows go through every matrix product together.
int rl_model_decode_step(rl_model *m, rl_kv_cache *c, int n, const int *slots,
                         const int32_t *tokens, float *logits, rl_err *err);

#endif
