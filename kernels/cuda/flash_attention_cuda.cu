// Fused causal attention on tensor cores, flash-attention style (FlashAttention-2's split of the
// work), for bf16 activations and head_dim 64 or 128: the training forward (and prefill) and the
// training backward behind attention_forward_cuda / attention_backward_cuda. Same contract as
// kernels.h's rl_attention_forward_fn / rl_attention_backward_fn: GQA (query head h reads kv head
// h / (NH/NKV)), sliding window, right-padded lengths, lse kept for the backward, zeros at padded
// positions. Nothing of size T x T is ever stored: scores live one 64 x 64 tile at a time in
// shared memory.
//
// Tiles: a block of 4 warps owns 64 query rows (forward, dq) or 64 keys (dk, dv) of one head;
// each warp owns 16 of those rows. Key / query tiles of 64 rows stream through shared memory.
// Matrix products are 16x16x16 wmma bf16 products with float32 accumulation:
//   forward  S = Q K^T (float, shared), online softmax per row (running max m and sum l, as the
//            CPU kernel), P rounded to bf16, O += P V with O kept as float in shared memory (the
//            per-row rescale by exp(m_old - m_new) needs to know which row an element is in, which
//            the wmma fragment layout does not say, so O goes through memory); out = O / l,
//            lse = m + log l.
//   backward D = rowsum(dO * O) first (one warp per row, into a scratch buffer of the context),
//            then two kernels that each own what they write, so no atomics and the same bits on
//            every run:
//            dk, dv: one block per 64 keys of a kv head loops over the query heads of its group
//                    and their query tiles: S^T = K Q^T, P^T = exp(S^T*scale - lse),
//                    dP^T = V dO^T, dS^T = P^T (dP^T - D) * scale, dV += P^T dO, dK += dS^T Q,
//                    dK and dV accumulating in wmma fragments (registers) over the whole loop;
//            dq:     one block per 64 query rows of a query head loops over its key tiles:
//                    S = Q K^T, P, dP = dO V^T, dS, dQ += dS K.
// Probabilities and dS are rounded to bf16 for the products (as FlashAttention does); scores, the
// softmax statistics, lse and D are float32.
//
// float32 activations (and bf16 with other head dims, or pointers not 16-byte aligned) go to the
// general kernels of attention_cuda.cu: the float32 path is the exact reference on the GPU, held
// to ~1e-5 against the CPU, which TF32 tensor cores (10-bit mantissas) cannot meet.
#include "kernels/cuda/cuda_common.h"

#include <cuda_bf16.h>
#include <mma.h>

using namespace nvcuda;
typedef __nv_bfloat16 bf16;

enum {
    FA_ROWS = 64,                  // query rows (forward, dq) or keys (dk, dv) per block
    FA_COLS = 64,                  // keys (forward, dq) or queries (dk, dv) per streamed tile
    FA_WARPS = FA_ROWS / 16,       // one warp per 16 rows
    FA_THREADS = FA_WARPS * 32,    //
    FA_DELTA_WARPS = RL_CUDA_WARPS // warps per block of the D = rowsum(dO * O) kernel
};

// Row strides (elements) of the shared-memory tiles of head dimension HD, padded so that
// consecutive rows start on different banks; every 16-row, 16-column fragment stays 32-byte
// aligned (wmma's requirement) because the strides are multiples of 16 bytes.
template <int HD> struct fa_geom {
    static const int LDH = HD + 8;      // bf16 [64][HD] tiles: Q, K, V, dO
    static const int LDS = FA_COLS + 4; // float [64][64] tiles: scores, dP
    static const int LDP = FA_COLS + 8; // bf16 [64][64] tiles: P, dS
    static const int LDO = HD + 4;      // float [64][HD]: the output accumulator, staging
    static const size_t H_BYTES = (size_t)FA_ROWS * LDH * sizeof(bf16);
    static const size_t S_BYTES = (size_t)FA_ROWS * LDS * sizeof(float);
    static const size_t P_BYTES = (size_t)FA_ROWS * LDP * sizeof(bf16);
    static const size_t O_BYTES = (size_t)FA_ROWS * LDO * sizeof(float);
    // forward: Q, K, V | S | P | O
    static const size_t FWD_BYTES = 3 * H_BYTES + S_BYTES + P_BYTES + O_BYTES;
    // backward: Q, dO, K, V | S, dP | P, dS | lse, D of the query rows
    static const size_t BWD_BYTES = 4 * H_BYTES + 2 * S_BYTES + 2 * P_BYTES + 2 * FA_COLS * 4;
};

