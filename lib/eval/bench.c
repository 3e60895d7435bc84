/* lib/eval/bench.c — the benchmark JSONL form and the converters into it (bench.h). */
#include "eval/bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/parse.h"
#include "io/fileutil.h"

static const char *const KIND_NAMES[LVD_EVAL_KIND__COUNT] = {"mcq", "yesno", "vqa", "anls"};
static const char *const FROM_NAMES[LVD_EVAL_FROM__COUNT] = {"mmbench-tsv", "pope", "textvqa", "docvqa",
							     "vlmevalkit-tsv"};

const char *lvd_eval_kind_name(enum lvd_eval_kind k)
{
	return (unsigned)k < LVD_EVAL_KIND__COUNT ? KIND_NAMES[k] : "?";
}

int lvd_eval_kind_parse(const char *s, enum lvd_eval_kind *k)
{
	for (int i = 0; i < LVD_EVAL_KIND__COUNT; i++)
		if (!strcmp(s, KIND_NAMES[i])) {
			*k = (enum lvd_eval_kind)i;
			return 0;
		}
	return -1;
}

const char *lvd_eval_from_name(enum lvd_eval_from f)
{
	return (unsigned)f < LVD_EVAL_FROM__COUNT ? FROM_NAMES[f] : "?";
}

int lvd_eval_from_parse(const char *s, enum lvd_eval_from *f)
{
	for (int i = 0; i < LVD_EVAL_FROM__COUNT; i++)
		if (!strcmp(s, FROM_NAMES[i])) {
			*f = (enum lvd_eval_from)i;
			return 0;
		}
	return -1;
}

/* ---- the record form --------------------------------------------------------------- */

static int opt_string(json_t *obj, const char *key, const char **out, struct lvd_error *err)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return lvd_error_set(err, LVD_ERR_INVALID, "field '%s': expected a string", key);
	*out = json_string_value(v);
	return 0;
}

static int req_string(json_t *obj, const char *key, const char **out, struct lvd_error *err)
{
	int rc = opt_string(obj, key, out, err);
	if (!rc && !*out)
		rc = lvd_error_set(err, LVD_ERR_INVALID, "field '%s' is missing", key);
	return rc;
}

int lvd_eval_item_parse(json_t *obj, struct lvd_eval_item *it, struct lvd_error *err)
{
	memset(it, 0, sizeof *it);
	if (!json_is_object(obj))
		return lvd_error_set(err, LVD_ERR_INVALID, "expected a JSON object");
	const char *kind;
	int rc;
	if ((rc = req_string(obj, "id", &it->id, err)) || (rc = req_string(obj, "kind", &kind, err)) ||
	    (rc = req_string(obj, "question", &it->question, err)) ||
	    (rc = opt_string(obj, "dataset", &it->dataset, err)) ||
	    (rc = opt_string(obj, "image", &it->image, err)) || (rc = opt_string(obj, "hint", &it->hint, err)) ||
	    (rc = opt_string(obj, "category", &it->category, err)) ||
	    (rc = opt_string(obj, "l2_category", &it->l2_category, err)) ||
	    (rc = opt_string(obj, "answer", &it->answer, err)))
		return rc;
	if (!it->dataset)
		it->dataset = "default";
	if (lvd_eval_kind_parse(kind, &it->kind))
		return lvd_error_set(err, LVD_ERR_INVALID, "field 'kind': '%s' is not mcq, yesno, vqa or anls", kind);
	json_t *ix = json_object_get(obj, "index");
	if (ix && !json_is_null(ix)) {
		if (!json_is_integer(ix) || json_integer_value(ix) < 0)
			return lvd_error_set(err, LVD_ERR_INVALID, "field 'index': expected an integer >= 0");
		it->has_index = 1;
		it->index = json_integer_value(ix);
	}
	if (it->kind == LVD_EVAL_KIND_MCQ) {
		json_t *ch = json_object_get(obj, "choices");
		if (!json_is_object(ch))
			return lvd_error_set(err, LVD_ERR_INVALID, "field 'choices': expected an object {\"A\": text, ...}");
		for (int L = 'A'; L <= 'Z'; L++) {
			char key[2] = {(char)L, 0};
			json_t *t = json_object_get(ch, key);
			if (!t || json_is_null(t))
				continue;
			if (!json_is_string(t))
				return lvd_error_set(err, LVD_ERR_INVALID, "field 'choices.%s': expected a string", key);
			it->choices.letter[it->choices.n] = (char)L;
			it->choices.text[it->choices.n++] = json_string_value(t);
		}
		if ((size_t)it->choices.n != json_object_size(ch))
			return lvd_error_set(err, LVD_ERR_INVALID, "field 'choices': keys must be the letters A-Z");
		if (it->choices.n < 2)
			return lvd_error_set(err, LVD_ERR_INVALID, "field 'choices': at least 2 options needed");
		if (it->answer && !(strlen(it->answer) == 1 && strchr(it->choices.letter, it->answer[0]) &&
				    it->answer[0] >= 'A' && it->answer[0] <= 'Z'))
			return lvd_error_set(err, LVD_ERR_INVALID, "field 'answer': '%s' is not one of the choices",
					     it->answer);
	} else if (it->kind == LVD_EVAL_KIND_YESNO) {
		if (it->answer && strcmp(it->answer, "yes") && strcmp(it->answer, "no"))
			return lvd_error_set(err, LVD_ERR_INVALID, "field 'answer': expected \"yes\" or \"no\", got '%s'",
					     it->answer);
	} else {
		json_t *a = json_object_get(obj, "answers");
		if (a && !json_is_null(a)) {
			if (!json_is_array(a) || json_array_size(a) == 0)
				return lvd_error_set(err, LVD_ERR_INVALID, "field 'answers': expected a non-empty array of strings");
			if (json_array_size(a) > LVD_EVAL_MAX_ANSWERS)
				return lvd_error_set(err, LVD_ERR_INVALID, "field 'answers': more than %d answers",
						     LVD_EVAL_MAX_ANSWERS);
			for (size_t i = 0; i < json_array_size(a); i++) {
				json_t *s = json_array_get(a, i);
				if (!json_is_string(s))
					return lvd_error_set(err, LVD_ERR_INVALID, "field 'answers[%zu]': expected a string", i);
				it->answers[it->n_answers++] = json_string_value(s);
			}
		}
	}
	return 0;
}

