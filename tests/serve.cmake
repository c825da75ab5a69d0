# serve: `rlpipe serve` over HTTP with curl (tests/test_serve.sh): every endpoint, streaming,
# determinism under batching, the error cases, disconnects, the request log, SIGTERM.
add_test(NAME test_serve COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_serve.sh
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(test_serve PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77
  ENVIRONMENT "RLPIPE_BIN=${PROJECT_BINARY_DIR}/rlpipe;OMP_NUM_THREADS=2;OMP_WAIT_POLICY=PASSIVE")
