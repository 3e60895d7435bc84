/* lib/models/sd/clip.c — CLIP text encoder forward (HF CLIPTextModel, SD 1.x): token +
 * position embeddings, pre-LN blocks with causal self-attention and quick_gelu (or gelu)
 * MLP, final LayerNorm. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/sd/sd_internal.h"
#include "nn/ops.h"

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
	size_t sd_ = (size_t)S * D, sf = (size_t)S * F, sc = lvd_attention_scratch(S, S);
	size_t total = 6 * sd_ + sf + sc;
	float *buf = lvd_alloc_aligned(total, sizeof(float));
	if (!buf)
		return lvd_error_set(err, LVD_ERR_NOMEM, "text encoder: cannot allocate %zu floats", total);
	float *x = buf, *n = x + sd_, *q = n + sd_, *kk = q + sd_, *v = kk + sd_, *a = v + sd_;
	float *f = a + sd_, *scratch = f + sf;
	for (int i = 0; i < S; i++)
		for (int d = 0; d < D; d++)
			x[(size_t)i * D + d] = c->tok_emb[(size_t)ids[i] * D + d] + c->pos_emb[(size_t)i * D + d];
	float scale = 1.0f / sqrtf((float)(D / H));
	for (int l = 0; l < k->layers; l++) {
		const struct sd_clip_layer *L = &c->layers[l];
		lvd_layernorm_fwd(n, NULL, NULL, x, L->ln1.w, L->ln1.b, S, D, k->eps);
		sd_linear_run(sd, q, n, &L->at.q, S, D, D);
		sd_linear_run(sd, kk, n, &L->at.k, S, D, D);
		sd_linear_run(sd, v, n, &L->at.v, S, D, D);
		lvd_attention_fwd(a, NULL, q, D, kk, D, v, D, S, S, H, D / H, scale, 1, scratch, sc);
		sd_linear_run(sd, n, a, &L->at.o, S, D, D);
		lvd_add_inplace(x, n, sd_);
		lvd_layernorm_fwd(n, NULL, NULL, x, L->ln2.w, L->ln2.b, S, D, k->eps);
		sd_linear_run(sd, f, n, &L->fc1, S, D, F);
		if (k->act == LVD_SD_ACT_GELU)
			lvd_gelu(f, f, sf);
		else
			lvd_quick_gelu(f, f, sf);
		sd_linear_run(sd, n, f, &L->fc2, S, F, D);
		lvd_add_inplace(x, n, sd_);
	}
	lvd_layernorm_fwd(out, NULL, NULL, x, c->final_ln.w, c->final_ln.b, S, D, k->eps);
	free(buf);
	return 0;
}
