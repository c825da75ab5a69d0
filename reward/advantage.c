// advantage: group-relative advantages (GRPO, Dr.GRPO, batch std, RLOO). See advantage.h.
#include "reward/advantage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const KIND_NAMES[] = {"grpo", "drgrpo", "batch_std", "rloo"};

rl_adv_opts rl_adv_defaults(void) {
    return (rl_adv_opts){.kind = RL_ADV_GRPO, .eps = 1e-4, .zero_tol = 1e-6, .rloo_std = 0};
}

int rl_adv_kind_from_name(const char *name) {
    for (int k = 0; k < 4; k++)
        if (name && strcmp(name, KIND_NAMES[k]) == 0) return k;
    return -1;
}

const char *rl_adv_kind_name(int kind) {
    return kind >= 0 && kind < 4 ? KIND_NAMES[kind] : "?";
}

// ---- groups ----------------------------------------------------------------------------------------

typedef struct keyed {
    int32_t group;
    int index;
} keyed;

static int by_group(const void *pa, const void *pb) {
    const keyed *a = pa, *b = pb;
    if (a->group != b->group) return a->group < b->group ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

int rl_adv_group_order(const int32_t *group, int n, int *order, int *starts) {
    keyed *k = rl_malloc((size_t)(n > 0 ? n : 1) * sizeof *k);
    for (int i = 0; i < n; i++) k[i] = (keyed){group ? group[i] : 0, i};
    qsort(k, (size_t)n, sizeof *k, by_group);
    int g = 0;
    for (int i = 0; i < n; i++) {
        order[i] = k[i].index;
        if (i == 0 || k[i].group != k[i - 1].group) starts[g++] = i;
    }
    starts[g] = n;
    free(k);
    return g;
}

// Statistics of one group's non-skipped rewards.
typedef struct gstats {
    int count;
    double sum, mean, std; // population std
    int zero_var;
} gstats;

static gstats group_stats(const double *reward, const uint8_t *skipped, const int *idx, int m,
                          double zero_tol) {
    gstats g = {0};
    double lo = 0, hi = 0;
    for (int k = 0; k < m; k++) {
        int s = idx[k];
        if (skipped && skipped[s]) continue;
        double r = reward[s];
        if (g.count == 0 || r < lo) lo = r;
        if (g.count == 0 || r > hi) hi = r;
        g.sum += r;
        g.count++;
    }
    if (g.count == 0) {
        g.zero_var = 1;
        return g;
    }
    g.mean = g.sum / g.count;
    double ss = 0.0;
    for (int k = 0; k < m; k++) {
        int s = idx[k];
        if (skipped && skipped[s]) continue;
        double d = reward[s] - g.mean;
        ss += d * d;
    }
    g.std = sqrt(ss / g.count);
    g.zero_var = g.count < 2 || hi - lo <= zero_tol;
    return g;
}

// ---- advantages --------------------------------------------------------------------------------------

static double batch_std(const double *reward, const uint8_t *skipped, int n) {
    double sum = 0.0, ss = 0.0;
    int count = 0;
    for (int s = 0; s < n; s++)
        if (!skipped || !skipped[s]) {
            sum += reward[s];
            count++;
        }
    if (count == 0) return 0.0;
    double mean = sum / count;
    for (int s = 0; s < n; s++)
        if (!skipped || !skipped[s]) ss += (reward[s] - mean) * (reward[s] - mean);
    return sqrt(ss / count);
}

int rl_advantages(const rl_adv_opts *o, const double *reward, const int32_t *group,
                  const uint8_t *skipped, int n, float *adv, rl_err *err) {
    if (o->kind < 0 || o->kind > RL_ADV_RLOO)
        return rl_fail(err, RL_EINPUT, "advantage: unknown estimator %d", o->kind);
    if (!(o->eps >= 0) || !(o->zero_tol >= 0))
        return rl_fail(err, RL_EINPUT, "advantage: eps and zero_tol must be >= 0");
    for (int s = 0; s < n; s++)
        if ((!skipped || !skipped[s]) && !isfinite(reward[s]))
            return rl_fail(err, RL_EINTERNAL, "advantage: reward of sample %d is %g", s, reward[s]);
    if (n <= 0) return 0;

    int *order = rl_malloc((size_t)n * sizeof *order);
    int *starts = rl_malloc((size_t)(n + 1) * sizeof *starts);
    int n_groups = rl_adv_group_order(group, n, order, starts);
    double bstd = o->kind == RL_ADV_BATCH_STD ? batch_std(reward, skipped, n) : 0.0;

    for (int g = 0; g < n_groups; g++) {
        const int *idx = order + starts[g];
        int m = starts[g + 1] - starts[g];
        gstats st = group_stats(reward, skipped, idx, m, o->zero_tol);
        for (int k = 0; k < m; k++) {
            int s = idx[k];
            if (st.zero_var || (skipped && skipped[s])) {
                adv[s] = 0.0f;
                continue;
            }
            double r = reward[s], a;
            switch (o->kind) {
            case RL_ADV_GRPO:
                a = (r - st.mean) / (st.std + o->eps);
                break;
            case RL_ADV_DRGRPO:
                a = r - st.mean;
                break;
            case RL_ADV_BATCH_STD:
                a = (r - st.mean) / (bstd + o->eps);
                break;
            default:
                a = r - (st.sum - r) / (st.count - 1);
                if (o->rloo_std) a /= st.std + o->eps;
                break;
            }
            adv[s] = (float)a;
        }
    }
    free(order);
    free(starts);
    return 0;
}

void rl_zero_variance_groups(const double *reward, const int32_t *group, const uint8_t *skipped,
                             int n, double zero_tol, uint8_t *zero_var, int *n_groups,
                             int *n_zero) {
    int groups = 0, zero = 0;
    if (n > 0) {
        int *order = rl_malloc((size_t)n * sizeof *order);
        int *starts = rl_malloc((size_t)(n + 1) * sizeof *starts);
        groups = rl_adv_group_order(group, n, order, starts);
        for (int g = 0; g < groups; g++) {
            const int *idx = order + starts[g];
            int m = starts[g + 1] - starts[g];
            gstats st = group_stats(reward, skipped, idx, m, zero_tol);
            zero += st.zero_var;
            if (zero_var)
                for (int k = 0; k < m; k++)
                    zero_var[idx[k]] = (uint8_t)(st.zero_var || (skipped && skipped[idx[k]]));
        }
        free(order);
        free(starts);
    }
    if (n_groups) *n_groups = groups;
    if (n_zero) *n_zero = zero;
}
