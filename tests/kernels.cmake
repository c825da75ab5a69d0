# kernels: every op of the backend table against double-precision references and finite
# differences; sampling helpers; AdamW.
rl_add_test(test_kernels SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_kernels.c LIBS rl_kernels
            TIMEOUT 120)
