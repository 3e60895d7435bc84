/* tests/unit/test_sd.c — SD 1.x networks against diffusers/transformers golden data
 * (tests/ref/gen_sd.py): a tiny random-weight CLIP text encoder, VAE and UNet, loaded from
 * both a diffusers folder (F32 text/VAE in place, F16 UNet) and an ldm single file (BF16
 * UNet/CLIP, F16 VAE), fed a real photo and caption; every output and every captured
 * cross-attention map is compared. Plus loader errors and the DDPM schedule. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "golden_util.h"
#include "io/safetensors.h"
#include "models/sd/sd.h"
#include "nn/ctx.h"

#define GOLD "tests/golden/sd/golden.safetensors"
#define DIFF "tests/golden/sd/diffusers"
#define LDM "tests/golden/sd/ldm.safetensors"

static struct lvd_st *gold;

static struct lvd_st *open_gold(void)
{
	if (!gold) {
		struct lvd_error err = {0};
		if (lvd_st_open(&gold, lvd_test_path(GOLD), &err)) {
			fprintf(stderr, "  cannot open golden: %s\n", err.msg);
			return NULL;
		}
	}
	return gold;
}

static float *gload(const char *name, size_t *n)
{
	return lvd_gold_f32(open_gold(), name, n);
}


/* The tiny single file cannot say its head counts or group counts: pass them. */
static const struct lvd_sd_opts LDM_OPTS = {.unet_heads = 2, .clip_heads = 2, .norm_groups = 4};

static struct lvd_sd *load(const char *rel, const struct lvd_sd_opts *o)
{
	struct lvd_sd *sd = NULL;
	struct lvd_error err = {0};
	if (lvd_sd_load(&sd, lvd_test_path(rel), o, &err)) {
		fprintf(stderr, "  load %s: %s\n", rel, err.msg);
		return NULL;
	}
	return sd;
}

static void check_text(struct lvd_sd *sd, const char *what)
{
	size_t n_ids, n_ref;
	float *idsf = gload("ids", &n_ids), *ref = gload("text_states", &n_ref);
	REQUIRE(idsf && ref && n_ids == 77);
	int32_t ids[77];
	for (int i = 0; i < 77; i++)
		ids[i] = (int32_t)idsf[i];
	const struct lvd_sd_clip_cfg *c = lvd_sd_clip_config(sd);
	REQUIRE(c && c->width == 64 && c->layers == 2 && c->heads == 2 && c->n_pos == 77);
	float *out = calloc(n_ref, sizeof(float));
	struct lvd_error err = {0};
	CHECK(lvd_sd_text_encode(sd, out, ids, 77, &err) == 0);
	/* fp32 both sides, 2 LayerNormed layers: differences are summation order only;
	 * 1e-4 of the tensor scale is the fp32 bound. */
	double tol = 1e-4 * lvd_gold_max_abs(ref, n_ref);
	CHECKF(CHECK_CLOSE(what, out, ref, n_ref, tol, 0), "text states (%s)", what);
	free(out);
	free(ref);
	free(idsf);
}

