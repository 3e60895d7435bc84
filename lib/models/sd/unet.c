/* lib/models/sd/unet.c — UNet2DConditionModel forward (SD 1.x layout) with a callback
 * for every cross-attention (attn2) probability map, averaged over heads.
 *
 * Flow: sinusoidal t → time MLP; conv_in; down levels (ResNet [+ spatial transformer])
 * × L, downsample (3x3 stride 2 pad 1), every output pushed on the skip stack; mid
 * ResNet → transformer → ResNet; up levels (ResNet on concat(h, pop) [+ transformer])
 * × (L+1), nearest ×2 + 3x3 conv; GroupNorm+SiLU → conv_out.
 * Spatial transformer on [C, HW]: GN(eps 1e-6) → proj_in → [HW, C] → per block
 * x += attn1(LN1 x); x += attn2(LN2 x, ctx); x += W2·GEGLU(W1·LN3 x) → proj_out → + input.
 * Batched (lvd_sd_unet_forward_batch): every activation is [B, C, h, w]; the time MLP and
 * the transformers' row-wise work run on all items at once, convolutions through
 * sd_conv_run_b (small maps stacked into one image), attention and the callback per item;
 * lvd_sd_unet_forward is the batch of one. The device path (lvd_sd_to_device) runs the
 * same flow with bf16 weights; proj_in/proj_out as bf16 GEMMs on the channel-major map,
 * copies by sd_copy, the timestep sinusoids computed on the host and uploaded. */
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
	int B;               /* batch items */
	const float *ctx;    /* item b's context: ctx + b·ctx_stride */
	size_t ctx_stride;   /* 0: one context shared by every item */
	int n_ctx;
	lvd_sd_attn_cb cb;
	void *user;
	int index;      /* attn2 call counter (per layer, shared by the items) */
	int layers;     /* attn2 layers per pass */
	int aborted;
	int done;       /* a callback returned LVD_SD_CB_DONE: the pass ends after this layer */
};

/* Spatial transformer on B items x [B, C, h·w] in place. Row-wise work (LayerNorm,
 * every linear, GEGLU) runs on the B·h·w token rows at once; attention, proj_in/out and
 * the capture callback per item. */
