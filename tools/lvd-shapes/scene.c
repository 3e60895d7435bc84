/* lvd-shapes: scene sampling, rendering, text and per-word masks (shapes.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "lavender/geometry.h"
#include "lvd-shapes/shapes.h"

static const char *const COLOR_NAMES[LVD_SHAPES_N_COLORS] = { "red", "green", "blue", "yellow", "purple" };
static const uint8_t PALETTE[LVD_SHAPES_N_COLORS][3] = {
	{ 220, 40, 40 }, { 40, 170, 60 }, { 40, 90, 220 }, { 240, 210, 40 }, { 150, 60, 200 },
};
static const char *const KIND_NAMES[LVD_SHAPES_N_KINDS] = { "circle", "square", "triangle" };
static const char *const QTYPE_NAMES[LVD_SHAPES_N_QTYPES] = { "color", "shape", "presence", "count", "position" };

/* RNG streams (lib/core/rng.h): one per (split, image, purpose). */
enum { ST_SCENE = 0, ST_NOISE1 = 1, ST_NOISE2 = 2, ST_TINT = 3 };
static uint64_t stream(int split, uint64_t index, int purpose)
{
	return ((uint64_t)split << 62) | (index << 4) | (uint64_t)purpose;
}

const char *lvd_shapes_color_name(int c) { return c >= 0 && c < LVD_SHAPES_N_COLORS ? COLOR_NAMES[c] : "?"; }
const char *lvd_shapes_kind_name(int k) { return k >= 0 && k < LVD_SHAPES_N_KINDS ? KIND_NAMES[k] : "?"; }
const char *lvd_shapes_qtype_name(int t) { return t >= 0 && t < LVD_SHAPES_N_QTYPES ? QTYPE_NAMES[t] : "?"; }
const char *lvd_shapes_split_name(int s) { return s == LVD_SHAPES_HELDOUT ? "heldout" : "train"; }

void lvd_shapes_color_rgb(int c, uint8_t rgb[3])
{
	LVD_ASSERT(c >= 0 && c < LVD_SHAPES_N_COLORS);
	memcpy(rgb, PALETTE[c], 3);
}

void lvd_shapes_opts_default(struct lvd_shapes_opts *o)
{
	memset(o, 0, sizeof *o);
	o->split = LVD_SHAPES_TRAIN;
	o->min_shapes = 1;
	o->max_shapes = LVD_SHAPES_MAX;
	o->tile_size = 560;
	o->max_tiles = 4;
	o->map_size = 32;
	o->questions = 4;
}

int lvd_shapes_opts_check(const struct lvd_shapes_opts *o, struct lvd_error *err)
{
	if (o->split != LVD_SHAPES_TRAIN && o->split != LVD_SHAPES_HELDOUT)
		return lvd_error_set(err, LVD_ERR_INVALID, "--split: expected train or heldout");
	if (o->min_shapes < 1 || o->max_shapes > LVD_SHAPES_MAX || o->min_shapes > o->max_shapes)
		return lvd_error_set(err, LVD_ERR_INVALID, "--min-shapes %d / --max-shapes %d: need 1 <= min <= max <= %d",
				     o->min_shapes, o->max_shapes, LVD_SHAPES_MAX);
	if (o->tile_size < 32 || o->tile_size > 2048)
		return lvd_error_set(err, LVD_ERR_INVALID, "--tile-size %d: expected 32..2048", o->tile_size);
	if (o->max_tiles < 1 || o->max_tiles > LVD_GEOM_MAX_TILES)
		return lvd_error_set(err, LVD_ERR_INVALID, "--max-tiles %d: expected 1..%d", o->max_tiles,
				     LVD_GEOM_MAX_TILES);
	if (o->map_size < 1 || o->map_size > 1024)
		return lvd_error_set(err, LVD_ERR_INVALID, "--map-size %d: expected 1..1024", o->map_size);
	if (o->questions < 1 || o->questions > LVD_SHAPES_N_QTYPES)
		return lvd_error_set(err, LVD_ERR_INVALID, "--questions %d: expected 1..%d", o->questions,
				     LVD_SHAPES_N_QTYPES);
	return LVD_OK;
}

/* ---- geometry ------------------------------------------------------------------ */

