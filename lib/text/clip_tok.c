#include "text/clip_tok.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "text/bpe.h"
#include "text/pretok.h"
#include "text/textio.h"
#include "text/utf8.h"

#define CLIP_MERGES 48894 /* 49152 - 256 - 2 */

struct lvd_clip_tok {
	struct lvd_bpe *bpe;
	struct lvd_pretok *pre;
	struct lvd_bpe_buf buf;
};

/* ---- cleaning with a source map ---------------------------------------------- */
struct mapped {
	char *s;
	uint32_t *a, *b; /* source span per byte */
	size_t n, cap;
};

static int m_reserve(struct mapped *m, size_t extra)
{
	if (m->n + extra <= m->cap)
		return 0;
	size_t nc = m->cap ? m->cap : 64;
	while (nc < m->n + extra)
		nc *= 2;
	char *s = realloc(m->s, nc + 1);
	if (!s)
		return -1;
	m->s = s;
	uint32_t *a = lvd_realloc_array(m->a, nc, sizeof *a);
	if (!a)
		return -1;
	m->a = a;
	uint32_t *b = lvd_realloc_array(m->b, nc, sizeof *b);
	if (!b)
		return -1;
	m->b = b;
	m->cap = nc;
	return 0;
}

static int m_put(struct mapped *m, const void *p, size_t l, uint32_t a, uint32_t b)
{
	if (m_reserve(m, l))
		return -1;
	memcpy(m->s + m->n, p, l);
	for (size_t i = 0; i < l; i++) {
		m->a[m->n + i] = a;
		m->b[m->n + i] = b;
	}
	m->n += l;
	return 0;
}

static int m_put_cp(struct mapped *m, int32_t cp, uint32_t a, uint32_t b)
{
	uint8_t u[4];
	size_t l = lvd_utf8_encode(cp, u);
	if (!l)
		l = lvd_utf8_encode(0xFFFD, u);
	return m_put(m, u, l, a, b);
}

static void m_free(struct mapped *m)
{
	free(m->s);
	free(m->a);
	free(m->b);
	memset(m, 0, sizeof *m);
}

static const struct entity {
	const char *name;
	int32_t cp;
	int legacy; /* also recognised without ';' */
} ENTITIES[] = {
	{"amp", '&', 1}, {"lt", '<', 1}, {"gt", '>', 1}, {"quot", '"', 1}, {"nbsp", 0xA0, 1},
	{"apos", '\'', 0}, {"copy", 0xA9, 1}, {"reg", 0xAE, 1}, {"deg", 0xB0, 1}, {"times", 0xD7, 1},
	{"eacute", 0xE9, 1}, {"hellip", 0x2026, 0}, {"mdash", 0x2014, 0}, {"ndash", 0x2013, 0},
	{"lsquo", 0x2018, 0}, {"rsquo", 0x2019, 0}, {"ldquo", 0x201C, 0}, {"rdquo", 0x201D, 0},
	{"AMP", '&', 1}, {"LT", '<', 1}, {"GT", '>', 1}, {"QUOT", '"', 1}, {"COPY", 0xA9, 1}, {"REG", 0xAE, 1},
};

/* Python html._invalid_charrefs for 0x80..0x9F (Windows-1252) */
static const uint16_t CP1252[32] = {
	0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
	0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
	0x0153, 0x9D, 0x017E, 0x0178};

