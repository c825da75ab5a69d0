/*
 * kernels: every numeric operation the model, the optimizer and the rollout engine need, as one
 * set of function signatures. Each operation is a function type here (rl_xxx_fn); a backend
 * (kernels/backend.h) is a table holding one implementation of each. The CPU implementations are
 * declared below as xxx_cpu (OpenBLAS sgemm for matrix products, OpenMP loops for the rest); the
 * CUDA ones will be xxx_cuda with the very same types, so the compiler checks that every backend
 * matches. The CPU backend is the reference the CUDA one is tested against, op by op.
 *
 * Conventions (llm.c style):
 *   - B batch, T sequence length, N = B*T rows, C channels (hidden size), NH query heads, NKV
 *     key/value heads, hd head dim, QKV = (NH + 2*NKV)*hd, FF MLP width, V vocab size.
 *   - Tensors are row-major; every pointer argument is backend memory (device memory for CUDA),
 *     except where a comment says "host". Integer arrays are int32_t.
 *   - Element types (the precision seam): weights, activations, KV caches and activation
 *     gradients are `void *` / `const void *` of the backend's act type (rl_backend.act: float32
 *     or bfloat16; the comments say "act"). Statistics (rstd, lse, logp, entropy, dlogp, sums of
 *     squares), the logits used for log-probs (and their gradient dlogits), parameter gradients
 *     (dweight, dbias, dwte), master weights and optimizer moments are `float *` always.
 *     Arithmetic and reductions run in float32 whatever act is: a bf16 value is widened on load
 *     and rounded to nearest even once, on store. The CPU backend's act is float32, so its
 *     implementations treat every act pointer as float *.
 *   - The first argument is always the backend the call runs on (for its private context: CUDA
 *     stream, cuBLAS handle, ...; the CPU backend ignores it).
 *   - xxx_forward(out, ..., inp, ...) writes out. xxx_backward(dinp, dweight, ..., dout, ...)
 *     ACCUMULATES (+=) into parameter gradients (dweight, dbias, dwte); for each op the comment
 *     says whether dinp is overwritten (=) or accumulated (+=).
 *   - Linear layers are nn.Linear: weight [OC, C], out = inp @ weight^T + bias.
 *   - Attention rows are the fused q|k|v projection: row n holds q (NH*hd floats: head h at h*hd),
 *     then k (NKV*hd), then v (NKV*hd). Query head h uses kv head h / (NH/NKV), as HF repeat_kv.
 *   - Sliding window w > 0: query at position p sees keys at positions p-w+1 .. p (w keys, the
 *     query included), as HF masking_utils (kv_idx > q_idx - sliding_window); w = 0: full causal.
 *   - Nothing here allocates memory in a hot path.
 *
 * Sampling is an op of the table (rl_sample_fn: logits stay in backend memory, 12 bytes per row
 * come back); the helpers at the end are the plain host functions over one row of logits that
 * the CPU op is built from, kept for host users.
 *
 * Owns: nothing (declarations only).
 */
#ifndef RL_KERNELS_H
#define RL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rl_backend rl_backend;

// Element type of weights and activations, fixed when a backend is created (rl_backend.act):
// float32 on the CPU (the reference); float32 or bfloat16 on CUDA. Statistics (RMSNorm rstd,
// attention lse, log-probs, entropies, sums of squares), parameter gradients, master weights and
// optimizer moments are float32 whatever the activation type. Pointer arguments documented as
// "act" hold elements of the backend's act type (void * in the signatures).
// RL_I32 is never an act type; it lets memory tables (policy/model_impl.h) describe int32 arrays.
typedef enum rl_dtype { RL_F32 = 0, RL_BF16 = 1, RL_I32 = 2 } rl_dtype;

// Bytes per element of a dtype.
static inline size_t rl_dtype_size(rl_dtype dt) {
    return dt == RL_BF16 ? 2 : 4;
}

