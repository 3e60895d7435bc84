/* Word segmentation, keys, stop words and SD↔VLM word matching (see match.h). */
#include "lavender/match.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "text/words.h"

/* The words of text (lib/text/words.h), punctuation runs left out. */
int lvd_match_segment(const char *text, size_t len, struct lvd_word_span **out, size_t *nout,
		      struct lvd_error *err)
{
	*out = NULL;
	*nout = 0;
	struct lvd_words ws;
	lvd_words_init(&ws);
	int rc = lvd_words_split(text, len, &ws, err);
	if (rc) {
		lvd_words_free(&ws);
		return rc;
	}
	struct lvd_word_span *w = lvd_alloc_array(ws.n ? ws.n : 1, sizeof *w);
	if (!w) {
		lvd_words_free(&ws);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory segmenting words");
	}
	size_t n = 0;
	for (size_t i = 0; i < ws.n; i++) {
		if (ws.w[i].kind == LVD_WORD_PUNCT)
			continue;
		w[n].beg = ws.w[i].start;
		w[n].end = ws.w[i].end;
		if (ws.w[i].norm_len + 1 <= sizeof w[n].key)
			memcpy(w[n].key, lvd_word_norm(&ws, i), (size_t)ws.w[i].norm_len + 1);
		else
			w[n].key[0] = 0;
		n++;
	}
	lvd_words_free(&ws);
	*out = w;
	*nout = n;
	return LVD_OK;
}

int lvd_match_key(const char *s, size_t len, char *key, size_t cap)
{
	struct lvd_word_span *w = NULL;
	size_t n = 0;
	int r = -1;
	if (lvd_match_segment(s, len, &w, &n, NULL) == LVD_OK && n == 1 && w[0].beg == 0 && w[0].end == len &&
	    w[0].key[0] && strlen(w[0].key) + 1 <= cap) {
		r = (int)strlen(w[0].key);
		memcpy(key, w[0].key, (size_t)r + 1);
	}
	free(w);
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int lvd_stopwords_parse(struct lvd_stopwords *sw, const char *text, size_t len, const char *name,
			struct lvd_error *err)
{
	memset(sw, 0, sizeof *sw);
	size_t cap = 0, line = 0, i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && text[e] != '\n')
			e++;
		line++;
		size_t a = i, b = e;
		for (size_t h = a; h < b; h++)
			if (text[h] == '#') {
				b = h;
				break;
			}
		while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r'))
			a++;
		while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r'))
			b--;
		i = e + 1;
		if (a == b)
			continue;
		char key[LVD_MATCH_MAX_KEY];
		if (lvd_match_key(text + a, b - a, key, sizeof key) < 0) {
			lvd_stopwords_free(sw);
			return lvd_error_set(err, LVD_ERR_FORMAT,
					     "%s:%zu: not a single word (valid UTF-8, at most %d bytes)", name, line,
					     LVD_MATCH_MAX_KEY - 1);
		}
		if (sw->n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nk = lvd_realloc_array(sw->keys, nc, sizeof *nk);
			if (!nk)
				goto nomem;
			sw->keys = nk;
			cap = nc;
		}
		if (!(sw->keys[sw->n] = lvd_strdup(key)))
			goto nomem;
		sw->n++;
	}
	if (sw->n)
		qsort(sw->keys, sw->n, sizeof *sw->keys, cmp_str);
	return LVD_OK;
nomem:
	lvd_stopwords_free(sw);
	return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", name);
}

int lvd_stopwords_has(const struct lvd_stopwords *sw, const char *key)
{
	if (!sw || !sw->n)
		return 0;
	return bsearch(&key, sw->keys, sw->n, sizeof *sw->keys, cmp_str) != NULL;
}

void lvd_stopwords_free(struct lvd_stopwords *sw)
{
	if (!sw)
		return;
	for (size_t i = 0; i < sw->n; i++)
		free(sw->keys[i]);
	free(sw->keys);
	memset(sw, 0, sizeof *sw);
}

void lvd_match_result_free(struct lvd_match_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n; i++) {
		free(res->w[i].sd_tok);
		free(res->w[i].pos);
		free(res->w[i].query);
	}
	free(res->w);
	memset(res, 0, sizeof *res);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* sorts and removes duplicates; returns the new count */
static uint32_t sort_unique(uint32_t *v, uint32_t n)
{
	if (n < 2)
		return n;
	qsort(v, n, sizeof *v, cmp_u32);
	uint32_t m = 1;
	for (uint32_t i = 1; i < n; i++)
		if (v[i] != v[m - 1])
			v[m++] = v[i];
	return m;
}

