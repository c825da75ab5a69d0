// Causal grouped-query attention on the CPU, without materialising the T x T score matrix.
//
// Keys and values are visited in tiles of KBLOCK positions. A tile of keys is first transposed
// into a local [hd][KBLOCK] array, so that the scores of one query against the whole tile are
// KBLOCK-wide vector FMAs (no horizontal sums per key); the tile is reused by every query that
// sees it. Softmax is online (running max and sum, the accumulator rescaled when the max grows),
// as in flash attention, and the log-sum-exp of each row is kept for the backward pass.
//
// Forward (training): one task per (sequence, kv head, block of QBLOCK query positions), which
// handles every query head of the group sharing the kv head. Backward: one task per (sequence,
// kv head), which owns that kv head's dk/dv and its query heads' dq, so no two threads write the
// same gradient; probabilities are recomputed from the saved log-sum-exp. Decoding against the
// KV cache reads keys already stored as transposed tiles (`attend_cached`). All scores and sums
// are float32; scale hd^-0.5.
#include "kernels/cpu/cpu_common.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

enum {
    KBLOCK = RL_KV_BLOCK, // keys per tile (= the KV cache block)
    QBLOCK = 16,          // query positions per forward task
    MAX_GROUP = 8,        // query heads of one kv head handled together (larger groups in pieces)
};

// First key position a query at position t may see (window = 0: no window).
static inline int first_key(int t, int window) {
    return window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
}

static inline int imin(int a, int b) {
    return a < b ? a : b;
}
static inline int imax(int a, int b) {
    return a > b ? a : b;
}

// kt[d*KBLOCK + j] = row (j0 + j) of base (stride floats apart), element d; lanes j >= nb are 0.
static void load_tile_transposed(float *kt, const float *base, size_t stride, int j0, int nb,
                                 int hd) {
    for (int j = 0; j < nb; j++) {
        const float *row = base + (size_t)(j0 + j) * stride;
        for (int d = 0; d < hd; d++) kt[d * KBLOCK + j] = row[d];
    }
    if (nb < KBLOCK)
        for (int d = 0; d < hd; d++) memset(kt + d * KBLOCK + nb, 0, (KBLOCK - nb) * sizeof(float));
}

// Loads 16 floats into a vector variable (memcpy: unaligned, no aliasing issue).
#define LOAD16(v, p) memcpy(&(v), (p), sizeof(rl_v16))

// s[j] = sum_d q[d] * kt[d][j] for all KBLOCK lanes. Eight 16-lane accumulators (even and odd
// d) stay in registers: enough independent FMA chains to hide their latency. (Named variables,
// not arrays: GCC keeps arrays of vectors in memory.)
_Static_assert(RL_KV_BLOCK == 64, "tile_dots keeps KBLOCK = 4 x 16 lanes in registers");
static void tile_dots(float *s, const float *q, const float *kt, int hd) {
    rl_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
    rl_v16 r0, r1, r2, r3;
    int d = 0;
    for (; d + 1 < hd; d += 2) {
        const float *row = kt + d * KBLOCK;
        float q0 = q[d], q1 = q[d + 1];
        LOAD16(r0, row), LOAD16(r1, row + 16), LOAD16(r2, row + 32), LOAD16(r3, row + 48);
        a0 += q0 * r0, a1 += q0 * r1, a2 += q0 * r2, a3 += q0 * r3;
        row += KBLOCK;
        LOAD16(r0, row), LOAD16(r1, row + 16), LOAD16(r2, row + 32), LOAD16(r3, row + 48);
        b0 += q1 * r0, b1 += q1 * r1, b2 += q1 * r2, b3 += q1 * r3;
    }
    if (d < hd) {
        const float *row = kt + d * KBLOCK;
        LOAD16(r0, row), LOAD16(r1, row + 16), LOAD16(r2, row + 32), LOAD16(r3, row + 48);
        a0 += q[d] * r0, a1 += q[d] * r1, a2 += q[d] * r2, a3 += q[d] * r3;
    }
    a0 += b0, a1 += b1, a2 += b2, a3 += b3;
    memcpy(s, &a0, sizeof a0);
    memcpy(s + 16, &a1, sizeof a1);
    memcpy(s + 32, &a2, sizeof a2);
    memcpy(s + 48, &a3, sizeof a3);
}

