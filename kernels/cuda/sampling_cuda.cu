// sampling_cuda: the sampling op on the GPU (rl_sample_fn, kernels/kernels.h): one block per
// row of logits, 12 bytes per row out, the logits never leave the device.
//
// The block reproduces the CPU's host sampling (kernels/cpu/sampling_cpu.c) step by step, with
// the same float operations on every probability, so float32 logits give the same tokens:
//   1. row max over V (policy log-prob) and first argmax over [0, vocab_limit) (greedy, softmax);
//   2. softmax: p_i = expf((l_i - max) * (1/T)) * inv0, inv0 = (float)(1 / sum in double);
//   3. top-k: the k-th largest logit found by a radix select (4 passes of 256-bin histograms of
//      the logits' order-preserving integer keys), no sort; renormalise;
//   4. top-p: the same radix select on the MASS above a key, accumulated in 2^-62 fixed point
//      (integer additions: exact, so deterministic whatever the order of the shared-memory
//      atomics, and equal to the CPU's double sums whenever those are exact, i.e. for every
//      probability above ~1e-9). The cut lands inside one group of tied logits; the members
//      of that group are kept in id order while the mass before them is < top_p (the CPU's
//      sorted loop), found with one block-wide prefix count; renormalise;
//   5. min-p: p >= min_p * p_best; renormalise;
//   6. the draw: the first id whose cumulative probability (double, id order) exceeds u, by a
//      block-wide prefix sum over contiguous chunks.
// No probability is stored: each pass recomputes p_i from the logit and the per-row state
// (the scales inv0..inv3 and the thresholds of the filters applied so far), so the kernel needs
// no scratch memory, and a row's logits (600 KB for Qwen's 151,936 ids) stay in L2 between its
// passes. Passes over the row: 3 (greedy, plain temperature), + 5 for top-k, + 5 or 6 for top-p,
// + 1 for min-p. Every reduction has a fixed order (or is an integer sum): deterministic.
#include "kernels/cuda/cuda_common.h"

#include <limits.h>
#include <string.h>

extern "C" {
#include "kernels/rng.h"
}

enum {
    SAMPLE_THREADS = 512, // threads per row block
    RADIX_BINS = 256,     // 8-bit digits: 4 histogram passes select a 32-bit key
};

// 2^62: fixed-point scale of probability masses (a mass of at most 4 fits 64 bits).
#define MASS_ONE 4611686018427387904.0

// What every thread of a row's block knows about the filters applied so far (shared memory).
typedef struct row_state {
    float mx;  // max logit over [0, vocab_limit)
    int best;  // its first id
    float it;  // 1 / temperature
    float inv; // softmax scale: 1 / sum of exponentials (float, as the CPU rounds it)
    int topk_on;
    float kth, inv_k; // top-k: keep logits >= kth, then scale by inv_k
    int topp_on;
    float cut;   // top-p: candidates have p >= cut (or are the best)
    float top_l; // keep l > top_l, or l == top_l with id <= top_id
    int top_id;  //
    float inv_p; // then scale by inv_p
    int minp_on;
    float thr, inv_m; // min-p: keep p >= thr, then scale by inv_m
} row_state;

// The probability of id i (logit l) under the filters applied so far; 0 when dropped. The very
// float operations, in the same order, as rl_sampling_probs on the host.
static __device__ __forceinline__ float stage_prob(const row_state *st, float l, int i) {
    float p = expf((l - st->mx) * st->it) * st->inv;
    if (!(p > 0.0f)) return 0.0f;
    if (st->topk_on) {
        if (l < st->kth) return 0.0f;
        p *= st->inv_k;
    }
    if (st->topp_on) {
        if (!(p >= st->cut || i == st->best)) return 0.0f;
        if (l < st->top_l || (l == st->top_l && i > st->top_id)) return 0.0f;
        p *= st->inv_p;
    }
    if (st->minp_on) {
        if (p < st->thr) return 0.0f;
        p *= st->inv_m;
    }
    return p;
}