int lvd_shapes_inside(const struct lvd_shapes_shape *sh, int x, int y)
{
	int s = sh->size;
	if (x < sh->x0 || x >= sh->x0 + s || y < sh->y0 || y >= sh->y0 + s)
		return 0;
	long X = 2L * x + 1 - 2L * sh->x0 - s, Y = 2L * y + 1 - 2L * sh->y0 - s;
	switch (sh->kind) {
	case LVD_SHAPES_SQUARE: return 1;
	case LVD_SHAPES_CIRCLE: return X * X + Y * Y <= (long)s * s;
	case LVD_SHAPES_TRIANGLE: return 2 * (X < 0 ? -X : X) <= 2L * y + 1 - 2L * sh->y0;
	}
	LVD_ASSERTF(0, "bad shape kind %d", sh->kind);
	return 0;
}

static int gap_axis(int a0, int as, int b0, int bs)
{
	int g1 = b0 - (a0 + as), g2 = a0 - (b0 + bs);
	return g1 > g2 ? g1 : g2;
}

const char *lvd_shapes_relation(const struct lvd_shapes_shape *a, const struct lvd_shapes_shape *b)
{
	int gx = gap_axis(a->x0, a->size, b->x0, b->size), gy = gap_axis(a->y0, a->size, b->y0, b->size);
	if (gy >= gx)
		return a->y0 < b->y0 ? "above" : "below";
	return a->x0 < b->x0 ? "left" : "right";
}

/* Image sizes cycle through the arrangements round by round over tile counts, so the
 * first T images already use 1, 2, ..., T tiles: (1,1) (1,2) (1,3) (1,4) (2,1) (3,1)
 * (2,2) (4,1) for T = 4. An image (a-1)·S < h <= a·S, (b-1)·S < w <= b·S selects
 * exactly (a, b): every arrangement that fits without downscaling has a' >= a and
 * b' >= b, and (a, b) has the smallest scale among them (ties: smallest area). */
static int arrangement_cycle(int T, int out[][2])
{
	int asp[LVD_GEOM_MAX_ASPECTS][2];
	int na = lvd_geom_aspects(T, asp), n = 0;
	for (int round = 0; n < na; round++)
		for (int t = 1; t <= T; t++) {
			int k = 0;
			for (int i = 0; i < na; i++)
				if (asp[i][0] * asp[i][1] == t && k++ == round) {
					out[n][0] = asp[i][0];
					out[n][1] = asp[i][1];
					n++;
				}
		}
	return n;
}

static int side(struct lvd_rng *r, int tiles, int S)
{
	int lo = tiles == 1 ? (3 * S + 4) / 5 : (S + 3) / 4;
	return (tiles - 1) * S + lo + (int)lvd_rng_below(r->seed, r->stream, r->index++, (uint64_t)(S - lo + 1));
}

static int below(struct lvd_rng *r, int n)
{
	return (int)lvd_rng_below(r->seed, r->stream, r->index++, (uint64_t)n);
}

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t lvd_shapes_layout_key(const struct lvd_shapes_scene *sc)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over small integers, then mixed */
	int v[3 + 3 * LVD_SHAPES_MAX], nv = 0;
	v[nv++] = sc->tiles_h;
	v[nv++] = sc->tiles_w;
	v[nv++] = sc->n;
	for (int i = 0; i < sc->n; i++) {
		const struct lvd_shapes_shape *s = &sc->s[i];
		int cy = s->y0 + s->size / 2, cx = s->x0 + s->size / 2;
		v[nv++] = s->kind;
		v[nv++] = s->color;
		v[nv++] = (3 * cy / sc->h) * 3 + 3 * cx / sc->w;
	}
	for (int i = 0; i < nv; i++) {
		h ^= (uint64_t)(v[i] + 1);
		h *= 0x100000001b3ULL;
	}
	return mix64(h);
}

/* Places sc->n shapes; 0 when the tries run out. */
static int place(struct lvd_shapes_scene *sc, struct lvd_rng *r, int shrink)
{
	static const int frac_pct[LVD_SHAPES_MAX + 1] = { 0, 50, 40, 34 };
	int m = sc->w < sc->h ? sc->w : sc->h;
	int gap = m / 25 > 2 ? m / 25 : 2;
	int smax = m * frac_pct[sc->n] / 100;
	for (int k = 0; k < shrink && smax > 4; k++)
		smax = smax * 9 / 10;
	if (smax < 4)
		smax = 4;
	int smin = smax / 2 > 4 ? smax / 2 : 4;
	for (int i = 0; i < sc->n; i++) {
		struct lvd_shapes_shape *s = &sc->s[i];
		int ok = 0;
		for (int t = 0; t < 50 && !ok; t++) {
			s->kind = below(r, LVD_SHAPES_N_KINDS);
			s->color = below(r, LVD_SHAPES_N_COLORS);
			s->size = smin + below(r, smax - smin + 1);
			int fw = sc->w - s->size - 2 * gap, fh = sc->h - s->size - 2 * gap;
			if (fw < 0 || fh < 0)
				continue;
			s->x0 = gap + below(r, fw + 1);
			s->y0 = gap + below(r, fh + 1);
			ok = 1;
			for (int j = 0; j < i && ok; j++) {
				const struct lvd_shapes_shape *o = &sc->s[j];
				if (o->kind == s->kind && o->color == s->color)
					ok = 0;
				else if (gap_axis(s->x0, s->size, o->x0, o->size) < gap &&
					 gap_axis(s->y0, s->size, o->y0, o->size) < gap)
					ok = 0;
			}
		}
		if (!ok)
			return 0;
	}
	return 1;
}

