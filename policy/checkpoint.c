// checkpoint: load / save a Qwen2 model as a Hugging Face model directory. See checkpoint.h.
#define _GNU_SOURCE // renameat2
#include "policy/checkpoint.h"
#include "policy/fileio.h"
#include "policy/hf_config.h"
#include "policy/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Files that make up a Hugging Face tokenizer; tokenizer.json is the one rlpipe reads, the others
// are copied along so that transformers' AutoTokenizer works on the directory too.
static const char *const TOKENIZER_FILES[] = {"tokenizer.json",
                                              "tokenizer_config.json",
                                              "special_tokens_map.json",
                                              "added_tokens.json",
                                              "vocab.json",
                                              "merges.txt"};
#define N_TOKENIZER_FILES ((int)(sizeof TOKENIZER_FILES / sizeof TOKENIZER_FILES[0]))

// At most this many names are listed in a warning or error about missing / unexpected tensors.
#define NAMES_LISTED 4

static int file_in_dir_exists(const char *dir, const char *name) {
    char *p = rl_path_join(dir, name);
    int ok = rl_is_file(p);
    free(p);
    return ok;
}

// ------------------------------------------------------------------------------------------------
// Loading

size_t rl_model_config_num_params(const rl_model_config *cfg) {
    size_t C = (size_t)cfg->hidden_size, L = (size_t)cfg->num_hidden_layers;
    size_t NH = (size_t)cfg->num_attention_heads, NKV = (size_t)cfg->num_key_value_heads;
    size_t hd = cfg->head_dim > 0 ? (size_t)cfg->head_dim : (NH ? C / NH : 0);
    size_t FF = (size_t)cfg->intermediate_size, V = (size_t)cfg->vocab_size;
    size_t bias = cfg->attention_bias ? (NH + 2 * NKV) * hd : 0;
    size_t layer = C * (NH + 2 * NKV) * hd + bias + NH * hd * C + 3 * C * FF + 2 * C;
    return V * C * (cfg->tie_word_embeddings ? 1 : 2) + L * layer + C;
}

// The file a missing tensor should have been in, for messages.
static const char *ckpt_file_name(const char *dir) {
    return file_in_dir_exists(dir, RL_ST_SINGLE_NAME) ? RL_ST_SINGLE_NAME : RL_ST_INDEX_NAME;
}

// Appends `name` to a short comma-separated list (at most NAMES_LISTED entries).
static void list_name(char *list, size_t size, int *count, const char *name) {
    if (*count < NAMES_LISTED) {
        size_t n = strlen(list);
        snprintf(list + n, size - n, "%s%s", n ? ", " : "", name);
    }
    (*count)++;
}

// A tied model's checkpoint that still holds lm_head.weight (old Qwen1.5 exports): the embedding
// is the output layer, as in vLLM. Silent when the copy is byte-identical to the embedding (the
// usual case); otherwise warn, because transformers' from_pretrained would load lm_head.weight's
// values into the shared matrix instead (verified with 4.44, see scripts/make_golden.py).
static void warn_redundant_lm_head(const rl_ckpt *ck, const char *dir) {
    const rl_st_tensor *lm = rl_ckpt_find(ck, "lm_head.weight", NULL);
    const rl_st_tensor *emb = rl_ckpt_find(ck, "model.embed_tokens.weight", NULL);
    int same = lm && emb && lm->dtype == emb->dtype && lm->nbytes == emb->nbytes &&
               lm->ndim == emb->ndim && memcmp(lm->shape, emb->shape, sizeof lm->shape) == 0 &&
               memcmp(lm->data, emb->data, lm->nbytes) == 0;
    if (!same)
        fprintf(stderr,
                "rlpipe: warning: %s: tie_word_embeddings is true but the checkpoint's "
                "lm_head.weight differs from model.embed_tokens.weight; using the embedding as "
                "the output layer and ignoring lm_head.weight\n",
                dir);
}

