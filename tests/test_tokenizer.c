// test_tokenizer: the byte tokenizer, the Qwen byte-level BPE against 248 vectors (exact Hugging
// Face parity), added-token matching, malformed tokenizer.json files, UTF-8 helpers, chat
// templates and the `rlpipe tokenize` command. The Qwen files live in tests/data/qwen2-tokenizer
// (tokenizer.json gzip-compressed, inflated here with zlib), so every clone runs every check.
#define _POSIX_C_SOURCE 200809L
#include "kernels/rng.h"
#include "policy/tok_internal.h"
#include "policy/tokenizer.h"
#include "test_util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <utf8proc.h>
#include <zlib.h>

#define QWEN_DATA "tests/data/qwen2-tokenizer" // relative to the project root (ctest's cwd)

static rl_tokenizer *QWEN;  // the Qwen tokenizer.json of QWEN_DATA
static char QWEN_PATH[512]; // its path
static char TMP[256];       // a scratch directory for this run

// ---- helpers ---------------------------------------------------------------------------------

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
    fputc('\n', stderr);
}

// Encodes text (NUL-terminated) and compares with the expected ids.
static int check_encode(const rl_tokenizer *tok, const char *text, const int32_t *want,
                        size_t n_want) {
    int32_t *ids;
    size_t n;
    rl_err err = {0};
    int rc = rl_tokenizer_encode(tok, text, strlen(text), &ids, &n, &err);
    int ok = rc == 0 && ids_equal(ids, n, want, n_want);
    if (!ok) {
        fprintf(stderr, "  text %s (rc %d %s)\n", text, rc, err.msg);
        print_ids("got ", ids, n);
        print_ids("want", want, n_want);
    }
    free(ids);
    return ok;
}

#define CHECK_IDS(tok, text, ...)                                                                  \
    do {                                                                                           \
        static const int32_t want_[] = {__VA_ARGS__};                                              \
        CHECK(check_encode(tok, text, want_, sizeof want_ / sizeof want_[0]), "encode %s", text);  \
    } while (0)

static char *decode_all(const rl_tokenizer *tok, const int32_t *ids, size_t n, size_t *len) {
    char *text = NULL;
    rl_err err = {0};
    if (rl_tokenizer_decode(tok, ids, n, &text, len, &err) != 0) return NULL;
    return text;
}

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

// Inflates the gzip file src into dst. 0 on success.
static int gunzip_to(const char *src, const char *dst) {
    gzFile in = gzopen(src, "rb");
    if (!in) return -1;
    FILE *out = fopen(dst, "wb");
    int rc = out ? 0 : -1;
    char buf[1 << 16];
    int got = 0;
    while (rc == 0 && (got = gzread(in, buf, sizeof buf)) > 0)
        if (fwrite(buf, 1, (size_t)got, out) != (size_t)got) rc = -1;
    if (got < 0) rc = -1;
    if (gzclose(in) != Z_OK) rc = -1;
    if (out && fclose(out) != 0) rc = -1;
    return rc;
}

// GPT-2 bytes_to_unicode, written out independently of the library for the synthetic files.
static void byte_char(int b, char out[3]) {
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80)
        out[0] = (char)cp, out[1] = 0;
    else
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

// A small valid byte-level BPE tokenizer.json: ids 0..255 are the bytes, merges "a b" -> "ab"
// (256), "ab c" -> "abc" (257), "Ġ a" -> "Ġa" (258); extra_added is spliced into added_tokens.
static json_t *synthetic_json(const char *extra_added) {
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char s[3];
        byte_char(b, s);
        json_object_set_new(vocab, s, json_integer(b));
    }
    json_object_set_new(vocab, "ab", json_integer(256));
    json_object_set_new(vocab, "abc", json_integer(257));
    json_object_set_new(vocab, "Ġa", json_integer(258));
    json_t *root = json_pack(
        "{s:s, s:n, s:o, s:{s:s}, s:{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b}]},"
        " s:{s:s}, s:{s:s, s:n, s:o, s:[s, [s, s], s]}}",
        "version", "1.0", "truncation", "added_tokens", json_array(), "normalizer", "type", "NFC",
        "pre_tokenizer", "type", "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex",
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
        "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        "behavior", "Isolated", "invert", 0, "type", "ByteLevel", "add_prefix_space", 0,
        "use_regex", 0, "decoder", "type", "ByteLevel", "model", "type", "BPE", "dropout", "vocab",
        vocab, "merges", "a b", "ab", "c", "Ġ a");
    if (extra_added) {
        json_error_t jerr;
        json_t *extra = json_loads(extra_added, 0, &jerr);
        if (!extra) {
            fprintf(stderr, "bad test JSON: %s\n", jerr.text);
            exit(1);
        }
        json_object_set_new(root, "added_tokens", extra);
    }
    return root;
}

static char *write_json(const char *name, json_t *root) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", TMP, name);
    char *s = json_dumps(root, JSON_COMPACT);
    write_file(path, s, strlen(s));
    free(s);
    json_decref(root);
    return path;
}

// ---- UTF-8 helpers ---------------------------------------------------------------------------

static void check_lossy(const char *in, size_t n, const char *want) {
    size_t m;
    char *out = rl_utf8_lossy(in, n, &m);
    CHECK(m == strlen(want) && memcmp(out, want, m) == 0, "lossy of %zu bytes: got '%s'", n, out);
    free(out);
}

