// Tests for policy/hf_config: the real Qwen2.5 / R1-Distill configs (values from
// shared/notes/qwen2-format.md §2), transformers' defaults, eos lists, type errors naming the
// key, unsupported rope scaling, sliding-window layer_types, and save -> load round trips.
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/rng.h"
#include "policy/hf_config.h"
#include "test_util.h"

static char g_tmp[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static const char *QWEN25_05B_INSTRUCT = "{\n"
                                         "  \"architectures\": [\"Qwen2ForCausalLM\"],\n"
                                         "  \"attention_dropout\": 0.0,\n"
                                         "  \"bos_token_id\": 151643,\n"
                                         "  \"eos_token_id\": 151645,\n"
                                         "  \"hidden_act\": \"silu\",\n"
                                         "  \"hidden_size\": 896,\n"
                                         "  \"initializer_range\": 0.02,\n"
                                         "  \"intermediate_size\": 4864,\n"
                                         "  \"max_position_embeddings\": 32768,\n"
                                         "  \"max_window_layers\": 21,\n"
                                         "  \"model_type\": \"qwen2\",\n"
                                         "  \"num_attention_heads\": 14,\n"
                                         "  \"num_hidden_layers\": 24,\n"
                                         "  \"num_key_value_heads\": 2,\n"
                                         "  \"rms_norm_eps\": 1e-06,\n"
                                         "  \"rope_theta\": 1000000.0,\n"
                                         "  \"sliding_window\": 32768,\n"
                                         "  \"tie_word_embeddings\": true,\n"
                                         "  \"torch_dtype\": \"bfloat16\",\n"
                                         "  \"transformers_version\": \"4.43.1\",\n"
                                         "  \"use_cache\": true,\n"
                                         "  \"use_sliding_window\": false,\n"
                                         "  \"vocab_size\": 151936\n"
                                         "}\n";

static const char *R1_DISTILL_15B = "{\n"
                                    "  \"architectures\": [\"Qwen2ForCausalLM\"],\n"
                                    "  \"attention_dropout\": 0.0,\n"
                                    "  \"bos_token_id\": 151643,\n"
                                    "  \"eos_token_id\": 151643,\n"
                                    "  \"hidden_act\": \"silu\",\n"
                                    "  \"hidden_size\": 1536,\n"
                                    "  \"initializer_range\": 0.02,\n"
                                    "  \"intermediate_size\": 8960,\n"
                                    "  \"max_position_embeddings\": 131072,\n"
                                    "  \"max_window_layers\": 21,\n"
                                    "  \"model_type\": \"qwen2\",\n"
                                    "  \"num_attention_heads\": 12,\n"
                                    "  \"num_hidden_layers\": 28,\n"
                                    "  \"num_key_value_heads\": 2,\n"
                                    "  \"rms_norm_eps\": 1e-06,\n"
                                    "  \"rope_theta\": 10000,\n"
                                    "  \"sliding_window\": 4096,\n"
                                    "  \"tie_word_embeddings\": false,\n"
                                    "  \"torch_dtype\": \"bfloat16\",\n"
                                    "  \"transformers_version\": \"4.44.0\",\n"
                                    "  \"use_cache\": true,\n"
                                    "  \"use_mrope\": false,\n"
                                    "  \"use_sliding_window\": false,\n"
                                    "  \"vocab_size\": 151936\n"
                                    "}\n";

static const char *QWEN25_7B_INSTRUCT =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"hidden_act\": \"silu\","
    " \"hidden_size\": 3584, \"initializer_range\": 0.02, \"intermediate_size\": 18944,"
    " \"max_position_embeddings\": 32768, \"max_window_layers\": 28, \"model_type\": \"qwen2\","
    " \"num_attention_heads\": 28, \"num_hidden_layers\": 28, \"num_key_value_heads\": 4,"
    " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"sliding_window\": 131072,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.43.1\", \"use_cache\": true, \"use_sliding_window\": false,"
    " \"vocab_size\": 152064}";

typedef struct {
    const char *name;
    const char *json;
    int hidden, inter, layers, heads, kv, hd, vocab;
    double theta, eps;
    int max_pos, mwl, sw, tie, bos, eos;
} real_config;

static const real_config REAL[] = {
    {"Qwen2.5-0.5B-Instruct", NULL, 896, 4864, 24, 14, 2, 64, 151936, 1e6, 1e-6, 32768, 21, 32768,
     1, 151643, 151645},
    {"R1-Distill-Qwen-1.5B", NULL, 1536, 8960, 28, 12, 2, 128, 151936, 1e4, 1e-6, 131072, 21, 4096,
     0, 151643, 151643},
    {"Qwen2.5-7B-Instruct", NULL, 3584, 18944, 28, 28, 4, 128, 152064, 1e6, 1e-6, 32768, 28, 131072,
     0, 151643, 151645},
};

static const char *real_json(int i) {
    return i == 0 ? QWEN25_05B_INSTRUCT : i == 1 ? R1_DISTILL_15B : QWEN25_7B_INSTRUCT;
}

static int parse(rl_model_config *c, const char *json, rl_err *err) {
    return rl_hf_config_parse(c, json, strlen(json), "test/config.json", err);
}

static void test_real_configs(void) {
    for (int i = 0; i < 3; i++) {
        const real_config *r = &REAL[i];
        rl_model_config c;
        rl_err err = {0};
        CHECK(parse(&c, real_json(i), &err) == 0, "%s: %s", r->name, err.msg);
        CHECK(c.hidden_size == r->hidden, "%s hidden", r->name);
        CHECK(c.intermediate_size == r->inter, "%s inter", r->name);
        CHECK(c.num_hidden_layers == r->layers, "%s layers", r->name);
        CHECK(c.num_attention_heads == r->heads, "%s heads", r->name);
        CHECK(c.num_key_value_heads == r->kv, "%s kv", r->name);
        CHECK(c.head_dim == r->hd, "%s head_dim %d", r->name, c.head_dim);
        CHECK(c.vocab_size == r->vocab, "%s vocab", r->name);
        CHECK(c.rope_theta == r->theta, "%s theta %g", r->name, c.rope_theta);
        CHECK(c.rms_norm_eps == r->eps, "%s eps %g", r->name, c.rms_norm_eps);
        CHECK(c.max_position_embeddings == r->max_pos, "%s max_pos", r->name);
        CHECK(c.max_window_layers == r->mwl, "%s max_window_layers", r->name);
        CHECK(c.sliding_window == r->sw, "%s sliding_window", r->name);
        CHECK(c.use_sliding_window == 0, "%s use_sliding_window", r->name);
        CHECK(c.tie_word_embeddings == r->tie, "%s tie", r->name);
        CHECK(c.attention_bias == 1, "%s bias", r->name);
        CHECK(c.bos_token_id == r->bos, "%s bos", r->name);
        CHECK(c.eos_token_id == r->eos && c.n_eos == 1 && c.eos_token_ids[0] == r->eos, "%s eos",
              r->name);
    }
}

#define MINIMAL_SHAPE                                                                              \
    "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, "                  \
    "\"num_attention_heads\": 4"

static void test_defaults(void) {
    rl_model_config c;
    rl_err err = {0};
    CHECK(parse(&c, "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE "}", &err) == 0, "%s", err.msg);
    CHECK(c.num_key_value_heads == 4, "kv defaults to heads");
    CHECK(c.head_dim == 16, "head_dim = hidden / heads");
    CHECK(c.vocab_size == 151936, "vocab default");
    CHECK(c.max_position_embeddings == 32768, "max_pos default");
    CHECK(c.rope_theta == 10000.0, "theta default");
    CHECK(c.rms_norm_eps == 1e-6, "eps default");
    CHECK(c.tie_word_embeddings == 0, "tie default");
    CHECK(c.use_sliding_window == 0 && c.sliding_window == 4096 && c.max_window_layers == 28,
          "sliding defaults");
    CHECK(c.attention_bias == 1, "bias");
    CHECK(c.bos_token_id == -1 && c.eos_token_id == -1 && c.n_eos == 0, "no bos/eos");
    // No model_type but architectures names Qwen2ForCausalLM: accepted.
    CHECK(parse(&c, "{\"architectures\": [\"Qwen2ForCausalLM\"], " MINIMAL_SHAPE "}", &err) == 0,
          "architectures only: %s", err.msg);
    // Explicit head_dim and kv heads; nulls where transformers allows None.
    CHECK(parse(&c,
                "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE
                ", \"head_dim\": 32, \"num_key_value_heads\": 2, \"bos_token_id\": null, "
                "\"eos_token_id\": null, \"rope_scaling\": null, \"sliding_window\": null}",
                &err) == 0,
          "explicit: %s", err.msg);
    CHECK(c.head_dim == 32 && c.num_key_value_heads == 2 && c.bos_token_id == -1, "explicit");
    // Unknown keys are ignored, as transformers keeps them as plain attributes.
    CHECK(parse(&c, "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE ", \"foo\": [1, {}]}", &err) == 0,
          "unknown key: %s", err.msg);
    rl_model_config d;
    rl_hf_config_defaults(&d);
    CHECK(d.hidden_size == 4096 && d.num_hidden_layers == 32 && d.intermediate_size == 22016,
          "transformers defaults");
}

static void test_eos_list(void) {
    rl_model_config c;
    rl_err err = {0};
    CHECK(parse(&c,
                "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE ", \"eos_token_id\": [151645, "
                "151643], \"bos_token_id\": 151643}",
                &err) == 0,
          "%s", err.msg);
    CHECK(c.n_eos == 2 && c.eos_token_ids[0] == 151645 && c.eos_token_ids[1] == 151643 &&
              c.eos_token_id == 151645,
          "eos list");
    CHECK(parse(&c, "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE ", \"eos_token_id\": [7]}",
                &err) == 0 &&
              c.n_eos == 1 && c.eos_token_id == 7,
          "one-element list");
    const char *bad[] = {
        "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE ", \"eos_token_id\": [1,2,3,4,5]}",
        "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE ", \"eos_token_id\": []}",
        "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE ", \"eos_token_id\": [1, \"2\"]}",
        "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE ", \"eos_token_id\": \"2\"}",
        "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE ", \"eos_token_id\": -3}",
        "{\"model_type\": \"qwen2\", " MINIMAL_SHAPE ", \"eos_token_id\": 151936}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_err e = {0};
        CHECK(parse(&c, bad[i], &e) == -1 && e.kind == RL_EINPUT &&
                  strstr(e.msg, "test/config.json") &&
                  (strstr(e.msg, "eos_token_id") || strstr(e.msg, "token id")),
              "bad eos %zu: %s", i, e.msg);
    }
}

// Each case: config text, substrings the message must contain.
static void expect_bad(const char *json, const char *s1, const char *s2) {
    rl_model_config c;
    rl_err e = {0};
    int rc = parse(&c, json, &e);
    if (getenv("TEST_VERBOSE")) fprintf(stderr, "  %s\n", e.msg);
    CHECK(rc == -1 && e.kind == RL_EINPUT, "should fail: %s", json);
    CHECK(strstr(e.msg, "test/config.json") != NULL, "names the file: %s", e.msg);
    if (s1) CHECK(strstr(e.msg, s1) != NULL, "lacks \"%s\": %s", s1, e.msg);
    if (s2) CHECK(strstr(e.msg, s2) != NULL, "lacks \"%s\": %s", s2, e.msg);
}

#define Q "{\"model_type\": \"qwen2\", "

static void test_bad_types(void) {
    expect_bad(Q "\"hidden_size\": \"896\", \"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                 "\"num_attention_heads\": 4}",
               "\"hidden_size\"", "a string");
    expect_bad(Q "\"hidden_size\": 896.0, \"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                 "\"num_attention_heads\": 4}",
               "\"hidden_size\"", "integer");
    expect_bad(Q MINIMAL_SHAPE ", \"vocab_size\": true}", "\"vocab_size\"", "a boolean");
    expect_bad(Q MINIMAL_SHAPE ", \"vocab_size\": null}", "\"vocab_size\"", "null");
    expect_bad(Q MINIMAL_SHAPE ", \"rms_norm_eps\": \"1e-6\"}", "\"rms_norm_eps\"", "a number");
    expect_bad(Q MINIMAL_SHAPE ", \"rope_theta\": [10000]}", "\"rope_theta\"", "a number");
    expect_bad(Q MINIMAL_SHAPE ", \"tie_word_embeddings\": \"true\"}", "\"tie_word_embeddings\"",
               NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"tie_word_embeddings\": 1}", "\"tie_word_embeddings\"", NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"use_sliding_window\": 0}", "\"use_sliding_window\"", NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"max_window_layers\": \"21\"}", "\"max_window_layers\"", NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"bos_token_id\": 1.5}", "\"bos_token_id\"", NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"attention_bias\": \"yes\"}", "\"attention_bias\"", NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"architectures\": \"Qwen2ForCausalLM\"}", "\"architectures\"",
               NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"num_key_value_heads\": 3}", "num_key_value_heads", "multiple");
    expect_bad(Q MINIMAL_SHAPE ", \"num_key_value_heads\": 0}", "num_key_value_heads", "range");
    expect_bad(Q MINIMAL_SHAPE ", \"vocab_size\": 4294967296}", "vocab_size", "range");
    expect_bad(Q MINIMAL_SHAPE ", \"rms_norm_eps\": 0}", "rms_norm_eps", "positive");
    expect_bad(Q MINIMAL_SHAPE ", \"rope_theta\": -1}", "rope_theta", "positive");
    expect_bad(Q
               "\"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
               "\"hidden_size\"", "missing");
    expect_bad(Q "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_attention_heads\": 4}",
               "\"num_hidden_layers\"", "missing");
    expect_bad("{\"model_type\": \"llama\", " MINIMAL_SHAPE "}", "llama", "qwen2");
    expect_bad("{\"model_type\": \"qwen2_moe\", " MINIMAL_SHAPE "}", "qwen2_moe", NULL);
    expect_bad("{\"model_type\": 2, " MINIMAL_SHAPE "}", "\"model_type\"", NULL);
    expect_bad("{" MINIMAL_SHAPE "}", "model_type", "Qwen2ForCausalLM");
    expect_bad("{\"architectures\": [\"LlamaForCausalLM\"], " MINIMAL_SHAPE "}", "model_type",
               NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"hidden_act\": \"gelu\"}", "hidden_act", "gelu");
    expect_bad(Q MINIMAL_SHAPE ", \"quantization_config\": {\"quant_method\": \"gptq\"}}",
               "quantization_config", NULL);
    expect_bad("[1, 2]", "expected a JSON object", NULL);
    expect_bad("{\"model_type\": \"qwen2\", ", "not valid JSON", NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"vocab_size\": 10, \"vocab_size\": 11}", "duplicate", NULL);

    // A file that does not exist; a directory without config.json.
    rl_model_config c;
    rl_err e = {0};
    CHECK(rl_hf_config_load(&c, "/nonexistent/dir", &e) == -1 && e.kind == RL_EINPUT &&
              strstr(e.msg, "/nonexistent/dir"),
          "missing path: %s", e.msg);
    CHECK(rl_hf_config_load(&c, g_tmp, &e) == -1 && strstr(e.msg, "config.json"),
          "dir without config.json: %s", e.msg);
}

static void test_rope(void) {
    expect_bad(Q MINIMAL_SHAPE ", \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, "
                               "\"original_max_position_embeddings\": 32768}}",
               "rope_scaling", "yarn");
    expect_bad(Q MINIMAL_SHAPE ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2}}",
               "rope_scaling", "linear");
    expect_bad(Q MINIMAL_SHAPE ", \"rope_scaling\": 2}", "rope_scaling", NULL);
    expect_bad(Q MINIMAL_SHAPE ", \"rope_scaling\": {\"factor\": 4.0}}", "rope_scaling", "(none)");
    expect_bad(Q MINIMAL_SHAPE ", \"rope_parameters\": {\"rope_type\": \"llama3\"}}",
               "rope_parameters", "llama3");
    rl_model_config c;
    rl_err err = {0};
    CHECK(parse(&c, Q MINIMAL_SHAPE ", \"rope_scaling\": {\"rope_type\": \"default\"}}", &err) == 0,
          "default rope_scaling accepted: %s", err.msg);
    CHECK(parse(&c,
                Q MINIMAL_SHAPE ", \"rope_parameters\": {\"rope_theta\": 500000.0, "
                                "\"rope_type\": \"default\"}}",
                &err) == 0 &&
              c.rope_theta == 500000.0,
          "transformers-5 rope_parameters: %s", err.msg);
}