// "float32", "bfloat16" or "int32".
static inline const char *rl_dtype_name(rl_dtype dt) {
    return dt == RL_BF16 ? "bfloat16" : dt == RL_I32 ? "int32" : "float32";
}

// Largest head dimension the attention kernels support (Qwen2 models use 64 and 128).
#define RL_MAX_HEAD_DIM 256

// Positions per block of a KV cache slot (see rl_kv_store_fn).
#define RL_KV_BLOCK 64

// ------------------------------------------------------------------------------------------------
// Matrix products

// c[M,N] = alpha * op(a) @ op(b) + beta * c, op(x) = x or x^T (trans_x != 0). a is [M,K] (or
// [K,M] when transposed), b is [K,N] (or [N,K]). beta = 1 accumulates. a and b are act; c is of
// type c_dt, which is RL_F32 or the backend's act (so on a bf16 backend a product of bf16
// operands can land in float32: the lm-head's logits for log-probs, a float32 gradient);
// products accumulate in float32. On a float32 backend this is the backend's sgemm. Another
// c_dt is a programming error (the process stops with a message).
typedef void rl_gemm_fn(const rl_backend *be, void *c, rl_dtype c_dt, const void *a, const void *b,
                        int M, int N, int K, int trans_a, int trans_b, float alpha, float beta);

// out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL). All act: out, inp,
// weight, bias. (For a float32 result from act operands, e.g. logits, use gemm with c_dt RL_F32.)
typedef void rl_matmul_forward_fn(const rl_backend *be, void *out, const void *inp,
                                  const void *weight, const void *bias, int N, int C, int OC);

// out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL), BATCH-INVARIANT: every
// output's bits depend only on its row of inp and on the weights, not on N, on the other rows or
// on the thread count. The decode path uses it so that a sample does not depend on what it was
// batched with. inp, weight, bias: act; out: out_dt, RL_F32 or act. The CPU fixes the order of
// each sum (kernels/cpu/matmul_rows_cpu.c); a backend that cannot promise invariance leaves the
// op NULL and the decode path pads its row counts instead (policy/model_decode.c).
typedef void rl_matmul_rows_fn(const rl_backend *be, void *out, rl_dtype out_dt, const void *inp,
                               const void *weight, const void *bias, int N, int C, int OC);

// dinp[N,C] = dout[N,OC] @ weight (OVERWRITTEN; skipped when dinp is NULL),
// dweight[OC,C] += dout^T @ inp, dbias[OC] += sum over rows of dout (skipped when NULL).
// dinp, dout, inp, weight: act. dweight, dbias: float32 (parameter gradients).
typedef void rl_matmul_backward_fn(const rl_backend *be, void *dinp, float *dweight, float *dbias,
                                   const void *dout, const void *inp, const void *weight, int N,
                                   int C, int OC);

// ------------------------------------------------------------------------------------------------
// Embedding, normalisation, position, activation, residual

// out[n,:] = wte[tokens[n],:]; a negative token gives a zero row (padding). tokens in [0, V).
// out, wte: act.
typedef void rl_embedding_forward_fn(const rl_backend *be, void *out, const int32_t *tokens,
                                     const void *wte, int N, int C);

// dwte[tokens[n],:] += dout[n,:] for every n with tokens[n] >= 0. Deterministic (no atomics).
// dwte: float32; dout: act.
typedef void rl_embedding_backward_fn(const rl_backend *be, float *dwte, const void *dout,
                                      const int32_t *tokens, int N, int C);

// RMSNorm as HF Qwen2RMSNorm: out = weight * (x * rsqrt(mean(x^2) + eps)), weight used as-is.
// rstd[N] (may be NULL, float32) receives rsqrt(mean(x^2) + eps) for the backward pass.
// out, inp, weight: act.
typedef void rl_rmsnorm_forward_fn(const rl_backend *be, void *out, float *rstd, const void *inp,
                                   const void *weight, int N, int C, float eps);

