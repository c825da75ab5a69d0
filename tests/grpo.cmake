# grpo: the policy-gradient loss (clipping, KL estimators, aggregations, gradients) and one update.
rl_add_test(test_grpo SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_grpo.c LIBS rl_policy rl_kernels)
# update: rl_policy_update (epochs x minibatches, reference, non-finite skip) and rl_lr_at.
rl_add_test(test_update SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_update.c LIBS rl_policy rl_kernels)
