/* lib/nn/ops/vembed_cpu.c — CPU reference of lib/nn/ops/vembed.h. */
#include "nn/ops/vembed.h"

#include <math.h>
#include <string.h>

static double dot(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

static void axpy(float *y, float a, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

void lvd_vembed_fwd_cpu(struct lvd_ctx *ctx, float *h, const float *pf, const int *ar_ids, const float *cls,
			const float *pre_tile, const float *pre_gate, const float *pos, const float *tile_pos,
			const float *pos_gate, int NV, int TL, int np, int D)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_vembed_fwd");
	int P1 = np + 1;
	float tpre = tanhf(pre_gate[0]), tpos = tanhf(pos_gate[0]);
	for (int n = 0; n < NV; n++) {
		int ar = ar_ids[n];
		for (int t = 0; t < TL; t++) {
			float *ht = h + ((size_t)n * TL + t) * P1 * D;
			const float *pre = pre_tile + ((size_t)ar * TL + t) * D;
			memcpy(ht, cls, sizeof(float) * D);
			for (int p = 0; p < np; p++) {
				const float *src = pf + (((size_t)n * TL + t) * np + p) * D;
				for (int d = 0; d < D; d++)
					ht[(size_t)(p + 1) * D + d] = src[d] + pre[d] * tpre;
			}
			const float *tp = tile_pos + ((size_t)ar * TL + t) * P1 * D;
			for (size_t i = 0; i < (size_t)P1 * D; i++)
				ht[i] = ht[i] + (1.0f - tpos) * pos[i] + tpos * tp[i];
		}
	}
}

void lvd_vembed_bwd_cpu(struct lvd_ctx *ctx, float *dpf, float *dcls, float *dpre_tile, float *dpre_gate, float *dpos,
			float *dtile_pos, float *dpos_gate, const float *dh, const int *ar_ids, const float *pre_tile,
			const float *pre_gate, const float *pos, const float *tile_pos, const float *pos_gate, int NV,
			int TL, int np, int D)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_vembed_bwd");
	int P1 = np + 1;
	float tpre = tanhf(pre_gate[0]), tpos = tanhf(pos_gate[0]);
	double gpos = 0, gpre = 0;
	for (int n = 0; n < NV; n++) {
		int ar = ar_ids[n];
		for (int t = 0; t < TL; t++) {
			const float *d = dh + ((size_t)n * TL + t) * P1 * D;
			size_t to = ((size_t)ar * TL + t) * P1 * D, po = ((size_t)ar * TL + t) * D;
			for (size_t i = 0; i < (size_t)P1 * D; i++) {
				gpos += (double)d[i] * (tile_pos[to + i] - pos[i]);
				if (dpos)
					dpos[i] += (1.0f - tpos) * d[i];
				if (dtile_pos)
					dtile_pos[to + i] += tpos * d[i];
			}
			if (dcls)
				axpy(dcls, 1.0f, d, D);
			for (int p = 0; p < np; p++) {
				const float *dp = d + (size_t)(p + 1) * D;
				gpre += dot(dp, pre_tile + po, D);
				if (dpre_tile)
					axpy(dpre_tile + po, tpre, dp, D);
				if (dpf)
					axpy(dpf + (((size_t)n * TL + t) * np + p) * D, 1.0f, dp, D);
			}
		}
	}
	if (dpos_gate)
		dpos_gate[0] += (1.0f - tpos * tpos) * (float)gpos;
	if (dpre_gate)
		dpre_gate[0] += (1.0f - tpre * tpre) * (float)gpre;
}

void lvd_vembed_tile_add_fwd_cpu(struct lvd_ctx *ctx, float *x, const int *ar_ids, const float *table,
				 const float *gate, int NV, int TL, int Pp, int D)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_vembed_tile_add_fwd");
	float g = tanhf(gate[0]);
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++) {
			const float *e = table + ((size_t)ar_ids[n] * TL + t) * D;
			for (int p = 0; p < Pp; p++)
				axpy(x + (((size_t)n * TL + t) * Pp + p) * D, g, e, D);
		}
}

void lvd_vembed_tile_add_bwd_cpu(struct lvd_ctx *ctx, float *dtable, float *dgate, const float *dx, const int *ar_ids,
				 const float *table, const float *gate, int NV, int TL, int Pp, int D)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_vembed_tile_add_bwd");
	float g = tanhf(gate[0]);
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++) {
			size_t eo = ((size_t)ar_ids[n] * TL + t) * D;
			double gs = 0;
			for (int p = 0; p < Pp; p++) {
				const float *d = dx + (((size_t)n * TL + t) * Pp + p) * D;
				gs += dot(d, table + eo, D);
				if (dtable)
					axpy(dtable + eo, g, d, D);
			}
			if (dgate)
				dgate[0] += (1.0f - g * g) * (float)gs;
		}
}

void lvd_vembed_gather_fwd_cpu(struct lvd_ctx *ctx, float *feats, const float *last, const float *const *inter,
			       int NV, int TL, int P1, int Pp, int D, int K)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_vembed_gather_fwd");
	size_t OD = (size_t)D * (1 + K);
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++)
			for (int p = 0; p < P1; p++) {
				size_t row = ((size_t)n * TL + t) * Pp + p;
				float *f = feats + (((size_t)n * TL + t) * P1 + p) * OD;
				memcpy(f, last + row * D, sizeof(float) * D);
				for (int k = 0; k < K; k++) {
					const float *src = inter[k] + row * D;
					for (int d = 0; d < D; d++)
						f[D + (size_t)d * K + k] = src[d];
				}
			}
}

void lvd_vembed_gather_bwd_cpu(struct lvd_ctx *ctx, float *dx, const float *dfeats, int part, int NV, int TL, int P1,
			       int Pp, int D, int K)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_vembed_gather_bwd");
	LVD_ASSERT(part >= 0 && part <= K);
	size_t OD = (size_t)D * (1 + K);
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++)
			for (int p = 0; p < P1; p++) {
				float *d = dx + (((size_t)n * TL + t) * Pp + p) * D;
				const float *f = dfeats + (((size_t)n * TL + t) * P1 + p) * OD;
				if (part == 0) {
					for (int e = 0; e < D; e++)
						d[e] += f[e];
				} else {
					for (int e = 0; e < D; e++)
						d[e] += f[D + (size_t)e * K + part - 1];
				}
			}
}

void lvd_vembed_pad_flags_cpu(struct lvd_ctx *ctx, uint8_t *pad, const int *tile_mask, int NV, int TL, int P1,
			      int Pp)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_vembed_pad_flags");
	for (int n = 0; n < NV; n++)
		for (int t = 0; t < TL; t++) {
			int on = tile_mask[n * TL + t] != 0;
			for (int p = 0; p < Pp; p++)
				pad[((size_t)n * TL + t) * Pp + p] = (p >= P1) || !on;
		}
}
