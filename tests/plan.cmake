# plan: the GPU memory planner against hand-computed budgets and the CPU model's measured
# allocations; `rlpipe plan` on the four shipped shapes (configs/shapes/), its verdicts and errors.
rl_add_test(test_plan SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_plan.c
            LIBS rl_policy PkgConfig::JANSSON m TIMEOUT 120)
add_dependencies(test_plan rlpipe)

# scripts/gpu_check.sh --dry-run: the prepared GPU check parses, finds every binary it runs in this
# build and bench_model accepts its sizes and precisions (no GPU needed).
add_test(NAME test_gpu_check_dry COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/gpu_check.sh --dry-run
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(test_gpu_check_dry PROPERTIES TIMEOUT 120
  ENVIRONMENT "GPU_CHECK_BUILD=${PROJECT_BINARY_DIR};OMP_NUM_THREADS=2;OMP_WAIT_POLICY=PASSIVE")
