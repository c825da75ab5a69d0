// safetensors: validated reading (mmap), float32 conversion, writing, checkpoint directories.
// See safetensors.h for the format and the rules enforced.
#define _POSIX_C_SOURCE 200809L
#include "policy/safetensors.h"
#include "policy/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this code copies it as-is and needs a little-endian host"
#endif

// ---- dtypes -----------------------------------------------------------------------------------

static const struct {
    const char *name;
    int bits;
} DTYPES[RL_ST_NDTYPES] = {
    [RL_ST_F32] = {"F32", 32},
    [RL_ST_BF16] = {"BF16", 16},
    [RL_ST_F16] = {"F16", 16},
    [RL_ST_F64] = {"F64", 64},
    [RL_ST_BOOL] = {"BOOL", 8},
    [RL_ST_U8] = {"U8", 8},
    [RL_ST_I8] = {"I8", 8},
    [RL_ST_I16] = {"I16", 16},
    [RL_ST_U16] = {"U16", 16},
    [RL_ST_I32] = {"I32", 32},
    [RL_ST_U32] = {"U32", 32},
    [RL_ST_I64] = {"I64", 64},
    [RL_ST_U64] = {"U64", 64},
    [RL_ST_C64] = {"C64", 64},
    [RL_ST_F8_E5M2] = {"F8_E5M2", 8},
    [RL_ST_F8_E4M3] = {"F8_E4M3", 8},
    [RL_ST_F8_E8M0] = {"F8_E8M0", 8},
    [RL_ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8},
    [RL_ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8},
    [RL_ST_F6_E2M3] = {"F6_E2M3", 6},
    [RL_ST_F6_E3M2] = {"F6_E3M2", 6},
    [RL_ST_F4] = {"F4", 4},
};

const char *rl_st_dtype_name(rl_st_dtype dt) {
    return (unsigned)dt < RL_ST_NDTYPES ? DTYPES[dt].name : "?";
}

int rl_st_dtype_bits(rl_st_dtype dt) {
    return (unsigned)dt < RL_ST_NDTYPES ? DTYPES[dt].bits : 0;
}

int rl_st_dtype_from_name(const char *name) {
    for (int i = 0; i < RL_ST_NDTYPES; i++)
        if (strcmp(DTYPES[i].name, name) == 0) return i;
    return -1;
}

static int readable_as_f32(rl_st_dtype dt) {
    return dt == RL_ST_F32 || dt == RL_ST_BF16 || dt == RL_ST_F16 || dt == RL_ST_F64;
}

// ---- element conversions ----------------------------------------------------------------------

static float bits_to_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static uint32_t f32_to_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

float rl_bf16_to_f32(uint16_t h) {
    return bits_to_f32((uint32_t)h << 16);
}

uint16_t rl_f32_to_bf16(float x) {
    uint32_t u = f32_to_bits(x);
    // NaN: truncating could clear every mantissa bit left and turn it into inf; force the quiet bit.
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; a carry into the
    // exponent is the correct result (including overflow to inf).
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float rl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mant << 13)); // inf, NaN + payload
    if (exp != 0) return bits_to_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
    if (mant == 0) return bits_to_f32(sign); // signed zero
    // Subnormal: mant * 2^-24, renormalised into a (normal) float32.
    int shift = 0;
    while (!(mant & 0x400u)) {
        mant <<= 1;
        shift++;
    }
    mant &= 0x3ffu;
    return bits_to_f32(sign | ((uint32_t)(127 - 15 + 1 - shift) << 23) | (mant << 13));
}

void rl_st_convert_f32(rl_st_dtype dt, const void *src, float *dst, size_t n) {
    const unsigned char *s = src;
    // Large tensors: split across threads (page faults on the mapping dominate single-threaded).
    switch (dt) {
    case RL_ST_F32:
        if (n) memcpy(dst, s, n * 4);
        break;
    case RL_ST_BF16:
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= ((size_t)1 << 22))
#endif
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = rl_bf16_to_f32(h);
        }
        break;
    case RL_ST_F16:
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= ((size_t)1 << 22))
#endif
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = rl_f16_to_f32(h);
        }
        break;
    case RL_ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    default:
        break; // callers check readable_as_f32 first
    }
}

// ---- one file: open and validate ----------------------------------------------------------------

