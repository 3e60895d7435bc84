/* tests/unit/test_sd_dev.c — the device path of the SD model (lvd_sd_to_device: bf16
 * weights in one block of context memory, every tensor where the context computes, the
 * attn2 capture aggregated by ops) run on a CPU context, where it needs no GPU, and
 * sd-attnmap's multi-sample procedure (lvd_attnmap_samples_run, the GPU tool's) on the
 * fp32 CPU path. tests/gpu/test_cuda_sd.c runs the same comparisons on a CUDA context.
 *
 *   - the map resize by ops (lvd_attnmap_map_add into a zeroed slot + lvd_attnmap_sum_add) gives the
 *     bits of the host loop lvd_attnmap_acc_add (what keeps the CPU tool bit-identical);
 *   - text encoder, VAE, UNet and its attn2 maps with bf16 weights vs fp32;
 *   - sample maps with bf16 weights vs fp32 within SD_DEV_MAP_TOL (tests/sd_dev_util.h);
 *   - several samples per batched UNet pass (two shapes, grouped) vs one at a time;
 *   - the workspace is given back; --method inversion on a device model is refused. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sd_dev_util.h"
#include "core/rng.h"
#include "nn/ctx.h"

static struct lvd_ctx *cpu_ctx(int threads)
{
	struct lvd_ctx *ctx = NULL;
	struct lvd_error err = {0};
	struct lvd_ctx_opts co = {.threads = threads};
	return lvd_ctx_create(&ctx, &co, &err) ? NULL : ctx;
}

static void fill(float *x, size_t n, uint64_t stream, float lo, float hi)
{
	for (size_t i = 0; i < n; i++)
		x[i] = lo + (hi - lo) * (float)lvd_rng_uniform(11, stream, i);
}

/* Resize by ops on a CPU context == the host loop, bit for bit, for downsampling,
 * upsampling, equal sizes and a non-square map; tokens from position 1. */
static void test_resize_map_bits(void)
{
	static const int shapes[][4] = {{16, 16, 8, 8}, {8, 8, 16, 16}, {12, 16, 12, 16}, {6, 8, 16, 12}, {4, 4, 3, 5}};
	struct lvd_ctx *ctx = cpu_ctx(2);
	REQUIRE(ctx);
	struct lvd_error err = {0};
	const int N = 77, T = 9;
	for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
		int H = shapes[c][0], W = shapes[c][1], gh = shapes[c][2], gw = shapes[c][3];
		struct lvd_attnmap_acc acc;
		REQUIRE(lvd_attnmap_acc_init(&acc, N, 1, T, 2 * H, 2 * W, gh, gw, 1u << 1, &err) == 0);
		size_t nm = (size_t)H * W * N, ng = (size_t)T * gh * gw;
		float *map = malloc(nm * sizeof *map), *sum = calloc(ng, sizeof *sum), *tmp = malloc(ng * sizeof *tmp);
		REQUIRE(map && sum && tmp);
		for (int rep = 0; rep < 2; rep++) {   /* two maps: the second adds to a non-zero sum */
			fill(map, nm, 100 + c * 2 + (size_t)rep, 0.0f, 1.0f);
			CHECK(lvd_attnmap_acc_add(&acc, map, H, W) == 1);
			memset(tmp, 0, ng * sizeof *tmp);
			CHECK(lvd_attnmap_map_add(ctx, &acc, tmp, map, H, W) == 1);
			lvd_attnmap_sum_add(ctx, &acc, sum, tmp);
		}
		CHECKF(!memcmp(sum, acc.sum, ng * sizeof *sum), "resize by ops differs from the host loop at %dx%d -> %dx%d",
		       H, W, gh, gw);
		/* another level is not selected: dst untouched */
		CHECK(lvd_attnmap_map_add(ctx, &acc, tmp, map, H / 2 > 0 ? H / 2 : 1, W) == 0);
		CHECK(lvd_ctx_mark(ctx) == 0);
		free(map);
		free(sum);
		free(tmp);
		lvd_attnmap_acc_free(&acc);
	}
	lvd_ctx_destroy(ctx);
}

