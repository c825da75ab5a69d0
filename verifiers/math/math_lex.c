// math_lex: tokenizer for LaTeX / plain math text. See math_lex.h.
#include "verifiers/math/math_lex.h"
#include "verifiers/math/math_expr.h"

#include <ctype.h>
#include <string.h>

// ---- the command table ----------------------------------------------------------------------
// Kinds beyond the token-visible CK_* ones are handled inside the lexer.
enum {
    LK_DROP = 100,  // dropped (sizes, styles, spacing)
    LK_SPACE,       // spacing that may also separate digit groups (\, \! \;)
    LK_DROPARG,     // dropped together with its {argument}
    LK_LEFTRIGHT,   // \left \right: dropped, and a following '.' too
    LK_TEXT,        // \text{...}: content becomes one T_TEXT token
    LK_STYLE,       // \mathrm{...}: letters become a T_WORD, anything else stays as a group
    LK_MATHBB,      // \mathbb{R}
    LK_TRANSPARENT, // \boxed, \fbox: the command disappears, its group stays
    LK_REL,         // relation (id = MXR_*)
    LK_DEGREE,      // \circ, \degree
    LK_BAR,         // \vert, \lvert, \mid: '|'
    LK_SETL,        // \lbrace
    LK_SETR,        // \rbrace
    LK_LBRACK,      // \lbrack
    LK_RBRACK,      // \rbrack
    LK_BEGIN,
    LK_END,
    LK_NOT,   // \not (\not= is \ne)
    LK_COLON, // \colon
    LK_ROW,   // \newline, \cr
};

typedef struct cmd_entry {
    const char *name;
    uint8_t kind, id;
} cmd_entry;

