/*
 * advantage: group-relative advantages from per-sample rewards, and the zero-variance report that
 * dynamic sampling uses.
 *
 * Samples are grouped by group[s] (one group per prompt; any int32 values, samples of a group need
 * not be adjacent). Skipped samples (skipped[s] = 1: the accuracy verifier could not parse the
 * reference) are left out of every mean and standard deviation and get advantage 0. With G the
 * number of non-skipped samples of a group, mean and std over them (std is the POPULATION standard
 * deviation, divide by G; TRL and veRL use the sample std, a factor sqrt(G/(G-1)) larger):
 *   grpo       A = (r - mean) / (std + eps)
 *   drgrpo     A = r - mean                                   (Dr. GRPO: no std scaling)
 *   batch_std  A = (r - mean) / (std_batch + eps)             std over every non-skipped sample
 *   rloo       A = r - (sum - r) / (G - 1) = G/(G-1) (r - mean); with rloo_std also / (std + eps)
 * A group whose non-skipped rewards span at most zero_tol (max - min <= zero_tol), or that has
 * fewer than two of them, has zero variance: every advantage in it is EXACTLY 0 (not the 1e-8
 * float noise of (r - mean) that eps would turn into ~1e-4; grpo-feasibility.md). Sums are in
 * double; two passes.
 *
 * Owns: nothing.
 */
#ifndef RL_REWARD_ADVANTAGE_H
#define RL_REWARD_ADVANTAGE_H

#include "kernels/rl_error.h"

#include <stdint.h>

// Same order as the config's algorithm.advantage values (grpo, drgrpo, batch_std, rloo).
typedef enum rl_adv_kind {
    RL_ADV_GRPO = 0,
    RL_ADV_DRGRPO = 1,
    RL_ADV_BATCH_STD = 2,
    RL_ADV_RLOO = 3,
} rl_adv_kind;

typedef struct rl_adv_opts {
    int kind;        // rl_adv_kind
    double eps;      // added to the std before dividing (default 1e-4)
    double zero_tol; // max - min at or below this is zero variance (default 1e-6)
    int rloo_std;    // rloo only: also divide by the group std + eps (default 0)
} rl_adv_opts;

// grpo, eps 1e-4, zero_tol 1e-6, rloo_std 0.
rl_adv_opts rl_adv_defaults(void);

// "grpo", "drgrpo", "batch_std", "rloo" -> kind; -1 for anything else.
int rl_adv_kind_from_name(const char *name);
const char *rl_adv_kind_name(int kind);

// order[] = the n sample indices sorted by (group, index): each group's samples adjacent, in their
// original order; starts[0..g] (room for n + 1) the group boundaries in order[]. group NULL = one
// group. Returns the number of groups g. (The registry scores whole groups in this order too.)
int rl_adv_group_order(const int32_t *group, int n, int *order, int *starts);

// adv[s] for n samples. group NULL = one group; skipped NULL = none skipped. RL_EINPUT for an
// unknown kind or a negative eps / zero_tol; RL_EINTERNAL for non-finite rewards of
// non-skipped samples.
int rl_advantages(const rl_adv_opts *opts, const double *reward, const int32_t *group,
                  const uint8_t *skipped, int n, float *adv, rl_err *err);

// zero_var[s] (may be NULL) = 1 when sample s belongs to a zero-variance group (as defined above;
// skipped samples are flagged too). *n_groups and *n_zero (may be NULL) count the groups and the
// zero-variance ones. Dynamic sampling drops (or resamples) the flagged groups.
void rl_zero_variance_groups(const double *reward, const int32_t *group, const uint8_t *skipped,
                             int n, double zero_tol, uint8_t *zero_var, int *n_groups, int *n_zero);

#endif