static void test_utf8(void) {
#define FFFD "\xEF\xBF\xBD"
    check_lossy("abc", 3, "abc");
    check_lossy("a\xFF"
                "b",
                3, "a" FFFD "b");
    check_lossy("\xE4\xB8", 2, FFFD); // truncated 3-byte char: one U+FFFD
    check_lossy("\xE4\xB8"
                "a",
                3, FFFD "a");
    check_lossy("\xF0\x80\x80", 3, FFFD FFFD FFFD); // overlong 4-byte lead: each byte alone
    check_lossy("\xED\xA0\x80", 3, FFFD FFFD FFFD); // a surrogate
    check_lossy("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD); // above U+10FFFF
    check_lossy("\xC0\xAF", 2, FFFD FFFD);
    check_lossy("\xF0\x9F\x98", 3, FFFD); // emoji cut after 3 bytes
    check_lossy("\xF0\x9F\x98\x81", 4, "\xF0\x9F\x98\x81");
    check_lossy("\xE2\x82\xAC\x80", 4, "\xE2\x82\xAC" FFFD);
    CHECK(rl_utf8_invalid_at("ab\xC3\xA9", 4) == 4, "valid");
    CHECK(rl_utf8_invalid_at("ab\xC3", 3) == 2, "truncated at 2");
    CHECK(rl_utf8_invalid_at("\xED\xBF\xBF", 3) == 0, "surrogate");
    CHECK(rl_utf8_complete_len("ab\xF0\x9F\x98", 5) == 2, "emoji tail held back");
    CHECK(rl_utf8_complete_len("ab\xF0\x9F\x98\x81", 6) == 6, "complete emoji");
    CHECK(rl_utf8_complete_len("ab\xC3", 3) == 2, "2-byte lead held back");
    CHECK(rl_utf8_complete_len("ab\xFF", 3) == 3, "invalid byte is not pending");
    CHECK(rl_utf8_complete_len("ab\xE4\x41", 4) == 4, "broken sequence is not pending");
    CHECK(rl_utf8_complete_len("", 0) == 0, "empty");
#undef FFFD
}

// ---- byte tokenizer --------------------------------------------------------------------------

static void test_byte_tokenizer(void) {
    rl_tokenizer *tok;
    rl_err err = {0};
    CHECK(rl_tokenizer_load(&tok, "byte", &err) == 0, "load byte: %s", err.msg);
    CHECK(rl_tokenizer_vocab_size(tok) == 272, "vocab %d", rl_tokenizer_vocab_size(tok));
    CHECK(rl_tokenizer_eos_id(tok) == 256, "eos");
    CHECK(rl_tokenizer_kind_of(tok) == RL_TOKENIZER_BYTE, "kind");
    CHECK(rl_tokenizer_special_id(tok, "<think>") == 259, "<think>");
    CHECK(rl_tokenizer_special_id(tok, "</think>") == 260, "</think>");
    CHECK(rl_tokenizer_special_id(tok, "<|im_end|>") == 258, "im_end");
    CHECK(rl_tokenizer_special_id(tok, "<｜User｜>") == 264, "R1 user");
    CHECK(rl_tokenizer_special_id(tok, "<nope>") == -1, "absent");
    CHECK(rl_tokenizer_is_added(tok, 259) && !rl_tokenizer_is_added(tok, 65), "is_added");

    CHECK_IDS(tok, "<think>\n", 259, 10);
    CHECK_IDS(tok, "a<|im_end|><|im_end|>b", 97, 258, 258, 98);
    CHECK_IDS(tok, "<think></think>", 259, 260);
    CHECK_IDS(tok, "<|im_end|", 60, 124, 105, 109, 95, 101, 110, 100, 124); // no closing '>'
    CHECK_IDS(tok, "<<think>>", 60, 259, 62);
    CHECK_IDS(tok, "<｜Assistant｜><think>\n", 265, 259, 10);
    CHECK_IDS(tok, "é", 0xC3, 0xA9);

    // Random bytes (all 256 values) with specials spliced in: exact round trip, and encode
    // never emits a padding id.
    rl_rng r = rl_rng_stream(1234, RL_RNG_DATA, 7, 0);
    for (int iter = 0; iter < 200; iter++) {
        char buf[512];
        size_t n = 0, len = rl_rng_below(&r, 300);
        while (n < len) {
            if (rl_rng_below(&r, 10) == 0) {
                int32_t id = 256 + (int32_t)rl_rng_below(&r, 10);
                size_t k;
                const char *s = rl_tokenizer_token_bytes(tok, id, &k);
                memcpy(buf + n, s, k);
                n += k;
            } else {
                buf[n++] = (char)rl_rng_below(&r, 256);
            }
        }
        int32_t *ids;
        size_t m;
        CHECK(rl_tokenizer_encode(tok, buf, n, &ids, &m, &err) == 0, "encode random");
        int pad = 0;
        for (size_t i = 0; i < m; i++) pad |= ids[i] >= 266;
        CHECK(!pad, "a padding id was emitted");
        size_t back_n;
        char *back = decode_all(tok, ids, m, &back_n);
        CHECK(back && back_n == n && memcmp(back, buf, n) == 0, "byte round trip %d", iter);
        free(back);
        free(ids);
    }
    // Padding ids decode to nothing; out-of-range ids are an input error.
    int32_t pads[] = {97, 266, 271, 98};
    size_t n;
    char *s = decode_all(tok, pads, 4, &n);
    CHECK(s && n == 2 && memcmp(s, "ab", 2) == 0, "padding decodes to empty");
    free(s);
    int32_t bad[] = {272};
    char *t = NULL;
    CHECK(rl_tokenizer_decode(tok, bad, 1, &t, &n, &err) != 0 && err.kind == RL_EINPUT,
          "id 272 rejected");
    int32_t neg[] = {-1};
    CHECK(rl_tokenizer_decode(tok, neg, 1, &t, &n, &err) != 0 && err.kind == RL_EINPUT,
          "id -1 rejected");
    CHECK(rl_tokenizer_token_bytes(tok, 272, &n) == NULL, "token_bytes out of range");
    CHECK(rl_tokenizer_token_bytes(tok, 268, &n) != NULL && n == 0, "padding token bytes");
    rl_tokenizer_free(tok);
}

// ---- Qwen BPE: the 248 parity vectors ---------------------------------------------------------

static void test_qwen_vectors(void) {
    if (!QWEN) return;
    const char *path = QWEN_DATA "/vectors.jsonl";
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0, count = 0, pass = 0, roundtrip = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        json_error_t jerr;
        json_t *v = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &jerr);
        CHECK(v != NULL, "vector line %zu: %s", count + 1, jerr.text);
        if (!v) continue;
        count++;
        const json_t *text = json_object_get(v, "text"), *want = json_object_get(v, "ids");
        size_t nw = json_array_size(want);
        int32_t *w = malloc((nw + 1) * sizeof *w);
        for (size_t i = 0; i < nw; i++) w[i] = (int32_t)json_integer_value(json_array_get(want, i));
        int32_t *ids = NULL;
        size_t n = 0;
        rl_err err = {0};
        const char *s = json_string_value(text);
        size_t len = json_string_length(text);
        int rc = rl_tokenizer_encode(QWEN, s, len, &ids, &n, &err);
        int ok = rc == 0 && ids_equal(ids, n, w, nw);
        pass += ok;
        CHECK(ok, "vector %zu differs (rc %d %s)", count, rc, err.msg);
        if (!ok) {
            print_ids("got ", ids, n);
            print_ids("want", w, nw);
        }
        // decode(encode(x)) == NFC(x) (utf8proc's NFC, applied to the whole text).
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &nfc,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        size_t dn;
        char *back = decode_all(QWEN, ids, n, &dn);
        int rt = m >= 0 && back && dn == (size_t)m && memcmp(back, nfc, dn) == 0;
        roundtrip += rt;
        CHECK(rt, "vector %zu: decode(encode(x)) != NFC(x)", count);
        free(back);
        free(nfc);
        free(ids);
        free(w);
        json_decref(v);
    }
    free(line);
    fclose(f);
    CHECK(count == 248, "expected 248 vectors, read %zu", count);
    fprintf(stderr, "  vectors: %zu/%zu exact, %zu/%zu round trips\n", pass, count, roundtrip,
            count);
}

