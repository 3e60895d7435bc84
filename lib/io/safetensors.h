/* lib/io/safetensors.h — memory-mapped safetensors reader and writer.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"k": "v"}}
 * then the byte buffer; offsets are relative to the buffer start.
 *
 * The reader maps the file read-only and never copies tensor bytes: a tensor's `data`
 * points into the mapping and is valid until lvd_st_close. Everything in the header is
 * treated as hostile; the reader accepts what the Python package (safetensors 0.8)
 * accepts and refuses the rest:
 *   - file >= 8 bytes; N <= 100 MB and 8 + N <= file size; the header starts with '{',
 *     nests at most 16 deep, parses (jansson, duplicate keys refused) to an object;
 *   - "__metadata__", if present, is an object of strings;
 *   - every other entry is an object with "dtype" (F32 F16 BF16 F64 I64 I32 I16 I8 U8
 *     BOOL; other safetensors dtypes such as F8_E4M3 are LVD_ERR_UNSUPPORTED), "shape"
 *     (non-negative integers, [] being a scalar with one element; more than 8 is
 *     LVD_ERR_UNSUPPORTED) and "data_offsets"
 *     ([begin, end] integers, begin <= end <= buffer size);
 *   - numel x dtype size (overflow-checked) == end - begin;
 *   - the tensors tile the buffer exactly: sorted by offsets, each begins where the
 *     previous ended (no overlap, no gap) and the last ends at the end of the file.
 * Violations are LVD_ERR_FORMAT with a message that names the file and the tensor, e.g.
 *   "m.safetensors: tensor 'unet.x': data_offsets [0, 12] do not match shape [2, 3] x F32 (24 bytes)".
 * A sharded checkpoint (`*.safetensors.index.json` with a "weight_map" of tensor ->
 * shard file, relative to the index's folder, no absolute paths or "..") opens as one
 * lvd_st holding several mappings; a missing shard is LVD_ERR_IO naming it, a
 * weight_map entry whose shard lacks the tensor or a tensor present in two shards is
 * LVD_ERR_FORMAT. Tensor data is read in host byte order (little-endian hosts only).
 * An open lvd_st is read-only, so lookups from several threads are safe. */
#ifndef LVD_IO_SAFETENSORS_H
#define LVD_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_st_dtype {
	LVD_DT_F32, LVD_DT_F16, LVD_DT_BF16, LVD_DT_F64,
	LVD_DT_I64, LVD_DT_I32, LVD_DT_I16, LVD_DT_I8, LVD_DT_U8, LVD_DT_BOOL,
	LVD_DT__COUNT
};

#define LVD_ST_MAX_DIMS 8

struct lvd_tensor_view {
	const char *name;            /* borrowed from the lvd_st */
	enum lvd_st_dtype dtype;
	int ndim;
	int64_t shape[LVD_ST_MAX_DIMS];
	int64_t numel;
	const void *data;            /* into the mapping; not aligned beyond 1 in general */
	size_t nbytes;
	const char *file;            /* the shard file this tensor lives in (borrowed) */
};

struct lvd_st; /* opaque */

/* Opens a .safetensors file, a sharded index (a path ending in .json), or a folder
 * holding either (tried in this order: model.safetensors, model.safetensors.index.json,
 * diffusion_pytorch_model.safetensors, diffusion_pytorch_model.safetensors.index.json).
 * On success *out owns everything (lvd_st_close); on failure *out is NULL.
 * Errors: LVD_ERR_IO (open/map, errno text), LVD_ERR_FORMAT (see above),
 * LVD_ERR_UNSUPPORTED (dtype), LVD_ERR_NOTFOUND (folder without a model file),
 * LVD_ERR_NOMEM. */
int lvd_st_open(struct lvd_st **out, const char *path, struct lvd_error *err);
void lvd_st_close(struct lvd_st *st);

