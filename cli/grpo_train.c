// grpo_train: the RL loop: rollout -> verify -> reward -> advantages -> update -> log.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/train_state.h"
#include "cli/trainer.h"
#include "policy/checkpoint.h"
#include "policy/grpo.h"
#include "policy/update.h"
#include "reward/advantage.h"

// Sample j's verdicts, one per verifier.
static const rl_vresult *verdicts(const rl_batch *b, int j) {
    return rl_batch_verdicts(b, j);
}

typedef struct step_times {
    double rollout, verify, update;
    double gen_tokens, gen_seconds, train_tokens;
} step_times;

// DAPO's soft overlong penalty: 0 up to max - buffer tokens, then linearly down to -1 at max.
static double overlong_penalty(int n_tokens, int max_tokens, int buffer) {
    int start = max_tokens - buffer;
    if (buffer <= 0 || n_tokens <= start) return 0;
    double p = (double)(start - n_tokens) / buffer;
    return p < -1 ? -1 : p;
}

// Samples P prompts x G completions for training-stream indices [pos, pos + P), scores them and
// computes advantages, appending to the batch at prompt offset b->n_prompts.
static int rollout_round(rl_run *r, rl_batch *b, int64_t pos, int P, step_times *tm, rl_err *err) {
    const rl_config *c = r->cfg;
    if (P == 0) return 0; // a rank with no share of this round (more ranks than prompts)
    int G = b->G, p0 = b->n_prompts, s0 = p0 * G;
    rl_gen_prompt *gp = rl_calloc((size_t)P, sizeof *gp);
    int rc = 0;
    for (int i = 0; i < P && rc == 0; i++) {
        rc = rl_run_train_prompt(r, (uint64_t)(pos + i), 0, &b->prompts[p0 + i], err);
        b->prompt_idx[p0 + i] = pos + i;
        rl_prompt *p = &b->prompts[p0 + i];
        gp[i] = (rl_gen_prompt){p->ids.data, (int)p->ids.len, p->key, G};
    }
    if (rc) {
        for (int i = 0; i < P; i++) rl_prompt_free(&b->prompts[p0 + i]);
        free(gp);
        return -1;
    }
    b->n_prompts += P;
    rl_gen_params gparams = rl_run_gen_params(r, RL_GEN_ROLLOUT, 0);
    double t0 = rl_now();
    rl_gen_stats st;
    rc = rl_generate(r->engine, &gparams, gp, P, b->comps + s0, &st, err);
    free(gp);
    if (rc) return -1;
    tm->rollout += rl_now() - t0;
    tm->gen_tokens += st.new_tokens;
    tm->gen_seconds += st.seconds;
    t0 = rl_now();
    rc = rl_run_score(r, b, s0, P * G, c->rollout.max_new_tokens, err);
    tm->verify += rl_now() - t0;
    if (rc) return -1;
    if (c->algorithm.overlong == RL_CFG_OVERLONG_PENALTY)
        for (int j = s0; j < s0 + P * G; j++)
            b->reward[j] += overlong_penalty(b->comps[j].n_tokens, c->rollout.max_new_tokens,
                                             c->algorithm.overlong_buffer);
    rl_adv_opts ao = rl_adv_defaults();
    ao.kind = c->algorithm.advantage;
    ao.eps = c->algorithm.adv_eps;
    rc =
        rl_advantages(&ao, b->reward + s0, b->group + s0, b->skipped + s0, P * G, b->adv + s0, err);
    uint8_t *zero = rl_malloc((size_t)P * G);
    rl_zero_variance_groups(b->reward + s0, b->group + s0, b->skipped + s0, P * G, ao.zero_tol,
                            zero, NULL, NULL);
    for (int j = 0; j < P * G; j++) b->kept[s0 + j] = c->algorithm.dynamic_sampling ? !zero[j] : 1;
    free(zero);
    return rc;
}

