/* lib/models/minicpmv/minicpmv_model.c — minicpmv forward on the ops of lib/nn/ops:
 * batch checks, the Idefics2 vision tower on patch strips, the resampler, then the LLM
 * (minicpmv_text.c) with the picture features scattered into its input embeddings.
 *
 * Letters: B samples, T tokens, NI pictures, L = Lmax patches per picture (padded),
 * N = NI·L vision rows, Dv vision width, Iv vision MLP width, Hv vision heads, D text
 * width, Q queries, Hr resampler heads, H/KH text query/kv heads, hd text head dim,
 * It text MLP width, V vocabulary, K = C·ps·ps patch features. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "models/minicpmv/minicpmv_internal.h"
#include "nn/ops/act.h"
#include "nn/ops/attn.h"
#include "nn/ops/embed.h"
#include "nn/ops/gate.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"

struct mcv_acts {
	/* vision */
	float *cols, *x, *ln, *q, *k, *v, *att, *tmp, *h1, *h1g, *vbias, *vstats, *vision;
	/* resampler */
	float *kv, *kvn, *kpos, *qn, *qp1, *qp, *kp, *vp, *rbias, *rstats, *ratt, *rout, *resampled, *probs;
	int *cap_rows, *cap_off, *pos_ids;
	/* the LLM's are minicpmv_text.c's */
};

/* carves (base NULL: measures) the activations of a B×T batch with NI pictures of L patches */
static size_t carve(const struct lvd_minicpmv *m, struct mcv_acts *a, float *base, int B, int T, int NI, int L)
{
	const struct lvd_minicpmv_config *c = &m->c;
	size_t off = 0, N = (size_t)NI * L, Dv = c->v_hidden, Iv = c->v_inter, D = c->t_hidden, Q = c->query_num;
	size_t K = (size_t)c->v_channels * c->v_patch * c->v_patch;
	a->cols = mcv_take(base, &off, N * K);
	a->x = mcv_take(base, &off, N * Dv);
	a->ln = mcv_take(base, &off, N * Dv);
	a->q = mcv_take(base, &off, N * Dv);
	a->k = mcv_take(base, &off, N * Dv);
	a->v = mcv_take(base, &off, N * Dv);
	a->att = mcv_take(base, &off, N * Dv);
	a->tmp = mcv_take(base, &off, N * Dv);
	a->h1 = mcv_take(base, &off, N * Iv);
	a->h1g = mcv_take(base, &off, N * Iv);
	a->vbias = mcv_take(base, &off, N * L);
	a->vstats = mcv_take(base, &off, (size_t)NI * c->v_heads * L * 2);
	a->vision = mcv_take(base, &off, N * Dv);
	a->kv = mcv_take(base, &off, N * D);
	a->kvn = mcv_take(base, &off, N * D);
	a->kpos = mcv_take(base, &off, N * D);
	a->qn = mcv_take(base, &off, Q * D);
	a->qp1 = mcv_take(base, &off, Q * D);
	a->qp = mcv_take(base, &off, NI * Q * D);
	a->kp = mcv_take(base, &off, N * D);
	a->vp = mcv_take(base, &off, N * D);
	a->rbias = mcv_take(base, &off, NI * Q * L);
	a->rstats = mcv_take(base, &off, NI * c->r_heads * Q * 2);
	a->ratt = mcv_take(base, &off, NI * Q * D);
	a->rout = mcv_take(base, &off, NI * Q * D);
	a->resampled = mcv_take(base, &off, NI * Q * D);
	a->probs = mcv_take(base, &off, NI * c->r_heads * Q * L);
	a->cap_rows = (int *)mcv_take(base, &off, NI * Q);
	a->cap_off = (int *)mcv_take(base, &off, NI + 1);
	a->pos_ids = (int *)mcv_take(base, &off, N);
	return off;
}

