// distill: the token-level distillation loop of `rlpipe distill` (cli/distill.md). See trainer.h.
//
// One step: B sequences (prompt + completion) -> the teacher's log-probabilities at every
// completion position (its scoring forward, which keeps no activations, or the top-k cache) ->
// the student's logits -> per token tau and tau^2 KL (policy/distill.h) and its gradient wrt the
// logits -> the student's backward from those logits -> AdamW. The teacher never runs backward
// and keeps no gradients.
#define _POSIX_C_SOURCE 200809L
#include "cli/trainer.h"
#include "kernels/rng.h"
#include "policy/distill.h"
#include "policy/fileio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CACHE_MAGIC           "RLPDTK01"
#define MIN_PROMPT            1
#define MAX_CHUNK             256             // sequences per teacher-scoring / perplexity forward
#define TEACHER_PURPOSE_TRAIN 0x7465616368ull // seeds of the teacher's writing
#define TEACHER_PURPOSE_HELD  0x68656c64ull

// One example: prompt tokens then completion tokens; targets are positions
// [n_prompt - 1, len - 1) (each predicts the next token).
typedef struct dseq {
    int32_t *ids;
    int len, n_prompt;
} dseq;

// The teacher's top-k summary of one example's target positions (cache mode).
typedef struct dtop {
    float *entropy; // [n_targets]
    int32_t *ids;   // [n_targets, k]
    float *logp;    // [n_targets, k]
} dtop;

static int n_targets(const dseq *s) {
    int n = s->len - s->n_prompt;
    return n > 0 ? n : 0;
}

static void dseq_free(dseq *s) {
    free(s->ids);
    s->ids = NULL;
}

// Scratch of one step: host arrays sized for the largest batch seen.
typedef struct dbatch {
    int B, T;
    size_t cap, cap_v;
    int32_t *tokens, *lengths, *targets;
    float *logp;  // [B*T] scratch for perplexity
    float *tlogp; // [B*T, V] teacher log-probabilities at temperature 1
    float *tent;  // [B*T] teacher entropy
    float *z;     // [B*T, V] student logits, then the gradient wrt them (in place)
    double *work; // [2V]
} dbatch;

static void dbatch_reserve(dbatch *b, int B, int T, int V) {
    size_t n = (size_t)B * T;
    if (n > b->cap) {
        b->tokens = rl_realloc(b->tokens, n * sizeof(int32_t));
        b->targets = rl_realloc(b->targets, n * sizeof(int32_t));
        b->logp = rl_realloc(b->logp, n * sizeof(float));
        b->tent = rl_realloc(b->tent, n * sizeof(float));
        b->tlogp = rl_realloc(b->tlogp, n * V * sizeof(float));
        b->z = rl_realloc(b->z, n * V * sizeof(float));
        b->cap = n;
    }
    if ((size_t)B > b->cap_v) {
        b->lengths = rl_realloc(b->lengths, (size_t)B * sizeof(int32_t));
        b->cap_v = (size_t)B;
    }
    if (!b->work) b->work = rl_malloc(2 * (size_t)V * sizeof(double));
    b->B = B;
    b->T = T;
}

static void dbatch_free(dbatch *b) {
    free(b->tokens);
    free(b->lengths);
    free(b->targets);
    free(b->logp);
    free(b->tlogp);
    free(b->tent);
    free(b->z);
    free(b->work);
}

// Lays sequences out as a right-padded batch; targets are the completion positions.
static void dbatch_fill(dbatch *b, const dseq *const *seqs, int B, int V) {
    int T = 1;
    for (int i = 0; i < B; i++)
        if (seqs[i]->len > T) T = seqs[i]->len;
    dbatch_reserve(b, B, T, V);
    for (int i = 0; i < B; i++) {
        const dseq *s = seqs[i];
        b->lengths[i] = s->len;
        for (int t = 0; t < T; t++) {
            size_t at = (size_t)i * T + t;
            b->tokens[at] = t < s->len ? s->ids[t] : 0;
            b->targets[at] = t >= s->n_prompt - 1 && t + 1 < s->len ? s->ids[t + 1] : -1;
        }
    }
}

