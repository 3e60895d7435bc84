/* Tests for lib/lavender/geometry: mllama layout vs transformers (golden), area-weighted
 * resampling of SD maps onto the patch canvas (bump, mass, constant, oracle), --grid. */
#include <jansson.h>
#include <stdint.h>

#include "harness.h"
#include "lavender/geometry.h"

static struct lvd_geom layout_of(int h, int w)
{
	struct lvd_geom_cfg cfg;
	struct lvd_geom g;
	struct lvd_error e = {0};
	lvd_geom_cfg_default(&cfg);
	int rc = lvd_geom_layout(&g, &cfg, h, w, &e);
	LVD_ASSERTF(rc == 0, "%s", e.msg);
	return g;
}

static void test_layout_golden(void)
{
	json_error_t je;
	json_t *root = json_load_file(lvd_test_path("tests/golden/pack/geometry.json"), 0, &je);
	REQUIRE(root);
	struct lvd_geom_cfg cfg;
	lvd_geom_cfg_default(&cfg);
	CHECK(cfg.tile_size == json_integer_value(json_object_get(root, "tile_size")));
	CHECK(cfg.patch_size == json_integer_value(json_object_get(root, "patch_size")));
	int asp[LVD_GEOM_MAX_ASPECTS][2];
	int na = lvd_geom_aspects(4, asp);
	json_t *ja = json_object_get(root, "aspects");
	CHECK(na == (int)json_array_size(ja));
	for (int i = 0; i < na && i < (int)json_array_size(ja); i++) {
		CHECK(asp[i][0] == json_integer_value(json_array_get(json_array_get(ja, i), 0)));
		CHECK(asp[i][1] == json_integer_value(json_array_get(json_array_get(ja, i), 1)));
	}
	json_t *cases = json_object_get(root, "cases");
	REQUIRE(json_array_size(cases) > 100);
	size_t i;
	json_t *c;
	int bad = 0;
	json_array_foreach(cases, i, c) {
		int h = (int)json_integer_value(json_object_get(c, "h"));
		int w = (int)json_integer_value(json_object_get(c, "w"));
		struct lvd_geom g = layout_of(h, w);
		int ok = g.tiles_h == json_integer_value(json_object_get(c, "tiles_h")) &&
			 g.tiles_w == json_integer_value(json_object_get(c, "tiles_w")) &&
			 g.aspect_id == json_integer_value(json_object_get(c, "aspect_id")) &&
			 g.new_h == json_integer_value(json_object_get(c, "new_h")) &&
			 g.new_w == json_integer_value(json_object_get(c, "new_w"));
		CHECKF(ok, "%dx%d: got tiles %dx%d id %d extent %dx%d", h, w, g.tiles_h, g.tiles_w,
		       g.aspect_id, g.new_h, g.new_w);
		bad += !ok;
		CHECK(g.grid_h == g.tiles_h * 40 && g.grid_w == g.tiles_w * 40);
		CHECK(g.new_h <= g.canvas_h && g.new_w <= g.canvas_w);
		CHECK(g.valid_h == (g.new_h + 13) / 14 && g.valid_w == (g.new_w + 13) / 14);
	}
	CHECK(bad == 0);
	json_decref(root);
}