// The shape of one call, passed by value to every kernel.
typedef struct fa_dims {
    int B, T, NH, NKV, window, rep;
    size_t qkv_dim, att_dim; // elements per fused q|k|v row, per attention output row
    float scale;
} fa_dims;

// 16 bytes: 8 bf16 elements moved at once.
struct alignas(16) fa_pack8 {
    unsigned int w[4];
};

// First key position a query at position t may see (window = 0: no window).
__device__ __forceinline__ static int fa_first_key(int t, int window) {
    return window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
}

// Whether query t (below the length) sees key j.
__device__ __forceinline__ static bool fa_sees(int t, int j, int window) {
    return j <= t && (window <= 0 || t - j < window);
}

// dst[r][0..HD) (row stride LDH) = src row r (rows `stride` elements apart) for r < n; rows
// n..63 are zero (they enter products, so never leave garbage there). By the whole block.
template <int HD>
__device__ __forceinline__ static void fa_load_tile(bf16 *dst, const bf16 *src, size_t stride,
                                                    int n) {
    const int chunks = HD / 8; // 16-byte chunks per row
    for (int i = threadIdx.x; i < FA_ROWS * chunks; i += FA_THREADS) {
        int r = i / chunks, c = (i % chunks) * 8;
        fa_pack8 v = {{0u, 0u, 0u, 0u}};
        if (r < n) v = *(const fa_pack8 *)(src + (size_t)r * stride + c);
        *(fa_pack8 *)(dst + r * fa_geom<HD>::LDH + c) = v;
    }
}

// dst rows [0, n) (rows `stride` elements apart, HD elements each) = 0. By the whole block.
template <int HD>
__device__ __forceinline__ static void fa_zero_rows(bf16 *dst, size_t stride, int n) {
    for (int i = threadIdx.x; i < n * HD; i += FA_THREADS)
        dst[(size_t)(i / HD) * stride + i % HD] = __float2bfloat16(0.0f);
}

// c[16][16 * NB] (float, row stride ldc) = a[16][K] @ b^T where b is [16 * NB][K] (both bf16 row
// tiles, strides lda, ldb): scores of 16 rows against 16*NB rows. By one warp.
template <int K, int NB>
__device__ __forceinline__ static void fa_mm_abt(float *c, int ldc, const bf16 *a, int lda,
                                                 const bf16 *b, int ldb) {
#pragma unroll
    for (int n = 0; n < NB; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int k = 0; k < K / 16; k++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
            wmma::load_matrix_sync(fa, a + k * 16, lda);
            wmma::load_matrix_sync(fb, b + (size_t)n * 16 * ldb + k * 16, ldb);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(c + n * 16, acc, ldc, wmma::mem_row_major);
    }
}

typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> fa_acc;

