/* lib/models/minicpmv/minicpmv.h — MiniCPM-Llama3-V-2.5 ("minicpmv") on the CPU in fp32,
 * inference forward: configuration, the hub checkpoint layout (llm.*, vpm.*, resampler.*,
 * sharded safetensors, memory-mapped), the SigLIP/Idefics2 NaViT vision tower, the
 * resampler (its attention probabilities kept for the caller) and the Llama-3 decoder
 * with the picture features scattered into the input embeddings. Numerics follow the
 * hub's modeling_minicpmv.py / resampler.py on transformers 5.x (docs/minicpmv.md).
 * Training of the LLM (lvd_minicpmv_backward below): CE, full gradients or LoRA on its
 * linears, the gradient of the picture features, and the self-attention capture seam;
 * the vision tower and resampler train too (lvd_minicpmv_vision_backward, with the
 * resampler-probability gradient). The slicing processor and chat layout are
 * minicpmv_proc.h; the Lavender maps lib/lavender/mcv_maps.h.
 *
 * Shapes (PyTorch order): B samples, T tokens, NI pictures in all (a source image and
 * its slices are pictures alike), Lmax patches of the longest picture, n_i = th_i·tw_i
 * patches of picture i (tgt_sizes), Dv vision width, D text width, Q query_num,
 * Hr = D / 128 resampler heads, V vocabulary, ps patch side, C = 3 channels.
 *
 * MINICPMV_NOTES (matching the reference model's real outputs):
 *  - Pictures reach the vision tower as the hub processor makes them: a 1-patch-high
 *    strip [C, ps, n_i·ps] of the picture's patches in row-major patch order. The
 *    Idefics2 embedding therefore sees a 1×n_i grid: the position id of strip patch j is
 *    bucketize(j·(1/n_i), boundaries k/side, right) on the FIRST row of the side×side
 *    table (side = image_size / patch), not its 2-D grid cell.
 *  - Padded patches (j >= n_i) are masked as keys in every vision layer and in the
 *    resampler; their own vision rows are computed (zero pixels, position 0) but are not
 *    meaningful.
 *  - Resampler keys get the 2-D sin-cos table of the picture's real grid (th_i, tw_i):
 *    patch j at row j / tw_i, column j % tw_i; column half then row half. */
#ifndef LVD_MODELS_MINICPMV_H
#define LVD_MODELS_MINICPMV_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"
#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_minicpmv_config {
	/* vision (vision_config, an Idefics2VisionConfig) */
	int v_hidden, v_heads, v_inter;
	int v_layers;                 /* layers in use: num_hidden_layers minus the dropped last one */
	int v_layers_cfg;             /* num_hidden_layers as written */
	int v_image_size, v_patch, v_channels, v_side;   /* v_side = image_size / patch_size */
	int v_gelu_tanh;              /* hidden_act gelu_pytorch_tanh (1) or gelu (0) */
	float v_eps;
	int drop_vision_last_layer;
	/* resampler */
	int query_num, r_heads;       /* r_heads = hidden_size / 128 (hub code) */
	/* text (the top-level Llama config) */
	int vocab, t_hidden, t_heads, t_kv_heads, t_head_dim, t_inter, t_layers;
	float t_eps;
	double rope_theta;
	int rope_llama3;              /* rope_parameters/rope_scaling of type llama3 (not the release's) */
	double rope_factor, rope_low, rope_high, rope_orig_max;
	/* slicing (slice_config; read by the processor, minicpmv_proc.h) */
	int slice_mode, max_slice_nums, scale_resolution, slice_patch;
};

/* Reads config.json of a MiniCPM-V-2.5 folder (model_type "minicpmv"; the rotary
 * settings as lib/models/llama_rope.h reads them: default or llama3).
 * Errors (LVD_ERR_IO, LVD_ERR_FORMAT, LVD_ERR_INVALID, LVD_ERR_UNSUPPORTED) name the file
 * and the field. */
int lvd_minicpmv_config_load(struct lvd_minicpmv_config *cfg, const char *path, struct lvd_error *err);

struct lvd_minicpmv;  /* opaque */

