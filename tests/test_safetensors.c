// Tests for policy/safetensors: conversions against independent references, F32/BF16 round
// trips, F16 files built byte by byte, every malformed-file case, truncation and corruption
// (run under ASan: never an out-of-bounds read), sharded checkpoints and the shard writer.
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/rng.h"
#include "policy/safetensors.h"
#include "test_util.h"

// ---- scratch directory and file helpers --------------------------------------------------------

static char g_tmp[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void tmp_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_tmp, name);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        exit(1);
    }
    if (n && fwrite(p, 1, n, fp) != n) exit(1);
    fclose(fp);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, fp);
    fclose(fp);
    return b;
}

// A safetensors file from a header string and raw data; header_len overrides N when nonzero.
static void write_st(const char *path, const char *header, const void *data, size_t data_len,
                     uint64_t header_len) {
    size_t hl = strlen(header);
    uint64_t n = header_len ? header_len : hl;
    unsigned char *b = calloc(1, 8 + hl + data_len + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
    memcpy(b + 8, header, hl);
    if (data_len) memcpy(b + 8 + hl, data, data_len);
    write_bytes(path, b, 8 + hl + data_len);
    free(b);
}

static uint32_t fbits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bitsf(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// ---- independent references ---------------------------------------------------------------------

// BF16 rounding by comparing distances in double: the two bf16 neighbours of x are its
// truncation and the next value up in magnitude (2^128 stands for "overflow to inf").
static uint16_t ref_bf16(float x) {
    uint32_t u = fbits(x);
    if (isnan(x)) return 0x7fc0; // only NaN-ness is compared for NaNs
    uint32_t lo_bits = u & 0xffff0000u;
    if (lo_bits == u) return (uint16_t)(u >> 16);
    double ax = fabs((double)x);
    double lo = fabs((double)bitsf(lo_bits));
    uint32_t hi_bits = lo_bits + 0x10000u;
    double hi =
        ((hi_bits & 0x7f800000u) == 0x7f800000u) ? ldexp(1.0, 128) : fabs((double)bitsf(hi_bits));
    double dlo = ax - lo, dhi = hi - ax;
    if (dlo < dhi) return (uint16_t)(lo_bits >> 16);
    if (dhi < dlo) return (uint16_t)(hi_bits >> 16);
    return ((lo_bits >> 16) & 1) ? (uint16_t)(hi_bits >> 16) : (uint16_t)(lo_bits >> 16);
}

// IEEE half by its definition: (-1)^s * 2^(e-15) * (1 + m/1024), subnormal 2^-14 * m/1024.
static double ref_f16(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m / 1024.0, -14);
    else
        v = ldexp(1.0 + (double)m / 1024.0, e - 15);
    return s ? -v : v;
}

static void test_bf16_rounding(void) {
    rl_rng r = rl_rng_stream(7, RL_RNG_INIT, 1, 0);
    int bad = 0;
    for (int i = 0; i < 400000; i++) {
        uint32_t u = rl_rng_u32(&r);
        if (i % 4 == 1) u = (u & 0xffff0000u) | 0x8000u;     // exact ties, odd and even
        if (i % 4 == 2) u = (u & 0x807fffffu) | 0x7f000000u; // near the overflow edge
        float x = bitsf(u);
        uint16_t got = rl_f32_to_bf16(x);
        if (isnan(x)) {
            if (!isnan(rl_bf16_to_f32(got)) || (got >> 15) != (u >> 31)) bad++;
        } else if (got != ref_bf16(x)) {
            if (bad++ < 5) CHECK(0, "bf16(%08x) = %04x, want %04x", u, got, ref_bf16(x));
        }
    }
    CHECK(bad == 0, "%d bf16 mismatches", bad);
    // Hand-computed cases.
    CHECK(rl_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    CHECK(rl_f32_to_bf16(bitsf(0x3f808000u)) == 0x3f80, "tie to even (down)");
    CHECK(rl_f32_to_bf16(bitsf(0x3f818000u)) == 0x3f82, "tie to even (up)");
    CHECK(rl_f32_to_bf16(bitsf(0x3f808001u)) == 0x3f81, "above the tie rounds up");
    CHECK(rl_f32_to_bf16(bitsf(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to inf");
    CHECK(rl_f32_to_bf16(-INFINITY) == 0xff80, "-inf");
    CHECK(rl_f32_to_bf16(-0.0f) == 0x8000, "-0");
    CHECK(rl_f32_to_bf16(bitsf(0x00000001u)) == 0x0000, "smallest subnormal rounds to 0");
    uint16_t n1 = rl_f32_to_bf16(bitsf(0x7f800001u)); // payload only in the dropped bits
    CHECK(isnan(rl_bf16_to_f32(n1)), "NaN with a low payload stays NaN (%04x)", n1);
    CHECK(isnan(rl_bf16_to_f32(rl_f32_to_bf16(bitsf(0xffc00000u)))), "negative qNaN");
    CHECK(rl_bf16_to_f32(0x4049) == 3.140625f, "bf16 3.140625");
}

static void test_f16_exhaustive(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = rl_f16_to_f32((uint16_t)h);
        double want = ref_f16((uint16_t)h);
        if (isnan(want)) {
            if (!isnan(got) || !signbit(got) != !(h & 0x8000)) bad++;
        } else if ((double)got != want || !signbit(got) != !(h & 0x8000)) {
            if (bad++ < 5) CHECK(0, "f16 %04x -> %.9g, want %.9g", h, got, want);
        }
    }
    CHECK(bad == 0, "%d f16 mismatches", bad);
    CHECK(rl_f16_to_f32(0x0001) == 0x1p-24f, "smallest subnormal");
    CHECK(rl_f16_to_f32(0x7bff) == 65504.0f, "largest finite");
}

// ---- round trips ----------------------------------------------------------------------------------

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];
} spec;

static const spec SPECS[] = {
    {"model.embed_tokens.weight", 2, {7, 5}},
    {"model.layers.0.self_attn.q_proj.bias", 1, {6}},
    {"scalar", 0, {0}},
    {"empty", 2, {0, 3}},
    {"model.layers.0.mlp.up_proj.weight", 3, {2, 3, 4}},
    {"a.z", 1, {1}},
};
#define NSPECS ((int)(sizeof SPECS / sizeof SPECS[0]))

static size_t spec_numel(const spec *s) {
    size_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= (size_t)s->shape[d];
    return n;
}

// Random tensors with a few special values sprinkled in.
static float **make_data(rl_st_out_tensor *out, uint64_t seed) {
    float **data = calloc(NSPECS, sizeof *data);
    rl_rng r = rl_rng_stream(seed, RL_RNG_INIT, 2, 0);
    for (int i = 0; i < NSPECS; i++) {
        size_t n = spec_numel(&SPECS[i]);
        data[i] = malloc((n + 1) * sizeof(float));
        for (size_t j = 0; j < n; j++) data[i][j] = (float)(rl_rng_normal(&r) * 3.0);
        out[i].name = SPECS[i].name;
        out[i].ndim = SPECS[i].ndim;
        for (int d = 0; d < SPECS[i].ndim; d++) out[i].shape[d] = SPECS[i].shape[d];
        out[i].data = data[i];
    }
    data[4][0] = INFINITY;
    data[4][1] = bitsf(0x3f808000u); // a tie
    data[4][2] = -0.0f;
    data[4][3] = bitsf(0x00000300u); // subnormal
    data[4][4] = NAN;
    return data;
}

static void free_data(float **data) {
    for (int i = 0; i < NSPECS; i++) free(data[i]);
    free(data);
}

static void roundtrip(rl_st_dtype dt) {
    rl_st_out_tensor out[NSPECS];
    memset(out, 0, sizeof out);
    float **data = make_data(out, dt == RL_ST_F32 ? 11 : 12);
    char path[256];
    tmp_path(path, sizeof path, dt == RL_ST_F32 ? "rt_f32.safetensors" : "rt_bf16.safetensors");
    rl_err err = {0};
    CHECK(rl_st_write(path, out, NSPECS, dt, &err) == 0, "write: %s", err.msg);

    size_t n;
    unsigned char *raw = read_bytes(path, &n);
    CHECK(raw && n >= 8, "read back raw");
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
    CHECK(hl % 8 == 0, "header length %llu padded to a multiple of 8", (unsigned long long)hl);
    free(raw);

    rl_st_file *f = NULL;
    CHECK(rl_st_open(&f, path, &err) == 0, "open: %s", err.msg);
    if (!f) goto out;
    CHECK(rl_st_count(f) == NSPECS, "count %d", rl_st_count(f));
    CHECK(rl_st_metadata(f, "format") && strcmp(rl_st_metadata(f, "format"), "pt") == 0,
          "__metadata__ format pt");
    // Data is laid out in the order given.
    for (int i = 0; i < NSPECS; i++) {
        const rl_st_tensor *t = rl_st_get(f, SPECS[i].name);
        CHECK(t != NULL, "tensor %s present", SPECS[i].name);
        if (!t) continue;
        CHECK(t->dtype == dt, "%s dtype", t->name);
        CHECK(t->ndim == SPECS[i].ndim, "%s ndim", t->name);
        for (int d = 0; d < t->ndim; d++)
            CHECK(t->shape[d] == SPECS[i].shape[d], "%s dim", t->name);
        size_t ne = spec_numel(&SPECS[i]);
        CHECK(t->numel == ne, "%s numel", t->name);
        if (i > 0) {
            const rl_st_tensor *p = rl_st_get(f, SPECS[i - 1].name);
            CHECK(p && p->begin + p->nbytes == t->begin, "%s follows %s", t->name, p->name);
        }
        float *got = malloc((ne + 1) * sizeof(float));
        CHECK(rl_st_read_f32(f, t, got, ne, &err) == 0, "read %s: %s", t->name, err.msg);
        int bad = 0;
        for (size_t j = 0; j < ne; j++) {
            float x = data[i][j];
            uint32_t want = dt == RL_ST_F32 ? fbits(x) : (uint32_t)ref_bf16(x) << 16;
            if (isnan(x) ? !isnan(got[j]) : fbits(got[j]) != want) bad++;
        }
        CHECK(bad == 0, "%s: %d values differ", t->name, bad);
        // Wrong element count is an error naming file and tensor.
        if (ne > 0) {
            rl_err e2 = {0};
            CHECK(rl_st_read_f32(f, t, got, ne - 1, &e2) == -1 && e2.kind == RL_EINPUT &&
                      strstr(e2.msg, t->name) && strstr(e2.msg, path),
                  "n_elems mismatch: %s", e2.msg);
        }
        free(got);
    }
    CHECK(rl_st_get(f, "nope") == NULL, "absent name");
    for (int i = 1; i < rl_st_count(f); i++)
        CHECK(rl_st_at(f, i - 1)->begin <= rl_st_at(f, i)->begin, "rl_st_at in offset order");
    rl_st_close(f);
out:
    free_data(data);
}

static void test_roundtrip_f32(void) {
    roundtrip(RL_ST_F32);
}
static void test_roundtrip_bf16(void) {
    roundtrip(RL_ST_BF16);
}

// ---- an F16 / BF16 / F32 file built byte by byte ---------------------------------------------------

static void test_read_f16_file(void) {
    const uint16_t halves[9] = {0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000,
                                0x7bff, 0x7c00, 0xfc00, 0x8000};
    const float want[9] = {0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f,  1.0f, -2.0f,
                           65504.0f, INFINITY,        -INFINITY, -0.0f};
    unsigned char data[18 + 4 + 12 + 2];
    for (int i = 0; i < 9; i++) {
        data[2 * i] = (unsigned char)(halves[i] & 0xff);
        data[2 * i + 1] = (unsigned char)(halves[i] >> 8);
    }
    // BF16 [2]: 0x3fc0 = 1.5, 0xc0a0 = -5.0
    const unsigned char bf[4] = {0xc0, 0x3f, 0xa0, 0xc0};
    memcpy(data + 18, bf, 4);
    // F32 [3], placed at an unaligned file offset below.
    const float f3[3] = {0.25f, -7.5f, 1e-30f};
    memcpy(data + 22, f3, 12);
    // F16 NaN [1]
    data[34] = 0x00;
    data[35] = 0x7e;
    char header[512];
    snprintf(header, sizeof header,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[9],\"data_offsets\":[0,18]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[18,22]},"
             "\"f\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[22,34]},"
             "\"n\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[34,36]}}");
    // Pad with spaces so the F32 tensor (buffer offset 22) sits at an odd file offset.
    while ((8 + strlen(header) + 22) % 4 != 1) strcat(header, " ");
    char path[256];
    tmp_path(path, sizeof path, "f16.safetensors");
    write_st(path, header, data, sizeof data, 0);
    rl_err err = {0};
    rl_st_file *f = NULL;
    CHECK(rl_st_open(&f, path, &err) == 0, "open: %s", err.msg);
    if (!f) return;
    float h[9], b[2], x[3], nan1;
    CHECK(rl_st_read_f32(f, rl_st_get(f, "h"), h, 9, &err) == 0, "read h: %s", err.msg);
    for (int i = 0; i < 9; i++)
        CHECK(fbits(h[i]) == fbits(want[i]), "f16 %04x -> %g, want %g", halves[i], h[i], want[i]);
    CHECK(rl_st_read_f32(f, rl_st_get(f, "b"), b, 2, &err) == 0, "read b");
    CHECK(b[0] == 1.5f && b[1] == -5.0f, "bf16 values %g %g", b[0], b[1]);
    CHECK(rl_st_read_f32(f, rl_st_get(f, "f"), x, 3, &err) == 0, "read f");
    CHECK(memcmp(x, f3, 12) == 0, "f32 values at an unaligned offset");
    CHECK(rl_st_read_f32(f, rl_st_get(f, "n"), &nan1, 1, &err) == 0, "read n");
    CHECK(isnan(nan1) && rl_st_get(f, "n")->ndim == 0, "f16 NaN scalar");
    rl_st_close(f);
}

// ---- malformed files ------------------------------------------------------------------------------

static void expect_fail(const char *path, const char *what, const char *s1, const char *s2) {
    rl_err err = {0};
    rl_st_file *f = NULL;
    int rc = rl_st_open(&f, path, &err);
    if (getenv("TEST_VERBOSE")) fprintf(stderr, "  %s: %s\n", what, err.msg);
    CHECK(rc == -1 && f == NULL, "%s: open should fail", what);
    CHECK(err.kind == RL_EINPUT, "%s: kind %d", what, err.kind);
    CHECK(strstr(err.msg, path) != NULL, "%s: message names the file: %s", what, err.msg);
    if (s1) CHECK(strstr(err.msg, s1) != NULL, "%s: message lacks \"%s\": %s", what, s1, err.msg);
    if (s2) CHECK(strstr(err.msg, s2) != NULL, "%s: message lacks \"%s\": %s", what, s2, err.msg);
    rl_st_close(f);
}

typedef struct {
    const char *what;
    const char *header;
    size_t data_len;
    const char *s1, *s2;
} bad_case;

#define E(name, body) "\"" name "\":{" body "}"
#define F32_2         "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"

static const bad_case BAD[] = {
    {"not JSON", "{\"wq\": ", 0, "not valid", NULL},
    {"not an object", "[1, 2]", 0, "expected a JSON object", NULL},
    {"empty header", "", 0, "not valid", NULL},
    {"bad UTF-8", "{\"w\xff\":{" F32_2 "}}", 8, "UTF-8", NULL},
    {"entry not object", "{\"wq\": 5}", 0, "wq", "expected an object"},
    {"missing dtype", "{" E("wq", "\"shape\":[2],\"data_offsets\":[0,8]") "}", 8, "wq", "dtype"},
    {"missing shape", "{" E("wq", "\"dtype\":\"F32\",\"data_offsets\":[0,8]") "}", 8, "wq",
     "shape"},
    {"missing offsets", "{" E("wq", "\"dtype\":\"F32\",\"shape\":[2]") "}", 8, "wq",
     "data_offsets"},
    {"dtype not string", "{" E("wq", "\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]") "}", 8,
     "wq", "dtype"},
    {"unknown dtype", "{" E("wq", "\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]") "}", 8,
     "wq", "unknown dtype \"F31\""},
    {"shape not array", "{" E("wq", "\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]") "}", 8,
     "wq", "shape"},
    {"negative dim", "{" E("wq", "\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]") "}",
     8, "wq", "shape[1]"},
    {"real dim", "{" E("wq", "\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]") "}", 8,
     "wq", "shape[0]"},
    {"string dim", "{" E("wq", "\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]") "}", 8,
     "wq", "shape[0]"},
    {"too many dims",
     "{" E("wq", "\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]") "}", 8,
     "wq", "dimensions"},
    {"offsets one number", "{" E("wq", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]") "}",
     8, "wq", "data_offsets"},
    {"offsets strings",
     "{" E("wq", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]") "}", 8, "wq",
     "data_offsets"},
    {"offsets negative", "{" E("wq", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]") "}",
     8, "wq", "data_offsets"},
    {"end < begin", "{" E("wq", "\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]") "}", 8,
     "wq", "< begin"},
    {"past the end", "{" E("wq", "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]") "}", 8,
     "wq", "past the data buffer"},
    {"offset beyond 2^63",
     "{" E("wq", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551615]") "}",
     8, "not valid", NULL},
    {"size mismatch", "{" E("wq", "\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]") "}", 8,
     "wq", "needs 12"},
    {"product overflow",
     "{" E("wq",
           "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]") "}",
     8, "wq", "overflow"},
    {"bits overflow",
     "{" E("wq", "\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,8]") "}",
     8, "wq", "overflow"},
    {"F4 half byte", "{" E("wq", "\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]") "}", 2,
     "wq", "fraction"},
    {"overlap",
     "{" E("a", F32_2) "," E("b", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]") "}",
     12, "\"b\"", "overlaps tensor \"a\""},
    {"same range twice", "{" E("a", F32_2) "," E("b", F32_2) "}", 8, "overlaps", NULL},
    {"gap",
     "{" E("a", F32_2) "," E("b", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]") "}",
     20, "\"b\"", "gap after tensor \"a\""},
    {"not starting at 0", "{" E("a", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]") "}",
     12, "\"a\"", "gap"},
    {"trailing bytes", "{" E("wq", F32_2) "}", 12, "4 trailing byte(s) after the last tensor",
     "wq"},
    {"duplicate name",
     "{" E("model.layers.0.self_attn.q_proj.weight",
           F32_2) "," E("model.layers.0.self_attn.q_proj.weight", F32_2) "}",
     8, "duplicate", "model.layers.0.self_attn.q_proj.weight"},
    {"duplicate escaped name", "{" E("a\\\"b", F32_2) ",  " E("a\\\"b", F32_2) "}", 8, "duplicate",
     "a\"b"},
    {"metadata not object", "{\"__metadata__\": [1]," E("wq", F32_2) "}", 8, "__metadata__", NULL},
    {"metadata value not string", "{\"__metadata__\": {\"format\": 1}," E("wq", F32_2) "}", 8,
     "__metadata__", "format"},
    {"nul byte in header", "{\"wq\\u0000\":{" F32_2 "}}", 8, "not valid", NULL},
};

