// tokenizer: loading dispatch, added-token matching, decode and UTF-8 helpers shared by the byte
// and BPE tokenizers. See tokenizer.h.
#include "policy/tok_internal.h"

#include <stdlib.h>
#include <string.h>

// ---- id buffers ------------------------------------------------------------------------------

void ids_push(rl_ids *ids, int32_t id) {
    if (ids->len == ids->cap) {
        ids->cap = ids->cap ? ids->cap * 2 : 64;
        ids->data = rl_realloc(ids->data, ids->cap * sizeof *ids->data);
    }
    ids->data[ids->len++] = id;
}

void rl_ids_free(rl_ids *ids) {
    if (!ids) return;
    free(ids->data);
    ids->data = NULL;
    ids->len = ids->cap = 0;
}

// ---- construction ----------------------------------------------------------------------------

rl_tokenizer *tok_new(rl_tokenizer_kind kind, const char *source) {
    rl_tokenizer *tok = rl_calloc(1, sizeof *tok);
    tok->kind = kind;
    tok->source = rl_strdup(source);
    tok->eos_id = -1;
    for (int b = 0; b < 256; b++) tok->byte_id[b] = -1;
    return tok;
}

static int matcher_cmp_ctx_less(const tok_added *a, const tok_added *b) {
    unsigned fa = (unsigned char)a->content[0], fb = (unsigned char)b->content[0];
    if (fa != fb) return fa < fb;
    if (a->len != b->len) return a->len > b->len; // longest first
    return a->id < b->id;
}

static void matcher_build(tok_matcher *m, const tok_added *added, int n_added, int normalized) {
    m->order = rl_malloc((size_t)(n_added ? n_added : 1) * sizeof *m->order);
    m->n = 0;
    for (int i = 0; i < n_added; i++)
        if (added[i].len > 0 && added[i].normalized == normalized) m->order[m->n++] = i;
    // Insertion sort: a few dozen tokens.
    for (int i = 1; i < m->n; i++) {
        int32_t v = m->order[i];
        int j = i - 1;
        while (j >= 0 && matcher_cmp_ctx_less(&added[v], &added[m->order[j]])) {
            m->order[j + 1] = m->order[j];
            j--;
        }
        m->order[j + 1] = v;
    }
    int k = 0, distinct = 0, last = -1;
    for (int b = 0; b <= 256; b++) {
        m->start[b] = k;
        while (k < m->n && (unsigned char)added[m->order[k]].content[0] == b) k++;
        if (b < 256 && k > m->start[b]) {
            distinct++;
            last = b;
        }
    }
    m->single_first = distinct == 1 ? last : -1;
}

void tok_build_matchers(rl_tokenizer *tok) {
    matcher_build(&tok->raw_matcher, tok->added, tok->n_added, 0);
    matcher_build(&tok->norm_matcher, tok->added, tok->n_added, 1);
}

size_t tok_match_next(const rl_tokenizer *tok, const tok_matcher *m, const char *s, size_t n,
                      const tok_added **hit) {
    *hit = NULL;
    if (m->n == 0) return n;
    size_t i = 0;
    while (i < n) {
        if (m->single_first >= 0) {
            const char *p = memchr(s + i, m->single_first, n - i);
            if (!p) return n;
            i = (size_t)(p - s);
        }
        unsigned b = (unsigned char)s[i];
        // The first candidate that matches is the longest one starting here.
        for (int k = m->start[b]; k < m->start[b + 1]; k++) {
            const tok_added *a = &tok->added[m->order[k]];
            if (a->len <= n - i && memcmp(s + i, a->content, a->len) == 0) {
                *hit = a;
                return i;
            }
        }
        i++;
    }
    return n;
}

// ---- public: load / free / queries -----------------------------------------------------------

int rl_tokenizer_load(rl_tokenizer **out, const char *kind_or_path, rl_err *err) {
    *out = NULL;
    if (!kind_or_path || !kind_or_path[0])
        return rl_fail(err, RL_EINPUT, "tokenizer: empty name (want \"byte\" or a path)");
    if (strcmp(kind_or_path, "byte") == 0) return tok_byte_load(out, err);
    return tok_bpe_load(out, kind_or_path, err);
}

void rl_tokenizer_free(rl_tokenizer *tok) {
    if (!tok) return;
    tok_bpe_free(tok);
    for (int i = 0; i < tok->n_added; i++) free(tok->added[i].content);
    free(tok->added);
    free(tok->raw_matcher.order);
    free(tok->norm_matcher.order);
    free(tok->arena);
    free(tok->off);
    free(tok->flag);
    free(tok->source);
    free(tok);
}

