/* lib/io/safetensors_write.c — the safetensors writer: byte-identical to
 * safetensors.torch.save (compact JSON, tensors ordered by dtype alignment descending then
 * by name, header padded with spaces to a multiple of 8), except that metadata keys are
 * sorted (Python writes them in hash order). The file is written atomically (lvd_afile). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/strbuf.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "io/safetensors_internal.h"

struct w_entry {
	char *name;
	enum lvd_st_dtype dtype;
	int ndim;
	int64_t shape[LVD_ST_MAX_DIMS];
	const void *data;
	size_t nbytes;
};

struct lvd_st_writer {
	struct w_entry *e;
	size_t n, cap;
	char **mk, **mv;
	size_t nm, mcap;
};

/* Strict UTF-8 (lvd_utf8_check: no overlong forms, surrogates or code points above
 * U+10FFFF): JSON strings must be valid, and readers (ours, jansson; Python's, serde)
 * refuse others. */
static int utf8_valid(const char *str)
{
	size_t n = strlen(str);
	return lvd_utf8_check(str, n) == n;
}

struct lvd_st_writer *lvd_st_writer_new(void)
{
	return calloc(1, sizeof(struct lvd_st_writer));
}

void lvd_st_writer_free(struct lvd_st_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++)
		free(w->e[i].name);
	for (size_t i = 0; i < w->nm; i++) {
		free(w->mk[i]);
		free(w->mv[i]);
	}
	free(w->e);
	free(w->mk);
	free(w->mv);
	free(w);
}

int lvd_st_writer_add(struct lvd_st_writer *w, const char *name, enum lvd_st_dtype dtype, int ndim,
		      const int64_t *shape, const void *data, struct lvd_error *err)
{
	if ((unsigned)dtype >= LVD_DT__COUNT)
		return lvd_error_set(err, LVD_ERR_INVALID, "tensor '%s': bad dtype %d", name, (int)dtype);
	if (ndim < 0 || ndim > LVD_ST_MAX_DIMS)
		return lvd_error_set(err, LVD_ERR_INVALID, "tensor '%s': %d dimensions (0..%d allowed)", name, ndim,
				     LVD_ST_MAX_DIMS);
	if (strcmp(name, "__metadata__") == 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "tensor name '__metadata__' is reserved");
	if (!utf8_valid(name))
		return lvd_error_set(err, LVD_ERR_INVALID, "tensor name '%s' is not valid UTF-8", name);
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->e[i].name, name) == 0)
			return lvd_error_set(err, LVD_ERR_INVALID, "tensor '%s' added twice", name);
	size_t numel = 1, nbytes;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX || lvd_size_mul(&numel, numel, (size_t)shape[i]))
			return lvd_error_set(err, LVD_ERR_INVALID, "tensor '%s': bad shape (dimension %d = %" PRId64 ")",
					     name, i, shape[i]);
	}
	if (lvd_size_mul(&nbytes, numel, lvd_st_dtype_size(dtype)) || nbytes > (size_t)INT64_MAX)
		return lvd_error_set(err, LVD_ERR_INVALID, "tensor '%s': size overflows", name);
	if (nbytes && !data)
		return lvd_error_set(err, LVD_ERR_INVALID, "tensor '%s': no data", name);
	if (w->n == w->cap) {
		size_t nc = w->cap ? 2 * w->cap : 16;
		struct w_entry *ne = lvd_realloc_array(w->e, nc, sizeof *ne);
		if (!ne)
			return lvd_error_set(err, LVD_ERR_NOMEM, "tensor '%s': out of memory", name);
		w->e = ne;
		w->cap = nc;
	}
	struct w_entry *e = &w->e[w->n];
	memset(e, 0, sizeof *e);
	if (!(e->name = lvd_strdup(name)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "tensor '%s': out of memory", name);
	e->dtype = dtype;
	e->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		e->shape[i] = shape[i];
	e->data = data;
	e->nbytes = nbytes;
	w->n++;
	return 0;
}

int lvd_st_writer_meta(struct lvd_st_writer *w, const char *key, const char *value, struct lvd_error *err)
{
	if (!utf8_valid(key) || !utf8_valid(value))
		return lvd_error_set(err, LVD_ERR_INVALID, "metadata '%s': key or value is not valid UTF-8", key);
	for (size_t i = 0; i < w->nm; i++)
		if (strcmp(w->mk[i], key) == 0) {
			char *v = lvd_strdup(value);
			if (!v)
				return lvd_error_set(err, LVD_ERR_NOMEM, "metadata '%s': out of memory", key);
			free(w->mv[i]);
			w->mv[i] = v;
			return 0;
		}
	if (w->nm == w->mcap) {
		size_t nc = w->mcap ? 2 * w->mcap : 8;
		char **a = lvd_realloc_array(w->mk, nc, sizeof *a);
		if (!a)
			return lvd_error_set(err, LVD_ERR_NOMEM, "metadata '%s': out of memory", key);
		w->mk = a;
		char **b = lvd_realloc_array(w->mv, nc, sizeof *b);
		if (!b)
			return lvd_error_set(err, LVD_ERR_NOMEM, "metadata '%s': out of memory", key);
		w->mv = b;
		w->mcap = nc;
	}
	char *k = lvd_strdup(key), *v = lvd_strdup(value);
	if (!k || !v) {
		free(k);
		free(v);
		return lvd_error_set(err, LVD_ERR_NOMEM, "metadata '%s': out of memory", key);
	}
	w->mk[w->nm] = k;
	w->mv[w->nm] = v;
	w->nm++;
	return 0;
}