char *lvd_eval_item_prompt(const struct lvd_eval_item *it, enum lvd_eval_mcq_style style)
{
	switch (it->kind) {
	case LVD_EVAL_KIND_MCQ:
		return lvd_eval_mcq_prompt(style, it->question, it->hint, &it->choices);
	case LVD_EVAL_KIND_YESNO:
		return strdup(it->question);
	default:
		return lvd_eval_vqa_prompt(it->question);
	}
}

/* ---- helpers ----------------------------------------------------------------------- */

json_t *lvd_eval_pylist(const char *s)
{
	const char *p = s;
	while (*p == ' ')
		p++;
	if (*p++ != '[')
		return NULL;
	json_t *arr = json_array();
	size_t cap = strlen(s) + 1;
	char *buf = malloc(cap);
	if (!arr || !buf)
		goto bad;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == ']' && json_array_size(arr) == 0) {
			p++;
			break;
		}
		char q = *p++;
		if (q != '\'' && q != '"')
			goto bad;
		size_t n = 0;
		while (*p && *p != q) {
			if (*p == '\\' && p[1]) {
				char e = p[1];
				p += 2;
				if (e == 'n' || e == 't' || e == 'r')
					buf[n++] = e == 'n' ? '\n' : e == 't' ? '\t' : '\r';
				else if (e == '\\' || e == '\'' || e == '"')
					buf[n++] = e;
				else {
					buf[n++] = '\\';
					buf[n++] = e;
				}
			} else {
				buf[n++] = *p++;
			}
		}
		if (*p++ != q)
			goto bad;
		json_array_append_new(arr, json_stringn(buf, n));
		while (*p == ' ')
			p++;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p++ != ']')
			goto bad;
		break;
	}
	while (*p == ' ')
		p++;
	if (*p)
		goto bad;
	free(buf);
	return arr;
bad:
	free(buf);
	json_decref(arr);
	return NULL;
}

/* "dir/coco_pope_random.subset.jsonl" -> "coco_pope_random" */
static char *file_stem(const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	size_t n = strcspn(b, ".");
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, b, n);
		s[n] = 0;
	}
	return s;
}

