/*
 * tokenizer: text <-> token ids for the policy, and the chat templates that turn a (system, user)
 * prompt into the text the model continues.
 *
 * Two kinds of tokenizer behind one opaque type:
 *   "byte"  the tiny-model tokenizer: ids 0..255 are the bytes themselves, 256..265 are the special
 *           tokens the chat templates need (table below), 266..271 are unused padding ids, so
 *           vocab_size is 272. Padding ids are never produced by encode and decode to "".
 *   a path  a Hugging Face tokenizer.json (or a directory holding one) with a byte-level BPE model:
 *           the Qwen2 / Qwen2.5 / Qwen3 / DeepSeek-R1-Distill-Qwen tokenizers, with exact Hugging
 *           Face parity: added tokens split out of the raw text first (leftmost, longest literal
 *           match), NFC on the remaining pieces, the pre-tokenizer regex, GPT-2 byte-to-unicode
 *           mapping, merge-rank BPE.
 *
 * Byte tokenizer special tokens (recognised anywhere in the text, leftmost-longest):
 *   256 <|endoftext|>  (EOS)      259 <think>        262 <｜begin▁of▁sentence｜>  264 <｜User｜>
 *   257 <|im_start|>              260 </think>       263 <｜end▁of▁sentence｜>    265 <｜Assistant｜>
 *   258 <|im_end|>                261 <|pad|>        266..271 unused (decode to "")
 *
 * Encoding never adds BOS/EOS (Hugging Face add_special_tokens=False): chat templates write the
 * special tokens they need as text, and encode recognises them. The input of a BPE tokenizer
 * must be valid UTF-8 (RL_EINPUT otherwise); the byte tokenizer takes any bytes. Decoding
 * concatenates each token's bytes; the result may hold invalid UTF-8 (a token can end inside a
 * multi-byte character): rl_utf8_lossy() replaces it with U+FFFD as Hugging Face does.
 * Ids outside [0, vocab_size) are an RL_EINPUT error in decode: the sampler must mask the padded
 * rows of a model whose config.vocab_size exceeds rl_tokenizer_vocab_size().
 *
 * Thread safety: a loaded tokenizer is immutable; encode/decode may run concurrently on it (all
 * scratch memory is per call).
 *
 * Owns: each rl_tokenizer owns its tables (vocab bytes, merges hash, compiled regex, added tokens).
 */
#ifndef RL_TOKENIZER_H
#define RL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/rl_error.h"

typedef struct rl_tokenizer rl_tokenizer;

typedef enum { RL_TOKENIZER_BYTE = 0, RL_TOKENIZER_BPE = 1 } rl_tokenizer_kind;

// Byte tokenizer ids (see the table above).
enum {
    RL_BYTE_TOK_EOS = 256,       // <|endoftext|>
    RL_BYTE_TOK_IM_START = 257,  // <|im_start|>
    RL_BYTE_TOK_IM_END = 258,    // <|im_end|>
    RL_BYTE_TOK_THINK = 259,     // <think>
    RL_BYTE_TOK_END_THINK = 260, // </think>
    RL_BYTE_TOK_PAD = 261,       // <|pad|>
    RL_BYTE_TOK_BOS_R1 = 262,    // <｜begin▁of▁sentence｜>
    RL_BYTE_TOK_EOS_R1 = 263,    // <｜end▁of▁sentence｜>
    RL_BYTE_TOK_USER_R1 = 264,   // <｜User｜>
    RL_BYTE_TOK_ASSIST_R1 = 265, // <｜Assistant｜>
    RL_BYTE_TOK_VOCAB = 272,     // vocab size; 266..271 are unused padding ids
};

// A growable id buffer, so hot paths can encode without allocating each time.
typedef struct rl_ids {
    int32_t *data; // [cap], the first len used
    size_t len, cap;
} rl_ids;

void rl_ids_free(rl_ids *ids);

// ---- loading ---------------------------------------------------------------------------------

// kind_or_path: "byte", a tokenizer.json file, or a directory containing tokenizer.json.
// Malformed files fail with RL_EINPUT naming the file and what is wrong.
int rl_tokenizer_load(rl_tokenizer **out, const char *kind_or_path, rl_err *err);
void rl_tokenizer_free(rl_tokenizer *tok);

rl_tokenizer_kind rl_tokenizer_kind_of(const rl_tokenizer *tok);
// 1 + the largest token id (byte: 272; Qwen2.5: 151665; the shared Qwen3 file: 151669).
int rl_tokenizer_vocab_size(const rl_tokenizer *tok);
// End of text: <|endoftext|> if present, else <｜end▁of▁sentence｜>, else -1. (151643 for
// Qwen2.5 and R1-Distill, 256 for the byte tokenizer.)
int32_t rl_tokenizer_eos_id(const rl_tokenizer *tok);
// The id of the added/special token whose literal content is `content`, or -1.
int32_t rl_tokenizer_special_id(const rl_tokenizer *tok, const char *content);
// 1 if id is an added token (special or not: <|im_end|>, <think>, ...), else 0.
int rl_tokenizer_is_added(const rl_tokenizer *tok, int32_t id);
// The raw bytes one token decodes to (not NUL-terminated; *len set), for incremental stop-string
// checks. "" for unused ids inside the vocab, NULL for ids outside [0, vocab_size).
const char *rl_tokenizer_token_bytes(const rl_tokenizer *tok, int32_t id, size_t *len);

