/* lib/lavender/attnmap_sample.c — one sample from image + tokens to an sd-attnmap record
 * payload (see attnmap_sample.h and docs/attnmap.md for the procedure). */
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
	int last;     /* index of the last selected attn2 layer: the pass ends there (noise
		       * method, whose UNet output is unused); -1: run the whole UNet */
};

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
	return info->index == c->last ? LVD_SD_CB_DONE : 0;
}

/* Capture of a batched UNet pass: item 0's maps go to the accumulator as they come;
 * items 1..B-1 keep copies of their selected maps, added after the pass item by item, so
 * the maps are summed in the order of unbatched passes (docs/attnmap.md step 6). */
#define LVD_ATTNMAP_MAX_LAYERS 64   /* attn2 layers per UNet pass (SD 1.x/2.x: 16) */
struct batch_item {
	float *data;
	size_t len, cap;
	int n, hw[LVD_ATTNMAP_MAX_LAYERS][2];
};
struct batch_capture {
	struct capture *cap;
	struct batch_item it[LVD_ATTNMAP_MAX_BATCH];
	int overflow;
};

static int on_attn_batch(void *user, const struct lvd_sd_attn_info *info, const float *probs)
{
	struct batch_capture *bc = user;
	struct capture *c = bc->cap;
	if (info->item == 0)
		return on_attn(c, info, probs);
	if (info->n_ctx != c->acc->n_ctx) {
		c->bad_ctx = 1;
		return 1;
	}
	const struct lvd_attnmap_acc *acc = c->acc;
	int k = lvd_attnmap_layer_level(acc->lat_h, acc->lat_w, info->h, info->w);
	if (k < 0 || !(acc->levels & (1u << k)))
		return 0;
	double t0 = lvd_time_now();
	if (info->item >= LVD_ATTNMAP_MAX_BATCH || bc->it[info->item].n >= LVD_ATTNMAP_MAX_LAYERS) {
		bc->overflow = 1;
		return 1;
	}
	struct batch_item *it = &bc->it[info->item];
	size_t sz = (size_t)info->h * info->w * info->n_ctx;
	if (it->len + sz > it->cap) {
		size_t cap = (it->len + sz) * 2;
		float *d = realloc(it->data, cap * sizeof *d);
		if (!d) {
			bc->overflow = 1;
			return 1;
		}
		it->data = d;
		it->cap = cap;
	}
	memcpy(it->data + it->len, probs, sz * sizeof *probs);
	it->len += sz;
	it->hw[it->n][0] = info->h;
	it->hw[it->n][1] = info->w;
	it->n++;
	c->agg_s += lvd_time_now() - t0;
	return 0;
}

static int batch_capture_flush(struct batch_capture *bc, int B, struct lvd_error *err)
{
	if (bc->overflow)
		return lvd_error_set(err, LVD_ERR_NOMEM, "batched UNet capture: out of memory or more than %d layers",
				     LVD_ATTNMAP_MAX_LAYERS);
	double t0 = lvd_time_now();
	for (int b = 1; b < B; b++) {
		struct batch_item *it = &bc->it[b];
		size_t off = 0;
		for (int i = 0; i < it->n; i++) {
			lvd_attnmap_acc_add(bc->cap->acc, it->data + off, it->hw[i][0], it->hw[i][1]);
			off += (size_t)it->hw[i][0] * it->hw[i][1] * bc->cap->acc->n_ctx;
		}
		it->len = 0;
		it->n = 0;
	}
	bc->cap->agg_s += lvd_time_now() - t0;
	return 0;
}

