// run: shared set-up and evaluation of the run commands. See run.h.
#define _GNU_SOURCE // flock, O_NOFOLLOW
#include "cli/run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernels/rng.h"
#include "policy/checkpoint.h"
#include "policy/fileio.h"

// ---- set-up ----------------------------------------------------------------------------------

// The tokenizer: the one saved with the model directory when a model is given (so a checkpoint
// always decodes with the tokenizer it was trained with), else the config's.
static int init_tokenizer(rl_run *r, const char *model_dir, rl_err *err) {
    const rl_config *c = r->cfg;
    const char *what = c->tokenizer.kind == RL_CFG_TOK_BYTE ? "byte" : c->tokenizer.path;
    char from_dir[4096];
    rl_err probe = {0};
    if (model_dir && model_dir[0] &&
        rl_model_tokenizer_path(model_dir, from_dir, sizeof from_dir, &probe) == 0)
        what = from_dir;
    if (rl_tokenizer_load(&r->tok, what, err)) return rl_err_prefix(err, "tokenizer: ");
    r->tmpl = (rl_chat_template)c->tokenizer.chat_template;
    if (rl_chat_template_check(r->tmpl, r->tok, err))
        return rl_err_prefix(err, "tokenizer.chat_template: ");
    r->n_stop_ids = rl_chat_stop_ids(r->tmpl, r->tok, r->stop_ids);
    r->vocab_limit = rl_tokenizer_vocab_size(r->tok);
    return 0;
}

// The model's shape from the config's model section, sized for the tokenizer.
static void model_config_from(const rl_config *c, const rl_tokenizer *tok, rl_model_config *m) {
    memset(m, 0, sizeof *m);
    int vocab = rl_tokenizer_vocab_size(tok);
    if (rl_tokenizer_kind_of(tok) != RL_TOKENIZER_BYTE) vocab = (vocab + 63) / 64 * 64;
    m->hidden_size = c->model.hidden_size;
    m->num_hidden_layers = c->model.num_hidden_layers;
    m->num_attention_heads = c->model.num_attention_heads;
    m->num_key_value_heads = c->model.num_key_value_heads;
    m->head_dim = 0;
    m->intermediate_size = c->model.intermediate_size;
    m->vocab_size = vocab;
    m->max_position_embeddings = c->model.max_position_embeddings;
    m->rope_theta = c->model.rope_theta;
    m->rms_norm_eps = c->model.rms_norm_eps;
    m->tie_word_embeddings = c->model.tie_word_embeddings;
    m->use_sliding_window = c->model.use_sliding_window;
    m->sliding_window = c->model.sliding_window;
    m->max_window_layers = c->model.max_window_layers;
    m->attention_bias = 1;
    m->bos_token_id = -1;
    m->eos_token_id = rl_tokenizer_eos_id(tok);
    m->n_eos = 1;
    m->eos_token_ids[0] = m->eos_token_id;
}

static int init_model(rl_run *r, const char *model_dir, rl_err *err) {
    const rl_config *c = r->cfg;
    const char *dir = model_dir && model_dir[0] ? model_dir : c->model.path;
    if (dir && dir[0]) {
        if (rl_model_load(&r->model, dir, r->be, err)) return -1;
        if (r->model->V < r->vocab_limit) r->vocab_limit = r->model->V;
    } else {
        rl_model_config mc;
        model_config_from(c, r->tok, &mc);
        if (rl_model_create(&r->model, &mc, r->be, err)) return rl_err_prefix(err, "model: ");
        rl_model_init_random(r->model, (uint64_t)c->run.seed, (float)c->model.init_std);
    }
    rl_model_set_recompute(r->model, c->train.recompute == RL_CFG_RECOMPUTE_LAYER);
    static const int invariant[] = {
        [RL_CFG_INVARIANT_AUTO] = 0, [RL_CFG_INVARIANT_TRUE] = 1, [RL_CFG_INVARIANT_FALSE] = -1};
    r->model->batch_invariant = invariant[c->rollout.batch_invariant];
    return 0;
}

