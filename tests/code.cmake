# Code verifier and process sandbox (verifiers/code). The hostile programs live in tests/hostile/.
rl_add_test(test_sandbox SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sandbox.c
            LIBS rl_verifier_code Threads::Threads m TIMEOUT 180)
