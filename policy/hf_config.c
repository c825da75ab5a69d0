// hf_config: Qwen2 config.json <-> rl_model_config. See hf_config.h for the rules.
#define _POSIX_C_SOURCE 200809L
#include "policy/hf_config.h"
#include "policy/fileio.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX_BYTES (16u << 20) // real configs are ~1 KB

void rl_hf_config_defaults(rl_model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->hidden_size = 4096;
    cfg->intermediate_size = 22016;
    cfg->num_hidden_layers = 32;
    cfg->num_attention_heads = 32;
    cfg->num_key_value_heads = 32;
    cfg->head_dim = 4096 / 32;
    cfg->vocab_size = 151936;
    cfg->max_position_embeddings = 32768;
    cfg->rope_theta = 10000.0;
    cfg->rms_norm_eps = 1e-6;
    cfg->tie_word_embeddings = 0;
    cfg->use_sliding_window = 0;
    cfg->sliding_window = 4096;
    cfg->max_window_layers = 28;
    cfg->attention_bias = 1;
    cfg->bos_token_id = -1;
    cfg->eos_token_id = -1;
    cfg->n_eos = 0;
}

// ---- typed getters: 1 = present and stored, 0 = absent (or null where allowed), -1 = error ----

typedef struct parse_ctx {
    json_t *root;
    const char *src;
    rl_err *err;
} parse_ctx;

static int type_error(parse_ctx *c, const char *key, const char *want, const json_t *v) {
    return rl_fail(c->err, RL_EINPUT, "%s: \"%s\" must be %s, got %s", c->src, key, want,
                   rl_json_type_name(v));
}

// Upper bounds on the sizes, far above any real Qwen2-family model (Qwen2.5-72B: hidden 8192,
// intermediate 29568, 80 layers, 64 heads, vocab 152064; Qwen2.5-1M: 1010000 positions) and low
// enough that no product of two of them overflows and nothing absurd is allocated before the
// weights are looked at. Other integer keys stay within int.
static long long size_limit(const char *key) {
    static const struct {
        const char *key;
        long long max;
    } LIMITS[] = {
        {"hidden_size", 1 << 16},         {"intermediate_size", 1 << 20},
        {"num_hidden_layers", 1 << 10},   {"num_attention_heads", 1 << 10},
        {"num_key_value_heads", 1 << 10}, {"head_dim", 1 << 10},
        {"vocab_size", 1 << 24},          {"max_position_embeddings", 1 << 24},
    };
    for (size_t i = 0; i < sizeof LIMITS / sizeof LIMITS[0]; i++)
        if (strcmp(LIMITS[i].key, key) == 0) return LIMITS[i].max;
    return INT_MAX;
}

static int get_int(parse_ctx *c, const char *key, int *out, long long min, int nullable) {
    json_t *v = json_object_get(c->root, key);
    if (!v || (nullable && json_is_null(v))) return 0;
    if (!json_is_integer(v)) return type_error(c, key, "an integer", v);
    long long x = json_integer_value(v), max = size_limit(key);
    if (x < min || x > max)
        return rl_fail(c->err, RL_EINPUT, "%s: \"%s\" = %lld is out of range [%lld, %lld]", c->src,
                       key, x, min, max);
    *out = (int)x;
    return 1;
}

static int get_required_int(parse_ctx *c, const char *key, int *out) {
    int r = get_int(c, key, out, 1, 0);
    if (r == 0)
        return rl_fail(c->err, RL_EINPUT, "%s: required key \"%s\" is missing", c->src, key);
    return r;
}

static int get_number_in(parse_ctx *c, json_t *obj, const char *key, double *out) {
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_number(v)) return type_error(c, key, "a number", v);
    *out = json_number_value(v);
    return 1;
}

