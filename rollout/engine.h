/*
 * engine: batched sampling from the policy with a KV cache, for P prompts x G samples each.
 *
 * Each prompt is prefilled once (all prompts of a call batched together) and its cache prefix is
 * copied to the G slots of its group; then every live sequence advances one token per step in one
 * batched decode. A sequence leaves the batch the moment it stops (a stop token such as EOS, a stop
 * string completed across any token boundary, or max_new_tokens), so finished sequences cost
 * nothing.
 *
 * Randomness: sample s of the prompt with key k draws its t-th token from the t-th number of the
 * stream rl_rng_stream(seed, RL_RNG_SAMPLE, k, s). The same seed therefore gives the same samples
 * whatever the batch composition, chunking or order of prompts.
 *
 * For each sampled token the engine records two log-probabilities: under the distribution it was
 * actually drawn from (temperature, top-k/top-p/min-p), and under the unmodified policy
 * (temperature 1, full vocabulary) — the second is the behaviour log-prob the policy-gradient
 * ratio needs.
 *
 * Owns: the KV cache and scratch sized at creation; each rl_completion owns its arrays.
 */
#ifndef RL_ENGINE_H
#define RL_ENGINE_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "policy/model.h"
#include "policy/tokenizer.h"

enum { RL_FINISH_STOP = 0, RL_FINISH_LENGTH = 1 };

typedef struct rl_gen_params {
    rl_sampling sampling;    // temperature (<= 0 or greedy = 1: argmax), top_k, top_p, min_p
    int greedy;              // 1: always the most likely token
    int max_new_tokens;      // completion budget in tokens
    const int32_t *stop_ids; // [n_stop_ids] tokens that end a completion (EOS, <|im_end|>, ...)
    int n_stop_ids;
    const char *const *stop_strings; // [n_stop_strings] byte strings that end a completion
    int n_stop_strings;
    uint64_t seed;
} rl_gen_params;

typedef struct rl_gen_prompt {
    const int32_t *ids; // [n_ids] the rendered, tokenised prompt (n_ids >= 1)
    int n_ids;
    uint64_t key;  // names the prompt's random streams (e.g. the problem's id)
    int n_samples; // G
} rl_gen_prompt;

typedef struct rl_completion {
    int prompt;         // index into the prompts of the call
    int sample;         // 0..G-1 within its prompt
    int32_t *tokens;    // [n_tokens] generated ids, the stop token included
    float *logp_sample; // [n_tokens] log-prob under the sampling distribution
    float *logp_policy; // [n_tokens] log-prob under the unmodified policy (temperature 1)
    int n_tokens;
    int finish; // RL_FINISH_STOP or RL_FINISH_LENGTH
    char *text; // decoded completion, valid UTF-8 (invalid bytes become U+FFFD); a stop
                // token's text and a matched stop string are not part of it
    size_t text_len;
} rl_completion;

typedef struct rl_gen_stats {
    double seconds; // wall time of the call
    double prefill_seconds;
    long prompt_tokens;  // tokens prefilled (once per prompt)
    long new_tokens;     // tokens generated over all samples
    double tokens_per_s; // new_tokens / seconds
} rl_gen_stats;

typedef struct rl_engine rl_engine;

// An engine for `model` (not owned) decoding up to max_slots sequences at once, each at most
// max_len tokens (prompt + completion). vocab_limit: only ids below it are ever sampled (the
// tokenizer's size, when the model has padding rows); 0 = the model's vocabulary.
int rl_engine_create(rl_engine **out, rl_model *model, const rl_tokenizer *tok, int max_slots,
                     int max_len, int vocab_limit, rl_err *err);
void rl_engine_free(rl_engine *e);

// Samples prompts[i].n_samples completions for each prompt. out must hold Σ n_samples entries,
// ordered prompt by prompt, sample by sample. Prompts whose groups do not fit max_slots together
// are processed in several rounds. RL_EINPUT when a prompt is empty or too long for max_len.
int rl_generate(rl_engine *e, const rl_gen_params *p, const rl_gen_prompt *prompts, int n_prompts,
                rl_completion *out, rl_gen_stats *stats, rl_err *err);

void rl_completion_free(rl_completion *c);

#endif