struct rl_st_file {
    char *path;
    unsigned char *map; // whole file, read-only
    size_t size;        // file size
    uint64_t data_start;
    int n;
    rl_st_tensor *tensors; // [n] in data-offset order
    int *by_name;          // [n] indices into tensors, sorted by name
    int n_meta;
    char **meta; // [2*n_meta] key, value pairs
};

static uint64_t load_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

// jansson reports a duplicate key right after the key's closing quote but names it only when it
// is short; recover the key from the text so the message can name the tensor.
static void duplicate_key_at(const char *text, size_t len, size_t pos, char *out, size_t cap) {
    out[0] = '\0';
    if (pos < 2 || pos > len || text[pos - 1] != '"') return;
    size_t q = pos - 1; // closing quote
    size_t open = q;
    while (open > 0) {
        open--;
        if (text[open] != '"') continue;
        size_t bs = 0;
        while (open >= 1 + bs && text[open - 1 - bs] == '\\') bs++;
        if (bs % 2 == 0) break; // an unescaped quote: the opening one
    }
    if (text[open] != '"' || open == q) return;
    json_error_t e;
    json_t *s = json_loadb(text + open, q + 1 - open, JSON_DECODE_ANY, &e);
    if (s && json_is_string(s)) snprintf(out, cap, "%s", json_string_value(s));
    json_decref(s);
}

// A short JSON-safe rendering of a shape for messages: [a, b, c].
static void format_shape(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

// Parses one header entry into *t (name already set). data_size = bytes after the header.
static int parse_entry(rl_st_tensor *t, json_t *entry, uint64_t data_size, const char *path,
                       rl_err *err) {
    const char *name = t->name;
    if (!json_is_object(entry))
        return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": header entry is %s, expected an object",
                       path, name, rl_json_type_name(entry));
    json_t *jd = json_object_get(entry, "dtype");
    json_t *js = json_object_get(entry, "shape");
    json_t *jo = json_object_get(entry, "data_offsets");
    if (!jd || !js || !jo)
        return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": header entry lacks \"%s\"", path, name,
                       !jd   ? "dtype"
                       : !js ? "shape"
                             : "data_offsets");
    if (!json_is_string(jd))
        return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": dtype is %s, expected a string", path,
                       name, rl_json_type_name(jd));
    int dt = rl_st_dtype_from_name(json_string_value(jd));
    if (dt < 0)
        return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": unknown dtype \"%s\"", path, name,
                       json_string_value(jd));
    t->dtype = (rl_st_dtype)dt;

    if (!json_is_array(js))
        return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": shape is %s, expected an array", path,
                       name, rl_json_type_name(js));
    if (json_array_size(js) > RL_ST_MAX_DIMS)
        return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": %zu dimensions, at most %d supported",
                       path, name, json_array_size(js), RL_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    // Count bits in unsigned 64-bit arithmetic, failing on overflow instead of wrapping.
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *jv = json_array_get(js, (size_t)d);
        if (!json_is_integer(jv) || json_integer_value(jv) < 0)
            return rl_fail(err, RL_EINPUT,
                           "%s: tensor \"%s\": shape[%d] is %s, expected a non-negative integer",
                           path, name, d, json_is_integer(jv) ? "negative" : rl_json_type_name(jv));
        t->shape[d] = (int64_t)json_integer_value(jv);
        if (__builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel))
            return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": shape overflows 64 bits", path,
                           name);
    }
    uint64_t nbits;
    if (__builtin_mul_overflow(numel, (uint64_t)DTYPES[dt].bits, &nbits))
        return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": shape overflows 64 bits", path, name);

    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return rl_fail(err, RL_EINPUT,
                       "%s: tensor \"%s\": data_offsets must be an array [begin, end]", path, name);
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < 0)
        return rl_fail(err, RL_EINPUT,
                       "%s: tensor \"%s\": data_offsets must be two non-negative integers", path,
                       name);
    uint64_t begin = (uint64_t)json_integer_value(jb), end = (uint64_t)json_integer_value(je);
    if (end < begin)
        return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": data_offsets end %llu < begin %llu",
                       path, name, (unsigned long long)end, (unsigned long long)begin);
    if (end > data_size)
        return rl_fail(err, RL_EINPUT,
                       "%s: tensor \"%s\": data_offsets [%llu, %llu) run past the data buffer "
                       "(%llu bytes; file truncated?)",
                       path, name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_size);
    if (nbits % 8 != 0 || (end - begin) != nbits / 8) {
        char sh[160];
        format_shape(sh, sizeof sh, t->shape, t->ndim);
        return rl_fail(err, RL_EINPUT,
                       "%s: tensor \"%s\": data_offsets span %llu bytes but %s %s needs %llu%s",
                       path, name, (unsigned long long)(end - begin), DTYPES[dt].name, sh,
                       (unsigned long long)(nbits / 8), nbits % 8 ? " and a fraction" : "");
    }
    t->numel = (size_t)numel;
    t->nbytes = (size_t)(end - begin);
    t->begin = begin;
    return 0;
}

