/* lib/io/safetensors.c — memory-mapped safetensors reader, dtypes and half-precision
 * conversion (the writer is in safetensors_write.c).
 *
 * Reader: each file is mapped read-only; the header JSON (jansson) is validated as
 * hostile input and kept alive, so tensor names and metadata strings are borrowed from
 * it. The acceptance rule is the Python package's (safetensors 0.8): tensors must tile
 * the byte buffer exactly (sorted by offsets, each begins where the previous ended, the
 * last ends at the end of the file), shape x dtype size must equal the byte length. */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/fault.h"
#include "io/fileutil.h"
#include "io/safetensors_internal.h"

#define ST_MAX_HEADER ((uint64_t)100000000)  /* the Python package's limit */
#define ST_MAX_DEPTH 16                       /* a valid header nests 3 deep */
#define ST_MAX_INDEX ((off_t)256 << 20)      /* index.json size limit */

/* ---- dtypes ------------------------------------------------------------------- */

static const struct {
	const char *name;
	size_t size;
	int py_rank; /* position in the Python package's Dtype enum; higher is written first */
} dtypes[LVD_DT__COUNT] = {
	[LVD_DT_F32] = {"F32", 4, 15}, [LVD_DT_F16] = {"F16", 2, 11},
	[LVD_DT_BF16] = {"BF16", 2, 12}, [LVD_DT_F64] = {"F64", 8, 16},
	[LVD_DT_I64] = {"I64", 8, 17}, [LVD_DT_I32] = {"I32", 4, 13},
	[LVD_DT_I16] = {"I16", 2, 9}, [LVD_DT_I8] = {"I8", 1, 5},
	[LVD_DT_U8] = {"U8", 1, 4}, [LVD_DT_BOOL] = {"BOOL", 1, 0},
};

/* dtypes the safetensors format defines but lvd does not handle */
static const char *const unsupported_dtypes[] = {
	"U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
	"C64", NULL,
};

const char *lvd_st_dtype_name(enum lvd_st_dtype dt)
{
	LVD_ASSERT((unsigned)dt < LVD_DT__COUNT);
	return dtypes[dt].name;
}

int lvd_st_dtype_py_rank(enum lvd_st_dtype dt)
{
	return (unsigned)dt < LVD_DT__COUNT ? dtypes[dt].py_rank : -1;
}

size_t lvd_st_dtype_size(enum lvd_st_dtype dt)
{
	LVD_ASSERT((unsigned)dt < LVD_DT__COUNT);
	return dtypes[dt].size;
}

int lvd_st_dtype_from_name(const char *name, enum lvd_st_dtype *out)
{
	for (int i = 0; i < LVD_DT__COUNT; i++)
		if (strcmp(name, dtypes[i].name) == 0) {
			*out = (enum lvd_st_dtype)i;
			return 0;
		}
	return -1;
}

/* ---- half-precision conversion ------------------------------------------------ */

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

/* Branch-free so that the conversion loop vectorises: re-bias the exponent in place;
 * subnormals are renormalised with one exact float subtraction; inf/NaN get the full
 * f32 exponent, NaNs quieted (as x86 F16C does). */
static inline uint32_t f16_bits_to_f32_bits(uint32_t h)
{
	uint32_t o = (h & 0x7fffu) << 13;
	uint32_t exp = o & 0x0f800000u;
	uint32_t normal = o + ((uint32_t)(127 - 15) << 23);
	uint32_t special = normal + ((uint32_t)(128 - 16) << 23);
	special |= (o & 0x7fffffu) ? 0x400000u : 0;
	uint32_t sub = f32_bits(bits_f32(normal + (1u << 23)) - 0x1p-14f);
	o = exp == 0x0f800000u ? special : exp == 0 ? sub : normal;
	return o | ((h & 0x8000u) << 16);
}

float lvd_f16_to_f32(uint16_t h)
{
	return bits_f32(f16_bits_to_f32_bits(h));
}

float lvd_bf16_to_f32(uint16_t b)
{
	return bits_f32((uint32_t)b << 16);
}

