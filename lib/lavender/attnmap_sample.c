/* lib/lavender/attnmap_sample.c — samples from image + tokens to sd-attnmap record
 * payloads (see attnmap_sample.h and docs/attnmap.md for the procedure): decode on the
 * host; text encoder, VAE, UNet passes and the map aggregation where the model computes
 * (its own CPU context, or the device of lvd_sd_to_device); the sums come to the host
 * once per sample. */
#include "lavender/attnmap_sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/rng.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/attnmap.h"
#include "lavender/mapsrec.h"
#include "nn/ctx.h"

uint64_t lvd_attnmap_noise_stream(const char *id, int timestep, int draw)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const uint64_t prime = 0x100000001b3ull;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * prime;
	h = (h ^ 0) * prime;
	uint32_t v[2] = {(uint32_t)timestep, (uint32_t)draw};
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 4; i++)
			h = (h ^ ((v[k] >> (8 * i)) & 0xff)) * prime;
	return h;
}

struct capture {
	struct lvd_attnmap_acc *acc;
	int bad_ctx;
	double agg_s; /* time spent aggregating inside the callback */
};

/* --method inversion (CPU only): each map straight into the host accumulator. */
static int on_attn(void *user, const struct lvd_sd_attn_info *info, const float *probs)
{
	struct capture *c = user;
	if (info->n_ctx != c->acc->n_ctx) {
		c->bad_ctx = 1;
		return 1;
	}
	double t0 = lvd_time_now();
	lvd_attnmap_acc_add(c->acc, probs, info->h, info->w);
	c->agg_s += lvd_time_now() - t0;
	return 0;
}

/* --method noise, on any context: a batched UNet pass holds items of one or more samples
 * (in sample order, each sample's passes in order). The callback resizes every selected
 * layer map of an item onto the grid by an op (lvd_attnmap_map_add) into that item's
 * zeroed slots, where the model computes; after the pass's last map it adds the slots
 * item by item, layer by layer, into the samples' sums (lvd_attnmap_sum_add), so each
 * sample's maps are summed in the order of unbatched passes (docs/attnmap.md step 6)
 * and, on the CPU, to the bits of lvd_attnmap_acc_add. Nothing goes to the host until a
 * sample is done. */
#define LVD_ATTNMAP_MAX_LAYERS 64   /* attn2 layers per UNet pass (SD 1.x/2.x: 16) */
struct dev_item {
	const struct lvd_attnmap_acc *acc;   /* the item's sample: sizes and levels */
	float *sum;                          /* the sample's sum [T][GH][GW] (ctx memory) */
	uint32_t *n_added;
	float *slots;                        /* cap maps [T][GH][GW] (ctx memory) */
	int n, cap;
};
struct dev_capture {
	int B;
	struct dev_item it[LVD_ATTNMAP_MAX_BATCH];
	int bad_ctx, overflow;
	double agg_s;
	int last;   /* index of the last selected attn2 layer: the pass ends there (the UNet
		     * output is unused); -1: the pass runs to its end */
};

static void dev_capture_flush(struct dev_capture *c, struct lvd_ctx *ctx)
{
	for (int b = 0; b < c->B; b++) {
		struct dev_item *it = &c->it[b];
		size_t sz = (size_t)it->acc->T * it->acc->gh * it->acc->gw;
		for (int i = 0; i < it->n; i++)
			lvd_attnmap_sum_add(ctx, it->acc, it->sum, it->slots + (size_t)i * sz);
		*it->n_added += (uint32_t)it->n;
		it->n = 0;
	}
}

static int on_attn_dev(void *user, const struct lvd_sd_attn_info *info, const float *probs)
{
	struct dev_capture *c = user;
	if (info->n_ctx != LVD_ATTNMAP_CTX) {
		c->bad_ctx = 1;
		return 1;
	}
	if (info->item >= c->B) {
		c->overflow = 1;
		return 1;
	}
	double t0 = lvd_time_now();
	struct dev_item *it = &c->it[info->item];
	const struct lvd_attnmap_acc *acc = it->acc;
	int k = lvd_attnmap_layer_level(acc->lat_h, acc->lat_w, info->h, info->w);
	if (k >= 0 && (acc->levels & (1u << k))) {
		if (it->n >= it->cap) {
			c->overflow = 1;
			return 1;
		}
		size_t sz = (size_t)acc->T * acc->gh * acc->gw;
		lvd_attnmap_map_add(info->ctx, acc, it->slots + (size_t)it->n * sz, probs, info->h, info->w);
		it->n++;
	}
	int end = c->last >= 0 ? c->last : info->layers - 1;
	if (info->index == end && info->item == c->B - 1)
		dev_capture_flush(c, info->ctx);
	c->agg_s += lvd_time_now() - t0;
	return info->index == c->last ? LVD_SD_CB_DONE : 0;
}