// ---- examples ----------------------------------------------------------------------------------

static void push(dseq *s, int *cap, int32_t id) {
    if (s->len == *cap) {
        *cap = *cap ? *cap * 2 : 128;
        s->ids = rl_realloc(s->ids, (size_t)*cap * sizeof(int32_t));
    }
    s->ids[s->len++] = id;
}

static int max_seq_len(const rl_run *r, const rl_model *teacher) {
    int a = r->model->cfg.max_position_embeddings, b = teacher->cfg.max_position_embeddings;
    return a < b ? a : b;
}

// Prompts + completions written by `writer` (the teacher, or the student on-policy): one sample
// per prompt at temperature `temp` (0 = greedy) with a seed of its own.
static int write_completions(rl_run *r, rl_model *writer, rl_engine **eng, rl_prompt *prompts,
                             int n, double temp, uint64_t seed, int max_len, dseq *out,
                             rl_err *err) {
    int max_new = rl_run_max_new_tokens(r, RL_GEN_ROLLOUT);
    if (!*eng) {
        int slots = n < 64 ? n : 64;
        RL_TRY(rl_engine_create(eng, writer, r->tok, slots, max_new + 256, r->vocab_limit, err));
    }
    rl_gen_params gp = rl_run_gen_params(r, RL_GEN_ROLLOUT, temp);
    gp.sampling = (rl_sampling){(float)temp, 0, 1.0f, 0.0f};
    gp.greedy = temp <= 0;
    gp.seed = seed;
    rl_gen_prompt *gps = rl_calloc((size_t)n, sizeof *gps);
    rl_completion *comps = rl_calloc((size_t)n, sizeof *comps);
    for (int i = 0; i < n; i++)
        gps[i] = (rl_gen_prompt){prompts[i].ids.data, (int)prompts[i].ids.len, prompts[i].key, 1};
    rl_gen_stats st;
    int rc = rl_generate(*eng, &gp, gps, n, comps, &st, err);
    for (int i = 0; i < n && rc == 0; i++) {
        dseq *s = &out[i];
        int cap = 0;
        s->len = 0;
        for (size_t k = 0; k < prompts[i].ids.len; k++) push(s, &cap, prompts[i].ids.data[k]);
        s->n_prompt = s->len;
        for (int k = 0; k < comps[i].n_tokens; k++) push(s, &cap, comps[i].tokens[k]);
        if (s->len > max_len) s->len = max_len;
    }
    for (int i = 0; i < n; i++) rl_completion_free(&comps[i]);
    free(comps);
    free(gps);
    return rc;
}

// Prompt + response of the SFT data (teacher traces of the procedural tasks, or sft.path).
static int dataset_example(rl_run *r, uint64_t index, int max_len, dseq *s, rl_err *err) {
    rl_prompt p;
    if (r->have_sft_pairs) {
        rl_rng g = rl_rng_stream((uint64_t)r->cfg->run.seed, RL_RNG_DATA, index, 1);
        const rl_item *it = &r->sft_pairs.train[rl_rng_below(&g, (uint32_t)r->sft_pairs.n_train)];
        memset(&p, 0, sizeof p);
        p.problem = rl_strdup(it->prompt);
        p.response = it->response ? rl_strdup(it->response) : NULL;
        p.key = index;
        if (rl_run_render(r, &p, err)) {
            rl_prompt_free(&p);
            return -1;
        }
    } else {
        RL_TRY(rl_run_train_prompt(r, index, 0, &p, err));
    }
    if (!p.response) {
        rl_prompt_free(&p);
        return rl_fail(err, RL_EINPUT, "distill: training item %llu has no \"response\"",
                       (unsigned long long)index);
    }
    rl_ids resp = {0};
    int rc = rl_tokenizer_encode_append(r->tok, p.response, strlen(p.response), &resp, err);
    int cap = 0;
    s->len = 0;
    for (size_t k = 0; k < p.ids.len; k++) push(s, &cap, p.ids.data[k]);
    s->n_prompt = s->len;
    for (size_t k = 0; k < resp.len; k++) push(s, &cap, resp.data[k]);
    if (r->n_stop_ids > 0) push(s, &cap, r->stop_ids[0]);
    if (s->len > max_len) s->len = max_len;
    rl_ids_free(&resp);
    rl_prompt_free(&p);
    return rc;
}

