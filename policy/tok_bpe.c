// tok_bpe: the Hugging Face byte-level BPE tokenizer (Qwen2 / Qwen2.5 / R1-Distill / Qwen3),
// loaded from tokenizer.json, with exact parity for encode and decode. See tokenizer.h and
// ../shared/notes/qwen2-format.md section 4.
//
// Encode pipeline (Hugging Face order): split out added tokens (leftmost-longest literal match on
// the raw text) -> NFC of each remaining piece -> pre-tokenizer regex (PCRE2, JIT) -> each
// pre-token's bytes become byte tokens -> merge-rank BPE -> ids.
#define _POSIX_C_SOURCE       200809L
#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/tok_internal.h"
#include "policy/fileio.h"

#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

// ---- GPT-2 bytes_to_unicode ------------------------------------------------------------------
// Printable bytes (33..126, 161..172, 174..255) stand for themselves; the other 68 map, in
// increasing order, to U+0100, U+0101, ... (space -> U+0120 'Ġ', '\n' -> U+010A 'Ċ').

static int byte_is_printable(int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

// cp_to_byte[cp] for cp < 324: the byte the code point stands for, or -1.
static void byte_unicode_tables(uint32_t byte_to_cp[256], int16_t cp_to_byte[324]) {
    for (int i = 0; i < 324; i++) cp_to_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = byte_is_printable(b) ? (uint32_t)b : (uint32_t)(256 + n++);
        byte_to_cp[b] = cp;
        cp_to_byte[cp] = (int16_t)b;
    }
}

// Decodes one UTF-8 character of a valid string; returns its length.
static int utf8_next(const unsigned char *s, uint32_t *cp) {
    if (s[0] < 0x80) return *cp = s[0], 1;
    if (s[0] < 0xE0) return *cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu), 2;
    if (s[0] < 0xF0)
        return *cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu), 3;
    *cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    return 4;
}

// The bytes a token string decodes to under the ByteLevel decoder: every character mapped back
// to its byte, or, if any character is outside the byte alphabet, the string's own UTF-8 bytes
// (what Hugging Face does, e.g. for "<｜User｜>"). Writes at most len bytes to dst.
static size_t token_to_bytes(const char *s, size_t len, const int16_t cp_to_byte[324], char *dst) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < len) {
        uint32_t cp;
        i += (size_t)utf8_next(u + i, &cp);
        if (cp >= 324 || cp_to_byte[cp] < 0) {
            memcpy(dst, s, len);
            return len;
        }
        dst[k++] = (char)cp_to_byte[cp];
    }
    return k;
}

// ---- hash tables -----------------------------------------------------------------------------

static uint64_t pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static size_t pair_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

static const tok_pair *pair_find(const rl_tokenizer *tok, int32_t a, int32_t b) {
    uint64_t key = pair_key(a, b);
    for (size_t h = pair_slot(key, tok->pair_mask);; h = (h + 1) & tok->pair_mask) {
        const tok_pair *p = &tok->pairs[h];
        if (p->key == key) return p;
        if (p->key == TOK_PAIR_EMPTY) return NULL;
    }
}

// Later duplicates overwrite earlier ones, as in Hugging Face (a HashMap built in merge order).
static void pair_insert(rl_tokenizer *tok, int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    uint64_t key = pair_key(a, b);
    size_t h = pair_slot(key, tok->pair_mask);
    while (tok->pairs[h].key != TOK_PAIR_EMPTY && tok->pairs[h].key != key)
        h = (h + 1) & tok->pair_mask;
    tok->pairs[h] = (tok_pair){key, rank, merged};
}

static uint64_t bytes_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int32_t words_find(const rl_tokenizer *tok, const char *s, size_t n) {
    const tok_strmap *m = &tok->words;
    for (size_t h = bytes_hash(s, n) & m->mask;; h = (h + 1) & m->mask) {
        int32_t id = m->slots[h];
        if (id < 0) return -1;
        size_t a = tok->off[id], b = tok->off[id + 1];
        if (b - a == n && memcmp(tok->arena + a, s, n) == 0) return id;
    }
}

