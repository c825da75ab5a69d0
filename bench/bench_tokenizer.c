// bench_tokenizer: load time and encode/decode throughput of a tokenizer on one core.
//
//   bench_tokenizer [TOKENIZER [MEGABYTES]]
//
// TOKENIZER defaults to ../shared/data/qwen2-tokenizer/tokenizer.json (run from the project
// root), MEGABYTES to 10. Two corpora: generated English-like prose (sentences of common words,
// numbers, punctuation, paragraphs), and the mostly-ASCII texts of ../shared's vectors.jsonl
// repeated. Each is encoded whole (one call) and in 4 KB chunks (prompt-sized calls).
#define _POSIX_C_SOURCE 200809L
#include "kernels/rng.h"
#include "policy/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const WORDS[] = {
    "the",      "of",        "and",       "to",          "in",       "is",       "that",
    "for",      "it",        "as",        "was",         "with",     "be",       "by",
    "on",       "not",       "he",        "this",        "are",      "or",       "his",
    "from",     "at",        "which",     "but",         "have",     "an",       "had",
    "they",     "you",       "were",      "their",       "one",      "all",      "we",
    "can",      "her",       "has",       "there",       "been",     "if",       "more",
    "when",     "will",      "would",     "who",         "so",       "no",       "model",
    "reward",   "answer",    "reasoning", "problem",     "number",   "equation", "value",
    "compute",  "therefore", "because",   "function",    "training", "policy",   "gradient",
    "step",     "sum",       "product",   "result",      "first",    "second",   "finally",
    "check",    "verify",    "triangle",  "probability", "integer",  "fraction", "solution",
    "question", "example",   "method",    "language",    "learning", "system",   "between",
    "through",  "important", "different", "however",     "although", "consider", "suppose",
    "multiply", "divide",    "remainder", "prime",
};
enum { N_WORDS = (int)(sizeof WORDS / sizeof WORDS[0]) };

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static char *english_like(size_t bytes, size_t *len) {
    buf b = {0};
    rl_rng r = rl_rng_stream(42, RL_RNG_DATA, 0, 0);
    while (b.n < bytes) {
        int words = 6 + (int)rl_rng_below(&r, 14);
        for (int w = 0; w < words; w++) {
            char tmp[64];
            const char *word = WORDS[rl_rng_below(&r, N_WORDS)];
            if (rl_rng_below(&r, 25) == 0) {
                snprintf(tmp, sizeof tmp, "%u", rl_rng_below(&r, 100000));
                word = tmp;
            } else if (w == 0) {
                snprintf(tmp, sizeof tmp, "%c%s", word[0] - 32, word + 1);
                word = tmp;
            }
            if (w > 0) put(&b, " ", 1);
            put(&b, word, strlen(word));
            if (w + 1 < words && rl_rng_below(&r, 12) == 0) put(&b, ",", 1);
        }
        static const char *const END[] = {". ", ". ", ". ", "? ", "! ", ".\n\n", ": "};
        const char *e = END[rl_rng_below(&r, 7)];
        put(&b, e, strlen(e));
    }
    *len = b.n;
    return b.p;
}

// The vectors' texts that are at least 97% ASCII, concatenated and repeated up to `bytes`.
static char *vector_prose(const char *path, size_t bytes, size_t *len) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    buf one = {0};
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *v = json_loads(line, 0, NULL);
        const char *s = json_string_value(json_object_get(v, "text"));
        size_t n = s ? strlen(s) : 0, ascii = 0;
        for (size_t i = 0; i < n; i++) ascii += (unsigned char)s[i] < 0x80;
        if (n >= 40 && ascii * 100 >= n * 97) {
            put(&one, s, n);
            put(&one, "\n", 1);
        }
        json_decref(v);
    }
    free(line);
    fclose(f);
    if (one.n == 0) return NULL;
    buf all = {0};
    while (all.n < bytes) put(&all, one.p, one.n);
    free(one.p);
    *len = all.n;
    return all.p;
}

// Encodes text whole, then in chunks (cut at a UTF-8 character boundary); prints throughput.
static void bench_corpus(const rl_tokenizer *tok, const char *name, const char *text, size_t len) {
    rl_ids ids = {0};
    rl_err err = {0};
    double t0 = rl_now();
    if (rl_tokenizer_encode_append(tok, text, len, &ids, &err) != 0) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        exit(1);
    }
    double t1 = rl_now();
    size_t whole = ids.len;
    double mb = (double)len / 1e6;
    printf("%-14s encode, one call:   %7.2f MB/s  %10.0f tokens/s  (%.2f MB, %zu tokens, "
           "%.2f bytes/token)\n",
           name, mb / (t1 - t0), (double)whole / (t1 - t0), mb, whole, (double)len / whole);

    size_t chunk = 4096, total = 0;
    t0 = rl_now();
    for (size_t off = 0; off < len;) {
        size_t end = off + chunk < len ? off + chunk : len;
        while (end < len && ((unsigned char)text[end] & 0xC0) == 0x80) end++;
        ids.len = 0;
        if (rl_tokenizer_encode_append(tok, text + off, end - off, &ids, &err) != 0) {
            fprintf(stderr, "encode failed: %s\n", err.msg);
            exit(1);
        }
        total += ids.len;
        off = end;
    }
    t1 = rl_now();
    printf("%-14s encode, 4 KB calls: %7.2f MB/s  %10.0f tokens/s\n", name, mb / (t1 - t0),
           (double)total / (t1 - t0));

    ids.len = 0;
    rl_tokenizer_encode_append(tok, text, len, &ids, &err);
    char *back;
    size_t back_len;
    t0 = rl_now();
    rl_tokenizer_decode(tok, ids.data, ids.len, &back, &back_len, &err);
    t1 = rl_now();
    printf("%-14s decode:             %7.2f MB/s  %10.0f tokens/s\n", name, mb / (t1 - t0),
           (double)ids.len / (t1 - t0));
    free(back);
    rl_ids_free(&ids);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../shared/data/qwen2-tokenizer/tokenizer.json";
    double megabytes = argc > 2 ? atof(argv[2]) : 10.0;
    size_t bytes = (size_t)(megabytes * 1e6);
    rl_tokenizer *tok;
    rl_err err = {0};
    double t0 = rl_now();
    if (rl_tokenizer_load(&tok, path, &err) != 0) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 2;
    }
    printf("load %s: %.3f s (vocab %d)\n", path, rl_now() - t0, rl_tokenizer_vocab_size(tok));

    size_t len;
    char *text = english_like(bytes, &len);
    bench_corpus(tok, "english-like", text, len);
    free(text);
    text = vector_prose("../shared/data/qwen2-tokenizer/vectors.jsonl", bytes, &len);
    if (text) bench_corpus(tok, "vector prose", text, len);
    free(text);
    rl_tokenizer_free(tok);
    return 0;
}
