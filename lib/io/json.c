/* lib/io/json.c — typed getters over jansson for config files (see json.h). */
#include "io/json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/fault.h"

static void set_name(char *dst, const char *src)
{
	snprintf(dst, LVD_JSON_PATH_MAX, "%s", src);
}

static int doc_init(struct lvd_json *doc, const char *name, json_t *root, const json_error_t *je,
		    struct lvd_error *err)
{
	memset(doc, 0, sizeof *doc);
	set_name(doc->file, name);
	if (!root)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s:%d:%d: %s", name, je->line, je->column, je->text);
	if (!json_is_object(root)) {
		json_decref(root);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: the top level is not a JSON object", name);
	}
	doc->root = doc->obj = root;
	return 0;
}

int lvd_json_load(struct lvd_json *doc, const char *path, struct lvd_error *err)
{
	memset(doc, 0, sizeof *doc);
	FILE *f = lvd_io_fopen(path, "rb");
	if (!f)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	json_error_t je;
	json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	int rd_err = ferror(f), saved = errno;
	fclose(f);
	if (!root && rd_err) {
		errno = saved;
		return lvd_error_errno(err, LVD_ERR_IO, "cannot read '%s'", path);
	}
	return doc_init(doc, path, root, &je, err);
}

int lvd_json_parse(struct lvd_json *doc, const char *name, const char *text, size_t len, struct lvd_error *err)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	return doc_init(doc, name, root, &je, err);
}

void lvd_json_release(struct lvd_json *j)
{
	if (!j)
		return;
	if (j->root)
		json_decref(j->root);
	memset(j, 0, sizeof *j);
}

void lvd_json_view(struct lvd_json *out, json_t *obj, const char *file)
{
	memset(out, 0, sizeof *out);
	out->obj = obj;
	set_name(out->file, file);
}

json_t *lvd_json_find(const struct lvd_json *j, const char *key)
{
	json_t *cur = j->obj;
	const char *p = key;
	for (;;) {
		if (!json_is_object(cur))
			return NULL;
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		cur = json_object_getn(cur, p, n);
		if (!cur || !dot)
			return cur;
		p = dot + 1;
	}
}

int lvd_json_has(const struct lvd_json *j, const char *key)
{
	json_t *v = lvd_json_find(j, key);
	return v && !json_is_null(v);
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* "file: key 'where.key': " prefix */
#define KEYFMT "%s: key '%s%s%s': "
#define KEYARGS(j, key) (j)->file, (j)->where, (j)->where[0] ? "." : "", (key)

/* The JSON types the getters want. */
enum want { W_INT, W_NUM, W_BOOL, W_STR, W_OBJ, W_ARR };

static const char *const want_name[] = {"an integer", "a number", "a boolean", "a string", "an object", "an array"};

static int has_type(const json_t *v, enum want w)
{
	switch (w) {
	case W_INT: return json_is_integer(v);
	case W_NUM: return json_is_number(v);
	case W_BOOL: return json_is_boolean(v);
	case W_STR: return json_is_string(v);
	case W_OBJ: return json_is_object(v);
	default: return json_is_array(v);
	}
}

static int wrong_type(const struct lvd_json *j, const char *key, const char *expect, const json_t *v,
		      struct lvd_error *err)
{
	return lvd_error_set(err, LVD_ERR_INVALID, KEYFMT "expected %s, got %s", KEYARGS(j, key), expect,
			     type_name(v));
}

/* Looks key up and checks its type (expect names it in messages; NULL = want_name[w]).
 * Returns 1 = use the default (absent or null, when allowed), 0 = found (*out), or <0 =
 * error code negated. */
static int lookup(const struct lvd_json *j, const char *key, int allow_default, enum want w, const char *expect,
		  json_t **out, struct lvd_error *err)
{
	json_t *v = lvd_json_find(j, key);
	if (!expect)
		expect = want_name[w];
	if (!v || json_is_null(v)) {
		if (allow_default)
			return 1;
		if (!v)
			return -lvd_error_set(err, LVD_ERR_NOTFOUND, KEYFMT "missing (expected %s)", KEYARGS(j, key),
					      expect);
		return -lvd_error_set(err, LVD_ERR_INVALID, KEYFMT "expected %s, got null", KEYARGS(j, key), expect);
	}
	if (!has_type(v, w))
		return -wrong_type(j, key, expect, v, err);
	*out = v;
	return 0;
}

/* The getters below: r = lookup(...); r < 0 is the error, r == 1 stores the default. */
#define LOOKUP_OR_DEFAULT(w, def)                                            \
	json_t *v = NULL;                                                    \
	int r = lookup(j, key, dflt_ok, (w), NULL, &v, err);                \
	if (r) {                                                             \
		if (r > 0)                                                   \
			*out = (def);                                        \
		return r < 0 ? -r : 0;                                       \
	}

static int get_int(const struct lvd_json *j, const char *key, int dflt_ok, int64_t def, int64_t *out,
		   struct lvd_error *err)
{
	LOOKUP_OR_DEFAULT(W_INT, def)
	*out = (int64_t)json_integer_value(v);
	return 0;
}

int lvd_json_get_int(const struct lvd_json *j, const char *key, int64_t *out, struct lvd_error *err)
{
	return get_int(j, key, 0, 0, out, err);
}

int lvd_json_get_int_or(const struct lvd_json *j, const char *key, int64_t def, int64_t *out,
			struct lvd_error *err)
{
	return get_int(j, key, 1, def, out, err);
}

int lvd_json_get_int_range(const struct lvd_json *j, const char *key, int64_t min, int64_t max, int64_t *out,
			   struct lvd_error *err)
{
	int64_t v = 0;
	int rc = get_int(j, key, 0, 0, &v, err);
	if (rc)
		return rc;
	if (v < min || v > max)
		return lvd_error_set(err, LVD_ERR_INVALID, KEYFMT "%" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]",
				     KEYARGS(j, key), v, min, max);
	*out = v;
	return 0;
}

