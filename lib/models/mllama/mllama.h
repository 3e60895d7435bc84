/* lib/models/mllama/mllama.h — Llama-3.2-Vision ("mllama") on the CPU in fp32:
 * configuration, weight loading from a Hugging Face folder, forward with loss and
 * cross-attention probability capture, backward (full or LoRA), and the image
 * processor (MllamaImageProcessor). Numerics follow transformers 5.x (HF), including
 * its cross-attention row masking (see MLLAMA_NOTES below).
 *
 * Shapes (PyTorch order): B batch, T text tokens, M images per sample, TL tiles per
 * image (max_num_tiles), P1 tokens per tile (patches + CLS), S = M·TL·P1 vision tokens
 * per sample, V vocabulary (lm_head rows), D widths.
 *
 * MLLAMA_NOTES: HF multiplies only the cross-attention MLP branch by the
 * full-text-row mask; Meta's reference also masks the attention output of rows that see
 * no image (transformers issue 39379). `meta_row_mask` in lvd_mllama_batch selects
 * Meta's behaviour. Rows without any visible image get an all-zero bias (plain softmax
 * over every key), as HF does. Vision intermediate features are the *outputs* of the
 * local layers named in intermediate_layers_indices (transformers 5.x). */
#ifndef LVD_MODELS_MLLAMA_H
#define LVD_MODELS_MLLAMA_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"
#include "models/gen_loop.h"   /* struct lvd_gen_opts (generation) */
#include "nn/ctx.h"   /* enum lvd_dtype */

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_MLLAMA_MAX_LIST 64

struct lvd_mllama_config {
	/* vision */
	int v_hidden, v_heads, v_inter, v_layers, v_global_layers;
	int v_image_size, v_patch, v_max_tiles, v_channels;
	int v_n_inter, v_inter_idx[LVD_MLLAMA_MAX_LIST], v_out_dim;
	float v_eps;
	int n_aspect, aspect[LVD_MLLAMA_MAX_LIST][2];   /* (tiles_high, tiles_wide); id = index + 1 */
	/* text */
	int vocab, n_embed;                           /* lm_head rows; embed_tokens rows (vocab + 8) */
	int t_hidden, t_heads, t_kv_heads, t_head_dim, t_inter, t_layers;
	int n_cross, cross_layers[LVD_MLLAMA_MAX_LIST];
	float t_eps;
	double rope_theta, rope_factor, rope_low, rope_high, rope_orig_max;
	int rope_llama3;
	int image_token_index;
	int pad_token_id;                             /* embedding padding_idx (no gradient); -1 if none */
};

/* Reads config.json (an HF MllamaConfig; both rope_scaling and rope_parameters forms;
 * vision_config.supported_aspect_ratios when present, else the list of
 * lvd_mllama_aspect_ratios(max_num_tiles)) through lib/io/json.h. Errors name the file and
 * the field. */
int lvd_mllama_config_load(struct lvd_mllama_config *cfg, const char *path, struct lvd_error *err);

/* One named parameter: canonical name = the on-disk v4.45 name
 * ("language_model.model.layers.3.cross_attn.q_proj.weight", "vision_model....").
 * data/grad point into the model's parameter and gradient blocks. */
struct lvd_mllama_param {
	char name[128];
	int ndim;
	int64_t shape[4];
	size_t numel;
	enum lvd_dtype dtype;       /* of data (and grad): LVD_F32; LVD_BF16 for the frozen weights of
				     * lvd_mllama_to_device with w16 (data then holds bf16 values) */
	float *data, *grad;
};

/* One LoRA adapter on a linear layer (module = dotted on-disk module name). */
struct lvd_mllama_lora {
	char module[128];
	int in, out;
	enum lvd_dtype dtype;       /* of A, B, dA, dB: LVD_F32 */
	float *A, *B, *dA, *dB;     /* [r, in], [out, r] in the parameter block, dA/dB at the same
				     * offsets in the gradient block (lvd_mllama_lora_params/grads) */
};

struct lvd_mllama_lora_cfg {
	int r;
	float alpha;
	float dropout;
	int rslora;
	const char *targets;        /* comma-separated suffixes, PEFT list form ("q_proj,v_proj") */
	uint64_t seed;              /* A init and dropout masks */
};

