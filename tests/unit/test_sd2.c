/* tests/unit/test_sd2.c — SD 2.x networks against diffusers/transformers golden data
 * (tests/ref/gen_sd2.py): a tiny SD-2-shaped model (exact-GELU text tower read at its
 * penultimate layer, linear proj_in/proj_out, per-level head counts [2, 4, 8], context
 * width 32, upcast_attention), loaded from a diffusers folder (F32 VAE in place, F16
 * text/UNet) and from an ldm single file with the OpenCLIP text tower (fused in_proj,
 * 3 resblocks of which 2 are used; BF16 UNet/CLIP, F16 VAE); text states, VAE moments
 * and latent (std ~1), UNet output and every cross-attention map are compared with the
 * SD 1.x goldens' tolerances (test_sd.c). Plus the single-file head rule, errors, and
 * the refusal of a VAE that does not downsample by 8, the scheduler config (v_prediction
 * recorded), config values the code does not implement refused by name, and the
 * published SD 2.1 and SD 1.5 configs accepted with the real architecture. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "golden_util.h"
#include "io/safetensors.h"
#include "models/sd/sd.h"
#include "models/sd/sd_internal.h"   /* sd_declare_diffusers */

#define GOLD "tests/golden/sd2/golden.safetensors"
#define DIFF "tests/golden/sd2/diffusers"
#define LDM "tests/golden/sd2/ldm.safetensors"

#define IMG_H 64
#define IMG_W 128
#define LH 8
#define LW 16
#define NCTX 77
#define DTXT 32
#define NMAPS 7

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


static double max_diff(const float *a, const float *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i] - b[i]));
	return m;
}

/* The tiny single file cannot say its head dim (SD 2.x: 64) or its groups: pass them.
 * clip_heads too (width 32 would give 0 heads by the width/64 rule). */
static const struct lvd_sd_opts LDM_OPTS = {.unet_head_dim = 4, .clip_heads = 2, .norm_groups = 4};

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

static void check_configs(struct lvd_sd *sd, int ldm)
{
	const struct lvd_sd_clip_cfg *c = lvd_sd_clip_config(sd);
	REQUIRE(c);
	/* 3-layer tower, penultimate rule: 2 layers run; exact GELU */
	CHECK(c->width == DTXT && c->layers == 2 && c->heads == 2 && c->n_pos == 77 && c->ffn == 128 &&
	      c->vocab == 1000 && c->act == LVD_SD_ACT_GELU);
	const struct lvd_sd_unet_cfg *u = lvd_sd_unet_config(sd);
	REQUIRE(u);
	CHECK(u->levels == 3 && u->layers_per_block == 1 && u->ch[0] == 8 && u->ch[1] == 16 && u->ch[2] == 32);
	CHECK(u->linear_proj == 1 && u->ctx_dim == DTXT && u->tblocks == 1);
	/* attention_head_dim [2, 4, 8] is the head count per level (head dim 4) */
	CHECK(u->heads[0] == 2 && u->heads[1] == 4 && u->heads[2] == 8);
	CHECK(u->down_attn[0] && u->down_attn[1] && !u->down_attn[2] && !u->up_attn[0] && u->up_attn[1] &&
	      u->up_attn[2]);
	CHECK(u->upcast_attention == !ldm);   /* recorded from the diffusers config only */
	const struct lvd_sd_vae_cfg *v = lvd_sd_vae_config(sd);
	REQUIRE(v);
	CHECK(v->levels == 4 && v->latent_ch == 4 && v->groups == 4);
}

static void check_text(struct lvd_sd *sd, const char *what)
{
	size_t n_ids, n_ref, n_last;
	float *idsf = gload("ids", &n_ids), *ref = gload("text_states", &n_ref);
	float *last = gload("text_states_last_layer", &n_last);
	REQUIRE(idsf && ref && last && n_ids == NCTX && n_ref == NCTX * DTXT && n_last == n_ref);
	int32_t ids[NCTX];
	for (int i = 0; i < NCTX; i++)
		ids[i] = (int32_t)idsf[i];
	float *out = calloc(n_ref, sizeof(float));
	struct lvd_error err = {0};
	CHECK(lvd_sd_text_encode(sd, out, ids, NCTX, &err) == 0);
	/* fp32 both sides, LayerNormed: summation order only; 1e-4 of scale as SD 1.x */
	CHECKF(CHECK_CLOSE(what, out, ref, n_ref, 1e-4 * lvd_gold_max_abs(ref, n_ref), 0), "text states (%s)", what);
	/* the last layer (the wrong choice for SD 2.x) is far from what we computed */
	CHECK(max_diff(out, last, n_ref) > 0.05 * lvd_gold_max_abs(ref, n_ref));
	free(out);
	free(ref);
	free(last);
	free(idsf);
}

