// math_verify: the public API of the math accuracy verifier and its rl_verifier_api.
// See math_verify.h.
#include "verifiers/math/math_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rl_math_opts_default(rl_math_opts *o) {
    o->extract = RL_MATH_EXTRACT_BOXED;
    o->float_rounding = 6;
    o->percent = 0;
    o->set_relation = 1;
}

// The text after the last </think> when it is not blank, else the whole text; both limited to
// the last MX_SCAN_MAX bytes.
static const char *after_think(const char *s, const char *end) {
    const char *start = end - s > MX_SCAN_MAX ? end - MX_SCAN_MAX : s;
    for (const char *p = end - 8; p >= start; p--) {
        if (memcmp(p, "</think>", 8) != 0) continue;
        for (const char *q = p + 8; q < end; q++)
            if (!isspace((unsigned char)*q)) return p + 8;
        break;
    }
    return start;
}

// rl_math_extract; *boxed says whether the answer is the content of boxes.
static int extract(const char *completion, rl_math_extract_mode mode, char *out, size_t out_len,
                   int *boxed) {
    *boxed = 0;
    if (!out || out_len == 0) return -1;
    out[0] = '\0';
    if (!completion) return 0;
    const char *end = completion + strlen(completion);
    const char *whole = end - completion > MX_SCAN_MAX ? end - MX_SCAN_MAX : completion;
    const char *region = after_think(completion, end);
    // random LaTeX holds numbers and boxes by chance: extraction takes nothing from it
    if (mx_junk(whole, end)) return 0;
    // boxes inside trailing remarks ("Note: with 5 people it would be \boxed{50}") are not
    // the answer when a box comes before them
    const char *remarks = mx_remark_start(region, end);
    int n = remarks ? mx_boxes(region, remarks, out, out_len) : 0;
    if (n == 0) n = mx_boxes(region, end, out, out_len);
    const char *a = NULL, *b = NULL;
    // after the reasoning without a box: auto mode reads that text before any box inside
    if (n == 0 && region != whole &&
        !(mode == RL_MATH_EXTRACT_AUTO && mx_find_answer(region, end, &a, &b)))
        n = mx_boxes(whole, end, out, out_len);
    if (n < 0) {
        snprintf(out, out_len, "answer too long");
        return -1;
    }
    if (n > 0) {
        *boxed = 1;
        return 1;
    }
    if (mode != RL_MATH_EXTRACT_AUTO) return 0;
    if (!a && !mx_find_answer(region, end, &a, &b)) return 0;
    if ((size_t)(b - a) + 1 > out_len) {
        snprintf(out, out_len, "answer too long");
        return -1;
    }
    memcpy(out, a, (size_t)(b - a));
    out[b - a] = '\0';
    return 1;
}

int rl_math_extract(const char *completion, rl_math_extract_mode mode, char *out, size_t out_len) {
    int boxed;
    return extract(completion, mode, out, out_len, &boxed);
}

static int strncasecmp_n(const char *a, const char *lit, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (tolower((unsigned char)a[k]) != lit[k]) return 1;
    return 0;
}

// Whether a text that does not parse as a whole may hold an answer somewhere inside: prose, a
// LaTeX environment, or plain text without commands ("4 4/9 2"). A bare formula we cannot parse
// ("F_n = \sum_k ...") is not searched for stray numbers.
static int worth_searching(const char *s, const char *end) {
    int backslash = 0;
    if (mx_junk(s, end)) return 0;
    for (const char *p = s; p < end; p++) {
        if (*p == '$' || (*p == '\\' && p + 1 < end && (p[1] == '(' || p[1] == '['))) return 1;
        if (*p == '\\') {
            backslash = 1;
            while (p + 1 < end && isalpha((unsigned char)p[1])) p++;
            continue;
        }
        if (isalpha((unsigned char)*p) && (p == s || !isalpha((unsigned char)p[-1]))) {
            const char *q = p;
            while (q < end && isalpha((unsigned char)*q)) q++;
            if (q - p >= 3) return 1;
            p = q - 1;
        }
    }
    return !backslash;
}