int lvd_attnmap_unet_batch(const struct lvd_sd *sd, const struct lvd_attnmap_params *p, int lat_h, int lat_w)
{
	int npass = p->method == LVD_ATTNMAP_NOISE ? p->n_timesteps * p->draws : 1;
	int ub = p->unet_batch;
	if (ub <= 0) {
		size_t per = lvd_sd_unet_batch_bytes(sd, lat_h, lat_w, LVD_ATTNMAP_CTX);
		size_t fit = per ? LVD_ATTNMAP_UNET_BUDGET / per : 1;
		ub = fit < 1 ? 1 : fit > (size_t)npass ? npass : (int)fit;
	}
	ub = ub > npass ? npass : ub;
	ub = ub > LVD_ATTNMAP_MAX_BATCH ? LVD_ATTNMAP_MAX_BATCH : ub;
	return ub < 1 ? 1 : ub;
}

void lvd_attnmap_ddim_timesteps(int *ts, int N, int T)
{
	const int ratio = T / N;
	for (int i = 0; i < N; i++)
		ts[i] = (N - 1 - i) * ratio + 1;
}

/* ε̂ from the UNet output `o` at x_t (ε-prediction: o itself; v-prediction:
 * ε̂ = √ᾱ_t·v̂ + √(1−ᾱ_t)·x_t, as diffusers' DDIMScheduler computes it in fp32) */
static void unet_eps(const struct lvd_sd_schedule *s, float *eps, const float *o, const float *x, size_t n, int t)
{
	if (s->prediction != LVD_SD_PRED_V) {
		if (eps != o)
			memcpy(eps, o, n * sizeof *eps);
		return;
	}
	const float a = s->alphas_cumprod[t], sa = sqrtf(a), sb = sqrtf(1.0f - a);
	for (size_t i = 0; i < n; i++)
		eps[i] = sa * o[i] + sb * x[i];
}

/* One deterministic DDIM move of x from ᾱ = a_from to ᾱ = a_to with ε̂ (η = 0): the
 * scheduler's step (a_to < a_from's noise level) and prompt-to-prompt's inversion
 * `next_step` (the other way) are the same formula, in fp32 in diffusers' order:
 * x̂0 = (x − √(1−a_from)·ε̂)/√a_from, x = √a_to·x̂0 + √(1−a_to)·ε̂. */
static void ddim_move(float *x, const float *eps, size_t n, float a_from, float a_to)
{
	const float sa = sqrtf(a_from), sb = sqrtf(1.0f - a_from), ta = sqrtf(a_to), tb = sqrtf(1.0f - a_to);
	for (size_t i = 0; i < n; i++) {
		float x0 = (x[i] - sb * eps[i]) / sa;
		x[i] = ta * x0 + tb * eps[i];
	}
}

/* --method inversion: DDIM inversion with the caption (conditional pass, no capture),
 * then N regeneration steps with classifier-free guidance; the conditional pass of each
 * regeneration step is captured. ᾱ before the first step is ᾱ_0 (set_alpha_to_one =
 * False, SD's scheduler configs). x holds z0 on entry. */