// Order-preserving integer key of a float (larger float, larger key; -0 taken as +0).
static __device__ __forceinline__ uint32_t float_key(float x) {
    if (x == 0.0f) x = 0.0f;
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static __device__ __forceinline__ float key_float(uint32_t k) {
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// ------------------------------------------------------------------------------------------------
// Block reductions (every thread calls them; the result reaches all; fixed order)

typedef struct reduce_scratch {
    double d[32];
    long long q[32];
    float f[32];
    int i[32];
} reduce_scratch;

static __device__ double block_sum_double(double x, reduce_scratch *sc) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    x = warp_sum_d(x);
    __syncthreads();
    if (lane == 0) sc->d[warp] = x;
    __syncthreads();
    x = lane < nw ? sc->d[lane] : 0.0;
    return warp_sum_d(x);
}

static __device__ long long block_sum_ll(long long x, reduce_scratch *sc) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    __syncthreads();
    if (lane == 0) sc->q[warp] = x;
    __syncthreads();
    x = lane < nw ? sc->q[lane] : 0;
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

static __device__ int block_min_int(int x, reduce_scratch *sc) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int o = 16; o > 0; o >>= 1) x = min(x, __shfl_xor_sync(0xffffffffu, x, o));
    __syncthreads();
    if (lane == 0) sc->i[warp] = x;
    __syncthreads();
    x = lane < nw ? sc->i[lane] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1) x = min(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

static __device__ int block_max_int(int x, reduce_scratch *sc) {
    return -block_min_int(-x, sc);
}

// (value, id) of the first maximum: larger value wins, equal values the lower id.
static __device__ __forceinline__ void argmax_merge(float *v, int *i, float v2, int i2) {
    if (v2 > *v || (v2 == *v && i2 < *i)) *v = v2, *i = i2;
}

static __device__ void block_argmax(float *v, int *i, reduce_scratch *sc) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, *v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, *i, o);
        argmax_merge(v, i, v2, i2);
    }
    __syncthreads();
    if (lane == 0) sc->f[warp] = *v, sc->i[warp] = *i;
    __syncthreads();
    *v = lane < nw ? sc->f[lane] : -INFINITY;
    *i = lane < nw ? sc->i[lane] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, *v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, *i, o);
        argmax_merge(v, i, v2, i2);
    }
}

// Sum (double) and count of the current probabilities over [0, lim).
static __device__ void mass_and_count(const row_state *st, const float *row, int lim, double *sum,
                                      int *count, reduce_scratch *sc) {
    double s = 0.0;
    long long c = 0;
    for (int i = threadIdx.x; i < lim; i += blockDim.x) {
        float p = stage_prob(st, row[i], i);
        s += p;
        c += p > 0.0f;
    }
    *sum = block_sum_double(s, sc);
    *count = (int)block_sum_ll(c, sc);
}

// ------------------------------------------------------------------------------------------------
// Radix select over the keys of the current candidates (p > 0; with `cut`, also p >= cut or the
// best id). By count (mass = 0): the key of the k-th largest logit. By mass (mass = 1): the
// largest key whose candidates at or above it hold >= target (fixed point); *above receives the
// mass strictly above it, *group_count and *group_mass those of its ties. Returns 0 when even
// all candidates hold less than target (mass mode), else 1.

typedef struct radix_scratch {
    unsigned int count[RADIX_BINS];
    unsigned long long mass[RADIX_BINS];
    uint32_t prefix;
    int found;
    unsigned long long above, gmass;
    unsigned int need, gcount;
} radix_scratch;

static __device__ int radix_select(const row_state *st, const float *row, int lim, int by_mass,
                                   unsigned int k, unsigned long long target, uint32_t *key_out,
                                   unsigned long long *above_out, unsigned int *group_count,
                                   radix_scratch *rs) {
    if (threadIdx.x == 0) {
        rs->prefix = 0;
        rs->found = 1;
        rs->above = 0;
        rs->need = k;
    }
    for (int level = 0; level < 4; level++) {
        int shift = 24 - 8 * level;
        uint32_t hi_mask = level == 0 ? 0u : 0xffffffffu << (32 - 8 * level);
        for (int b = threadIdx.x; b < RADIX_BINS; b += blockDim.x) {
            rs->count[b] = 0;
            rs->mass[b] = 0;
        }
        __syncthreads();
        if (rs->found) {
            uint32_t prefix = rs->prefix;
            for (int i = threadIdx.x; i < lim; i += blockDim.x) {
                float l = row[i];
                float p = stage_prob(st, l, i);
                if (!(p > 0.0f)) continue;
                uint32_t key = float_key(l);
                if ((key & hi_mask) != prefix) continue;
                int bin = (int)((key >> shift) & 0xffu);
                atomicAdd(&rs->count[bin], 1u);
                if (by_mass) atomicAdd(&rs->mass[bin], (unsigned long long)((double)p * MASS_ONE));
            }
        }
        __syncthreads();
        if (threadIdx.x == 0 && rs->found) {
            int b = RADIX_BINS - 1;
            for (; b >= 0; b--) {
                if (by_mass) { // (an empty bin is never the answer, even for target 0)
                    if (rs->count[b] > 0 && rs->above + rs->mass[b] >= target) break;
                    rs->above += rs->mass[b];
                } else {
                    if (rs->count[b] >= rs->need) break;
                    rs->need -= rs->count[b];
                }
            }
            if (b < 0) {
                rs->found = 0;
            } else {
                rs->prefix |= (uint32_t)b << shift;
                rs->gcount = rs->count[b];
                rs->gmass = rs->mass[b];
            }
        }
        __syncthreads();
    }
    *key_out = rs->prefix;
    *above_out = rs->above;
    *group_count = rs->gcount;
    int found = rs->found;
    __syncthreads(); // rs is reused by the next call
    return found;
}