// dinp[N,C] += (ACCUMULATED), dweight[C] += . inp and rstd are the forward's input and rstd.
// dinp, dout, inp, weight: act; dweight, rstd: float32.
typedef void rl_rmsnorm_backward_fn(const rl_backend *be, void *dinp, float *dweight,
                                    const void *dout, const void *inp, const void *weight,
                                    const float *rstd, int N, int C);

// Rotary position embedding in place, HF "default" rope with NeoX half-split pairing: in every
// head, element i rotates with element i + hd/2 by angle pos * inv_freq[i], inv_freq[i] =
// 1 / theta^(2i/hd) computed in float32 as HF does. Heads are at x + n*row_stride + h*hd for
// h < n_heads (so one call rotates the q and k heads of fused q|k|v rows: n_heads = NH + NKV).
// x: act (row_stride and the head offsets count elements).
typedef void rl_rope_forward_fn(const rl_backend *be, void *x, const int32_t *pos, int N,
                                int n_heads, int hd, int row_stride, float theta);

// The transposed rotation, in place: turns d(rotated x) into d(x). Same layout as forward.
typedef void rl_rope_backward_fn(const rl_backend *be, void *dx, const int32_t *pos, int N,
                                 int n_heads, int hd, int row_stride, float theta);

// out[N,FF] = silu(gu[:, :FF]) * gu[:, FF:]; gu[N,2FF] holds gate_proj then up_proj outputs.
// All act.
typedef void rl_swiglu_forward_fn(const rl_backend *be, void *out, const void *gu, int N, int FF);

// dgu[N,2FF] (OVERWRITTEN) from dout[N,FF] and the forward's gu. All act.
typedef void rl_swiglu_backward_fn(const rl_backend *be, void *dgu, const void *dout,
                                   const void *gu, int N, int FF);

// out[i] = a[i] + b[i]; out may alias a or b. All act.
typedef void rl_residual_forward_fn(const rl_backend *be, void *out, const void *a, const void *b,
                                    size_t n);

// ------------------------------------------------------------------------------------------------
// Attention (scale hd^-0.5, softmax in float32)

// Causal grouped-query self-attention over B right-padded sequences.
//   out [B,T,NH*hd]        attention output (concatenated heads)
//   lse [B,T,NH] or NULL   log-sum-exp of each softmax row, kept for the backward pass
//   qkv [B,T,QKV]          fused q|k|v rows, q and k already rotated
//   lengths [B] or NULL    valid length of each sequence (NULL: all T). Positions t >= length get
//                          out = 0 and lse = 0; they are never attended to by valid positions.
// out, qkv: act; lse: float32.
typedef void rl_attention_forward_fn(const rl_backend *be, void *out, float *lse, const void *qkv,
                                     const int32_t *lengths, int B, int T, int NH, int NKV, int hd,
                                     int window);

// dqkv [B,T,QKV] (OVERWRITTEN, zero at padded positions) from dout [B,T,NH*hd] and the forward's
// qkv, out and lse. dqkv, dout, qkv, out: act; lse: float32.
typedef void rl_attention_backward_fn(const rl_backend *be, void *dqkv, const void *dout,
                                      const void *qkv, const void *out, const float *lse,
                                      const int32_t *lengths, int B, int T, int NH, int NKV, int hd,
                                      int window);

// Paged KV cache of one layer (vLLM's PagedAttention layout). The keys and values live in two
// pools of fixed-size blocks, kpool and vpool [n_blocks, RL_KV_BLOCK * NKV*hd] (act): a block
// holds RL_KV_BLOCK consecutive positions of one sequence; the layout inside a block belongs to
// the backend (the CPU and CUDA store each kv head's keys of a block transposed,
// [hd][RL_KV_BLOCK], and its values as rows, [RL_KV_BLOCK][hd], at kv head offset
// kvh * hd * RL_KV_BLOCK). block_table [n_slots, max_blocks] (int32, backend memory): entry
// (s, b) is the pool block holding positions [b*RL_KV_BLOCK, (b+1)*RL_KV_BLOCK) of the sequence
// in slot s; several slots may name the same block (a shared prompt prefix).
// kv_store stores the k and v parts of n fused q|k|v rows (act): row i at position pos[i] of
// slot slot[i], whose block must be in the table (and not shared with another slot). A row with
// slot[i] < 0 is padding (a CUDA-graph bucket's fixed row count): it is skipped, nothing is read
// from the table or written to the pools for it.
typedef void rl_kv_store_fn(const rl_backend *be, void *kpool, void *vpool, const void *qkv,
                            const int32_t *block_table, int max_blocks, const int32_t *slot,
                            const int32_t *pos, int n, int NH, int NKV, int hd);