// Examples quoted in ../shared/notes/qwen2-format.md (llama.cpp vectors, golden tokens).
static void test_qwen_quoted(void) {
    if (!QWEN) return;
    CHECK_IDS(QWEN, "Hello world", 9707, 1879);
    CHECK_IDS(QWEN, " Hello world", 21927, 1879);
    CHECK_IDS(QWEN, "   Hello", 256, 21927);
    CHECK_IDS(QWEN, "\n\n\n", 1406); // the notes list 1572 here, but 1572 is "\t\n" (next line)
    CHECK_IDS(QWEN, "\t\n", 1572);
    CHECK_IDS(QWEN, "😁", 144534);
    CHECK_IDS(QWEN, "333", 18, 18, 18);
    CHECK_IDS(QWEN, "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～", 9707, 11, 379, 64848,
              0, 2585, 525, 498, 26525, 223, 937, 104100, 18493, 22377, 99257, 16, 18, 16, 19, 16,
              20, 16, 35727, 21216);
    CHECK_IDS(QWEN, "hello   world  ", 14990, 256, 1879, 256);
    CHECK_IDS(QWEN, "def f(x):\n    return x * 2\n\n\n", 750, 282, 2075, 982, 262, 470, 856, 353,
              220, 17, 1406);
    // Without <｜User｜> as an added token (this is a Qwen3 file) it is ordinary text: the
    // failure signature from the notes.
    CHECK_IDS(QWEN, "<｜User｜>", 27, 130957, 1474, 130957, 29);
    CHECK(rl_tokenizer_vocab_size(QWEN) == 151669, "vocab %d", rl_tokenizer_vocab_size(QWEN));
    CHECK(rl_tokenizer_eos_id(QWEN) == 151643, "eos %d", rl_tokenizer_eos_id(QWEN));
    CHECK(rl_tokenizer_special_id(QWEN, "<|im_end|>") == 151645, "im_end");
    CHECK(rl_tokenizer_special_id(QWEN, "<think>") == 151667, "think");
    size_t n;
    const char *b = rl_tokenizer_token_bytes(QWEN, 220, &n);
    CHECK(n == 1 && b[0] == ' ', "token 220 is a space");
    b = rl_tokenizer_token_bytes(QWEN, 151645, &n);
    CHECK(n == 10 && memcmp(b, "<|im_end|>", 10) == 0, "added token bytes");
}

// Added tokens inside text, adjacent, touching ordinary text; Unicode whitespace, NFC edges.
static void test_qwen_added_and_edges(void) {
    if (!QWEN) return;
    CHECK_IDS(QWEN, "<|im_start|><|im_end|>", 151644, 151645);
    CHECK_IDS(QWEN, "<think></think>", 151667, 151668);
    CHECK_IDS(QWEN, "x<think>\ny", 87, 151667, 198, 88);
    CHECK_IDS(QWEN, "<tool_call><tool_response>", 151657, 151665);
    CHECK_IDS(QWEN, "<|im_start", 27, 91, 318, 4906);
    // The pieces around an added token are separate: "a <think> b" keeps its spaces.
    int32_t *ids;
    size_t n;
    rl_err err = {0};
    CHECK(rl_tokenizer_encode(QWEN, "a <think> b", 11, &ids, &n, &err) == 0, "encode");
    CHECK(n == 4 && ids[0] == 64 && ids[1] == 220 && ids[2] == 151667 && ids[3] == 293,
          "a <think> b");
    free(ids);
    // Invalid UTF-8 is an input error for the BPE tokenizer.
    CHECK(rl_tokenizer_encode(QWEN, "a\xFFz", 3, &ids, &n, &err) != 0 && err.kind == RL_EINPUT,
          "invalid UTF-8 rejected");
    // NFC: decomposed "é" encodes like the composed one.
    int32_t *a, *b;
    size_t na, nb;
    CHECK(rl_tokenizer_encode(QWEN, "cafe\xCC\x81", 6, &a, &na, &err) == 0, "decomposed");
    CHECK(rl_tokenizer_encode(QWEN, "caf\xC3\xA9", 5, &b, &nb, &err) == 0, "composed");
    CHECK(ids_equal(a, na, b, nb), "NFC applied");
    free(a);
    free(b);
    // Embedded NUL bytes are ordinary bytes.
    CHECK(rl_tokenizer_encode(QWEN, "a\0b", 3, &a, &na, &err) == 0, "NUL");
    size_t dn;
    char *back = decode_all(QWEN, a, na, &dn);
    CHECK(back && dn == 3 && memcmp(back, "a\0b", 3) == 0, "NUL round trip");
    free(back);
    free(a);
    // Decoding a token cut inside a character leaves invalid UTF-8 (kept as bytes).
    CHECK(rl_tokenizer_encode(QWEN, " 😁", 5, &a, &na, &err) == 0 && na == 2 && a[0] == 26525 &&
              a[1] == 223,
          "space + emoji = 2 tokens");
    back = decode_all(QWEN, a, 1, &dn);
    CHECK(back && rl_utf8_invalid_at(back, dn) < dn, "half an emoji is invalid UTF-8");
    free(back);
    free(a);
}

// The quadratic scan and the heap give the same merges; long pre-tokens are fast and exact.
static void test_bpe_methods(void) {
    if (!QWEN) return;
    static const char ALPHA[] = "aaabeeilnorsttt    \n\t.,0123\xC3\xA9\xE4\xB8\x80";
    rl_rng r = rl_rng_stream(99, RL_RNG_DATA, 1, 2);
    int same = 1;
    for (int iter = 0; iter < 2000 && same; iter++) {
        uint8_t w[64];
        size_t n = 1 + rl_rng_below(&r, 64);
        for (size_t i = 0; i < n; i++) w[i] = (uint8_t)ALPHA[rl_rng_below(&r, sizeof ALPHA - 1)];
        rl_ids x = {0}, y = {0};
        tok_bpe_word(QWEN, w, n, &x, 0);
        tok_bpe_word(QWEN, w, n, &y, 2);
        same = ids_equal(x.data, x.len, y.data, y.len);
        CHECK(same, "scan and heap differ at iteration %d", iter);
        rl_ids_free(&x);
        rl_ids_free(&y);
    }
    // 200k spaces is one pre-token; 30k CJK characters without spaces another.
    size_t n1 = 200000;
    char *sp = malloc(n1);
    memset(sp, ' ', n1);
    int32_t *ids;
    size_t n;
    rl_err err = {0};
    double t0 = rl_now();
    CHECK(rl_tokenizer_encode(QWEN, sp, n1, &ids, &n, &err) == 0, "spaces");
    size_t dn;
    char *back = decode_all(QWEN, ids, n, &dn);
    CHECK(back && dn == n1 && memcmp(back, sp, n1) == 0, "spaces round trip");
    free(back);
    free(ids);
    free(sp);
    const char *han = "\xE4\xB8\x80\xE5\x9C\xA8\xE4\xBA\x86\xE6\x88\x91"; // 一在了我
    size_t n2 = 30000 * 3;
    char *cjk = malloc(n2);
    for (size_t i = 0; i < n2; i += 3) memcpy(cjk + i, han + 3 * ((i / 3 * 7) % 4), 3);
    CHECK(rl_tokenizer_encode(QWEN, cjk, n2, &ids, &n, &err) == 0, "cjk");
    back = decode_all(QWEN, ids, n, &dn);
    CHECK(back && dn == n2 && memcmp(back, cjk, n2) == 0, "cjk round trip");
    free(back);
    free(ids);
    free(cjk);
    fprintf(stderr, "  long pre-tokens: %.2f s\n", rl_now() - t0);
}

