// sampling_cpu: the sampling op of the CPU backend (sample_cpu) and the host helpers over one
// row of logits it is built from. See kernels/kernels.h (rl_sample_fn, rl_sampling_probs).
//
// The filters follow Hugging Face's logits warpers in their default order: temperature, top-k
// (ties with the k-th logit kept), top-p (a token is dropped when the tokens ranked above it
// already hold top_p of the mass; the best token always stays), min-p (drop p < min_p * p_max).
// Each filter sees the renormalised result of the previous one. Rankings use the logits, ties
// broken by the lower token id, so the result never depends on the sort algorithm.
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rl_error.h"
#include "kernels/rng.h"

int rl_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void rl_softmax(float *out, const float *logits, int n, float temperature) {
    float it = 1.0f / temperature;
    float mx = logits[rl_argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        out[i] = expf((logits[i] - mx) * it);
        sum += out[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) out[i] *= inv;
}

float rl_token_logprob(const float *logits, int V, int token, float temperature) {
    float it = 1.0f / temperature;
    float mx = logits[rl_argmax(logits, V)];
    double sum = 0.0; // float exponentials, summed in double
    for (int i = 0; i < V; i++) sum += expf((logits[i] - mx) * it);
    return (float)((double)((logits[token] - mx) * it) - log(sum));
}

// ------------------------------------------------------------------------------------------------
// Ranking: a before b when logits[a] > logits[b], or equal and a < b.

static inline int ranks_before(const float *logits, int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
}

static void swap_idx(int32_t *a, int32_t *b) {
    int32_t t = *a;
    *a = *b;
    *b = t;
}

// Sorts idx[0..n) by rank: quicksort with median-of-three, recursing into the smaller side so
// the stack depth stays O(log n), insertion sort below 16 elements.
static void sort_by_rank(int32_t *idx, int n, const float *logits) {
    while (n > 16) {
        int mid = n / 2;
        if (ranks_before(logits, idx[mid], idx[0])) swap_idx(&idx[mid], &idx[0]);
        if (ranks_before(logits, idx[n - 1], idx[0])) swap_idx(&idx[n - 1], &idx[0]);
        if (ranks_before(logits, idx[n - 1], idx[mid])) swap_idx(&idx[n - 1], &idx[mid]);
        int32_t pivot = idx[mid];
        int i = 0, j = n - 1;
        for (;;) { // Hoare partition: [0, j] rank at or before pivot, [j+1, n) at or after
            while (ranks_before(logits, idx[i], pivot)) i++;
            while (ranks_before(logits, pivot, idx[j])) j--;
            if (i >= j) break;
            swap_idx(&idx[i], &idx[j]);
            i++;
            j--;
        }
        int left = j + 1;
        if (left < n - left) {
            sort_by_rank(idx, left, logits);
            idx += left;
            n -= left;
        } else {
            sort_by_rank(idx + left, n - left, logits);
            n = left;
        }
    }
    for (int i = 1; i < n; i++) {
        int32_t v = idx[i];
        int j = i;
        for (; j > 0 && ranks_before(logits, v, idx[j - 1]); j--) idx[j] = idx[j - 1];
        idx[j] = v;
    }
}

// Rearranges idx[0..n) so that idx[k] holds the element of rank k (quickselect).
static void select_rank(int32_t *idx, int n, int k, const float *logits) {
    int lo = 0, hi = n - 1;
    while (hi > lo) {
        int mid = lo + (hi - lo) / 2;
        swap_idx(&idx[mid], &idx[hi]);
        int32_t pivot = idx[hi];
        int store = lo;
        for (int i = lo; i < hi; i++)
            if (ranks_before(logits, idx[i], pivot)) swap_idx(&idx[i], &idx[store++]);
        swap_idx(&idx[store], &idx[hi]);
        if (store == k) return;
        if (store < k)
            lo = store + 1;
        else
            hi = store - 1;
    }
}

// Keeps the candidates idx[0..n) with probs[i] != 0 after the caller zeroed some; returns the
// new count and rescales the kept probabilities to sum to 1.
static int compact_and_normalise(float *probs, int32_t *idx, int n) {
    int kept = 0;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        if (probs[idx[i]] > 0.0f) {
            sum += probs[idx[i]];
            idx[kept++] = idx[i];
        }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < kept; i++) probs[idx[i]] *= inv;
    return kept;
}