static void check_vae(struct lvd_sd *sd, const char *what)
{
	size_t ni, nl, nm;
	float *img = gload("image", &ni), *lat = gload("vae_latent", &nl), *mom = gload("vae_moments", &nm);
	REQUIRE(img && lat && mom && ni == 3 * IMG_H * IMG_W && nl == 4 * LH * LW && nm == 2 * nl);
	/* the golden latent is O(1) (the std 0.04 made the image irrelevant) */
	double s = 0, s2 = 0;
	for (size_t i = 0; i < nl; i++) {
		s += lat[i];
		s2 += (double)lat[i] * lat[i];
	}
	double sdev = sqrt(s2 / nl - (s / nl) * (s / nl));
	CHECK(sdev > 0.5 && sdev < 2.0);
	float *out = calloc(nl, sizeof(float)), *mo = calloc(nm, sizeof(float));
	struct lvd_error err = {0};
	CHECK(lvd_sd_vae_encode(sd, out, mo, img, IMG_H, IMG_W, &err) == 0);
	/* fp32, ~20 conv layers: summation-order noise only; 1e-4 of scale */
	CHECK_CLOSE(what, out, lat, nl, 1e-4 * lvd_gold_max_abs(lat, nl), 0);
	CHECK_CLOSE(what, mo, mom, nm, 1e-4 * lvd_gold_max_abs(mom, nm), 0);
	free(out);
	free(mo);
	free(img);
	free(lat);
	free(mom);
}

struct capture {
	char names[NMAPS + 1][128];
	float *maps[NMAPS + 1];
	int h[NMAPS + 1], w[NMAPS + 1], heads[NMAPS + 1], n;
	int bad_index;
};

static int cap_cb(void *user, const struct lvd_sd_attn_info *info, const float *probs)
{
	struct capture *c = user;
	if (c->n > NMAPS || info->index != c->n || info->n_ctx != NCTX)
		c->bad_index = 1;
	if (c->n > NMAPS)
		return 1;
	snprintf(c->names[c->n], sizeof c->names[0], "%s", info->name);
	size_t sz = (size_t)info->h * info->w * info->n_ctx;
	c->maps[c->n] = malloc(sizeof(float) * sz);
	memcpy(c->maps[c->n], probs, sizeof(float) * sz);
	c->h[c->n] = info->h;
	c->w[c->n] = info->w;
	c->heads[c->n] = info->heads;
	c->n++;
	return 0;
}

/* The next comma-separated item of *p into buf. */
static void next_item(const char **p, char *buf, size_t size)
{
	size_t len = strcspn(*p, ",");
	snprintf(buf, size, "%.*s", (int)len, *p);
	*p += len + ((*p)[len] == ',');
}