static void tf_run(struct unet_run *R, float *x, const struct sd_transformer *t, int h, int w,
		   const char *block, int level)
{
	const struct lvd_sd *sd = R->sd;
	struct lvd_ctx *X = R->x;
	const struct lvd_sd_unet_cfg *k = &sd->unet.cfg;
	int B = R->B, C = t->C, HW = h * w, H = t->heads, D = C / H, M = R->n_ctx, NR = B * HW;
	int nkv = R->ctx_stride ? B : 1;   /* cross-attention K/V sets */
	size_t n1 = (size_t)C * HW, n = (size_t)B * n1, mark = lvd_ctx_mark(X);
	float scale = 1.0f / sqrtf((float)D);
	float *gn = lvd_ctx_takef(X, n);      /* GroupNorm [B, C, HW], later proj_out [B, C, HW] */
	float *xs = lvd_ctx_takef(X, n);      /* token states [B·HW, C] */
	float *nb = lvd_ctx_takef(X, n);      /* LayerNorm output / branch output [B·HW, C] */
	float *q = lvd_ctx_takef(X, n), *kk = lvd_ctx_takef(X, n), *v = lvd_ctx_takef(X, n);
	float *att = lvd_ctx_takef(X, n);     /* attention output [B·HW, C] */
	float *ff1 = lvd_ctx_takef(X, 8 * n); /* feed-forward [B·HW, 8C] */
	float *geglu = lvd_ctx_takef(X, 4 * n);
	float *kc = lvd_ctx_takef(X, (size_t)nkv * M * C), *vc = lvd_ctx_takef(X, (size_t)nkv * M * C);
	float *probs = lvd_ctx_takef(X, (size_t)HW * M);

	sd_groupnorm_b(sd, X, gn, x, &t->gn, B, C, HW, k->groups, 1e-6f, 0);
	/* proj_in (1x1 conv or linear, same bytes): xs[HW, C] = gnᵀ Wᵀ + b per item */
	for (int b = 0; b < B; b++)
		if (sd->dev)
			SD_TIME(sd, gemm_s, sd_gemm16(X, 0, 1, 1, HW, C, C, gn + b * n1, n1, HW, t->pin.w16, C,
						      xs + b * n1, C));
		else
			SD_TIME(sd, gemm_s, lvd_gemm(X, 1, 1, HW, C, C, 1.0f, gn + b * n1, HW, t->pin.w, C, 0.0f,
						     xs + b * n1, C));
	SD_TIME(sd, other_s, lvd_add_bias_rows(X, xs, t->pin.b, NR, C));
	for (int tb_i = 0; tb_i < k->tblocks; tb_i++) {
		const struct sd_tblock *tb = &t->tb[tb_i];
		/* self-attention */
		sd_layernorm(sd, X, nb, xs, &tb->ln1, NR, C, 1e-5f);
		sd_linear_run(sd, X, q, nb, &tb->a1.q, NR, C, C);
		sd_linear_run(sd, X, kk, nb, &tb->a1.k, NR, C, C);
		sd_linear_run(sd, X, v, nb, &tb->a1.v, NR, C, C);
		for (int b = 0; b < B; b++)
			SD_TIME(sd, gemm_s, lvd_attention_fwd(X, att + b * n1, NULL, q + b * n1, C, kk + b * n1, C,
							      v + b * n1, C, HW, HW, H, D, scale, 0));
		sd_linear_run(sd, X, nb, att, &tb->a1.o, NR, C, C);
		sd_add(sd, X, xs, nb, n);
		/* cross-attention with capture */
		sd_layernorm(sd, X, nb, xs, &tb->ln2, NR, C, 1e-5f);
		sd_linear_run(sd, X, q, nb, &tb->a2.q, NR, C, C);
		for (int b = 0; b < nkv; b++) {
			const float *cb_ctx = R->ctx + b * R->ctx_stride;
			sd_linear_run(sd, X, kc + (size_t)b * M * C, cb_ctx, &tb->a2.k, M, k->ctx_dim, C);
			sd_linear_run(sd, X, vc + (size_t)b * M * C, cb_ctx, &tb->a2.v, M, k->ctx_dim, C);
		}
		for (int b = 0; b < B; b++) {
			size_t kv = R->ctx_stride ? (size_t)b * M * C : 0;
			SD_TIME(sd, gemm_s, lvd_attention_fwd(X, att + b * n1, R->cb ? probs : NULL, q + b * n1, C,
							      kc + kv, C, vc + kv, C, HW, M, H, D, scale, 0));
			if (R->cb && !R->aborted) {
				struct lvd_sd_attn_info info = {
					.name = t->name[tb_i], .block = block, .index = R->index, .level = level,
					.h = h, .w = w, .n_ctx = M, .heads = H, .item = b, .layers = R->layers,
					.ctx = X,
				};
				int rc = R->cb(R->user, &info, probs);
				if (rc == LVD_SD_CB_DONE)
					R->done = 1;
				else if (rc)
					R->aborted = 1;
			}
		}
		R->index++;
		if (R->done || R->aborted) {   /* nothing after this layer is needed */
			lvd_ctx_release(X, mark);
			return;
		}
		sd_linear_run(sd, X, nb, att, &tb->a2.o, NR, C, C);
		sd_add(sd, X, xs, nb, n);
		/* GEGLU feed-forward */
		sd_layernorm(sd, X, nb, xs, &tb->ln3, NR, C, 1e-5f);
		sd_linear_run(sd, X, ff1, nb, &tb->ff1, NR, C, 8 * C);
		SD_TIME(sd, other_s, lvd_geglu_fwd(X, geglu, ff1, NR, 4 * C));
		sd_linear_run(sd, X, nb, geglu, &tb->ff2, NR, 4 * C, C);
		sd_add(sd, X, xs, nb, n);
	}
	/* proj_out: gn[C, HW] = W xsᵀ + b per item; x += gn */
	for (int b = 0; b < B; b++) {
		if (sd->dev)
			SD_TIME(sd, gemm_s, sd_gemm16(X, 1, 0, 1, C, HW, C, xs + b * n1, n1, C, t->pout.w16, C,
						      gn + b * n1, HW));
		else
			SD_TIME(sd, gemm_s, lvd_gemm(X, 0, 1, C, HW, C, 1.0f, t->pout.w, C, xs + b * n1, C, 0.0f,
						     gn + b * n1, HW));
		SD_TIME(sd, other_s, lvd_add_bias_chan(X, gn + b * n1, t->pout.b, C, HW));
	}
	sd_add(sd, X, x, gn, n);
	lvd_ctx_release(X, mark);
}

