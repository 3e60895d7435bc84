/* lib/lavender/official_maps.c — the official Lavender per-word map layout (see
 * official_maps.h). */
#include "lavender/official_maps.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "text/clip_tok.h"
#include "text/utf8.h"

/* ---- names and keys ------------------------------------------------------------------- */

static int map_ext(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

int lvd_official_parse_name(const char *name, char *key, size_t cap)
{
	static const char pre[] = "attention_";
	if (strncmp(name, pre, sizeof pre - 1) || !map_ext(name))
		return 0;
	const char *k = name + sizeof pre - 1;
	size_t n = strcspn(k, "_.");
	if (n + 1 > cap)
		return -1;
	memcpy(key, k, n);
	key[n] = 0;
	return 1;
}

int lvd_official_clean_key(const char *raw, char *out, size_t cap, struct lvd_error *err)
{
	char *c = NULL;
	size_t n = 0;
	int rc = lvd_clip_clean(raw, strlen(raw), &c, &n, NULL, NULL, err);
	if (rc)
		return rc;
	if (n + 1 > cap) {
		free(c);
		return lvd_error_set(err, LVD_ERR_INVALID, "key of %zu bytes (at most %zu)", n, cap - 1);
	}
	memcpy(out, c, n + 1);
	free(c);
	return 0;
}

int lvd_official_piece_key(const char *vocab_str, char *out, size_t cap)
{
	size_t n = strlen(vocab_str);
	if (n >= 4 && !strcmp(vocab_str + n - 4, "</w>"))
		n -= 4;
	uint8_t *b = malloc(n + 1);
	if (!b)
		return -1;
	size_t m = lvd_bytelevel_decode(vocab_str, n, b);
	if (m == (size_t)-1 || m + 1 > cap) {
		free(b);
		return -1;
	}
	memcpy(out, b, m);
	out[m] = 0;
	free(b);
	return (int)m;
}

static int ignored_key(const char *k)
{
	return !k[0] || !strcmp(k, "<|startoftext|>") || !strcmp(k, "<|endoftext|>");
}

/* ---- reading -------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of dir's entries (without "." and ".."); *names owned. */
static int list_dir(const char *dir, char ***names, size_t *n, struct lvd_error *err)
{
	*names = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return lvd_error_errno(err, errno == ENOENT ? LVD_ERR_NOTFOUND : LVD_ERR_IO, "cannot open '%s'", dir);
	size_t cap = 0;
	char **v = NULL;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (*n == cap) {
			size_t nc = cap ? 2 * cap : 16;
			char **q = lvd_realloc_array(v, nc, sizeof *v);
			if (!q) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "listing '%s'", dir);
				break;
			}
			v = q;
			cap = nc;
		}
		if (!(v[*n] = lvd_strdup(e->d_name))) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "listing '%s'", dir);
			break;
		}
		(*n)++;
	}
	closedir(d);
	if (rc) {
		for (size_t i = 0; i < *n; i++)
			free(v[i]);
		free(v);
		*n = 0;
		return rc;
	}
	if (*n)
		qsort(v, *n, sizeof *v, cmp_str);
	*names = v;
	return 0;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char *join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", a, b);
	return p;
}

/* Decodes one map file into grey pixels (PIL convert("L")). */
static int load_grey(const char *path, uint8_t **px, int *w, int *h, struct lvd_error *err)
{
	struct lvd_image im = {0};
	int rc = lvd_image_load(&im, path, LVD_ALPHA_DROP, err);
	if (rc)
		return rc;
	size_t n = (size_t)im.w * (size_t)im.h;
	uint8_t *g = malloc(n);
	if (!g) {
		lvd_image_free(&im);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: pixels", path);
	}
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = im.px + 3 * i;
		g[i] = (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
	}
	*px = g;
	*w = im.w;
	*h = im.h;
	lvd_image_free(&im);
	return 0;
}

void lvd_official_set_free(struct lvd_official_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		free(set->maps[i].path);
		free(set->maps[i].px);
	}
	free(set->maps);
	free(set->replaced_path);
	free(set->replaced_by);
	memset(set, 0, sizeof *set);
}

