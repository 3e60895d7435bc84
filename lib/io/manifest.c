/* JSONL / JSON-array manifest reader (format in manifest.h). */
#include "io/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fault.h"
#include "io/fileutil.h"

#define ID_MAX 1024

struct lvd_manifest {
	char *path;
	struct lvd_manifest_opts opts;
	struct lvd_lines *lines;   /* JSONL mode */
	json_t *array;             /* JSON-array mode */
	size_t next_elem;
	uint64_t pos;
};

const char *lvd_role_name(int role)
{
	switch (role) {
	case LVD_ROLE_SYSTEM: return "system";
	case LVD_ROLE_USER: return "user";
	case LVD_ROLE_ASSISTANT: return "assistant";
	}
	return "?";
}

void lvd_sample_clear(struct lvd_sample *s)
{
	free(s->id);
	free(s->image);
	free(s->caption);
	for (size_t i = 0; i < s->n_turns; i++)
		free(s->turns[i].content);
	free(s->turns);
	memset(s, 0, sizeof *s);
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE: case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* Optional string field: absent/null -> *out stays NULL. */
static int get_opt_string(const json_t *obj, const char *key, const char *where, char **out,
			  struct lvd_error *err)
{
	const json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return LVD_OK;
	if (!json_is_string(v))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: '%s': expected a string, got %s",
				     where, key, json_type_name(v));
	if (!(*out = lvd_strdup(json_string_value(v))))
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", where);
	return LVD_OK;
}

static int role_from(const char *name, int llava, int *role)
{
	if (!strcmp(name, "user") || (llava && !strcmp(name, "human")))
		*role = LVD_ROLE_USER;
	else if (!strcmp(name, "assistant") || (llava && !strcmp(name, "gpt")))
		*role = LVD_ROLE_ASSISTANT;
	else if (!strcmp(name, "system"))
		*role = LVD_ROLE_SYSTEM;
	else
		return -1;
	return 0;
}

static int parse_turns(const json_t *conv, const char *where, struct lvd_sample *s,
		       struct lvd_error *err)
{
	if (!json_is_array(conv))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: 'conversations': expected an array, got %s",
				     where, json_type_name(conv));
	size_t n = json_array_size(conv);
	if (n == 0)
		return LVD_OK;
	if (!(s->turns = lvd_calloc_array(n, sizeof *s->turns)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", where);
	for (size_t i = 0; i < n; i++) {
		const json_t *t = json_array_get(conv, i);
		if (!json_is_object(t))
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: conversations[%zu]: expected an object, got %s",
					     where, i, json_type_name(t));
		const json_t *role = json_object_get(t, "role");
		int llava = !role;
		const char *rk = llava ? "from" : "role", *ck = llava ? "value" : "content";
		if (llava)
			role = json_object_get(t, "from");
		const json_t *content = json_object_get(t, ck);
		if (!role)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "%s: conversations[%zu]: missing 'role' (or LLaVA 'from')", where, i);
		if (!json_is_string(role))
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: conversations[%zu].%s: expected a string, got %s",
					     where, i, rk, json_type_name(role));
		int r;
		if (role_from(json_string_value(role), llava, &r))
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: conversations[%zu].%s: unknown role '%.64s' (expected %s)",
					     where, i, rk, json_string_value(role),
					     llava ? "human, gpt or system" : "user, assistant or system");
		if (!content)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: conversations[%zu]: missing '%s'", where, i, ck);
		if (!json_is_string(content))
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: conversations[%zu].%s: expected a string, got %s",
					     where, i, ck, json_type_name(content));
		s->turns[i].role = r;
		if (!(s->turns[i].content = lvd_strdup(json_string_value(content))))
			return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", where);
		s->n_turns = i + 1;
	}
	return LVD_OK;
}