static void shape_name(char *buf, size_t cap, const struct lvd_shapes_shape *s)
{
	snprintf(buf, cap, "%s %s", COLOR_NAMES[s->color], KIND_NAMES[s->kind]);
}

static const char *rel_phrase(const char *rel)
{
	if (!strcmp(rel, "left"))
		return "to the left of";
	if (!strcmp(rel, "right"))
		return "to the right of";
	return rel;
}

static void make_caption(struct lvd_shapes_scene *sc)
{
	char a[40], b[40], c[40];
	shape_name(a, sizeof a, &sc->s[0]);
	if (sc->n == 1) {
		snprintf(sc->caption, sizeof sc->caption, "a %s", a);
		return;
	}
	shape_name(b, sizeof b, &sc->s[1]);
	const char *r01 = rel_phrase(lvd_shapes_relation(&sc->s[0], &sc->s[1]));
	if (sc->n == 2) {
		snprintf(sc->caption, sizeof sc->caption, "a %s %s a %s", a, r01, b);
		return;
	}
	shape_name(c, sizeof c, &sc->s[2]);
	const char *r21 = rel_phrase(lvd_shapes_relation(&sc->s[2], &sc->s[1]));
	snprintf(sc->caption, sizeof sc->caption, "a %s %s a %s, and a %s %s the %s", a, r01, b, c, r21, b);
}

static int count_kind(const struct lvd_shapes_scene *sc, int kind)
{
	int n = 0;
	for (int i = 0; i < sc->n; i++)
		n += sc->s[i].kind == kind;
	return n;
}

static int count_color(const struct lvd_shapes_scene *sc, int color)
{
	int n = 0;
	for (int i = 0; i < sc->n; i++)
		n += sc->s[i].color == color;
	return n;
}

static int has_pair(const struct lvd_shapes_scene *sc, int color, int kind)
{
	for (int i = 0; i < sc->n; i++)
		if (sc->s[i].color == color && sc->s[i].kind == kind)
			return 1;
	return 0;
}

