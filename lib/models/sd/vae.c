/* lib/models/sd/vae.c — AutoencoderKL encoder forward: posterior mean × scaling factor.
 * conv_in, per level L ResNets (+ a downsampler padded right/bottom by one, stride 2),
 * mid ResNet → single-head self-attention → ResNet, GroupNorm+SiLU, conv_out,
 * quant_conv. GroupNorm eps 1e-6 everywhere. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/pool.h"
#include "models/sd/sd_internal.h"
#include "nn/ops.h"

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Mid attention over [C, HW] in place: x += o(attn(q, k, v)(GN(x)ᵀ)). */
static void vae_mid_attn(const struct lvd_sd *sd, float *x, int C, int HW, struct sd_ws *ws)
{
	const struct sd_vae *v = &sd->vae;
	size_t mark = ws->used, n = (size_t)C * HW;
	float *g = sd_ws_take(ws, n), *t = sd_ws_take(ws, n);
	float *q = sd_ws_take(ws, n), *k = sd_ws_take(ws, n), *vv = sd_ws_take(ws, n);
	size_t sc = lvd_attention_scratch_mt(HW, HW, lvd_pool_threads(sd->pool));
	float *scratch = sd_ws_take(ws, sc);
	sd_groupnorm(sd, g, x, &v->mid_gn, C, HW, v->cfg.groups, v->cfg.eps, 0);
	SD_TIME(sd, other_s, lvd_transpose(t, g, C, HW));   /* [HW, C] */
	sd_linear_run(sd, q, t, &v->mid_attn.q, HW, C, C);
	sd_linear_run(sd, k, t, &v->mid_attn.k, HW, C, C);
	sd_linear_run(sd, vv, t, &v->mid_attn.v, HW, C, C);
	SD_TIME(sd, gemm_s, lvd_attention_fwd_mt(g, NULL, q, C, k, C, vv, C, HW, HW, 1, C,
						 1.0f / sqrtf((float)C), 0, scratch, sc, sd->pool));
	sd_linear_run(sd, t, g, &v->mid_attn.o, HW, C, C);
	SD_TIME(sd, other_s, lvd_transpose(g, t, HW, C));   /* [C, HW] */
	sd_add(sd, x, g, n);
	ws->used = mark;
}

int lvd_sd_vae_encode(const struct lvd_sd *sd, float *latent, float *moments,
		      const float *image, int H, int W, struct lvd_error *err)
{
	if (!sd->has_vae)
		return lvd_error_set(err, LVD_ERR_INVALID, "VAE not loaded");
	const struct sd_vae *v = &sd->vae;
	const struct lvd_sd_vae_cfg *k = &v->cfg;
	int f = 1 << (k->levels - 1);
	if (H < f || W < f || H % f || W % f || H > 16384 || W > 16384)
		return lvd_error_set(err, LVD_ERR_INVALID, "VAE input %dx%d: sides must be positive multiples of %d",
				     W, H, f);
	/* workspace: two activations + resnet temporaries + conv/attention scratch */
	size_t act = 0, scr = 0;
	int h = H, w = W, cprev = k->ch[0];
	for (int i = 0; i < k->levels; i++) {
		size_t hw = (size_t)h * w;
		int cm = cprev > k->ch[i] ? cprev : k->ch[i];
		act = max_sz(act, (size_t)cm * hw);
		act = max_sz(act, (size_t)k->in_ch * hw);
		scr = max_sz(scr, sd_conv3_scratch_bound(sd, cm, cm, h, w));
		scr = max_sz(scr, sd_conv3_scratch_bound(sd, k->in_ch, k->ch[0], h, w));
		cprev = k->ch[i];
		if (i < k->levels - 1) {
			h /= 2;
			w /= 2;
		}
	}
	int C = k->ch[k->levels - 1], HW = h * w;
	size_t attn = 5 * (size_t)C * HW + lvd_attention_scratch_mt(HW, HW, lvd_pool_threads(sd->pool));
	size_t cap = 2 * act + max_sz(3 * act + (size_t)C + scr, attn) + 2 * (size_t)(2 * k->latent_ch) * HW + 256;
	struct sd_ws ws = {.cap = cap};
	ws.base = lvd_alloc_aligned(cap, sizeof(float));
	if (!ws.base)
		return lvd_error_set(err, LVD_ERR_NOMEM, "VAE encode %dx%d: cannot allocate %zu floats", W, H, cap);
	float *cur = sd_ws_take(&ws, act), *nxt = sd_ws_take(&ws, act);
	h = H;
	w = W;
	sd_conv_run(sd, cur, image, &v->conv_in, h, w, 1, 1, 1, 1, 1, &ws);
	for (int i = 0; i < k->levels; i++) {
		for (int j = 0; j < k->layers_per_block; j++) {
			sd_resnet_run(sd, nxt, cur, &v->down[i][j], NULL, 0, h, w, k->groups, k->eps, &ws);
			float *t = cur; cur = nxt; nxt = t;
		}
		if (i < k->levels - 1) {
			/* pad (0, 1, 0, 1) then 3x3 stride 2 */
			sd_conv_run(sd, nxt, cur, &v->downsample[i], h, w, 2, 0, 0, 1, 1, &ws);
			h = lvd_conv_out_size(h, 3, 2, 0, 1);
			w = lvd_conv_out_size(w, 3, 2, 0, 1);
			float *t = cur; cur = nxt; nxt = t;
		}
	}
	HW = h * w;
	sd_resnet_run(sd, nxt, cur, &v->mid[0], NULL, 0, h, w, k->groups, k->eps, &ws);
	vae_mid_attn(sd, nxt, C, HW, &ws);
	sd_resnet_run(sd, cur, nxt, &v->mid[1], NULL, 0, h, w, k->groups, k->eps, &ws);
	sd_groupnorm(sd, nxt, cur, &v->norm_out, C, HW, k->groups, k->eps, 1);
	int M = 2 * k->latent_ch;
	float *mo = sd_ws_take(&ws, (size_t)M * HW), *mo2 = sd_ws_take(&ws, (size_t)M * HW);
	sd_conv_run(sd, mo, nxt, &v->conv_out, h, w, 1, 1, 1, 1, 1, &ws);
	sd_conv_run(sd, mo2, mo, &v->quant, h, w, 1, 0, 0, 0, 0, &ws);
	if (moments)
		memcpy(moments, mo2, sizeof(float) * (size_t)M * HW);
	for (size_t i = 0; i < (size_t)k->latent_ch * HW; i++)
		latent[i] = mo2[i] * k->scaling;
	free(ws.base);
	return 0;
}