/* Reads one file into the set (or counts it as ignored / replacing). */
static int add_file(struct lvd_official_set *set, size_t *cap, char *path, const char *raw, struct lvd_error *err)
{
	char key[LVD_OFFICIAL_MAX_KEY];
	struct lvd_error e2 = {0};
	if (lvd_official_clean_key(raw, key, sizeof key, &e2)) {
		int rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: bad word key: %s", path, e2.msg);
		free(path);
		return rc;
	}
	set->files++;
	if (ignored_key(key)) {
		set->ignored++;
		free(path);
		return 0;
	}
	uint8_t *px = NULL;
	int w = 0, h = 0, rc;
	if ((rc = load_grey(path, &px, &w, &h, err))) {
		free(path);
		return rc;
	}
	if (set->w && (w != set->w || h != set->h)) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: map is %dx%d, the maps before it are %dx%d", path, w, h,
				   set->w, set->h);
		free(path);
		free(px);
		return rc;
	}
	set->w = w;
	set->h = h;
	for (size_t i = 0; i < set->n; i++) {
		struct lvd_official_map *m = &set->maps[i];
		if (strcmp(m->key, key))
			continue;
		set->replaced++;
		if (!set->replaced_path) {
			set->replaced_path = m->path;
			m->path = NULL;
			set->replaced_by = lvd_strdup(path);
		}
		free(m->path);
		free(m->px);
		m->path = path;
		m->px = px;
		return 0;
	}
	if (set->n == *cap) {
		size_t nc = *cap ? 2 * *cap : 16;
		struct lvd_official_map *q = lvd_realloc_array(set->maps, nc, sizeof *q);
		if (!q) {
			free(path);
			free(px);
			return lvd_error_set(err, LVD_ERR_NOMEM, "map list");
		}
		set->maps = q;
		*cap = nc;
	}
	struct lvd_official_map *m = &set->maps[set->n++];
	memcpy(m->key, key, sizeof key);
	m->path = path;
	m->px = px;
	return 0;
}

int lvd_official_read(struct lvd_official_set *set, const char *root, const char *image_name,
		      struct lvd_error *err)
{
	memset(set, 0, sizeof *set);
	if (!image_name[0] || strchr(image_name, '/') || !strcmp(image_name, ".") || !strcmp(image_name, ".."))
		return lvd_error_set(err, LVD_ERR_INVALID, "bad image file name '%s' (a folder name of the layout)",
				     image_name);
	char *img_dir = join(root, image_name), *top = img_dir ? join(img_dir, LVD_OFFICIAL_DIR) : NULL;
	char **subs = NULL;
	size_t nsub = 0, cap = 0;
	int rc = 0;
	if (!top) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "paths");
		goto out;
	}
	if (!lvd_path_is_dir(top)) {
		const char *what = lvd_path_is_dir(img_dir) ? top : img_dir;
		rc = lvd_error_set(err, LVD_ERR_NOTFOUND, "no official maps for image '%s': '%s' is not a folder",
				   image_name, what);
		goto out;
	}
	if ((rc = list_dir(top, &subs, &nsub, err)))
		goto out;
	for (size_t s = 0; s < nsub && !rc; s++) {
		char *sub = join(top, subs[s]);
		if (!sub) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "paths");
			break;
		}
		if (!lvd_path_is_dir(sub)) {
			free(sub);
			continue;
		}
		char **files = NULL;
		size_t nf = 0;
		if ((rc = list_dir(sub, &files, &nf, err))) {
			free(sub);
			break;
		}
		for (size_t f = 0; f < nf && !rc; f++) {
			char raw[LVD_OFFICIAL_MAX_KEY];
			int r = lvd_official_parse_name(files[f], raw, sizeof raw);
			if (!r)
				continue;
			char *path = join(sub, files[f]);
			if (!path)
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "paths");
			else if (r < 0) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: word key longer than %d bytes", path,
						   LVD_OFFICIAL_MAX_KEY - 1);
				free(path);
			} else if (!lvd_path_is_file(path))
				free(path);
			else
				rc = add_file(set, &cap, path, raw, err);
		}
		free_names(files, nf);
		free(sub);
	}
	if (!rc && !set->files)
		rc = lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: no attention_<word>.jpg/.png map files", top);
out:
	free_names(subs, nsub);
	free(img_dir);
	free(top);
	if (rc)
		lvd_official_set_free(set);
	return rc;
}

/* ---- assigning maps to tokens --------------------------------------------------------- */

static long find_key(const struct lvd_official_set *set, const char *key)
{
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->maps[i].key, key))
			return (long)i;
	return -1;
}