static void words_build(rl_tokenizer *tok) {
    size_t n = 0;
    for (int32_t id = 0; id < tok->vocab_size; id++)
        if (tok->flag[id] == TOK_ID_USED) n++;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    tok->words.mask = cap - 1;
    tok->words.slots = rl_malloc(cap * sizeof *tok->words.slots);
    for (size_t i = 0; i < cap; i++) tok->words.slots[i] = -1;
    for (int32_t id = 0; id < tok->vocab_size; id++) {
        if (tok->flag[id] != TOK_ID_USED) continue;
        const char *s = tok->arena + tok->off[id];
        size_t len = tok->off[id + 1] - tok->off[id];
        if (words_find(tok, s, len) >= 0) continue; // first id wins
        size_t h = bytes_hash(s, len) & tok->words.mask;
        while (tok->words.slots[h] >= 0) h = (h + 1) & tok->words.mask;
        tok->words.slots[h] = id;
    }
}

// ---- BPE of one word -------------------------------------------------------------------------

#define BPE_SMALL 64 // words up to this many bytes use the quadratic scan (no allocation)
#define RANK_NONE UINT32_MAX

static void pair_lookup(const rl_tokenizer *tok, int32_t a, int32_t b, uint32_t *rank,
                        int32_t *merged) {
    const tok_pair *p = pair_find(tok, a, b);
    *rank = p ? p->rank : RANK_NONE;
    *merged = p ? p->merged : -1;
}

// Repeatedly merges the lowest-ranked adjacent pair (leftmost on ties): O(n^2), fast for words.
static void bpe_scan(const rl_tokenizer *tok, int32_t *id, size_t n, rl_ids *out) {
    uint32_t rank[BPE_SMALL];
    int32_t merged[BPE_SMALL];
    for (size_t i = 0; i + 1 < n; i++) pair_lookup(tok, id[i], id[i + 1], &rank[i], &merged[i]);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == RANK_NONE) break;
        id[best] = merged[best];
        memmove(id + best + 1, id + best + 2, (n - best - 2) * sizeof *id);
        memmove(rank + best, rank + best + 1, (n - best - 2) * sizeof *rank);
        memmove(merged + best, merged + best + 1, (n - best - 2) * sizeof *merged);
        n--;
        if (best > 0) pair_lookup(tok, id[best - 1], id[best], &rank[best - 1], &merged[best - 1]);
        if (best + 1 < n) pair_lookup(tok, id[best], id[best + 1], &rank[best], &merged[best]);
    }
    for (size_t i = 0; i < n; i++) ids_push(out, id[i]);
}

// Min-heap of (rank << 32 | left position): the lowest rank first, leftmost on ties.
typedef struct bpe_heap {
    uint64_t *v;
    size_t n, cap;
} bpe_heap;

static void heap_push(bpe_heap *h, uint64_t x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = rl_realloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0 && h->v[(i - 1) / 2] > x) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
}

static uint64_t heap_pop(bpe_heap *h) {
    uint64_t top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->v[c + 1] < h->v[c]) c++;
        if (h->v[c] >= x) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = x;
    return top;
}

// The same merges in O(n log n) for long words (whitespace runs, CJK text without spaces).
// Symbols form a linked list over their original positions; a popped heap entry is applied only
// if the pair at that position still has the popped rank (a rank names exactly one pair).
static void bpe_heap_merge(const rl_tokenizer *tok, int32_t *id, size_t n, rl_ids *out) {
    int64_t *prev = rl_malloc(n * sizeof *prev), *next = rl_malloc(n * sizeof *next);
    uint8_t *alive = rl_malloc(n);
    bpe_heap h = {0};
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int64_t)i - 1;
        next[i] = i + 1 < n ? (int64_t)i + 1 : -1;
        alive[i] = 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_pair *p = pair_find(tok, id[i], id[i + 1]);
        if (p) heap_push(&h, ((uint64_t)p->rank << 32) | i);
    }
    while (h.n > 0) {
        uint64_t top = heap_pop(&h);
        uint32_t rank = (uint32_t)(top >> 32);
        size_t pos = (size_t)(top & 0xFFFFFFFFu);
        if (!alive[pos] || next[pos] < 0) continue;
        size_t nx = (size_t)next[pos];
        const tok_pair *p = pair_find(tok, id[pos], id[nx]);
        if (!p || p->rank != rank) continue; // stale entry
        id[pos] = p->merged;
        alive[nx] = 0;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = (int64_t)pos;
        if (prev[pos] >= 0) {
            size_t pv = (size_t)prev[pos];
            const tok_pair *q = pair_find(tok, id[pv], id[pos]);
            if (q) heap_push(&h, ((uint64_t)q->rank << 32) | pv);
        }
        if (next[pos] >= 0) {
            const tok_pair *q = pair_find(tok, id[pos], id[next[pos]]);
            if (q) heap_push(&h, ((uint64_t)q->rank << 32) | pos);
        }
    }
    for (int64_t i = 0; i >= 0; i = next[i]) ids_push(out, id[i]);
    free(h.v);
    free(prev);
    free(next);
    free(alive);
}