static void test_sliding(void) {
    rl_model_config c;
    rl_err err = {0};
    CHECK(parse(&c,
                Q MINIMAL_SHAPE ", \"use_sliding_window\": true, \"sliding_window\": 512, "
                                "\"max_window_layers\": 1, \"layer_types\": [\"full_attention\", "
                                "\"sliding_attention\"]}",
                &err) == 0,
          "%s", err.msg);
    CHECK(c.use_sliding_window == 1 && c.sliding_window == 512 && c.max_window_layers == 1,
          "sliding fields");
    expect_bad(Q MINIMAL_SHAPE ", \"layer_types\": [\"full_attention\", \"sliding_attention\"]}",
               "layer_types[1]", "sliding_attention");
    expect_bad(Q MINIMAL_SHAPE ", \"layer_types\": [\"full_attention\"]}", "layer_types",
               "2 layers");
    // sliding_window null disables the window even when use_sliding_window is true.
    CHECK(parse(&c, Q MINIMAL_SHAPE ", \"use_sliding_window\": true, \"sliding_window\": null}",
                &err) == 0 &&
              c.use_sliding_window == 0,
          "null window: %s", err.msg);
}

// ---- save -> load ----------------------------------------------------------------------------------

static int same_config(const rl_model_config *a, const rl_model_config *b) {
    int same = a->hidden_size == b->hidden_size && a->num_hidden_layers == b->num_hidden_layers &&
               a->num_attention_heads == b->num_attention_heads &&
               a->num_key_value_heads == b->num_key_value_heads && a->head_dim == b->head_dim &&
               a->intermediate_size == b->intermediate_size && a->vocab_size == b->vocab_size &&
               a->max_position_embeddings == b->max_position_embeddings &&
               a->rope_theta == b->rope_theta && a->rms_norm_eps == b->rms_norm_eps &&
               a->tie_word_embeddings == b->tie_word_embeddings &&
               a->use_sliding_window == b->use_sliding_window &&
               a->sliding_window == b->sliding_window &&
               a->max_window_layers == b->max_window_layers &&
               a->attention_bias == b->attention_bias && a->bos_token_id == b->bos_token_id &&
               a->eos_token_id == b->eos_token_id && a->n_eos == b->n_eos;
    for (int i = 0; same && i < a->n_eos; i++) same = a->eos_token_ids[i] == b->eos_token_ids[i];
    return same;
}

