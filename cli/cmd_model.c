// rlpipe model: create and inspect Hugging Face-style model directories.
//   init  a randomly initialised Qwen2 model shaped by a run config's model section
//   info  config, parameter count, tokenizer and checkpoint tensors of a model directory
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"
#include "cli/config.h"
#include "kernels/backend.h"
#include "policy/checkpoint.h"
#include "policy/hf_config.h"
#include "policy/model.h"
#include "policy/safetensors.h"
#include "policy/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: rlpipe model <subcommand> [options]\n"
    "\n"
    "subcommands:\n"
    "  init [--config CONFIG] [--set key=value]... --out DIR [--seed N] [--bf16]\n"
    "       [--max-shard-size SIZE]\n"
    "                 write a randomly initialised model (the config's model.* shape) as a\n"
    "                 Hugging Face model directory\n"
    "  info DIR [--tensors] [--check]\n"
    "                 print a model directory's config, parameter count, tokenizer and tensors\n"
    "\n"
    "Run `rlpipe model <subcommand> --help` for details.\n";

static const char INIT_USAGE[] =
    "usage: rlpipe model init [--config CONFIG] [--set key=value]... --out DIR [--seed N] "
    "[--bf16]\n"
    "                         [--max-shard-size SIZE]\n"
    "\n"
    "Builds a Qwen2-architecture model from the run config's model section (hidden_size,\n"
    "num_hidden_layers, heads, intermediate_size, rope_theta, rms_norm_eps, tie_word_embeddings,\n"
    "sliding window; model.path must be empty), initialises it like Hugging Face's\n"
    "_init_weights (matrices normal(0, model.init_std), biases 0, norm weights 1) from run.seed,\n"
    "and writes DIR: config.json, generation_config.json, model.safetensors and the tokenizer\n"
    "(rlpipe_tokenizer.json for the byte tokenizer, a copy of tokenizer.json for kind hf).\n"
    "transformers' AutoModelForCausalLM.from_pretrained(DIR) loads the result.\n"
    "\n"
    "vocab_size comes from the tokenizer: 272 for the byte tokenizer; for kind hf the\n"
    "vocab_size of a config.json next to tokenizer.json, else the tokenizer's size rounded up to\n"
    "a multiple of 64. eos_token_id lists the chat template's stop tokens.\n"
    "\n"
    "The directory is written atomically; an existing DIR is replaced only if it is empty or a\n"
    "model directory (holds config.json).\n"
    "\n"
    "options:\n"
    "  --config CONFIG   run config (YAML); without it the built-in defaults\n"
    "  --set key=value   override a config key (repeatable), e.g. --set model.hidden_size=64\n"
    "  --out DIR         the model directory to write (required)\n"
    "  --seed N          same as --set run.seed=N\n"
    "  --bf16            store the weights as BF16 (same as --set model.save_dtype=bf16)\n"
    "  --max-shard-size SIZE  split the weights into shards of at most SIZE bytes (suffixes\n"
    "                    KB MB GB = 1000^k, KiB MiB GiB = 1024^k, as in Hugging Face's\n"
    "                    max_shard_size) plus model.safetensors.index.json; default one file\n"
    "  -h, --help        this help\n";

static const char INFO_USAGE[] =
    "usage: rlpipe model info DIR [--tensors] [--check]\n"
    "\n"
    "Prints the model directory's config, its parameter count (as Hugging Face counts them),\n"
    "its tokenizer and a summary of the checkpoint's tensors (count and bytes per dtype).\n"
    "Reads only file headers unless --check is given.\n"
    "\n"
    "options:\n"
    "  --tensors   also list every tensor: name, dtype, shape\n"
    "  --check     load the whole model (every tensor present with the right shape, readable)\n"
    "  -h, --help  this help\n";

// ------------------------------------------------------------------------------------------------
// init

#define MAX_SETS 256

