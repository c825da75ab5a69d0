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
    free(opt->spans);
    free(opt);
}

void rl_adamw_step(rl_adamw *opt, float *params, const float *grads, const rl_adamw_hparams *hp,
                   float grad_scale) {
    opt->step++;
    for (int i = 0; i < opt->n_spans; i++) {
        const rl_param_span *s = &opt->spans[i];
        if (s->count == 0) continue;
        opt->be->adamw_update(opt->be, params + s->offset, grads + s->offset, opt->m + s->offset,
                              opt->v + s->offset, s->count, hp->lr, hp->beta1, hp->beta2, hp->eps,
                              s->decay ? hp->weight_decay : 0.0f, grad_scale, opt->step);
    }
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
