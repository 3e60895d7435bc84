/* lib/models/minicpmv/minicpmv_train.h — the LLM's training state shared by
 * minicpmv_text.c (forward, CE, capture, backward), minicpmv_lora.c (adapters) and
 * minicpmv_peft.c (adapter export); not a public header. */
#ifndef LVD_MODELS_MINICPMV_TRAIN_H
#define LVD_MODELS_MINICPMV_TRAIN_H

#include "models/llama_layer.h"
#include "models/minicpmv/minicpmv_internal.h"

#define MCV_NSITE 7      /* enum lvd_llama_site */
#define MCV_MAX_CAP 64   /* capture layers per forward */

struct mcv_tlayer {
	float *x_in;                   /* the layer's input [B·T, D] */
	struct lvd_llama_layer_a a;
	float *u[MCV_NSITE], *xd[MCV_NSITE];   /* LoRA saves */
	float *pfull;                  /* captured rows over all T keys [B, H, R_b, T] (ragged) */
	int capk;                      /* index into the capture list, -1 none */
};

struct mcv_train {
	/* activations of the last forward (tblock) */
	float *tblock;
	size_t tcap;
	int keep;                      /* per-layer activations kept (training forward) */
	int B, T, NI;
	struct mcv_tlayer *tl;         /* [t_layers] */
	float *norm_in, *norm_r, *normed;
	float *logits;                 /* [B·T, V]; with labels filled on demand (mcv_text_logits) */
	/* with labels the LM head and CE run on the S scored rows only (label != -100):
	 * their indices, labels, normed inputs [S, D] and logits [S, V]; lpend: the full
	 * logits are not filled yet */
	int S, lpend;
	int *srows, *slabels;
	float *normed_s, *logits_s;
	/* the last layer computes rows [r0, T) of each sample only (0: all rows; r0 > 0 only
	 * with labels and no LoRA dropout): norm_in and normed then hold B·(T − r0) rows, and a
	 * capture there reads cap_t (its rows shifted by −r0) */
	int r0;
	int *cap_rows_t;
	struct lvd_attn_capture cap_t;
	int *ids, *pos, *labels, *bound, *nimg;   /* copies of the batch ([BT], [T], [BT], [NI, 2], [B]) */
	float *resampled;              /* borrowed: the forward's resampler output */
	/* capture */
	int ncap, cap_layers[MCV_MAX_CAP];
	int *cap_rows, *cap_off;       /* copies */
	size_t ncap_rows;
	float *cprobs[MCV_MAX_CAP];    /* compact [H, R_b, NQ_b] per sample */
	size_t *cpoff;                 /* [B + 1] float offsets of the compact blocks */
	struct lvd_attn_capture cap;
	/* loss */
	double loss;
	int count;
	/* backward result */
	float *d_res;                  /* [NI, Q, D] */
	size_t d_res_cap;
	/* full gradients */
	float *gblock;
	size_t gsize;
	float *g_embed, *g_norm, *g_lm_head;
	struct lvd_llama_layer_g *gtl;
	/* LoRA */
	struct lvd_minicpmv_lora *lora;
	size_t nlora;
	struct lvd_minicpmv_lora **site;   /* [t_layers · MCV_NSITE] */
	float *lparams, *lgrads;
	size_t lsize;
	int lora_r, rslora, eval;
	float lora_s, lora_p, lora_alpha;
	float p_fwd;                   /* dropout of the last forward (0 in eval mode) */
	uint64_t lora_seed;
	int dropout_step;
	char lora_targets[256];
};

/* the logits of the last forward [B·T, V]: a labelled forward computes the scored rows
 * only; this fills the others (the LM head on their normed rows) on first call */
const float *mcv_text_logits(struct lvd_minicpmv *m);
/* the training state, created on first use (NULL: out of memory) */
struct mcv_train *mcv_train_get(struct lvd_minicpmv *m);
/* "llm.model.layers.%d.<...>" module of a site */
void mcv_site_module(char *out, size_t n, int layer, int site);

#endif
