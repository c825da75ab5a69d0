/*
 * batch: one record of what a sampling round produced — P prompts, G completions each, and per
 * sample its verdicts, reward, advantage and whether it trains. Training, held-out evaluation and
 * `rlpipe sample` all fill the same record.
 *
 * Sample j belongs to prompt group[j] (= j / G, stored once at allocation); its completions sit
 * at j = p·G + s. The per-sample verdicts are an opaque block of verdict_bytes each: the caller
 * (the CLI stores rl_vresult[n_verifiers] there) decides their type, so this module depends on
 * nothing of the reward side.
 *
 *     rl_batch b;
 *     rl_batch_alloc(&b, P, G, nv * sizeof(rl_vresult));
 *     ... fill b.prompts[b.n_prompts ...], generate into b.comps, score ...
 *     rl_batch_clear(&b);   // between steps: frees prompts and completions, keeps the arrays
 *     rl_batch_free(&b);
 *
 * Owns: every array, and the prompts and completions in [0, n_prompts) / [0, n_prompts·G).
 */
#ifndef RL_BATCH_H
#define RL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "policy/tokenizer.h"
#include "rollout/engine.h"

// One task as posed to the model.
typedef struct rl_prompt {
    char *problem;    // the task text before the prompt template
    char *answer;     // reference answer, or NULL (code tasks)
    char *tests_json; // code tests as JSON text, or NULL
    char *task;       // task tag ("arith", "deriv", a dataset's tag), or NULL
    char *response;   // SFT target (teacher trace or dataset response), or NULL
    uint64_t key;     // names the prompt's random streams
    rl_ids ids;       // the rendered, tokenised prompt
} rl_prompt;

void rl_prompt_free(rl_prompt *p);

typedef struct rl_batch {
    int n_prompts;        // prompts (and groups) filled so far
    int cap_prompts;      // capacity
    int G;                // samples per prompt
    size_t verdict_bytes; // bytes of one sample's verdicts
    rl_prompt *prompts;   // [cap_prompts]
    int64_t *prompt_idx;  // [cap_prompts] index in the prompt stream (training data position)
    rl_completion *comps; // [cap_prompts * G]
    int32_t *group;       // [cap_prompts * G] prompt of sample j (j / G)
    void *verdicts;       // [cap_prompts * G] blocks of verdict_bytes
    double *reward;       // [cap_prompts * G]
    uint8_t *skipped;     // [cap_prompts * G] 1: no verdict (a verifier skipped it)
    float *adv;           // [cap_prompts * G]
    uint8_t *kept;        // [cap_prompts * G] 1: the sample's group goes into the update
} rl_batch;

// Room for cap_prompts prompts of G samples, everything zeroed, n_prompts = 0.
void rl_batch_alloc(rl_batch *b, int cap_prompts, int G, size_t verdict_bytes);
// Frees the prompts and completions filled so far and zeroes the per-sample arrays; keeps room.
void rl_batch_clear(rl_batch *b);
void rl_batch_free(rl_batch *b);

static inline int rl_batch_samples(const rl_batch *b) {
    return b->n_prompts * b->G;
}

// Sample j's verdict block.
static inline void *rl_batch_verdicts(const rl_batch *b, int j) {
    return (char *)b->verdicts + (size_t)j * b->verdict_bytes;
}

#endif