typedef struct init_args {
    const char *config, *out;
    char *sets[MAX_SETS + 2];
    int n_sets;
    char seed_set[64];
    size_t max_shard_bytes; // 0 = one file
} init_args;

// "40KB", "5GB", "2GiB", "123" -> bytes; 0 on a malformed size.
static size_t parse_size(const char *s) {
    static const struct {
        const char *unit;
        double scale;
    } UNITS[] = {{"", 1},     {"B", 1},        {"KB", 1e3},        {"MB", 1e6},
                 {"GB", 1e9}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 1)) return 0;
    for (size_t i = 0; i < sizeof UNITS / sizeof UNITS[0]; i++)
        if (strcmp(end, UNITS[i].unit) == 0 && v * UNITS[i].scale < 1e18)
            return (size_t)(v * UNITS[i].scale);
    return 0;
}

static int parse_init(int argc, char **argv, init_args *a) {
    *a = (init_args){0};
    int bf16 = 0;
    const char *seed = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--config") == 0 && val) {
            a->config = val, i++;
        } else if (strcmp(arg, "--out") == 0 && val) {
            a->out = val, i++;
        } else if (strcmp(arg, "--seed") == 0 && val) {
            seed = val, i++;
        } else if (strcmp(arg, "--set") == 0 && val) {
            if (a->n_sets >= MAX_SETS) return cli_usage_error("model init", "too many --set");
            a->sets[a->n_sets++] = argv[++i];
        } else if (strncmp(arg, "--set=", 6) == 0) {
            if (a->n_sets >= MAX_SETS) return cli_usage_error("model init", "too many --set");
            a->sets[a->n_sets++] = argv[i] + 6;
        } else if (strcmp(arg, "--bf16") == 0) {
            bf16 = 1;
        } else if (strcmp(arg, "--max-shard-size") == 0 && val) {
            a->max_shard_bytes = parse_size(argv[++i]);
            if (!a->max_shard_bytes)
                return cli_usage_error("model init", "--max-shard-size: bad size '%s' (e.g. 5GB)",
                                       val);
        } else {
            return cli_usage_error("model init", "unknown or incomplete argument '%s'", arg);
        }
    }
    if (!a->out) return cli_usage_error("model init", "--out DIR is required");
    if (seed) {
        snprintf(a->seed_set, sizeof a->seed_set, "run.seed=%s", seed);
        a->sets[a->n_sets++] = a->seed_set;
    }
    if (bf16) a->sets[a->n_sets++] = "model.save_dtype=bf16";
    return 0;
}

// vocab_size for a kind-hf tokenizer: a config.json next to it wins, else the size rounded up.
static int hf_vocab_size(const rl_tokenizer *tok, const char *path, rl_err *err) {
    int n = rl_tokenizer_vocab_size(tok);
    size_t len = strlen(path) + 16;
    char *cfg_path = rl_malloc(len);
    snprintf(cfg_path, len, "%s/config.json", path);
    int vocab = (n + 63) / 64 * 64;
    if (access(cfg_path, R_OK) == 0) {
        rl_model_config other;
        if (rl_hf_config_load(&other, cfg_path, err) != 0) {
            free(cfg_path);
            return -1;
        }
        if (other.vocab_size >= n) vocab = other.vocab_size;
    }
    free(cfg_path);
    return vocab;
}

static int init_config(const rl_config *c, const rl_tokenizer *tok, rl_model_config *mc,
                       rl_err *err) {
    cli_model_shape(&c->model, mc);
    if (c->tokenizer.kind == RL_CFG_TOK_BYTE) {
        mc->vocab_size = rl_tokenizer_vocab_size(tok);
    } else {
        int v = hf_vocab_size(tok, c->tokenizer.path, err);
        if (v < 0) return -1;
        mc->vocab_size = v;
    }
    // eos: the chat template's stop tokens, primary first (generation stops on any of them).
    int32_t stops[RL_CHAT_MAX_STOPS];
    rl_chat_template tmpl = c->tokenizer.chat_template == RL_CFG_CHAT_CHATML ? RL_CHAT_CHATML
                            : c->tokenizer.chat_template == RL_CFG_CHAT_R1   ? RL_CHAT_R1
                                                                             : RL_CHAT_PLAIN;
    int n = rl_chat_stop_ids(tmpl, tok, stops);
    if (n > 4) n = 4;
    mc->bos_token_id = -1;
    mc->n_eos = n;
    for (int i = 0; i < n; i++) mc->eos_token_ids[i] = stops[i];
    mc->eos_token_id = n > 0 ? stops[0] : -1;
    return 0;
}