static char *slurp(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *b = calloc(1, 1 << 16);
    size_t n = fread(b, 1, (1 << 16) - 1, fp);
    b[n] = '\0';
    fclose(fp);
    return b;
}

static void roundtrip_one(const rl_model_config *c, const char *dtype, const char *what) {
    char dir[256], file[300];
    snprintf(dir, sizeof dir, "%s/rt", g_tmp);
    snprintf(file, sizeof file, "%s/config.json", dir);
    rl_err err = {0};
    CHECK(rl_hf_config_save(c, dir, dtype, &err) == 0, "%s: save: %s", what, err.msg);
    rl_model_config back;
    CHECK(rl_hf_config_load(&back, dir, &err) == 0, "%s: load dir: %s", what, err.msg);
    CHECK(same_config(c, &back), "%s: round trip differs", what);
    CHECK(rl_hf_config_load(&back, file, &err) == 0 && same_config(c, &back), "%s: load file",
          what);
    // The file is what transformers expects to see.
    char *text = slurp(file);
    CHECK(text && strstr(text, "\"model_type\": \"qwen2\"") &&
              strstr(text, "\"Qwen2ForCausalLM\"") && strstr(text, "\"hidden_act\": \"silu\""),
          "%s: qwen2 identity keys", what);
    char want[64];
    snprintf(want, sizeof want, "\"torch_dtype\": \"%s\"", dtype ? dtype : "float32");
    CHECK(text && strstr(text, want), "%s: %s", what, want);
    free(text);
}

