// Causal grouped-query attention on the GPU: training forward and backward, the KV cache store
// and attention against the cache. Simple kernels, correct first (performance is a later step).
// bf16 training attention with head_dim 64 or 128 goes to the tensor-core kernels of
// flash_attention_cuda.cu instead (attention_forward_cuda / attention_backward_cuda ask it first).
//
// Every kernel gives one warp one (row, head) pair. Keys are visited in tiles of 32, one key per
// lane: each lane computes its key's score (a dot product over hd against the query held in
// shared memory), the warp takes the tile's max and sum with shuffles (online softmax with a
// running max m and sum l, as flash attention and the CPU kernel), then the warp accumulates the
// tile's value rows, lane d holding output elements d, d+32, ... in registers. Scores and sums
// are float32; scale hd^-0.5; lse = m + log l is kept for the backward pass. Every kernel is a
// template over the act type T (float or bf16): q|k|v, outputs, caches and activation gradients
// are stored in T and widened to float on load; all arithmetic, softmax statistics and
// accumulators are float32, rounded to T once on store.
//
// Backward (probabilities recomputed from lse, no atomics, so it is deterministic):
//   dq kernel, one warp per (b, t, h): dq_t = scale * sum_j P_tj (dout_t.v_j - D_t) k_j
//   dkv kernel, one warp per (b, j, kv head): dk_j = scale * sum_{h, t} P_tj (dout_t.v_j - D_t) q_t
//                                             dv_j = sum_{h, t} P_tj dout_t
// with D_t = dout_t . out_t; the two kernels write disjoint columns of dqkv, every element once
// (zeros at padded positions).
#include "kernels/cuda/cuda_common.h"

enum { KBLOCK = RL_KV_BLOCK, HDL = RL_CUDA_HD_LANES, WARPS = RL_CUDA_WARPS };

// First key position a query at position t may see (window = 0: no window).
__device__ __forceinline__ static int first_key(int t, int window) {
    return window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
}

// The shape of one attention call, passed by value to every kernel.
typedef struct att_dims {
    int B, T, NH, NKV, hd, window, rep;
    size_t qkv_dim, att_dim; // elements per fused q|k|v row, per attention output row
    float scale;
} att_dims;

static att_dims dims_of(int B, int T, int NH, int NKV, int hd, int window) {
    att_dims a;
    a.B = B, a.T = T, a.NH = NH, a.NKV = NKV, a.hd = hd, a.window = window, a.rep = NH / NKV;
    a.qkv_dim = (size_t)(NH + 2 * NKV) * hd;
    a.att_dim = (size_t)NH * hd;
    a.scale = 1.0f / sqrtf((float)hd);
    return a;
}

// dot(a[hd] in shared memory, b[hd] in global memory), by one lane.
template <class T>
__device__ __forceinline__ static float dot_lane(const float *a, const T *b, int hd) {
    float s = 0.0f;
    for (int d = 0; d < hd; d++) s += a[d] * to_float(b[d]);
    return s;
}

// x[hd] (global) into shared memory as float, by the whole warp.
template <class T>
__device__ __forceinline__ static void load_row(float *dst, const T *src, int hd, int lane) {
    for (int d = lane; d < hd; d += 32) dst[d] = to_float(src[d]);
    __syncwarp();
}

// One online-softmax step for a tile: s is this lane's scaled score (-inf for lanes without a
// key). Updates the running max m and sum l, rescales acc, returns this lane's weight
// exp(s - m_new). The tile holds at least one key, so m_new is finite.
__device__ __forceinline__ static float softmax_tile(float s, float *m, float *l, float acc[HDL]) {
    float mnew = fmaxf(*m, warp_max(s));
    float p = s == -INFINITY ? 0.0f : expf(s - mnew);
    float corr = expf(*m - mnew); // 0 on the first tile (m = -inf)
    *l = *l * corr + warp_sum(p);
    *m = mnew;
#pragma unroll
    for (int i = 0; i < HDL; i++) acc[i] *= corr;
    return p;
}