rl_tokenizer_kind rl_tokenizer_kind_of(const rl_tokenizer *tok) {
    return tok->kind;
}

int rl_tokenizer_vocab_size(const rl_tokenizer *tok) {
    return tok->vocab_size;
}

int32_t rl_tokenizer_eos_id(const rl_tokenizer *tok) {
    return tok->eos_id;
}

int32_t rl_tokenizer_special_id(const rl_tokenizer *tok, const char *content) {
    if (!content) return -1;
    size_t n = strlen(content);
    for (int i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == n && memcmp(tok->added[i].content, content, n) == 0)
            return tok->added[i].id;
    return -1;
}

int rl_tokenizer_is_added(const rl_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->vocab_size && (tok->flag[id] & TOK_ID_ADDED) != 0;
}

const char *rl_tokenizer_token_bytes(const rl_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->vocab_size) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok->off[id + 1] - tok->off[id];
    return tok->arena + tok->off[id];
}

// ---- encode / decode -------------------------------------------------------------------------

int rl_tokenizer_encode_append(const rl_tokenizer *tok, const char *text, size_t len, rl_ids *out,
                               rl_err *err) {
    if (len > 0 && !text) return rl_fail(err, RL_EINPUT, "tokenizer: NULL text");
    if (tok->kind == RL_TOKENIZER_BYTE) return tok_byte_encode(tok, text, len, out);
    return tok_bpe_encode(tok, text, len, out, err);
}

int rl_tokenizer_encode(const rl_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                        size_t *n_ids, rl_err *err) {
    rl_ids buf = {0};
    *ids = NULL;
    *n_ids = 0;
    if (rl_tokenizer_encode_append(tok, text, len, &buf, err) != 0) {
        rl_ids_free(&buf);
        return -1;
    }
    *ids = buf.data;
    *n_ids = buf.len;
    return 0;
}

int rl_tokenizer_decode(const rl_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                        size_t *len, rl_err *err) {
    *text = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->vocab_size)
            return rl_fail(err, RL_EINPUT, "decode: token id %d at position %zu is outside [0, %d)",
                           (int)id, i, (int)tok->vocab_size);
        total += tok->off[id + 1] - tok->off[id];
    }
    char *buf = rl_malloc(total + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = tok->off[ids[i]], b = tok->off[ids[i] + 1];
        memcpy(buf + k, tok->arena + a, b - a);
        k += b - a;
    }
    buf[k] = '\0';
    *text = buf;
    if (len) *len = k;
    return 0;
}

// ---- UTF-8 -----------------------------------------------------------------------------------

// Length of the valid UTF-8 sequence at s[0..n), or -(length of its maximal invalid prefix) when
// it is not valid (at least 1): the "maximal subpart" rule of Unicode ch. 3 / WHATWG / Rust.
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        need = 2;
    else if (c == 0xED)
        need = 2, hi = 0x9F; // no surrogates
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else if (c == 0xF4)
        need = 3, hi = 0x8F; // <= U+10FFFF
    else
        return -1;
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) return -k;
        unsigned b = s[k];
        unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) return -k;
    }
    return need + 1;
}

size_t rl_utf8_invalid_at(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int k = utf8_seq(u + i, len - i);
        if (k < 0) return i;
        i += (size_t)k;
    }
    return len;
}

char *rl_utf8_lossy(const char *s, size_t len, size_t *out_len) {
    const unsigned char *u = (const unsigned char *)s;
    // Worst case: every byte becomes U+FFFD (3 bytes).
    char *out = rl_malloc(3 * len + 1);
    size_t i = 0, k = 0;
    while (i < len) {
        int n = utf8_seq(u + i, len - i);
        if (n > 0) {
            memcpy(out + k, s + i, (size_t)n);
            k += (size_t)n;
            i += (size_t)n;
        } else {
            memcpy(out + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i += (size_t)(-n);
        }
    }
    out[k] = '\0';
    if (out_len) *out_len = k;
    return out;
}

size_t rl_utf8_complete_len(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    // A character is at most 4 bytes: only the last 3 bytes can be an unfinished one.
    size_t from = len > 3 ? len - 3 : 0;
    for (size_t i = len; i > from; i--) {
        unsigned c = u[i - 1];
        if (c < 0x80) return len; // ASCII: nothing pending after it
        if (c >= 0xC0) {          // a lead byte at i-1 (0xC0, 0xC1, 0xF5.. never start a character)
            if (c < 0xC2 || c > 0xF4) return len;
            int n = utf8_seq(u + i - 1, len - (i - 1));
            // Pending only if it is a valid start cut short by the end of the buffer.
            if (n < 0 && (size_t)(-n) == len - (i - 1)) return i - 1;
            return len;
        }
    }
    return len;
}