static int get_bool(parse_ctx *c, const char *key, int *out) {
    json_t *v = json_object_get(c->root, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return type_error(c, key, "true or false", v);
    *out = json_is_true(v);
    return 1;
}

static int get_string(parse_ctx *c, const char *key, const char **out) {
    json_t *v = json_object_get(c->root, key);
    if (!v) return 0;
    if (!json_is_string(v)) return type_error(c, key, "a string", v);
    *out = json_string_value(v);
    return 1;
}

static int token_id(parse_ctx *c, const char *key, json_t *v, int *out) {
    if (!json_is_integer(v)) return type_error(c, key, "a token id (integer), a list or null", v);
    long long x = json_integer_value(v);
    if (x < 0 || x > INT_MAX)
        return rl_fail(c->err, RL_EINPUT, "%s: \"%s\" = %lld is not a token id", c->src, key, x);
    *out = (int)x;
    return 0;
}

// ---- the parts of the config that need more than a getter ------------------------------------

static int check_architecture(parse_ctx *c) {
    const char *mt = NULL;
    if (get_string(c, "model_type", &mt) < 0) return -1;
    json_t *arch = json_object_get(c->root, "architectures");
    int has_qwen2 = 0;
    if (arch && !json_is_null(arch)) {
        if (!json_is_array(arch)) return type_error(c, "architectures", "a list of strings", arch);
        for (size_t i = 0; i < json_array_size(arch); i++) {
            json_t *a = json_array_get(arch, i);
            if (!json_is_string(a)) return type_error(c, "architectures", "a list of strings", a);
            if (strcmp(json_string_value(a), "Qwen2ForCausalLM") == 0) has_qwen2 = 1;
        }
    }
    if (mt && strcmp(mt, "qwen2") != 0)
        return rl_fail(c->err, RL_EINPUT,
                       "%s: model_type is \"%s\"; rlpipe implements qwen2 (Qwen2ForCausalLM) only",
                       c->src, mt);
    if (!mt && !has_qwen2)
        return rl_fail(c->err, RL_EINPUT,
                       "%s: no model_type, and architectures does not list Qwen2ForCausalLM",
                       c->src);
    json_t *q = json_object_get(c->root, "quantization_config");
    if (q && !json_is_null(q))
        return rl_fail(c->err, RL_EINPUT,
                       "%s: quantized checkpoints (quantization_config) are not supported", c->src);
    const char *act = NULL;
    if (get_string(c, "hidden_act", &act) < 0) return -1;
    if (act && strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0)
        return rl_fail(c->err, RL_EINPUT, "%s: hidden_act \"%s\" is not supported (only silu)",
                       c->src, act);
    return 0;
}

// A rope_scaling / rope_parameters object is fine only when it asks for plain RoPE: rope_type
// (or the older "type") "default", or no type and nothing but rope_theta. *type gets the name.
static int rope_is_default(parse_ctx *c, const char *key, json_t *obj, const char **type) {
    json_t *t = json_object_get(obj, "rope_type");
    if (!t) t = json_object_get(obj, "type");
    *type = "(none)";
    if (!t) {
        const char *k;
        json_t *v;
        json_object_foreach(obj, k, v) {
            if (strcmp(k, "rope_theta") != 0) return 0;
        }
        return 1;
    }
    if (!json_is_string(t)) return type_error(c, key, "an object whose rope_type is a string", t);
    *type = json_string_value(t);
    return strcmp(*type, "default") == 0;
}

static int parse_rope(parse_ctx *c, rl_model_config *cfg) {
    if (get_number_in(c, c->root, "rope_theta", &cfg->rope_theta) < 0) return -1;
    const char *type;
    json_t *rs = json_object_get(c->root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        if (!json_is_object(rs)) return type_error(c, "rope_scaling", "null or an object", rs);
        int ok = rope_is_default(c, "rope_scaling", rs, &type);
        if (ok < 0) return -1;
        if (!ok)
            return rl_fail(c->err, RL_EINPUT,
                           "%s: rope_scaling of type \"%s\" is not supported (plain RoPE only); "
                           "remove rope_scaling to run without long-context scaling",
                           c->src, type);
    }
    // transformers 5 moves rope_theta into rope_parameters; that value wins when present.
    json_t *rp = json_object_get(c->root, "rope_parameters");
    if (rp && !json_is_null(rp)) {
        if (!json_is_object(rp)) return type_error(c, "rope_parameters", "an object", rp);
        int ok = rope_is_default(c, "rope_parameters", rp, &type);
        if (ok < 0) return -1;
        if (!ok)
            return rl_fail(c->err, RL_EINPUT,
                           "%s: rope_parameters asks for rope_type \"%s\"; only \"default\" is "
                           "supported",
                           c->src, type);
        if (get_number_in(c, rp, "rope_theta", &cfg->rope_theta) < 0) return -1;
    }
    return 0;
}

static int parse_token_ids(parse_ctx *c, rl_model_config *cfg) {
    json_t *b = json_object_get(c->root, "bos_token_id");
    if (b && !json_is_null(b) && token_id(c, "bos_token_id", b, &cfg->bos_token_id) != 0) return -1;
    json_t *e = json_object_get(c->root, "eos_token_id");
    if (!e || json_is_null(e)) return 0;
    if (json_is_array(e)) {
        size_t n = json_array_size(e);
        if (n == 0 || n > 4)
            return rl_fail(c->err, RL_EINPUT,
                           "%s: \"eos_token_id\" lists %zu ids; 1 to 4 are supported", c->src, n);
        for (size_t i = 0; i < n; i++)
            RL_TRY(token_id(c, "eos_token_id", json_array_get(e, i), &cfg->eos_token_ids[i]));
        cfg->n_eos = (int)n;
    } else {
        RL_TRY(token_id(c, "eos_token_id", e, &cfg->eos_token_ids[0]));
        cfg->n_eos = 1;
    }
    cfg->eos_token_id = cfg->eos_token_ids[0];
    return 0;
}

// transformers >= 4.56 may write the per-layer attention kinds; accept them when they match
// what use_sliding_window / max_window_layers imply (per-layer patterns are not supported).
static int check_layer_types(parse_ctx *c, const rl_model_config *cfg) {
    json_t *lt = json_object_get(c->root, "layer_types");
    if (!lt || json_is_null(lt)) return 0;
    if (!json_is_array(lt)) return type_error(c, "layer_types", "a list of strings", lt);
    if ((long long)json_array_size(lt) != cfg->num_hidden_layers)
        return rl_fail(c->err, RL_EINPUT, "%s: layer_types has %zu entries for %d layers", c->src,
                       json_array_size(lt), cfg->num_hidden_layers);
    for (int i = 0; i < cfg->num_hidden_layers; i++) {
        json_t *v = json_array_get(lt, (size_t)i);
        if (!json_is_string(v)) return type_error(c, "layer_types", "a list of strings", v);
        const char *want = cfg->use_sliding_window && i >= cfg->max_window_layers
                               ? "sliding_attention"
                               : "full_attention";
        if (strcmp(json_string_value(v), want) != 0)
            return rl_fail(c->err, RL_EINPUT,
                           "%s: layer_types[%d] is \"%s\" but use_sliding_window and "
                           "max_window_layers imply \"%s\" (per-layer patterns are not supported)",
                           c->src, i, json_string_value(v), want);
    }
    return 0;
}

static int parse_fields(parse_ctx *c, rl_model_config *cfg) {
    RL_TRY(check_architecture(c));
    if (get_required_int(c, "hidden_size", &cfg->hidden_size) < 0) return -1;
    if (get_required_int(c, "intermediate_size", &cfg->intermediate_size) < 0) return -1;
    if (get_required_int(c, "num_hidden_layers", &cfg->num_hidden_layers) < 0) return -1;
    if (get_required_int(c, "num_attention_heads", &cfg->num_attention_heads) < 0) return -1;
    cfg->num_key_value_heads = cfg->num_attention_heads;
    if (get_int(c, "num_key_value_heads", &cfg->num_key_value_heads, 1, 1) < 0) return -1;
    cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;
    if (get_int(c, "head_dim", &cfg->head_dim, 1, 1) < 0) return -1;
    if (get_int(c, "vocab_size", &cfg->vocab_size, 1, 0) < 0) return -1;
    if (get_int(c, "max_position_embeddings", &cfg->max_position_embeddings, 1, 0) < 0) return -1;
    if (get_int(c, "max_window_layers", &cfg->max_window_layers, 0, 0) < 0) return -1;
    if (get_number_in(c, c->root, "rms_norm_eps", &cfg->rms_norm_eps) < 0) return -1;
    if (get_bool(c, "tie_word_embeddings", &cfg->tie_word_embeddings) < 0) return -1;
    if (get_bool(c, "use_sliding_window", &cfg->use_sliding_window) < 0) return -1;
    // sliding_window: null means no window at all (transformers writes null when disabled).
    json_t *sw = json_object_get(c->root, "sliding_window");
    if (sw && json_is_null(sw))
        cfg->use_sliding_window = 0;
    else if (get_int(c, "sliding_window", &cfg->sliding_window, 1, 0) < 0)
        return -1;
    int bias = 1; // Qwen2 hard-codes bias=True on q/k/v whatever the key says; type-check only
    if (get_bool(c, "attention_bias", &bias) < 0) return -1;
    cfg->attention_bias = 1;
    RL_TRY(parse_rope(c, cfg));
    RL_TRY(parse_token_ids(c, cfg));
    RL_TRY(check_layer_types(c, cfg));
    return rl_hf_config_check(cfg, c->src, c->err);
}

int rl_hf_config_parse(rl_model_config *cfg, const char *json, size_t len, const char *source,
                       rl_err *err) {
    rl_hf_config_defaults(cfg);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return rl_fail(err, RL_EINPUT, "%s:%d:%d: not valid JSON: %s", source, je.line, je.column,
                       je.text);
    int rc;
    if (!json_is_object(root)) {
        rc = rl_fail(err, RL_EINPUT, "%s: expected a JSON object, got %s", source,
                     rl_json_type_name(root));
    } else {
        parse_ctx c = {root, source, err};
        rc = parse_fields(&c, cfg);
    }
    json_decref(root);
    return rc;
}

int rl_hf_config_check(const rl_model_config *cfg, const char *source, rl_err *err) {
    const struct {
        const char *key;
        int value;
    } positive[] = {
        {"hidden_size", cfg->hidden_size},
        {"intermediate_size", cfg->intermediate_size},
        {"num_hidden_layers", cfg->num_hidden_layers},
        {"num_attention_heads", cfg->num_attention_heads},
        {"num_key_value_heads", cfg->num_key_value_heads},
        {"head_dim", cfg->head_dim},
        {"vocab_size", cfg->vocab_size},
        {"max_position_embeddings", cfg->max_position_embeddings},
    };
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
        if (positive[i].value < 1)
            return rl_fail(err, RL_EINPUT, "%s: \"%s\" = %d must be positive", source,
                           positive[i].key, positive[i].value);
        if (positive[i].value > size_limit(positive[i].key))
            return rl_fail(err, RL_EINPUT, "%s: \"%s\" = %d is above the limit %lld", source,
                           positive[i].key, positive[i].value, size_limit(positive[i].key));
    }
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0)
        return rl_fail(err, RL_EINPUT,
                       "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       source, cfg->num_attention_heads, cfg->num_key_value_heads);
    if (!(cfg->rms_norm_eps > 0) || !isfinite(cfg->rms_norm_eps))
        return rl_fail(err, RL_EINPUT, "%s: \"rms_norm_eps\" = %g must be positive", source,
                       cfg->rms_norm_eps);
    if (!(cfg->rope_theta > 0) || !isfinite(cfg->rope_theta))
        return rl_fail(err, RL_EINPUT, "%s: \"rope_theta\" = %g must be positive", source,
                       cfg->rope_theta);
    if (cfg->max_window_layers < 0 || cfg->sliding_window < 0 ||
        (cfg->use_sliding_window && cfg->sliding_window < 1))
        return rl_fail(err, RL_EINPUT, "%s: bad sliding_window %d / max_window_layers %d", source,
                       cfg->sliding_window, cfg->max_window_layers);
    if (cfg->n_eos < 0 || cfg->n_eos > 4 ||
        (cfg->n_eos > 0 && cfg->eos_token_ids[0] != cfg->eos_token_id))
        return rl_fail(err, RL_EINPUT, "%s: inconsistent eos_token_id list", source);
    int ids[6] = {cfg->bos_token_id, cfg->eos_token_id};
    int n_ids = 2;
    for (int i = 0; i < cfg->n_eos; i++) ids[n_ids++] = cfg->eos_token_ids[i];
    for (int i = 0; i < n_ids; i++)
        if (ids[i] < -1 || ids[i] >= cfg->vocab_size)
            return rl_fail(err, RL_EINPUT, "%s: token id %d is outside the vocabulary (%d)", source,
                           ids[i], cfg->vocab_size);
    return 0;
}