static int parse_metadata(rl_st_file *f, json_t *meta, rl_err *err) {
    if (!json_is_object(meta))
        return rl_fail(err, RL_EINPUT, "%s: __metadata__ is %s, expected an object of strings",
                       f->path, rl_json_type_name(meta));
    f->meta = rl_calloc(2 * json_object_size(meta) + 1, sizeof(char *));
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return rl_fail(err, RL_EINPUT, "%s: __metadata__ \"%s\" is %s, expected a string",
                           f->path, k, rl_json_type_name(v));
        f->meta[2 * f->n_meta] = rl_strdup(k);
        f->meta[2 * f->n_meta + 1] = rl_strdup(json_string_value(v));
        f->n_meta++;
    }
    return 0;
}

static int cmp_by_offset(const void *a, const void *b) {
    const rl_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

// qsort has no context argument: sort indices through a small struct array instead.
typedef struct {
    const char *name;
    int index;
} name_index;

static int cmp_name_index(const void *a, const void *b) {
    return strcmp(((const name_index *)a)->name, ((const name_index *)b)->name);
}

// Offsets sorted by begin must tile [0, data_size) exactly, as Hugging Face's reader requires.
static int check_layout(const rl_st_file *f, uint64_t data_size, rl_err *err) {
    uint64_t expect = 0;
    for (int i = 0; i < f->n; i++) {
        const rl_st_tensor *t = &f->tensors[i];
        if (t->begin < expect)
            return rl_fail(err, RL_EINPUT,
                           "%s: tensor \"%s\" at bytes [%llu, %llu) overlaps tensor \"%s\"",
                           f->path, t->name, (unsigned long long)t->begin,
                           (unsigned long long)(t->begin + t->nbytes), f->tensors[i - 1].name);
        if (t->begin > expect)
            return rl_fail(err, RL_EINPUT,
                           "%s: tensor \"%s\" starts at byte %llu, leaving a gap after %s%s%s "
                           "(data offsets must be contiguous)",
                           f->path, t->name, (unsigned long long)t->begin, i ? "tensor \"" : "",
                           i ? f->tensors[i - 1].name : "the header", i ? "\"" : "");
        expect = t->begin + t->nbytes;
    }
    if (expect != data_size)
        return rl_fail(err, RL_EINPUT,
                       "%s: %llu trailing byte(s) after the last tensor%s%s%s (data buffer %llu "
                       "bytes, tensors end at %llu)",
                       f->path, (unsigned long long)(data_size - expect), f->n ? " \"" : "",
                       f->n ? f->tensors[f->n - 1].name : "", f->n ? "\"" : "",
                       (unsigned long long)data_size, (unsigned long long)expect);
    return 0;
}

static int parse_header(rl_st_file *f, rl_err *err) {
    const char *text = (const char *)f->map + 8;
    size_t len = (size_t)(f->data_start - 8);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_duplicate_key) {
            char key[512];
            duplicate_key_at(text, len, (size_t)je.position, key, sizeof key);
            return rl_fail(err, RL_EINPUT, "%s: header: duplicate tensor name \"%s\"", f->path,
                           key);
        }
        return rl_fail(err, RL_EINPUT, "%s: header is not valid UTF-8 JSON (at byte %d): %s",
                       f->path, je.position, je.text);
    }
    int rc = 0;
    if (!json_is_object(root)) {
        rc = rl_fail(err, RL_EINPUT, "%s: header is %s, expected a JSON object", f->path,
                     rl_json_type_name(root));
        goto done;
    }
    uint64_t data_size = (uint64_t)f->size - f->data_start;
    f->tensors = rl_calloc(json_object_size(root) + 1, sizeof(rl_st_tensor));
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(f, val, err)) != 0) goto done;
            continue;
        }
        rl_st_tensor *t = &f->tensors[f->n++];
        t->name = rl_strdup(key);
        if ((rc = parse_entry(t, val, data_size, f->path, err)) != 0) goto done;
    }
    qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, cmp_by_offset);
    if ((rc = check_layout(f, data_size, err)) != 0) goto done;
    for (int i = 0; i < f->n; i++)
        f->tensors[i].data = f->map + f->data_start + f->tensors[i].begin;
    name_index *ni = rl_malloc(((size_t)f->n + 1) * sizeof *ni);
    for (int i = 0; i < f->n; i++) ni[i] = (name_index){f->tensors[i].name, i};
    qsort(ni, (size_t)f->n, sizeof *ni, cmp_name_index);
    f->by_name = rl_malloc(((size_t)f->n + 1) * sizeof(int));
    for (int i = 0; i < f->n; i++) f->by_name[i] = ni[i].index;
    free(ni);