// ---- the teacher -------------------------------------------------------------------------------

// Teacher log-probabilities (temperature 1) and entropy at every target position of the batch
// in b (rows without a target are left alone).
static int teacher_score(rl_model *teacher, dbatch *b, int V, rl_err *err) {
    RL_TRY(rl_model_score_logits(teacher, b->tokens, b->lengths, b->B, b->T, b->tlogp, err));
    size_t n = (size_t)b->B * b->T;
    for (size_t r = 0; r < n; r++) {
        if (b->targets[r] < 0) continue;
        float *row = b->tlogp + r * V;
        b->tent[r] = (float)rl_distill_log_softmax(row, V, b->work);
        for (int i = 0; i < V; i++) row[i] = (float)b->work[i];
    }
    return 0;
}

// ---- the top-k cache ---------------------------------------------------------------------------
// File: magic[8], fingerprint u64, V i32, k i32, n i32, then per example len i32, n_prompt i32,
// ids[len] i32, then per target position entropy f32, ids[k] i32, logp[k] f32. Written to a
// temporary name and renamed, so a crash never leaves a half file under the real name.

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

// What the cache depends on: the teacher's weights, the source settings, every prompt and, for
// the dataset source, every example's tokens (ex, or NULL).
static uint64_t cache_fingerprint(rl_run *r, rl_model *teacher, const rl_prompt *prompts,
                                  const dseq *ex, int n) {
    const rl_cfg_distill *d = &r->cfg->distill;
    uint64_t h = 1469598103934665603ull;
    size_t np;
    void *params = rl_model_params(teacher, &np);
    size_t bytes = np * rl_dtype_size(teacher->act); // the weights as stored (float32 or bf16)
    void *host = rl_malloc(bytes);
    teacher->be->mem_download(teacher->be, host, params, bytes);
    h = fnv(h, host, bytes);
    free(host);
    int64_t ints[] = {d->source,
                      d->examples,
                      d->cache_topk,
                      r->cfg->run.seed,
                      rl_run_max_new_tokens(r, RL_GEN_ROLLOUT),
                      teacher->V};
    h = fnv(h, ints, sizeof ints);
    h = fnv(h, &d->teacher_temperature, sizeof d->teacher_temperature);
    for (int i = 0; i < n; i++) {
        h = fnv(h, prompts[i].ids.data, prompts[i].ids.len * sizeof(int32_t));
        if (ex) h = fnv(h, ex[i].ids, (size_t)ex[i].len * sizeof(int32_t));
        if (ex) h = fnv(h, &ex[i].n_prompt, sizeof ex[i].n_prompt);
    }
    return h;
}

static int cache_write(const char *path, uint64_t fp, int V, int k, const dseq *ex, const dtop *top,
                       int n, rl_err *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return rl_fail(err, RL_EINPUT, "distill.cache_path: cannot write %s", path);
    int ok = fwrite(CACHE_MAGIC, 1, 8, f) == 8 && fwrite(&fp, 8, 1, f) == 1 &&
             fwrite(&V, 4, 1, f) == 1 && fwrite(&k, 4, 1, f) == 1 && fwrite(&n, 4, 1, f) == 1;
    for (int i = 0; i < n && ok; i++) {
        int nt = n_targets(&ex[i]);
        ok = fwrite(&ex[i].len, 4, 1, f) == 1 && fwrite(&ex[i].n_prompt, 4, 1, f) == 1 &&
             fwrite(ex[i].ids, 4, (size_t)ex[i].len, f) == (size_t)ex[i].len;
        for (int t = 0; t < nt && ok; t++)
            ok = fwrite(&top[i].entropy[t], 4, 1, f) == 1 &&
                 fwrite(top[i].ids + (size_t)t * k, 4, (size_t)k, f) == (size_t)k &&
                 fwrite(top[i].logp + (size_t)t * k, 4, (size_t)k, f) == (size_t)k;
    }
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return rl_fail(err, RL_EINPUT, "distill.cache_path: cannot write %s", path);
    }
    return 0;
}

