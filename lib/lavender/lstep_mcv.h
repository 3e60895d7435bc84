/* lib/lavender/lstep_mcv.h — one Lavender model+loss step on MiniCPM-Llama3-V-2.5
 * (issue #18): lvd_lstep_run's twin for a self-attention VLM.
 *
 *   total = ce_scale·CE + λ·L_att
 *
 * lvd_lstep_mcv_run (1) hands the batch to lvd_minicpmv_forward with capture layers = the
 * chosen decoder layers and capture rows = each sample's rows (the token positions of its
 * words' query rows), (2) reads the captured text→image blocks (lvd_minicpmv_cap_probs:
 * sample b's [H, R_b, NQ_b] at lvd_minicpmv_cap_offset) and the resampler probabilities
 * (lvd_minicpmv_resampler_probs [NI, Hr, Q, Lmax], sample b's pictures), (3) builds each
 * sample's MiniCPM geometry (geom.kind = LVD_LATT_GEOM_MINICPM: its pictures' tgt_sizes
 * from the batch, the slice grid and N from the sample struct below, the map mode) and
 * runs lvd_latt_sample_loss, which puts λ·∂L_att/∂A into a dprobs buffer in the capture
 * layout and (rollout) λ·∂L_att/∂Rr into drprobs, (4) runs
 * lvd_minicpmv_backward_scaled(ce_scale, dprobs): CE and the injected probability
 * gradient into the LLM's (LoRA or full) gradients and lvd_minicpmv_d_resampled.
 *
 * Resampler and vision tower: when they train (lvd_minicpmv_vision_train), the step runs
 * their backward after the LLM's (lvd_minicpmv_vision_backward) from the embeddings'
 * gradient at the pictures' rows (lvd_minicpmv_d_resampled) and, with the rollout map,
 * λ·∂L_att/∂Rr — in the caller's drprobs when given, else in a buffer of its own. The
 * official map does not use Rr (drprobs stays 0).
 *
 * Dimension letters: B batch, T tokens, H text heads (= the Aligner's d_in), R_b capture
 * rows of sample b, NQ_b = n_images[b]·Q its image tokens, NI pictures of the batch, Hr
 * resampler heads, Lmax the batch's patch axis, K captured decoder layers (cfg->n_captured),
 * N the target grid. Gradients ACCUMULATE (dparams, the model's); drprobs is overwritten,
 * dprobs too when some word of the batch is matched (else untouched). Memory: K·Σ_b H·R_b·NQ_b floats of dprobs (the caller's or malloc'd per
 * call), latt's work memory from ctx's workspace. CPU only (latt). */
#ifndef LVD_LAVENDER_LSTEP_MCV_H
#define LVD_LAVENDER_LSTEP_MCV_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "lavender/latt.h"
#include "lavender/lstep.h"
#include "models/minicpmv/minicpmv.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_ctx;

/* One sample's loss inputs (borrowed). The MiniCPM pack record does not exist yet; this is
 * the minimal layout the step needs, what lvd-pack for MiniCPM will have to provide. The
 * pictures' patch grids (th, tw) come from the batch's tgt_sizes. */
struct lvd_lstep_mcv_sample {
	int cols, rows;            /* slice grid of the sample's pictures (0, 0: the source
				    * picture alone); n_images[b] must be 1 + cols·rows */
	int grid;                  /* N: the targets' N×N grid over the image (every cell valid) */
	int R;                     /* capture rows; 0 with W = 0: no Lavender term */
	const uint32_t *rows_pos;  /* [R] token positions, each after the sample's last picture */
	int W;
	const struct lvd_latt_word *words; /* rows index rows_pos; target [N·N] finite, or NULL
					    * (not matched: no loss) */
};

struct lvd_lstep_mcv_in {
	const struct lvd_minicpmv_batch *batch;  /* its n_cap_layers / cap_* are ignored (replaced) */
	const struct lvd_lstep_mcv_sample *samples; /* [B] */
	int n_layers;              /* K decoder layers captured (= cfg->n_captured); 0: all */
	const int *layers;         /* [K] distinct decoder layer indices (NULL with n_layers 0) */
	enum lvd_mcv_map map;      /* --minicpm-map: rollout (default) or official */
	const float *params;       /* Aligner parameter block (lvd_aligner_layout) */
	const struct lvd_latt_cfg *cfg;  /* cfg->aligner.d_in = H; cfg->layers index the K layers */
	double pair_count;         /* matched (sample, word) pairs of the global batch; <= 0:
				    * the matched words here */
	float lambda, ce_scale;    /* lvd_latt_sched_at */
	int backward;              /* 0: forward and loss only */
	float *dprobs;             /* optional, with backward: lvd_lstep_mcv_dprobs_floats() floats
				    * (else malloc'd per call): [K] blocks in the capture layout
				    * (lvd_minicpmv_cap_probs) holding λ·∂L_att/∂A */
	float *drprobs;            /* optional, with backward: [NI, Hr, Q, Lmax]
				    * (lvd_lstep_mcv_drprobs_floats) overwritten with λ·∂L_att/∂Rr
				    * (rollout; 0 on padding columns and official) — the resampler
				    * backward's input; NULL: not kept (computed internally when the
				    * resampler trains) */
};

/* Floats of dprobs: K·Σ_b H·R_b·n_images[b]·Q (R_b = 0 for samples without words). */
size_t lvd_lstep_mcv_dprobs_floats(const struct lvd_minicpmv *m, const struct lvd_lstep_mcv_in *in);
/* Floats of drprobs: NI·Hr·Q·Lmax of the batch. */
size_t lvd_lstep_mcv_drprobs_floats(const struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b);

/* One step (above). out gets the losses (struct lvd_lstep_out of lstep.h; ce from
 * lvd_minicpmv_loss); dparams (may be NULL) ACCUMULATES λ·∂L_att/∂θ_aligner; with
 * in->backward the model's gradients ACCUMULATE ∂total/∂θ_model (resampler and vision
 * excepted, see the hand-off). traces (may be NULL; else [B]) as lvd_lstep_run (a MiniCPM
 * rollout sample with slices has 2 views: lvd_latt_views). Errors: LVD_ERR_INVALID
 * naming the sample (words without rows, a row before the end of the sample's pictures or
 * beyond T, a sample with words but no pictures, a slice grid that does not match
 * n_images, a non-finite target value, layers / cfg mismatch, lvd_latt_sample_check's),
 * those of lvd_minicpmv_forward / _backward, LVD_ERR_NOMEM. */
int lvd_lstep_mcv_run(struct lvd_ctx *ctx, struct lvd_minicpmv *m, struct lvd_lstep_out *out, float *dparams,
		      struct lvd_latt_trace *traces, const struct lvd_lstep_mcv_in *in, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
