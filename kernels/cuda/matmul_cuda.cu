// Matrix products on the GPU. float32 backend: cuBLAS cublasSgemm (TF32 tensor ops only when the
// backend was opened with tf32) plus a bias-row kernel before it. bfloat16 backend: cuBLASLt with
// bf16 operands, float32 accumulation (CUBLAS_COMPUTE_32F) and a bf16 or float32 result, the bias
// added in the epilogue. The bias gradient is a deterministic column reduction in both. See
// kernels/kernels.h for the contracts.
//
// cuBLAS is column-major, our arrays row-major. A row-major [R, C] array is the column-major
// [C, R] array with the same bytes, its transpose. So C = op(A) op(B) (row-major) is computed as
// C^T = op(B)^T op(A)^T (column-major): operands swapped, dimensions M and N swapped, each
// operand's transpose flag and leading dimension unchanged (llm.c does the same).
#include "kernels/cuda/cuda_common.h"

#include <stdio.h>
#include <stdlib.h>

// c[i] = beta * c[i] (beta == 0: c[i] = 0, also where c held NaN), for the empty product K = 0.
template <class T> __global__ static void beta_scale_kernel(T *c, size_t n, float beta) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        c[i] = from_float<T>(beta == 0.0f ? 0.0f : beta * to_float(c[i]));
}

// A programming error in a gemm call (kernels.h lists the valid c types): stop with a message.
static void gemm_type_error(const rl_backend *be, rl_dtype c_dt) {
    fprintf(stderr, "rlpipe: gemm_cuda: c of type %s on a %s backend (c must be float32 or act)\n",
            rl_dtype_name(c_dt), rl_dtype_name(be->act));
    exit(1);
}

// D = alpha * op(A) op(B) + beta * C (+ bias[row] of D) in cuBLASLt's column-major terms, with
// bf16 A and B, float32 compute, C = D of type c_type; bias (bf16, length m) may be NULL. The
// descriptors are created per call (a few microseconds, small next to a product worth a GPU).
// When cuBLASLt offers no algorithm for the shape (it has one for every shape we have seen),
// cublasGemmEx does the product and a separate kernel the bias.
static int lt_matmul(rl_cuda_ctx *ctx, void *d, cudaDataType_t c_type, const bf16 *A, int a_rows,
                     int a_cols, int lda, cublasOperation_t opA, const bf16 *B, int b_rows,
                     int b_cols, int ldb, cublasOperation_t opB, int m, int n, float alpha,
                     float beta, const bf16 *bias) {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasCheck(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA));
    cublasCheck(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB));
    if (bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bias_type = CUDA_R_16BF;
        cublasCheck(
            cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                   sizeof bias));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                   &bias_type, sizeof bias_type));
    }
    cublasCheck(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, a_rows, a_cols, lda));
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, b_rows, b_cols, ldb));
    cublasCheck(cublasLtMatrixLayoutCreate(&lc, c_type, m, n, m));
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = ctx->workspace_bytes;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(ctx->lt, desc, la, lb, lc, lc, pref, 1, &heur, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0)
        cublasCheck(cublasLtMatmul(ctx->lt, desc, &alpha, A, la, B, lb, &beta, d, lc, d, lc,
                                   &heur.algo, ctx->workspace, ctx->workspace_bytes, ctx->stream));
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    cublasCheck(cublasLtMatrixLayoutDestroy(lc));
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
    if (ctx->sync_check) cudaLaunchCheck(ctx);
    return st == CUBLAS_STATUS_SUCCESS && found > 0;
}

// out[n, o] = bias[o] for every row: the product then accumulates on top (beta = 1).
template <class T>
__global__ static void bias_rows_kernel(T *out, const T *bias, size_t rows, int OC) {
    size_t total = rows * (size_t)OC;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias[i % (size_t)OC];
}

