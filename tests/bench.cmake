# bench: benchmark files in their releases' formats, LiveCodeBench's pickle-free decoding, the
# choice verifier, pass@k, and `rlpipe eval --benchmark` end to end (tests/data/bench/).
rl_add_test(test_bench SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bench.c
            LIBS rl_rollout rl_verifier_choice rl_kernels PkgConfig::JANSSON PkgConfig::SQLITE
                 ZLIB::ZLIB m)
add_dependencies(test_bench rlpipe)