done:
    json_decref(root);
    return rc;
}

int rl_st_open(rl_st_file **out, const char *path, rl_err *err) {
    *out = NULL;
    size_t size = 0;
    int fd = rl_open_regular(path, &size, err); // a FIFO or device is refused, never waited on
    if (fd < 0) return -1;
    if (size < 8) {
        close(fd);
        return rl_fail(err, RL_EINPUT,
                       "%s: file is %zu bytes, too short for the 8-byte safetensors header length",
                       path, size);
    }
    rl_st_file *f = rl_calloc(1, sizeof *f);
    f->path = rl_strdup(path);
    f->size = size;
    // A private read-only mapping: pages come from the page cache, nothing is copied until read.
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        rl_fail(err, RL_EINPUT, "%s: cannot map: %s", path, strerror(errno));
        rl_st_close(f);
        return -1;
    }
    f->map = m;
    uint64_t n = load_le64(f->map);
    if (n > RL_ST_MAX_HEADER || n > (uint64_t)f->size - 8) {
        rl_fail(err, RL_EINPUT,
                "%s: header length %llu is %s (file is %zu bytes; not a safetensors file or "
                "truncated?)",
                path, (unsigned long long)n,
                n > RL_ST_MAX_HEADER ? "above the 100,000,000-byte limit" : "beyond the file end",
                f->size);
        rl_st_close(f);
        return -1;
    }
    f->data_start = 8 + n;
    if (parse_header(f, err) != 0) {
        rl_st_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

void rl_st_close(rl_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->size);
    for (int i = 0; i < f->n; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->meta);
    free(f->path);
    free(f);
}

const char *rl_st_path(const rl_st_file *f) {
    return f->path;
}
int rl_st_count(const rl_st_file *f) {
    return f->n;
}

const rl_st_tensor *rl_st_at(const rl_st_file *f, int i) {
    return i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const rl_st_tensor *rl_st_get(const rl_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const rl_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *rl_st_metadata(const rl_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}

int rl_st_read_f32(const rl_st_file *f, const rl_st_tensor *t, float *dst, size_t n_elems,
                   rl_err *err) {
    if (!readable_as_f32(t->dtype))
        return rl_fail(err, RL_EINPUT,
                       "%s: tensor \"%s\" has dtype %s; only F32, BF16, F16 and F64 read as "
                       "float32",
                       f->path, t->name, DTYPES[t->dtype].name);
    if (n_elems != t->numel)
        return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\" has %zu elements, the caller expects %zu",
                       f->path, t->name, t->numel, n_elems);
    rl_st_convert_f32(t->dtype, t->data, dst, n_elems);
    return 0;
}

// ---- checkpoints ------------------------------------------------------------------------------

typedef struct ckpt_entry {
    const char *name; // owned by the shard's rl_st_file
    int file;
    const rl_st_tensor *t;
} ckpt_entry;

struct rl_ckpt {
    char *path;
    int n_files;
    rl_st_file **files;
    int n;
    ckpt_entry *entries; // sorted by name
};

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return rl_strdup(".");
    if (slash == path) return rl_strdup("/");
    char *d = rl_malloc((size_t)(slash - path) + 1);
    memcpy(d, path, (size_t)(slash - path));
    d[slash - path] = '\0';
    return d;
}