// Sorted by name (strcmp order) for binary search.
static const cmd_entry CMDS[] = {
    {"Big", LK_DROP, 0},
    {"Bigg", LK_DROP, 0},
    {"Biggl", LK_DROP, 0},
    {"Biggr", LK_DROP, 0},
    {"Bigl", LK_DROP, 0},
    {"Bigr", LK_DROP, 0},
    {"Delta", CK_GREEK, 0},
    {"Gamma", CK_GREEK, 0},
    {"Lambda", CK_GREEK, 0},
    {"Omega", CK_GREEK, 0},
    {"Phi", CK_GREEK, 0},
    {"Pi", CK_GREEK, 0},
    {"Psi", CK_GREEK, 0},
    {"Sigma", CK_GREEK, 0},
    {"Theta", CK_GREEK, 0},
    {"Xi", CK_GREEK, 0},
    {"allowbreak", LK_DROP, 0},
    {"alpha", CK_GREEK, 0},
    {"approx", LK_REL, MXR_APPROX},
    {"arccos", CK_FUNC, MXF_ACOS},
    {"arcsin", CK_FUNC, MXF_ASIN},
    {"arctan", CK_FUNC, MXF_ATAN},
    {"ast", CK_OP, OP_TIMES},
    {"beta", CK_GREEK, 0},
    {"bf", LK_DROP, 0},
    {"bfseries", LK_DROP, 0},
    {"big", LK_DROP, 0},
    {"bigg", LK_DROP, 0},
    {"biggl", LK_DROP, 0},
    {"biggr", LK_DROP, 0},
    {"bigl", LK_DROP, 0},
    {"bigr", LK_DROP, 0},
    {"binom", CK_BINOM, 0},
    {"bm", LK_STYLE, 0},
    {"boldsymbol", LK_STYLE, 0},
    {"boxed", LK_TRANSPARENT, 0},
    {"bullet", CK_OP, OP_TIMES},
    {"cap", CK_OP, OP_CAP},
    {"cdot", CK_OP, OP_TIMES},
    {"cdotp", CK_OP, OP_TIMES},
    {"cdots", CK_ELL, 0},
    {"cfrac", CK_FRAC, 0},
    {"chi", CK_GREEK, 0},
    {"choose", CK_OP, OP_CHOOSE},
    {"circ", LK_DEGREE, 0},
    {"colon", LK_COLON, 0},
    {"coloneqq", LK_REL, MXR_EQ},
    {"color", LK_DROPARG, 0},
    {"cos", CK_FUNC, MXF_COS},
    {"cosh", CK_FUNC, MXF_COSH},
    {"cot", CK_FUNC, MXF_COT},
    {"cr", LK_ROW, 0},
    {"csc", CK_FUNC, MXF_CSC},
    {"cup", CK_OP, OP_CUP},
    {"dbinom", CK_BINOM, 0},
    {"ddots", CK_ELL, 0},
    {"degree", LK_DEGREE, 0},
    {"delta", CK_GREEK, 0},
    {"dfrac", CK_FRAC, 0},
    {"displaystyle", LK_DROP, 0},
    {"div", CK_OP, OP_DIV},
    {"dots", CK_ELL, 0},
    {"dotsb", CK_ELL, 0},
    {"dotsc", CK_ELL, 0},
    {"dotsm", CK_ELL, 0},
    {"ell", CK_GREEK, 0},
    {"emph", LK_TEXT, 0},
    {"emptyset", CK_EMPTY, 0},
    {"enspace", LK_SPACE, 0},
    {"epsilon", CK_GREEK, 0},
    {"eq", LK_REL, MXR_EQ},
    {"equiv", LK_REL, MXR_EQ},
    {"eta", CK_GREEK, 0},
    {"exp", CK_FUNC, MXF_EXP},
    {"fbox", LK_TRANSPARENT, 0},
    {"frac", CK_FRAC, 0},
    {"gamma", CK_GREEK, 0},
    {"gcd", CK_FUNC, MXF_GCD},
    {"ge", LK_REL, MXR_GE},
    {"geq", LK_REL, MXR_GE},
    {"geqq", LK_REL, MXR_GE},
    {"geqslant", LK_REL, MXR_GE},
    {"gt", LK_REL, MXR_GT},
    {"hbox", LK_TEXT, 0},
    {"hfill", LK_DROP, 0},
    {"hphantom", LK_DROPARG, 0},
    {"hspace", LK_DROPARG, 0},
    {"i", CK_CONST, MXC_I},
    {"imath", CK_CONST, MXC_I},
    {"in", LK_REL, MXR_IN},
    {"infin", CK_CONST, MXC_INF},
    {"infty", CK_CONST, MXC_INF},
    {"iota", CK_GREEK, 0},
    {"it", LK_DROP, 0},
    {"kappa", CK_GREEK, 0},
    {"label", LK_DROPARG, 0},
    {"lambda", CK_GREEK, 0},
    {"langle", CK_LANGLE, 0},
    {"lbrace", LK_SETL, 0},
    {"lbrack", LK_LBRACK, 0},
    {"lceil", CK_LCEIL, 0},
    {"ldots", CK_ELL, 0},
    {"le", LK_REL, MXR_LE},
    {"left", LK_LEFTRIGHT, 0},
    {"leq", LK_REL, MXR_LE},
    {"leqq", LK_REL, MXR_LE},
    {"leqslant", LK_REL, MXR_LE},
    {"lfloor", CK_LFLOOR, 0},
    {"lg", CK_FUNC, MXF_LOG},
    {"limits", LK_DROP, 0},
    {"ln", CK_FUNC, MXF_LN},
    {"log", CK_FUNC, MXF_LOG},
    {"lt", LK_REL, MXR_LT},
    {"lvert", LK_BAR, 0},
    {"mathbb", LK_MATHBB, 0},
    {"mathbf", LK_STYLE, 0},
    {"mathcal", LK_STYLE, 0},
    {"mathit", LK_STYLE, 0},
    {"mathrm", LK_STYLE, 0},
    {"mathsf", LK_STYLE, 0},
    {"mathstrut", LK_DROP, 0},
    {"mathtt", LK_STYLE, 0},
    {"max", CK_FUNC, MXF_MAX},
    {"mbox", LK_TEXT, 0},
    {"mid", LK_BAR, 0},
    {"middle", LK_DROP, 0},
    {"min", CK_FUNC, MXF_MIN},
    {"mp", CK_OP, OP_MP},
    {"mu", CK_GREEK, 0},
    {"ne", LK_REL, MXR_NE},
    {"neq", LK_REL, MXR_NE},
    {"newline", LK_ROW, 0},
    {"nicefrac", CK_FRAC, 0},
    {"nolimits", LK_DROP, 0},
    {"nonumber", LK_DROP, 0},
    {"not", LK_NOT, 0},
    {"notag", LK_DROP, 0},
    {"nu", CK_GREEK, 0},
    {"omega", CK_GREEK, 0},
    {"operatorname", LK_STYLE, 0},
    {"over", CK_OP, OP_OVER},
    {"phantom", LK_DROPARG, 0},
    {"phi", CK_GREEK, 0},
    {"pi", CK_CONST, MXC_PI},
    {"pm", CK_OP, OP_PM},
    {"psi", CK_GREEK, 0},
    {"qquad", LK_SPACE, 0},
    {"quad", LK_SPACE, 0},
    {"rangle", CK_RANGLE, 0},
    {"rbrace", LK_SETR, 0},
    {"rbrack", LK_RBRACK, 0},
    {"rceil", CK_RCEIL, 0},
    {"rfloor", CK_RFLOOR, 0},
    {"rho", CK_GREEK, 0},
    {"right", LK_LEFTRIGHT, 0},
    {"rm", LK_DROP, 0},
    {"rvert", LK_BAR, 0},
    {"scriptstyle", LK_DROP, 0},
    {"sec", CK_FUNC, MXF_SEC},
    {"setminus", CK_OP, OP_SETMINUS},
    {"sf", LK_DROP, 0},
    {"sigma", CK_GREEK, 0},
    {"sim", LK_REL, MXR_APPROX},
    {"simeq", LK_REL, MXR_APPROX},
    {"sin", CK_FUNC, MXF_SIN},
    {"sinh", CK_FUNC, MXF_SINH},
    {"sqrt", CK_SQRT, 0},
    {"tag", LK_DROPARG, 0},
    {"tan", CK_FUNC, MXF_TAN},
    {"tanh", CK_FUNC, MXF_TANH},
    {"tau", CK_GREEK, 0},
    {"tbinom", CK_BINOM, 0},
    {"text", LK_TEXT, 0},
    {"textbf", LK_TEXT, 0},
    {"textcolor", LK_DROPARG, 0},
    {"textit", LK_TEXT, 0},
    {"textnormal", LK_TEXT, 0},
    {"textrm", LK_TEXT, 0},
    {"textsf", LK_TEXT, 0},
    {"textstyle", LK_DROP, 0},
    {"texttt", LK_TEXT, 0},
    {"tfrac", CK_FRAC, 0},
    {"theta", CK_GREEK, 0},
    {"thinspace", LK_SPACE, 0},
    {"times", CK_OP, OP_TIMES},
    {"tt", LK_DROP, 0},
    {"underline", LK_TRANSPARENT, 0},
    {"upsilon", CK_GREEK, 0},
    {"varepsilon", CK_GREEK, 0},
    {"varnothing", CK_EMPTY, 0},
    {"varphi", CK_GREEK, 0},
    {"vartheta", CK_GREEK, 0},
    {"vdots", CK_ELL, 0},
    {"vert", LK_BAR, 0},
    {"vphantom", LK_DROPARG, 0},
    {"vspace", LK_DROPARG, 0},
    {"xi", CK_GREEK, 0},
    {"zeta", CK_GREEK, 0},
};

