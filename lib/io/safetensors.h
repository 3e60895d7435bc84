/* lib/io/safetensors.h — memory-mapped safetensors reader and writer.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"k": "v"}}
 * then the byte buffer; offsets are relative to the buffer start.
 *
 * The reader maps the file read-only and never copies tensor bytes: a tensor's `data`
 * points into the mapping and is valid until lvd_st_close. Everything in the header is
 * treated as hostile (length vs file size, JSON depth/size limits, offsets in range and
 * non-overlapping, shape × dtype size = byte length, overflow-checked).
 * A sharded checkpoint (`model.safetensors.index.json` with a "weight_map") opens as one
 * lvd_st holding several mappings. */
#ifndef LVD_IO_SAFETENSORS_H
#define LVD_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_dtype {
	LVD_DT_F32, LVD_DT_F16, LVD_DT_BF16, LVD_DT_F64,
	LVD_DT_I64, LVD_DT_I32, LVD_DT_I16, LVD_DT_I8, LVD_DT_U8, LVD_DT_BOOL,
	LVD_DT__COUNT
};

#define LVD_ST_MAX_DIMS 8

struct lvd_tensor_view {
	const char *name;            /* borrowed from the lvd_st */
	enum lvd_dtype dtype;
	int ndim;
	int64_t shape[LVD_ST_MAX_DIMS];
	int64_t numel;
	const void *data;            /* into the mapping; not aligned beyond 1 in general */
	size_t nbytes;
	const char *file;            /* the shard file this tensor lives in (borrowed) */
};

struct lvd_st; /* opaque */

/* Opens a .safetensors file, a sharded index (*.safetensors.index.json), or a folder
 * holding either (model.safetensors / model.safetensors.index.json /
 * diffusion_pytorch_model.safetensors[.index.json]). */
int lvd_st_open(struct lvd_st **out, const char *path, struct lvd_error *err);
void lvd_st_close(struct lvd_st *st);

size_t lvd_st_count(const struct lvd_st *st);
/* i-th tensor in a stable order (sorted by name). */
const struct lvd_tensor_view *lvd_st_at(const struct lvd_st *st, size_t i);
/* NULL when absent (no error set; callers report which file/tensor was missing). */
const struct lvd_tensor_view *lvd_st_find(const struct lvd_st *st, const char *name);
/* __metadata__ value or NULL. */
const char *lvd_st_metadata(const struct lvd_st *st, const char *key);
/* The path given to open (borrowed). */
const char *lvd_st_path(const struct lvd_st *st);

const char *lvd_dtype_name(enum lvd_dtype dt);   /* "F32", ... */
size_t lvd_dtype_size(enum lvd_dtype dt);         /* bytes per element (BOOL = 1) */

/* Converts a tensor to f32 into dst[numel]; float/int/bool dtypes all convert.
 * Fails (LVD_ERR_INVALID, naming the tensor and file) if dst_len < numel. */
int lvd_tensor_to_f32(const struct lvd_tensor_view *t, float *dst, size_t dst_len, struct lvd_error *err);
/* Finds `name`, checks its shape against `shape[ndim]` (-1 = any) and converts to f32.
 * Errors name the tensor and the file: missing (LVD_ERR_NOTFOUND), wrong shape. */
int lvd_st_load_f32(const struct lvd_st *st, const char *name, int ndim, const int64_t *shape,
		    float *dst, size_t dst_len, struct lvd_error *err);

float lvd_f16_to_f32(uint16_t h);
float lvd_bf16_to_f32(uint16_t b);
uint16_t lvd_f32_to_f16(float f);   /* round to nearest even */
uint16_t lvd_f32_to_bf16(float f);  /* round to nearest even */

/* Writer: add tensors (data copied or borrowed until write), then write atomically
 * (path.tmp, fsync, rename). Tensors are written sorted by name as the Python package
 * does; metadata pairs go to "__metadata__". */
struct lvd_st_writer;
struct lvd_st_writer *lvd_st_writer_new(void);
/* data is borrowed: it must stay valid until lvd_st_writer_write returns. */
int lvd_st_writer_add(struct lvd_st_writer *w, const char *name, enum lvd_dtype dtype,
		      int ndim, const int64_t *shape, const void *data, struct lvd_error *err);
int lvd_st_writer_meta(struct lvd_st_writer *w, const char *key, const char *value, struct lvd_error *err);
int lvd_st_writer_write(struct lvd_st_writer *w, const char *path, struct lvd_error *err);
void lvd_st_writer_free(struct lvd_st_writer *w);

#ifdef __cplusplus
}
#endif
#endif