static int model_init(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(INIT_USAGE, stdout);
        return CLI_EXIT_OK;
    }
    init_args a;
    if (parse_init(argc, argv, &a) != 0) return CLI_EXIT_USAGE;
    rl_err err = {0};
    rl_config c;
    rl_tokenizer *tok = NULL;
    rl_model *m = NULL;
    const rl_backend *be = NULL;
    int rc = rl_config_from_args(&c, a.config, a.sets, a.n_sets, &err);
    if (rc == 0 && c.model.path[0])
        rc = rl_fail(&err, RL_EINPUT,
                     "model.path is set (\"%s\"): model init creates a new model from the "
                     "model.* shape keys; leave model.path empty",
                     c.model.path);
    const char *tok_spec = c.tokenizer.kind == RL_CFG_TOK_BYTE ? "byte" : c.tokenizer.path;
    if (rc == 0) rc = rl_tokenizer_load(&tok, tok_spec, &err);
    rl_model_config mc;
    if (rc == 0) rc = init_config(&c, tok, &mc, &err);
    if (rc == 0) rc = (be = rl_backend_get("cpu", &err)) ? 0 : -1;
    if (rc == 0) rc = rl_model_create(&m, &mc, be, &err);
    if (rc == 0) {
        rl_model_init_random(m, (uint64_t)c.run.seed, (float)c.model.init_std);
        rl_model_save_opts o = {.bf16 = c.model.save_dtype == RL_CFG_BF16,
                                .tokenizer = tok_spec,
                                .max_shard_bytes = a.max_shard_bytes};
        rc = rl_model_save_ex(m, a.out, &o, &err);
    }
    if (rc == 0)
        printf("wrote %s: %zu parameters (hidden %d, %d layers, %d/%d heads, vocab %d), %s "
               "weights, seed %d, tokenizer %s\n",
               a.out, rl_model_num_weights(m), mc.hidden_size, mc.num_hidden_layers,
               mc.num_attention_heads, mc.num_key_value_heads, mc.vocab_size,
               c.model.save_dtype == RL_CFG_BF16 ? "BF16" : "F32", c.run.seed, tok_spec);
    rl_model_free(m);
    rl_tokenizer_free(tok);
    rl_backend_release(be);
    rl_config_free(&c);
    return rc == 0 ? CLI_EXIT_OK : cli_report(&err);
}

// ------------------------------------------------------------------------------------------------
// info

static void print_shape(const int64_t *shape, int ndim) {
    printf("[");
    for (int d = 0; d < ndim; d++) printf(d ? ", %lld" : "%lld", (long long)shape[d]);
    printf("]");
}