static void task_params_from(const rl_config *c, rl_task_params *p) {
    rl_task_params_defaults(p);
    p->weights[RL_TASK_ARITH] = p->weights[RL_TASK_DERIV] = 0;
    for (int i = 0; i < c->data.tasks.n; i++) {
        double w = i < c->data.task_weights.n ? c->data.task_weights.v[i] : 1.0;
        if (strcmp(c->data.tasks.v[i], "deriv") == 0)
            p->weights[RL_TASK_DERIV] += w;
        else
            p->weights[RL_TASK_ARITH] += w;
    }
    p->arith_min_ops = c->data.arith.min_ops;
    p->arith_max_ops = c->data.arith.max_ops;
    p->arith_max_operand = c->data.arith.max_operand;
    p->arith_allow_negative = c->data.arith.allow_negative;
    p->arith_max_value = c->data.arith.max_value;
    p->deriv_max_degree = c->data.deriv.max_degree;
    p->deriv_max_coef = c->data.deriv.max_coef;
    p->deriv_max_x = c->data.deriv.max_x;
    p->error_rate = c->data.teacher.error_rate;
    p->mistakes = 0;
    for (int i = 0; i < c->data.teacher.error_kinds.n; i++) {
        const char *k = c->data.teacher.error_kinds.v[i];
        if (strcmp(k, "sign") == 0)
            p->mistakes |= RL_MISTAKE_SIGN;
        else if (strcmp(k, "carry") == 0)
            p->mistakes |= RL_MISTAKE_CARRY;
        else if (strcmp(k, "copy") == 0)
            p->mistakes |= RL_MISTAKE_COPY;
    }
}

static int init_data(rl_run *r, rl_err *err) {
    const rl_config *c = r->cfg;
    r->use_tasks = c->data.source == RL_CFG_DATA_TASKS;
    if (r->use_tasks) {
        task_params_from(c, &r->task_params);
        return rl_taskset_init(&r->tasks, &r->task_params, (uint64_t)c->run.seed,
                               c->data.heldout_size, err);
    }
    rl_dataset_opts o = {
        .train_path = c->data.train_path,
        .heldout_path = c->data.heldout_path,
        .split_key = c->data.split_key,
        .heldout_fraction = c->data.heldout_fraction,
        .seed = (uint64_t)c->run.seed,
        .fail_on_bad_line = c->data.on_bad_line == RL_CFG_BAD_FAIL,
    };
    if (rl_dataset_load(&r->data, &o, err)) return -1;
    if (r->data.n_heldout == 0)
        return rl_fail(err, RL_EINPUT,
                       "%s: the split left no held-out lines (data.split_key, "
                       "data.heldout_path or data.heldout_fraction)",
                       c->data.train_path);
    return 0;
}

static int init_reward(rl_run *r, rl_err *err) {
    rl_config *c = r->cfg;
    rl_reward_opts o = {.threads = c->reward.threads,
                        .extract = c->reward.extract == RL_CFG_EXTRACT_AUTO ? "auto" : "boxed"};
    if (rl_reward_create(&r->reward, c->reward.verifiers.v, c->reward.verifiers.n, &o, err))
        return rl_err_prefix(
            err, "%s: reward.verifiers: ", c->source_path ? c->source_path : "<config>");
    r->n_verifiers = rl_reward_n_verifiers(r->reward);
    if (r->n_verifiers > 16)
        return rl_fail(err, RL_EINPUT, "reward.verifiers: at most 16 verifiers are supported");
    return 0;
}

int rl_run_init(rl_run *r, rl_config *cfg, unsigned what, const char *model_dir, rl_err *err) {
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->run_id = -1;
    if (cfg->run.threads > 0) omp_set_num_threads(cfg->run.threads);
    if (what & RL_RUN_PARALLEL)
        RL_TRY(rl_comm_open(&r->comm, err));
    else if (rl_comm_launched_world() > 1)
        // N copies of a one-process command would fight over one run directory.
        return rl_fail(err, RL_EINPUT,
                       "this command runs as one process: of the run commands only train, sft "
                       "and eval (without --benchmark) are data parallel under mpirun/srun "
                       "(policy/PARALLEL.md)");
    else
        r->comm = rl_comm_single();
    rl_dtype act = cfg->run.precision == RL_CFG_PREC_BF16 ? RL_BF16 : RL_F32;
    if (cfg->run.device == RL_CFG_CUDA && r->comm->world > 1) {
        // One GPU per rank of a node, picked by the local rank (CUDA_VISIBLE_DEVICES still
        // decides which GPUs are visible); TF32 as rl_backend_cuda reads it.
        const char *tf = getenv("RLPIPE_CUDA_TF32");
        r->be = rl_backend_cuda_open(r->comm->local_rank, tf && strcmp(tf, "1") == 0, act, err);
        if (r->be) RL_TRY(rl_comm_for_backend(&r->comm, r->be, err));
    } else
        r->be = cfg->run.device != RL_CFG_CUDA ? rl_backend_cpu() : rl_backend_cuda_act(act, err);
    if (!r->be) return rl_err_prefix(err, "run.device: ");
    const char *dir = model_dir && model_dir[0] ? model_dir : cfg->model.path;
    RL_TRY(init_tokenizer(r, (what & RL_RUN_MODEL) ? dir : NULL, err));
    if (what & RL_RUN_MODEL) RL_TRY(init_model(r, model_dir, err));
    if (what & RL_RUN_DATA) RL_TRY(init_data(r, err));
    if (what & RL_RUN_REWARD) RL_TRY(init_reward(r, err));
    if ((what & RL_RUN_SFT) && cfg->sft.enabled && cfg->sft.source == RL_CFG_SFT_JSONL) {
        rl_dataset_opts o = {.train_path = cfg->sft.path,
                             .heldout_fraction = 0,
                             .seed = (uint64_t)cfg->run.seed,
                             .fail_on_bad_line = cfg->data.on_bad_line == RL_CFG_BAD_FAIL};
        if (rl_dataset_load(&r->sft_pairs, &o, err)) return rl_err_prefix(err, "sft.path: ");
        r->have_sft_pairs = 1;
    }
    return 0;
}

