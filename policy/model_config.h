/*
 * model_config: the hyper-parameters of a Qwen2-architecture model, as Hugging Face's config.json
 * names them. Plain data shared by the model (policy/model.h) and checkpoint I/O
 * (policy/hf_config.h reads and writes it as config.json).
 *
 * Owns: nothing (a value type).
 */
#ifndef RL_MODEL_CONFIG_H
#define RL_MODEL_CONFIG_H

#include <stdint.h>

typedef struct rl_model_config {
    int hidden_size;         // C, e.g. 896 for Qwen2.5-0.5B
    int num_hidden_layers;   // L
    int num_attention_heads; // NH (query heads)
    int num_key_value_heads; // NKV (grouped-query: NH % NKV == 0)
    int head_dim; // hd = hidden_size / num_attention_heads unless config.json says otherwise
    int intermediate_size;       // FF, MLP width
    int vocab_size;              // V (may exceed the tokenizer's size: padding rows)
    int max_position_embeddings; // longest sequence the model is meant to see
    double rope_theta;           // RoPE base (1e4 for R1-Distill-1.5B/7B, 1e6 for Qwen2.5)
    double rms_norm_eps;         // 1e-6 (Qwen2.5), 1e-5 (R1-Distill-32B)
    int tie_word_embeddings;     // 1: lm_head is model.embed_tokens.weight (no lm_head tensor)
    int use_sliding_window;      // 0 in every shipped Qwen2.5 / R1-Distill config
    int sliding_window;          // window length in tokens when enabled
    int max_window_layers;       // layers >= this index use the sliding window (when enabled)
    int attention_bias;          // q/k/v projections carry a bias (always 1 for Qwen2)
    int bos_token_id;            // -1 when absent
    int eos_token_id;            // -1 when absent (first id when config.json gives a list)
    int n_eos;                   // how many eos ids config.json lists (up to 4)
    int eos_token_ids[4];
} rl_model_config;

#endif