// tile_dots for two queries at once: every tile row is loaded once for both.
static void tile_dots2(float *s0, float *s1, const float *q0, const float *q1, const float *kt,
                       int hd) {
    rl_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
    rl_v16 r0, r1, r2, r3;
    for (int d = 0; d < hd; d++) {
        const float *row = kt + d * KBLOCK;
        float x = q0[d], y = q1[d];
        LOAD16(r0, row), LOAD16(r1, row + 16), LOAD16(r2, row + 32), LOAD16(r3, row + 48);
        a0 += x * r0, a1 += x * r1, a2 += x * r2, a3 += x * r3;
        b0 += y * r0, b1 += y * r1, b2 += y * r2, b3 += y * r3;
    }
    memcpy(s0, &a0, sizeof a0), memcpy(s0 + 16, &a1, sizeof a1);
    memcpy(s0 + 32, &a2, sizeof a2), memcpy(s0 + 48, &a3, sizeof a3);
    memcpy(s1, &b0, sizeof b0), memcpy(s1 + 16, &b1, sizeof b1);
    memcpy(s1 + 32, &b2, sizeof b2), memcpy(s1 + 48, &b3, sizeof b3);
}

// One online-softmax step of a row over lanes lo..hi of s (raw dot products): s[lo..hi] become
// exp(scale*s - new max), the running max *m and sum *l are updated and acc[hd] is rescaled to
// the new max. The caller then adds sum_j s[j] * v_j to acc.
static void softmax_step(float *s, int lo, int hi, float scale, float *m, float *l, float *acc,
                         int hd) {
    float mb = *m;
#pragma omp simd reduction(max : mb)
    for (int j = lo; j <= hi; j++) {
        s[j] *= scale;
        mb = s[j] > mb ? s[j] : mb;
    }
    float corr = rl_expf(*m - mb), sum = 0.0f; // corr = 0 on the first tile (m = -inf)
#pragma omp simd reduction(+ : sum)
    for (int j = lo; j <= hi; j++) {
        float p = rl_expf(s[j] - mb);
        s[j] = p;
        sum += p;
    }
    *m = mb;
    *l = *l * corr + sum;
    if (corr != 1.0f) {
#pragma omp simd
        for (int d = 0; d < hd; d++) acc[d] *= corr;
    }
}

// acc += sum_{j=lo..hi} w[j] * row_j, row j at rows + j*stride. With hd a multiple of 16 each
// 16-float column block of acc is summed in four registers (rows j mod 4) across all rows.
static void weighted_rows(float *acc, const float *w, const float *rows, size_t stride, int lo,
                          int hi, int hd) {
    if (hd % 16 == 0) {
        for (int c = 0; c < hd; c += 16) {
            rl_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, r0, r1, r2, r3;
            const float *p = rows + (size_t)lo * stride + c;
            int j = lo;
            for (; j + 3 <= hi; j += 4, p += 4 * stride) {
                LOAD16(r0, p), LOAD16(r1, p + stride), LOAD16(r2, p + 2 * stride);
                LOAD16(r3, p + 3 * stride);
                a0 += w[j] * r0, a1 += w[j + 1] * r1, a2 += w[j + 2] * r2, a3 += w[j + 3] * r3;
            }
            for (; j <= hi; j++, p += stride) {
                LOAD16(r0, p);
                a0 += w[j] * r0;
            }
            LOAD16(r0, acc + c);
            r0 += (a0 + a1) + (a2 + a3);
            memcpy(acc + c, &r0, sizeof r0);
        }
        return;
    }
    int j = lo;
    for (; j + 3 <= hi; j += 4) {
        const float *r0 = rows + (size_t)j * stride;
        rl_axpy4(acc, w + j, r0, r0 + stride, r0 + 2 * stride, r0 + 3 * stride, hd);
    }
    for (; j <= hi; j++) rl_axpy(acc, w[j], rows + (size_t)j * stride, hd);
}

// ------------------------------------------------------------------------------------------------
// Decoding: one query position at a time.