// Attention of n query rows against the paged cache: row i (the q part of qkv row i, at position
// pos[i] of the sequence in slot slot[i]) attends to the cached keys/values of its slot at
// positions max(0, pos[i]-window+1) .. pos[i], which must already be stored; blocks outside that
// range are never read (their table entries may be -1). out [n, NH*hd]. A padding row
// (slot[i] < 0) reads nothing and gets zeros. out, qkv, kpool, vpool: act.
typedef void rl_attention_cached_forward_fn(const rl_backend *be, void *out, const void *qkv,
                                            const void *kpool, const void *vpool,
                                            const int32_t *block_table, int max_blocks,
                                            const int32_t *slot, const int32_t *pos, int n, int NH,
                                            int NKV, int hd, int window);

// out[i,:] = inp[rows[i],:] for i < n. out, inp: act.
typedef void rl_gather_rows_fn(const rl_backend *be, void *out, const void *inp,
                               const int32_t *rows, int n, int C);

// dst[i] = src[i] converted from src_dt to dst_dt (float32 -> bfloat16 rounds to nearest even;
// bfloat16 -> float32 is exact; same types copy), i < n. dst and src must not overlap unless
// dst == src and the types are equal. Any pair of RL_F32 / RL_BF16 works on every backend (the
// CPU converts in host memory), so e.g. a bf16 backend can turn the float32 dlogits of the
// log-prob backward into act for matmul_backward, or a float32 master into act weights.
typedef void rl_convert_fn(const rl_backend *be, void *dst, rl_dtype dst_dt, const void *src,
                           rl_dtype src_dt, size_t n);

// ------------------------------------------------------------------------------------------------
// Log-probabilities of the distribution softmax(logits * inv_temp), one row per position.
// Cross-entropy is -logp. Logits, dlogits and every output here are float32 on every backend
// (a bf16 backend produces float32 logits with gemm, c_dt = RL_F32).

// logp[i] = log softmax(logits[i,:] * inv_temp)[targets[i]] (0 where targets[i] < 0);
// entropy[i] (may be NULL) = -sum_k p_k log p_k of that distribution (for every row).
typedef void rl_logprob_forward_fn(const rl_backend *be, float *logp, float *entropy,
                                   const float *logits, const int32_t *targets, int n, int V,
                                   float inv_temp);

// dlogits[n,V] (OVERWRITTEN; may alias logits, which is then consumed) = gradient wrt logits of
// sum_i dlogp[i]*logp[i] + dentropy[i]*entropy[i] (dentropy may be NULL):
//   d/dlogits_k = inv_temp * ( dlogp*(onehot_k - p_k) - dentropy*p_k*(log p_k + H) ).
typedef void rl_logprob_backward_fn(const rl_backend *be, float *dlogits, const float *logits,
                                    const int32_t *targets, const float *dlogp,
                                    const float *dentropy, int n, int V, float inv_temp);

// out[n,V] = log softmax(logits * inv_temp) row by row; out may alias logits.
typedef void rl_logsoftmax_forward_fn(const rl_backend *be, float *out, const float *logits, int n,
                                      int V, float inv_temp);

// ------------------------------------------------------------------------------------------------
// Optional fused ops. A backend may leave these table slots NULL (callers then compose the ops
// above); every backend here provides them. The CPU versions are composed of the CPU ops above
// (gemm, matmul, residual, rmsnorm) plus the per-row softmax bookkeeping, and stay the reference.

