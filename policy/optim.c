// optim: AdamW over flat blocks. See optim.h.
#include "policy/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rl_adamw_create(rl_adamw **out, const rl_backend *be, size_t n, const rl_param_span *spans,
                    int n_spans, rl_err *err) {
    *out = NULL;
    size_t at = 0;
    for (int i = 0; i < n_spans; i++) {
        if (spans[i].offset != at)
            return rl_fail(err, RL_EINPUT, "optimizer span %d starts at %zu, expected %zu", i,
                           spans[i].offset, at);
        at += spans[i].count;
    }
    if (at != n)
        return rl_fail(err, RL_EINPUT, "optimizer spans cover %zu parameters, expected %zu", at, n);
    rl_adamw *opt = rl_calloc(1, sizeof *opt);
    opt->be = be;
    opt->n = n;
    opt->m = be->mem_alloc(be, n * sizeof(float));
    opt->v = be->mem_alloc(be, n * sizeof(float));
    opt->param_dt = be->act;
    if (be->act != RL_F32) opt->master = be->mem_alloc(be, n * sizeof(float));
    opt->n_spans = n_spans;
    opt->spans = rl_malloc((size_t)(n_spans ? n_spans : 1) * sizeof *opt->spans);
    memcpy(opt->spans, spans, (size_t)n_spans * sizeof *spans);
    *out = opt;
    return 0;
}

void rl_adamw_free(rl_adamw *opt) {
    if (!opt) return;
    opt->be->mem_free(opt->be, opt->m);
    opt->be->mem_free(opt->be, opt->v);
    opt->be->mem_free(opt->be, opt->master);
    free(opt->spans);
    free(opt);
}

// SplitMix64's finaliser: a well-mixed 64-bit value from a counter.
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// The stochastic-rounding seed of one span at one step: distinct streams for every (seed, step,
// span offset), so no two updates reuse random bits.
static uint64_t rounding_seed(uint64_t seed, int step, size_t offset) {
    return mix64(mix64(mix64(seed) ^ (uint64_t)step) ^ (uint64_t)offset);
}

// The master from the working copy (exact: every bfloat16 value is a float32 value).
static void take_master(rl_adamw *opt, const void *params) {
    opt->be->convert(opt->be, opt->master, RL_F32, params, opt->param_dt, opt->n);
    opt->master_ready = 1;
}

void rl_adamw_step(rl_adamw *opt, void *params, const float *grads, const rl_adamw_hparams *hp,
                   float grad_scale) {
    const rl_backend *be = opt->be;
    opt->step++;
    if (opt->master && !opt->master_ready) take_master(opt, params);
    for (int i = 0; i < opt->n_spans; i++) {
        const rl_param_span *s = &opt->spans[i];
        if (s->count == 0) continue;
        float wd = s->decay ? hp->weight_decay : 0.0f, *m = opt->m + s->offset;
        float *v = opt->v + s->offset;
        const float *g = grads + s->offset;
        if (opt->master)
            be->adamw_update_master(be, opt->master + s->offset,
                                    (char *)params + s->offset * rl_dtype_size(opt->param_dt), g, m,
                                    v, s->count, hp->lr, hp->beta1, hp->beta2, hp->eps, wd,
                                    grad_scale, opt->step,
                                    rounding_seed(opt->seed, opt->step, s->offset));
        else
            be->adamw_update(be, (float *)params + s->offset, g, m, v, s->count, hp->lr, hp->beta1,
                             hp->beta2, hp->eps, wd, grad_scale, opt->step);
    }
}

void rl_adamw_set_seed(rl_adamw *opt, uint64_t seed) {
    opt->seed = seed;
}

int rl_adamw_has_master(const rl_adamw *opt) {
    return opt->master != NULL;
}

void rl_adamw_master_download(rl_adamw *opt, const void *params, float *host) {
    if (!opt->master) return;
    if (!opt->master_ready) take_master(opt, params);
    opt->be->mem_download(opt->be, host, opt->master, opt->n * sizeof(float));
}

void rl_adamw_master_upload(rl_adamw *opt, const float *host) {
    if (!opt->master) return;
    opt->be->mem_upload(opt->be, opt->master, host, opt->n * sizeof(float));
    opt->master_ready = 1;
}

void rl_adamw_master_reset(rl_adamw *opt) {
    opt->master_ready = 0;
}

float rl_clip_scale(double grad_norm, float max_norm) {
    if (max_norm <= 0.0f || !(grad_norm > max_norm)) return 1.0f;
    return (float)(max_norm / grad_norm);
}

void rl_adamw_state_download(const rl_adamw *opt, float *m_host, float *v_host) {
    opt->be->mem_download(opt->be, m_host, opt->m, opt->n * sizeof(float));
    opt->be->mem_download(opt->be, v_host, opt->v, opt->n * sizeof(float));
}

void rl_adamw_state_upload(rl_adamw *opt, const float *m_host, const float *v_host, int step) {
    opt->be->mem_upload(opt->be, opt->m, m_host, opt->n * sizeof(float));
    opt->be->mem_upload(opt->be, opt->v, v_host, opt->n * sizeof(float));
    opt->step = step;
}

double rl_lr_at(int schedule, double lr, int warmup_steps, double min_lr_ratio, int step,
                double progress) {
    if (warmup_steps > 0 && step < warmup_steps) return lr * (step + 1) / warmup_steps;
    if (progress < 0) progress = 0;
    if (progress > 1) progress = 1;
    double lo = lr * min_lr_ratio;
    switch (schedule) {
    case RL_LR_COSINE:
        return lo + (lr - lo) * 0.5 * (1 + cos(3.14159265358979323846 * progress));
    case RL_LR_LINEAR:
        return lr - (lr - lo) * progress;
    default:
        return lr;
    }
}
