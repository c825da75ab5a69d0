// sft: supervised fine-tuning on teacher or dataset responses, loss on response tokens only.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/trainer.h"
#include "kernels/rng.h"
#include "policy/optim.h"
#include "policy/update.h"

// The config's lr_schedule values are the optimizer's schedule ids.
_Static_assert((int)RL_CFG_LR_CONSTANT == (int)RL_LR_CONSTANT &&
                   (int)RL_CFG_LR_COSINE == (int)RL_LR_COSINE &&
                   (int)RL_CFG_LR_LINEAR == (int)RL_LR_LINEAR,
               "lr_schedule ids");

// One padded batch of prompt+response sequences with next-token targets on the response only.
typedef struct sft_batch {
    int B, T, cap_T;
    int32_t *tokens;  // [B, T]
    int32_t *lengths; // [B]
    int32_t *targets; // [B, T] next token where it is a response token, else -1
    float *logp;      // [B, T]
    float *dlogp;     // [B, T]
    long n_targets;
} sft_batch;

static void batch_reserve(sft_batch *b, int B, int T) {
    if (T <= b->cap_T && b->B == B) return;
    b->B = B;
    b->cap_T = T > b->cap_T ? T * 2 : b->cap_T;
    size_t n = (size_t)B * b->cap_T;
    b->tokens = rl_realloc(b->tokens, n * sizeof(int32_t));
    b->targets = rl_realloc(b->targets, n * sizeof(int32_t));
    b->logp = rl_realloc(b->logp, n * sizeof(float));
    b->dlogp = rl_realloc(b->dlogp, n * sizeof(float));
    b->lengths = rl_realloc(b->lengths, (size_t)B * sizeof(int32_t));
}

static void batch_free(sft_batch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->logp);
    free(b->dlogp);
    free(b->lengths);
}

// Training example `index`: from the SFT dataset (sft.source: jsonl, drawn with a seeded stream)
// or the run's prompt source (teacher traces for procedural tasks, "response" fields otherwise).
static int sft_example(rl_run *r, const rl_dataset *pairs, uint64_t index, rl_prompt *p,
                       rl_err *err) {
    if (!pairs) return rl_run_train_prompt(r, index, 0, p, err);
    rl_rng g = rl_rng_stream((uint64_t)r->cfg->run.seed, RL_RNG_DATA, index, 1);
    const rl_item *it = &pairs->train[rl_rng_below(&g, (uint32_t)pairs->n_train)];
    memset(p, 0, sizeof *p);
    p->problem = rl_strdup(it->prompt);
    p->response = it->response ? rl_strdup(it->response) : NULL;
    p->key = index;
    return rl_run_render(r, p, err);
}