// Every tensor the config implies must be in the checkpoint; the checkpoint may hold more.
static int check_tensor_names(const rl_model *m, const rl_ckpt *ck, const char *dir, rl_err *err) {
    char missing[1024] = "", extra[1024] = "";
    int n_missing = 0, n_extra = 0;
    for (int i = 0; i < rl_model_num_tensors(m); i++) {
        const char *name;
        rl_model_tensor_info(m, i, &name, NULL, NULL, NULL);
        if (!rl_ckpt_has(ck, name)) list_name(missing, sizeof missing, &n_missing, name);
    }
    if (n_missing > 0)
        return rl_fail(err, RL_EINPUT,
                       "%s/%s: missing tensor%s %s%s (config.json implies %d tensors, %d absent)",
                       dir, ckpt_file_name(dir), n_missing > 1 ? "s" : "", missing,
                       n_missing > NAMES_LISTED ? ", ..." : "", rl_model_num_tensors(m), n_missing);
    for (int i = 0; i < rl_ckpt_count(ck); i++) {
        const char *name = rl_ckpt_name(ck, i);
        if (rl_model_find_tensor(m, name) >= 0) continue;
        if (m->cfg.tie_word_embeddings && strcmp(name, "lm_head.weight") == 0) {
            warn_redundant_lm_head(ck, dir);
            continue;
        }
        list_name(extra, sizeof extra, &n_extra, name);
    }
    if (n_extra > 0)
        fprintf(stderr, "rlpipe: warning: %s: ignoring %d tensor%s the model does not use: %s%s\n",
                dir, n_extra, n_extra > 1 ? "s" : "", extra, n_extra > NAMES_LISTED ? ", ..." : "");
    return 0;
}

static void shape_text(char *buf, size_t cap, const int64_t *shape, int ndim) {
    if (ndim == 1)
        snprintf(buf, cap, "[%lld]", (long long)shape[0]);
    else if (ndim == 2)
        snprintf(buf, cap, "[%lld, %lld]", (long long)shape[0], (long long)shape[1]);
    else
        snprintf(buf, cap, "a %d-dimensional shape", ndim);
}

typedef struct shape_check {
    const rl_ckpt *ck;
    const char *dir;
    const rl_model_config *cfg;
    char missing[1024];
    int n_missing, n_total;
    rl_err *err;
} shape_check;

// A layer of which the checkpoint holds none of these tensors is not there at all.
static int has_layer(const rl_ckpt *ck, int l) {
    static const char *const PARTS[] = {"input_layernorm.weight", "self_attn.q_proj.weight",
                                        "mlp.down_proj.weight", "post_attention_layernorm.weight"};
    char name[96];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "model.layers.%d.%s", l, PARTS[i]);
        if (rl_ckpt_has(ck, name)) return 1;
    }
    return 0;
}

static int check_one_shape(void *ctx, const rl_model_tensor_spec *t) {
    shape_check *s = ctx;
    s->n_total++;
    const rl_st_file *f;
    const rl_st_tensor *st = rl_ckpt_find(s->ck, t->name, &f);
    if (!st) {
        list_name(s->missing, sizeof s->missing, &s->n_missing, t->name);
        return 0;
    }
    if (st->ndim == t->ndim && st->shape[0] == t->shape[0] &&
        (t->ndim == 1 || st->shape[1] == t->shape[1]))
        return 0;
    char have[64], want[64];
    shape_text(have, sizeof have, st->shape, st->ndim);
    shape_text(want, sizeof want, t->shape, t->ndim);
    return rl_fail(s->err, RL_EINPUT,
                   "%s: tensor \"%s\" has shape %s but %s/config.json implies %s (%s)",
                   rl_st_path(f), t->name, have, s->dir, want, t->dims);
}

