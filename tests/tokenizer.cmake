# tokenizer: byte tokenizer, Qwen byte-level BPE parity (tests/data/qwen2-tokenizer, inflated with
# zlib), chat templates and the `rlpipe tokenize` command (so it needs the binary built).
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
rl_add_test(test_tokenizer SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer.c
            LIBS rl_policy rl_kernels PkgConfig::JANSSON PkgConfig::UTF8PROC PkgConfig::ZLIB
                 Threads::Threads
            TIMEOUT 120)
add_dependencies(test_tokenizer rlpipe)
