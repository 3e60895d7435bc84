/* sd-attnmap record payload: encode/decode; the layout is in mapsrec.h. */
#include "lavender/mapsrec.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/json.h"

static const uint8_t MAGIC[4] = {'L', 'V', 'A', 'M'};

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- encode ----------------------------------------------------------------------- */

static json_t *int_array(const int32_t *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_integer(v[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *pair(json_int_t a, json_int_t b)
{
	json_t *p = json_array();
	if (p && (json_array_append_new(p, json_integer(a)) || json_array_append_new(p, json_integer(b)))) {
		json_decref(p);
		return NULL;
	}
	return p;
}

/* json_string refuses invalid UTF-8; returns NULL then. */
static json_t *str_array(char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		json_t *s = v[i] ? json_string(v[i]) : NULL;
		if (!s || json_array_append_new(a, s)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int set(json_t *o, const char *k, json_t *v, int *bad)
{
	if (!v || json_object_set_new(o, k, v))
		*bad = 1;
	return *bad;
}

int lvd_mapsrec_encode(const struct lvd_mapsrec *r, uint8_t **out, size_t *out_len, struct lvd_error *err)
{
	*out = NULL;
	*out_len = 0;
	const char *id = r->id ? r->id : "(null)";
	if (r->T < 1 || r->T > LVD_MAPSREC_MAX_TOKENS)
		return lvd_error_set(err, LVD_ERR_INVALID, "record '%s': %u tokens not in [1, %d]", id, r->T,
				     LVD_MAPSREC_MAX_TOKENS);
	if (r->grid_w < 1 || r->grid_h < 1 || r->grid_w > LVD_MAPSREC_MAX_GRID || r->grid_h > LVD_MAPSREC_MAX_GRID)
		return lvd_error_set(err, LVD_ERR_INVALID, "record '%s': grid %dx%d out of range", id,
				     r->grid_w, r->grid_h);
	if (!r->id || !r->text || !r->tokens || !r->token_strs || !r->spans || !r->word_idx || !r->stats ||
	    !r->maps || (r->n_words && !r->words) || (r->n_layers && !r->layers) ||
	    (r->n_timesteps && !r->timesteps))
		return lvd_error_set(err, LVD_ERR_INVALID, "record '%s': missing field", id);
	if (r->n_words > LVD_MAPSREC_MAX_LIST || r->n_layers > LVD_MAPSREC_MAX_LIST ||
	    r->n_timesteps > LVD_MAPSREC_MAX_LIST)
		return lvd_error_set(err, LVD_ERR_INVALID, "record '%s': list too long", id);
	size_t tl = strlen(r->text);
	for (uint32_t t = 0; t < r->T; t++) {
		if (r->spans[2 * t] > r->spans[2 * t + 1] || r->spans[2 * t + 1] > tl)
			return lvd_error_set(err, LVD_ERR_INVALID, "record '%s': token %u: span [%u, %u) outside text",
					     id, t, r->spans[2 * t], r->spans[2 * t + 1]);
		if (r->word_idx[t] < -1 || r->word_idx[t] >= (int64_t)r->n_words)
			return lvd_error_set(err, LVD_ERR_INVALID, "record '%s': token %u: word index %d out of range",
					     id, t, r->word_idx[t]);
	}

	int bad = 0;
	json_t *o = json_object(), *v;
	if (!o)
		return lvd_error_set(err, LVD_ERR_NOMEM, "record '%s': JSON", id);
	set(o, "id", json_string(r->id), &bad);
	set(o, "index", json_integer((json_int_t)r->index), &bad);
	set(o, "text", json_string(r->text), &bad);
	set(o, "truncated", json_boolean(r->truncated), &bad);
	set(o, "tokens", int_array(r->tokens, r->T), &bad);
	set(o, "token_strs", str_array(r->token_strs, r->T), &bad);
	v = json_array();
	for (uint32_t t = 0; v && t < r->T; t++)
		if (json_array_append_new(v, pair(r->spans[2 * t], r->spans[2 * t + 1])))
			bad = 1;
	set(o, "spans", v, &bad);
	set(o, "word_idx", int_array(r->word_idx, r->T), &bad);
	set(o, "words", str_array(r->words, r->n_words), &bad);
	set(o, "image", pair(r->img_w, r->img_h), &bad);
	set(o, "image_file", json_string(r->image_file ? r->image_file : ""), &bad);
	set(o, "sd_size", pair(r->sd_w, r->sd_h), &bad);
	set(o, "grid", pair(r->grid_w, r->grid_h), &bad);
	set(o, "resolution", json_integer(r->resolution), &bad);
	set(o, "layers", int_array(r->layers, r->n_layers), &bad);
	set(o, "timesteps", int_array(r->timesteps, r->n_timesteps), &bad);
	set(o, "draws", json_integer(r->draws), &bad);
	set(o, "seed", json_integer((json_int_t)r->seed), &bad);
	v = json_array();
	for (uint32_t t = 0; v && t < r->T; t++) {
		const struct lvd_attnmap_stats *s = &r->stats[t];
		json_t *q = json_pack("[ffff]", (double)s->min, (double)s->max, (double)s->mean, (double)s->sum);
		if (!q || json_array_append_new(v, q))
			bad = 1;
	}
	set(o, "stats", v, &bad);
	if (bad) {
		json_decref(o);
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "record '%s': cannot build metadata (invalid UTF-8 or non-finite statistic)", id);
	}
	char *js = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
	json_decref(o);
	if (!js)
		return lvd_error_set(err, LVD_ERR_NOMEM, "record '%s': JSON", id);
	size_t J = strlen(js), nmap, total;
	if (J > LVD_MAPSREC_MAX_JSON) {
		free(js);
		return lvd_error_set(err, LVD_ERR_INVALID, "record '%s': metadata of %zu bytes too large", id, J);
	}
	if (lvd_size_mul4(&nmap, r->T, (size_t)r->grid_h, (size_t)r->grid_w, 2) ||
	    lvd_size_add(&total, LVD_MAPSREC_HEADER + J, nmap)) {
		free(js);
		return lvd_error_set(err, LVD_ERR_NOMEM, "record '%s': size overflow", id);
	}
	uint8_t *b = malloc(total);
	if (!b) {
		free(js);
		return lvd_error_set(err, LVD_ERR_NOMEM, "record '%s': %zu bytes", id, total);
	}
	memcpy(b, MAGIC, 4);
	put_u16(b + 4, LVD_MAPSREC_VERSION);
	put_u16(b + 6, 0);
	put_u32(b + 8, r->T);
	put_u32(b + 12, (uint32_t)r->grid_h);
	put_u32(b + 16, (uint32_t)r->grid_w);
	put_u32(b + 20, (uint32_t)J);
	memcpy(b + LVD_MAPSREC_HEADER, js, J);
	free(js);
	uint8_t *m = b + LVD_MAPSREC_HEADER + J;
	for (size_t i = 0; i < nmap / 2; i++)
		put_u16(m + 2 * i, r->maps[i]);
	*out = b;
	*out_len = total;
	return LVD_OK;
}

/* ---- decode ----------------------------------------------------------------------- */

struct dctx {
	const char *where;
	struct lvd_error *err;
	struct lvd_json j;   /* view of the metadata object */
};

static int fmt_err(struct dctx *c, const char *field, const char *what)
{
	return lvd_error_set(c->err, LVD_ERR_FORMAT, "%s: field '%s': %s", c->where, field, what);
}

/* A getter's failure in record words: the record decoder reports FORMAT errors. */
static int bad_field(struct dctx *c, const char *k, int rc)
{
	return fmt_err(c, k, rc == LVD_ERR_NOTFOUND ? "missing" : "wrong type");
}

static json_t *need_array(struct dctx *c, const char *k, int *rc)
{
	json_t *v = NULL;
	int r = lvd_json_get_array(&c->j, k, &v, c->err);
	if (r)
		*rc = bad_field(c, k, r);
	return r ? NULL : v;
}

/* Required integer field in [lo, hi]. */
static int get_field_int(struct dctx *c, const char *k, json_int_t lo, json_int_t hi, json_int_t *out)
{
	int64_t x;
	int rc = lvd_json_get_int(&c->j, k, &x, c->err);
	if (rc)
		return bad_field(c, k, rc);
	if (x < lo || x > hi)
		return fmt_err(c, k, "value out of range");
	*out = (json_int_t)x;
	return 0;
}

static int get_int(struct dctx *c, json_t *v, const char *field, json_int_t lo, json_int_t hi, json_int_t *out)
{
	if (!json_is_integer(v))
		return fmt_err(c, field, "not an integer");
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return fmt_err(c, field, "value out of range");
	*out = x;
	return 0;
}

static int get_pair(struct dctx *c, const char *k, json_int_t lo, json_int_t hi, int *a, int *b)
{
	int rc = 0;
	json_t *v = need_array(c, k, &rc);
	if (rc)
		return rc;
	if (json_array_size(v) != 2)
		return fmt_err(c, k, "not a pair");
	json_int_t x, y;
	if ((rc = get_int(c, json_array_get(v, 0), k, lo, hi, &x)) ||
	    (rc = get_int(c, json_array_get(v, 1), k, lo, hi, &y)))
		return rc;
	*a = (int)x;
	*b = (int)y;
	return 0;
}

/* The list at k: length n (or at most max when n is 0); *out gets a zeroed array of its
 * length (at least 1) of el-byte elements. NULL with *rc set on failure. */
static json_t *need_list(struct dctx *c, const char *k, size_t n, size_t max, size_t el, void **out, int *rc)
{
	json_t *v = need_array(c, k, rc);
	if (!v)
		return NULL;
	size_t len = json_array_size(v);
	if (n ? len != n : len > max) {
		*rc = fmt_err(c, k, n ? "length differs from the token count" : "list too long");
		return NULL;
	}
	if (!(*out = lvd_calloc_array(len ? len : 1, el))) {
		*rc = lvd_error_set(c->err, LVD_ERR_NOMEM, "%s: field '%s'", c->where, k);
		return NULL;
	}
	return v;
}

/* Integer list (see need_list), elements in [lo, hi]. */
static int get_ints(struct dctx *c, const char *k, size_t n, size_t max, json_int_t lo, json_int_t hi,
		    int32_t **out, uint32_t *count)
{
	int rc = 0;
	void *p = NULL;
	json_t *v = need_list(c, k, n, max, sizeof(int32_t), &p, &rc);
	if (!v)
		return rc;
	*out = p;
	size_t len = json_array_size(v);
	for (size_t i = 0; i < len; i++) {
		json_int_t x;
		if ((rc = get_int(c, json_array_get(v, i), k, lo, hi, &x)))
			return rc;
		(*out)[i] = (int32_t)x;
	}
	if (count)
		*count = (uint32_t)len;
	return 0;
}

static int get_str(struct dctx *c, const char *k, char **out)
{
	const char *s;
	int rc = lvd_json_get_string(&c->j, k, &s, c->err);
	if (rc)
		return bad_field(c, k, rc);
	if (strlen(s) != json_string_length(lvd_json_find(&c->j, k)))
		return fmt_err(c, k, "contains a NUL byte");
	if (!(*out = lvd_strdup(s)))
		return lvd_error_set(c->err, LVD_ERR_NOMEM, "%s: field '%s'", c->where, k);
	return 0;
}

static int get_strs(struct dctx *c, const char *k, size_t n, size_t max, char ***out, uint32_t *count)
{
	int rc = 0;
	void *p = NULL;
	json_t *v = need_list(c, k, n, max, sizeof(char *), &p, &rc);
	if (!v)
		return rc;
	*out = p;
	size_t len = json_array_size(v);
	if (count)
		*count = (uint32_t)len;
	for (size_t i = 0; i < len; i++) {
		json_t *s = json_array_get(v, i);
		if (!json_is_string(s))
			return fmt_err(c, k, "element is not a string");
		if (strlen(json_string_value(s)) != json_string_length(s))
			return fmt_err(c, k, "element contains a NUL byte");
		if (!((*out)[i] = lvd_strdup(json_string_value(s))))
			return lvd_error_set(c->err, LVD_ERR_NOMEM, "%s: field '%s'", c->where, k);
	}
	return 0;
}

static int decode_json(struct dctx *c, struct lvd_mapsrec *r)
{
	int rc = 0;
	json_t *v;
	json_int_t x;
	int truncated;
	if ((rc = get_str(c, "id", &r->id)) || (rc = get_str(c, "text", &r->text)) ||
	    (rc = get_str(c, "image_file", &r->image_file)))
		return rc;
	if ((rc = lvd_json_get_bool(&c->j, "truncated", &truncated, c->err)))
		return bad_field(c, "truncated", rc);
	r->truncated = truncated;
	uint32_t n_layers = 0;
	if ((rc = get_strs(c, "words", 0, LVD_MAPSREC_MAX_LIST, &r->words, &r->n_words)) ||
	    (rc = get_ints(c, "tokens", r->T, 0, 0, INT32_MAX, &r->tokens, NULL)) ||
	    (rc = get_strs(c, "token_strs", r->T, 0, &r->token_strs, NULL)) ||
	    (rc = get_ints(c, "word_idx", r->T, 0, -1, (json_int_t)r->n_words - 1, &r->word_idx, NULL)) ||
	    (rc = get_pair(c, "image", 1, INT32_MAX, &r->img_w, &r->img_h)) ||
	    (rc = get_pair(c, "sd_size", 1, INT32_MAX, &r->sd_w, &r->sd_h)) ||
	    (rc = get_pair(c, "grid", 1, LVD_MAPSREC_MAX_GRID, &r->grid_w, &r->grid_h)) ||
	    (rc = get_ints(c, "layers", 0, LVD_MAPSREC_MAX_LIST, 1, INT32_MAX, &r->layers, &n_layers)) ||
	    (rc = get_ints(c, "timesteps", 0, LVD_MAPSREC_MAX_LIST, 0, INT32_MAX, &r->timesteps, &r->n_timesteps)))
		return rc;
	r->n_layers = n_layers;
	if ((rc = get_field_int(c, "resolution", 1, INT32_MAX, &x)))
		return rc;
	r->resolution = (int)x;
	if ((rc = get_field_int(c, "draws", 1, UINT32_MAX, &x)))
		return rc;
	r->draws = (uint32_t)x;
	if ((rc = get_field_int(c, "seed", 0, INT64_MAX, &x)))
		return rc;
	r->seed = (uint64_t)x;
	if ((rc = get_field_int(c, "index", 0, INT64_MAX, &x)))
		return rc;
	r->index = (uint64_t)x;

	/* spans: [T][2] inside the text */
	if (!(v = need_array(c, "spans", &rc)))
		return rc;
	if (json_array_size(v) != r->T)
		return fmt_err(c, "spans", "length differs from the token count");
	if (!(r->spans = lvd_alloc_array(r->T, 2 * sizeof(uint32_t))))
		return lvd_error_set(c->err, LVD_ERR_NOMEM, "%s: spans", c->where);
	size_t tl = strlen(r->text);
	for (uint32_t t = 0; t < r->T; t++) {
		json_t *p = json_array_get(v, t);
		json_int_t a, b;
		if (!json_is_array(p) || json_array_size(p) != 2)
			return fmt_err(c, "spans", "element is not a pair");
		if ((rc = get_int(c, json_array_get(p, 0), "spans", 0, (json_int_t)tl, &a)) ||
		    (rc = get_int(c, json_array_get(p, 1), "spans", a, (json_int_t)tl, &b)))
			return rc;
		r->spans[2 * t] = (uint32_t)a;
		r->spans[2 * t + 1] = (uint32_t)b;
	}

	/* stats: [T][4] numbers */
	if (!(v = need_array(c, "stats", &rc)))
		return rc;
	if (json_array_size(v) != r->T)
		return fmt_err(c, "stats", "length differs from the token count");
	if (!(r->stats = lvd_alloc_array(r->T, sizeof *r->stats)))
		return lvd_error_set(c->err, LVD_ERR_NOMEM, "%s: stats", c->where);
	for (uint32_t t = 0; t < r->T; t++) {
		json_t *p = json_array_get(v, t);
		float q[4];
		if (!json_is_array(p) || json_array_size(p) != 4)
			return fmt_err(c, "stats", "element is not a 4-list");
		for (int i = 0; i < 4; i++) {
			json_t *e = json_array_get(p, (size_t)i);
			if (!json_is_number(e))
				return fmt_err(c, "stats", "element is not a number");
			q[i] = (float)json_number_value(e);
		}
		r->stats[t] = (struct lvd_attnmap_stats){q[0], q[1], q[2], q[3]};
	}
	return 0;
}

int lvd_mapsrec_decode(struct lvd_mapsrec *r, const void *buf, size_t len, const char *where,
		       struct lvd_error *err)
{
	memset(r, 0, sizeof *r);
	struct dctx c = {.where = where ? where : "record", .err = err};
	const uint8_t *b = buf;
	if (len < LVD_MAPSREC_HEADER)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: payload of %zu bytes is shorter than the %d-byte header",
				     c.where, len, LVD_MAPSREC_HEADER);
	if (memcmp(b, MAGIC, 4))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: bad magic (not an sd-attnmap record)", c.where);
	uint16_t ver = get_u16(b + 4), flags = get_u16(b + 6);
	if (ver != LVD_MAPSREC_VERSION)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: record version %u, this build reads %d", c.where,
				     ver, LVD_MAPSREC_VERSION);
	if (flags)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: reserved flags 0x%x set", c.where, flags);
	uint32_t T = get_u32(b + 8), gh = get_u32(b + 12), gw = get_u32(b + 16), J = get_u32(b + 20);
	if (T < 1 || T > LVD_MAPSREC_MAX_TOKENS)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: token count %u not in [1, %d]", c.where, T,
				     LVD_MAPSREC_MAX_TOKENS);
	if (gh < 1 || gw < 1 || gh > LVD_MAPSREC_MAX_GRID || gw > LVD_MAPSREC_MAX_GRID)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: grid %ux%u out of range", c.where, gw, gh);
	if (J < 1 || J > LVD_MAPSREC_MAX_JSON)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: metadata length %u out of range", c.where, J);
	size_t nmap, want;
	if (lvd_size_mul4(&nmap, T, gh, gw, 2) || lvd_size_add(&want, (size_t)LVD_MAPSREC_HEADER + J, nmap))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: size overflow", c.where);
	if (want != len)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: payload is %zu bytes, header says %zu", c.where,
				     len, want);
	json_error_t je;
	json_t *o = json_loadb((const char *)b + LVD_MAPSREC_HEADER, J, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: metadata is not valid JSON: %s (at byte %d)",
				     c.where, je.text, je.position);
	int rc;
	r->T = T;
	if (!json_is_object(o))
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: metadata is not a JSON object", c.where);
	else {
		lvd_json_view(&c.j, o, c.where);
		rc = decode_json(&c, r);
	}
	json_decref(o);
	if (rc)
		return rc;
	if ((uint32_t)r->grid_w != gw || (uint32_t)r->grid_h != gh)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: field 'grid': %dx%d differs from the header's %ux%u",
				     c.where, r->grid_w, r->grid_h, gw, gh);
	if (!(r->maps = malloc(nmap)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: maps of %zu bytes", c.where, nmap);
	const uint8_t *m = b + LVD_MAPSREC_HEADER + J;
	size_t cells = (size_t)gh * gw;
	for (size_t i = 0; i < nmap / 2; i++) {
		r->maps[i] = get_u16(m + 2 * i);
		if ((r->maps[i] & 0x7c00) == 0x7c00) /* fp16 Inf or NaN */
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: map of token %zu, cell (%zu, %zu): value not finite "
					     "(fp16 0x%04x)", c.where, i / cells, i % cells / gw, i % gw, r->maps[i]);
	}
	return LVD_OK;
}

static void free_strs(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void lvd_mapsrec_free(struct lvd_mapsrec *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->text);
	free(r->image_file);
	free(r->tokens);
	free_strs(r->token_strs, r->token_strs ? r->T : 0);
	free(r->spans);
	free(r->word_idx);
	free_strs(r->words, r->n_words);
	free(r->layers);
	free(r->timesteps);
	free(r->stats);
	free(r->maps);
	memset(r, 0, sizeof *r);
}