struct lvd_mllama;  /* opaque */

/* Loads config.json and the weights (model.safetensors[.index.json]) of an HF folder.
 * Both key schemes are accepted ("language_model.model.*"/"vision_model.*" and the newer
 * "model.language_model.*"/"model.vision_model.*"/"lm_head.*"). Weights are converted to
 * one fp32 parameter block (mutable, for training); the file mapping is closed after. */
int lvd_mllama_load(struct lvd_mllama **out, const char *dir, struct lvd_error *err);
/* The same for a frozen base (LoRA training, inference): F32 weights whose bytes in the
 * file are 4-byte aligned stay pointers into the read-only safetensors mapping (kept
 * open until lvd_mllama_free), the others (F16/BF16, unaligned) are converted once into
 * a block holding only them. Parameter data may then be read-only memory: do not write
 * it; lvd_mllama_enable_grads fails (LVD_ERR_INVALID); LoRA works as with
 * lvd_mllama_load. Errors as lvd_mllama_load. */
int lvd_mllama_load_frozen(struct lvd_mllama **out, const char *dir, struct lvd_error *err);
/* A model from DIR/config.json alone, every parameter zero (mutable, as lvd_mllama_load):
 * the table an initialiser fills (lvd-sft init) before writing the weights. Errors as
 * lvd_mllama_load without the weight ones. */
int lvd_mllama_create(struct lvd_mllama **out, const char *dir, struct lvd_error *err);
/* A model from DIR/config.json alone with the parameter table (names, shapes) but no
 * parameter memory (every data pointer NULL; frozen, as lvd_mllama_load_frozen): for
 * lvd_mllama_add_lora + lvd_mllama_measure of a configuration too large to hold (the
 * memory planner, lib/train/plan.h). Never run it. Errors as lvd_mllama_create. */
int lvd_mllama_create_shape(struct lvd_mllama **out, const char *dir, struct lvd_error *err);
void lvd_mllama_free(struct lvd_mllama *m);
/* Execution context. Every op of the model runs on one struct lvd_ctx (lib/nn/ctx.h):
 * its thread pool, BLAS policy and workspace (the backward scratch is taken from the
 * workspace). At load the model owns a one-thread CPU context.
 * lvd_mllama_set_ctx: borrow the caller's context (not freed by the model; it must
 * outlive the model or be replaced first); NULL goes back to the model-owned one.
 * lvd_mllama_set_threads: convenience for callers without a context: replaces the
 * model-owned context by one with n CPU threads and uses it. Results are bitwise
 * independent of the thread count except where a GEMM's split varies with it.
 * Errors: LVD_ERR_INVALID (n < 1 or > 1024), those of lvd_ctx_create. */
void lvd_mllama_set_ctx(struct lvd_mllama *m, struct lvd_ctx *ctx);
int lvd_mllama_set_threads(struct lvd_mllama *m, int n, struct lvd_error *err);
/* The context the model runs on now (borrowed or model-owned). */
struct lvd_ctx *lvd_mllama_ctx(const struct lvd_mllama *m);
const struct lvd_mllama_config *lvd_mllama_cfg(const struct lvd_mllama *m);

/* The model on a device context (mllama_dev.c; meant for CUDA, a CPU context gives the
 * same code path on a second host copy, for tests): every parameter, the full gradients
 * (lvd_mllama_enable_grads) or the LoRA blocks (parameters, gradients, optimizer moments)
 * are copied into device memory of ctx, in fp32, and the host copies freed (a frozen
 * load's file mapping is closed); the model then runs on ctx (borrowed: it must outlive
 * the model; lvd_mllama_set_ctx and set_threads are refused from then on). Call it after
 * lvd_mllama_enable_grads / add_lora / lora_load / freeze and before the first forward.
 * Afterwards the parameter table's data/grad, the LoRA A/B/dA/dB and the blocks of
 * lvd_mllama_param_block, grad_block, lora_params, lora_grads and lora_opt_state are
 * device pointers (read them with lvd_buf_download on ctx; an optimizer steps them
 * with the dispatching lvd_adamw_step on ctx). lvd_mllama_forward and backward take
 * host batches and host dprobs as before (the inputs are uploaded once per forward, the
 * dprobs per backward); lvd_mllama_logits, vision_features, cross_states and xattn_probs
 * return host copies downloaded at most once per forward. Not on a device model (they
 * return LVD_ERR_INVALID): generation, lvd_mllama_save_hf, lora_save, enable_grads and
 * add_lora. Errors: LVD_ERR_INVALID (no context, already moved, shape-only
 * model), LVD_ERR_NOMEM (device memory; the model is unchanged). The ops then run on
 * ctx's backend (docs/gpu.md "mllama training"); opts NULL: every weight fp32. */
