// AdamW and the flat-vector helpers (sum of squares, scale, fill) on the CPU.
// See kernels/kernels.h for the contracts.
#include "kernels/cpu/cpu_common.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

// One AdamW step of element i, shared by both optimizer ops so they update bit for bit alike.
static inline float adamw_step(float p, float grad, float *m, float *v, float lr, float beta1,
                               float beta2, float eps, float weight_decay, float grad_scale,
                               float bc1, float bc2) {
    float g = grad * grad_scale;
    float mi = beta1 * *m + (1.0f - beta1) * g;
    float vi = beta2 * *v + (1.0f - beta2) * g * g;
    *m = mi;
    *v = vi;
    float mhat = mi / bc1, vhat = vi / bc2;
    return p - lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
}

void adamw_update_cpu(const rl_backend *be, float *param, const float *grad, float *m, float *v,
                      size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                      float grad_scale, int step) {
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
#pragma omp parallel for simd schedule(static) if (n >= RL_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        param[i] = adamw_step(param[i], grad[i], m + i, v + i, lr, beta1, beta2, eps, weight_decay,
                              grad_scale, bc1, bc2);
}

// The CPU's act is float32, so the working copy is an exact copy of the master. (The bf16
// stochastic rounding of a CUDA bf16 backend is rl_bf16_stochastic(master[i], seed, i), which
// tests/test_cuda.c evaluates on the host to check the GPU bit for bit.)
void adamw_update_master_cpu(const rl_backend *be, float *master, void *param_, const float *grad,
                             float *m, float *v, size_t n, float lr, float beta1, float beta2,
                             float eps, float weight_decay, float grad_scale, int step,
                             uint64_t seed) {
    float *param = param_;
    adamw_update_cpu(be, master, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale,
                     step);
    if (param != master) memcpy(param, master, n * sizeof(float));
}

double sumsq_cpu(const rl_backend *be, const float *x, size_t n) {
    // A fixed number of chunks whose boundaries depend only on n, each summed in double, then
    // the partials added in order: the same bits whatever the thread count.
    enum { CHUNKS = 256 };
    double part[CHUNKS];
    size_t len = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static) if (n >= RL_CPU_PAR_MIN)
    for (int c = 0; c < CHUNKS; c++) {
        size_t i0 = (size_t)c * len, i1 = i0 + len < n ? i0 + len : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * (double)x[i];
        part[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < CHUNKS; c++) total += part[c];
    return total;
}

void scale_cpu(const rl_backend *be, float *x, float s, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= RL_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void fill_cpu(const rl_backend *be, float *x, float value, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= RL_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = value;
}