/* Loads DIR/config.json and the weights (model.safetensors or the sharded
 * model.safetensors.index.json) with the hub's key names. F32 tensors whose bytes are
 * 4-byte aligned stay pointers into the read-only mapping (kept open until
 * lvd_minicpmv_free); F16/BF16/unaligned ones are converted once into one block.
 * Every expected tensor must be present with its shape (resampler.kv_proj.weight only
 * when the vision width differs from the text width, as the hub code builds it); other
 * keys are ignored. Errors name the folder and the tensor. The model runs on its own
 * one-thread CPU context until lvd_minicpmv_set_ctx. */
int lvd_minicpmv_load(struct lvd_minicpmv **out, const char *dir, struct lvd_error *err);
void lvd_minicpmv_free(struct lvd_minicpmv *m);
/* Borrow the caller's context (must outlive its use); NULL returns to the model's own. */
void lvd_minicpmv_set_ctx(struct lvd_minicpmv *m, struct lvd_ctx *ctx);
const struct lvd_minicpmv_config *lvd_minicpmv_cfg(const struct lvd_minicpmv *m);

/* One batch (all borrowed). Pictures are numbered 0..NI-1 over the whole batch; sample b
 * owns the next n_images[b] of them in order, and its k-th picture's Q features replace
 * the embeddings of tokens image_bound[i][0] .. image_bound[i][1] - 1 of sample b
 * (i its global number; each range exactly Q long, inside [0, T), ranges of a sample
 * disjoint). NI = 0: text only (pixel_values etc. may be NULL). */
struct lvd_minicpmv_batch {
	int B, T;
	const int *input_ids;         /* [B, T], in [0, V) */
	int NI, Lmax;
	const float *pixel_values;    /* [NI, C, ps, Lmax·ps] patch strips, zero beyond n_i·ps */
	const int *tgt_sizes;         /* [NI, 2]: (th_i, tw_i), 1 <= th·tw <= Lmax */
	const int *n_images;          /* [B], summing to NI */
	const int *image_bound;       /* [NI, 2] token ranges [start, end) */
	/* training (all may be NULL / 0) */
	const int *labels;            /* [B, T] CE targets ALIGNED with the logits: row t is scored
				       * against labels[t] with no shift (OpenBMB's dataset already
				       * shifted them); -100 ignored; mean over the kept rows */
	int n_cap_layers;             /* decoder layers whose text->image probabilities are kept */
	const int *cap_layers;        /* [n_cap_layers] distinct layer indices */
	const int *cap_rows, *cap_off;   /* query rows of sample b: cap_rows[cap_off[b] .. cap_off[b+1]) */
	int dropout_step;             /* mixed into the LoRA dropout seeds */
};

/* Forward (inference). Results stay valid until the next forward or free.
 * Errors: LVD_ERR_INVALID naming the bad field (ids out of range, a range not Q long or
 * outside the sample, counts that do not add up), LVD_ERR_NOMEM. */
int lvd_minicpmv_forward(struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b, struct lvd_error *err);
const float *lvd_minicpmv_logits(const struct lvd_minicpmv *m);           /* [B, T, V] */
/* vision tower output (after post_layernorm) [NI, Lmax, Dv]; padded rows see note above */
const float *lvd_minicpmv_vision(const struct lvd_minicpmv *m);
/* resampler output [NI, Q, D] (what is scattered into the embeddings) */
const float *lvd_minicpmv_resampled(const struct lvd_minicpmv *m);
/* resampler attention probabilities per head [NI, Hr, Q, Lmax]; padded keys exactly 0 */
const float *lvd_minicpmv_resampler_probs(const struct lvd_minicpmv *m);
/* vision position ids of the last forward [NI, Lmax] (0 on padded patches) */
const int *lvd_minicpmv_pos_ids(const struct lvd_minicpmv *m);

/* ---- training of the LLM (minicpmv_text.c, minicpmv_lora.c, minicpmv_peft.c) ----------
 * A forward with labels, a capture request, gradients enabled or LoRA added keeps every
 * decoder layer's activations for lvd_minicpmv_backward. */

/* CE of the last forward (mean over rows with labels != -100; 0 with none); *count the
 * kept rows (may be NULL). */