static int run_inversion(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched,
			 const struct lvd_attnmap_params *p, float *x, const float *cond, const float *uncond,
			 int lh, int lw, size_t nlat, lvd_sd_attn_cb cb, void *user, struct lvd_error *err)
{
	const struct lvd_sd_unet_cfg *ucfg = lvd_sd_unet_config(sd);
	if (sched->prediction == LVD_SD_PRED_SAMPLE)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED,
				     "--method inversion: a UNet predicting the sample (prediction_type \"sample\") "
				     "is not supported");
	if ((size_t)ucfg->out_ch * lh * lw != nlat)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "--method inversion: the UNet writes %d channels, the "
				     "latent has %zu values per pixel", ucfg->out_ch, nlat / ((size_t)lh * lw));
	int ts[LVD_ATTNMAP_MAX_TIMESTEPS];
	const int N = p->steps, ratio = sched->T / N;
	lvd_attnmap_ddim_timesteps(ts, N, sched->T);
	float *o = lvd_alloc_array(nlat, sizeof *o), *e = lvd_alloc_array(nlat, sizeof *e);
	float *ou = uncond ? lvd_alloc_array(nlat, sizeof *ou) : NULL;
	int rc = LVD_OK;
	if (!o || !e || (uncond && !ou)) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "inversion buffers");
		goto done;
	}
	const float a0 = sched->alphas_cumprod[0];
	/* inversion: t = 1, 1 + r, ..., each step from ᾱ_{t−r} (ᾱ_0 before the first) to ᾱ_t */
	for (int i = N - 1; i >= 0; i--) {
		const int t = ts[i];
		if ((rc = lvd_sd_unet_forward(sd, o, x, lh, lw, (float)t, cond, LVD_ATTNMAP_CTX, NULL, NULL, err)))
			goto done;
		unet_eps(sched, e, o, x, nlat, t);
		const int from = t - ratio;
		ddim_move(x, e, nlat, from >= 0 ? sched->alphas_cumprod[from] : a0, sched->alphas_cumprod[t]);
	}
	/* regeneration: t = ts[0] .. 1, guided, the conditional pass captured */
	for (int i = 0; i < N; i++) {
		const int t = ts[i];
		if ((rc = lvd_sd_unet_forward(sd, o, x, lh, lw, (float)t, cond, LVD_ATTNMAP_CTX, cb, user, err)))
			goto done;
		unet_eps(sched, e, o, x, nlat, t);
		if (uncond) {
			if ((rc = lvd_sd_unet_forward(sd, ou, x, lh, lw, (float)t, uncond, LVD_ATTNMAP_CTX, NULL, NULL,
						      err)))
				goto done;
			unet_eps(sched, ou, ou, x, nlat, t);
			const float g = p->guidance;
			for (size_t k = 0; k < nlat; k++)
				e[k] = ou[k] + g * (e[k] - ou[k]);
		}
		const int to = t - ratio;
		ddim_move(x, e, nlat, sched->alphas_cumprod[t], to >= 0 ? sched->alphas_cumprod[to] : a0);
	}
done:
	free(o);
	free(e);
	free(ou);
	return rc;
}

int lvd_attnmap_sample_prepare(const struct lvd_attnmap_params *p, const struct lvd_attnmap_sample *s,
			       struct lvd_attnmap_input *in, struct lvd_attnmap_timing *tm, struct lvd_error *err)
{
	struct lvd_image img = {0}, rs = {0};
	int rc;
	double t0 = lvd_time_now();
	memset(in, 0, sizeof *in);
	/* decode and resize (aspect kept, sides multiples of 64, PIL bicubic) */
	if ((rc = lvd_image_load(&img, s->image_path, LVD_ALPHA_BLACK, err)))
		goto done;
	if (img.w < p->min_side || img.h < p->min_side) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "image too small: %dx%d (--min-side %d)", img.w, img.h,
				   p->min_side);
		goto done;
	}
	if ((rc = lvd_attnmap_geometry(&in->g, img.w, img.h, p->resolution, p->grid, err)))
		goto done;
	if (in->g.sd_w == img.w && in->g.sd_h == img.h) {
		rs = img;
		img.px = NULL;
	} else if ((rc = lvd_image_resize(&rs, &img, in->g.sd_w, in->g.sd_h, LVD_RESAMPLE_BICUBIC, 1, err))) {
		goto done;
	}
	size_t hw = (size_t)in->g.sd_w * in->g.sd_h;
	if (!(in->pix = lvd_alloc_array(3 * hw, sizeof(float)))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "image buffer");
		goto done;
	}
	for (size_t i = 0; i < hw; i++)
		for (int c = 0; c < 3; c++)
			in->pix[(size_t)c * hw + i] = (float)rs.px[i * 3 + (size_t)c] / 127.5f - 1.0f;
done:
	lvd_image_free(&img);
	lvd_image_free(&rs);
	tm->decode += lvd_time_now() - t0;
	return rc;
}

void lvd_attnmap_input_free(struct lvd_attnmap_input *in)
{
	free(in->pix);
	in->pix = NULL;
}

