/*
 * model_impl: pieces of policy/model.c shared with policy/model_decode.c. Not part of the API:
 * include policy/model.h instead.
 *
 * Owns: nothing.
 */
#ifndef RL_MODEL_IMPL_H
#define RL_MODEL_IMPL_H

#include "policy/model.h"

#include <stdint.h>

// One tensor of a memory block, llm.c's TensorSpec: where its pointer goes, its element count
// and element type, and a name for messages and memory reports.
typedef struct rl_tensor_spec {
    void **ptr;
    size_t n;
    rl_dtype dt;
    const char *name;
} rl_tensor_spec;

// Bytes of one block holding the n tensors of specs, each starting on a 64-byte boundary.
size_t rl_model__specs_bytes(const rl_tensor_spec *specs, int n);

// Allocates that block from the backend and points every *specs[i].ptr into it (NULL for a
// tensor of 0 elements). Returns the block (free it with the backend's mem_free).
void *rl_model__alloc_specs(const rl_backend *be, const rl_tensor_spec *specs, int n);

// Element i of an array of dtype dt at base: pointer arithmetic in elements, whatever the type.
static inline void *rl_model__at(const void *base, rl_dtype dt, size_t i) {
    return base ? (char *)(uintptr_t)base + i * rl_dtype_size(dt) : NULL;
}

// n elements of dtype dt (float32 or bfloat16) in backend memory to / from a host float32
// array: bfloat16 widens exactly on the way down and rounds to nearest even on the way up.
void rl_model__download_f32(const rl_backend *be, rl_dtype dt, float *host, const void *src,
                            size_t n);
void rl_model__upload_f32(const rl_backend *be, rl_dtype dt, void *dst, const float *host,
                          size_t n);

// Frees the decode step's CUDA graphs (model_decode.c); rl_model_free calls it.
void rl_model__decode_graphs_free(rl_model *m);

// Timing of one call into a bucket of m->timing (no cost when timing is disabled).
double rl_model__tic(const rl_model *m);
void rl_model__toc(rl_model *m, double *bucket, double t0);
#define RL_TIMED(m, bucket, call)                                                                  \
    do {                                                                                           \
        double t0_ = rl_model__tic(m);                                                             \
        call;                                                                                      \
        rl_model__toc((m), &(m)->timing.bucket, t0_);                                              \
    } while (0)

// Matrix products, timed into timing.matmul.
void rl_model__matmul(rl_model *m, void *out, const void *inp, const void *w, const void *b, int R,
                      int C, int OC);

// The lm_head: logits [R, V] float32 (whatever the act type: log-probs and sampling need float32)
// = inp [R, C] (act) @ lm_head^T, timed into timing.matmul.
void rl_model__lm_head(rl_model *m, float *logits, const void *inp, int R);

// Layer l, attention input: ln = RMSNorm(x) (rstd may be NULL), qkv = ln Wqkv^T + b, RoPE on q, k
// at positions pos. x [R, C], ln [R, C], qkv [R, QKV]
// (act type).
void rl_model__attn_in(rl_model *m, int l, void *qkv, void *ln, float *rstd, const void *x,
                       const int32_t *pos, int R);

// Layer l, attention output and the MLP's norm: res_out = res_in + att Wo^T (res_out may alias
// res_in), then ln = RMSNorm(res_out) with post_attention_layernorm (rstd [R] may be NULL), in
// one pass where the backend has rmsnorm_residual_forward. proj [R, C] is scratch. act buffers.
void rl_model__attn_out(rl_model *m, int l, void *res_out, const void *res_in, const void *att,
                        void *proj, void *ln, float *rstd, int R);

// Layer l, MLP block: res_out = res_in + down(silu(gate(ln)) * up(ln)), ln = RMSNorm(res_in) as
// rl_model__attn_out left it. gu [R,2FF] (kept), mlp [R,FF], proj [R,C] scratch. act buffers.
void rl_model__mlp(rl_model *m, int l, void *res_out, const void *res_in, const void *ln, void *gu,
                   void *mlp, void *proj, int R);

#endif