static void check_vae(struct lvd_sd *sd, const char *what)
{
	size_t ni, nl, nm;
	float *img = gload("image", &ni), *lat = gload("vae_latent", &nl), *mom = gload("vae_moments", &nm);
	REQUIRE(img && lat && mom && ni == 3 * 64 * 128 && nl == 4 * 8 * 16 && nm == 2 * nl);
	float *out = calloc(nl, sizeof(float)), *mo = calloc(nm, sizeof(float));
	struct lvd_error err = {0};
	CHECK(lvd_sd_vae_encode(sd, out, mo, img, 64, 128, &err) == 0);
	/* fp32, ~20 conv layers: summation-order noise only; 1e-4 of scale per the issue. */
	CHECK_CLOSE(what, out, lat, nl, 1e-4 * lvd_gold_max_abs(lat, nl), 0);
	CHECK_CLOSE(what, mo, mom, nm, 1e-4 * lvd_gold_max_abs(mom, nm), 0);
	/* odd sizes are refused with a message */
	CHECK(lvd_sd_vae_encode(sd, out, NULL, img, 60, 128, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "multiples of 8");
	free(out);
	free(mo);
	free(img);
	free(lat);
	free(mom);
}

struct capture {
	char names[32][128];
	float *maps[32];
	int h[32], w[32], n;
	int bad_index;
};

static int cap_cb(void *user, const struct lvd_sd_attn_info *info, const float *probs)
{
	struct capture *c = user;
	if (c->n >= 32 || info->index != c->n)
		c->bad_index = 1;
	if (c->n >= 32)
		return 1;
	snprintf(c->names[c->n], sizeof c->names[0], "%s", info->name);
	size_t sz = (size_t)info->h * info->w * info->n_ctx;
	c->maps[c->n] = malloc(sizeof(float) * sz);
	memcpy(c->maps[c->n], probs, sizeof(float) * sz);
	c->h[c->n] = info->h;
	c->w[c->n] = info->w;
	c->n++;
	return 0;
}

static void check_unet(struct lvd_sd *sd, const char *what)
{
	size_t nx, nc, no;
	float *xt = gload("x_t", &nx), *ctx = gload("text_states", &nc), *ref = gload("unet_out", &no);
	float *tt = gload("t", NULL);
	REQUIRE(xt && ctx && ref && tt && nx == 4 * 8 * 16 && nc == 77 * 64);
	float *out = calloc(no, sizeof(float));
	struct capture cap = {0};
	struct lvd_error err = {0};
	CHECK(lvd_sd_unet_forward(sd, out, xt, 8, 16, tt[0], ctx, 77, cap_cb, &cap, &err) == 0);
	/* fp32 through ~60 layers incl. softmaxes: summation order only; 1e-4 of scale. */
	CHECK_CLOSE(what, out, ref, no, 1e-4 * lvd_gold_max_abs(ref, no), 0);
	CHECK(!cap.bad_index);
	CHECK(cap.n == 16);
	const char *order = lvd_st_metadata(open_gold(), "attn_order");
	REQUIRE(order);
	const char *p = order;
	for (int i = 0; i < cap.n; i++) {
		char want[160], key[200];
		size_t len = strcspn(p, ",");
		snprintf(want, sizeof want, "%.*s", (int)len, p);
		p += len + (p[len] == ',');
		CHECK_STR(cap.names[i], want);
		snprintf(key, sizeof key, "attn.%s", want);
		size_t nm;
		float *m = gload(key, &nm);
		REQUIRE(m);
		CHECK(nm == (size_t)cap.h[i] * cap.w[i] * 77);
		/* probabilities in [0, 1], fp32 softmax: 1e-5 absolute (1e-4 relative to
		 * a max probability near 0.1) */
		char lbl[240];
		snprintf(lbl, sizeof lbl, "%s %s", what, want);
		CHECK_CLOSE(lbl, cap.maps[i], m, nm, 1e-4 * lvd_gold_max_abs(m, nm), 0);
		/* rows sum to one */
		double s = 0;
		for (int j = 0; j < 77; j++)
			s += cap.maps[i][j];
		CHECK_NEAR(s, 1.0, 1e-5);
		free(m);
	}
	for (int i = 0; i < cap.n; i++)
		free(cap.maps[i]);
	free(out);
	free(xt);
	free(ctx);
	free(ref);
	free(tt);
}

static void test_diffusers_folder(void)
{
	if (!open_gold())
		SKIP("golden files absent (run tests/ref/gen_sd.py)");
	struct lvd_sd *sd = load(DIFF, NULL);
	REQUIRE(sd);
	const struct lvd_sd_unet_cfg *u = lvd_sd_unet_config(sd);
	REQUIRE(u && u->levels == 4 && u->ch[0] == 8 && u->ch[3] == 32 && u->heads[0] == 2 &&
		u->down_attn[0] && !u->down_attn[3] && !u->up_attn[0] && u->up_attn[3] && u->ctx_dim == 64);
	/* text encoder and VAE are F32 (used in place); only the F16 UNet is converted */
	CHECK(lvd_sd_converted_bytes(sd) > 0 && lvd_sd_converted_bytes(sd) < 576540 * 4 + 4096);
	check_text(sd, "diffusers text");
	check_vae(sd, "diffusers vae");
	check_unet(sd, "diffusers unet");
	lvd_sd_free(sd);
}

static void test_ldm_single_file(void)
{
	if (!open_gold())
		SKIP("golden files absent (run tests/ref/gen_sd.py)");
	struct lvd_sd *sd = load(LDM, &LDM_OPTS);
	REQUIRE(sd);
	const struct lvd_sd_unet_cfg *u = lvd_sd_unet_config(sd);
	REQUIRE(u && u->levels == 4 && u->layers_per_block == 2 && u->ch[1] == 16 && u->temb_dim == 32 &&
		u->tblocks == 1 && !u->linear_proj && u->up_attn[1] && !u->up_attn[0]);
	const struct lvd_sd_vae_cfg *v = lvd_sd_vae_config(sd);
	REQUIRE(v && v->levels == 4 && v->ch[0] == 8 && v->latent_ch == 4 && v->layers_per_block == 2);
	check_text(sd, "ldm text");
	check_vae(sd, "ldm vae");
	check_unet(sd, "ldm unet");
	lvd_sd_free(sd);
}

/* Every 3x3 stride-1 conv as Winograd F(2x2, 3x3) (the automatic choice takes it only
 * from 256 pixels and 16 channels, which the tiny golden UNet never has), then as
 * F(4x4, 3x3), with and without a pool: the same goldens at the same tolerances
 * (F(4x4) measured 1.1e-6 on the VAE latents against the 1.2e-5 bound, 2.4e-6 on the
 * UNet against 1.1e-4). */
static void test_winograd_golden(void)
{
	if (!open_gold())
		SKIP("golden files absent (run tests/ref/gen_sd.py)");
	for (int mode = 1; mode <= 2; mode++)
		for (int T = 1; T <= 2; T++) {
			struct lvd_sd_opts o = {.winograd = mode, .threads = T};
			struct lvd_sd *sd = load(DIFF, &o);
			REQUIRE(sd);
			char what[64];
			snprintf(what, sizeof what, "winograd F(%d) vae, %d threads", 2 * mode, T);
			check_vae(sd, what);
			snprintf(what, sizeof what, "winograd F(%d) unet, %d threads", 2 * mode, T);
			check_unet(sd, what);
			lvd_sd_free(sd);
		}
}

/* A borrowed context (lvd_sd_opts.ctx): plain CPU paths (cpu_fast = 0, im2col convs,
 * scalar softmax/GELU/GroupNorm) on 2 threads give the same goldens at the same
 * tolerances, and every pass gives the workspace back. */
static void test_borrowed_ctx_plain(void)
{
	if (!open_gold())
		SKIP("golden files absent (run tests/ref/gen_sd.py)");
	struct lvd_ctx *ctx = NULL;
	struct lvd_error err = {0};
	struct lvd_ctx_opts co = {.threads = 2, .cpu_plain = 1};
	REQUIRE(lvd_ctx_create(&ctx, &co, &err) == 0);
	struct lvd_sd_opts o = {.ctx = ctx};
	struct lvd_sd *sd = load(DIFF, &o);
	REQUIRE(sd);
	check_vae(sd, "plain paths vae, borrowed 2-thread ctx");
	check_unet(sd, "plain paths unet, borrowed 2-thread ctx");
	CHECK(lvd_ctx_mark(ctx) == 0 && lvd_ctx_ws_peak(ctx) > 0);
	lvd_sd_free(sd);
	lvd_ctx_destroy(ctx);
}

/* Batched UNet (lvd_sd_unet_forward_batch): 4 latents at 4 timesteps in one pass equal
 * 4 single passes, for every item's output and every captured map, with one shared
 * context and with per-item contexts, on the default paths (im2col convs on the items
 * stacked into one image) and on Winograd with a 2-thread pool. The callback sees each
 * layer for items 0..3 in order. Tolerance: the batch runs GEMMs with 4x the rows or
 * columns, which changes OpenBLAS kernels and blockings (and Winograd tiles straddle
 * other pixels), so only fp32 summation order differs: outputs within 1e-5 of their
 * scale (measured 4.4e-7), maps within 3e-5 of their largest probability (measured
 * 4.3e-6: the scores' rounding is amplified by exp in the softmax). */
#define NB 4
struct bcap {
	float *maps[NB][16];
	size_t sz[NB][16];
	int n[NB], calls, B, bad;
};

static int bcap_cb(void *user, const struct lvd_sd_attn_info *info, const float *probs)
{
	struct bcap *c = user;
	int item = info->item, want_item = c->calls % c->B, want_index = c->calls / c->B;
	c->calls++;
	if (item != want_item || info->index != want_index || item < 0 || item >= NB || c->n[item] >= 16) {
		c->bad = 1;
		return 1;
	}
	size_t sz = (size_t)info->h * info->w * info->n_ctx;
	float *m = malloc(sizeof(float) * sz);
	if (!m)
		return 1;
	memcpy(m, probs, sizeof(float) * sz);
	c->sz[item][c->n[item]] = sz;
	c->maps[item][c->n[item]++] = m;
	return 0;
}

static void bcap_free(struct bcap *c)
{
	for (int b = 0; b < NB; b++)
		for (int i = 0; i < c->n[b]; i++)
			free(c->maps[b][i]);
	memset(c, 0, sizeof *c);
}

static void check_unet_batch(struct lvd_sd *sd, const char *what)
{
	size_t nx, nc;
	float *xt = gload("x_t", &nx), *ctx = gload("text_states", &nc);
	REQUIRE(xt && ctx && nx == 4 * 8 * 16 && nc == 77 * 64);
	const size_t no = nx;   /* out_ch == in_ch == 4 */
	float ts[NB] = {100, 300, 500, 700};
	float *xb = malloc(sizeof(float) * NB * nx), *cb = malloc(sizeof(float) * NB * nc);
	float *ob = malloc(sizeof(float) * NB * no), *o1 = malloc(sizeof(float) * no);
	REQUIRE(xb && cb && ob && o1);
	for (int b = 0; b < NB; b++) {
		for (size_t i = 0; i < nx; i++)
			xb[b * nx + i] = xt[i] * (1.0f + 0.25f * b) + 0.1f * b * sinf((float)i);
		for (size_t i = 0; i < nc; i++)
			cb[b * nc + i] = ctx[i] * (1.0f - 0.2f * b);
	}
	struct lvd_error err = {0};
	for (int per_item = 0; per_item <= 1; per_item++) {
		struct bcap bc = {.B = NB};
		CHECK(lvd_sd_unet_forward_batch(sd, ob, xb, NB, 8, 16, ts, per_item ? cb : ctx, per_item ? nc : 0, 77,
						bcap_cb, &bc, &err) == 0);
		CHECK(!bc.bad && bc.calls == NB * 16);
		double worst_o = 0, worst_m = 0;
		for (int b = 0; b < NB; b++) {
			struct bcap c1 = {.B = 1};
			const float *cx = per_item ? cb + b * nc : ctx;
			CHECK(lvd_sd_unet_forward(sd, o1, xb + b * nx, 8, 16, ts[b], cx, 77, bcap_cb, &c1, &err) == 0);
			CHECK(!c1.bad && c1.n[0] == 16 && bc.n[b] == 16);
			char lbl[160];
			snprintf(lbl, sizeof lbl, "%s, %s context, item %d output", what, per_item ? "per-item" : "shared", b);
			double sc = lvd_gold_max_abs(o1, no);
			CHECK(sc > 0);
			CHECK_CLOSE(lbl, ob + b * no, o1, no, 1e-5 * sc, 0);
			for (size_t i = 0; i < no; i++)
				worst_o = fmax(worst_o, fabs(ob[b * no + i] - o1[i]) / sc);
			for (int l = 0; l < 16 && l < c1.n[0] && l < bc.n[b]; l++) {
				size_t nm = c1.sz[0][l];
				CHECK(bc.sz[b][l] == nm);
				if (bc.sz[b][l] != nm)
					continue;
				double ms = lvd_gold_max_abs(c1.maps[0][l], nm);
				snprintf(lbl, sizeof lbl, "%s, %s context, item %d map %d", what,
					 per_item ? "per-item" : "shared", b, l);
				CHECK_CLOSE(lbl, bc.maps[b][l], c1.maps[0][l], nm, 3e-5 * ms, 0);
				for (size_t i = 0; i < nm; i++)
					worst_m = fmax(worst_m, fabs(bc.maps[b][l][i] - c1.maps[0][l][i]) / ms);
			}
			bcap_free(&c1);
		}
		bcap_free(&bc);
		fprintf(stderr, "  %s, %s context: worst diff %.2g (output), %.2g (maps) of scale\n", what,
			per_item ? "per-item" : "shared", worst_o, worst_m);
	}
	/* bad batch sizes */
	CHECK(lvd_sd_unet_forward_batch(sd, ob, xb, 0, 8, 16, ts, ctx, 0, 77, NULL, NULL, &err) == LVD_ERR_INVALID);
	free(xb); free(cb); free(ob); free(o1); free(xt); free(ctx);
}

static void test_unet_batch(void)
{
	if (!open_gold())
		SKIP("golden files absent (run tests/ref/gen_sd.py)");
	struct lvd_sd *sd = load(DIFF, NULL);
	REQUIRE(sd);
	check_unet_batch(sd, "batch, default paths");
	lvd_sd_free(sd);
	sd = load(DIFF, &(struct lvd_sd_opts){.winograd = 1, .threads = 2});
	REQUIRE(sd);
	check_unet_batch(sd, "batch, winograd, 2 threads");
	lvd_sd_free(sd);
}

/* A callback that records each layer's index and level and returns LVD_SD_CB_DONE at
 * index `stop` (or aborts there with `abort_rc`). */
struct stopcap {
	int stop, abort_rc, n, items[LVD_SD_MAX_BATCH], index[64], level[64];
};

static int stop_cb(void *user, const struct lvd_sd_attn_info *info, const float *probs)
{
	(void)probs;
	struct stopcap *c = user;
	c->items[info->item]++;
	if (info->item == 0 && c->n < 64) {
		c->index[c->n] = info->index;
		c->level[c->n++] = info->level;
	}
	if (info->index == c->stop && info->item == 0)
		return c->abort_rc ? c->abort_rc : LVD_SD_CB_DONE;
	return 0;
}

/* LVD_SD_CB_DONE ends the pass after that layer (every item still sees it), the forward
 * returns 0 and leaves out unwritten; lvd_sd_unet_last_attn2 names, for each level mask,
 * the last index a full pass reports at those levels; any other non-zero aborts. */
static void test_unet_stop(void)
{
	if (!open_gold())
		SKIP("golden files absent (run tests/ref/gen_sd.py)");
	struct lvd_sd *sd = load(DIFF, NULL);
	REQUIRE(sd);
	size_t nx, nc;
	float *xt = gload("x_t", &nx), *ctx = gload("text_states", &nc);
	REQUIRE(xt && ctx && nx == 4 * 8 * 16);
	const int NS = 3; /* batch items */
	float *xb = malloc(sizeof(float) * NS * nx), *ob = malloc(sizeof(float) * NS * nx);
	REQUIRE(xb && ob);
	for (int b = 0; b < NS; b++)
		memcpy(xb + b * nx, xt, sizeof(float) * nx);
	float ts[3] = {100, 500, 900};
	struct lvd_error err = {0};
	struct stopcap full = {.stop = -1};
	CHECK(lvd_sd_unet_forward_batch(sd, ob, xb, NS, 8, 16, ts, ctx, 0, 77, stop_cb, &full, &err) == 0);
	REQUIRE(full.n == 16);
	CHECK(lvd_sd_unet_last_attn2(sd, 0, NULL) == -1);
	for (unsigned mask = 1; mask < 16; mask++) {
		int want = -1;
		for (int i = 0; i < full.n; i++)
			if (mask & (1u << full.level[i]))
				want = full.index[i];
		CHECKF(lvd_sd_unet_last_attn2(sd, mask, NULL) == want, "mask %u: %d, want %d", mask,
		       lvd_sd_unet_last_attn2(sd, mask, NULL), want);
	}
	int stops[] = {0, 7, lvd_sd_unet_last_attn2(sd, 6, NULL), 15};
	for (int s = 0; s < 4; s++) {
		for (size_t i = 0; i < NS * nx; i++)
			ob[i] = -12345.0f;
		struct stopcap c = {.stop = stops[s]};
		CHECK(lvd_sd_unet_forward_batch(sd, ob, xb, NS, 8, 16, ts, ctx, 0, 77, stop_cb, &c, &err) == 0);
		CHECKF((c.n) == (stops[s] + 1), "%d, want %d", (c.n), (stops[s] + 1));
		for (int b = 0; b < NS; b++)
			CHECKF((c.items[b]) == (stops[s] + 1), "%d, want %d", (c.items[b]), (stops[s] + 1));
		int untouched = 1;
		for (size_t i = 0; i < NS * nx; i++)
			untouched &= ob[i] == -12345.0f;
		CHECK(untouched);   /* even a stop at the last layer skips the tail */
	}
	struct stopcap ab = {.stop = 4, .abort_rc = 1};
	CHECK(lvd_sd_unet_forward_batch(sd, ob, xb, NS, 8, 16, ts, ctx, 0, 77, stop_cb, &ab, &err) == LVD_ERR_INVALID);
	CHECKF((ab.n) == (5), "%d, want %d", (ab.n), (5));
	free(xb);
	free(ob);
	free(xt);
	free(ctx);
	lvd_sd_free(sd);
}

static void test_components_subset(void)
{
	if (!open_gold())
		SKIP("golden files absent");
	struct lvd_sd_opts o = LDM_OPTS;
	o.components = LVD_SD_TEXT;
	struct lvd_sd *sd = load(LDM, &o);
	REQUIRE(sd);
	CHECK(lvd_sd_clip_config(sd) != NULL);
	CHECK(lvd_sd_unet_config(sd) == NULL && lvd_sd_vae_config(sd) == NULL);
	struct lvd_error err = {0};
	float x[4];
	CHECK(lvd_sd_vae_encode(sd, x, NULL, x, 8, 8, &err) == LVD_ERR_INVALID);
	int32_t bad[2] = {0, 5000};
	float out[2 * 64];
	CHECK(lvd_sd_text_encode(sd, out, bad, 2, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "id 5000");
	lvd_sd_free(sd);
}

/* Writes a copy of the ldm file with one tensor dropped or reshaped, or extra tensors. */
static int write_variant(const char *dst, const char *drop, const char *reshape, const char *extra)
{
	struct lvd_st *st;
	struct lvd_error err = {0};
	if (lvd_st_open(&st, lvd_test_path(LDM), &err))
		return -1;
	struct lvd_st_writer *w = lvd_st_writer_new();
	int rc = 0;
	for (size_t i = 0; i < lvd_st_count(st) && !rc; i++) {
		const struct lvd_tensor_view *tv = lvd_st_at(st, i);
		if (drop && !strcmp(tv->name, drop))
			continue;
		int64_t shape[LVD_ST_MAX_DIMS];
		memcpy(shape, tv->shape, sizeof shape);
		int nd = tv->ndim;
		if (reshape && !strcmp(tv->name, reshape)) {
			shape[0] = 1;  /* [a, b, ...] -> [1, a·b·...] keeps the byte count */
			shape[1] = tv->numel;
			nd = 2;
		}
		rc = lvd_st_writer_add(w, tv->name, tv->dtype, nd, shape, tv->data, &err);
	}
	static const float one = 1.0f;
	if (!rc && extra)
		rc = lvd_st_writer_add(w, extra, LVD_DT_F32, 1, (const int64_t[]){1}, &one, &err);
	if (!rc)
		rc = lvd_st_writer_write(w, dst, &err);
	lvd_st_writer_free(w);
	lvd_st_close(st);
	return rc;
}

static void test_load_errors(void)
{
	if (!open_gold())
		SKIP("golden files absent");
	char path[512];
	snprintf(path, sizeof path, "/tmp/lvd-test-sd-%d.safetensors", (int)getpid());
	struct lvd_sd *sd = NULL;
	struct lvd_error err = {0};
	/* missing tensor: named with the file */
	const char *miss = "model.diffusion_model.output_blocks.4.1.transformer_blocks.0.attn2.to_k.weight";
	REQUIRE(write_variant(path, miss, NULL, NULL) == 0);
	CHECK(lvd_sd_load(&sd, path, &LDM_OPTS, &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, miss);
	CHECK_CONTAINS(err.msg, path);
	CHECK(sd == NULL);
	/* wrong shape */
	const char *bad = "first_stage_model.encoder.down.1.block.0.conv2.weight";
	REQUIRE(write_variant(path, NULL, bad, NULL) == 0);
	CHECK(lvd_sd_load(&sd, path, &LDM_OPTS, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, bad);
	CHECK_CONTAINS(err.msg, "expected [16, 16, 3, 3]");
	/* SDXL marker */
	REQUIRE(write_variant(path, NULL, NULL, "conditioner.embedders.1.model.token_embedding.weight") == 0);
	CHECK(lvd_sd_load(&sd, path, &LDM_OPTS, &err) == LVD_ERR_UNSUPPORTED);
	CHECK_CONTAINS(err.msg, "SDXL");
	/* an SD 2.x OpenCLIP text tower marker alone (a [1] tensor, no resblocks): the
	 * OpenCLIP path is taken and names what is malformed (SD 2.x is test_sd2.c) */
	REQUIRE(write_variant(path, NULL, NULL, "cond_stage_model.model.token_embedding.weight") == 0);
	CHECK(lvd_sd_load(&sd, path, &LDM_OPTS, &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, "OpenCLIP");
	/* not a checkpoint at all */
	CHECK(lvd_sd_load(&sd, lvd_test_path(GOLD), NULL, &err) != 0);
	CHECK(sd == NULL);
	remove(path);
	/* missing folder */
	CHECK(lvd_sd_load(&sd, "/nonexistent/sd", NULL, &err) != 0);
}

/* The head count is not in the single file's shapes: a wrong override loads but must
 * give different numbers (shows the golden comparison is sensitive to it), and SD 1.x
 * defaults (32 groups) are refused for 8-channel levels with a clear message. */
static void test_wrong_heads_detected(void)
{
	if (!open_gold())
		SKIP("golden files absent");
	struct lvd_sd_opts o = LDM_OPTS;
	o.unet_heads = 4;
	o.components = LVD_SD_UNET;
	struct lvd_sd *sd = load(LDM, &o);
	REQUIRE(sd);
	size_t nx, no;
	float *xt = gload("x_t", &nx), *ctx = gload("text_states", NULL), *ref = gload("unet_out", &no);
	REQUIRE(xt && ctx && ref);
	float *out = calloc(no, sizeof(float));
	struct lvd_error err = {0};
	CHECK(lvd_sd_unet_forward(sd, out, xt, 8, 16, 400.0f, ctx, 77, NULL, NULL, &err) == 0);
	double worst = 0;
	for (size_t i = 0; i < no; i++)
		worst = fmax(worst, fabs(out[i] - ref[i]));
	CHECK(worst > 1e-2 * lvd_gold_max_abs(ref, no));
	free(out); free(xt); free(ctx); free(ref);
	lvd_sd_free(sd);
	sd = NULL;
	CHECK(lvd_sd_load(&sd, lvd_test_path(LDM), NULL, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "not divisible by 32 groups");
	CHECK(sd == NULL);
}

/* The golden latent is O(1) (std ~1, not the ~0.03 of the default init, which the noise
 * swamped), so the image matters: the UNet on a noised zero latent (same noise, same t)
 * gives clearly different output and maps, and an image-path bug cannot hide. */
static void test_image_matters(void)
{
	if (!open_gold())
		SKIP("golden files absent");
	size_t nl, no;
	float *lat = gload("vae_latent", &nl), *eps = gload("noise", NULL), *ctx = gload("text_states", NULL);
	float *ref = gload("unet_out", &no), *t = gload("t", NULL);
	REQUIRE(lat && eps && ctx && ref && t);
	double s = 0, s2 = 0;
	for (size_t i = 0; i < nl; i++) {
		s += lat[i];
		s2 += (double)lat[i] * lat[i];
	}
	double sdev = sqrt(s2 / nl - (s / nl) * (s / nl));
	CHECK(sdev > 0.5 && sdev < 2.0);
	struct lvd_sd_schedule sc;
	lvd_sd_schedule_init(&sc, 1000, 0.00085, 0.012);
	float *zero = calloc(nl, sizeof(float)), *xt = malloc(sizeof(float) * nl), *out = calloc(no, sizeof(float));
	REQUIRE(zero && xt && out);
	lvd_sd_add_noise(&sc, xt, zero, eps, nl, (int)t[0]);
	struct lvd_sd *sd = load(DIFF, &(struct lvd_sd_opts){.components = LVD_SD_UNET});
	REQUIRE(sd);
	struct lvd_error err = {0};
	CHECK(lvd_sd_unet_forward(sd, out, xt, 8, 16, t[0], ctx, 77, NULL, NULL, &err) == 0);
	double worst = 0;
	for (size_t i = 0; i < no; i++)
		worst = fmax(worst, fabs(out[i] - ref[i]));
	CHECKF(worst > 0.1 * lvd_gold_max_abs(ref, no), "UNet output moved by %g of %g without the image", worst,
	       lvd_gold_max_abs(ref, no));
	lvd_sd_free(sd);
	free(zero);
	free(xt);
	free(out);
	free(lat);
	free(eps);
	free(ctx);
	free(ref);
	free(t);
}

static void test_schedule(void)
{
	struct lvd_sd_schedule s;
	lvd_sd_schedule_init(&s, 1000, 0.00085, 0.012);
	/* reference table (float64) in sd-attention.md §5; fp32 cumprod drifts ~1e-6 */
	CHECK_NEAR(s.alphas_cumprod[0], 0.999150, 1e-6);
	CHECK_NEAR(s.alphas_cumprod[500], 0.276333, 5e-6);
	CHECK_NEAR(s.alphas_cumprod[999], 0.004660, 5e-6);
	if (!open_gold())
		SKIP("golden files absent");
	size_t n;
	float *ac = gload("alphas_cumprod", &n), *b = gload("betas", NULL);
	REQUIRE(ac && b && n == 1000);
	/* diffusers computes the same fp32 linspace and cumprod: equal to 1 ulp-ish */
	CHECK_CLOSE("betas", s.betas, b, 1000, 0, 1e-6);
	CHECK_CLOSE("alphas_cumprod", s.alphas_cumprod, ac, 1000, 0, 1e-6);
	size_t nx;
	float *z0 = gload("vae_latent", &nx), *eps = gload("noise", NULL), *xt = gload("x_t", NULL), *t = gload("t", NULL);
	REQUIRE(z0 && eps && xt && t);
	float *got = malloc(sizeof(float) * nx);
	lvd_sd_add_noise(&s, got, z0, eps, nx, (int)t[0]);
	/* one fused multiply-add per element vs torch's: rounding only */
	CHECK_CLOSE("x_t", got, xt, nx, 1e-6, 1e-6);
	free(got);
	free(z0);
	free(eps);
	free(xt);
	free(t);
	free(ac);
	free(b);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_diffusers_folder),
		TEST(test_ldm_single_file),
		TEST(test_winograd_golden),
		TEST(test_borrowed_ctx_plain),
		TEST(test_unet_batch),
		TEST(test_unet_stop),
		TEST(test_components_subset),
		TEST(test_load_errors),
		TEST(test_wrong_heads_detected),
		TEST(test_image_matters),
		TEST(test_schedule),
		{0},
	};
	int rc = lvd_test_main(argc, argv, tests);
	lvd_st_close(gold);
	return rc;
}