// acc[n] += a[16][K] @ b[K][16 n .. 16 n + 16) for n < NB (a, b bf16 row tiles). By one warp.
template <int K, int NB>
__device__ __forceinline__ static void fa_mm_ab(fa_acc *acc, const bf16 *a, int lda, const bf16 *b,
                                                int ldb) {
#pragma unroll
    for (int n = 0; n < NB; n++) {
#pragma unroll
        for (int k = 0; k < K / 16; k++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
            wmma::load_matrix_sync(fa, a + k * 16, lda);
            wmma::load_matrix_sync(fb, b + (size_t)k * 16 * ldb + n * 16, ldb);
            wmma::mma_sync(acc[n], fa, fb, acc[n]);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Forward: block (query tile, head h, sequence b).

template <int HD>
__global__ static void __launch_bounds__(FA_THREADS)
    flash_forward_kernel(bf16 *out, float *lse, const bf16 *qkv, const int32_t *lengths,
                         fa_dims a) {
    typedef fa_geom<HD> G;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    bf16 *qs = (bf16 *)fa_smem;                              // [64][LDH] queries
    bf16 *ks = (bf16 *)(fa_smem + G::H_BYTES);               // [64][LDH] keys
    bf16 *vs = (bf16 *)(fa_smem + 2 * G::H_BYTES);           // [64][LDH] values
    float *ss = (float *)(fa_smem + 3 * G::H_BYTES);         // [64][LDS] scores
    bf16 *ps = (bf16 *)((unsigned char *)ss + G::S_BYTES);   // [64][LDP] probabilities
    float *os = (float *)((unsigned char *)ps + G::P_BYTES); // [64][LDO] output accumulator
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int q0 = blockIdx.x * FA_ROWS, h = blockIdx.y, b = blockIdx.z;
    const int len = lengths ? lengths[b] : a.T;
    const int qend = min(q0 + FA_ROWS, len);  // valid query rows: [q0, qend)
    const int rows = min(FA_ROWS, a.T - q0);  // rows of the tile inside the sequence
    const size_t row0 = (size_t)b * a.T + q0; // output row of position q0
    bf16 *ob = out + row0 * a.att_dim + (size_t)h * HD;
    if (q0 >= len) { // padding only: zeros, never attended
        fa_zero_rows<HD>(ob, a.att_dim, rows);
        if (lse)
            for (int i = threadIdx.x; i < rows; i += FA_THREADS) lse[(row0 + i) * a.NH + h] = 0.0f;
        return;
    }
    const int kvh = h / a.rep;
    const bf16 *base = qkv + (size_t)b * a.T * a.qkv_dim;
    const bf16 *kb = base + (size_t)(a.NH + kvh) * HD;         // key j at kb + j*qkv_dim
    const bf16 *vb = base + (size_t)(a.NH + a.NKV + kvh) * HD; // value j at vb + j*qkv_dim
    fa_load_tile<HD>(qs, base + (size_t)q0 * a.qkv_dim + (size_t)h * HD, a.qkv_dim, qend - q0);
    const bf16 *qw = qs + warp * 16 * G::LDH; // this warp's 16 query rows
    float *sw = ss + warp * 16 * G::LDS;
    bf16 *pw = ps + warp * 16 * G::LDP;
    float *ow = os + warp * 16 * G::LDO;
    for (int i = lane; i < 16 * HD; i += 32) ow[(i / HD) * G::LDO + i % HD] = 0.0f;
    float m[16], l[16]; // running max and sum of the warp's rows (the same in every lane)
#pragma unroll
    for (int r = 0; r < 16; r++) m[r] = -INFINITY, l[r] = 0.0f;

    const int jhi = qend - 1; // the last key any row of the tile sees
    for (int j0 = fa_first_key(q0, a.window); j0 <= jhi; j0 += FA_COLS) {
        int nk = min(FA_COLS, jhi - j0 + 1);
        __syncthreads(); // every warp is done with the previous keys and values
        fa_load_tile<HD>(ks, kb + (size_t)j0 * a.qkv_dim, a.qkv_dim, nk);
        fa_load_tile<HD>(vs, vb + (size_t)j0 * a.qkv_dim, a.qkv_dim, nk);
        __syncthreads();
        fa_mm_abt<HD, FA_COLS / 16>(sw, G::LDS, qw, G::LDH, ks, G::LDH); // S = Q K^T
        __syncwarp();
        // Online softmax, one row at a time by the whole warp (two columns per lane).
#pragma unroll
        for (int r = 0; r < 16; r++) {
            int t = q0 + warp * 16 + r;
            float x[2];
#pragma unroll
            for (int u = 0; u < 2; u++) {
                int c = lane + 32 * u;
                bool ok = t < qend && fa_sees(t, j0 + c, a.window);
                x[u] = ok ? sw[r * G::LDS + c] * a.scale : -INFINITY;
            }
            float mnew = fmaxf(m[r], warp_max(fmaxf(x[0], x[1])));
            float corr = 1.0f, p0 = 0.0f, p1 = 0.0f; // nothing seen yet: all stay zero
            if (mnew != -INFINITY) {
                corr = expf(m[r] - mnew); // 0 while m was -inf
                p0 = expf(x[0] - mnew);
                p1 = expf(x[1] - mnew);
            }
            l[r] = l[r] * corr + warp_sum(p0 + p1);
            m[r] = mnew;
            pw[r * G::LDP + lane] = __float2bfloat16(p0);
            pw[r * G::LDP + lane + 32] = __float2bfloat16(p1);
            for (int d = lane; d < HD; d += 32) ow[r * G::LDO + d] *= corr;
        }
        __syncwarp();
        // O += P V, the accumulator passing through shared memory (rescaled there above)
#pragma unroll
        for (int n = 0; n < HD / 16; n++) {
            fa_acc acc;
            wmma::load_matrix_sync(acc, ow + n * 16, G::LDO, wmma::mem_row_major);
            fa_mm_ab<FA_COLS, 1>(&acc, pw, G::LDP, vs + n * 16, G::LDH);
            wmma::store_matrix_sync(ow + n * 16, acc, G::LDO, wmma::mem_row_major);
        }
        __syncwarp();
    }
    // out = O / l, lse = m + log l; rows without keys (padding inside the tile) give zeros.
#pragma unroll
    for (int r = 0; r < 16; r++) {
        int i = warp * 16 + r;
        if (i >= rows) break;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        bf16 *o = ob + (size_t)i * a.att_dim;
        for (int d = lane; d < HD; d += 32) o[d] = __float2bfloat16(ow[r * G::LDO + d] * inv);
        if (lse && lane == 0) lse[(row0 + i) * a.NH + h] = l[r] > 0.0f ? m[r] + logf(l[r]) : 0.0f;
    }
}

// ------------------------------------------------------------------------------------------------
// Backward

// delta[b,t,h] = sum_d dout[b,t,h,d] * out[b,t,h,d] (0 at padded positions): one warp per row.
__global__ static void flash_delta_kernel(float *delta, const bf16 *dout, const bf16 *out,
                                          const int32_t *lengths, fa_dims a, int hd) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    size_t gw = (size_t)blockIdx.x * FA_DELTA_WARPS + warp;
    if (gw >= (size_t)a.B * a.T * a.NH) return; // whole warps leave
    int h = (int)(gw % a.NH);
    size_t row = gw / a.NH;
    int t = (int)(row % a.T), b = (int)(row / a.T);
    int len = lengths ? lengths[b] : a.T;
    float s = 0.0f;
    if (t < len) {
        const bf16 *x = dout + row * a.att_dim + (size_t)h * hd;
        const bf16 *y = out + row * a.att_dim + (size_t)h * hd;
        for (int d = lane; d < hd; d += 32) s += __bfloat162float(x[d]) * __bfloat162float(y[d]);
    }
    s = warp_sum(s);
    if (lane == 0) delta[gw] = s;
}

// The backward's shared memory: Q, dO, K, V tiles | two float score tiles | two bf16 tiles | lse
// and D of the tile's query rows.
template <int HD> struct fa_bwd_smem {
    bf16 *qs, *dos, *ks, *vs;
    float *f0, *f1;
    bf16 *p0, *p1;
    float *lse_s, *d_s;
    __device__ __forceinline__ fa_bwd_smem(unsigned char *s) {
        typedef fa_geom<HD> G;
        qs = (bf16 *)s;
        dos = (bf16 *)(s + G::H_BYTES);
        ks = (bf16 *)(s + 2 * G::H_BYTES);
        vs = (bf16 *)(s + 3 * G::H_BYTES);
        f0 = (float *)(s + 4 * G::H_BYTES);
        f1 = (float *)(s + 4 * G::H_BYTES + G::S_BYTES);
        p0 = (bf16 *)(s + 4 * G::H_BYTES + 2 * G::S_BYTES);
        p1 = (bf16 *)(s + 4 * G::H_BYTES + 2 * G::S_BYTES + G::P_BYTES);
        lse_s = (float *)(s + 4 * G::H_BYTES + 2 * G::S_BYTES + 2 * G::P_BYTES);
        d_s = lse_s + FA_COLS;
    }
};

// lse and D of query rows [t0, t0 + n) of head h into shared memory (0 beyond n). By the block.
__device__ __forceinline__ static void fa_load_stats(float *lse_s, float *d_s, const float *lse,
                                                     const float *delta, size_t row0, int n, int h,
                                                     int NH) {
    for (int i = threadIdx.x; i < FA_COLS; i += FA_THREADS) {
        lse_s[i] = i < n ? lse[(row0 + i) * NH + h] : 0.0f;
        d_s[i] = i < n ? delta[(row0 + i) * NH + h] : 0.0f;
    }
}

// Writes the warp's 16 rows of acc[HD/16] (rows i0.. of the block; only i < rows) to dst (row
// stride `stride`), through its own rows of the float staging tile st.
template <int HD>
__device__ __forceinline__ static void fa_store_rows(bf16 *dst, size_t stride, const fa_acc *acc,
                                                     float *st, int i0, int rows, int lane) {
    typedef fa_geom<HD> G;
#pragma unroll
    for (int n = 0; n < HD / 16; n++)
        wmma::store_matrix_sync(st + n * 16, acc[n], G::LDO, wmma::mem_row_major);
    __syncwarp();
    for (int r = 0; r < 16 && i0 + r < rows; r++)
        for (int d = lane; d < HD; d += 32)
            dst[(size_t)(i0 + r) * stride + d] = __float2bfloat16(st[r * G::LDO + d]);
    __syncwarp();
}

// dk, dv: block (key tile, kv head kvh, sequence b).
template <int HD>
__global__ static void __launch_bounds__(FA_THREADS)
    flash_backward_dkv_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                              const float *delta, const int32_t *lengths, fa_dims a) {
    typedef fa_geom<HD> G;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    fa_bwd_smem<HD> sm(fa_smem);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int j0 = blockIdx.x * FA_ROWS, kvh = blockIdx.y, b = blockIdx.z;
    const int len = lengths ? lengths[b] : a.T;
    const int jend = min(j0 + FA_ROWS, len); // valid keys: [j0, jend)
    const int rows = min(FA_ROWS, a.T - j0);
    const size_t brow = (size_t)b * a.T; // row of position 0
    bf16 *dkb = dqkv + (brow + j0) * a.qkv_dim + (size_t)(a.NH + kvh) * HD;
    bf16 *dvb = dkb + (size_t)a.NKV * HD;
    if (j0 >= len) { // keys nobody sees
        fa_zero_rows<HD>(dkb, a.qkv_dim, rows);
        fa_zero_rows<HD>(dvb, a.qkv_dim, rows);
        return;
    }
    const bf16 *base = qkv + brow * a.qkv_dim;
    fa_load_tile<HD>(sm.ks, base + (size_t)j0 * a.qkv_dim + (size_t)(a.NH + kvh) * HD, a.qkv_dim,
                     jend - j0);
    fa_load_tile<HD>(sm.vs, base + (size_t)j0 * a.qkv_dim + (size_t)(a.NH + a.NKV + kvh) * HD,
                     a.qkv_dim, jend - j0);
    const bf16 *kw = sm.ks + warp * 16 * G::LDH, *vw = sm.vs + warp * 16 * G::LDH;
    float *stw = sm.f0 + warp * 16 * G::LDS, *dptw = sm.f1 + warp * 16 * G::LDS;
    bf16 *ptw = sm.p0 + warp * 16 * G::LDP, *dstw = sm.p1 + warp * 16 * G::LDP;
    fa_acc dk[HD / 16], dv[HD / 16];
#pragma unroll
    for (int n = 0; n < HD / 16; n++)
        wmma::fill_fragment(dk[n], 0.0f), wmma::fill_fragment(dv[n], 0.0f);
    // the last query that sees any key of the tile
    const int tmax = a.window > 0 ? min(len - 1, jend - 1 + a.window - 1) : len - 1;
    for (int r = 0; r < a.rep; r++) {
        const int h = kvh * a.rep + r;
        for (int t0 = j0; t0 <= tmax; t0 += FA_COLS) {
            int nq = min(FA_COLS, tmax - t0 + 1);
            __syncthreads(); // every warp is done with the previous query tile
            fa_load_tile<HD>(sm.qs, base + (size_t)t0 * a.qkv_dim + (size_t)h * HD, a.qkv_dim, nq);
            fa_load_tile<HD>(sm.dos, dout + (brow + t0) * a.att_dim + (size_t)h * HD, a.att_dim,
                             nq);
            fa_load_stats(sm.lse_s, sm.d_s, lse, delta, brow + t0, nq, h, a.NH);
            __syncthreads();
            fa_mm_abt<HD, FA_COLS / 16>(stw, G::LDS, kw, G::LDH, sm.qs, G::LDH);   // S^T = K Q^T
            fa_mm_abt<HD, FA_COLS / 16>(dptw, G::LDS, vw, G::LDH, sm.dos, G::LDH); // dP^T = V dO^T
            __syncwarp();
            for (int rr = 0; rr < 16; rr++) {
                int j = j0 + warp * 16 + rr;
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    int c = lane + 32 * u, t = t0 + c;
                    float p = 0.0f, ds = 0.0f;
                    if (t < len && j < jend && fa_sees(t, j, a.window)) {
                        p = expf(stw[rr * G::LDS + c] * a.scale - sm.lse_s[c]);
                        ds = p * (dptw[rr * G::LDS + c] - sm.d_s[c]) * a.scale;
                    }
                    ptw[rr * G::LDP + c] = __float2bfloat16(p);
                    dstw[rr * G::LDP + c] = __float2bfloat16(ds);
                }
            }
            __syncwarp();
            fa_mm_ab<FA_COLS, HD / 16>(dv, ptw, G::LDP, sm.dos, G::LDH); // dV += P^T dO
            fa_mm_ab<FA_COLS, HD / 16>(dk, dstw, G::LDP, sm.qs, G::LDH); // dK += dS^T Q
        }
    }
    __syncthreads(); // the Q and dO tiles become the staging area of every warp
    float *st = (float *)sm.qs + warp * 16 * G::LDO;
    fa_store_rows<HD>(dkb, a.qkv_dim, dk, st, warp * 16, rows, lane);
    fa_store_rows<HD>(dvb, a.qkv_dim, dv, st, warp * 16, rows, lane);
}

