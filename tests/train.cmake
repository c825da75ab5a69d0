# train: the GRPO loop end to end through the binary: kill -9 + resume determinism, non-finite
# updates, the per-step query.
rl_add_test(test_train SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_train.c LIBS PkgConfig::SQLITE TIMEOUT 600)
add_dependencies(test_train rlpipe)