// Fills row b with sample j: prompt ids, completion tokens, targets on the completion.
static void fill_row(rl_pg_rows *u, int b, const rl_batch *sb, int j) {
    const rl_prompt *p = &sb->prompts[sb->group[j]];
    const rl_completion *c = &sb->comps[j];
    int np = (int)p->ids.len, len = np + c->n_tokens;
    size_t row = (size_t)b * u->T;
    for (int t = 0; t < len; t++) u->tokens[row + t] = t < np ? p->ids.data[t] : c->tokens[t - np];
    for (int k = 0; k < c->n_tokens; k++) {
        int t = np + k - 1; // the position whose next token is completion token k
        u->targets[row + t] = c->tokens[k];
        u->mask[row + t] = 1.0f;
        u->old_logp[row + t] = c->logp_policy[k];
    }
    u->lengths[b] = len;
    u->adv[b] = sb->adv[j];
}

// The update's view of the step: the samples that take part, as padded prompt+completion rows.
// Kept groups only; a zero advantage contributes nothing when there is no KL or entropy term, so
// those rows are left out but still counted in the normalisers.
static void update_rows(const rl_run *r, const rl_batch *sb, rl_pg_rows *rows) {
    const rl_cfg_algorithm *ac = &r->cfg->algorithm;
    int n = sb->n_prompts * sb->G, need_all = ac->kl_coef != 0 || ac->entropy_coef != 0;
    int *take = rl_malloc((size_t)(n ? n : 1) * sizeof(int));
    int B = 0, T = 1, extra_seqs = 0;
    double extra_tokens = 0;
    for (int j = 0; j < n; j++) {
        if (!sb->kept[j] || sb->skipped[j]) continue;
        if (ac->overlong == RL_CFG_OVERLONG_MASK && sb->comps[j].finish == RL_FINISH_LENGTH)
            continue;
        if (!need_all && sb->adv[j] == 0.0f) {
            extra_seqs++;
            extra_tokens += sb->comps[j].n_tokens;
            continue;
        }
        int len = (int)sb->prompts[sb->group[j]].ids.len + sb->comps[j].n_tokens;
        if (len > T) T = len;
        take[B++] = j;
    }
    rl_pg_rows_alloc(rows, B, T);
    for (int i = 0; i < B; i++) fill_row(rows, i, sb, take[i]);
    rows->extra_seqs = extra_seqs;
    rows->extra_tokens = extra_tokens;
    free(take);
}

static rl_update_params update_params(const rl_config *c, double lr) {
    const rl_cfg_algorithm *ac = &c->algorithm;
    return (rl_update_params){
        .pg =
            {
                .clip_low = (float)ac->clip_low,
                .clip_high = (float)ac->clip_high,
                .dual_clip = (float)ac->dual_clip,
                .kl_coef = (float)ac->kl_coef,
                .kl_estimator = (rl_kl_estimator)ac->kl_estimator,
                .entropy_coef = (float)ac->entropy_coef,
                .agg = (rl_loss_agg)ac->loss_agg,
                .norm_tokens =
                    ac->loss_norm_tokens > 0 ? ac->loss_norm_tokens : c->rollout.max_new_tokens,
            },
        .adamw = {(float)lr, (float)ac->beta1, (float)ac->beta2, (float)ac->adam_eps,
                  (float)ac->weight_decay},
        .grad_clip = (float)ac->grad_clip,
        .epochs = ac->epochs,
        .minibatches = ac->minibatches,
    };
}

// ---- data parallel: every rank's rollouts to rank 0 --------------------------------------------

// A growing byte buffer for the records rank 0 gathers.
typedef struct wbuf {
    char *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *w, const void *x, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 256;
        w->p = rl_realloc(w->p, w->cap);
    }
    if (n) memcpy(w->p + w->n, x, n);
    w->n += n;
}

static void put_str(wbuf *w, const char *s) {
    int64_t n = s ? (int64_t)strlen(s) : -1;
    put(w, &n, sizeof n);
    if (s) put(w, s, (size_t)n);
}

static const char *take(const char **at, size_t n) {
    const char *p = *at;
    *at += n;
    return p;
}

