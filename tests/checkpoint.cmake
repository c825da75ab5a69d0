# Checkpoint I/O: safetensors files, sharded checkpoints, Hugging Face config.json.
# (Sources by absolute path: relative ones resolve against tests/, the includer's directory.)
rl_add_test(test_safetensors SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_safetensors.c
            LIBS rl_policy TIMEOUT 120)
rl_add_test(test_hf_config SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_hf_config.c
            LIBS rl_policy TIMEOUT 60)