static void test_bad_files(void) {
    char path[256];
    unsigned char zeros[64] = {0};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%02zu.safetensors", g_tmp, i);
        write_st(path, BAD[i].header, zeros, BAD[i].data_len, 0);
        expect_fail(path, BAD[i].what, BAD[i].s1, BAD[i].s2);
    }
    tmp_path(path, sizeof path, "short.safetensors");
    write_bytes(path, "\x05\0\0\0\0", 5);
    expect_fail(path, "shorter than 8 bytes", "too short", NULL);
    write_bytes(path, "", 0);
    expect_fail(path, "empty file", "too short", NULL);
    tmp_path(path, sizeof path, "beyond.safetensors");
    write_st(path, "{}", NULL, 0, 1000);
    expect_fail(path, "header length beyond the file", "beyond the file end", NULL);
    tmp_path(path, sizeof path, "huge.safetensors");
    write_st(path, "{}", NULL, 0, 200000000ull);
    expect_fail(path, "header length above the limit", "100,000,000", NULL);
    write_st(path, "{}", NULL, 0, 0xffffffffffffffffull);
    expect_fail(path, "header length 2^64-1", "100,000,000", NULL);
    tmp_path(path, sizeof path, "missing.safetensors");
    expect_fail(path, "missing file", "cannot open", NULL);
    expect_fail(g_tmp, "a directory", "not a regular file", NULL);

    // An empty-but-valid file opens: no tensors, header padded with spaces.
    tmp_path(path, sizeof path, "empty_ok.safetensors");
    write_st(path, "{\"__metadata__\":{\"format\":\"pt\"}}     ", NULL, 0, 0);
    rl_err err = {0};
    rl_st_file *f = NULL;
    CHECK(rl_st_open(&f, path, &err) == 0 && rl_st_count(f) == 0, "empty file opens: %s", err.msg);
    rl_st_close(f);

    // Unreadable dtypes open (layout is checked) but do not read as float32.
    tmp_path(path, sizeof path, "i32.safetensors");
    unsigned char d8[8] = {1, 0, 0, 0, 2, 0, 0, 0};
    write_st(path,
             "{" E("model.layers.0.mlp.qweight", "\"dtype\":\"I32\",\"shape\":[2],"
                                                 "\"data_offsets\":[0,8]") "}",
             d8, 8, 0);
    f = NULL;
    CHECK(rl_st_open(&f, path, &err) == 0, "I32 file opens: %s", err.msg);
    if (f) {
        float out[2];
        rl_err e2 = {0};
        CHECK(rl_st_read_f32(f, rl_st_at(f, 0), out, 2, &e2) == -1 && e2.kind == RL_EINPUT &&
                  strstr(e2.msg, "I32") && strstr(e2.msg, "model.layers.0.mlp.qweight") &&
                  strstr(e2.msg, path),
              "I32 read error: %s", e2.msg);
        rl_st_close(f);
    }
}