struct lvd_mllama_dev_opts {
	/* 1: LoRA training (adapters added, no full gradients): every base linear weight
	 * (q/k/v/o, MLP, patch embedding, projector, lm_head) is stored in bf16 only, its
	 * products lvd_linear_fwd_w16 / lvd_linear_bwd_w16 (the input rounded to bf16, fp32
	 * sums); its table entry gets dtype LVD_BF16 and data pointing at the bf16 values.
	 * Embeddings, norms, gates, biases, LoRA and everything trained stay fp32. Ignored
	 * with full gradients (fp32 master weights). 0: every weight fp32. */
	int w16;
};
int lvd_mllama_to_device(struct lvd_mllama *m, struct lvd_ctx *ctx, const struct lvd_mllama_dev_opts *opts,
			 struct lvd_error *err);
/* 1 after lvd_mllama_to_device. */
int lvd_mllama_on_device(const struct lvd_mllama *m);

/* Parameter table (stable order); lookup by canonical name (NULL when absent). */
size_t lvd_mllama_nparams(const struct lvd_mllama *m);
struct lvd_mllama_param *lvd_mllama_param_at(struct lvd_mllama *m, size_t i);
struct lvd_mllama_param *lvd_mllama_param_find(struct lvd_mllama *m, const char *name);

/* Gradients: allocate (zeroed) the full-parameter gradient block; zero all gradients
 * (parameters and LoRA). */
int lvd_mllama_enable_grads(struct lvd_mllama *m, struct lvd_error *err);
void lvd_mllama_zero_grads(struct lvd_mllama *m);
/* The parameter block and the full-parameter gradient block of a model loaded with
 * lvd_mllama_load: every parameter's data (grad) lies inside, at the same offset in both
 * (parameters in table order, each starting on a 64-byte boundary; padding floats stay
 * 0), so one all-reduce over the gradient block covers every gradient. *n = floats; the
 * gradient block is NULL before lvd_mllama_enable_grads, both are NULL for
 * lvd_mllama_load_frozen (its mapped weights are not one block). */
float *lvd_mllama_param_block(struct lvd_mllama *m, size_t *n);
float *lvd_mllama_grad_block(struct lvd_mllama *m, size_t *n);

/* Adds LoRA adapters on every linear whose module name matches cfg->targets (q/k/v/o,
 * vision fc1/fc2, text gate/up/down). From then on backward only computes LoRA grads.
 * A is kaiming-uniform, B zero (PEFT init). */
int lvd_mllama_add_lora(struct lvd_mllama *m, const struct lvd_mllama_lora_cfg *cfg, struct lvd_error *err);
size_t lvd_mllama_nlora(const struct lvd_mllama *m);
struct lvd_mllama_lora *lvd_mllama_lora_at(struct lvd_mllama *m, size_t i);
int lvd_mllama_lora_rank(const struct lvd_mllama *m);
/* The LoRA parameters as ONE contiguous block (every adapter's A then B, in adapter
 * order, each matrix starting on a 64-byte boundary; the few padding floats stay 0), the
 * gradients as another with the same layout (an optimizer or an all-reduce works on the
 * whole block), and the optimizer state: two fp32 moments per parameter float
 * ([2, n]: first moments, then second; zeroed, not used by the model). *n = floats
 * (2·floats for the state); NULL before lvd_mllama_add_lora. Owned by the model. */
