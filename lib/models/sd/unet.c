/* lib/models/sd/unet.c — UNet2DConditionModel forward (SD 1.x layout) with a callback
 * for every cross-attention (attn2) probability map, averaged over heads.
 *
 * Flow: sinusoidal t → time MLP; conv_in; down levels (ResNet [+ spatial transformer])
 * × L, downsample (3x3 stride 2 pad 1), every output pushed on the skip stack; mid
 * ResNet → transformer → ResNet; up levels (ResNet on concat(h, pop) [+ transformer])
 * × (L+1), nearest ×2 + 3x3 conv; GroupNorm+SiLU → conv_out.
 * Spatial transformer on [C, HW]: GN(eps 1e-6) → proj_in → [HW, C] → per block
 * x += attn1(LN1 x); x += attn2(LN2 x, ctx); x += W2·GEGLU(W1·LN3 x) → proj_out → + input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/sd/sd_internal.h"
#include "nn/ctx.h"
#include "nn/ops/act.h"
#include "nn/ops/attention.h"
#include "nn/ops/elem.h"
#include "nn/ops/embed.h"
#include "nn/ops/gemm.h"
#include "nn/ops/resample.h"

struct unet_run {
	const struct lvd_sd *sd;
	struct lvd_ctx *x;   /* execution context (ctx is the text context below) */
	const float *ctx;
	int n_ctx;
	lvd_sd_attn_cb cb;
	void *user;
	int index;      /* attn2 call counter */
	int aborted;
};

static void tf_run(struct unet_run *R, float *x, const struct sd_transformer *t, int h, int w,
		   const char *block, int level)
{
	const struct lvd_sd *sd = R->sd;
	struct lvd_ctx *X = R->x;
	const struct lvd_sd_unet_cfg *k = &sd->unet.cfg;
	int C = t->C, HW = h * w, H = t->heads, D = C / H, M = R->n_ctx;
	size_t n = (size_t)C * HW, mark = lvd_ctx_mark(X);
	float scale = 1.0f / sqrtf((float)D);
	float *gn = lvd_ctx_takef(X, n);      /* GroupNorm [C, HW], later proj_out [C, HW] */
	float *xs = lvd_ctx_takef(X, n);      /* token states [HW, C] */
	float *nb = lvd_ctx_takef(X, n);      /* LayerNorm output / branch output [HW, C] */
	float *q = lvd_ctx_takef(X, n), *kk = lvd_ctx_takef(X, n), *v = lvd_ctx_takef(X, n);
	float *att = lvd_ctx_takef(X, n);     /* attention output [HW, C] */
	float *ff1 = lvd_ctx_takef(X, 8 * n); /* feed-forward [HW, 8C] */
	float *geglu = lvd_ctx_takef(X, 4 * n);
	float *kc = lvd_ctx_takef(X, (size_t)M * C), *vc = lvd_ctx_takef(X, (size_t)M * C);
	float *probs = lvd_ctx_takef(X, (size_t)HW * M);

	sd_groupnorm(sd, X, gn, x, &t->gn, C, HW, k->groups, 1e-6f, 0);
	/* proj_in (1x1 conv or linear, same bytes): xs[HW, C] = gnᵀ Wᵀ + b */
	SD_TIME(sd, gemm_s, lvd_gemm(X, 1, 1, HW, C, C, 1.0f, gn, HW, t->pin.w, C, 0.0f, xs, C));
	SD_TIME(sd, other_s, lvd_add_bias_rows(X, xs, t->pin.b, HW, C));
	for (int b = 0; b < k->tblocks; b++) {
		const struct sd_tblock *tb = &t->tb[b];
		/* self-attention */
		sd_layernorm(sd, X, nb, xs, &tb->ln1, HW, C, 1e-5f);
		sd_linear_run(sd, X, q, nb, &tb->a1.q, HW, C, C);
		sd_linear_run(sd, X, kk, nb, &tb->a1.k, HW, C, C);
		sd_linear_run(sd, X, v, nb, &tb->a1.v, HW, C, C);
		SD_TIME(sd, gemm_s, lvd_attention_fwd(X, att, NULL, q, C, kk, C, v, C, HW, HW, H, D, scale, 0));
		sd_linear_run(sd, X, nb, att, &tb->a1.o, HW, C, C);
		sd_add(sd, X, xs, nb, n);
		/* cross-attention with capture */
		sd_layernorm(sd, X, nb, xs, &tb->ln2, HW, C, 1e-5f);
		sd_linear_run(sd, X, q, nb, &tb->a2.q, HW, C, C);
		sd_linear_run(sd, X, kc, R->ctx, &tb->a2.k, M, k->ctx_dim, C);
		sd_linear_run(sd, X, vc, R->ctx, &tb->a2.v, M, k->ctx_dim, C);
		SD_TIME(sd, gemm_s, lvd_attention_fwd(X, att, R->cb ? probs : NULL, q, C, kc, C, vc, C, HW, M, H, D,
						      scale, 0));
		if (R->cb && !R->aborted) {
			struct lvd_sd_attn_info info = {
				.name = t->name[b], .block = block, .index = R->index, .level = level,
				.h = h, .w = w, .n_ctx = M, .heads = H,
			};
			if (R->cb(R->user, &info, probs))
				R->aborted = 1;
		}
		R->index++;
		sd_linear_run(sd, X, nb, att, &tb->a2.o, HW, C, C);
		sd_add(sd, X, xs, nb, n);
		/* GEGLU feed-forward */
		sd_layernorm(sd, X, nb, xs, &tb->ln3, HW, C, 1e-5f);
		sd_linear_run(sd, X, ff1, nb, &tb->ff1, HW, C, 8 * C);
		SD_TIME(sd, other_s, lvd_geglu_fwd(X, geglu, ff1, HW, 4 * C));
		sd_linear_run(sd, X, nb, geglu, &tb->ff2, HW, 4 * C, C);
		sd_add(sd, X, xs, nb, n);
	}
	/* proj_out: gn[C, HW] = W xsᵀ + b; x += gn */
	SD_TIME(sd, gemm_s, lvd_gemm(X, 0, 1, C, HW, C, 1.0f, t->pout.w, C, xs, C, 0.0f, gn, HW));
	SD_TIME(sd, other_s, lvd_add_bias_chan(X, gn, t->pout.b, C, HW));
	sd_add(sd, X, x, gn, n);
	lvd_ctx_release(X, mark);
}