/* Fills s from one parsed sample object. */
static int sample_from_json(const json_t *obj, const char *where, const struct lvd_manifest_opts *opts,
			    struct lvd_sample *s, struct lvd_error *err)
{
	if (!json_is_object(obj))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: expected a JSON object, got %s", where,
				     json_type_name(obj));
	int rc;
	if ((rc = get_opt_string(obj, "image", where, &s->image, err)) ||
	    (rc = get_opt_string(obj, "caption", where, &s->caption, err)))
		return rc;
	if (s->image && !s->image[0])
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: 'image' is empty", where);
	const json_t *conv = json_object_get(obj, "conversations");
	if (conv && !json_is_null(conv) && (rc = parse_turns(conv, where, s, err)))
		return rc;

	const json_t *id = json_object_get(obj, "id");
	char num[32];
	const char *idtext = NULL;
	if (!id || json_is_null(id)) {
		if (!(opts && opts->id_from_image))
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: missing 'id'", where);
		if (!s->image)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: missing 'id' and no 'image' to take it from", where);
		idtext = s->image;
	} else if (json_is_string(id)) {
		idtext = json_string_value(id);
	} else if (json_is_integer(id)) {
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
		idtext = num;
	} else {
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: 'id': expected a string or integer, got %s",
				     where, json_type_name(id));
	}
	size_t n = strlen(idtext);
	if (n == 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: 'id' is empty", where);
	if (n > ID_MAX)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: 'id' is longer than %d bytes", where, ID_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)idtext[i] < 0x20 || idtext[i] == 0x7f)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: 'id' contains a control character", where);
	if (!(s->id = lvd_strdup(idtext)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", where);
	return LVD_OK;
}

int lvd_manifest_parse_line(const char *where, const char *text, size_t len,
			    const struct lvd_manifest_opts *opts, struct lvd_sample *s,
			    struct lvd_error *err)
{
	lvd_sample_clear(s);
	size_t bad = lvd_utf8_check(text, len);
	if (bad != len)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: invalid UTF-8 at byte %zu (0x%02x)", where,
				     bad + 1, (unsigned char)text[bad]);
	json_error_t jerr;
	json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: invalid JSON at column %d: %s", where,
				     jerr.column, strstr(jerr.text, "JSON_ALLOW_NUL") ? "a string contains \\u0000"
										     : jerr.text);
	int rc = sample_from_json(obj, where, opts, s, err);
	json_decref(obj);
	if (rc)
		lvd_sample_clear(s);
	return rc;
}

/* First non-blank byte of a file (after a BOM), 0 for none, or -1 with err set when the
 * file cannot be opened or read (an I/O error must not turn a JSON array into JSONL). */
static int peek_first_byte(const char *path, struct lvd_error *err)
{
	int fd = lvd_io_open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path), -1;
	unsigned char buf[4096];
	int c = 0;
	for (;;) {
		ssize_t n = lvd_io_read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			lvd_error_errno(err, LVD_ERR_IO, "cannot read '%s'", path);
			c = -1;
			break;
		}
		if (n == 0)
			break;
		size_t i = 0;
		for (; i < (size_t)n; i++) {
			unsigned char b = buf[i];
			if (b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == 0xEF || b == 0xBB || b == 0xBF)
				continue;
			c = b;
			break;
		}
		if (i < (size_t)n)
			break;
	}
	close(fd);
	return c;
}

int lvd_manifest_open(struct lvd_manifest **out, const char *path,
		      const struct lvd_manifest_opts *opts, struct lvd_error *err)
{
	*out = NULL;
	struct lvd_manifest *m = calloc(1, sizeof *m);
	if (!m || !(m->path = lvd_strdup(path))) {
		free(m);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	}
	if (opts)
		m->opts = *opts;
	if (!m->opts.max_line)
		m->opts.max_line = (size_t)16 << 20;
	if (!m->opts.max_file)
		m->opts.max_file = (size_t)1 << 30;
	int rc, first = strcmp(path, "-") != 0 ? peek_first_byte(path, err) : 0;
	if (first < 0) {
		rc = LVD_ERR_IO;
		goto fail;
	}
	if (first == '[') {
		char *buf;
		size_t len;
		if ((rc = lvd_file_read_all(path, m->opts.max_file, &buf, &len, err)))
			goto fail;
		size_t start = len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3) ? 3 : 0;
		size_t bad = lvd_utf8_check(buf + start, len - start);
		if (bad != len - start) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: invalid UTF-8 at byte %zu", path, start + bad + 1);
			free(buf);
			goto fail;
		}
		json_error_t jerr;
		m->array = json_loadb(buf + start, len - start, JSON_REJECT_DUPLICATES, &jerr);
		free(buf);
		if (!m->array) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%d: invalid JSON at column %d: %s", path,
					   jerr.line, jerr.column, jerr.text);
			goto fail;
		}
		if (!json_is_array(m->array)) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: expected a JSON array of samples", path);
			goto fail;
		}
	} else if ((rc = lvd_lines_open(&m->lines, path, m->opts.max_line, err))) {
		goto fail;
	}
	*out = m;
	return LVD_OK;
fail:
	lvd_manifest_close(m);
	return rc;
}

static int is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