/* The record payload of a sample from its accumulated maps (step 5). */
static int encode_record(const struct lvd_sd_schedule *sched, const struct lvd_attnmap_params *p,
			 const struct lvd_attnmap_sample *s, const struct lvd_attnmap_geom *g,
			 const struct lvd_attnmap_acc *acc, uint8_t **out, size_t *out_len, struct lvd_attnmap_timing *tm,
			 struct lvd_error *err)
{
	const struct lvd_attnmap_text *tok = s->tok;
	double t4 = lvd_time_now();
	float *maps = NULL;
	uint16_t *h16 = NULL;
	struct lvd_attnmap_stats *stats = NULL;
	int rc;
	size_t nmap = (size_t)tok->T * g->grid_h * g->grid_w, plane = (size_t)g->grid_h * g->grid_w;
	if (!(maps = lvd_alloc_array(nmap, sizeof(float))) || !(h16 = lvd_alloc_array(nmap, sizeof(uint16_t))) ||
	    !(stats = lvd_alloc_array((size_t)tok->T, sizeof *stats))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "map buffers");
		goto done;
	}
	if ((rc = lvd_attnmap_acc_mean(acc, maps, err)))
		goto done;
	for (int t = 0; t < tok->T; t++)
		lvd_attnmap_stats(&stats[t], maps + (size_t)t * plane, plane);
	for (size_t i = 0; i < nmap; i++)
		h16[i] = lvd_f32_to_f16(maps[i]);
	double t5 = lvd_time_now();
	tm->aggregate += t5 - t4;

	int32_t layer_sides[LVD_ATTNMAP_MAX_LEVEL + 1];
	uint32_t n_layers = 0;
	for (int k = LVD_ATTNMAP_MAX_LEVEL; k >= 0; k--)
		if (p->layers & (1u << k))
			layer_sides[n_layers++] = p->resolution / 8 >> k;
	int32_t tsteps[LVD_ATTNMAP_MAX_TIMESTEPS];
	int n_ts = p->n_timesteps, draws = p->draws;
	if (p->method == LVD_ATTNMAP_INVERSION) {
		/* the regeneration steps whose maps were averaged */
		int ts[LVD_ATTNMAP_MAX_TIMESTEPS];
		lvd_attnmap_ddim_timesteps(ts, p->steps, sched->T);
		n_ts = p->steps;
		draws = 1;
		for (int i = 0; i < n_ts; i++)
			tsteps[i] = ts[i];
	} else {
		for (int i = 0; i < p->n_timesteps; i++)
			tsteps[i] = p->timesteps[i];
	}
	struct lvd_mapsrec r = {0};
	r.id = (char *)s->id;
	r.index = s->index;
	r.text = (char *)s->text;
	r.truncated = tok->truncated;
	r.T = (uint32_t)tok->T;
	r.tokens = (int32_t *)tok->ids + 1;
	r.token_strs = tok->token_strs;
	r.spans = tok->spans;
	r.word_idx = tok->word_idx;
	r.n_words = tok->n_words;
	r.words = tok->words;
	r.img_w = g->img_w;
	r.img_h = g->img_h;
	r.image_file = (char *)s->image;
	r.sd_w = g->sd_w;
	r.sd_h = g->sd_h;
	r.grid_w = g->grid_w;
	r.grid_h = g->grid_h;
	r.resolution = p->resolution;
	r.n_layers = n_layers;
	r.layers = layer_sides;
	r.n_timesteps = (uint32_t)n_ts;
	r.timesteps = tsteps;
	r.draws = (uint32_t)draws;
	r.seed = p->seed;
	r.stats = stats;
	r.maps = h16;
	rc = lvd_mapsrec_encode(&r, out, out_len, err);
	tm->encode += lvd_time_now() - t5;
done:
	free(maps);
	free(h16);
	free(stats);
	return rc;
}

/* Text ids of a sample as fed to the encoder (--fold-vocab). */
static void text_ids(int32_t *ids, const struct lvd_attnmap_text *tok, const struct lvd_attnmap_params *p, int vocab)
{
	for (int i = 0; i < LVD_ATTNMAP_CTX; i++)
		ids[i] = p->fold_vocab ? tok->ids[i] % vocab : tok->ids[i];
}