// acc[i] += w * row[lane + 32 i] for the valid elements.
template <class T>
__device__ __forceinline__ static void axpy_lanes(float acc[HDL], float w, const T *row, int hd,
                                                  int lane) {
#pragma unroll
    for (int i = 0; i < HDL; i++) {
        int d = lane + 32 * i;
        if (d < hd) acc[i] += w * to_float(row[d]);
    }
}

template <class T>
__device__ __forceinline__ static void store_lanes(T *dst, const float acc[HDL], float mul, int hd,
                                                   int lane) {
#pragma unroll
    for (int i = 0; i < HDL; i++) {
        int d = lane + 32 * i;
        if (d < hd) dst[d] = from_float<T>(acc[i] * mul);
    }
}

// dst[lane + 32 i] = 0 for the valid elements, by the whole warp.
template <class T> __device__ __forceinline__ static void zero_lanes(T *dst, int hd, int lane) {
    for (int d = lane; d < hd; d += 32) dst[d] = from_float<T>(0.0f);
}

// ------------------------------------------------------------------------------------------------
// Training forward: one warp per (b, t, h); warp index = (b*T + t)*NH + h.

template <class T>
__global__ static void attention_forward_kernel(T *out, float *lse, const T *qkv,
                                                const int32_t *lengths, att_dims a) {
    __shared__ float qs[WARPS][RL_MAX_HEAD_DIM];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    size_t gw = (size_t)blockIdx.x * WARPS + warp;
    if (gw >= (size_t)a.B * a.T * a.NH) return; // whole warps leave; no block barrier below
    int h = (int)(gw % a.NH);
    size_t row = gw / a.NH;
    int t = (int)(row % a.T), b = (int)(row / a.T);
    int len = lengths ? lengths[b] : a.T;
    int hd = a.hd;
    T *o = out + row * a.att_dim + (size_t)h * hd;
    if (t >= len) { // padding: zeros, never attended
        zero_lanes(o, hd, lane);
        if (lse && lane == 0) lse[row * a.NH + h] = 0.0f;
        return;
    }
    int kvh = h / a.rep;
    const T *base = qkv + (size_t)b * a.T * a.qkv_dim;
    const T *kb = base + (size_t)a.NH * hd + (size_t)kvh * hd; // key j at kb + j*qkv_dim
    const T *vb = kb + (size_t)a.NKV * hd;
    float *q = qs[warp];
    load_row(q, base + (size_t)t * a.qkv_dim + (size_t)h * hd, hd, lane);
    float acc[HDL] = {0};
    float m = -INFINITY, l = 0.0f;
    for (int j0 = first_key(t, a.window); j0 <= t; j0 += 32) {
        int j = j0 + lane;
        float s = j <= t ? dot_lane(q, kb + (size_t)j * a.qkv_dim, hd) * a.scale : -INFINITY;
        float p = softmax_tile(s, &m, &l, acc);
        int nb = min(32, t - j0 + 1);
        for (int u = 0; u < nb; u++) {
            float pu = __shfl_sync(0xffffffffu, p, u);
            axpy_lanes(acc, pu, vb + (size_t)(j0 + u) * a.qkv_dim, hd, lane);
        }
    }
    store_lanes(o, acc, 1.0f / l, hd, lane);
    if (lse && lane == 0) lse[row * a.NH + h] = m + logf(l);
}

template <class T>
static void attention_forward_launch(rl_cuda_ctx *ctx, void *out, float *lse, const void *qkv,
                                     const int32_t *lengths, const att_dims &a) {
    size_t warps = (size_t)a.B * a.T * a.NH;
    attention_forward_kernel<T><<<cu_blocks(warps, WARPS), WARPS * 32, 0, ctx->stream>>>(
        (T *)out, lse, (const T *)qkv, lengths, a);
}

