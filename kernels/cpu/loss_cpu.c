// Log-probabilities, entropies and their gradient on the CPU, one row of V logits per task.
// Softmax statistics are taken relative to the row maximum, and the entropy is computed as
// log S - E[z - max] (S = sum exp(z - max)), which avoids the cancellation of lse - E[z] when the
// logits are large and the distribution is peaked. See kernels/kernels.h for the contracts.
#include "kernels/cpu/cpu_common.h"
#include "kernels/kernels.h"

#include <math.h>

typedef struct row_stats {
    float max; // max_k z_k, z = logits * inv_temp
    float lse; // log sum_k exp(z_k)
    float H;   // entropy of softmax(z)
} row_stats;

static row_stats softmax_stats(const float *x, int V, float it, int want_entropy) {
    float mz, S, Sz;
    rl_softmax_sums(x, V, it, want_entropy, &mz, &S, &Sz);
    float logS = logf(S);
    row_stats st = {mz, mz + logS, want_entropy ? logS - Sz / S : 0.0f};
    return st;
}

static int rows_parallel(int n, int V) {
    return n > 1 && (size_t)n * V >= RL_CPU_PAR_MIN;
}

void logprob_forward_cpu(const rl_backend *be, float *logp, float *entropy, const float *logits,
                         const int32_t *targets, int n, int V, float inv_temp) {
#pragma omp parallel for schedule(static) if (rows_parallel(n, V))
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * V;
        row_stats st = softmax_stats(x, V, inv_temp, entropy != NULL);
        int t = targets[i];
        logp[i] = t >= 0 ? x[t] * inv_temp - st.lse : 0.0f;
        if (entropy) entropy[i] = st.H;
    }
}

void logprob_backward_cpu(const rl_backend *be, float *dlogits, const float *logits,
                          const int32_t *targets, const float *dlogp, const float *dentropy, int n,
                          int V, float inv_temp) {
#pragma omp parallel for schedule(static) if (rows_parallel(n, V))
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * V;
        float *dx =
            dlogits + (size_t)i * V; // may be x itself: x[k] is read before dx[k] is written
        float dent = dentropy ? dentropy[i] : 0.0f;
        int t = targets[i];
        float dlp = t >= 0 ? dlogp[i] : 0.0f;
        row_stats st = softmax_stats(x, V, inv_temp, dent != 0.0f);
        float x_t = t >= 0 ? x[t] : 0.0f;
        float lse = st.lse, H = st.H;
#pragma omp simd
        for (int k = 0; k < V; k++) {
            float lp = x[k] * inv_temp - lse; // log p_k
            float p = rl_expf(lp);
            dx[k] = -inv_temp * p * (dlp + dent * (lp + H));
        }
        if (t >= 0) { // the one-hot term, recomputed from the saved target logit
            float lp = x_t * inv_temp - lse;
            float p = rl_expf(lp);
            dx[t] = inv_temp * (dlp * (1.0f - p) - dent * p * (lp + H));
        }
    }
}

void logsoftmax_forward_cpu(const rl_backend *be, float *out, const float *logits, int n, int V,
                            float inv_temp) {
#pragma omp parallel for schedule(static) if (rows_parallel(n, V))
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * V;
        float *o = out + (size_t)i * V;
        row_stats st = softmax_stats(x, V, inv_temp, 0);
#pragma omp simd
        for (int k = 0; k < V; k++) o[k] = x[k] * inv_temp - st.lse;
    }
}