int lvd_sd_unet_forward(const struct lvd_sd *sd, float *out, const float *x, int h, int w,
			float t, const float *ctx, int n_ctx, lvd_sd_attn_cb cb, void *user,
			struct lvd_error *err)
{
	return lvd_sd_unet_forward_batch(sd, out, x, 1, h, w, &t, ctx, 0, n_ctx, cb, user, err);
}

int lvd_sd_unet_forward_batch(const struct lvd_sd *sd, float *out, const float *x, int B, int h, int w,
			      const float *t, const float *ctx, size_t ctx_stride, int n_ctx, lvd_sd_attn_cb cb,
			      void *user, struct lvd_error *err)
{
	if (!sd->has_unet)
		return lvd_error_set(err, LVD_ERR_INVALID, "UNet not loaded");
	const struct sd_unet *u = &sd->unet;
	const struct lvd_sd_unet_cfg *k = &u->cfg;
	int n = k->levels, L = k->layers_per_block, TE = k->temb_dim;
	int f = 1 << (n - 1);
	if (B < 1 || B > LVD_SD_MAX_BATCH)
		return lvd_error_set(err, LVD_ERR_INVALID, "UNet batch %d outside [1, %d]", B, LVD_SD_MAX_BATCH);
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
	/* widest activation: an up ResNet's concat input */
	size_t act = 2 * (size_t)B * cmax * h * w;
	struct unet_run R = {.sd = sd, .x = X, .B = B, .ctx = ctx, .ctx_stride = ctx_stride, .n_ctx = n_ctx,
			     .cb = cb, .user = user, .layers = k->tblocks};   /* mid */
	for (int i = 0; i < n; i++)
		R.layers += (k->down_attn[i] ? L : 0) * k->tblocks + (k->up_attn[i] ? L + 1 : 0) * k->tblocks;

	/* ---- time embedding, one row per item ---- */
	float *temb = lvd_ctx_takef(X, (size_t)B * TE), *tact = lvd_ctx_takef(X, (size_t)B * TE);
	float *sinus = lvd_ctx_takef(X, (size_t)B * k->ch[0]);
	/* the sinusoids of the host timesteps (device path: on the host, then uploaded) */
	float *sin_h = sd->dev ? malloc(sizeof(float) * (size_t)B * k->ch[0]) : sinus;
	if (!sin_h) {
		lvd_ctx_release(X, mark);
		sd_ctx_leave(sd, X);
		return lvd_error_set(err, LVD_ERR_NOMEM, "timestep embeddings");
	}
	for (int b = 0; b < B; b++)
		lvd_timestep_embedding(sd->dev ? sd->hctx : X, sin_h + (size_t)b * k->ch[0], t[b], k->ch[0],
				       k->flip_sin_to_cos, k->freq_shift, 10000.0f);
	if (sin_h != sinus) {
		lvd_buf_upload(X, sinus, sin_h, sizeof(float) * (size_t)B * k->ch[0]);
		free(sin_h);
	}
	sd_linear_run(sd, X, tact, sinus, &u->t1, B, k->ch[0], TE);
	lvd_silu_fwd(X, tact, tact, (size_t)B * TE);
	sd_linear_run(sd, X, temb, tact, &u->t2, B, TE, TE);
	lvd_silu_fwd(X, tact, temb, (size_t)B * TE);   /* every ResNet uses SiLU(temb) */

	float *cur = lvd_ctx_takef(X, act), *nxt = lvd_ctx_takef(X, act);   /* ping-pong activations */
	float *skips[LVD_SD_MAX_LEVELS * LVD_SD_MAX_RES + 1];
	int nsk = 0;
	int hh = h, ww = w;
	sd_conv_run_b(sd, X, cur, x, &u->conv_in, B, hh, ww, 1, 1, 1, 1, 1);
	skips[nsk] = lvd_ctx_takef(X, (size_t)B * k->ch[0] * hh * ww);
	sd_copy(sd, X, skips[nsk++], cur, (size_t)B * k->ch[0] * hh * ww);
	/* skip buffers are taken in push order below the temporaries of later blocks */
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < L; j++) {
			sd_resnet_run_b(sd, X, nxt, cur, &u->down[i][j], tact, TE, B, hh, ww, k->groups, k->eps);
			float *tmp = cur; cur = nxt; nxt = tmp;
			if (k->down_attn[i]) {
				tf_run(&R, cur, &u->down_tf[i][j], hh, ww, "down", i);
				if (R.done || R.aborted)
					goto end;
			}
			size_t sz = (size_t)B * k->ch[i] * hh * ww;
			skips[nsk] = lvd_ctx_takef(X, sz);
			sd_copy(sd, X, skips[nsk++], cur, sz);
		}
		if (i < n - 1) {
			sd_conv_run_b(sd, X, nxt, cur, &u->downsample[i], B, hh, ww, 2, 1, 1, 1, 1);
			hh /= 2;
			ww /= 2;
			float *tmp = cur; cur = nxt; nxt = tmp;
			size_t sz = (size_t)B * k->ch[i] * hh * ww;
			skips[nsk] = lvd_ctx_takef(X, sz);
			sd_copy(sd, X, skips[nsk++], cur, sz);
		}
	}
	LVD_ASSERT(nsk == ns);
	/* mid */
	sd_resnet_run_b(sd, X, nxt, cur, &u->mid[0], tact, TE, B, hh, ww, k->groups, k->eps);
	tf_run(&R, nxt, &u->mid_tf, hh, ww, "mid", n - 1);
	if (R.done || R.aborted)
		goto end;
	sd_resnet_run_b(sd, X, cur, nxt, &u->mid[1], tact, TE, B, hh, ww, k->groups, k->eps);
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
			/* concat(h, skip) along channels into nxt per item, then the ResNet back into cur */
			for (int b = 0; b < B; b++) {
				float *d = nxt + (size_t)b * r->cin * hw;
				sd_copy(sd, X, d, cur + (size_t)b * hc * hw, (size_t)hc * hw);
				sd_copy(sd, X, d + (size_t)hc * hw, sk + (size_t)b * sc * hw, (size_t)sc * hw);
			}
			sd_resnet_run_b(sd, X, cur, nxt, r, tact, TE, B, hh, ww, k->groups, k->eps);
			hc = r->cout;
			if (k->up_attn[uu]) {
				tf_run(&R, cur, &u->up_tf[uu][j], hh, ww, "up", lvl);
				if (R.done || R.aborted)
					goto end;
			}
		}
		if (uu < n - 1) {
			lvd_resample_nearest2x_fwd(X, nxt, cur, B, hc, hh, ww);
			hh *= 2;
			ww *= 2;
			sd_conv_run_b(sd, X, cur, nxt, &u->upsample[uu], B, hh, ww, 1, 1, 1, 1, 1);
		}
	}
	sd_groupnorm_b(sd, X, nxt, cur, &u->norm_out, B, k->ch[0], hh * ww, k->groups, k->eps, 1);
	sd_conv_run_b(sd, X, out, nxt, &u->conv_out, B, hh, ww, 1, 1, 1, 1, 1);