struct first_map {
	float *m;
	size_t n;
	int calls;
};

static int keep_first(void *user, const struct lvd_sd_attn_info *info, const float *probs)
{
	struct first_map *f = user;
	if (f->calls++ == 0 && (f->m = malloc((size_t)info->h * info->w * info->n_ctx * sizeof(float)))) {
		f->n = (size_t)info->h * info->w * info->n_ctx;
		lvd_buf_download(info->ctx, f->m, probs, f->n * sizeof(float));
	}
	return 0;
}

/* Relative agreement of bf16-weight forwards with fp32 on the CPU: bf16 rounding of
 * every product's inputs (2^-9 each) through the CLIP layers / the VAE / the UNet of the
 * tiny checkpoint (random inputs). Bounds: about 4x the measurements made when the test
 * was written (noted beside each, as max |diff| over the largest |value|). */
static void test_forwards_bf16(void)
{
	struct lvd_ctx *dev = cpu_ctx(2);
	REQUIRE(dev);
	struct lvd_sd *a = sd_dev_load(NULL), *b = sd_dev_load(dev);
	REQUIRE(a && b);
	struct lvd_error err = {0};
	CHECK(lvd_sd_ctx(b) == dev && lvd_sd_device_bytes(b) > 0 && lvd_sd_device_bytes(a) == 0);
	CHECK(lvd_sd_to_device(b, dev, &err) == LVD_ERR_INVALID);
	const struct lvd_sd_clip_cfg *cc = lvd_sd_clip_config(a);
	const struct lvd_sd_unet_cfg *uc = lvd_sd_unet_config(a);
	/* text */
	int32_t ids[77];
	for (int i = 0; i < 77; i++)
		ids[i] = (int32_t)((i * 131 + 7) % cc->vocab);
	size_t nt = (size_t)77 * cc->width;
	float *ta = malloc(nt * sizeof *ta), *tb = lvd_buf_alloc(dev, nt * sizeof *tb);
	REQUIRE(ta && tb);
	REQUIRE(lvd_sd_text_encode(a, ta, ids, 77, &err) == 0);
	REQUIRE(lvd_sd_text_encode(b, tb, ids, 77, &err) == 0);
	CHECK_CLOSE("text states, bf16 vs fp32", tb, ta, nt, 0, 0.015);   /* measured 0.33% */
	/* VAE on a 64x48 image */
	const int H = 64, W = 48;
	size_t ni = (size_t)3 * H * W, nl = (size_t)4 * (H / 8) * (W / 8);
	float *img = malloc(ni * sizeof *img), *la = malloc(nl * sizeof *la), *lb = lvd_buf_alloc(dev, nl * sizeof *lb);
	float *mb = lvd_buf_alloc(dev, 2 * nl * sizeof *mb), *ma = malloc(2 * nl * sizeof *ma);
	REQUIRE(img && la && lb && ma && mb);
	fill(img, ni, 5, -1.0f, 1.0f);
	REQUIRE(lvd_sd_vae_encode(a, la, ma, img, H, W, &err) == 0);
	REQUIRE(lvd_sd_vae_encode(b, lb, mb, img, H, W, &err) == 0);
	CHECK_CLOSE("latent, bf16 vs fp32", lb, la, nl, 0, 0.08);        /* measured 1.9% */
	CHECK_CLOSE("moments, bf16 vs fp32", mb, ma, 2 * nl, 0, 0.08);   /* measured 1.9% */
	/* UNet: two items with their own contexts and timesteps, the first attn2 map */
	const int lh = 16, lw = 8, B = 2;
	size_t nx = (size_t)uc->in_ch * lh * lw, no = (size_t)uc->out_ch * lh * lw;
	float *x = malloc(B * nx * sizeof *x), *oa = malloc(B * no * sizeof *oa), *ob = lvd_buf_alloc(dev, B * no * sizeof *ob);
	float *ctx2 = malloc(2 * nt * sizeof *ctx2);
	REQUIRE(x && oa && ob && ctx2);
	fill(x, B * nx, 6, -1.0f, 1.0f);
	memcpy(ctx2, ta, nt * sizeof *ta);
	fill(ctx2 + nt, nt, 7, -1.0f, 1.0f);
	float t[2] = {100.0f, 700.0f};
	struct first_map fa = {0}, fb = {0};
	REQUIRE(lvd_sd_unet_forward_batch(a, oa, x, B, lh, lw, t, ctx2, nt, 77, keep_first, &fa, &err) == 0);
	REQUIRE(lvd_sd_unet_forward_batch(b, ob, x, B, lh, lw, t, ctx2, nt, 77, keep_first, &fb, &err) == 0);
	CHECK_CLOSE("unet, bf16 vs fp32", ob, oa, B * no, 0, 0.04);      /* measured 0.95% */
	REQUIRE(fa.m && fb.m && fa.n == fb.n && fa.calls == fb.calls);
	CHECK_CLOSE("first attn2 map, bf16 vs fp32", fb.m, fa.m, fa.n, 0, 0.04);   /* measured 1.0% */
	CHECK(lvd_ctx_mark(dev) == 0);
	free(fa.m);
	free(fb.m);
	free(ta);
	free(img);
	free(la);
	free(ma);
	free(x);
	free(oa);
	free(ctx2);
	lvd_buf_free(dev, tb);
	lvd_buf_free(dev, lb);
	lvd_buf_free(dev, mb);
	lvd_buf_free(dev, ob);
	lvd_sd_free(a);
	lvd_sd_free(b);
	lvd_ctx_destroy(dev);
}