// Attention of g <= MAX_GROUP query heads q[g*hd] (one position) against the cached positions
// j0..j1 of one sequence and kv head: the block holding positions [b*KBLOCK, (b+1)*KBLOCK) is
// pool block table[b], its keys at kpool + table[b]*blk_stride ([hd][KBLOCK], transposed) and its
// values at vpool + table[b]*blk_stride ([KBLOCK][hd]). Writes out[g*hd].
static void attend_cached(float *out, const float *q, const float *kpool, const float *vpool,
                          const int32_t *table, size_t blk_stride, int j0, int j1, int g, int hd,
                          float scale) {
    float s[MAX_GROUP][KBLOCK];
    float acc[MAX_GROUP][RL_MAX_HEAD_DIM];
    float m[MAX_GROUP], l[MAX_GROUP];
    for (int r = 0; r < g; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        memset(acc[r], 0, (size_t)hd * sizeof(float));
    }
    for (int blk = j0 / KBLOCK; blk <= j1 / KBLOCK; blk++) {
        int jb = blk * KBLOCK;
        int lo = imax(j0, jb) - jb, hi = imin(j1, jb + KBLOCK - 1) - jb;
        size_t at = (size_t)table[blk] * blk_stride;
        const float *kt = kpool + at, *vt = vpool + at;
        for (int r = 0; r < g; r += 2) {
            if (r + 1 < g)
                tile_dots2(s[r], s[r + 1], q + (size_t)r * hd, q + (size_t)(r + 1) * hd, kt, hd);
            else
                tile_dots(s[r], q + (size_t)r * hd, kt, hd);
        }
        for (int r = 0; r < g; r++) {
            softmax_step(s[r], lo, hi, scale, &m[r], &l[r], acc[r], hd);
            weighted_rows(acc[r], s[r], vt, (size_t)hd, lo, hi, hd);
        }
    }
    for (int r = 0; r < g; r++) {
        float inv = 1.0f / l[r];
        float *o = out + (size_t)r * hd;
        for (int d = 0; d < hd; d++) o[d] = acc[r][d] * inv;
    }
}

// ------------------------------------------------------------------------------------------------
// Training forward

typedef struct att_shape {
    int T, NH, NKV, hd, window, rep;
    size_t qkv_dim, att_dim;
    float scale;
} att_shape;

static att_shape shape_of(int T, int NH, int NKV, int hd, int window) {
    att_shape a = {T,
                   NH,
                   NKV,
                   hd,
                   window,
                   NH / NKV,
                   (size_t)(NH + 2 * NKV) * hd,
                   (size_t)NH * hd,
                   1.0f / sqrtf((float)hd)};
    return a;
}