double lvd_minicpmv_loss(const struct lvd_minicpmv *m, int *count);

/* Capture seam. For batch.cap_layers[k], the softmax probabilities of the capture rows
 * over every image-token column of their sample: sample b's block [H, R_b, NQ_b]
 * (H text heads, R_b its capture rows in the listed order, NQ_b = n_images[b]·Q columns:
 * its image_bound ranges in picture order) starts at float lvd_minicpmv_cap_offset(m, b);
 * *n (may be NULL) = all floats. NULL when layer k was not captured. */
const float *lvd_minicpmv_cap_probs(const struct lvd_minicpmv *m, int k, size_t *n);
size_t lvd_minicpmv_cap_offset(const struct lvd_minicpmv *m, int b);

/* Full fine-tuning of the LLM: allocates (zeroed) gradients of every llm.* parameter
 * (LVD_ERR_NOMEM). Gradients ACCUMULATE over backwards; lvd_minicpmv_zero_grads zeroes
 * them and the LoRA gradients. Embedding rows at image_bound positions get none (their
 * embeddings are replaced); there is no padding_idx. */
int lvd_minicpmv_enable_grads(struct lvd_minicpmv *m, struct lvd_error *err);
void lvd_minicpmv_zero_grads(struct lvd_minicpmv *m);
/* The gradient of a parameter by its hub name ("llm.model.layers.0.self_attn.q_proj.weight",
 * "llm.model.embed_tokens.weight", "llm.lm_head.weight", ...); NULL if unknown or no grads.
 * *n (may be NULL) its floats. */
float *lvd_minicpmv_llm_grad(struct lvd_minicpmv *m, const char *name, size_t *n);

/* Backward of the last forward from its CE (when labels were given) plus, for each
 * capture layer k, dprobs[k] (may be NULL, as may dprobs): the gradient of
 * lvd_minicpmv_cap_probs(m, k) in the same layout. Accumulates parameter / LoRA gradients
 * and writes lvd_minicpmv_d_resampled. Errors: LVD_ERR_INVALID when the last forward kept
 * no activations. */
int lvd_minicpmv_backward(struct lvd_minicpmv *m, const float *const *dprobs, struct lvd_error *err);
/* The same with the CE gradient scaled by ce_scale (the Lavender step's CE schedule,
 * lib/lavender/lstep_mcv.h); ce_scale 1 is lvd_minicpmv_backward. */
int lvd_minicpmv_backward_scaled(struct lvd_minicpmv *m, float ce_scale, const float *const *dprobs,
				 struct lvd_error *err);
/* d loss / d resampled features [NI, Q, D] of the last backward (the rows of the input
 * embeddings at the image_bound ranges): the resampler backward's input. */
const float *lvd_minicpmv_d_resampled(const struct lvd_minicpmv *m);

/* LoRA on the LLM's linears (PEFT numerics; OpenBMB targets q_proj,k_proj,v_proj(,o_proj)). */
struct lvd_minicpmv_lora {
	char module[96];              /* "llm.model.layers.3.self_attn.q_proj" */
	int layer, site;              /* site: enum lvd_llama_site (0 q .. 6 down) */
	int in, out;
	float *A, *B, *dA, *dB;       /* [r, in], [out, r]; gradients ACCUMULATE */
};
struct lvd_minicpmv_lora_cfg {
	int r;
	float alpha, dropout;
	int rslora;
	const char *targets;          /* PEFT list form, comma-separated ("q_proj,k_proj,v_proj,o_proj") */
	uint64_t seed;                /* A init (B starts 0) and dropout masks */
};
/* Adds adapters on every llm.model.layers.N.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj}
 * the targets match. From then on backward gives LoRA gradients (and d_resampled), no
 * base gradients. Errors: LVD_ERR_INVALID (bad settings, no match, already added). */
int lvd_minicpmv_add_lora(struct lvd_minicpmv *m, const struct lvd_minicpmv_lora_cfg *cfg, struct lvd_error *err);
size_t lvd_minicpmv_nlora(const struct lvd_minicpmv *m);
struct lvd_minicpmv_lora *lvd_minicpmv_lora_at(struct lvd_minicpmv *m, size_t i);
/* Every adapter's A and B in one block (*n floats, 16-float padding between tensors stays
 * 0), and their gradients at the same offsets: an optimiser's or an all-reduce's view.
 * NULL and 0 before lvd_minicpmv_add_lora. */
