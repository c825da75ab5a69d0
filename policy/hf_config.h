/*
 * hf_config: Hugging Face config.json (and generation_config.json) for Qwen2-architecture models,
 * read into and written from rl_model_config.
 *
 * Loading follows transformers' Qwen2Config: keys that are absent take its defaults
 * (vocab_size 151936, max_position_embeddings 32768, rope_theta 10000, rms_norm_eps 1e-6,
 * tie_word_embeddings false, use_sliding_window false, sliding_window 4096, max_window_layers 28,
 * num_key_value_heads = num_attention_heads, head_dim = hidden_size / num_attention_heads), with
 * one deliberate difference: hidden_size, intermediate_size, num_hidden_layers and
 * num_attention_heads are required (transformers would silently build a 7B-sized default).
 * attention_bias is always 1: Qwen2 hard-codes the q/k/v bias. model_type must be "qwen2" (if
 * absent, architectures must list Qwen2ForCausalLM); hidden_act must be silu; rope_scaling must
 * be absent, null or of type "default"; quantization_config is rejected; a transformers-5 style
 * rope_parameters object is understood; a layer_types list must match the sliding-window rule.
 * eos_token_id may be an integer, a list (up to 4) or null. A value of the wrong JSON type is
 * RL_EINPUT naming the file and the key. Sizes have upper bounds far above any real model, so
 * that nothing absurd is allocated and no product of two sizes overflows: hidden_size 65536,
 * intermediate_size 2^20, num_hidden_layers / num_attention_heads / num_key_value_heads /
 * head_dim 1024, vocab_size and max_position_embeddings 2^24 ("\"vocab_size\" = N is out of
 * range [1, 16777216]"). Whether the sizes match the weights is checked by rl_model_load.
 *
 * Saving writes every field above in the layout transformers writes (sorted keys, indent 2),
 * so AutoConfig / AutoModelForCausalLM.from_pretrained accept the directory.
 *
 * Owns: nothing (functions over a caller's rl_model_config).
 */
#ifndef RL_HF_CONFIG_H
#define RL_HF_CONFIG_H

#include <stddef.h>

#include "kernels/rl_error.h"
#include "policy/model_config.h"

// transformers' Qwen2Config defaults for every field (hidden 4096, 32 layers, ...), bos/eos -1.
void rl_hf_config_defaults(rl_model_config *cfg);

// Reads `path_or_dir` (a config.json file, or a directory holding one) into *cfg.
int rl_hf_config_load(rl_model_config *cfg, const char *path_or_dir, rl_err *err);

// The same from JSON text; `source` names it in messages (e.g. a file path).
int rl_hf_config_parse(rl_model_config *cfg, const char *json, size_t len, const char *source,
                       rl_err *err);

// Consistency checks shared by load and save: positive sizes, heads % kv_heads == 0, finite
// positive eps and theta, token ids in range. `source` names the config in messages.
int rl_hf_config_check(const rl_model_config *cfg, const char *source, rl_err *err);

// Writes dir/config.json (atomically). torch_dtype: "float32" or "bfloat16" (NULL: float32),
// the dtype the weights are stored in.
int rl_hf_config_save(const rl_model_config *cfg, const char *dir, const char *torch_dtype,
                      rl_err *err);

// Writes dir/generation_config.json with bos_token_id and eos_token_id (an integer, or a list
// when the config has several).
int rl_hf_generation_config_save(const rl_model_config *cfg, const char *dir, rl_err *err);

#endif
