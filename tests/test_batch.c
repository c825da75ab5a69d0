// test_batch: the shared rl_batch record — group index stored once, verdict blocks addressed per
// sample, clear frees what was filled and keeps the room, reuse after clear, an empty batch.
#include "rollout/batch.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

typedef struct verdict3 {
    double score[3];
    char tag[5];
} verdict3;

static char *text_dup(const char *s) {
    char *d = rl_malloc(strlen(s) + 1);
    strcpy(d, s);
    return d;
}

static void fill(rl_batch *b, int P, int round) {
    for (int p = 0; p < P; p++) {
        rl_prompt *pr = &b->prompts[b->n_prompts + p];
        pr->problem = text_dup("2+3");
        pr->answer = text_dup("5");
        pr->ids.len = 3;
        pr->ids.data = rl_malloc(3 * sizeof *pr->ids.data);
        b->prompt_idx[b->n_prompts + p] = 100 * round + p;
    }
    int s0 = b->n_prompts * b->G;
    b->n_prompts += P;
    for (int j = s0; j < rl_batch_samples(b); j++) {
        b->comps[j].n_tokens = j + 1;
        b->comps[j].tokens = rl_malloc((size_t)(j + 1) * sizeof(int32_t));
        b->comps[j].text = text_dup("text");
        verdict3 *v = rl_batch_verdicts(b, j);
        v->score[2] = j + 0.5;
        snprintf(v->tag, sizeof v->tag, "%d", j % 1000);
        b->reward[j] = j;
        b->kept[j] = 1;
    }
}

int main(void) {
    rl_batch b;
    rl_batch_alloc(&b, 5, 3, sizeof(verdict3));
    CHECK(b.n_prompts == 0 && b.cap_prompts == 5 && b.G == 3 && rl_batch_samples(&b) == 0,
          "fresh batch is empty");
    int group_ok = 1;
    for (int j = 0; j < 15; j++) group_ok &= b.group[j] == j / 3;
    CHECK(group_ok, "group[j] = j / G over the whole capacity");
    fill(&b, 2, 0);
    fill(&b, 3, 1); // a second round appends after the first
    CHECK(rl_batch_samples(&b) == 15 && b.prompt_idx[2] == 100, "two rounds fill 5 prompts");
    int ok = 1;
    for (int j = 0; j < 15; j++) {
        const verdict3 *v = rl_batch_verdicts(&b, j);
        char want[8];
        snprintf(want, sizeof want, "%d", j);
        ok &= v->score[2] == j + 0.5 && strcmp(v->tag, want) == 0 &&
              (char *)v == (char *)b.verdicts + (size_t)j * sizeof(verdict3);
    }
    CHECK(ok, "verdict blocks: one per sample, verdict_bytes apart, not overlapping");
    rl_batch_clear(&b);
    int zeroed = 1;
    for (int j = 0; j < 15; j++)
        zeroed &= b.comps[j].tokens == NULL && b.reward[j] == 0 && b.kept[j] == 0 &&
                  ((verdict3 *)rl_batch_verdicts(&b, j))->score[2] == 0 && b.group[j] == j / 3;
    CHECK(b.n_prompts == 0 && b.prompts[4].problem == NULL && zeroed,
          "clear frees prompts and completions, zeroes the samples, keeps the group index");
    fill(&b, 5, 2);
    CHECK(rl_batch_samples(&b) == 15 && b.comps[14].n_tokens == 15, "reused after clear");
    rl_batch_free(&b);
    CHECK(b.prompts == NULL && b.comps == NULL, "free resets the record");
    rl_batch e;
    rl_batch_alloc(&e, 0, 4, 0);
    rl_batch_clear(&e);
    CHECK(rl_batch_samples(&e) == 0, "an empty batch allocates, clears and frees");
    rl_batch_free(&e);
    return test_summary();
}
