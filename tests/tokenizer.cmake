# tokenizer: byte tokenizer, Qwen byte-level BPE parity (../shared vectors), chat templates and
# the `rlpipe tokenize` command (so it needs the binary built).
rl_add_test(test_tokenizer SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer.c
            LIBS rl_policy rl_kernels PkgConfig::JANSSON PkgConfig::UTF8PROC Threads::Threads
            TIMEOUT 120)
add_dependencies(test_tokenizer rlpipe)