static char *take_str(const char **at) {
    int64_t n;
    memcpy(&n, take(at, sizeof n), sizeof n);
    if (n < 0) return NULL;
    char *s = rl_malloc((size_t)n + 1);
    memcpy(s, take(at, (size_t)n), (size_t)n);
    s[n] = '\0';
    return s;
}

// Prompt p of b with its G samples: what the step row and the rollout rows need.
static void put_group(wbuf *w, const rl_batch *b, int p) {
    const rl_prompt *pr = &b->prompts[p];
    int32_t np = (int32_t)pr->ids.len;
    put(w, &b->prompt_idx[p], sizeof(int64_t));
    put(w, &np, sizeof np);
    put_str(w, pr->problem);
    put_str(w, pr->answer);
    put_str(w, pr->tests_json);
    put_str(w, pr->task);
    for (int s = 0; s < b->G; s++) {
        int j = p * b->G + s;
        const rl_completion *c = &b->comps[j];
        int32_t hdr[3] = {c->sample, c->n_tokens, c->finish};
        put(w, hdr, sizeof hdr);
        put_str(w, c->text);
        put(w, c->logp_sample, (size_t)c->n_tokens * sizeof(float));
        put(w, &b->reward[j], sizeof(double));
        put(w, &b->adv[j], sizeof(float));
        put(w, &b->skipped[j], 1);
        put(w, &b->kept[j], 1);
        put(w, rl_batch_verdicts(b, j), b->verdict_bytes);
    }
}

// Decodes one group record into the next prompt of b (room checked by the caller).
static const char *take_group(rl_batch *b, const char *at) {
    int p = b->n_prompts++, np;
    rl_prompt *pr = &b->prompts[p];
    memset(pr, 0, sizeof *pr);
    memcpy(&b->prompt_idx[p], take(&at, sizeof(int64_t)), sizeof(int64_t));
    memcpy(&np, take(&at, sizeof np), sizeof np);
    pr->ids.len = (size_t)np; // only its length is logged
    pr->problem = take_str(&at);
    pr->answer = take_str(&at);
    pr->tests_json = take_str(&at);
    pr->task = take_str(&at);
    for (int s = 0; s < b->G; s++) {
        int j = p * b->G + s;
        rl_completion *c = &b->comps[j];
        int32_t hdr[3];
        memcpy(hdr, take(&at, sizeof hdr), sizeof hdr);
        memset(c, 0, sizeof *c);
        c->prompt = p;
        c->sample = hdr[0];
        c->n_tokens = hdr[1];
        c->finish = hdr[2];
        c->text = take_str(&at);
        c->text_len = c->text ? strlen(c->text) : 0;
        c->logp_sample = rl_malloc((size_t)(c->n_tokens ? c->n_tokens : 1) * sizeof(float));
        memcpy(c->logp_sample, take(&at, (size_t)c->n_tokens * sizeof(float)),
               (size_t)c->n_tokens * sizeof(float));
        memcpy(&b->reward[j], take(&at, sizeof(double)), sizeof(double));
        memcpy(&b->adv[j], take(&at, sizeof(float)), sizeof(float));
        b->skipped[j] = (uint8_t)*take(&at, 1);
        b->kept[j] = (uint8_t)*take(&at, 1);
        memcpy(rl_batch_verdicts(b, j), take(&at, b->verdict_bytes), b->verdict_bytes);
    }
    return at;
}

typedef struct group_ref {
    int64_t prompt_idx;
    const char *at;
} group_ref;

static int by_prompt_idx(const void *a, const void *b) {
    int64_t x = ((const group_ref *)a)->prompt_idx, y = ((const group_ref *)b)->prompt_idx;
    return (x > y) - (x < y);
}