int lvd_official_assign(int32_t *tok_map, struct lvd_official_assign_stats *st,
			const struct lvd_attnmap_text *tok, const struct lvd_official_set *set,
			const char *const *cut_keys, size_t n_cut, int skip_unknown, struct lvd_error *err)
{
	memset(st, 0, sizeof *st);
	int T = tok->T, rc = 0;
	char(*piece)[LVD_OFFICIAL_MAX_KEY] = lvd_calloc_array((size_t)(T ? T : 1), sizeof *piece);
	char(*word)[LVD_OFFICIAL_MAX_KEY] = lvd_calloc_array(tok->n_words ? tok->n_words : 1, sizeof *word);
	uint8_t *used = calloc(set->n ? set->n : 1, 1), *known = calloc(set->n ? set->n : 1, 1);
	if (!piece || !word || !used || !known) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "word keys");
		goto out;
	}
	/* piece keys, and word keys as the concatenation of their pieces */
	for (int t = 0; t < T; t++) {
		tok_map[t] = -1;
		if (lvd_official_piece_key(tok->token_strs[t], piece[t], sizeof piece[t]) < 0)
			piece[t][0] = 0;
		int32_t w = tok->word_idx[t];
		if (w >= 0 && (uint32_t)w < tok->n_words) {
			size_t a = strlen(word[w]), b = strlen(piece[t]);
			if (a + b + 1 <= sizeof word[w])
				memcpy(word[w] + a, piece[t], b + 1);
		}
		long m = find_key(set, piece[t]);
		if (m >= 0)
			known[m] = 1;
	}
	for (uint32_t w = 0; w < tok->n_words; w++) {
		long m = find_key(set, word[w]);
		int nt = 0, have = 0;
		for (int t = 0; t < T; t++)
			if (tok->word_idx[t] == (int32_t)w) {
				nt++;
				have += find_key(set, piece[t]) >= 0;
			}
		if (!nt)
			continue;
		if (m >= 0) {
			known[m] = used[m] = 1;
			for (int t = 0; t < T; t++)
				if (tok->word_idx[t] == (int32_t)w)
					tok_map[t] = (int32_t)m;
			st->words++;
		} else if (have == nt) {
			for (int t = 0; t < T; t++)
				if (tok->word_idx[t] == (int32_t)w) {
					long p = find_key(set, piece[t]);
					used[p] = 1;
					tok_map[t] = (int32_t)p;
				}
			st->words++;
			st->piecewise++;
		} else if (have) {
			st->partial++;
			for (int t = 0; t < T; t++) {
				long p = tok->word_idx[t] == (int32_t)w ? find_key(set, piece[t]) : -1;
				if (p >= 0 && !used[p])
					used[p] = 2;   /* a piece of a word without all its pieces */
			}
		}
	}
	int any = 0;
	for (size_t i = 0; i < set->n; i++) {
		any |= used[i] == 1;
		if (used[i])
			continue;
		if (known[i]) {
			st->unused++;
			continue;
		}
		int cut = 0;
		for (size_t c = 0; c < n_cut && !cut; c++)
			cut = !strcmp(cut_keys[c], set->maps[i].key);
		if (cut) {
			st->cut++;
		} else if (skip_unknown) {
			st->unknown++;
		} else {
			rc = lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: word '%s' is not in the SD text", set->maps[i].path,
					   set->maps[i].key);
			goto out;
		}
	}
	if (!any)
		rc = lvd_error_set(err, LVD_ERR_NOTFOUND, "none of the %zu official map(s) names a word of the SD text",
				   set->n);
out:
	free(piece);
	free(word);
	free(used);
	free(known);
	return rc;
}