float *lvd_mllama_lora_params(struct lvd_mllama *m, size_t *n);
float *lvd_mllama_lora_grads(struct lvd_mllama *m, size_t *n);
float *lvd_mllama_lora_opt_state(struct lvd_mllama *m, size_t *n);
/* Writes a PEFT-loadable adapter folder: dir/adapter_model.safetensors (F32) and
 * dir/adapter_config.json (LORA, CAUSAL_LM, r, lora_alpha, lora_dropout, target_modules,
 * base_model_name_or_path ...), each written atomically; dir must exist. Keys are
 * "base_model.model.<module>.lora_{A,B}.weight" with the module named as transformers
 * >= 4.52 builds the model ("model.language_model.layers.3.cross_attn.q_proj",
 * "model.vision_model.transformer.layers.0.self_attn.v_proj"), which is what PEFT 0.21
 * with transformers 5 loads (it does not map old-style vision keys); legacy_names = 1
 * writes the on-disk v4.45 names for older transformers. */
int lvd_mllama_lora_save(struct lvd_mllama *m, const char *dir, const char *base_model_name, int legacy_names,
			 struct lvd_error *err);

/* Loads a PEFT LoRA adapter folder (ours or one PEFT wrote) for inference: r,
 * lora_alpha, use_rslora and target_modules (a list; a regex string is refused) from
 * dir/adapter_config.json, lvd_mllama_add_lora with them (dropout 0), then A and B of
 * every adapter from dir/adapter_model.safetensors ("base_model.model.<module>.lora_{A,B}
 * .weight", module named either way; F32/F16/BF16). Every key must be a LoRA weight of a
 * targeted module and every adapter must get both matrices. Errors name the file and the
 * key (LVD_ERR_INVALID, LVD_ERR_NOTFOUND, LVD_ERR_IO); LoRA already added: INVALID. */
int lvd_mllama_lora_load(struct lvd_mllama *m, const char *dir, struct lvd_error *err);

/* Writes the model as a complete transformers folder into dir: config.json (the source
 * folder's, its dtype keys set to the written dtype), the weights with transformers'
 * key names (model.language_model.*, model.vision_model.*, model.multi_modal_projector.*,
 * lm_head.*; what lvd_mllama_load and MllamaForConditionalGeneration read) in shards
 * dir/model-0000k-of-0000n.safetensors of at most max_shard_bytes each (a tensor larger
 * than that gets a shard of its own) + model.safetensors.index.json, and, copied verbatim
 * when present in src_dir: tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, preprocessor_config.json, chat_template.json,
 * chat_template.jinja, generation_config.json. Every LoRA adapter is merged:
 * W + s·B·A (s = alpha/r, or alpha/sqrt(r) with rslora; products in double, rounded to
 * fp32, then to bf16 when asked). Written into dir.tmp and renamed to dir (trailing
 * slashes ignored, parent folders created); an existing dir is refused unless it is empty
 * or replace is set (it is then swapped out and removed). Memory: one shard's converted tensors. Errors: LVD_ERR_INVALID (dir),
 * LVD_ERR_FORMAT (config.json), LVD_ERR_IO naming the file, LVD_ERR_NOMEM. */
struct lvd_mllama_save_opts {
	const char *src_dir;            /* the folder the model was loaded from (config, tokenizer) */
	int bf16;                       /* 1: BF16 tensors, 0: F32 */
	uint64_t max_shard_bytes;       /* 0: 5 GB (5·10^9 bytes, transformers' "5GB") */
	int replace;                    /* 1: replace an existing dir (the trainer's RUN/final) */
};
int lvd_mllama_save_hf(struct lvd_mllama *m, const char *dir, const struct lvd_mllama_save_opts *o,
		       struct lvd_error *err);

/* Parameter groups (full fine-tuning of a subset): the vision tower (vision_model.*),
 * the projector (multi_modal_projector.*), the cross-attention decoder layers (every
 * parameter of language_model.model.layers.L for L in cross_attention_layers) and the rest
 * of the language model (embeddings, self-attention layers, final norm, lm_head). */