// 1: loaded; 0: missing or for other settings (to rebuild); -1: unreadable (error set).
static int cache_read(const char *path, uint64_t fp, int V, int k, int max_len, dseq *ex, dtop *top,
                      int n, rl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[8];
    uint64_t got_fp;
    int gv, gk, gn;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, CACHE_MAGIC, 8) != 0) {
        fclose(f);
        return rl_fail(err, RL_EINPUT, "distill.cache_path: %s is not an rlpipe teacher cache",
                       path);
    }
    if (fread(&got_fp, 8, 1, f) != 1 || fread(&gv, 4, 1, f) != 1 || fread(&gk, 4, 1, f) != 1 ||
        fread(&gn, 4, 1, f) != 1 || got_fp != fp || gv != V || gk != k || gn != n) {
        fclose(f);
        return 0; // another teacher, data or k: scored again and replaced
    }
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        int len, np;
        ok = fread(&len, 4, 1, f) == 1 && fread(&np, 4, 1, f) == 1 && len >= 1 && len <= max_len &&
             np >= MIN_PROMPT && np <= len;
        if (!ok) break;
        ex[i].len = len;
        ex[i].n_prompt = np;
        ex[i].ids = rl_malloc((size_t)len * sizeof(int32_t));
        ok = fread(ex[i].ids, 4, (size_t)len, f) == (size_t)len;
        for (int t = 0; t < len && ok; t++) ok = ex[i].ids[t] >= 0 && ex[i].ids[t] < V;
        int nt = n_targets(&ex[i]);
        top[i].entropy = rl_malloc((size_t)(nt ? nt : 1) * sizeof(float));
        top[i].ids = rl_malloc((size_t)(nt ? nt : 1) * k * sizeof(int32_t));
        top[i].logp = rl_malloc((size_t)(nt ? nt : 1) * k * sizeof(float));
        for (int t = 0; t < nt && ok; t++)
            ok = fread(&top[i].entropy[t], 4, 1, f) == 1 &&
                 fread(top[i].ids + (size_t)t * k, 4, (size_t)k, f) == (size_t)k &&
                 fread(top[i].logp + (size_t)t * k, 4, (size_t)k, f) == (size_t)k;
        for (size_t j = 0; j < (size_t)nt * k && ok; j++)
            ok = top[i].ids[j] >= 0 && top[i].ids[j] < V && top[i].logp[j] <= 0;
    }
    ok = ok && fgetc(f) == EOF;
    fclose(f);
    if (!ok)
        return rl_fail(err, RL_EINPUT,
                       "distill.cache_path: %s is damaged (truncated or out-of-range values); "
                       "delete it to score the teacher again",
                       path);
    return 1;
}

// Scores every example with the teacher and keeps its top k per target position.
static int cache_build(rl_model *teacher, dseq *ex, dtop *top, int n, int k, int batch, int V,
                       rl_err *err) {
    dbatch b = {0};
    int rc = 0;
    if (batch > MAX_CHUNK) batch = MAX_CHUNK;
    for (int i0 = 0; i0 < n && rc == 0; i0 += batch) {
        int B = n - i0 < batch ? n - i0 : batch;
        const dseq *seqs[MAX_CHUNK];
        for (int i = 0; i < B; i++) seqs[i] = &ex[i0 + i];
        dbatch_fill(&b, seqs, B, V);
        if ((rc = teacher_score(teacher, &b, V, err))) break;
        for (int i = 0; i < B; i++) {
            dseq *s = &ex[i0 + i];
            dtop *tp = &top[i0 + i];
            int nt = n_targets(s);
            tp->entropy = rl_malloc((size_t)(nt ? nt : 1) * sizeof(float));
            tp->ids = rl_malloc((size_t)(nt ? nt : 1) * k * sizeof(int32_t));
            tp->logp = rl_malloc((size_t)(nt ? nt : 1) * k * sizeof(float));
            for (int t = 0; t < nt; t++) {
                size_t r = (size_t)i * b.T + (s->n_prompt - 1 + t);
                tp->entropy[t] = b.tent[r];
                rl_distill_topk_of(b.tlogp + r * V, V, k, tp->ids + (size_t)t * k,
                                   tp->logp + (size_t)t * k);
            }
        }
    }
    dbatch_free(&b);
    return rc;
}