/* prefix "/" name, with the extension replaced when ext is given; malloc'd */
static char *image_name(const struct lvd_eval_convert_opts *o, const char *name)
{
	size_t pl = o->images ? strlen(o->images) : 0;
	size_t nl = strlen(name), el = o->image_ext ? strlen(o->image_ext) : 0;
	char *s = malloc(pl + nl + el + 3);
	if (!s)
		return NULL;
	size_t k = 0;
	if (pl) {
		memcpy(s, o->images, pl);
		k = pl;
		if (s[k - 1] != '/')
			s[k++] = '/';
	}
	memcpy(s + k, name, nl);
	k += nl;
	s[k] = 0;
	if (o->image_ext) {
		char *dot = strrchr(s, '.'), *slash = strrchr(s, '/');
		if (dot && (!slash || dot > slash))
			k = (size_t)(dot - s);
		s[k++] = '.';
		memcpy(s + k, o->image_ext, el);
		s[k + el] = 0;
	}
	return s;
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

/* ---- POPE ------------------------------------------------------------------------- */

static int convert_pope(const char *in, const struct lvd_eval_convert_opts *o, json_t *out,
			struct lvd_error *err)
{
	char *stem = file_stem(in);
	if (!stem)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	/* LLaVA eval_pope.py: category = file[10:-5] of coco_pope_<category>.json */
	const char *cat = o->category ? o->category : !strncmp(stem, "coco_pope_", 10) ? stem + 10 : stem;
	struct lvd_lines *lr;
	int rc = lvd_lines_open(&lr, in, 1 << 20, err);
	if (rc) {
		free(stem);
		return rc;
	}
	const char *line;
	size_t len;
	uint64_t ln;
	while ((rc = lvd_lines_next(lr, &line, &len, &ln, err)) == LVD_OK) {
		size_t a = 0;
		while (a < len && (line[a] == ' ' || line[a] == '\t' || line[a] == '\r'))
			a++;
		if (a == len)
			continue;
		json_error_t je;
		json_t *q = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
		if (!q || !json_is_object(q)) {
			json_decref(q);
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%llu: not a JSON object: %s", in,
					   (unsigned long long)ln, q ? "another JSON value" : je.text);
			break;
		}
		json_t *qid = json_object_get(q, "question_id");
		const char *img = json_string_value(json_object_get(q, "image"));
		const char *text = json_string_value(json_object_get(q, "text"));
		const char *label = json_string_value(json_object_get(q, "label"));
		const char *miss = !json_is_integer(qid) && !json_is_string(qid) ? "question_id" :
				   !img ? "image" : !text ? "text" : !label ? "label" : NULL;
		if (miss) {
			json_decref(q);
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: field '%s' is missing or not a %s", in,
					   (unsigned long long)ln, miss, !strcmp(miss, "question_id") ? "number" : "string");
			break;
		}
		char ans[4];
		if (!strcasecmp(label, "yes") || !strcasecmp(label, "no")) {
			snprintf(ans, sizeof ans, "%s", label[0] == 'y' || label[0] == 'Y' ? "yes" : "no");
		} else {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: field 'label': expected yes or no, got '%s'", in,
					   (unsigned long long)ln, label);
			json_decref(q);
			break;
		}
		char id[256];
		if (json_is_integer(qid))
			snprintf(id, sizeof id, "%s-%lld", cat, (long long)json_integer_value(qid));
		else
			snprintf(id, sizeof id, "%s-%s", cat, json_string_value(qid));
		char *im = image_name(o, img);
		json_t *r = json_object();
		set_str(r, "id", id);
		set_str(r, "dataset", o->name ? o->name : "POPE");
		set_str(r, "kind", "yesno");
		set_str(r, "image", im);
		set_str(r, "question", text);
		set_str(r, "answer", ans);
		set_str(r, "category", cat);
		if (json_is_integer(qid))
			json_object_set(r, "index", qid);
		json_array_append_new(out, r);
		free(im);
		json_decref(q);
	}
	if (rc == LVD_LINES_EOF)
		rc = 0;
	lvd_lines_close(lr);
	free(stem);
	return rc;
}

/* ---- TextVQA / DocVQA --------------------------------------------------------------- */

