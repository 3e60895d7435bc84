/* lib/nn/ops/vembed.h — tiled-vision embedding ops (family "vembed"; mllama's vision
 * encoder, HF MllamaVisionModel): gated tile/position embeddings and the gather/concat
 * of final and intermediate layer features, each with its backward.
 *
 * Letters: NV images, TL tiles per image, np patches per tile, P1 = np + 1 tokens per
 * tile (CLS first), Pp tokens per tile as stored in the padded sequence (Pp >= P1),
 * L = TL·Pp, D width, K intermediate layers, na aspect-ratio rows of the tables.
 * ar_ids[NV] (host ints, < na) select rows of the aspect-ratio tables. Gates are scalar
 * parameters used as tanh(gate[0]). Backward ops ACCUMULATE into every gradient (NULL:
 * skipped); gate gradients are summed in double.
 * CUDA twins (vembed.cu): the same arguments, tensors in device memory (tile_mask
 * included) while ar_ids stay host ints and inter a host array of device pointers;
 * deterministic (the CPU's summation orders, no atomics); tanhf on the device. */
#ifndef LVD_NN_OPS_VEMBED_H
#define LVD_NN_OPS_VEMBED_H

#include <stdint.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* h[NV, TL, P1, D]: token 0 = cls[D], token p + 1 = pf[n, t, p] + tanh(pre_gate)·
 * pre_tile[ar_n, t]; then every token += (1 − tanh(pos_gate))·pos[P1, D] + tanh(pos_gate)·
 * tile_pos[ar_n, t]. pf [NV, TL, np, D]; pre_tile [na, TL·D]; tile_pos [na, TL·P1·D]. */
void lvd_vembed_fwd_cpu(struct lvd_ctx *ctx, float *h, const float *pf, const int *ar_ids, const float *cls,
			const float *pre_tile, const float *pre_gate, const float *pos, const float *tile_pos,
			const float *pos_gate, int NV, int TL, int np, int D);
void lvd_vembed_bwd_cpu(struct lvd_ctx *ctx, float *dpf, float *dcls, float *dpre_tile, float *dpre_gate, float *dpos,
			float *dtile_pos, float *dpos_gate, const float *dh, const int *ar_ids, const float *pre_tile,
			const float *pre_gate, const float *pos, const float *tile_pos, const float *pos_gate, int NV,
			int TL, int np, int D);

/* In place: x[NV, TL, Pp, D] += tanh(gate)·table[ar_n, t] on every token of tile t
 * (table [na, TL·D]); backward: dtable, dgate from dx. */
void lvd_vembed_tile_add_fwd_cpu(struct lvd_ctx *ctx, float *x, const int *ar_ids, const float *table,
				 const float *gate, int NV, int TL, int Pp, int D);
void lvd_vembed_tile_add_bwd_cpu(struct lvd_ctx *ctx, float *dtable, float *dgate, const float *dx, const int *ar_ids,
				 const float *table, const float *gate, int NV, int TL, int Pp, int D);

/* feats[NV, TL, P1, D·(1 + K)] from the padded sequences [NV, L, D] of the last layer
 * (columns [0, D)) and of K intermediate layers (column D + d·K + k: HF's stack on the
 * last axis then flatten); pad tokens (p >= P1) are dropped. */
void lvd_vembed_gather_fwd_cpu(struct lvd_ctx *ctx, float *feats, const float *last, const float *const *inter,
			       int NV, int TL, int P1, int Pp, int D, int K);
/* Backward of one part: part 0 (the last layer) or 1 + k (intermediate k):
 * dx[NV, L, D] += the matching columns of dfeats (pads untouched). */
void lvd_vembed_gather_bwd_cpu(struct lvd_ctx *ctx, float *dx, const float *dfeats, int part, int NV, int TL, int P1,
			       int Pp, int D, int K);

/* Attention pad flags of the padded sequences: pad[NV, TL, Pp] (uint8) = 1 for the
 * padding tokens p >= P1 and for every token of a tile with tile_mask[n, t] == 0 (an
 * unused tile slot), else 0. Forward only. */
void lvd_vembed_pad_flags_cpu(struct lvd_ctx *ctx, uint8_t *pad, const int *tile_mask, int NV, int TL, int P1,
			      int Pp);

#if LVD_HAVE_CUDA
void lvd_vembed_fwd_cuda(struct lvd_ctx *ctx, float *h, const float *pf, const int *ar_ids, const float *cls,
			const float *pre_tile, const float *pre_gate, const float *pos, const float *tile_pos,
			const float *pos_gate, int NV, int TL, int np, int D);
void lvd_vembed_bwd_cuda(struct lvd_ctx *ctx, float *dpf, float *dcls, float *dpre_tile, float *dpre_gate, float *dpos,
			float *dtile_pos, float *dpos_gate, const float *dh, const int *ar_ids, const float *pre_tile,
			const float *pre_gate, const float *pos, const float *tile_pos, const float *pos_gate, int NV,
			int TL, int np, int D);
void lvd_vembed_tile_add_fwd_cuda(struct lvd_ctx *ctx, float *x, const int *ar_ids, const float *table,
				 const float *gate, int NV, int TL, int Pp, int D);
void lvd_vembed_tile_add_bwd_cuda(struct lvd_ctx *ctx, float *dtable, float *dgate, const float *dx, const int *ar_ids,
				 const float *table, const float *gate, int NV, int TL, int Pp, int D);