typedef struct thread_job {
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n;
    int rc;
} thread_job;

static void *encode_job(void *arg) {
    thread_job *j = arg;
    rl_err err = {0};
    for (int k = 0; k < 20; k++) {
        free(j->ids);
        j->rc |= rl_tokenizer_encode(QWEN, j->text, j->len, &j->ids, &j->n, &err);
    }
    return NULL;
}

static void test_concurrent_encode(void) {
    if (!QWEN) return;
    const char *text = "Thread safety: <think>\nLet me compute 12*34 = 408.\n</think> 答案是408。";
    thread_job jobs[3] = {{text, strlen(text), NULL, 0, 0},
                          {text, strlen(text), NULL, 0, 0},
                          {text, strlen(text), NULL, 0, 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, encode_job, &jobs[i]);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        CHECK(jobs[i].rc == 0, "thread %d failed", i);
        CHECK(ids_equal(jobs[i].ids, jobs[i].n, jobs[0].ids, jobs[0].n), "thread %d differs", i);
    }
    for (int i = 0; i < 3; i++) free(jobs[i].ids);
}

// ---- synthetic tokenizer.json: added-token matching, merges, malformed files -----------------

static void test_synthetic(void) {
    // Leftmost beats longest; at one position the longest wins; normalized tokens match after
    // NFC; merges in both spellings.
    const char *added =
        "[{\"id\": 300, \"content\": \"<a>\", \"special\": true, \"normalized\": false},"
        " {\"id\": 301, \"content\": \"<a>b\", \"special\": true, \"normalized\": false},"
        " {\"id\": 302, \"content\": \"bcd\", \"special\": false, \"normalized\": false},"
        " {\"id\": 303, \"content\": \"xb\", \"special\": false, \"normalized\": false},"
        " {\"id\": 304, \"content\": \"\xC3\xA9\", \"special\": false, \"normalized\": true}]";
    char *path = write_json("synthetic.json", synthetic_json(added));
    rl_tokenizer *tok;
    rl_err err = {0};
    CHECK(rl_tokenizer_load(&tok, path, &err) == 0, "load synthetic: %s", err.msg);
    if (!tok) return;
    CHECK(rl_tokenizer_vocab_size(tok) == 305, "vocab %d", rl_tokenizer_vocab_size(tok));
    CHECK_IDS(tok, "abc", 257);
    CHECK_IDS(tok, "<a>bc", 301, 99); // "<a>b" is longer than "<a>" at the same start
    CHECK_IDS(tok, "<a>c", 300, 99);
    CHECK_IDS(tok, "xbcd", 303, 99, 100); // "xb" starts before "bcd": leftmost wins
    CHECK_IDS(tok, "abcd", 97, 302);      // added tokens are split out before any BPE merge
    CHECK_IDS(tok, "a bcd", 97, 32, 302);
    CHECK_IDS(tok, "e\xCC\x81", 304); // normalized token found after NFC
    CHECK_IDS(tok, " a", 258);
    CHECK(rl_tokenizer_special_id(tok, "bcd") == 302, "special_id of a non-special token");
    rl_tokenizer_free(tok);
    // A Split pattern that matches the empty string: like Hugging Face (onig find_iter), an empty
    // match ends the text before it: "abxxc" with "x*" splits as a|b|xx|c, so "ab" is not
    // merged.
    json_t *e = synthetic_json(NULL);
    json_object_set_new(
        json_object_get(
            json_array_get(json_object_get(json_object_get(e, "pre_tokenizer"), "pretokenizers"),
                           0),
            "pattern"),
        "Regex", json_string("x*"));
    path = write_json("empty_match.json", e);
    CHECK(rl_tokenizer_load(&tok, path, &err) == 0, "load empty_match: %s", err.msg);
    if (tok) {
        CHECK_IDS(tok, "abxxc", 97, 98, 120, 120, 99);
        CHECK_IDS(tok, "xxab", 120, 120, 97, 98);
        rl_tokenizer_free(tok);
    }
    // A literal String pattern (PCRE2 once refused these: LITERAL with UCP): "b" isolated splits
    // "abc" as a|b|c, so the "abc" merge cannot happen; "b" inside "a.b" is literal, not a regex.
    e = synthetic_json(NULL);
    json_t *pat = json_object_get(
        json_array_get(json_object_get(json_object_get(e, "pre_tokenizer"), "pretokenizers"), 0),
        "pattern");
    json_object_clear(pat);
    json_object_set_new(pat, "String", json_string("."));
    path = write_json("literal.json", e);
    CHECK(rl_tokenizer_load(&tok, path, &err) == 0, "load literal: %s", err.msg);
    if (tok) {
        CHECK_IDS(tok, "abc", 257);             // no '.': one pre-token, merged
        CHECK_IDS(tok, "a.bc", 97, 46, 98, 99); // '.' isolated, "bc" has no merge of its own
        rl_tokenizer_free(tok);
    }
    // ignore_merges: a pre-token that is a vocab entry is taken whole, merges or not.
    for (int ignore = 0; ignore < 2; ignore++) {
        json_t *g = synthetic_json(NULL);
        json_t *model = json_object_get(g, "model");
        json_object_set_new(json_object_get(model, "vocab"), "xyz", json_integer(259));
        json_object_set_new(model, "ignore_merges", json_boolean(ignore));
        path = write_json("ignore_merges.json", g);
        CHECK(rl_tokenizer_load(&tok, path, &err) == 0, "load ignore_merges: %s", err.msg);
        if (!tok) continue;
        if (ignore)
            CHECK_IDS(tok, "xyz abc", 259, 32, 257);
        else
            CHECK_IDS(tok, "xyz abc", 120, 121, 122, 32, 257);
        rl_tokenizer_free(tok);
    }
    // A directory holding tokenizer.json loads too.
    char dir[600];
    snprintf(dir, sizeof dir, "%s/dir", TMP);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/dir/tokenizer.json", TMP);
    json_t *j = synthetic_json(NULL);
    char *s = json_dumps(j, 0);
    write_file(dir, s, strlen(s));
    free(s);
    json_decref(j);
    snprintf(dir, sizeof dir, "%s/dir", TMP);
    CHECK(rl_tokenizer_load(&tok, dir, &err) == 0, "load dir: %s", err.msg);
    rl_tokenizer_free(tok);
}