// Builds the batch of examples [first, first + B) of the training stream.
static int build_batch(rl_run *r, const rl_dataset *pairs, sft_batch *b, int B, uint64_t first,
                       rl_ids *seqs, int *n_prompt, rl_err *err) {
    int maxlen = 0;
    int max_pos = r->model->cfg.max_position_embeddings;
    for (int i = 0; i < B; i++) {
        rl_prompt p;
        if (sft_example(r, pairs, first + (uint64_t)i, &p, err)) return -1;
        if (!p.response) {
            rl_prompt_free(&p);
            return rl_fail(err, RL_EINPUT,
                           "sft: training item %llu has no \"response\" to learn from",
                           (unsigned long long)(first + i));
        }
        seqs[i].len = 0;
        for (size_t k = 0; k < p.ids.len; k++) {
            if (seqs[i].len == seqs[i].cap) {
                seqs[i].cap = seqs[i].cap ? seqs[i].cap * 2 : 256;
                seqs[i].data = rl_realloc(seqs[i].data, seqs[i].cap * sizeof(int32_t));
            }
            seqs[i].data[seqs[i].len++] = p.ids.data[k];
        }
        n_prompt[i] = (int)p.ids.len;
        int rc = rl_tokenizer_encode_append(r->tok, p.response, strlen(p.response), &seqs[i], err);
        rl_prompt_free(&p);
        if (rc) return -1;
        if (r->n_stop_ids > 0) {
            // The response ends with the template's stop token, so the model learns to stop.
            if (seqs[i].len == seqs[i].cap) {
                seqs[i].cap = seqs[i].cap * 2 + 1;
                seqs[i].data = rl_realloc(seqs[i].data, seqs[i].cap * sizeof(int32_t));
            }
            seqs[i].data[seqs[i].len++] = r->stop_ids[0];
        }
        if ((int)seqs[i].len > max_pos)
            seqs[i].len = (size_t)max_pos; // truncate over-long examples
        if ((int)seqs[i].len > maxlen) maxlen = (int)seqs[i].len;
    }
    batch_reserve(b, B, maxlen);
    b->T = maxlen;
    b->n_targets = 0;
    for (int i = 0; i < B; i++) {
        int len = (int)seqs[i].len;
        b->lengths[i] = len;
        for (int t = 0; t < maxlen; t++) {
            size_t at = (size_t)i * maxlen + t;
            b->tokens[at] = t < len ? seqs[i].data[t] : 0;
            int target = t + 1 < len && t + 1 >= n_prompt[i] ? seqs[i].data[t + 1] : -1;
            b->targets[at] = target;
            b->n_targets += target >= 0;
        }
    }
    return 0;
}

static int log_sft_step(rl_run *r, int64_t run_id, int step, double loss, double gnorm, double lr,
                        double tps, double dt, rl_err *err) {
    if (!r->log) return 0;
    RL_TRY(rl_log_begin_step(r->log, run_id, step, err));
    rl_step_stats s;
    rl_step_stats_init(&s);
    s.phase = "sft";
    s.loss = loss;
    s.grad_norm = gnorm;
    s.lr = lr;
    s.train_tokens_per_s = tps;
    s.t_update = dt;
    s.t_total = dt;
    if (rl_log_step_stats(r->log, &s, err)) {
        rl_log_abort_step(r->log);
        return -1;
    }
    return rl_log_commit_step(r->log, err);
}