static int convert_vqa_json(const char *in, const struct lvd_eval_convert_opts *o, json_t *out,
			    struct lvd_error *err)
{
	int doc = o->from == LVD_EVAL_FROM_DOCVQA;
	json_error_t je;
	json_t *root = json_load_file(in, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		if (je.line < 0)
			return lvd_error_set(err, LVD_ERR_IO, "%s: %s", in, je.text);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s:%d:%d: %s", in, je.line, je.column, je.text);
	}
	json_t *data = json_object_get(root, "data");
	int rc = 0;
	if (!json_is_array(data)) {
		json_decref(root);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: expected an object with a \"data\" array (%s format)", in,
				     doc ? "DocVQA" : "TextVQA");
	}
	for (size_t i = 0; i < json_array_size(data) && !rc; i++) {
		json_t *q = json_array_get(data, i);
		json_t *qid = json_object_get(q, doc ? "questionId" : "question_id");
		const char *question = json_string_value(json_object_get(q, "question"));
		json_t *answers = json_object_get(q, "answers");
		const char *img = doc ? json_string_value(json_object_get(q, "image")) :
				       json_string_value(json_object_get(q, "image_id"));
		const char *miss = !json_is_integer(qid) && !json_is_string(qid) ? (doc ? "questionId" : "question_id") :
				   !question ? "question" : !img ? (doc ? "image" : "image_id") :
				   !json_is_array(answers) || !json_array_size(answers) ? "answers" : NULL;
		for (size_t k = 0; !miss && k < json_array_size(answers); k++)
			if (!json_is_string(json_array_get(answers, k)))
				miss = "answers";
		if (miss) {
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s: data[%zu]: field '%s' is missing or has the wrong type%s", in, i, miss,
					   !strcmp(miss, "answers") ? " (a non-empty array of strings; test splits have no answers)" : "");
			break;
		}
		char id[256], name[1024];
		if (json_is_integer(qid))
			snprintf(id, sizeof id, "%lld", (long long)json_integer_value(qid));
		else
			snprintf(id, sizeof id, "%s", json_string_value(qid));
		/* TextVQA images are train_images/<image_id>.jpg */
		snprintf(name, sizeof name, doc ? "%s" : "%s.jpg", img);
		char *im = image_name(o, name);
		json_t *r = json_object();
		set_str(r, "id", id);
		set_str(r, "dataset", o->name ? o->name : doc ? "DocVQA" : "TextVQA");
		set_str(r, "kind", doc ? "anls" : "vqa");
		set_str(r, "image", im);
		set_str(r, "question", question);
		json_object_set(r, "answers", answers);
		json_t *types = json_object_get(q, "question_types");
		if (doc && json_is_array(types) && json_is_string(json_array_get(types, 0)))
			set_str(r, "category", json_string_value(json_array_get(types, 0)));
		if (json_is_integer(qid))
			json_object_set(r, "index", qid);
		json_array_append_new(out, r);
		free(im);
	}
	json_decref(root);
	return rc;
}

/* ---- TSV ------------------------------------------------------------------------------ */

/* pandas read_csv's default NA strings (keep_default_na): such cells are NaN, and
 * VLMEvalKit drops NaN options and hints. */
static int pandas_na(const char *s)
{
	static const char *const na[] = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
					 "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
					 "nan", "null"};
	for (size_t i = 0; i < sizeof na / sizeof *na; i++)
		if (!strcmp(s, na[i]))
			return 1;
	return 0;
}

struct tsv {
	char *buf;  /* whole file, cells unescaped in place */
	size_t len, pos;
	uint64_t line;
	const char *path;
};

/* Next row's cells (pointers into t->buf, NUL-terminated) as pandas' C parser reads a
 * tab-separated file: a cell starting with '"' is quoted ("" is a quote; tabs and
 * newlines inside are data), other cells run to the tab or line end; "\r\n" ends a
 * line; blank lines are skipped. Returns the cell count, 0 at end of file, -1 on error. */
