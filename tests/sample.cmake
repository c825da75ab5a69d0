# sample: the sampling op of the CPU backend against the rollout engine's host sampling (bit for
# bit, inside the engine too) and the stream positions it draws with.
rl_add_test(test_sample SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sample.c
            LIBS rl_rollout rl_policy rl_kernels TIMEOUT 120)
