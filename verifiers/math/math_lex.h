/*
 * math_lex: the tokenizer of math_expr (internal to verifiers/math and verifiers/path).
 *
 * It reads LaTeX and plain text alike and already removes what never changes a value: $ and
 * \( \) \[ \] delimiters, \left / \right / \big sizes, spacing commands, \displaystyle, currency
 * signs, degree marks (^\circ, °). It folds spellings (\dfrac -> \frac, U+2212 -> '-', × ->
 * \times, ≤ -> \le) and joins digit groups of one number (7,425,000  1\,000  1 000  14{,}916).
 *
 * Owns: nothing; tokens point into the text they were made from (or into constant strings).
 */
#ifndef RL_MATH_LEX_H
#define RL_MATH_LEX_H

#include <stddef.h>
#include <stdint.h>

typedef enum mx_ttype {
    T_END,    // end of input
    T_NUM,    // number literal (s: as written, may hold separators); x = 1 for a decimal
    T_WORD,   // run of letters
    T_CMD,    // a LaTeX command: x = command kind (CK_*), id = its value
    T_TEXT,   // \text{...}: s = the content
    T_CH,     // one punctuation character: id = the character
    T_REL,    // relation: id = MXR_*
    T_SETL,   // \{
    T_SETR,   // \}
    T_ROW,    // \\ (matrix row break)
    T_BEGIN,  // \begin{name}: s = name
    T_ENDENV, // \end{name}: s = name
    T_PCT,    // % or \%
    T_ELL,    // \ldots, \cdots, ...
    T_OTHER,  // anything else (s: the bytes)
} mx_ttype;

// Command kinds (the x field of a T_CMD token).
enum {
    CK_UNKNOWN,
    CK_FUNC,
    CK_CONST,
    CK_GREEK,
    CK_FRAC,
    CK_SQRT,
    CK_BINOM,
    CK_OP,
    CK_ELL,
    CK_LFLOOR,
    CK_RFLOOR,
    CK_LCEIL,
    CK_RCEIL,
    CK_LANGLE,
    CK_RANGLE,
    CK_EMPTY,
    CK_REALS,
};
// Operator ids of CK_OP.
// OP_OVER and OP_CHOOSE are TeX's infix \over and \choose ({1 \over 2}, {5 \choose 2}).
enum { OP_TIMES = 1, OP_DIV, OP_PM, OP_MP, OP_CUP, OP_CAP, OP_SETMINUS, OP_OVER, OP_CHOOSE };

// Whitespace before a token (sp field).
enum { SP_NONE = 0, SP_SPACE = 1, SP_NEWLINE = 2 };

struct mx_tok {
    uint8_t t;       // mx_ttype
    uint8_t id;      // character, relation, command value
    uint8_t sp;      // whitespace before it (SP_*)
    uint8_t x;       // T_NUM: 1 decimal; T_CMD: command kind
    const char *s;   // its text
    int32_t n;       // length of s
    const char *src; // where it starts in the lexed text (s may point into a constant string)
};

// Tokenizes text[0..len) into toks (capacity cap, the last slot always T_END). Returns the
// number of tokens including T_END, or -1 when cap was too small.
int mx_lex(const char *text, int len, struct mx_tok *toks, int cap);

// Case-insensitive comparison of a token's text with a NUL-terminated word.
int mx_tok_is(const struct mx_tok *t, const char *word);

#endif
