/* lib/models/sd/vae.c — AutoencoderKL encoder forward: posterior mean × scaling factor.
 * conv_in, per level L ResNets (+ a downsampler padded right/bottom by one, stride 2),
 * mid ResNet → single-head self-attention → ResNet, GroupNorm+SiLU, conv_out,
 * quant_conv. GroupNorm eps 1e-6 everywhere. The device path (lvd_sd_to_device) runs
 * the mid attention's projections as bf16 GEMMs on the channel-major map (no transpose
 * op) and writes the latent by ops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/sd/sd_internal.h"
#include "nn/ctx.h"
#include "nn/ops/attention.h"
#include "nn/ops/conv.h"
#include "nn/ops/elem.h"

/* Mid attention over [C, HW] in place: x += o(attn(q, k, v)(GN(x)ᵀ)). */
static void vae_mid_attn(const struct lvd_sd *sd, struct lvd_ctx *X, float *x, int C, int HW)
{
	const struct sd_vae *v = &sd->vae;
	size_t mark = lvd_ctx_mark(X), n = (size_t)C * HW;
	float *gn = lvd_ctx_takef(X, n);     /* GroupNorm [C, HW], later attention out [HW, C] */
	float *tok = lvd_ctx_takef(X, n);    /* tokens [HW, C], later o-projection */
	float *q = lvd_ctx_takef(X, n), *k = lvd_ctx_takef(X, n), *vv = lvd_ctx_takef(X, n);
	sd_groupnorm(sd, X, gn, x, &v->mid_gn, C, HW, v->cfg.groups, v->cfg.eps, 0);
	if (sd->dev) {
		/* no transposes: q/k/v [HW, C] = gnᵀ·Wᵀ straight from [C, HW], out [C, HW] = Wo·attᵀ */
		const struct sd_attn *a = &v->mid_attn;
		float *qkv[3] = {q, k, vv};
		const struct sd_lin *lin[3] = {&a->q, &a->k, &a->v};
		for (int i = 0; i < 3; i++) {
			SD_TIME(sd, gemm_s, sd_gemm16(X, 0, 1, 1, HW, C, C, gn, n, HW, lin[i]->w16, C, qkv[i], C));
			if (lin[i]->b)
				SD_TIME(sd, other_s, lvd_add_bias_rows(X, qkv[i], lin[i]->b, HW, C));
		}
		SD_TIME(sd, gemm_s, lvd_attention_fwd(X, gn, NULL, q, C, k, C, vv, C, HW, HW, 1, C,
						      1.0f / sqrtf((float)C), 0));
		SD_TIME(sd, gemm_s, sd_gemm16(X, 1, 0, 1, C, HW, C, gn, n, C, a->o.w16, C, tok, HW));
		if (a->o.b)
			SD_TIME(sd, other_s, lvd_add_bias_chan(X, tok, a->o.b, C, HW));
		sd_add(sd, X, x, tok, n);
		lvd_ctx_release(X, mark);
		return;
	}
	SD_TIME(sd, other_s, lvd_transpose(X, tok, gn, C, HW));   /* [HW, C] */
	sd_linear_run(sd, X, q, tok, &v->mid_attn.q, HW, C, C);
	sd_linear_run(sd, X, k, tok, &v->mid_attn.k, HW, C, C);
	sd_linear_run(sd, X, vv, tok, &v->mid_attn.v, HW, C, C);
	SD_TIME(sd, gemm_s, lvd_attention_fwd(X, gn, NULL, q, C, k, C, vv, C, HW, HW, 1, C,
					      1.0f / sqrtf((float)C), 0));
	sd_linear_run(sd, X, tok, gn, &v->mid_attn.o, HW, C, C);
	SD_TIME(sd, other_s, lvd_transpose(X, gn, tok, HW, C));   /* [C, HW] */
	sd_add(sd, X, x, gn, n);
	lvd_ctx_release(X, mark);
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
	/* the widest activation of the pass */
	size_t act = 0;
	int h = H, w = W, cprev = k->ch[0];
	for (int i = 0; i < k->levels; i++) {
		size_t hw = (size_t)h * w;
		int cm = cprev > k->ch[i] ? cprev : k->ch[i];
		act = act > (size_t)cm * hw ? act : (size_t)cm * hw;
		act = act > (size_t)k->in_ch * hw ? act : (size_t)k->in_ch * hw;
		cprev = k->ch[i];
		if (i < k->levels - 1) {
			h /= 2;
			w /= 2;
		}
	}
	int C = k->ch[k->levels - 1], HW;
	struct lvd_ctx *X = sd_ctx_enter(sd, err);
	if (!X)
		return err ? err->code : LVD_ERR_NOMEM;
	size_t mark = lvd_ctx_mark(X);
	float *cur = lvd_ctx_takef(X, act), *nxt = lvd_ctx_takef(X, act);
	h = H;
	w = W;
	sd_conv_run(sd, X, cur, image, &v->conv_in, h, w, 1, 1, 1, 1, 1);
	for (int i = 0; i < k->levels; i++) {
		for (int j = 0; j < k->layers_per_block; j++) {
			sd_resnet_run(sd, X, nxt, cur, &v->down[i][j], NULL, 0, h, w, k->groups, k->eps);
			float *t = cur; cur = nxt; nxt = t;
		}
		if (i < k->levels - 1) {
			/* pad (0, 1, 0, 1) then 3x3 stride 2 */
			sd_conv_run(sd, X, nxt, cur, &v->downsample[i], h, w, 2, 0, 0, 1, 1);
			h = lvd_conv_out_size(h, 3, 2, 0, 1);
			w = lvd_conv_out_size(w, 3, 2, 0, 1);
			float *t = cur; cur = nxt; nxt = t;
		}
	}
	HW = h * w;
	sd_resnet_run(sd, X, nxt, cur, &v->mid[0], NULL, 0, h, w, k->groups, k->eps);
	vae_mid_attn(sd, X, nxt, C, HW);
	sd_resnet_run(sd, X, cur, nxt, &v->mid[1], NULL, 0, h, w, k->groups, k->eps);
	sd_groupnorm(sd, X, nxt, cur, &v->norm_out, C, HW, k->groups, k->eps, 1);
	int M = 2 * k->latent_ch;
	float *mo = lvd_ctx_takef(X, (size_t)M * HW), *mo2 = lvd_ctx_takef(X, (size_t)M * HW);
	sd_conv_run(sd, X, mo, nxt, &v->conv_out, h, w, 1, 1, 1, 1, 1);
	sd_conv_run(sd, X, mo2, mo, &v->quant, h, w, 1, 0, 0, 0, 0);
	if (sd->dev) {
		/* latent = scaling·mean, exact as 0 + scaling·mean */
		if (moments)
			sd_copy(sd, X, moments, mo2, (size_t)M * HW);
		lvd_buf_zero(X, latent, sizeof(float) * (size_t)k->latent_ch * HW);
		lvd_axpy(X, latent, k->scaling, mo2, (size_t)k->latent_ch * HW);
	} else {
		if (moments)
			memcpy(moments, mo2, sizeof(float) * (size_t)M * HW);
		for (size_t i = 0; i < (size_t)k->latent_ch * HW; i++)
			latent[i] = mo2[i] * k->scaling;
	}
	lvd_ctx_release(X, mark);
	sd_ctx_leave(sd, X);
	return 0;
}
