// train_state: atomic trainer checkpoints and resuming from them. See train_state.h.
#define _GNU_SOURCE
#include "cli/train_state.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "policy/checkpoint.h"
#include "policy/fileio.h"
#include "policy/safetensors.h"

static int write_state_json(const char *path, const rl_train_state *s, int adam_step, rl_err *err) {
    json_t *o =
        json_pack("{s:i, s:I, s:i, s:i, s:s}", "step", s->step, "data_pos", (json_int_t)s->data_pos,
                  "adam_step", adam_step, "nonfinite_streak", s->nonfinite_streak, "seed", "");
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    json_object_set_new(o, "seed", json_string(seed)); // as text: JSON numbers lose 64-bit seeds
    int rc = json_dump_file(o, path, JSON_INDENT(2));
    json_decref(o);
    if (rc) return rl_fail(err, RL_EINTERNAL, "%s: cannot write trainer state", path);
    return 0;
}

// Parses the step out of "step-00000040"; -1 when the name is not a checkpoint's.
static int ckpt_step_of(const char *name) {
    if (strncmp(name, "step-", 5) != 0) return -1;
    char *end;
    long v = strtol(name + 5, &end, 10);
    if (end == name + 5 || *end != '\0' || v < 0 || v > 1000000000) return -1;
    return (int)v;
}

// 1 when root/name is a real directory (not a symbolic link) holding the regular file `file`.
static int dir_holds(const char *root, const char *name, const char *file) {
    char path[4600];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", root, name);
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    snprintf(path, sizeof path, "%s/%s/%s", root, name, file);
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// A checkpoint this code wrote: its marker names the same step as the directory.
static int is_our_checkpoint(const char *root, const char *name, int step) {
    if (!dir_holds(root, name, RL_CKPT_MARKER)) return 0;
    char path[4600];
    snprintf(path, sizeof path, "%s/%s/%s", root, name, RL_CKPT_MARKER);
    json_t *o = json_load_file(path, 0, NULL);
    json_t *js = json_object_get(o, "step");
    int ok = json_is_integer(js) && json_integer_value(js) == step;
    json_decref(o);
    return ok;
}

// Deletes the oldest checkpoints until `keep` remain, counting and deleting only directories
// that carry this code's marker: a step-N directory anyone else put there is left alone.
static void prune(const char *root, int keep) {
    if (keep <= 0) return;
    DIR *d = opendir(root);
    if (!d) return;
    int steps[4096], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        int s = ckpt_step_of(e->d_name);
        if (s >= 0 && is_our_checkpoint(root, e->d_name, s)) steps[n++] = s;
    }
    closedir(d);
    // Delete the oldest until `keep` remain.
    while (n > keep) {
        int oldest = 0;
        for (int i = 1; i < n; i++)
            if (steps[i] < steps[oldest]) oldest = i;
        char path[4096];
        snprintf(path, sizeof path, "%s/step-%08d", root, steps[oldest]);
        rl_remove_tree(path);
        steps[oldest] = steps[--n];
    }
}

int rl_train_ckpt_save(const char *root, const rl_model *m, const rl_adamw *opt,
                       const rl_train_state *state, const char *tokenizer, int keep, rl_err *err) {
    float *mh = rl_malloc((opt->n ? opt->n : 1) * sizeof(float));
    float *vh = rl_malloc((opt->n ? opt->n : 1) * sizeof(float));
    rl_adamw_state_download(opt, mh, vh);
    float *xh = NULL;
    if (rl_adamw_has_master(opt)) {
        xh = rl_malloc((opt->n ? opt->n : 1) * sizeof(float));
        rl_adamw_master_download((rl_adamw *)opt, m->params_block, xh);
    }
    int rc = rl_train_ckpt_save_moments(root, m, mh, vh, xh, opt->n, opt->step, state, tokenizer,
                                        keep, err);
    free(mh);
    free(vh);
    free(xh);
    return rc;
}

int rl_train_ckpt_save_moments(const char *root, const rl_model *m, const float *mh,
                               const float *vh, const float *xh, size_t n, int adam_step,
                               const rl_train_state *state, const char *tokenizer, int keep,
                               rl_err *err) {
    if (rl_make_dir(root, err)) return rl_err_prefix(err, "checkpoint.dir ");
    char tmp[4096], final_dir[4096], path[4200];
    snprintf(final_dir, sizeof final_dir, "%s/step-%08d", root, state->step);
    snprintf(tmp, sizeof tmp, "%s/.tmp-step-%08d-XXXXXX", root, state->step);
    if (!mkdtemp(tmp))
        return rl_fail(err, RL_EINTERNAL, "%s: cannot create a temporary directory: %s", root,
                       strerror(errno));
    int rc = -1;
    snprintf(path, sizeof path, "%s/model", tmp);
    rl_model_save_opts so = {.bf16 = 0, .tokenizer = tokenizer};
    if (rl_model_save_ex(m, path, &so, err)) goto fail;
    // bfloat16 training saves the float32 master too, so a resumed run continues bit for bit
    rl_st_out_tensor t[3] = {{.name = "adam.m", .ndim = 1, .shape = {(int64_t)n}, .data = mh},
                             {.name = "adam.v", .ndim = 1, .shape = {(int64_t)n}, .data = vh},
                             {.name = "master", .ndim = 1, .shape = {(int64_t)n}, .data = xh}};
    snprintf(path, sizeof path, "%s/optimizer.safetensors", tmp);
    if (rl_st_write(path, t, xh ? 3 : 2, RL_ST_F32, err)) goto fail;
    snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
    if (write_state_json(path, state, adam_step, err)) goto fail;
    snprintf(path, sizeof path, "%s/%s", tmp, RL_CKPT_MARKER);
    char marker[64];
    int mlen = snprintf(marker, sizeof marker, "{\"step\": %d}\n", state->step);
    if (rl_write_file_atomic(path, marker, (size_t)mlen, err)) goto fail;
    // A stale checkpoint of the same step (from a killed run) is replaced; a directory of that
    // name that is not a checkpoint (no marker, no trainer state) is not ours to delete.
    char name[64];
    snprintf(name, sizeof name, "step-%08d", state->step);
    struct stat st;
    if (lstat(final_dir, &st) == 0 && !is_our_checkpoint(root, name, state->step) &&
        !dir_holds(root, name, "trainer_state.json")) {
        rl_fail(err, RL_EINPUT,
                "%s exists and is not an rlpipe checkpoint (no %s); refusing to replace it",
                final_dir, RL_CKPT_MARKER);
        goto fail;
    }
    rl_remove_tree(final_dir);
    if (rename(tmp, final_dir) != 0) {
        rl_fail(err, RL_EINTERNAL, "cannot rename %s to %s: %s", tmp, final_dir, strerror(errno));
        goto fail;
    }
    prune(root, keep);
    return 0;
fail:
    rl_remove_tree(tmp);
    return rc;
}

