/* lib/models/sd/clip.c — CLIP text encoder forward (HF CLIPTextModel, SD 1.x; SD 2.x
 * OpenCLIP read as its penultimate layer, loaded as the same layers): token +
 * position embeddings, pre-LN blocks with causal self-attention and quick_gelu (or gelu)
 * MLP, final LayerNorm. The embeddings are gathered on the host (the tables stay there
 * on the device path too); everything after runs as ops on the pass context. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/sd/sd_internal.h"
#include "nn/ctx.h"
#include "nn/ops/act.h"
#include "nn/ops/attention.h"
#include "nn/ops/elem.h"
#include "nn/ops/norm.h"

int lvd_sd_text_encode(const struct lvd_sd *sd, float *out, const int32_t *ids, int S,
		       struct lvd_error *err)
{
	if (!sd->has_text)
		return lvd_error_set(err, LVD_ERR_INVALID, "text encoder not loaded");
	const struct sd_clip *c = &sd->clip;
	const struct lvd_sd_clip_cfg *k = &c->cfg;
	int D = k->width, F = k->ffn, H = k->heads;
	if (S < 1 || S > k->n_pos)
		return lvd_error_set(err, LVD_ERR_INVALID, "text length %d outside [1, %d]", S, k->n_pos);
	for (int i = 0; i < S; i++)
		if (ids[i] < 0 || ids[i] >= k->vocab)
			return lvd_error_set(err, LVD_ERR_INVALID, "token %d: id %d outside the vocabulary [0, %d)",
					     i, (int)ids[i], k->vocab);
	size_t sd_ = (size_t)S * D, sf = (size_t)S * F;
	struct lvd_ctx *X = sd_ctx_enter(sd, err);
	if (!X)
		return err ? err->code : LVD_ERR_NOMEM;
	size_t mark = lvd_ctx_mark(X);
	float *x = lvd_ctx_takef(X, sd_);    /* residual stream [S, D] */
	float *n = lvd_ctx_takef(X, sd_);    /* LayerNorm / branch output [S, D] */
	float *q = lvd_ctx_takef(X, sd_), *kk = lvd_ctx_takef(X, sd_), *v = lvd_ctx_takef(X, sd_);
	float *a = lvd_ctx_takef(X, sd_);    /* attention output [S, D] */
	float *f = lvd_ctx_takef(X, sf);     /* MLP hidden [S, F] */
	/* token + position embeddings, gathered from the host tables (on the device path
	 * into a host row block, then uploaded) */
	float *x0 = sd->dev ? malloc(sizeof(float) * sd_) : x;
	if (!x0) {
		lvd_ctx_release(X, mark);
		sd_ctx_leave(sd, X);
		return lvd_error_set(err, LVD_ERR_NOMEM, "text embeddings");
	}
	for (int i = 0; i < S; i++)
		for (int d = 0; d < D; d++)
			x0[(size_t)i * D + d] = c->tok_emb[(size_t)ids[i] * D + d] + c->pos_emb[(size_t)i * D + d];
	if (x0 != x) {
		lvd_buf_upload(X, x, x0, sizeof(float) * sd_);
		free(x0);
	}
	float scale = 1.0f / sqrtf((float)(D / H));
	for (int l = 0; l < k->layers; l++) {
		const struct sd_clip_layer *L = &c->layers[l];
		lvd_layernorm_fwd(X, n, NULL, NULL, x, L->ln1.w, L->ln1.b, S, D, k->eps);
		sd_linear_run(sd, X, q, n, &L->at.q, S, D, D);
		sd_linear_run(sd, X, kk, n, &L->at.k, S, D, D);
		sd_linear_run(sd, X, v, n, &L->at.v, S, D, D);
		lvd_attention_fwd(X, a, NULL, q, D, kk, D, v, D, S, S, H, D / H, scale, 1);
		sd_linear_run(sd, X, n, a, &L->at.o, S, D, D);
		lvd_add(X, x, n, sd_);
		lvd_layernorm_fwd(X, n, NULL, NULL, x, L->ln2.w, L->ln2.b, S, D, k->eps);
		sd_linear_run(sd, X, f, n, &L->fc1, S, D, F);
		lvd_gelu_fwd(X, f, f, sf, k->act == LVD_SD_ACT_GELU ? LVD_GELU_EXACT : LVD_GELU_QUICK);
		sd_linear_run(sd, X, n, f, &L->fc2, S, F, D);
		lvd_add(X, x, n, sd_);
	}
	lvd_layernorm_fwd(X, out, NULL, NULL, x, c->final_ln.w, c->final_ln.b, S, D, k->eps);
	lvd_ctx_release(X, mark);
	sd_ctx_leave(sd, X);
	return 0;
}
