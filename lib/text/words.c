#include "text/words.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/alloc.h"
#include "text/utf8.h"

void lvd_words_init(struct lvd_words *w)
{
	memset(w, 0, sizeof *w);
}

void lvd_words_free(struct lvd_words *w)
{
	free(w->w);
	free(w->norm);
	memset(w, 0, sizeof *w);
}

enum cls { C_SPACE, C_LETTER, C_DIGIT, C_MARK, C_APOS, C_OTHER };

static enum cls classify(int32_t cp)
{
	if (lvd_unicode_is_space(cp))
		return C_SPACE;
	if (cp == '\'' || cp == 0x2019 || cp == 0x02BC)
		return C_APOS;
	switch (utf8proc_category(cp)) {
	case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
		return C_LETTER;
	case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
		return C_DIGIT;
	case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
		return C_MARK;
	default:
		return C_OTHER;
	}
}

static int norm_append(struct lvd_words *w, const char *s, size_t n, struct lvd_word *wd)
{
	utf8proc_uint8_t *nfc = NULL;
	utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfc,
					  UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (r < 0)
		return -1;
	size_t need = (size_t)r * 3 + 1; /* lowercase grows a character by at most 3x bytes */
	if (w->norm_len + need > w->norm_cap) {
		size_t nc = w->norm_cap ? w->norm_cap : 256;
		while (nc < w->norm_len + need)
			nc *= 2;
		char *p = realloc(w->norm, nc);
		if (!p) {
			free(nfc);
			return -1;
		}
		w->norm = p;
		w->norm_cap = nc;
	}
	wd->norm_off = (uint32_t)w->norm_len;
	size_t i = 0, o = w->norm_len;
	while (i < (size_t)r) {
		int32_t cp;
		size_t l = lvd_utf8_decode(nfc + i, (size_t)r - i, &cp);
		if (!l)
			break;
		i += l;
		if (cp == 0x130) {
			memcpy(w->norm + o, "i\xcc\x87", 3);
			o += 3;
		} else {
			o += lvd_utf8_encode(utf8proc_tolower(cp), (uint8_t *)w->norm + o);
		}
	}
	free(nfc);
	w->norm[o] = 0;
	wd->norm_len = (uint32_t)(o - w->norm_len);
	w->norm_len = o + 1;
	return 0;
}

static int push_word(struct lvd_words *w, const char *text, size_t a, size_t b, int kind)
{
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 32;
		struct lvd_word *p = lvd_realloc_array(w->w, nc, sizeof *p);
		if (!p)
			return -1;
		w->w = p;
		w->cap = nc;
	}
	struct lvd_word *wd = &w->w[w->n];
	wd->start = (uint32_t)a;
	wd->end = (uint32_t)b;
	wd->kind = (uint8_t)kind;
	if (norm_append(w, text + a, b - a, wd))
		return -1;
	w->n++;
	return 0;
}