/* --method inversion on the CPU path: steps 2-5 for one prepared sample. */
static int sample_inversion(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched,
			    const struct lvd_attnmap_params *p, const struct lvd_attnmap_sample *s,
			    const struct lvd_attnmap_input *in, uint8_t **out, size_t *out_len, struct lvd_attnmap_timing *tm,
			    struct lvd_error *err)
{
	float *ctx = NULL, *uctx = NULL, *xt = NULL;
	struct lvd_attnmap_acc acc = {0};
	int rc;
	const struct lvd_attnmap_text *tok = s->tok;
	const struct lvd_attnmap_geom *g = &in->g;
	const struct lvd_sd_clip_cfg *ccfg = lvd_sd_clip_config(sd);
	const struct lvd_sd_vae_cfg *vcfg = lvd_sd_vae_config(sd);
	if (lvd_sd_device_bytes(sd))
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "--method inversion runs on the CPU only (not on a device yet)");
	double t1 = lvd_time_now();
	if (!(ctx = lvd_alloc_array((size_t)LVD_ATTNMAP_CTX, (size_t)ccfg->width * sizeof(float)))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "text states");
		goto done;
	}
	int32_t ids[LVD_ATTNMAP_CTX];
	text_ids(ids, tok, p, ccfg->vocab);
	if ((rc = lvd_sd_text_encode(sd, ctx, ids, LVD_ATTNMAP_CTX, err)))
		goto done;
	if (p->guidance != 1.0f) {
		/* the empty prompt: BOS, EOS, padding */
		if (!(uctx = lvd_alloc_array((size_t)LVD_ATTNMAP_CTX, (size_t)ccfg->width * sizeof(float)))) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "text states");
			goto done;
		}
		for (int i = 0; i < LVD_ATTNMAP_CTX; i++)
			ids[i] = i == 0 ? tok->ids[0] : i == 1 ? tok->ids[tok->T + 1] : tok->pad_id;
		if (p->fold_vocab)
			for (int i = 0; i < LVD_ATTNMAP_CTX; i++)
				ids[i] %= ccfg->vocab;
		if ((rc = lvd_sd_text_encode(sd, uctx, ids, LVD_ATTNMAP_CTX, err)))
			goto done;
	}
	double t2 = lvd_time_now();
	tm->text += t2 - t1;
	size_t nlat = (size_t)vcfg->latent_ch * g->lat_w * g->lat_h;
	if (!(xt = lvd_alloc_array(nlat, sizeof(float)))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "latent buffers");
		goto done;
	}
	if ((rc = lvd_sd_vae_encode(sd, xt, NULL, in->pix, g->sd_h, g->sd_w, err)))
		goto done;
	double t3 = lvd_time_now();
	tm->vae += t3 - t2;
	if ((rc = lvd_attnmap_acc_init(&acc, LVD_ATTNMAP_CTX, 1, tok->T, g->lat_h, g->lat_w, g->grid_h, g->grid_w,
				       p->layers, err)))
		goto done;
	struct capture cap = {&acc, 0, 0};
	if ((rc = run_inversion(sd, sched, p, xt, ctx, uctx, g->lat_h, g->lat_w, nlat, on_attn, &cap, err))) {
		if (cap.bad_ctx)
			rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "cross-attention context is not %d tokens",
					   LVD_ATTNMAP_CTX);
		goto done;
	}
	tm->unet += lvd_time_now() - t3 - cap.agg_s;
	tm->aggregate += cap.agg_s;
	rc = encode_record(sched, p, s, g, &acc, out, out_len, tm, err);
done:
	free(ctx);
	free(uctx);
	free(xt);
	lvd_attnmap_acc_free(&acc);
	return rc;
}

/* One sample of lvd_attnmap_samples_run: host and ctx buffers. */
struct job {
	const struct lvd_attnmap_sample *s;
	const struct lvd_attnmap_input *in;
	struct lvd_attnmap_result *res;
	struct lvd_attnmap_acc acc;     /* sizes, levels; sum on the host at the end */
	float *sum;                     /* [T][GH][GW] (ctx memory) */
	float *text;                    /* [77][D] (ctx memory) */
	float *text_h;                  /* host copy (several samples per pass) */
	float *lat;                     /* [latent_ch][lh][lw] (host) */
};