// The row-major product of kernels.h's gemm, with bf16 a and b, c of type c_dt, plus bias (bf16,
// [N], added to every row; NULL: none). Through cuBLASLt (the bias in its epilogue), else
// cublasGemmEx with the bias written first and accumulated onto (beta = 1).
static void gemm_bf16(const rl_backend *be, void *c, rl_dtype c_dt, const bf16 *a, const bf16 *b,
                      const bf16 *bias, int M, int N, int K, int trans_a, int trans_b, float alpha,
                      float beta) {
    rl_cuda_ctx *ctx = cu_ctx(be);
    int lda = trans_a ? M : K, ldb = trans_b ? K : N;
    cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cudaDataType_t ct = c_dt == RL_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    // column-major: D[N, M] = op(b)[N, K] op(a)[K, M]; b stored as [ldb x (trans_b ? N : K)]
    if (lt_matmul(ctx, c, ct, b, trans_b ? K : N, trans_b ? N : K, ldb, opb, a, trans_a ? M : K,
                  trans_a ? K : M, lda, opa, N, M, alpha, beta, bias))
        return;
    if (bias) { // bias only comes with c_dt == act and beta == 0 (matmul_forward)
        size_t n = (size_t)M * N;
        bias_rows_kernel<bf16><<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
            (bf16 *)c, bias, (size_t)M, N);
        cudaLaunchCheck(ctx);
        beta = 1.0f;
    }
    cublasCheck(cublasGemmEx(ctx->cublas, opb, opa, N, M, K, &alpha, b, CUDA_R_16BF, ldb, a,
                             CUDA_R_16BF, lda, &beta, c, ct, N, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
    if (ctx->sync_check) cudaLaunchCheck(ctx);
}

void gemm_cuda(const rl_backend *be, void *c, rl_dtype c_dt, const void *a, const void *b, int M,
               int N, int K, int trans_a, int trans_b, float alpha, float beta) {
    if (c_dt != RL_F32 && c_dt != be->act) gemm_type_error(be, c_dt);
    if (M <= 0 || N <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    if (K <= 0) { // cuBLAS rejects a zero leading dimension; the product is empty
        size_t n = (size_t)M * N;
        unsigned grid = cu_grid(n, RL_CUDA_THREADS);
        if (c_dt == RL_BF16)
            beta_scale_kernel<bf16><<<grid, RL_CUDA_THREADS, 0, ctx->stream>>>((bf16 *)c, n, beta);
        else
            beta_scale_kernel<float>
                <<<grid, RL_CUDA_THREADS, 0, ctx->stream>>>((float *)c, n, beta);
        cudaLaunchCheck(ctx);
        return;
    }
    if (be->act == RL_BF16) {
        gemm_bf16(be, c, c_dt, (const bf16 *)a, (const bf16 *)b, NULL, M, N, K, trans_a, trans_b,
                  alpha, beta);
        return;
    }
    int lda = trans_a ? M : K; // row-major leading dimensions, as the CPU's cblas call
    int ldb = trans_b ? K : N;
    cublasCheck(cublasSgemm(ctx->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                            trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, (const float *)b,
                            ldb, (const float *)a, lda, &beta, (float *)c, N));
    if (ctx->sync_check) cudaLaunchCheck(ctx);
}

void matmul_forward_cuda(const rl_backend *be, void *out, const void *inp, const void *weight,
                         const void *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    if (be->act == RL_BF16) {
        if (C <= 0) { // empty product: out = bias (or 0)
            gemm_cuda(be, out, RL_BF16, inp, weight, N, OC, C, 0, 1, 1.0f, 0.0f);
            if (!bias) return;
            size_t n = (size_t)N * OC;
            bias_rows_kernel<bf16>
                <<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
                    (bf16 *)out, (const bf16 *)bias, (size_t)N, OC);
            cudaLaunchCheck(ctx);
            return;
        }
        gemm_bf16(be, out, RL_BF16, (const bf16 *)inp, (const bf16 *)weight, (const bf16 *)bias, N,
                  OC, C, 0, 1, 1.0f, 0.0f);
        return;
    }
    float beta = 0.0f;
    if (bias) {
        size_t n = (size_t)N * OC;
        bias_rows_kernel<float><<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
            (float *)out, (const float *)bias, (size_t)N, OC);
        cudaLaunchCheck(ctx);
        beta = 1.0f;
    }
    gemm_cuda(be, out, RL_F32, inp, weight, N, OC, C, 0, 1, 1.0f, beta);
}

// dbias[o] += sum_n dout[n, o]. A block owns 32 columns; its 32 x COLSUM_ROWS threads sum rows
// n = ty, ty + COLSUM_ROWS, ... of column o = 32*blockIdx.x + tx (a warp reads 32 adjacent
// elements of one row), then the COLSUM_ROWS partials of a column are added in ty order: the
// order depends only on N, never on timing (no atomics). Sums in float32 for both act types.
enum { COLSUM_ROWS = 16 };

template <class T>
__global__ static void bias_backward_kernel(float *dbias, const T *dout, int N, int OC) {
    __shared__ float part[COLSUM_ROWS][33];
    int tx = threadIdx.x, ty = threadIdx.y, o = blockIdx.x * 32 + tx;
    float acc = 0.0f;
    if (o < OC)
        for (int n = ty; n < N; n += COLSUM_ROWS) acc += to_float(dout[(size_t)n * OC + o]);
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && o < OC) {
        float s = 0.0f;
        for (int k = 0; k < COLSUM_ROWS; k++) s += part[k][tx];
        dbias[o] += s;
    }
}

template <class T>
static void bias_backward_launch(rl_cuda_ctx *ctx, float *dbias, const void *dout, int N, int OC) {
    dim3 block(32, COLSUM_ROWS);
    bias_backward_kernel<T>
        <<<cu_blocks((size_t)OC, 32), block, 0, ctx->stream>>>(dbias, (const T *)dout, N, OC);
}

void matmul_backward_cuda(const rl_backend *be, void *dinp, float *dweight, float *dbias,
                          const void *dout, const void *inp, const void *weight, int N, int C,
                          int OC) {
    if (N <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    // dinp in act; dweight float32 (a float32 result of act operands: gemm's c_dt = RL_F32)
    if (dinp) gemm_cuda(be, dinp, be->act, dout, weight, N, C, OC, 0, 0, 1.0f, 0.0f);
    if (dweight) gemm_cuda(be, dweight, RL_F32, dout, inp, OC, C, N, 1, 0, 1.0f, 1.0f);
    if (dbias && OC > 0) {
        ACT_DISPATCH(be, bias_backward_launch, ctx, dbias, dout, N, OC);
        cudaLaunchCheck(ctx);
    }
}
