// chat: the chat templates (plain, chatml, r1) and their stop tokens. See tokenizer.h.
#include "policy/tok_internal.h"

#include <stdlib.h>
#include <string.h>

#define QWEN_DEFAULT_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

#define R1_BOS       "<｜begin▁of▁sentence｜>"
#define R1_EOS       "<｜end▁of▁sentence｜>"
#define R1_USER      "<｜User｜>"
#define R1_ASSISTANT "<｜Assistant｜>"

// The special tokens each template writes (checked by rl_chat_template_check).
static const char *const CHATML_TOKENS[] = {"<|im_start|>", "<|im_end|>", NULL};
static const char *const R1_TOKENS[] = {R1_BOS, R1_USER, R1_ASSISTANT, "<think>", NULL};
static const char *const NO_TOKENS[] = {NULL};

rl_chat_template rl_chat_template_from_name(const char *name) {
    if (!name) return RL_CHAT_INVALID;
    if (strcmp(name, "plain") == 0 || strcmp(name, "none") == 0) return RL_CHAT_PLAIN;
    if (strcmp(name, "chatml") == 0 || strcmp(name, "qwen") == 0) return RL_CHAT_CHATML;
    if (strcmp(name, "r1") == 0 || strcmp(name, "deepseek-r1") == 0) return RL_CHAT_R1;
    return RL_CHAT_INVALID;
}

const char *rl_chat_template_name(rl_chat_template tmpl) {
    switch (tmpl) {
    case RL_CHAT_PLAIN:
        return "plain";
    case RL_CHAT_CHATML:
        return "chatml";
    case RL_CHAT_R1:
        return "r1";
    default:
        return "invalid";
    }
}

// Concatenates the NULL-terminated list of parts into one malloc'd string.
static char *join(const char *const *parts) {
    size_t n = 0;
    for (const char *const *p = parts; *p; p++) n += strlen(*p);
    char *out = rl_malloc(n + 1), *q = out;
    for (const char *const *p = parts; *p; p++) {
        size_t k = strlen(*p);
        memcpy(q, *p, k);
        q += k;
    }
    *q = '\0';
    return out;
}

int rl_chat_render(rl_chat_template tmpl, const rl_tokenizer *tok, const char *system,
                   const char *user, char **out, rl_err *err) {
    *out = NULL;
    if (!user) user = "";
    (void)tok; // every template is plain text; the tokenizer decides what is a special token
    switch (tmpl) {
    case RL_CHAT_PLAIN: {
        // What a tiny model trained on raw text needs: the prompt itself. The model writes
        // "<think>\n" and the rest; a system text, if any, goes on its own line before.
        const char *parts[] = {system && system[0] ? system : "", system && system[0] ? "\n" : "",
                               user, NULL};
        *out = join(parts);
        return 0;
    }
    case RL_CHAT_CHATML: {
        const char *parts[] = {"<|im_start|>system\n",
                               system ? system : QWEN_DEFAULT_SYSTEM,
                               "<|im_end|>\n<|im_start|>user\n",
                               user,
                               "<|im_end|>\n<|im_start|>assistant\n",
                               NULL};
        *out = join(parts);
        return 0;
    }
    case RL_CHAT_R1: {
        const char *parts[] = {R1_BOS, system ? system : "",     R1_USER,
                               user,   R1_ASSISTANT "<think>\n", NULL};
        *out = join(parts);
        return 0;
    }
    default:
        return rl_fail(err, RL_EINPUT, "chat template: unknown template %d", (int)tmpl);
    }
}

// A growable string for rendering conversations.
typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf;

static void sb_add(strbuf *b, const char *t) {
    size_t k = strlen(t);
    if (b->len + k + 1 > b->cap) {
        b->cap = (b->len + k + 1) * 2;
        b->s = rl_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, t, k + 1);
    b->len += k;
}

static int role_of(const char *role) {
    if (!role) return -1;
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) return 0;
    if (strcmp(role, "user") == 0) return 1;
    if (strcmp(role, "assistant") == 0) return 2;
    return -1;
}