// ------------------------------------------------------------------------------------------------
// Prefix over contiguous chunks: thread t owns ids [t*chunk, (t+1)*chunk).

// The id of the `nth` (1-based) current candidate with logit equal to value, in id order.
static __device__ int nth_tie(const row_state *st, const float *row, int lim, float value, int nth,
                              int *counts) {
    int chunk = (lim + (int)blockDim.x - 1) / (int)blockDim.x;
    int lo = (int)threadIdx.x * chunk, hi = min(lim, lo + chunk);
    int c = 0;
    for (int i = lo; i < hi; i++) c += row[i] == value && stage_prob(st, row[i], i) > 0.0f;
    counts[threadIdx.x] = c;
    __syncthreads();
    if (threadIdx.x == 0) {
        int run = 0; // exclusive prefix, in thread order
        for (int t = 0; t < (int)blockDim.x; t++) {
            int ct = counts[t];
            counts[t] = run;
            run += ct;
        }
    }
    __syncthreads();
    int before = counts[threadIdx.x];
    __syncthreads();
    int found = INT_MAX;
    if (before < nth && before + c >= nth) {
        int seen = before;
        for (int i = lo; i < hi; i++)
            if (row[i] == value && stage_prob(st, row[i], i) > 0.0f && ++seen == nth) {
                found = i;
                break;
            }
    }
    if (threadIdx.x == 0) counts[0] = INT_MAX;
    __syncthreads();
    if (found != INT_MAX) counts[0] = found; // exactly one thread finds it
    __syncthreads();
    int id = counts[0];
    __syncthreads();
    return id;
}

// The first id whose cumulative probability (id order, double) exceeds u; if none (u at the
// rounding edge of the total), the last kept id.
static __device__ int draw_token(const row_state *st, const float *row, int lim, float u,
                                 double *partial, reduce_scratch *sc) {
    int chunk = (lim + (int)blockDim.x - 1) / (int)blockDim.x;
    int lo = (int)threadIdx.x * chunk, hi = min(lim, lo + chunk);
    double s = 0.0;
    int last = -1;
    for (int i = lo; i < hi; i++) {
        float p = stage_prob(st, row[i], i);
        if (p > 0.0f) {
            s += p;
            last = i;
        }
    }
    partial[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double run = 0.0;
        for (int t = 0; t < (int)blockDim.x; t++) {
            double pt = partial[t];
            partial[t] = run;
            run += pt;
        }
    }
    __syncthreads();
    double cum = partial[threadIdx.x];
    int hit = INT_MAX;
    // The crossing may be in this chunk (with slack for the rounding of the chunk sums: a chunk
    // scanned for nothing finds no hit).
    if ((double)u < (cum + s) * (1.0 + 1e-12) && (double)u >= cum * (1.0 - 1e-12))
        for (int i = lo; i < hi; i++) {
            float p = stage_prob(st, row[i], i);
            if (!(p > 0.0f)) continue;
            cum += p;
            if ((double)u < cum) {
                hit = i;
                break;
            }
        }
    hit = block_min_int(hit, sc);
    last = block_max_int(last, sc);
    return hit != INT_MAX ? hit : (last >= 0 ? last : 0);
}

// ------------------------------------------------------------------------------------------------
// The kernel: one block per row.