// ---- the run directory: output checks, lock, leftovers, signals -------------------------------

void rl_run_add_model_output(rl_run *r, const char *dir) {
    if (dir && r->n_model_outputs < (int)(sizeof r->model_outputs / sizeof r->model_outputs[0]))
        r->model_outputs[r->n_model_outputs++] = dir;
}

// A path that must be a directory when it exists.
static int check_dir_path(const char *key, const char *path, rl_err *err) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
        return rl_fail(err, RL_EINPUT, "%s: %s exists and is not a directory", key, path);
    return 0;
}

static char *parent_of(const char *path) {
    char *p = rl_strdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    char *slash = strrchr(p, '/');
    if (!slash)
        strcpy(p, ".");
    else if (slash == p)
        p[1] = '\0';
    else
        *slash = '\0';
    return p;
}

// Step 1 of rl_run_open_output: every output path, before anything is created.
static int check_outputs(const rl_run *r, rl_err *err) {
    const rl_config *c = r->cfg;
    RL_TRY(check_dir_path("run.out_dir", c->run.out_dir, err));
    struct stat st;
    if (stat(c->logging.db, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return rl_fail(err, RL_EINPUT, "logging.db: %s exists and is not a regular file",
                           c->logging.db);
    } else {
        char *parent = parent_of(c->logging.db);
        int ok = rl_is_dir(parent) || strcmp(parent, c->run.out_dir) == 0;
        if (!ok) rl_fail(err, RL_EINPUT, "logging.db: directory %s does not exist", parent);
        free(parent);
        if (!ok) return -1;
    }
    for (int i = 0; i < r->n_model_outputs; i++)
        if (rl_model_check_save_dir(r->model_outputs[i], err))
            return rl_err_prefix(err, "the run saves a model there: ");
    if (r->writes_checkpoints) {
        RL_TRY(check_dir_path("checkpoint.dir", c->checkpoint.dir, err));
        if (c->algorithm.kl_coef != 0) {
            char ref[4096];
            snprintf(ref, sizeof ref, "%s/reference", c->checkpoint.dir);
            if (rl_model_check_save_dir(ref, err)) return rl_err_prefix(err, "checkpoint.dir: ");
        }
    }
    return 0;
}

// The pid written in a lock file, or 0 (the holder may not have written it yet: retry briefly).
static long lock_holder(int fd) {
    for (int attempt = 0; attempt < 50; attempt++) {
        char buf[32] = {0};
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        if (pid > 0) return pid;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

// Step 2: <out_dir>/rlpipe.lock, flock'ed for the life of the process's run.
static int lock_run_dir(rl_run *r, rl_err *err) {
    const char *dir = r->cfg->run.out_dir;
    char *path = rl_path_join(dir, "rlpipe.lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        rl_fail(err, RL_EINPUT, "run.out_dir: cannot open the run lock %s: %s", path,
                strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        long pid = e == EWOULDBLOCK ? lock_holder(fd) : 0;
        close(fd);
        if (e != EWOULDBLOCK)
            rl_fail(err, RL_EINPUT, "run.out_dir: cannot lock %s: %s", path, strerror(e));
        else if (pid > 0)
            rl_fail(err, RL_EINPUT,
                    "%s is in use by another rlpipe process (pid %ld, lock %s); wait for it to "
                    "end or stop it before starting or resuming a run there",
                    dir, pid, path);
        else
            rl_fail(err, RL_EINPUT,
                    "%s is in use by another rlpipe process (lock %s); wait for it to end or "
                    "stop it before starting or resuming a run there",
                    dir, path);
        free(path);
        return -1;
    }
    free(path);
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        // The lock holds without the pid; only the message of a second process is poorer.
    }
    r->lock_fd = fd;
    r->have_lock = 1;
    return 0;
}

// 1 when name is prefix followed by exactly mkdtemp's six letters or digits.
static int is_temp_name(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0 || strlen(name) != n + 6) return 0;
    for (int i = 0; i < 6; i++) {
        char ch = name[n + i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            return 0;
    }
    return 1;
}

// ".tmp-step-NNNNNNNN-XXXXXX" (rl_train_ckpt_save's temporary).
static int is_ckpt_temp_name(const char *name) {
    if (strncmp(name, ".tmp-step-", 10) != 0 || strlen(name) != 10 + 8 + 1 + 6) return 0;
    for (int i = 10; i < 18; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    return is_temp_name(name + 18, "-");
}

// Removes the directories in dir (not symbolic links, not files) whose names a killed save of
// `base` leaves: base.tmp-XXXXXX, base.old-XXXXXX; base NULL: checkpoint temporaries.
static void remove_leftovers(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d) return;
    char tmp_prefix[512], old_prefix[512];
    if (base) {
        snprintf(tmp_prefix, sizeof tmp_prefix, "%s.tmp-", base);
        snprintf(old_prefix, sizeof old_prefix, "%s.old-", base);
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int ours = base ? is_temp_name(e->d_name, tmp_prefix) || is_temp_name(e->d_name, old_prefix)
                        : is_ckpt_temp_name(e->d_name) ||
                              is_temp_name(e->d_name, "reference.tmp-") ||
                              is_temp_name(e->d_name, "reference.old-");
        if (!ours) continue;
        char *path = rl_path_join(dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            rl_remove_tree(path);
            fprintf(stderr, "rlpipe: removed %s (left by an interrupted save)\n", path);
        }
        free(path);
    }
    closedir(d);
}

// Step 3, under the lock: only this run's own temporary names.
static void clean_leftovers(const rl_run *r) {
    const rl_config *c = r->cfg;
    remove_leftovers(c->run.out_dir, "final");
    remove_leftovers(c->run.out_dir, "sft");
    for (int i = 0; i < r->n_model_outputs; i++) {
        char *parent = parent_of(r->model_outputs[i]);
        char *copy = rl_strdup(r->model_outputs[i]);
        size_t n = strlen(copy);
        while (n > 1 && copy[n - 1] == '/') copy[--n] = '\0';
        const char *slash = strrchr(copy, '/');
        remove_leftovers(parent, slash ? slash + 1 : copy);
        free(copy);
        free(parent);
    }
    if (r->writes_checkpoints) remove_leftovers(c->checkpoint.dir, NULL);
}

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
    static const char msg[] = "\nrlpipe: stopping after the step in progress (send the signal "
                              "again to stop at once)\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
}

int rl_run_stop_signal(void) {
    return stop_signal;
}

int rl_run_fail_stopped(rl_err *err, const char *what) {
    return rl_fail(err, RL_EINTERNAL, "interrupted by %s %s",
                   stop_signal == SIGINT ? "SIGINT" : "SIGTERM", what);
}

static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; // the second signal takes the default action: the process ends
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int rl_run_open_output(rl_run *r, rl_err *err) {
    if (r->comm && r->comm->rank != 0) {
        catch_stop_signals();
        return 0;
    }
    RL_TRY(check_outputs(r, err));
    if (rl_make_dirs(r->cfg->run.out_dir, err)) return rl_err_prefix(err, "run.out_dir: ");
    RL_TRY(lock_run_dir(r, err));
    clean_leftovers(r);
    RL_TRY(rl_log_open(&r->log, r->cfg->logging.db, 1, err));
    rl_log_set_busy_timeout(r->log, r->cfg->logging.busy_timeout_s, &stop_signal);
    catch_stop_signals();
    return 0;
}

void rl_run_record_status(rl_run *r, int ok) {
    if (!r->log || r->run_id < 0) return;
    const char *status = ok ? "finished" : stop_signal ? "interrupted" : "failed";
    double wait = r->cfg->logging.busy_timeout_s;
    // The last word of a run is worth waiting for, even after a stop signal.
    rl_log_set_busy_timeout(r->log, wait > 10 ? wait : 10, NULL);
    rl_err e = {0};
    if (rl_log_finish_run(r->log, r->run_id, status, &e))
        fprintf(stderr, "rlpipe: warning: could not record the run's status '%s': %s\n", status,
                e.msg);
    rl_log_set_busy_timeout(r->log, wait, &stop_signal);
}

int rl_run_start(rl_run *r, const char *name, int resume, rl_err *err) {
    rl_config *c = r->cfg;
    if (!r->log) return 0;
    int64_t id;
    rl_err probe = {0};
    if (rl_log_find_run(r->log, name, &id, &probe) == 0) {
        if (!resume)
            return rl_fail(err, RL_EINPUT,
                           "%s already holds a run named '%s'; resume it with --resume, or start a "
                           "new one with --set run.name=NEW (or remove %s)",
                           c->logging.db, name, c->run.out_dir);
        r->run_id = id;
        return rl_log_finish_run(r->log, id, "running", err);
    }
    char *yaml = NULL;
    if (rl_config_to_yaml(c, &yaml, err)) return -1;
    int rc = rl_log_begin_run(r->log, name, yaml, (uint64_t)c->run.seed, &r->run_id, err);
    free(yaml);
    if (rc) return rl_err_prefix(err, "%s: ", c->logging.db);
    return rl_log_set_run_out_dir(r->log, r->run_id, c->run.out_dir, err);
}

int rl_run_default_model(const rl_config *cfg, char *buf, size_t size) {
    const char *names[] = {"final", "sft"};
    for (int i = 0; i < 2; i++) {
        char probe[4096];
        snprintf(probe, sizeof probe, "%s/%s/config.json", cfg->run.out_dir, names[i]);
        struct stat st;
        if (stat(probe, &st) == 0) {
            snprintf(buf, size, "%s/%s", cfg->run.out_dir, names[i]);
            return 1;
        }
    }
    return 0;
}

void rl_run_free(rl_run *r) {
    if (!r) return;
    rl_comm_release(r->comm, 0); // before the backend: an NCCL communicator uses its device
    r->comm = NULL;
    rl_engine_free(r->engine);
    rl_reward_free(r->reward);
    if (r->use_tasks)
        rl_taskset_free(&r->tasks);
    else
        rl_dataset_free(&r->data);
    if (r->have_sft_pairs) rl_dataset_free(&r->sft_pairs);
    rl_model_free(r->model);
    rl_tokenizer_free(r->tok);
    if (r->log) rl_log_close(r->log);
    if (r->be) rl_backend_release(r->be);
    if (r->have_lock) {
        // The pid goes with the lock, so a stale one never names a process that holds nothing.
        if (ftruncate(r->lock_fd, 0) != 0) {
        }
        close(r->lock_fd);
    }
    memset(r, 0, sizeof *r);
}

void rl_run_end(rl_run *r, int ok) {
    rl_run_record_status(r, ok);
    if (!ok && r->comm && r->comm->world > 1) {
        // A failed rank ends the whole job (MPI_Abort): its peers may wait in a collective.
        rl_comm *c = r->comm;
        r->comm = NULL;
        rl_run_free(r);
        rl_comm_release(c, 2);
        return;
    }
    rl_run_free(r);
}

int rl_run_save_model(const rl_run *r, const char *dir, rl_err *err) {
    const rl_config *c = r->cfg;
    if (!r->comm || r->comm->rank == 0) {
        RL_TRY(rl_model_save(r->model, dir, c->model.save_dtype == RL_CFG_BF16, err));
        RL_TRY(rl_model_save_tokenizer(
            dir, c->tokenizer.kind == RL_CFG_TOK_BYTE ? "byte" : c->tokenizer.path, err));
    }
    return r->comm ? r->comm->barrier(r->comm, err) : 0;
}

// ---- prompts ---------------------------------------------------------------------------------

// prompt_template with every "{problem}" replaced.
static char *apply_template(const char *tmpl, const char *problem) {
    size_t np = strlen(problem), cap = strlen(tmpl) + 1, len = 0;
    for (const char *s = strstr(tmpl, "{problem}"); s; s = strstr(s + 9, "{problem}")) cap += np;
    char *out = rl_malloc(cap);
    for (const char *s = tmpl; *s;) {
        if (strncmp(s, "{problem}", 9) == 0) {
            memcpy(out + len, problem, np);
            len += np;
            s += 9;
        } else
            out[len++] = *s++;
    }
    out[len] = '\0';
    return out;
}

int rl_run_render(rl_run *r, rl_prompt *p, rl_err *err) {
    char *user = apply_template(r->cfg->data.prompt_template, p->problem);
    const char *system = r->cfg->data.system_prompt[0] ? r->cfg->data.system_prompt : NULL;
    char *text = NULL;
    int rc = rl_chat_render(r->tmpl, r->tok, system, user, &text, err);
    free(user);
    if (rc) return -1;
    p->ids.len = 0;
    rc = rl_tokenizer_encode_append(r->tok, text, strlen(text), &p->ids, err);
    free(text);
    return rc;
}

static int from_problem(rl_run *r, const rl_problem *pr, uint64_t key, rl_prompt *out,
                        rl_err *err) {
    memset(out, 0, sizeof *out);
    out->problem = rl_strdup(pr->text);
    out->answer = rl_strdup(pr->answer);
    out->task = rl_strdup(rl_task_kind_name(pr->kind));
    out->key = key;
    return rl_run_render(r, out, err);
}

static int from_item(rl_run *r, const rl_item *it, uint64_t key, rl_prompt *out, rl_err *err) {
    memset(out, 0, sizeof *out);
    out->problem = rl_strdup(it->prompt);
    out->answer = it->answer ? rl_strdup(it->answer) : NULL;
    out->tests_json = it->tests_json ? rl_strdup(it->tests_json) : NULL;
    out->task = it->task ? rl_strdup(it->task) : NULL;
    out->response = it->response ? rl_strdup(it->response) : NULL;
    out->key = key;
    return rl_run_render(r, out, err);
}

#define HELDOUT_KEY_BASE (1ull << 62)

int rl_run_train_prompt(rl_run *r, uint64_t index, uint64_t sample, rl_prompt *out, rl_err *err) {
    if (r->use_tasks) {
        rl_problem pr;
        rl_taskset_train(&r->tasks, index, &pr);
        RL_TRY(from_problem(r, &pr, index, out, err));
        char trace[2048];
        rl_teacher_trace(&r->task_params, &pr, (uint64_t)r->cfg->run.seed, sample, trace,
                         sizeof trace, NULL);
        out->response = rl_strdup(trace);
        return 0;
    }
    // Datasets: sampling with a seeded stream per index (with replacement), so index i names the
    // same item in every run and after a resume.
    rl_rng g = rl_rng_stream((uint64_t)r->cfg->run.seed, RL_RNG_DATA, index, 0);
    int i = (int)rl_rng_below(&g, (uint32_t)r->data.n_train);
    return from_item(r, &r->data.train[i], index, out, err);
}

int rl_run_n_heldout(const rl_run *r) {
    return r->use_tasks ? r->tasks.n_heldout : r->data.n_heldout;
}

int rl_run_heldout_prompt(rl_run *r, int index, rl_prompt *out, rl_err *err) {
    if (r->use_tasks)
        return from_problem(r, &r->tasks.heldout[index], HELDOUT_KEY_BASE + index, out, err);
    return from_item(r, &r->data.heldout[index], HELDOUT_KEY_BASE + index, out, err);
}

int rl_run_max_new_tokens(const rl_run *r, rl_gen_purpose purpose) {
    const rl_config *c = r->cfg;
    if (purpose == RL_GEN_ROLLOUT || c->eval.max_new_tokens <= 0) return c->rollout.max_new_tokens;
    return c->eval.max_new_tokens;
}

rl_gen_params rl_run_gen_params(const rl_run *r, rl_gen_purpose purpose, double temperature) {
    const rl_config *c = r->cfg;
    static const uint64_t seed_offset[3] = {0, 7919, 104729};
    rl_gen_params p = {
        .max_new_tokens = rl_run_max_new_tokens(r, purpose),
        .stop_ids = r->stop_ids,
        .n_stop_ids = r->n_stop_ids,
        .stop_strings = (const char *const *)c->rollout.stop.v,
        .n_stop_strings = c->rollout.stop.n,
        .seed = (uint64_t)c->run.seed + seed_offset[purpose],
    };
    if (purpose == RL_GEN_ROLLOUT) {
        p.sampling = (rl_sampling){(float)c->rollout.temperature, c->rollout.top_k,
                                   (float)c->rollout.top_p, (float)c->rollout.min_p};
        p.greedy = c->rollout.greedy;
    } else {
        p.sampling = (rl_sampling){(float)temperature, 0, (float)c->eval.top_p, 0.0f};
        p.greedy = temperature <= 0;
    }
    return p;
}

int rl_run_engine(rl_run *r, int slots, int max_new_tokens, rl_err *err) {
    // Long enough for the longest prompt we are likely to see plus the completion budget.
    int need = max_new_tokens + 256;
    if (r->engine && r->engine_slots >= slots && r->engine_len >= need) return 0;
    rl_engine_free(r->engine);
    r->engine = NULL;
    r->engine_slots = slots > r->engine_slots ? slots : r->engine_slots;
    r->engine_len = need > r->engine_len ? need : r->engine_len;
    const rl_cfg_rollout *ro = &r->cfg->rollout;
    rl_engine_opts o = {.max_slots = r->engine_slots,
                        .max_len = r->engine_len,
                        .vocab_limit = r->vocab_limit,
                        .prefill_chunk = ro->prefill_chunk,
                        .kv_budget_bytes = (size_t)(ro->kv_cache_mb * 1e6),
                        .eager_decode = !ro->cuda_graphs};
    const char *key = "rollout.kv_cache_mb";
    if (ro->gpu_memory_utilization > 0 && r->be->mem_available) {
        o.kv_budget_bytes = (size_t)(ro->gpu_memory_utilization * r->be->mem_available(r->be));
        key = "rollout.gpu_memory_utilization";
    }
    if (rl_engine_create_opts(&r->engine, r->model, r->tok, &o, err))
        return o.kv_budget_bytes ? rl_err_prefix(err, "%s: ", key) : -1;
    return 0;
}

// ---- scoring -----------------------------------------------------------------------------------

// Parses a tests array (validated when the dataset was read) into ABI tests pointing into the
// JSON value, which must outlive them.
static rl_vtest *parse_tests(json_t *arr, int *n) {
    size_t count = json_array_size(arr);
    rl_vtest *t = rl_calloc(count ? count : 1, sizeof *t);
    for (size_t i = 0; i < count; i++) {
        json_t *o = json_array_get(arr, i);
        json_t *as = json_object_get(o, "assert");
        if (json_is_string(as))
            t[i] = (rl_vtest){RL_VTEST_ASSERT, json_string_value(as), NULL};
        else
            t[i] = (rl_vtest){RL_VTEST_STDIO, json_string_value(json_object_get(o, "input")),
                              json_string_value(json_object_get(o, "output"))};
    }
    *n = (int)count;
    return t;
}

int rl_run_score(rl_run *r, rl_batch *b, int s0, int n, int max_new_tokens, rl_err *err) {
    if (b->verdict_bytes != (size_t)r->n_verifiers * sizeof(rl_vresult))
        return rl_fail(err, RL_EINTERNAL, "batch verdicts sized for %zu bytes, not %d verifiers",
                       b->verdict_bytes, r->n_verifiers);
    const rl_prompt *prompts = b->prompts;
    const rl_completion *comps = b->comps + s0;
    const int32_t *group = b->group + s0;
    rl_vsample *s = rl_calloc((size_t)(n ? n : 1), sizeof *s);
    json_t **tests_json = rl_calloc((size_t)n, sizeof *tests_json);
    rl_vtest **tests = rl_calloc((size_t)n, sizeof *tests);
    for (int i = 0; i < n; i++) {
        const rl_prompt *p = &prompts[group[i]];
        const rl_completion *c = &comps[i];
        s[i] = (rl_vsample){
            .prompt = p->problem,
            .completion = c->text,
            .tokens = c->tokens,
            .n_tokens = c->n_tokens,
            .max_tokens = max_new_tokens,
            .truncated = c->finish == RL_FINISH_LENGTH,
            .answer = p->answer,
            .task = p->task,
        };
        if (p->tests_json) {
            tests_json[i] = json_loads(p->tests_json, 0, NULL);
            if (tests_json[i]) {
                int nt = 0;
                tests[i] = parse_tests(tests_json[i], &nt);
                s[i].tests = tests[i];
                s[i].n_tests = nt;
            }
        }
    }
    int rc = rl_reward_score(r->reward, s, group, n, rl_batch_verdicts(b, s0), b->reward + s0,
                             b->skipped + s0, err);
    for (int i = 0; i < n; i++) {
        free(tests[i]);
        json_decref(tests_json[i]);
    }
    free(tests);
    free(tests_json);
    free(s);
    return rc;
}

// ---- evaluation --------------------------------------------------------------------------------

int rl_run_eval(rl_run *r, int k, double temperature, int n_problems, rl_eval_result *out,
                rl_err *err) {
    int n = rl_run_n_heldout(r);
    if (n_problems > 0 && n_problems < n) n = n_problems;
    if (k < 1) k = 1;
    int max_new = rl_run_max_new_tokens(r, RL_GEN_EVAL);
    memset(out, 0, sizeof *out);
    out->n = n;
    out->k = k;
    out->temperature = temperature;
    double t0 = rl_now();

    // Chunks of problems keep memory bounded; results do not depend on the chunking.
    int chunk = 512 / k > 0 ? 512 / k : 1;
    RL_TRY(rl_run_engine(r, chunk * k, max_new, err));
    int nv = r->n_verifiers, acc = rl_reward_accuracy_index(r->reward);
    rl_batch b;
    rl_batch_alloc(&b, chunk, k, (size_t)nv * sizeof(rl_vresult));
    rl_gen_prompt *gp = rl_calloc((size_t)chunk, sizeof *gp);
    double correct_share = 0, any_correct = 0, len_sum = 0, rew_sum = 0, new_tokens = 0, gen_s = 0;
    double vsum[16] = {0};
    rl_gen_params gparams = rl_run_gen_params(r, RL_GEN_EVAL, temperature);
    int rc = 0;
    // Data parallel: this rank's contiguous share [plo, phi) of the problems.
    int64_t plo = 0, phi = n;
    if (r->comm) rl_comm_split(n, r->comm->rank, r->comm->world, &plo, &phi);
    for (int base = (int)plo; base < phi && rc == 0; base += chunk) {
        if (stop_signal) {
            rc = rl_run_fail_stopped(err, "during the evaluation");
            break;
        }
        int m = (int)phi - base < chunk ? (int)phi - base : chunk;
        for (int i = 0; i < m && rc == 0; i++) {
            rc = rl_run_heldout_prompt(r, base + i, &b.prompts[i], err);
            b.n_prompts = i + 1; // freed by rl_batch_clear, filled or not
            gp[i] = (rl_gen_prompt){b.prompts[i].ids.data, (int)b.prompts[i].ids.len,
                                    b.prompts[i].key, k};
        }
        rl_gen_stats st;
        if (rc == 0) rc = rl_generate(r->engine, &gparams, gp, m, b.comps, &st, err);
        if (rc == 0) {
            gen_s += st.seconds;
            new_tokens += st.new_tokens;
            rc = rl_run_score(r, &b, 0, m * k, max_new, err);
            for (int i = 0; rc == 0 && i < m; i++) {
                int ok = 0;
                for (int s = 0; s < k; s++) {
                    int j = i * k + s;
                    const rl_vresult *row = rl_batch_verdicts(&b, j);
                    int right =
                        acc >= 0 ? row[acc].status == RL_VERIFY_OK && row[acc].score >= 1.0 - 1e-9
                                 : b.reward[j] >= 1.0 - 1e-9;
                    ok += right;
                    for (int v = 0; v < nv; v++) vsum[v] += row[v].score;
                    len_sum += b.comps[j].n_tokens;
                    rew_sum += b.reward[j];
                }
                correct_share += (double)ok / k;
                any_correct += ok > 0;
            }
        }
        rl_batch_clear(&b);
    }
    rl_batch_free(&b);
    free(gp);
    if (rc) return -1;
    if (r->comm && r->comm->world > 1) {
        double sums[6 + 16] = {correct_share, any_correct, len_sum, rew_sum, new_tokens, gen_s};
        for (int v = 0; v < nv; v++) sums[6 + v] = vsum[v];
        RL_TRY(r->comm->all_reduce_f64(r->comm, sums, 6 + nv, err));
        correct_share = sums[0];
        any_correct = sums[1];
        len_sum = sums[2];
        rew_sum = sums[3];
        new_tokens = sums[4];
        gen_s = sums[5] / r->comm->world; // the ranks sample side by side
        for (int v = 0; v < nv; v++) vsum[v] = sums[6 + v];
    }
    double total = (double)n * k;
    out->pass_at_1 = correct_share / n;
    out->pass_at_k = any_correct / n;
    for (int v = 0; v < nv; v++) out->verifier_means[v] = vsum[v] / total;
    out->reward_mean = rew_sum / total;
    out->len_mean = len_sum / total;
    out->seconds = rl_now() - t0;
    out->tokens_per_s = gen_s > 0 ? new_tokens / gen_s : 0;
    return 0;
}

void rl_eval_print(const rl_run *r, const char *label, const rl_eval_result *e, int header,
                   FILE *out) {
    int nv = r->n_verifiers;
    if (header) {
        fprintf(out, "| %-16s | %5s | %3s | %4s | %7s | %7s |", "model", "n", "k", "T", "pass@1",
                "pass@k");
        for (int v = 0; v < nv; v++) fprintf(out, " %12s |", rl_reward_name(r->reward, v));
        fprintf(out, " %6s | %8s | %6s |\n", "reward", "mean len", "secs");
        fprintf(out, "|%s|%s|%s|%s|%s|%s|", "------------------", "-------", "-----", "------",
                "---------", "---------");
        for (int v = 0; v < nv; v++) fprintf(out, "%s|", "--------------");
        fprintf(out, "%s|%s|%s|\n", "--------", "----------", "--------");
    }
    fprintf(out, "| %-16s | %5d | %3d | %4.2f | %6.1f%% | %6.1f%% |", label, e->n, e->k,
            e->temperature, 100 * e->pass_at_1, 100 * e->pass_at_k);
    for (int v = 0; v < nv; v++) fprintf(out, " %12.3f |", e->verifier_means[v]);
    fprintf(out, " %6.3f | %8.1f | %6.1f |\n", e->reward_mean, e->len_mean, e->seconds);
    fflush(out);
}

int rl_eval_log(rl_run *r, int step, const rl_eval_result *e, rl_err *err) {
    if (!r->log) return 0;
    const char *names[16];
    for (int v = 0; v < r->n_verifiers; v++) names[v] = rl_reward_name(r->reward, v);
    rl_eval_row row;
    rl_eval_row_init(&row);
    row.run_id = r->run_id;
    row.step = step;
    row.split = "heldout";
    row.n = e->n;
    row.k = e->k;
    row.temperature = e->temperature;
    row.pass_at_1 = e->pass_at_1;
    row.pass_at_k = e->pass_at_k;
    row.len_mean = e->len_mean;
    row.seconds = e->seconds;
    row.verifier_names = names;
    row.verifier_means = e->verifier_means;
    row.n_verifiers = r->n_verifiers;
    return rl_log_eval(r->log, &row, err);
}