static void print_config(const char *dir, const rl_model_config *c) {
    int hd = c->head_dim > 0 ? c->head_dim : c->hidden_size / c->num_attention_heads;
    printf("model %s\n", dir);
    printf("  Qwen2ForCausalLM: hidden %d, %d layers, %d heads (%d key/value, head_dim %d), "
           "intermediate %d, vocab %d\n",
           c->hidden_size, c->num_hidden_layers, c->num_attention_heads, c->num_key_value_heads, hd,
           c->intermediate_size, c->vocab_size);
    printf("  rope_theta %g, rms_norm_eps %g, max_position_embeddings %d, tie_word_embeddings "
           "%s\n",
           c->rope_theta, c->rms_norm_eps, c->max_position_embeddings,
           c->tie_word_embeddings ? "true" : "false");
    if (c->use_sliding_window)
        printf("  sliding window %d tokens on layers >= %d\n", c->sliding_window,
               c->max_window_layers);
    else
        printf("  sliding window: off (full causal attention)\n");
    printf("  bos ");
    if (c->bos_token_id >= 0)
        printf("%d", c->bos_token_id);
    else
        printf("none");
    printf(", eos ");
    if (c->n_eos == 0) printf("none");
    for (int i = 0; i < c->n_eos; i++) printf(i ? " %d" : "%d", c->eos_token_ids[i]);
    printf("\n");
    size_t n = rl_model_config_num_params(c);
    printf("  parameters %zu (%.2fM)\n", n, 1e-6 * (double)n);
}

static int print_tensors(const char *dir, int list, rl_err *err) {
    rl_ckpt *ck;
    RL_TRY(rl_ckpt_open(&ck, dir, err));
    size_t count[RL_ST_NDTYPES] = {0}, bytes[RL_ST_NDTYPES] = {0};
    int n = rl_ckpt_count(ck);
    for (int i = 0; i < n; i++) {
        const rl_st_tensor *t = rl_ckpt_find(ck, rl_ckpt_name(ck, i), NULL);
        count[t->dtype]++;
        bytes[t->dtype] += t->nbytes;
    }
    printf("  checkpoint: %d tensors:", n);
    for (int d = 0; d < RL_ST_NDTYPES; d++)
        if (count[d])
            printf(" %zu %s (%.2f MB)", count[d], rl_st_dtype_name((rl_st_dtype)d),
                   1e-6 * (double)bytes[d]);
    printf("\n");
    if (list)
        for (int i = 0; i < n; i++) {
            const char *name = rl_ckpt_name(ck, i);
            const rl_st_tensor *t = rl_ckpt_find(ck, name, NULL);
            printf("    %-52s %-5s ", name, rl_st_dtype_name(t->dtype));
            print_shape(t->shape, t->ndim);
            printf("\n");
        }
    rl_ckpt_close(ck);
    return 0;
}

static int model_info(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(INFO_USAGE, stdout);
        return CLI_EXIT_OK;
    }
    const char *dir = NULL;
    int list = 0, check = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tensors") == 0)
            list = 1;
        else if (strcmp(argv[i], "--check") == 0)
            check = 1;
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            return cli_usage_error("model info", "unexpected argument '%s'", argv[i]);
    }
    if (!dir) return cli_usage_error("model info", "DIR is required");
    rl_err err = {0};
    rl_model_config c;
    if (rl_hf_config_load(&c, dir, &err) != 0) return cli_report(&err);
    print_config(dir, &c);
    char tok[4096];
    rl_err terr = {0};
    printf("  tokenizer: %s\n",
           rl_model_tokenizer_path(dir, tok, sizeof tok, &terr) == 0
               ? (strcmp(tok, "byte") == 0 ? "byte (rlpipe_tokenizer.json)" : "tokenizer.json")
               : "none");
    if (print_tensors(dir, list, &err) != 0) return cli_report(&err);
    if (check) {
        fflush(stdout);
        const rl_backend *be = rl_backend_get("cpu", &err);
        rl_model *m;
        if (!be || rl_model_load(&m, dir, be, &err) != 0) return cli_report(&err);
        printf("  check: ok, all %d tensors the config implies load\n", rl_model_num_tensors(m));
        rl_model_free(m);
        rl_backend_release(be);
    }
    return CLI_EXIT_OK;
}

int cmd_model(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "init") == 0) return model_init(argc - 1, argv + 1);
    if (strcmp(argv[1], "info") == 0) return model_info(argc - 1, argv + 1);
    return cli_usage_error("model", "unknown subcommand '%s' (init, info)", argv[1]);
}
