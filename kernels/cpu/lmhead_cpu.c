// The optional fused ops on the CPU, composed of the CPU ops (the reference the fused GPU kernels
// are tested against). See kernels/kernels.h for the contracts.
//
// lm_head + log-prob + entropy over vocabulary chunks. For each chunk of `chunk` columns the
// logits [N, chunk] come from one sgemm into the workspace; each row's softmax statistics of the
// chunk are taken relative to the chunk's maximum exactly as logprob_forward_cpu takes them over
// a whole row (S = sum exp(z - max), Sz = sum exp(z - max) * (z - max)), then merged into the
// row's running statistics (online log-sum-exp): with running max m and a chunk max mc,
//     S  <- S * e^(m-m') + Sc * e^(mc-m'),  m' = max(m, mc),
//     Sz <- e^(m-m') (Sz + (m-m') S) + e^(mc-m') (Szc + (mc-m') Sc),
// so that at the end lse = m + log S and H = log S - Sz / S (the cancellation-free entropy of
// loss_cpu.c). The first chunk is taken as is, so with one chunk (chunk >= V) every number is
// bit for bit what matmul_forward_cpu + logprob_forward_cpu give.
//
// Workspace (rl_lm_head_work_floats): [N, chunk] logits, then the running m, S, Sz ([3, N]).
// logp holds each row's target logit until the last chunk is done.
#include "kernels/cpu/cpu_common.h"
#include "kernels/kernels.h"

#include <math.h>

// Statistics of one chunk of one row, relative to the chunk's maximum.
typedef struct chunk_stats {
    float mz; // max_k z_k, z = x * inv_temp
    float S;  // sum_k exp(z_k - mz)
    float Sz; // sum_k exp(z_k - mz) * (z_k - mz) (0 unless asked for)
} chunk_stats;

static chunk_stats stats_of(const float *x, int n, float it, int want_entropy) {
    chunk_stats st;
    rl_softmax_sums(x, n, it, want_entropy, &st.mz, &st.S, &st.Sz);
    return st;
}

// Merges chunk statistics c into the running (m, S, Sz) of a row (first: nothing merged yet).
static void merge_stats(float *m, float *S, float *Sz, chunk_stats c, int first) {
    if (first) {
        *m = c.mz, *S = c.S, *Sz = c.Sz;
        return;
    }
    if (c.mz <= *m) {
        float d = c.mz - *m, a = expf(d);
        *S += a * c.S;
        *Sz += a * (c.Sz + d * c.S);
    } else {
        float d = *m - c.mz, a = expf(d);
        *Sz = a * (*Sz + d * *S) + c.Sz;
        *S = a * *S + c.S;
        *m = c.mz;
    }
}

static int clamp_chunk(int chunk, int V) {
    return chunk <= 0 || chunk > V ? V : chunk;
}

void lm_head_logprob_forward_cpu(const rl_backend *be, float *logp, float *entropy, float *lse,
                                 const void *h, const void *wlm, const int32_t *targets, int N,
                                 int C, int V, float inv_temp, int chunk, float *work) {
    if (N <= 0 || V <= 0) return;
    chunk = clamp_chunk(chunk, V);
    const float *hf = h, *wf = wlm;
    float *run_m = work + (size_t)N * chunk, *run_S = run_m + N, *run_Sz = run_S + N;
    float it = inv_temp;
    int want_entropy = entropy != NULL;
    for (int v0 = 0; v0 < V; v0 += chunk) {
        int vc = V - v0 < chunk ? V - v0 : chunk;
        matmul_forward_cpu(be, work, hf, wf + (size_t)v0 * C, NULL, N, C, vc);
#pragma omp parallel for schedule(static) if (N > 1 && (size_t)N * vc >= RL_CPU_PAR_MIN)
        for (int i = 0; i < N; i++) {
            const float *x = work + (size_t)i * vc;
            merge_stats(run_m + i, run_S + i, run_Sz + i, stats_of(x, vc, it, want_entropy),
                        v0 == 0);
            int t = targets[i];
            if (t >= v0 && t < v0 + vc) logp[i] = x[t - v0]; // the target's logit
        }
    }
    for (int i = 0; i < N; i++) {
        float logS = logf(run_S[i]), l = run_m[i] + logS;
        logp[i] = targets[i] >= 0 ? logp[i] * it - l : 0.0f; // as logprob_forward_cpu
        if (entropy) entropy[i] = logS - run_Sz[i] / run_S[i];
        if (lse) lse[i] = l;
    }
}

void lm_head_logprob_backward_cpu(const rl_backend *be, void *dh, float *dwlm, const float *dlogp,
                                  const float *dentropy, const void *h, const void *wlm,
                                  const int32_t *targets, const float *lse, const float *entropy,
                                  int N, int C, int V, float inv_temp, int chunk, float *work) {
    if (N <= 0) return;
    if (V <= 0) { // no logits: dh = 0
        memset(dh, 0, (size_t)N * C * sizeof(float));
        return;
    }
    chunk = clamp_chunk(chunk, V);
    const float *hf = h, *wf = wlm;
    float it = inv_temp;
    for (int v0 = 0; v0 < V; v0 += chunk) {
        int vc = V - v0 < chunk ? V - v0 : chunk;
        const float *wc = wf + (size_t)v0 * C;
        matmul_forward_cpu(be, work, hf, wc, NULL, N, C, vc);
        // dlogits of the chunk in place, as logprob_backward_cpu computes them for a whole row
#pragma omp parallel for schedule(static) if (N > 1 && (size_t)N * vc >= RL_CPU_PAR_MIN)
        for (int i = 0; i < N; i++) {
            float *x = work + (size_t)i * vc;
            float dent = dentropy ? dentropy[i] : 0.0f;
            int t = targets[i];
            float dlp = t >= 0 ? dlogp[i] : 0.0f;
            float l = lse[i], H = dent != 0.0f ? entropy[i] : 0.0f;
            int tc = t >= v0 && t < v0 + vc ? t - v0 : -1;
            float x_t = tc >= 0 ? x[tc] : 0.0f;
#pragma omp simd
            for (int k = 0; k < vc; k++) {
                float lp = x[k] * it - l; // log p_k
                float p = rl_expf(lp);
                x[k] = -it * p * (dlp + dent * (lp + H));
            }
            if (tc >= 0) { // the one-hot term, from the saved target logit
                float lp = x_t * it - l;
                float p = rl_expf(lp);
                x[tc] = it * (dlp * (1.0f - p) - dent * p * (lp + H));
            }
        }
        gemm_cpu(be, dh, RL_F32, work, wc, N, C, vc, 0, 0, 1.0f, v0 == 0 ? 0.0f : 1.0f);
        gemm_cpu(be, dwlm + (size_t)v0 * C, RL_F32, work, hf, vc, C, N, 1, 0, 1.0f, 1.0f);
    }
}

void rmsnorm_residual_forward_cpu(const rl_backend *be, void *res_out, void *out, float *rstd,
                                  const void *a, const void *b, const void *weight, int N, int C,
                                  float eps) {
    if (N <= 0 || C <= 0) return;
    residual_forward_cpu(be, res_out, a, b, (size_t)N * C);
    rmsnorm_forward_cpu(be, out, rstd, res_out, weight, N, C, eps);
}
