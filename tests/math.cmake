# Tests of the math accuracy verifier and the path-quality verifier (verifiers/math, verifiers/path).
rl_add_test(test_math_verify SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_math_verify.c LIBS rl_verifier_math Threads::Threads m
            TIMEOUT 120)
if(TARGET rl_verifier_path)
  rl_add_test(test_path_quality SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_path_quality.c LIBS rl_verifier_path Threads::Threads m
              TIMEOUT 120)
endif()