static int get_i32(const struct lvd_json *j, const char *key, int dflt_ok, int def, int min, int max, int *out,
		   struct lvd_error *err)
{
	LOOKUP_OR_DEFAULT(W_INT, def)
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return lvd_error_set(err, LVD_ERR_INVALID, KEYFMT "%" PRId64 " is out of range [%d, %d]", KEYARGS(j, key),
				     (int64_t)x, min, max);
	*out = (int)x;
	return 0;
}

int lvd_json_get_i32(const struct lvd_json *j, const char *key, int min, int max, int *out, struct lvd_error *err)
{
	return get_i32(j, key, 0, 0, min, max, out, err);
}

int lvd_json_get_i32_or(const struct lvd_json *j, const char *key, int def, int min, int max, int *out,
			struct lvd_error *err)
{
	return get_i32(j, key, 1, def, min, max, out, err);
}

static int get_double(const struct lvd_json *j, const char *key, int dflt_ok, double def, double *out,
		      struct lvd_error *err)
{
	LOOKUP_OR_DEFAULT(W_NUM, def)
	*out = json_number_value(v);
	return 0;
}

int lvd_json_get_double(const struct lvd_json *j, const char *key, double *out, struct lvd_error *err)
{
	return get_double(j, key, 0, 0, out, err);
}

int lvd_json_get_double_or(const struct lvd_json *j, const char *key, double def, double *out,
			   struct lvd_error *err)
{
	return get_double(j, key, 1, def, out, err);
}

int lvd_json_get_positive_or(const struct lvd_json *j, const char *key, double def, double *out,
			     struct lvd_error *err)
{
	int rc = get_double(j, key, 1, def, out, err);
	if (rc)
		return rc;
	if (!(*out > 0) || !isfinite(*out))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: key '%s%s%s': expected a positive number", j->file,
				     j->where, j->where[0] ? "." : "", key);
	return 0;
}

static int get_bool(const struct lvd_json *j, const char *key, int dflt_ok, int def, int *out,
		    struct lvd_error *err)
{
	LOOKUP_OR_DEFAULT(W_BOOL, def)
	*out = json_is_true(v);
	return 0;
}

int lvd_json_get_bool(const struct lvd_json *j, const char *key, int *out, struct lvd_error *err)
{
	return get_bool(j, key, 0, 0, out, err);
}

int lvd_json_get_bool_or(const struct lvd_json *j, const char *key, int def, int *out, struct lvd_error *err)
{
	return get_bool(j, key, 1, def, out, err);
}

static int get_string(const struct lvd_json *j, const char *key, int dflt_ok, const char *def, const char **out,
		      struct lvd_error *err)
{
	LOOKUP_OR_DEFAULT(W_STR, def)
	*out = json_string_value(v);
	return 0;
}