static void check_unet(struct lvd_sd *sd, const char *what)
{
	size_t nx, nc, no;
	float *xt = gload("x_t", &nx), *ctx = gload("text_states", &nc), *ref = gload("unet_out", &no);
	float *tt = gload("t", NULL);
	REQUIRE(xt && ctx && ref && tt && nx == 4 * LH * LW && nc == NCTX * DTXT && no == nx);
	float *out = calloc(no, sizeof(float));
	struct capture cap = {0};
	struct lvd_error err = {0};
	CHECK(lvd_sd_unet_forward(sd, out, xt, LH, LW, tt[0], ctx, NCTX, cap_cb, &cap, &err) == 0);
	/* fp32 through ~40 layers incl. softmaxes: summation order only; 1e-4 of scale */
	CHECK_CLOSE(what, out, ref, no, 1e-4 * lvd_gold_max_abs(ref, no), 0);
	CHECK(!cap.bad_index);
	CHECK(cap.n == NMAPS);
	const char *order = lvd_st_metadata(open_gold(), "attn_order");
	const char *heads = lvd_st_metadata(open_gold(), "attn_heads");
	REQUIRE(order && heads);
	for (int i = 0; i < cap.n; i++) {
		char want[160], hs[16], key[200], lbl[240];
		next_item(&order, want, sizeof want);
		next_item(&heads, hs, sizeof hs);
		CHECK_STR(cap.names[i], want);
		CHECK(cap.heads[i] == atoi(hs));
		snprintf(key, sizeof key, "attn.%s", want);
		size_t nm;
		float *m = gload(key, &nm);
		REQUIRE(m);
		CHECK(nm == (size_t)cap.h[i] * cap.w[i] * NCTX);
		/* probabilities, fp32 softmax: 1e-4 of the largest probability, as SD 1.x */
		snprintf(lbl, sizeof lbl, "%s %s", what, want);
		CHECK_CLOSE(lbl, cap.maps[i], m, nm, 1e-4 * lvd_gold_max_abs(m, nm), 0);
		double s = 0;
		for (int j = 0; j < NCTX; j++)
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
		SKIP("golden files absent (run tests/ref/gen_sd2.py)");
	struct lvd_sd *sd = load(DIFF, NULL);
	REQUIRE(sd);
	check_configs(sd, 0);
	check_text(sd, "sd2 diffusers text");
	check_vae(sd, "sd2 diffusers vae");
	check_unet(sd, "sd2 diffusers unet");
	lvd_sd_free(sd);
}

static void test_ldm_single_file(void)
{
	if (!open_gold())
		SKIP("golden files absent (run tests/ref/gen_sd2.py)");
	struct lvd_sd *sd = load(LDM, &LDM_OPTS);
	REQUIRE(sd);
	check_configs(sd, 1);
	check_text(sd, "sd2 ldm text");
	check_vae(sd, "sd2 ldm vae");
	check_unet(sd, "sd2 ldm unet");
	lvd_sd_free(sd);
}

/* Plain CPU paths on a private 2-thread context: the same goldens. */
static void test_ldm_plain_threads(void)
{
	if (!open_gold())
		SKIP("golden files absent");
	struct lvd_sd_opts o = LDM_OPTS;
	o.threads = 2;
	o.winograd = -1;
	struct lvd_sd *sd = load(LDM, &o);
	REQUIRE(sd);
	check_text(sd, "sd2 ldm text, 2 threads");
	check_unet(sd, "sd2 ldm unet, 2 threads, im2col");
	lvd_sd_free(sd);
}

/* Writes a copy of the ldm file without the tensors whose names contain drop1 or drop2
 * (either may be NULL). */
static int write_without(const char *dst, const char *drop1, const char *drop2)
{
	struct lvd_st *st;
	struct lvd_error err = {0};
	if (lvd_st_open(&st, lvd_test_path(LDM), &err))
		return -1;
	struct lvd_st_writer *w = lvd_st_writer_new();
	int rc = 0;
	for (size_t i = 0; i < lvd_st_count(st) && !rc; i++) {
		const struct lvd_tensor_view *tv = lvd_st_at(st, i);
		if ((drop1 && strstr(tv->name, drop1)) || (drop2 && strstr(tv->name, drop2)))
			continue;
		rc = lvd_st_writer_add(w, tv->name, tv->dtype, tv->ndim, tv->shape, tv->data, &err);
	}
	if (!rc)
		rc = lvd_st_writer_write(w, dst, &err);
	lvd_st_writer_free(w);
	lvd_st_close(st);
	return rc;
}

/* Single-file rules: heads = channels / 64 for a linear-projection UNet (the tiny one's
 * 8 channels are refused by name), a wrong head dim changes the numbers, the last
 * resblock is never read, the penultimate rule needs two resblocks, and a missing fused
 * in_proj is named. */
static void test_ldm_rules_and_errors(void)
{
	if (!open_gold())
		SKIP("golden files absent");
	struct lvd_sd *sd = NULL;
	struct lvd_error err = {0};
	struct lvd_sd_opts o = {.clip_heads = 2, .norm_groups = 4, .components = LVD_SD_UNET};
	CHECK(lvd_sd_load(&sd, lvd_test_path(LDM), &o, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "head dim 64");
	CHECK(sd == NULL);
	/* head dim 8 instead of 4 loads (heads 1, 2, 4) and gives other numbers */
	o.unet_head_dim = 8;
	sd = load(LDM, &o);
	REQUIRE(sd);
	CHECK(lvd_sd_unet_config(sd)->heads[0] == 1 && lvd_sd_unet_config(sd)->heads[2] == 4);
	size_t nx, no;
	float *xt = gload("x_t", &nx), *ctx = gload("text_states", NULL), *ref = gload("unet_out", &no);
	REQUIRE(xt && ctx && ref);
	float *out = calloc(no, sizeof(float));
	CHECK(lvd_sd_unet_forward(sd, out, xt, LH, LW, 600.0f, ctx, NCTX, NULL, NULL, &err) == 0);
	CHECK(max_diff(out, ref, no) > 1e-2 * lvd_gold_max_abs(ref, no));
	free(out);
	free(xt);
	free(ctx);
	free(ref);
	lvd_sd_free(sd);
	sd = NULL;

	char path[512];
	snprintf(path, sizeof path, "/tmp/lvd-test-sd2-%d.safetensors", (int)getpid());
	o = LDM_OPTS;
	o.components = LVD_SD_TEXT;
	/* without the last resblock (never read) it loads as a 1-layer tower */
	REQUIRE(write_without(path, "transformer.resblocks.2.", NULL) == 0);
	CHECK(lvd_sd_load(&sd, path, &o, &err) == 0);
	if (sd)
		CHECK(lvd_sd_clip_config(sd)->layers == 1);
	lvd_sd_free(sd);
	sd = NULL;
	/* one resblock left: the penultimate rule cannot apply */
	REQUIRE(write_without(path, "transformer.resblocks.1.", "transformer.resblocks.2.") == 0);
	CHECK(lvd_sd_load(&sd, path, &o, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "penultimate");
	CHECK(sd == NULL);
	/* a fused in_proj missing is named with the file */
	REQUIRE(write_without(path, "resblocks.1.attn.in_proj_weight", NULL) == 0);
	CHECK(lvd_sd_load(&sd, path, &LDM_OPTS, &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight");
	CHECK_CONTAINS(err.msg, path);
	CHECK(sd == NULL);
	remove(path);
}

/* A VAE with 3 down blocks (latent H/4) used to be accepted and then wrote past the
 * H/8 latent its callers allocate: it is refused at load, naming the factor, from a
 * diffusers config and from an ldm file's shapes. */
static void test_vae_factor_refused(void)
{
	if (!open_gold())
		SKIP("golden files absent");
	char dir[512], sub[600], path[700];
	snprintf(dir, sizeof dir, "/tmp/lvd-test-sd2-vae-%d", (int)getpid());
	snprintf(sub, sizeof sub, "%s/vae", dir);
	snprintf(path, sizeof path, "%s/config.json", sub);
	REQUIRE(mkdir(dir, 0700) == 0 && mkdir(sub, 0700) == 0);
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fputs("{\"_class_name\": \"AutoencoderKL\", \"block_out_channels\": [8, 16, 16], \"latent_channels\": 4,"
	      " \"layers_per_block\": 2, \"norm_num_groups\": 4, \"in_channels\": 3}\n", f);
	fclose(f);
	struct lvd_sd *sd = NULL;
	struct lvd_error err = {0};
	struct lvd_sd_opts o = {.components = LVD_SD_VAE};
	CHECK(lvd_sd_load(&sd, dir, &o, &err) == LVD_ERR_UNSUPPORTED);
	CHECK_CONTAINS(err.msg, "downsamples by 4 (3 down blocks)");
	CHECK_CONTAINS(err.msg, path);
	CHECK(sd == NULL);
	remove(path);
	rmdir(sub);
	rmdir(dir);
	/* the same from shapes: the ldm file without its 4th encoder level */
	snprintf(path, sizeof path, "/tmp/lvd-test-sd2-vae-%d.safetensors", (int)getpid());
	REQUIRE(write_without(path, "encoder.down.3.", NULL) == 0);
	o = LDM_OPTS;
	o.components = LVD_SD_VAE;
	CHECK(lvd_sd_load(&sd, path, &o, &err) == LVD_ERR_UNSUPPORTED);
	CHECK_CONTAINS(err.msg, "downsamples by 4");
	CHECK(sd == NULL);
	remove(path);
}

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int rc = fputs(text, f) < 0;
	return fclose(f) || rc ? -1 : 0;
}

/* The scheduler config is read (SD 2's v_prediction recorded, the SD 1 golden's epsilon,
 * a single file's unknown) and gives the same ᾱ as the SD defaults; config values the
 * code does not implement are refused by name instead of silently ignored. */
static void test_schedule_and_refused_values(void)
{
	struct lvd_sd_schedule s, ref;
	struct lvd_error err = {0};
	lvd_sd_schedule_init(&ref, 1000, 0.00085, 0.012);
	CHECK(lvd_sd_schedule_load(&s, lvd_test_path(DIFF), &err) == 0);
	CHECK(s.prediction == LVD_SD_PRED_V && s.T == 1000);
	CHECK(!memcmp(s.alphas_cumprod, ref.alphas_cumprod, sizeof ref.alphas_cumprod));
	CHECK(lvd_sd_schedule_load(&s, lvd_test_path("tests/golden/sd/diffusers"), &err) == 0);
	CHECK(s.prediction == LVD_SD_PRED_EPSILON);
	CHECK(lvd_sd_schedule_load(&s, lvd_test_path(LDM), &err) == 0);
	CHECK(s.prediction == LVD_SD_PRED_UNKNOWN);
	CHECK(!memcmp(s.betas, ref.betas, sizeof ref.betas));

	char dir[512], sub[600], path[700];
	snprintf(dir, sizeof dir, "/tmp/lvd-test-sd2-cfg-%d", (int)getpid());
	REQUIRE(mkdir(dir, 0700) == 0);
	static const char *const subs[3] = {"scheduler", "unet", "vae"};
	for (int i = 0; i < 3; i++) {
		snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]);
		REQUIRE(mkdir(sub, 0700) == 0);
	}
	static const struct {
		const char *file, *json, *msg;
		int comps;
	} cases[] = {
		{"scheduler/scheduler_config.json", "{\"beta_schedule\": \"squaredcos_cap_v2\"}", "'beta_schedule'", 0},
		{"scheduler/scheduler_config.json", "{\"trained_betas\": [0.1, 0.2]}", "'trained_betas'", 0},
		{"scheduler/scheduler_config.json", "{\"prediction_type\": \"flow\"}", "prediction_type 'flow'", 0},
		{"scheduler/scheduler_config.json", "{\"rescale_betas_zero_snr\": true}", "'rescale_betas_zero_snr'", 0},
		{"vae/config.json", "{\"block_out_channels\": [8, 16, 16, 16], \"norm_num_groups\": 4, \"act_fn\": \"gelu\"}",
		 "VAE 'act_fn' = \"gelu\"", LVD_SD_VAE},
		{"unet/config.json",
		 "{\"block_out_channels\": [8, 16], \"norm_num_groups\": 4, \"attention_head_dim\": [2, 4],"
		 " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
		 " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"],"
		 " \"resnet_time_scale_shift\": \"scale_shift\"}",
		 "UNet 'resnet_time_scale_shift' = \"scale_shift\"", LVD_SD_UNET},
		{"unet/config.json",
		 "{\"block_out_channels\": [8, 16], \"norm_num_groups\": 4, \"attention_head_dim\": [2, 4],"
		 " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
		 " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"],"
		 " \"conv_in_kernel\": 7}",
		 "UNet 'conv_in_kernel' = 7", LVD_SD_UNET},
		{"unet/config.json",
		 "{\"block_out_channels\": [8, 16], \"norm_num_groups\": 4, \"attention_head_dim\": [2, 4],"
		 " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
		 " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"],"
		 " \"time_embedding_act_fn\": \"silu\"}",
		 "UNet 'time_embedding_act_fn' is set", LVD_SD_UNET},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, cases[i].file);
		REQUIRE(write_text(path, cases[i].json) == 0);
		memset(&err, 0, sizeof err);
		if (!cases[i].comps) {
			CHECK(lvd_sd_schedule_load(&s, dir, &err) == LVD_ERR_UNSUPPORTED);
		} else {
			struct lvd_sd *sd = NULL;
			struct lvd_sd_opts o = {.components = cases[i].comps};
			CHECK(lvd_sd_load(&sd, dir, &o, &err) == LVD_ERR_UNSUPPORTED);
			CHECK(sd == NULL);
		}
		CHECK_CONTAINS(err.msg, cases[i].msg);
		CHECK_CONTAINS(err.msg, path);
		remove(path);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]);
		rmdir(sub);
	}
	rmdir(dir);
}

