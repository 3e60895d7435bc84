/* lib/models/mllama/mllama_internal.h — the model struct shared by the mllama sources
 * (not a public header). Call graph: mllama_model.c (batch, mask, loss, order) calls the
 * two towers mllama_vision.c and mllama_text.c, which are leaves; both use the LoRA
 * linear of mllama_lora.c; every computation is an op of lib/nn/ops on the model's
 * execution context m->ctx; mllama_load.c holds configuration, parameters, the context,
 * LoRA setup and saving. */
#ifndef LVD_MODELS_MLLAMA_INTERNAL_H
#define LVD_MODELS_MLLAMA_INTERNAL_H

#include "models/mllama/mllama.h"

/* linear sites per layer that may carry LoRA */
enum { L_Q, L_K, L_V, L_O, L_M1, L_M2, L_M3, L_NSITE };  /* M1 fc1|gate, M2 fc2|up, M3 down */

struct vlayer_w {
	float *ln1_w, *ln1_b, *q, *k, *v, *o, *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
	float *gate_attn, *gate_ffn;   /* NULL for local layers */
};
struct tlayer_w {
	int cross;
	float *ln1, *q, *k, *v, *o, *q_norm, *k_norm, *attn_gate, *mlp_gate, *ln2, *gate, *up, *down;
};
struct mllama_w {
	float *patch, *cls, *pos, *pos_gate, *tile_pos, *pre_tile, *pre_gate, *post_tile, *post_gate;
	float *ln_pre_w, *ln_pre_b, *ln_post_w, *ln_post_b;
	struct vlayer_w *vl;   /* v_layers + v_global_layers */
	float *proj_w, *proj_b, *embed;
	struct tlayer_w *tl;
	float *norm, *lm_head;
};

struct vlayer_a {
	float *x_in, *ln1, *ln1_m, *ln1_r, *q, *k, *v, *stats, *att, *o_out, *x_mid;
	float *ln2, *ln2_m, *ln2_r, *h1, *h1g, *m_out;
	float *u[L_NSITE], *xd[L_NSITE];
};
struct tlayer_a {
	float *x_in, *ln1, *ln1_r, *q, *k, *v, *qraw, *q_r, *kraw, *k_r, *stats, *capp, *att, *o_out, *x_mid;
	float *ln2, *ln2_r, *g, *up, *act, *m_out;
	float *u[L_NSITE], *xd[L_NSITE];
};

struct mllama_acts {
	/* vision (NV = B·M images, L = TL·Pp padded tokens) */
	float *cols, *patch_out, *h0, *lnpre_m, *lnpre_r, *local_out, *lnpost_m, *lnpost_r, *g_out;
	float *feats, *cross;        /* [NV, TL, P1, out_dim], [NV·TL·P1, Dt] */
	uint8_t *pad;                /* [NV, L] */
	struct vlayer_a *vl;
	/* text */
	float *x0, *norm_in, *norm_r, *normed, *logits, *xbias, *rowmask;   /* logits NULL with the fused head */
	double *lse;                 /* [B·T] the fused head's per-row log-sum-exp (NULL without it) */
	int *pos, *ids, *targets;
	int *cap_rows, *cap_off;     /* copies of the batch's capture lists (cap_off NULL: none) */
	size_t ncap;                 /* capture rows in all */
	struct tlayer_a *tl;
	/* floats of backward scratch the largest backward so far took from the ctx workspace */
	size_t bwd_len;
};

struct mllama_lora_site {
	struct lvd_mllama_lora *l;   /* NULL when the site carries no adapter */
};

struct lvd_st;
struct mllama_dev;   /* the device side (mllama_dev.c); NULL on a CPU model */

