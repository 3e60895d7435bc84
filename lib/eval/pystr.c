/* lib/eval/pystr.c — Python str semantics on UTF-8 (see pystr.h). */
#include "eval/pystr.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

size_t lvd_py_next(const char *str, size_t n, size_t i, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)str + i;
	size_t left = n - i;
	unsigned c = s[0];
	size_t len;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xE0) == 0xC0) {
		len = 2, v = c & 0x1F, min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		len = 3, v = c & 0x0F, min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		*cp = 0xFFFD;
		return 1;
	}
	if (left < len) {
		*cp = 0xFFFD;
		return 1;
	}
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xC0) != 0x80) {
			*cp = 0xFFFD;
			return 1;
		}
		v = (v << 6) | (s[k] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
		*cp = 0xFFFD;
		return 1;
	}
	*cp = v;
	return len;
}

size_t lvd_py_put(uint32_t cp, char *o)
{
	unsigned char *out = (unsigned char *)o;
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xC0 | (cp >> 6));
		out[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xE0 | (cp >> 12));
		out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (unsigned char)(0xF0 | (cp >> 18));
	out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

size_t lvd_py_len(const char *s, size_t n)
{
	size_t count = 0;
	uint32_t cp;
	for (size_t i = 0; i < n; i += lvd_py_next(s, n, i, &cp))
		count++;
	return count;
}

/* CPython Py_UNICODE_ISSPACE: bidi class WS, B or S, or category Zs. */
int lvd_py_isspace(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202F || c == 0x205F || c == 0x3000;
}

int lvd_py_isdigit(uint32_t c)
{
	if (c < 0x80)
		return c >= '0' && c <= '9';
	return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ND;
}

int lvd_py_has_cjk(const char *s, size_t n)
{
	uint32_t cp;
	for (size_t i = 0; i < n;) {
		i += lvd_py_next(s, n, i, &cp);
		if (cp >= 0x4E00 && cp <= 0x9FFF)
			return 1;
	}
	return 0;
}

/* Unicode "cased" and "case-ignorable" (Unicode 3.13, used by Python's final-sigma
 * rule), from utf8proc's categories; the Word_Break quote/dot members are listed. */