void tok_bpe_word(const rl_tokenizer *tok, const uint8_t *w, size_t n, rl_ids *out, int method) {
    if (n == 0) return;
    if (tok->ignore_merges) {
        int32_t whole = words_find(tok, (const char *)w, n);
        if (whole >= 0) {
            ids_push(out, whole);
            return;
        }
    }
    int32_t small[BPE_SMALL];
    int32_t *id = n <= BPE_SMALL ? small : rl_malloc(n * sizeof *id);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) // a byte without a token is dropped (no unk in byte-level BPE)
        if (tok->byte_id[w[i]] >= 0) id[m++] = tok->byte_id[w[i]];
    if (m > 0 && m <= BPE_SMALL && method != 2)
        bpe_scan(tok, id, m, out);
    else if (m > 0)
        bpe_heap_merge(tok, id, m, out);
    if (id != small) free(id);
}

// ---- encode ----------------------------------------------------------------------------------

// Splits one normalised piece with the pre-tokenizer regex and BPEs each pre-token. Text between
// matches (none for the Qwen pattern, which matches everywhere) is a pre-token too.
static int pretokenize(const rl_tokenizer *tok, const char *s, size_t n, pcre2_match_data *md,
                       rl_ids *out, rl_err *err) {
    if (!tok->re) {
        tok_bpe_word(tok, (const uint8_t *)s, n, out, 0);
        return 0;
    }
    const pcre2_code *re = (const pcre2_code *)tok->re;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t off = 0, gap = 0; // gap: start of text not yet emitted
    while (off < n) {
        int rc = tok->re_jit ? pcre2_jit_match(re, (PCRE2_SPTR)s, n, off, 0, md, NULL) : -1;
        uint32_t interp = PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT;
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) // no JIT, or its stack ran out: interpreter
            rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, interp, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return rl_fail(err, RL_EINTERNAL, "encode: pre-tokenizer regex failed at byte %zu: %s",
                           off, (const char *)msg);
        }
        size_t a = ov[0], b = ov[1];
        if (b == a) {
            // An empty match still ends the text before it, as in Hugging Face's Split. (The
            // onig crate skips empty matches right at the previous match's end: no text there.)
            if (a > gap) {
                tok_bpe_word(tok, (const uint8_t *)s + gap, a - gap, out, 0);
                gap = a;
            }
            off = a + 1; // step over one character
            while (off < n && ((unsigned char)s[off] & 0xC0) == 0x80) off++;
            continue;
        }
        if (a > gap) tok_bpe_word(tok, (const uint8_t *)s + gap, a - gap, out, 0);
        tok_bpe_word(tok, (const uint8_t *)s + a, b - a, out, 0);
        off = gap = b;
    }
    if (n > gap) tok_bpe_word(tok, (const uint8_t *)s + gap, n - gap, out, 0);
    return 0;
}

static int all_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