/* Appends x to a growable u32 array. */
static int push_u32(uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t x)
{
	if (*n == *cap) {
		uint32_t nc = *cap ? *cap * 2 : 4;
		uint32_t *nv = lvd_realloc_array(*v, nc, sizeof *nv);
		if (!nv)
			return -1;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = x;
	return 0;
}

struct sd_word {
	const char *key;
	uint32_t t0, t1;  /* CLIP tokens [t0, t1) overlapping the word */
};

int lvd_match(struct lvd_match_result *res, const struct lvd_match_vlm *vlm, const struct lvd_match_sd *sd,
	      const struct lvd_match_opts *opts, struct lvd_error *err)
{
	memset(res, 0, sizeof *res);
	struct lvd_word_span *sw = NULL, *vw = NULL;
	size_t nsw = 0, nvw = 0;
	struct sd_word *sdw = NULL;
	uint32_t *caps = NULL;
	int rc;
	if ((rc = lvd_match_segment(sd->text, sd->text_len, &sw, &nsw, err)) ||
	    (rc = lvd_match_segment(vlm->text, vlm->text_len, &vw, &nvw, err)))
		goto out;
	sdw = lvd_calloc_array(nsw ? nsw : 1, sizeof *sdw);
	if (!sdw)
		goto nomem;
	/* SD words with their CLIP tokens (spans are in increasing order) */
	size_t nsd = 0;
	uint32_t t = 0;
	for (size_t i = 0; i < nsw; i++) {
		if (!sw[i].key[0])
			continue;
		while (t < sd->T && sd->spans[2 * t + 1] <= sw[i].beg)
			t++;
		uint32_t t1 = t, last_end = 0;
		while (t1 < sd->T && sd->spans[2 * t1] < sw[i].end) {
			if (sd->spans[2 * t1 + 1] > sd->spans[2 * t1])
				last_end = sd->spans[2 * t1 + 1];
			t1++;
		}
		if (t1 == t || last_end < sw[i].end)
			continue; /* not (fully) tokenized: truncated by CLIP */
		sdw[nsd].key = sw[i].key;
		sdw[nsd].t0 = t;
		sdw[nsd].t1 = t1;
		nsd++;
	}
	res->n_sd_words = nsd;
	/* VLM words: tokens overlapping each word (token spans increase with position) */
	uint32_t tv = 0;
	caps = lvd_calloc_array(3 * (nvw ? nvw : 1), sizeof *caps);
	res->w = lvd_calloc_array(nvw ? nvw : 1, sizeof *res->w);
	if (!caps || !res->w)
		goto nomem;
	for (size_t i = 0; i < nvw; i++) {
		while (tv < vlm->T && (vlm->tok_end[tv] <= vw[i].beg || vlm->tok_end[tv] == vlm->tok_beg[tv]))
			tv++;
		uint32_t p0 = tv, p1 = tv;
		int in_region = 1;
		while (p1 < vlm->T && vlm->tok_beg[p1] < vw[i].end) {
			if (vlm->tok_end[p1] > vlm->tok_beg[p1] && vlm->region && !vlm->region[p1])
				in_region = 0;
			p1++;
		}
		if (p1 == p0)
			continue;
		if (!opts->match_all && !in_region)
			continue;
		res->n_region_words++;
		if (!vw[i].key[0] || lvd_stopwords_has(opts->stop, vw[i].key))
			continue;
		res->n_content++;
		/* SD occurrences of the key */
		int found = 0;
		for (size_t k = 0; k < nsd; k++)
			found |= strcmp(sdw[k].key, vw[i].key) == 0;
		if (!found)
			continue;
		/* queries of this occurrence */
		uint32_t nq0 = 0;
		for (uint32_t p = p0; p < p1; p++) {
			if (vlm->tok_end[p] == vlm->tok_beg[p])
				continue;
			long q = opts->query_at == LVD_QUERY_PREDICT ? (long)p - 1 : (long)p;
			if (q >= (long)opts->min_query)
				nq0++;
		}
		if (!nq0)
			continue;
		res->n_content_matched++;
		size_t m;
		for (m = 0; m < res->n; m++)
			if (strcmp(res->w[m].key, vw[i].key) == 0)
				break;
		struct lvd_match_word *mw = &res->w[m];
		if (m == res->n) {
			res->n++;
			memcpy(mw->key, vw[i].key, sizeof mw->key);
			uint32_t capsd = 0;
			for (size_t k = 0; k < nsd; k++)
				if (strcmp(sdw[k].key, mw->key) == 0)
					for (uint32_t c = sdw[k].t0; c < sdw[k].t1; c++)
						if (push_u32(&mw->sd_tok, &mw->n_sd, &capsd, c))
							goto nomem;
			mw->n_sd = sort_unique(mw->sd_tok, mw->n_sd);
		}
		for (uint32_t p = p0; p < p1; p++) {
			if (vlm->tok_end[p] == vlm->tok_beg[p])
				continue;
			if (push_u32(&mw->pos, &mw->n_pos, &caps[3 * m], p))
				goto nomem;
			long q = opts->query_at == LVD_QUERY_PREDICT ? (long)p - 1 : (long)p;
			if (q >= (long)opts->min_query && push_u32(&mw->query, &mw->n_query, &caps[3 * m + 1], (uint32_t)q))
				goto nomem;
		}
	}
	for (size_t m = 0; m < res->n; m++) {
		res->w[m].n_pos = sort_unique(res->w[m].pos, res->w[m].n_pos);
		res->w[m].n_query = sort_unique(res->w[m].query, res->w[m].n_query);
	}
	rc = LVD_OK;
	goto out;
nomem:
	rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory matching words");
	lvd_match_result_free(res);
out:
	free(sw);
	free(vw);
	free(sdw);
	free(caps);
	return rc;
}