// Floats of workspace the fused lm_head ops need for N rows, C channels and vocabulary chunks of
// `chunk` columns when activations are of type act: the [N, chunk] float32 logits of one chunk,
// three running statistics per row, and, for bf16 activations, a float32 [N, C] accumulator of dh
// and the chunk's dlogits rounded to bf16 ([N, chunk] bf16: the products take bf16 operands), with
// 128 floats of slack to start both on 256-byte boundaries.
static inline size_t rl_lm_head_work_floats(rl_dtype act, int N, int C, int chunk) {
    size_t n = (size_t)N, k = chunk > 0 ? (size_t)chunk : 0;
    return n * (k + 3) + (act == RL_BF16 ? n * (size_t)C + (n * k + 1) / 2 + 128 : 0);
}

// The lm_head and logprob_forward in one pass over the vocabulary, `chunk` columns at a time:
// with logits = h @ wlm^T (never stored beyond [N, chunk] floats in work),
//   logp[i] = log softmax(logits[i,:] * inv_temp)[targets[i]] (0 where targets[i] < 0),
//   entropy[i] (may be NULL) and lse[i] (may be NULL) = log sum_k exp(logits[i,k] * inv_temp),
// for every row, by an online log-sum-exp and entropy accumulation across chunks.
//   h [N, C] act, wlm [V, C] act, targets [N], chunk columns (<= 0 or > V: V),
//   work: rl_lm_head_work_floats(be->act, N, C, chunk) floats.
// Same results as matmul_forward + logprob_forward up to float32 reassociation across chunks
// (bit for bit on the CPU when chunk >= V).
typedef void rl_lm_head_logprob_forward_fn(const rl_backend *be, float *logp, float *entropy,
                                           float *lse, const void *h, const void *wlm,
                                           const int32_t *targets, int N, int C, int V,
                                           float inv_temp, int chunk, float *work);

// Its backward, chunk by chunk (each chunk's logits recomputed): with dlogits as
// logprob_backward gives them for dlogp and dentropy (dentropy may be NULL; dlogp is ignored at
// rows with targets < 0), dh[N,C] (act, OVERWRITTEN) = dlogits @ wlm and
// dwlm[V,C] += dlogits^T @ h (float32 gradient). lse [N] and entropy [N] are the forward's
// (entropy is read only when dentropy != NULL). Same inputs and work as the forward.
typedef void rl_lm_head_logprob_backward_fn(const rl_backend *be, void *dh, float *dwlm,
                                            const float *dlogp, const float *dentropy,
                                            const void *h, const void *wlm, const int32_t *targets,
                                            const float *lse, const float *entropy, int N, int C,
                                            int V, float inv_temp, int chunk, float *work);

// Residual add and RMSNorm in one pass: res_out[N,C] = a + b (may alias a or b), then
// out[N,C] = rmsnorm(res_out) * weight as rmsnorm_forward, rstd[N] (may be NULL). All act.
// Bit for bit residual_forward followed by rmsnorm_forward.
typedef void rl_rmsnorm_residual_forward_fn(const rl_backend *be, void *res_out, void *out,
                                            float *rstd, const void *a, const void *b,
                                            const void *weight, int N, int C, float eps);

// ------------------------------------------------------------------------------------------------
// Optimizer and reductions

// One AdamW step (PyTorch semantics, decoupled weight decay) over n contiguous parameters:
//   g = grad * grad_scale; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
//   param -= lr * ( (m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps) + weight_decay * param ).
// step is the 1-based count of updates including this one. Everything float32: param is the
// float32 parameter itself (a float32 backend, or a float32 master without a working copy).
typedef void rl_adamw_update_fn(const rl_backend *be, float *param, const float *grad, float *m,
                                float *v, size_t n, float lr, float beta1, float beta2, float eps,
                                float weight_decay, float grad_scale, int step);