// dq: block (query tile, head h, sequence b).
template <int HD>
__global__ static void __launch_bounds__(FA_THREADS)
    flash_backward_dq_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                             const float *delta, const int32_t *lengths, fa_dims a) {
    typedef fa_geom<HD> G;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    fa_bwd_smem<HD> sm(fa_smem);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int q0 = blockIdx.x * FA_ROWS, h = blockIdx.y, b = blockIdx.z;
    const int len = lengths ? lengths[b] : a.T;
    const int qend = min(q0 + FA_ROWS, len);
    const int rows = min(FA_ROWS, a.T - q0);
    const size_t brow = (size_t)b * a.T;
    bf16 *dqb = dqkv + (brow + q0) * a.qkv_dim + (size_t)h * HD;
    if (q0 >= len) {
        fa_zero_rows<HD>(dqb, a.qkv_dim, rows);
        return;
    }
    const int kvh = h / a.rep;
    const bf16 *base = qkv + brow * a.qkv_dim;
    const bf16 *kb = base + (size_t)(a.NH + kvh) * HD;
    const bf16 *vb = base + (size_t)(a.NH + a.NKV + kvh) * HD;
    fa_load_tile<HD>(sm.qs, base + (size_t)q0 * a.qkv_dim + (size_t)h * HD, a.qkv_dim, qend - q0);
    fa_load_tile<HD>(sm.dos, dout + (brow + q0) * a.att_dim + (size_t)h * HD, a.att_dim, qend - q0);
    fa_load_stats(sm.lse_s, sm.d_s, lse, delta, brow + q0, qend - q0, h, a.NH);
    const bf16 *qw = sm.qs + warp * 16 * G::LDH, *dow = sm.dos + warp * 16 * G::LDH;
    float *sw = sm.f0 + warp * 16 * G::LDS, *dpw = sm.f1 + warp * 16 * G::LDS;
    bf16 *dsw = sm.p1 + warp * 16 * G::LDP;
    fa_acc dq[HD / 16];
#pragma unroll
    for (int n = 0; n < HD / 16; n++) wmma::fill_fragment(dq[n], 0.0f);
    const int jhi = qend - 1;
    for (int j0 = fa_first_key(q0, a.window); j0 <= jhi; j0 += FA_COLS) {
        int nk = min(FA_COLS, jhi - j0 + 1);
        __syncthreads();
        fa_load_tile<HD>(sm.ks, kb + (size_t)j0 * a.qkv_dim, a.qkv_dim, nk);
        fa_load_tile<HD>(sm.vs, vb + (size_t)j0 * a.qkv_dim, a.qkv_dim, nk);
        __syncthreads();
        fa_mm_abt<HD, FA_COLS / 16>(sw, G::LDS, qw, G::LDH, sm.ks, G::LDH);   // S = Q K^T
        fa_mm_abt<HD, FA_COLS / 16>(dpw, G::LDS, dow, G::LDH, sm.vs, G::LDH); // dP = dO V^T
        __syncwarp();
        for (int r = 0; r < 16; r++) {
            int i = warp * 16 + r, t = q0 + i;
#pragma unroll
            for (int u = 0; u < 2; u++) {
                int c = lane + 32 * u;
                float ds = 0.0f;
                if (t < qend && fa_sees(t, j0 + c, a.window)) {
                    float p = expf(sw[r * G::LDS + c] * a.scale - sm.lse_s[i]);
                    ds = p * (dpw[r * G::LDS + c] - sm.d_s[i]) * a.scale;
                }
                dsw[r * G::LDP + c] = __float2bfloat16(ds);
            }
        }
        __syncwarp();
        fa_mm_ab<FA_COLS, HD / 16>(dq, dsw, G::LDP, sm.ks, G::LDH); // dQ += dS K
    }
    __syncthreads(); // the score tiles become the staging area of every warp
    float *st = sm.f0 + warp * 16 * G::LDO;
    fa_store_rows<HD>(dqb, a.qkv_dim, dq, st, warp * 16, rows, lane);
}