// ---- truncation and corruption never crash ---------------------------------------------------------

static void test_truncation_and_corruption(void) {
    rl_st_out_tensor out[NSPECS];
    memset(out, 0, sizeof out);
    float **data = make_data(out, 21);
    char good[256], path[256];
    tmp_path(good, sizeof good, "good.safetensors");
    tmp_path(path, sizeof path, "cut.safetensors");
    rl_err err = {0};
    CHECK(rl_st_write(good, out, NSPECS, RL_ST_BF16, &err) == 0, "write: %s", err.msg);
    free_data(data);
    size_t n;
    unsigned char *b = read_bytes(good, &n);
    if (!b) return;
    int failed_ok = 0;
    for (size_t cut = 0; cut < n; cut++) {
        write_bytes(path, b, cut);
        rl_st_file *f = NULL;
        rl_err e = {0};
        int rc = rl_st_open(&f, path, &e);
        if (rc == -1 && e.kind == RL_EINPUT && strstr(e.msg, path)) failed_ok++;
        rl_st_close(f);
    }
    CHECK(failed_ok == (int)n, "%d of %zu truncations rejected cleanly", failed_ok, n);
    // One byte too many is also rejected (the data must end where the last tensor ends).
    unsigned char *longer = malloc(n + 1);
    memcpy(longer, b, n);
    longer[n] = 0;
    write_bytes(path, longer, n + 1);
    expect_fail(path, "one extra byte", "after the last tensor", NULL);
    free(longer);

    // Random corruption of header bytes: either a clean RL_EINPUT or a file that reads fully.
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | b[i];
    rl_rng r = rl_rng_stream(5, RL_RNG_DATA, 3, 0);
    int opened = 0, rejected = 0;
    unsigned char *c = malloc(n);
    for (int it = 0; it < 3000; it++) {
        memcpy(c, b, n);
        int flips = 1 + (int)rl_rng_below(&r, 3);
        for (int k = 0; k < flips; k++) {
            size_t pos = it % 10 == 0 ? rl_rng_below(&r, 8) : 8 + rl_rng_below(&r, (uint32_t)hl);
            c[pos] = (unsigned char)(it % 3 == 0 ? "0123456789[]{},:\"-e. "[rl_rng_below(&r, 21)]
                                                 : rl_rng_u32(&r));
        }
        write_bytes(path, c, n);
        rl_st_file *f = NULL;
        rl_err e = {0};
        if (rl_st_open(&f, path, &e) == 0) {
            opened++;
            for (int i = 0; i < rl_st_count(f); i++) {
                const rl_st_tensor *t = rl_st_at(f, i);
                float *dst = malloc((t->numel + 1) * sizeof(float));
                rl_err e2 = {0};
                if (rl_st_read_f32(f, t, dst, t->numel, &e2) != 0)
                    CHECK(e2.kind == RL_EINPUT, "read error kind");
                free(dst);
            }
            rl_st_close(f);
        } else {
            CHECK(e.kind == RL_EINPUT && strstr(e.msg, path), "corruption %d: %s", it, e.msg);
            rejected++;
        }
    }
    if (getenv("TEST_VERBOSE"))
        fprintf(stderr, "  corruption: %d opened, %d rejected\n", opened, rejected);
    CHECK(rejected > 2000, "most corruptions rejected (%d opened, %d rejected)", opened, rejected);
    free(c);
    free(b);
}

