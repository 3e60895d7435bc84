/* lib/models/minicpmv/minicpmv_internal.h — the model struct shared by the minicpmv
 * sources (not a public header): minicpmv_load.c (configuration, weights, context),
 * minicpmv_model.c (forward on the ops of lib/nn/ops), minicpmv_text.c (the LLM forward
 * and backward; its state in minicpmv_train.h). */
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

struct lvd_st;

struct lvd_minicpmv {
	struct lvd_minicpmv_config c;
	struct lvd_st *st;            /* open while weights point into it */
	float *pblock;                /* converted weights */
	struct mcv_weights w;
	struct lvd_ctx *ctx, *own_ctx;
	/* last forward */
	int B, T, NI, Lmax;
	float *ablock;                /* activations of the last forward */
	size_t acap;                  /* floats in ablock */
	float *vision, *resampled, *probs, *logits;
	int *pos_ids;
	struct mcv_train *tr;         /* the LLM's activations, gradients, LoRA (minicpmv_train.h) */
};

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

#endif