static void test_cfg_json(void)
{
	struct lvd_geom_cfg cfg;
	struct lvd_error e = {0};
	lvd_geom_cfg_default(&cfg);
	const char *c1 = "{\"vision_config\": {\"image_size\": 448, \"patch_size\": 14, \"max_num_tiles\": 2}}";
	CHECK(lvd_geom_cfg_from_json(&cfg, c1, strlen(c1), "config.json", &e) == 0);
	CHECK(cfg.tile_size == 448 && cfg.patch_size == 14 && cfg.max_tiles == 2);
	const char *c2 = "{\"size\": {\"height\": 560, \"width\": 560}, \"max_image_tiles\": 4}";
	CHECK(lvd_geom_cfg_from_json(&cfg, c2, strlen(c2), "preprocessor_config.json", &e) == 0);
	CHECK(cfg.tile_size == 560 && cfg.max_tiles == 4);
	const char *bad1 = "{\"vision_config\": {\"patch_size\": 13}}";
	CHECK(lvd_geom_cfg_from_json(&cfg, bad1, strlen(bad1), "config.json", &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "config.json: patch size 13 does not divide tile size 560");
	lvd_geom_cfg_default(&cfg);
	const char *bad2 = "{\"vision_config\": {\"image_size\": \"560\"}}";
	CHECK(lvd_geom_cfg_from_json(&cfg, bad2, strlen(bad2), "c.json", &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "vision_config.image_size");
	CHECK(lvd_geom_cfg_from_json(&cfg, "{", 1, "c.json", &e) == LVD_ERR_FORMAT);
	const char *bad3 = "{\"max_image_tiles\": 99}";
	CHECK(lvd_geom_cfg_from_json(&cfg, bad3, strlen(bad3), "c.json", &e) == LVD_ERR_INVALID);
	struct lvd_geom g;
	lvd_geom_cfg_default(&cfg);
	CHECK(lvd_geom_layout(&g, &cfg, 0, 5, &e) == LVD_ERR_INVALID);
}

/* Straight 2-D oracle: value = Σ overlap area · s / Σ overlap area over the footprint. */
static double oracle(const struct lvd_geom *g, const float *src, int gh, int gw, int y, int x, double p,
		     double *area_out)
{
	double fy0 = y * p, fy1 = (y + 1) * p, fx0 = x * p, fx1 = (x + 1) * p;
	if (fy1 > g->new_h) fy1 = g->new_h;
	if (fx1 > g->new_w) fx1 = g->new_w;
	double acc = 0, area = 0;
	for (int i = 0; i < gh; i++)
		for (int j = 0; j < gw; j++) {
			double cy0 = (double)g->new_h * i / gh, cy1 = (double)g->new_h * (i + 1) / gh;
			double cx0 = (double)g->new_w * j / gw, cx1 = (double)g->new_w * (j + 1) / gw;
			double oy = fmin(fy1, cy1) - fmax(fy0, cy0), ox = fmin(fx1, cx1) - fmax(fx0, cx0);
			if (oy > 0 && ox > 0) {
				acc += oy * ox * src[i * gw + j];
				area += oy * ox;
			}
		}
	if (area_out)
		*area_out = area;
	return area > 0 ? acc / area : 0;
}

static uint32_t rng_state = 12345;
static float frand(void)
{
	rng_state = rng_state * 1664525u + 1013904223u;
	return (float)((rng_state >> 8) & 0xffff) / 65536.0f;
}

/* One image size per supported arrangement (a, b): (a·500, b·500) picks (a, b). */
static void test_bump_every_aspect(void)
{
	int asp[LVD_GEOM_MAX_ASPECTS][2];
	int na = lvd_geom_aspects(4, asp);
	struct lvd_error e = {0};
	for (int k = 0; k < na; k++) {
		struct lvd_geom g = layout_of(asp[k][0] * 500 + 7, asp[k][1] * 500 - 3);
		CHECK(g.tiles_h == asp[k][0] && g.tiles_w == asp[k][1] && g.aspect_id == k + 1);
		int gh = 48 * asp[k][0], gw = 48 * asp[k][1]; /* cells smaller than a patch */
		struct lvd_geom_resampler r;
		REQUIRE(lvd_geom_resampler_init(&r, &g, gh, gw, 0, &e) == 0);
		float *src = calloc((size_t)gh * gw, sizeof *src);
		float *dst = malloc((size_t)g.grid_h * g.grid_w * sizeof *dst);
		for (int trial = 0; trial < 40; trial++) {
			int i = (int)(frand() * gh), j = (int)(frand() * gw);
			memset(src, 0, (size_t)gh * gw * sizeof *src);
			src[i * gw + j] = 1;
			lvd_geom_resample(&r, dst, src);
			/* the patch holding the cell's centre gets the largest value; every
			 * non-zero patch overlaps the cell; nothing outside the image */
			double cy = (double)g.new_h * (i + 0.5) / gh, cx = (double)g.new_w * (j + 0.5) / gw;
			int py = (int)(cy / 14), px = (int)(cx / 14);
			int by = -1, bx = -1;
			float best = -1;
			int stray = 0;
			for (int y = 0; y < g.grid_h; y++)
				for (int x = 0; x < g.grid_w; x++) {
					float v = dst[y * g.grid_w + x];
					if (v > best) { best = v; by = y; bx = x; }
					double y0 = (double)g.new_h * i / gh, y1 = (double)g.new_h * (i + 1) / gh;
					double x0 = (double)g.new_w * j / gw, x1 = (double)g.new_w * (j + 1) / gw;
					int overl = y * 14 < y1 && (y + 1) * 14 > y0 && x * 14 < x1 && (x + 1) * 14 > x0;
					if (v != 0 && !overl)
						stray++;
				}
			CHECK(stray == 0);
			/* a cell (≈10.6 px) inside one 14-px patch may straddle two; the centre's
			 * patch holds the larger share only when the centre is not on a border */
			double fy = cy / 14 - py, fx = cx / 14 - px;
			if (fy > 0.4 && fy < 0.6 && fx > 0.4 && fx < 0.6)
				CHECKF(by == py && bx == px, "aspect %dx%d cell (%d,%d): argmax (%d,%d), want (%d,%d)",
				       asp[k][0], asp[k][1], i, j, by, bx, py, px);
			CHECK(by == py || by == py - 1 || by == py + 1);
			CHECK(bx == px || bx == px - 1 || bx == px + 1);
		}
		free(src);
		free(dst);
		lvd_geom_resampler_free(&r);
	}
}

static void test_oracle_mass_constant(void)
{
	struct lvd_error e = {0};
	const int sizes[][2] = {{480, 640}, {640, 427}, {300, 1200}, {2000, 500}, {100, 100}, {1700, 1600}};
	const int grids[][2] = {{48, 64}, {64, 43}, {16, 64}, {64, 16}, {7, 7}, {33, 31}};
	for (int s = 0; s < 6; s++) {
		struct lvd_geom g = layout_of(sizes[s][0], sizes[s][1]);
		int gh = grids[s][0], gw = grids[s][1];
		struct lvd_geom_resampler r;
		REQUIRE(lvd_geom_resampler_init(&r, &g, gh, gw, 0, &e) == 0);
		size_t n = (size_t)g.grid_h * g.grid_w;
		float *src = malloc((size_t)gh * gw * sizeof *src), *dst = malloc(n * sizeof *dst);
		float *want = malloc(n * sizeof *want);
		double mass_src = 0, mass_dst = 0;
		for (int i = 0; i < gh * gw; i++)
			src[i] = frand();
		for (int i = 0; i < gh * gw; i++)
			mass_src += src[i] * ((double)g.new_h / gh) * ((double)g.new_w / gw);
		lvd_geom_resample(&r, dst, src);
		int nvalid = 0;
		for (int y = 0; y < g.grid_h; y++)
			for (int x = 0; x < g.grid_w; x++) {
				double area;
				want[y * g.grid_w + x] = (float)oracle(&g, src, gh, gw, y, x, 14, &area);
				mass_dst += dst[y * g.grid_w + x] * area;
				int v = r.valid[y * g.grid_w + x];
				nvalid += v;
				CHECK(v == (y < g.valid_h && x < g.valid_w));
				CHECK(v == (area > 0));
			}
		/* fp32 storage of a double mean: relative error ~1e-7 of values in [0,1) */
		CHECK_CLOSE("resample vs 2-D oracle", dst, want, n, 1e-6, 0);
		/* mass: double sums of fp32 values over ≤ 25600 patches */
		CHECK_NEAR(mass_dst / mass_src, 1.0, 1e-6);
		CHECK(nvalid == g.valid_h * g.valid_w);
		for (int i = 0; i < gh * gw; i++)
			src[i] = 0.25f;
		lvd_geom_resample(&r, dst, src);
		int bad = 0;
		for (size_t i = 0; i < n; i++)
			bad += r.valid[i] ? fabsf(dst[i] - 0.25f) > 1e-6f : dst[i] != 0;
		CHECK(bad == 0);
		free(src); free(dst); free(want);
		lvd_geom_resampler_free(&r);
	}
}

static void test_grid_mode(void)
{
	struct lvd_error e = {0};
	struct lvd_geom g = layout_of(480, 640);
	struct lvd_geom_resampler r;
	/* 32 -> 32: identity */
	REQUIRE(lvd_geom_resampler_init(&r, &g, 32, 32, 32, &e) == 0);
	CHECK(r.dst_h == 32 && r.dst_w == 32);
	float src[64 * 64], dst[32 * 32], want[32 * 32];
	for (int i = 0; i < 32 * 32; i++)
		src[i] = frand();
	lvd_geom_resample(&r, dst, src);
	/* equal cells: weights are exact multiples, so only fp32 rounding of the mean */
	CHECK_CLOSE("grid identity", dst, src, 32 * 32, 1e-7, 0);
	int allvalid = 1;
	for (int i = 0; i < 32 * 32; i++)
		allvalid &= r.valid[i];
	CHECK(allvalid);
	lvd_geom_resampler_free(&r);
	/* 64 -> 32: 2x2 box average */
	REQUIRE(lvd_geom_resampler_init(&r, &g, 64, 64, 32, &e) == 0);
	for (int i = 0; i < 64 * 64; i++)
		src[i] = frand();
	for (int y = 0; y < 32; y++)
		for (int x = 0; x < 32; x++)
			want[y * 32 + x] = (src[(2 * y) * 64 + 2 * x] + src[(2 * y) * 64 + 2 * x + 1] +
					    src[(2 * y + 1) * 64 + 2 * x] + src[(2 * y + 1) * 64 + 2 * x + 1]) / 4;
	lvd_geom_resample(&r, dst, src);
	CHECK_CLOSE("grid 2x2 mean", dst, want, 32 * 32, 1e-6, 0); /* fp32 sum order */
	lvd_geom_resampler_free(&r);
	CHECK(lvd_geom_resampler_init(&r, &g, 0, 64, 32, &e) == LVD_ERR_INVALID);
	CHECK(lvd_geom_resampler_init(&r, &g, 64, 64, 5000, &e) == LVD_ERR_INVALID);
}

static void test_minmax(void)
{
	float x[6] = {2, 4, 3, 100, -5, 6};
	uint8_t v[6] = {1, 1, 1, 0, 0, 1};
	float mn, mx;
	lvd_minmax_norm(x, v, 6, 1e-6f, &mn, &mx);
	CHECK(mn == 2 && mx == 6);
	CHECK(x[0] == 0 && x[3] == 0 && x[4] == 0);
	CHECK_NEAR(x[5], 4.0 / (4.0 + 1e-6), 1e-7);
	CHECK_NEAR(x[2], 0.25, 1e-6);
	float c[3] = {7, 7, 7};
	lvd_minmax_norm(c, NULL, 3, 1e-6f, &mn, &mx);
	CHECK(c[0] == 0 && c[1] == 0 && c[2] == 0);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_layout_golden), TEST(test_cfg_json), TEST(test_bump_every_aspect),
		TEST(test_oracle_mass_constant), TEST(test_grid_mode), TEST(test_minmax), {0}};
	return lvd_test_main(argc, argv, tests);
}