static long tsv_row(struct tsv *t, char ***cells, size_t *cap, uint64_t *row_line, struct lvd_error *err)
{
	while (t->pos < t->len && (t->buf[t->pos] == '\n' || t->buf[t->pos] == '\r')) {
		if (t->buf[t->pos] == '\n')
			t->line++;
		t->pos++;
	}
	if (t->pos >= t->len)
		return 0;
	*row_line = t->line;
	size_t n = 0;
	for (;;) {
		if (n == *cap) {
			size_t nc = *cap ? *cap * 2 : 32;
			char **c = realloc(*cells, nc * sizeof *c);
			if (!c) {
				lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
				return -1;
			}
			*cells = c;
			*cap = nc;
		}
		char *w = t->buf + t->pos, *start = w;
		(*cells)[n++] = start;
		if (t->pos < t->len && t->buf[t->pos] == '"') {
			t->pos++;
			for (;;) {
				if (t->pos >= t->len) {
					lvd_error_set(err, LVD_ERR_FORMAT, "%s:%llu: quoted cell %zu never closes", t->path,
						      (unsigned long long)*row_line, n);
					return -1;
				}
				char c = t->buf[t->pos];
				if (c == '"') {
					if (t->pos + 1 < t->len && t->buf[t->pos + 1] == '"') {
						*w++ = '"';
						t->pos += 2;
						continue;
					}
					t->pos++;
					break;
				}
				if (c == '\n')
					t->line++;
				*w++ = c;
				t->pos++;
			}
			/* pandas keeps text after the closing quote as part of the cell */
			while (t->pos < t->len && t->buf[t->pos] != '\t' && t->buf[t->pos] != '\n' &&
			       t->buf[t->pos] != '\r')
				*w++ = t->buf[t->pos++];
		} else {
			while (t->pos < t->len && t->buf[t->pos] != '\t' && t->buf[t->pos] != '\n' &&
			       t->buf[t->pos] != '\r')
				*w++ = t->buf[t->pos++];
		}
		char end = t->pos < t->len ? t->buf[t->pos] : '\n';
		if (t->pos < t->len)
			t->pos++;
		*w = 0; /* w <= the separator's position, so this never clobbers unread bytes */
		if (end == '\t')
			continue;
		if (end == '\r' && t->pos < t->len && t->buf[t->pos] == '\n')
			t->pos++;
		t->line++;
		return (long)n;
	}
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with optional padding; whitespace skipped. Decodes in place into
 * out (may alias s); returns the length or -1. */
static long b64_decode(const char *s, unsigned char *out)
{
	int8_t map[256];
	memset(map, -1, sizeof map);
	for (int i = 0; i < 64; i++)
		map[(unsigned char)B64[i]] = (int8_t)i;
	uint32_t acc = 0;
	int bits = 0, pad = 0;
	long n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
			continue;
		if (*p == '=') {
			pad++;
			continue;
		}
		if (pad || map[*p] < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)map[*p];
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return bits >= 6 ? -1 : n;
}

static const char *image_ext(const unsigned char *p, long n)
{
	if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8))
		return "png";
	if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
		return "jpg";
	if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6)))
		return "gif";
	if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
		return "webp";
	if (n >= 2 && p[0] == 'B' && p[1] == 'M')
		return "bmp";
	return NULL;
}

static int col_index(char **hdr, long nh, const char *name)
{
	for (long i = 0; i < nh; i++)
		if (!strcmp(hdr[i], name))
			return (int)i;
	return -1;
}

/* the cell or NULL when the column is absent or the cell is NaN */
static const char *cell(char **c, long n, int col)
{
	return col >= 0 && col < n && !pandas_na(c[col]) ? c[col] : NULL;
}

static int has_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (const char *p = hay; *p; p++)
		if (!strncasecmp(p, needle, n))
			return 1;
	return 0;
}