float *lvd_minicpmv_lora_params(struct lvd_minicpmv *m, size_t *n);
float *lvd_minicpmv_lora_grads(struct lvd_minicpmv *m, size_t *n);
/* eval = 1: adapters without dropout */
void lvd_minicpmv_set_eval(struct lvd_minicpmv *m, int eval);

/* PEFT adapter folder (dir must exist; each file written atomically):
 * adapter_model.safetensors (F32) with "base_model.model.llm.model.layers.N.self_attn.
 * q_proj.lora_A.weight" ... and full copies of modules_to_save as PEFT 0.21 saves them
 * ("base_model.model.llm.model.embed_tokens.weight", "base_model.model.resampler.query",
 * ...: the modules_to_save.default infix removed), and adapter_config.json (LORA,
 * task_type null as OpenBMB's get_peft_model writes it, target_modules as a regex limited
 * to the LLM "(llm\\..*\\.)?(q_proj|...)" so PEFT puts no adapters on vpm, modules_to_save,
 * r, lora_alpha ...). modules_to_save: comma-separated, of "embed_tokens" and "resampler"
 * (NULL or "" for none; INVALID otherwise); their values are the model's current
 * weights. Errors name the file. */
int lvd_minicpmv_lora_save(struct lvd_minicpmv *m, const char *dir, const char *base_model_name,
			   const char *modules_to_save, struct lvd_error *err);

/* The LLM's gradient block (every llm.* gradient of lvd_minicpmv_enable_grads, one
 * allocation; *n floats): an all-reduce's view. NULL and 0 before enable_grads. */
float *lvd_minicpmv_llm_grad_block(struct lvd_minicpmv *m, size_t *n);

/* ---- full fine-tuning: writable weights (minicpmv_load.c) --------------------------
 * Every weight by hub name (vpm.*, resampler.*, llm.*, the loader's table order), its
 * data writable after lvd_minicpmv_make_mutable. */
struct lvd_minicpmv_param {
	const char *name;
	float *data;
	size_t n;
};
/* Copies every weight into one owned fp32 block and closes the read-only mapping, so an
 * optimiser can update the parameters in place; idempotent. Call it before
 * lvd_minicpmv_vision_train (whose parameter list keeps data pointers: LVD_ERR_INVALID
 * after it). Memory: all weights in fp32. Errors: LVD_ERR_NOMEM. */
int lvd_minicpmv_make_mutable(struct lvd_minicpmv *m, struct lvd_error *err);
/* The list (count returned; *out valid until lvd_minicpmv_free); 0 and NULL before
 * lvd_minicpmv_make_mutable. */
size_t lvd_minicpmv_params(const struct lvd_minicpmv *m, const struct lvd_minicpmv_param **out);
/* The training group of a tensor by its hub name (lvd-sft's --train, lvd-eval's reading of
 * its checkpoints): vpm.* the vision tower, resampler.* the resampler, the rest the LLM. */
enum { LVD_MINICPMV_VISION = 1, LVD_MINICPMV_RESAMPLER = 2, LVD_MINICPMV_LLM = 4 };
unsigned lvd_minicpmv_param_group(const char *name);

/* Loads a PEFT LoRA adapter folder onto a model without adapters (the counterpart of
 * lvd_minicpmv_lora_save; also what PEFT itself writes for OpenBMB's finetune.py):
 * DIR/adapter_config.json (peft_type LORA; r, lora_alpha, use_rslora; target_modules as
 * a list or a regex string, resolved against the LLM's llm.model.layers.N.{self_attn.
 * {q,k,v,o}_proj, mlp.{gate,up,down}_proj}; refused: use_dora, a non-empty rank_pattern /
 * alpha_pattern, layers_to_transform, targets that name other modules, e.g. vpm's) and
 * DIR/adapter_model.safetensors (keys "base_model.model.<module>.lora_A[.default].weight"
 * and lora_B, F32/F16/BF16; modules_to_save copies "base_model.model.llm.model.
 * embed_tokens.weight", "base_model.model.resampler.*" (also with ".modules_to_save.
 * default" / PEFT's infixes) REPLACE the model's weights). Adds the adapters (dropout 0)
 * and fills A and B; every adapter needs both. Call it before lvd_minicpmv_vision_train.
 * Errors name the file and the key or field: LVD_ERR_INVALID, LVD_ERR_IO, LVD_ERR_NOMEM. */