// One piece of raw text between added tokens: NFC, then normalised added tokens, then the regex.
static int encode_piece(const rl_tokenizer *tok, const char *s, size_t n, pcre2_match_data *md,
                        rl_ids *out, rl_err *err) {
    utf8proc_uint8_t *nfc = NULL;
    if (tok->nfc && !all_ascii(s, n)) {
        utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfc,
                                          (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        if (m < 0)
            return rl_fail(err, RL_EINTERNAL, "encode: NFC normalisation failed: %s",
                           utf8proc_errmsg(m));
        s = (const char *)nfc;
        n = (size_t)m;
    }
    int rc = 0;
    size_t i = 0;
    while (rc == 0 && i < n) {
        const tok_added *hit;
        size_t at = i + tok_match_next(tok, &tok->norm_matcher, s + i, n - i, &hit);
        if (at > i) rc = pretokenize(tok, s + i, at - i, md, out, err);
        if (hit) ids_push(out, hit->id);
        i = hit ? at + hit->len : at;
    }
    free(nfc);
    return rc;
}

int tok_bpe_encode(const rl_tokenizer *tok, const char *text, size_t len, rl_ids *out,
                   rl_err *err) {
    size_t bad = rl_utf8_invalid_at(text, len);
    if (bad < len) return rl_fail(err, RL_EINPUT, "encode: invalid UTF-8 at byte %zu", bad);
    pcre2_match_data *md =
        tok->re ? pcre2_match_data_create_from_pattern((const pcre2_code *)tok->re, NULL) : NULL;
    if (tok->re && !md) {
        fprintf(stderr, "rlpipe: out of memory (regex match data)\n");
        exit(1);
    }
    int rc = 0;
    size_t i = 0;
    while (rc == 0 && i < len) {
        const tok_added *hit;
        size_t at = i + tok_match_next(tok, &tok->raw_matcher, text + i, len - i, &hit);
        if (at > i) rc = encode_piece(tok, text + i, at - i, md, out, err);
        if (hit) ids_push(out, hit->id);
        i = hit ? at + hit->len : at;
    }
    pcre2_match_data_free(md);
    return rc;
}

// ---- loading tokenizer.json ------------------------------------------------------------------

#define MAX_TOKEN_ID        (1 << 22) // far above any real vocabulary (~260k); bounds allocations
#define MAX_PATTERN_BYTES   65536     // a Split regex; Qwen2's is 129 bytes
#define MAX_TOKENIZER_BYTES ((size_t)1 << 30) // tokenizer.json; Qwen2's is 7 MB

// The pre-tokenizer pattern of GPT-2's ByteLevel(use_regex=true).
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Unicode White_Space, which is what \s means in Oniguruma (Hugging Face's regex engine).
// PCRE2's UCP \s leaves out U+0085, so patterns get this class spelled out instead.
static const char WHITE_SPACE[] = "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
                                  "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

static void put(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        *cap = 2 * (*len + n + 1);
        *buf = rl_realloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

// Rewrites \s and \S of an Oniguruma pattern for PCRE2. Returns NULL (and sets *bad) for \S
// inside a character class, which this rewrite cannot express.
static char *translate_pattern(const char *p, const char **bad) {
    size_t n = strlen(p), len = 0, cap = n + 64;
    char *out = rl_malloc(cap);
    out[0] = '\0'; // put() terminates what it appends; an empty pattern appends nothing
    const size_t ws = strlen(WHITE_SPACE);
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n && (p[i + 1] == 's' || p[i + 1] == 'S')) {
            int neg = p[++i] == 'S';
            if (neg && in_class) {
                free(out);
                *bad = "\\S inside a character class";
                return NULL;
            }
            if (!in_class) put(&out, &len, &cap, neg ? "[^" : "[", neg ? 2 : 1);
            put(&out, &len, &cap, WHITE_SPACE, ws);
            if (!in_class) put(&out, &len, &cap, "]", 1);
        } else if (p[i] == '\\' && i + 1 < n) { // any other escape passes through untouched
            put(&out, &len, &cap, p + i, 2);
            i++;
        } else {
            if (p[i] == '[' && !in_class)
                in_class = 1;
            else if (p[i] == ']' && in_class)
                in_class = 0;
            put(&out, &len, &cap, p + i, 1);
        }
    }
    return out;
}

static int compile_regex(rl_tokenizer *tok, const char *pattern, int literal, const char *file,
                         rl_err *err) {
    const char *bad = NULL;
    char *pcre = literal ? rl_strdup(pattern) : translate_pattern(pattern, &bad);
    if (!pcre)
        return rl_fail(err, RL_EINPUT, "%s: pre_tokenizer Split pattern: unsupported %s", file,
                       bad);
    int code;
    PCRE2_SIZE at;
    // PCRE2 refuses UCP together with LITERAL (and a literal has no classes for it to affect).
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pcre, PCRE2_ZERO_TERMINATED, opts, &code, &at, NULL);
    free(pcre);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return rl_fail(err, RL_EINPUT, "%s: pre_tokenizer Split pattern does not compile: %s", file,
                       (const char *)msg);
    }
    tok->re = (tok_regex *)re;
    tok->re_jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