/* Whole samples (real photos): bf16 weights on the CPU vs fp32, within SD_DEV_MAP_TOL. */
static void test_maps_bf16(void)
{
	const char *shared = lvd_test_shared_data();
	if (!shared)
		SKIP("../shared/data not found (set LVD_SHARED_DATA)");
	static struct sd_dev_fixture f;
	sd_dev_fixture_init(&f, shared);
	struct lvd_ctx *dev = cpu_ctx(2);
	REQUIRE(dev);
	struct lvd_sd *a = sd_dev_load(NULL), *b = sd_dev_load(dev);
	REQUIRE(a && b);
	sd_dev_check_samples(a, b, &f, SD_DEV_MAP_TOL);
	/* --method inversion stays on the CPU path */
	struct lvd_attnmap_params p = f.p;
	p.method = LVD_ATTNMAP_INVERSION;
	p.steps = 2;
	p.guidance = 1.0f;
	struct lvd_attnmap_timing tm = {0};
	struct lvd_error err = {0};
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK(lvd_attnmap_sample_run(b, &f.sched, &p, &f.s[0], &buf, &len, &tm, &err) == LVD_ERR_UNSUPPORTED);
	CHECK(buf == NULL);
	CHECK(lvd_ctx_mark(dev) == 0);
	lvd_sd_free(a);
	lvd_sd_free(b);
	lvd_ctx_destroy(dev);
}

/* Three samples, two latent shapes, max_items 8 = two samples of 4 passes per UNet
 * pass: the two 256x256 samples share a pass, the 192x256 one runs alone; each
 * sample's maps equal its single run up to fp32 summation order of the wider GEMMs
 * (~1e-6 relative), then fp16 storage: at most one fp16 ulp, 2^-10 of the value
 * (measured 4.1e-4 of the scale). */
static void test_samples_grouped(void)
{
	const char *shared = lvd_test_shared_data();
	if (!shared)
		SKIP("../shared/data not found (set LVD_SHARED_DATA)");
	static struct sd_dev_fixture f;
	sd_dev_fixture_init(&f, shared);
	struct lvd_sd *a = sd_dev_load(NULL);
	REQUIRE(a);
	sd_dev_check_grouped(a, a, &f, 1.0 / 1024);
	lvd_sd_free(a);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_resize_map_bits), TEST(test_forwards_bf16), TEST(test_maps_bf16),
						  TEST(test_samples_grouped), {0}};
	return lvd_test_main(argc, argv, tests);
}