// ---- encode / decode -------------------------------------------------------------------------

// Appends the ids of text[0..len) to *out (which the caller owns and may reuse).
int rl_tokenizer_encode_append(const rl_tokenizer *tok, const char *text, size_t len, rl_ids *out,
                               rl_err *err);
// Encodes into a fresh array (*ids is malloc'd, free() it; NULL with *n_ids 0 for empty text).
int rl_tokenizer_encode(const rl_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                        size_t *n_ids, rl_err *err);
// Concatenates the tokens' bytes into a fresh NUL-terminated buffer (*text, free() it; *len
// excludes the NUL). The bytes may be invalid UTF-8; see rl_utf8_lossy.
int rl_tokenizer_decode(const rl_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                        size_t *len, rl_err *err);

// ---- UTF-8 helpers ---------------------------------------------------------------------------

// Byte offset of the first invalid UTF-8 sequence in s[0..len), or len if it is all valid.
size_t rl_utf8_invalid_at(const char *s, size_t len);
// A copy of s with every maximal invalid subsequence replaced by U+FFFD (like Rust's
// String::from_utf8_lossy, which Hugging Face decode uses). NUL-terminated, malloc'd.
char *rl_utf8_lossy(const char *s, size_t len, size_t *out_len);
// The length of the longest prefix of s that does not end inside a possibly-incomplete
// multi-byte character, for streaming decode: hold back s[result..len) until more bytes arrive.
size_t rl_utf8_complete_len(const char *s, size_t len);

// ---- chat templates --------------------------------------------------------------------------

typedef enum {
    RL_CHAT_INVALID = -1,
    // No template: [system "\n"] user, as-is. For tiny models, which write "<think>\n" themselves.
    RL_CHAT_PLAIN = 0,
    // Qwen2.5-Instruct: <|im_start|>system\nSYSTEM<|im_end|>\n<|im_start|>user\nUSER<|im_end|>\n
    // <|im_start|>assistant\n
    RL_CHAT_CHATML = 1,
    // DeepSeek-R1-Distill: <｜begin▁of▁sentence｜>SYSTEM<｜User｜>USER<｜Assistant｜><think>\n
    RL_CHAT_R1 = 2,
} rl_chat_template;

#define RL_CHAT_MAX_STOPS 4

// "plain", "chatml" (alias "qwen"), "r1" (alias "deepseek-r1"); RL_CHAT_INVALID otherwise.
rl_chat_template rl_chat_template_from_name(const char *name);
const char *rl_chat_template_name(rl_chat_template tmpl);

// Renders one user turn plus the generation prompt into a malloc'd, NUL-terminated string.
// system NULL: chatml uses Qwen's default system prompt, r1 and plain use none; "" is an empty
// system turn. The text is rendered even when the tokenizer lacks the template's special tokens
// (see rl_chat_template_check).
int rl_chat_render(rl_chat_template tmpl, const rl_tokenizer *tok, const char *system,
                   const char *user, char **out, rl_err *err);
// One message of a conversation: role "system" (or "developer"), "user" or "assistant".
typedef struct rl_chat_msg {
    const char *role;
    const char *content;
} rl_chat_msg;

// Renders a whole conversation plus the generation prompt (malloc'd, NUL-terminated), the way
// the model's Hugging Face chat template does: chatml writes one <|im_start|>ROLE ... <|im_end|>
// turn per message (Qwen's default system turn first when the conversation has none); r1 puts
// the system texts after BOS and each assistant turn's answer (the text after </think>, when it
// has one) followed by <｜end▁of▁sentence｜>; plain joins the contents with "\n". A single
// system + user pair renders exactly as rl_chat_render. RL_EINPUT on an unknown role.
int rl_chat_render_messages(rl_chat_template tmpl, const rl_tokenizer *tok, const rl_chat_msg *msgs,
                            int n_msgs, char **out, rl_err *err);
// render + encode in one call.
int rl_chat_encode(rl_chat_template tmpl, const rl_tokenizer *tok, const char *system,
                   const char *user, rl_ids *out, rl_err *err);
// 0 if every special token the template writes is a single token of tok; otherwise RL_EINPUT
// naming the first missing one (the rendered text would then encode it as ordinary text, e.g.
// "r1" with a Qwen2.5/Qwen3 tokenizer).
int rl_chat_template_check(rl_chat_template tmpl, const rl_tokenizer *tok, rl_err *err);
// The ids that end generation for this template and tokenizer, primary first (chatml:
// <|im_end|>, <|endoftext|>; r1: <｜end▁of▁sentence｜>, <|endoftext|>; plain: <|endoftext|>,
// <｜end▁of▁sentence｜>, <|im_end|>), those the tokenizer has, without duplicates. Returns how
// many were written to out.
int rl_chat_stop_ids(rl_chat_template tmpl, const rl_tokenizer *tok,
                     int32_t out[RL_CHAT_MAX_STOPS]);

#endif