int lvd_official_encode(uint8_t **out, size_t *out_len, const struct lvd_attnmap_sample *s,
			const struct lvd_official_set *set, const int32_t *tok_map, int img_w, int img_h,
			struct lvd_error *err)
{
	const struct lvd_attnmap_text *tok = s->tok;
	*out = NULL;
	*out_len = 0;
	uint32_t T = 0;
	for (int t = 0; t < tok->T; t++)
		T += tok_map[t] >= 0;
	if (!T || !set->w || !set->h)
		return lvd_error_set(err, LVD_ERR_INVALID, "record '%s': no token has a map", s->id);
	size_t plane = (size_t)set->w * (size_t)set->h;
	int32_t *ids = lvd_alloc_array(T, sizeof *ids), *widx = lvd_alloc_array(T, sizeof *widx);
	int32_t *wmap = lvd_alloc_array(tok->n_words ? tok->n_words : 1, sizeof *wmap);
	char **strs = lvd_alloc_array(T, sizeof *strs), **words = lvd_alloc_array(tok->n_words ? tok->n_words : 1,
										  sizeof *words);
	uint32_t *spans = lvd_alloc_array(T, 2 * sizeof *spans);
	struct lvd_attnmap_stats *stats = lvd_alloc_array(T, sizeof *stats);
	uint16_t *h16 = lvd_alloc_array(T, plane * sizeof *h16);
	float *f = lvd_alloc_array(plane, sizeof *f);
	int rc = 0;
	if (!ids || !widx || !wmap || !strs || !words || !spans || !stats || !h16 || !f) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "record '%s'", s->id);
		goto out;
	}
	uint32_t nw = 0, k = 0;
	for (uint32_t w = 0; w < tok->n_words; w++)
		wmap[w] = -1;
	for (int t = 0; t < tok->T; t++) {
		if (tok_map[t] < 0)
			continue;
		int32_t w = tok->word_idx[t];
		if (w >= 0 && wmap[w] < 0) {
			wmap[w] = (int32_t)nw;
			words[nw++] = tok->words[w];
		}
		ids[k] = tok->ids[1 + t];
		strs[k] = tok->token_strs[t];
		spans[2 * k] = tok->spans[2 * t];
		spans[2 * k + 1] = tok->spans[2 * t + 1];
		widx[k] = w >= 0 ? wmap[w] : -1;
		const uint8_t *px = set->maps[tok_map[t]].px;
		for (size_t i = 0; i < plane; i++) {
			f[i] = (float)px[i] / 255.0f;
			h16[k * plane + i] = lvd_f32_to_f16(f[i]);
		}
		lvd_attnmap_stats(&stats[k], f, plane);
		k++;
	}
	struct lvd_mapsrec r = {0};
	r.id = (char *)s->id;
	r.index = s->index;
	r.text = (char *)s->text;
	r.truncated = tok->truncated;
	r.T = T;
	r.tokens = ids;
	r.token_strs = strs;
	r.spans = spans;
	r.word_idx = widx;
	r.n_words = nw;
	r.words = words;
	r.img_w = r.sd_w = img_w;
	r.img_h = r.sd_h = img_h;
	r.image_file = (char *)s->image;
	r.grid_w = set->w;
	r.grid_h = set->h;
	r.resolution = img_w > img_h ? img_w : img_h;
	r.draws = 1;
	r.stats = stats;
	r.maps = h16;
	rc = lvd_mapsrec_encode(&r, out, out_len, err);
out:
	free(ids);
	free(widx);
	free(wmap);
	free(strs);
	free(words);
	free(spans);
	free(stats);
	free(h16);
	free(f);
	return rc;
}

/* ---- writing -------------------------------------------------------------------------- */

void lvd_official_words_free(struct lvd_official_word *w, size_t n)
{
	if (!w)
		return;
	for (size_t i = 0; i < n; i++)
		free(w[i].map);
	free(w);
}

static int exportable(const char *k)
{
	return k[0] && strlen(k) <= 200 && !strpbrk(k, "_./");
}

int lvd_official_words(struct lvd_official_word **out, size_t *n, uint32_t *skipped,
		       const struct lvd_mapsrec *r, struct lvd_error *err)
{
	*out = NULL;
	*n = 0;
	*skipped = 0;
	size_t plane = (size_t)r->grid_w * (size_t)r->grid_h;
	uint32_t NW = r->n_words;
	char(*key)[LVD_OFFICIAL_MAX_KEY] = lvd_calloc_array(NW ? NW : 1, sizeof *key);
	uint32_t *cnt = lvd_calloc_array(NW ? NW : 1, sizeof *cnt);
	struct lvd_official_word *v = lvd_calloc_array(NW ? NW : 1, sizeof *v);
	uint32_t *ntok = lvd_calloc_array(NW ? NW : 1, sizeof *ntok);
	int rc = 0;
	size_t nv = 0;
	if (!key || !cnt || !v || !ntok) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "words of '%s'", r->id);
		goto out;
	}
	for (uint32_t t = 0; t < r->T; t++) {
		int32_t w = r->word_idx[t];
		if (w < 0 || (uint32_t)w >= NW)
			continue;
		char p[LVD_OFFICIAL_MAX_KEY];
		size_t a = strlen(key[w]);
		int b = lvd_official_piece_key(r->token_strs[t], p, sizeof p);
		if (cnt[w] == UINT32_MAX)
			continue;   /* already unusable */
		if (b < 0 || a + (size_t)b + 1 > sizeof key[w]) {
			cnt[w] = UINT32_MAX;
			continue;
		}
		memcpy(key[w] + a, p, (size_t)b + 1);
		cnt[w]++;
	}
	for (uint32_t w = 0; w < NW; w++) {
		if (!cnt[w])
			continue;   /* a word without tokens: nothing to write */
		if (cnt[w] == UINT32_MAX || !exportable(key[w])) {
			(*skipped)++;
			continue;
		}
		size_t j;
		for (j = 0; j < nv; j++)
			if (!strcmp(v[j].key, key[w]))
				break;
		if (j == nv) {
			memcpy(v[nv].key, key[w], sizeof key[w]);
			if (!(v[nv].map = lvd_calloc_array(plane, sizeof(float)))) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "maps of '%s'", r->id);
				goto out;
			}
			nv++;
		}
		for (uint32_t t = 0; t < r->T; t++)
			if (r->word_idx[t] == (int32_t)w) {
				const uint16_t *m = r->maps + (size_t)t * plane;
				for (size_t i = 0; i < plane; i++)
					v[j].map[i] += lvd_f16_to_f32(m[i]);
				ntok[j]++;
			}
	}
	for (size_t j = 0; j < nv; j++)
		for (size_t i = 0; i < plane; i++)
			v[j].map[i] /= (float)ntok[j];