// ---- sharded checkpoints --------------------------------------------------------------------------

static void mkdir_p(const char *p) {
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        perror(p);
        exit(1);
    }
}

static void write_text(const char *path, const char *text) {
    write_bytes(path, text, strlen(text));
}

// Three shards with DeepSeek-style names (5 + 6 digits) plus one oddly named shard.
static void make_sharded(const char *dir, float **data, rl_st_out_tensor *out) {
    mkdir_p(dir);
    char p[300];
    rl_err err = {0};
    snprintf(p, sizeof p, "%s/model-00001-of-000003.safetensors", dir);
    CHECK(rl_st_write(p, out, 2, RL_ST_BF16, &err) == 0, "shard 1: %s", err.msg);
    snprintf(p, sizeof p, "%s/model-00002-of-000003.safetensors", dir);
    CHECK(rl_st_write(p, out + 2, 2, RL_ST_F32, &err) == 0, "shard 2: %s", err.msg);
    snprintf(p, sizeof p, "%s/extra.safetensors", dir);
    CHECK(rl_st_write(p, out + 4, 2, RL_ST_F32, &err) == 0, "shard 3: %s", err.msg);
    (void)data;
}

static const char *GOOD_INDEX =
    "{\"metadata\": {\"total_size\": 1234},\n \"weight_map\": {\n"
    "  \"model.embed_tokens.weight\": \"model-00001-of-000003.safetensors\",\n"
    "  \"model.layers.0.self_attn.q_proj.bias\": \"model-00001-of-000003.safetensors\",\n"
    "  \"scalar\": \"model-00002-of-000003.safetensors\",\n"
    "  \"empty\": \"model-00002-of-000003.safetensors\",\n"
    "  \"model.layers.0.mlp.up_proj.weight\": \"extra.safetensors\",\n"
    "  \"a.z\": \"extra.safetensors\"}}\n";

