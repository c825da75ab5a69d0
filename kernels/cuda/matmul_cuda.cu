// Matrix products on the GPU: cuBLAS cublasSgemm (float32; TF32 tensor ops only when the backend
// was opened with tf32) plus the bias add and a deterministic bias gradient around it. See
// kernels/kernels.h for the contracts.
//
// cuBLAS is column-major, our arrays row-major. A row-major [R, C] array is the column-major
// [C, R] array with the same bytes, its transpose. So C = op(A) op(B) (row-major) is computed as
// C^T = op(B)^T op(A)^T (column-major): operands swapped, dimensions M and N swapped, each
// operand's transpose flag and leading dimension unchanged (llm.c does the same).
#include "kernels/cuda/cuda_common.h"

// c[i] = beta * c[i] (beta == 0: c[i] = 0, also where c held NaN), for the empty product K = 0.
__global__ static void beta_scale_kernel(float *c, size_t n, float beta) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        c[i] = beta == 0.0f ? 0.0f : beta * c[i];
}

void gemm_cuda(const rl_backend *be, float *c, const float *a, const float *b, int M, int N, int K,
               int trans_a, int trans_b, float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    if (K <= 0) { // cuBLAS rejects a zero leading dimension; the product is empty
        size_t n = (size_t)M * N;
        beta_scale_kernel<<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(c, n,
                                                                                            beta);
        cudaLaunchCheck(ctx);
        return;
    }
    int lda = trans_a ? M : K; // row-major leading dimensions, as the CPU's cblas call
    int ldb = trans_b ? K : N;
    cublasCheck(cublasSgemm(ctx->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                            trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, b, ldb, a, lda,
                            &beta, c, N));
    if (ctx->sync_check) cudaLaunchCheck(ctx);
}

// out[n, o] = bias[o] for every row: the product then accumulates on top (beta = 1), as the CPU.
__global__ static void bias_rows_kernel(float *out, const float *bias, size_t rows, int OC) {
    size_t total = rows * (size_t)OC;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias[i % (size_t)OC];
}

void matmul_forward_cuda(const rl_backend *be, float *out, const float *inp, const float *weight,
                         const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    float beta = 0.0f;
    if (bias) {
        size_t n = (size_t)N * OC;
        bias_rows_kernel<<<cu_grid(n, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
            out, bias, (size_t)N, OC);
        cudaLaunchCheck(ctx);
        beta = 1.0f;
    }
    gemm_cuda(be, out, inp, weight, N, OC, C, 0, 1, 1.0f, beta);
}

// dbias[o] += sum_n dout[n, o]. A block owns 32 columns; its 32 x COLSUM_ROWS threads sum rows
// n = ty, ty + COLSUM_ROWS, ... of column o = 32*blockIdx.x + tx (a warp reads 32 adjacent
// floats of one row), then the COLSUM_ROWS partials of a column are added in ty order: the
// order depends only on N, never on timing (no atomics).
enum { COLSUM_ROWS = 16 };

__global__ static void bias_backward_kernel(float *dbias, const float *dout, int N, int OC) {
    __shared__ float part[COLSUM_ROWS][33];
    int tx = threadIdx.x, ty = threadIdx.y, o = blockIdx.x * 32 + tx;
    float acc = 0.0f;
    if (o < OC)
        for (int n = ty; n < N; n += COLSUM_ROWS) acc += dout[(size_t)n * OC + o];
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && o < OC) {
        float s = 0.0f;
        for (int k = 0; k < COLSUM_ROWS; k++) s += part[k][tx];
        dbias[o] += s;
    }
}

void matmul_backward_cuda(const rl_backend *be, float *dinp, float *dweight, float *dbias,
                          const float *dout, const float *inp, const float *weight, int N, int C,
                          int OC) {
    if (N <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    if (dinp) gemm_cuda(be, dinp, dout, weight, N, C, OC, 0, 0, 1.0f, 0.0f);
    if (dweight) gemm_cuda(be, dweight, dout, inp, OC, C, N, 1, 0, 1.0f, 1.0f);
    if (dbias && OC > 0) {
        dim3 block(32, COLSUM_ROWS);
        bias_backward_kernel<<<cu_blocks((size_t)OC, 32), block, 0, ctx->stream>>>(dbias, dout, N,
                                                                                   OC);
        cudaLaunchCheck(ctx);
    }
}
