/*
 * cpu_common: small inline helpers shared by the CPU kernels in kernels/cpu/: a vectorisable
 * exp, a dot product, and the size below which a loop is not worth an OpenMP team.
 *
 * Why a hand-written exp: the build uses -O2 without -ffast-math, so GCC never vectorises calls
 * to expf; attention, SwiGLU and the log-softmax spend most of their non-matmul time in exp.
 * rl_expf below is the Cephes polynomial (max error ~1.3 ulp, checked against double exp in
 * tests/test_kernels.c) written so that GCC vectorises it inside `#pragma omp simd` loops
 * (no libm calls: rounding by the 1.5*2^23 trick instead of floorf, bits via a union).
 *
 * Owns: nothing.
 */
#ifndef RL_CPU_COMMON_H
#define RL_CPU_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// Loops over fewer elements than this run on the calling thread (a parallel region costs a few
// microseconds, more than small element-wise work).
#define RL_CPU_PAR_MIN 16384

// exp(x) in float: ~1.3 ulp for x in [-87.3, 88]; 0 below -87.33 (exp underflows there anyway);
// clamped to exp(88) above 88 (never reached by softmax arguments, which are <= 0); NaN stays NaN
// (a NaN argument is clamped first, so the integer conversion below is always defined).
static inline float rl_expf(float x) {
    const float lo = -87.33654f, hi = 88.0f;
    float xc = x > lo ? (x < hi ? x : hi) : lo;
    // n = round(x / ln 2): adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f; // Cody-Waite: ln 2 split in a short high part ...
    r = r - n * -2.12194440e-4f;     // ... and the rest
    float r2 = r * r;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    float y = p * r2 + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; // 2^n
    float scale = ((union {
                      int32_t i;
                      float f;
                  }){.i = bits})
                      .f;
    return x != x ? x : (x < lo ? 0.0f : y * scale);
}

static inline float rl_dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// y += a * x
static inline void rl_axpy(float *y, float a, const float *x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

// 16 floats as one value (GCC/Clang vector extension; one AVX-512 register with -march=native,
// split by the compiler otherwise). Used where a loop must keep its accumulators in registers,
// which plain arrays do not. Loads and stores go through memcpy (unaligned, no aliasing issue);
// vectors are never passed to or returned from functions (that would change the ABI between
// builds with and without AVX-512).
typedef float rl_v16 __attribute__((vector_size(64)));

// y += a0*x0 + a1*x1 + a2*x2 + a3*x3: four updates for one load and store of y.
static inline void rl_axpy4(float *y, const float a[4], const float *x0, const float *x1,
                            const float *x2, const float *x3, int n) {
    float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a0 * x0[i] + a1 * x1[i] + a2 * x2[i] + a3 * x3[i];
}

// The unnormalised softmax sums of x[n] * it (it > 0), relative to their maximum mz:
// S = sum_k exp(z_k - mz) and, when want_entropy, Sz = sum_k exp(z_k - mz) * (z_k - mz) (else 0).
// One loop order for every caller, so the log-probs of loss_cpu.c and one vocabulary chunk of
// lmhead_cpu.c give the same bits.
static inline void rl_softmax_sums(const float *x, int n, float it, int want_entropy, float *mz_out,
                                   float *S_out, float *Sz_out) {
    float mx = -INFINITY;
    for (int k = 0; k < n; k++) mx = x[k] > mx ? x[k] : mx;
    float mz = mx * it; // it > 0, so the max of z is at the max of x
    float S = 0.0f, Sz = 0.0f;
    if (want_entropy) {
#pragma omp simd reduction(+ : S, Sz)
        for (int k = 0; k < n; k++) {
            float d = x[k] * it - mz;
            float e = rl_expf(d);
            S += e;
            Sz += e * d;
        }
    } else {
#pragma omp simd reduction(+ : S)
        for (int k = 0; k < n; k++) S += rl_expf(x[k] * it - mz);
    }
    *mz_out = mz, *S_out = S, *Sz_out = Sz;
}

#endif