uint16_t lvd_f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
	uint32_t ax = x & 0x7fffffffu;
	if (ax > 0x7f800000u)          /* NaN: quieted, sign and top payload bits kept (as F16C) */
		return sign | 0x7e00u | (uint16_t)((ax >> 13) & 0x3ffu);
	if (ax >= 0x477ff000u)         /* >= 65520 rounds to infinity */
		return sign | 0x7c00u;
	if (ax < 0x38800000u) {        /* below 2^-14: half subnormal or zero */
		if (ax <= 0x33000000u) /* <= 2^-25: rounds (ties to even) to zero */
			return sign;
		uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
		uint32_t s = 126 - e;  /* value in units of 2^-24 is m >> s; s in 14..24 */
		uint32_t r = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
		if (rem > half || (rem == half && (r & 1)))
			r++;
		return sign | (uint16_t)r;
	}
	uint32_t r = ((((ax >> 23) - 112) << 10) | ((ax >> 13) & 0x3ffu));
	uint32_t rem = ax & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (r & 1)))
		r++;                   /* a carry into the exponent is the right result */
	return sign | (uint16_t)r;
}

uint16_t lvd_f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);
	if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: quieted, sign and top payload bits kept */
		return (uint16_t)((x >> 16) | 0x40u);
	x += 0x7fffu + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

/* ---- reader ------------------------------------------------------------------- */

struct st_file {
	char *path;
	void *map;
	size_t map_len;
	const uint8_t *buf;   /* byte buffer after the header */
	size_t buf_len;
	json_t *root;         /* header; owns tensor names and metadata strings */
	json_t *meta;         /* "__metadata__" object or NULL (borrowed from root) */
};

struct lvd_st {
	char *path;
	struct st_file *files;
	size_t nfiles;
	struct lvd_tensor_view *t; /* sorted by name */
	size_t n;
};

static uint64_t rd_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Maximum nesting of arrays/objects in a JSON text, strings skipped. Used to refuse
 * deeply nested headers before handing them to the recursive parser. */
static int json_depth_exceeds(const char *s, size_t n, int limit)
{
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > limit)
				return 1;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 0;
}

static void fmt_shape(char *out, size_t cap, int ndim, const int64_t *shape)
{
	size_t k = 0;
	k += (size_t)snprintf(out + k, cap - k, "[");
	for (int i = 0; i < ndim && k < cap; i++) {
		if (shape[i] < 0)
			k += (size_t)snprintf(out + k, cap - k, "%s*", i ? ", " : "");
		else
			k += (size_t)snprintf(out + k, cap - k, "%s%" PRId64, i ? ", " : "", shape[i]);
	}
	if (k < cap)
		snprintf(out + k, cap - k, "]");
}

/* Fills v from one header entry; v->data is set relative to f->buf. */
static int parse_entry(struct st_file *f, const char *name, json_t *e, struct lvd_tensor_view *v,
		       uint64_t *begin, uint64_t *end, struct lvd_error *err)
{
	const char *P = f->path;
	if (!json_is_object(e))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", P, name);
	json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape");
	json_t *jo = json_object_get(e, "data_offsets");
	if (!jd || !js || !jo)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", P, name,
				     !jd ? "dtype" : !js ? "shape" : "data_offsets");
	if (!json_is_string(jd))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", P, name);
	const char *dn = json_string_value(jd);
	enum lvd_st_dtype dt;
	if (lvd_st_dtype_from_name(dn, &dt) != 0) {
		for (int i = 0; unsupported_dtypes[i]; i++)
			if (strcmp(dn, unsupported_dtypes[i]) == 0)
				return lvd_error_set(err, LVD_ERR_UNSUPPORTED,
						     "%s: tensor '%s': dtype %s is not supported", P, name, dn);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", P, name, dn);
	}
	if (!json_is_array(js))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", P, name);
	size_t nd = json_array_size(js);
	if (nd > LVD_ST_MAX_DIMS)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d)",
				     P, name, nd, LVD_ST_MAX_DIMS);
	memset(v, 0, sizeof *v);
	v->name = name;
	v->dtype = dt;
	v->ndim = (int)nd;
	v->file = f->path;
	size_t numel = 1, nbytes;
	int overflow = 0;
	for (size_t i = 0; i < nd; i++) {
		json_t *d = json_array_get(js, i);
		if (!json_is_integer(d))
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not an integer",
					     P, name, i);
		json_int_t x = json_integer_value(d);
		if (x < 0)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s': shape[%zu] = %lld is negative",
					     P, name, i, (long long)x);
		v->shape[i] = (int64_t)x;
		if ((uint64_t)x > SIZE_MAX || lvd_size_mul(&numel, numel, (size_t)x))
			overflow = 1;
	}
	char sh[256];
	fmt_shape(sh, sizeof sh, v->ndim, v->shape);
	if (overflow || numel > INT64_MAX || lvd_size_mul(&nbytes, numel, dtypes[dt].size))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s': shape %s x %s overflows the size range",
				     P, name, sh, dn);
	if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
	    !json_is_integer(json_array_get(jo, 1)))
		return lvd_error_set(err, LVD_ERR_FORMAT,
				     "%s: tensor '%s': \"data_offsets\" is not an array of two integers", P, name);
	json_int_t b = json_integer_value(json_array_get(jo, 0)), en = json_integer_value(json_array_get(jo, 1));
	if (b < 0 || en < b)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] are not ordered",
				     P, name, (long long)b, (long long)en);
	if ((uint64_t)en > f->buf_len)
		return lvd_error_set(err, LVD_ERR_FORMAT,
				     "%s: tensor '%s': data_offsets [%lld, %lld] exceed the %zu-byte data buffer",
				     P, name, (long long)b, (long long)en, f->buf_len);
	if ((uint64_t)(en - b) != (uint64_t)nbytes)
		return lvd_error_set(err, LVD_ERR_FORMAT,
				     "%s: tensor '%s': data_offsets [%lld, %lld] do not match shape %s x %s (%zu bytes)",
				     P, name, (long long)b, (long long)en, sh, dn, nbytes);
	v->numel = (int64_t)numel;
	v->nbytes = nbytes;
	v->data = f->buf + b;
	*begin = (uint64_t)b;
	*end = (uint64_t)en;
	return 0;
}