static void job_free(struct lvd_ctx *X, struct job *j)
{
	lvd_buf_free(X, j->sum);
	lvd_buf_free(X, j->text);
	free(j->text_h);
	free(j->lat);
	lvd_attnmap_acc_free(&j->acc);
}

/* Steps 2 and 3 of one sample: text states into j->text (ctx memory) and its host copy
 * when wanted, the latent on the host. */
static int job_encode(const struct lvd_sd *sd, const struct lvd_attnmap_params *p, struct job *j, int host_text,
		      struct lvd_attnmap_timing *tm, struct lvd_error *err)
{
	struct lvd_ctx *X = lvd_sd_ctx(sd);
	const struct lvd_sd_clip_cfg *ccfg = lvd_sd_clip_config(sd);
	const struct lvd_sd_vae_cfg *vcfg = lvd_sd_vae_config(sd);
	const struct lvd_attnmap_geom *g = &j->in->g;
	const struct lvd_attnmap_text *tok = j->s->tok;
	size_t ntext = (size_t)LVD_ATTNMAP_CTX * ccfg->width, nlat = (size_t)vcfg->latent_ch * g->lat_w * g->lat_h;
	size_t npix = (size_t)3 * g->sd_w * g->sd_h;
	double t1 = lvd_time_now();
	int rc;
	if (!(j->text = lvd_buf_alloc(X, ntext * sizeof(float))) || (host_text && !(j->text_h = malloc(ntext * sizeof(float)))))
		return lvd_error_set(err, LVD_ERR_NOMEM, "text states");
	int32_t ids[LVD_ATTNMAP_CTX];
	text_ids(ids, tok, p, ccfg->vocab);
	if ((rc = lvd_sd_text_encode(sd, j->text, ids, LVD_ATTNMAP_CTX, err)))
		return rc;
	if (host_text)
		lvd_buf_download(X, j->text_h, j->text, ntext * sizeof(float));
	double t2 = lvd_time_now();
	tm->text += t2 - t1;
	float *pix = lvd_buf_alloc(X, npix * sizeof(float)), *lat = lvd_buf_alloc(X, nlat * sizeof(float));
	if (!pix || !lat || !(j->lat = malloc(nlat * sizeof(float)))) {
		lvd_buf_free(X, pix);
		lvd_buf_free(X, lat);
		return lvd_error_set(err, LVD_ERR_NOMEM, "latent buffers");
	}
	lvd_buf_upload(X, pix, j->in->pix, npix * sizeof(float));
	rc = lvd_sd_vae_encode(sd, lat, NULL, pix, g->sd_h, g->sd_w, err);
	if (!rc)
		lvd_buf_download(X, j->lat, lat, nlat * sizeof(float));
	lvd_buf_free(X, pix);
	lvd_buf_free(X, lat);
	tm->vae += lvd_time_now() - t2;
	return rc;
}

/* Step 4 (--method noise) for n encoded samples of one latent shape: their
 * n × timesteps × draws passes in order, at most max_items per batched UNet pass.
 * Returns a failure of the whole group (every sample fails with it). */