static int check_batch(const struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err)
{
	const struct lvd_minicpmv_config *c = &m->c;
	if (b->B < 1 || b->T < 1 || !b->input_ids || b->NI < 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: B, T >= 1 and input_ids required");
	for (size_t i = 0; i < (size_t)b->B * b->T; i++)
		if (b->input_ids[i] < 0 || b->input_ids[i] >= c->vocab)
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: input_ids[%zu][%zu] = %d outside [0, %d)",
					     i / b->T, i % b->T, b->input_ids[i], c->vocab);
	if (b->NI == 0)
		return 0;
	if (!b->pixel_values || !b->tgt_sizes || !b->n_images || !b->image_bound || b->Lmax < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: pictures need pixel_values, tgt_sizes, "
				     "n_images, image_bound and Lmax >= 1");
	int sum = 0;
	for (int s = 0; s < b->B; s++) {
		if (b->n_images[s] < 0)
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: n_images[%d] < 0", s);
		sum += b->n_images[s];
	}
	if (sum != b->NI)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: n_images sum to %d, NI = %d", sum, b->NI);
	for (int i = 0; i < b->NI; i++) {
		int th = b->tgt_sizes[2 * i], tw = b->tgt_sizes[2 * i + 1];
		if (th < 1 || tw < 1 || (long)th * tw > b->Lmax)
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: tgt_sizes[%d] = (%d, %d) outside 1..Lmax "
					     "(%d) patches", i, th, tw, b->Lmax);
	}
	/* ranges: Q long, inside the sample, disjoint */
	for (int s = 0, i0 = 0; s < b->B; i0 += b->n_images[s], s++)
		for (int i = i0; i < i0 + b->n_images[s]; i++) {
			int st = b->image_bound[2 * i], en = b->image_bound[2 * i + 1];
			if (st < 0 || en > b->T || en - st != c->query_num)
				return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: image_bound[%d] = [%d, %d) must be "
						     "%d tokens inside [0, %d)", i, st, en, c->query_num, b->T);
			for (int j = i0; j < i; j++)
				if (st < b->image_bound[2 * j + 1] && b->image_bound[2 * j] < en)
					return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv batch: image_bound[%d] overlaps "
							     "image_bound[%d]", i, j);
		}
	return 0;
}

/* Idefics2 position ids of strip patch j of an n-patch picture: bucketize(j·(1/n),
 * boundaries, right=True) with boundaries = torch.arange(1/side, 1.0, 1/side) in fp32
 * (values start + k·step computed in double, as torch's CPU arange) */
static void pos_ids(int *out, int n, int L, int side)
{
	double step = 1.0 / side;
	int nb = (int)ceil((1.0 - step) / step);
	float inv = 1.0f / (float)n, top = (float)(1.0 - 1e-6);
	for (int j = 0; j < L; j++) {
		if (j >= n) {
			out[j] = 0;
			continue;
		}
		float f = (float)j * inv;
		if (f > top)
			f = top;
		int k = 0;
		while (k < nb && (float)(step + step * k) <= f)
			k++;
		out[j] = k;
	}
}

/* 2-D sin-cos key position of patch (r, col) into out[D]: column half then row half, each
 * [sin(p·ω_i), cos(p·ω_i)], ω_i = 1/10000^(i/(D/4)) for i < D/4 (fp32 as numpy's) */
static void sincos2d(float *out, int r, int col, int D)
{
	int q = D / 4;
	for (int half = 0; half < 2; half++) {
		float p = (float)(half ? r : col);
		float *o = out + half * (D / 2);
		for (int i = 0; i < q; i++) {
			float w = 1.0f / powf(10000.0f, (float)i / (float)q);
			float x = p * w;
			o[i] = sinf(x);
			o[q + i] = cosf(x);
		}
	}
}

