/* Tests for the shapes world generator (tools/lvd-shapes; its sources are compiled in
 * here): shape geometry against an independent floating-point oracle, rendered pixels
 * and per-word masks against that oracle, captions and answers parsed back and checked
 * against the drawn pixels, exact per-word maps, tile coverage, held-out layout classes,
 * and whole generated folders: determinism (same seed -> identical bytes, other seed ->
 * different), every image/map/mask decoding with lib/io/image.h and the manifest parsing
 * with lib/io/manifest.h. */
#include <ftw.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "eval/bench.h"
#include "io/json.h"
#include "io/manifest.h"
#include "lvd-shapes/scene.c"
#include "lvd-shapes/write.c"

/* ---- independent oracle ------------------------------------------------------------ */

/* Pixel centre (x+.5, y+.5) inside the closed figure, in doubles. */
static int oracle_inside(int kind, double x0, double y0, double s, int x, int y)
{
	double px = x + 0.5, py = y + 0.5;
	if (px < x0 || px > x0 + s || py < y0 || py > y0 + s)
		return 0;
	if (kind == LVD_SHAPES_SQUARE)
		return 1;
	if (kind == LVD_SHAPES_CIRCLE) {
		double cx = x0 + s / 2, cy = y0 + s / 2, r = s / 2;
		return (px - cx) * (px - cx) + (py - cy) * (py - cy) <= r * r;
	}
	/* triangle (ax, ay) apex, (bx, by) base left, (cx, cy) base right: edge functions */
	double ax = x0 + s / 2, ay = y0, bx = x0, by = y0 + s, cx = x0 + s, cy = y0 + s;
	double e1 = (bx - ax) * (py - ay) - (by - ay) * (px - ax);
	double e2 = (cx - bx) * (py - by) - (cy - by) * (px - bx);
	double e3 = (ax - cx) * (py - cy) - (ay - cy) * (px - cx);
	return (e1 <= 0 && e2 <= 0 && e3 <= 0) || (e1 >= 0 && e2 >= 0 && e3 >= 0);
}

static int kind_of(const char *w)
{
	for (int k = 0; k < LVD_SHAPES_N_KINDS; k++)
		if (!strcmp(w, lvd_shapes_kind_name(k)))
			return k;
	return -1;
}

static int color_of(const char *w)
{
	for (int c = 0; c < LVD_SHAPES_N_COLORS; c++)
		if (!strcmp(w, lvd_shapes_color_name(c)))
			return c;
	return -1;
}

static struct lvd_shapes_opts small_opts(uint64_t seed, int split)
{
	struct lvd_shapes_opts o;
	lvd_shapes_opts_default(&o);
	o.seed = seed;
	o.split = split;
	o.tile_size = 64;
	return o;
}

/* ---- geometry ---------------------------------------------------------------------- */

static void test_inside_hand_pixels(void)
{
	struct lvd_shapes_shape c = { LVD_SHAPES_CIRCLE, 0, 0, 0, 20 };
	CHECK(lvd_shapes_inside(&c, 10, 10));
	CHECK(lvd_shapes_inside(&c, 0, 10));   /* (0.5, 10.5): 9.5² + 0.5² = 90.5 <= 100 */
	CHECK(!lvd_shapes_inside(&c, 0, 0));   /* corner */
	CHECK(!lvd_shapes_inside(&c, 2, 2));   /* 7.5² · 2 = 112.5 > 100 */
	CHECK(lvd_shapes_inside(&c, 3, 3));    /* 6.5² · 2 = 84.5 */
	CHECK(!lvd_shapes_inside(&c, 20, 10)); /* outside the box */
	struct lvd_shapes_shape t = { LVD_SHAPES_TRIANGLE, 0, 0, 0, 21 };
	CHECK(lvd_shapes_inside(&t, 10, 0));   /* apex column, top row */
	CHECK(!lvd_shapes_inside(&t, 9, 0));
	CHECK(!lvd_shapes_inside(&t, 11, 0));
	CHECK(lvd_shapes_inside(&t, 0, 20));   /* base corners */
	CHECK(lvd_shapes_inside(&t, 20, 20));
	CHECK(!lvd_shapes_inside(&t, 0, 10));
	CHECK(!lvd_shapes_inside(&t, 10, 21));
	struct lvd_shapes_shape q = { LVD_SHAPES_SQUARE, 0, 5, 7, 4 };
	CHECK(lvd_shapes_inside(&q, 5, 7) && lvd_shapes_inside(&q, 8, 10));
	CHECK(!lvd_shapes_inside(&q, 9, 10) && !lvd_shapes_inside(&q, 8, 11) && !lvd_shapes_inside(&q, 4, 7));
}