void attention_forward_cuda(const rl_backend *be, void *out, float *lse, const void *qkv,
                            const int32_t *lengths, int B, int T, int NH, int NKV, int hd,
                            int window) {
    if (flash_attention_forward_cuda(be, out, lse, qkv, lengths, B, T, NH, NKV, hd, window)) return;
    if (B <= 0 || T <= 0 || NH <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    att_dims a = dims_of(B, T, NH, NKV, hd, window);
    ACT_DISPATCH(be, attention_forward_launch, ctx, out, lse, qkv, lengths, a);
    cudaLaunchCheck(ctx);
}

// ------------------------------------------------------------------------------------------------
// Training backward

// dq of (b, t, h): one warp; warp index = (b*T + t)*NH + h.
template <class T>
__global__ static void attention_backward_dq_kernel(T *dqkv, const T *dout, const T *qkv,
                                                    const T *out, const float *lse,
                                                    const int32_t *lengths, att_dims a) {
    __shared__ float qs[WARPS][RL_MAX_HEAD_DIM], dos[WARPS][RL_MAX_HEAD_DIM];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    size_t gw = (size_t)blockIdx.x * WARPS + warp;
    if (gw >= (size_t)a.B * a.T * a.NH) return;
    int h = (int)(gw % a.NH);
    size_t row = gw / a.NH;
    int t = (int)(row % a.T), b = (int)(row / a.T);
    int len = lengths ? lengths[b] : a.T;
    int hd = a.hd;
    T *dq = dqkv + row * a.qkv_dim + (size_t)h * hd;
    if (t >= len) {
        zero_lanes(dq, hd, lane);
        return;
    }
    int kvh = h / a.rep;
    const T *base = qkv + (size_t)b * a.T * a.qkv_dim;
    const T *kb = base + (size_t)a.NH * hd + (size_t)kvh * hd;
    const T *vb = kb + (size_t)a.NKV * hd;
    const T *dout_t = dout + row * a.att_dim + (size_t)h * hd;
    const T *out_t = out + row * a.att_dim + (size_t)h * hd;
    float *q = qs[warp], *dt = dos[warp];
    load_row(q, base + (size_t)t * a.qkv_dim + (size_t)h * hd, hd, lane);
    load_row(dt, dout_t, hd, lane);
    float D = 0.0f;
    for (int d = lane; d < hd; d += 32) D += dt[d] * to_float(out_t[d]);
    D = warp_sum(D);
    float lse_t = lse[row * a.NH + h];
    float acc[HDL] = {0};
    for (int j0 = first_key(t, a.window); j0 <= t; j0 += 32) {
        int j = j0 + lane;
        float ds = 0.0f;
        if (j <= t) {
            float s = dot_lane(q, kb + (size_t)j * a.qkv_dim, hd);
            float dp = dot_lane(dt, vb + (size_t)j * a.qkv_dim, hd);
            float p = expf(s * a.scale - lse_t);
            ds = p * (dp - D) * a.scale; // d score_j, times the scale
        }
        int nb = min(32, t - j0 + 1);
        for (int u = 0; u < nb; u++) {
            float w = __shfl_sync(0xffffffffu, ds, u);
            axpy_lanes(acc, w, kb + (size_t)(j0 + u) * a.qkv_dim, hd, lane);
        }
    }
    store_lanes(dq, acc, 1.0f, hd, lane);
}

// dk and dv of (b, j, kvh): one warp; warp index = (b*T + j)*NKV + kvh. Key j is seen by the
// queries t in [j, j + window - 1] (all t >= j without a window) below the length, of every
// query head of the group.
template <class T>
__global__ static void attention_backward_dkv_kernel(T *dqkv, const T *dout, const T *qkv,
                                                     const T *out, const float *lse,
                                                     const int32_t *lengths, att_dims a) {
    __shared__ float ks[WARPS][RL_MAX_HEAD_DIM], vs[WARPS][RL_MAX_HEAD_DIM];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    size_t gw = (size_t)blockIdx.x * WARPS + warp;
    if (gw >= (size_t)a.B * a.T * a.NKV) return;
    int kvh = (int)(gw % a.NKV);
    size_t row = gw / a.NKV;
    int j = (int)(row % a.T), b = (int)(row / a.T);
    int len = lengths ? lengths[b] : a.T;
    int hd = a.hd;
    T *dk = dqkv + row * a.qkv_dim + (size_t)a.NH * hd + (size_t)kvh * hd;
    T *dv = dk + (size_t)a.NKV * hd;
    if (j >= len) {
        zero_lanes(dk, hd, lane);
        zero_lanes(dv, hd, lane);
        return;
    }
    const T *base = qkv + (size_t)b * a.T * a.qkv_dim;
    float *k = ks[warp], *v = vs[warp];
    load_row(k, base + (size_t)j * a.qkv_dim + (size_t)a.NH * hd + (size_t)kvh * hd, hd, lane);
    load_row(v, base + (size_t)j * a.qkv_dim + (size_t)(a.NH + a.NKV) * hd + (size_t)kvh * hd, hd,
             lane);
    int tmax = a.window > 0 ? min(len - 1, j + a.window - 1) : len - 1;
    float acc_k[HDL] = {0}, acc_v[HDL] = {0};
    for (int r = 0; r < a.rep; r++) {
        int h = kvh * a.rep + r;
        const T *qh = base + (size_t)h * hd; // query of position t at qh + t*qkv_dim
        size_t orow0 = (size_t)b * a.T;      // output row of position 0
        for (int t0 = j; t0 <= tmax; t0 += 32) {
            int t = t0 + lane;
            float p = 0.0f, ds = 0.0f;
            if (t <= tmax) {
                size_t orow = orow0 + t;
                const T *dout_t = dout + orow * a.att_dim + (size_t)h * hd;
                const T *out_t = out + orow * a.att_dim + (size_t)h * hd;
                float s = dot_lane(k, qh + (size_t)t * a.qkv_dim, hd);
                float dp = dot_lane(v, dout_t, hd);
                float D = 0.0f;
                for (int d = 0; d < hd; d++) D += to_float(dout_t[d]) * to_float(out_t[d]);
                p = expf(s * a.scale - lse[orow * a.NH + h]);
                ds = p * (dp - D) * a.scale;
            }
            int nt = min(32, tmax - t0 + 1);
            for (int u = 0; u < nt; u++) {
                float pu = __shfl_sync(0xffffffffu, p, u);
                float dsu = __shfl_sync(0xffffffffu, ds, u);
                size_t orow = orow0 + t0 + u;
                axpy_lanes(acc_v, pu, dout + orow * a.att_dim + (size_t)h * hd, hd, lane);
                axpy_lanes(acc_k, dsu, qh + (size_t)(t0 + u) * a.qkv_dim, hd, lane);
            }
        }
    }
    store_lanes(dk, acc_k, 1.0f, hd, lane);
    store_lanes(dv, acc_v, 1.0f, hd, lane);
}

template <class T>
static void attention_backward_launch(rl_cuda_ctx *ctx, void *dqkv_, const void *dout_,
                                      const void *qkv_, const void *out_, const float *lse,
                                      const int32_t *lengths, const att_dims &a) {
    T *dqkv = (T *)dqkv_;
    const T *dout = (const T *)dout_, *qkv = (const T *)qkv_, *out = (const T *)out_;
    size_t warps_q = (size_t)a.B * a.T * a.NH, warps_kv = (size_t)a.B * a.T * a.NKV;
    attention_backward_dq_kernel<T><<<cu_blocks(warps_q, WARPS), WARPS * 32, 0, ctx->stream>>>(
        dqkv, dout, qkv, out, lse, lengths, a);
    cudaLaunchCheck(ctx);
    attention_backward_dkv_kernel<T><<<cu_blocks(warps_kv, WARPS), WARPS * 32, 0, ctx->stream>>>(
        dqkv, dout, qkv, out, lse, lengths, a);
    cudaLaunchCheck(ctx);
}

void attention_backward_cuda(const rl_backend *be, void *dqkv, const void *dout, const void *qkv,
                             const void *out, const float *lse, const int32_t *lengths, int B,
                             int T, int NH, int NKV, int hd, int window) {
    if (flash_attention_backward_cuda(be, dqkv, dout, qkv, out, lse, lengths, B, T, NH, NKV, hd,
                                      window))
        return;
    if (B <= 0 || T <= 0 || NH <= 0) return;
    att_dims a = dims_of(B, T, NH, NKV, hd, window);
    ACT_DISPATCH(be, attention_backward_launch, cu_ctx(be), dqkv, dout, qkv, out, lse, lengths, a);
}

// ------------------------------------------------------------------------------------------------
// Paged KV cache. The layout inside a block is the CPU's (kernels/cpu/attention_cpu.c), so pools
// of both backends hold the same elements at the same offsets: pool block b, kv head kvh:
//   keys   at b*KBLOCK*kv_dim + kvh*hd*KBLOCK, transposed [hd][KBLOCK]
//   values at the same offset, rows [KBLOCK][hd]
// The transposed keys suit the one-key-per-lane scoring: lanes read adjacent elements.

template <class T>
__global__ static void kv_store_kernel(T *kpool, T *vpool, const T *qkv, const int32_t *table,
                                       int max_blocks, const int32_t *slot, const int32_t *pos,
                                       int n, int NH, int NKV, int hd) {
    size_t kv_dim = (size_t)NKV * hd, qkv_dim = (size_t)(NH + 2 * NKV) * hd;
    size_t total = (size_t)n * kv_dim;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t i = idx / kv_dim, e = idx % kv_dim; // row, element of its k (or v) part
        int kvh = (int)(e / hd), d = (int)(e % hd);
        if (slot[i] < 0) continue; // a padding row (a CUDA-graph bucket's): nothing to store
        int p = pos[i], jj = p % KBLOCK;
        int32_t b = table[(size_t)slot[i] * max_blocks + p / KBLOCK];
        size_t block = (size_t)b * KBLOCK * kv_dim + (size_t)kvh * hd * KBLOCK;
        const T *k = qkv + i * qkv_dim + (size_t)NH * hd;
        kpool[block + (size_t)d * KBLOCK + jj] = k[e];
        vpool[block + (size_t)jj * hd + d] = k[kv_dim + e];
    }
}