struct lvd_mllama {
	struct lvd_mllama_config c;
	struct lvd_st *st;           /* kept open by lvd_mllama_load_frozen (weights point into it) */
	int frozen;
	struct lvd_ctx *ctx;         /* the context every op runs on: own_ctx or borrowed (lvd_mllama_set_ctx) */
	struct lvd_ctx *own_ctx;     /* model-owned (lvd_mllama_set_threads; one thread at load) */
	float *pblock, *gblock;
	size_t ptotal;
	struct mllama_w w, g;        /* pointers into pblock / gblock (g all NULL without grads) */
	struct lvd_mllama_param *params;
	size_t nparams;
	/* LoRA */
	struct lvd_mllama_lora *lora;
	size_t nlora;
	float *lparams, *lgrads;     /* every A and B, contiguous (adapter order, A then B); their
				      * gradients at the same offsets */
	float *lopt;                 /* optimizer state: two fp32 moments per LoRA float (carved, unused) */
	size_t lsize;                /* floats in lparams (and lgrads; lopt holds 2·lsize) */
	int lora_r;
	float lora_s, lora_p, lora_alpha;
	unsigned frozen_groups;      /* LVD_MLLAMA_* groups without weight gradients (lvd_mllama_freeze) */
	float lora_p_train;          /* lora_p while lvd_mllama_set_eval(m, 1) holds it at 0 */
	int eval;
	int lora_rslora;
	char lora_targets[256];
	uint64_t lora_seed;
	struct mllama_lora_site *vsite, *tsite;   /* [layers][L_NSITE] */
	/* forward state */
	struct lvd_mllama_batch batch;   /* shapes + borrowed inputs of the last forward */
	int have_image, NV, P1, Pp, L, S, np;
	double loss;
	int loss_count;
	float *ablock;
	size_t acap;
	struct mllama_acts a;
	int fwd_done;
	/* training memory (lvd_mllama_set_recompute / _set_xent_chunk; next forward on) */
	enum lvd_mllama_recompute recompute;
	int xent_chunk;              /* > 0: fused LM head + CE over vocabulary chunks, no logits */
	enum lvd_mllama_recompute fwd_recompute;   /* those of the last forward (backward checks) */
	int fwd_xent_chunk;
	lvd_mllama_layer_hook layer_hook;   /* lvd_mllama_set_layer_hook */
	void *layer_hook_user;
	struct mllama_dev *dev;      /* lvd_mllama_to_device: weights, gradients, activations on ctx's device */
};

static inline void mllama_hook(struct lvd_mllama *m, enum lvd_mllama_layer_event ev, int l)
{
	if (m->layer_hook)
		m->layer_hook(m->layer_hook_user, ev, l);
}

/* vision (mllama_vision.c): activations (measure with base NULL; with
 * LVD_MLLAMA_RECOMPUTE_VISION the layers keep their inputs and share one region, and
 * the backward recomputes each layer before its own) */
size_t mllama_vision_acts(struct lvd_mllama *m, struct mllama_acts *a, float *base);
void mllama_vision_fwd(struct lvd_mllama *m);
/* dcross [NV·TL·P1, Dt] → parameter/LoRA gradients; scratch (mllama_vision_bwd_scratch
 * floats) from the ctx workspace */
void mllama_vision_bwd(struct lvd_mllama *m, const float *dcross, float *scratch);
size_t mllama_vision_bwd_scratch(const struct lvd_mllama *m);

/* text tower (mllama_text.c): activations (measure with base NULL; the recomputed
 * layers of m->recompute share one region), forward from the batch copies and cross
 * states to logits (to the normed hidden with the fused head), backward from dlogits or,
 * dlogits NULL, through the fused head (lvd_lmhead_xent_bwd with hscale; 0: no loss
 * gradient), recomputing the recomputed layers first; returns dcross [NV·TL·P1, Dt]
 * inside scratch (NULL without images) */
size_t mllama_text_acts(struct lvd_mllama *m, struct mllama_acts *a, float *base);
void mllama_text_fwd(struct lvd_mllama *m);
size_t mllama_text_bwd_scratch(const struct lvd_mllama *m);
const float *mllama_text_bwd(struct lvd_mllama *m, const float *dlogits, float hscale, const float *const *dprobs,
			     float *scratch);