/* numeric reference value -> code point, -1 = removed (Python's _invalid_codepoints) */
static int32_t charref(uint64_t v)
{
	if (v == 0)
		return 0xFFFD;
	if (v == 0x0D)
		return 0x0D;
	if (v >= 0x80 && v <= 0x9F)
		return CP1252[v - 0x80];
	if ((v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF)
		return 0xFFFD;
	if ((v >= 0x1 && v <= 0x8) || v == 0xB || (v >= 0xE && v <= 0x1F) || (v >= 0x7F && v <= 0x9F) ||
	    (v >= 0xFDD0 && v <= 0xFDEF) || (v & 0xFFFE) == 0xFFFE)
		return -1;
	return (int32_t)v;
}

static int is_name_char(char c)
{
	return c && c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
}

/* one html.unescape pass */
static int unescape(const struct mapped *in, struct mapped *out)
{
	out->n = 0;
	size_t i = 0, n = in->n;
	const char *s = in->s;
	while (i < n) {
		if (s[i] != '&') {
			if (m_put(out, s + i, 1, in->a[i], in->b[i]))
				return -1;
			i++;
			continue;
		}
		size_t j = i + 1;
		int32_t cp = -2; /* -2: not a reference */
		if (j < n && s[j] == '#') {
			j++;
			int hex = j < n && (s[j] == 'x' || s[j] == 'X');
			if (hex)
				j++;
			size_t d0 = j;
			uint64_t v = 0;
			while (j < n && (hex ? (s[j] >= '0' && s[j] <= '9') || ((s[j] | 32) >= 'a' && (s[j] | 32) <= 'f')
					     : s[j] >= '0' && s[j] <= '9')) {
				int d = s[j] <= '9' ? s[j] - '0' : (s[j] | 32) - 'a' + 10;
				if (v < (1ull << 40))
					v = v * (hex ? 16 : 10) + (uint64_t)d;
				j++;
			}
			if (j > d0) {
				if (j < n && s[j] == ';')
					j++;
				cp = charref(v);
			}
		} else {
			size_t k = j;
			while (k < n && k - j < 32 && is_name_char(s[k]))
				k++;
			size_t nl = k - j;
			if (nl && k < n && s[k] == ';') {
				for (size_t e = 0; e < sizeof ENTITIES / sizeof *ENTITIES; e++)
					if (strlen(ENTITIES[e].name) == nl && !memcmp(ENTITIES[e].name, s + j, nl)) {
						cp = ENTITIES[e].cp;
						j = k + 1;
						break;
					}
			}
			if (cp == -2) { /* longest legacy prefix (length >= 2) */
				for (size_t x = nl; x >= 2 && cp == -2; x--)
					for (size_t e = 0; e < sizeof ENTITIES / sizeof *ENTITIES; e++)
						if (ENTITIES[e].legacy && strlen(ENTITIES[e].name) == x &&
						    !memcmp(ENTITIES[e].name, s + j, x)) {
							cp = ENTITIES[e].cp;
							j += x;
							break;
						}
			}
		}
		if (cp == -2) {
			if (m_put(out, s + i, 1, in->a[i], in->b[i]))
				return -1;
			i++;
			continue;
		}
		if (cp >= 0 && m_put_cp(out, cp, in->a[i], in->b[j - 1]))
			return -1;
		i = j;
	}
	return 0;
}

/* NFC, segment by segment (a segment is a non-ASCII run with the ASCII byte before it;
 * composition never crosses an ASCII starter) */
static int nfc(const struct mapped *in, struct mapped *out)
{
	out->n = 0;
	size_t i = 0, n = in->n;
	const uint8_t *s = (const uint8_t *)in->s;
	while (i < n) {
		if (s[i] < 0x80 && (i + 1 >= n || s[i + 1] < 0x80)) {
			if (m_put(out, s + i, 1, in->a[i], in->b[i]))
				return -1;
			i++;
			continue;
		}
		size_t a = i;
		i++;
		while (i < n && s[i] >= 0x80)
			i++;
		utf8proc_uint8_t *dst = NULL;
		utf8proc_ssize_t r = utf8proc_map(s + a, (utf8proc_ssize_t)(i - a), &dst,
						  UTF8PROC_STABLE | UTF8PROC_COMPOSE);
		if (r < 0)
			return -1;
		int rc;
		if ((size_t)r == i - a && !memcmp(dst, s + a, (size_t)r)) {
			rc = 0;
			for (size_t k = a; k < i && !rc; k++)
				rc = m_put(out, s + k, 1, in->a[k], in->b[k]);
		} else {
			rc = m_put(out, dst, (size_t)r, in->a[a], in->b[i - 1]);
		}
		free(dst);
		if (rc)
			return -1;
	}
	return 0;
}

/* whitespace collapse + strip + lowercase */
static int ws_lower(const struct mapped *in, struct mapped *out)
{
	out->n = 0;
	size_t i = 0, n = in->n;
	const uint8_t *s = (const uint8_t *)in->s;
	int pending = 0;
	uint32_t pa = 0, pb = 0;
	while (i < n) {
		int32_t cp;
		size_t l = lvd_utf8_decode(s + i, n - i, &cp);
		if (!l) { /* cannot happen on validated input */
			cp = 0xFFFD;
			l = 1;
		}
		uint32_t a = in->a[i], b = in->b[i + l - 1];
		if (lvd_unicode_is_space(cp)) {
			if (!pending)
				pa = a;
			pending = 1;
			pb = b;
		} else {
			if (pending && out->n && m_put(out, " ", 1, pa, pb))
				return -1;
			pending = 0;
			if (cp == 0x130) {
				if (m_put(out, "i\xcc\x87", 3, a, b))
					return -1;
			} else if (m_put_cp(out, utf8proc_tolower(cp), a, b)) {
				return -1;
			}
		}
		i += l;
	}
	return 0;
}

int lvd_clip_clean(const char *text, size_t n, char **clean, size_t *clean_len, uint32_t **src_start,
		   uint32_t **src_end, struct lvd_error *err)
{
	size_t bad;
	if (!lvd_utf8_valid(text, n, &bad))
		return lvd_error_set(err, LVD_ERR_INVALID, "invalid UTF-8 at byte %zu", bad);
	if (n > UINT32_MAX - 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "text longer than 4 GiB");
	struct mapped x = {0}, y = {0};
	int rc = m_reserve(&x, n + 1);
	for (size_t i = 0; !rc && i < n; i++) {
		x.s[i] = text[i];
		x.a[i] = (uint32_t)i;
		x.b[i] = (uint32_t)i + 1;
	}
	x.n = n;
	if (rc || unescape(&x, &y) || unescape(&y, &x) || nfc(&x, &y) || ws_lower(&y, &x) || m_reserve(&x, 1)) {
		m_free(&x);
		m_free(&y);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory cleaning text");
	}
	m_free(&y);
	x.s[x.n] = 0;
	if (clean)
		*clean = x.s;
	else
		free(x.s);
	if (clean_len)
		*clean_len = x.n;
	/* spans are half-open: b holds the end offset already */
	if (src_start)
		*src_start = x.a;
	else
		free(x.a);
	if (src_end)
		*src_end = x.b;
	else
		free(x.b);
	return 0;
}

/* ---- loading ------------------------------------------------------------------ */
static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

static int load_vocab_json(struct lvd_clip_tok *t, const char *path, struct lvd_error *err)
{
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	if (!root)
		return lvd_path_is_file(path) ? lvd_error_set(err, LVD_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text)
					      : lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	int rc = 0;
	if (!json_is_object(root))
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: not a JSON object", path);
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		if (rc)
			break;
		if (!json_is_integer(v)) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: '%s' is not an integer", path, key);
			break;
		}
		int32_t id = (int32_t)json_integer_value(v);
		if (id == LVD_CLIP_BOS || id == LVD_CLIP_EOS)
			continue;
		if ((rc = lvd_bpe_add_token_str(t->bpe, id, key, strlen(key), "</w>", err)))
			lvd_error_prefix(err, "%s: ", path);
	}
	json_decref(root);
	return rc;
}