static int convert_tsv(const char *in, const struct lvd_eval_convert_opts *o, json_t *out, size_t *n_images,
		       struct lvd_error *err)
{
	struct tsv t = {0};
	t.path = in;
	t.line = 1;
	int rc = lvd_file_read_all(in, (size_t)16 << 30, &t.buf, &t.len, err);
	if (rc)
		return rc;
	/* every cell becomes a JSON string: the file must be UTF-8 (a BOM is skipped, as
	 * pandas skips it) */
	size_t bad = lvd_utf8_check(t.buf, t.len);
	if (bad < t.len) {
		uint64_t ln = 1;
		for (size_t i = 0; i < bad; i++)
			ln += t.buf[i] == '\n';
		free(t.buf);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s:%llu: invalid UTF-8 (byte offset %zu)", in,
				     (unsigned long long)ln, bad);
	}
	if (t.len >= 3 && !memcmp(t.buf, "\xEF\xBB\xBF", 3))
		t.pos = 3;
	char *stem = NULL;
	char **hdr = NULL, **c = NULL;
	size_t hcap = 0, ccap = 0;
	json_t *recs = json_array(), *refs = json_object(), *files = json_object();
	uint64_t rl;
	long nh = tsv_row(&t, &hdr, &hcap, &rl, err);
	if (nh <= 0) {
		rc = nh < 0 ? err->code : lvd_error_set(err, LVD_ERR_FORMAT, "%s: empty file (expected a header row)", in);
		goto out;
	}
	/* VLMEvalKit lower-cases column names other than the option letters */
	for (long i = 0; i < nh; i++)
		if (!(strlen(hdr[i]) == 1 && hdr[i][0] >= 'A' && hdr[i][0] <= 'Z'))
			for (char *p = hdr[i]; *p; p++)
				*p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
	int ci = col_index(hdr, nh, "index"), cq = col_index(hdr, nh, "question"), chint = col_index(hdr, nh, "hint"),
	    cans = col_index(hdr, nh, "answer"), ccat = col_index(hdr, nh, "category"),
	    cl2 = col_index(hdr, nh, "l2-category"), cimg = col_index(hdr, nh, "image"),
	    cpath = col_index(hdr, nh, "image_path");
	int copt[26];
	for (int L = 0; L < 26; L++) {
		char k[2] = {(char)('A' + L), 0};
		copt[L] = col_index(hdr, nh, k);
	}
	const char *need = ci < 0 ? "index" : cq < 0 ? "question" : cimg < 0 && cpath < 0 ? "image (or image_path)" : NULL;
	if (need) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:1: header has no '%s' column", in, need);
		goto out;
	}
	stem = file_stem(in);
	const char *dataset = o->name ? o->name : stem;
	int docname = has_ci(dataset, "DocVQA") || has_ci(dataset, "InfoVQA");
	long n;
	while ((n = tsv_row(&t, &c, &ccap, &rl, err)) > 0) {
		lvd_progress_add(o->progress, 1);
		if (n != nh) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%llu: row has %ld cells, the header %ld", in,
					   (unsigned long long)rl, n, nh);
			goto out;
		}
		int64_t index;
		const char *is = cell(c, n, ci);
		if (!is || lvd_parse_i64(is, 0, INT64_MAX, &index, "index", NULL)) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: field 'index': expected an integer >= 0, got '%s'",
					   in, (unsigned long long)rl, is ? is : "");
			goto out;
		}
		const char *q = cell(c, n, cq);
		if (!q) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: field 'question' is empty", in,
					   (unsigned long long)rl);
			goto out;
		}
		json_t *r = json_object();
		json_array_append_new(recs, r);
		/* ids stay unique when several TSVs go into one file: "<dataset>-<index>" */
		char id[64], rid[1024];
		snprintf(id, sizeof id, "%lld", (long long)index);
		snprintf(rid, sizeof rid, "%s-%lld", dataset, (long long)index);
		set_str(r, "id", rid);
		set_str(r, "dataset", dataset);
		json_object_set_new(r, "index", json_integer(index));
		set_str(r, "question", q);
		set_str(r, "hint", cell(c, n, chint));
		json_t *choices = json_object();
		for (int L = 0; L < 26; L++) {
			const char *v = cell(c, n, copt[L]);
			char k[2] = {(char)('A' + L), 0};
			if (v)
				json_object_set_new(choices, k, json_string(v));
		}
		const char *ans = cell(c, n, cans);
		enum lvd_eval_kind kind;
		if (json_object_size(choices) > 0 || o->from == LVD_EVAL_FROM_MMBENCH_TSV) {
			kind = LVD_EVAL_KIND_MCQ;
			if (json_object_size(choices) < 2) {
				json_decref(choices);
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: a multiple-choice row needs options A, B, ...",
						   in, (unsigned long long)rl);
				goto out;
			}
			if (ans && !(strlen(ans) == 1 && json_object_get(choices, ans))) {
				json_decref(choices);
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: field 'answer': '%s' is not one of the options",
						   in, (unsigned long long)rl, ans);
				goto out;
			}
		} else if (o->kind >= 0) {
			kind = (enum lvd_eval_kind)o->kind;
		} else if (docname) {
			kind = LVD_EVAL_KIND_ANLS; /* VLMEvalKit: DocVQA/InfoVQA score with ANLS */
		} else if (ans && (!strcasecmp(ans, "yes") || !strcasecmp(ans, "no"))) {
			kind = LVD_EVAL_KIND_YESNO;
		} else {
			kind = LVD_EVAL_KIND_VQA;
		}
		set_str(r, "kind", lvd_eval_kind_name(kind));
		if (kind == LVD_EVAL_KIND_MCQ) {
			json_object_set_new(r, "choices", choices);
			set_str(r, "answer", ans);
		} else {
			json_decref(choices);
			if (kind == LVD_EVAL_KIND_YESNO) {
				if (ans && strcasecmp(ans, "yes") && strcasecmp(ans, "no")) {
					rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: field 'answer': expected Yes or No, got '%s'",
							   in, (unsigned long long)rl, ans);
					goto out;
				}
				if (ans)
					set_str(r, "answer", (ans[0] | 0x20) == 'y' ? "yes" : "no");
			} else if (ans) {
				/* VLMEvalKit: a list-valued answer is stored as its Python repr */
				json_t *list = ans[0] == '[' ? lvd_eval_pylist(ans) : NULL;
				if (!list) {
					list = json_array();
					json_array_append_new(list, json_string(ans));
				}
				json_object_set_new(r, "answers", list);
			}
		}
		set_str(r, "category", cell(c, n, ccat));
		set_str(r, "l2_category", cell(c, n, cl2));
		/* the image: base64 bytes, a reference to another row's index, or image_path */
		const char *img = cell(c, n, cimg);
		if (img && strlen(img) <= 64) {
			json_object_set_new(refs, id, json_pack("{s:s, s:I}", "to", img, "line", (json_int_t)rl));
		} else if (img) {
			if (img[0] == '[') {
				rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s:%llu: rows with several images are not supported",
						   in, (unsigned long long)rl);
				goto out;
			}
			long bn = b64_decode(img, (unsigned char *)c[cimg]);
			const char *ext = bn > 0 ? image_ext((unsigned char *)c[cimg], bn) : NULL;
			if (!ext) {
				rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%llu: field 'image': %s", in, (unsigned long long)rl,
						   bn < 0 ? "not base64" : "not a PNG, JPEG, GIF, WebP or BMP image");
				goto out;
			}
			char path[4096], rel[4096];
			snprintf(path, sizeof path, "%s/%s.%s", o->img_dir, id, ext);
			snprintf(rel, sizeof rel, "%s/%s.%s", o->img_rel, id, ext);
			if ((rc = lvd_file_write_atomic(path, c[cimg], (size_t)bn, err)))
				goto out;
			(*n_images)++;
			set_str(r, "image", rel);
			json_object_set_new(files, id, json_string(rel));
		} else {
			const char *ip = cell(c, n, cpath);
			if (!ip) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: no image (empty 'image' and 'image_path')", in,
						   (unsigned long long)rl);
				goto out;
			}
			char *im = image_name(o, ip);
			set_str(r, "image", im);
			free(im);
		}
	}
	if (n < 0) {
		rc = err->code;
		goto out;
	}
	/* resolve the short image cells: VLMEvalKit asserts the target row holds an image */
	const char *key;
	json_t *ref;
	json_object_foreach(refs, key, ref) {
		const char *to = json_string_value(json_object_get(ref, "to"));
		const char *file = json_string_value(json_object_get(files, to));
		if (!file) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%lld: field 'image': '%s' is neither an image nor the index of a row holding one",
					   in, (long long)json_integer_value(json_object_get(ref, "line")), to);
			goto out;
		}
		for (size_t i = 0; i < json_array_size(recs); i++) {
			json_t *r = json_array_get(recs, i);
			char ix[64];
			snprintf(ix, sizeof ix, "%lld", (long long)json_integer_value(json_object_get(r, "index")));
			if (!strcmp(ix, key))
				set_str(r, "image", file);
		}
	}
	for (size_t i = 0; i < json_array_size(recs); i++)
		json_array_append(out, json_array_get(recs, i));
out:
	json_decref(recs);
	json_decref(refs);
	json_decref(files);
	free(hdr);
	free(c);
	free(stem);
	free(t.buf);
	return rc;
}

int lvd_eval_convert(const char *in, const struct lvd_eval_convert_opts *o, json_t *out, size_t *n_images,
		     struct lvd_error *err)
{
	switch (o->from) {
	case LVD_EVAL_FROM_POPE:
		return convert_pope(in, o, out, err);
	case LVD_EVAL_FROM_TEXTVQA:
	case LVD_EVAL_FROM_DOCVQA:
		return convert_vqa_json(in, o, out, err);
	case LVD_EVAL_FROM_MMBENCH_TSV:
	case LVD_EVAL_FROM_VLMEVALKIT_TSV:
		return convert_tsv(in, o, out, n_images, err);
	default:
		return lvd_error_set(err, LVD_ERR_INVALID, "unknown input format");
	}
}
