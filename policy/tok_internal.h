/*
 * tok_internal: the private layout of rl_tokenizer, shared by tokenizer.c (common parts: added
 * tokens, decode, UTF-8), tok_byte.c (the byte tokenizer), tok_bpe.c (tokenizer.json + BPE) and
 * chat.c. Not for use outside policy/ (tests may use the BPE word hook below).
 *
 * Owns: nothing beyond what struct rl_tokenizer documents.
 */
#ifndef RL_TOK_INTERNAL_H
#define RL_TOK_INTERNAL_H

#include "policy/tokenizer.h"

#include <stdint.h>

typedef struct pcre2_real_code_8 tok_regex; // pcre2_code (8-bit), kept opaque here

// An added token: a literal that is split out of the text before anything else.
typedef struct tok_added {
    char *content; // literal bytes, NUL-terminated
    size_t len;
    int32_t id;
    int special;    // Hugging Face "special": true
    int normalized; // matched in the NFC-normalised text instead of the raw text
} tok_added;

// Leftmost-longest literal matching over a set of added tokens: candidates bucketed by first
// byte, longest first within a bucket.
typedef struct tok_matcher {
    int32_t *order;     // [n] indices into tok->added, sorted by (first byte, length desc)
    int32_t start[257]; // bucket of first byte b is order[start[b] .. start[b+1])
    int n;
    int single_first; // -1, or the only first byte in use (then memchr finds candidates)
} tok_matcher;

// One merge rule, in an open-addressing hash table keyed by the pair of ids.
typedef struct tok_pair {
    uint64_t key; // (left id << 32) | right id; TOK_PAIR_EMPTY for a free slot
    uint32_t rank;
    int32_t merged; // id of the merged token
} tok_pair;

#define TOK_PAIR_EMPTY UINT64_MAX

// A byte-string -> id hash map (vocab lookup when ignore_merges is set).
typedef struct tok_strmap {
    int32_t *slots; // [mask+1] ids, -1 free; keys are the ids' bytes
    size_t mask;
} tok_strmap;

struct rl_tokenizer {
    rl_tokenizer_kind kind;
    char *source; // "byte" or the tokenizer.json path, for messages
    int32_t vocab_size;

    // Every id's decoded bytes: arena[off[id] .. off[id+1]).
    char *arena;   // [off[vocab_size]]
    size_t *off;   // [vocab_size + 1]
    uint8_t *flag; // [vocab_size] TOK_ID_* bits

    tok_added *added; // [n_added]
    int n_added;
    tok_matcher raw_matcher;  // added tokens with normalized = false
    tok_matcher norm_matcher; // added tokens with normalized = true (none in Qwen files)
    int32_t eos_id;

    // BPE only.
    int nfc;              // normalizer is NFC
    tok_regex *re;        // compiled pre-tokenizer split pattern, NULL: whole piece is one word
    int re_jit;           // re has JIT code
    int32_t byte_id[256]; // the token of each single byte (-1: not in the vocab, byte dropped)
    tok_pair *pairs;      // [pair_mask + 1]
    size_t pair_mask;
    int ignore_merges; // look a whole word up in the vocab before merging
    tok_strmap words;  // bytes -> id for ignore_merges
};

enum { TOK_ID_USED = 1, TOK_ID_ADDED = 2, TOK_ID_SPECIAL = 4 };

// ---- tokenizer.c: shared by both kinds --------------------------------------------------------
rl_tokenizer *tok_new(rl_tokenizer_kind kind, const char *source);
// Builds raw_matcher / norm_matcher from tok->added.
void tok_build_matchers(rl_tokenizer *tok);
// Finds the leftmost-longest match in s[0..n); returns its start (n if none) and the token.
size_t tok_match_next(const rl_tokenizer *tok, const tok_matcher *m, const char *s, size_t n,
                      const tok_added **hit);
void ids_push(rl_ids *ids, int32_t id);

// ---- tok_byte.c ------------------------------------------------------------------------------
int tok_byte_load(rl_tokenizer **out, rl_err *err);
int tok_byte_encode(const rl_tokenizer *tok, const char *text, size_t len, rl_ids *out);

// ---- tok_bpe.c -------------------------------------------------------------------------------
int tok_bpe_load(rl_tokenizer **out, const char *path, rl_err *err);
int tok_bpe_encode(const rl_tokenizer *tok, const char *text, size_t len, rl_ids *out, rl_err *err);
void tok_bpe_free(rl_tokenizer *tok);
// BPE of one pre-token (its raw bytes), appended to out. method: 0 or 1 automatic (the
// quadratic scan up to 64 symbols, else the heap), 2 always the heap (tests compare the two).
void tok_bpe_word(const rl_tokenizer *tok, const uint8_t *w, size_t n, rl_ids *out, int method);

#endif
