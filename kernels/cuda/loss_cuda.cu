// Log-probabilities, entropies and their gradient on the GPU: one block per row of V logits,
// block-wide max and sums. As on the CPU, softmax statistics are taken relative to the row
// maximum and the entropy is log S - E[z - max] (S = sum exp(z - max)), which avoids the
// cancellation of lse - E[z] on peaked rows. See kernels/kernels.h for the contracts.
#include "kernels/cuda/cuda_common.h"

enum { LOSS_THREADS = 256 };

typedef struct row_stats {
    float lse; // log sum_k exp(z_k), z = logits * inv_temp
    float H;   // entropy of softmax(z) (0 unless asked for)
} row_stats;

// Statistics of row x[V] (every thread of the block calls it; the result reaches all). Every
// read of x happens before the function returns to any thread (block barriers inside), so the
// caller may then overwrite x in place.
__device__ static row_stats softmax_stats(const float *x, int V, float it, int want_entropy,
                                          float *scratch) {
    float mz, S, Sz;
    block_softmax_sums(x, V, it, want_entropy, scratch, &mz, &S, &Sz);
    float logS = logf(S);
    row_stats st = {mz + logS, want_entropy ? logS - Sz / S : 0.0f};
    return st;
}

__global__ static void logprob_forward_kernel(float *logp, float *entropy, const float *logits,
                                              const int32_t *targets, int V, float it) {
    __shared__ float scratch[32];
    size_t i = blockIdx.x;
    const float *x = logits + i * V;
    row_stats st = softmax_stats(x, V, it, entropy != NULL, scratch);
    if (threadIdx.x == 0) {
        int t = targets[i];
        logp[i] = t >= 0 ? x[t] * it - st.lse : 0.0f;
        if (entropy) entropy[i] = st.H;
    }
}

void logprob_forward_cuda(const rl_backend *be, float *logp, float *entropy, const float *logits,
                          const int32_t *targets, int n, int V, float inv_temp) {
    if (n <= 0 || V <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    logprob_forward_kernel<<<(unsigned)n, LOSS_THREADS, 0, ctx->stream>>>(logp, entropy, logits,
                                                                          targets, V, inv_temp);
    cudaLaunchCheck(ctx);
}

// d/dlogits_k = inv_temp * ( dlogp*(onehot_k - p_k) - dentropy*p_k*(log p_k + H) ). dlogits may
// be logits itself: each thread reads x[k] and then writes dx[k], after softmax_stats is done
// with the row; the target entry is computed by the thread that owns it, from its own read.
__global__ static void logprob_backward_kernel(float *dlogits, const float *logits,
                                               const int32_t *targets, const float *dlogp,
                                               const float *dentropy, int V, float it) {
    __shared__ float scratch[32];
    size_t i = blockIdx.x;
    const float *x = logits + i * V;
    float *dx = dlogits + i * V;
    int t = targets[i];
    float dlp = t >= 0 ? dlogp[i] : 0.0f;
    float dent = dentropy ? dentropy[i] : 0.0f;
    row_stats st = softmax_stats(x, V, it, dent != 0.0f, scratch);
    for (int k = threadIdx.x; k < V; k += blockDim.x) {
        float lp = x[k] * it - st.lse; // log p_k
        float p = expf(lp);
        dx[k] = k == t ? it * (dlp * (1.0f - p) - dent * p * (lp + st.H))
                       : -it * p * (dlp + dent * (lp + st.H));
    }
}

void logprob_backward_cuda(const rl_backend *be, float *dlogits, const float *logits,
                           const int32_t *targets, const float *dlogp, const float *dentropy, int n,
                           int V, float inv_temp) {
    if (n <= 0 || V <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    logprob_backward_kernel<<<(unsigned)n, LOSS_THREADS, 0, ctx->stream>>>(
        dlogits, logits, targets, dlogp, dentropy, V, inv_temp);
    cudaLaunchCheck(ctx);
}

__global__ static void logsoftmax_kernel(float *out, const float *logits, int V, float it) {
    __shared__ float scratch[32];
    size_t i = blockIdx.x;
    const float *x = logits + i * V;
    float *o = out + i * V;
    row_stats st = softmax_stats(x, V, it, 0, scratch);
    for (int k = threadIdx.x; k < V; k += blockDim.x) o[k] = x[k] * it - st.lse;
}

void logsoftmax_forward_cuda(const rl_backend *be, float *out, const float *logits, int n, int V,
                             float inv_temp) {
    if (n <= 0 || V <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    logsoftmax_kernel<<<(unsigned)n, LOSS_THREADS, 0, ctx->stream>>>(out, logits, V, inv_temp);
    cudaLaunchCheck(ctx);
}
