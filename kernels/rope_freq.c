// rope_freq: the RoPE inverse-frequency table, shared by the CPU kernels and the CUDA module so
// both backends rotate by bit-identical angles. See rl_rope_inv_freq in kernels/kernels.h.
#include "kernels/kernels.h"

#include <math.h>

void rl_rope_inv_freq(float *inv_freq, int hd, float theta) {
    // torch: 1.0 / (base ** (arange(0, hd, 2).float() / hd)), every step in float32
    for (int i = 0; i < hd / 2; i++) inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
}