int rl_hf_config_load(rl_model_config *cfg, const char *path_or_dir, rl_err *err) {
    struct stat st;
    if (stat(path_or_dir, &st) != 0)
        return rl_fail(err, RL_EINPUT, "%s: cannot open: %s", path_or_dir, strerror(errno));
    char path[4096];
    if (S_ISDIR(st.st_mode))
        snprintf(path, sizeof path, "%s/config.json", path_or_dir);
    else
        snprintf(path, sizeof path, "%s", path_or_dir);
    char *buf;
    size_t n;
    RL_TRY(rl_read_file(path, CONFIG_MAX_BYTES, &buf, &n, err));
    int rc = rl_hf_config_parse(cfg, buf, n, path, err);
    free(buf);
    return rc;
}

// ---- writing ----------------------------------------------------------------------------------

// Shortest text that reads back as exactly x, shaped like Python's repr (1e-06, 1000000.0), so
// the file looks like the ones transformers writes.
static void format_double(char *out, size_t cap, double x) {
    double ax = fabs(x);
    int done = 0;
    if (ax >= 1e-4 && ax < 1e16)
        for (int k = 1; k <= 20 && !done; k++) {
            snprintf(out, cap, "%.*f", k, x);
            done = strtod(out, NULL) == x;
        }
    for (int p = 1; p <= 17 && !done; p++) {
        snprintf(out, cap, "%.*g", p, x);
        done = strtod(out, NULL) == x;
    }
    if (!strpbrk(out, ".eE")) {
        size_t n = strlen(out);
        if (n + 3 <= cap) memcpy(out + n, ".0", 3);
    }
}

