/* lib/lavender/latt.h — the Lavender attention loss L_att over plain buffers: VLM maps on
 * the pack's grid from captured cross-attention probabilities, the Aligner, layer
 * aggregation, per-row and per-word min-max grouping, MSE against the stored targets,
 * forward and backward; and the λ / CE schedules. docs/lavender.md explains every step
 * and each difference from the official code (../shared/reference/lavender.md §1).
 *
 * Dimension letters: H heads (= Aligner d_in), R captured query rows of one sample,
 * S key length of the captured probabilities (M·TL·P1 vision tokens: images × tiles per
 * image × tokens per tile), P patches per tile side, GH×GW the map grid (the pack's
 * target grid), HW = GH·GW, L chosen layers, W words.
 *
 * Geometry (lvd_latt_maps_fwd/bwd). Key token of patch (y, x) of the patch canvas
 * [tiles_h·P, tiles_w·P] (tiles row-major, as the mllama image processor cuts them):
 *   tok(y, x) = tok0 + ((y/P)·tiles_w + x/P)·tile_tok + tok_skip + (y%P)·P + x%P
 * so each tile's CLS (tok_skip = 1) and the tokens after its P² patches (vision padding)
 * are dropped. Patch (y, x) is valid iff y·p < new_h and x·p < new_w (p = patch px):
 * exactly lvd-pack's mask (lib/lavender/geometry.h).
 *   grid = 0 (canvas pack): map[r, h, y, x] = probs[h, r, tok(y, x)] on valid cells, 0 on
 *     the others; GH = tiles_h·P, GW = tiles_w·P.
 *   grid = N (--grid N pack): the valid patches [vh = ceil(new_h/p), vw] (cells of p px)
 *     are resampled onto N×N over the image extent with lvd-pack's area-weighted formula,
 *     lvd_resample_areaw_fwd(ext_h = vh·p, step_h = new_h/N, ext_w = vw·p,
 *     step_w = new_w/N); every cell is valid.
 * The backward is the exact adjoint (scatter-add into the dropped/unused tokens: none).
 *   official = 1 (the official code's geometry, bugs included, for comparisons; only
 *     with a --grid pack, N = 32 there): each of the n_t = tiles_h·tiles_w tiles' tile_tok
 *     tokens, CLS and padding included, is linearly interpolated (align_corners=False:
 *     src = max((j + 0.5)·tile_tok/r² - 0.5, 0)) to r² = ceil(sqrt(tile_tok))² values
 *     viewed as r×r; the canvas is r×r (n_t = 1, tile 0), r×2r (n_t = 2: always side by
 *     side, also for a 2×1 image) or 2r×2r (n_t = 3, 4: tile t at row t/2, column t%2,
 *     whatever the aspect ratio), empty cells 0; then resized to N×N with torchvision's
 *     Resize((N, N)) on tensors = F.interpolate(bilinear, align_corners=False,
 *     antialias=True) (PyTorch's separable triangle filter widened by the scale when
 *     shrinking; weights in double here). The map covers the whole canvas, padding
 *     included, not the image extent; every cell is valid.
 *
 * Loss of one sample (lvd_latt_sample_loss), with mask = the pack's validity mask:
 *   X_l = maps(probs_l) [R, H, GH, GW] for each chosen layer l
 *   agg AFTER (default; official use_layer=average_all, layer_extract=average|max):
 *     Z = mean_l (or max_l) Aligner(X_l)                    [R, GH, GW]
 *   agg BEFORE (official diffag_mean_layer): Z = Aligner(mean_l (or max_l) X_l)
 *   V_r  = minmax(Z_r)  over valid cells, (x - min)/(max - min + eps), eps 1e-6; 0 elsewhere
 *   U_w  = minmax(mean_{r ∈ rows(w)} V_r)
 *   mse_w = Σ_valid (U_w - T_w)² / #valid                    (T_w the stored target)
 *   L_att += Σ_{matched w} mse_w / pair_count
 * pair_count is supplied by the caller (the matched (sample, word) pairs of the whole
 * global batch, across micro-batches and ranks), so summing the per-sample results over
 * the batch gives the official mean per matched word. A sample without matched words
 * adds 0 (the official adds a constant λ then; see docs/lavender.md). Min and max pass
 * their gradient to the first cell holding them (as torch.min/max over a dim);
 * max over layers to the first layer holding it.
 * Backward: the gradient of dscale·(the sample's contribution) (dscale = λ_t, the
 * upstream dL/dL_att) is ACCUMULATED into dparams (the Aligner block) and into
 * dprobs[layer] [H, R, S] for the chosen layers (NULL entries / NULL arrays skipped).
 * Only the rows given are computed: capture only rows of matched words for training.
 *
 * MiniCPM (geom.kind = LVD_LATT_GEOM_MINICPM, lib/lavender/mcv_maps.h): probs[layer] is
 * the self-attention block A [H, R, S] with S = n2 = NI·Q (the sample's image tokens),
 * sample.rprobs the resampler probabilities [NI, Hr, Q, Lmax] (rollout), and the maps are
 * lvd_mcv_maps_fwd's on the N×N grid (grid = N >= 1, every cell valid; mcv.heads and
 * mcv.grid are set from heads and grid by the check). With V = 2 views (rollout with
 * slices: the source picture's map and the slice canvas) the loss runs on V·R rows and
 * V·W words (row v·R + r, word v·W + w = view v of row r / word w, same target), and
 * pair_count is multiplied by V: each matched word adds the MEAN of its two views' MSE.
 * Traces then hold V·R rows and V·W words (lvd_latt_views gives V; the word-map
 * functions below likewise write V·W maps). dprobs[layer] gets dA and sample.drprobs
 * (when non-NULL) dRr, summed over the chosen layers (the resampler runs once: R̄ is
 * computed once per sample and dR̄ spread once; two more Σ_k Q·th_k·tw_k floats of
 * workspace).
 *
 * All work memory comes from ctx's workspace (about L·R·H·HW floats of maps plus the
 * Aligner's saved activations, lvd_aligner_saved_floats, for L·R images; with cfg.lean
 * one layer's worth); nothing allocates. CPU only for now (asserts a CPU context). Bad arguments are
 * LVD_ERR_INVALID naming the field (lvd_latt_geom_check, lvd_latt_cfg_check,
 * lvd_latt_sample_check); the compute functions assert checked inputs. */
