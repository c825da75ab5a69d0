// tok_byte: the byte-level tokenizer of the tiny models: one token per byte plus the special
// tokens of the chat templates. See the id table in tokenizer.h.
#include "policy/tok_internal.h"

#include <stdlib.h>
#include <string.h>

// Special tokens, ids 256.. in this order; "special" marks the ones Hugging Face would call
// special (skipped by skip_special_tokens), the rest are plain added tokens like <think>.
static const struct {
    const char *content;
    int special;
} BYTE_SPECIALS[] = {
    {"<|endoftext|>", 1},           // 256
    {"<|im_start|>", 1},            // 257
    {"<|im_end|>", 1},              // 258
    {"<think>", 0},                 // 259
    {"</think>", 0},                // 260
    {"<|pad|>", 1},                 // 261
    {"<｜begin▁of▁sentence｜>", 1}, // 262
    {"<｜end▁of▁sentence｜>", 1},   // 263
    {"<｜User｜>", 0},              // 264
    {"<｜Assistant｜>", 0},         // 265
};

enum { N_BYTE_SPECIALS = (int)(sizeof BYTE_SPECIALS / sizeof BYTE_SPECIALS[0]) };

int tok_byte_load(rl_tokenizer **out, rl_err *err) {
    _Static_assert(256 + N_BYTE_SPECIALS <= RL_BYTE_TOK_VOCAB, "byte vocab too small");
    rl_tokenizer *tok = tok_new(RL_TOKENIZER_BYTE, "byte");
    tok->vocab_size = RL_BYTE_TOK_VOCAB;
    tok->n_added = N_BYTE_SPECIALS;
    tok->added = rl_calloc(N_BYTE_SPECIALS, sizeof *tok->added);
    size_t bytes = 256;
    for (int i = 0; i < N_BYTE_SPECIALS; i++) {
        tok_added *a = &tok->added[i];
        a->content = rl_strdup(BYTE_SPECIALS[i].content);
        a->len = strlen(a->content);
        a->id = 256 + i;
        a->special = BYTE_SPECIALS[i].special;
        bytes += a->len;
    }
    tok->arena = rl_malloc(bytes);
    tok->off = rl_calloc((size_t)tok->vocab_size + 1, sizeof *tok->off);
    tok->flag = rl_calloc((size_t)tok->vocab_size, 1);
    size_t k = 0;
    for (int b = 0; b < 256; b++) {
        tok->off[b] = k;
        tok->arena[k++] = (char)b;
        tok->flag[b] = TOK_ID_USED;
        tok->byte_id[b] = b;
    }
    for (int i = 0; i < N_BYTE_SPECIALS; i++) {
        const tok_added *a = &tok->added[i];
        tok->off[a->id] = k;
        memcpy(tok->arena + k, a->content, a->len);
        k += a->len;
        tok->flag[a->id] = TOK_ID_USED | TOK_ID_ADDED | (a->special ? TOK_ID_SPECIAL : 0);
    }
    for (int id = 256 + N_BYTE_SPECIALS; id <= tok->vocab_size; id++) tok->off[id] = k;
    tok_build_matchers(tok);
    tok->eos_id = RL_BYTE_TOK_EOS;
    *out = tok;
    (void)err;
    return 0;
}

int tok_byte_encode(const rl_tokenizer *tok, const char *text, size_t len, rl_ids *out) {
    size_t i = 0;
    while (i < len) {
        const tok_added *hit;
        size_t at = i + tok_match_next(tok, &tok->raw_matcher, text + i, len - i, &hit);
        for (; i < at; i++) ids_push(out, (unsigned char)text[i]);
        if (hit) {
            ids_push(out, hit->id);
            i += hit->len;
        }
    }
    return 0;
}