template <class T>
static void kv_store_launch(rl_cuda_ctx *ctx, void *kpool, void *vpool, const void *qkv,
                            const int32_t *block_table, int max_blocks, const int32_t *slot,
                            const int32_t *pos, int n, int NH, int NKV, int hd) {
    size_t total = (size_t)n * NKV * hd;
    kv_store_kernel<T><<<cu_grid(total, RL_CUDA_THREADS), RL_CUDA_THREADS, 0, ctx->stream>>>(
        (T *)kpool, (T *)vpool, (const T *)qkv, block_table, max_blocks, slot, pos, n, NH, NKV, hd);
}

void kv_store_cuda(const rl_backend *be, void *kpool, void *vpool, const void *qkv,
                   const int32_t *block_table, int max_blocks, const int32_t *slot,
                   const int32_t *pos, int n, int NH, int NKV, int hd) {
    if (n <= 0 || NKV <= 0 || hd <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    ACT_DISPATCH(be, kv_store_launch, ctx, kpool, vpool, qkv, block_table, max_blocks, slot, pos, n,
                 NH, NKV, hd);
    cudaLaunchCheck(ctx);
}

// Decode attention, split over the keys: one thread block of SPLITS warps per (row i, query head
// h); warp w takes the cache blocks b = first, first + SPLITS, ... of the row's visible range
// (so a long context is read by SPLITS warps at once instead of one), keeps its own online
// softmax (m, l, acc) in float32, and the partial results are merged in shared memory by warp 0
// in warp order (deterministic). Each warp scores 32 keys at a time, one key per lane.
enum { SPLITS = 8 };

template <class T>
__global__ static void attention_cached_kernel(T *out, const T *qkv, const T *kpool, const T *vpool,
                                               const int32_t *table, int max_blocks,
                                               const int32_t *slot, const int32_t *pos, int NH,
                                               int NKV, int hd, int window, float scale) {
    __shared__ float qs[RL_MAX_HEAD_DIM];
    __shared__ float part[SPLITS][RL_MAX_HEAD_DIM];
    __shared__ float pm[SPLITS], pl[SPLITS];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int h = (int)(blockIdx.x % NH);
    size_t i = blockIdx.x / NH;
    if (slot[i] < 0) { // a padding row: zeros (the whole block returns before any barrier)
        for (int d = threadIdx.x; d < hd; d += blockDim.x)
            out[i * NH * hd + (size_t)h * hd + d] = from_float<T>(0.0f);
        return;
    }
    int kvh = h / (NH / NKV), p = pos[i], j_first = first_key(p, window);
    size_t kv_dim = (size_t)NKV * hd, qkv_dim = (size_t)(NH + 2 * NKV) * hd;
    size_t blk_stride = (size_t)KBLOCK * kv_dim, head = (size_t)kvh * hd * KBLOCK;
    const int32_t *row_table = table + (size_t)slot[i] * max_blocks;
    if (warp == 0) load_row(qs, qkv + i * qkv_dim + (size_t)h * hd, hd, lane);
    __syncthreads();
    float acc[HDL] = {0};
    float m = -INFINITY, l = 0.0f;
    for (int blk = j_first / KBLOCK + warp; blk <= p / KBLOCK; blk += SPLITS) {
        size_t at = (size_t)row_table[blk] * blk_stride + head;
        const T *kt = kpool + at, *vt = vpool + at;
        int lo = max(j_first, blk * KBLOCK), hi = min(p, blk * KBLOCK + KBLOCK - 1);
        for (int j0 = lo; j0 <= hi; j0 += 32) {
            int j = j0 + lane;
            float s = -INFINITY;
            if (j <= hi) {
                const T *kc = kt + j % KBLOCK;
                float dot = 0.0f;
                for (int d = 0; d < hd; d++) dot += qs[d] * to_float(kc[(size_t)d * KBLOCK]);
                s = dot * scale;
            }
            float w = softmax_tile(s, &m, &l, acc);
            int nb = min(32, hi - j0 + 1);
            for (int u = 0; u < nb; u++) {
                float wu = __shfl_sync(0xffffffffu, w, u);
                axpy_lanes(acc, wu, vt + (size_t)((j0 + u) % KBLOCK) * hd, hd, lane);
            }
        }
    }
    store_lanes(part[warp], acc, 1.0f, hd, lane);
    if (lane == 0) pm[warp] = m, pl[warp] = l;
    __syncthreads();
    if (warp != 0) return;
    float M = -INFINITY;
    for (int w = 0; w < SPLITS; w++) M = fmaxf(M, pm[w]);
    float L = 0.0f, o[HDL] = {0};
    for (int w = 0; w < SPLITS; w++) {
        if (pm[w] == -INFINITY) continue; // a warp without keys
        float c = expf(pm[w] - M);
        L += pl[w] * c;
#pragma unroll
        for (int k = 0; k < HDL; k++) {
            int d = lane + 32 * k;
            if (d < hd) o[k] += part[w][d] * c;
        }
    }
    store_lanes(out + i * NH * hd + (size_t)h * hd, o, 1.0f / L, hd, lane);
}

template <class T>
static void attention_cached_launch(rl_cuda_ctx *ctx, void *out, const void *qkv, const void *kpool,
                                    const void *vpool, const int32_t *block_table, int max_blocks,
                                    const int32_t *slot, const int32_t *pos, int n, int NH, int NKV,
                                    int hd, int window) {
    size_t blocks = (size_t)n * NH;
    attention_cached_kernel<T><<<(unsigned)blocks, SPLITS * 32, 0, ctx->stream>>>(
        (T *)out, (const T *)qkv, (const T *)kpool, (const T *)vpool, block_table, max_blocks, slot,
        pos, NH, NKV, hd, window, 1.0f / sqrtf((float)hd));
}

void attention_cached_forward_cuda(const rl_backend *be, void *out, const void *qkv,
                                   const void *kpool, const void *vpool, const int32_t *block_table,
                                   int max_blocks, const int32_t *slot, const int32_t *pos, int n,
                                   int NH, int NKV, int hd, int window) {
    if (n <= 0 || NH <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    ACT_DISPATCH(be, attention_cached_launch, ctx, out, qkv, kpool, vpool, block_table, max_blocks,
                 slot, pos, n, NH, NKV, hd, window);
    cudaLaunchCheck(ctx);
}