// Every rank's groups of this step, gathered on rank 0 into *all (allocated there) in prompt
// stream order: the batch one process would have made. A collective; off rank 0 *all is untouched.
static int gather_batch(const rl_comm *comm, const rl_batch *sb, rl_batch *all, rl_err *err) {
    wbuf w = {0};
    int32_t np = sb->n_prompts;
    put(&w, &np, sizeof np);
    for (int p = 0; p < sb->n_prompts; p++) put_group(&w, sb, p);
    void *got = NULL;
    size_t *sizes = rl_calloc((size_t)comm->world, sizeof(size_t));
    int rc = comm->gather_bytes(comm, w.p, w.n, &got, sizes, err);
    free(w.p);
    if (rc == 0 && comm->rank == 0) {
        // Index every group record, then decode them in prompt order.
        int total = 0;
        const char *at = got;
        for (int q = 0; q < comm->world; q++) {
            int32_t k;
            memcpy(&k, at, sizeof k);
            total += k;
            at += sizes[q];
        }
        group_ref *refs = rl_calloc((size_t)(total ? total : 1), sizeof *refs);
        int n = 0;
        at = got;
        for (int q = 0; q < comm->world; q++) {
            const char *end = at + sizes[q], *g = at + sizeof(int32_t);
            rl_batch one; // walks the records to find where each ends
            rl_batch_alloc(&one, 1, sb->G, sb->verdict_bytes);
            while (g < end) {
                memcpy(&refs[n].prompt_idx, g, sizeof(int64_t));
                refs[n++].at = g;
                g = take_group(&one, g);
                rl_batch_clear(&one);
            }
            rl_batch_free(&one);
            at = end;
        }
        qsort(refs, (size_t)n, sizeof *refs, by_prompt_idx);
        rl_batch_alloc(all, n ? n : 1, sb->G, sb->verdict_bytes);
        for (int i = 0; i < n; i++) take_group(all, refs[i].at);
        for (int j = 0; j < n * sb->G; j++) all->group[j] = j / sb->G;
        free(refs);
    }
    free(got);
    free(sizes);
    return rc;
}

