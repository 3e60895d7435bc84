/* Record container (.lvdm/.lvdp): writer and validating reader. Layout in container.h
 * and docs/FORMATS.md. */
#include "io/container.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/fault.h"
#include "io/fileutil.h"

static const unsigned char REC_MAGIC[8] = { 0x89, 'L', 'V', 'D', '\r', '\n', 0x1a, '\n' };
static const unsigned char FOOT_MAGIC[8] = { 'L', 'V', 'D', 'F', 'O', 'O', 'T', '\n' };
#define INDEX_ENTRY_MIN (2 + 1 + 24) /* smallest index entry: 1-byte id */
#define INDEX_MAX ((uint64_t)1 << 30)

/* ---- little-endian fields ---------------------------------------------------- */

static void put_u16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
	return v;
}

static int kind_ok(const char *kind)
{
	if (!kind || strlen(kind) != 4)
		return 0;
	for (int i = 0; i < 4; i++)
		if (kind[i] < 0x21 || kind[i] > 0x7e)
			return 0;
	return 1;
}

/* 1..LVD_REC_ID_MAX bytes of UTF-8 without control characters. Returns NULL when fine,
 * else a reason. */
static const char *id_problem(const char *id, size_t n)
{
	if (n == 0)
		return "empty id";
	if (n > LVD_REC_ID_MAX)
		return "id longer than 1024 bytes";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
			return "id contains a control character";
	if (lvd_utf8_check(id, n) != n)
		return "id is not valid UTF-8";
	return NULL;
}

/* ---- writer ------------------------------------------------------------------- */

struct rec_entry {
	char *id;       /* writer: owned; reader: points into the id blob */
	size_t id_len;
	uint64_t offset, comp_len, raw_len;
};

struct lvd_rec_writer {
	struct lvd_afile af;
	ZSTD_CCtx *cctx;
	struct rec_entry *e;
	size_t n, cap;
	size_t *slots;      /* open-addressing set of entry index + 1 (0 = empty) */
	size_t n_slots;     /* power of two, kept > 2n */
	uint64_t pos;       /* bytes written so far */
	uint64_t data_start;/* where the records begin (prefix + header) */
	void *cbuf;         /* compression scratch */
	size_t cbuf_cap;
	int failed;
};

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

/* Slot of id in the set: either the matching entry or an empty slot. */
static size_t set_slot(const struct lvd_rec_writer *w, const char *id, size_t n)
{
	size_t mask = w->n_slots - 1, i = (size_t)fnv1a(id, n) & mask;
	while (w->slots[i]) {
		const struct rec_entry *e = &w->e[w->slots[i] - 1];
		if (e->id_len == n && memcmp(e->id, id, n) == 0)
			break;
		i = (i + 1) & mask;
	}
	return i;
}

static int set_grow(struct lvd_rec_writer *w)
{
	size_t ns = w->n_slots ? w->n_slots * 2 : 64;
	size_t *slots = lvd_calloc_array(ns, sizeof *slots);
	if (!slots)
		return -1;
	size_t *old = w->slots, old_n = w->n_slots;
	w->slots = slots;
	w->n_slots = ns;
	for (size_t i = 0; i < old_n; i++)
		if (old[i]) {
			const struct rec_entry *e = &w->e[old[i] - 1];
			w->slots[set_slot(w, e->id, e->id_len)] = old[i];
		}
	free(old);
	return 0;
}

static void writer_free(struct lvd_rec_writer *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->e[i].id);
	free(w->e);
	free(w->slots);
	free(w->cbuf);
	ZSTD_freeCCtx(w->cctx);
	free(w);
}

int lvd_rec_writer_open(struct lvd_rec_writer **out, const char *path, const char *kind,
			const char *header_json, const struct lvd_rec_writer_opts *opts,
			struct lvd_error *err)
{
	*out = NULL;
	if (!kind_ok(kind))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: kind must be 4 printable ASCII characters", path);
	int level = opts && opts->level ? opts->level : 3;
	if (level < 1 || level > 19)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: zstd level %d out of range [1, 19]", path, level);
	size_t hlen = strlen(header_json);
	if (hlen > LVD_REC_HEADER_MAX)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: header JSON longer than 16 MiB", path);
	json_error_t jerr;
	json_t *j = json_loadb(header_json, hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: header is not valid JSON: %s (column %d)",
				     path, jerr.text, jerr.column);
	int is_obj = json_is_object(j);
	json_decref(j);
	if (!is_obj)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: header must be a JSON object", path);