static int is_cased(uint32_t c)
{
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
	return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

static int is_case_ignorable(uint32_t c)
{
	switch (c) {
	case 0x27: case 0x2E: case 0x3A: case 0x5E: case 0x60: case 0xA8: case 0xAD: case 0xAF:
	case 0xB4: case 0xB7: case 0xB8: case 0x387: case 0x5F4: case 0x2018: case 0x2019:
	case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E:
	case 0xFF1A:
		return 1;
	}
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
	return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
	       k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

/* CPython handle_capital_sigma: a cased letter before (skipping case-ignorables) and
 * none after. cps[0..n), position i holds U+03A3. */
static int final_sigma(const uint32_t *cps, size_t n, size_t i)
{
	size_t j = i;
	while (j > 0 && is_case_ignorable(cps[j - 1]))
		j--;
	if (j == 0 || !is_cased(cps[j - 1]))
		return 0;
	j = i + 1;
	while (j < n && is_case_ignorable(cps[j]))
		j++;
	return j == n || !is_cased(cps[j]);
}

char *lvd_py_lower(const char *s, size_t n, size_t *out_n)
{
	/* worst case: every byte a code point whose lower form takes 4 bytes (+ U+0307) */
	uint32_t *cps = malloc((n + 1) * sizeof *cps);
	char *out = malloc(n * 3 + 8);
	if (!cps || !out) {
		free(cps);
		free(out);
		return NULL;
	}
	size_t m = 0, o = 0;
	for (size_t i = 0; i < n; i += lvd_py_next(s, n, i, &cps[m]), m++)
		;
	for (size_t k = 0; k < m; k++) {
		uint32_t c = cps[k];
		if (c < 0x80) {
			out[o++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
		} else if (c == 0x130) { /* SpecialCasing: U+0130 -> U+0069 U+0307 */
			out[o++] = 'i';
			o += lvd_py_put(0x307, out + o);
		} else if (c == 0x3A3) {
			o += lvd_py_put(final_sigma(cps, m, k) ? 0x3C2 : 0x3C3, out + o);
		} else {
			o += lvd_py_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), out + o);
		}
	}
	out[o] = 0;
	free(cps);
	if (out_n)
		*out_n = o;
	return out;
}

/* Code points whose full uppercase (SpecialCasing.txt, unconditional) is 2 or 3 code
 * points long; listed from Python 3.11 `len(chr(c).upper())`. */
static const uint32_t UPPER2[] = {
	0xDF, 0x149, 0x1F0, 0x587, 0x1E96, 0x1E97, 0x1E98, 0x1E99, 0x1E9A, 0x1F50, 0x1F80, 0x1F81,
	0x1F82, 0x1F83, 0x1F84, 0x1F85, 0x1F86, 0x1F87, 0x1F88, 0x1F89, 0x1F8A, 0x1F8B, 0x1F8C,
	0x1F8D, 0x1F8E, 0x1F8F, 0x1F90, 0x1F91, 0x1F92, 0x1F93, 0x1F94, 0x1F95, 0x1F96, 0x1F97,
	0x1F98, 0x1F99, 0x1F9A, 0x1F9B, 0x1F9C, 0x1F9D, 0x1F9E, 0x1F9F, 0x1FA0, 0x1FA1, 0x1FA2,
	0x1FA3, 0x1FA4, 0x1FA5, 0x1FA6, 0x1FA7, 0x1FA8, 0x1FA9, 0x1FAA, 0x1FAB, 0x1FAC, 0x1FAD,
	0x1FAE, 0x1FAF, 0x1FB2, 0x1FB3, 0x1FB4, 0x1FB6, 0x1FBC, 0x1FC2, 0x1FC3, 0x1FC4, 0x1FC6,
	0x1FCC, 0x1FD6, 0x1FE4, 0x1FE6, 0x1FF2, 0x1FF3, 0x1FF4, 0x1FF6, 0x1FFC, 0xFB00, 0xFB01,
	0xFB02, 0xFB05, 0xFB06, 0xFB13, 0xFB14, 0xFB15, 0xFB16, 0xFB17,
};
static const uint32_t UPPER3[] = {
	0x390, 0x3B0, 0x1F52, 0x1F54, 0x1F56, 0x1FB7, 0x1FC7, 0x1FD2, 0x1FD3, 0x1FD7, 0x1FE2,
	0x1FE3, 0x1FE7, 0x1FF7, 0xFB03, 0xFB04,
};

static int in_table(const uint32_t *t, size_t n, uint32_t c)
{
	for (size_t i = 0; i < n; i++)
		if (t[i] == c)
			return 1;
	return 0;
}

size_t lvd_py_upper_len(const char *s, size_t n)
{
	size_t len = 0;
	uint32_t c;
	for (size_t i = 0; i < n;) {
		i += lvd_py_next(s, n, i, &c);
		if (c < 0xDF)
			len += 1;
		else if (in_table(UPPER2, sizeof UPPER2 / sizeof *UPPER2, c))
			len += 2;
		else if (in_table(UPPER3, sizeof UPPER3 / sizeof *UPPER3, c))
			len += 3;
		else
			len += 1;
	}
	return len;
}

void lvd_py_strip(const char *s, size_t n, size_t *start, size_t *end)
{
	size_t a = 0, b = 0;
	uint32_t c;
	size_t i = 0;
	while (i < n) {
		size_t l = lvd_py_next(s, n, i, &c);
		if (!lvd_py_isspace(c))
			break;
		i += l;
	}
	a = i;
	b = a;
	while (i < n) { /* end = after the last non-space code point */
		size_t l = lvd_py_next(s, n, i, &c);
		i += l;
		if (!lvd_py_isspace(c))
			b = i;
	}
	*start = a;
	*end = b;
}

static int words_push(struct lvd_py_words *w, size_t *cap, char *p)
{
	if (w->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		char **nw = realloc(w->w, nc * sizeof *nw);
		if (!nw)
			return -1;
		w->w = nw;
		*cap = nc;
	}
	w->w[w->n++] = p;
	return 0;
}

int lvd_py_split(const char *s, size_t n, struct lvd_py_words *out)
{
	memset(out, 0, sizeof *out);
	size_t cap = 0;
	out->buf = malloc(n + 1);
	if (!out->buf)
		return -1;
	memcpy(out->buf, s, n);
	out->buf[n] = 0;
	size_t i = 0;
	uint32_t c;
	while (i < n) {
		size_t l = lvd_py_next(s, n, i, &c);
		if (lvd_py_isspace(c)) {
			i += l;
			continue;
		}
		size_t st = i;
		while (i < n) {
			l = lvd_py_next(s, n, i, &c);
			if (lvd_py_isspace(c))
				break;
			i += l;
		}
		if (words_push(out, &cap, out->buf + st)) {
			lvd_py_words_free(out);
			return -1;
		}
		if (i < n) {
			out->buf[i] = 0; /* the separator's first byte; i advances past all of it */
			i += l;
		}
	}
	return 0;
}

int lvd_py_split_on(const char *s, size_t n, char sep, struct lvd_py_words *out)
{
	memset(out, 0, sizeof *out);
	size_t cap = 0;
	out->buf = malloc(n + 1);
	if (!out->buf)
		return -1;
	memcpy(out->buf, s, n);
	out->buf[n] = 0;
	size_t st = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || out->buf[i] == sep) {
			out->buf[i] = 0;
			if (words_push(out, &cap, out->buf + st)) {
				lvd_py_words_free(out);
				return -1;
			}
			st = i + 1;
		}
	}
	return 0;
}

int lvd_py_words_has(const struct lvd_py_words *w, const char *word)
{
	return lvd_py_words_index(w, word) >= 0;
}

long lvd_py_words_index(const struct lvd_py_words *w, const char *word)
{
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->w[i], word))
			return (long)i;
	return -1;
}

void lvd_py_words_free(struct lvd_py_words *w)
{
	free(w->w);
	free(w->buf);
	memset(w, 0, sizeof *w);
}