// Every tensor config.json implies is in the checkpoint with exactly its shape: checked on the
// safetensors headers alone, before the model is allocated, so that a config.json whose sizes
// do not match the weights (vocab_size 5000000 beside a 151936-row embedding) is an error that
// names the tensor and the key instead of gigabytes allocated for nothing.
static int check_shapes(const rl_model_config *cfg, const rl_ckpt *ck, const char *dir,
                        rl_err *err) {
    shape_check s = {.ck = ck, .dir = dir, .cfg = cfg, .err = err};
    int rc = rl_model_config_tensors(cfg, check_one_shape, &s, err);
    if (rc != 0) return -1;
    if (s.n_missing == 0) return 0;
    int layers = 0;
    while (layers < cfg->num_hidden_layers && has_layer(ck, layers)) layers++;
    if (layers < cfg->num_hidden_layers && !has_layer(ck, cfg->num_hidden_layers - 1))
        return rl_fail(err, RL_EINPUT,
                       "%s/config.json: \"num_hidden_layers\" = %d but %s/%s holds %d layer%s "
                       "(model.layers.%d.* is absent)",
                       dir, cfg->num_hidden_layers, dir, ckpt_file_name(dir), layers,
                       layers == 1 ? "" : "s", layers);
    return rl_fail(err, RL_EINPUT,
                   "%s/%s: missing tensor%s %s%s (config.json implies %d tensors, %d absent)", dir,
                   ckpt_file_name(dir), s.n_missing > 1 ? "s" : "", s.missing,
                   s.n_missing > NAMES_LISTED ? ", ..." : "", s.n_total, s.n_missing);
}

static int read_tensors(rl_model *m, const rl_ckpt *ck, rl_err *err) {
    size_t biggest = 1;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].numel > biggest) biggest = m->tensors[i].numel;
    float *host = rl_malloc(biggest * sizeof(float));
    int rc = 0;
    for (int i = 0; i < rl_model_num_tensors(m) && rc == 0; i++) {
        const char *name;
        int64_t shape[2];
        int ndim;
        rl_model_tensor_info(m, i, &name, shape, &ndim, NULL);
        rc = rl_ckpt_read(ck, name, shape, ndim, host, err);
        if (rc == 0) rl_model_tensor_write(m, i, host);
    }
    free(host);
    return rc;
}