int rl_sampling_probs(float *probs, const float *logits, int V, const rl_sampling *s,
                      int32_t *idx) {
    int best = rl_argmax(logits, V);
    if (s->temperature <= 0.0f) {
        memset(probs, 0, (size_t)V * sizeof(float));
        probs[best] = 1.0f;
        return 1;
    }
    rl_softmax(probs, logits, V, s->temperature);
    int n = 0;
    for (int i = 0; i < V; i++)
        if (probs[i] > 0.0f) idx[n++] = i;

    if (s->top_k > 0 && s->top_k < n) { // keep every logit >= the k-th largest
        select_rank(idx, n, s->top_k - 1, logits);
        float kth = logits[idx[s->top_k - 1]];
        for (int i = 0; i < n; i++)
            if (logits[idx[i]] < kth) probs[idx[i]] = 0.0f;
        n = compact_and_normalise(probs, idx, n);
    }

    if (s->top_p < 1.0f && n > 1) {
        // A token with p < (1 - top_p) / (n - 1) lies in a tail of mass < 1 - top_p and is always
        // dropped: leave it out before sorting (the best token always stays).
        float cut = (float)((1.0 - s->top_p) / (n - 1));
        int m = 0;
        for (int i = 0; i < n; i++) {
            int32_t k = idx[i];
            if (probs[k] >= cut || k == best)
                idx[m++] = k;
            else
                probs[k] = 0.0f;
        }
        sort_by_rank(idx, m, logits);
        double before = 0.0; // mass of the tokens ranked above idx[i]
        for (int i = 0; i < m; i++) {
            if (i > 0 && before >= s->top_p) probs[idx[i]] = 0.0f;
            before += probs[idx[i]];
        }
        n = compact_and_normalise(probs, idx, m);
    }

    if (s->min_p > 0.0f && n > 1) {
        float thr = s->min_p * probs[best];
        for (int i = 0; i < n; i++)
            if (probs[idx[i]] < thr) probs[idx[i]] = 0.0f;
        n = compact_and_normalise(probs, idx, n);
    }
    return n;
}

int rl_sample_from_probs(const float *probs, int V, float u) {
    double cum = 0.0;
    int last = -1;
    for (int i = 0; i < V; i++) {
        if (probs[i] <= 0.0f) continue;
        cum += probs[i];
        last = i;
        if (u < cum) return i;
    }
    return last >= 0 ? last : 0; // u at the rounding edge of the total mass
}

// ------------------------------------------------------------------------------------------------
// The op: rows in parallel, each exactly as the rollout engine's host sampling (the same helper
// calls in the same order), so a run that switches to the op draws the same tokens and logs the
// same log-probs, bit for bit.

// One row; probs and idx are scratch for vocab_limit values.
static void sample_row(int32_t *token, float *logp_sample, float *logp_policy, const float *row,
                       uint64_t key, uint64_t draw, const rl_sampling *s, int V, int vocab_limit,
                       float *probs, int32_t *idx) {
    int t;
    float lp_sample;
    float u = rl_philox_uniform(key, draw);
    if (s->temperature <= 0.0f) {
        t = rl_argmax(row, vocab_limit);
        lp_sample = 0.0f;
    } else {
        rl_sampling_probs(probs, row, vocab_limit, s, idx);
        t = rl_sample_from_probs(probs, vocab_limit, u);
        lp_sample = logf(probs[t]);
    }
    *token = t;
    *logp_sample = lp_sample;
    *logp_policy = rl_token_logprob(row, V, t, 1.0f);
}

void sample_cpu(const rl_backend *be, int32_t *tokens, float *logp_sample, float *logp_policy,
                const float *logits, const uint64_t *rng, const rl_sampling *s, int n, int V,
                int vocab_limit) {
    if (n <= 0) return;
        // Scratch per thread for the whole call (one allocation per thread and step, none per row).
#pragma omp parallel if (n > 1)
    {
        float *probs = rl_malloc((size_t)vocab_limit * sizeof(float));
        int32_t *idx = rl_malloc((size_t)vocab_limit * sizeof(int32_t));
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < n; i++)
            sample_row(&tokens[i], &logp_sample[i], &logp_policy[i], logits + (size_t)i * V,
                       rng[2 * i], rng[2 * i + 1], &s[i], V, vocab_limit, probs, idx);
        free(probs);
        free(idx);
    }
}