static int jobs_unet(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched, const struct lvd_attnmap_params *p,
		     struct job *jobs, int n, int max_items, struct lvd_attnmap_timing *tm, struct lvd_error *err)
{
	struct lvd_ctx *X = lvd_sd_ctx(sd);
	const struct lvd_sd_clip_cfg *ccfg = lvd_sd_clip_config(sd);
	const struct lvd_sd_vae_cfg *vcfg = lvd_sd_vae_config(sd);
	const struct lvd_sd_unet_cfg *ucfg = lvd_sd_unet_config(sd);
	const struct lvd_attnmap_geom *g = &jobs[0].in->g;
	const int npass = p->n_timesteps * p->draws, total = n * npass;
	int nsel;   /* the selected attn2 layers (the slots an item needs); the pass ends after the last */
	const int last = lvd_sd_unet_last_attn2(sd, p->layers, &nsel);
	const size_t nlat = (size_t)vcfg->latent_ch * g->lat_w * g->lat_h, nout = (size_t)ucfg->out_ch * g->lat_w * g->lat_h;
	const size_t ntext = (size_t)LVD_ATTNMAP_CTX * ccfg->width, plane = (size_t)g->grid_h * g->grid_w;
	int tmax = 1;
	for (int j = 0; j < n; j++)
		tmax = jobs[j].s->tok->T > tmax ? jobs[j].s->tok->T : tmax;
	const size_t slot_stride = (size_t)(nsel > 0 ? nsel : 1) * tmax * plane;
	const int ub = max_items < total ? max_items : total;
	double t3 = lvd_time_now();
	struct dev_capture cap = {.last = last};
	float *xh = lvd_alloc_array((size_t)ub * nlat, sizeof *xh), *noise = lvd_alloc_array(nlat, sizeof *noise);
	float *xb = lvd_buf_alloc(X, (size_t)ub * nlat * sizeof(float)), *ob = lvd_buf_alloc(X, (size_t)ub * nout * sizeof(float));
	float *slots = lvd_buf_alloc(X, (size_t)ub * slot_stride * sizeof(float));
	float *tctx = n > 1 ? lvd_buf_alloc(X, (size_t)ub * ntext * sizeof(float)) : NULL;
	float tb[LVD_ATTNMAP_MAX_BATCH];
	int rc = LVD_OK;
	if (!xh || !noise || !xb || !ob || !slots || (n > 1 && !tctx)) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "UNet batch buffers (%d passes per batch)", ub);
		goto done;
	}
	for (int k0 = 0; k0 < total; k0 += ub) {
		const int B = total - k0 < ub ? total - k0 : ub;
		for (int b = 0; b < B; b++) {
			struct job *j = &jobs[(k0 + b) / npass];
			const int k = (k0 + b) % npass, t = p->timesteps[k / p->draws], d = k % p->draws;
			lvd_rng_fill_normal(noise, nlat, p->seed, lvd_attnmap_noise_stream(j->s->id, t, d), 0);
			lvd_sd_add_noise(sched, xh + (size_t)b * nlat, j->lat, noise, nlat, t);
			tb[b] = (float)t;
			if (tctx)
				lvd_buf_upload(X, tctx + (size_t)b * ntext, j->text_h, ntext * sizeof(float));
			cap.it[b] = (struct dev_item){.acc = &j->acc, .sum = j->sum, .n_added = &j->acc.n_added,
						      .slots = slots + (size_t)b * slot_stride, .cap = nsel};
		}
		cap.B = B;
		lvd_buf_zero(X, slots, (size_t)B * slot_stride * sizeof(float));   /* the callback adds into them */
		lvd_buf_upload(X, xb, xh, (size_t)B * nlat * sizeof(float));
		rc = lvd_sd_unet_forward_batch(sd, ob, xb, B, g->lat_h, g->lat_w, tb, tctx ? tctx : jobs[0].text,
					       tctx ? ntext : 0, LVD_ATTNMAP_CTX, on_attn_dev, &cap, err);
		if (rc && cap.bad_ctx)
			rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "cross-attention context is not %d tokens",
					   LVD_ATTNMAP_CTX);
		else if (rc && cap.overflow)
			rc = lvd_error_set(err, LVD_ERR_INVALID, "batched UNet capture: more selected layers than the "
					   "%d counted", nsel);
		if (rc)
			goto done;
	}
	/* the sums to the host, once per sample */
	for (int j = 0; j < n; j++)
		lvd_buf_download(X, jobs[j].acc.sum, jobs[j].sum, (size_t)jobs[j].acc.T * plane * sizeof(float));
done:
	tm->unet += lvd_time_now() - t3 - cap.agg_s;
	tm->aggregate += cap.agg_s;
	free(xh);
	free(noise);
	lvd_buf_free(X, xb);
	lvd_buf_free(X, ob);
	lvd_buf_free(X, slots);
	lvd_buf_free(X, tctx);
	return rc;
}