// Shard names come from a file we do not control: keep them inside the checkpoint directory.
static int shard_name_ok(const char *s) {
    if (!s[0] || s[0] == '/' || strchr(s, '\\')) return 0;
    for (const char *p = s; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += n + (e ? 1 : 0);
        if (e && !*p) return 0; // trailing slash: a directory, not a file
    }
    return 1;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const ckpt_entry *)a)->name, ((const ckpt_entry *)b)->name);
}

static int ckpt_add_file(rl_ckpt *c, const char *path, rl_err *err) {
    rl_st_file *f;
    RL_TRY(rl_st_open(&f, path, err));
    c->files = rl_realloc(c->files, (size_t)(c->n_files + 1) * sizeof *c->files);
    c->files[c->n_files++] = f;
    return 0;
}

static void ckpt_build_entries(rl_ckpt *c) {
    size_t total = 0;
    for (int i = 0; i < c->n_files; i++) total += (size_t)rl_st_count(c->files[i]);
    c->entries = rl_malloc((total + 1) * sizeof *c->entries);
    c->n = 0;
    for (int i = 0; i < c->n_files; i++)
        for (int j = 0; j < rl_st_count(c->files[i]); j++) {
            const rl_st_tensor *t = rl_st_at(c->files[i], j);
            c->entries[c->n++] = (ckpt_entry){t->name, i, t};
        }
    qsort(c->entries, (size_t)c->n, sizeof *c->entries, cmp_entry);
}

// Opens every shard the index names and checks index and shards agree tensor by tensor.
static int ckpt_open_index(rl_ckpt *c, const char *index_path, rl_err *err) {
    size_t len = 0;
    char *text = NULL;
    // The index of a 32B model is about 70 KB; a header-sized cap is generous.
    RL_TRY(rl_read_file(index_path, RL_ST_MAX_HEADER, &text, &len, err));
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        char key[512];
        if (json_error_code(&je) == json_error_duplicate_key)
            duplicate_key_at(text, len, (size_t)je.position, key, sizeof key);
        free(text);
        if (json_error_code(&je) == json_error_duplicate_key)
            return rl_fail(err, RL_EINPUT, "%s:%d: duplicate key \"%s\"", index_path, je.line, key);
        return rl_fail(err, RL_EINPUT, "%s:%d:%d: not valid JSON: %s", index_path, je.line,
                       je.column, je.text);
    }
    free(text);
    int rc = -1;
    char *dir = dir_of(index_path);
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(root) || !json_is_object(wm)) {
        rl_fail(err, RL_EINPUT, "%s: expected an object with a \"weight_map\" object", index_path);
        goto done;
    }
    json_t *meta = json_object_get(root, "metadata");
    if (meta && !json_is_object(meta) && !json_is_null(meta)) {
        rl_fail(err, RL_EINPUT, "%s: \"metadata\" is %s, expected an object", index_path,
                rl_json_type_name(meta));
        goto done;
    }
    // Shards in first-seen order; shard_of maps a shard name to its file index.
    json_t *shard_of = json_object();
    const char *name;
    json_t *v;
    json_object_foreach(wm, name, v) {
        if (!json_is_string(v)) {
            rl_fail(err, RL_EINPUT, "%s: weight_map \"%s\" is %s, expected a shard file name",
                    index_path, name, rl_json_type_name(v));
            goto done_shards;
        }
        const char *shard = json_string_value(v);
        if (!shard_name_ok(shard)) {
            rl_fail(err, RL_EINPUT,
                    "%s: weight_map \"%s\" names shard \"%s\", which is not a file name inside "
                    "the checkpoint directory",
                    index_path, name, shard);
            goto done_shards;
        }
        if (json_object_get(shard_of, shard)) continue;
        char *sp = rl_path_join(dir, shard);
        int r = ckpt_add_file(c, sp, err);
        free(sp);
        if (r != 0) {
            rl_err_prefix(err, "%s: ", index_path);
            goto done_shards;
        }
        json_object_set_new(shard_of, shard, json_integer(c->n_files - 1));
    }
    // Index -> shard: every listed tensor is in the shard the index names.
    json_object_foreach(wm, name, v) {
        int fi = (int)json_integer_value(json_object_get(shard_of, json_string_value(v)));
        if (!rl_st_get(c->files[fi], name)) {
            rl_fail(err, RL_EINPUT,
                    "%s: tensor \"%s\" is mapped to shard %s, which does not contain it",
                    index_path, name, rl_st_path(c->files[fi]));
            goto done_shards;
        }
    }
    // Shard -> index: every stored tensor is listed, and listed for this shard.
    for (int fi = 0; fi < c->n_files; fi++)
        for (int j = 0; j < rl_st_count(c->files[fi]); j++) {
            const char *tn = rl_st_at(c->files[fi], j)->name;
            json_t *m = json_object_get(wm, tn);
            if (!m) {
                rl_fail(err, RL_EINPUT, "%s: tensor \"%s\" is not listed in the index %s",
                        rl_st_path(c->files[fi]), tn, index_path);
                goto done_shards;
            }
            int mf = (int)json_integer_value(json_object_get(shard_of, json_string_value(m)));
            if (mf != fi) {
                rl_fail(err, RL_EINPUT,
                        "%s: tensor \"%s\" is also stored here, but the index %s maps it to %s",
                        rl_st_path(c->files[fi]), tn, index_path, rl_st_path(c->files[mf]));
                goto done_shards;
            }
        }
    rc = 0;