// Mixed precision: the AdamW step above on the float32 master[n] (bit for bit the same update),
// then the working copy param[n] (act) = the new master rounded to act: a copy on a float32
// backend; on a bfloat16 backend STOCHASTIC rounding (rl_bf16_stochastic in kernels/bf16.h:
// element i takes the random word i % 4 of Philox4x32-10(key = seed, counter = i / 4)), so a
// small update is not lost to round-to-nearest and its expectation is the master. Reproducible:
// the same seed, n and inputs give the same bits on every backend. Seed each (tensor, step)
// differently (e.g. a hash of run seed, step and the tensor's offset in the flat block).
typedef void rl_adamw_update_master_fn(const rl_backend *be, float *master, void *param,
                                       const float *grad, float *m, float *v, size_t n, float lr,
                                       float beta1, float beta2, float eps, float weight_decay,
                                       float grad_scale, int step, uint64_t seed);

// Sum of squares of x[n], returned on the host. Deterministic: the summation order depends only
// on n (fixed-size blocks, partial sums in double), never on the thread count. sumsq, scale and
// fill work on float32 vectors (gradients, masters, moments, statistics).
typedef double rl_sumsq_fn(const rl_backend *be, const float *x, size_t n);

// x[i] *= s.
typedef void rl_scale_fn(const rl_backend *be, float *x, float s, size_t n);

// x[i] = value.
typedef void rl_fill_fn(const rl_backend *be, float *x, float value, size_t n);

// ------------------------------------------------------------------------------------------------
// Sampling

// How one row's next token is drawn (16 bytes, the same layout in C and CUDA).
typedef struct rl_sampling {
    float temperature; // <= 0: greedy (one-hot at the first maximum)
    int top_k;         // keep the k largest logits (ties with the k-th kept, as HF); 0: off
    float top_p;       // nucleus: keep the smallest top set with mass >= top_p; >= 1: off
    float min_p;       // drop tokens with p < min_p * p_max; 0: off
} rl_sampling;

// Draws one token per row of logits[n, V] (float32, backend memory), without sending the
// logits anywhere. Row i samples from logits[i, :vocab_limit] (ids >= vocab_limit are never
// drawn; 1 <= vocab_limit <= V) with its own parameters s[i] and its own random number
//     u = rl_philox_uniform(rng[2i], rng[2i+1])            (kernels/rng.h; key, draw index)
// exactly as rl_sampling_probs + rl_sample_from_probs on the host:
//   - s[i].temperature <= 0: greedy, tokens[i] = first argmax, logp_sample[i] = 0;
//   - otherwise softmax(logits / temperature), then top-k (ties with the k-th kept), top-p, min-p,
//     each on the renormalised result of the one before (HF's order); tokens[i] = the first kept
//     id whose cumulative probability (in id order) exceeds u; logp_sample[i] = log of its
//     probability under that filtered distribution.
// logp_policy[i] = log softmax(logits[i, :V])[tokens[i]]: the unmodified policy (temperature 1,
// the full row, vocab_limit ignored), the log-prob the GRPO ratio is taken against.
// Outputs tokens[n], logp_sample[n], logp_policy[n], and the inputs rng[2n] and s[n], are backend
// memory. Logits must be finite or -inf (never NaN). The CPU implementation calls the host
// helpers below, so its draws are those of the engine's host sampling bit for bit; the CUDA one
// draws the same u and (float32 logits) the same tokens, up to double-rounding differences of
// its reduction order (a token differs only when u falls within ~1e-15 of a boundary).
//
// Usage for a decode step of n live rows (one 12n-byte download; see also kernels/README.md):
//     int32_t *out = be->mem_alloc(be, 3 * n * 4);              // tokens | logp_s | logp_p
//     uint64_t key_draw[2 * n]; rl_sampling par[n];             // host, filled per row:
//     key_draw[2*i] = rng_i.key; key_draw[2*i+1] = rl_rng_position(&rng_i);
//     rl_rng_advance(&rng_i, 1);                                // the stream moves on by one
//     (upload key_draw and par to backend buffers d_rng, d_par, e.g. with mem_upload_staged)
//     be->sample(be, out, (float *)(out + n), (float *)(out + 2 * n), logits, d_rng, d_par, n,
//                V, vocab_limit);
//     be->mem_download(be, host_out, out, 3 * n * 4);
typedef void rl_sample_fn(const rl_backend *be, int32_t *tokens, float *logp_sample,
                          float *logp_policy, const float *logits, const uint64_t *rng,
                          const rl_sampling *s, int n, int V, int vocab_limit);