static void expect_ckpt_fail(const char *path, const char *what, const char *s1, const char *s2) {
    rl_err err = {0};
    rl_ckpt *c = NULL;
    int rc = rl_ckpt_open(&c, path, &err);
    if (getenv("TEST_VERBOSE")) fprintf(stderr, "  %s: %s\n", what, err.msg);
    CHECK(rc == -1 && c == NULL, "%s: open should fail", what);
    CHECK(err.kind == RL_EINPUT, "%s: kind %d (%s)", what, err.kind, err.msg);
    if (s1) CHECK(strstr(err.msg, s1) != NULL, "%s: message lacks \"%s\": %s", what, s1, err.msg);
    if (s2) CHECK(strstr(err.msg, s2) != NULL, "%s: message lacks \"%s\": %s", what, s2, err.msg);
    rl_ckpt_close(c);
}

static void test_sharded(void) {
    rl_st_out_tensor out[NSPECS];
    memset(out, 0, sizeof out);
    float **data = make_data(out, 31);
    char dir[256], p[300];
    tmp_path(dir, sizeof dir, "sharded");
    make_sharded(dir, data, out);
    snprintf(p, sizeof p, "%s/%s", dir, RL_ST_INDEX_NAME);
    write_text(p, GOOD_INDEX);

    rl_err err = {0};
    rl_ckpt *c = NULL;
    CHECK(rl_ckpt_open(&c, dir, &err) == 0, "open sharded: %s", err.msg);
    if (c) {
        CHECK(rl_ckpt_count(c) == NSPECS, "count %d", rl_ckpt_count(c));
        for (int i = 1; i < rl_ckpt_count(c); i++)
            CHECK(strcmp(rl_ckpt_name(c, i - 1), rl_ckpt_name(c, i)) < 0, "names sorted");
        CHECK(rl_ckpt_has(c, "scalar") && !rl_ckpt_has(c, "lm_head.weight"), "has");
        for (int i = 0; i < NSPECS; i++) {
            size_t ne = spec_numel(&SPECS[i]);
            float *got = malloc((ne + 1) * sizeof(float));
            CHECK(rl_ckpt_read(c, SPECS[i].name, SPECS[i].shape, SPECS[i].ndim, got, &err) == 0,
                  "read %s: %s", SPECS[i].name, err.msg);
            int bad = 0;
            for (size_t j = 0; j < ne; j++) {
                float x = data[i][j];
                uint32_t want = i < 2 ? (uint32_t)ref_bf16(x) << 16 : fbits(x);
                if (isnan(x) ? !isnan(got[j]) : fbits(got[j]) != want) bad++;
            }
            CHECK(bad == 0, "%s: %d values differ", SPECS[i].name, bad);
            free(got);
        }
        // Wrong shape: names the shard file and the tensor.
        float tmp[64];
        int64_t wrong[2] = {5, 7};
        rl_err e = {0};
        CHECK(rl_ckpt_read(c, "model.embed_tokens.weight", wrong, 2, tmp, &e) == -1 &&
                  e.kind == RL_EINPUT && strstr(e.msg, "model-00001-of-000003.safetensors") &&
                  strstr(e.msg, "model.embed_tokens.weight") && strstr(e.msg, "[7, 5]") &&
                  strstr(e.msg, "[5, 7]"),
              "wrong shape: %s", e.msg);
        int64_t wrong_rank[1] = {35};
        CHECK(rl_ckpt_read(c, "model.embed_tokens.weight", wrong_rank, 1, tmp, &e) == -1,
              "wrong rank");
        // Missing tensor: names the checkpoint and the tensor.
        int64_t s1[1] = {4};
        CHECK(rl_ckpt_read(c, "lm_head.weight", s1, 1, tmp, &e) == -1 && e.kind == RL_EINPUT &&
                  strstr(e.msg, "lm_head.weight") && strstr(e.msg, dir) &&
                  strstr(e.msg, "not found"),
              "missing: %s", e.msg);
        const rl_st_file *sf = NULL;
        const rl_st_tensor *t = rl_ckpt_find(c, "a.z", &sf);
        CHECK(t && sf && strstr(rl_st_path(sf), "extra.safetensors"), "find gives the shard");
        rl_ckpt_close(c);
    }
    // The index path itself opens too.
    c = NULL;
    CHECK(rl_ckpt_open(&c, p, &err) == 0 && rl_ckpt_count(c) == NSPECS, "open via index: %s",
          err.msg);
    rl_ckpt_close(c);
    // A single .safetensors file path opens as a one-file checkpoint.
    snprintf(p, sizeof p, "%s/extra.safetensors", dir);
    c = NULL;
    CHECK(rl_ckpt_open(&c, p, &err) == 0 && rl_ckpt_count(c) == 2, "open single file: %s", err.msg);
    rl_ckpt_close(c);
    free_data(data);
}

