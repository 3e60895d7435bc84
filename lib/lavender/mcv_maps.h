/* lib/lavender/mcv_maps.h — the two MiniCPM-Llama3-V-2.5 map modes of the Lavender loss
 * (issue #18): VLM maps on an N×N grid over the image from the text→image-token block of
 * the LLM's causal self-attention, forward and exact backward. lib/lavender/latt.h takes
 * them through `geom.kind = LVD_LATT_GEOM_MINICPM`; docs/lavender.md ("MiniCPM") explains
 * both modes and the differences from the official hook.
 *
 * Dimension letters: H LLM heads, R captured query rows, NI the sample's pictures (source
 * first, then the slices row-major: image_bound order), Q image tokens per picture
 * (query_num, 96), n2 = NI·Q, Hr resampler heads, Lmax the patch axis of the resampler
 * probabilities (>= every picture's th·tw), N the output grid, V views (below).
 *
 * Inputs of one sample and one LLM layer:
 *   A  [H, R, n2]          the captured self-attention probabilities, image tokens only,
 *                          picture k's Q tokens at [k·Q, (k+1)·Q) (lvd_latt_sample.probs)
 *   Rr [NI, Hr, Q, Lmax]   the resampler probabilities (lvd_minicpmv_resampler_probs
 *                          layout; padding columns p >= th_k·tw_k are ignored)
 *
 * official (--minicpm-map official; the hook extend_llama_attention_with_xattn,
 *   ../shared/reference/lavender.md §1.3(b)): the n2 axis of every (h, r) row is linearly
 *   interpolated to r² values, r = ceil(sqrt(n2)) (F.interpolate(mode='linear'), its
 *   default align_corners=False: src = max((j + 0.5)·n2/r² - 0.5, 0); §1.3(b) names no
 *   flag and §1.3(a)'s hook, the same code family, uses the default), viewed as r×r and
 *   resized to N×N with torchvision's Resize on tensors (bilinear, antialias) — exactly
 *   latt's official geometry with one "tile" of n2 tokens, whose code runs it. V = 1.
 *   Rr is not used.
 * rollout (--minicpm-map rollout, default): with R̄_k[q, p] = (1/Hr)·Σ_hr Rr[k, hr, q, p]
 *   (p < th_k·tw_k),
 *     M_k[r, h, p] = Σ_q A[h, r, k·Q + q] · R̄_k[q, p]            reshaped (th_k, tw_k)
 *   view 0: the source map M_0 [th_0, tw_0]; view 1 (only with slices): the slice canvas
 *   [rows·th_s, cols·tw_s] with slice k (1-based) at block ((k-1)/cols, (k-1)%cols); all
 *   slices share one (th_s, tw_s), as MiniCPM's slicing cuts equal cells. Both views
 *   cover the whole image (the source is the image resized; the slices are cells of the
 *   whole image resized), so each is area-resampled onto N×N over the image extent with
 *   lvd-pack's --grid formula (lvd_resample_areaw, ext = the view's patch rows / columns,
 *   step = ext/N) and compared with the same --grid N target. V = 1 without slices, 2
 *   with. The mean over resampler heads keeps R̄_k a distribution over the picture's
 *   patches (rows sum to 1), so M_k holds the attention mass A gives picture k, moved to
 *   the patches; per-head maps would multiply the Aligner's input channels by Hr.
 *
 * Output maps [V·R, H, N, N], view-major (row v·R + r is view v of row r). The maps take
 * R̄ (lvd_mcv_rbar_fwd, once per sample: it does not depend on the LLM layer); the
 * backward gives dA [H, R, n2] and dR̄, and lvd_mcv_rbar_bwd spreads dR̄ / Hr over the
 * resampler heads of dRr [NI, Hr, Q, Lmax] (padding columns untouched). All ACCUMULATE.
 *
 * Work memory from ctx's workspace (rollout: R·H·(th_0·tw_0 + the canvas + the largest
 * picture) floats of maps, Q·th·tw doubles for R̄). CPU only. */
#ifndef LVD_LAVENDER_MCV_MAPS_H
#define LVD_LAVENDER_MCV_MAPS_H

#include <stddef.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_ctx; /* nn/ctx.h */

#define LVD_MCV_MAX_PICS 64

enum lvd_mcv_map {
	LVD_MCV_MAP_ROLLOUT = 0,   /* default */
	LVD_MCV_MAP_OFFICIAL = 1,
};

/* One MiniCPM sample's layout. */
struct lvd_mcv_geom {
	enum lvd_mcv_map mode;
	int heads;                     /* H */
	int n_pics;                    /* NI = 1 + cols·rows */
	int Q;                         /* image tokens per picture (query_num) */
	int cols, rows;                /* slice grid; 0, 0 = the source picture alone */
	int Hr;                        /* resampler heads (rollout) */
	int Lmax;                      /* patch axis of Rr (rollout) */
	int th[LVD_MCV_MAX_PICS];      /* tgt_sizes per picture, patches (rollout) */
	int tw[LVD_MCV_MAX_PICS];
	int grid;                      /* N */
	/* derived by lvd_mcv_geom_check */
	int n2;                        /* NI·Q */
	int views;                     /* V */
	int ores;                      /* official: ceil(sqrt(n2)) */
};

/* Validates g and fills the derived fields. LVD_ERR_INVALID naming the field. */
int lvd_mcv_geom_check(struct lvd_mcv_geom *g, struct lvd_error *err);
/* Parses "official" / "rollout" (the --minicpm-map values). LVD_ERR_INVALID otherwise. */
int lvd_mcv_parse_map(const char *s, enum lvd_mcv_map *out, struct lvd_error *err);

/* The resampler head mean R̄, packed per picture: rbar [Σ_k Q·th_k·tw_k] (picture k's
 * [Q, th_k·tw_k] after the earlier ones) from Rr [NI, Hr, Q, Lmax] (sums in double).
 * Layer-independent: compute it once per sample. Rollout only. */
size_t lvd_mcv_rbar_floats(const struct lvd_mcv_geom *g);
void lvd_mcv_rbar_fwd(struct lvd_ctx *ctx, float *rbar, const float *Rr, const struct lvd_mcv_geom *g);
/* dRr [NI, Hr, Q, Lmax] += drbar / Hr on every resampler head (ACCUMULATES; padding
 * columns untouched). */
void lvd_mcv_rbar_bwd(float *dRr, const float *drbar, const struct lvd_mcv_geom *g);

/* out[V·R, H, N, N] from A [H, R, n2] and rbar (lvd_mcv_rbar_fwd; rollout; NULL allowed
 * for official). A checked g. */
void lvd_mcv_maps_fwd(struct lvd_ctx *ctx, float *out, const float *A, const float *rbar,
		      const struct lvd_mcv_geom *g, int R);
/* dA [H, R, n2] and drbar (packed as rbar) += the adjoint applied to dout [V·R, H, N, N]
 * (ACCUMULATE; each may be NULL; the rollout needs A and rbar, the official neither;
 * official leaves drbar alone). */
void lvd_mcv_maps_bwd(struct lvd_ctx *ctx, float *dA, float *drbar, const float *dout, const float *A,
		      const float *rbar, const struct lvd_mcv_geom *g, int R);

#ifdef __cplusplus
}
#endif
#endif