// ------------------------------------------------------------------------------------------------
// The CPU implementations (in kernels/cpu/).

rl_gemm_fn gemm_cpu;
rl_matmul_forward_fn matmul_forward_cpu;
rl_matmul_rows_fn matmul_rows_cpu;
rl_matmul_backward_fn matmul_backward_cpu;
rl_embedding_forward_fn embedding_forward_cpu;
rl_embedding_backward_fn embedding_backward_cpu;
rl_rmsnorm_forward_fn rmsnorm_forward_cpu;
rl_rmsnorm_backward_fn rmsnorm_backward_cpu;
rl_rope_forward_fn rope_forward_cpu;
rl_rope_backward_fn rope_backward_cpu;
rl_swiglu_forward_fn swiglu_forward_cpu;
rl_swiglu_backward_fn swiglu_backward_cpu;
rl_residual_forward_fn residual_forward_cpu;
rl_attention_forward_fn attention_forward_cpu;
rl_attention_backward_fn attention_backward_cpu;
rl_kv_store_fn kv_store_cpu;
rl_attention_cached_forward_fn attention_cached_forward_cpu;
rl_gather_rows_fn gather_rows_cpu;
rl_convert_fn convert_cpu;
rl_logprob_forward_fn logprob_forward_cpu;
rl_logprob_backward_fn logprob_backward_cpu;
rl_logsoftmax_forward_fn logsoftmax_forward_cpu;
rl_lm_head_logprob_forward_fn lm_head_logprob_forward_cpu;
rl_lm_head_logprob_backward_fn lm_head_logprob_backward_cpu;
rl_rmsnorm_residual_forward_fn rmsnorm_residual_forward_cpu;
rl_adamw_update_fn adamw_update_cpu;
rl_adamw_update_master_fn adamw_update_master_cpu;
rl_sumsq_fn sumsq_cpu;
rl_scale_fn scale_cpu;
rl_fill_fn fill_cpu;
rl_sample_fn sample_cpu;

// The float32 inverse frequencies of HF's default RoPE: inv_freq[i] = 1 / theta^(2i/hd), i < hd/2,
// computed exactly as torch does in float32. Shared by every backend (host function).
void rl_rope_inv_freq(float *inv_freq, int hd, float theta);

// ------------------------------------------------------------------------------------------------
// Sampling helpers: pure host functions over one row of V logits (kernels/cpu/sampling_cpu.c).

// Writes the distribution to sample from into probs[V]: softmax(logits / temperature), then
// top-k, then top-p on the renormalised result, then min-p (HF's warper order), renormalised;
// zeros outside the kept set. idx is scratch for V ints. Returns the number of kept tokens (>= 1).
int rl_sampling_probs(float *probs, const float *logits, int V, const rl_sampling *s, int32_t *idx);

// The token drawn from probs[V] (sums to 1) with a uniform u in [0, 1): the first k whose
// cumulative probability exceeds u; zero-probability tokens are never returned.
int rl_sample_from_probs(const float *probs, int V, float u);

// Index of the first maximum of x[n].
int rl_argmax(const float *x, int n);

// out[n] = softmax(logits / temperature) (temperature > 0); out may alias logits.
void rl_softmax(float *out, const float *logits, int n, float temperature);

// log softmax(logits / temperature)[token]: the log-probability of a sampled token.
float rl_token_logprob(const float *logits, int V, int token, float temperature);

#endif
