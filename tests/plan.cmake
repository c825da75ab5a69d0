# plan: the GPU memory planner against hand-computed budgets and the CPU model's measured
# allocations; `rlpipe plan` on the four shipped shapes (configs/shapes/), its verdicts and errors.
rl_add_test(test_plan SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_plan.c
            LIBS rl_policy PkgConfig::JANSSON m TIMEOUT 120)
add_dependencies(test_plan rlpipe)
