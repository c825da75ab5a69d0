# rollout: the sampling engine, procedural tasks and teacher (scored by the real verifiers), datasets.
rl_add_test(test_rollout SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rollout.c
            LIBS rl_rollout rl_reward rl_policy rl_kernels TIMEOUT 120)
# batch: the rl_batch record shared by training, evaluation and sampling.
rl_add_test(test_batch SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_batch.c LIBS rl_rollout rl_policy rl_kernels)