// Each case must fail with RL_EINPUT, name the file and say what is wrong, without crashing.
static void expect_bad(const char *name, const char *data, size_t n, const char *needle) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", TMP, name);
    write_file(path, data, n);
    rl_tokenizer *tok = NULL;
    rl_err err = {0};
    int rc = rl_tokenizer_load(&tok, path, &err);
    CHECK(rc != 0 && tok == NULL, "%s: loaded", name);
    CHECK(err.kind == RL_EINPUT, "%s: kind %d", name, err.kind);
    CHECK(strstr(err.msg, name) != NULL, "%s: message does not name the file: %s", name, err.msg);
    CHECK(strstr(err.msg, needle) != NULL, "%s: message lacks '%s': %s", name, needle, err.msg);
    rl_tokenizer_free(tok);
}

static void expect_bad_json(const char *name, json_t *root, const char *needle) {
    char *s = json_dumps(root, JSON_COMPACT);
    expect_bad(name, s, strlen(s), needle);
    free(s);
    json_decref(root);
}

static void test_malformed(void) {
    json_t *good = synthetic_json(NULL);
    char *s = json_dumps(good, JSON_COMPACT);
    json_decref(good);
    expect_bad("truncated.json", s, strlen(s) / 2, "invalid JSON");
    expect_bad("empty.json", "", 0, "invalid JSON");
    expect_bad("array.json", "[1, 2]", 6, "top level");
    free(s);

    json_t *j = synthetic_json(NULL);
    json_object_del(j, "model");
    expect_bad_json("no_model.json", j, "model");
    j = synthetic_json(NULL);
    json_object_del(json_object_get(j, "model"), "vocab");
    expect_bad_json("no_vocab.json", j, "model.vocab");
    j = synthetic_json(NULL);
    json_object_set_new(json_object_get(j, "model"), "vocab", json_array());
    expect_bad_json("vocab_array.json", j, "model.vocab");
    j = synthetic_json(NULL);
    json_object_set_new(json_object_get(json_object_get(j, "model"), "vocab"), "zz",
                        json_string("7"));
    expect_bad_json("vocab_string_id.json", j, "integer");
    j = synthetic_json(NULL);
    json_object_set_new(json_object_get(json_object_get(j, "model"), "vocab"), "zz",
                        json_integer(-5));
    expect_bad_json("vocab_negative.json", j, "outside");
    j = synthetic_json(NULL);
    json_object_set_new(json_object_get(json_object_get(j, "model"), "vocab"), "zz",
                        json_integer(3));
    expect_bad_json("vocab_dup_id.json", j, "used by two");
    j = synthetic_json(NULL);
    json_array_append_new(json_object_get(json_object_get(j, "model"), "merges"),
                          json_string("q zz"));
    expect_bad_json("merge_unknown.json", j, "not in model.vocab");
    j = synthetic_json(NULL);
    json_array_append_new(json_object_get(json_object_get(j, "model"), "merges"),
                          json_string("q r")); // both exist, "qr" does not
    expect_bad_json("merge_result_unknown.json", j, "\"qr\"");
    j = synthetic_json(NULL);
    json_array_append_new(json_object_get(json_object_get(j, "model"), "merges"),
                          json_string("abc"));
    expect_bad_json("merge_no_space.json", j, "merges[3]");
    j = synthetic_json(NULL);
    json_array_append_new(json_object_get(json_object_get(j, "model"), "merges"), json_integer(4));
    expect_bad_json("merge_int.json", j, "merges[3]");
    j = synthetic_json(NULL);
    json_object_set_new(json_object_get(j, "model"), "merges", json_object());
    expect_bad_json("merges_object.json", j, "model.merges");
    j = synthetic_json(NULL);
    json_object_set_new(json_object_get(j, "model"), "type", json_string("WordPiece"));
    expect_bad_json("wordpiece.json", j, "BPE");
    j = synthetic_json(NULL);
    json_object_set_new(j, "normalizer", json_pack("{s:s}", "type", "NFKC"));
    expect_bad_json("nfkc.json", j, "NFKC");
    j = synthetic_json(NULL);
    json_object_set_new(j, "pre_tokenizer", json_pack("{s:s}", "type", "Whitespace"));
    expect_bad_json("whitespace.json", j, "pre_tokenizer");
    j = synthetic_json(NULL);
    json_object_set_new(
        json_object_get(
            json_array_get(json_object_get(json_object_get(j, "pre_tokenizer"), "pretokenizers"),
                           0),
            "pattern"),
        "Regex", json_string("(unclosed"));
    expect_bad_json("bad_regex.json", j, "does not compile");
    j = synthetic_json("[{\"id\": \"x\", \"content\": \"<a>\"}]");
    expect_bad_json("added_id_string.json", j, "added_tokens[0]");
    j = synthetic_json("[{\"id\": 300, \"content\": \"\"}]");
    expect_bad_json("added_empty.json", j, "added_tokens[0].content");
    j = synthetic_json("[{\"id\": 300, \"content\": \"<m>\", \"lstrip\": true}]");
    expect_bad_json("added_lstrip.json", j, "lstrip");
    j = synthetic_json("{\"a\": 1}");
    expect_bad_json("added_object.json", j, "added_tokens");
    j = synthetic_json(NULL);
    json_object_set_new(json_object_get(j, "model"), "byte_fallback", json_true());
    expect_bad_json("byte_fallback.json", j, "byte_fallback");

    // Split patterns: empty (an unterminated buffer reached PCRE2 once), not a string, huge.
    const char *const split_cases[][3] = {
        {"split_empty_regex.json", "Regex", "pretokenizers[0].pattern.Regex is empty"},
        {"split_empty_string.json", "String", "pretokenizers[0].pattern.String is empty"},
    };
    for (int c = 0; c < 2; c++) {
        j = synthetic_json(NULL);
        json_t *pat = json_object_get(
            json_array_get(json_object_get(json_object_get(j, "pre_tokenizer"), "pretokenizers"),
                           0),
            "pattern");
        json_object_clear(pat);
        json_object_set_new(pat, split_cases[c][1], json_string(""));
        expect_bad_json(split_cases[c][0], j, split_cases[c][2]);
    }
    j = synthetic_json(NULL);
    json_object_set_new(
        json_object_get(
            json_array_get(json_object_get(json_object_get(j, "pre_tokenizer"), "pretokenizers"),
                           0),
            "pattern"),
        "Regex", json_integer(5));
    expect_bad_json("split_regex_int.json", j, "pretokenizers[0].pattern must be");
    char *huge = malloc(70001);
    memset(huge, 'a', 70000);
    huge[70000] = '\0';
    j = synthetic_json(NULL);
    json_object_set_new(
        json_object_get(
            json_array_get(json_object_get(json_object_get(j, "pre_tokenizer"), "pretokenizers"),
                           0),
            "pattern"),
        "Regex", json_string(huge));
    free(huge);
    expect_bad_json("split_regex_huge.json", j, "longer than 65536 bytes");

    // A FIFO in place of tokenizer.json is refused at once, not waited on (a child with an alarm
    // turns a hang into a failure).
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/fifo_tokenizer.json", TMP);
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        rl_tokenizer *t = NULL;
        rl_err e = {0};
        int r = rl_tokenizer_load(&t, fifo, &e);
        _exit(r != 0 && e.kind == RL_EINPUT && strstr(e.msg, "fifo_tokenizer.json") &&
                      strstr(e.msg, "not a regular file")
                  ? 0
                  : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "FIFO tokenizer.json: %s",
          WIFSIGNALED(status) ? "hung (killed by the alarm)" : "no error");

    rl_tokenizer *tok = NULL;
    rl_err err = {0};
    CHECK(rl_tokenizer_load(&tok, "/nonexistent/tokenizer.json", &err) != 0 &&
              err.kind == RL_EINPUT && strstr(err.msg, "/nonexistent/tokenizer.json"),
          "missing file: %s", err.msg);
    char empty_dir[600];
    snprintf(empty_dir, sizeof empty_dir, "%s/emptydir", TMP);
    mkdir(empty_dir, 0700);
    CHECK(rl_tokenizer_load(&tok, empty_dir, &err) != 0 && err.kind == RL_EINPUT &&
              strstr(err.msg, "emptydir/tokenizer.json"),
          "directory without tokenizer.json: %s", err.msg);
}

