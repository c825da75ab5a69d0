# The SQLite rollout log and `rlpipe logs` (the CLI part runs the built binary).
rl_add_test(test_log SOURCES ${PROJECT_SOURCE_DIR}/tests/test_log.c
            LIBS rl_rollout rl_kernels PkgConfig::SQLITE PkgConfig::JANSSON TIMEOUT 120)
add_dependencies(test_log rlpipe)