done_shards:
    json_decref(shard_of);
done:
    free(dir);
    json_decref(root);
    return rc;
}

int rl_ckpt_open(rl_ckpt **out, const char *path, rl_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return rl_fail(err, RL_EINPUT, "%s: cannot open checkpoint: %s", path, strerror(errno));
    rl_ckpt *c = rl_calloc(1, sizeof *c);
    c->path = rl_strdup(path);
    int rc;
    if (S_ISDIR(st.st_mode)) {
        char *single = rl_path_join(path, RL_ST_SINGLE_NAME);
        char *index = rl_path_join(path, RL_ST_INDEX_NAME);
        if (rl_is_file(single))
            rc = ckpt_add_file(c, single, err);
        else if (rl_is_file(index))
            rc = ckpt_open_index(c, index, err);
        else
            rc = rl_fail(err, RL_EINPUT, "%s: no %s or %s in this directory", path,
                         RL_ST_SINGLE_NAME, RL_ST_INDEX_NAME);
        free(single);
        free(index);
    } else {
        size_t n = strlen(path);
        if (n >= 5 && strcmp(path + n - 5, ".json") == 0)
            rc = ckpt_open_index(c, path, err);
        else
            rc = ckpt_add_file(c, path, err);
    }
    if (rc != 0) {
        rl_ckpt_close(c);
        return -1;
    }
    ckpt_build_entries(c);
    *out = c;
    return 0;
}

void rl_ckpt_close(rl_ckpt *c) {
    if (!c) return;
    for (int i = 0; i < c->n_files; i++) rl_st_close(c->files[i]);
    free(c->files);
    free(c->entries);
    free(c->path);
    free(c);
}

const char *rl_ckpt_path(const rl_ckpt *c) {
    return c->path;
}
int rl_ckpt_count(const rl_ckpt *c) {
    return c->n;
}

const char *rl_ckpt_name(const rl_ckpt *c, int i) {
    return i >= 0 && i < c->n ? c->entries[i].name : NULL;
}

const rl_st_tensor *rl_ckpt_find(const rl_ckpt *c, const char *name, const rl_st_file **file) {
    ckpt_entry key = {name, 0, NULL};
    const ckpt_entry *e = bsearch(&key, c->entries, (size_t)c->n, sizeof key, cmp_entry);
    if (file) *file = e ? c->files[e->file] : NULL;
    return e ? e->t : NULL;
}

int rl_ckpt_has(const rl_ckpt *c, const char *name) {
    return rl_ckpt_find(c, name, NULL) != NULL;
}

int rl_ckpt_read(const rl_ckpt *c, const char *name, const int64_t *expected_shape, int ndim,
                 float *dst, rl_err *err) {
    const rl_st_file *f;
    const rl_st_tensor *t = rl_ckpt_find(c, name, &f);
    if (!t) return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\" not found", c->path, name);
    int same = t->ndim == ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (same && t->shape[d] != expected_shape[d]) same = 0;
        numel *= (size_t)expected_shape[d];
    }
    if (!same) {
        char have[200], want[200];
        format_shape(have, sizeof have, t->shape, t->ndim);
        format_shape(want, sizeof want, expected_shape, ndim);
        return rl_fail(err, RL_EINPUT,
                       "%s: tensor \"%s\" has shape %s but the model config expects %s", f->path,
                       name, have, want);
    }
    return rl_st_read_f32(f, t, dst, numel, err);
}