// ---- chat templates --------------------------------------------------------------------------

static void test_chat(void) {
    CHECK(rl_chat_template_from_name("chatml") == RL_CHAT_CHATML, "chatml");
    CHECK(rl_chat_template_from_name("r1") == RL_CHAT_R1, "r1");
    CHECK(rl_chat_template_from_name("plain") == RL_CHAT_PLAIN, "plain");
    CHECK(rl_chat_template_from_name("llama") == RL_CHAT_INVALID, "unknown");
    rl_tokenizer *byte;
    rl_err err = {0};
    rl_tokenizer_load(&byte, "byte", &err);
    char *out;
    CHECK(rl_chat_render(RL_CHAT_CHATML, byte, NULL, "Hello", &out, &err) == 0, "render");
    CHECK(strcmp(out, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                      "helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                      "<|im_start|>assistant\n") == 0,
          "chatml text: %s", out);
    free(out);
    rl_chat_render(RL_CHAT_CHATML, byte, "Be brief.", "Hi", &out, &err);
    CHECK(strcmp(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                      "<|im_start|>assistant\n") == 0,
          "chatml with system: %s", out);
    free(out);
    rl_chat_render(RL_CHAT_R1, byte, NULL, "Hello", &out, &err);
    CHECK(strcmp(out, "<｜begin▁of▁sentence｜><｜User｜>Hello<｜Assistant｜><think>\n") == 0,
          "r1 text: %s", out);
    free(out);
    rl_chat_render(RL_CHAT_R1, byte, "SYS", "Q", &out, &err);
    CHECK(strcmp(out, "<｜begin▁of▁sentence｜>SYS<｜User｜>Q<｜Assistant｜><think>\n") == 0,
          "r1 with system: %s", out);
    free(out);
    rl_chat_render(RL_CHAT_PLAIN, byte, NULL, "2+2=", &out, &err);
    CHECK(strcmp(out, "2+2=") == 0, "plain: %s", out);
    free(out);
    rl_chat_render(RL_CHAT_PLAIN, byte, "Solve.", "2+2=", &out, &err);
    CHECK(strcmp(out, "Solve.\n2+2=") == 0, "plain with system: %s", out);
    free(out);

    // Byte tokenizer ids of the templates.
    rl_ids ids = {0};
    CHECK(rl_chat_encode(RL_CHAT_R1, byte, NULL, "Hi", &ids, &err) == 0, "r1 encode");
    static const int32_t r1_byte[] = {262, 264, 'H', 'i', 265, 259, 10};
    CHECK(ids_equal(ids.data, ids.len, r1_byte, 7), "r1 byte ids");
    ids.len = 0;
    rl_chat_encode(RL_CHAT_CHATML, byte, "S", "Hi", &ids, &err);
    static const int32_t chatml_byte[] = {257, 's', 'y', 's', 't', 'e', 'm', 10,  'S', 258, 10,
                                          257, 'u', 's', 'e', 'r', 10,  'H', 'i', 258, 10,  257,
                                          'a', 's', 's', 'i', 's', 't', 'a', 'n', 't', 10};
    CHECK(ids_equal(ids.data, ids.len, chatml_byte, sizeof chatml_byte / 4), "chatml byte ids");
    rl_ids_free(&ids);
    CHECK(rl_chat_template_check(RL_CHAT_R1, byte, &err) == 0, "byte has the r1 tokens");
    CHECK(rl_chat_template_check(RL_CHAT_CHATML, byte, &err) == 0, "byte has the chatml tokens");

    int32_t stops[RL_CHAT_MAX_STOPS];
    int n = rl_chat_stop_ids(RL_CHAT_CHATML, byte, stops);
    CHECK(n == 2 && stops[0] == 258 && stops[1] == 256, "chatml byte stops");
    n = rl_chat_stop_ids(RL_CHAT_R1, byte, stops);
    CHECK(n == 2 && stops[0] == 263 && stops[1] == 256, "r1 byte stops");
    n = rl_chat_stop_ids(RL_CHAT_PLAIN, byte, stops);
    CHECK(n == 3 && stops[0] == 256, "plain byte stops");
    rl_tokenizer_free(byte);

    if (!QWEN) return;
    // The Qwen2.5-Instruct example of the notes, §4.4.
    ids = (rl_ids){0};
    CHECK(rl_chat_encode(RL_CHAT_CHATML, QWEN, NULL, "Hello", &ids, &err) == 0, "chatml qwen");
    static const int32_t chatml_qwen[] = {151644, 8948,   198,   2610,   525,   1207,   16948, 11,
                                          3465,   553,    54364, 14817,  13,    1446,   525,   264,
                                          10950,  17847,  13,    151645, 198,   151644, 872,   198,
                                          9707,   151645, 198,   151644, 77091, 198};
    CHECK(ids_equal(ids.data, ids.len, chatml_qwen, sizeof chatml_qwen / 4), "chatml qwen ids");
    if (!ids_equal(ids.data, ids.len, chatml_qwen, sizeof chatml_qwen / 4))
        print_ids("got", ids.data, ids.len);
    rl_ids_free(&ids);
    n = rl_chat_stop_ids(RL_CHAT_CHATML, QWEN, stops);
    CHECK(n == 2 && stops[0] == 151645 && stops[1] == 151643, "chatml qwen stops");
    n = rl_chat_stop_ids(RL_CHAT_R1, QWEN, stops);
    CHECK(n == 1 && stops[0] == 151643, "r1 stops with a Qwen file");
    // This Qwen3 file lacks R1's tokens: check says so, render still works.
    CHECK(rl_chat_template_check(RL_CHAT_R1, QWEN, &err) != 0 && err.kind == RL_EINPUT &&
              strstr(err.msg, "begin▁of▁sentence"),
          "r1 check with a Qwen file: %s", err.msg);
    CHECK(rl_chat_template_check(RL_CHAT_CHATML, QWEN, &err) == 0, "chatml check");
}

// The R1-Distill tokenizer: the shared file with ids 151643..151649 relabelled as in the notes
// (§4.3). Checks the R1 example ids.
static void test_r1_tokenizer(void) {
    if (!QWEN) return;
    size_t n;
    char *data = test_read_file(QWEN_PATH, &n);
    CHECK(data != NULL, "read %s", QWEN_PATH);
    if (!data) return;
    static const char *const FROM[] = {
        "\"<|endoftext|>\"",      "\"<|im_start|>\"",  "\"<|im_end|>\"", "\"<|object_ref_start|>\"",
        "\"<|object_ref_end|>\"", "\"<|box_start|>\"", "\"<|box_end|>\""};
    static const char *const TO[] = {"\"<｜end▁of▁sentence｜>\"",
                                     "\"<｜User｜>\"",
                                     "\"<｜Assistant｜>\"",
                                     "\"<｜begin▁of▁sentence｜>\"",
                                     "\"<|EOT|>\"",
                                     "\"<think>\"",
                                     "\"</think>\""};
    // Relabel within the added_tokens header only (it precedes "normalizer"); drop the Qwen3
    // <think> entries (151667/151668) by renaming them to unused literals.
    char *end = strstr(data, "\"normalizer\"");
    CHECK(end != NULL, "normalizer key");
    if (!end) return free(data);
    size_t head = (size_t)(end - data);
    char *out = malloc(n + 4096);
    size_t k = 0, i = 0;
    while (i < head) {
        int hit = -1;
        for (int t = 0; t < 7 && hit < 0; t++)
            if (strncmp(data + i, FROM[t], strlen(FROM[t])) == 0) hit = t;
        const char *rep = NULL;
        size_t skip = 0;
        if (hit >= 0)
            rep = TO[hit], skip = strlen(FROM[hit]);
        else if (strncmp(data + i, "\"<think>\"", 9) == 0)
            rep = "\"<qwen3_think>\"", skip = 9;
        else if (strncmp(data + i, "\"</think>\"", 10) == 0)
            rep = "\"</qwen3_think>\"", skip = 10;
        if (rep) {
            memcpy(out + k, rep, strlen(rep));
            k += strlen(rep);
            i += skip;
        } else {
            out[k++] = data[i++];
        }
    }
    memcpy(out + k, data + head, n - head);
    k += n - head;
    free(data);
    char path[600];
    snprintf(path, sizeof path, "%s/r1-tokenizer.json", TMP);
    write_file(path, out, k);
    free(out);
    rl_tokenizer *r1;
    rl_err err = {0};
    CHECK(rl_tokenizer_load(&r1, path, &err) == 0, "load r1: %s", err.msg);
    if (!r1) return;
    rl_ids ids = {0};
    CHECK(rl_chat_encode(RL_CHAT_R1, r1, NULL, "Hello", &ids, &err) == 0, "r1 encode");
    static const int32_t want[] = {151646, 151644, 9707, 151645, 151648, 198};
    CHECK(ids_equal(ids.data, ids.len, want, 6), "r1 example ids");
    rl_ids_free(&ids);
    CHECK(rl_chat_template_check(RL_CHAT_R1, r1, &err) == 0, "r1 check: %s", err.msg);
    CHECK(rl_tokenizer_eos_id(r1) == 151643, "r1 eos");
    int32_t stops[RL_CHAT_MAX_STOPS];
    CHECK(rl_chat_stop_ids(RL_CHAT_R1, r1, stops) == 1 && stops[0] == 151643, "r1 stop");
    rl_tokenizer_free(r1);
}

// ---- the CLI ---------------------------------------------------------------------------------

// Runs `rlpipe tokenize ARGS < input`; returns the exit code, output in *out (malloc'd).
static int run_cli(const char *args, const char *input, char **out) {
    char in_path[600], out_path[600], cmd[2048];
    snprintf(in_path, sizeof in_path, "%s/cli_in.jsonl", TMP);
    snprintf(out_path, sizeof out_path, "%s/cli_out.jsonl", TMP);
    write_file(in_path, input, strlen(input));
    snprintf(cmd, sizeof cmd, "%s tokenize %s < %s > %s 2>/dev/null", test_rlpipe_bin(), args,
             in_path, out_path);
    int status = system(cmd);
    *out = test_read_file(out_path, NULL);
    if (!*out) *out = calloc(1, 1);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cli(void) {
    char *out;
    int rc = run_cli("--tokenizer byte",
                     "{\"text\": \"<think>\\nhi\"}\n{\"text\": \"\"}\nnot json\n{\"ids\": [1]}\n"
                     "{\"text\": \"\\u00e9\"}\n",
                     &out);
    CHECK(rc == 2, "bad lines give exit 2, got %d", rc);
    const char *want = "{\"ids\":[259,10,104,105]}\n{\"ids\":[]}\n";
    CHECK(strncmp(out, want, strlen(want)) == 0, "byte encode output: %s", out);
    CHECK(strstr(out, "{\"error\":\"line 3: invalid JSON") != NULL, "line 3 error: %s", out);
    CHECK(strstr(out, "{\"error\":\"line 4: expected an object with a string \\\"text\\\"\"}") !=
              NULL,
          "line 4 error: %s", out);
    CHECK(strstr(out, "{\"ids\":[195,169]}\n") != NULL, "line 5 still processed: %s", out);
    free(out);

    rc = run_cli("--tokenizer byte --decode",
                 "{\"ids\": [259, 10, 104, 105]}\n{\"ids\": [195]}\n{\"ids\": [999]}\n"
                 "{\"ids\": [195, 169]}\n",
                 &out);
    CHECK(rc == 2, "decode with a bad id: exit %d", rc);
    CHECK(strncmp(out,
                  "{\"text\":\"<think>\\nhi\"}\n{\"text\":\"\xEF\xBF\xBD\"}\n{\"error\":\"line 3:",
                  strlen("{\"text\":\"<think>\\nhi\"}\n{\"text\":\"\xEF\xBF\xBD\"}\n{\"error\":"
                         "\"line 3:")) == 0,
          "decode output: %s", out);
    CHECK(strstr(out, "{\"text\":\"\xC3\xA9\"}\n") != NULL, "decode é: %s", out);
    free(out);

    rc = run_cli("--tokenizer /nonexistent/tok.json", "{\"text\": \"x\"}\n", &out);
    CHECK(rc == 2 && out[0] == '\0', "bad tokenizer path: exit %d", rc);
    free(out);
    rc = run_cli("--tokenizer byte --template nope", "", &out);
    CHECK(rc == 2, "bad template: exit %d", rc);
    free(out);
    rc = run_cli("--tokenizer byte --template r1", "{\"text\": \"Hi\"}\n", &out);
    CHECK(rc == 0 && strcmp(out, "{\"ids\":[262,264,72,105,265,259,10]}\n") == 0,
          "template r1: %d %s", rc, out);
    free(out);

    if (!QWEN) return;
    char args[700];
    snprintf(args, sizeof args, "--tokenizer %s", QWEN_PATH);
    rc = run_cli(args,
                 "{\"text\": \"Hello world\"}\n{\"text\": \"caf\\u00e9 \\ud83d\\ude01 我想\"}\n"
                 "{\"text\": \"<|im_start|>user\\n\"}\n",
                 &out);
    CHECK(rc == 0, "qwen encode exit %d", rc);
    CHECK(strncmp(out, "{\"ids\":[9707,1879]}\n", 20) == 0, "qwen encode: %s", out);
    // Feed the ids back through --decode: the texts come back.
    char *dec_in = malloc(strlen(out) + 1);
    strcpy(dec_in, out);
    free(out);
    char dir[700];
    snprintf(dir, sizeof dir, "--decode --tokenizer %s", TMP); // a directory: not a tokenizer
    rc = run_cli(dir, dec_in, &out);
    CHECK(rc == 2, "directory without tokenizer.json: exit %d", rc);
    free(out);
    snprintf(args, sizeof args, "--decode --tokenizer %s", QWEN_PATH);
    rc = run_cli(args, dec_in, &out);
    CHECK(rc == 0, "qwen decode exit %d", rc);
    const char *texts = "{\"text\":\"Hello world\"}\n{\"text\":\"café 😁 我想\"}\n"
                        "{\"text\":\"<|im_start|>user\\n\"}\n";
    CHECK(strcmp(out, texts) == 0, "qwen round trip: %s", out);
    free(out);
    free(dec_in);
}

// Conversations: one system + user pair renders exactly as rl_chat_render; longer ones follow
// the Hugging Face templates (Qwen2.5 chatml, DeepSeek-R1-Distill).
static void test_chat_messages(void) {
    rl_tokenizer *byte;
    rl_err err = {0};
    rl_tokenizer_load(&byte, "byte", &err);
    const rl_chat_template T[3] = {RL_CHAT_PLAIN, RL_CHAT_CHATML, RL_CHAT_R1};
    for (int t = 0; t < 3; t++) {
        char *a, *b;
        rl_chat_msg one[2] = {{"system", "Be brief."}, {"user", "Hi there"}};
        rl_chat_render(T[t], byte, "Be brief.", "Hi there", &a, &err);
        CHECK(rl_chat_render_messages(T[t], byte, one, 2, &b, &err) == 0, "%s", err.msg);
        CHECK(strcmp(a, b) == 0, "template %d, system+user: %s vs %s", t, a, b);
        free(a);
        free(b);
        rl_chat_render(T[t], byte, NULL, "Q?", &a, &err);
        CHECK(rl_chat_render_messages(T[t], byte, &one[1], 1, &b, &err) == 0, "%s", err.msg);
        free(b);
        rl_chat_msg u = {"user", "Q?"};
        rl_chat_render_messages(T[t], byte, &u, 1, &b, &err);
        CHECK(strcmp(a, b) == 0, "template %d, user only: %s vs %s", t, a, b);
        free(a);
        free(b);
    }
    rl_chat_msg conv[3] = {
        {"user", "1+1?"}, {"assistant", "<think>\nsum\n</think>\n2"}, {"user", "and 2+2?"}};
    char *out;
    rl_chat_render_messages(RL_CHAT_CHATML, byte, conv, 3, &out, &err);
    CHECK(strcmp(out, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                      "helpful assistant.<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n"
                      "<|im_start|>assistant\n<think>\nsum\n</think>\n2<|im_end|>\n"
                      "<|im_start|>user\nand 2+2?<|im_end|>\n<|im_start|>assistant\n") == 0,
          "chatml conversation: %s", out);
    free(out);
    rl_chat_render_messages(RL_CHAT_R1, byte, conv, 3, &out, &err);
    CHECK(strcmp(out, "<｜begin▁of▁sentence｜><｜User｜>1+1?<｜Assistant｜>\n2<｜end▁of▁sentence｜>"
                      "<｜User｜>and 2+2?<｜Assistant｜><think>\n") == 0,
          "r1 conversation drops the reasoning: %s", out);
    free(out);
    rl_chat_render_messages(RL_CHAT_PLAIN, byte, conv, 3, &out, &err);
    CHECK(strcmp(out, "1+1?\n<think>\nsum\n</think>\n2\nand 2+2?") == 0, "plain: %s", out);
    free(out);
    rl_chat_msg bad = {"tool", "x"};
    CHECK(rl_chat_render_messages(RL_CHAT_CHATML, byte, &bad, 1, &out, &err) != 0 &&
              err.kind == RL_EINPUT && strstr(err.msg, "'tool'"),
          "unknown role named: %s", err.msg);
    rl_tokenizer_free(byte);
}

int main(void) {
    snprintf(TMP, sizeof TMP, "/tmp/rlpipe-test-tokenizer-XXXXXX");
    if (!mkdtemp(TMP)) {
        perror("mkdtemp");
        return 1;
    }
    // The tokenizer ships compressed: inflate it into the scratch directory and load it there.
    snprintf(QWEN_PATH, sizeof QWEN_PATH, "%s/qwen", TMP);
    mkdir(QWEN_PATH, 0700);
    snprintf(QWEN_PATH, sizeof QWEN_PATH, "%s/qwen/tokenizer.json", TMP);
    if (gunzip_to(QWEN_DATA "/tokenizer.json.gz", QWEN_PATH) != 0) {
        fprintf(stderr, "FAIL cannot inflate %s/tokenizer.json.gz (run from the project root)\n",
                QWEN_DATA);
        return 1;
    }
    rl_err err = {0};
    double t0 = rl_now();
    if (rl_tokenizer_load(&QWEN, QWEN_PATH, &err) != 0) {
        fprintf(stderr, "FAIL cannot load %s: %s\n", QWEN_PATH, err.msg);
        return 1;
    }
    fprintf(stderr, "  loaded %s in %.2f s\n", QWEN_PATH, rl_now() - t0);
    RUN(test_utf8);
    RUN(test_byte_tokenizer);
    RUN(test_synthetic);
    RUN(test_malformed);
    RUN(test_chat);
    RUN(test_qwen_vectors);
    RUN(test_qwen_quoted);
    RUN(test_qwen_added_and_edges);
    RUN(test_bpe_methods);
    RUN(test_concurrent_encode);
    RUN(test_r1_tokenizer);
    RUN(test_cli);
    RUN(test_chat_messages);
    rl_tokenizer_free(QWEN);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", TMP);
    return test_summary();
}