// Query positions [t0, t1) of sequence b, query heads r0 .. r0+g-1 of kv head kvh.
static void forward_block(float *out, float *lse, const float *qkv, const att_shape *a, int b,
                          int kvh, int r0, int g, int t0, int t1) {
    int hd = a->hd;
    const float *base = qkv + (size_t)b * a->T * a->qkv_dim;
    const float *kbase = base + (size_t)a->NH * hd + (size_t)kvh * hd;
    const float *vbase = kbase + (size_t)a->NKV * hd;
    float kt[RL_MAX_HEAD_DIM * KBLOCK], s[2][KBLOCK];
    float m[QBLOCK * MAX_GROUP], l[QBLOCK * MAX_GROUP];
    int live[QBLOCK * MAX_GROUP];
    const float *q[2];
    float acc[QBLOCK * MAX_GROUP * RL_MAX_HEAD_DIM];
    int rows = (t1 - t0) * g;
    for (int i = 0; i < rows; i++) m[i] = -INFINITY, l[i] = 0.0f;
    memset(acc, 0, (size_t)rows * hd * sizeof(float));
    int jlo = first_key(t0, a->window), jhi = t1 - 1;
    for (int jb = jlo; jb <= jhi; jb += KBLOCK) {
        int nb = imin(KBLOCK, jhi - jb + 1);
        load_tile_transposed(kt, kbase, a->qkv_dim, jb, nb, hd);
        // the rows (position, head) that see this tile, scored two at a time
        int n_live = 0;
        for (int t = t0; t < t1; t++)
            if (imax(first_key(t, a->window), jb) <= imin(t, jb + nb - 1))
                for (int r = 0; r < g; r++) live[n_live++] = (t - t0) * g + r;
        for (int k = 0; k < n_live; k += 2) {
            int pair = k + 1 < n_live;
            for (int u = 0; u <= pair; u++) {
                int i = live[k + u], t = t0 + i / g, h = kvh * a->rep + r0 + i % g;
                q[u] = base + (size_t)t * a->qkv_dim + (size_t)h * hd;
            }
            if (pair)
                tile_dots2(s[0], s[1], q[0], q[1], kt, hd);
            else
                tile_dots(s[0], q[0], kt, hd);
            for (int u = 0; u <= pair; u++) {
                int i = live[k + u], t = t0 + i / g;
                int lo = imax(first_key(t, a->window), jb) - jb, hi = imin(t, jb + nb - 1) - jb;
                float *ac = acc + (size_t)i * hd;
                softmax_step(s[u], lo, hi, a->scale, &m[i], &l[i], ac, hd);
                weighted_rows(ac, s[u], vbase + (size_t)jb * a->qkv_dim, a->qkv_dim, lo, hi, hd);
            }
        }
    }
    for (int t = t0; t < t1; t++)
        for (int r = 0; r < g; r++) {
            int i = (t - t0) * g + r, h = kvh * a->rep + r0 + r;
            size_t row = (size_t)b * a->T + t;
            float *o = out + row * a->att_dim + (size_t)h * hd, inv = 1.0f / l[i];
            const float *ac = acc + (size_t)i * hd;
            for (int d = 0; d < hd; d++) o[d] = ac[d] * inv;
            if (lse) lse[row * a->NH + h] = m[i] + logf(l[i]);
        }
}

void attention_forward_cpu(const rl_backend *be, void *out_, float *lse, const void *qkv_,
                           const int32_t *lengths, int B, int T, int NH, int NKV, int hd,
                           int window) {
    float *out = out_;
    const float *qkv = qkv_;
    att_shape a = shape_of(T, NH, NKV, hd, window);
    int nqb = (T + QBLOCK - 1) / QBLOCK;
#pragma omp parallel for collapse(3) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int kvh = 0; kvh < NKV; kvh++)
            for (int qb = 0; qb < nqb; qb++) {
                int len = lengths ? lengths[b] : T;
                int t0 = qb * QBLOCK, tend = imin(t0 + QBLOCK, T), t1 = imin(tend, len);
                for (int r0 = 0; r0 < a.rep; r0 += MAX_GROUP)
                    if (t0 < t1)
                        forward_block(out, lse, qkv, &a, b, kvh, r0, imin(MAX_GROUP, a.rep - r0),
                                      t0, t1);
                for (int t = imax(t0, len); t < tend; t++) { // padding: zeros, never attended
                    size_t row = (size_t)b * T + t;
                    memset(out + row * a.att_dim + (size_t)kvh * a.rep * hd, 0,
                           (size_t)a.rep * hd * sizeof(float));
                    if (lse) memset(lse + row * NH + (size_t)kvh * a.rep, 0, a.rep * sizeof(float));
                }
            }
}

// ------------------------------------------------------------------------------------------------
// Training backward