enum {
	LVD_MLLAMA_VISION = 1, LVD_MLLAMA_PROJECTOR = 2, LVD_MLLAMA_TEXT = 4, LVD_MLLAMA_CROSS = 8,
	LVD_MLLAMA_ALL_GROUPS = 15,
};
/* The group of a parameter by its canonical name. */
unsigned lvd_mllama_param_group(const struct lvd_mllama_config *c, const char *name);
/* Full gradients: backward computes no weight gradients for the groups in `frozen`
 * (they stay as they are, zero after lvd_mllama_zero_grads) and skips the vision tower's
 * backward when vision is frozen (the whole vision backward when the projector is
 * too). Input gradients still flow through frozen layers to the trained ones, so the
 * other gradients are unchanged. 0 (default) computes every gradient. No effect on
 * LoRA gradients. */
void lvd_mllama_freeze(struct lvd_mllama *m, unsigned frozen);

/* Training memory (issue #20); each takes effect at the next lvd_mllama_forward (a
 * backward after a change without a new forward fails: LVD_ERR_INVALID) and in
 * lvd_mllama_measure.
 * Activation checkpointing of the text decoder: NONE (default) keeps every layer's
 * activations for backward; XATTN keeps, of each gated cross-attention layer, only its
 * input and its captured probabilities and runs the layer's forward again right before
 * its backward (the cross layers hold the K/V of every vision token: B·S·KV floats three
 * times, plus LoRA's on k/v); ALL does so for every decoder layer. The recomputed layers
 * share one region the size of the largest of them. Results are bit-identical to NONE
 * (the same ops on the same inputs; LoRA dropout masks are seeded per step and site, not
 * drawn). The probabilities lvd_mllama_xattn_probs returns are the forward's; the
 * recomputation writes its own to scratch and, on a CPU context, asserts they equal
 * those bit for bit: the probabilities a Lavender loss read are exactly the ones the
 * backward differentiates (no stale maps; ../shared/reference/lavender.md). Cost: one
 * more forward of the recomputed layers per backward.
 * The vision tower: the flag VISION, or'ed onto any of the three, does the same for its
 * local and global encoder layers (each keeps its input — so the intermediate-layer
 * outputs the projector concatenates stay, they are later layers' inputs — and the
 * recomputed ones share one region). At Llama-3.2-11B-Vision dimensions a vision layer
 * keeps ~0.6–0.7 GiB of fp32 activations per 4-tile image and its input 31 MiB. When no
 * vision-layer gradient is wanted (no vision LoRA sites and no trained vision tower:
 * lvd_mllama_backward stops at the projector) nothing is recomputed and VISION only
 * saves the memory, for free. */
enum lvd_mllama_recompute {
	LVD_MLLAMA_RECOMPUTE_NONE = 0,
	LVD_MLLAMA_RECOMPUTE_XATTN = 1,
	LVD_MLLAMA_RECOMPUTE_ALL = 2,
	LVD_MLLAMA_RECOMPUTE_TEXT = 3,     /* mask: r & TEXT is NONE, XATTN or ALL */
	LVD_MLLAMA_RECOMPUTE_VISION = 4,   /* flag */
};
void lvd_mllama_set_recompute(struct lvd_mllama *m, enum lvd_mllama_recompute r);
enum lvd_mllama_recompute lvd_mllama_recompute_mode(const struct lvd_mllama *m);
/* "none", "xattn", "all", "vision", "xattn,vision", "all,vision"; parse: the mode of a
 * comma list of none|xattn|all (at most one) and vision (backwards compatible: the
 * three text names alone mean what they did), -1 for any other text. */
const char *lvd_mllama_recompute_name(enum lvd_mllama_recompute r);
int lvd_mllama_recompute_parse(const char *s);
/* Fused LM head + cross-entropy: chunk > 0 computes the loss (forward) and its gradient
 * (backward) through lvd_lmhead_xent_* (lib/nn/ops/xent.h) over vocabulary chunks of
 * `chunk` rows, so no [B·T, V] logits or dlogits exist: lvd_mllama_logits returns NULL
 * and the activations keep one double per row instead; forward + backward then cost one
 * more LM-head GEMM. Equal to the logits path (chunk 0, the default, for generation,
 * evaluation and callers that read the logits) up to fp32 rounding. Workspace:
 * B·T·min(chunk, V) floats (in lvd_mllama_measure's scratch). LVD_MLLAMA_XENT_CHUNK is
 * what lvd-sft uses. */