// A boolean field that may be absent (def) but must be a boolean when present.
static int get_bool(const json_t *obj, const char *key, int def, int *out, const char *file,
                    const char *where, rl_err *err) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return *out = def, 0;
    if (!json_is_boolean(v))
        return rl_fail(err, RL_EINPUT, "%s: %s.%s must be a boolean, got %s", file, where, key,
                       rl_json_type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int is_empty_string_or_null(const json_t *v) {
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

static int check_normalizer(rl_tokenizer *tok, const json_t *norm, const char *file, rl_err *err) {
    if (!norm || json_is_null(norm)) return 0;
    const char *type = json_string_value(json_object_get(norm, "type"));
    if (type && strcmp(type, "NFC") == 0) return tok->nfc = 1, 0;
    if (type && strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(norm, "normalizers");
        if (!json_is_array(list))
            return rl_fail(err, RL_EINPUT, "%s: normalizer.normalizers must be an array", file);
        for (size_t i = 0; i < json_array_size(list); i++)
            RL_TRY(check_normalizer(tok, json_array_get(list, i), file, err));
        return 0;
    }
    return rl_fail(err, RL_EINPUT, "%s: unsupported normalizer type '%s' (only NFC)", file,
                   type ? type : "(none)");
}

static int check_byte_level(const json_t *bl, int *use_regex, const char *file, rl_err *err) {
    int prefix;
    RL_TRY(get_bool(bl, "add_prefix_space", 1, &prefix, file, "pre_tokenizer ByteLevel", err));
    RL_TRY(get_bool(bl, "use_regex", 1, use_regex, file, "pre_tokenizer ByteLevel", err));
    if (prefix)
        return rl_fail(err, RL_EINPUT,
                       "%s: pre_tokenizer ByteLevel add_prefix_space=true is "
                       "not supported",
                       file);
    return 0;
}

// Accepts ByteLevel(use_regex=true) alone (GPT-2 pattern) or Sequence[Split(pattern, Isolated),
// ByteLevel(use_regex=false)] (Qwen), or Sequence[ByteLevel] / Sequence[] variants of those.
static int load_pre_tokenizer(rl_tokenizer *tok, const json_t *pre, const char *file, rl_err *err) {
    if (!pre || !json_is_object(pre))
        return rl_fail(err, RL_EINPUT, "%s: pre_tokenizer must be an object, got %s", file,
                       rl_json_type_name(pre));
    const char *type = json_string_value(json_object_get(pre, "type"));
    const json_t *split = NULL, *bl = NULL;
    char split_key[64] = "pre_tokenizer"; // where the Split is, for messages
    if (type && strcmp(type, "ByteLevel") == 0) {
        bl = pre;
    } else if (type && strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pre, "pretokenizers");
        if (!json_is_array(list))
            return rl_fail(err, RL_EINPUT, "%s: pre_tokenizer.pretokenizers must be an array",
                           file);
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *p = json_array_get(list, i);
            const char *t = json_string_value(json_object_get(p, "type"));
            if (t && strcmp(t, "Split") == 0 && !split && !bl) {
                split = p;
                snprintf(split_key, sizeof split_key, "pre_tokenizer.pretokenizers[%zu]", i);
            } else if (t && strcmp(t, "ByteLevel") == 0 && !bl)
                bl = p;
            else
                return rl_fail(err, RL_EINPUT,
                               "%s: unsupported pre_tokenizer sequence item %zu "
                               "(type '%s'): want [Split], ByteLevel",
                               file, i, t ? t : "(none)");
        }
    } else {
        return rl_fail(err, RL_EINPUT, "%s: unsupported pre_tokenizer type '%s'", file,
                       type ? type : "(none)");
    }
    if (!bl)
        return rl_fail(err, RL_EINPUT,
                       "%s: pre_tokenizer has no ByteLevel step (only byte-level "
                       "BPE is supported)",
                       file);
    int use_regex;
    RL_TRY(check_byte_level(bl, &use_regex, file, err));
    if (split && use_regex)
        return rl_fail(err, RL_EINPUT,
                       "%s: pre_tokenizer Split followed by ByteLevel with "
                       "use_regex=true is not supported",
                       file);
    if (!split) return use_regex ? compile_regex(tok, GPT2_PATTERN, 0, file, err) : 0;

    const char *behavior = json_string_value(json_object_get(split, "behavior"));
    int invert;
    RL_TRY(get_bool(split, "invert", 0, &invert, file, "pre_tokenizer Split", err));
    if (!behavior || strcmp(behavior, "Isolated") != 0 || invert)
        return rl_fail(err, RL_EINPUT,
                       "%s: pre_tokenizer Split: only behavior \"Isolated\" "
                       "with invert=false is supported",
                       file);
    const json_t *pat = json_object_get(split, "pattern");
    const char *regex = json_string_value(json_object_get(pat, "Regex"));
    const char *literal = json_string_value(json_object_get(pat, "String"));
    if (!regex && !literal)
        return rl_fail(err, RL_EINPUT,
                       "%s: %s.pattern must be {\"Regex\": "
                       "string} or {\"String\": string}",
                       file, split_key);
    // An empty pattern splits nothing meaningful (it matches between every two characters):
    // a broken file, not a tokenizer anyone trained.
    if (!(regex ? regex : literal)[0])
        return rl_fail(err, RL_EINPUT, "%s: %s.pattern.%s is empty", file, split_key,
                       regex ? "Regex" : "String");
    if (strlen(regex ? regex : literal) > MAX_PATTERN_BYTES)
        return rl_fail(err, RL_EINPUT, "%s: %s.pattern.%s is longer than %d bytes", file, split_key,
                       regex ? "Regex" : "String", MAX_PATTERN_BYTES);
    return compile_regex(tok, regex ? regex : literal, regex == NULL, file, err);
}