static void test_inside_matches_oracle(void)
{
	int bad = 0, in = 0;
	for (int kind = 0; kind < LVD_SHAPES_N_KINDS; kind++)
		for (int s = 4; s <= 41; s++) {
			struct lvd_shapes_shape sh = { kind, 0, 3, 5, s };
			for (int y = 0; y < s + 10; y++)
				for (int x = 0; x < s + 8; x++) {
					int a = lvd_shapes_inside(&sh, x, y), b = oracle_inside(kind, 3, 5, s, x, y);
					bad += a != b;
					in += a;
				}
		}
	CHECKF(bad == 0, "%d pixels disagree with the float oracle", bad);
	CHECK(in > 10000);
}

/* ---- scenes ------------------------------------------------------------------------ */

/* Rendered pixels and word masks of many scenes against the oracle. */
static void test_render_and_masks_exact(void)
{
	struct lvd_shapes_opts o = small_opts(3, LVD_SHAPES_TRAIN);
	int kinds_seen[LVD_SHAPES_N_KINDS] = { 0 };
	for (uint64_t i = 0; i < 24; i++) {
		struct lvd_shapes_scene sc;
		lvd_shapes_scene_make(&sc, &o, i);
		size_t np = (size_t)sc.w * sc.h;
		uint8_t *rgb = malloc(np * 3), *mask = malloc(np);
		REQUIRE(rgb && mask);
		lvd_shapes_render(&sc, o.seed, rgb);
		int bad_px = 0, bad_bg = 0;
		for (int y = 0; y < sc.h; y++)
			for (int x = 0; x < sc.w; x++) {
				const uint8_t *p = rgb + ((size_t)y * sc.w + x) * 3;
				int owner = -1, nown = 0;
				for (int k = 0; k < sc.n; k++)
					if (oracle_inside(sc.s[k].kind, sc.s[k].x0, sc.s[k].y0, sc.s[k].size, x, y))
						owner = k, nown++;
				CHECK(nown <= 1);
				if (owner >= 0) {
					uint8_t c[3];
					lvd_shapes_color_rgb(sc.s[owner].color, c);
					bad_px += memcmp(p, c, 3) != 0;
				} else {
					for (int c = 0; c < LVD_SHAPES_N_COLORS; c++) {
						uint8_t rc[3];
						lvd_shapes_color_rgb(c, rc);
						bad_bg += !memcmp(p, rc, 3);
					}
				}
			}
		CHECKF(bad_px == 0 && bad_bg == 0, "scene %d: %d shape pixels off colour, %d background pixels in a shape colour",
		       (int)i, bad_px, bad_bg);
		char words[LVD_SHAPES_MAX_WORDS][16];
		int nw = lvd_shapes_words(&sc, words);
		CHECK(nw >= 2);
		for (int k = 0; k < nw; k++) {
			size_t cnt = lvd_shapes_word_mask(&sc, words[k], mask);
			CHECK(cnt > 0);
			int c = color_of(words[k]), kd = kind_of(words[k]);
			if (kd < 0 && strlen(words[k]) > 1) { /* plural noun */
				char sing[16];
				snprintf(sing, sizeof sing, "%.*s", (int)strlen(words[k]) - 1, words[k]);
				kd = kind_of(sing);
			}
			CHECKF(c >= 0 || kd >= 0, "word '%s' names nothing", words[k]);
			int bad = 0;
			size_t want = 0;
			for (int y = 0; y < sc.h; y++)
				for (int x = 0; x < sc.w; x++) {
					int on = 0;
					for (int s = 0; s < sc.n; s++)
						if ((sc.s[s].color == c || sc.s[s].kind == kd) &&
						    oracle_inside(sc.s[s].kind, sc.s[s].x0, sc.s[s].y0, sc.s[s].size, x, y))
							on = 1;
					bad += on != mask[(size_t)y * sc.w + x];
					want += on;
				}
			CHECKF(bad == 0 && want == cnt, "scene %d word '%s': %d pixels differ", (int)i, words[k], bad);
		}
		for (int s = 0; s < sc.n; s++)
			kinds_seen[sc.s[s].kind] = 1;
		free(rgb);
		free(mask);
	}
	for (int k = 0; k < LVD_SHAPES_N_KINDS; k++)
		CHECKF(kinds_seen[k], "kind %s never drawn", lvd_shapes_kind_name(k));
}

/* Pixel extent of shape s: rows/cols that hold any of its pixels. */
static void extent(const struct lvd_shapes_shape *s, int *x0, int *x1, int *y0, int *y1)
{
	*x0 = *y0 = 1 << 30;
	*x1 = *y1 = -1;
	for (int y = s->y0 - 2; y < s->y0 + s->size + 2; y++)
		for (int x = s->x0 - 2; x < s->x0 + s->size + 2; x++)
			if (oracle_inside(s->kind, s->x0, s->y0, s->size, x, y)) {
				*x0 = x < *x0 ? x : *x0;
				*x1 = x > *x1 ? x : *x1;
				*y0 = y < *y0 ? y : *y0;
				*y1 = y > *y1 ? y : *y1;
			}
}