/* Steps 2-5 for n prepared samples of one latent shape. */
static void run_group(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched, const struct lvd_attnmap_params *p,
		      struct job *jobs, int n, int max_items, struct lvd_attnmap_timing *tm)
{
	struct lvd_ctx *X = lvd_sd_ctx(sd);
	int ok = 0;
	for (int i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		const struct lvd_attnmap_geom *g = &j->in->g;
		struct lvd_error *err = &j->res->err;
		size_t nsum = (size_t)j->s->tok->T * g->grid_h * g->grid_w;
		int rc = lvd_attnmap_acc_init(&j->acc, LVD_ATTNMAP_CTX, 1, j->s->tok->T, g->lat_h, g->lat_w, g->grid_h,
					      g->grid_w, p->layers, err);
		if (!rc && !(j->sum = lvd_buf_alloc(X, nsum * sizeof(float))))
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "map accumulator");
		if (!rc) {
			lvd_buf_zero(X, j->sum, nsum * sizeof(float));
			rc = job_encode(sd, p, j, n > 1, tm, err);
		}
		j->res->rc = rc;
		if (!rc) /* the group runs the samples that encoded, in order */
			jobs[ok++] = *j;
		else
			job_free(X, j);
	}
	if (ok) {
		struct lvd_error gerr = {0};
		int rc = jobs_unet(sd, sched, p, jobs, ok, max_items, tm, &gerr);
		for (int i = 0; i < ok; i++) {
			struct job *j = &jobs[i];
			if (rc) {
				j->res->rc = rc;
				j->res->err = gerr;
			} else {
				j->res->rc = encode_record(sched, p, j->s, &j->in->g, &j->acc, &j->res->payload,
							   &j->res->len, tm, &j->res->err);
			}
			job_free(X, j);
		}
	}
}

int lvd_attnmap_samples_run(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched,
			    const struct lvd_attnmap_params *p, int n, const struct lvd_attnmap_sample *const *s,
			    const struct lvd_attnmap_input *const *in, int max_items, struct lvd_attnmap_result *res,
			    struct lvd_attnmap_timing *tm)
{
	for (int i = 0; i < n; i++)
		memset(&res[i], 0, sizeof res[i]);
	if (p->method != LVD_ATTNMAP_NOISE) {
		for (int i = 0; i < n; i++)
			res[i].rc = lvd_error_set(&res[i].err, LVD_ERR_UNSUPPORTED,
						  "--method inversion runs one sample at a time (lvd_attnmap_sample_run)");
		return LVD_OK;
	}
	int npass = p->n_timesteps * p->draws;
	max_items = max_items < 1 ? 1 : max_items > LVD_ATTNMAP_MAX_BATCH ? LVD_ATTNMAP_MAX_BATCH : max_items;
	int per_group = max_items / npass < 1 ? 1 : max_items / npass;   /* samples per group */
	struct job *jobs = lvd_calloc_array((size_t)n, sizeof *jobs);
	char *done = lvd_calloc_array((size_t)n, 1);
	int rc = LVD_OK;
	if (!jobs || !done) {
		rc = LVD_ERR_NOMEM;
		goto out;
	}
	/* groups of one latent shape, in order of first appearance, per_group samples each */
	for (int i = 0; i < n; i++) {
		if (done[i])
			continue;
		int m = 0;
		for (int k = i; k < n && m < per_group; k++) {
			if (done[k] || in[k]->g.lat_h != in[i]->g.lat_h || in[k]->g.lat_w != in[i]->g.lat_w)
				continue;
			done[k] = 1;
			jobs[m++] = (struct job){.s = s[k], .in = in[k], .res = &res[k]};
		}
		run_group(sd, sched, p, jobs, m, max_items, tm);
	}
out:
	free(jobs);
	free(done);
	return rc;
}

int lvd_attnmap_sample_run(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched,
		  const struct lvd_attnmap_params *p, const struct lvd_attnmap_sample *s, uint8_t **out,
		  size_t *out_len, struct lvd_attnmap_timing *tm, struct lvd_error *err)
{
	struct lvd_attnmap_input in;
	*out = NULL;
	*out_len = 0;
	int rc = lvd_attnmap_sample_prepare(p, s, &in, tm, err);
	if (rc)
		goto done;
	if (p->method == LVD_ATTNMAP_INVERSION) {
		rc = sample_inversion(sd, sched, p, s, &in, out, out_len, tm, err);
		goto done;
	}
	const struct lvd_attnmap_input *inp = &in;
	struct lvd_attnmap_result res;
	if ((rc = lvd_attnmap_samples_run(sd, sched, p, 1, &s, &inp, lvd_attnmap_unet_batch(sd, p, in.g.lat_h, in.g.lat_w),
					  &res, tm))) {
		rc = lvd_error_set(err, rc, "out of memory");
		goto done;
	}
	rc = res.rc;
	if (rc && err)
		*err = res.err;
	*out = res.payload;
	*out_len = res.len;
done:
	lvd_attnmap_input_free(&in);
	return rc;
}