// (launch bounds: 512 threads must fit the register file, at most 128 registers a thread)
__global__ static void __launch_bounds__(SAMPLE_THREADS)
    sample_kernel(int32_t *tokens, float *logp_sample, float *logp_policy, const float *logits,
                  const uint64_t *rng, const rl_sampling *params, int V, int lim) {
    __shared__ row_state st;
    __shared__ reduce_scratch sc;
    __shared__ radix_scratch rs;
    __shared__ double partial[SAMPLE_THREADS];
    __shared__ int counts[SAMPLE_THREADS];
    size_t r = blockIdx.x;
    const float *row = logits + r * (size_t)V;
    rl_sampling s = params[r];

    // 1. max over the row, first argmax over [0, lim)
    float vmax = -INFINITY, vbest = -INFINITY;
    int ibest = INT_MAX;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float l = row[i];
        vmax = fmaxf(vmax, l);
        if (i < lim) argmax_merge(&vbest, &ibest, l, i);
    }
    vmax = block_max(vmax, sc.f);
    block_argmax(&vbest, &ibest, &sc);
    int greedy = !(s.temperature > 0.0f);
    float it = greedy ? 1.0f : 1.0f / s.temperature;

    // 2. the policy's normaliser (full row, temperature 1) and the softmax's (temperature T)
    double S_full = 0.0, S0 = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float l = row[i];
        S_full += expf(l - vmax);
        if (!greedy && i < lim) S0 += expf((l - vbest) * it);
    }
    S_full = block_sum_double(S_full, &sc);
    int t = ibest;
    float lp_sample = 0.0f;
    if (!greedy) {
        S0 = block_sum_double(S0, &sc);
        if (threadIdx.x == 0) {
            memset(&st, 0, sizeof st);
            st.mx = vbest;
            st.best = ibest;
            st.it = it;
            st.inv = (float)(1.0 / S0);
        }
        __syncthreads();
        double sum;
        int n;
        mass_and_count(&st, row, lim, &sum, &n, &sc);

        // 3. top-k
        if (s.top_k > 0 && s.top_k < n) {
            uint32_t key;
            unsigned long long above;
            unsigned int gcount;
            radix_select(&st, row, lim, 0, (unsigned)s.top_k, 0, &key, &above, &gcount, &rs);
            if (threadIdx.x == 0) st.kth = key_float(key), st.topk_on = 1, st.inv_k = 1.0f;
            __syncthreads();
            mass_and_count(&st, row, lim, &sum, &n, &sc); // with inv_k = 1: the kept mass
            if (threadIdx.x == 0) st.inv_k = (float)(1.0 / sum);
            __syncthreads();
        }

        // 4. top-p
        if (s.top_p < 1.0f && n > 1) {
            if (threadIdx.x == 0) {
                st.cut = (float)((1.0 - s.top_p) / (n - 1));
                st.top_l = -INFINITY; // candidates only (inv_p = 1): the selection's input
                st.top_id = INT_MAX;
                st.inv_p = 1.0f;
                st.topp_on = 1;
            }
            __syncthreads();
            uint32_t key;
            unsigned long long above;
            unsigned int gcount;
            unsigned long long target = (unsigned long long)((double)s.top_p * MASS_ONE);
            int found = radix_select(&st, row, lim, 1, 0, target, &key, &above, &gcount, &rs);
            if (found) {
                float v = key_float(key);
                // The tied group at v in id order, as the CPU's sorted loop: a member is kept
                // while the mass ranked before it is < top_p (the first of the best always).
                __shared__ int keep_n;
                if (threadIdx.x == 0) {
                    float q = expf((v - st.mx) * st.it) * st.inv;
                    if (st.topk_on) q *= st.inv_k;
                    double before = (double)above / MASS_ONE;
                    int c = 0;
                    for (unsigned j = 0; j < gcount; j++) {
                        if (!(v == st.mx && j == 0) && before >= s.top_p) break;
                        c++;
                        before += q;
                    }
                    keep_n = c > 0 ? c : 1; // the selection says: mass above it < top_p
                }
                __syncthreads();
                int c = keep_n;
                int id = c >= (int)gcount ? INT_MAX : nth_tie(&st, row, lim, v, c, counts);
                if (threadIdx.x == 0) st.top_l = v, st.top_id = id;
                __syncthreads();
            }
            mass_and_count(&st, row, lim, &sum, &n, &sc);
            if (threadIdx.x == 0) st.inv_p = (float)(1.0 / sum);
            __syncthreads();
        }

        // 5. min-p
        if (s.min_p > 0.0f && n > 1) {
            if (threadIdx.x == 0) {
                st.thr = s.min_p * stage_prob(&st, row[st.best], st.best);
                st.inv_m = 1.0f;
                st.minp_on = 1;
            }
            __syncthreads();
            mass_and_count(&st, row, lim, &sum, &n, &sc);
            if (threadIdx.x == 0) st.inv_m = (float)(1.0 / sum);
            __syncthreads();
        }

        // 6. the draw
        float u = rl_philox_uniform(rng[2 * r], rng[2 * r + 1]);
        t = draw_token(&st, row, lim, u, partial, &sc);
        lp_sample = logf(stage_prob(&st, row[t], t));
    }
    if (threadIdx.x == 0) {
        tokens[r] = t;
        logp_sample[r] = lp_sample;
        logp_policy[r] = (float)((double)(row[t] - vmax) - log(S_full));
    }
}

extern "C" void sample_cuda(const rl_backend *be, int32_t *tokens, float *logp_sample,
                            float *logp_policy, const float *logits, const uint64_t *rng,
                            const rl_sampling *s, int n, int V, int vocab_limit) {
    if (n <= 0) return;
    rl_cuda_ctx *ctx = cu_ctx(be);
    sample_kernel<<<n, SAMPLE_THREADS, 0, ctx->stream>>>(tokens, logp_sample, logp_policy, logits,
                                                         rng, s, V, vocab_limit);
    cudaLaunchCheck(ctx);
}
