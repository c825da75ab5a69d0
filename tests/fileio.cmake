# policy/fileio: whole-file reads, atomic writes, directories, JSON type names.
rl_add_test(test_fileio SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_fileio.c LIBS rl_policy TIMEOUT 30)
