/*
 * safetensors: read and write Hugging Face safetensors files and checkpoint directories.
 *
 * A safetensors file is: u64 little-endian header length N, N bytes of UTF-8 JSON (tensor name ->
 * {"dtype", "shape", "data_offsets": [begin, end)}, plus an optional "__metadata__" string map),
 * then the data buffer; offsets are relative to the buffer start 8 + N.
 *
 * Reading maps the file read-only and validates the whole header at open time, as strictly as
 * Hugging Face's own reader: valid UTF-8 JSON object, no duplicate names, known dtypes, integer
 * non-negative dims, (end - begin) == prod(shape) * dtype size without overflow, offsets sorted
 * by begin start at 0, are contiguous (no overlap, no gap) and the last end is exactly the end of
 * the file. A file that passes never causes an out-of-bounds read. Every failure is RL_EINPUT
 * with a message that names the file and, where there is one, the tensor.
 * F32, BF16, F16 (and F64) tensors can be read as float32; other dtypes are recognised (so the
 * layout check covers them) but reading them as float32 is an error.
 *
 * A checkpoint (rl_ckpt) is a directory holding model.safetensors, or shards listed by
 * model.safetensors.index.json ({"metadata": {...}, "weight_map": {name: shard file}}); shard
 * names come from weight_map only and must stay inside the directory. Like transformers, a
 * directory with both prefers model.safetensors.
 *
 * Writing produces F32 or BF16 (round to nearest even, NaN kept a NaN) files with data in the
 * order the caller gives, contiguous, header padded with spaces to a multiple of 8 and
 * __metadata__ {"format": "pt"}; files are written to a temporary name and renamed into place.
 *
 * Owns: an rl_st_file owns its mapping, descriptor and names; an rl_ckpt owns its open shards.
 * Tensor views (rl_st_tensor, their data pointers) live until the file / checkpoint is closed.
 */
#ifndef RL_SAFETENSORS_H
#define RL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/rl_error.h"

#define RL_ST_MAX_DIMS    8
#define RL_ST_MAX_HEADER  100000000ull // Hugging Face's MAX_HEADER_SIZE
#define RL_ST_INDEX_NAME  "model.safetensors.index.json"
#define RL_ST_SINGLE_NAME "model.safetensors"

// Every dtype Hugging Face's safetensors knows. Only the first four read as float32.
typedef enum rl_st_dtype {
    RL_ST_F32,
    RL_ST_BF16,
    RL_ST_F16,
    RL_ST_F64,
    RL_ST_BOOL,
    RL_ST_U8,
    RL_ST_I8,
    RL_ST_I16,
    RL_ST_U16,
    RL_ST_I32,
    RL_ST_U32,
    RL_ST_I64,
    RL_ST_U64,
    RL_ST_C64,
    RL_ST_F8_E5M2,
    RL_ST_F8_E4M3,
    RL_ST_F8_E8M0,
    RL_ST_F8_E4M3FNUZ,
    RL_ST_F8_E5M2FNUZ,
    RL_ST_F6_E2M3,
    RL_ST_F6_E3M2,
    RL_ST_F4,
    RL_ST_NDTYPES
} rl_st_dtype;

const char *rl_st_dtype_name(rl_st_dtype dt); // "F32", "BF16", ...
int rl_st_dtype_bits(rl_st_dtype dt);         // bits per element (4 for F4, 6 for F6_*)
int rl_st_dtype_from_name(const char *name);  // the enum, or -1 if unknown

// One tensor of an open file: a read-only view into the mapping.
typedef struct rl_st_tensor {
    const char *name;
    rl_st_dtype dtype;
    int ndim;                      // 0 for a scalar
    int64_t shape[RL_ST_MAX_DIMS]; // [ndim]
    size_t numel;                  // prod(shape), 1 for a scalar
    size_t nbytes;                 // end - begin
    uint64_t begin;                // offset in the data buffer
    const void *data;              // nbytes raw little-endian bytes; NOT necessarily aligned
} rl_st_tensor;

// ---- one file ---------------------------------------------------------------------------------

typedef struct rl_st_file rl_st_file;

