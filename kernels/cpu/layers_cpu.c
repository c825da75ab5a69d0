// Row-wise layers on the CPU: embedding, RMSNorm, RoPE, SwiGLU, residual add, row gather, dtype
// conversion. The CPU's act is float32: every act pointer is a float *.
// OpenMP over rows; gradients of shared weights are reduced column-block by column-block so the
// summation order never depends on the thread count. See kernels/kernels.h for the contracts.
#include "kernels/bf16.h"
#include "kernels/cpu/cpu_common.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

enum { COL_BLOCK = 64 }; // columns per task in the deterministic column reductions

// ------------------------------------------------------------------------------------------------
// Embedding

void embedding_forward_cpu(const rl_backend *be, void *out_, const int32_t *tokens,
                           const void *wte_, int N, int C) {
    float *out = out_;
    const float *wte = wte_;
#pragma omp parallel for if ((size_t)N * C >= RL_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * C;
        if (tokens[n] < 0)
            memset(o, 0, (size_t)C * sizeof(float));
        else
            memcpy(o, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
    }
}

void embedding_backward_cpu(const rl_backend *be, float *dwte, const void *dout_,
                            const int32_t *tokens, int N, int C) {
    const float *dout = dout_;
    // Two positions may share a token, so threads split the columns, not the positions.
    int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= RL_CPU_PAR_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            if (tokens[n] < 0) continue;
            float *d = dwte + (size_t)tokens[n] * C;
            const float *g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}

// ------------------------------------------------------------------------------------------------
// RMSNorm

void rmsnorm_forward_cpu(const rl_backend *be, void *out_, float *rstd, const void *inp_,
                         const void *weight_, int N, int C, float eps) {
    float *out = out_;
    const float *inp = inp_;
    const float *weight = weight_;
#pragma omp parallel for if ((size_t)N * C >= RL_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float ss = rl_dot(x, x, C);
        float r = 1.0f / sqrtf(ss / (float)C + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = weight[c] * (x[c] * r);
        if (rstd) rstd[n] = r;
    }
}

void rmsnorm_backward_cpu(const rl_backend *be, void *dinp_, float *dweight, const void *dout_,
                          const void *inp_, const void *weight_, const float *rstd, int N, int C) {
    float *dinp = dinp_;
    const float *dout = dout_;
    const float *inp = inp_;
    const float *weight = weight_;
    // dx = r * (w*dy - xhat * mean(w*dy*xhat)),  xhat = x * r
    if (dinp) {
#pragma omp parallel for if ((size_t)N * C >= RL_CPU_PAR_MIN)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float r = rstd[n];
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int c = 0; c < C; c++) dot += weight[c] * dy[c] * x[c];
            float k = dot * r * r / (float)C; // mean(w*dy*xhat) / r ... times r again below
#pragma omp simd
            for (int c = 0; c < C; c++) dx[c] += r * (weight[c] * dy[c] - x[c] * k);
        }
    }
    if (dweight) { // dw[c] += sum_n dy[n,c] * xhat[n,c]
        int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= RL_CPU_PAR_MIN)
        for (int blk = 0; blk < nblocks; blk++) {
            int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
            float acc[COL_BLOCK] = {0};
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                float r = rstd[n];
                for (int c = c0; c < c1; c++) acc[c - c0] += dy[c] * (x[c] * r);
            }
            for (int c = c0; c < c1; c++) dweight[c] += acc[c - c0];
        }
    }
}

// ------------------------------------------------------------------------------------------------
// RoPE

// Rotates (sign = +1) or applies the transposed rotation (sign = -1) to every head of N rows.
static void rope_apply(float *x, const int32_t *pos, int N, int n_heads, int hd, int row_stride,
                       float theta, float sign) {
    int half = hd / 2;
    float inv_freq[RL_MAX_HEAD_DIM / 2];
    rl_rope_inv_freq(inv_freq, hd, theta);
#pragma omp parallel for if ((size_t)N * n_heads * hd >= RL_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        float cs[RL_MAX_HEAD_DIM / 2], sn[RL_MAX_HEAD_DIM / 2];
        float p = (float)pos[n];
        for (int i = 0; i < half; i++) {
            float f = p * inv_freq[i];
            cs[i] = cosf(f);
            sn[i] = sign * sinf(f);
        }
        for (int h = 0; h < n_heads; h++) {
            float *x1 = x + (size_t)n * row_stride + (size_t)h * hd, *x2 = x1 + half;
            // forward: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin); backward flips sin's sign
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float a = x1[i], b = x2[i];
                x1[i] = a * cs[i] - b * sn[i];
                x2[i] = b * cs[i] + a * sn[i];
            }
        }
    }
}

