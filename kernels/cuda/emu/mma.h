/*
 * emu/mma.h: a CPU stand-in for the subset of CUDA's warp matrix API (<mma.h>, nvcuda::wmma)
 * that kernels/cuda/ uses: 16x16x16 tiles, bf16 (__nv_bfloat16) operands
 * with float32 accumulators; fragment, fill_fragment, load_matrix_sync, mma_sync,
 * store_matrix_sync. Only check.sh puts this folder on the include path.
 *
 * Semantics, as the CUDA C++ Programming Guide states them for the real API:
 * - every operation is warp-collective: all 32 lanes call it with the same arguments (checked
 *   here: each operation is a __syncwarp, so a lane that skips one deadlocks or trips the
 *   barrier count, instead of silently working);
 * - the pointer of a load or store is 256-bit (32-byte) aligned and ldm is a multiple of 16 bytes
 *   (8 bf16 elements, 4 floats) (checked: abort with a message);
 * - matrix_a is M x K, matrix_b is K x N, the accumulator M x N; row_major means element (r, c)
 *   at ptr[r*ldm + c], col_major at ptr[c*ldm + r]; mma_sync computes d = a*b + c with products
 *   of bf16 values exact in float32 and float32 sums (sequential in k here; the hardware's order
 *   and rounding inside one 16-long dot product are unspecified, so kernels must tolerate either);
 * - which lane holds which element of a fragment is unspecified. Here every lane holds the
 *   WHOLE tile (a copy each) and the fragment has no public `x[]`: a kernel that reads or writes
 *   fragment elements (relying on one mapping) does not compile against this header, so per-row
 *   work (softmax statistics, rescaling) must go through memory, which is also what the real
 *   API allows portably.
 *
 * Owns: nothing (inline templates only).
 */
#ifndef RL_EMU_MMA_H
#define RL_EMU_MMA_H

#include "cuda_bf16.h"
#include "cuda_runtime.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <type_traits>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

// Rows and columns of the tile a fragment of role Use holds.
template <class Use, int M, int N, int K> struct tile_shape;
template <int M, int N, int K> struct tile_shape<matrix_a, M, N, K> {
    enum { rows = M, cols = K };
};
template <int M, int N, int K> struct tile_shape<matrix_b, M, N, K> {
    enum { rows = K, cols = N };
};
template <int M, int N, int K> struct tile_shape<accumulator, M, N, K> {
    enum { rows = M, cols = N };
};

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "emu: only 16x16x16 tiles are emulated");
    enum { rows = tile_shape<Use, M, N, K>::rows, cols = tile_shape<Use, M, N, K>::cols };
    float emu_tile[rows * cols]; // the whole tile, row-major, in every lane (see above)
};

static inline float emu_to_float(float v) {
    return v;
}
static inline float emu_to_float(__nv_bfloat16 v) {
    return __bfloat162float(v);
}

template <class T>
static inline void emu_check_pointer(const T *ptr, unsigned ldm, const char *op) {
    if ((uintptr_t)ptr % 32 != 0 || (ldm * sizeof(T)) % 16 != 0) {
        fprintf(stderr,
                "emu: wmma::%s: pointer %p not 32-byte aligned or ldm %u not a multiple of 16 "
                "bytes\n",
                op, (const void *)ptr, ldm);
        abort();
    }
}

template <class Use, int M, int N, int K, class T, class Layout, class V>
void fill_fragment(fragment<Use, M, N, K, T, Layout> &f, V value) {
    emu_syncwarp();
    for (int i = 0; i < f.rows * f.cols; i++) f.emu_tile[i] = emu_to_float(value);
}

// matrix_a / matrix_b fragments: the layout is part of the type.
template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f, const T *ptr, unsigned ldm) {
    static_assert(std::is_same<Layout, row_major>::value || std::is_same<Layout, col_major>::value,
                  "a matrix_a / matrix_b fragment has a layout");
    emu_check_pointer(ptr, ldm, "load_matrix_sync");
    emu_syncwarp();
    const bool rm = std::is_same<Layout, row_major>::value;
    for (int r = 0; r < f.rows; r++)
        for (int c = 0; c < f.cols; c++)
            f.emu_tile[r * f.cols + c] =
                emu_to_float(rm ? ptr[(size_t)r * ldm + c] : ptr[(size_t)c * ldm + r]);
    emu_syncwarp(); // every lane has read before any lane writes that memory again
}

// accumulator fragments: the layout is an argument.
template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float> &f, const float *ptr, unsigned ldm,
                      layout_t layout) {
    emu_check_pointer(ptr, ldm, "load_matrix_sync");
    emu_syncwarp();
    for (int r = 0; r < f.rows; r++)
        for (int c = 0; c < f.cols; c++)
            f.emu_tile[r * f.cols + c] =
                layout == mem_row_major ? ptr[(size_t)r * ldm + c] : ptr[(size_t)c * ldm + r];
    emu_syncwarp();
}

template <int M, int N, int K>
void store_matrix_sync(float *ptr, const fragment<accumulator, M, N, K, float> &f, unsigned ldm,
                       layout_t layout) {
    emu_check_pointer(ptr, ldm, "store_matrix_sync");
    emu_syncwarp();
    if (emu_lane() == 0) // one copy of the tile; every lane holds the same
        for (int r = 0; r < f.rows; r++)
            for (int c = 0; c < f.cols; c++)
                (layout == mem_row_major ? ptr[(size_t)r * ldm + c] : ptr[(size_t)c * ldm + r]) =
                    f.emu_tile[r * f.cols + c];
    emu_syncwarp();
}

template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float> &d, const fragment<matrix_a, M, N, K, T, LA> &a,
              const fragment<matrix_b, M, N, K, T, LB> &b,
              const fragment<accumulator, M, N, K, float> &c) {
    emu_syncwarp();
    float out[M * N];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = c.emu_tile[i * N + j];
            for (int k = 0; k < K; k++) s += a.emu_tile[i * K + k] * b.emu_tile[k * N + j];
            out[i * N + j] = s;
        }
    for (int i = 0; i < M * N; i++) d.emu_tile[i] = out[i];
}

} // namespace wmma
} // namespace nvcuda

#endif
