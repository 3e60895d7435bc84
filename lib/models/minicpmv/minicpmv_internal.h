/* lib/models/minicpmv/minicpmv_internal.h — the model struct shared by the minicpmv
 * sources (not a public header): minicpmv_load.c (configuration, weights, context),
 * minicpmv_vision.c (vision tower and resampler on the ops of lib/nn/ops),
 * minicpmv_model.c (batch checks, the forward entry point), minicpmv_text.c (the LLM
 * forward and backward; its state in minicpmv_train.h). */
#ifndef LVD_MODELS_MINICPMV_INTERNAL_H
#define LVD_MODELS_MINICPMV_INTERNAL_H

#include "models/llama_layer.h"
#include "models/minicpmv/minicpmv.h"

struct mcv_vlayer {
	const float *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
	const float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
};
struct mcv_weights {
	/* vpm */
	const float *patch_w, *patch_b, *pos, *post_w, *post_b;
	struct mcv_vlayer *vl;
	/* resampler */
	const float *query, *kv_proj, *in_w, *in_b, *out_w, *out_b;
	const float *lnq_w, *lnq_b, *lnkv_w, *lnkv_b, *lnpost_w, *lnpost_b, *proj;
	/* llm */
	const float *embed, *norm, *lm_head;
	struct lvd_llama_layer_w *tl;   /* the decoder layers (lib/models/llama_layer.h) */
};

/* One vision layer's activations kept for backward while training (N rows): input,
 * LayerNorm outputs with their mean/rstd, q/k/v, attention stats and output, the
 * residual midpoint, MLP pre- and post-activation. */
struct mcv_vlayer_a {
	float *x_in, *ln1, *ln1_m, *ln1_r, *q, *k, *v, *stats, *att, *x_mid, *ln2, *ln2_m, *ln2_r, *h1, *h1g;
};

/* Activations of the vision tower and the resampler (minicpmv_vision.c) for NI pictures
 * of L = Lmax patches (N = NI·L rows). vl: per-layer activations while training
 * (lvd_minicpmv_vision_train; ln, q, k, v, att, h1, h1g are then not carved), else NULL
 * and the layers work in place on x, ln, q, ... (x: the last layer's output, always) */
struct mcv_vacts {
	/* vision */
	float *cols, *x, *ln, *q, *k, *v, *att, *tmp, *h1, *h1g, *vbias, *vstats, *vision, *vpost_m, *vpost_r;
	struct mcv_vlayer_a *vl;
	/* resampler */
	float *kv, *kvn, *kpos, *qn, *qp1, *rg, *ru, *ratt, *rout, *resampled, *probs;
	float *kv_m, *kv_r, *q_m, *q_r, *rpost, *post_m, *post_r;
	int *pos_ids, *npatch;   /* npatch[i]: picture i's real patches (the rest padding) */
};

struct mcv_vtrain;   /* vision/resampler training state (minicpmv_vision.c) */

struct lvd_st;

struct lvd_minicpmv {
	struct lvd_minicpmv_config c;
	struct lvd_st *st;            /* open while weights point into it */
	float *pblock;                /* converted weights */
	float *xblock;                /* weights replaced after loading (lvd_minicpmv_lora_load's
				       * modules_to_save), NULL when none */
	struct mcv_weights w;
	struct lvd_ctx *ctx, *own_ctx;
	/* last forward */
	int B, T, NI, Lmax;
	float *ablock;                /* activations of the last forward */
	size_t acap;                  /* floats in ablock */
	float *vision, *resampled, *probs, *logits;
	int *pos_ids;
	struct mcv_train *tr;         /* the LLM's activations, gradients, LoRA (minicpmv_train.h) */
	struct mcv_vacts va;          /* vision/resampler activations of the last forward */
	struct mcv_vtrain *vt;        /* NULL until lvd_minicpmv_vision_train */
	struct lvd_minicpmv_param *params; /* lvd_minicpmv_make_mutable: every weight, writable */
	size_t nparams;
	char *pnames;                 /* their names */
};

/* Every tensor the model reads (minicpmv_load.c): its hub name and shape, and the slot of
 * m->w that points at its fp32 data. mcv_weight_table fills t (NULL: only counts) in
 * checkpoint order (vpm, resampler, llm) and returns the count; m->w.vl / m->w.tl must
 * be allocated. */
struct mcv_wspec {
	char name[96];
	int ndim;
	int64_t shape[4];
	const float **dst;
};
size_t mcv_weight_table(struct lvd_minicpmv *m, struct mcv_wspec *t);

/* minicpmv_model.c: checks the batch and runs the vision tower and the resampler of its
 * pictures (m->vision, m->resampled, m->probs, m->pos_ids; NULL without pictures), the
 * first half of lvd_minicpmv_forward; generation (minicpmv_gen.c) runs it alone. Errors:
 * the batch checks' LVD_ERR_INVALID, LVD_ERR_NOMEM. */
int mcv_pictures_fwd(struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err);

/* the LLM forward (minicpmv_text.c): mcv_text_check validates the batch's training
 * fields (labels, capture) before anything runs; mcv_text_fwd: embeddings with resampled [NI, Q, D] scattered in,
 * the decoder layers, norm, lm_head, CE and the capture; sets m->logits. Keeps every
 * layer's activations when training. Errors: LVD_ERR_INVALID (labels, capture), NOMEM. */
int mcv_text_check(const struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err);
int mcv_text_fwd(struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, const float *resampled,
		 struct lvd_error *err);
void mcv_train_free(struct lvd_minicpmv *m);

/* Carves n floats (64-byte granules) from base at *off; with base NULL only measures. */
static inline float *mcv_take(float *base, size_t *off, size_t n)
{
	size_t o = *off;
	*off += (n + 15) & ~(size_t)15;
	return base ? base + o : (float *)0;
}

/* minicpmv_vision.c: carves (base NULL: measures) the vision and resampler activations
 * of NI pictures of L patches from base at *off; the forwards of a checked batch
 * (vision before resampler). */
void mcv_vision_carve(const struct lvd_minicpmv *m, struct mcv_vacts *a, float *base, size_t *off, int NI, int L);
void mcv_vision_fwd(struct lvd_minicpmv *m, struct mcv_vacts *a, const struct lvd_minicpmv_batch *b);
void mcv_resampler_fwd(struct lvd_minicpmv *m, struct mcv_vacts *a, const struct lvd_minicpmv_batch *b);
/* frees the vision/resampler training state (lvd_minicpmv_free) */
void mcv_vision_train_free(struct lvd_minicpmv *m);

#endif
