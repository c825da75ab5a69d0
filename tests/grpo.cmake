# grpo: the policy-gradient loss (clipping, KL estimators, aggregations, gradients) and one update.
rl_add_test(test_grpo SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_grpo.c LIBS rl_policy rl_kernels)