// Everything of sequence b and kv head kvh: dq of its query heads, dk and dv of the kv head.
// Per tile of keys and per query head, queries are taken TCHUNK positions at a time: their
// probabilities P and score gradients dS are computed first ([TCHUNK][KBLOCK]), then dq of each
// query (a weighted sum of key rows) and dk, dv of each key (weighted sums of q and dout rows)
// are accumulated in registers, instead of a load-add-store of dk/dv per (query, key) pair.
static void backward_unit(float *dqkv, const float *dout, const float *qkv, const float *out,
                          const float *lse, const att_shape *a, int b, int kvh, int len) {
    enum { TCHUNK = 32 };
    int hd = a->hd, window = a->window;
    size_t qd = a->qkv_dim, ad = a->att_dim;
    const float *base = qkv + (size_t)b * a->T * qd;
    float *dbase = dqkv + (size_t)b * a->T * qd;
    const float *dout_b = dout + (size_t)b * a->T * ad, *out_b = out + (size_t)b * a->T * ad;
    size_t q_off = (size_t)kvh * a->rep * hd, k_off = (size_t)a->NH * hd + (size_t)kvh * hd;
    size_t v_off = k_off + (size_t)a->NKV * hd;
    for (int t = 0; t < a->T; t++) { // this task owns these columns of every row: clear them
        float *drow = dbase + (size_t)t * qd;
        memset(drow + q_off, 0, (size_t)a->rep * hd * sizeof(float));
        memset(drow + k_off, 0, (size_t)hd * sizeof(float));
        memset(drow + v_off, 0, (size_t)hd * sizeof(float));
    }
    float kt[RL_MAX_HEAD_DIM * KBLOCK], vt[RL_MAX_HEAD_DIM * KBLOCK];
    float dk[KBLOCK * RL_MAX_HEAD_DIM], dv[KBLOCK * RL_MAX_HEAD_DIM];
    float P[TCHUNK][KBLOCK], dS[TCHUNK][KBLOCK], w[TCHUNK];
    for (int jb = 0; jb < len; jb += KBLOCK) {
        int nb = imin(KBLOCK, len - jb);
        load_tile_transposed(kt, base + k_off, qd, jb, nb, hd);
        load_tile_transposed(vt, base + v_off, qd, jb, nb, hd);
        memset(dk, 0, (size_t)nb * hd * sizeof(float));
        memset(dv, 0, (size_t)nb * hd * sizeof(float));
        int tmax = window > 0 ? imin(len - 1, jb + nb - 1 + window - 1) : len - 1;
        for (int r = 0; r < a->rep; r++) {
            int h = kvh * a->rep + r;
            for (int tc = jb; tc <= tmax; tc += TCHUNK) {
                int nt = imin(TCHUNK, tmax - tc + 1);
                for (int u = 0; u < nt; u++) { // P, dS and dq of query tc + u
                    int t = tc + u;
                    int lo = imax(first_key(t, window), jb) - jb, hi = imin(t, jb + nb - 1) - jb;
                    const float *q = base + (size_t)t * qd + (size_t)h * hd;
                    const float *dout_t = dout_b + (size_t)t * ad + (size_t)h * hd;
                    float lse_t = lse[((size_t)b * a->T + t) * a->NH + h];
                    float D = rl_dot(dout_t, out_b + (size_t)t * ad + (size_t)h * hd, hd);
                    float *p = P[u], *ds = dS[u];
                    tile_dots(p, q, kt, hd);       // scores (unscaled)
                    tile_dots(ds, dout_t, vt, hd); // dp_j = dout . v_j
#pragma omp simd
                    for (int j = 0; j < KBLOCK; j++) {
                        float pj = j >= lo && j <= hi ? rl_expf(p[j] * a->scale - lse_t) : 0.0f;
                        p[j] = pj;
                        ds[j] = pj * (ds[j] - D) * a->scale; // d score_j, times the scale
                    }
                    if (lo <= hi)
                        weighted_rows(dbase + (size_t)t * qd + (size_t)h * hd, ds,
                                      base + (size_t)jb * qd + k_off, qd, lo, hi, hd);
                }
                // key j is seen by queries t in [jb+j, jb+j+window-1] (all t >= jb+j if no window)
                const float *q_rows = base + (size_t)tc * qd + (size_t)h * hd;
                const float *dout_rows = dout_b + (size_t)tc * ad + (size_t)h * hd;
                for (int j = 0; j < nb; j++) {
                    int u0 = imax(0, jb + j - tc);
                    int u1 = window > 0 ? imin(nt - 1, jb + j + window - 1 - tc) : nt - 1;
                    if (u0 > u1) continue;
                    for (int u = u0; u <= u1; u++) w[u] = dS[u][j];
                    weighted_rows(dk + (size_t)j * hd, w, q_rows, qd, u0, u1, hd);
                    for (int u = u0; u <= u1; u++) w[u] = P[u][j];
                    weighted_rows(dv + (size_t)j * hd, w, dout_rows, ad, u0, u1, hd);
                }
            }
        }
        for (int j = 0; j < nb; j++) {
            float *drow = dbase + (size_t)(jb + j) * qd;
            rl_axpy(drow + k_off, 1.0f, dk + (size_t)j * hd, hd);
            rl_axpy(drow + v_off, 1.0f, dv + (size_t)j * hd, hd);
        }
    }
}