static void test_save_load_roundtrip(void) {
    for (int i = 0; i < 3; i++) {
        rl_model_config c;
        rl_err err = {0};
        CHECK(parse(&c, real_json(i), &err) == 0, "%s", err.msg);
        roundtrip_one(&c, "bfloat16", REAL[i].name);
    }
    // The numbers look like transformers' output (Python repr of floats).
    char path[300];
    snprintf(path, sizeof path, "%s/rt/config.json", g_tmp);
    char *text = slurp(path); // the 7B config, saved last
    CHECK(text && strstr(text, "\"rms_norm_eps\": 1e-06,") &&
              strstr(text, "\"rope_theta\": 1000000.0,") && strstr(text, "\"vocab_size\": 152064"),
          "python-style numbers: %s", text ? text : "(none)");
    free(text);

    // Random tiny configs, including eos lists, no bos, explicit head_dim and odd doubles.
    rl_rng r = rl_rng_stream(3, RL_RNG_INIT, 9, 0);
    for (int it = 0; it < 200; it++) {
        rl_model_config c;
        rl_hf_config_defaults(&c);
        c.num_key_value_heads = rl_rng_range(&r, 1, 4);
        c.num_attention_heads = c.num_key_value_heads * rl_rng_range(&r, 1, 4);
        c.head_dim = 2 * rl_rng_range(&r, 1, 16);
        c.hidden_size =
            rl_rng_range(&r, 0, 1) ? c.num_attention_heads * c.head_dim : rl_rng_range(&r, 8, 512);
        c.intermediate_size = rl_rng_range(&r, 1, 2000);
        c.num_hidden_layers = rl_rng_range(&r, 1, 64);
        c.vocab_size = rl_rng_range(&r, 300, 200000);
        c.max_position_embeddings = rl_rng_range(&r, 16, 1 << 20);
        c.rope_theta = rl_rng_range(&r, 0, 1) ? (double)rl_rng_range(&r, 1, 2000000)
                                              : exp(rl_rng_double(&r) * 30.0);
        c.rms_norm_eps = exp(-rl_rng_double(&r) * 30.0);
        c.tie_word_embeddings = rl_rng_range(&r, 0, 1);
        c.use_sliding_window = rl_rng_range(&r, 0, 1);
        c.sliding_window = rl_rng_range(&r, 1, 100000);
        c.max_window_layers = rl_rng_range(&r, 0, 70);
        c.bos_token_id = rl_rng_range(&r, -1, 299);
        c.n_eos = rl_rng_range(&r, 0, 4);
        for (int k = 0; k < c.n_eos; k++) c.eos_token_ids[k] = rl_rng_range(&r, 0, 299);
        c.eos_token_id = c.n_eos ? c.eos_token_ids[0] : -1;
        char what[64];
        snprintf(what, sizeof what, "random config %d", it);
        roundtrip_one(&c, it % 2 ? "float32" : NULL, what);
    }
}