/* generation (mllama_model.c, used by mllama_gen.c): batch check + shape + vision tower
 * only; m->a.cross valid after (when the batch has images) */
int mllama_vision_prepare(struct lvd_mllama *m, const struct lvd_mllama_batch *b, struct lvd_error *err);

/* device side (mllama_dev.c; every function is a no-op or a pass-through on a CPU model,
 * m->dev NULL): mllama_dev_batch copies the batch's tensors (pixels, tile mask, cross
 * mask) to the device and repoints m->batch at them (aspect_ratio_ids, labels and the
 * capture lists stay host arrays: the ops take them from the host); mllama_dev_put_i
 * writes n host ints to dst, filled in the host array mllama_dev_stage_i gives (dst
 * itself on a CPU model, a staging area otherwise) (an upload on the device, a plain copy otherwise);
 * mllama_dev_host_ids is the host copy of the last forward's input ids; mllama_dev_freq
 * the RoPE inverse frequencies on the device (NULL on the CPU); mllama_dev_mirror a host
 * copy of n device floats, refreshed once per forward (slot: which mirror);
 * mllama_dev_dprobs uploads the host dprobs list into the ctx workspace (the caller
 * releases it); mllama_dev_free gives every device buffer back. */
enum { MLLAMA_MIRROR_LOGITS, MLLAMA_MIRROR_FEATS, MLLAMA_MIRROR_CROSS, MLLAMA_MIRROR_PROBS /* + k */ };
int mllama_dev_batch(struct lvd_mllama *m, struct lvd_error *err);
int *mllama_dev_stage_i(struct lvd_mllama *m, int *dst, size_t n);
void mllama_dev_put_i(struct lvd_mllama *m, int *dst, const int *src, size_t n);
const int *mllama_dev_host_ids(const struct lvd_mllama *m);
const float *mllama_dev_freq(const struct lvd_mllama *m);
/* W as its bf16 storage when W is a bf16 weight of a device model, else NULL */
const uint16_t *mllama_dev_w16(const struct lvd_mllama *m, const float *W);
const float *mllama_dev_mirror(const struct lvd_mllama *m, int slot, const float *src, size_t n);
const float *const *mllama_dev_dprobs(struct lvd_mllama *m, const float *const *dprobs);
void mllama_dev_free(struct lvd_mllama *m);
/* the activation block where ctx computes: grown, never shrunk (host or device memory) */
void mllama_acts_free(struct lvd_mllama *m);
/* repoints m->w at params[].data and m->g at the gradient block (mllama_load.c) */
void mllama_rebind(struct lvd_mllama *m);
/* closes a frozen load's weight file mapping (nothing points into it any more) */
void mllama_close_mapping(struct lvd_mllama *m);

/* a linear with optional LoRA, used by both towers (mllama_lora.c) */
void mllama_lin_fwd(struct lvd_mllama *m, float *out, float *u, float *xd, const float *x, const float *W,
		    const float *b, const struct lvd_mllama_lora *l, int N, int IC, int OC, uint64_t site_seed);
void mllama_lin_bwd(struct lvd_mllama *m, float *dx, float *dW, float *db, const float *dout, const float *x,
		    const float *W, const float *u, const float *xd, struct lvd_mllama_lora *l, int N, int IC, int OC,
		    uint64_t site_seed);
int mllama_train_base(const struct lvd_mllama *m);
/* canonical (v4.45) parameter name -> the transformers >= 4.52 on-disk name
 * ("model.language_model.*", "model.vision_model.*", "model.multi_modal_projector.*",
 * "lm_head.*") (mllama_load.c) */
void mllama_hf_name(char *out, size_t n, const char *canon);

/* Carves n floats (64-byte granules) from base at *off; with base NULL only measures. */
static inline float *mllama_take(float *base, size_t *off, size_t n)
{
	size_t o = *off;
	*off += (n + 15) & ~(size_t)15;
	return base ? base + o : (float *)0;
}

#endif