static void vision_fwd(struct lvd_minicpmv *m, struct mcv_acts *a, const struct lvd_minicpmv_batch *b)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	struct lvd_ctx *ctx = m->ctx;
	int NI = b->NI, L = b->Lmax, N = NI * L, Dv = c->v_hidden, Iv = c->v_inter, Hv = c->v_heads, ps = c->v_patch;
	int C = c->v_channels, K = C * ps * ps;
	for (int i = 0; i < NI; i++)
		lvd_patch_unfold(ctx, a->cols + (size_t)i * L * K, b->pixel_values + (size_t)i * C * ps * L * ps, C, ps,
				 L * ps, ps);
	lvd_linear_fwd(ctx, a->x, a->cols, w->patch_w, w->patch_b, N, K, Dv);
	for (int i = 0; i < NI; i++) {
		int n = b->tgt_sizes[2 * i] * b->tgt_sizes[2 * i + 1];
		int *pid = a->pos_ids + (size_t)i * L;
		pos_ids(pid, n, L, c->v_side);
		float *bias = a->vbias + (size_t)i * L * L;
		for (int r = 0; r < L; r++)
			for (int j = 0; j < L; j++)
				bias[(size_t)r * L + j] = j < n ? 0.0f : -FLT_MAX;
		for (int j = 0; j < L; j++) {
			float *x = a->x + ((size_t)i * L + j) * Dv;
			const float *p = w->pos + (size_t)pid[j] * Dv;
			for (int d = 0; d < Dv; d++)
				x[d] += p[d];
		}
	}
	struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_BIAS, .bias = a->vbias };
	float scale = 1.0f / sqrtf((float)(Dv / Hv));
	enum lvd_gelu_kind gk = c->v_gelu_tanh ? LVD_GELU_TANH : LVD_GELU_EXACT;
	for (int l = 0; l < c->v_layers; l++) {
		const struct mcv_vlayer *W = &w->vl[l];
		lvd_layernorm_fwd(ctx, a->ln, NULL, NULL, a->x, W->ln1_w, W->ln1_b, N, Dv, c->v_eps);
		lvd_linear_fwd(ctx, a->q, a->ln, W->q_w, W->q_b, N, Dv, Dv);
		lvd_linear_fwd(ctx, a->k, a->ln, W->k_w, W->k_b, N, Dv, Dv);
		lvd_linear_fwd(ctx, a->v, a->ln, W->v_w, W->v_b, N, Dv, Dv);
		lvd_attn_fwd(ctx, a->att, a->vstats, NULL, a->q, a->k, a->v, &mk, NULL, scale, NI, L, L, Hv, Hv, Dv / Hv);
		lvd_linear_fwd(ctx, a->tmp, a->att, W->o_w, W->o_b, N, Dv, Dv);
		lvd_gated_residual_fwd(ctx, a->x, a->x, a->tmp, NULL, NULL, N, Dv);
		lvd_layernorm_fwd(ctx, a->ln, NULL, NULL, a->x, W->ln2_w, W->ln2_b, N, Dv, c->v_eps);
		lvd_linear_fwd(ctx, a->h1, a->ln, W->fc1_w, W->fc1_b, N, Dv, Iv);
		lvd_gelu_fwd(ctx, a->h1g, a->h1, (size_t)N * Iv, gk);
		lvd_linear_fwd(ctx, a->tmp, a->h1g, W->fc2_w, W->fc2_b, N, Iv, Dv);
		lvd_gated_residual_fwd(ctx, a->x, a->x, a->tmp, NULL, NULL, N, Dv);
	}
	lvd_layernorm_fwd(ctx, a->vision, NULL, NULL, a->x, w->post_w, w->post_b, N, Dv, c->v_eps);
}

/* resampler (nn.MultiheadAttention, sequence-first in the hub code; here token-major):
 * kv = ln_kv(kv_proj(vision)); q = ln_q(query); out = MHA(q, kv + pos, kv, key padding);
 * resampled = ln_post(out) · proj */
