/* lib/io/json.h — typed access to JSON config files (config.json, scheduler_config.json,
 * adapter_config.json, ...), a thin layer over jansson.
 *
 * A struct lvd_json is a view of one JSON object plus the names used in messages: the
 * file and the dotted path of the object inside it. Every getter looks a key up in that
 * object, checks its type and range, and on failure returns an error whose message
 * names the file and the full key:
 *   "unet/config.json: key 'block_out_channels': expected an array of integers, got a string"
 * Keys may be dotted paths ("vision_config.hidden_size"): each part but the last must
 * name an object. (Keys that themselves contain '.' cannot be reached this way; use
 * lvd_json_find on the parent object.)
 *
 * Required getters (lvd_json_get_*) fail with LVD_ERR_NOTFOUND when the key is absent
 * and LVD_ERR_INVALID when it has the wrong type (null included). The `_or` variants
 * store the default when the key is absent or null (Hugging Face configs write null for
 * "use the default") and fail only on a wrong type. Integers must be JSON integers
 * (2.0 is not an integer); doubles accept integers and reals. Strings returned are
 * borrowed from the document and live until lvd_json_release of the loaded document.
 *
 * Ownership: lvd_json_load/lvd_json_parse fill a document that owns the parsed tree;
 * lvd_json_object fills a borrowed view (valid while the document lives). Call
 * lvd_json_release on both (a no-op for views, safe on a zeroed struct). */
#ifndef LVD_IO_JSON_H
#define LVD_IO_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_JSON_PATH_MAX 256

struct lvd_json {
	json_t *obj;                     /* the object this view looks at (borrowed in views) */
	json_t *root;                    /* owned tree (documents only; NULL in views) */
	char file[LVD_JSON_PATH_MAX];    /* file name used in messages (truncated if long) */
	char where[LVD_JSON_PATH_MAX];   /* dotted path of obj in the file, "" at the top */
};

/* Reads and parses a file; the top level must be an object. Rejects duplicate keys.
 * Errors: LVD_ERR_IO (cannot open, naming the file and errno), LVD_ERR_FORMAT
 * ("cfg.json:3:14: syntax error message" with line and column; not an object). */
int lvd_json_load(struct lvd_json *doc, const char *path, struct lvd_error *err);
/* Same from memory; `name` is used in messages. */
int lvd_json_parse(struct lvd_json *doc, const char *name, const char *text, size_t len,
		   struct lvd_error *err);
void lvd_json_release(struct lvd_json *j);

/* Fills *out with a borrowed view of an object parsed elsewhere (a record's metadata);
 * `file` names it in messages. Nothing to release. */
void lvd_json_view(struct lvd_json *out, json_t *obj, const char *file);

/* The raw value at `key` (dotted path) or NULL when absent; never sets an error. */
json_t *lvd_json_find(const struct lvd_json *j, const char *key);
/* 1 if the key is present and not null. */
int lvd_json_has(const struct lvd_json *j, const char *key);

/* A view of the object at `key`; LVD_ERR_NOTFOUND / LVD_ERR_INVALID (not an object). */
int lvd_json_object(const struct lvd_json *j, const char *key, struct lvd_json *out, struct lvd_error *err);

int lvd_json_get_int(const struct lvd_json *j, const char *key, int64_t *out, struct lvd_error *err);
int lvd_json_get_int_or(const struct lvd_json *j, const char *key, int64_t def, int64_t *out,
			struct lvd_error *err);
/* Integer in [min, max]; out of range is LVD_ERR_INVALID naming the value and range.
 * Handy for `int` fields: lvd_json_get_int_range(j, "hidden_size", 1, INT32_MAX, &v, err). */
int lvd_json_get_int_range(const struct lvd_json *j, const char *key, int64_t min, int64_t max,
			   int64_t *out, struct lvd_error *err);
int lvd_json_get_double(const struct lvd_json *j, const char *key, double *out, struct lvd_error *err);
int lvd_json_get_double_or(const struct lvd_json *j, const char *key, double def, double *out,
			   struct lvd_error *err);
/* A positive finite number, or def when the key is absent; otherwise LVD_ERR_INVALID
 * ("file: key 'where.key': expected a positive number") or the errors of get_double. */
int lvd_json_get_positive_or(const struct lvd_json *j, const char *key, double def, double *out,
			     struct lvd_error *err);
int lvd_json_get_bool(const struct lvd_json *j, const char *key, int *out, struct lvd_error *err);
int lvd_json_get_bool_or(const struct lvd_json *j, const char *key, int def, int *out, struct lvd_error *err);
/* *out is borrowed from the document. */
int lvd_json_get_string(const struct lvd_json *j, const char *key, const char **out, struct lvd_error *err);
int lvd_json_get_string_or(const struct lvd_json *j, const char *key, const char *def, const char **out,
			   struct lvd_error *err);

/* `int` conveniences for struct fields. lvd_json_get_i32 requires an integer in [min, max];
 * lvd_json_get_i32_or stores def (unchecked) when the key is absent or null and otherwise
 * checks the same way. Out of range is LVD_ERR_INVALID naming the value and range. */
int lvd_json_get_i32(const struct lvd_json *j, const char *key, int min, int max, int *out,
		     struct lvd_error *err);
int lvd_json_get_i32_or(const struct lvd_json *j, const char *key, int def, int min, int max, int *out,
			struct lvd_error *err);

/* The array at `key` itself (borrowed), for arrays of arrays or objects that the caller
 * walks; LVD_ERR_NOTFOUND / LVD_ERR_INVALID like the other required getters. */
int lvd_json_get_array(const struct lvd_json *j, const char *key, json_t **out, struct lvd_error *err);

/* Arrays into caller storage out[cap]; *n receives the length. More than cap elements
 * is LVD_ERR_INVALID ("has 5 elements, at most 4 expected"). Strings are borrowed. */
int lvd_json_get_int_array(const struct lvd_json *j, const char *key, int64_t *out, size_t cap, size_t *n,
			   struct lvd_error *err);
int lvd_json_get_double_array(const struct lvd_json *j, const char *key, double *out, size_t cap, size_t *n,
			      struct lvd_error *err);
/* An array of integers, each in [min, max], into int out[cap]; an element out of range is
 * LVD_ERR_INVALID ("element 2 is 70000, out of range [1, 65536]"). */
int lvd_json_get_i32_array(const struct lvd_json *j, const char *key, int min, int max, int *out, size_t cap,
			   size_t *n, struct lvd_error *err);
int lvd_json_get_string_array(const struct lvd_json *j, const char *key, const char **out, size_t cap,
			      size_t *n, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