// An answer text (bare, LaTeX, boxed or a sentence holding one) parsed; NULL with why when none.
// search = 0: the text is the content of a box and is not searched for an answer inside.
static mx_expr *read_answer(const char *text, char *buf, size_t cap, char *why, size_t wn,
                            int search) {
    const char *end = text + strlen(text);
    const char *start = end - text > MX_SCAN_MAX ? end - MX_SCAN_MAX : text;
    int n = mx_boxes(start, end, buf, cap);
    if (n < 0) {
        snprintf(why, wn, "answer too long");
        return NULL;
    }
    mx_expr *e = NULL;
    const char *a, *b;
    if (n > 0) {
        // a "final answer is X" after the last box wins, as the rightmost of equal priorities
        const char *box = NULL, *anchor = NULL;
        for (const char *q = end - 5; q >= start && !box; q--)
            if (memcmp(q, "\\fbox", 5) == 0 || (end - q >= 6 && memcmp(q, "\\boxed", 6) == 0))
                box = q;
        for (const char *q = end - 15; box && q > box && !anchor; q--)
            if (strncasecmp_n(q, "final answer is", 15) == 0) anchor = q;
        if (anchor && mx_find_answer(anchor, end, &a, &b)) {
            e = mx_parse(a, (size_t)(b - a), 0);
            snprintf(buf, cap, "%.*s", (int)(b - a), a);
            if (e && e->root < 0) {
                mx_free(e);
                e = NULL;
            }
        }
        if (!e) {
            n = mx_boxes(start, end, buf, cap);
            e = mx_parse(buf, strlen(buf), 0);
        }
    } else {
        while (start < end && isspace((unsigned char)*start)) start++;
        if (start == end) {
            snprintf(why, wn, "empty");
            return NULL;
        }
        if ((size_t)(end - start) <= MX_MAX_TEXT) {
            e = mx_parse(start, (size_t)(end - start), 0);
            if (e && e->root >= 0) {
                snprintf(buf, cap, "%.*s", (int)(end - start), start);
                return e;
            }
        }
        if (search && worth_searching(start, end) && mx_find_answer(start, end, &a, &b)) {
            mx_free(e);
            e = mx_parse(a, (size_t)(b - a), 0);
            snprintf(buf, cap, "%.*s", (int)(b - a), a);
        }
    }
    if (!e) {
        snprintf(why, wn, "no answer found");
        return NULL;
    }
    if (e->root < 0) {
        snprintf(why, wn, "%s", e->err);
        mx_free(e);
        return NULL;
    }
    return e;
}

static int longer_than(const char *s, size_t n) {
    return memchr(s, '\0', n + 1) == NULL;
}

// "answer 7 != reference 8" with both texts shortened.
static void describe(char *d, size_t n, const char *verdict, const char *pred, const char *gold,
                     const char *why) {
    if (!d || !n) return;
    char p[64], g[64];
    snprintf(p, sizeof p, "%.63s", pred); // never formats a whole hostile text
    snprintf(g, sizeof g, "%.63s", gold);
    for (char *c = p; *c; c++)
        if (*c == '\n' || *c == '\t') *c = ' ';
    for (char *c = g; *c; c++)
        if (*c == '\n' || *c == '\t') *c = ' ';
    snprintf(d, n, "%s: answer %s%s, reference %s%s%s", verdict, p,
             longer_than(pred, 63) ? "..." : "", g, longer_than(gold, 63) ? "..." : "",
             why && *why ? "; " : "");
    if (why && *why) {
        size_t used = strlen(d);
        snprintf(d + used, n - used, "%s", why);
    }
}