// Writes the step: statistics, every rollout and its verifier scores, in one transaction.
static int log_step(rl_run *r, int step, const rl_batch *sb, const rl_update_stats *us, double lr,
                    const step_times *tm, double t_total, rl_err *err) {
    if (!r->log) return 0;
    const rl_config *c = r->cfg;
    int n = sb->n_prompts * sb->G, nv = r->n_verifiers, acc = rl_reward_accuracy_index(r->reward);
    double rsum = 0, rsq = 0, asum = 0, lsum = 0, lmax = 0, trunc = 0, vsum[16] = {0};
    int groups_kept = 0;
    for (int j = 0; j < n; j++) {
        rsum += sb->reward[j];
        rsq += sb->reward[j] * sb->reward[j];
        if (acc >= 0) asum += verdicts(sb, j)[acc].score;
        lsum += sb->comps[j].n_tokens;
        if (sb->comps[j].n_tokens > lmax) lmax = sb->comps[j].n_tokens;
        trunc += sb->comps[j].finish == RL_FINISH_LENGTH;
        for (int v = 0; v < nv; v++) vsum[v] += verdicts(sb, j)[v].score;
    }
    for (int p = 0; p < sb->n_prompts; p++) {
        int nz = 0;
        for (int s = 0; s < sb->G; s++)
            nz |= sb->kept[p * sb->G + s] && sb->adv[p * sb->G + s] != 0;
        groups_kept += nz;
    }
    rl_step_stats st;
    rl_step_stats_init(&st);
    st.phase = "rl";
    st.loss = us->loss;
    st.kl = us->kl;
    st.entropy = us->entropy;
    st.clip_frac = us->clip_frac;
    st.grad_norm = us->grad_norm;
    st.lr = lr;
    st.reward_mean = rsum / n;
    double var = rsq / n - (rsum / n) * (rsum / n);
    st.reward_std = var > 0 ? sqrt(var) : 0;
    st.accuracy = acc >= 0 ? asum / n : NAN;
    st.len_mean = lsum / n;
    st.len_max = lmax;
    st.truncated_frac = trunc / n;
    st.n_rollouts = n;
    st.n_groups_kept = groups_kept;
    st.nonfinite = us->nonfinite;
    st.tokens_per_s = tm->gen_seconds > 0 ? tm->gen_tokens / tm->gen_seconds : NAN;
    st.train_tokens_per_s = tm->update > 0 ? us->tokens / tm->update : NAN;
    st.t_rollout = tm->rollout;
    st.t_verify = tm->verify;
    st.t_update = tm->update;
    st.t_total = t_total;
    char extra[1024];
    int off = snprintf(extra, sizeof extra, "{\"verifier_means\": {");
    for (int v = 0; v < nv && off < (int)sizeof extra - 64; v++)
        off += snprintf(extra + off, sizeof extra - off, "%s\"%s\": %.6g", v ? ", " : "",
                        rl_reward_name(r->reward, v), vsum[v] / n);
    snprintf(extra + off, sizeof extra - off, "}}");
    st.extra_json = extra;
    RL_TRY(rl_log_begin_step(r->log, r->run_id, step, err));
    if (rl_log_step_stats(r->log, &st, err)) goto fail;
    if (c->logging.log_rollouts) {
        for (int j = 0; j < n; j++) {
            const rl_prompt *p = &sb->prompts[sb->group[j]];
            const rl_completion *cp = &sb->comps[j];
            rl_rollout_row row;
            rl_rollout_row_init(&row);
            row.prompt_idx = sb->prompt_idx[sb->group[j]];
            row.group_id = sb->group[j];
            row.sample_idx = cp->sample;
            row.task = p->task;
            row.prompt = p->problem;
            row.completion = cp->text;
            row.answer = p->answer ? p->answer : p->tests_json;
            row.n_tokens = cp->n_tokens;
            row.n_prompt_tokens = (int)p->ids.len;
            row.finish_reason = cp->finish == RL_FINISH_STOP ? "stop" : "length";
            row.reward = sb->reward[j];
            row.advantage = sb->kept[j] ? sb->adv[j] : 0;
            double lps = 0;
            for (int k = 0; k < cp->n_tokens; k++) lps += cp->logp_sample[k];
            row.sample_logprob_sum = lps;
            int64_t rid;
            if (rl_log_rollout(r->log, &row, &rid, err)) goto fail;
            for (int v = 0; v < nv; v++) {
                const rl_vresult *res = &verdicts(sb, j)[v];
                if (rl_log_score(r->log, rid, rl_reward_name(r->reward, v),
                                 rl_reward_weight(r->reward, v), res->score,
                                 rl_vstatus_name(res->status), res->detail, err))
                    goto fail;
            }
        }
    }
    return rl_log_commit_step(r->log, err);
fail:
    rl_log_abort_step(r->log);
    return -1;
}

static int do_eval(rl_run *r, int step, rl_eval_result *e, rl_progress *prog, rl_err *err) {
    const rl_config *c = r->cfg;
    RL_TRY(rl_run_eval(r, c->eval.k, c->eval.temperature, c->eval.n, e, err));
    RL_TRY(rl_eval_log(r, step, e, err));
    rl_progress_note(prog,
                     "[rl] step %d: held-out pass@1 %.1f%%, pass@%d %.1f%% (T=%.1f, %d problems)",
                     step, 100 * e->pass_at_1, e->k, 100 * e->pass_at_k, e->temperature, e->n);
    return 0;
}

static const char *tokenizer_name(const rl_config *c) {
    return c->tokenizer.kind == RL_CFG_TOK_BYTE ? "byte" : c->tokenizer.path;
}

// The frozen reference policy for the KL term: saved once next to the checkpoints, so a resumed
// run compares against exactly the same weights.
static int reference_model(rl_run *r, int resume, rl_model **ref, rl_err *err) {
    const rl_config *c = r->cfg;
    *ref = NULL;
    if (c->algorithm.kl_coef == 0) return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/reference", c->checkpoint.dir);
    struct stat st;
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/config.json", dir);
    // Data parallel: rank 0 writes it, every rank reads it (checkpoint.dir is shared).
    if (r->comm->rank == 0 && !(resume && stat(probe, &st) == 0)) {
        mkdir(c->checkpoint.dir, 0777);
        RL_TRY(rl_model_save(r->model, dir, 0, err));
    }
    RL_TRY(r->comm->barrier(r->comm, err));
    return rl_model_load(ref, dir, r->be, err);
}

