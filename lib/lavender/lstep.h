/* lib/lavender/lstep.h — one Lavender model+loss step on mllama: the unit the trainer
 * calls per micro-batch.
 *
 *   total = ce_scale·CE + λ·L_att
 *
 * lvd_lstep_run (1) hands the batch to lvd_mllama_forward with capture rows = each
 * sample's plan rows (lvd_latt_plan_from_packrec: the sorted distinct query positions of
 * its matched words), (2) reads the captured cross-attention probabilities of every cross
 * layer (lvd_mllama_xattn_probs: ragged [B, H, R_b, S], sample b's block [H, R_b, S] is
 * exactly the [H, R, S] buffer lib/lavender/latt.h takes), (3) computes L_att per sample
 * with lvd_latt_sample_loss (captured layer k = the model's k-th cross layer) and, when
 * asked for gradients, its gradient λ·∂L_att/∂P into a dprobs buffer of the same ragged
 * layout and λ·∂L_att/∂θ_aligner into dparams, (4) runs lvd_mllama_backward(ce_scale,
 * dprobs), which adds the CE gradient and the injected probability gradient into the
 * model's (LoRA or full) gradients.
 *
 * Dimension letters: B batch, T tokens, H text heads (= the Aligner's d_in), R_b capture
 * rows of sample b, RC = Σ R_b, S = M·TL·P1 vision tokens per sample (images × tile slots
 * × tokens per tile), Lc = the model's cross layers (cfg->n_captured).
 *
 * Gradients ACCUMULATE (dparams, the model's gradients); the caller zeroes them between
 * optimizer steps (lvd_mllama_zero_grads). Memory: RC·H·S·Lc floats of dprobs (the
 * caller's buffer or malloc'd per call) and latt's work memory from ctx's workspace. */
#ifndef LVD_LAVENDER_LSTEP_H
#define LVD_LAVENDER_LSTEP_H

#include "core/error.h"
#include "lavender/latt.h"
#include "models/mllama/mllama.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_ctx;

struct lvd_lstep_in {
	const struct lvd_mllama_batch *batch;  /* its cap_rows / cap_off are ignored (replaced by
					        * the plans' rows) */
	const struct lvd_latt_plan *plans;     /* [B], sample b's plan (lvd_lstep_plan); R = 0 or
					        * W = 0: no Lavender term for that sample */
	const float *params;                   /* Aligner parameter block (lvd_aligner_layout) */
	const struct lvd_latt_cfg *cfg;        /* cfg->n_captured = the model's cross layers,
					        * cfg->aligner.d_in = its text heads */
	double pair_count;                     /* matched (sample, word) pairs of the global
					        * batch; <= 0: the matched words of these plans */
	float lambda;                          /* λ_t (lvd_latt_sched_at) */
	float ce_scale;                        /* CE scale (lvd_latt_sched_at) */
	int backward;                          /* 0: forward and loss only (eval) */
	/* Word keys. NULL: the rows are the plans' query rows (the pack's positions, the
	 * default). Else the official keys (AstraZeneca/vlm; ../shared/reference/lavender.md
	 * §1.4): key_str is a table [key_n] of strings, one per vocabulary id (the id decoded
	 * alone, special tokens skipped, whitespace stripped; lvd_lstep_key_table), every row
	 * t < plan.T of a sample with words is captured, and row t belongs to the plan word
	 * whose key equals key_str[argmax_v logits[b, t, v]] (case-sensitive; "" never
	 * matches; the first maximum on ties, as torch.argmax). Words that no row predicts
	 * are dropped for this step; pair_count <= 0 then means the pairs matched here. */
	const char *const *key_str;
	int key_n;                             /* entries of key_str (>= the model's V) */
	float *dprobs;                         /* optional, with backward: a caller buffer of
					        * lvd_lstep_dprobs_floats() floats (else malloc'd
					        * per call); on return [Lc] blocks of ragged
					        * [B, H, R_b, S] (lvd_mllama_xattn_probs layout)
					        * holding λ·∂L_att/∂P, the gradient injected into
					        * the model's backward */
};

struct lvd_lstep_out {
	double ce;        /* mean CE of the batch (lvd_mllama_loss; 0 without labels) */
	double latt;      /* L_att contribution of these samples (Σ mse / pair_count) */
	double total;     /* ce_scale·ce + lambda·latt */
	int n_pairs;      /* matched words seen here */
	double pair_count;/* the divisor used */
};

/* Fills *p from a pack record for image `img` (0-based, < M) of a sample whose batch
 * holds M images per sample, with the model's geometry: heads = t_heads, tile_tok =
 * (v_image_size/v_patch)² + 1, S = M·v_max_tiles·tile_tok, tok0 = img·v_max_tiles·tile_tok,
 * max_tiles = v_max_tiles; official as lvd_latt_plan_from_packrec. Errors as that
 * function (LVD_ERR_INVALID naming the record's field, LVD_ERR_NOMEM); free with
 * lvd_latt_plan_free also after a failure. */
int lvd_lstep_plan(struct lvd_latt_plan *p, const struct lvd_mllama *m, const struct lvd_packrec *rec, int M,
		   int img, int official, struct lvd_error *err);

/* Floats of the dprobs buffer for a batch of B samples with M images each and these
 * plans: Lc·RC·H·S (RC = Σ R_b over plans with words; with official keys R_b = plan.T:
 * pass keys = 1). */
size_t lvd_lstep_dprobs_floats(const struct lvd_mllama *m, const struct lvd_latt_plan *plans, int B, int M,
			       int keys);

struct lvd_llama_tok; /* text/llama_tok.h */

/* The official key table: *out[id] = tokenizer.decode([id], skip_special_tokens=True)
 * with Python's str.strip() (Unicode whitespace) applied, for every id < *n (the
 * tokenizer's vocabulary including its special tokens, which give ""). Free with
 * lvd_lstep_key_table_free. LVD_ERR_NOMEM. */
int lvd_lstep_key_table(const struct lvd_llama_tok *tok, char ***out, int *n, struct lvd_error *err);
void lvd_lstep_key_table_free(char **t, int n);

/* One step (above). out gets the losses; dparams (may be NULL) ACCUMULATES λ·∂L_att/∂θ;
 * with in->backward the model's gradients ACCUMULATE ∂total/∂θ_model. traces (may be
 * NULL; else [B], entries' NULL fields skipped) get each sample's intermediates
 * (lvd_latt_trace; a sample without words or rows is not written). The model keeps the forward's activations and captured
 * probabilities (lvd_mllama_xattn_probs) until its next forward. Errors:
 * LVD_ERR_INVALID (a plan that does not fit the batch or the model: heads, S, rows
 * beyond T, cfg), those of lvd_mllama_forward / _backward, LVD_ERR_NOMEM. */
int lvd_lstep_run(struct lvd_ctx *ctx, struct lvd_mllama *m, struct lvd_lstep_out *out, float *dparams,
		  struct lvd_latt_trace *traces, const struct lvd_lstep_in *in, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