int rl_model_load(rl_model **out, const char *dir, const rl_backend *be, rl_err *err) {
    *out = NULL;
    if (!rl_is_dir(dir))
        return rl_fail(err, RL_EINPUT, "%s: not a model directory (config.json + safetensors)",
                       dir);
    rl_model_config cfg;
    RL_TRY(rl_hf_config_load(&cfg, dir, err));
    int hd;
    if (rl_model_check_config(&cfg, &hd, err) != 0) return rl_err_prefix(err, "%s: ", dir);
    // Headers first (the shards are only mapped): the sizes must match the weights before the
    // model's memory is allocated.
    rl_ckpt *ck;
    RL_TRY(rl_ckpt_open(&ck, dir, err));
    if (check_shapes(&cfg, ck, dir, err) != 0) {
        rl_ckpt_close(ck);
        return -1;
    }
    rl_model *m;
    if (rl_model_create(&m, &cfg, be, err) != 0) {
        rl_ckpt_close(ck);
        return rl_err_prefix(err, "%s: ", dir);
    }
    int rc = check_tensor_names(m, ck, dir, err);
    if (rc == 0) rc = read_tensors(m, ck, err);
    rl_ckpt_close(ck);
    if (rc != 0) {
        rl_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

// ------------------------------------------------------------------------------------------------
// Small file helpers

static int copy_file(const char *src, const char *dst, rl_err *err) {
    char *buf;
    size_t n;
    RL_TRY(rl_read_file(src, 0, &buf, &n, err));
    int rc = rl_write_file_atomic(dst, buf, n, err);
    free(buf);
    return rc;
}

static int copy_if_present(const char *src_dir, const char *dst_dir, const char *name,
                           rl_err *err) {
    char *src = rl_path_join(src_dir, name), *dst = rl_path_join(dst_dir, name);
    int rc = rl_is_file(src) ? copy_file(src, dst, err) : 0;
    free(src);
    free(dst);
    return rc;
}

static void remove_in_dir(const char *dir, const char *name) {
    char *p = rl_path_join(dir, name);
    unlink(p); // ENOENT is the usual case and fine
    free(p);
}

static int sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

// ------------------------------------------------------------------------------------------------
// Tokenizer files

// Where the tokenizer files of `tokenizer` (a tokenizer.json or a directory) live: *json_path is
// its tokenizer.json, *src_dir the directory whose companion files belong to it (NULL when a
// file with another name was given). Both malloc'd.
static int locate_tokenizer(const char *tokenizer, char **json_path, char **src_dir, rl_err *err) {
    *json_path = *src_dir = NULL;
    if (rl_is_dir(tokenizer)) {
        char *p = rl_path_join(tokenizer, "tokenizer.json");
        if (!rl_is_file(p)) {
            free(p);
            return rl_fail(err, RL_EINPUT, "%s: no tokenizer.json in this directory", tokenizer);
        }
        *json_path = p;
        *src_dir = rl_strdup(tokenizer);
        return 0;
    }
    if (!rl_is_file(tokenizer))
        return rl_fail(err, RL_EINPUT, "%s: no such tokenizer file or directory", tokenizer);
    *json_path = rl_strdup(tokenizer);
    const char *slash = strrchr(tokenizer, '/');
    const char *base = slash ? slash + 1 : tokenizer;
    if (strcmp(base, "tokenizer.json") == 0) {
        *src_dir = slash ? rl_strdup(tokenizer) : rl_strdup(".");
        if (slash) (*src_dir)[slash - tokenizer] = '\0';
        if (!(*src_dir)[0]) strcpy(*src_dir, "/");
    }
    return 0;
}

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static int write_tokenizer(const char *dir, const char *tokenizer, rl_err *err) {
    if (strcmp(tokenizer, "byte") == 0) {
        static const char MARKER[] = "{\"kind\": \"byte\"}\n";
        char *p = rl_path_join(dir, RL_TOKENIZER_MARKER);
        int rc = rl_write_file_atomic(p, MARKER, sizeof MARKER - 1, err);
        free(p);
        if (rc == 0)
            for (int i = 0; i < N_TOKENIZER_FILES; i++) remove_in_dir(dir, TOKENIZER_FILES[i]);
        return rc;
    }
    char *json, *src_dir;
    RL_TRY(locate_tokenizer(tokenizer, &json, &src_dir, err));
    char *dst = rl_path_join(dir, "tokenizer.json");
    int rc = 0;
    if (!same_file(json, dst)) {
        rc = copy_file(json, dst, err);
        for (int i = 1; i < N_TOKENIZER_FILES && rc == 0; i++)
            if (src_dir) rc = copy_if_present(src_dir, dir, TOKENIZER_FILES[i], err);
    }
    if (rc == 0) remove_in_dir(dir, RL_TOKENIZER_MARKER);
    free(dst);
    free(json);
    free(src_dir);
    return rc;
}

int rl_model_save_tokenizer(const char *dir, const char *tokenizer, rl_err *err) {
    if (!rl_is_dir(dir)) return rl_fail(err, RL_EINPUT, "%s: not a directory", dir);
    RL_TRY(write_tokenizer(dir, tokenizer, err));
    sync_dir(dir);
    return 0;
}

static int carry_tokenizer(const char *old_dir, const char *new_dir, rl_err *err) {
    RL_TRY(copy_if_present(old_dir, new_dir, RL_TOKENIZER_MARKER, err));
    for (int i = 0; i < N_TOKENIZER_FILES; i++)
        RL_TRY(copy_if_present(old_dir, new_dir, TOKENIZER_FILES[i], err));
    return 0;
}

int rl_model_tokenizer_path(const char *dir, char *buf, size_t size, rl_err *err) {
    char *marker = rl_path_join(dir, RL_TOKENIZER_MARKER);
    int rc;
    if (rl_is_file(marker)) {
        json_error_t jerr;
        json_t *root = json_load_file(marker, 0, &jerr);
        const char *kind = json_string_value(json_object_get(root, "kind"));
        if (!root)
            rc = rl_fail(err, RL_EINPUT, "%s:%d: invalid JSON: %s", marker, jerr.line, jerr.text);
        else if (!kind || strcmp(kind, "byte") != 0)
            rc = rl_fail(err, RL_EINPUT, "%s: expected {\"kind\": \"byte\"}", marker);
        else
            rc = snprintf(buf, size, "byte") < (int)size
                     ? 0
                     : rl_fail(err, RL_EINTERNAL, "tokenizer path buffer too small");
        json_decref(root);
    } else if (file_in_dir_exists(dir, "tokenizer.json")) {
        rc = snprintf(buf, size, "%s", dir) < (int)size
                 ? 0
                 : rl_fail(err, RL_EINPUT, "%s: path too long", dir);
    } else {
        rc = rl_fail(err, RL_EINPUT,
                     "%s: no tokenizer in the model directory (tokenizer.json or %s)", dir,
                     RL_TOKENIZER_MARKER);
    }
    free(marker);
    return rc;
}

// ------------------------------------------------------------------------------------------------
// Saving

// The weights of m as safetensors output records; host copies for a device backend (*owned).
static rl_st_out_tensor *weight_records(const rl_model *m, float **owned) {
    int n = rl_model_num_tensors(m);
    rl_st_out_tensor *ts = rl_calloc((size_t)n, sizeof *ts);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += m->tensors[i].numel;
    // float32 weights in host memory are written in place; anything else through a host copy
    *owned = m->be->is_host && m->act == RL_F32 ? NULL : rl_malloc(total * sizeof(float));
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        const char *name;
        int64_t shape[2];
        int ndim;
        void *data;
        rl_model_tensor_info(m, i, &name, shape, &ndim, &data);
        ts[i].name = name;
        ts[i].ndim = ndim;
        ts[i].shape[0] = shape[0];
        ts[i].shape[1] = shape[1];
        if (*owned) {
            rl_model_tensor_read(m, i, *owned + at);
            data = *owned + at;
            at += m->tensors[i].numel;
        }
        ts[i].data = data;
    }
    return ts;
}

// Writes the whole model directory into the (fresh, empty) directory tmp.
static int write_model_dir(const rl_model *m, const char *tmp, const char *old_dir,
                           const rl_model_save_opts *o, rl_err *err) {
    float *owned;
    rl_st_out_tensor *ts = weight_records(m, &owned);
    int rc = rl_ckpt_write(tmp, ts, rl_model_num_tensors(m), o->bf16 ? RL_ST_BF16 : RL_ST_F32,
                           o->max_shard_bytes, err);
    free(ts);
    free(owned);
    RL_TRY(rc);
    RL_TRY(rl_hf_config_save(&m->cfg, tmp, o->bf16 ? "bfloat16" : "float32", err));
    RL_TRY(rl_hf_generation_config_save(&m->cfg, tmp, err));
    if (o->tokenizer)
        RL_TRY(write_tokenizer(tmp, o->tokenizer, err));
    else if (old_dir)
        RL_TRY(carry_tokenizer(old_dir, tmp, err));
    if (sync_dir(tmp) != 0)
        return rl_fail(err, RL_EINTERNAL, "%s: cannot sync: %s", tmp, strerror(errno));
    return 0;
}

// 1 if an existing directory may be replaced: it is empty or holds a config.json.
static int replaceable(const char *dir) {
    if (file_in_dir_exists(dir, "config.json")) return 1;
    int empty = 1;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = 0;
    closedir(d);
    return empty;
}

// mkdir -p of dir's parent.
static int make_parents(const char *dir, rl_err *err) {
    char *p = rl_strdup(dir);
    char *slash = strrchr(p, '/');
    int rc = 0;
    if (slash && slash != p) {
        *slash = '\0';
        rc = rl_make_dirs(p, err);
    }
    free(p);
    return rc;
}

// Puts the finished directory tmp at dir; the old dir's contents (if any) are deleted after.
static int swap_into_place(const char *tmp, const char *dir, int exists, rl_err *err) {
    if (!exists) {
        if (rename(tmp, dir) != 0)
            return rl_fail(err, RL_EINTERNAL, "%s: cannot rename %s into place: %s", dir, tmp,
                           strerror(errno));
        return 0;
    }
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        rl_remove_tree(tmp); // now the old contents
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return rl_fail(err, RL_EINTERNAL, "%s: cannot swap in %s: %s", dir, tmp, strerror(errno));
#endif
    // No atomic exchange on this file system: two renames, undone if the second fails.
    size_t n = strlen(dir) + 16;
    char *old = rl_malloc(n);
    snprintf(old, n, "%s.old-XXXXXX", dir);
    int rc = 0;
    if (!mkdtemp(old) || rename(dir, old) != 0) {
        rc = rl_fail(err, RL_EINTERNAL, "%s: cannot move the old directory aside: %s", dir,
                     strerror(errno));
        rmdir(old);
    } else if (rename(tmp, dir) != 0) {
        rc = rl_fail(err, RL_EINTERNAL, "%s: cannot rename %s into place: %s", dir, tmp,
                     strerror(errno));
        rename(old, dir);
    } else {
        rl_remove_tree(old);
    }
    free(old);
    return rc;
}

// Whether dir (no trailing slash) may be saved to: absent, or a real directory that is empty or a
// model directory. *exists says whether it is there.
static int check_save_dir(const char *dir, int *exists, rl_err *err) {
    struct stat st;
    *exists = 0;
    if (!dir[0]) return rl_fail(err, RL_EINPUT, "empty model directory name");
    if (lstat(dir, &st) != 0) {
        if (errno == ENOENT) return 0;
        return rl_fail(err, RL_EINPUT, "%s: %s", dir, strerror(errno));
    }
    *exists = 1;
    if (S_ISLNK(st.st_mode))
        return rl_fail(err, RL_EINPUT, "%s is a symbolic link; save to the path it points to", dir);
    if (!S_ISDIR(st.st_mode))
        return rl_fail(err, RL_EINPUT, "%s exists and is not a directory", dir);
    if (!replaceable(dir))
        return rl_fail(err, RL_EINPUT,
                       "%s exists and is not a model directory (no config.json) nor empty; "
                       "refusing to replace it",
                       dir);
    return 0;
}

int rl_model_check_save_dir(const char *dir_in, rl_err *err) {
    char *dir = rl_strdup(dir_in);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') dir[--len] = '\0';
    int exists;
    int rc = check_save_dir(dir, &exists, err);
    free(dir);
    return rc;
}

int rl_model_save_ex(const rl_model *m, const char *dir_in, const rl_model_save_opts *opts,
                     rl_err *err) {
    rl_model_save_opts o = opts ? *opts : (rl_model_save_opts){0};
    char *dir = rl_strdup(dir_in);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') dir[--len] = '\0'; // "out/" -> "out"
    int exists = 0;
    int rc = check_save_dir(dir, &exists, err);
    if (rc == 0) rc = make_parents(dir, err);
    char *tmp = NULL;
    if (rc == 0) {
        tmp = rl_malloc(len + 16);
        snprintf(tmp, len + 16, "%s.tmp-XXXXXX", dir);
        if (!mkdtemp(tmp)) {
            rc = rl_fail(err, RL_EINPUT, "%s: cannot create a temporary directory: %s", tmp,
                         strerror(errno));
            free(tmp);
            tmp = NULL;
        }
    }
    if (rc == 0) {
        chmod(tmp, 0755); // mkdtemp makes it 0700
        rc = write_model_dir(m, tmp, exists ? dir : NULL, &o, err);
        if (rc == 0) rc = swap_into_place(tmp, dir, exists, err);
        if (rc != 0) {
            rl_remove_tree(tmp);
            rl_err_prefix(err, "saving the model to %s: ", dir);
        }
    }
    if (rc == 0) {
        // The renames are durable once the parent directory is synced.
        char *parent = rl_strdup(dir);
        char *slash = strrchr(parent, '/');
        if (!slash)
            strcpy(parent, ".");
        else if (slash == parent)
            parent[1] = '\0';
        else
            *slash = '\0';
        sync_dir(parent);
        free(parent);
    }
    free(tmp);
    free(dir);
    return rc;
}

int rl_model_save(const rl_model *m, const char *dir, int bf16, rl_err *err) {
    rl_model_save_opts o = {.bf16 = bf16};
    return rl_model_save_ex(m, dir, &o, err);
}