// ---- perplexity --------------------------------------------------------------------------------

// exp(mean negative log-likelihood) of the completions of text under the student.
static int student_perplexity(rl_model *m, const dseq *text, int n, int batch, int V, double *ppl,
                              rl_err *err) {
    dbatch b = {0};
    double nll = 0;
    long count = 0;
    int rc = 0;
    if (batch > MAX_CHUNK) batch = MAX_CHUNK;
    for (int i0 = 0; i0 < n && rc == 0; i0 += batch) {
        int B = n - i0 < batch ? n - i0 : batch;
        const dseq *seqs[MAX_CHUNK];
        for (int i = 0; i < B; i++) seqs[i] = &text[i0 + i];
        dbatch_fill(&b, seqs, B, V);
        if ((rc = rl_model_forward(m, b.tokens, b.lengths, B, b.T, err))) break;
        if ((rc = rl_model_token_logprobs(m, b.targets, 1.0f, b.logp, NULL, err))) break;
        for (size_t r = 0; r < (size_t)B * b.T; r++)
            if (b.targets[r] >= 0) {
                nll -= b.logp[r];
                count++;
            }
    }
    dbatch_free(&b);
    *ppl = count > 0 ? exp(nll / (double)count) : NAN;
    return rc;
}

// ---- the loop ----------------------------------------------------------------------------------

static int log_step(rl_run *r, int step, double loss, const rl_distill_step_row *d, double gnorm,
                    double lr, double tps, double dt, rl_err *err) {
    if (!r->log) return 0;
    RL_TRY(rl_log_begin_step(r->log, r->run_id, step, err));
    rl_step_stats s;
    rl_step_stats_init(&s);
    s.phase = "distill";
    s.loss = loss;
    s.entropy = d->student_entropy;
    s.grad_norm = gnorm;
    s.lr = lr;
    s.train_tokens_per_s = tps;
    s.t_update = dt;
    s.t_total = dt;
    if (rl_log_step_stats(r->log, &s, err) || rl_log_distill_step(r->log, d, err)) {
        rl_log_abort_step(r->log);
        return -1;
    }
    return rl_log_commit_step(r->log, err);
}

// Held-out perplexity on teacher-written text and pass@1, printed and logged at `step`.
static int evaluate(rl_run *r, rl_progress *prog, int step, const dseq *held, int n_held,
                    rl_distill_result *out, rl_err *err) {
    const rl_config *c = r->cfg;
    int V = r->model->V;
    double t0 = rl_now(), ppl;
    RL_TRY(student_perplexity(r->model, held, n_held, c->distill.batch_size, V, &ppl, err));
    double t_ppl = rl_now() - t0;
    rl_eval_result e;
    RL_TRY(rl_run_eval(r, c->eval.k, c->eval.temperature, c->eval.n, &e, err));
    RL_TRY(rl_eval_log(r, step, &e, err));
    if (r->log) {
        rl_eval_row row;
        rl_eval_row_init(&row);
        row.run_id = r->run_id;
        row.step = step;
        row.split = "teacher_text";
        row.n = n_held;
        row.perplexity = ppl;
        row.seconds = t_ppl;
        RL_TRY(rl_log_eval(r->log, &row, err));
    }
    rl_progress_note(prog,
                     "[distill] step %d: held-out perplexity %.4f on teacher text, pass@1 %.1f%%",
                     step, ppl, 100 * e.pass_at_1);
    out->perplexity = ppl;
    out->pass_at_1 = e.pass_at_1;
    out->eval = e;
    return 0;
}