// Each bad index in its own directory holding the same good shards.
static void bad_index(const char *tag, const char *index, const char *what, const char *s1,
                      const char *s2) {
    rl_st_out_tensor out[NSPECS];
    memset(out, 0, sizeof out);
    float **data = make_data(out, 41);
    char dir[256], p[300];
    snprintf(dir, sizeof dir, "%s/bad_%s", g_tmp, tag);
    make_sharded(dir, data, out);
    snprintf(p, sizeof p, "%s/%s", dir, RL_ST_INDEX_NAME);
    write_text(p, index);
    expect_ckpt_fail(dir, what, s1, s2);
    free_data(data);
}

static char *index_with(const char *from, const char *to) {
    const char *at = strstr(GOOD_INDEX, from);
    size_t a = (size_t)(at - GOOD_INDEX), nf = strlen(from), nt = strlen(to);
    char *s = malloc(strlen(GOOD_INDEX) - nf + nt + 1);
    memcpy(s, GOOD_INDEX, a);
    memcpy(s + a, to, nt);
    strcpy(s + a + nt, at + nf);
    return s;
}

static void test_bad_indexes(void) {
    struct {
        const char *tag, *from, *to, *what, *s1, *s2;
    } cases[] = {
        {"ghost", "\"a.z\": \"extra.safetensors\"",
         "\"a.z\": \"extra.safetensors\", \"ghost.weight\": \"extra.safetensors\"",
         "listed but absent", "ghost.weight", "extra.safetensors"},
        {"unlisted", ",\n  \"a.z\": \"extra.safetensors\"", "", "stored but not listed", "\"a.z\"",
         RL_ST_INDEX_NAME},
        {"moved", "\"a.z\": \"extra.safetensors\"",
         "\"a.z\": \"model-00002-of-000003.safetensors\"", "mapped to the wrong shard", "a.z",
         "model-00002-of-000003.safetensors"},
        {"dotdot", "\"a.z\": \"extra.safetensors\"", "\"a.z\": \"../extra.safetensors\"",
         "path traversal", "../extra.safetensors", "a.z"},
        {"inner_dotdot", "\"a.z\": \"extra.safetensors\"", "\"a.z\": \"sub/../../x.safetensors\"",
         "inner path traversal", "sub/../../x.safetensors", NULL},
        {"absolute", "\"a.z\": \"extra.safetensors\"", "\"a.z\": \"/etc/passwd\"", "absolute path",
         "/etc/passwd", NULL},
        {"noshard", "\"a.z\": \"extra.safetensors\"", "\"a.z\": \"nowhere.safetensors\"",
         "missing shard", "nowhere.safetensors", "cannot open"},
        {"notstring", "\"a.z\": \"extra.safetensors\"", "\"a.z\": 3", "shard not a string", "a.z",
         "shard file name"},
        {"dupkey", "\"a.z\": \"extra.safetensors\"",
         "\"a.z\": \"extra.safetensors\", \"a.z\": \"extra.safetensors\"", "duplicate entry",
         "duplicate", "a.z"},
        {"nomap", "\"weight_map\"", "\"weights\"", "no weight_map", "weight_map", NULL},
        {"notjson", "}}\n", "}\n", "not JSON", RL_ST_INDEX_NAME, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *idx = index_with(cases[i].from, cases[i].to);
        bad_index(cases[i].tag, idx, cases[i].what, cases[i].s1, cases[i].s2);
        free(idx);
    }
    // A corrupt shard is reported with the shard's own path.
    char dir[256], p[300];
    tmp_path(dir, sizeof dir, "bad_shard");
    rl_st_out_tensor out[NSPECS];
    memset(out, 0, sizeof out);
    float **data = make_data(out, 43);
    make_sharded(dir, data, out);
    snprintf(p, sizeof p, "%s/%s", dir, RL_ST_INDEX_NAME);
    write_text(p, GOOD_INDEX);
    snprintf(p, sizeof p, "%s/extra.safetensors", dir);
    write_bytes(p, "\x01\0\0", 3);
    expect_ckpt_fail(dir, "corrupt shard", "extra.safetensors", "too short");
    // The same tensor stored in two shards: named with both shards.
    tmp_path(dir, sizeof dir, "bad_twice");
    make_sharded(dir, data, out);
    snprintf(p, sizeof p, "%s/%s", dir, RL_ST_INDEX_NAME);
    write_text(p, GOOD_INDEX);
    rl_st_out_tensor two[3] = {out[2], out[3], out[5]};
    rl_err err = {0};
    snprintf(p, sizeof p, "%s/model-00002-of-000003.safetensors", dir);
    CHECK(rl_st_write(p, two, 3, RL_ST_F32, &err) == 0, "rewrite shard 2: %s", err.msg);
    expect_ckpt_fail(dir, "tensor in two shards",
                     "model-00002-of-000003.safetensors: tensor \"a.z\"", "extra.safetensors");
    free_data(data);
    // A directory with neither file.
    tmp_path(dir, sizeof dir, "nothing");
    mkdir_p(dir);
    expect_ckpt_fail(dir, "empty directory", RL_ST_SINGLE_NAME, RL_ST_INDEX_NAME);
}

// ---- the checkpoint writer -------------------------------------------------------------------------

static int file_exists(const char *dir, const char *name) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void check_ckpt_contents(const char *dir, float **data, rl_st_dtype dt, const char *what) {
    rl_err err = {0};
    rl_ckpt *c = NULL;
    CHECK(rl_ckpt_open(&c, dir, &err) == 0, "%s: open: %s", what, err.msg);
    if (!c) return;
    CHECK(rl_ckpt_count(c) == NSPECS, "%s: count", what);
    for (int i = 0; i < NSPECS; i++) {
        size_t ne = spec_numel(&SPECS[i]);
        float *got = malloc((ne + 1) * sizeof(float));
        CHECK(rl_ckpt_read(c, SPECS[i].name, SPECS[i].shape, SPECS[i].ndim, got, &err) == 0,
              "%s: read %s: %s", what, SPECS[i].name, err.msg);
        int bad = 0;
        for (size_t j = 0; j < ne; j++) {
            float x = data[i][j];
            uint32_t want = dt == RL_ST_BF16 ? (uint32_t)ref_bf16(x) << 16 : fbits(x);
            if (isnan(x) ? !isnan(got[j]) : fbits(got[j]) != want) bad++;
        }
        CHECK(bad == 0, "%s: %s: %d values differ", what, SPECS[i].name, bad);
        free(got);
    }
    rl_ckpt_close(c);
}

static void test_ckpt_write(void) {
    rl_st_out_tensor out[NSPECS];
    memset(out, 0, sizeof out);
    float **data = make_data(out, 51);
    char dir[256];
    tmp_path(dir, sizeof dir, "written");
    rl_err err = {0};
    // 100-byte shards: embed (140 B as F32) alone, then the rest greedily.
    CHECK(rl_ckpt_write(dir, out, NSPECS, RL_ST_F32, 100, &err) == 0, "sharded write: %s", err.msg);
    CHECK(file_exists(dir, RL_ST_INDEX_NAME) && !file_exists(dir, RL_ST_SINGLE_NAME),
          "index written");
    CHECK(file_exists(dir, "model-00001-of-00003.safetensors") &&
              file_exists(dir, "model-00003-of-00003.safetensors") &&
              !file_exists(dir, "model-00004-of-00004.safetensors"),
          "three shards");
    check_ckpt_contents(dir, data, RL_ST_F32, "sharded F32");
    CHECK(rl_ckpt_write(dir, out, NSPECS, RL_ST_BF16, 0, &err) == 0, "single write: %s", err.msg);
    CHECK(file_exists(dir, RL_ST_SINGLE_NAME) && !file_exists(dir, RL_ST_INDEX_NAME),
          "single replaces the index");
    check_ckpt_contents(dir, data, RL_ST_BF16, "single BF16");
    CHECK(rl_ckpt_write(dir, out, NSPECS, RL_ST_BF16, 64, &err) == 0, "re-shard: %s", err.msg);
    CHECK(!file_exists(dir, RL_ST_SINGLE_NAME), "sharding removes a stale model.safetensors");
    check_ckpt_contents(dir, data, RL_ST_BF16, "sharded BF16");

    // Writer input errors.
    rl_st_out_tensor dup[2] = {out[0], out[0]};
    char p[300];
    snprintf(p, sizeof p, "%s/dup.safetensors", g_tmp);
    rl_err e = {0};
    CHECK(rl_st_write(p, dup, 2, RL_ST_F32, &e) == -1 && e.kind == RL_EINPUT &&
              strstr(e.msg, "duplicate") && strstr(e.msg, out[0].name),
          "duplicate names: %s", e.msg);
    rl_st_out_tensor badname = out[1];
    badname.name = "w\xff";
    CHECK(rl_st_write(p, &badname, 1, RL_ST_F32, &e) == -1 && strstr(e.msg, "UTF-8"),
          "bad UTF-8 name: %s", e.msg);
    CHECK(rl_st_write(p, out, 1, RL_ST_F16, &e) == -1 && e.kind == RL_EINPUT, "F16 out rejected");
    CHECK(access(p, F_OK) != 0, "nothing written on failure");
    snprintf(p, sizeof p, "%s/no/such/dir/x.safetensors", g_tmp);
    CHECK(rl_st_write(p, out, 1, RL_ST_F32, &e) == -1 && e.kind == RL_EINPUT &&
              strstr(e.msg, "no/such/dir"),
          "unwritable path: %s", e.msg);
    free_data(data);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/rlpipe-st-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_bf16_rounding);
    RUN(test_f16_exhaustive);
    RUN(test_roundtrip_f32);
    RUN(test_roundtrip_bf16);
    RUN(test_read_f16_file);
    RUN(test_bad_files);
    RUN(test_truncation_and_corruption);
    RUN(test_sharded);
    RUN(test_bad_indexes);
    RUN(test_ckpt_write);
    nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary();
}