int rl_chat_render_messages(rl_chat_template tmpl, const rl_tokenizer *tok, const rl_chat_msg *msgs,
                            int n_msgs, char **out, rl_err *err) {
    *out = NULL;
    (void)tok;
    for (int i = 0; i < n_msgs; i++)
        if (role_of(msgs[i].role) < 0)
            return rl_fail(err, RL_EINPUT, "message %d: unknown role '%s'", i,
                           msgs[i].role ? msgs[i].role : "(none)");
    if (tmpl != RL_CHAT_PLAIN && tmpl != RL_CHAT_CHATML && tmpl != RL_CHAT_R1)
        return rl_fail(err, RL_EINPUT, "chat template: unknown template %d", (int)tmpl);
    strbuf b = {0};
    sb_add(&b, "");
    if (tmpl == RL_CHAT_PLAIN) {
        for (int i = 0; i < n_msgs; i++) {
            if (i > 0) sb_add(&b, "\n");
            sb_add(&b, msgs[i].content ? msgs[i].content : "");
        }
    } else if (tmpl == RL_CHAT_CHATML) {
        if (n_msgs == 0 || role_of(msgs[0].role) != 0)
            sb_add(&b, "<|im_start|>system\n" QWEN_DEFAULT_SYSTEM "<|im_end|>\n");
        static const char *const NAMES[3] = {"system", "user", "assistant"};
        for (int i = 0; i < n_msgs; i++) {
            sb_add(&b, "<|im_start|>");
            sb_add(&b, NAMES[role_of(msgs[i].role)]);
            sb_add(&b, "\n");
            sb_add(&b, msgs[i].content ? msgs[i].content : "");
            sb_add(&b, "<|im_end|>\n");
        }
        sb_add(&b, "<|im_start|>assistant\n");
    } else {
        sb_add(&b, R1_BOS);
        for (int i = 0; i < n_msgs; i++)
            if (role_of(msgs[i].role) == 0) sb_add(&b, msgs[i].content ? msgs[i].content : "");
        for (int i = 0; i < n_msgs; i++) {
            const char *c = msgs[i].content ? msgs[i].content : "";
            int r = role_of(msgs[i].role);
            if (r == 1) {
                sb_add(&b, R1_USER);
                sb_add(&b, c);
            } else if (r == 2) {
                const char *end_think = strstr(c, "</think>");
                sb_add(&b, R1_ASSISTANT);
                sb_add(&b, end_think ? end_think + strlen("</think>") : c);
                sb_add(&b, R1_EOS);
            }
        }
        sb_add(&b, R1_ASSISTANT "<think>\n");
    }
    *out = b.s;
    return 0;
}

int rl_chat_encode(rl_chat_template tmpl, const rl_tokenizer *tok, const char *system,
                   const char *user, rl_ids *out, rl_err *err) {
    char *text;
    RL_TRY(rl_chat_render(tmpl, tok, system, user, &text, err));
    int rc = rl_tokenizer_encode_append(tok, text, strlen(text), out, err);
    free(text);
    return rc;
}

static const char *const *template_tokens(rl_chat_template tmpl) {
    switch (tmpl) {
    case RL_CHAT_CHATML:
        return CHATML_TOKENS;
    case RL_CHAT_R1:
        return R1_TOKENS;
    default:
        return NO_TOKENS;
    }
}

int rl_chat_template_check(rl_chat_template tmpl, const rl_tokenizer *tok, rl_err *err) {
    if (tmpl != RL_CHAT_PLAIN && tmpl != RL_CHAT_CHATML && tmpl != RL_CHAT_R1)
        return rl_fail(err, RL_EINPUT, "chat template: unknown template %d", (int)tmpl);
    for (const char *const *t = template_tokens(tmpl); *t; t++)
        if (rl_tokenizer_special_id(tok, *t) < 0)
            return rl_fail(err, RL_EINPUT,
                           "chat template '%s': tokenizer %s has no token %s (it "
                           "would be encoded as ordinary text)",
                           rl_chat_template_name(tmpl), tok->source, *t);
    return 0;
}

int rl_chat_stop_ids(rl_chat_template tmpl, const rl_tokenizer *tok,
                     int32_t out[RL_CHAT_MAX_STOPS]) {
    static const char *const PLAIN[] = {"<|endoftext|>", R1_EOS, "<|im_end|>", NULL};
    static const char *const CHATML[] = {"<|im_end|>", "<|endoftext|>", NULL};
    static const char *const R1[] = {R1_EOS, "<|endoftext|>", NULL};
    const char *const *names = tmpl == RL_CHAT_CHATML ? CHATML : tmpl == RL_CHAT_R1 ? R1 : PLAIN;
    int n = 0;
    for (const char *const *p = names; *p && n < RL_CHAT_MAX_STOPS; p++) {
        int32_t id = rl_tokenizer_special_id(tok, *p);
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= out[i] == id;
        if (id >= 0 && !dup) out[n++] = id;
    }
    return n;
}