// Checkpoints are written by rank 0 and hold the whole optimizer state, whatever the world size:
// under ZeRO-1 the shards are gathered first (a collective). So a checkpoint resumes at any
// world size and ZeRO stage.
static int save_ckpt(rl_run *r, rl_adamw *opt, const rl_train_state *state, rl_err *err) {
    const rl_config *c = r->cfg;
    const rl_comm *comm = r->comm;
    if (!(c->parallel.zero && comm->world > 1)) {
        if (comm->rank != 0) return 0;
        return rl_train_ckpt_save(c->checkpoint.dir, r->model, opt, state, tokenizer_name(c),
                                  c->checkpoint.keep, err);
    }
    size_t n;
    rl_model_params(r->model, &n);
    float *mh = NULL, *vh = NULL;
    if (comm->rank == 0) {
        mh = rl_malloc(n * sizeof(float));
        vh = rl_malloc(n * sizeof(float));
    }
    int rc = rl_update_opt_gather(opt, comm, n, mh, vh, err);
    if (rc == 0 && comm->rank == 0)
        rc = rl_train_ckpt_save_moments(c->checkpoint.dir, r->model, mh, vh, NULL, n, opt->step,
                                        state, tokenizer_name(c), c->checkpoint.keep, err);
    free(mh);
    free(vh);
    return rc;
}

// Resume: the newest checkpoint as rank 0 sees it, loaded by every rank (ZeRO-1: each reads its
// shard of the moments). 0 with *found = 0 when there is none.
static int load_ckpt(rl_run *r, rl_adamw *opt, rl_train_state *state, int *found, rl_err *err) {
    const rl_config *c = r->cfg;
    const rl_comm *comm = r->comm;
    char path[4096] = {0};
    int step;
    int64_t have =
        comm->rank == 0 && rl_train_ckpt_latest(c->checkpoint.dir, path, sizeof path, &step);
    RL_TRY(comm->broadcast(comm, &have, sizeof have, 0, err));
    RL_TRY(comm->broadcast(comm, path, sizeof path, 0, err));
    *found = (int)have;
    if (!have) return 0;
    size_t n, lo = 0, hi, S;
    rl_model_params(r->model, &n);
    if (c->parallel.zero && comm->world > 1) rl_update_shard(n, comm, &lo, &hi, &S);
    return rl_train_ckpt_load_shard(path, r->model, opt, lo, state, err);
}

// 1 on every rank when rank 0 says so (time budgets) or any rank caught a stop signal.
static int agree(const rl_comm *comm, int64_t flag, rl_err *err, int *out) {
    RL_TRY(comm->all_reduce_i64(comm, &flag, 1, err));
    *out = flag > 0;
    return 0;
}

// Dynamic sampling keeps the first P signal-carrying groups in prompt-stream order, over every
// rank's groups: the same choice one process makes. pos0: the step's first prompt index.
static int keep_first_groups(const rl_comm *comm, rl_batch *sb, int64_t pos0, int64_t n_global,
                             int P, rl_err *err) {
    int G = sb->G;
    int64_t *kept = rl_calloc((size_t)(n_global ? n_global : 1), sizeof *kept);
    for (int p = 0; p < sb->n_prompts; p++) kept[sb->prompt_idx[p] - pos0] = sb->kept[p * G];
    int rc = comm->all_reduce_i64(comm, kept, (int)n_global, err);
    if (rc == 0) {
        int seen = 0;
        for (int64_t i = 0; i < n_global; i++)
            if (kept[i] && ++seen > P) kept[i] = 0;
        for (int p = 0; p < sb->n_prompts; p++)
            if (!kept[sb->prompt_idx[p] - pos0])
                for (int s = 0; s < G; s++) sb->kept[p * G + s] = 0;
    }
    free(kept);
    return rc;
}