int lvd_words_split(const char *text, size_t n, struct lvd_words *out, struct lvd_error *err)
{
	size_t bad;
	out->n = 0;
	out->norm_len = 0;
	if (!lvd_utf8_valid(text, n, &bad))
		return lvd_error_set(err, LVD_ERR_INVALID, "invalid UTF-8 at byte %zu", bad);
	if (n >= UINT32_MAX)
		return lvd_error_set(err, LVD_ERR_INVALID, "text longer than 4 GiB");
	const uint8_t *s = (const uint8_t *)text;
	size_t i = 0;
	while (i < n) {
		int32_t cp;
		size_t l = lvd_utf8_decode(s + i, n - i, &cp);
		enum cls c = classify(cp);
		if (c == C_SPACE) {
			i += l;
			continue;
		}
		size_t a = i;
		int has_letter = 0;
		if (c == C_LETTER || c == C_DIGIT) {
			/* word: letters/digits/marks, apostrophes between word characters */
			while (i < n) {
				l = lvd_utf8_decode(s + i, n - i, &cp);
				c = classify(cp);
				if (c == C_LETTER || c == C_DIGIT || c == C_MARK) {
					has_letter |= c == C_LETTER;
					i += l;
				} else if (c == C_APOS && i + l < n) {
					int32_t nx;
					size_t l2 = lvd_utf8_decode(s + i + l, n - i - l, &nx);
					enum cls c2 = l2 ? classify(nx) : C_OTHER;
					if (c2 != C_LETTER && c2 != C_DIGIT)
						break;
					i += l;
				} else {
					break;
				}
			}
			if (push_word(out, text, a, i, has_letter ? LVD_WORD_ALPHA : LVD_WORD_NUMBER))
				goto nomem;
		} else {
			/* punctuation/symbol run: anything but space and word starts */
			while (i < n) {
				l = lvd_utf8_decode(s + i, n - i, &cp);
				c = classify(cp);
				if (c == C_SPACE || c == C_LETTER || c == C_DIGIT)
					break;
				i += l;
			}
			if (push_word(out, text, a, i, LVD_WORD_PUNCT))
				goto nomem;
		}
	}
	return 0;
nomem:
	return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory splitting words");
}

int32_t lvd_words_find(const struct lvd_words *w, size_t start, size_t end)
{
	if (end <= start)
		return -1;
	/* binary search: first word whose end > start */
	size_t lo = 0, hi = w->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (w->w[mid].end <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < w->n && w->w[lo].start < end)
		return (int32_t)lo;
	return -1;
}

void lvd_alignment_init(struct lvd_alignment *a)
{
	memset(a, 0, sizeof *a);
	lvd_words_init(&a->words);
}

void lvd_alignment_free(struct lvd_alignment *a)
{
	lvd_words_free(&a->words);
	free(a->clip_first);
	free(a->clip_count);
	free(a->vlm_first);
	free(a->vlm_count);
	free(a->pos);
	memset(a, 0, sizeof *a);
}

static int collect(struct lvd_alignment *a, const struct lvd_tokens *t, uint32_t *first, uint32_t *count,
		   size_t *cap)
{
	for (size_t w = 0; w < a->words.n; w++) {
		first[w] = (uint32_t)a->npos;
		count[w] = 0;
		if (!t)
			continue;
		uint32_t ws = a->words.w[w].start, we = a->words.w[w].end;
		for (size_t k = 0; k < t->n; k++) {
			if (t->start[k] >= t->end[k] || !(t->start[k] < we && ws < t->end[k]))
				continue;
			if (a->npos == *cap) {
				size_t nc = *cap ? *cap * 2 : 64;
				int32_t *p = lvd_realloc_array(a->pos, nc, sizeof *p);
				if (!p)
					return -1;
				a->pos = p;
				*cap = nc;
			}
			a->pos[a->npos++] = (int32_t)k;
			count[w]++;
		}
	}
	return 0;
}

int lvd_align_words(const char *text, size_t n, const struct lvd_tokens *clip, const struct lvd_tokens *vlm,
		    struct lvd_alignment *out, struct lvd_error *err)
{
	lvd_alignment_free(out);
	lvd_alignment_init(out);
	int rc = lvd_words_split(text, n, &out->words, err);
	if (rc)
		return rc;
	size_t nw = out->words.n ? out->words.n : 1, cap = 0;
	out->clip_first = lvd_alloc_array(nw, sizeof(uint32_t));
	out->clip_count = lvd_alloc_array(nw, sizeof(uint32_t));
	out->vlm_first = lvd_alloc_array(nw, sizeof(uint32_t));
	out->vlm_count = lvd_alloc_array(nw, sizeof(uint32_t));
	if (!out->clip_first || !out->clip_count || !out->vlm_first || !out->vlm_count ||
	    collect(out, clip, out->clip_first, out->clip_count, &cap) ||
	    collect(out, vlm, out->vlm_first, out->vlm_count, &cap)) {
		lvd_alignment_free(out);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory aligning words");
	}
	return 0;
}