size_t lvd_st_count(const struct lvd_st *st);
/* i-th tensor in a stable order (sorted by name). */
const struct lvd_tensor_view *lvd_st_at(const struct lvd_st *st, size_t i);
/* NULL when absent (no error set; callers report which file/tensor was missing). */
const struct lvd_tensor_view *lvd_st_find(const struct lvd_st *st, const char *name);
/* __metadata__ value or NULL (sharded: from the first shard, in file name order, that
 * has the key). Borrowed until lvd_st_close. */
const char *lvd_st_metadata(const struct lvd_st *st, const char *key);
/* The path given to open (borrowed). */
const char *lvd_st_path(const struct lvd_st *st);

const char *lvd_st_dtype_name(enum lvd_st_dtype dt);   /* "F32", ... */
size_t lvd_st_dtype_size(enum lvd_st_dtype dt);         /* bytes per element (BOOL = 1) */
/* "F32" -> LVD_DT_F32 etc.; returns 0, or -1 (out untouched) for any other name. */
int lvd_st_dtype_from_name(const char *name, enum lvd_st_dtype *out);

/* Converts a tensor to f32 into dst[numel]; float/int/bool dtypes all convert.
 * Fails (LVD_ERR_INVALID, naming the tensor and file) if dst_len < numel. */
int lvd_tensor_to_f32(const struct lvd_tensor_view *t, float *dst, size_t dst_len, struct lvd_error *err);
/* Finds `name`, checks its shape against `shape[ndim]` (-1 = any) and converts to f32.
 * Errors name the tensor and the file: missing (LVD_ERR_NOTFOUND), wrong shape. */
int lvd_st_load_f32(const struct lvd_st *st, const char *name, int ndim, const int64_t *shape,
		    float *dst, size_t dst_len, struct lvd_error *err);

/* Exact widening; NaNs come out quiet with sign and payload kept. */
float lvd_f16_to_f32(uint16_t h);
float lvd_bf16_to_f32(uint16_t b);
/* Round to nearest even (overflow -> inf, f16 subnormals handled); equal to PyTorch's
 * .half()/.bfloat16() bit for bit on every non-NaN input. A NaN stays a NaN (quiet,
 * sign and top payload bits kept); PyTorch's NaN bit patterns vary by code path. */
uint16_t lvd_f32_to_f16(float f);
uint16_t lvd_f32_to_bf16(float f);

/* Writer: add tensors (data borrowed until write), then write atomically (path.tmp,
 * fsync, rename; the .tmp file is removed on failure). The bytes are what
 * safetensors.torch.save writes for the same tensors: compact JSON, "__metadata__" first
 * (omitted when no pairs were given), tensors ordered by dtype alignment (I64 F64 F32
 * I32 BF16 F16 I16 I8 U8 BOOL) then by name, header padded with spaces to a multiple
 * of 8. Metadata keys are written sorted (Python writes them in hash order, so files
 * with two or more metadata keys differ from Python's only in that order).
 * Errors: LVD_ERR_INVALID for a duplicate or reserved name ("__metadata__"), a name,
 * key or value that is not valid UTF-8, a bad dtype/ndim/shape or NULL data with bytes; LVD_ERR_IO (naming path.tmp) on write. */
struct lvd_st_writer;
struct lvd_st_writer *lvd_st_writer_new(void);
/* data is borrowed: it must stay valid until lvd_st_writer_write returns. */
int lvd_st_writer_add(struct lvd_st_writer *w, const char *name, enum lvd_st_dtype dtype,
		      int ndim, const int64_t *shape, const void *data, struct lvd_error *err);
int lvd_st_writer_meta(struct lvd_st_writer *w, const char *key, const char *value, struct lvd_error *err);
int lvd_st_writer_write(struct lvd_st_writer *w, const char *path, struct lvd_error *err);
void lvd_st_writer_free(struct lvd_st_writer *w);

#ifdef __cplusplus
}
#endif
#endif