static const cmd_entry *find_cmd(const char *s, int n) {
    int lo = 0, hi = (int)(sizeof CMDS / sizeof CMDS[0]) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strncmp(CMDS[mid].name, s, (size_t)n);
        if (c == 0 && CMDS[mid].name[n] != '\0') c = 1;
        if (c == 0) return &CMDS[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

int mx_tok_is(const struct mx_tok *t, const char *word) {
    size_t n = strlen(word);
    if ((size_t)t->n != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)t->s[i]) != word[i]) return 0;
    return 1;
}

// ---- scanning helpers ------------------------------------------------------------------------
typedef struct lexer {
    const char *p, *end;
    struct mx_tok *toks;
    int n, cap;
    int sp;    // whitespace seen since the last token
    int depth; // bracket depth (bare commas join digit groups only at depth 0)
    int overflow;
    const char *start; // where the token being scanned began
} lexer;

static void emit(lexer *L, int t, int id, int x, const char *s, int n) {
    if (L->n >= L->cap - 1) {
        L->overflow = 1;
        return;
    }
    struct mx_tok *k = &L->toks[L->n++];
    k->t = (uint8_t)t;
    k->id = (uint8_t)id;
    k->x = (uint8_t)x;
    k->sp = (uint8_t)L->sp;
    k->s = s;
    k->n = n;
    k->src = L->start;
    L->sp = SP_NONE;
}