#define LVD_MLLAMA_XENT_CHUNK 8192
void lvd_mllama_set_xent_chunk(struct lvd_mllama *m, int chunk);
int lvd_mllama_xent_chunk(const struct lvd_mllama *m);

/* Evaluation mode: eval = 1 runs LoRA adapters without dropout (torch's model.eval())
 * until lvd_mllama_set_eval(m, 0). */
void lvd_mllama_set_eval(struct lvd_mllama *m, int eval);

/* One training/eval batch (all borrowed). pixel_values may be NULL (text only: cross
 * layers skipped, as HF). labels may be NULL (no loss). */
struct lvd_mllama_batch {
	int B, T, M;
	const int *input_ids;            /* [B, T] */
	const int *labels;               /* [B, T], −100 ignored; shifted inside the loss */
	const float *pixel_values;       /* [B, M, TL, C, H, W] */
	const int *aspect_ratio_ids;     /* [B, M] */
	const int *aspect_ratio_mask;    /* [B, M, TL] */
	const int *cross_attention_mask; /* [B, T, M, TL] */
	int meta_row_mask;               /* 1: also mask the attention output of image-less rows (Meta) */
	int dropout_step;                /* mixed into LoRA dropout seeds */
	/* Capture rows: the text rows whose cross-attention probabilities the caller needs
	 * (e.g. the matched-word rows). cap_off[B + 1] (cap_off[0] = 0) indexes cap_rows:
	 * sample b captures rows cap_rows[cap_off[b] .. cap_off[b+1]), each in [0, T) and
	 * distinct within the sample. cap_off NULL: capture nothing. Only these rows'
	 * probabilities are kept (every other attention keeps two floats per query row);
	 * the lists are copied by lvd_mllama_forward. */
	const int *cap_rows;
	const int *cap_off;
};

/* Memory of a training step in bytes. params: base parameters (fp32, mapped ones
 * included); lora: the LoRA parameter block; grads: the trainable gradients (the LoRA
 * gradient block with LoRA, else full parameter gradients); opt: optimizer state, two
 * fp32 moments per trainable float; acts: activations kept for backward (in the
 * recompute mode and LM head set, lvd_mllama_set_recompute / _set_xent_chunk); scratch:
 * backward scratch (taken from the ctx workspace during lvd_mllama_backward; with the
 * fused head its vocabulary block on top). (The ops' own workspace use comes on top:
 * O(threads·64·S + T·D), and a recomputed layer's forward's.) */
struct lvd_mllama_mem {
	size_t params, lora, grads, opt, acts, scratch;
};
/* Measures, from the configuration, the current LoRA setup and a batch shape (B samples
 * of T tokens, M images each (0: text only), ncap capture rows in all), what a
 * forward + backward of that shape carves — with the same carving code the forward
 * runs (measure mode), without allocating or touching the last forward's results.
 * Errors: LVD_ERR_INVALID (bad shape), LVD_ERR_NOMEM. */
int lvd_mllama_measure(struct lvd_mllama *m, int B, int T, int M, int ncap, struct lvd_mllama_mem *out,
		       struct lvd_error *err);
/* What the model holds now (activation and scratch capacity of the largest batch so far;
 * opt only with LoRA, where it is carved). */
void lvd_mllama_mem_used(const struct lvd_mllama *m, struct lvd_mllama_mem *out);

/* Forward. Keeps every activation needed for backward inside the model (reallocated
 * when the batch shape grows). Results stay valid until the next forward. */
int lvd_mllama_forward(struct lvd_mllama *m, const struct lvd_mllama_batch *batch, struct lvd_error *err);
const float *lvd_mllama_logits(const struct lvd_mllama *m);          /* [B, T, V]; NULL with the fused head */
double lvd_mllama_loss(const struct lvd_mllama *m);                 /* mean CE (NAN without labels) */
int lvd_mllama_loss_count(const struct lvd_mllama *m);              /* label tokens counted */
/* Vision features before the projector [B, M, TL, P1, v_out_dim] and after [.., t_hidden]. */
const float *lvd_mllama_vision_features(const struct lvd_mllama *m);
const float *lvd_mllama_cross_states(const struct lvd_mllama *m);
/* Number of capture rows of the last forward (RC = cap_off[B], 0 without capture). */
size_t lvd_mllama_capture_rows(const struct lvd_mllama *m);
/* Cross-attention probabilities of the capture rows in the k-th cross layer, ragged
 * [B, H, R_b, S] (lib/nn/ops/attn.h layout): sample b's block [H, R_b, S] starts at
 * float H·cap_off[b]·S, row i (the batch's cap_rows[cap_off[b] + i]) of head h at
 * (H·cap_off[b] + h·R_b + i)·S; RC·H·S floats in all. With every row captured in order
 * this is [B, H, T, S]. NULL when the layer was skipped or nothing is captured. */