#ifndef LVD_LAVENDER_LATT_H
#define LVD_LAVENDER_LATT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "lavender/aligner.h"
#include "lavender/mcv_maps.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_ctx; /* nn/ctx.h */

enum lvd_latt_geom_kind {
	LVD_LATT_GEOM_MLLAMA = 0,   /* cross-attention over tiles (the fields below) */
	LVD_LATT_GEOM_MINICPM = 1,  /* self-attention over resampler tokens (mcv; uses heads, S, grid) */
};

/* Where one sample's image lies in the captured key axis and on the pack's grid. */
struct lvd_latt_geom {
	int heads;       /* H */
	int S;           /* key length of the captured probabilities */
	int tok0;        /* key index of the image's first tile's first token (0 for image 0) */
	int tile_tok;    /* tokens per tile in S: P1 = 1 + P² (+ vision padding) */
	int tok_skip;    /* leading tokens per tile dropped: 1 (CLS) */
	int patches;     /* P */
	int tiles_h, tiles_w;
	int patch_px;    /* p (14) */
	int new_h, new_w;/* the resized image extent at the canvas' top-left, px */
	int grid;        /* 0: patch canvas; N: N×N */
	int official;    /* 1: the official geometry (below; needs grid > 0, <= 4 tiles) */
	/* derived by lvd_latt_geom_check */
	int gh, gw;      /* map grid */
	int vh, vw;      /* valid patch rows / columns: ceil(new_h/p), ceil(new_w/p) */
	int ores;        /* official: tile side ceil(sqrt(tile_tok)) */
	int och, ocw;    /* official: canvas rows and columns */
	enum lvd_latt_geom_kind kind;
	struct lvd_mcv_geom mcv; /* kind MINICPM: the picture layout and map mode */
};

/* Validates g (tiles inside the key axis, extent inside the canvas, ...; MiniCPM: S = n2,
 * grid >= 1 and lvd_mcv_geom_check) and fills the derived fields. LVD_ERR_INVALID naming
 * the field. */
int lvd_latt_geom_check(struct lvd_latt_geom *g, struct lvd_error *err);
/* V: the maps per captured row (2 for a MiniCPM rollout sample with slices, else 1). */
int lvd_latt_views(const struct lvd_latt_geom *g);
/* tiles_h, tiles_w from a 1-based aspect_ratio_id of the mllama processor's supported
 * list for max_tiles (lvd_geom_aspects). LVD_ERR_INVALID when out of range. */
int lvd_latt_geom_set_aspect(struct lvd_latt_geom *g, int aspect_id, int max_tiles, struct lvd_error *err);
/* mask[GH·GW]: 1 on valid cells (a checked g). */
void lvd_latt_mask(const struct lvd_latt_geom *g, uint8_t *mask);

/* out[R, H, GH, GW] = maps(probs[H, R, S]) (the geometry above, kind MLLAMA; out fully
 * written; MiniCPM maps: lvd_mcv_maps_fwd). */
void lvd_latt_maps_fwd(struct lvd_ctx *ctx, float *out, const float *probs, const struct lvd_latt_geom *g,
		       int R);