/* The published SD 2.1 configs (stabilityai/stable-diffusion-2-1, diffusers 0.10 era) and
 * the SD 1.5 configs of ../shared/data/sd15_configs are accepted (no key refused) and
 * give the SD 2.1 architecture: declared weights with the real shapes, 23 text layers. */
struct decl {
	int n, text_layer22, text_layer23, pin_2d, attn2_k;
};

static void decl_cb(void *user, const char *name, int ndim, const int64_t *shape)
{
	struct decl *d = user;
	d->n++;
	if (!strcmp(name, "text_model.encoder.layers.22.mlp.fc1.weight"))
		d->text_layer22 = ndim == 2 && shape[0] == 4096 && shape[1] == 1024;
	if (strstr(name, "encoder.layers.23."))
		d->text_layer23 = 1;
	if (!strcmp(name, "down_blocks.0.attentions.0.proj_in.weight"))
		d->pin_2d = ndim == 4 && shape[0] == 320 && shape[1] == 320;   /* either layout binds */
	if (!strcmp(name, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"))
		d->attn2_k = ndim == 2 && shape[0] == 1280 && shape[1] == 1024;
}

static void test_real_configs_accepted(void)
{
	static const char *const files[4][2] = {
		{"unet/config.json",
		 "{\"_class_name\": \"UNet2DConditionModel\", \"_diffusers_version\": \"0.10.0.dev0\", \"act_fn\": \"silu\","
		 " \"attention_head_dim\": [5, 10, 20, 20], \"block_out_channels\": [320, 640, 1280, 1280],"
		 " \"center_input_sample\": false, \"cross_attention_dim\": 1024, \"down_block_types\":"
		 " [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
		 " \"downsample_padding\": 1, \"dual_cross_attention\": false, \"flip_sin_to_cos\": true,"
		 " \"freq_shift\": 0, \"in_channels\": 4, \"layers_per_block\": 2, \"mid_block_scale_factor\": 1,"
		 " \"norm_eps\": 1e-05, \"norm_num_groups\": 32, \"num_class_embeds\": null,"
		 " \"only_cross_attention\": false, \"out_channels\": 4, \"sample_size\": 96, \"up_block_types\":"
		 " [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"],"
		 " \"upcast_attention\": true, \"use_linear_projection\": true}"},
		{"vae/config.json",
		 "{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", \"block_out_channels\": [128, 256, 512, 512],"
		 " \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\","
		 " \"DownEncoderBlock2D\"], \"in_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 2,"
		 " \"norm_num_groups\": 32, \"out_channels\": 3, \"sample_size\": 768, \"up_block_types\":"
		 " [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}"},
		{"text_encoder/config.json",
		 "{\"architectures\": [\"CLIPTextModel\"], \"attention_dropout\": 0.0, \"bos_token_id\": 0,"
		 " \"dropout\": 0.0, \"eos_token_id\": 2, \"hidden_act\": \"gelu\", \"hidden_size\": 1024,"
		 " \"initializer_factor\": 1.0, \"initializer_range\": 0.02, \"intermediate_size\": 4096,"
		 " \"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, \"model_type\": \"clip_text_model\","
		 " \"num_attention_heads\": 16, \"num_hidden_layers\": 23, \"pad_token_id\": 1,"
		 " \"projection_dim\": 512, \"torch_dtype\": \"float32\", \"vocab_size\": 49408}"},
		{"scheduler/scheduler_config.json",
		 "{\"_class_name\": \"DDIMScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\","
		 " \"beta_start\": 0.00085, \"clip_sample\": false, \"num_train_timesteps\": 1000,"
		 " \"prediction_type\": \"v_prediction\", \"set_alpha_to_one\": false, \"skip_prk_steps\": true,"
		 " \"steps_offset\": 1, \"trained_betas\": null}"},
	};
	char dir[512], path[700];
	snprintf(dir, sizeof dir, "/tmp/lvd-test-sd2-real-%d", (int)getpid());
	REQUIRE(mkdir(dir, 0700) == 0);
	static const char *const subs[4] = {"unet", "vae", "text_encoder", "scheduler"};
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
		REQUIRE(mkdir(path, 0700) == 0);
		snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
		REQUIRE(write_text(path, files[i][1]) == 0);
	}
	struct decl d = {0};
	struct lvd_error err = {0};
	CHECK(sd_declare_diffusers(dir, LVD_SD_ALL, decl_cb, &d, &err) == 0);
	/* UNet 686 (as SD 1.5) + OpenCLIP 23 layers 372 + VAE encoder 108 */
	CHECKF(d.n == 1166 && d.text_layer22 && !d.text_layer23 && d.pin_2d && d.attn2_k, "%d tensors", d.n);
	struct lvd_sd_schedule s;
	CHECK(lvd_sd_schedule_load(&s, dir, &err) == 0);
	CHECK(s.prediction == LVD_SD_PRED_V);
	/* without weights the load gets past every config and stops at the missing file */
	struct lvd_sd *sd = NULL;
	CHECK(lvd_sd_load(&sd, dir, NULL, &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, "no model.safetensors");
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
		remove(path);
		snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
		rmdir(path);
	}
	rmdir(dir);

	/* SD 1.5's published configs */
	const char *shared = lvd_test_shared_data();
	if (!shared)
		SKIP("../shared/data not found");
	char p15[600];
	snprintf(dir, sizeof dir, "/tmp/lvd-test-sd15-real-%d", (int)getpid());
	REQUIRE(mkdir(dir, 0700) == 0);
	static const char *const src[4] = {"unet_config.json", "vae_config.json", "text_encoder_config.json",
					   "scheduler_config.json"};
	static const char *const dst[4] = {"unet/config.json", "vae/config.json", "text_encoder/config.json",
					   "scheduler/scheduler_config.json"};
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
		REQUIRE(mkdir(path, 0700) == 0);
		snprintf(p15, sizeof p15, "%s/sd15_configs/%s", shared, src[i]);
		snprintf(path, sizeof path, "%s/%s", dir, dst[i]);
		char *abs = realpath(p15, NULL);
		REQUIRE(abs);
		int ok = symlink(abs, path) == 0;
		free(abs);
		REQUIRE(ok);
	}
	memset(&d, 0, sizeof d);
	CHECKF(sd_declare_diffusers(dir, LVD_SD_ALL, decl_cb, &d, &err) == 0, "%s", err.msg);
	/* UNet 686 + CLIP 12 layers 196 + VAE encoder 108 */
	CHECKF(d.n == 990 && !d.text_layer22, "%d tensors", d.n);
	CHECKF(lvd_sd_schedule_load(&s, dir, &err) == 0, "%s", err.msg);
	CHECK(s.prediction == LVD_SD_PRED_EPSILON);
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, dst[i]);
		remove(path);
		snprintf(path, sizeof path, "%s/%s", dir, subs[i]);
		rmdir(path);
	}
	rmdir(dir);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_diffusers_folder),
		TEST(test_ldm_single_file),
		TEST(test_ldm_plain_threads),
		TEST(test_ldm_rules_and_errors),
		TEST(test_vae_factor_refused),
		TEST(test_schedule_and_refused_values),
		TEST(test_real_configs_accepted),
		{0},
	};
	int rc = lvd_test_main(argc, argv, tests);
	lvd_st_close(gold);
	return rc;
}