int rl_distill(rl_run *r, rl_model *teacher, rl_progress *prog, rl_distill_result *out,
               rl_err *err) {
    const rl_config *c = r->cfg;
    const rl_cfg_distill *d = &c->distill;
    memset(out, 0, sizeof *out);
    out->perplexity_start = NAN;
    int V = r->model->V, B = d->batch_size, k = d->cache_topk > V ? V : d->cache_topk;
    int max_len = max_seq_len(r, teacher);
    int n_ex = d->source == RL_CFG_DISTILL_ON_POLICY ? 0 : d->examples;
    rl_distill_tau tau = {d->tau,       d->tau_fixed, d->tau_min,  d->tau_max,
                          d->tau_start, d->tau_end,   d->tau_decay};
    uint64_t seed = (uint64_t)c->run.seed;
    double log_v = log((double)V);

    rl_engine *t_eng = NULL;
    dseq *ex = rl_calloc((size_t)(n_ex ? n_ex : 1), sizeof *ex);
    dtop *top = k > 0 ? rl_calloc((size_t)n_ex, sizeof *top) : NULL;
    int n_held = rl_run_n_heldout(r) < d->eval_n ? rl_run_n_heldout(r) : d->eval_n;
    dseq *held = rl_calloc((size_t)(n_held ? n_held : 1), sizeof *held);
    int n_prompts = n_ex > n_held ? n_ex : n_held;
    if (n_prompts < B) n_prompts = B;
    rl_prompt *prompts = rl_calloc((size_t)n_prompts, sizeof *prompts);
    dbatch b = {0};
    rl_adamw *opt = NULL;
    const dseq **seqs = rl_calloc((size_t)B, sizeof *seqs);
    dseq *onp = rl_calloc((size_t)B, sizeof *onp);
    uint32_t *order = rl_calloc((size_t)(n_ex ? n_ex : 1), sizeof *order);
    int rc = 0;

    // The held-out text the perplexity is measured on: the teacher's answers to held-out prompts.
    for (int i = 0; i < n_held && rc == 0; i++) rc = rl_run_heldout_prompt(r, i, &prompts[i], err);
    if (rc == 0 && n_held > 0)
        rc = write_completions(r, teacher, &t_eng, prompts, n_held, d->teacher_temperature,
                               seed ^ TEACHER_PURPOSE_HELD, max_len, held, err);
    for (int i = 0; i < n_held; i++) rl_prompt_free(&prompts[i]);

    // The training examples (fixed for the sources teacher and dataset).
    if (rc == 0 && n_ex > 0) {
        for (int i = 0; i < n_ex && rc == 0; i++)
            rc = rl_run_train_prompt(r, (uint64_t)i, 0, &prompts[i], err);
        int cached = 0, built = 0;
        uint64_t fp = 0;
        if (rc == 0 && d->source == RL_CFG_DISTILL_DATASET) {
            // cheap to build, and the cache must know them (sft.path may have changed)
            for (int i = 0; i < n_ex && rc == 0; i++)
                rc = dataset_example(r, (uint64_t)i, max_len, &ex[i], err);
            built = 1;
        }
        if (rc == 0 && k > 0) {
            fp = cache_fingerprint(r, teacher, prompts, built ? ex : NULL, n_ex);
            if (built)
                for (int i = 0; i < n_ex; i++) dseq_free(&ex[i]); // the cache holds them too
            cached = cache_read(d->cache_path, fp, V, k, max_len, ex, top, n_ex, err);
            if (cached < 0) rc = -1;
            if (cached == 0) {
                built = 0;
                for (int i = 0; i < n_ex; i++) {
                    dseq_free(&ex[i]);
                    free(top[i].entropy);
                    free(top[i].ids);
                    free(top[i].logp);
                    memset(&top[i], 0, sizeof top[i]);
                }
            }
            if (cached > 0)
                rl_progress_note(prog, "[distill] teacher cache %s reused", d->cache_path);
        }
        if (rc == 0 && !cached && !built) {
            if (d->source == RL_CFG_DISTILL_TEACHER)
                rc = write_completions(r, teacher, &t_eng, prompts, n_ex, d->teacher_temperature,
                                       seed ^ TEACHER_PURPOSE_TRAIN, max_len, ex, err);
            else
                for (int i = 0; i < n_ex && rc == 0; i++)
                    rc = dataset_example(r, (uint64_t)i, max_len, &ex[i], err);
        }
        if (rc == 0 && !cached && k > 0) {
            double t0 = rl_now();
            rc = cache_build(teacher, ex, top, n_ex, k, B, V, err);
            if (rc == 0) rc = cache_write(d->cache_path, fp, V, k, ex, top, n_ex, err);
            if (rc == 0)
                rl_progress_note(prog, "[distill] teacher top-%d cached in %s (%.1f s)", k,
                                 d->cache_path, rl_now() - t0);
        }
        for (int i = 0; i < n_ex; i++) rl_prompt_free(&prompts[i]);
    }
    rl_engine_free(t_eng);
    t_eng = NULL;

    if (rc == 0) {
        rl_distill_result e0;
        rc = evaluate(r, prog, 0, held, n_held, &e0, err);
        out->perplexity_start = e0.perplexity;
        out->pass_at_1_start = e0.pass_at_1;
    }
    size_t n_params = 0;
    float *params = rl_model_params(r->model, &n_params);
    int n_spans;
    const rl_param_span *spans = rl_model_decay_spans(r->model, &n_spans);
    if (rc == 0) rc = rl_adamw_create(&opt, r->be, n_params, spans, n_spans, err);
    if (rc == 0) rl_adamw_set_seed(opt, (uint64_t)r->cfg->run.seed); // bf16 stochastic rounding

    double t_start = rl_now(), tokens = 0;
    int step = 0;
    for (; rc == 0 && step < d->steps; step++) {
        double ts = rl_now();
        double progress = d->steps > 1 ? (double)step / (d->steps - 1) : 1.0;
        double lr = rl_lr_at(d->lr_schedule, d->lr, d->warmup_steps, d->min_lr_ratio, step,
                             (double)step / d->steps);
        // this step's sequences
        if (n_ex > 0) {
            for (int i = 0; i < B; i++) {
                uint64_t at = (uint64_t)step * B + i, epoch = at / (uint64_t)n_ex;
                int pos = (int)(at % (uint64_t)n_ex);
                if (pos == 0) {
                    // a fresh seeded shuffle per epoch
                    for (int j = 0; j < n_ex; j++) order[j] = (uint32_t)j;
                    rl_rng g = rl_rng_stream(seed, RL_RNG_DATA, epoch, 2);
                    for (int j = n_ex - 1; j > 0; j--) {
                        int o = (int)rl_rng_below(&g, (uint32_t)(j + 1));
                        uint32_t tmp = order[j];
                        order[j] = order[o];
                        order[o] = tmp;
                    }
                }
                seqs[i] = &ex[order[pos]];
            }
        } else {
            // on-policy (GKD): the student writes, the teacher scores
            for (int i = 0; i < B && rc == 0; i++)
                rc = rl_run_train_prompt(r, (uint64_t)step * B + i, 0, &prompts[i], err);
            if (rc == 0) rc = rl_run_engine(r, B, rl_run_max_new_tokens(r, RL_GEN_ROLLOUT), err);
            rl_engine *se = r->engine;
            for (int i = 0; i < B; i++) dseq_free(&onp[i]);
            if (rc == 0)
                rc = write_completions(r, r->model, &se, prompts, B, c->rollout.temperature,
                                       seed + (uint64_t)step * 7919u, max_len, onp, err);
            for (int i = 0; i < B; i++) rl_prompt_free(&prompts[i]);
            if (rc) break;
            for (int i = 0; i < B; i++) seqs[i] = &onp[i];
        }
        dbatch_fill(&b, seqs, B, V);
        size_t N = (size_t)B * b.T;
        // the teacher's side
        if (k > 0) {
            for (int i = 0; i < B; i++) {
                const dseq *s = seqs[i];
                const dtop *tp = &top[s - ex];
                for (int t = 0; t < n_targets(s); t++) {
                    size_t row = (size_t)i * b.T + s->n_prompt - 1 + t;
                    b.tent[row] = tp->entropy[t];
                    rl_distill_from_topk(tp->ids + (size_t)t * k, tp->logp + (size_t)t * k, k, V,
                                         b.tlogp + row * V);
                }
            }
        } else if ((rc = teacher_score(teacher, &b, V, err))) {
            break;
        }
        // the student's side
        if ((rc = rl_model_forward(r->model, b.tokens, b.lengths, B, b.T, err))) break;
        if ((rc = rl_model_logits(r->model, b.z, err))) break;
        long nt = 0;
        for (size_t row = 0; row < N; row++) nt += b.targets[row] >= 0;
        double inv = nt > 0 ? 1.0 / (double)nt : 0, loss = 0, kl = 0, tsum = 0, ent_t = 0,
               ent_s = 0, tmin = INFINITY, tmax = -INFINITY;
        for (size_t row = 0; row < N; row++) {
            float *z = b.z + row * V;
            if (b.targets[row] < 0) {
                memset(z, 0, (size_t)V * sizeof(float));
                continue;
            }
            double h = b.tent[row] / log_v;
            double ta = rl_distill_tau_of(&tau, h, progress);
            ent_s += rl_distill_log_softmax(z, V, b.work);
            double l = rl_distill_token(d->kl, b.tlogp + row * V, z, V, ta, inv, z, b.work);
            loss += l;
            kl += l / (ta * ta);
            tsum += ta;
            ent_t += b.tent[row];
            if (ta < tmin) tmin = ta;
            if (ta > tmax) tmax = ta;
        }
        loss *= inv;
        rl_model_zero_grad(r->model);
        if ((rc = rl_model_backward_logits(r->model, b.z, err))) break;
        double gnorm = rl_model_grad_norm(r->model);
        size_t ng;
        float *grads = rl_model_grads(r->model, &ng);
        if (isfinite(gnorm) && isfinite(loss)) {
            rl_adamw_hparams hp = {(float)lr, (float)d->beta1, (float)d->beta2, 1e-8f,
                                   (float)d->weight_decay};
            rl_adamw_step(opt, params, grads, &hp, rl_clip_scale(gnorm, (float)d->grad_clip));
        }
        double dt = rl_now() - ts;
        long ntok = 0;
        for (int i = 0; i < B; i++) ntok += b.lengths[i];
        tokens += ntok;
        rl_distill_step_row row = {
            kl * inv, tsum * inv, nt ? tmin : NAN, nt ? tmax : NAN, ent_t * inv, ent_s * inv, nt};
        rl_progress_update(prog, step + 1, "loss %.4f | tau %.2f | H_T %.3f | lr %.2e", loss,
                           row.tau_mean, row.teacher_entropy, lr);
        if (c->logging.every > 0 && (step + 1) % c->logging.every == 0)
            if ((rc = log_step(r, step + 1, loss, &row, gnorm, lr, ntok / dt, dt, err))) break;
        out->final_loss = loss;
        out->final_tau = row.tau_mean;
        if (d->eval_every > 0 && (step + 1) % d->eval_every == 0 && step + 1 < d->steps) {
            rl_distill_result e;
            if ((rc = evaluate(r, prog, step + 1, held, n_held, &e, err))) break;
        }
    }
    out->steps = step;
    out->seconds = rl_now() - t_start;
    out->tokens_per_s = out->seconds > 0 ? tokens / out->seconds : 0;
    if (rc == 0) {
        rl_distill_result e;
        rc = evaluate(r, prog, step, held, n_held, &e, err);
        out->perplexity = e.perplexity;
        out->pass_at_1 = e.pass_at_1;
        out->eval = e.eval;
    }
    rl_progress_finish(prog);

    for (int i = 0; i < n_ex; i++) {
        dseq_free(&ex[i]);
        if (top) {
            free(top[i].entropy);
            free(top[i].ids);
            free(top[i].logp);
        }
    }
    for (int i = 0; i < n_held; i++) dseq_free(&held[i]);
    for (int i = 0; i < B; i++) dseq_free(&onp[i]);
    free(ex);
    free(top);
    free(held);
    free(prompts);
    free(seqs);
    free(onp);
    free(order);
    dbatch_free(&b);
    rl_adamw_free(opt);
    return rc;
}