	struct lvd_rec_writer *w = calloc(1, sizeof *w);
	if (!w || !(w->cctx = ZSTD_createCCtx()) || set_grow(w)) {
		if (w)
			writer_free(w);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	}
	size_t zr = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(zr))
		zr = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
	if (!ZSTD_isError(zr))
		zr = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
	if (ZSTD_isError(zr)) {
		writer_free(w);
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: zstd: %s", path, ZSTD_getErrorName(zr));
	}
	int rc = lvd_afile_open(&w->af, path, err);
	if (rc) {
		writer_free(w);
		return rc;
	}
	unsigned char pre[LVD_REC_PREFIX_LEN];
	memcpy(pre, REC_MAGIC, 8);
	memcpy(pre + 8, kind, 4);
	put_u32(pre + 12, LVD_REC_VERSION);
	put_u32(pre + 16, (uint32_t)hlen);
	put_u32(pre + 20, lvd_crc32c(0, header_json, hlen));
	if ((rc = lvd_afile_write(&w->af, pre, sizeof pre, err)) ||
	    (rc = lvd_afile_write(&w->af, header_json, hlen, err))) {
		lvd_afile_abort(&w->af);
		writer_free(w);
		return rc;
	}
	w->pos = w->data_start = LVD_REC_PREFIX_LEN + hlen;
	*out = w;
	return LVD_OK;
}

size_t lvd_rec_writer_count(const struct lvd_rec_writer *w)
{
	return w->n;
}

uint64_t lvd_rec_writer_bytes(const struct lvd_rec_writer *w)
{
	return w->pos - w->data_start;
}

int lvd_rec_writer_append(struct lvd_rec_writer *w, const char *id, const void *data,
			  size_t len, struct lvd_error *err)
{
	const char *path = w->af.path;
	if (w->failed)
		return lvd_error_set(err, LVD_ERR_IO, "%s: writer failed earlier", path);
	size_t id_len = strnlen(id, LVD_REC_ID_MAX + 1);
	const char *why = id_problem(id, id_len);
	if (why)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: record %zu: %s", path, w->n, why);
	if ((uint64_t)len > LVD_REC_RAW_MAX)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: record %zu ('%s'): %zu bytes is over the 2 GiB limit",
				     path, w->n, id, len);
	size_t slot = set_slot(w, id, id_len);
	if (w->slots[slot])
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: record %zu: duplicate id '%s' (also record %zu)",
				     path, w->n, id, w->slots[slot] - 1);
	/* make room for the entry and keep the set at most half full */
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 64;
		struct rec_entry *ne = lvd_realloc_array(w->e, nc, sizeof *ne);
		if (!ne)
			goto nomem;
		w->e = ne;
		w->cap = nc;
	}
	if (2 * (w->n + 1) > w->n_slots) {
		if (set_grow(w))
			goto nomem;
		slot = set_slot(w, id, id_len);
	}
	size_t bound = ZSTD_compressBound(len);
	if (bound > w->cbuf_cap) {
		void *nb = realloc(w->cbuf, bound);
		if (!nb)
			goto nomem;
		w->cbuf = nb;
		w->cbuf_cap = bound;
	}
	char *id_copy = malloc(id_len + 1);
	if (!id_copy)
		goto nomem;
	memcpy(id_copy, id, id_len + 1);
	size_t clen = ZSTD_compress2(w->cctx, w->cbuf, w->cbuf_cap, data, len);
	if (ZSTD_isError(clen)) {
		free(id_copy);
		w->failed = 1;
		return lvd_error_set(err, LVD_ERR_IO, "%s: record %zu ('%s'): zstd: %s", path, w->n, id,
				     ZSTD_getErrorName(clen));
	}
	int rc = lvd_afile_write(&w->af, w->cbuf, clen, err);
	if (rc) {
		free(id_copy);
		w->failed = 1;
		return rc;
	}
	w->e[w->n] = (struct rec_entry){ id_copy, id_len, w->pos, clen, len };
	w->slots[slot] = w->n + 1;
	w->n++;
	w->pos += clen;
	return LVD_OK;