/* "above": every pixel of a is above every pixel of b (likewise below/left/right). */
static int relation_holds(const struct lvd_shapes_shape *a, const struct lvd_shapes_shape *b, const char *rel)
{
	int ax0, ax1, ay0, ay1, bx0, bx1, by0, by1;
	extent(a, &ax0, &ax1, &ay0, &ay1);
	extent(b, &bx0, &bx1, &by0, &by1);
	if (!strcmp(rel, "above")) return ay1 < by0;
	if (!strcmp(rel, "below")) return ay0 > by1;
	if (!strcmp(rel, "left")) return ax1 < bx0;
	if (!strcmp(rel, "right")) return ax0 > bx1;
	return 0;
}

/* Splits text into lower-case words (letters/digits); returns the count. */
static int split_words(const char *text, char w[][24], int max)
{
	int n = 0;
	const char *p = text;
	while (*p && n < max) {
		while (*p && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
			p++;
		if (!*p)
			break;
		int k = 0;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) {
			if (k < 23)
				w[n][k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
			p++;
		}
		w[n++][k] = 0;
	}
	return n;
}

/* Reads "C K" at w[*i], finds that shape in the scene; -1 when absent. */
static int take_shape(const struct lvd_shapes_scene *sc, char w[][24], int nw, int *i)
{
	if (*i + 1 >= nw)
		return -1;
	int c = color_of(w[*i]), k = kind_of(w[*i + 1]);
	*i += 2;
	for (int s = 0; s < sc->n; s++)
		if (sc->s[s].color == c && sc->s[s].kind == k)
			return s;
	return -1;
}

/* Reads a relation phrase ("above" / "below" / "to the left of" / "to the right of"). */
static const char *take_rel(char w[][24], int nw, int *i)
{
	if (*i < nw && (!strcmp(w[*i], "above") || !strcmp(w[*i], "below")))
		return w[(*i)++];
	if (*i + 3 < nw && !strcmp(w[*i], "to") && !strcmp(w[*i + 1], "the") && !strcmp(w[*i + 3], "of")) {
		*i += 4;
		return !strcmp(w[*i - 2], "left") ? "left" : !strcmp(w[*i - 2], "right") ? "right" : "?";
	}
	return "?";
}

static void check_caption(const struct lvd_shapes_scene *sc)
{
	char w[32][24];
	int nw = split_words(sc->caption, w, 32), i = 0, order[LVD_SHAPES_MAX];
	REQUIRE(nw >= 3 && !strcmp(w[0], "a"));
	i = 1;
	order[0] = take_shape(sc, w, nw, &i);
	CHECKF(order[0] == 0, "'%s': first shape", sc->caption);
	if (sc->n >= 2) {
		const char *rel = take_rel(w, nw, &i);
		CHECK(i < nw && !strcmp(w[i], "a"));
		i++;
		order[1] = take_shape(sc, w, nw, &i);
		CHECKF(order[1] == 1 && relation_holds(&sc->s[0], &sc->s[1], rel), "'%s': %s", sc->caption, rel);
	}
	if (sc->n == 3) {
		CHECK(i + 1 < nw && !strcmp(w[i], "and") && !strcmp(w[i + 1], "a"));
		i += 2;
		order[2] = take_shape(sc, w, nw, &i);
		const char *rel = take_rel(w, nw, &i);
		CHECK(i < nw && !strcmp(w[i], "the"));
		i++;
		int ref = take_shape(sc, w, nw, &i);
		CHECKF(order[2] == 2 && ref == 1 && relation_holds(&sc->s[2], &sc->s[1], rel), "'%s'", sc->caption);
	}
	CHECKF(i == nw, "'%s': %d words left over", sc->caption, nw - i);
}

static void check_qa(const struct lvd_shapes_scene *sc, const struct lvd_shapes_qa *q)
{
	char w[32][24];
	int nw = split_words(q->question, w, 32);
	REQUIRE(nw >= 3);
	char want[16] = "";
	switch (q->type) {
	case LVD_SHAPES_Q_COLOR: { /* what color is the K */
		int k = kind_of(w[nw - 1]), hits = 0;
		for (int s = 0; s < sc->n; s++)
			if (sc->s[s].kind == k)
				hits++, snprintf(want, sizeof want, "%s", lvd_shapes_color_name(sc->s[s].color));
		CHECKF(hits == 1, "'%s' is ambiguous (%d)", q->question, hits);
		break;
	}
	case LVD_SHAPES_Q_SHAPE: { /* what shape is the C object */
		int c = color_of(w[nw - 2]), hits = 0;
		for (int s = 0; s < sc->n; s++)
			if (sc->s[s].color == c)
				hits++, snprintf(want, sizeof want, "%s", lvd_shapes_kind_name(sc->s[s].kind));
		CHECKF(hits == 1, "'%s' is ambiguous (%d)", q->question, hits);
		break;
	}
	case LVD_SHAPES_Q_PRESENCE: { /* is there a C K in the image */
		int i = 3;
		snprintf(want, sizeof want, "%s", take_shape(sc, w, nw, &i) >= 0 ? "yes" : "no");
		break;
	}
	case LVD_SHAPES_Q_COUNT: { /* how many Ks are there */
		int n = 0;
		if (!strcmp(w[2], "shapes"))
			n = sc->n;
		else {
			char sing[24];
			snprintf(sing, sizeof sing, "%.*s", (int)strlen(w[2]) - 1, w[2]);
			int k = kind_of(sing);
			CHECKF(k >= 0, "'%s'", q->question);
			for (int s = 0; s < sc->n; s++)
				n += sc->s[s].kind == k;
		}
		snprintf(want, sizeof want, "%d", n);
		break;
	}
	case LVD_SHAPES_Q_POSITION: { /* is the C K above or below the C K / to the left or to the right of */
		int i = 2;
		int a = take_shape(sc, w, nw, &i);
		int vertical = !strcmp(w[i], "above");
		i += vertical ? 4 : 9;
		int b = take_shape(sc, w, nw, &i);
		REQUIRE(a >= 0 && b >= 0 && a != b && i == nw);
		const char *opts[2] = { vertical ? "above" : "left", vertical ? "below" : "right" };
		int h0 = relation_holds(&sc->s[a], &sc->s[b], opts[0]), h1 = relation_holds(&sc->s[a], &sc->s[b], opts[1]);
		CHECKF(h0 + h1 == 1, "'%s': relation not clear", q->question);
		snprintf(want, sizeof want, "%s", h0 ? opts[0] : opts[1]);
		break;
	}
	default:
		CHECK(0);
	}
	CHECKF(!strcmp(q->answer, want), "'%s' answered '%s', the pixels say '%s'", q->question, q->answer, want);
}

static void test_text_matches_scene(void)
{
	int types[LVD_SHAPES_N_QTYPES] = { 0 }, ns[LVD_SHAPES_MAX + 1] = { 0 };
	for (int split = 0; split < 2; split++) {
		struct lvd_shapes_opts o = small_opts(11, split);
		for (uint64_t i = 0; i < 150; i++) {
			struct lvd_shapes_scene sc;
			lvd_shapes_scene_make(&sc, &o, i);
			ns[sc.n]++;
			check_caption(&sc);
			CHECK(sc.n_qa == o.questions || sc.n == 1);
			CHECK(sc.n_qa >= 3);
			for (int q = 0; q < sc.n_qa; q++) {
				types[sc.qa[q].type]++;
				check_qa(&sc, &sc.qa[q]);
				for (int r = 0; r < q; r++)
					CHECK(sc.qa[r].type != sc.qa[q].type);
			}
		}
	}
	for (int t = 0; t < LVD_SHAPES_N_QTYPES; t++)
		CHECKF(types[t] > 20, "question type %s asked %d times", lvd_shapes_qtype_name(t), types[t]);
	for (int n = 1; n <= LVD_SHAPES_MAX; n++)
		CHECKF(ns[n] > 30, "%d-shape scenes: %d", n, ns[n]);
}

static void test_min_max_shapes(void)
{
	struct lvd_shapes_opts o = small_opts(5, LVD_SHAPES_TRAIN);
	o.min_shapes = o.max_shapes = 2;
	for (uint64_t i = 0; i < 20; i++) {
		struct lvd_shapes_scene sc;
		lvd_shapes_scene_make(&sc, &o, i);
		CHECK(sc.n == 2);
	}
	struct lvd_error e = { 0 };
	o.min_shapes = 3;
	CHECK(lvd_shapes_opts_check(&o, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "--min-shapes");
	lvd_shapes_opts_default(&o);
	o.questions = 6;
	CHECK(lvd_shapes_opts_check(&o, &e) == LVD_ERR_INVALID);
	lvd_shapes_opts_default(&o);
	o.tile_size = 31;
	CHECK(lvd_shapes_opts_check(&o, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "--tile-size");
	o.tile_size = 32;
	CHECK(lvd_shapes_opts_check(&o, &e) == LVD_OK);
}

/* Tile counts from lib/lavender/geometry for the default (560, 4) cover 1..4 in the
 * first 4 images, and every arrangement appears within 8. */
static void test_tiles_cover(void)
{
	struct lvd_shapes_opts o;
	lvd_shapes_opts_default(&o);
	o.seed = 9;
	struct lvd_geom_cfg cfg;
	lvd_geom_cfg_default(&cfg);
	int seen_tiles[5] = { 0 }, seen_arr[5][5] = { { 0 } };
	for (uint64_t i = 0; i < 8; i++) {
		struct lvd_shapes_scene sc;
		lvd_shapes_scene_make(&sc, &o, i);
		struct lvd_geom g;
		struct lvd_error e = { 0 };
		REQUIRE(lvd_geom_layout(&g, &cfg, sc.h, sc.w, &e) == LVD_OK);
		CHECK(g.tiles_h == sc.tiles_h && g.tiles_w == sc.tiles_w);
		int t = g.tiles_h * g.tiles_w;
		REQUIRE(t >= 1 && t <= 4);
		if (i < 4)
			CHECKF(t == (int)i + 1, "image %d uses %d tiles", (int)i, t);
		seen_tiles[t] = 1;
		seen_arr[g.tiles_h][g.tiles_w] = 1;
	}
	for (int t = 1; t <= 4; t++)
		CHECK(seen_tiles[t]);
	int na = 0;
	for (int a = 1; a <= 4; a++)
		for (int b = 1; b <= 4; b++)
			na += seen_arr[a][b];
	CHECK(na == 8);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Held-out scenes come from layout classes training never uses, for any seed. */
static void test_heldout_layouts(void)
{
	enum { N = 300 };
	static uint64_t train[2 * N];
	int diff = 0;
	for (int seed = 0; seed < 2; seed++)
		for (uint64_t i = 0; i < N; i++) {
			struct lvd_shapes_scene a, b;
			struct lvd_shapes_opts ot = small_opts((uint64_t)seed, LVD_SHAPES_TRAIN);
			struct lvd_shapes_opts oh = small_opts((uint64_t)seed + 7, LVD_SHAPES_HELDOUT);
			lvd_shapes_scene_make(&a, &ot, i);
			lvd_shapes_scene_make(&b, &oh, i);
			CHECK(a.layout == lvd_shapes_layout_key(&a) && a.layout % LVD_SHAPES_HELDOUT_MOD != 0);
			CHECK(b.layout == lvd_shapes_layout_key(&b) && b.layout % LVD_SHAPES_HELDOUT_MOD == 0);
			train[seed * N + i] = a.layout;
			diff += strcmp(a.caption, b.caption) != 0;
		}
	qsort(train, 2 * N, sizeof train[0], cmp_u64);
	int clash = 0;
	for (uint64_t i = 0; i < N; i++) {
		struct lvd_shapes_scene b;
		struct lvd_shapes_opts oh = small_opts(0, LVD_SHAPES_HELDOUT);
		lvd_shapes_scene_make(&b, &oh, i);
		clash += bsearch(&b.layout, train, 2 * N, sizeof train[0], cmp_u64) != NULL;
	}
	CHECK(clash == 0);
	CHECK(diff > N);
	/* the key moves with a shape's coarse cell */
	struct lvd_shapes_scene sc;
	struct lvd_shapes_opts o = small_opts(1, LVD_SHAPES_TRAIN);
	lvd_shapes_scene_make(&sc, &o, 0);
	uint64_t k0 = lvd_shapes_layout_key(&sc);
	sc.s[0].x0 = sc.s[0].x0 < sc.w / 2 ? sc.w - sc.s[0].size - 1 : 0;
	CHECK(lvd_shapes_layout_key(&sc) != k0);
}

static void test_map_exact(void)
{
	uint8_t mask[6] = { 0 }, map[4];
	/* 3×2 image, 2×2 cells: column cells split pixel 1 in halves */
	mask[0] = mask[1] = 1; /* row 0, pixels 0 and 1: cell (0,0) gets 1.5 px, cell (0,1) 0.5 px */
	lvd_shapes_map(map, 2, mask, 3, 2);
	CHECK(map[0] == 255 && map[1] == 85 && map[2] == 0 && map[3] == 0);
	memset(mask, 0, sizeof mask);
	lvd_shapes_map(map, 2, mask, 3, 2);
	CHECK(map[0] == 0 && map[1] == 0 && map[2] == 0 && map[3] == 0);
	/* finer grid than the image: 2×1 image on 4×4 cells, pixel 1 set */
	uint8_t m2[2] = { 0, 1 }, g4[16];
	lvd_shapes_map(g4, 4, m2, 2, 1);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			CHECK(g4[i * 4 + j] == (j >= 2 ? 255 : 0));
	/* a circle: cells fully inside are 255; cells away from it are 0 */
	struct lvd_shapes_scene sc = { .w = 64, .h = 64, .n = 1 };
	sc.s[0] = (struct lvd_shapes_shape){ LVD_SHAPES_CIRCLE, 0, 16, 16, 32 };
	uint8_t *mk = malloc(64 * 64), m32[32 * 32];
	REQUIRE(mk);
	CHECK(lvd_shapes_word_mask(&sc, "circle", mk) > 700);
	lvd_shapes_map(m32, 32, mk, 64, 64);
	CHECK(m32[16 * 32 + 16] == 255 && m32[0] == 0 && m32[8 * 32 + 7] == 0 && m32[16 * 32 + 8] > 0);
	free(mk);
}

/* ---- generated folders ------------------------------------------------------------- */

static char g_root[64];
static size_t g_files, g_same, g_bytes;
static const char *g_other;

static int compare_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag != FTW_F)
		return 0;
	g_files++;
	char other[4400];
	snprintf(other, sizeof other, "%s%s", g_other, path + strlen(g_root));
	char *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	struct lvd_error e = { 0 };
	if (!lvd_file_read_all(path, 64 << 20, &a, &la, &e) && !lvd_file_read_all(other, 64 << 20, &b, &lb, &e) &&
	    la == lb && !memcmp(a, b, la))
		g_same++;
	g_bytes += la;
	free(a);
	free(b);
	return 0;
}

/* Files under a that are byte-identical at the same path under b. */
static size_t same_files(const char *a, const char *b, size_t *total)
{
	snprintf(g_root, sizeof g_root, "%s", a);
	g_other = b;
	g_files = g_same = g_bytes = 0;
	nftw(a, compare_one, 16, FTW_PHYS);
	*total = g_files;
	return g_same;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void gen(const char *dir, uint64_t seed, int split, uint64_t n)
{
	struct lvd_shapes_opts o = small_opts(seed, split);
	o.tile_size = 48;
	struct lvd_error e = { 0 };
	int rc = lvd_shapes_generate(&o, n, dir, NULL, &e);
	CHECKF(rc == LVD_OK, "%s", e.msg);
}

static void test_determinism(void)
{
	char a[] = "/tmp/lvd-shapes-a-XXXXXX", b[] = "/tmp/lvd-shapes-b-XXXXXX", c[] = "/tmp/lvd-shapes-c-XXXXXX";
	REQUIRE(mkdtemp(a) && mkdtemp(b) && mkdtemp(c));
	gen(a, 42, LVD_SHAPES_TRAIN, 3);
	gen(b, 42, LVD_SHAPES_TRAIN, 3);
	gen(c, 43, LVD_SHAPES_TRAIN, 3);
	size_t total = 0, same = same_files(a, b, &total);
	CHECKF(total > 12 && same == total, "%zu of %zu files identical", same, total);
	size_t total2 = 0, same2 = same_files(b, a, &total2);
	CHECK(total2 == total && same2 == total);
	size_t total3 = 0, same3 = same_files(a, c, &total3);
	CHECKF(same3 < total3 / 4, "seed 43 repeats %zu of %zu files of seed 42", same3, total3);
	char p1[4200], p2[4200];
	snprintf(p1, sizeof p1, "%s/images/train-000000.png", a);
	snprintf(p2, sizeof p2, "%s/images/train-000000.png", c);
	char *x = NULL, *y = NULL;
	size_t lx, ly;
	struct lvd_error e = { 0 };
	REQUIRE(!lvd_file_read_all(p1, 1 << 26, &x, &lx, &e) && !lvd_file_read_all(p2, 1 << 26, &y, &ly, &e));
	CHECK(lx != ly || memcmp(x, y, lx) != 0);
	free(x);
	free(y);
	/* a prefix run gives the same first files (scene i does not depend on N) */
	rm_rf(c);
	memcpy(c + strlen(c) - 6, "XXXXXX", 6);
	REQUIRE(mkdtemp(c));
	gen(c, 42, LVD_SHAPES_TRAIN, 2);
	size_t t4 = 0, s4 = same_files(c, a, &t4);
	CHECK(t4 > 4 && s4 == t4 - 3); /* all but the manifest, the bench and the run file */
	rm_rf(a);
	rm_rf(b);
	rm_rf(c);
}

static void test_outputs_parse_and_decode(void)
{
	char d[] = "/tmp/lvd-shapes-d-XXXXXX";
	REQUIRE(mkdtemp(d));
	gen(d, 7, LVD_SHAPES_TRAIN, 4);
	gen(d, 7, LVD_SHAPES_HELDOUT, 2);
	const char *splits[2] = { "train", "heldout" };
	int nmaps = 0, tiles_seen[5] = { 0 };
	for (int sp = 0; sp < 2; sp++) {
		char path[4400];
		snprintf(path, sizeof path, "%s/%s.jsonl", d, splits[sp]);
		struct lvd_manifest *m = NULL;
		struct lvd_error e = { 0 };
		REQUIRE(lvd_manifest_open(&m, path, NULL, &e) == LVD_OK);
		struct lvd_lines *lr = NULL;
		REQUIRE(lvd_lines_open(&lr, path, 1 << 20, &e) == LVD_OK);
		struct lvd_sample s = { 0 };
		int n = 0, rc;
		while ((rc = lvd_manifest_next(m, &s, &e)) == LVD_OK) {
			const char *line;
			size_t len;
			uint64_t no;
			REQUIRE(lvd_lines_next(lr, &line, &len, &no, &e) == LVD_OK);
			json_error_t je;
			json_t *j = json_loadb(line, len, 0, &je);
			REQUIRE(j);
			char id[64];
			snprintf(id, sizeof id, "%s-%06d", splits[sp], n);
			CHECK_STR(s.id, id);
			CHECK_STR(json_string_value(json_object_get(j, "split")), splits[sp]);
			REQUIRE(s.image && s.caption && s.n_turns >= 2 && s.n_turns % 2 == 0);
			CHECK(!strncmp(s.turns[0].content, "<image>\n", 8));
			json_t *qa = json_object_get(j, "qa");
			CHECK(json_array_size(qa) * 2 == s.n_turns);
			for (size_t t = 0; t < s.n_turns; t++) {
				CHECK(s.turns[t].role == (t % 2 ? LVD_ROLE_ASSISTANT : LVD_ROLE_USER));
				json_t *q = json_array_get(qa, t / 2);
				if (t % 2)
					CHECK_STR(s.turns[t].content, json_string_value(json_object_get(q, "answer")));
				else
					CHECK(strstr(s.turns[t].content, json_string_value(json_object_get(q, "question"))));
			}
			/* the scene the line describes is the one the generator makes */
			struct lvd_shapes_opts o = small_opts(7, sp);
			o.tile_size = 48;
			struct lvd_shapes_scene sc;
			lvd_shapes_scene_make(&sc, &o, (uint64_t)n);
			CHECK_STR(s.caption, sc.caption);
			int W = (int)json_integer_value(json_object_get(j, "width"));
			int H = (int)json_integer_value(json_object_get(j, "height"));
			json_t *shapes = json_object_get(j, "shapes");
			CHECK(W == sc.w && H == sc.h && (int)json_array_size(shapes) == sc.n);
			for (int k = 0; k < sc.n; k++) {
				json_t *sh = json_array_get(shapes, (size_t)k);
				CHECK(json_integer_value(json_object_get(sh, "x")) == sc.s[k].x0);
				CHECK(json_integer_value(json_object_get(sh, "size")) == sc.s[k].size);
				CHECK_STR(json_string_value(json_object_get(sh, "shape")), lvd_shapes_kind_name(sc.s[k].kind));
			}
			json_t *tl = json_object_get(j, "tiles");
			int tt = (int)(json_integer_value(json_array_get(tl, 0)) * json_integer_value(json_array_get(tl, 1)));
			if (tt >= 1 && tt <= 4)
				tiles_seen[tt] = 1;
			/* image */
			struct lvd_image img = { 0 };
			snprintf(path, sizeof path, "%s/%s", d, s.image);
			CHECKF(lvd_image_load(&img, path, LVD_ALPHA_DROP, &e) == LVD_OK, "%s", e.msg);
			CHECK(img.w == W && img.h == H);
			/* maps: official JPEG, PNG twin, exact mask */
			json_t *maps = json_object_get(j, "word_maps"), *masks = json_object_get(j, "word_masks");
			CHECK(json_object_size(maps) >= 2 && json_object_size(maps) == json_object_size(masks));
			const char *word;
			json_t *v;
			json_object_foreach(maps, word, v) {
				struct lvd_image jm = { 0 }, pm = { 0 }, mk = { 0 };
				char p2[4400], want[4400];
				snprintf(want, sizeof want, "attn/%s.png/lpm_attention/%s/attention_%s.jpg", id, id, word);
				CHECK_STR(json_string_value(v), want);
				snprintf(path, sizeof path, "%s/%s", d, json_string_value(v));
				REQUIRE(lvd_image_load(&jm, path, LVD_ALPHA_DROP, &e) == LVD_OK);
				snprintf(p2, sizeof p2, "%s/attn-png/%s.png/lpm_attention/%s/attention_%s.png", d, id, id, word);
				REQUIRE(lvd_image_load(&pm, p2, LVD_ALPHA_DROP, &e) == LVD_OK);
				snprintf(path, sizeof path, "%s/%s", d, json_string_value(json_object_get(masks, word)));
				REQUIRE(lvd_image_load(&mk, path, LVD_ALPHA_DROP, &e) == LVD_OK);
				CHECK(jm.w == 32 && jm.h == 32 && pm.w == 32 && pm.h == 32 && mk.w == W && mk.h == H);
				uint8_t *mask = malloc((size_t)W * H), map[32 * 32];
				REQUIRE(mask);
				lvd_shapes_word_mask(&sc, word, mask);
				int bad = 0, jdiff = 0;
				for (size_t p = 0; p < (size_t)W * H; p++)
					bad += mk.px[3 * p] != (mask[p] ? 255 : 0);
				lvd_shapes_map(map, 32, mask, W, H);
				int maxv = 0;
				for (int p = 0; p < 32 * 32; p++) {
					bad += pm.px[3 * p] != map[p];
					int dd = abs((int)jm.px[3 * p] - (int)map[p]);
					jdiff = dd > jdiff ? dd : jdiff;
					maxv = map[p] > maxv ? map[p] : maxv;
				}
				CHECKF(bad == 0, "%s '%s': %d mask/map values differ", id, word, bad);
				/* JPEG at quality 100 of an 8-bit map: small ringing only */
				CHECKF(jdiff <= 12, "%s '%s': JPEG differs by %d", id, word, jdiff);
				CHECK(maxv == 255);
				nmaps++;
				free(mask);
				lvd_image_free(&jm);
				lvd_image_free(&pm);
				lvd_image_free(&mk);
			}
			lvd_image_free(&img);
			json_decref(j);
			n++;
		}
		CHECK(rc == LVD_MANIFEST_EOF);
		CHECK(n == (sp ? 2 : 4));
		lvd_sample_clear(&s);
		lvd_lines_close(lr);
		lvd_manifest_close(m);
		snprintf(path, sizeof path, "%s/%s-run.json", d, splits[sp]);
		struct lvd_json rj = { 0 };
		CHECK(lvd_json_load(&rj, path, &e) == LVD_OK);
		lvd_json_release(&rj);
		/* the bench: one lvd-eval line per question, in scene order, as the generator asked */
		snprintf(path, sizeof path, "%s/%s-bench.jsonl", d, splits[sp]);
		REQUIRE(lvd_lines_open(&lr, path, 1 << 20, &e) == LVD_OK);
		const char *line;
		size_t len;
		uint64_t no;
		for (int i = 0; i < n; i++) {
			struct lvd_shapes_opts o = small_opts(7, sp);
			o.tile_size = 48;
			struct lvd_shapes_scene sc;
			lvd_shapes_scene_make(&sc, &o, (uint64_t)i);
			for (int q = 0; q < sc.n_qa; q++) {
				REQUIRE(lvd_lines_next(lr, &line, &len, &no, &e) == LVD_OK);
				json_error_t je;
				json_t *j = json_loadb(line, len, 0, &je);
				REQUIRE(j);
				struct lvd_eval_item it;
				CHECKF(lvd_eval_item_parse(j, &it, &e) == 0, "bench line %llu: %s", (unsigned long long)no,
				       e.msg);
				char id[64], img[96];
				snprintf(id, sizeof id, "%s-%06d-q%d", splits[sp], i, q);
				snprintf(img, sizeof img, "images/%s-%06d.png", splits[sp], i);
				CHECK_STR(it.id, id);
				CHECK_STR(it.image, img);
				CHECK_STR(it.question, sc.qa[q].question);
				CHECK_STR(it.category, lvd_shapes_qtype_name(sc.qa[q].type));
				if (sc.qa[q].type == LVD_SHAPES_Q_PRESENCE)
					CHECK(it.kind == LVD_EVAL_KIND_YESNO && !strcmp(it.answer, sc.qa[q].answer));
				else
					CHECK(it.kind == LVD_EVAL_KIND_VQA && it.n_answers == 10 &&
					      !strcmp(it.answers[0], sc.qa[q].answer) &&
					      !strcmp(it.answers[9], sc.qa[q].answer));
				json_decref(j);
			}
		}
		CHECK(lvd_lines_next(lr, &line, &len, &no, &e) == LVD_LINES_EOF);
		lvd_lines_close(lr);
	}
	CHECK(nmaps > 12);
	for (int t = 1; t <= 4; t++)
		CHECKF(tiles_seen[t], "no image with %d tiles", t);
	/* no stray temporary files */
	char cmd[4400];
	snprintf(cmd, sizeof cmd, "find %s -name '*.tmp' | grep -q .", d);
	CHECK(system(cmd) != 0);
	rm_rf(d);
}

static void test_unwritable_out(void)
{
	struct lvd_shapes_opts o = small_opts(1, LVD_SHAPES_TRAIN);
	struct lvd_error e = { 0 };
	CHECK(lvd_shapes_generate(&o, 1, "/proc/no-such/dir", NULL, &e) == LVD_ERR_IO);
	CHECK_CONTAINS(e.msg, "/proc/no-such");
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_inside_hand_pixels),
		TEST(test_inside_matches_oracle),
		TEST(test_render_and_masks_exact),
		TEST(test_text_matches_scene),
		TEST(test_min_max_shapes),
		TEST(test_tiles_cover),
		TEST(test_heldout_layouts),
		TEST(test_map_exact),
		TEST(test_determinism),
		TEST(test_outputs_parse_and_decode),
		TEST(test_unwritable_out),
		{ 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