struct span {
	uint64_t b, e;
	const char *name;
};

static int span_cmp(const void *pa, const void *pb)
{
	const struct span *a = pa, *b = pb;
	if (a->b != b->b)
		return a->b < b->b ? -1 : 1;
	if (a->e != b->e)
		return a->e < b->e ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Maps and validates one file; appends its tensors to *views (grown). */
static int file_open(struct st_file *f, const char *path, struct lvd_tensor_view **views, size_t *nviews,
		     struct lvd_error *err)
{
	memset(f, 0, sizeof *f);
	if (!(f->path = lvd_strdup(path)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	int fd;
	uint64_t fsize;
	int orc = lvd_file_open_regular(path, UINT64_MAX, &fd, &fsize, err); /* no blocking on a FIFO */
	if (orc)
		return orc;
	if (fsize < 8) {
		close(fd);
		return lvd_error_set(err, LVD_ERR_FORMAT,
				     "%s: file is %" PRIu64 " bytes, too short for a safetensors header", path, fsize);
	}
	if (fsize > SIZE_MAX) {
		close(fd);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: file too large to map", path);
	}
	void *m = lvd_io_mmap(NULL, (size_t)fsize, PROT_READ, MAP_PRIVATE, fd, 0);
	int saved = errno;
	close(fd);
	if (m == MAP_FAILED) {
		errno = saved;
		return lvd_error_errno(err, LVD_ERR_IO, "cannot map '%s'", path);
	}
	f->map = m;
	f->map_len = (size_t)fsize;
	const uint8_t *p = m;
	uint64_t hlen = rd_le64(p);
	if (hlen > ST_MAX_HEADER)
		return lvd_error_set(err, LVD_ERR_FORMAT,
				     "%s: header length %" PRIu64 " exceeds the %" PRIu64 "-byte limit", path, hlen,
				     ST_MAX_HEADER);
	if (hlen > fsize - 8)
		return lvd_error_set(err, LVD_ERR_FORMAT,
				     "%s: header length %" PRIu64 " exceeds the file size (%" PRIu64 " bytes): truncated?",
				     path, hlen, fsize);
	const char *h = (const char *)p + 8;
	if (hlen == 0 || h[0] != '{')
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: header is not a JSON object (does not start with '{')",
				     path);
	if (json_depth_exceeds(h, (size_t)hlen, ST_MAX_DEPTH))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: header JSON nests deeper than %d levels", path,
				     ST_MAX_DEPTH);
	json_error_t je;
	f->root = json_loadb(h, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
	if (!f->root)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: header is not valid JSON: %s (column %d)", path,
				     je.text, je.column);
	if (!json_is_object(f->root))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: header is not a JSON object", path);
	f->buf = p + 8 + hlen;
	f->buf_len = (size_t)(fsize - 8 - hlen);

	size_t cnt = json_object_size(f->root);
	struct lvd_tensor_view *nv = lvd_realloc_array(*views, *nviews + cnt + 1, sizeof **views);
	if (!nv)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory for %zu tensors", path, cnt);
	*views = nv;
	struct span *sp = lvd_alloc_array(cnt + 1, sizeof *sp);
	if (!sp)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory for %zu tensors", path, cnt);
	size_t ns = 0;
	const char *key;
	json_t *val;
	int rc = 0;
	json_object_foreach(f->root, key, val) {
		if (strcmp(key, "__metadata__") == 0) {
			if (!json_is_object(val)) {
				rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", path);
				break;
			}
			const char *mk;
			json_t *mv;
			json_object_foreach(val, mk, mv) {
				if (!json_is_string(mv)) {
					rc = lvd_error_set(err, LVD_ERR_FORMAT,
							   "%s: __metadata__ value for '%s' is not a string", path, mk);
					break;
				}
			}
			if (rc)
				break;
			f->meta = val;
			continue;
		}
		struct lvd_tensor_view *v = &(*views)[*nviews + ns];
		if ((rc = parse_entry(f, key, val, v, &sp[ns].b, &sp[ns].e, err)))
			break;
		sp[ns].name = key;
		ns++;
	}
	if (!rc) {
		/* The tensors must tile [0, buf_len) exactly, as the Python package requires. */
		qsort(sp, ns, sizeof *sp, span_cmp);
		uint64_t at = 0;
		for (size_t i = 0; i < ns && !rc; i++) {
			if (sp[i].b < at)
				rc = lvd_error_set(err, LVD_ERR_FORMAT,
						   "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
						   "] overlap tensor '%s' [%" PRIu64 ", %" PRIu64 "]",
						   path, sp[i].name, sp[i].b, sp[i].e, sp[i - 1].name, sp[i - 1].b, sp[i - 1].e);
			else if (sp[i].b > at)
				rc = lvd_error_set(err, LVD_ERR_FORMAT,
						   "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
						   "] leave a gap: bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor",
						   path, sp[i].name, sp[i].b, sp[i].e, at, sp[i].b);
			at = sp[i].e;
		}
		if (!rc && at != f->buf_len)
			rc = lvd_error_set(err, LVD_ERR_FORMAT,
					   "%s: tensors end at byte %" PRIu64 " of a %zu-byte data buffer (trailing bytes)",
					   path, at, f->buf_len);
	}
	free(sp);
	if (!rc)
		*nviews += ns;
	return rc;
}

static void file_close(struct st_file *f)
{
	if (f->root)
		json_decref(f->root);
	if (f->map)
		munmap(f->map, f->map_len);
	free(f->path);
}

static int view_cmp(const void *pa, const void *pb)
{
	const struct lvd_tensor_view *a = pa, *b = pb;
	return strcmp(a->name, b->name);
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

static char *path_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name), n;
	if (lvd_size_add(&n, a, b) || lvd_size_add(&n, n, 2))
		return NULL;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s%s", dir, a && dir[a - 1] != '/' ? "/" : "", name);
	return p;
}