int rl_grpo_train(rl_run *r, rl_progress *prog, int resume, rl_train_result *out, rl_err *err) {
    const rl_config *c = r->cfg;
    const rl_cfg_algorithm *ac = &c->algorithm;
    memset(out, 0, sizeof *out);
    int P = c->rollout.prompts_per_step, G = c->rollout.group_size, nv = r->n_verifiers;
    const rl_comm *comm = r->comm;
    rl_adamw *opt;
    RL_TRY(rl_update_optimizer(&opt, r->model, comm, c->parallel.zero, err));
    rl_adamw_set_seed(opt, (uint64_t)c->run.seed); // bf16 stochastic rounding
    rl_train_state state = {
        .step = 0, .data_pos = 0, .nonfinite_streak = 0, .seed = (uint64_t)c->run.seed};
    rl_model *ref = NULL;
    rl_batch sb;
    int rounds =
        ac->dynamic_sampling ? (ac->dynamic_max_rounds > 0 ? ac->dynamic_max_rounds : 1) : 1;
    rl_batch_alloc(&sb, P * rounds, G, (size_t)nv * sizeof(rl_vresult));
    int rc = 0;

    if (resume) {
        int found;
        if ((rc = load_ckpt(r, opt, &state, &found, err))) goto done;
        if (found)
            rl_progress_note(prog, "[rl] resuming from %s/step-%08d (step %d)", c->checkpoint.dir,
                             state.step, state.step);
        if (r->log && (rc = rl_log_truncate_after(r->log, r->run_id, state.step, err))) goto done;
    }
    if ((rc = reference_model(r, resume, &ref, err))) goto done;
    if ((rc = rl_run_engine(r, P * G, c->rollout.max_new_tokens, err))) goto done;

    if (state.step == 0 && c->eval.at_start) {
        if ((rc = do_eval(r, 0, &out->before, prog, err))) goto done;
        out->have_before = 1;
    }
    double t0 = rl_now(), last_step_s = 0;
    while (state.step < ac->steps) {
        double el = rl_now() - t0;
        int over;
        if ((rc = agree(comm,
                        comm->rank == 0 && ac->time_budget_s > 0 &&
                            el + last_step_s > ac->time_budget_s,
                        err, &over)))
            goto done;
        if (over) {
            rl_progress_note(prog, "[rl] time budget of %.0f s reached after %d steps",
                             ac->time_budget_s, state.step);
            break;
        }
        double ts = rl_now();
        step_times tm = {0};
        rl_batch_clear(&sb);
        // Rollouts; with dynamic sampling, more rounds until P groups carry a learning signal.
        // Data parallel: rank q samples its contiguous share of each round's P prompts (whole
        // groups, so group advantages stay local).
        int64_t kept_groups = 0, pos0 = state.data_pos;
        for (int round = 0; round < rounds; round++) {
            int64_t lo, hi;
            rl_comm_split(P, comm->rank, comm->world, &lo, &hi);
            if ((rc = rollout_round(r, &sb, state.data_pos + lo, (int)(hi - lo), &tm, err)))
                goto done;
            state.data_pos += P;
            kept_groups = 0;
            for (int p = 0; p < sb.n_prompts; p++) kept_groups += sb.kept[p * G];
            if (ac->dynamic_sampling && (rc = comm->all_reduce_i64(comm, &kept_groups, 1, err)))
                goto done;
            if (!ac->dynamic_sampling || kept_groups >= P) break;
        }
        // Keep the first P signal-carrying groups; the rest are logged but not trained on.
        if (ac->dynamic_sampling && kept_groups > P &&
            (rc = keep_first_groups(comm, &sb, pos0, state.data_pos - pos0, P, err)))
            goto done;
        double lr = rl_lr_at(ac->lr_schedule, ac->lr, ac->warmup_steps, ac->min_lr_ratio,
                             state.step, (double)state.step / ac->steps);
        double tu = rl_now();
        rl_update_stats us;
        rl_pg_rows rows;
        update_rows(r, &sb, &rows);
        rl_update_params up = update_params(c, lr);
        up.comm = comm;
        up.zero = c->parallel.zero;
        rc = rl_policy_update(r->model, ref, opt, &rows, &up, &us, err);
        rl_pg_rows_free(&rows);
        if (rc) goto done;
        tm.update = rl_now() - tu;
        state.step++;
        if (us.nonfinite) {
            state.nonfinite_streak++;
            rl_progress_note(
                prog, "[rl] step %d: non-finite loss or gradient, update skipped (%d in a row)",
                state.step, state.nonfinite_streak);
        } else
            state.nonfinite_streak = 0;
        last_step_s = rl_now() - ts;
        // Rank 0 logs every rank's rollouts: the batch one process would have made.
        rl_batch gathered = {0}, *lb = &sb;
        if (comm->world > 1) {
            double g[2] = {tm.gen_tokens, tm.gen_seconds};
            if ((rc = comm->all_reduce_f64(comm, g, 2, err)) ||
                (rc = gather_batch(comm, &sb, &gathered, err)))
                goto done;
            tm.gen_tokens = g[0];
            tm.gen_seconds = g[1] / comm->world; // the ranks sample side by side
            if (comm->rank == 0) lb = &gathered;
        }
        rc = log_step(r, state.step, lb, &us, lr, &tm, last_step_s, err);
        double rs = 0, as = 0;
        int n = lb->n_prompts * G, acc = rl_reward_accuracy_index(r->reward);
        for (int j = 0; j < n; j++) {
            rs += lb->reward[j];
            if (acc >= 0) as += verdicts(lb, j)[acc].score;
        }
        if (lb == &gathered) rl_batch_free(&gathered);
        if (rc) goto done;
        if (ac->max_nonfinite_steps > 0 && state.nonfinite_streak >= ac->max_nonfinite_steps) {
            rc =
                rl_fail(err, RL_EINTERNAL,
                        "stopping: %d updates in a row had a non-finite loss or gradient (check "
                        "algorithm.lr and the reference policy); the last good checkpoint is in %s",
                        state.nonfinite_streak, c->checkpoint.dir);
            goto done;
        }
        rl_progress_update(prog, state.step, "reward %.3f | acc %.3f | loss %+.4f | %.1fk tok/s",
                           rs / n, as / n, us.loss,
                           tm.gen_seconds > 0 ? tm.gen_tokens / tm.gen_seconds / 1000 : 0);
        if (c->eval.every > 0 && state.step % c->eval.every == 0 && state.step < ac->steps) {
            rl_eval_result e;
            if ((rc = do_eval(r, state.step, &e, prog, err))) goto done;
        }
        int saved = 0, stop;
        if (c->checkpoint.every > 0 && state.step % c->checkpoint.every == 0) {
            if ((rc = save_ckpt(r, opt, &state, err))) goto done;
            saved = 1;
        }
        if ((rc = agree(comm, rl_run_stop_signal() != 0, err, &stop))) goto done;
        if (stop) {
            // SIGINT / SIGTERM: the step is complete and logged; keep it, so --resume goes on
            // from here exactly as the uninterrupted run would.
            if (!saved && (rc = save_ckpt(r, opt, &state, err))) goto done;
            char what[4400];
            snprintf(what, sizeof what,
                     "after RL step %d; checkpoint saved in %s/step-%08d (continue with --resume)",
                     state.step, c->checkpoint.dir, state.step);
            rc = rl_run_fail_stopped(err, what);
            goto done;
        }
    }
    out->seconds = rl_now() - t0;
    out->steps = state.step;
    rl_progress_finish(prog);
    // The last checkpoint before the last evaluation (which changes nothing it holds), so a stop
    // signal during the evaluation loses no step.
    if ((rc = save_ckpt(r, opt, &state, err))) goto done;
    if ((rc = do_eval(r, state.step, &out->after, prog, err))) goto done;
    out->have_after = 1;
done:
    rl_progress_finish(prog);
    rl_batch_free(&sb);
    rl_model_free(ref);
    rl_adamw_free(opt);
    return rc;
}
