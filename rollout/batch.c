// batch: the prompts x samples record shared by training, evaluation and sampling.
#include "rollout/batch.h"

#include <stdlib.h>
#include <string.h>

void rl_prompt_free(rl_prompt *p) {
    if (!p) return;
    free(p->problem);
    free(p->answer);
    free(p->tests_json);
    free(p->task);
    free(p->response);
    rl_ids_free(&p->ids);
    memset(p, 0, sizeof *p);
}

void rl_batch_alloc(rl_batch *b, int cap_prompts, int G, size_t verdict_bytes) {
    memset(b, 0, sizeof *b);
    size_t n = (size_t)cap_prompts * G, n1 = n ? n : 1;
    b->cap_prompts = cap_prompts;
    b->G = G;
    b->verdict_bytes = verdict_bytes;
    b->prompts = rl_calloc(cap_prompts ? (size_t)cap_prompts : 1, sizeof *b->prompts);
    b->prompt_idx = rl_calloc(cap_prompts ? (size_t)cap_prompts : 1, sizeof *b->prompt_idx);
    b->comps = rl_calloc(n1, sizeof *b->comps);
    b->group = rl_calloc(n1, sizeof *b->group);
    for (size_t j = 0; j < n; j++) b->group[j] = (int32_t)(j / (size_t)G);
    b->verdicts = rl_calloc(n1, verdict_bytes ? verdict_bytes : 1);
    b->reward = rl_calloc(n1, sizeof *b->reward);
    b->skipped = rl_calloc(n1, 1);
    b->adv = rl_calloc(n1, sizeof *b->adv);
    b->kept = rl_calloc(n1, 1);
}

void rl_batch_clear(rl_batch *b) {
    int n = rl_batch_samples(b);
    for (int i = 0; i < b->n_prompts; i++) rl_prompt_free(&b->prompts[i]);
    for (int j = 0; j < n; j++) rl_completion_free(&b->comps[j]);
    memset(b->verdicts, 0, (size_t)n * b->verdict_bytes);
    memset(b->reward, 0, (size_t)n * sizeof *b->reward);
    memset(b->skipped, 0, (size_t)n);
    memset(b->adv, 0, (size_t)n * sizeof *b->adv);
    memset(b->kept, 0, (size_t)n);
    b->n_prompts = 0;
}

void rl_batch_free(rl_batch *b) {
    rl_batch_clear(b);
    free(b->prompts);
    free(b->prompt_idx);
    free(b->comps);
    free(b->group);
    free(b->verdicts);
    free(b->reward);
    free(b->skipped);
    free(b->adv);
    free(b->kept);
    memset(b, 0, sizeof *b);
}