static int check_decoder(const json_t *dec, const char *file, rl_err *err) {
    if (!dec || json_is_null(dec)) return 0;
    const char *type = json_string_value(json_object_get(dec, "type"));
    if (type && strcmp(type, "ByteLevel") == 0) return 0;
    return rl_fail(err, RL_EINPUT, "%s: unsupported decoder type '%s' (only ByteLevel)", file,
                   type ? type : "(none)");
}

static int check_model_options(rl_tokenizer *tok, const json_t *model, const char *file,
                               rl_err *err) {
    const char *type = json_string_value(json_object_get(model, "type"));
    if (json_object_get(model, "type") && (!type || strcmp(type, "BPE") != 0))
        return rl_fail(err, RL_EINPUT, "%s: model.type must be \"BPE\", got '%s'", file,
                       type ? type : rl_json_type_name(json_object_get(model, "type")));
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) &&
        !(json_is_number(dropout) && json_number_value(dropout) == 0.0))
        return rl_fail(err, RL_EINPUT, "%s: model.dropout is not supported", file);
    if (!is_empty_string_or_null(json_object_get(model, "continuing_subword_prefix")) ||
        !is_empty_string_or_null(json_object_get(model, "end_of_word_suffix")))
        return rl_fail(err, RL_EINPUT,
                       "%s: model.continuing_subword_prefix / "
                       "end_of_word_suffix are not supported",
                       file);
    int byte_fallback;
    RL_TRY(get_bool(model, "byte_fallback", 0, &byte_fallback, file, "model", err));
    if (byte_fallback)
        return rl_fail(err, RL_EINPUT, "%s: model.byte_fallback=true is not supported", file);
    return get_bool(model, "ignore_merges", 0, &tok->ignore_merges, file, "model", err);
}

static int read_id(const json_t *v, int32_t *id, const char *file, const char *what, rl_err *err) {
    if (!json_is_integer(v))
        return rl_fail(err, RL_EINPUT, "%s: %s: id must be an integer, got %s", file, what,
                       rl_json_type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < 0 || x >= MAX_TOKEN_ID)
        return rl_fail(err, RL_EINPUT, "%s: %s: id %lld is outside [0, %d)", file, what,
                       (long long)x, MAX_TOKEN_ID);
    *id = (int32_t)x;
    return 0;
}

static int load_added_tokens(rl_tokenizer *tok, const json_t *list, const char *file, rl_err *err) {
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list))
        return rl_fail(err, RL_EINPUT, "%s: added_tokens must be an array, got %s", file,
                       rl_json_type_name(list));
    size_t n = json_array_size(list);
    tok->added = rl_calloc(n ? n : 1, sizeof *tok->added);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(list, i);
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        if (!json_is_object(t))
            return rl_fail(err, RL_EINPUT, "%s: %s must be an object, got %s", file, where,
                           rl_json_type_name(t));
        const json_t *content = json_object_get(t, "content");
        if (!json_is_string(content) || json_string_length(content) == 0)
            return rl_fail(err, RL_EINPUT, "%s: %s.content must be a non-empty string", file,
                           where);
        tok_added *a = &tok->added[tok->n_added];
        RL_TRY(read_id(json_object_get(t, "id"), &a->id, file, where, err));
        RL_TRY(get_bool(t, "special", 0, &a->special, file, where, err));
        RL_TRY(get_bool(t, "normalized", !a->special, &a->normalized, file, where, err));
        int lstrip, rstrip, single_word;
        RL_TRY(get_bool(t, "lstrip", 0, &lstrip, file, where, err));
        RL_TRY(get_bool(t, "rstrip", 0, &rstrip, file, where, err));
        RL_TRY(get_bool(t, "single_word", 0, &single_word, file, where, err));
        if (lstrip || rstrip || single_word)
            return rl_fail(err, RL_EINPUT,
                           "%s: %s (%s): lstrip/rstrip/single_word are not "
                           "supported",
                           file, where, json_string_value(content));
        a->len = json_string_length(content);
        a->content = rl_malloc(a->len + 1);
        memcpy(a->content, json_string_value(content), a->len + 1);
        tok->n_added++;
    }
    return 0;
}