static void test_save_errors_and_generation_config(void) {
    rl_model_config c;
    rl_err err = {0};
    CHECK(parse(&c, QWEN25_05B_INSTRUCT, &err) == 0, "%s", err.msg);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/gen", g_tmp);
    CHECK(rl_hf_config_save(&c, dir, "float16", &err) == -1 && err.kind == RL_EINPUT &&
              strstr(err.msg, "float16"),
          "bad torch_dtype: %s", err.msg);
    rl_model_config bad = c;
    bad.num_key_value_heads = 3;
    CHECK(rl_hf_config_save(&bad, dir, NULL, &err) == -1 && strstr(err.msg, "num_key_value_heads"),
          "invalid config not saved: %s", err.msg);

    c.n_eos = 2;
    c.eos_token_ids[0] = 151645;
    c.eos_token_ids[1] = 151643;
    c.eos_token_id = 151645;
    CHECK(rl_hf_generation_config_save(&c, dir, &err) == 0, "gen save: %s", err.msg);
    char path[300];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    CHECK(j != NULL, "generation_config.json is JSON: %s", je.text);
    if (j) {
        json_t *eos = json_object_get(j, "eos_token_id");
        CHECK(json_integer_value(json_object_get(j, "bos_token_id")) == 151643, "gen bos");
        CHECK(json_is_array(eos) && json_array_size(eos) == 2 &&
                  json_integer_value(json_array_get(eos, 0)) == 151645 &&
                  json_integer_value(json_array_get(eos, 1)) == 151643,
              "gen eos list");
        json_decref(j);
    }
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/rlpipe-cfg-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_real_configs);
    RUN(test_defaults);
    RUN(test_eos_list);
    RUN(test_bad_types);
    RUN(test_rope);
    RUN(test_sliding);
    RUN(test_save_load_roundtrip);
    RUN(test_save_errors_and_generation_config);
    nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary();
}