static char *dir_of(const char *path)
{
	const char *s = strrchr(path, '/');
	if (!s)
		return lvd_strdup(".");
	if (s == path)
		return lvd_strdup("/");
	size_t n = (size_t)(s - path);
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, path, n);
		d[n] = 0;
	}
	return d;
}

/* A shard name from an index must stay inside the index's folder. */
static int shard_name_ok(const char *s)
{
	if (!*s || s[0] == '/')
		return 0;
	for (const char *p = s; *p;) {
		const char *q = strchr(p, '/');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 0;
		p += n;
		if (*p == '/')
			p++;
	}
	return 1;
}

static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int st_finish(struct lvd_st *st, struct lvd_error *err)
{
	if (st->n)
		qsort(st->t, st->n, sizeof *st->t, view_cmp);
	for (size_t i = 1; i < st->n; i++)
		if (strcmp(st->t[i - 1].name, st->t[i].name) == 0)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: tensor '%s' appears in both '%s' and '%s'",
					     st->path, st->t[i].name, st->t[i - 1].file, st->t[i].file);
	return 0;
}

static int open_index(struct lvd_st *st, const char *path, struct lvd_error *err)
{
	struct stat sb;
	if (stat(path, &sb) != 0)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	if (sb.st_size > ST_MAX_INDEX)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: index is %lld bytes (limit %lld)", path,
				     (long long)sb.st_size, (long long)ST_MAX_INDEX);
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		if (access(path, R_OK) != 0)
			return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
	}
	int rc = 0;
	char *dir = NULL;
	const char **names = NULL;
	json_t *wm = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
	if (!json_is_object(wm)) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: no \"weight_map\" object", path);
		goto out;
	}
	size_t nw = json_object_size(wm), nu = 0;
	names = lvd_alloc_array(nw + 1, sizeof *names);
	dir = dir_of(path);
	if (!names || !dir) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
		goto out;
	}
	const char *key;
	json_t *val;
	json_object_foreach(wm, key, val) {
		if (!json_is_string(val)) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: weight_map['%s'] is not a string", path, key);
			goto out;
		}
		if (!shard_name_ok(json_string_value(val))) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT,
					   "%s: weight_map['%s'] = '%s' is not a file name inside the index's folder",
					   path, key, json_string_value(val));
			goto out;
		}
		names[nu++] = json_string_value(val);
	}
	qsort(names, nu, sizeof *names, str_ptr_cmp);
	size_t k = 0;
	for (size_t i = 0; i < nu; i++)
		if (k == 0 || strcmp(names[k - 1], names[i]) != 0)
			names[k++] = names[i];
	nu = k;
	if (!(st->files = calloc(nu ? nu : 1, sizeof *st->files))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
		goto out;
	}
	for (size_t i = 0; i < nu; i++) {
		char *sp = path_join(dir, names[i]);
		if (!sp) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
			goto out;
		}
		rc = file_open(&st->files[st->nfiles++], sp, &st->t, &st->n, err);
		free(sp);
		if (rc) {
			lvd_error_prefix(err, "%s: ", path);
			goto out;
		}
	}
	if ((rc = st_finish(st, err)))
		goto out;
	/* every weight_map entry must be in the shard it names */
	json_object_foreach(wm, key, val) {
		const struct lvd_tensor_view *t = lvd_st_find(st, key);
		const char *want = json_string_value(val);
		if (!t || !ends_with(t->file, want) ||
		    (strlen(t->file) > strlen(want) && t->file[strlen(t->file) - strlen(want) - 1] != '/')) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: weight_map puts tensor '%s' in '%s' but %s", path,
					   key, want, t ? "it is in another shard" : "no shard holds it");
			goto out;
		}
	}
