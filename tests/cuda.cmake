# cuda: the CUDA backend against the CPU backend, op by op and the whole model (only in builds
# with the CUDA backend; without a GPU the test checks the clean failure and exits 77, skipped).
if(RLPIPE_HAVE_CUDA)
  rl_add_test(test_cuda SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cuda.c LIBS rl_policy
              TIMEOUT 300 LABELS cuda)
endif()
