// AdamW and the flat-vector helpers (sum of squares, scale, fill) on the CPU.
// See kernels/kernels.h for the contracts.
#include "kernels/cpu/cpu_common.h"
#include "kernels/kernels.h"

#include <math.h>

void adamw_update_cpu(const rl_backend *be, float *param, const float *grad, float *m, float *v,
                      size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                      float grad_scale, int step) {
    float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
#pragma omp parallel for simd schedule(static) if (n >= RL_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        param[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * param[i]);
    }
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