// Fills vocab_size, arena/off/flag from model.vocab and the added tokens.
static int build_id_table(rl_tokenizer *tok, const json_t *vocab, const int16_t cp_to_byte[324],
                          const char *file, rl_err *err) {
    int32_t max_id = -1;
    size_t bytes = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        int32_t id;
        char what[96];
        snprintf(what, sizeof what, "model.vocab[\"%.40s\"]", key);
        RL_TRY(read_id(val, &id, file, what, err));
        if (id > max_id) max_id = id;
        bytes += strlen(key);
    }
    for (int i = 0; i < tok->n_added; i++) {
        if (tok->added[i].id > max_id) max_id = tok->added[i].id;
        bytes += tok->added[i].len;
    }
    tok->vocab_size = max_id + 1;
    size_t *len = rl_calloc((size_t)tok->vocab_size, sizeof *len);
    char **src = rl_calloc((size_t)tok->vocab_size, sizeof *src);
    tok->flag = rl_calloc((size_t)tok->vocab_size, 1);
    json_object_foreach((json_t *)vocab, key, val) {
        int32_t id = (int32_t)json_integer_value(val);
        if (tok->flag[id]) {
            free(len);
            free(src);
            return rl_fail(err, RL_EINPUT,
                           "%s: model.vocab: id %d is used by two tokens ('%s' "
                           "and another)",
                           file, (int)id, key);
        }
        tok->flag[id] = TOK_ID_USED;
        src[id] = (char *)key;
        len[id] = strlen(key);
    }
    // An added token wins over a vocab entry with the same id (Hugging Face looks it up first).
    for (int i = 0; i < tok->n_added; i++) {
        const tok_added *a = &tok->added[i];
        tok->flag[a->id] = TOK_ID_USED | TOK_ID_ADDED | (a->special ? TOK_ID_SPECIAL : 0);
        src[a->id] = a->content;
        len[a->id] = a->len;
    }
    tok->arena = rl_malloc(bytes + 1);
    tok->off = rl_malloc(((size_t)tok->vocab_size + 1) * sizeof *tok->off);
    size_t k = 0;
    for (int32_t id = 0; id < tok->vocab_size; id++) {
        tok->off[id] = k;
        if (src[id]) k += token_to_bytes(src[id], len[id], cp_to_byte, tok->arena + k);
    }
    tok->off[tok->vocab_size] = k;
    free(len);
    free(src);
    return 0;
}

// Splits a merge entry ("a b" or ["a", "b"]) into two freshly allocated strings.
static int merge_parts(const json_t *m, size_t i, char **a, char **b, const char *file,
                       rl_err *err) {
    *a = *b = NULL;
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        const char *sp = strchr(s, ' ');
        if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
            return rl_fail(err, RL_EINPUT, "%s: model.merges[%zu] \"%.60s\" is not \"A B\"", file,
                           i, s);
        *a = strndup(s, (size_t)(sp - s));
        *b = rl_strdup(sp + 1);
        if (!*a) return rl_fail(err, RL_EINTERNAL, "out of memory");
        return 0;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = rl_strdup(json_string_value(json_array_get(m, 0)));
        *b = rl_strdup(json_string_value(json_array_get(m, 1)));
        return 0;
    }
    return rl_fail(err, RL_EINPUT,
                   "%s: model.merges[%zu] must be \"A B\" or [\"A\", \"B\"], got "
                   "%s",
                   file, i, rl_json_type_name(m));
}

static int merge_token_id(const json_t *vocab, const char *s, int32_t *id, size_t i,
                          const char *file, rl_err *err) {
    const json_t *v = json_object_get(vocab, s);
    if (!v)
        return rl_fail(err, RL_EINPUT,
                       "%s: model.merges[%zu]: token \"%.60s\" is not in "
                       "model.vocab",
                       file, i, s);
    *id = (int32_t)json_integer_value(v);
    return 0;
}

