# The run directory through the binary (issue 9): one process per run (lock), leftovers of killed
# saves removed, output paths checked before the first step, pruning only own checkpoints, busy
# log and stop signals recorded as the run's status.
rl_add_test(test_rundir SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rundir.c LIBS PkgConfig::SQLITE TIMEOUT 600)
add_dependencies(test_rundir rlpipe)
