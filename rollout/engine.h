/*
 * engine: sampling from the policy with a paged KV cache and continuous batching, for any number
 * of requests (a prompt x G samples each).
 *
 * Requests wait in a queue and are admitted in order while slots are free (a request takes its G
 * slots at once; up to max_slots sequences are live). Every step is one batched model call that
 * mixes the decode token of each running sequence with prompt chunks of the newly admitted ones
 * (at most prefill_chunk prompt tokens per step, so a long prompt never stalls the decoders); the
 * next waiting request starts the moment a sequence finishes, mid-round. A prompt is prefilled
 * once, by its sample 0; the other G-1 samples fork its KV blocks (shared, copy-on-write of the
 * partial last block, policy/model.h). When the KV pool runs out, the most recently admitted
 * sequences are preempted (their blocks released) and later recomputed from their prompt and the
 * tokens they already drew; nothing fails and nothing is sampled twice.
 *
 * Randomness: sample s of the prompt with key k draws its t-th token from the t-th number of the
 * stream rl_rng_stream(seed, RL_RNG_SAMPLE, k, s), and a row's logits do not depend on the other
 * rows of a model call (rl_model_prefill), so the same seed gives byte-identical completions
 * whatever max_slots, prefill_chunk, KV budget, preemptions or order of the prompts.
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
    double seconds;         // wall time of the call
    double prefill_seconds; // model time of the steps that carried prompt tokens
    long prompt_tokens;     // tokens prefilled (once per prompt, recomputations excluded)
    long new_tokens;        // tokens generated over all samples
    double tokens_per_s;    // new_tokens / seconds
    long steps;             // batched model calls
    long preemptions;       // sequences preempted for want of KV blocks (then recomputed)
    long recomputed_tokens; // tokens fed again after preemptions
    size_t kv_peak_bytes;   // most KV-cache bytes in use at once
} rl_gen_stats;

typedef struct rl_engine rl_engine;

typedef struct rl_engine_opts {
    int max_slots;          // sequences live at once (>= 1)
    int max_len;            // tokens per sequence, prompt + completion (>= 2)
    int vocab_limit;        // only ids below it are sampled (0: the model's vocabulary)
    int prefill_chunk;      // prompt tokens per step over all sequences (0: 512)
    size_t kv_budget_bytes; // KV pool size (0: every slot can hold max_len tokens at once)
    int eager_decode;       // 1: decode steps op by op, no CUDA graphs (rollout.cuda_graphs
                            // false); 0: graphs where the backend has them (policy/model.h)
} rl_engine_opts;

// An engine for `model` (not owned) decoding up to max_slots sequences at once, each at most
// max_len tokens (prompt + completion). vocab_limit: only ids below it are ever sampled (the
// tokenizer's size, when the model has padding rows); 0 = the model's vocabulary. The KV pool
// holds max_slots sequences of max_len tokens; prompts go in chunks of 512 tokens per step.
int rl_engine_create(rl_engine **out, rl_model *model, const rl_tokenizer *tok, int max_slots,
                     int max_len, int vocab_limit, rl_err *err);
// The same with every option (RL_EINPUT when the KV budget cannot hold one sequence).
int rl_engine_create_opts(rl_engine **out, rl_model *model, const rl_tokenizer *tok,
                          const rl_engine_opts *o, rl_err *err);
// The engine's KV cache (statistics: policy/model.h).
rl_kv_cache *rl_engine_cache(rl_engine *e);
void rl_engine_free(rl_engine *e);

// Samples prompts[i].n_samples completions for each prompt. out must hold Σ n_samples entries,
// ordered prompt by prompt, sample by sample. All prompts are queued at once and run with
// continuous batching (above). RL_EINPUT when a prompt is empty, too long for max_len or asks for
// more samples than max_slots.
int rl_generate(rl_engine *e, const rl_gen_params *p, const rl_gen_prompt *prompts, int n_prompts,
                rl_completion *out, rl_gen_stats *stats, rl_err *err);

void rl_completion_free(rl_completion *c);

// ---- requests joining a running batch (a server) -------------------------------------------
//
// rl_engine_submit queues a request (its own parameters, prompt and n_samples); each
// rl_engine_step admits what fits, runs one batched model call (decode tokens and prompt chunks)
// and draws one token for every sequence whose logits are ready. Sample s of a request draws from
// the same stream rl_rng_stream(seed, RL_RNG_SAMPLE, key, s) as rl_generate, so a request gives
// exactly what rl_generate gives for it alone, whatever else is in the batch. rl_generate uses the
// same machinery; a stepping engine must not be given to rl_generate until rl_engine_n_live() is
// 0. Single-threaded: one thread submits, steps and cancels.

// Called on the stepping thread after each token of a sample is drawn. logits: the model's row
// [V] that token was drawn from (before temperature; for log-probs of alternatives). bytes[0..n_bytes) is the
// sample's decoded text so far (stop tokens and a matched stop string excluded; may end inside a
// UTF-8 character). done = 1 on the sample's last call; c->text and c->finish are then set. A
// non-zero return cancels the whole request (its other samples get no more calls).
typedef int (*rl_token_fn)(void *ctx, int sample, const rl_completion *c, const float *logits,
                           const char *bytes, size_t n_bytes, int done);

typedef struct rl_stream_req {
    const rl_gen_params *params; // borrowed until the request ends, stop lists included
    rl_gen_prompt prompt;        // ids copied by rl_engine_submit
    rl_completion *out;          // [prompt.n_samples], filled by the engine (caller frees)
    rl_token_fn on_token;        // may be NULL
    void *ctx;
    int n_live; // engine-owned: samples still decoding (0 = the request has ended)
} rl_stream_req;

// Slots neither held nor promised to a queued request (a request needs prompt.n_samples).
int rl_engine_free_slots(const rl_engine *e);
// Sequences submitted and not yet finished (queued ones included).
int rl_engine_n_live(const rl_engine *e);
// Admits r (RL_EINPUT when its prompt, budget or sample count cannot fit this engine, or when
// fewer than n_samples slots are free right now); it starts at the next step. On success
// r->n_live = n_samples.
int rl_engine_submit(rl_engine *e, rl_stream_req *r, rl_err *err);
// One step, as described above. Requests whose samples all finish end here (n_live 0). On error
// every request is ended (its samples keep what they had; finish = RL_FINISH_LENGTH).
int rl_engine_step(rl_engine *e, rl_err *err);
// Ends r now: its slots are freed, its unfinished samples keep their tokens and text so far
// (finish = RL_FINISH_LENGTH) and get no further calls.
void rl_engine_cancel(rl_engine *e, rl_stream_req *r);

#endif