int lvd_minicpmv_lora_load(struct lvd_minicpmv *m, const char *dir, struct lvd_error *err);

/* Full-model export (minicpmv_save.c): the model as the hub's MiniCPM-Llama3-V-2.5
 * folder, loadable by lvd_minicpmv_load and by the hub's remote code: config.json (the
 * source folder's, its dtype keys set to the written dtype), the weights with the hub key
 * names (llm.*, vpm.*, resampler.*; the model's current values, so trained vision /
 * resampler / LLM weights as they are) with every LoRA adapter merged (W + s·B·A in
 * fp32), in shards dir/model-0000k-of-0000n.safetensors of at most max_shard_bytes each +
 * model.safetensors.index.json; copied verbatim from src_dir when present: the remote
 * code (*.py), tokenizer / processor / generation files. Written into dir.tmp and renamed;
 * a non-empty dir is refused unless replace. Errors name the folder or file. */
struct lvd_minicpmv_save_opts {
	const char *src_dir;          /* the folder the model was loaded from (config, code, tokenizer) */
	int bf16;                     /* 1: BF16 tensors, 0: F32 */
	uint64_t max_shard_bytes;     /* 0: 5 GB (5·10^9 bytes, transformers' "5GB") */
	int replace;                  /* 1: replace an existing dir */
};
int lvd_minicpmv_save_hf(struct lvd_minicpmv *m, const char *dir, const struct lvd_minicpmv_save_opts *o,
			 struct lvd_error *err);

/* ---- training: vision tower and resampler (minicpmv_vision.c) ----------------------
 * Every vpm.* and resampler.* parameter, by hub name: name, its data, its gradient
 * (NULL before lvd_minicpmv_vision_train), n floats. */
struct lvd_minicpmv_vparam {
	const char *name;
	const float *data;
	float *grad;
	size_t n;
};

/* Makes later forwards keep what the vision/resampler backward needs (every vision
 * layer's activations) and allocates zeroed gradients for every vpm.* and resampler.*
 * parameter (one block, lvd_minicpmv_vision_grad_block). tune_vision = 0 freezes the
 * vision tower (OpenBMB's tune_vision=False): its backward is skipped and only the
 * resampler gains gradients. Calling it again changes tune_vision and keeps the
 * gradients. Errors: LVD_ERR_NOMEM. */
int lvd_minicpmv_vision_train(struct lvd_minicpmv *m, int tune_vision, struct lvd_error *err);
void lvd_minicpmv_vision_zero_grads(struct lvd_minicpmv *m);
/* The parameter list (count returned, *out valid until lvd_minicpmv_free; 0 and NULL
 * before lvd_minicpmv_vision_train) and the gradient block (*n floats). */
int lvd_minicpmv_vision_params(const struct lvd_minicpmv *m, const struct lvd_minicpmv_vparam **out);
float *lvd_minicpmv_vision_grad_block(struct lvd_minicpmv *m, size_t *n);
/* Backward of the last forward's vision tower and resampler for a loss L whose
 * gradients are d_resampled = dL/d(resampled) [NI, Q, D] (from the LLM backward) and
 * d_probs = dL/d(resampler probabilities) [NI, Hr, Q, Lmax] (the rollout map's; padded
 * keys ignored); either may be NULL (zero). ACCUMULATES into the gradients. Padded
 * patches get no gradient (they are masked as keys everywhere, as in the forward); the
 * position table gains gradient on the rows the strips used. Needs a forward with
 * pictures after lvd_minicpmv_vision_train; errors (LVD_ERR_INVALID) say which is
 * missing; LVD_ERR_NOMEM. */
int lvd_minicpmv_vision_backward(struct lvd_minicpmv *m, const float *d_resampled, const float *d_probs,
				 struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