/* Merges text (merges.txt or the OpenAI file): a header line, then "a b" lines. With
 * derive, each merge also defines token 512 + k (OpenAI's vocabulary order). */
static int load_merges(struct lvd_clip_tok *t, const char *path, int derive, struct lvd_error *err)
{
	char *data;
	size_t len;
	int rc = lvd_text_read_file(path, &data, &len, err);
	if (rc)
		return rc;
	if (derive) {
		/* ids 0..255: bytes ordered by their byte-level code point; 256..511 with </w> */
		int k = 0;
		for (int32_t cp = 0; cp < 256 + 68 && !rc; cp++) {
			int b = lvd_bytelevel_byte(cp);
			if (b < 0)
				continue;
			uint8_t byte = (uint8_t)b;
			rc = lvd_bpe_add_token(t->bpe, k, &byte, 1, 0, err);
			if (!rc)
				rc = lvd_bpe_add_token(t->bpe, 256 + k, &byte, 1, 1, err);
			k++;
		}
	}
	size_t p = 0, line = 0, k = 0, ll;
	const char *ln;
	while (!rc && k < CLIP_MERGES && lvd_text_next_line(data, len, &p, &ln, &ll)) {
		line++;
		if (line > 1 && ll > 0) {
			const char *a = ln, *sp = memchr(a, ' ', ll);
			if (!sp) {
				rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%zu: expected 'a b'", path, line);
				break;
			}
			const char *b = sp + 1;
			size_t al = (size_t)(sp - a), bl = (size_t)(ln + ll - b);
			int32_t l = lvd_bpe_find_str(t->bpe, a, al, "</w>"), r = lvd_bpe_find_str(t->bpe, b, bl, "</w>");
			if (l < 0 || r < 0) {
				rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%zu: '%.*s' is not a known token", path, line,
						   l < 0 ? (int)al : (int)bl, l < 0 ? a : b);
				break;
			}
			if (derive) {
				size_t n1, n2;
				int e1, e2;
				const uint8_t *s1 = lvd_bpe_token(t->bpe, l, &n1, &e1), *s2 = lvd_bpe_token(t->bpe, r, &n2, &e2);
				uint8_t tmp[512];
				if (e1 || n1 + n2 > sizeof tmp) {
					rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%zu: bad merge", path, line);
					break;
				}
				memcpy(tmp, s1, n1);
				memcpy(tmp + n1, s2, n2);
				if (lvd_bpe_find(t->bpe, tmp, n1 + n2, e2) < 0 &&
				    (rc = lvd_bpe_add_token(t->bpe, (int32_t)(512 + k), tmp, n1 + n2, e2, err))) {
					lvd_error_prefix(err, "%s:%zu: ", path, line);
					break;
				}
			}
			if ((rc = lvd_bpe_add_merge(t->bpe, l, r, k, err))) {
				lvd_error_prefix(err, "%s:%zu: ", path, line);
				break;
			}
			k++;
		}
	}
	if (!rc && k < CLIP_MERGES)
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: %zu merges, expected %d", path, k, CLIP_MERGES);
	free(data);
	return rc;
}

