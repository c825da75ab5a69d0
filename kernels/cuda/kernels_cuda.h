/*
 * kernels_cuda: the CUDA implementations of every operation of kernels/kernels.h (xxx_cuda, the
 * very same function types as the CPU's xxx_cpu, so the compiler checks that the two backends
 * match), and the module entry points the dlopen loader looks up.
 *
 * Every pointer argument of an xxx_cuda function is device memory from the CUDA backend's
 * mem_alloc, and every call is queued on the backend's stream (asynchronous: call synchronize,
 * or mem_download, before reading results on the host). The one exception is sumsq, which
 * returns its result on the host and therefore waits.
 *
 * Numerics: weights and activations ("act" pointers) in the backend's act type, float32 or
 * bfloat16 (rl_backend_cuda_open's act); arithmetic, reductions and statistics in float32
 * whatever the act type, each act result rounded once (nearest even) on store. Matrix products:
 * cuBLAS cublasSgemm for float32 (TF32 tensor-op math only when asked for), cuBLASLt with bf16
 * operands and float32 accumulation for bfloat16 (bias in the epilogue; a float32 result where
 * gemm's c_dt asks for it). Plain kernels for the rest. Reductions whose result the CPU makes
 * deterministic are deterministic here too (fixed order, no atomics): bias / RMSNorm weight /
 * embedding gradients, the sum of squares; and the stochastic rounding of
 * adamw_update_master depends only on (seed, element index).
 *
 * Owns: nothing (declarations only). Built only when rlpipe is configured with CUDA
 * (RLPIPE_HAVE_CUDA_BACKEND).
 */
#ifndef RL_KERNELS_CUDA_H
#define RL_KERNELS_CUDA_H

// kernels/backend.h and the headers it includes are C: from CUDA C++ they keep C linkage.
#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/backend.h"

// rl_backend_cuda_open (kernels/backend.h) is defined in backend_cuda.cu. Built as the module
// librlpipe_cuda.so, only the two entry points below are exported (cuda/module.map); the loader
// (kernels/cuda_module.c) checks the ABI stamp, then opens the backend through the module.
#define RL_CUDA_MODULE_EXPORT __attribute__((visibility("default")))
RL_CUDA_MODULE_EXPORT unsigned rl_cuda_module_abi(void);
RL_CUDA_MODULE_EXPORT const rl_backend *rl_cuda_module_open(int device, int tf32, rl_dtype act,
                                                            rl_err *err);

rl_gemm_fn gemm_cuda;
rl_matmul_forward_fn matmul_forward_cuda;
rl_matmul_rows_fn matmul_rows_cuda;
rl_matmul_backward_fn matmul_backward_cuda;
rl_embedding_forward_fn embedding_forward_cuda;
rl_embedding_backward_fn embedding_backward_cuda;
rl_rmsnorm_forward_fn rmsnorm_forward_cuda;
rl_rmsnorm_backward_fn rmsnorm_backward_cuda;
rl_rope_forward_fn rope_forward_cuda;
rl_rope_backward_fn rope_backward_cuda;
rl_swiglu_forward_fn swiglu_forward_cuda;
rl_swiglu_backward_fn swiglu_backward_cuda;
rl_residual_forward_fn residual_forward_cuda;
rl_attention_forward_fn attention_forward_cuda;
rl_attention_backward_fn attention_backward_cuda;
rl_kv_store_fn kv_store_cuda;
rl_attention_cached_forward_fn attention_cached_forward_cuda;
rl_gather_rows_fn gather_rows_cuda;
rl_convert_fn convert_cuda;
rl_logprob_forward_fn logprob_forward_cuda;
rl_logprob_backward_fn logprob_backward_cuda;
rl_logsoftmax_forward_fn logsoftmax_forward_cuda;
rl_adamw_update_fn adamw_update_cuda;
rl_adamw_update_master_fn adamw_update_master_cuda;
rl_sumsq_fn sumsq_cuda;
rl_scale_fn scale_cuda;
rl_fill_fn fill_cuda;
rl_lm_head_logprob_forward_fn lm_head_logprob_forward_cuda;
rl_lm_head_logprob_backward_fn lm_head_logprob_backward_cuda;
rl_rmsnorm_residual_forward_fn rmsnorm_residual_forward_cuda;
rl_sample_fn sample_cuda;

// Decode-step support (step_cuda.cu): the staged upload and graph capture of kernels/backend.h,
// and the release of their context parts (called by the backend's release).
void cuda_mem_upload_staged(const rl_backend *be, const rl_upload *parts, int n);
void cuda_graph_begin(const rl_backend *be);
rl_graph *cuda_graph_end(const rl_backend *be, rl_err *err);
void cuda_graph_launch(const rl_backend *be, rl_graph *g);
void cuda_graph_free(const rl_backend *be, rl_graph *g);

// The tensor-core flash attention (flash_attention_cuda.cu) behind attention_forward_cuda and
// attention_backward_cuda, same arguments (out, qkv, dqkv, dout: act). Each returns 1 when it ran
// the call, 0 when the call is not its kind (act not bf16, head_dim not 64 or 128, an activation
// pointer not 16-byte aligned); the caller then runs the general kernels.
int flash_attention_forward_cuda(const rl_backend *be, void *out, float *lse, const void *qkv,
                                 const int32_t *lengths, int B, int T, int NH, int NKV, int hd,
                                 int window);
int flash_attention_backward_cuda(const rl_backend *be, void *dqkv, const void *dout,
                                  const void *qkv, const void *out, const float *lse,
                                  const int32_t *lengths, int B, int T, int NH, int NKV, int hd,
                                  int window);

#ifdef __cplusplus
}
#endif

#endif