end:
	lvd_ctx_release(X, mark);
	sd_ctx_leave(sd, X);
	if (R.aborted)
		return lvd_error_set(err, LVD_ERR_INVALID, "UNet pass aborted by the attention callback");
	return 0;
}

/* the next attn2 layer in call order is at `level`: counted and remembered when selected */
static void attn2_at(unsigned levels, int level, int *idx, int *last, int *nsel)
{
	if (levels & (1u << level))
		*last = *idx, (*nsel)++;
	(*idx)++;
}

int lvd_sd_unet_last_attn2(const struct lvd_sd *sd, unsigned levels, int *count)
{
	if (count)
		*count = 0;
	if (!sd->has_unet)
		return -1;
	/* the call order of lvd_sd_unet_forward_batch: down levels (L transformers each),
	 * mid (the deepest level), up levels deepest first (L + 1 each); tblocks attn2 per
	 * transformer */
	const struct lvd_sd_unet_cfg *k = &sd->unet.cfg;
	int n = k->levels, L = k->layers_per_block, idx = 0, last = -1, nsel = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; k->down_attn[i] && j < L; j++)
			for (int b = 0; b < k->tblocks; b++)
				attn2_at(levels, i, &idx, &last, &nsel);
	for (int b = 0; b < k->tblocks; b++)
		attn2_at(levels, n - 1, &idx, &last, &nsel);
	for (int uu = 0; uu < n; uu++)
		for (int j = 0; k->up_attn[uu] && j <= L; j++)
			for (int b = 0; b < k->tblocks; b++)
				attn2_at(levels, n - 1 - uu, &idx, &last, &nsel);
	if (count)
		*count = nsel;
	return last;
}