typedef struct text_buf {
    char s[8192];
    size_t n;
} text_buf;

__attribute__((format(printf, 2, 3))) static void tb_printf(text_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
    va_end(ap);
    if (k > 0) b->n += (size_t)k < sizeof b->s - b->n ? (size_t)k : sizeof b->s - b->n - 1;
}

static void tb_token_or_null(text_buf *b, const char *key, int id, const char *sep) {
    if (id >= 0)
        tb_printf(b, "  \"%s\": %d%s\n", key, id, sep);
    else
        tb_printf(b, "  \"%s\": null%s\n", key, sep);
}

static void tb_eos(text_buf *b, const rl_model_config *cfg, const char *sep) {
    if (cfg->n_eos > 1) {
        tb_printf(b, "  \"eos_token_id\": [\n");
        for (int i = 0; i < cfg->n_eos; i++)
            tb_printf(b, "    %d%s\n", cfg->eos_token_ids[i], i + 1 < cfg->n_eos ? "," : "");
        tb_printf(b, "  ]%s\n", sep);
    } else {
        tb_token_or_null(b, "eos_token_id", cfg->eos_token_id, sep);
    }
}

int rl_hf_config_save(const rl_model_config *cfg, const char *dir, const char *torch_dtype,
                      rl_err *err) {
    if (!torch_dtype) torch_dtype = "float32";
    if (strcmp(torch_dtype, "float32") != 0 && strcmp(torch_dtype, "bfloat16") != 0)
        return rl_fail(err, RL_EINPUT, "config.json: torch_dtype \"%s\" (float32 or bfloat16)",
                       torch_dtype);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    RL_TRY(rl_hf_config_check(cfg, path, err));
    RL_TRY(rl_make_dir(dir, err));
    char theta[64], eps[64];
    format_double(theta, sizeof theta, cfg->rope_theta);
    format_double(eps, sizeof eps, cfg->rms_norm_eps);
    text_buf *b = rl_malloc(sizeof *b);
    b->n = 0;
    // Keys sorted, two-space indent: what transformers' to_json_string produces.
    tb_printf(b, "{\n  \"architectures\": [\n    \"Qwen2ForCausalLM\"\n  ],\n");
    tb_printf(b, "  \"attention_dropout\": 0.0,\n");
    tb_token_or_null(b, "bos_token_id", cfg->bos_token_id, ",");
    tb_eos(b, cfg, ",");
    // head_dim only when it is not the derived value: older transformers ignore the key.
    if (cfg->head_dim != cfg->hidden_size / cfg->num_attention_heads)
        tb_printf(b, "  \"head_dim\": %d,\n", cfg->head_dim);
    tb_printf(b, "  \"hidden_act\": \"silu\",\n");
    tb_printf(b, "  \"hidden_size\": %d,\n", cfg->hidden_size);
    tb_printf(b, "  \"initializer_range\": 0.02,\n");
    tb_printf(b, "  \"intermediate_size\": %d,\n", cfg->intermediate_size);
    tb_printf(b, "  \"max_position_embeddings\": %d,\n", cfg->max_position_embeddings);
    tb_printf(b, "  \"max_window_layers\": %d,\n", cfg->max_window_layers);
    tb_printf(b, "  \"model_type\": \"qwen2\",\n");
    tb_printf(b, "  \"num_attention_heads\": %d,\n", cfg->num_attention_heads);
    tb_printf(b, "  \"num_hidden_layers\": %d,\n", cfg->num_hidden_layers);
    tb_printf(b, "  \"num_key_value_heads\": %d,\n", cfg->num_key_value_heads);
    tb_printf(b, "  \"rms_norm_eps\": %s,\n", eps);
    tb_printf(b, "  \"rope_scaling\": null,\n");
    tb_printf(b, "  \"rope_theta\": %s,\n", theta);
    tb_printf(b, "  \"sliding_window\": %d,\n", cfg->sliding_window);
    tb_printf(b, "  \"tie_word_embeddings\": %s,\n", cfg->tie_word_embeddings ? "true" : "false");
    tb_printf(b, "  \"torch_dtype\": \"%s\",\n", torch_dtype);
    tb_printf(b, "  \"use_cache\": true,\n");
    tb_printf(b, "  \"use_sliding_window\": %s,\n", cfg->use_sliding_window ? "true" : "false");
    tb_printf(b, "  \"vocab_size\": %d\n}\n", cfg->vocab_size);
    int rc = rl_write_file_atomic(path, b->s, strlen(b->s), err);
    free(b);
    return rc;
}

int rl_hf_generation_config_save(const rl_model_config *cfg, const char *dir, rl_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    RL_TRY(rl_hf_config_check(cfg, path, err));
    RL_TRY(rl_make_dir(dir, err));
    text_buf *b = rl_malloc(sizeof *b);
    b->n = 0;
    tb_printf(b, "{\n");
    tb_token_or_null(b, "bos_token_id", cfg->bos_token_id, ",");
    tb_eos(b, cfg, "");
    tb_printf(b, "}\n");
    int rc = rl_write_file_atomic(path, b->s, strlen(b->s), err);
    free(b);
    return rc;
}