/* A JSON string escaped as serde_json does (the Python package's serializer). */
static void sb_json_string(struct lvd_strbuf *b, const char *s)
{
	lvd_strbuf_add(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		switch (*p) {
		case '"': lvd_strbuf_add(b, "\\\"", 2); break;
		case '\\': lvd_strbuf_add(b, "\\\\", 2); break;
		case '\b': lvd_strbuf_add(b, "\\b", 2); break;
		case '\f': lvd_strbuf_add(b, "\\f", 2); break;
		case '\n': lvd_strbuf_add(b, "\\n", 2); break;
		case '\r': lvd_strbuf_add(b, "\\r", 2); break;
		case '\t': lvd_strbuf_add(b, "\\t", 2); break;
		default:
			if (*p < 0x20) {
				snprintf(esc, sizeof esc, "\\u%04x", *p);
				lvd_strbuf_add(b, esc, 6);
			} else {
				lvd_strbuf_add(b, (const char *)p, 1);
			}
		}
	}
	lvd_strbuf_add(b, "\"", 1);
}

static int w_entry_cmp(const void *pa, const void *pb)
{
	const struct w_entry *a = pa, *b = pb;
	int ra = lvd_st_dtype_py_rank(a->dtype), rb = lvd_st_dtype_py_rank(b->dtype);
	if (ra != rb)
		return rb - ra;
	return strcmp(a->name, b->name);
}

static int meta_idx_cmp(const void *pa, const void *pb, void *ctx)
{
	char **keys = ctx;
	return strcmp(keys[*(const size_t *)pa], keys[*(const size_t *)pb]);
}

int lvd_st_writer_write(struct lvd_st_writer *w, const char *path, struct lvd_error *err)
{
	if (w->n)
		qsort(w->e, w->n, sizeof *w->e, w_entry_cmp);
	size_t *mi = lvd_alloc_array(w->nm + 1, sizeof *mi);
	if (!mi)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	for (size_t i = 0; i < w->nm; i++)
		mi[i] = i;
	qsort_r(mi, w->nm, sizeof *mi, meta_idx_cmp, w->mk);

	struct lvd_strbuf h = {0};
	char num[64];
	lvd_strbuf_str(&h, "{");
	if (w->nm) {
		lvd_strbuf_str(&h, "\"__metadata__\":{");
		for (size_t i = 0; i < w->nm; i++) {
			if (i)
				lvd_strbuf_str(&h, ",");
			sb_json_string(&h, w->mk[mi[i]]);
			lvd_strbuf_str(&h, ":");
			sb_json_string(&h, w->mv[mi[i]]);
		}
		lvd_strbuf_str(&h, "}");
	}
	free(mi);
	uint64_t off = 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct w_entry *e = &w->e[i];
		if (i || w->nm)
			lvd_strbuf_str(&h, ",");
		sb_json_string(&h, e->name);
		lvd_strbuf_str(&h, ":{\"dtype\":\"");
		lvd_strbuf_str(&h, lvd_st_dtype_name(e->dtype));
		lvd_strbuf_str(&h, "\",\"shape\":[");
		for (int d = 0; d < e->ndim; d++) {
			snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", e->shape[d]);
			lvd_strbuf_str(&h, num);
		}
		snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + e->nbytes);
		lvd_strbuf_str(&h, num);
		off += e->nbytes;
	}
	lvd_strbuf_str(&h, "}");
	while (!h.oom && h.len % 8)
		lvd_strbuf_str(&h, " ");
	if (h.oom) {
		free(h.p);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory for the header", path);
	}
	uint8_t len8[8];
	for (int i = 0; i < 8; i++)
		len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));

	struct lvd_afile af;
	int rc = lvd_afile_open(&af, path, err);
	if (!rc)
		rc = lvd_afile_write(&af, len8, 8, err);
	if (!rc)
		rc = lvd_afile_write(&af, h.p, h.len, err);
	for (size_t i = 0; i < w->n && !rc; i++)
		if (w->e[i].nbytes)
			rc = lvd_afile_write(&af, w->e[i].data, w->e[i].nbytes, err);
	if (!rc)
		rc = lvd_afile_commit(&af, err);
	else
		lvd_afile_abort(&af);
	free(h.p);
	return rc;
}