static int compare_texts(const char *gold, const char *pred, const char *pred_shown, int search,
                         const rl_math_opts *o, char *detail, size_t dn) {
    rl_math_opts def;
    if (!o) {
        rl_math_opts_default(&def);
        o = &def;
    }
    char gbuf[MX_MAX_TEXT + 1], pbuf[MX_MAX_TEXT + 1], why[96] = "";
    mx_expr *g = read_answer(gold, gbuf, sizeof gbuf, why, sizeof why, 1);
    if (!g) { // no judgement: never a match, whatever the prediction
        if (detail) snprintf(detail, dn, "reference not parsed: %s", why);
        return RL_MATH_BAD_REFERENCE;
    }
    mx_expr *p = read_answer(pred, pbuf, sizeof pbuf, why, sizeof why, search);
    if (!p) {
        char msg[128];
        snprintf(msg, sizeof msg, "answer not parsed: %s", why);
        describe(detail, dn, "different", pred_shown ? pred_shown : pred, gbuf, msg);
        mx_free(g);
        return RL_MATH_NOT_EQUAL;
    }
    int r = mx_compare(g, p, o, why, sizeof why);
    describe(detail, dn, r ? "equal" : "different", pbuf, gbuf, r ? "" : why);
    mx_free(g);
    mx_free(p);
    return r ? RL_MATH_EQUAL : RL_MATH_NOT_EQUAL;
}

int rl_math_equal(const char *gold, const char *pred, const rl_math_opts *o, char *detail,
                  size_t detail_len) {
    if (detail && detail_len) detail[0] = '\0';
    if (!gold) {
        if (detail) snprintf(detail, detail_len, "no reference answer");
        return RL_MATH_BAD_REFERENCE;
    }
    return compare_texts(gold, pred ? pred : "", NULL, 1, o, detail, detail_len);
}

int rl_math_grade(const char *gold, const char *completion, const rl_math_opts *o, char *detail,
                  size_t detail_len) {
    rl_math_opts def;
    if (!o) {
        rl_math_opts_default(&def);
        o = &def;
    }
    if (detail && detail_len) detail[0] = '\0';
    if (!gold) {
        if (detail) snprintf(detail, detail_len, "no reference answer");
        return RL_MATH_BAD_REFERENCE;
    }
    char ans[MX_MAX_TEXT + 1];
    int boxed;
    int x = extract(completion, (rl_math_extract_mode)o->extract, ans, sizeof ans, &boxed);
    if (x <= 0) {
        // still check the reference, so that a broken reference is reported as such
        char gbuf[MX_MAX_TEXT + 1], why[96];
        mx_expr *g = read_answer(gold, gbuf, sizeof gbuf, why, sizeof why, 1);
        if (!g) {
            if (detail) snprintf(detail, detail_len, "reference not parsed: %s", why);
            return RL_MATH_BAD_REFERENCE;
        }
        mx_free(g);
        if (detail) snprintf(detail, detail_len, x < 0 ? "no answer (%s)" : "no answer", ans);
        return RL_MATH_NO_ANSWER;
    }
    return compare_texts(gold, ans, ans, !boxed, o, detail, detail_len);
}

int rl_math_eval(const char *expr, char *value, size_t value_len) {
    if (!value || !value_len) return -1;
    value[0] = '\0';
    mx_expr *e = mx_parse(expr, strlen(expr), 0);
    if (!e) return -1;
    if (e->root < 0) {
        snprintf(value, value_len, "%s", e->err);
        mx_free(e);
        return -1;
    }
    mx_env env;
    mx_env_init(&env);
    mpq_t q;
    mpq_init(q);
    int rc;
    mx_status st = mx_eval_exact(e, e->root, &env, q);
    if (st == MX_OK) {
        if (mpz_sizeinbase(mpq_numref(q), 10) + mpz_sizeinbase(mpq_denref(q), 10) + 3 > value_len) {
            snprintf(value, value_len, "too long to print");
            rc = -1;
        } else {
            mpq_get_str(value, 10, q);
            rc = 1;
        }
    } else if (st == MX_NOTRAT) {
        mx_num v;
        st = mx_eval_num(e, e->root, &env, &v);
        if (st == MX_OK && v.im == 0) {
            snprintf(value, value_len, "%.18Lg", v.re);
            rc = 0;
        } else if (st == MX_OK) {
            snprintf(value, value_len, "%.18Lg%+.18Lgi", v.re, v.im);
            rc = 0;
        } else {
            snprintf(value, value_len, st == MX_BIG ? "too large" : "undefined");
            rc = -1;
        }
    } else {
        snprintf(value, value_len,
                 st == MX_BIG     ? "too large"
                 : st == MX_UNDEF ? "undefined"
                                  : "not a number");
        rc = -1;
    }
    mpq_clear(q);
    mx_env_clear(&env);
    mx_free(e);
    return rc;
}