void lvd_vembed_gather_fwd_cuda(struct lvd_ctx *ctx, float *feats, const float *last, const float *const *inter,
			       int NV, int TL, int P1, int Pp, int D, int K);
void lvd_vembed_gather_bwd_cuda(struct lvd_ctx *ctx, float *dx, const float *dfeats, int part, int NV, int TL, int P1,
			       int Pp, int D, int K);
void lvd_vembed_pad_flags_cuda(struct lvd_ctx *ctx, uint8_t *pad, const int *tile_mask, int NV, int TL, int P1,
			      int Pp);
#define LVD_VEMBED_CUDA(call) do { if (ctx->backend == LVD_BACKEND_CUDA) { call; return; } } while (0)
#else
#define LVD_VEMBED_CUDA(call) do { } while (0)
#endif

static inline void lvd_vembed_pad_flags(struct lvd_ctx *ctx, uint8_t *pad, const int *tile_mask, int NV, int TL,
					int P1, int Pp)
{
	LVD_VEMBED_CUDA(lvd_vembed_pad_flags_cuda(ctx, pad, tile_mask, NV, TL, P1, Pp));
	lvd_vembed_pad_flags_cpu(ctx, pad, tile_mask, NV, TL, P1, Pp);
}
static inline void lvd_vembed_fwd(struct lvd_ctx *ctx, float *h, const float *pf, const int *ar_ids, const float *cls,
				  const float *pre_tile, const float *pre_gate, const float *pos, const float *tile_pos,
				  const float *pos_gate, int NV, int TL, int np, int D)
{
	LVD_VEMBED_CUDA(lvd_vembed_fwd_cuda(ctx, h, pf, ar_ids, cls, pre_tile, pre_gate, pos, tile_pos, pos_gate, NV, TL,
					    np, D));
	lvd_vembed_fwd_cpu(ctx, h, pf, ar_ids, cls, pre_tile, pre_gate, pos, tile_pos, pos_gate, NV, TL, np, D);
}
static inline void lvd_vembed_bwd(struct lvd_ctx *ctx, float *dpf, float *dcls, float *dpre_tile, float *dpre_gate,
				  float *dpos, float *dtile_pos, float *dpos_gate, const float *dh, const int *ar_ids,
				  const float *pre_tile, const float *pre_gate, const float *pos, const float *tile_pos,
				  const float *pos_gate, int NV, int TL, int np, int D)
{
	LVD_VEMBED_CUDA(lvd_vembed_bwd_cuda(ctx, dpf, dcls, dpre_tile, dpre_gate, dpos, dtile_pos, dpos_gate, dh, ar_ids,
					    pre_tile, pre_gate, pos, tile_pos, pos_gate, NV, TL, np, D));
	lvd_vembed_bwd_cpu(ctx, dpf, dcls, dpre_tile, dpre_gate, dpos, dtile_pos, dpos_gate, dh, ar_ids, pre_tile,
			   pre_gate, pos, tile_pos, pos_gate, NV, TL, np, D);
}
static inline void lvd_vembed_tile_add_fwd(struct lvd_ctx *ctx, float *x, const int *ar_ids, const float *table,
					   const float *gate, int NV, int TL, int Pp, int D)
{
	LVD_VEMBED_CUDA(lvd_vembed_tile_add_fwd_cuda(ctx, x, ar_ids, table, gate, NV, TL, Pp, D));
	lvd_vembed_tile_add_fwd_cpu(ctx, x, ar_ids, table, gate, NV, TL, Pp, D);
}
static inline void lvd_vembed_tile_add_bwd(struct lvd_ctx *ctx, float *dtable, float *dgate, const float *dx,
					   const int *ar_ids, const float *table, const float *gate, int NV, int TL,
					   int Pp, int D)
{
	LVD_VEMBED_CUDA(lvd_vembed_tile_add_bwd_cuda(ctx, dtable, dgate, dx, ar_ids, table, gate, NV, TL, Pp, D));
	lvd_vembed_tile_add_bwd_cpu(ctx, dtable, dgate, dx, ar_ids, table, gate, NV, TL, Pp, D);
}
static inline void lvd_vembed_gather_fwd(struct lvd_ctx *ctx, float *feats, const float *last,
					 const float *const *inter, int NV, int TL, int P1, int Pp, int D, int K)
{
	LVD_VEMBED_CUDA(lvd_vembed_gather_fwd_cuda(ctx, feats, last, inter, NV, TL, P1, Pp, D, K));
	lvd_vembed_gather_fwd_cpu(ctx, feats, last, inter, NV, TL, P1, Pp, D, K);
}
static inline void lvd_vembed_gather_bwd(struct lvd_ctx *ctx, float *dx, const float *dfeats, int part, int NV,
					 int TL, int P1, int Pp, int D, int K)
{
	LVD_VEMBED_CUDA(lvd_vembed_gather_bwd_cuda(ctx, dx, dfeats, part, NV, TL, P1, Pp, D, K));
	lvd_vembed_gather_bwd_cpu(ctx, dx, dfeats, part, NV, TL, P1, Pp, D, K);
}

#undef LVD_VEMBED_CUDA

#ifdef __cplusplus
}
#endif
#endif