// Opens, maps and validates a .safetensors file. On failure *out is NULL.
int rl_st_open(rl_st_file **out, const char *path, rl_err *err);
void rl_st_close(rl_st_file *f); // NULL is fine
const char *rl_st_path(const rl_st_file *f);
int rl_st_count(const rl_st_file *f);
// The i-th tensor in data-offset (file) order, 0 <= i < count.
const rl_st_tensor *rl_st_at(const rl_st_file *f, int i);
// Lookup by name (binary search); NULL if absent.
const rl_st_tensor *rl_st_get(const rl_st_file *f, const char *name);
// A "__metadata__" value, NULL if absent.
const char *rl_st_metadata(const rl_st_file *f, const char *key);
// Converts tensor t of file f to float32 into dst[n_elems]; n_elems must equal t->numel and the
// dtype must be F32, BF16, F16 or F64, else RL_EINPUT naming the file and tensor.
int rl_st_read_f32(const rl_st_file *f, const rl_st_tensor *t, float *dst, size_t n_elems,
                   rl_err *err);

// ---- element conversions ----------------------------------------------------------------------

float rl_bf16_to_f32(uint16_t h); // exact: bits << 16
uint16_t rl_f32_to_bf16(float x); // round to nearest even; NaN stays NaN (quiet), inf stays inf
float rl_f16_to_f32(uint16_t h);  // exact, subnormals, inf and NaN (payload kept)
// dst[i] = src[i] as float32 for dt in {F32, BF16, F16, F64}; src may be unaligned.
void rl_st_convert_f32(rl_st_dtype dt, const void *src, float *dst, size_t n);

// ---- a checkpoint: single file or sharded -----------------------------------------------------

typedef struct rl_ckpt rl_ckpt;

// path: a directory (model.safetensors, else model.safetensors.index.json), an index .json
// file, or a single .safetensors file. Validates every shard and the index against the shards:
// a tensor listed but absent from its shard, or present in a shard but not mapped to it, is an
// error naming both.
int rl_ckpt_open(rl_ckpt **out, const char *path, rl_err *err);
void rl_ckpt_close(rl_ckpt *c);             // NULL is fine
const char *rl_ckpt_path(const rl_ckpt *c); // what was opened (for messages)
int rl_ckpt_count(const rl_ckpt *c);
// Tensor names sorted by strcmp, 0 <= i < count (to report missing / unexpected tensors).
const char *rl_ckpt_name(const rl_ckpt *c, int i);
int rl_ckpt_has(const rl_ckpt *c, const char *name);
// The tensor and (if file != NULL) the shard holding it; NULL if absent.
const rl_st_tensor *rl_ckpt_find(const rl_ckpt *c, const char *name, const rl_st_file **file);
// Reads tensor `name` as float32 into dst, checking its shape against expected_shape[ndim]
// (dst holds prod(expected_shape) floats). Missing tensor, wrong shape or an unreadable dtype
// is RL_EINPUT naming the file and the tensor.
int rl_ckpt_read(const rl_ckpt *c, const char *name, const int64_t *expected_shape, int ndim,
                 float *dst, rl_err *err);

// ---- writing ----------------------------------------------------------------------------------

typedef struct rl_st_out_tensor {
    const char *name;              // unique, valid UTF-8, not "__metadata__"
    int ndim;                      // 0..RL_ST_MAX_DIMS
    int64_t shape[RL_ST_MAX_DIMS]; // [ndim]
    const float *data;             // [prod(shape)] row-major
} rl_st_out_tensor;

// Writes tensors[0..n) to `path` as out_dtype (RL_ST_F32 or RL_ST_BF16), data in the given
// order. Atomic: a temporary file in the same directory renamed over `path`.
int rl_st_write(const char *path, const rl_st_out_tensor *tensors, int n, rl_st_dtype out_dtype,
                rl_err *err);

// Writes a checkpoint directory (created if absent, one level). max_shard_bytes == 0 or a total
// that fits: one model.safetensors. Otherwise greedy shards in the given order (a tensor larger
// than the limit gets its own shard) named model-0000i-of-0000n.safetensors plus
// model.safetensors.index.json (metadata.total_size = tensor bytes). The other form's fixed-name
// file (model.safetensors or the index) is removed so the directory stays unambiguous.
int rl_ckpt_write(const char *dir, const rl_st_out_tensor *tensors, int n, rl_st_dtype out_dtype,
                  size_t max_shard_bytes, rl_err *err);

#endif