const float *lvd_mllama_xattn_probs(const struct lvd_mllama *m, int k);

/* Backward of loss_scale · CE (+ Σ dprobs[k] ⊙ P_k for injected probability gradients
 * on the capture rows; dprobs may be NULL or hold NULL entries, each laid out as
 * lvd_mllama_xattn_probs). Accumulates into the parameter gradients (full) or into
 * LoRA gradients when LoRA is enabled. */
int lvd_mllama_backward(struct lvd_mllama *m, float loss_scale, const float *const *dprobs,
			struct lvd_error *err);

/* Text decoder layer hook (data-parallel overlap of the gradient all-reduce, ZeRO-3
 * gathering of sharded weights; tools/lvd-sft/dist_glue.c). fn(user, ev, l) is called by
 * lvd_mllama_forward and lvd_mllama_backward around every text decoder layer l, on every
 * call whatever the batch (also for a cross layer skipped without images, so ranks that
 * communicate inside the hook stay in step): FWD_BEGIN before its forward, FWD_END after,
 * BWD_BEGIN before its backward (layers in reverse order), BWD_END after it — every
 * gradient of layer l's parameters and of its LoRA adapters is then final for this
 * backward (nothing later in the backward writes them). Between BEGIN and END the layer
 * reads its weights through the pointers lvd_mllama_text_layer_weights exposes, so the
 * hook may re-point them (to weights it has just gathered). The hook cannot fail (on an
 * error the caller ends the job). Generation (mllama_gen.c) calls no hook. NULL fn: none. */
enum lvd_mllama_layer_event { LVD_MLLAMA_FWD_BEGIN, LVD_MLLAMA_FWD_END, LVD_MLLAMA_BWD_BEGIN, LVD_MLLAMA_BWD_END };
typedef void (*lvd_mllama_layer_hook)(void *user, enum lvd_mllama_layer_event ev, int layer);
void lvd_mllama_set_layer_hook(struct lvd_mllama *m, lvd_mllama_layer_hook fn, void *user);
/* Text decoder layer l's base weight tensors in a fixed order (input norm, q, k, v, o,
 * [cross: q_norm, k_norm, attn gate, mlp gate], post norm, gate, up, down): slot[i] is the
 * address of the model's pointer to the i-th tensor (the caller may re-point it to a copy
 * of the same numel[i] floats), table[i] its entry in the parameter table (whose data
 * pointer is left alone). Returns the count (at most LVD_MLLAMA_LAYER_TENSORS); -1 for l
 * out of range. */
#define LVD_MLLAMA_LAYER_TENSORS 16
int lvd_mllama_text_layer_weights(struct lvd_mllama *m, int l, float **slot[], size_t numel[],
				  struct lvd_mllama_param *table[]);

