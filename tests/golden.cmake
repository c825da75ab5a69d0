# Golden fixtures: Hugging Face transformers parity (tests/golden/, made by scripts/make_golden.py)
# and model directory I/O (save/load, atomic replace, bad checkpoints, rlpipe model init and
# rlpipe logprobs). Both run the rlpipe binary, so it must be built first.
rl_add_test(test_golden SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_golden.c
            LIBS rl_policy PkgConfig::JANSSON TIMEOUT 120)
add_dependencies(test_golden rlpipe)
rl_add_test(test_model_io SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_model_io.c
            LIBS rl_policy PkgConfig::JANSSON TIMEOUT 120)
add_dependencies(test_model_io rlpipe)