// ---- writing ----------------------------------------------------------------------------------

// Buffered writes to a descriptor; the first failure sticks and is reported at the end.
typedef struct out_file {
    int fd;
    int failed_errno;
    size_t used;
    unsigned char buf[1 << 16];
} out_file;

static void out_flush(out_file *o) {
    if (!o->failed_errno) o->failed_errno = rl_write_all(o->fd, o->buf, o->used);
    o->used = 0;
}

static void out_bytes(out_file *o, const void *p, size_t n) {
    const unsigned char *s = p;
    while (n > 0) {
        if (o->used == sizeof o->buf) out_flush(o);
        size_t k = sizeof o->buf - o->used;
        if (k > n) k = n;
        memcpy(o->buf + o->used, s, k);
        o->used += k;
        s += k;
        n -= k;
    }
}

static size_t out_numel(const rl_st_out_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

static int check_out_tensors(const char *path, const rl_st_out_tensor *ts, int n, rl_st_dtype dt,
                             rl_err *err) {
    if (dt != RL_ST_F32 && dt != RL_ST_BF16)
        return rl_fail(err, RL_EINPUT, "%s: can write F32 or BF16, not %s", path,
                       rl_st_dtype_name(dt));
    for (int i = 0; i < n; i++) {
        const rl_st_out_tensor *t = &ts[i];
        if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0)
            return rl_fail(err, RL_EINPUT, "%s: tensor %d has an empty or reserved name", path, i);
        if (t->ndim < 0 || t->ndim > RL_ST_MAX_DIMS)
            return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": %d dimensions", path, t->name,
                           t->ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0 || __builtin_mul_overflow(numel, (size_t)t->shape[d], &numel) ||
                numel > (SIZE_MAX / 8))
                return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": bad shape", path, t->name);
        if (numel && !t->data)
            return rl_fail(err, RL_EINPUT, "%s: tensor \"%s\": no data", path, t->name);
    }
    name_index *ni = rl_malloc(((size_t)n + 1) * sizeof *ni);
    for (int i = 0; i < n; i++) ni[i] = (name_index){ts[i].name, i};
    qsort(ni, (size_t)n, sizeof *ni, cmp_name_index);
    for (int i = 1; i < n; i++)
        if (strcmp(ni[i].name, ni[i - 1].name) == 0) {
            rl_fail(err, RL_EINPUT, "%s: duplicate tensor name \"%s\"", path, ni[i].name);
            free(ni);
            return -1;
        }
    free(ni);
    return 0;
}

// The JSON header, padded with spaces so that 8 + N is a multiple of 8. Caller frees.
static char *build_header(const char *path, const rl_st_out_tensor *ts, int n, rl_st_dtype dt,
                          size_t *len_out, rl_err *err) {
    json_t *root = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    uint64_t off = 0;
    size_t esize = (size_t)DTYPES[dt].bits / 8;
    for (int i = 0; i < n; i++) {
        json_t *e = json_object(), *shape = json_array();
        json_object_set_new(e, "dtype", json_string(DTYPES[dt].name));
        for (int d = 0; d < ts[i].ndim; d++)
            json_array_append_new(shape, json_integer((json_int_t)ts[i].shape[d]));
        json_object_set_new(e, "shape", shape);
        uint64_t nb = (uint64_t)out_numel(&ts[i]) * esize;
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + nb)));
        json_object_set_new(e, "data_offsets", offs);
        off += nb;
        // json_object_set_new rejects (returns -1 for) keys that are not valid UTF-8.
        if (json_object_set_new(root, ts[i].name, e) != 0) {
            json_decref(root);
            rl_fail(err, RL_EINPUT, "%s: tensor %d: name is not valid UTF-8", path, i);
            return NULL;
        }
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    size_t len = strlen(text);
    size_t padded = (len + 7) / 8 * 8;
    char *h = rl_malloc(padded + 1);
    memcpy(h, text, len);
    memset(h + len, ' ', padded - len);
    h[padded] = '\0';
    free(text);
    *len_out = padded;
    return h;
}