void rope_forward_cpu(const rl_backend *be, void *x_, const int32_t *pos, int N, int n_heads,
                      int hd, int row_stride, float theta) {
    float *x = x_;
    rope_apply(x, pos, N, n_heads, hd, row_stride, theta, 1.0f);
}

void rope_backward_cpu(const rl_backend *be, void *dx_, const int32_t *pos, int N, int n_heads,
                       int hd, int row_stride, float theta) {
    float *dx = dx_;
    rope_apply(dx, pos, N, n_heads, hd, row_stride, theta, -1.0f);
}

// ------------------------------------------------------------------------------------------------
// SwiGLU: out = silu(g) * u, silu(g) = g * sigmoid(g)

void swiglu_forward_cpu(const rl_backend *be, void *out_, const void *gu_, int N, int FF) {
    float *out = out_;
    const float *gu = gu_;
#pragma omp parallel for if ((size_t)N * FF >= RL_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = gu + (size_t)n * 2 * FF, *u = g + FF;
        float *o = out + (size_t)n * FF;
#pragma omp simd
        for (int i = 0; i < FF; i++) o[i] = g[i] / (1.0f + rl_expf(-g[i])) * u[i];
    }
}

void swiglu_backward_cpu(const rl_backend *be, void *dgu_, const void *dout_, const void *gu_,
                         int N, int FF) {
    float *dgu = dgu_;
    const float *dout = dout_;
    const float *gu = gu_;
#pragma omp parallel for if ((size_t)N * FF >= RL_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = gu + (size_t)n * 2 * FF, *u = g + FF, *d = dout + (size_t)n * FF;
        float *dg = dgu + (size_t)n * 2 * FF, *du = dg + FF;
#pragma omp simd
        for (int i = 0; i < FF; i++) {
            float s = 1.0f / (1.0f + rl_expf(-g[i]));
            float silu = g[i] * s;
            dg[i] = d[i] * u[i] * (s + silu * (1.0f - s)); // d silu/dg = s (1 + g (1 - s))
            du[i] = d[i] * silu;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Residual add, row gather

void residual_forward_cpu(const rl_backend *be, void *out_, const void *a_, const void *b_,
                          size_t n) {
    float *out = out_;
    const float *a = a_;
    const float *b = b_;
    const size_t chunk = 4096;
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (n >= RL_CPU_PAR_MIN)
    for (size_t k = 0; k < nchunks; k++) {
        size_t i0 = k * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
#pragma omp simd
        for (size_t i = i0; i < i1; i++) out[i] = a[i] + b[i];
    }
}

void gather_rows_cpu(const rl_backend *be, void *out_, const void *inp_, const int32_t *rows, int n,
                     int C) {
    float *out = out_;
    const float *inp = inp_;
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * C, inp + (size_t)rows[i] * C, (size_t)C * sizeof(float));
}

void convert_cpu(const rl_backend *be, void *dst, rl_dtype dst_dt, const void *src, rl_dtype src_dt,
                 size_t n) {
    if (dst_dt == src_dt) {
        if (dst != src) memmove(dst, src, n * rl_dtype_size(dst_dt));
    } else if (dst_dt == RL_BF16) { // float32 -> bfloat16, round to nearest even
        uint16_t *d = dst;
        const float *s = src;
#pragma omp parallel for simd schedule(static) if (n >= RL_CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++) d[i] = rl_bf16_from_f32(s[i]);
    } else { // bfloat16 -> float32, exact
        float *d = dst;
        const uint16_t *s = src;
#pragma omp parallel for simd schedule(static) if (n >= RL_CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++) d[i] = rl_bf16_to_f32(s[i]);
    }
}