// ---- the verifier ----------------------------------------------------------------------------
typedef struct math_verifier {
    rl_math_opts o;
} math_verifier;

static int parse_choice(const char *v, const char *a, const char *b) {
    if (strcmp(v, a) == 0) return 0;
    if (strcmp(v, b) == 0) return 1;
    return -1;
}

static void *math_create(const rl_voption *opts, int32_t n_opts, char *err, size_t err_len) {
    rl_math_opts o;
    rl_math_opts_default(&o);
    for (int i = 0; i < n_opts; i++) {
        const char *k = opts[i].key, *v = opts[i].value ? opts[i].value : "";
        int c;
        if (strcmp(k, "extract") == 0) {
            if ((c = parse_choice(v, "boxed", "auto")) < 0) goto bad_value;
            o.extract = c;
        } else if (strcmp(k, "float_rounding") == 0) {
            char *endp;
            errno = 0;
            long d = strtol(v, &endp, 10);
            if (errno || endp == v || *endp || d < 0 || d > 15) goto bad_value;
            o.float_rounding = (int)d;
        } else if (strcmp(k, "percent") == 0) {
            if ((c = parse_choice(v, "strict", "lenient")) < 0) goto bad_value;
            o.percent = c;
        } else if (strcmp(k, "set_relation") == 0) {
            if ((c = parse_choice(v, "strict", "lenient")) < 0) goto bad_value;
            o.set_relation = c;
        } else {
            snprintf(err, err_len,
                     "unknown option '%s' (math takes extract, float_rounding, percent, "
                     "set_relation)",
                     k);
            return NULL;
        }
        continue;
    bad_value:
        snprintf(err, err_len,
                 "option %s: bad value '%s' (extract: boxed|auto; float_rounding: 0..15; "
                 "percent, set_relation: strict|lenient)",
                 k, v);
        return NULL;
    }
    math_verifier *m = malloc(sizeof *m);
    if (!m) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    m->o = o;
    return m;
}

static void math_score(void *self, const rl_vsample *s, rl_vresult *out) {
    const math_verifier *m = self;
    out->score = 0;
    out->status = RL_VERIFY_OK;
    out->detail[0] = '\0';
    if (!s->answer) {
        out->status = RL_VERIFY_SKIPPED;
        snprintf(out->detail, sizeof out->detail, "no reference answer");
        return;
    }
    int r = rl_math_grade(s->answer, s->completion ? s->completion : "", &m->o, out->detail,
                          sizeof out->detail);
    if (r == RL_MATH_EQUAL)
        out->score = 1;
    else if (r == RL_MATH_BAD_REFERENCE)
        out->status = RL_VERIFY_SKIPPED;
}

static void math_destroy(void *self) {
    free(self);
}

static const rl_verifier_api MATH_API = {
    .abi_version = RL_VERIFIER_ABI_VERSION,
    .name = "math",
    .thread_safe = 1,
    .create = math_create,
    .score = math_score,
    .score_group = NULL,
    .destroy = math_destroy,
};

const rl_verifier_api *rl_verifier_math_api(void) {
    return &MATH_API;
}