/* One question of `type`; 0 when the type does not apply to the scene. */
static int make_qa(struct lvd_shapes_scene *sc, struct lvd_rng *r, int type, struct lvd_shapes_qa *q)
{
	q->type = type;
	int cand[LVD_SHAPES_N_COLORS * LVD_SHAPES_N_KINDS], nc = 0;
	switch (type) {
	case LVD_SHAPES_Q_COLOR:
		for (int i = 0; i < sc->n; i++)
			if (count_kind(sc, sc->s[i].kind) == 1)
				cand[nc++] = i;
		if (!nc)
			return 0;
		{
			const struct lvd_shapes_shape *s = &sc->s[cand[below(r, nc)]];
			snprintf(q->question, sizeof q->question, "What color is the %s?", KIND_NAMES[s->kind]);
			snprintf(q->answer, sizeof q->answer, "%s", COLOR_NAMES[s->color]);
		}
		return 1;
	case LVD_SHAPES_Q_SHAPE:
		for (int i = 0; i < sc->n; i++)
			if (count_color(sc, sc->s[i].color) == 1)
				cand[nc++] = i;
		if (!nc)
			return 0;
		{
			const struct lvd_shapes_shape *s = &sc->s[cand[below(r, nc)]];
			snprintf(q->question, sizeof q->question, "What shape is the %s object?", COLOR_NAMES[s->color]);
			snprintf(q->answer, sizeof q->answer, "%s", KIND_NAMES[s->kind]);
		}
		return 1;
	case LVD_SHAPES_Q_PRESENCE: {
		int yes = below(r, 2), color, kind;
		if (yes) {
			const struct lvd_shapes_shape *s = &sc->s[below(r, sc->n)];
			color = s->color;
			kind = s->kind;
		} else {
			for (int c = 0; c < LVD_SHAPES_N_COLORS; c++)
				for (int k = 0; k < LVD_SHAPES_N_KINDS; k++)
					if (!has_pair(sc, c, k))
						cand[nc++] = c * LVD_SHAPES_N_KINDS + k;
			int p = cand[below(r, nc)];
			color = p / LVD_SHAPES_N_KINDS;
			kind = p % LVD_SHAPES_N_KINDS;
		}
		snprintf(q->question, sizeof q->question, "Is there a %s %s in the image?", COLOR_NAMES[color],
			 KIND_NAMES[kind]);
		snprintf(q->answer, sizeof q->answer, "%s", yes ? "yes" : "no");
		return 1;
	}
	case LVD_SHAPES_Q_COUNT: {
		int k = below(r, LVD_SHAPES_N_KINDS + 1);
		if (k == LVD_SHAPES_N_KINDS) {
			snprintf(q->question, sizeof q->question, "How many shapes are there?");
			snprintf(q->answer, sizeof q->answer, "%d", sc->n);
		} else {
			snprintf(q->question, sizeof q->question, "How many %ss are there?", KIND_NAMES[k]);
			snprintf(q->answer, sizeof q->answer, "%d", count_kind(sc, k));
		}
		return 1;
	}
	case LVD_SHAPES_Q_POSITION: {
		if (sc->n < 2)
			return 0;
		int i = below(r, sc->n), j = below(r, sc->n - 1);
		if (j >= i)
			j++;
		char a[40], b[40];
		shape_name(a, sizeof a, &sc->s[i]);
		shape_name(b, sizeof b, &sc->s[j]);
		const char *rel = lvd_shapes_relation(&sc->s[i], &sc->s[j]);
		if (!strcmp(rel, "above") || !strcmp(rel, "below"))
			snprintf(q->question, sizeof q->question, "Is the %s above or below the %s?", a, b);
		else
			snprintf(q->question, sizeof q->question, "Is the %s to the left or to the right of the %s?", a, b);
		snprintf(q->answer, sizeof q->answer, "%s", rel);
		return 1;
	}
	}
	return 0;
}

void lvd_shapes_scene_make(struct lvd_shapes_scene *sc, const struct lvd_shapes_opts *o, uint64_t index)
{
	memset(sc, 0, sizeof *sc);
	sc->index = index;
	sc->split = o->split;
	struct lvd_rng r = lvd_rng_make(o->seed, stream(o->split, index, ST_SCENE));
	int cyc[LVD_GEOM_MAX_ASPECTS][2];
	int nc = arrangement_cycle(o->max_tiles, cyc);
	const int *ab = cyc[index % (uint64_t)nc];
	sc->h = side(&r, ab[0], o->tile_size);
	sc->w = side(&r, ab[1], o->tile_size);
	struct lvd_geom_cfg cfg = { o->tile_size, 1, o->max_tiles };
	struct lvd_geom g;
	struct lvd_error e = { 0 };
	LVD_ASSERTF(lvd_geom_layout(&g, &cfg, sc->h, sc->w, &e) == LVD_OK, "%s", e.msg);
	sc->tiles_h = g.tiles_h;
	sc->tiles_w = g.tiles_w;
	LVD_ASSERTF(g.tiles_h == ab[0] && g.tiles_w == ab[1], "%dx%d image selected %dx%d tiles, wanted %dx%d",
		    sc->h, sc->w, g.tiles_h, g.tiles_w, ab[0], ab[1]);
	sc->n = o->min_shapes + below(&r, o->max_shapes - o->min_shapes + 1);
	/* Rejection: a placement that fails shrinks the size range; a layout class of the
	 * other split is redrawn as it is. */
	int fails = 0;
	for (;;) {
		if (!place(sc, &r, fails / 16)) {
			fails++;
			LVD_ASSERTF(fails < 100000, "cannot place %d shapes in %dx%d", sc->n, sc->w, sc->h);
			continue;
		}
		sc->layout = lvd_shapes_layout_key(sc);
		int held = sc->layout % LVD_SHAPES_HELDOUT_MOD == 0;
		if (held == (o->split == LVD_SHAPES_HELDOUT))
			break;
	}
	make_caption(sc);
	int order[LVD_SHAPES_N_QTYPES];
	for (int t = 0; t < LVD_SHAPES_N_QTYPES; t++)
		order[t] = t;
	for (int k = LVD_SHAPES_N_QTYPES - 1; k > 0; k--) {
		int j = below(&r, k + 1), t = order[k];
		order[k] = order[j];
		order[j] = t;
	}
	for (int t = 0; t < LVD_SHAPES_N_QTYPES && sc->n_qa < o->questions; t++)
		if (make_qa(sc, &r, order[t], &sc->qa[sc->n_qa]))
			sc->n_qa++;
}