// ------------------------------------------------------------------------------------------------
// Entry points

static fa_dims fa_dims_of(int B, int T, int NH, int NKV, int hd, int window) {
    fa_dims a;
    a.B = B, a.T = T, a.NH = NH, a.NKV = NKV, a.window = window, a.rep = NH / NKV;
    a.qkv_dim = (size_t)(NH + 2 * NKV) * hd;
    a.att_dim = (size_t)NH * hd;
    a.scale = 1.0f / sqrtf((float)hd);
    return a;
}

static int fa_aligned16(const void *p) {
    return p == NULL || (uintptr_t)p % 16 == 0;
}

// Whether the tensor-core kernels take a call of this shape (the caller runs the general
// kernels otherwise): bf16 activations, head_dim 64 or 128, 16-byte aligned activation
// pointers (the tiles move 16 bytes at a time), grid dimensions within CUDA's limits.
static int fa_takes(const rl_backend *be, int B, int T, int NH, int hd, const void *p0,
                    const void *p1, const void *p2) {
    return be->act == RL_BF16 && (hd == 64 || hd == 128) && NH <= 65535 && B <= 65535 &&
           fa_aligned16(p0) && fa_aligned16(p1) && fa_aligned16(p2);
}

// The context's D = rowsum(dO * O) buffer, grown to n floats when needed (cudaFree and
// cudaMalloc synchronise: only while the first, or a larger, batch shape is seen).
static float *fa_delta_buffer(rl_cuda_ctx *ctx, size_t n) {
    if (n > ctx->att_delta_n) {
        if (ctx->att_delta) cudaCheck(cudaFree(ctx->att_delta));
        ctx->att_delta = NULL;
        cudaCheck(cudaMalloc((void **)&ctx->att_delta, n * sizeof(float)));
        ctx->att_delta_n = n;
    }
    return ctx->att_delta;
}

