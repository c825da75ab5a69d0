// test_model_util: the small Qwen2 configuration the model-level tests share (grouped-query
// attention 4:2, head_dim 4, an untied odd-sized vocabulary), so a shape every test relies on is
// written once. Tests adjust fields (windows, tying, positions) on their copy.
#ifndef RL_TEST_MODEL_UTIL_H
#define RL_TEST_MODEL_UTIL_H

#include "policy/model.h"

static inline rl_model_config test_tiny_config(void) {
    rl_model_config c = {0};
    c.hidden_size = 16;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 4;
    c.intermediate_size = 24;
    c.vocab_size = 37;
    c.max_position_embeddings = 512;
    c.rope_theta = 10000.0;
    c.rms_norm_eps = 1e-6;
    c.tie_word_embeddings = 0;
    c.attention_bias = 1;
    c.bos_token_id = c.eos_token_id = -1;
    return c;
}

#endif