static int load_merges(rl_tokenizer *tok, const json_t *model, const json_t *vocab,
                       const char *file, rl_err *err) {
    const json_t *merges = json_object_get(model, "merges");
    if (!merges || json_is_null(merges))
        merges = NULL;
    else if (!json_is_array(merges))
        return rl_fail(err, RL_EINPUT, "%s: model.merges must be an array, got %s", file,
                       rl_json_type_name(merges));
    size_t n = merges ? json_array_size(merges) : 0;
    if (n >= UINT32_MAX / 4)
        return rl_fail(err, RL_EINPUT, "%s: model.merges has too many entries", file);
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    tok->pair_mask = cap - 1;
    tok->pairs = rl_malloc(cap * sizeof *tok->pairs);
    for (size_t i = 0; i < cap; i++) tok->pairs[i].key = TOK_PAIR_EMPTY;
    size_t buf_cap = 256;
    char *both = rl_malloc(buf_cap);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *a, *b;
        if (merge_parts(json_array_get(merges, i), i, &a, &b, file, err) != 0) {
            rc = -1;
            break;
        }
        size_t la = strlen(a), lb = strlen(b);
        if (la + lb + 1 > buf_cap) both = rl_realloc(both, buf_cap = la + lb + 1);
        memcpy(both, a, la);
        memcpy(both + la, b, lb + 1);
        int32_t ia = -1, ib = -1, iab = -1;
        if (merge_token_id(vocab, a, &ia, i, file, err) != 0 ||
            merge_token_id(vocab, b, &ib, i, file, err) != 0 ||
            merge_token_id(vocab, both, &iab, i, file, err) != 0)
            rc = -1;
        else
            pair_insert(tok, ia, ib, (uint32_t)i, iab);
        free(a);
        free(b);
    }
    free(both);
    return rc;
}

static int load_json(rl_tokenizer *tok, const json_t *root, const char *file, rl_err *err) {
    if (!json_is_object(root))
        return rl_fail(err, RL_EINPUT, "%s: top level must be an object, got %s", file,
                       rl_json_type_name(root));
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return rl_fail(err, RL_EINPUT, "%s: \"model\" must be an object, got %s", file,
                       rl_json_type_name(model));
    RL_TRY(check_model_options(tok, model, file, err));
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return rl_fail(err, RL_EINPUT, "%s: model.vocab must be a non-empty object, got %s", file,
                       json_is_object(vocab) ? "an empty object" : rl_json_type_name(vocab));
    RL_TRY(check_normalizer(tok, json_object_get(root, "normalizer"), file, err));
    RL_TRY(load_pre_tokenizer(tok, json_object_get(root, "pre_tokenizer"), file, err));
    RL_TRY(check_decoder(json_object_get(root, "decoder"), file, err));
    RL_TRY(load_added_tokens(tok, json_object_get(root, "added_tokens"), file, err));

    uint32_t byte_to_cp[256];
    int16_t cp_to_byte[324];
    byte_unicode_tables(byte_to_cp, cp_to_byte);
    RL_TRY(build_id_table(tok, vocab, cp_to_byte, file, err));
    for (int b = 0; b < 256; b++) {
        char s[4];
        uint32_t cp = byte_to_cp[b]; // < 0x800: one or two UTF-8 bytes
        if (cp < 0x80)
            s[0] = (char)cp, s[1] = 0;
        else
            s[0] = (char)(0xC0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3F)), s[2] = 0;
        const json_t *v = json_object_get(vocab, s);
        tok->byte_id[b] = v ? (int32_t)json_integer_value(v) : -1;
    }
    RL_TRY(load_merges(tok, model, vocab, file, err));
    if (tok->ignore_merges) words_build(tok);
    tok_build_matchers(tok);
    tok->eos_id = rl_tokenizer_special_id(tok, "<|endoftext|>");
    if (tok->eos_id < 0) tok->eos_id = rl_tokenizer_special_id(tok, "<｜end▁of▁sentence｜>");
    return 0;
}

int tok_bpe_load(rl_tokenizer **out, const char *path, rl_err *err) {
    char *file = rl_is_dir(path) ? rl_path_join(path, "tokenizer.json") : rl_strdup(path);
    char *data = NULL;
    size_t len = 0;
    if (rl_read_file(file, MAX_TOKENIZER_BYTES, &data, &len, err) != 0) {
        rl_err_prefix(err, "tokenizer: ");
        free(file);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, len, 0, &jerr);
    free(data);
    if (!root) {
        rl_fail(err, RL_EINPUT, "tokenizer: %s: invalid JSON at line %d column %d: %s", file,
                jerr.line, jerr.column, jerr.text);
        free(file);
        return -1;
    }
    rl_tokenizer *tok = tok_new(RL_TOKENIZER_BPE, file);
    int rc = load_json(tok, root, file, err);
    json_decref(root);
    free(file);
    if (rc != 0) {
        rl_err_prefix(err, "tokenizer: ");
        rl_tokenizer_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

void tok_bpe_free(rl_tokenizer *tok) {
    pcre2_code_free((pcre2_code *)tok->re);
    free(tok->pairs);
    free(tok->words.slots);
}