/* ---- rendering ----------------------------------------------------------------- */

/* Value noise at one octave: lattice spacing L, value lvd_rng_u32(seed, st, j·65536 + i)
 * & 255 at lattice point (i, j), smoothstep-weighted bilinear interpolation in 10-bit
 * fixed point. Fills out[h][w] (0..255). */
static void noise_octave(int *out, uint64_t seed, uint64_t st, int L, int w, int h)
{
	int gw = w / L + 2, gh = h / L + 2;
	int *lat = malloc(sizeof *lat * ((size_t)gw * gh + 2 * (size_t)w + 2 * (size_t)h));
	LVD_ASSERTF(lat, "out of memory");
	int *sxs = lat + (size_t)gw * gh, *gxs = sxs + w, *sys = gxs + w, *gys = sys + h;
	for (int j = 0; j < gh; j++)
		for (int i = 0; i < gw; i++)
			lat[(size_t)j * gw + i] = (int)(lvd_rng_u32(seed, st, (uint64_t)j * 65536 + (uint64_t)i) & 255);
	for (int a = 0; a < 2; a++) {
		int n = a ? h : w, *ss = a ? sys : sxs, *gs = a ? gys : gxs;
		for (int x = 0; x < n; x++) {
			int64_t t = (int64_t)(x % L) * 1024 / L;
			ss[x] = (int)(t * t * (3 * 1024 - 2 * t) / (1024 * 1024));
			gs[x] = x / L;
		}
	}
	for (int y = 0; y < h; y++) {
		const int *r0 = lat + (size_t)gys[y] * gw, *r1 = r0 + gw;
		int64_t sy = sys[y];
		for (int x = 0; x < w; x++) {
			int gx = gxs[x];
			int64_t sx = sxs[x];
			int64_t top = r0[gx] * (1024 - sx) + r0[gx + 1] * sx;
			int64_t bot = r1[gx] * (1024 - sx) + r1[gx + 1] * sx;
			out[(size_t)y * w + x] = (int)((top * (1024 - sy) + bot * sy) >> 20);
		}
	}
	free(lat);
}

static uint8_t clamp8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

void lvd_shapes_render(const struct lvd_shapes_scene *sc, uint64_t seed, uint8_t *rgb)
{
	int m = sc->w < sc->h ? sc->w : sc->h;
	int L1 = m / 5 > 8 ? m / 5 : 8, L2 = L1 / 4 > 3 ? L1 / 4 : 3;
	uint64_t stt = stream(sc->split, sc->index, ST_TINT);
	size_t np = (size_t)sc->w * sc->h;
	int *n1 = malloc(sizeof *n1 * 2 * np);
	LVD_ASSERTF(n1, "out of memory");
	int *n2 = n1 + np;
	noise_octave(n1, seed, stream(sc->split, sc->index, ST_NOISE1), L1, sc->w, sc->h);
	noise_octave(n2, seed, stream(sc->split, sc->index, ST_NOISE2), L2, sc->w, sc->h);
	int tint[3];
	for (int c = 0; c < 3; c++)
		tint[c] = (int)lvd_rng_below(seed, stt, (uint64_t)c, 31) - 15;
	for (size_t k = 0; k < np; k++) {
		int grey = 60 + (3 * n1[k] + n2[k]) / 4 * 130 / 255;
		for (int c = 0; c < 3; c++)
			rgb[3 * k + c] = clamp8(grey + tint[c]);
	}
	free(n1);
	for (int i = 0; i < sc->n; i++) {
		const struct lvd_shapes_shape *s = &sc->s[i];
		for (int y = s->y0; y < s->y0 + s->size; y++)
			for (int x = s->x0; x < s->x0 + s->size; x++)
				if (lvd_shapes_inside(s, x, y))
					memcpy(rgb + ((size_t)y * sc->w + x) * 3, PALETTE[s->color], 3);
	}
}

/* ---- words, masks, maps -------------------------------------------------------- */

