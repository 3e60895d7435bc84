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

#include "core/alloc.h"
#include "core/pool.h"
#include "models/sd/sd_internal.h"
#include "nn/gemm.h"
#include "nn/ops.h"

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

struct unet_run {
	const struct lvd_sd *sd;
	const float *ctx;
	int n_ctx;
	lvd_sd_attn_cb cb;
	void *user;
	int index;      /* attn2 call counter */
	int aborted;
};

/* Workspace floats one spatial transformer at (C, HW) needs. */
static size_t tf_ws_size(int C, int HW, int n_ctx, int T)
{
	size_t n = (size_t)C * HW;
	return 16 * n + lvd_attention_scratch_mt(HW, HW > n_ctx ? HW : n_ctx, T) + 2 * (size_t)n_ctx * C +
	       (size_t)HW * n_ctx + 256;
}

static void tf_run(struct unet_run *R, float *x, const struct sd_transformer *t, int h, int w,
		   const char *block, int level, struct sd_ws *ws)
{
	const struct lvd_sd *sd = R->sd;
	const struct lvd_sd_unet_cfg *k = &sd->unet.cfg;
	int C = t->C, HW = h * w, H = t->heads, D = C / H, M = R->n_ctx;
	size_t n = (size_t)C * HW, mark = ws->used;
	float scale = 1.0f / sqrtf((float)D);
	float *g = sd_ws_take(ws, n), *xs = sd_ws_take(ws, n), *nb = sd_ws_take(ws, n);
	float *big = sd_ws_take(ws, 12 * n);   /* q, k, v, a  or  ff1 [HW, 8C] + geglu [HW, 4C] */
	size_t sc = lvd_attention_scratch_mt(HW, HW > M ? HW : M, lvd_pool_threads(sd->pool));
	float *scratch = sd_ws_take(ws, sc);
	float *kc = sd_ws_take(ws, (size_t)M * C), *vc = sd_ws_take(ws, (size_t)M * C);
	float *probs = sd_ws_take(ws, (size_t)HW * M);

	sd_groupnorm(sd, g, x, &t->gn, C, HW, k->groups, 1e-6f, 0);
	/* proj_in (1x1 conv or linear, same bytes): xs[HW, C] = gᵀ Wᵀ + b */
	SD_TIME(sd, gemm_s, lvd_sgemm(1, 1, HW, C, C, 1.0f, g, HW, t->pin.w, C, 0.0f, xs, C));
	SD_TIME(sd, other_s, lvd_add_bias_rows(xs, t->pin.b, HW, C));
	for (int b = 0; b < k->tblocks; b++) {
		const struct sd_tblock *tb = &t->tb[b];
		float *q = big, *kk = big + n, *v = big + 2 * n, *a = big + 3 * n;
		/* self-attention */
		sd_layernorm(sd, nb, xs, &tb->ln1, HW, C, 1e-5f);
		sd_linear_run(sd, q, nb, &tb->a1.q, HW, C, C);
		sd_linear_run(sd, kk, nb, &tb->a1.k, HW, C, C);
		sd_linear_run(sd, v, nb, &tb->a1.v, HW, C, C);
		SD_TIME(sd, gemm_s, lvd_attention_fwd_mt(a, NULL, q, C, kk, C, v, C, HW, HW, H, D, scale, 0, scratch, sc, sd->pool));
		sd_linear_run(sd, nb, a, &tb->a1.o, HW, C, C);
		sd_add(sd, xs, nb, n);
		/* cross-attention with capture */
		sd_layernorm(sd, nb, xs, &tb->ln2, HW, C, 1e-5f);
		sd_linear_run(sd, q, nb, &tb->a2.q, HW, C, C);
		sd_linear_run(sd, kc, R->ctx, &tb->a2.k, M, k->ctx_dim, C);
		sd_linear_run(sd, vc, R->ctx, &tb->a2.v, M, k->ctx_dim, C);
		SD_TIME(sd, gemm_s, lvd_attention_fwd_mt(a, R->cb ? probs : NULL, q, C, kc, C, vc, C, HW, M, H, D,
							 scale, 0, scratch, sc, sd->pool));
		if (R->cb && !R->aborted) {
			struct lvd_sd_attn_info info = {
				.name = t->name[b], .block = block, .index = R->index, .level = level,
				.h = h, .w = w, .n_ctx = M, .heads = H,
			};
			if (R->cb(R->user, &info, probs))
				R->aborted = 1;
		}
		R->index++;
		sd_linear_run(sd, nb, a, &tb->a2.o, HW, C, C);
		sd_add(sd, xs, nb, n);
		/* GEGLU feed-forward */
		float *f1 = big, *gg = big + 8 * n;
		sd_layernorm(sd, nb, xs, &tb->ln3, HW, C, 1e-5f);
		sd_linear_run(sd, f1, nb, &tb->ff1, HW, C, 8 * C);
		sd_geglu(sd, gg, f1, HW, 4 * C);
		sd_linear_run(sd, nb, gg, &tb->ff2, HW, 4 * C, C);
		sd_add(sd, xs, nb, n);
	}
	/* proj_out: g[C, HW] = W xsᵀ + b; x += g */
	SD_TIME(sd, gemm_s, lvd_sgemm(0, 1, C, HW, C, 1.0f, t->pout.w, C, xs, C, 0.0f, g, HW));
	SD_TIME(sd, other_s, lvd_add_bias_chan(g, t->pout.b, C, HW));
	sd_add(sd, x, g, n);
	ws->used = mark;
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

	/* ---- workspace plan: simulate the channel flow ---- */
	int cmax = 0;
	for (int i = 0; i < n; i++)
		cmax = k->ch[i] > cmax ? k->ch[i] : cmax;
	size_t act = 0, skip_total = 0, temp = 0;
	int skip_ch[LVD_SD_MAX_LEVELS * LVD_SD_MAX_RES + 1], ns = 0;
	for (int i = 0, hh = h, ww = w; i < n; i++, hh /= 2, ww /= 2) {
		size_t hw = (size_t)hh * ww;
		/* up resnet input at this level is at most (cmax + cmax) channels */
		act = max_sz(act, 2 * (size_t)cmax * hw);
		size_t cs = sd_conv3_scratch_bound(sd, 2 * cmax, cmax, hh, ww);
		temp = max_sz(temp, 2 * (size_t)cmax * hw + 2 * (size_t)cmax * hw + cs + (size_t)cmax + 256);
		if (k->down_attn[i] || k->up_attn[n - 1 - i] || i == n - 1)
			temp = max_sz(temp, tf_ws_size(k->ch[i], (int)hw, n_ctx, lvd_pool_threads(sd->pool)));
		if (i == 0) {
			skip_ch[ns++] = k->ch[0];
			skip_total += (size_t)k->ch[0] * hw + 16;
		}
		for (int j = 0; j < L; j++) {
			skip_ch[ns++] = k->ch[i];
			skip_total += (size_t)k->ch[i] * hw + 16;
		}
		if (i < n - 1) {
			skip_ch[ns++] = k->ch[i];
			skip_total += (size_t)k->ch[i] * (hw / 4) + 16;
		}
	}
	size_t cap = 2 * act + skip_total + temp + 3 * (size_t)TE + 256;
	struct sd_ws ws = {.cap = cap};
	ws.base = lvd_alloc_aligned(cap, sizeof(float));
	if (!ws.base)
		return lvd_error_set(err, LVD_ERR_NOMEM, "UNet %dx%d: cannot allocate %zu floats", w, h, cap);
	struct unet_run R = {.sd = sd, .ctx = ctx, .n_ctx = n_ctx, .cb = cb, .user = user};

	/* ---- time embedding ---- */
	float *temb = sd_ws_take(&ws, (size_t)TE), *tact = sd_ws_take(&ws, (size_t)TE);
	float *sinus = sd_ws_take(&ws, (size_t)TE > (size_t)k->ch[0] ? (size_t)TE : (size_t)k->ch[0]);
	lvd_timestep_embedding(sinus, t, k->ch[0], k->flip_sin_to_cos, k->freq_shift, 10000.0f);
	sd_linear_run(sd, tact, sinus, &u->t1, 1, k->ch[0], TE);
	lvd_silu(tact, tact, (size_t)TE);
	sd_linear_run(sd, temb, tact, &u->t2, 1, TE, TE);
	lvd_silu(tact, temb, (size_t)TE);   /* every ResNet uses SiLU(temb) */

	float *cur = sd_ws_take(&ws, act), *nxt = sd_ws_take(&ws, act);
	float *skips[LVD_SD_MAX_LEVELS * LVD_SD_MAX_RES + 1];
	int nsk = 0;
	int hh = h, ww = w;
	sd_conv_run(sd, cur, x, &u->conv_in, hh, ww, 1, 1, 1, 1, 1, &ws);
	skips[nsk] = sd_ws_take(&ws, (size_t)k->ch[0] * hh * ww);
	memcpy(skips[nsk++], cur, sizeof(float) * (size_t)k->ch[0] * hh * ww);
	/* skip buffers are taken in push order below the temporaries of later blocks */
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < L; j++) {
			sd_resnet_run(sd, nxt, cur, &u->down[i][j], tact, TE, hh, ww, k->groups, k->eps, &ws);
			float *tmp = cur; cur = nxt; nxt = tmp;
			if (k->down_attn[i])
				tf_run(&R, cur, &u->down_tf[i][j], hh, ww, "down", i, &ws);
			size_t sz = (size_t)k->ch[i] * hh * ww;
			skips[nsk] = sd_ws_take(&ws, sz);
			memcpy(skips[nsk++], cur, sizeof(float) * sz);
		}
		if (i < n - 1) {
			sd_conv_run(sd, nxt, cur, &u->downsample[i], hh, ww, 2, 1, 1, 1, 1, &ws);
			hh /= 2;
			ww /= 2;
			float *tmp = cur; cur = nxt; nxt = tmp;
			size_t sz = (size_t)k->ch[i] * hh * ww;
			skips[nsk] = sd_ws_take(&ws, sz);
			memcpy(skips[nsk++], cur, sizeof(float) * sz);
		}
	}
	LVD_ASSERT(nsk == ns);
	/* mid */
	sd_resnet_run(sd, nxt, cur, &u->mid[0], tact, TE, hh, ww, k->groups, k->eps, &ws);
	tf_run(&R, nxt, &u->mid_tf, hh, ww, "mid", n - 1, &ws);
	sd_resnet_run(sd, cur, nxt, &u->mid[1], tact, TE, hh, ww, k->groups, k->eps, &ws);
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
			sd_resnet_run(sd, cur, nxt, r, tact, TE, hh, ww, k->groups, k->eps, &ws);
			hc = r->cout;
			if (k->up_attn[uu])
				tf_run(&R, cur, &u->up_tf[uu][j], hh, ww, "up", lvl, &ws);
		}
		if (uu < n - 1) {
			lvd_upsample_nearest2x(nxt, cur, hc, hh, ww);
			hh *= 2;
			ww *= 2;
			sd_conv_run(sd, cur, nxt, &u->upsample[uu], hh, ww, 1, 1, 1, 1, 1, &ws);
		}
	}
	sd_groupnorm(sd, nxt, cur, &u->norm_out, k->ch[0], hh * ww, k->groups, k->eps, 1);
	sd_conv_run(sd, out, nxt, &u->conv_out, hh, ww, 1, 1, 1, 1, 1, &ws);
	free(ws.base);
	if (R.aborted)
		return lvd_error_set(err, LVD_ERR_INVALID, "UNet pass aborted by the attention callback");
	return 0;
}
