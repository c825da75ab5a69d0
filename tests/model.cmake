# model: the Qwen2 forward / backward / KV-cache decoding against an independent double-precision
# reference and finite differences; tensor table, init, a short AdamW run.
rl_add_test(test_model SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_model.c LIBS rl_policy
            TIMEOUT 120)
# recompute: train.recompute layer gives bit-identical log-probs, gradients and AdamW updates.
rl_add_test(test_recompute SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_recompute.c LIBS rl_policy
            TIMEOUT 60)
