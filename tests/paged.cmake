# paged: the paged KV cache (forks, copy-on-write, window-freed blocks) against a full forward,
# batch-independent logits, and the continuous-batching engine's scheduling independence and
# preemption.
rl_add_test(test_paged SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_paged.c
            LIBS rl_rollout rl_policy rl_kernels TIMEOUT 300)