out:
	free(key);
	free(cnt);
	free(ntok);
	if (rc) {
		lvd_official_words_free(v, nv);
		return rc;
	}
	*out = v;
	*n = nv;
	return 0;
}

void lvd_official_quantize(uint8_t *dst, const float *src, size_t n, enum lvd_official_norm norm)
{
	float scale = 255.0f;
	if (norm == LVD_OFFICIAL_NORM_MAX) {
		float mx = 0;
		for (size_t i = 0; i < n; i++)
			if (isfinite(src[i]) && src[i] > mx)
				mx = src[i];
		scale = mx > 0 ? 255.0f / mx : 0.0f;
	}
	for (size_t i = 0; i < n; i++) {
		float v = isfinite(src[i]) && src[i] > 0 ? src[i] * scale : 0.0f;
		v = v > 255.0f ? 255.0f : v;
		dst[i] = (uint8_t)lrintf(floorf(v + 0.5f));
	}
}

static int encode_jpeg(const uint8_t *px, int w, int h, uint8_t **out, size_t *len, const char *path,
		       struct lvd_error *err)
{
	tjhandle tj = tjInitCompress();
	if (!tj)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: JPEG encoder", path);
	unsigned char *buf = NULL;
	unsigned long n = 0;
	int rc = 0;
	if (tjCompress2(tj, px, w, 0, h, TJPF_GRAY, &buf, &n, TJSAMP_GRAY, 100, TJFLAG_ACCURATEDCT))
		rc = lvd_error_set(err, LVD_ERR_IO, "%s: JPEG encoding failed: %s", path, tjGetErrorStr2(tj));
	else if (!(*out = malloc(n)))
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: JPEG bytes", path);
	else {
		memcpy(*out, buf, n);
		*len = n;
	}
	tjFree(buf);
	tjDestroy(tj);
	return rc;
}

int lvd_official_write(const char *root, const char *image_name, const char *key, const uint8_t *px, int w,
		       int h, enum lvd_official_format fmt, struct lvd_error *err)
{
	if (!image_name[0] || strchr(image_name, '/') || !strcmp(image_name, ".") || !strcmp(image_name, ".."))
		return lvd_error_set(err, LVD_ERR_INVALID, "bad image file name '%s'", image_name);
	if (!exportable(key))
		return lvd_error_set(err, LVD_ERR_INVALID, "word '%s' cannot be a map file name", key);
	size_t sl = strlen(image_name);
	const char *dot = strrchr(image_name, '.');
	if (dot && dot != image_name)
		sl = (size_t)(dot - image_name);
	size_t cap = strlen(root) + 2 * strlen(image_name) + strlen(key) + 64;
	char *dir = malloc(cap), *path = malloc(cap);
	uint8_t *bytes = NULL;
	size_t len = 0;
	int rc = 0;
	if (!dir || !path) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "paths");
		goto out;
	}
	snprintf(dir, cap, "%s/%s/%s/%.*s", root, image_name, LVD_OFFICIAL_DIR, (int)sl, image_name);
	snprintf(path, cap, "%s/attention_%s.%s", dir, key, fmt == LVD_OFFICIAL_JPEG ? "jpg" : "png");
	if ((rc = lvd_mkdir_p(dir, err)))
		goto out;
	if (fmt == LVD_OFFICIAL_JPEG) {
		rc = encode_jpeg(px, w, h, &bytes, &len, path, err);
	} else {
		struct lvd_image im = {w, h, 1, (uint8_t *)px};
		rc = lvd_image_encode_png(&im, &bytes, &len, err);
	}
	if (!rc)
		rc = lvd_file_write_atomic(path, bytes, len, err);
out:
	free(dir);
	free(path);
	free(bytes);
	return rc;
}
