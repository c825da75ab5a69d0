// lcb_decode: base64, zlib and the one pickle shape LiveCodeBench uses. See lcb_decode.h.
#include "rollout/lcb_decode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int rl_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len,
                     rl_err *err) {
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    if (!buf) return rl_fail(err, RL_EINTERNAL, "out of memory");
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0, quads = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') {
            pad++;
            quads++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) {
            free(buf);
            return rl_fail(err, RL_EINPUT, "base64: unexpected character 0x%02x at offset %zu", c,
                           i);
        }
        quads++;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (quads % 4 != 0 || pad > 2) {
        free(buf);
        return rl_fail(err, RL_EINPUT, "base64: length is not a multiple of 4");
    }
    *out = buf;
    *out_len = n;
    return 0;
}

int rl_zlib_inflate(const unsigned char *data, size_t len, size_t max_out, unsigned char **out,
                    size_t *out_len, rl_err *err) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK) return rl_fail(err, RL_EINTERNAL, "zlib: inflateInit failed");
    size_t cap = len * 4 + 1024, n = 0;
    if (cap > max_out + 1) cap = max_out + 1;
    unsigned char *buf = malloc(cap);
    if (!buf) abort();
    zs.next_in = (unsigned char *)data;
    int rc = Z_OK;
    size_t consumed = 0;
    while (rc != Z_STREAM_END) {
        if (n == cap) {
            if (cap > max_out) {
                inflateEnd(&zs);
                free(buf);
                return rl_fail(err, RL_EINPUT, "zlib: inflates to more than %zu bytes", max_out);
            }
            cap = cap * 2 > max_out + 1 ? max_out + 1 : cap * 2;
            buf = realloc(buf, cap);
            if (!buf) abort();
        }
        size_t in_left = len - consumed;
        zs.avail_in = in_left > UINT32_MAX ? UINT32_MAX : (uInt)in_left;
        zs.next_in = (unsigned char *)data + consumed;
        size_t out_room = cap - n;
        zs.avail_out = out_room > UINT32_MAX ? UINT32_MAX : (uInt)out_room;
        zs.next_out = buf + n;
        uInt before_in = zs.avail_in, before_out = zs.avail_out;
        rc = inflate(&zs, Z_NO_FLUSH);
        consumed += before_in - zs.avail_in;
        n += before_out - zs.avail_out;
        if (rc == Z_STREAM_END) break;
        if (rc == Z_BUF_ERROR && zs.avail_in == 0 && consumed == len) {
            inflateEnd(&zs);
            free(buf);
            return rl_fail(err, RL_EINPUT, "zlib: the stream is truncated");
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            const char *msg = zs.msg ? zs.msg : "corrupt stream";
            rl_fail(err, RL_EINPUT, "zlib: %s", msg);
            inflateEnd(&zs);
            free(buf);
            return -1;
        }
    }
    inflateEnd(&zs);
    if (consumed != len) {
        free(buf);
        return rl_fail(err, RL_EINPUT, "zlib: %zu bytes of junk after the stream", len - consumed);
    }
    if (n > max_out) {
        free(buf);
        return rl_fail(err, RL_EINPUT, "zlib: inflates to more than %zu bytes", max_out);
    }
    *out = buf;
    *out_len = n;
    return 0;
}

// ---- pickle ---------------------------------------------------------------------------------

enum {
    OP_PROTO = 0x80,
    OP_FRAME = 0x95,
    OP_SHORT_BINUNICODE = 0x8c,
    OP_BINUNICODE = 'X',
    OP_BINUNICODE8 = 0x8d,
    OP_MEMOIZE = 0x94,
    OP_BINPUT = 'q',
    OP_LONG_BINPUT = 'r',
    OP_STOP = '.',
};

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). Python pickles a str with
// surrogates as surrogatepass UTF-8, which this refuses: the JSON text never holds any.
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (!len || c > 0xF4 || i + (size_t)len > n) return 0;
        uint32_t cp = c & (0x7F >> len);
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

int rl_pickle_string(const unsigned char *data, size_t len, char **out, size_t *out_len,
                     rl_err *err) {
    size_t i = 0;
    const unsigned char *str = NULL;
    uint64_t str_len = 0;
    int have_str = 0;
    for (;;) {
        if (i >= len) return rl_fail(err, RL_EINPUT, "pickle: truncated (no STOP opcode)");
        unsigned char op = data[i];
        size_t at = i++;
        size_t arg = 0;
        switch (op) {
        case OP_PROTO:
            if (at != 0) goto refuse;
            arg = 1;
            break;
        case OP_FRAME:
            arg = 8;
            break;
        case OP_SHORT_BINUNICODE:
        case OP_BINUNICODE:
        case OP_BINUNICODE8: {
            if (have_str) goto refuse;
            int w = op == OP_SHORT_BINUNICODE ? 1 : op == OP_BINUNICODE ? 4 : 8;
            if (len - i < (size_t)w) return rl_fail(err, RL_EINPUT, "pickle: truncated");
            str_len = le(data + i, w);
            i += (size_t)w;
            if (str_len > len - i)
                return rl_fail(err, RL_EINPUT, "pickle: string of %llu bytes is truncated",
                               (unsigned long long)str_len);
            str = data + i;
            i += (size_t)str_len;
            have_str = 1;
            continue;
        }
        case OP_MEMOIZE:
            if (!have_str) goto refuse;
            continue;
        case OP_BINPUT:
        case OP_LONG_BINPUT:
            if (!have_str) goto refuse;
            arg = op == OP_BINPUT ? 1 : 4;
            break;
        case OP_STOP:
            if (!have_str) goto refuse;
            if (i != len)
                return rl_fail(err, RL_EINPUT, "pickle: %zu bytes after the STOP opcode", len - i);
            if (!valid_utf8(str, (size_t)str_len))
                return rl_fail(err, RL_EINPUT, "pickle: the string is not valid UTF-8");
            *out = malloc((size_t)str_len + 1);
            if (!*out) abort();
            memcpy(*out, str, (size_t)str_len);
            (*out)[str_len] = '\0';
            *out_len = (size_t)str_len;
            return 0;
        default:
            goto refuse;
        }
        if (len - i < arg) return rl_fail(err, RL_EINPUT, "pickle: truncated");
        if (op == OP_PROTO && (data[i] < 2 || data[i] > 5))
            return rl_fail(err, RL_EINPUT, "pickle: unsupported protocol %d", data[i]);
        i += arg;
        continue;
    refuse:
        return rl_fail(err, RL_EINPUT,
                       "pickle: opcode 0x%02x at offset %zu is not allowed (only a pickle holding "
                       "one str is accepted; rlpipe never runs a pickle interpreter)",
                       op, at);
    }
}

int rl_lcb_decode_private(const char *b64, size_t len, size_t max_out, char **json_text,
                          rl_err *err) {
    unsigned char *raw = NULL, *pk = NULL;
    size_t raw_len = 0, pk_len = 0, n = 0;
    int rc = rl_base64_decode(b64, len, &raw, &raw_len, err);
    if (rc == 0) rc = rl_zlib_inflate(raw, raw_len, max_out, &pk, &pk_len, err);
    if (rc == 0) rc = rl_pickle_string(pk, pk_len, json_text, &n, err);
    free(raw);
    free(pk);
    return rc;
}