/* The shapes `word` names: colour index (*color) or kind (*kind); -1 for the other. */
static int word_sense(const char *word, int *color, int *kind)
{
	*color = *kind = -1;
	for (int c = 0; c < LVD_SHAPES_N_COLORS; c++)
		if (!strcmp(word, COLOR_NAMES[c]))
			return *color = c, 1;
	for (int k = 0; k < LVD_SHAPES_N_KINDS; k++) {
		size_t n = strlen(KIND_NAMES[k]);
		if (!strncmp(word, KIND_NAMES[k], n) && (!word[n] || (word[n] == 's' && !word[n + 1])))
			return *kind = k, 1;
	}
	return 0;
}

size_t lvd_shapes_word_mask(const struct lvd_shapes_scene *sc, const char *word, uint8_t *mask)
{
	memset(mask, 0, (size_t)sc->w * sc->h);
	int color, kind;
	if (!word_sense(word, &color, &kind))
		return 0;
	size_t n = 0;
	for (int i = 0; i < sc->n; i++) {
		const struct lvd_shapes_shape *s = &sc->s[i];
		if (s->color != color && s->kind != kind)
			continue;
		for (int y = s->y0; y < s->y0 + s->size; y++)
			for (int x = s->x0; x < s->x0 + s->size; x++)
				if (lvd_shapes_inside(s, x, y)) {
					mask[(size_t)y * sc->w + x] = 1;
					n++;
				}
	}
	return n;
}

static void add_words(const struct lvd_shapes_scene *sc, const char *text, char words[][16], int *n)
{
	const char *p = text;
	while (*p) {
		while (*p && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
			p++;
		char w[16];
		size_t k = 0;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
			if (k + 1 < sizeof w)
				w[k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
			p++;
		}
		w[k] = 0;
		int color, kind, dup = 0, present = 0;
		if (!k || !word_sense(w, &color, &kind))
			continue;
		for (int i = 0; i < *n; i++)
			dup |= !strcmp(words[i], w);
		for (int i = 0; i < sc->n; i++)
			present |= sc->s[i].color == color || sc->s[i].kind == kind;
		if (!dup && present && *n < LVD_SHAPES_MAX_WORDS)
			memcpy(words[(*n)++], w, k + 1);
	}
}

int lvd_shapes_words(const struct lvd_shapes_scene *sc, char words[][16])
{
	int n = 0;
	add_words(sc, sc->caption, words, &n);
	for (int i = 0; i < sc->n_qa; i++) {
		add_words(sc, sc->qa[i].question, words, &n);
		add_words(sc, sc->qa[i].answer, words, &n);
	}
	return n;
}

/* Overlap (in 1/G-pixel units) of pixel p with cell c along an axis of `len` pixels:
 * pixel p spans [p·G, (p+1)·G), cell c spans [c·len, (c+1)·len). */
static int64_t overlap(int p, int c, int G, int len)
{
	int64_t a0 = (int64_t)p * G, a1 = a0 + G, b0 = (int64_t)c * len, b1 = b0 + len;
	int64_t lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
	return hi > lo ? hi - lo : 0;
}

void lvd_shapes_map(uint8_t *map, int G, const uint8_t *mask, int w, int h)
{
	uint64_t *acc = calloc((size_t)G * G + (size_t)G, sizeof *acc);
	LVD_ASSERTF(acc, "out of memory");
	uint64_t *row = acc + (size_t)G * G;
	for (int y = 0; y < h; y++) {
		memset(row, 0, sizeof *row * (size_t)G);
		int any = 0;
		for (int x = 0; x < w; x++) {
			if (!mask[(size_t)y * w + x])
				continue;
			any = 1;
			for (int j = (int)((int64_t)x * G / w); j < G && (int64_t)j * w < (int64_t)(x + 1) * G; j++)
				row[j] += (uint64_t)overlap(x, j, G, w);
		}
		if (!any)
			continue;
		for (int i = (int)((int64_t)y * G / h); i < G && (int64_t)i * h < (int64_t)(y + 1) * G; i++) {
			uint64_t oy = (uint64_t)overlap(y, i, G, h);
			for (int j = 0; j < G; j++)
				acc[(size_t)i * G + j] += oy * row[j];
		}
	}
	uint64_t mx = 0;
	for (size_t k = 0; k < (size_t)G * G; k++)
		mx = acc[k] > mx ? acc[k] : mx;
	for (size_t k = 0; k < (size_t)G * G; k++)
		map[k] = mx ? (uint8_t)((510 * acc[k] + mx) / (2 * mx)) : 0;
	free(acc);
}