int rl_st_write(const char *path, const rl_st_out_tensor *ts, int n, rl_st_dtype dt, rl_err *err) {
    RL_TRY(check_out_tensors(path, ts, n, dt, err));
    size_t hlen;
    char *header = build_header(path, ts, n, dt, &hlen, err);
    if (!header) return -1;

    char *tmp;
    int fd = rl_atomic_open(path, &tmp, err);
    if (fd < 0) {
        free(header);
        return -1;
    }
    out_file *o = rl_malloc(sizeof *o);
    o->fd = fd;
    o->failed_errno = 0;
    o->used = 0;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    out_bytes(o, lenbuf, 8);
    out_bytes(o, header, hlen);
    free(header);
    uint16_t chunk[4096];
    for (int i = 0; i < n && !o->failed_errno; i++) {
        size_t numel = out_numel(&ts[i]);
        if (dt == RL_ST_F32) {
            out_flush(o);
            // Large F32 tensors go straight from the caller's memory to the file.
            if (!o->failed_errno) o->failed_errno = rl_write_all(o->fd, ts[i].data, numel * 4);
        } else {
            for (size_t j = 0; j < numel; j += 4096) {
                size_t k = numel - j < 4096 ? numel - j : 4096;
                for (size_t q = 0; q < k; q++) chunk[q] = rl_f32_to_bf16(ts[i].data[j + q]);
                out_bytes(o, chunk, k * 2);
            }
        }
    }
    out_flush(o);
    int failed = o->failed_errno;
    free(o);
    return rl_atomic_commit(fd, tmp, path, failed, err);
}

static void remove_if_exists(const char *dir, const char *name) {
    char *p = rl_path_join(dir, name);
    unlink(p); // ENOENT is the common case and fine
    free(p);
}

int rl_ckpt_write(const char *dir, const rl_st_out_tensor *ts, int n, rl_st_dtype dt,
                  size_t max_shard_bytes, rl_err *err) {
    RL_TRY(check_out_tensors(dir, ts, n, dt, err));
    RL_TRY(rl_make_dir(dir, err));
    size_t esize = (size_t)DTYPES[dt].bits / 8;
    // Plan: shard_start[s] is the first tensor of shard s.
    int *shard_start = rl_malloc(((size_t)n + 2) * sizeof(int));
    int n_shards = 0;
    size_t cur = 0, total = 0;
    for (int i = 0; i < n; i++) {
        size_t nb = out_numel(&ts[i]) * esize;
        if (n_shards == 0 || (max_shard_bytes && cur > 0 && cur + nb > max_shard_bytes)) {
            shard_start[n_shards++] = i;
            cur = 0;
        }
        cur += nb;
        total += nb;
    }
    if (n_shards == 0) shard_start[n_shards++] = 0;
    shard_start[n_shards] = n;

    int rc = 0;
    if (n_shards == 1) {
        char *p = rl_path_join(dir, RL_ST_SINGLE_NAME);
        rc = rl_st_write(p, ts, n, dt, err);
        free(p);
        if (rc == 0) remove_if_exists(dir, RL_ST_INDEX_NAME);
        free(shard_start);
        return rc;
    }
    json_t *wm = json_object();
    for (int s = 0; s < n_shards && rc == 0; s++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        char *p = rl_path_join(dir, name);
        rc = rl_st_write(p, ts + shard_start[s], shard_start[s + 1] - shard_start[s], dt, err);
        free(p);
        for (int i = shard_start[s]; i < shard_start[s + 1]; i++)
            json_object_set_new(wm, ts[i].name, json_string(name));
    }
    if (rc == 0) {
        json_t *root = json_object(), *meta = json_object();
        json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
        json_object_set_new(root, "metadata", meta);
        json_object_set(root, "weight_map", wm);
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(root);
        size_t tl = strlen(text);
        text = rl_realloc(text, tl + 2);
        memcpy(text + tl, "\n", 2);
        char *ip = rl_path_join(dir, RL_ST_INDEX_NAME);
        rc = rl_write_file_atomic(ip, text, strlen(text), err);
        free(ip);
        free(text);
        // Transformers prefers model.safetensors over the index: a stale one would win.
        if (rc == 0) remove_if_exists(dir, RL_ST_SINGLE_NAME);
    }
    json_decref(wm);
    free(shard_start);
    return rc;
}