static void batch_capture_free(struct batch_capture *bc)
{
	for (int b = 0; b < LVD_ATTNMAP_MAX_BATCH; b++)
		free(bc->it[b].data);
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

int lvd_attnmap_sample_run(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched,
		  const struct lvd_attnmap_params *p, const struct lvd_attnmap_sample *s, uint8_t **out,
		  size_t *out_len, struct lvd_attnmap_timing *tm, struct lvd_error *err)
{
	struct lvd_image img = {0}, rs = {0};
	float *pix = NULL, *lat = NULL, *ctx = NULL, *uctx = NULL, *noise = NULL, *xt = NULL, *eps = NULL;
	float *maps = NULL;
	struct lvd_attnmap_acc acc = {0};
	struct lvd_attnmap_stats *stats = NULL;
	uint16_t *h16 = NULL;
	int rc;
	const struct lvd_attnmap_text *tok = s->tok;
	const struct lvd_sd_clip_cfg *ccfg = lvd_sd_clip_config(sd);
	const struct lvd_sd_vae_cfg *vcfg = lvd_sd_vae_config(sd);
	const struct lvd_sd_unet_cfg *ucfg = lvd_sd_unet_config(sd);
	*out = NULL;
	*out_len = 0;

	/* 1. decode and resize (aspect kept, sides multiples of 64, PIL bicubic) */
	double t0 = lvd_time_now();
	if ((rc = lvd_image_load(&img, s->image_path, LVD_ALPHA_BLACK, err)))
		goto done;
	if (img.w < p->min_side || img.h < p->min_side) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "image too small: %dx%d (--min-side %d)", img.w, img.h,
				   p->min_side);
		goto done;
	}
	struct lvd_attnmap_geom g;
	if ((rc = lvd_attnmap_geometry(&g, img.w, img.h, p->resolution, p->grid, err)))
		goto done;
	if (g.sd_w == img.w && g.sd_h == img.h) {
		rs = img;
		img.px = NULL;
	} else if ((rc = lvd_image_resize(&rs, &img, g.sd_w, g.sd_h, LVD_RESAMPLE_BICUBIC, 1, err))) {
		goto done;
	}
	size_t hw = (size_t)g.sd_w * g.sd_h;
	if (!(pix = lvd_alloc_array(3 * hw, sizeof(float)))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "image buffer");
		goto done;
	}
	for (size_t i = 0; i < hw; i++)
		for (int c = 0; c < 3; c++)
			pix[(size_t)c * hw + i] = (float)rs.px[i * 3 + (size_t)c] / 127.5f - 1.0f;
	double t1 = lvd_time_now();
	tm->decode += t1 - t0;

	/* 2. text encoder on the full context */
	if (!(ctx = lvd_alloc_array((size_t)LVD_ATTNMAP_CTX, (size_t)ccfg->width * sizeof(float)))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "text states");
		goto done;
	}
	int32_t ids[LVD_ATTNMAP_CTX];
	for (int i = 0; i < LVD_ATTNMAP_CTX; i++)
		ids[i] = p->fold_vocab ? tok->ids[i] % ccfg->vocab : tok->ids[i];
	if ((rc = lvd_sd_text_encode(sd, ctx, ids, LVD_ATTNMAP_CTX, err)))
		goto done;
	if (p->method == LVD_ATTNMAP_INVERSION && p->guidance != 1.0f) {
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

	/* 3. VAE posterior mean x scaling */
	size_t nlat = (size_t)vcfg->latent_ch * g.lat_w * g.lat_h;
	if (!(lat = lvd_alloc_array(nlat, sizeof(float))) || !(noise = lvd_alloc_array(nlat, sizeof(float))) ||
	    !(xt = lvd_alloc_array(nlat, sizeof(float))) ||
	    !(eps = lvd_alloc_array((size_t)ucfg->out_ch * g.lat_w * g.lat_h, sizeof(float)))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "latent buffers");
		goto done;
	}
	if ((rc = lvd_sd_vae_encode(sd, lat, NULL, pix, g.sd_h, g.sd_w, err)))
		goto done;
	double t3 = lvd_time_now();
	tm->vae += t3 - t2;

	/* 4. noised UNet passes with capture, aggregated as they come */
	if ((rc = lvd_attnmap_acc_init(&acc, LVD_ATTNMAP_CTX, 1, tok->T, g.lat_h, g.lat_w, g.grid_h, g.grid_w, p->layers,
				       err)))
		goto done;
	struct capture cap = {&acc, 0, 0, -1};
	if (p->method == LVD_ATTNMAP_INVERSION) {
		memcpy(xt, lat, nlat * sizeof *xt);
		if ((rc = run_inversion(sd, sched, p, xt, ctx, uctx, g.lat_h, g.lat_w, nlat, on_attn, &cap, err))) {
			if (cap.bad_ctx)
				rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "cross-attention context is not %d tokens",
						   LVD_ATTNMAP_CTX);
			goto done;
		}
	}
	if (p->method == LVD_ATTNMAP_NOISE) {
		/* the n_timesteps × draws passes (timestep-major), `ub` per batched UNet pass */
		const int npass = p->n_timesteps * p->draws;
		const size_t nout = (size_t)ucfg->out_ch * g.lat_w * g.lat_h;
		int ub = lvd_attnmap_unet_batch(sd, p, g.lat_h, g.lat_w);
		struct batch_capture bc = {.cap = &cap};
		cap.last = lvd_sd_unet_last_attn2(sd, p->layers);   /* the maps need nothing after it */
		float *xb = lvd_alloc_array((size_t)ub * nlat, sizeof *xb), *ob = lvd_alloc_array((size_t)ub * nout, sizeof *ob);
		float tb[LVD_ATTNMAP_MAX_BATCH];
		if (!xb || !ob)
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "UNet batch buffers (--unet-batch %d)", ub);
		for (int k0 = 0; !rc && k0 < npass; k0 += ub) {
			const int B = npass - k0 < ub ? npass - k0 : ub;
			for (int b = 0; b < B; b++) {
				const int t = p->timesteps[(k0 + b) / p->draws], d = (k0 + b) % p->draws;
				lvd_rng_fill_normal(noise, nlat, p->seed, lvd_attnmap_noise_stream(s->id, t, d), 0);
				lvd_sd_add_noise(sched, xb + (size_t)b * nlat, lat, noise, nlat, t);
				tb[b] = (float)t;
			}
			if (!(rc = lvd_sd_unet_forward_batch(sd, ob, xb, B, g.lat_h, g.lat_w, tb, ctx, 0, LVD_ATTNMAP_CTX,
							     on_attn_batch, &bc, err)))
				rc = batch_capture_flush(&bc, B, err);
			if (rc && cap.bad_ctx)
				rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "cross-attention context is not %d tokens",
						   LVD_ATTNMAP_CTX);
			else if (rc && bc.overflow)
				rc = batch_capture_flush(&bc, B, err);   /* names the capture's failure */
		}
		batch_capture_free(&bc);
		free(xb);
		free(ob);
		if (rc)
			goto done;
	}
	double t4 = lvd_time_now();
	size_t nmap = (size_t)tok->T * g.grid_h * g.grid_w, plane = (size_t)g.grid_h * g.grid_w;
	if (!(maps = lvd_alloc_array(nmap, sizeof(float))) || !(h16 = lvd_alloc_array(nmap, sizeof(uint16_t))) ||
	    !(stats = lvd_alloc_array((size_t)tok->T, sizeof *stats))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "map buffers");
		goto done;
	}
	if ((rc = lvd_attnmap_acc_mean(&acc, maps, err)))
		goto done;
	for (int t = 0; t < tok->T; t++)
		lvd_attnmap_stats(&stats[t], maps + (size_t)t * plane, plane);
	for (size_t i = 0; i < nmap; i++)
		h16[i] = lvd_f32_to_f16(maps[i]);
	double t5 = lvd_time_now();
	tm->unet += t4 - t3 - cap.agg_s;
	tm->aggregate += t5 - t4 + cap.agg_s;

	/* 5. the record payload */
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
	r.img_w = g.img_w;
	r.img_h = g.img_h;
	r.image_file = (char *)s->image;
	r.sd_w = g.sd_w;
	r.sd_h = g.sd_h;
	r.grid_w = g.grid_w;
	r.grid_h = g.grid_h;
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
	lvd_image_free(&img);
	lvd_image_free(&rs);
	free(pix);
	free(lat);
	free(ctx);
	free(uctx);
	free(noise);
	free(xt);
	free(eps);
	free(maps);
	free(h16);
	free(stats);
	lvd_attnmap_acc_free(&acc);
	return rc;
}
