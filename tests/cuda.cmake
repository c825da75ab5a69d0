# cuda: the CUDA backend against the CPU backend, op by op and the whole model (only in builds
# with the CUDA backend; without a GPU the test checks the clean failure and exits 77, skipped).
if(RLPIPE_HAVE_CUDA)
  rl_add_test(test_cuda SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda.c LIBS rl_policy
              TIMEOUT 300 LABELS cuda)
  # cuda_paged: the paged KV store and split-over-blocks decode attention, and the model's
  # paged decode with forks and window layers, against the CPU.
  rl_add_test(test_cuda_paged SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_paged.c LIBS rl_policy
              TIMEOUT 300 LABELS cuda)
  # the fused lm_head / RMSNorm + residual ops (kernels/cuda/lmhead_cuda.cu) against the CPU's
  rl_add_test(test_cuda_lmhead SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_lmhead.c
              LIBS rl_policy TIMEOUT 300 LABELS cuda)
  # the decode-step ops: sampling (same tokens as the CPU), staged uploads, graph capture
  rl_add_test(test_cuda_sample SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_sample.c
              LIBS rl_kernels TIMEOUT 300 LABELS cuda)
  # the decode step as CUDA graphs per batch bucket: padding rows, graph == op-by-op logits bit
  # for bit (forks, new blocks, buffer growth, another cache), the engine with graphs on and off
  rl_add_test(test_cuda_graphs SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_graphs.c
              LIBS rl_rollout TIMEOUT 300 LABELS cuda)
  # the bf16 backend against the CPU, op by op (llm.c's atol + rtol*|ref| rule)
  rl_add_test(test_cuda_bf16 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_bf16.c LIBS rl_kernels
              TIMEOUT 300 LABELS cuda)
  # the whole model and its optimizer in bf16 mixed precision against the CPU float32 model:
  # logits, gradients, a 30-step SFT loss curve, reproducible stochastic rounding
  rl_add_test(test_cuda_mixed SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_mixed.c LIBS rl_policy
              TIMEOUT 300 LABELS cuda)
  # the batch-invariant matmul_rows of the decode path: the CPU's bits, float32 and bf16
  rl_add_test(test_cuda_rows SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_rows.c LIBS rl_kernels
              TIMEOUT 300 LABELS cuda)
  # the fused (flash) attention, bf16 and float32, against the CPU's
  rl_add_test(test_cuda_flash SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda_flash.c LIBS rl_kernels
              TIMEOUT 300 LABELS cuda)
endif()

# cuda_emu: every CUDA kernel of kernels/cuda/ compiled as C++ against the CPU emulation of the
# CUDA runtime, cuBLAS and cuBLASLt (kernels/cuda/emu/check.sh), then every test of its list (the
# CUDA tests, test_kernels, test_model and test_lmhead) on it: the GPU code is checked against
# the CPU backend on every CI run, without a GPU. It
# builds its own CPU-only copy of the libraries in the build folder, so it runs in the plain pass
# only (a few minutes on 2 cores); `ctest -L emu` runs it alone.
if(NOT RLPIPE_SANITIZE)
  add_test(NAME test_cuda_emu COMMAND sh ${PROJECT_SOURCE_DIR}/kernels/cuda/emu/check.sh
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_cuda_emu PROPERTIES TIMEOUT 1800 LABELS "cuda;emu"
    ENVIRONMENT "EMU_BUILD=${PROJECT_BINARY_DIR}/emu-build;OMP_NUM_THREADS=2;OMP_WAIT_POLICY=PASSIVE")
endif()