int lvd_clip_tok_load(struct lvd_clip_tok **out, const char *path, struct lvd_error *err)
{
	*out = NULL;
	struct lvd_clip_tok *t = calloc(1, sizeof *t);
	if (!t || !(t->bpe = lvd_bpe_new())) {
		free(t);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	char vocab[4096], merges[4096];
	vocab[0] = merges[0] = 0;
	int rc = 0;
	if (lvd_path_is_dir(path)) {
		char sub[4096];
		snprintf(sub, sizeof sub, "%s/tokenizer", path);
		const char *dir = lvd_path_is_dir(sub) ? sub : path;
		snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
		snprintf(merges, sizeof merges, "%s/merges.txt", dir);
		if (!lvd_path_is_file(merges)) {
			snprintf(merges, sizeof merges, "%s/bpe_simple_vocab_16e6.txt.gz", dir);
			vocab[0] = 0;
			if (!lvd_path_is_file(merges))
				rc = lvd_error_set(err, LVD_ERR_NOTFOUND,
						   "'%s' holds neither merges.txt nor bpe_simple_vocab_16e6.txt.gz", dir);
		} else if (!lvd_path_is_file(vocab)) {
			vocab[0] = 0;
		}
	} else if (ends_with(path, "vocab.json")) {
		snprintf(vocab, sizeof vocab, "%s", path);
		snprintf(merges, sizeof merges, "%.*smerges.txt", (int)(strlen(path) - strlen("vocab.json")), path);
	} else {
		snprintf(merges, sizeof merges, "%s", path);
		if (ends_with(path, "merges.txt")) {
			snprintf(vocab, sizeof vocab, "%.*svocab.json", (int)(strlen(path) - strlen("merges.txt")), path);
			if (!lvd_path_is_file(vocab))
				vocab[0] = 0;
		}
	}
	if (!rc && vocab[0])
		rc = load_vocab_json(t, vocab, err);
	if (!rc)
		rc = load_merges(t, merges, vocab[0] == 0, err);
	if (!rc && (rc = lvd_bpe_finish(t->bpe, 1, 0, err)))
		lvd_error_prefix(err, "%s: ", vocab[0] ? vocab : merges);
	if (!rc)
		rc = lvd_pretok_new(&t->pre, LVD_CLIP_PATTERN, err);
	if (rc) {
		lvd_clip_tok_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void lvd_clip_tok_free(struct lvd_clip_tok *t)
{
	if (!t)
		return;
	lvd_bpe_free(t->bpe);
	lvd_pretok_free(t->pre);
	lvd_bpe_buf_free(&t->buf);
	free(t);
}

size_t lvd_clip_token_str(const struct lvd_clip_tok *t, int32_t id, char *buf, size_t size)
{
	const char *sp = id == LVD_CLIP_BOS ? "<|startoftext|>" : id == LVD_CLIP_EOS ? "<|endoftext|>" : NULL;
	char tmp[2048];
	size_t n = 0;
	if (sp) {
		n = strlen(sp);
		memcpy(tmp, sp, n);
	} else {
		size_t l;
		int eow;
		const uint8_t *p = lvd_bpe_token(t->bpe, id, &l, &eow);
		if (!p)
			return 0;
		for (size_t i = 0; i < l && n + 8 < sizeof tmp; i++) {
			uint8_t u[4];
			size_t k = lvd_utf8_encode(lvd_bytelevel_cp(p[i]), u);
			memcpy(tmp + n, u, k);
			n += k;
		}
		if (eow) {
			memcpy(tmp + n, "</w>", 4);
			n += 4;
		}
	}
	if (size) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(buf, tmp, c);
		buf[c] = 0;
	}
	return n;
}

/* ---- encoding ------------------------------------------------------------------ */
struct enc {
	struct lvd_clip_tok *t;
	const char *s;
	const uint32_t *a, *b;
	struct lvd_tokens *out;
	int32_t word;
};

static int bpe_word(struct enc *c, size_t x, size_t y)
{
	struct lvd_bpe_buf *buf = &c->t->buf;
	buf->n = 0;
	if (lvd_bpe_encode(c->t->bpe, (const uint8_t *)c->s + x, y - x, buf))
		return LVD_ERR_NOMEM;
	size_t pos = x;
	for (size_t i = 0; i < buf->n; i++) {
		size_t e = pos + buf->len[i];
		if (lvd_tokens_push(c->out, buf->ids[i], c->a[pos], c->b[e - 1], c->word))
			return LVD_ERR_NOMEM;
		int eow = 0;
		size_t l;
		lvd_bpe_token(c->t->bpe, buf->ids[i], &l, &eow);
		c->word += eow;
		pos = e;
	}
	return 0;
}

static int piece(size_t x, size_t y, void *vctx)
{
	struct enc *c = vctx;
	const char *p = c->s + x;
	size_t n = y - x;
	if ((n == 15 && !memcmp(p, "<|startoftext|>", 15)) || (n == 13 && !memcmp(p, "<|endoftext|>", 13))) {
		/* a special name that was not extracted as a special token: HF's ByteLevel
		 * pre-tokenizer (GPT-2 regex) splits it into "<|", the name, "|>" */
		int rc = bpe_word(c, x, x + 2);
		if (!rc)
			rc = bpe_word(c, x + 2, y - 2);
		if (!rc)
			rc = bpe_word(c, y - 2, y);
		return rc;
	}
	return bpe_word(c, x, y);
}

/* next special token in the cleaned text at or after i: <|startoftext|> anywhere (HF
 * matches it after normalisation), <|endoftext|> only where the source bytes are
 * exactly that (HF matches it on the raw text). Returns its offset or n. */
static size_t next_special(const char *s, size_t n, size_t i, const uint32_t *a, const uint32_t *b,
			   const char *orig, int32_t *id, size_t *len)
{
	for (; i + 13 <= n; i++) {
		const char *q = memchr(s + i, '<', n - i);
		if (!q)
			return n;
		i = (size_t)(q - s);
		if (i + 15 <= n && !memcmp(q, "<|startoftext|>", 15)) {
			*id = LVD_CLIP_BOS;
			*len = 15;
			return i;
		}
		if (i + 13 <= n && !memcmp(q, "<|endoftext|>", 13) && b[i + 12] - a[i] == 13 &&
		    !memcmp(orig + a[i], "<|endoftext|>", 13)) {
			*id = LVD_CLIP_EOS;
			*len = 13;
			return i;
		}
	}
	return n;
}

int lvd_clip_encode(struct lvd_clip_tok *t, const char *text, size_t n, const struct lvd_clip_opts *opts,
		    struct lvd_tokens *out, struct lvd_error *err)
{
	char *s;
	size_t sn;
	uint32_t *a, *b;
	int rc = lvd_clip_clean(text, n, &s, &sn, &a, &b, err);
	if (rc)
		return rc;
	size_t first = out->n;
	if (lvd_tokens_push(out, LVD_CLIP_BOS, 0, 0, -1)) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto done;
	}
	struct enc c = {t, s, a, b, out, 0};
	size_t seg = 0;
	while (seg <= sn) {
		int32_t sid = 0;
		size_t slen = 0, at = next_special(s, sn, seg, a, b, text, &sid, &slen);
		c.s = s + seg;
		c.a = a + seg;
		c.b = b + seg;
		rc = lvd_pretok_split(t->pre, s + seg, at - seg, 0, piece, &c, err);
		if (rc == LVD_ERR_NOMEM)
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory encoding");
		if (rc)
			goto done;
		if (at >= sn)
			break;
		if (lvd_tokens_push(out, sid, a[at], b[at + slen - 1], c.word++)) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
			goto done;
		}
		seg = at + slen;
	}
	size_t max = opts ? opts->max_len : 0;
	if (max && max < 2) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "max_len %zu is below 2", max);
		goto done;
	}
	if (max && out->n - first + 1 > max)
		out->n = first + max - 1;
	if (lvd_tokens_push(out, LVD_CLIP_EOS, n, n, -1)) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto done;
	}
	if (max && opts->pad != LVD_CLIP_PAD_NONE)
		while (out->n - first < max)
			if (lvd_tokens_push(out, opts->pad == LVD_CLIP_PAD_EOS ? LVD_CLIP_EOS : 0, n, n, -1)) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
				goto done;
			}
done:
	free(s);
	free(a);
	free(b);
	return rc;
}