nomem:
	w->failed = 1;
	return lvd_error_set(err, LVD_ERR_NOMEM, "%s: record %zu ('%s'): out of memory", path, w->n, id);
}

int lvd_rec_writer_close(struct lvd_rec_writer *w, struct lvd_error *err)
{
	int rc = LVD_OK;
	unsigned char *idx = NULL;
	if (w->failed) {
		rc = lvd_error_set(err, LVD_ERR_IO, "%s: writer failed earlier; shard discarded", w->af.path);
		goto fail;
	}
	size_t ilen = 8;
	for (size_t i = 0; i < w->n; i++)
		ilen += 2 + w->e[i].id_len + 24; /* bounded: ids <= 1024 bytes, n fits in memory */
	if (!(idx = malloc(ilen))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", w->af.path);
		goto fail;
	}
	unsigned char *p = idx;
	put_u64(p, w->n);
	p += 8;
	for (size_t i = 0; i < w->n; i++) {
		const struct rec_entry *e = &w->e[i];
		put_u16(p, (uint16_t)e->id_len);
		memcpy(p + 2, e->id, e->id_len);
		p += 2 + e->id_len;
		put_u64(p, e->offset);
		put_u64(p + 8, e->comp_len);
		put_u64(p + 16, e->raw_len);
		p += 24;
	}
	unsigned char foot[LVD_REC_FOOTER_LEN];
	put_u64(foot, w->pos);
	put_u64(foot + 8, ilen);
	put_u32(foot + 16, lvd_crc32c(0, idx, ilen));
	put_u32(foot + 20, lvd_crc32c(0, foot, 20));
	memcpy(foot + 24, FOOT_MAGIC, 8);
	if ((rc = lvd_afile_write(&w->af, idx, ilen, err)) ||
	    (rc = lvd_afile_write(&w->af, foot, sizeof foot, err)))
		goto fail;
	free(idx);
	rc = lvd_afile_commit(&w->af, err);
	writer_free(w);
	return rc;
fail:
	free(idx);
	lvd_afile_abort(&w->af);
	writer_free(w);
	return rc;
}

void lvd_rec_writer_abort(struct lvd_rec_writer *w)
{
	if (!w)
		return;
	lvd_afile_abort(&w->af);
	writer_free(w);
}

/* ---- reader ------------------------------------------------------------------- */

struct lvd_rec_reader {
	char *path;
	int fd;
	char kind[5];
	char *header;       /* NUL-terminated */
	size_t header_len;
	struct rec_entry *e;
	size_t n;
	char *id_blob;      /* all ids, NUL-separated */
	const struct rec_entry **sorted; /* entries sorted by id */
};

void lvd_rec_close(struct lvd_rec_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->path);
	free(r->header);
	free(r->e);
	free(r->id_blob);
	free(r->sorted);
	free(r);
}

static int cmp_by_id(const void *a, const void *b)
{
	return strcmp((*(const struct rec_entry *const *)a)->id, (*(const struct rec_entry *const *)b)->id);
}