int lvd_sd_unet_forward(const struct lvd_sd *sd, float *out, const float *x, int h, int w,
			float t, const float *ctx, int n_ctx, lvd_sd_attn_cb cb, void *user,
			struct lvd_error *err)
{
	if (!sd->has_unet)
		return lvd_error_set(err, LVD_ERR_INVALID, "UNet not loaded");
	const struct sd_unet *u = &sd->unet;
	const struct lvd_sd_unet_cfg *k = &u->cfg;
	int n = k->levels, L = k->layers_per_block, TE = k->temb_dim;
	int f = 1 << (n - 1);
	if (h < f || w < f || h % f || w % f || h > 4096 || w > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "UNet latent %dx%d: sides must be positive multiples of %d",
				     w, h, f);
	if (n_ctx < 1 || n_ctx > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "UNet context length %d outside [1, 4096]", n_ctx);

	/* channels of the skip stack in push order: conv_in, every down ResNet, every
	 * downsampler */
	int cmax = 0, ns = 0, skip_ch[LVD_SD_MAX_LEVELS * LVD_SD_MAX_RES + 1];
	skip_ch[ns++] = k->ch[0];
	for (int i = 0; i < n; i++) {
		cmax = k->ch[i] > cmax ? k->ch[i] : cmax;
		for (int j = 0; j < L; j++)
			skip_ch[ns++] = k->ch[i];
		if (i < n - 1)
			skip_ch[ns++] = k->ch[i];
	}
	struct lvd_ctx *X = sd_ctx_enter(sd, err);
	if (!X)
		return err ? err->code : LVD_ERR_NOMEM;
	size_t mark = lvd_ctx_mark(X);
	size_t act = 2 * (size_t)cmax * h * w;   /* widest activation: an up ResNet's concat input */
	struct unet_run R = {.sd = sd, .x = X, .ctx = ctx, .n_ctx = n_ctx, .cb = cb, .user = user};

	/* ---- time embedding ---- */
	float *temb = lvd_ctx_takef(X, (size_t)TE), *tact = lvd_ctx_takef(X, (size_t)TE);
	float *sinus = lvd_ctx_takef(X, (size_t)k->ch[0]);
	lvd_timestep_embedding(X, sinus, t, k->ch[0], k->flip_sin_to_cos, k->freq_shift, 10000.0f);
	sd_linear_run(sd, X, tact, sinus, &u->t1, 1, k->ch[0], TE);
	lvd_silu_fwd(X, tact, tact, (size_t)TE);
	sd_linear_run(sd, X, temb, tact, &u->t2, 1, TE, TE);
	lvd_silu_fwd(X, tact, temb, (size_t)TE);   /* every ResNet uses SiLU(temb) */