template <int HD>
static void fa_forward(rl_cuda_ctx *ctx, bf16 *out, float *lse, const bf16 *qkv,
                       const int32_t *lengths, fa_dims a) {
    void (*kern)(bf16 *, float *, const bf16 *, const int32_t *, fa_dims) =
        flash_forward_kernel<HD>;
    size_t smem = fa_geom<HD>::FWD_BYTES;
    cudaCheck(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    dim3 grid(cu_blocks((size_t)a.T, FA_ROWS), (unsigned)a.NH, (unsigned)a.B);
    kern<<<grid, FA_THREADS, smem, ctx->stream>>>(out, lse, qkv, lengths, a);
    cudaLaunchCheck(ctx);
}

template <int HD>
static void fa_backward(rl_cuda_ctx *ctx, bf16 *dqkv, const bf16 *dout, const bf16 *qkv,
                        const float *lse, const float *delta, const int32_t *lengths, fa_dims a) {
    typedef void kernel_fn(bf16 *, const bf16 *, const bf16 *, const float *, const float *,
                           const int32_t *, fa_dims);
    kernel_fn *dkv = flash_backward_dkv_kernel<HD>, *dq = flash_backward_dq_kernel<HD>;
    size_t smem = fa_geom<HD>::BWD_BYTES;
    cudaCheck(cudaFuncSetAttribute(dkv, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    cudaCheck(cudaFuncSetAttribute(dq, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    unsigned tiles = cu_blocks((size_t)a.T, FA_ROWS);
    dim3 grid_kv(tiles, (unsigned)a.NKV, (unsigned)a.B),
        grid_q(tiles, (unsigned)a.NH, (unsigned)a.B);
    dkv<<<grid_kv, FA_THREADS, smem, ctx->stream>>>(dqkv, dout, qkv, lse, delta, lengths, a);
    cudaLaunchCheck(ctx);
    dq<<<grid_q, FA_THREADS, smem, ctx->stream>>>(dqkv, dout, qkv, lse, delta, lengths, a);
    cudaLaunchCheck(ctx);
}

int flash_attention_forward_cuda(const rl_backend *be, void *out, float *lse, const void *qkv,
                                 const int32_t *lengths, int B, int T, int NH, int NKV, int hd,
                                 int window) {
    if (!fa_takes(be, B, T, NH, hd, out, qkv, NULL)) return 0;
    if (B <= 0 || T <= 0 || NH <= 0) return 1;
    rl_cuda_ctx *ctx = cu_ctx(be);
    fa_dims a = fa_dims_of(B, T, NH, NKV, hd, window);
    if (hd == 64)
        fa_forward<64>(ctx, (bf16 *)out, lse, (const bf16 *)qkv, lengths, a);
    else
        fa_forward<128>(ctx, (bf16 *)out, lse, (const bf16 *)qkv, lengths, a);
    return 1;
}

int flash_attention_backward_cuda(const rl_backend *be, void *dqkv, const void *dout,
                                  const void *qkv, const void *out, const float *lse,
                                  const int32_t *lengths, int B, int T, int NH, int NKV, int hd,
                                  int window) {
    if (!fa_takes(be, B, T, NH, hd, dqkv, dout, qkv)) return 0;
    if (B <= 0 || T <= 0 || NH <= 0) return 1;
    rl_cuda_ctx *ctx = cu_ctx(be);
    fa_dims a = fa_dims_of(B, T, NH, NKV, hd, window);
    size_t rows = (size_t)B * T * NH;
    float *delta = fa_delta_buffer(ctx, rows);
    flash_delta_kernel<<<cu_blocks(rows, FA_DELTA_WARPS), FA_DELTA_WARPS * 32, 0, ctx->stream>>>(
        delta, (const bf16 *)dout, (const bf16 *)out, lengths, a, hd);
    cudaLaunchCheck(ctx);
    if (hd == 64)
        fa_backward<64>(ctx, (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, lse, delta,
                        lengths, a);
    else
        fa_backward<128>(ctx, (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, lse, delta,
                         lengths, a);
    return 1;
}
