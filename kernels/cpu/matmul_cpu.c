// Matrix products on the CPU: OpenBLAS sgemm (threaded by OpenBLAS itself over the shared
// OpenMP pool; sgemv for a single row) plus the bias add / bias gradient around it. The CPU's act
// is float32: every act pointer is a float *. See kernels/kernels.h.
#include "kernels/cpu/cpu_common.h"
#include "kernels/kernels.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sgemm(float *c, const float *a, const float *b, int M, int N, int K, int trans_a,
                  int trans_b, float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { // sgemm rejects a zero leading dimension; the product is empty
        for (size_t i = 0; i < (size_t)M * N; i++) c[i] = beta == 0.0f ? 0.0f : beta * c[i];
        return;
    }
    int lda = trans_a ? M : K;
    int ldb = trans_b ? K : N;
    if (M == 1) { // one row (batch-1 decode): OpenBLAS's sgemv is 2-5x faster than a 1-row sgemm
        // a is one row either way (K x 1 with lda 1 is the same K contiguous floats); c = op(b)^T a
        if (trans_b) // b is [N, K]: c[n] = sum_k b[n, k] a[k]
            cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, b, ldb, a, 1, beta, c, 1);
        else // b is [K, N]: c[n] = sum_k b[k, n] a[k]
            cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, b, ldb, a, 1, beta, c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, a, lda, b, ldb, beta, c, N);
}

void gemm_cpu(const rl_backend *be, void *c, rl_dtype c_dt, const void *a, const void *b, int M,
              int N, int K, int trans_a, int trans_b, float alpha, float beta) {
    if (c_dt != RL_F32) { // the CPU's act is float32, so c can only be float32 (kernels.h)
        fprintf(stderr, "rlpipe: gemm_cpu: c must be float32 on the CPU backend (got %s)\n",
                rl_dtype_name(c_dt));
        exit(1);
    }
    sgemm(c, a, b, M, N, K, trans_a, trans_b, alpha, beta);
}

void matmul_forward_cpu(const rl_backend *be, void *out_, const void *inp_, const void *weight_,
                        const void *bias_, int N, int C, int OC) {
    float *out = out_;
    const float *inp = inp_;
    const float *weight = weight_;
    const float *bias = bias_;
    if (N <= 0 || OC <= 0) return;
    float beta = 0.0f;
    if (bias) { // start every row from the bias and let sgemm accumulate on top (beta = 1)
#pragma omp parallel for if ((size_t)N * OC >= RL_CPU_PAR_MIN)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    sgemm(out, inp, weight, N, OC, C, 0, 1, 1.0f, beta);
}

// dbias[o] += sum_n dout[n, o], in row order for every column (deterministic): each thread owns a
// block of columns and walks all rows.
static void bias_backward(float *dbias, const float *dout, int N, int OC) {
    enum { BLOCK = 64 };
    int nblocks = (OC + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= RL_CPU_PAR_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int o0 = blk * BLOCK, o1 = o0 + BLOCK < OC ? o0 + BLOCK : OC;
        float acc[BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OC;
            for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
        }
        for (int o = o0; o < o1; o++) dbias[o] += acc[o - o0];
    }
}

void matmul_backward_cpu(const rl_backend *be, void *dinp_, float *dweight, float *dbias,
                         const void *dout_, const void *inp_, const void *weight_, int N, int C,
                         int OC) {
    float *dinp = dinp_;
    const float *dout = dout_;
    const float *inp = inp_;
    const float *weight = weight_;
    if (N <= 0) return;
    if (dinp) sgemm(dinp, dout, weight, N, C, OC, 0, 0, 1.0f, 0.0f);
    if (dweight) sgemm(dweight, dout, inp, OC, C, N, 1, 0, 1.0f, 1.0f);
    if (dbias) bias_backward(dbias, dout, N, OC);
}