static void resampler_fwd(struct lvd_minicpmv *m, struct mcv_acts *a, const struct lvd_minicpmv_batch *b)
{
	const struct lvd_minicpmv_config *c = &m->c;
	const struct mcv_weights *w = &m->w;
	struct lvd_ctx *ctx = m->ctx;
	int NI = b->NI, L = b->Lmax, N = NI * L, Dv = c->v_hidden, D = c->t_hidden, Q = c->query_num, Hr = c->r_heads;
	size_t DD = (size_t)D * D;
	if (w->kv_proj)
		lvd_linear_fwd(ctx, a->kv, a->vision, w->kv_proj, NULL, N, Dv, D);
	else
		memcpy(a->kv, a->vision, sizeof(float) * (size_t)N * D);
	lvd_layernorm_fwd(ctx, a->kvn, NULL, NULL, a->kv, w->lnkv_w, w->lnkv_b, N, D, 1e-6f);
	for (int i = 0; i < NI; i++) {
		int th = b->tgt_sizes[2 * i], tw = b->tgt_sizes[2 * i + 1], n = th * tw;
		for (int j = 0; j < L; j++) {
			float *kp = a->kpos + ((size_t)i * L + j) * D;
			const float *kv = a->kvn + ((size_t)i * L + j) * D;
			if (j < n)
				sincos2d(kp, j / tw, j % tw, D);
			else
				memset(kp, 0, sizeof(float) * D);
			for (int d = 0; d < D; d++)
				kp[d] += kv[d];
		}
		float *bias = a->rbias + (size_t)i * Q * L;
		for (int r = 0; r < Q; r++)
			for (int j = 0; j < L; j++)
				bias[(size_t)r * L + j] = j < n ? 0.0f : -FLT_MAX;
	}
	/* packed in_proj: rows [0, D) query, [D, 2D) key, [2D, 3D) value */
	lvd_layernorm_fwd(ctx, a->qn, NULL, NULL, w->query, w->lnq_w, w->lnq_b, Q, D, 1e-6f);
	lvd_linear_fwd(ctx, a->qp1, a->qn, w->in_w, w->in_b, Q, D, D);
	for (int i = 0; i < NI; i++)
		memcpy(a->qp + (size_t)i * Q * D, a->qp1, sizeof(float) * (size_t)Q * D);
	lvd_linear_fwd(ctx, a->kp, a->kpos, w->in_w + DD, w->in_b + D, N, D, D);
	lvd_linear_fwd(ctx, a->vp, a->kvn, w->in_w + 2 * DD, w->in_b + 2 * D, N, D, D);
	a->cap_off[0] = 0;
	for (int i = 0; i < NI; i++) {
		for (int r = 0; r < Q; r++)
			a->cap_rows[i * Q + r] = r;
		a->cap_off[i + 1] = (i + 1) * Q;
	}
	struct lvd_attn_mask mk = { .kind = LVD_ATTN_MASK_BIAS, .bias = a->rbias };
	struct lvd_attn_capture cp = { a->cap_rows, a->cap_off };
	lvd_attn_fwd(ctx, a->ratt, a->rstats, a->probs, a->qp, a->kp, a->vp, &mk, &cp, 1.0f / sqrtf((float)(D / Hr)), NI,
		     Q, L, Hr, Hr, D / Hr);
	lvd_linear_fwd(ctx, a->rout, a->ratt, w->out_w, w->out_b, NI * Q, D, D);
	lvd_layernorm_fwd(ctx, a->rout, NULL, NULL, a->rout, w->lnpost_w, w->lnpost_b, NI * Q, D, 1e-6f);
	lvd_gemm(ctx, 0, 0, NI * Q, D, D, 1.0f, a->rout, D, w->proj, D, 0.0f, a->resampled, D);
}

int lvd_minicpmv_forward(struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err)
{
	int rc = check_batch(m, b, err);
	if (!rc)
		rc = mcv_text_check(m, b, err);
	if (rc)
		return rc;
	int NI = b->NI, L = NI ? b->Lmax : 0;
	struct mcv_acts a;
	size_t need = carve(m, &a, NULL, b->B, b->T, NI, L);
	if (need > m->acap) {
		free(m->ablock);
		m->acap = 0;
		m->ablock = lvd_alloc_aligned(need, sizeof(float));
		if (!m->ablock)
			return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv: cannot allocate %zu activation floats", need);
		m->acap = need;
	}
	carve(m, &a, m->ablock, b->B, b->T, NI, L);
	m->B = b->B, m->T = b->T, m->NI = NI, m->Lmax = L;
	if (NI) {
		vision_fwd(m, &a, b);
		resampler_fwd(m, &a, b);
	}
	/* the LLM (minicpmv_text.c) sets m->logits */
	if ((rc = mcv_text_fwd(m, b, NI ? a.resampled : NULL, err)))
		return rc;
	m->vision = NI ? a.vision : NULL;
	m->resampled = NI ? a.resampled : NULL;
	m->probs = NI ? a.probs : NULL;
	m->pos_ids = NI ? a.pos_ids : NULL;
	return 0;
}

const float *lvd_minicpmv_logits(const struct lvd_minicpmv *m) { return m->logits; }
const float *lvd_minicpmv_vision(const struct lvd_minicpmv *m) { return m->vision; }
const float *lvd_minicpmv_resampled(const struct lvd_minicpmv *m) { return m->resampled; }
const float *lvd_minicpmv_resampler_probs(const struct lvd_minicpmv *m) { return m->probs; }
const int *lvd_minicpmv_pos_ids(const struct lvd_minicpmv *m) { return m->pos_ids; }
