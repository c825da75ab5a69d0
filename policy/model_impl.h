/*
 * model_impl: pieces of policy/model.c shared with policy/model_decode.c. Not part of the API:
 * include policy/model.h instead.
 *
 * Owns: nothing.
 */
#ifndef RL_MODEL_IMPL_H
#define RL_MODEL_IMPL_H

#include "policy/model.h"

// One backend block holding n views of sizes[i] floats, each on a 16-float boundary; *views[i]
// receives view i (NULL for size 0). Returns the block (free it with the backend's mem_free).
float *rl_model__alloc_views(const rl_backend *be, float **views[], const size_t sizes[], int n);

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
void rl_model__matmul(rl_model *m, float *out, const float *inp, const float *w, const float *b,
                      int R, int C, int OC);

// Layer l, attention input: ln = RMSNorm(x) (rstd may be NULL), qkv = ln Wqkv^T + b, RoPE on q, k
// at positions pos. x [R, C], ln [R, C], qkv [R, QKV].
void rl_model__attn_in(rl_model *m, int l, float *qkv, float *ln, float *rstd, const float *x,
                       const int32_t *pos, int R);

// Layer l, attention output and the MLP's norm: res_out = res_in + att Wo^T (res_out may alias
// res_in), then ln = RMSNorm(res_out) with post_attention_layernorm (rstd [R] may be NULL), in
// one pass where the backend has rmsnorm_residual_forward. proj [R, C] is scratch.
void rl_model__attn_out(rl_model *m, int l, float *res_out, const float *res_in, const float *att,
                        float *proj, float *ln, float *rstd, int R);

// Layer l, MLP block: res_out = res_in + down(silu(gate(ln)) * up(ln)), ln = RMSNorm(res_in) as
// rl_model__attn_out left it. gu [R,2FF] (kept), mlp [R,FF], proj [R,C] scratch.
void rl_model__mlp(rl_model *m, int l, float *res_out, const float *res_in, const float *ln,
                   float *gu, float *mlp, float *proj, int R);

#endif
