# `rlpipe logs` and rl_log readers: read-only by construction (every write attempt refused), no
# -wal/-shm left behind, read-only directories; writers' busy timeout (issue 9).
rl_add_test(test_logs_guard SOURCES ${PROJECT_SOURCE_DIR}/tests/test_logs_guard.c
            LIBS rl_rollout rl_kernels PkgConfig::SQLITE TIMEOUT 300)
add_dependencies(test_logs_guard rlpipe)