	float *cur = lvd_ctx_takef(X, act), *nxt = lvd_ctx_takef(X, act);   /* ping-pong activations */
	float *skips[LVD_SD_MAX_LEVELS * LVD_SD_MAX_RES + 1];
	int nsk = 0;
	int hh = h, ww = w;
	sd_conv_run(sd, X, cur, x, &u->conv_in, hh, ww, 1, 1, 1, 1, 1);
	skips[nsk] = lvd_ctx_takef(X, (size_t)k->ch[0] * hh * ww);
	memcpy(skips[nsk++], cur, sizeof(float) * (size_t)k->ch[0] * hh * ww);
	/* skip buffers are taken in push order below the temporaries of later blocks */
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < L; j++) {
			sd_resnet_run(sd, X, nxt, cur, &u->down[i][j], tact, TE, hh, ww, k->groups, k->eps);
			float *tmp = cur; cur = nxt; nxt = tmp;
			if (k->down_attn[i])
				tf_run(&R, cur, &u->down_tf[i][j], hh, ww, "down", i);
			size_t sz = (size_t)k->ch[i] * hh * ww;
			skips[nsk] = lvd_ctx_takef(X, sz);
			memcpy(skips[nsk++], cur, sizeof(float) * sz);
		}
		if (i < n - 1) {
			sd_conv_run(sd, X, nxt, cur, &u->downsample[i], hh, ww, 2, 1, 1, 1, 1);
			hh /= 2;
			ww /= 2;
			float *tmp = cur; cur = nxt; nxt = tmp;
			size_t sz = (size_t)k->ch[i] * hh * ww;
			skips[nsk] = lvd_ctx_takef(X, sz);
			memcpy(skips[nsk++], cur, sizeof(float) * sz);
		}
	}
	LVD_ASSERT(nsk == ns);
	/* mid */
	sd_resnet_run(sd, X, nxt, cur, &u->mid[0], tact, TE, hh, ww, k->groups, k->eps);
	tf_run(&R, nxt, &u->mid_tf, hh, ww, "mid", n - 1);
	sd_resnet_run(sd, X, cur, nxt, &u->mid[1], tact, TE, hh, ww, k->groups, k->eps);
	/* up */
	int hc = k->ch[n - 1];
	for (int uu = 0; uu < n; uu++) {
		int lvl = n - 1 - uu;
		size_t hw = (size_t)hh * ww;
		for (int j = 0; j <= L; j++) {
			const struct sd_resnet *r = &u->up[uu][j];
			int sc = r->cin - hc;
			LVD_ASSERT(sc == skip_ch[nsk - 1]);
			const float *sk = skips[--nsk];
			/* concat(h, skip) along channels into nxt, then the ResNet back into cur */
			memcpy(nxt, cur, sizeof(float) * (size_t)hc * hw);
			memcpy(nxt + (size_t)hc * hw, sk, sizeof(float) * (size_t)sc * hw);
			sd_resnet_run(sd, X, cur, nxt, r, tact, TE, hh, ww, k->groups, k->eps);
			hc = r->cout;
			if (k->up_attn[uu])
				tf_run(&R, cur, &u->up_tf[uu][j], hh, ww, "up", lvl);
		}
		if (uu < n - 1) {
			lvd_resample_nearest2x_fwd(X, nxt, cur, 1, hc, hh, ww);
			hh *= 2;
			ww *= 2;
			sd_conv_run(sd, X, cur, nxt, &u->upsample[uu], hh, ww, 1, 1, 1, 1, 1);
		}
	}
	sd_groupnorm(sd, X, nxt, cur, &u->norm_out, k->ch[0], hh * ww, k->groups, k->eps, 1);
	sd_conv_run(sd, X, out, nxt, &u->conv_out, hh, ww, 1, 1, 1, 1, 1);
	lvd_ctx_release(X, mark);
	sd_ctx_leave(sd, X);
	if (R.aborted)
		return lvd_error_set(err, LVD_ERR_INVALID, "UNet pass aborted by the attention callback");
	return 0;
}