size_t lvd_sd_unet_batch_bytes(const struct lvd_sd *sd, int h, int w, int n_ctx)
{
	if (!sd->has_unet)
		return 0;
	const struct lvd_sd_unet_cfg *k = &sd->unet.cfg;
	int n = k->levels, L = k->layers_per_block;
	size_t cmax = 0, skips = 0, peak = 0, hw = (size_t)h * w;
	skips += (size_t)k->ch[0] * hw;
	for (int i = 0; i < n; i++) {
		size_t lhw = hw >> (2 * i), c = (size_t)k->ch[i];
		cmax = c > cmax ? c : cmax;
		skips += L * c * lhw + (i < n - 1 ? c * (lhw >> 2) : 0);
		/* a transformer's buffers (tf_run) and an up ResNet's temporaries
		 * (SiLU(GN1) of the concat input, conv1, SiLU(GN2)) at this level */
		size_t tf = (k->down_attn[i] || k->up_attn[n - 1 - i]) ? (19 * c + (size_t)n_ctx) * lhw : 0;
		size_t cin = c + (size_t)k->ch[i + 1 < n ? i + 1 : i];
		size_t rn = (cin + 2 * c) * lhw;
		peak = tf > peak ? tf : peak;
		peak = rn > peak ? rn : peak;
	}
	/* ping-pong activations (2·cmax·h·w each), the skip stack, the largest temporary */
	return sizeof(float) * (4 * cmax * hw + skips + peak);
}

/* Multiply-adds ×2 of one ResNet block / spatial transformer at hw pixels (analytic). */
static double resnet_flops(const struct sd_resnet *r, int TE, double hw)
{
	double f = 2.0 * hw * 9 * ((double)r->cin * r->cout + (double)r->cout * r->cout) + 2.0 * TE * r->cout;
	if (r->sc.w)
		f += 2.0 * hw * r->cin * r->cout;
	return f;
}

static double tf_flops(const struct lvd_sd_unet_cfg *k, int C, double hw, int M)
{
	double c = C, f = 2 * 2.0 * hw * c * c;   /* proj_in, proj_out */
	for (int i = 0; i < k->tblocks; i++) {
		f += 4 * 2.0 * hw * c * c + 2 * 2.0 * hw * hw * c;                          /* attn1 */
		f += 2 * 2.0 * hw * c * c + 2 * 2.0 * M * k->ctx_dim * c + 2 * 2.0 * hw * M * c;   /* attn2 */
		f += 2.0 * hw * c * 8 * c + 2.0 * hw * 4 * c * c;                          /* GEGLU feed-forward */
	}
	return f;
}

double lvd_sd_unet_flops(const struct lvd_sd *sd, int h, int w, int n_ctx)
{
	if (!sd->has_unet)
		return 0;
	const struct sd_unet *u = &sd->unet;
	const struct lvd_sd_unet_cfg *k = &u->cfg;
	int n = k->levels, L = k->layers_per_block, TE = k->temb_dim;
	double hw = (double)h * w, f = 2.0 * ((double)k->ch[0] * TE + (double)TE * TE);
	f += 2.0 * hw * 9 * k->in_ch * k->ch[0] + 2.0 * hw * 9 * k->ch[0] * k->out_ch;
	for (int i = 0; i < n; i++) {
		double lhw = hw / (double)(1 << (2 * i));
		for (int j = 0; j < L; j++) {
			f += resnet_flops(&u->down[i][j], TE, lhw);
			if (k->down_attn[i])
				f += tf_flops(k, u->down_tf[i][j].C, lhw, n_ctx);
		}
		if (i < n - 1)
			f += 2.0 * (lhw / 4) * 9 * k->ch[i] * k->ch[i];
	}
	double mhw = hw / (double)(1 << (2 * (n - 1)));
	f += resnet_flops(&u->mid[0], TE, mhw) + resnet_flops(&u->mid[1], TE, mhw) + tf_flops(k, u->mid_tf.C, mhw, n_ctx);
	for (int uu = 0; uu < n; uu++) {
		double lhw = hw / (double)(1 << (2 * (n - 1 - uu)));
		for (int j = 0; j <= L; j++) {
			f += resnet_flops(&u->up[uu][j], TE, lhw);
			if (k->up_attn[uu])
				f += tf_flops(k, u->up_tf[uu][j].C, lhw, n_ctx);
		}
		if (uu < n - 1)
			f += 2.0 * (lhw * 4) * 9 * u->upsample[uu].cin * u->upsample[uu].cout;
	}
	return f;
}