/* Parses and checks the index bytes (CRC already verified). */
static int parse_index(struct lvd_rec_reader *r, const unsigned char *idx, uint64_t ilen,
		       uint64_t data_start, uint64_t data_end, struct lvd_error *err)
{
	const char *path = r->path;
	if (ilen < 8)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: index: %llu bytes is too short",
				     path, (unsigned long long)ilen);
	uint64_t count = get_u64(idx);
	if (count > (ilen - 8) / INDEX_ENTRY_MIN)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: index: record count %llu does not fit in %llu bytes",
				     path, (unsigned long long)count, (unsigned long long)ilen);
	r->n = (size_t)count;
	r->e = lvd_calloc_array(r->n ? r->n : 1, sizeof *r->e);
	r->id_blob = malloc((size_t)ilen); /* ids + NULs fit: each id has >= 26 bytes of other fields */
	r->sorted = lvd_alloc_array(r->n ? r->n : 1, sizeof *r->sorted);
	if (!r->e || !r->id_blob || !r->sorted)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory for %llu index entries",
				     path, (unsigned long long)count);
	uint64_t pos = 8, expect = data_start;
	size_t blob = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct rec_entry *e = &r->e[i];
		if (ilen - pos < 2)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: index entry %zu: truncated", path, i);
		size_t n = get_u16(idx + pos);
		pos += 2;
		if (ilen - pos < (uint64_t)n + 24)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: index entry %zu: truncated", path, i);
		const char *why = id_problem((const char *)idx + pos, n);
		if (why)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: index entry %zu: %s", path, i, why);
		e->id = r->id_blob + blob;
		e->id_len = n;
		memcpy(e->id, idx + pos, n);
		e->id[n] = 0;
		blob += n + 1;
		pos += n;
		e->offset = get_u64(idx + pos);
		e->comp_len = get_u64(idx + pos + 8);
		e->raw_len = get_u64(idx + pos + 16);
		pos += 24;
		if (e->offset != expect)
			return lvd_error_set(err, LVD_ERR_FORMAT,
					     "%s: record %zu ('%s'): offset %llu, expected %llu (records must be contiguous)",
					     path, i, e->id, (unsigned long long)e->offset, (unsigned long long)expect);
		if (e->comp_len == 0 || e->comp_len > data_end - e->offset)
			return lvd_error_set(err, LVD_ERR_FORMAT,
					     "%s: record %zu ('%s'): stored length %llu runs past the index at %llu",
					     path, i, e->id, (unsigned long long)e->comp_len, (unsigned long long)data_end);
		if (e->raw_len > LVD_REC_RAW_MAX)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: record %zu ('%s'): raw length %llu is over the 2 GiB limit",
					     path, i, e->id, (unsigned long long)e->raw_len);
		expect = e->offset + e->comp_len;
	}
	if (pos != ilen)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: index: %llu trailing bytes",
				     path, (unsigned long long)(ilen - pos));
	if (expect != data_end)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: index: records end at %llu but the index starts at %llu",
				     path, (unsigned long long)expect, (unsigned long long)data_end);
	for (size_t i = 0; i < r->n; i++)
		r->sorted[i] = &r->e[i];
	qsort(r->sorted, r->n, sizeof *r->sorted, cmp_by_id);
	for (size_t i = 1; i < r->n; i++)
		if (strcmp(r->sorted[i]->id, r->sorted[i - 1]->id) == 0) {
			size_t a = (size_t)(r->sorted[i - 1] - r->e), b = (size_t)(r->sorted[i] - r->e);
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: records %zu and %zu have the same id '%s'",
					     path, a < b ? a : b, a < b ? b : a, r->sorted[i]->id);
		}
	return LVD_OK;
}

