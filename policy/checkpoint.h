/*
 * checkpoint: a Qwen2 model (policy/model.h) loaded from and saved to a Hugging Face model
 * directory, the layout transformers' from_pretrained / save_pretrained use:
 *
 *   DIR/config.json                   hyper-parameters (policy/hf_config.h)
 *   DIR/model.safetensors             weights, F32 / BF16 / F16, HF tensor names; or
 *   DIR/model.safetensors.index.json  + the shards its weight_map names (policy/safetensors.h)
 *   DIR/generation_config.json        bos / eos ids (written; ignored when loading)
 *   DIR/tokenizer.json (+ tokenizer_config.json, ...)   a Hugging Face tokenizer, or
 *   DIR/rlpipe_tokenizer.json         {"kind": "byte"}: the model uses rlpipe's byte tokenizer
 *
 * Loading is strict about what the model needs and lenient about the rest, like transformers:
 * every tensor the config implies must be present with exactly its shape (else RL_EINPUT naming
 * the tensor and the file); tensors the model does not use (old *.rotary_emb.inv_freq buffers)
 * are ignored with a warning on stderr. With tie_word_embeddings a redundant lm_head.weight (old
 * Qwen1.5 exports carry a copy of the embedding) is ignored: the embedding is the output layer,
 * as in vLLM; a warning says so when the two differ. (transformers' from_pretrained would then
 * load lm_head.weight's values into the shared matrix, embedding included, an accident of its
 * load order verified with 4.44 by scripts/make_golden.py.)
 *
 * Saving is atomic at the directory level: everything is written into a fresh sibling
 * DIR.tmp-XXXXXX, synced, then swapped in with one rename (renameat2 RENAME_EXCHANGE where the
 * kernel has it) and the old contents deleted. A failure at any point leaves DIR exactly as it
 * was and no temporary directory behind. An existing DIR is replaced only if it is empty or is a
 * model directory (holds config.json); tokenizer files in it are carried over unless the save
 * names a tokenizer.
 *
 * Owns: nothing beyond the call (a loaded model belongs to the caller: rl_model_free).
 */
#ifndef RL_CHECKPOINT_H
#define RL_CHECKPOINT_H

#include <stddef.h>

#include "kernels/backend.h"
#include "kernels/rl_error.h"
#include "policy/model.h"

#define RL_TOKENIZER_MARKER "rlpipe_tokenizer.json"

// Creates *out from the model directory `dir` (config.json + safetensors, single or sharded) on
// backend be. Warnings (ignored tensors) go to stderr. On failure *out is NULL.
int rl_model_load(rl_model **out, const char *dir, const rl_backend *be, rl_err *err);

typedef struct rl_model_save_opts {
    int bf16;               // store the weights as BF16 (torch_dtype bfloat16); 0 = F32
    const char *tokenizer;  // NULL: keep the tokenizer files of the directory being replaced;
                            // "byte": write rlpipe_tokenizer.json; else a tokenizer.json or a
                            // directory holding one, copied with its companion files
    size_t max_shard_bytes; // 0: one model.safetensors; else shards of at most this many bytes
} rl_model_save_opts;

// Saves m as a Hugging Face model directory (config.json, generation_config.json, weights),
// atomically as described above. bf16: weights as BF16 (round to nearest even), else F32.
int rl_model_save(const rl_model *m, const char *dir, int bf16, rl_err *err);
int rl_model_save_ex(const rl_model *m, const char *dir, const rl_model_save_opts *opts,
                     rl_err *err);

// Whether a save to dir would be allowed (it is absent, or an empty or model directory, not a
// symbolic link), with rl_model_save's message; nothing is created. Lets a run check its output
// paths before its first step instead of failing at the end.
int rl_model_check_save_dir(const char *dir, rl_err *err);

// Puts a tokenizer into an existing model directory, each file atomically: "byte" writes
// rlpipe_tokenizer.json; a tokenizer.json path (or a directory holding one) copies tokenizer.json
// and, when present next to it, tokenizer_config.json, special_tokens_map.json,
// added_tokens.json, vocab.json, merges.txt. The other kind's files are removed.
int rl_model_save_tokenizer(const char *dir, const char *tokenizer, rl_err *err);

// What to give rl_tokenizer_load for the model in `dir`: "byte" (rlpipe_tokenizer.json says so)
// or dir itself (it holds tokenizer.json), written to buf[size]. RL_EINPUT when dir has neither.
int rl_model_tokenizer_path(const char *dir, char *buf, size_t size, rl_err *err);

// Parameters of a Qwen2 model with this config as Hugging Face counts them (tied lm_head once),
// without creating it.
size_t rl_model_config_num_params(const rl_model_config *cfg);

#endif