/* dprobs[H, R, S] += adjoint(dout[R, H, GH, GW]) (ACCUMULATES). */
void lvd_latt_maps_bwd(struct lvd_ctx *ctx, float *dprobs, const float *dout, const struct lvd_latt_geom *g,
		       int R);

enum lvd_latt_agg {
	LVD_LATT_MEAN_AFTER = 0,  /* default: mean over layers of the Aligner outputs */
	LVD_LATT_MAX_AFTER = 1,
	LVD_LATT_MEAN_BEFORE = 2, /* official diffag_mean_layer: mean of the maps, then the Aligner */
	LVD_LATT_MAX_BEFORE = 3,
};

#define LVD_LATT_MAX_LAYERS 64

struct lvd_latt_cfg {
	struct lvd_aligner_cfg aligner;   /* aligner.d_in must equal the geometry's heads */
	enum lvd_latt_agg agg;
	int n_captured;                   /* layers captured (entries of probs[]) */
	int n_layers;                     /* chosen layers; 0 = all captured */
	int layers[LVD_LATT_MAX_LAYERS];  /* indices into the captured layers, distinct */
	float minmax_eps;                 /* 1e-6 */
	int lean;                         /* 1: after modes keep one layer's maps and Aligner
	                                   * activations at a time and recompute that layer's
	                                   * Aligner forward in the backward (L× less memory,
	                                   * one more Aligner forward); same results up to the
	                                   * order of the weight-gradient sums */
};

/* Aligner defaults for d_in = heads, mean after, all n_captured layers, eps 1e-6. */
void lvd_latt_cfg_default(struct lvd_latt_cfg *cfg, int heads, int n_captured);
int lvd_latt_cfg_check(const struct lvd_latt_cfg *cfg, struct lvd_error *err);

struct lvd_latt_word {
	int n_rows;
	const int *rows;        /* indices into the sample's R rows */
	const float *target;    /* [GH·GW] (the pack's target, 0 on invalid cells), or NULL:
	                         * not matched (no loss; its maps are still traced) */
};

struct lvd_latt_sample {
	struct lvd_latt_geom geom;        /* checked */
	int R;
	const float *const *probs;        /* [n_captured] of [H, R, S] (unchosen may be NULL) */
	const uint8_t *mask;              /* [GH·GW] the pack's mask */
	int W;
	const struct lvd_latt_word *words;
	const float *rprobs;              /* MiniCPM rollout: [NI, Hr, Q, Lmax] resampler probabilities */
	float *drprobs;                   /* MiniCPM: dRr ACCUMULATED by the loss, or NULL */
};

/* Checks rows, words, mask and heads against cfg. LVD_ERR_INVALID naming the field. */
int lvd_latt_sample_check(const struct lvd_latt_sample *s, const struct lvd_latt_cfg *cfg, struct lvd_error *err);

/* Optional intermediates (caller-owned; each NULL = not written). Lc = chosen layers,
 * La = Lc (after modes) or 1 (before modes). */
struct lvd_latt_trace {
	float *maps;       /* [Lc, R, H, GH, GW] after the geometry */
	float *aligned;    /* [La, R, GH, GW] Aligner outputs */
	float *agg;        /* [R, GH, GW] after the layer aggregation */
	float *rows;       /* [R, GH, GW] per-row min-max */
	float *words;      /* [W, GH, GW] per word (every word, matched or not) */
	float *word_loss;  /* [W] mse_w (0 for unmatched words) */
	float *raw_words;  /* [W, GH, GW] the same grouping of the raw head-and-layer mean
	                    * (no Aligner): for evaluation and visualisation */
};

/* One sample's L_att contribution (see above): *loss += Σ_matched mse_w / pair_count;
 * gradients of dscale·that ACCUMULATE into dparams and dprobs[layer] when non-NULL.
 * pair_count > 0. Returns the number of matched words of the sample. */
int lvd_latt_sample_loss(struct lvd_ctx *ctx, double *loss, float *dparams, float *const *dprobs,
			 const struct lvd_latt_sample *s, const float *params, const struct lvd_latt_cfg *cfg,
			 double pair_count, float dscale, struct lvd_latt_trace *tr);

/* Per-word maps for evaluation and visualisation, by the loss's own code: aligned
 * [W, GH, GW] (after the Aligner and the grouping, = trace.words) and raw [W, GH, GW]
 * (head-and-layer mean, same grouping, = trace.raw_words); either may be NULL. Words
 * need no target; nothing is accumulated. */
void lvd_latt_word_maps(struct lvd_ctx *ctx, float *aligned, float *raw, const struct lvd_latt_sample *s,
			const float *params, const struct lvd_latt_cfg *cfg);

