# report: `rlpipe report` through the binary on micro runs (live, finished, killed, overlaid),
# an empty log, a stripped log and hostile text; PNGs decoded with cairo.
rl_add_test(test_report SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_report.c
            LIBS rl_rollout rl_kernels PkgConfig::CAIRO PkgConfig::JANSSON PkgConfig::SQLITE m
            TIMEOUT 600)
add_dependencies(test_report rlpipe)