void attention_backward_cpu(const rl_backend *be, void *dqkv_, const void *dout_, const void *qkv_,
                            const void *out_, const float *lse, const int32_t *lengths, int B,
                            int T, int NH, int NKV, int hd, int window) {
    float *dqkv = dqkv_;
    const float *dout = dout_;
    const float *qkv = qkv_;
    const float *out = out_;
    att_shape a = shape_of(T, NH, NKV, hd, window);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int kvh = 0; kvh < NKV; kvh++)
            backward_unit(dqkv, dout, qkv, out, lse, &a, b, kvh, lengths ? lengths[b] : T);
}

// The paged cache of kernels/kernels.h: position p of slot s lives in pool block
// b = block_table[s][p / KBLOCK], at offset p % KBLOCK; kv head kvh of that block:
//   keys   at b*KBLOCK*kv_dim + kvh*hd*KBLOCK, transposed [hd][KBLOCK]
//   values at the same offset, rows [KBLOCK][hd]
// so that attention reads each block of keys as ready-made transposed tiles.
void kv_store_cpu(const rl_backend *be, void *kpool_, void *vpool_, const void *qkv_,
                  const int32_t *block_table, int max_blocks, const int32_t *slot,
                  const int32_t *pos, int n, int NH, int NKV, int hd) {
    float *kpool = kpool_, *vpool = vpool_;
    const float *qkv = qkv_;
    size_t qkv_dim = (size_t)(NH + 2 * NKV) * hd, kv_dim = (size_t)NKV * hd;
    for (int i = 0; i < n; i++) {
        if (slot[i] < 0) continue; // a padding row: nothing to store
        const float *k = qkv + (size_t)i * qkv_dim + (size_t)NH * hd, *v = k + kv_dim;
        int jj = pos[i] % KBLOCK;
        int32_t b = block_table[(size_t)slot[i] * max_blocks + pos[i] / KBLOCK];
        size_t block = (size_t)b * KBLOCK * kv_dim;
        for (int kvh = 0; kvh < NKV; kvh++) {
            float *kt = kpool + block + (size_t)kvh * hd * KBLOCK;
            for (int d = 0; d < hd; d++) kt[(size_t)d * KBLOCK + jj] = k[(size_t)kvh * hd + d];
            memcpy(vpool + block + (size_t)kvh * hd * KBLOCK + (size_t)jj * hd,
                   v + (size_t)kvh * hd, (size_t)hd * sizeof(float));
        }
    }
}

void attention_cached_forward_cpu(const rl_backend *be, void *out_, const void *qkv_,
                                  const void *kpool_, const void *vpool_,
                                  const int32_t *block_table, int max_blocks, const int32_t *slot,
                                  const int32_t *pos, int n, int NH, int NKV, int hd, int window) {
    float *out = out_;
    const float *qkv = qkv_, *kpool = kpool_, *vpool = vpool_;
    int rep = NH / NKV;
    size_t qkv_dim = (size_t)(NH + 2 * NKV) * hd, kv_dim = (size_t)NKV * hd;
    size_t blk_stride = (size_t)KBLOCK * kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if ((size_t)n * NKV > 1)
    for (int i = 0; i < n; i++) {
        for (int kvh = 0; kvh < NKV; kvh++) {
            size_t head = (size_t)kvh * hd * KBLOCK; // the kv head's part of every block
            float *o = out + (size_t)i * NH * hd + (size_t)kvh * rep * hd;
            if (slot[i] < 0) { // a padding row: zeros
                memset(o, 0, (size_t)rep * hd * sizeof(float));
                continue;
            }
            const int32_t *table = block_table + (size_t)slot[i] * max_blocks;
            const float *q = qkv + (size_t)i * qkv_dim + (size_t)kvh * rep * hd;
            for (int r0 = 0; r0 < rep; r0 += MAX_GROUP)
                attend_cached(o + (size_t)r0 * hd, q + (size_t)r0 * hd, kpool + head, vpool + head,
                              table, blk_stride, first_key(pos[i], window), pos[i],
                              imin(MAX_GROUP, rep - r0), hd, scale);
        }
    }
}