int lvd_rec_open(struct lvd_rec_reader **out, const char *path, const char *kind,
		 struct lvd_error *err)
{
	*out = NULL;
	struct lvd_rec_reader *r = calloc(1, sizeof *r);
	if (!r || !(r->path = lvd_strdup(path))) {
		free(r);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	}
	int rc = LVD_OK;
	unsigned char *idx = NULL;
	uint64_t size;
	/* a FIFO or device is refused without blocking */
	if ((rc = lvd_file_open_regular(path, UINT64_MAX, &r->fd, &size, err)))
		goto fail;
	unsigned char pre[LVD_REC_PREFIX_LEN];
	if (size < 8 || (rc = lvd_pread_full(r->fd, pre, 8, 0, path, err)) ||
	    memcmp(pre, REC_MAGIC, 8) != 0) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: not an lvd record container (bad magic)", path);
		goto fail;
	}
	if (size < LVD_REC_PREFIX_LEN + LVD_REC_FOOTER_LEN) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: truncated (%llu bytes)", path, (unsigned long long)size);
		goto fail;
	}
	if ((rc = lvd_pread_full(r->fd, pre, sizeof pre, 0, path, err)))
		goto fail;
	memcpy(r->kind, pre + 8, 4);
	r->kind[4] = 0;
	if (!kind_ok(r->kind)) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: kind field is not 4 printable characters", path);
		goto fail;
	}
	uint32_t version = get_u32(pre + 12);
	if (version != LVD_REC_VERSION) {
		rc = lvd_error_set(err, version > LVD_REC_VERSION ? LVD_ERR_UNSUPPORTED : LVD_ERR_FORMAT,
				   "%s: container version %u (this build reads version %u)", path, version,
				   LVD_REC_VERSION);
		goto fail;
	}
	if (kind && strcmp(kind, r->kind) != 0) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: a '%s' shard, expected '%s'", path, r->kind, kind);
		goto fail;
	}
	uint64_t hlen = get_u32(pre + 16);
	uint64_t data_start = LVD_REC_PREFIX_LEN + hlen;
	if (hlen > LVD_REC_HEADER_MAX || data_start > size - LVD_REC_FOOTER_LEN) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: header length %llu does not fit in the file (%llu bytes)",
				   path, (unsigned long long)hlen, (unsigned long long)size);
		goto fail;
	}
	/* footer first: it says where the index is */
	unsigned char foot[LVD_REC_FOOTER_LEN];
	if ((rc = lvd_pread_full(r->fd, foot, sizeof foot, size - LVD_REC_FOOTER_LEN, path, err)))
		goto fail;
	if (memcmp(foot + 24, FOOT_MAGIC, 8) != 0) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: footer magic missing (truncated or incomplete shard)", path);
		goto fail;
	}
	if (get_u32(foot + 20) != lvd_crc32c(0, foot, 20)) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: footer CRC mismatch", path);
		goto fail;
	}
	uint64_t ioff = get_u64(foot), ilen = get_u64(foot + 8);
	if (ioff < data_start || ioff > size - LVD_REC_FOOTER_LEN || ilen != size - LVD_REC_FOOTER_LEN - ioff) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT,
				   "%s: index at %llu+%llu does not end at the footer (file %llu bytes)", path,
				   (unsigned long long)ioff, (unsigned long long)ilen, (unsigned long long)size);
		goto fail;
	}
	if (ilen > INDEX_MAX) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: index of %llu bytes is over 1 GiB", path,
				   (unsigned long long)ilen);
		goto fail;
	}
	/* header */
	r->header = malloc((size_t)hlen + 1);
	idx = malloc((size_t)ilen + 1);
	if (!r->header || !idx) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
		goto fail;
	}
	if ((rc = lvd_pread_full(r->fd, r->header, (size_t)hlen, LVD_REC_PREFIX_LEN, path, err)))
		goto fail;
	r->header[hlen] = 0;
	r->header_len = (size_t)hlen;
	if (get_u32(pre + 20) != lvd_crc32c(0, r->header, (size_t)hlen)) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: header CRC mismatch", path);
		goto fail;
	}
	json_error_t jerr;
	json_t *j = json_loadb(r->header, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
	int is_obj = j && json_is_object(j);
	json_decref(j);
	if (!is_obj) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: header is not a JSON object%s%s", path,
				   j ? "" : ": ", j ? "" : jerr.text);
		goto fail;
	}
	/* index */
	if ((rc = lvd_pread_full(r->fd, idx, (size_t)ilen, ioff, path, err)))
		goto fail;
	if (get_u32(foot + 16) != lvd_crc32c(0, idx, (size_t)ilen)) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: index CRC mismatch", path);
		goto fail;
	}
	if ((rc = parse_index(r, idx, ilen, data_start, ioff, err)))
		goto fail;
	free(idx);
	*out = r;
	return LVD_OK;
fail:
	free(idx);
	lvd_rec_close(r);
	return rc;
}

