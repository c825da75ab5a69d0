# distill: the distillation math (tau, KL loss and gradient, top-k) and the model's backward from
# logits (test_distill); `rlpipe distill` end to end on tiny models (test_distill_cli).
rl_add_test(test_distill SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_distill.c LIBS rl_policy rl_kernels)
rl_add_test(test_distill_cli SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_distill_cli.c
            LIBS PkgConfig::SQLITE TIMEOUT 600)
add_dependencies(test_distill_cli rlpipe)
