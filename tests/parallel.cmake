# parallel: data parallel over 2 MPI ranks (tests/test_parallel.sh): the same rollouts, step
# statistics and (to float32 reassociation) weights as one process; ZeRO-1 equal to the
# all-reduce; sharded sft and eval; resharding a checkpoint; SIGKILL of a rank and --resume.
add_test(NAME test_parallel COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_parallel.sh
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(test_parallel PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS parallel
  ENVIRONMENT "RLPIPE_BIN=${PROJECT_BINARY_DIR}/rlpipe;OMP_WAIT_POLICY=PASSIVE")

# comm: the communicators of kernels/comm.h against sums computed in the test: alone (single) and
# under mpirun with 2 ranks (MPI); RLPIPE_TEST_BACKEND=cuda adds NCCL on a GPU machine.
rl_add_test(test_comm SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_comm.c LIBS rl_kernels TIMEOUT 60)
add_test(NAME test_comm_mpi
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/mpirun.sh 2 $<TARGET_FILE:test_comm>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(test_comm_mpi PROPERTIES TIMEOUT 60 LABELS parallel)