const char *lvd_rec_path(const struct lvd_rec_reader *r) { return r->path; }
const char *lvd_rec_kind(const struct lvd_rec_reader *r) { return r->kind; }
size_t lvd_rec_count(const struct lvd_rec_reader *r) { return r->n; }

const char *lvd_rec_header(const struct lvd_rec_reader *r, size_t *len)
{
	if (len)
		*len = r->header_len;
	return r->header;
}

const char *lvd_rec_id(const struct lvd_rec_reader *r, size_t i)
{
	LVD_ASSERT(i < r->n);
	return r->e[i].id;
}

uint64_t lvd_rec_raw_size(const struct lvd_rec_reader *r, size_t i)
{
	LVD_ASSERT(i < r->n);
	return r->e[i].raw_len;
}

uint64_t lvd_rec_stored_size(const struct lvd_rec_reader *r, size_t i)
{
	LVD_ASSERT(i < r->n);
	return r->e[i].comp_len;
}

int lvd_rec_check_id(const struct lvd_rec_reader *r, size_t i, const char *payload_id, const char *where,
		     struct lvd_error *err)
{
	const char *id = lvd_rec_id(r, i);
	if (!id || !payload_id || strcmp(id, payload_id))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: the index names the record '%s' but its payload says '%s'",
				     where, id ? id : "?", payload_id ? payload_id : "(none)");
	return LVD_OK;
}

int lvd_rec_find(const struct lvd_rec_reader *r, const char *id, size_t *index,
		 struct lvd_error *err)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->sorted[mid]->id, id);
		if (c == 0) {
			*index = (size_t)(r->sorted[mid] - r->e);
			return LVD_OK;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: no record with id '%s'", r->path, id);
}

int lvd_rec_read(const struct lvd_rec_reader *r, size_t i, void **out, size_t *out_len,
		 struct lvd_error *err)
{
	LVD_ASSERT(i < r->n);
	*out = NULL;
	*out_len = 0;
	const struct rec_entry *e = &r->e[i];
	unsigned char *src = malloc((size_t)e->comp_len);
	char *dst = malloc((size_t)e->raw_len + 1);
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	int rc = LVD_OK;
	if (!src || !dst || !dctx) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: record %zu ('%s'): out of memory", r->path, i, e->id);
		goto out;
	}
	if ((rc = lvd_pread_full(r->fd, src, (size_t)e->comp_len, e->offset, r->path, err))) {
		lvd_error_prefix(err, "record %zu ('%s'): ", i, e->id);
		goto out;
	}
	/* one complete zstd frame with the content checksum flag (FHD bit 2) and size */
	const char *why = NULL;
	if (e->comp_len < 5 || get_u32(src) != 0xFD2FB528u)
		why = "not a zstd frame";
	else if (!(src[4] & 0x04))
		why = "zstd frame has no content checksum";
	else if (ZSTD_findFrameCompressedSize(src, (size_t)e->comp_len) != e->comp_len)
		why = "stored length does not match the zstd frame";
	else if (ZSTD_getFrameContentSize(src, (size_t)e->comp_len) != e->raw_len)
		why = "zstd frame size does not match the index";
	if (why) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: record %zu ('%s'): %s", r->path, i, e->id, why);
		goto out;
	}
	size_t got = ZSTD_decompressDCtx(dctx, dst, (size_t)e->raw_len, src, (size_t)e->comp_len);
	if (ZSTD_isError(got)) {
		const char *msg = ZSTD_getErrorCode(got) == ZSTD_error_checksum_wrong ? "checksum mismatch"
										      : ZSTD_getErrorName(got);
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: record %zu ('%s'): zstd: %s", r->path, i, e->id, msg);
		goto out;
	}
	if (got != e->raw_len) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: record %zu ('%s'): decompressed %zu bytes, index says %llu",
				   r->path, i, e->id, got, (unsigned long long)e->raw_len);
		goto out;
	}
	dst[got] = 0;
	*out = dst;
	*out_len = got;
	dst = NULL;
out:
	free(src);
	free(dst);
	ZSTD_freeDCtx(dctx);
	return rc;
}
