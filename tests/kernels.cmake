# kernels: every op of the backend table against double-precision references and finite
# differences; sampling helpers; AdamW.
rl_add_test(test_kernels SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_kernels.c LIBS rl_kernels
            TIMEOUT 120)
# The CPU's batch-invariant matmul_rows (the decode path's products): double reference, the
# documented summation order bit for bit, batch and thread invariance.
rl_add_test(test_matmul_rows SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_matmul_rows.c LIBS rl_kernels
            TIMEOUT 120)