static int starts(const char *p, const char *end, const char *lit) {
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

static int is_digit_at(const char *p, const char *end) {
    return p < end && isdigit((unsigned char)*p);
}

// Exactly three digits at p, not followed by another digit.
static int three_digits(const char *p, const char *end) {
    return end - p >= 3 && isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
           isdigit((unsigned char)p[2]) && !is_digit_at(p + 3, end);
}

// Length of a digit-group separator at p ("," "{,}" ",\!" "\," " " thin spaces ...), or 0.
// kind receives a small code so that one number uses one kind of separator.
static int group_sep(const lexer *L, const char *p, int *kind) {
    static const char *const seps[] = {"{,}",          "{, }", " {, }", ",\\! ",    ",\\!",
                                       ",\\,",         "\\,",  "\\!",   "\xC2\xA0", "\xE2\x80\x89",
                                       "\xE2\x80\xAF", "\\ ",  ",",     " "};
    for (int k = 0; k < (int)(sizeof seps / sizeof seps[0]); k++) {
        if (!starts(p, L->end, seps[k])) continue;
        if (strcmp(seps[k], ",") == 0 && L->depth > 0) return 0;
        *kind = k;
        return (int)strlen(seps[k]);
    }
    return 0;
}

// Length of "\overline{digits}" / "\dot{digits}" at p, or 0.
static int repeating_at(const char *p, const char *end) {
    const char *q = starts(p, end, "\\overline{") ? p + 10
                    : starts(p, end, "\\dot{")    ? p + 5
                                                  : NULL;
    if (!q) return 0;
    const char *d = q;
    while (d < end && isdigit((unsigned char)*d)) d++;
    if (d == q || d >= end || *d != '}') return 0;
    return (int)(d + 1 - p);
}

// A number: digits with digit groups, decimals, an exponent.
static void lex_number(lexer *L) {
    const char *s = L->p, *p = L->p, *end = L->end;
    int decimal = 0, first_group = 0, sep_kind = -1;
    while (p < end && isdigit((unsigned char)*p)) p++, first_group++;
    // digit groups: only after a first group of 1-3 digits
    // ("0,111" is a decimal comma, never a group of thousands)
    if (first_group >= 1 && first_group <= 3 && !(first_group == 1 && *s == '0')) {
        for (;;) {
            int kind = 0, sl = group_sep(L, p, &kind);
            if (sl == 0 || (sep_kind >= 0 && kind != sep_kind)) break;
            if (!three_digits(p + sl, end)) break;
            // "1 000" only when no fraction slash follows (mixed numbers: "4 444/9" stays apart)
            if (p[sl - 1] == ' ' && p + sl + 3 < end && p[sl + 3] == '/') break;
            sep_kind = kind;
            p += sl + 3;
        }
    }
    if (p + 1 < end && *p == '.' && isdigit((unsigned char)p[1])) {
        decimal = 1;
        p++;
        while (p < end && isdigit((unsigned char)*p)) p++;
    } else if (starts(p, end, "{,}") && is_digit_at(p + 3, end) && !three_digits(p + 3, end)) {
        decimal = 1; // 3{,}5: LaTeX's decimal comma (mx_literal reads it the same way)
        p += 3;
        while (p < end && isdigit((unsigned char)*p)) p++;
    } else if (*p == '.' && repeating_at(p + 1, end)) {
        p++; // "0.\overline{3}" (the repeating part follows below)
    }
    // a repeating decimal: 0.\overline{3}, 0.1\overline{6}, 0.\dot{3} (an exact rational)
    int rl = (decimal || (p > s && p[-1] == '.')) ? repeating_at(p, end) : 0;
    if (rl) {
        decimal = 0;
        p += rl;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        if (q < end && (*q == '+' || *q == '-')) q++;
        if (is_digit_at(q, end)) {
            decimal = 1;
            p = q;
            while (p < end && isdigit((unsigned char)*p)) p++;
        }
    }
    emit(L, T_NUM, 0, decimal, s, (int)(p - s));
    L->p = p;
}

// Content of \text{...} that is a number, possibly signed, with operators and trailing unit
// words ("5", "-2.5", "1,000", "3 cm", "25 percent"), but no braces or commands.
static int numeric_text(const char *a, const char *b) {
    int digits = 0;
    for (const char *p = a; p < b; p++) {
        if (isdigit((unsigned char)*p)) {
            digits = 1;
            continue;
        }
        if (*p == '{' || *p == '}' || *p == '\\' || *p == '$') return 0;
    }
    return digits;
}

// Content of \text{...} that is a formula ("x = 5", "-3"): a digit, no word of two letters.
static int formula_text(const char *a, const char *b) {
    int digits = 0;
    for (const char *p = a; p < b; p++) {
        if (isdigit((unsigned char)*p)) digits = 1;
        if (isalpha((unsigned char)*p) && p + 1 < b && isalpha((unsigned char)p[1])) return 0;
        if (*p == '{' || *p == '}' || *p == '\\' || *p == '$' || *p == ':') return 0;
    }
    return digits;
}

// Skips whitespace; returns the position.
static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

// At p a '{': returns the position after the matching '}' (or end), inner range in *a, *b.
static const char *brace_group(const char *p, const char *end, const char **a, const char **b) {
    int depth = 0;
    const char *q = p;
    for (; q < end; q++) {
        if (*q == '\\' && q + 1 < end) {
            q++;
            continue;
        }
        if (*q == '{')
            depth++;
        else if (*q == '}' && --depth == 0)
            break;
    }
    *a = p + 1;
    *b = q < end ? q : end;
    return q < end ? q + 1 : end;
}

static int all_letters(const char *a, const char *b) {
    if (a >= b) return 0;
    for (const char *q = a; q < b; q++)
        if (!isalpha((unsigned char)*q)) return 0;
    return 1;
}

// A backslash command at L->p.
static void lex_command(lexer *L) {
    const char *p = L->p + 1, *end = L->end;
    if (p >= end) {
        L->p = p;
        return;
    }
    if (*p == '\\') { // "\\frac", "\\le": a doubled backslash (escaped twice) before a command
        const char *w = p + 1;
        while (w < end && isalpha((unsigned char)*w)) w++;
        if (w - p - 1 >= 2 && find_cmd(p + 1, (int)(w - p - 1))) {
            L->p = p;
            lex_command(L);
            return;
        }
    }
    if (!isalpha((unsigned char)*p)) { // control symbol
        char c = *p;
        L->p = p + 1;
        switch (c) {
        case '{':
            L->depth++;
            emit(L, T_SETL, 0, 0, p - 1, 2);
            return;
        case '}':
            if (L->depth > 0) L->depth--;
            emit(L, T_SETR, 0, 0, p - 1, 2);
            return;
        case '%':
            emit(L, T_PCT, 0, 0, p - 1, 2);
            return;
        case '\\':
            emit(L, T_ROW, 0, 0, p - 1, 2);
            return;
        case '|':
            emit(L, T_CH, '|', 0, p, 1);
            return;
        case '$':
        case '(':
        case ')':
        case '[':
        case ']':
            return; // currency and delimiters
        case ',':
        case '!':
        case ';':
        case ':':
        case '>':
        case ' ':
        case '\n':
        case '\t':
            if (L->sp < SP_SPACE) L->sp = SP_SPACE;
            return;
        default:
            emit(L, T_OTHER, c, 0, p - 1, 2);
            return;
        }
    }
    const char *name = p;
    while (p < end && isalpha((unsigned char)*p)) p++;
    int nlen = (int)(p - name);
    L->p = p;
    const cmd_entry *c = find_cmd(name, nlen);
    if (!c) {
        emit(L, T_CMD, 0, CK_UNKNOWN, name, nlen);
        return;
    }
    const char *a, *b, *q;
    switch (c->kind) {
    case LK_DROP:
        return;
    case LK_SPACE:
        if (L->sp < SP_SPACE) L->sp = SP_SPACE;
        return;
    case LK_DROPARG:
        q = skip_ws(p, end);
        if (q < end && *q == '{') L->p = brace_group(q, end, &a, &b);
        return;
    case LK_LEFTRIGHT:
        q = skip_ws(p, end);
        if (q < end && *q == '.') L->p = q + 1;
        return;
    case LK_TRANSPARENT:
        return;
    case LK_TEXT:
        q = skip_ws(p, end);
        if (q < end && *q == '{') {
            L->p = brace_group(q, end, &a, &b);
            const char *w = a;
            while (w < b && isspace((unsigned char)*w)) w++;
            const char *z = b;
            while (z > w && isspace((unsigned char)z[-1])) z--;
            if (w < z &&
                (((isdigit((unsigned char)*w) || *w == '-' || *w == '.') && numeric_text(w, z)) ||
                 formula_text(w, z) || *w == '\\')) {
                // (a command inside: \text{\textbf{5}} is read as its content)
                // \text{5}, \textbf{12.5}, \text{3 cm}: a value dressed as text is a value
                L->p = q;
                return;
            }
            if ((z - w == 8 && strncmp(w, "infinity", 8) == 0) ||
                (z - w == 3 && strncmp(w, "inf", 3) == 0))
                emit(L, T_CMD, MXC_INF, CK_CONST, w, (int)(z - w)); // \text{infinity}
            else if (w < b)
                emit(L, T_TEXT, 0, 0, a, (int)(b - a)); // \text{ } is only space
        } else if (q < end) {
            L->p = q + 1;
            emit(L, T_TEXT, 0, 0, q, 1);
        }
        return;
    case LK_STYLE:
        q = skip_ws(p, end);
        if (q < end && *q == '{') {
            const char *after = brace_group(q, end, &a, &b);
            if (all_letters(a, b)) {
                L->p = after;
                emit(L, T_WORD, 0, 0, a, (int)(b - a));
            }
        }
        return;
    case LK_MATHBB:
        q = skip_ws(p, end);
        if (q < end && *q == '{') {
            L->p = brace_group(q, end, &a, &b);
            if (b - a == 1 && *a == 'R')
                emit(L, T_CMD, 0, CK_REALS, a, 1);
            else
                emit(L, T_WORD, 0, 0, a, (int)(b - a));
        } else if (q < end && *q == 'R') {
            L->p = q + 1;
            emit(L, T_CMD, 0, CK_REALS, q, 1);
        }
        return;
    case LK_REL:
        emit(L, T_REL, c->id, 0, name, nlen);
        return;
    case LK_DEGREE:
        return;
    case LK_BAR:
        emit(L, T_CH, '|', 0, name, nlen);
        return;
    case LK_SETL:
        L->depth++;
        emit(L, T_SETL, 0, 0, name, nlen);
        return;
    case LK_SETR:
        if (L->depth > 0) L->depth--;
        emit(L, T_SETR, 0, 0, name, nlen);
        return;
    case LK_LBRACK:
        L->depth++;
        emit(L, T_CH, '[', 0, name, nlen);
        return;
    case LK_RBRACK:
        if (L->depth > 0) L->depth--;
        emit(L, T_CH, ']', 0, name, nlen);
        return;
    case LK_ROW:
        emit(L, T_ROW, 0, 0, name, nlen);
        return;
    case LK_COLON:
        emit(L, T_CH, ':', 0, name, nlen);
        return;
    case LK_NOT:
        q = skip_ws(p, end);
        if (q < end && *q == '=') {
            L->p = q + 1;
            emit(L, T_REL, MXR_NE, 0, name, nlen);
        }
        return;
    case LK_BEGIN:
    case LK_END:
        return;
    default:
        if (c->kind == CK_ELL) {
            emit(L, T_ELL, 0, 0, name, nlen);
            return;
        }
        emit(L, T_CMD, c->id, c->kind, name, nlen);
        return;
    }
}

// \begin{env} / \end{env}: handled before the command table (their argument is a name).
static int lex_env(lexer *L) {
    int begin = starts(L->p, L->end, "\\begin");
    if (!begin && !starts(L->p, L->end, "\\end")) return 0;
    const char *p = L->p + (begin ? 6 : 4);
    if (p < L->end && isalpha((unsigned char)*p)) return 0; // \endgroup, \beginning ...
    const char *q = skip_ws(p, L->end), *a, *b;
    if (q >= L->end || *q != '{') return 0;
    L->p = brace_group(q, L->end, &a, &b);
    emit(L, begin ? T_BEGIN : T_ENDENV, 0, 0, a, (int)(b - a));
    if (begin && b - a >= 5 && memcmp(a, "array", 5) == 0) { // skip the column spec {cc}
        q = skip_ws(L->p, L->end);
        if (q < L->end && *q == '{') L->p = brace_group(q, L->end, &a, &b);
    }
    return 1;
}

// Known multi-byte UTF-8 characters. Returns 1 when one was consumed.
static int lex_utf8(lexer *L) {
    static const struct {
        const char *u;
        uint8_t t, id, x;
        const char *s;
    } U[] = {
        {"\xE2\x88\x92", T_CH, '-', 0, "-"},
        {"\xE2\x80\x93", T_CH, '-', 0, "-"},
        {"\xC3\x97", T_CMD, OP_TIMES, CK_OP, "times"},
        {"\xC2\xB7", T_CMD, OP_TIMES, CK_OP, "cdot"},
        {"\xE2\x8B\x85", T_CMD, OP_TIMES, CK_OP, "cdot"},
        {"\xE2\x88\x99", T_CMD, OP_TIMES, CK_OP, "cdot"},
        {"\xE2\x88\x97", T_CH, '*', 0, "*"},
        {"\xC3\xB7", T_CH, '/', 0, "/"},
        {"\xE2\x89\xA4", T_REL, MXR_LE, 0, "le"},
        {"\xE2\x89\xA5", T_REL, MXR_GE, 0, "ge"},
        {"\xE2\x89\xA0", T_REL, MXR_NE, 0, "ne"},
        {"\xE2\x89\x88", T_REL, MXR_APPROX, 0, "approx"},
        {"\xE2\x88\x88", T_REL, MXR_IN, 0, "in"},
        {"\xCF\x80", T_CMD, MXC_PI, CK_CONST, "pi"},
        {"\xE2\x88\x9E", T_CMD, MXC_INF, CK_CONST, "infty"},
        {"\xE2\x88\x9A", T_CMD, 1, CK_SQRT, "sqrt"},
        {"\xE2\x88\xAA", T_CMD, OP_CUP, CK_OP, "cup"},
        {"\xC2\xB1", T_CMD, OP_PM, CK_OP, "pm"},
        {"\xE2\x88\x85", T_CMD, 0, CK_EMPTY, "emptyset"},
        {"\xE2\x84\x9D", T_CMD, 0, CK_REALS, "R"},
        {"\xE2\x80\xA6", T_ELL, 0, 0, "ldots"},
    };
    for (int k = 0; k < (int)(sizeof U / sizeof U[0]); k++) {
        if (!starts(L->p, L->end, U[k].u)) continue;
        L->p += strlen(U[k].u);
        emit(L, U[k].t, U[k].id, U[k].x, U[k].s, (int)strlen(U[k].s));
        return 1;
    }
    static const char *const superscripts[][2] = {
        {"\xC2\xB2", "2"}, {"\xC2\xB3", "3"}, {"\xC2\xB9", "1"}};
    for (int k = 0; k < 3; k++) {
        if (!starts(L->p, L->end, superscripts[k][0])) continue;
        L->p += 2;
        emit(L, T_CH, '^', 0, "^", 1);
        emit(L, T_NUM, 0, 0, superscripts[k][1], 1);
        return 1;
    }
    static const char *const dropped[] = {
        "\xC2\xB0",     "\xE2\x82\xAC", "\xC2\xA3",     "\xC2\xA5",     "\xE2\x80\x9C",
        "\xE2\x80\x9D", "\xE2\x80\x98", "\xE2\x80\x99", "\xE2\x80\x8B",
    };
    for (int k = 0; k < (int)(sizeof dropped / sizeof dropped[0]); k++) {
        if (!starts(L->p, L->end, dropped[k])) continue;
        L->p += strlen(dropped[k]);
        return 1;
    }
    static const char *const spaces[] = {"\xC2\xA0", "\xE2\x80\x89", "\xE2\x80\xAF", "\xE2\x80\x82",
                                         "\xE2\x80\x83"};
    for (int k = 0; k < (int)(sizeof spaces / sizeof spaces[0]); k++) {
        if (!starts(L->p, L->end, spaces[k])) continue;
        L->p += strlen(spaces[k]);
        if (L->sp < SP_SPACE) L->sp = SP_SPACE;
        return 1;
    }
    return 0;
}

int mx_lex(const char *text, int len, struct mx_tok *toks, int cap) {
    lexer L = {text, text + len, toks, 0, cap, SP_NONE, 0, 0, text};
    while (L.p < L.end && !L.overflow) {
        unsigned char c = (unsigned char)*L.p;
        L.start = L.p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '~') {
            if (L.sp < SP_SPACE) L.sp = SP_SPACE;
            L.p++;
        } else if (c == '\n') {
            L.sp = SP_NEWLINE;
            L.p++;
        } else if (isdigit(c) || (c == '.' && is_digit_at(L.p + 1, L.end) &&
                                  !(L.p > text && isdigit((unsigned char)L.p[-1])))) {
            lex_number(&L);
        } else if (isalpha(c)) {
            const char *s = L.p;
            while (L.p < L.end && isalpha((unsigned char)*L.p)) L.p++;
            emit(&L, T_WORD, 0, 0, s, (int)(L.p - s));
        } else if (c == '\\') {
            if (!lex_env(&L)) lex_command(&L);
        } else if (c >= 0x80) {
            if (!lex_utf8(&L)) { // other non-ASCII: part of a word (names, accented text)
                const char *s = L.p;
                while (L.p < L.end && ((unsigned char)*L.p >= 0x80 || isalpha((unsigned char)*L.p)))
                    L.p++;
                emit(&L, T_WORD, 0, 0, s, (int)(L.p - s));
            }
        } else if (c == '$' || c == '"' || c == '`') {
            L.p++;
        } else if (c == '%') {
            emit(&L, T_PCT, 0, 0, L.p, 1);
            L.p++;
        } else if (c == '.' && starts(L.p, L.end, "...")) {
            emit(&L, T_ELL, 0, 0, L.p, 3);
            L.p += 3;
        } else if ((c == '<' || c == '>' || c == '!' || c == '=') && L.p + 1 < L.end &&
                   L.p[1] == '=') {
            int id = c == '<' ? MXR_LE : c == '>' ? MXR_GE : c == '!' ? MXR_NE : MXR_EQ;
            emit(&L, T_REL, id, 0, L.p, 2);
            L.p += 2;
        } else if (c == '=' || c == '<' || c == '>') {
            emit(&L, T_REL, c == '=' ? MXR_EQ : c == '<' ? MXR_LT : MXR_GT, 0, L.p, 1);
            L.p++;
        } else if (strchr("+-*/^_!'()[]{}|,;:&.?", (int)c)) {
            if (c == '(' || c == '[' || c == '{') L.depth++;
            if ((c == ')' || c == ']' || c == '}') && L.depth > 0) L.depth--;
            emit(&L, T_CH, c, 0, L.p, 1);
            L.p++;
        } else {
            emit(&L, T_OTHER, c, 0, L.p, 1);
            L.p++;
        }
    }
    if (L.overflow) return -1;
    L.start = L.end;
    emit(&L, T_END, 0, 0, L.end, 0);
    return L.n;
}
