/* lib/lavender/attnmap_sample.c — one sample from image + tokens to an sd-attnmap record
 * payload (see attnmap_sample.h and docs/attnmap.md for the procedure). */
#include "lavender/attnmap_sample.h"

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
	return 0;
}

int lvd_attnmap_sample_run(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched,
		  const struct lvd_attnmap_params *p, const struct lvd_attnmap_sample *s, uint8_t **out,
		  size_t *out_len, struct lvd_attnmap_timing *tm, struct lvd_error *err)
{
	struct lvd_image img = {0}, rs = {0};
	float *pix = NULL, *lat = NULL, *ctx = NULL, *noise = NULL, *xt = NULL, *eps = NULL, *maps = NULL;
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
	struct capture cap = {&acc, 0, 0};
	for (int ti = 0; ti < p->n_timesteps; ti++) {
		int t = p->timesteps[ti];
		for (int d = 0; d < p->draws; d++) {
			lvd_rng_fill_normal(noise, nlat, p->seed, lvd_attnmap_noise_stream(s->id, t, d), 0);
			lvd_sd_add_noise(sched, xt, lat, noise, nlat, t);
			if ((rc = lvd_sd_unet_forward(sd, eps, xt, g.lat_h, g.lat_w, (float)t, ctx, LVD_ATTNMAP_CTX, on_attn, &cap,
						      err))) {
				if (cap.bad_ctx)
					rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "cross-attention context is not %d tokens",
							   LVD_ATTNMAP_CTX);
				goto done;
			}
		}
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
	for (int i = 0; i < p->n_timesteps; i++)
		tsteps[i] = p->timesteps[i];
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
	r.n_timesteps = (uint32_t)p->n_timesteps;
	r.timesteps = tsteps;
	r.draws = (uint32_t)p->draws;
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
	free(noise);
	free(xt);
	free(eps);
	free(maps);
	free(h16);
	free(stats);
	lvd_attnmap_acc_free(&acc);
	return rc;
}