int rl_sft(rl_run *r, rl_progress *prog, rl_sft_result *out, rl_err *err) {
    const rl_config *c = r->cfg;
    const rl_cfg_sft *sc = &c->sft;
    memset(out, 0, sizeof *out);
    int64_t run_id = r->log ? r->run_id : -1;
    const rl_comm *comm = r->comm ? r->comm : NULL;
    rl_adamw *opt;
    RL_TRY(rl_update_optimizer(&opt, r->model, comm, c->parallel.zero, err));
    rl_adamw_set_seed(opt, (uint64_t)c->run.seed); // bf16 stochastic rounding
    // Data parallel: rank q takes its contiguous share [lo, hi) of each step's sft.batch_size
    // examples; the loss is normalised by the global target count.
    int64_t lo = 0, hi = sc->batch_size;
    if (comm) rl_comm_split(sc->batch_size, comm->rank, comm->world, &lo, &hi);
    int B = (int)(hi - lo);
    sft_batch b = {0};
    rl_ids *seqs = rl_calloc((size_t)(B ? B : 1), sizeof *seqs);
    int *n_prompt = rl_malloc((size_t)(B ? B : 1) * sizeof(int));
    double t0 = rl_now(), tokens = 0;
    int rc = 0, step = 0;
    for (;; step++) {
        double el = rl_now() - t0;
        if (sc->steps > 0 && step >= sc->steps) break;
        // Every rank follows rank 0's clock and stops when any rank caught a stop signal.
        int64_t stop = rl_run_stop_signal() != 0;
        if (comm && ((rc = comm->broadcast(comm, &el, sizeof el, 0, err)) ||
                     (rc = comm->all_reduce_i64(comm, &stop, 1, err))))
            break;
        if (sc->steps <= 0 && el >= sc->time_budget_s) break;
        if (stop) {
            rc = rl_run_fail_stopped(err, "during SFT (it starts over on --resume)");
            break;
        }
        double progress = sc->steps > 0 ? (double)step / sc->steps : el / sc->time_budget_s;
        double lr =
            rl_lr_at(sc->lr_schedule, sc->lr, sc->warmup_steps, sc->min_lr_ratio, step, progress);
        double ts = rl_now();
        b.n_targets = 0;
        if (B > 0) {
            if ((rc = build_batch(r, r->have_sft_pairs ? &r->sft_pairs : NULL, &b, B,
                                  (uint64_t)step * sc->batch_size + (uint64_t)lo, seqs, n_prompt,
                                  err)))
                break;
            if ((rc = rl_model_forward(r->model, b.tokens, b.lengths, B, b.T, err))) break;
            if ((rc = rl_model_token_logprobs(r->model, b.targets, 1.0f, b.logp, NULL, err))) break;
        }
        double n_targets = (double)b.n_targets;
        if (comm && (rc = comm->all_reduce_f64(comm, &n_targets, 1, err))) break;
        double loss = 0, inv = n_targets > 0 ? 1.0 / n_targets : 0;
        for (size_t i = 0; B > 0 && i < (size_t)B * b.T; i++) {
            int on = b.targets[i] >= 0;
            loss -= on ? b.logp[i] : 0;
            b.dlogp[i] = on ? (float)-inv : 0.0f;
        }
        loss *= inv;
        rl_model_zero_grad(r->model);
        if (B > 0 && (rc = rl_model_backward(r->model, b.dlogp, NULL, err))) break;
        long ntok = 0;
        for (int i = 0; i < B; i++) ntok += b.lengths[i];
        // The loss and token count are summed over ranks with the gradient.
        double st[2] = {loss, (double)ntok}, gnorm;
        int skipped;
        rl_adamw_hparams hp = {(float)lr, (float)sc->beta1, (float)sc->beta2, 1e-8f,
                               (float)sc->weight_decay};
        if ((rc = rl_update_apply(r->model, opt, comm, c->parallel.zero, &hp, (float)sc->grad_clip,
                                  st, 2, &gnorm, &skipped, err)))
            break;
        loss = st[0];
        ntok = (long)st[1];
        double dt = rl_now() - ts;
        tokens += ntok;
        double tps = tokens / (rl_now() - t0);
        rl_progress_update(prog, step + 1, "loss %.4f | lr %.2e | %.1fk tok/s", loss, lr,
                           tps / 1000);
        if (c->logging.every > 0 && (step + 1) % c->logging.every == 0)
            if ((rc = log_sft_step(r, run_id, step + 1, loss, gnorm, lr, ntok / dt, dt, err)))
                break;
        if (sc->eval_every > 0 && (step + 1) % sc->eval_every == 0) {
            // The SFT curve: the same held-out measure as RL's, logged to the SFT run's evals.
            rl_eval_result e;
            if ((rc = rl_run_eval(r, c->eval.k, c->eval.temperature, c->eval.n, &e, err))) break;
            if ((rc = rl_eval_log(r, step + 1, &e, err))) break;
            rl_progress_note(prog, "[sft] step %d: held-out pass@1 %.1f%%, pass@%d %.1f%% (T=%.1f)",
                             step + 1, 100 * e.pass_at_1, e.k, 100 * e.pass_at_k, e.temperature);
        }
        out->final_loss = loss;
    }
    rl_progress_finish(prog);
    out->steps = step;
    out->seconds = rl_now() - t0;
    out->tokens_per_s = out->seconds > 0 ? tokens / out->seconds : 0;
    for (int i = 0; i < B; i++) rl_ids_free(&seqs[i]);
    free(seqs);
    free(n_prompt);
    batch_free(&b);
    rl_adamw_free(opt);
    return rc;
}
