/*
 * keyword: an example shared-object verifier plugin (the plugin guide walks through it).
 *
 * Scores the share of configured keywords that the completion contains.
 *   options  keywords: "therefore,check" (required; comma-separated, surrounding spaces trimmed)
 *            where: all|answer (all; answer = only the text after the last </think>)
 *            case: sensitive|insensitive (insensitive; ASCII letters only)
 *
 * Build: it needs nothing but reward/verifier_abi.h:
 *     cc -O2 -shared -fPIC -I<rlpipe> keyword.c -o keyword.so
 * (CMake builds it as build/verifiers/examples/keyword.so). Use it in a config:
 *     reward:
 *       verifiers:
 *         - {name: keyword, weight: 0.05, plugin: build/verifiers/examples/keyword.so,
 *            keywords: "therefore, check"}
 *
 * Owns: the parsed keyword list of each instance. Thread-safe (read-only after create).
 */
#include "reward/verifier_abi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct keyword {
    char **words; // [n] the keywords, owned
    int n;
    int answer_only;    // 1: look only after the last </think>
    int case_sensitive; // 1: exact bytes; 0: ASCII case folded
} keyword;

static void keyword_destroy(void *p) {
    keyword *k = p;
    if (!k) return;
    for (int i = 0; i < k->n; i++) free(k->words[i]);
    free(k->words);
    free(k);
}

static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

// Splits "a, b ,c" into trimmed, non-empty words.
static int split_words(keyword *k, const char *list) {
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > p && last[-1] == ' ') last--;
        if (last > p) {
            char **grown = realloc(k->words, (size_t)(k->n + 1) * sizeof *grown);
            char *w = malloc((size_t)(last - p) + 1);
            if (!grown || !w) {
                free(w);
                if (grown) k->words = grown;
                return -1;
            }
            memcpy(w, p, (size_t)(last - p));
            w[last - p] = 0;
            k->words = grown;
            k->words[k->n++] = w;
        }
        p = end;
    }
    return 0;
}

static void *keyword_create(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len) {
    keyword *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    const char *list = NULL;
    for (int i = 0; i < n_opts; i++) {
        const char *key = opts[i].key, *v = opts[i].value ? opts[i].value : "";
        if (strcmp(key, "keywords") == 0)
            list = v;
        else if (strcmp(key, "where") == 0 && (!strcmp(v, "all") || !strcmp(v, "answer")))
            k->answer_only = strcmp(v, "answer") == 0;
        else if (strcmp(key, "case") == 0 && (!strcmp(v, "sensitive") || !strcmp(v, "insensitive")))
            k->case_sensitive = strcmp(v, "sensitive") == 0;
        else {
            snprintf(err, err_len, "bad option %s: '%s' (keyword takes keywords, where, case)", key,
                     v);
            keyword_destroy(k);
            return NULL;
        }
    }
    if (!list || split_words(k, list) != 0 || k->n == 0) {
        snprintf(err, err_len, "option keywords: give at least one keyword, e.g. \"therefore\"");
        keyword_destroy(k);
        return NULL;
    }
    return k;
}

static int contains(const char *text, const char *word, int case_sensitive) {
    if (case_sensitive) return strstr(text, word) != NULL;
    size_t n = strlen(word);
    for (const char *p = text; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && lower(p[i]) == lower(word[i])) i++;
        if (i == n) return 1;
    }
    return 0;
}

static void keyword_score(void *p, const rl_vsample *s, rl_vresult *out) {
    const keyword *k = p;
    const char *text = s->completion ? s->completion : "";
    if (k->answer_only) {
        for (const char *q = text; (q = strstr(q, "</think>")); q += 8) text = q + 8;
    }
    int found = 0;
    char missing[RL_VDETAIL_MAX] = "";
    for (int i = 0; i < k->n; i++) {
        if (contains(text, k->words[i], k->case_sensitive)) {
            found++;
            continue;
        }
        size_t len = strlen(missing);
        snprintf(missing + len, sizeof missing - len, "%s%s", len ? ", " : "", k->words[i]);
    }
    out->score = (double)found / k->n;
    out->status = RL_VERIFY_OK;
    snprintf(out->detail, sizeof out->detail, "%d of %d keywords%s%.200s", found, k->n,
             found < k->n ? "; missing: " : "", found < k->n ? missing : "");
}

static const rl_verifier_api KEYWORD_API = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "keyword",
    .thread_safe = 1,
    .create = keyword_create,
    .score = keyword_score,
    .score_group = NULL,
    .destroy = keyword_destroy,
};

// The entry point rlpipe looks up (RL_VERIFIER_ENTRY).
__attribute__((visibility("default"))) const rl_verifier_api *rlpipe_verifier(void) {
    return &KEYWORD_API;
}