/* ---- greedy generation with a KV cache (mllama_gen.c) ----
 * A session over one batch of prompts: lvd_mllama_gen_begin runs the vision tower, the
 * cross-attention keys/values of every cross layer (once) and the prefill of the prompts
 * into a self-attention K/V cache; each lvd_mllama_gen_step feeds the previous step's
 * tokens (one row per sample) and picks the next token of every sample by argmax (the
 * first maximum, as torch.argmax) or by the caller's pick function (sampling), with the
 * options and bookkeeping of lib/models/gen_loop.h. Numerics and rules follow
 * transformers' generate(do_sample=False) with its cache:
 *  - left padding: attn_mask [B, T] (1 real, 0 pad; NULL all real) masks pad keys;
 *    positions are the running count of real tokens (cumsum − 1), so a padded prompt
 *    generates what it generates alone;
 *  - the cross-attention mask row of a generated token repeats the prompt's last row
 *    (HF _update_model_kwargs_for_generation); image-less rows as in lvd_mllama_forward
 *    (meta_row_mask honoured);
 *  - a sample stops when it emits any id of eos[]; a stopped sample then yields pad_id
 *    (and is still fed, as HF does); the session ends when every sample stopped or
 *    max_new_tokens tokens were produced.
 * Inference only: nothing is kept for backward; memory is the caches (self layers
 * 2·B·(T + max_new)·KV floats, cross layers 2·B·S·KV) plus one prefill's workspace,
 * owned by the session (the vision tower runs in the model's activation block, so a
 * later lvd_mllama_backward needs a new lvd_mllama_forward). LoRA adapters apply
 * without dropout. The model (and its context) must outlive the session and run
 * nothing else in between. batch: as lvd_mllama_forward, labels/capture ignored. */
struct lvd_mllama_gen;
/* Errors: LVD_ERR_INVALID (bad batch, a mask row without a real token, max_new_tokens
 * < 1), LVD_ERR_NOMEM. */
int lvd_mllama_gen_begin(struct lvd_mllama_gen **out, struct lvd_mllama *m, const struct lvd_mllama_batch *batch,
			 const int *attn_mask, const struct lvd_gen_opts *opts, struct lvd_error *err);
/* Next token of every sample into next[B], *done = 0; or *done = 1 (next untouched)
 * when the session is over. Returns 0 (no error path after begin). */
int lvd_mllama_gen_step(struct lvd_mllama_gen *g, int *next, int *done, struct lvd_error *err);
/* Logits [B, V] the last step chose from (before its argmax); valid until the next step. */
const float *lvd_mllama_gen_logits(const struct lvd_mllama_gen *g);
/* Tokens produced so far per sample (equal for all samples; stopped ones count pads). */
int lvd_mllama_gen_count(const struct lvd_mllama_gen *g);
/* Bytes the session holds (caches + workspace). */
size_t lvd_mllama_gen_bytes(const struct lvd_mllama_gen *g);
void lvd_mllama_gen_free(struct lvd_mllama_gen *g);

/* ---- image processor (MllamaImageProcessor, PIL backend of transformers 5.x) ---- */
struct lvd_mllama_image_cfg {
	int tile;                 /* size (height = width) */
	int max_tiles;
	float mean[3], std[3];    /* after rescale 1/255 */
};
/* The supported canvases (tiles_high, tiles_wide) for max_tiles in [1, 16] (asserted), in
 * HF order (for a in 1..max, for b in 1..max, a·b <= max); the aspect_ratio_id of
 * out[i] is i + 1. out must hold LVD_MLLAMA_MAX_LIST pairs (16 tiles give 50). Returns
 * the count. The one copy of this list (config loading, the image processor, the
 * Lavender geometry). */
int lvd_mllama_aspect_ratios(int max_tiles, int (*out)[2]);
/* CLIP mean/std, tile 560, 4 tiles (the released checkpoints' preprocessor_config). */
void lvd_mllama_image_cfg_default(struct lvd_mllama_image_cfg *c);
/* Picks the canvas (tiles_high, tiles_wide) and the resized size for an h×w image. */
void lvd_mllama_image_canvas(const struct lvd_mllama_image_cfg *c, int h, int w, int *tiles_high,
			     int *tiles_wide, int *new_h, int *new_w);
/* RGB8 image [h, w, 3] → pixels [max_tiles, 3, tile, tile] (unused tiles zero),
 * aspect_ratio_id (1-based index in the supported list), mask [max_tiles], num_tiles. */
int lvd_mllama_image_process(float *pixels, int *aspect_ratio_id, int *mask, int *num_tiles,
			     const struct lvd_mllama_image_cfg *c, const uint8_t *rgb, int h, int w,
			     struct lvd_error *err);
/* Cross-attention mask [T, M, TL] of one sample from its ids (processor rules). */
void lvd_mllama_cross_mask(int *mask, const int *ids, int T, int image_token, int M, int TL,
			   const int *num_tiles);

#ifdef __cplusplus
}
#endif
#endif
