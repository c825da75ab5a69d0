# Documentation: every relative link in the repository's Markdown resolves, README.md stays a short
# front door, and rollout/SCHEMA.md matches `rlpipe logs --schema-doc` (test_docs).
rl_add_test(test_docs SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_docs.c LIBS rl_rollout rl_kernels
            TIMEOUT 60)
add_dependencies(test_docs rlpipe)