int rl_train_ckpt_latest(const char *root, char *path, size_t size, int *step) {
    DIR *d = opendir(root);
    if (!d) return 0;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int s = ckpt_step_of(e->d_name);
        if (s > best && dir_holds(root, e->d_name, "trainer_state.json")) best = s;
    }
    closedir(d);
    if (best < 0) return 0;
    snprintf(path, size, "%s/step-%08d", root, best);
    if (step) *step = best;
    return 1;
}

int rl_train_ckpt_load(const char *dir, rl_model *m, rl_adamw *opt, rl_train_state *state,
                       rl_err *err) {
    return rl_train_ckpt_load_shard(dir, m, opt, 0, state, err);
}

int rl_train_ckpt_load_shard(const char *dir, rl_model *m, rl_adamw *opt, size_t lo,
                             rl_train_state *state, rl_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) return rl_fail(err, RL_EINPUT, "%s: %s", path, je.text);
    json_t *js = json_object_get(o, "step"), *jd = json_object_get(o, "data_pos"),
           *ja = json_object_get(o, "adam_step"), *jn = json_object_get(o, "nonfinite_streak"),
           *jseed = json_object_get(o, "seed");
    if (!json_is_integer(js) || !json_is_integer(jd) || !json_is_integer(ja) ||
        !json_is_integer(jn) || !json_is_string(jseed)) {
        json_decref(o);
        return rl_fail(err, RL_EINPUT, "%s: missing or mistyped fields", path);
    }
    state->step = (int)json_integer_value(js);
    state->data_pos = json_integer_value(jd);
    state->nonfinite_streak = (int)json_integer_value(jn);
    state->seed = strtoull(json_string_value(jseed), NULL, 10);
    int adam_step = (int)json_integer_value(ja);
    json_decref(o);

    // Weights: load the saved model and copy its tensors into m (same shape required).
    snprintf(path, sizeof path, "%s/model", dir);
    rl_model *saved;
    if (rl_model_load(&saved, path, m->be, err)) return -1;
    if (saved->n_params != m->n_params || rl_model_num_tensors(saved) != rl_model_num_tensors(m)) {
        rl_model_free(saved);
        return rl_fail(err, RL_EINPUT, "%s: the checkpoint's model shape differs from the config's",
                       path);
    }
    size_t n;
    void *dst = rl_model_params(m, &n), *src = rl_model_params(saved, &n);
    m->be->mem_copy(m->be, dst, src, n * rl_dtype_size(m->act));
    rl_model_free(saved);
    rl_adamw_master_reset(opt); // the weights changed under the optimizer

    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    rl_ckpt *ck;
    if (rl_ckpt_open(&ck, path, err)) return -1;
    // Moments [lo, lo + opt->n) of the saved [n_params] (the file is mapped: a slice costs only
    // its own bytes).
    float *mh = rl_malloc((opt->n ? opt->n : 1) * sizeof(float));
    float *vh = rl_malloc((opt->n ? opt->n : 1) * sizeof(float));
    int rc = 0;
    const char *names[3] = {"adam.m", "adam.v", "master"};
    float *xh = rl_adamw_has_master(opt) ? rl_malloc((opt->n ? opt->n : 1) * sizeof(float)) : NULL;
    float *dst3[3] = {mh, vh, xh};
    // The float32 master of a bfloat16 run; a checkpoint without one (a float32 run resumed in
    // bfloat16) starts the master from the weights.
    int want = xh && rl_ckpt_has(ck, "master") ? 3 : 2;
    for (int i = 0; i < want && rc == 0; i++) {
        const rl_st_file *f;
        const rl_st_tensor *t = rl_ckpt_find(ck, names[i], &f);
        if (!t || t->dtype != RL_ST_F32 || t->ndim != 1 || t->numel != m->n_params ||
            lo + opt->n > t->numel)
            rc = rl_fail(err, RL_EINPUT, "%s: %s is missing or not F32 [%zu]", path, names[i],
                         m->n_params);
        else
            memcpy(dst3[i], (const char *)t->data + lo * sizeof(float), opt->n * sizeof(float));
    }
    if (rc == 0) rl_adamw_state_upload(opt, mh, vh, adam_step);
    if (rc == 0 && want == 3) rl_adamw_master_upload(opt, xh);
    free(xh);
    rl_ckpt_close(ck);
    free(mh);
    free(vh);
    return rc;
}