/* Raw per-word maps without the Aligner, for evaluation (no params needed):
 * per_layer [Lc, W, GH, GW] (Lc = cfg's chosen layers, in cfg's order): the same grouping
 * (per-row min-max over valid cells, mean over the word's rows, min-max) of the head mean
 * of each chosen layer alone; mean [W, GH, GW]: of the head-and-layer mean over the chosen
 * layers, bit-identical to lvd_latt_word_maps' raw. Either may be NULL. Work memory from
 * ctx's workspace (about R·H·HW floats + 2·R·HW doubles); nothing is accumulated. */
void lvd_latt_raw_word_maps(struct lvd_ctx *ctx, float *per_layer, float *mean, const struct lvd_latt_sample *s,
			    const struct lvd_latt_cfg *cfg);

/* The batch: L_att = Σ_b sample b's contribution with pair_count (<= 0: the matched words
 * of these samples); 0 when nothing matched. dprobs[b] is sample b's dprobs array (NULL
 * skips). Returns L_att; *n_pairs (may be NULL) gets the matched words seen here. */
double lvd_latt_loss(struct lvd_ctx *ctx, float *dparams, float *const *const *dprobs,
		     const struct lvd_latt_sample *samples, int n, const float *params,
		     const struct lvd_latt_cfg *cfg, double pair_count, float dscale, int *n_pairs);

/* ---- from a pack record ---------------------------------------------------------------- */

struct lvd_packrec; /* lavender/packrec.h */

/* One training sample's loss inputs built from its lvd-pack record: the rows to capture
 * (the sorted distinct query positions of all its words: hand them to the capture seam
 * in this order, so captured row i is token position rows_pos[i]), the words with their
 * row indices and fp32 targets, the mask and the checked geometry. All matched. Owned
 * arrays (lvd_latt_plan_free, also after a failure). */
struct lvd_latt_plan {
	struct lvd_latt_geom geom;
	int R;
	uint32_t *rows_pos;        /* [R] token positions of the captured rows */
	int W;
	struct lvd_latt_word *words;
	int *row_idx;              /* the words' row lists, concatenated */
	float *targets;            /* [W, GH, GW] */
	uint8_t *mask;             /* [GH, GW] */
	char **keys;               /* [W] the record's word keys (copies) */
	int T;                     /* the record's tokens (rows < T are the sample's own) */
};

/* Fills p from rec (borrowed): tiles from rec->aspect_id among the arrangements of
 * max_tiles (and checked against rec's tiles_h × tiles_w), P = tile_px/patch_px, the
 * image extent, grid = GH for a GRID record (0 otherwise); heads, S, tok0, tile_tok and
 * official as given (official needs a GRID record). The record's mask must equal the
 * geometry's. LVD_ERR_INVALID naming the record's field, LVD_ERR_NOMEM. The caller then
 * sets sample.probs to the captured [H, R, S] buffers (lvd_latt_plan_sample). */
int lvd_latt_plan_from_packrec(struct lvd_latt_plan *p, const struct lvd_packrec *rec, int heads, int S,
			       int tok0, int tile_tok, int max_tiles, int official, struct lvd_error *err);
void lvd_latt_plan_free(struct lvd_latt_plan *p);
/* The sample view of a plan with the captured probabilities (borrowed). */
struct lvd_latt_sample lvd_latt_plan_sample(const struct lvd_latt_plan *p, const float *const *probs);

/* ---- λ and CE schedules: pure functions of the step -------------------------------- */

enum lvd_latt_decay {
	LVD_LATT_CONST = 0,       /* λ_t = λ (official default, λ = 10) */
	LVD_LATT_EXP = 1,         /* λ_t = λ·exp(-f·t/T) (official mse_decay) */
	LVD_LATT_INV_EXP = 2,     /* λ_t = 1 - λ·exp(-f·t/T) (official inverse_mse_decay,
	                           * meaningful only for λ = 1) */
};

struct lvd_latt_sched {
	float lambda;             /* 10 */
	enum lvd_latt_decay decay;
	float decay_factor;       /* f, 1.0 */
	long decay_steps;         /* T of the decay (official: steps per epoch), > 0 when decaying */
	long warmup;              /* P: CE × 1e-7 for steps t < P (attention-only warm-up) */
	int ce_ramp;              /* 1: after the warm-up CE × min(1, (t - P)/(T - P)) */
	long total_steps;         /* T of the ramp */
};

void lvd_latt_sched_default(struct lvd_latt_sched *s);
int lvd_latt_sched_check(const struct lvd_latt_sched *s, struct lvd_error *err);
/* λ_t and the CE scale at step t >= 0: L_total = ce_scale·CE + λ_t·L_att. */
void lvd_latt_sched_at(const struct lvd_latt_sched *s, long t, float *lambda_t, float *ce_scale);

#ifdef __cplusplus
}
#endif
#endif