out:
	free(names);
	free(dir);
	json_decref(root);
	return rc;
}

int lvd_st_open(struct lvd_st **out, const char *path, struct lvd_error *err)
{
	*out = NULL;
	struct lvd_st *st = calloc(1, sizeof *st);
	if (!st || !(st->path = lvd_strdup(path))) {
		free(st);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	}
	int rc = 0;
	char *found = NULL;
	struct stat sb;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		static const char *const cand[] = {
			"model.safetensors", "model.safetensors.index.json",
			"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
		};
		for (size_t i = 0; i < sizeof cand / sizeof cand[0] && !found; i++) {
			char *c = path_join(path, cand[i]);
			if (!c) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
				break;
			}
			if (access(c, F_OK) == 0)
				found = c;
			else
				free(c);
		}
		if (!rc && !found)
			rc = lvd_error_set(err, LVD_ERR_NOTFOUND,
					   "%s: folder holds no model.safetensors, model.safetensors.index.json, "
					   "diffusion_pytorch_model.safetensors or "
					   "diffusion_pytorch_model.safetensors.index.json",
					   path);
	}
	const char *p = found ? found : path;
	if (!rc) {
		if (ends_with(p, ".json")) {
			rc = open_index(st, p, err);
		} else if (!(st->files = calloc(1, sizeof *st->files))) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
		} else {
			st->nfiles = 1;
			rc = file_open(&st->files[0], p, &st->t, &st->n, err);
			if (!rc)
				rc = st_finish(st, err);
		}
	}
	free(found);
	if (rc) {
		lvd_st_close(st);
		return rc;
	}
	*out = st;
	return 0;
}