int lvd_manifest_next(struct lvd_manifest *m, struct lvd_sample *s, struct lvd_error *err)
{
	lvd_sample_clear(s);
	char where[4200];
	if (m->array) {
		if (m->next_elem >= json_array_size(m->array))
			return LVD_MANIFEST_EOF;
		size_t i = m->next_elem++;
		m->pos = m->next_elem;
		snprintf(where, sizeof where, "%s: element %zu", m->path, i + 1);
		int rc = sample_from_json(json_array_get(m->array, i), where, &m->opts, s, err);
		if (rc)
			lvd_sample_clear(s);
		else
			s->line = i + 1;
		return rc;
	}
	for (;;) {
		const char *line;
		size_t len;
		uint64_t no = m->pos;
		int rc = lvd_lines_next(m->lines, &line, &len, &no, err);
		if (rc == LVD_LINES_EOF)
			return LVD_MANIFEST_EOF;
		m->pos = no;
		if (rc == LVD_ERR_INVALID) { /* line too long: a per-line format error */
			if (err)
				err->code = LVD_ERR_FORMAT;
			return LVD_ERR_FORMAT;
		}
		if (rc)
			return rc;
		if (no == 1 && len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) {
			line += 3;
			len -= 3;
		}
		if (len && line[len - 1] == '\r')
			len--;
		if (is_blank(line, len))
			continue;
		snprintf(where, sizeof where, "%s:%llu", m->path, (unsigned long long)no);
		rc = lvd_manifest_parse_line(where, line, len, &m->opts, s, err);
		if (rc == LVD_OK)
			s->line = no;
		return rc;
	}
}

uint64_t lvd_manifest_position(const struct lvd_manifest *m)
{
	return m->pos;
}

void lvd_manifest_close(struct lvd_manifest *m)
{
	if (!m)
		return;
	lvd_lines_close(m->lines);
	json_decref(m->array);
	free(m->path);
	free(m);
}

/* ---- SD text -------------------------------------------------------------------- */

struct strbuf {
	char *p;
	size_t len, cap;
};

static int sb_add(struct strbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 64;
		while (nc < b->len + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np)
			return -1;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Appends one piece: "<image>" removed, trimmed, joined with " " if non-empty. */
static int add_piece(struct strbuf *b, const char *text)
{
	static const char tag[] = "<image>";
	struct strbuf t = { 0 };
	const char *p = text;
	for (;;) {
		const char *q = strstr(p, tag);
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n && sb_add(&t, p, n)) {
			free(t.p);
			return -1;
		}
		if (!q)
			break;
		p = q + sizeof tag - 1;
	}
	int rc = 0;
	if (t.len) {
		size_t a = 0, z = t.len;
		while (a < z && is_space(t.p[a])) a++;
		while (z > a && is_space(t.p[z - 1])) z--;
		if (z > a) {
			if (b->len)
				rc = sb_add(b, " ", 1);
			if (!rc)
				rc = sb_add(b, t.p + a, z - a);
		}
	}
	free(t.p);
	return rc;
}

int lvd_sample_sd_text(const struct lvd_sample *s, int field, char **out, struct lvd_error *err)
{
	*out = NULL;
	struct strbuf b = { 0 };
	int rc = 0;
	const char *what = NULL;
	if (field == LVD_TEXT_CAPTION || (field == LVD_TEXT_AUTO && s->caption)) {
		if (!s->caption)
			return lvd_error_set(err, LVD_ERR_INVALID, "sample '%s': no 'caption' (text field caption)", s->id);
		rc = add_piece(&b, s->caption);
		what = "the caption is empty";
	} else if (field == LVD_TEXT_AUTO || field == LVD_TEXT_ASSISTANT || field == LVD_TEXT_ALL) {
		for (size_t i = 0; i < s->n_turns && !rc; i++) {
			int r = s->turns[i].role;
			if (r == LVD_ROLE_ASSISTANT || (field == LVD_TEXT_ALL && r == LVD_ROLE_USER))
				rc = add_piece(&b, s->turns[i].content);
		}
		what = field == LVD_TEXT_ALL ? "no text in the conversation turns"
		     : field == LVD_TEXT_AUTO ? "no caption and no assistant text"
					      : "no assistant text";
	} else {
		LVD_ASSERTF(0, "unknown text field %d", field);
	}
	if (rc) {
		free(b.p);
		return lvd_error_set(err, LVD_ERR_NOMEM, "sample '%s': out of memory", s->id);
	}
	if (!b.len) {
		free(b.p);
		return lvd_error_set(err, LVD_ERR_INVALID, "sample '%s': empty SD text (%s)", s->id, what);
	}
	*out = b.p;
	return LVD_OK;
}

int lvd_text_field_parse(const char *name, int *field, struct lvd_error *err)
{
	static const char *names[] = { "auto", "caption", "assistant", "all" };
	for (int i = 0; i < 4; i++)
		if (!strcmp(name, names[i])) {
			*field = i;
			return LVD_OK;
		}
	return lvd_error_set(err, LVD_ERR_INVALID, "unknown text field '%s' (expected auto, caption, assistant or all)", name);
}
