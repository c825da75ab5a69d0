# Run config (cli/config*.c): schema, YAML loading, --set, round trip, error messages, the
# malformed configs in tests/configs_bad/ and configs/README.md being up to date (test_config);
# the rlpipe binary's exit codes, --help and `rlpipe config` (test_cli).
rl_add_test(test_config SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_config.c LIBS rl_cli TIMEOUT 60)
rl_add_test(test_cli SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cli.c TIMEOUT 60)
add_dependencies(test_cli rlpipe)