void lvd_st_close(struct lvd_st *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nfiles; i++)
		file_close(&st->files[i]);
	free(st->files);
	free(st->t);
	free(st->path);
	free(st);
}

size_t lvd_st_count(const struct lvd_st *st)
{
	return st->n;
}

const struct lvd_tensor_view *lvd_st_at(const struct lvd_st *st, size_t i)
{
	LVD_ASSERT(i < st->n);
	return &st->t[i];
}

const struct lvd_tensor_view *lvd_st_find(const struct lvd_st *st, const char *name)
{
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(st->t[mid].name, name);
		if (c == 0)
			return &st->t[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *lvd_st_metadata(const struct lvd_st *st, const char *key)
{
	for (size_t i = 0; i < st->nfiles; i++) {
		json_t *v = st->files[i].meta ? json_object_get(st->files[i].meta, key) : NULL;
		if (v)
			return json_string_value(v);
	}
	return NULL;
}

const char *lvd_st_path(const struct lvd_st *st)
{
	return st->path;
}

/* ---- conversion ----------------------------------------------------------------- */

int lvd_tensor_to_f32(const struct lvd_tensor_view *t, float *dst, size_t dst_len, struct lvd_error *err)
{
	size_t n = (size_t)t->numel;
	if (dst_len < n)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "%s: tensor '%s': destination holds %zu floats but the tensor has %zu",
				     t->file, t->name, dst_len, n);
	const uint8_t *s = t->data;
	switch (t->dtype) {
	case LVD_DT_F32:
		if (n)
			memcpy(dst, s, n * 4);
		break;
	case LVD_DT_F16:
		for (size_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, s + 2 * i, 2);
			uint32_t b = f16_bits_to_f32_bits(h);
			memcpy(&dst[i], &b, 4);
		}
		break;
	case LVD_DT_BF16:
		for (size_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, s + 2 * i, 2);
			dst[i] = lvd_bf16_to_f32(h);
		}
		break;
	case LVD_DT_F64:
		for (size_t i = 0; i < n; i++) {
			double d;
			memcpy(&d, s + 8 * i, 8);
			dst[i] = (float)d;
		}
		break;
	case LVD_DT_I64:
		for (size_t i = 0; i < n; i++) {
			int64_t x;
			memcpy(&x, s + 8 * i, 8);
			dst[i] = (float)x;
		}
		break;
	case LVD_DT_I32:
		for (size_t i = 0; i < n; i++) {
			int32_t x;
			memcpy(&x, s + 4 * i, 4);
			dst[i] = (float)x;
		}
		break;
	case LVD_DT_I16:
		for (size_t i = 0; i < n; i++) {
			int16_t x;
			memcpy(&x, s + 2 * i, 2);
			dst[i] = (float)x;
		}
		break;
	case LVD_DT_I8:
		for (size_t i = 0; i < n; i++)
			dst[i] = (float)(int8_t)s[i];
		break;
	case LVD_DT_U8:
		for (size_t i = 0; i < n; i++)
			dst[i] = (float)s[i];
		break;
	case LVD_DT_BOOL:
		for (size_t i = 0; i < n; i++)
			dst[i] = s[i] ? 1.0f : 0.0f;
		break;
	default:
		LVD_ASSERT(!"bad dtype");
	}
	return 0;
}

int lvd_st_load_f32(const struct lvd_st *st, const char *name, int ndim, const int64_t *shape, float *dst,
		    size_t dst_len, struct lvd_error *err)
{
	const struct lvd_tensor_view *t = lvd_st_find(st, name);
	if (!t)
		return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: tensor '%s' not found", st->path, name);
	int ok = t->ndim == ndim;
	for (int i = 0; ok && i < ndim; i++)
		ok = shape[i] < 0 || shape[i] == t->shape[i];
	if (!ok) {
		char have[256], want[256];
		fmt_shape(have, sizeof have, t->ndim, t->shape);
		fmt_shape(want, sizeof want, ndim < 0 ? 0 : ndim > LVD_ST_MAX_DIMS ? LVD_ST_MAX_DIMS : ndim, shape);
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s': shape %s does not match the expected %s",
				     t->file, name, have, want);
	}
	return lvd_tensor_to_f32(t, dst, dst_len, err);
}