int lvd_json_get_string(const struct lvd_json *j, const char *key, const char **out, struct lvd_error *err)
{
	return get_string(j, key, 0, NULL, out, err);
}

int lvd_json_get_string_or(const struct lvd_json *j, const char *key, const char *def, const char **out,
			   struct lvd_error *err)
{
	return get_string(j, key, 1, def, out, err);
}

int lvd_json_object(const struct lvd_json *j, const char *key, struct lvd_json *out, struct lvd_error *err)
{
	json_t *v = NULL;
	int r = lookup(j, key, 0, W_OBJ, NULL, &v, err);
	if (r < 0)
		return -r;
	memset(out, 0, sizeof *out);
	out->obj = v;
	memcpy(out->file, j->file, sizeof out->file);
	snprintf(out->where, sizeof out->where, "%s%s%s", j->where, j->where[0] ? "." : "", key);
	return 0;
}

int lvd_json_get_array(const struct lvd_json *j, const char *key, json_t **out, struct lvd_error *err)
{
	json_t *v = NULL;
	int r = lookup(j, key, 0, W_ARR, NULL, &v, err);
	if (r < 0)
		return -r;
	*out = v;
	return 0;
}

enum elem { EL_INT, EL_NUM, EL_STR, EL_I32 };

/* EL_I32 elements are integers in [lo, hi] stored as int. */
static int get_array(const struct lvd_json *j, const char *key, enum elem kind, void *out, size_t cap, size_t *n,
		     int lo, int hi, struct lvd_error *err)
{
	static const char *const expect[] = {"an array of integers", "an array of numbers", "an array of strings",
					     "an array of integers"};
	json_t *v = NULL;
	int r = lookup(j, key, 0, W_ARR, expect[kind], &v, err);
	if (r < 0)
		return -r;
	size_t len = json_array_size(v);
	if (len > cap)
		return lvd_error_set(err, LVD_ERR_INVALID, KEYFMT "has %zu elements, at most %zu expected",
				     KEYARGS(j, key), len, cap);
	for (size_t i = 0; i < len; i++) {
		json_t *e = json_array_get(v, i);
		int ok = kind == EL_NUM ? json_is_number(e) : kind == EL_STR ? json_is_string(e) : json_is_integer(e);
		if (!ok)
			return lvd_error_set(err, LVD_ERR_INVALID, KEYFMT "expected %s (element %zu is %s)",
					     KEYARGS(j, key), expect[kind], i, type_name(e));
		if (kind == EL_I32 && (json_integer_value(e) < lo || json_integer_value(e) > hi))
			return lvd_error_set(err, LVD_ERR_INVALID, KEYFMT "element %zu is %" PRId64 ", out of range [%d, %d]",
					     KEYARGS(j, key), i, (int64_t)json_integer_value(e), lo, hi);
	}
	for (size_t i = 0; i < len; i++) {
		json_t *e = json_array_get(v, i);
		if (kind == EL_INT)
			((int64_t *)out)[i] = (int64_t)json_integer_value(e);
		else if (kind == EL_I32)
			((int *)out)[i] = (int)json_integer_value(e);
		else if (kind == EL_NUM)
			((double *)out)[i] = json_number_value(e);
		else
			((const char **)out)[i] = json_string_value(e);
	}
	*n = len;
	return 0;
}

int lvd_json_get_int_array(const struct lvd_json *j, const char *key, int64_t *out, size_t cap, size_t *n,
			   struct lvd_error *err)
{
	return get_array(j, key, EL_INT, out, cap, n, 0, 0, err);
}

int lvd_json_get_double_array(const struct lvd_json *j, const char *key, double *out, size_t cap, size_t *n,
			      struct lvd_error *err)
{
	return get_array(j, key, EL_NUM, out, cap, n, 0, 0, err);
}

int lvd_json_get_string_array(const struct lvd_json *j, const char *key, const char **out, size_t cap, size_t *n,
			      struct lvd_error *err)
{
	return get_array(j, key, EL_STR, out, cap, n, 0, 0, err);
}

int lvd_json_get_i32_array(const struct lvd_json *j, const char *key, int min, int max, int *out, size_t cap,
			   size_t *n, struct lvd_error *err)
{
	return get_array(j, key, EL_I32, out, cap, n, min, max, err);
}
