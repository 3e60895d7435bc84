/* lib/models/sd/sd.h — Stable Diffusion 1.x and 2.x networks, forward only, on the CPU
 * (fp32) or, after lvd_sd_to_device, on a CUDA context (bf16 weights):
 * CLIP text encoder, VAE encoder (posterior mean), UNet2DConditionModel with a
 * per-layer callback that receives every cross-attention (attn2) probability map
 * averaged over heads, and the DDPM noise schedule.
 *
 * Loading: a diffusers folder (model_index.json + text_encoder/ vae/ unet/ with
 * config.json and *.safetensors) or an original ldm single file (.safetensors with
 * model.diffusion_model.*, first_stage_model.*, and cond_stage_model.transformer.*
 * (SD 1.x, HF CLIP) or cond_stage_model.model.* (SD 2.x, OpenCLIP ViT-H/14)). The
 * architecture comes from the configs (diffusers) or the tensor shapes (single file;
 * head counts and GroupNorm groups are not visible in shapes and follow the SD rules
 * unless lvd_sd_opts overrides them: SD 1.x 8 heads per level, SD 2.x (linear
 * proj_in or a 1024-wide context) heads = channels / 64 per level). F32 weights are
 * used in place from the memory map (when 4-byte aligned); F16/BF16 weights are
 * converted to fp32 once at load into one allocation. Compute is fp32 (the device path:
 * bf16 weights and products, fp32 accumulation and activations; lvd_sd_to_device).
 *
 * SD 2.x: the text encoder is OpenCLIP's tower read as its penultimate layer followed
 * by the final LayerNorm (diffusers folders store 23 of the 24 layers with hidden_act
 * "gelu"; an ldm file holds all 24 resblocks and the last is skipped here; its
 * text_projection and logit_scale are unused). The UNet's diffusers key
 * attention_head_dim (e.g. [5, 10, 20, 20]) is, despite its name, the HEAD COUNT per
 * level (head dim 64), as diffusers itself reads it; use_linear_projection selects
 * linear proj_in/proj_out (the same bytes as a 1x1 conv). upcast_attention is recorded
 * (lvd_sd_unet_cfg) and changes nothing: attention is computed in fp32 anyway.
 * v-prediction (SD 2.x 768 models) changes nothing here either: the UNet's output is
 * returned as is, whatever it predicts.
 *
 * Shapes (PyTorch order, batch 1): image [3, H, W] in [-1, 1] with H, W multiples of 8;
 * latent [4, H/8, W/8]; text ids [S] (S = n_pos = 77 for SD); text states [S, Dctx].
 * The UNet needs latent sides divisible by 2^(levels-1) (8 for SD).
 *
 * Errors: missing tensors, wrong shapes and unsupported variants (SDXL, class/addition
 * embeddings, a VAE that does not downsample by 8) fail with a message naming the tensor and the file. Forward functions
 * fail only on bad sizes or allocation failure. */
#ifndef LVD_MODELS_SD_SD_H
#define LVD_MODELS_SD_SD_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct lvd_ctx; /* nn/ctx.h */

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_SD_MAX_LEVELS 6
#define LVD_SD_MAX_RES 4      /* ResNets per block (layers_per_block + 1 for up blocks) */
#define LVD_SD_MAX_TBLOCKS 4  /* BasicTransformerBlocks per spatial transformer */

enum { LVD_SD_ACT_QUICK_GELU = 0, LVD_SD_ACT_GELU = 1 };
enum { LVD_SD_TEXT = 1, LVD_SD_VAE = 2, LVD_SD_UNET = 4, LVD_SD_ALL = 7 };

struct lvd_sd_clip_cfg {
	int vocab, n_pos, width, layers, heads, ffn, act;
	float eps;
};

struct lvd_sd_vae_cfg {
	int in_ch, latent_ch, levels, ch[LVD_SD_MAX_LEVELS], layers_per_block, groups;
	float eps, scaling;
};

struct lvd_sd_unet_cfg {
	int in_ch, out_ch, levels, ch[LVD_SD_MAX_LEVELS], layers_per_block, groups;
	int down_attn[LVD_SD_MAX_LEVELS]; /* level has spatial transformers (down side) */
	int up_attn[LVD_SD_MAX_LEVELS];   /* up block u has spatial transformers */
	int heads[LVD_SD_MAX_LEVELS];     /* attention heads per level (mid uses the last) */
	int tblocks;                      /* transformer layers per spatial transformer */
	int ctx_dim, temb_dim, linear_proj, flip_sin_to_cos;
	int upcast_attention;             /* recorded only (diffusers config; 0 for ldm files) */
	float freq_shift, eps;            /* resnet / out GroupNorm eps (1e-5) */
};

/* Load-time options; zero-initialise for defaults. */
struct lvd_sd_opts {
	int components;   /* LVD_SD_TEXT | LVD_SD_VAE | LVD_SD_UNET; 0 = all */
	/* single-file overrides (0 = SD 1.x rule): */
	int unet_heads;   /* heads per UNet level (SD 1.x: 8) */
	int unet_head_dim; /* else heads = channels / this per level (SD 2.x: 64) */
	int clip_heads;   /* CLIP heads (width / 64) */
	int norm_groups;  /* GroupNorm groups of the VAE and UNet (32) */
	/* execution context the forward passes run on (borrowed: it must outlive the model;
	 * its threads, cpu_fast and workspace are used). NULL = the model creates its own
	 * CPU context with `threads` threads (0 = the online CPUs, 1 = none). A forward
	 * called while the context is busy (another thread is inside a forward of this
	 * model, or the caller runs inside a pool chunk) runs on a private one-thread
	 * context instead, with the same cpu_fast. */
	struct lvd_ctx *ctx;
	int threads;
	/* 3x3 stride-1 pad-1 convolutions: 0 = Winograd where it measured faster
	 * (>= 256 pixels and >= 16 input channels; F(2x2, 3x3) below 32x32, F(4x4, 3x3)
	 * from there; im2col + GEMM elsewhere), 1 = Winograd with that tile for every
	 * such conv (tests), 2 = Winograd F(4x4, 3x3) for every such conv (tests),
	 * -1 = never */
	int winograd;
};

struct lvd_sd; /* opaque: configs, weight pointers, mappings */

/* Opens `path` (diffusers folder or single .safetensors). *out is freed with lvd_sd_free. */
int lvd_sd_load(struct lvd_sd **out, const char *path, const struct lvd_sd_opts *opts,
		struct lvd_error *err);
void lvd_sd_free(struct lvd_sd *sd);

/* Moves the model onto ctx (borrowed; it must outlive the model): every linear and
 * convolution weight is uploaded once as bf16, norm weights and biases as fp32, into one
 * block of ctx memory (lvd_buf_alloc); from then on every forward runs on ctx with
 * bf16 weights (activations rounded to bf16 at each product, fp32 accumulation and
 * storage) and every tensor argument of a forward (text states, image, latents, UNet
 * input/output/context) is memory of ctx (lvd_buf_alloc), while ids and timesteps stay
 * host arrays. On a CUDA context this is the GPU path; on a CPU context the same code
 * runs the bf16 weights on the CPU (tests compare it with the fp32 path). One thread at
 * a time: a forward while another runs fails (LVD_ERR_INVALID "busy"). Errors:
 * LVD_ERR_NOMEM (device memory), LVD_ERR_INVALID (called twice). */
int lvd_sd_to_device(struct lvd_sd *sd, struct lvd_ctx *ctx, struct lvd_error *err);
/* The context the model computes on (its own CPU context, lvd_sd_opts.ctx, or the one of
 * lvd_sd_to_device): where forward tensors live. */
struct lvd_ctx *lvd_sd_ctx(const struct lvd_sd *sd);
/* Bytes of the device weight block (0 before lvd_sd_to_device). */
size_t lvd_sd_device_bytes(const struct lvd_sd *sd);

/* Configs of the loaded components (NULL when a component was not loaded). */
const struct lvd_sd_clip_cfg *lvd_sd_clip_config(const struct lvd_sd *sd);
const struct lvd_sd_vae_cfg *lvd_sd_vae_config(const struct lvd_sd *sd);
const struct lvd_sd_unet_cfg *lvd_sd_unet_config(const struct lvd_sd *sd);
/* Bytes of weights converted to fp32 at load (0 when every weight is used in place). */
size_t lvd_sd_converted_bytes(const struct lvd_sd *sd);

/* CLIP text encoder: out [S, width] = final_layer_norm(last layer) for ids [S]
 * (S <= n_pos; causal mask, no padding mask). Ids outside [0, vocab) are an error. */
int lvd_sd_text_encode(const struct lvd_sd *sd, float *out, const int32_t *ids, int S,
		       struct lvd_error *err);

/* VAE encoder: latent [latent_ch, H/8, W/8] = posterior mean × scaling factor for an
 * image [3, H, W] in [-1, 1]; moments [2·latent_ch, H/8, W/8] (mean, logvar before
 * clamping) is also written when non-NULL. H, W must be multiples of 8 (the loader
 * refuses VAEs with another factor than 8, i.e. other than 4 down blocks). */
int lvd_sd_vae_encode(const struct lvd_sd *sd, float *latent, float *moments,
		      const float *image, int H, int W, struct lvd_error *err);

/* What a cross-attention callback is told about the layer producing a map. */
struct lvd_sd_attn_info {
	const char *name;   /* diffusers module name, e.g. "down_blocks.0.attentions.1.transformer_blocks.0.attn2" */
	const char *block;  /* "down", "mid" or "up" */
	int index;          /* 0-based call order within one UNet pass */
	int level;          /* resolution level: 0 = full latent, 1 = /2, ... */
	int h, w;           /* spatial size of the map (queries = h·w) */
	int n_ctx;          /* keys (text tokens), e.g. 77 */
	int heads;          /* heads that were averaged */
	int item;           /* batch item the map belongs to (lvd_sd_unet_forward_batch; 0 otherwise) */
	int layers;         /* attn2 layers in one pass (index runs 0..layers-1) */
	struct lvd_ctx *ctx; /* the context the pass runs on: probs is its memory (device memory
			      * after lvd_sd_to_device); the callback may run ops on it and use
			      * its workspace (mark/release) */
};
/* probs [h·w, n_ctx], row-major (query = y·w + x), averaged over heads, in memory of
 * info->ctx; borrowed for the duration of the call. Return 0 to go on; LVD_SD_CB_DONE
 * when no later map is needed: the pass ends after this layer's callbacks (every batch
 * item still gets its call for this layer), `out` is left unwritten and the forward
 * returns 0 — a caller that wants only the maps skips the rest of the UNet
 * (lvd_sd_unet_last_attn2 says where); any other non-zero aborts the pass (the forward
 * then fails with LVD_ERR_INVALID "aborted by the attention callback"). */
#define LVD_SD_CB_DONE 0x444f4e45
typedef int (*lvd_sd_attn_cb)(void *user, const struct lvd_sd_attn_info *info, const float *probs);

/* Call-order index (lvd_sd_attn_info.index) of the last attn2 layer of a UNet pass whose
 * level (0 = full latent, 1 = /2, ...) is in the bit mask `levels`; -1 when none is, or
 * without a UNet. *count (may be NULL) gets the number of attn2 layers at those levels. */
int lvd_sd_unet_last_attn2(const struct lvd_sd *sd, unsigned levels, int *count);

/* UNet: out [out_ch, h, w] = ε̂(x [in_ch, h, w], t, ctx [n_ctx, ctx_dim]). cb (may be
 * NULL) receives each attn2 map as it is produced, in call order. Self-attention never
 * holds more than a [128, h·w] score block. */
int lvd_sd_unet_forward(const struct lvd_sd *sd, float *out, const float *x, int h, int w,
			float t, const float *ctx, int n_ctx, lvd_sd_attn_cb cb, void *user,
			struct lvd_error *err);

/* Batched UNet: out [B, out_ch, h, w] for B latents x [B, in_ch, h, w] at per-item
 * timesteps t[B], with item b's text context at ctx + b·ctx_stride ([n_ctx, ctx_dim];
 * ctx_stride 0: one context shared by every item, its cross-attention keys and values
 * computed once). 1 <= B <= LVD_SD_MAX_BATCH. Row-wise work (LayerNorm, every linear of
 * the transformers: proj/Q/K/V/out/feed-forward GEMMs over B·h·w token rows) runs on the
 * whole batch; convolutions, GroupNorm and attention per item. cb is called per layer
 * for items 0..B-1 in order (info->item; info->index counts layers, the same for every
 * item), so item b sees its maps in the unbatched call order. Each item's result equals
 * lvd_sd_unet_forward on that item up to fp32 summation order (the wider GEMMs may pick
 * other kernels and blockings: measured ~1e-6 of the output scale, tests/unit/test_sd.c);
 * B = 1 is exactly lvd_sd_unet_forward. Working memory grows about linearly in B (a
 * batch of 4 at a 64x64 latent of SD 1.5: ~0.85 GB of workspace, lvd_sd_unet_batch_bytes). */
#define LVD_SD_MAX_BATCH 64
int lvd_sd_unet_forward_batch(const struct lvd_sd *sd, float *out, const float *x, int B, int h, int w,
			      const float *t, const float *ctx, size_t ctx_stride, int n_ctx, lvd_sd_attn_cb cb,
			      void *user, struct lvd_error *err);

/* Workspace bytes one batch item adds to lvd_sd_unet_forward_batch at latent h x w with
 * n_ctx tokens (an upper estimate: activations, skip stack, the largest transformer or
 * ResNet temporaries; convolution scratch is shared by the batch and not counted).
 * SD 1.5, 77 tokens: ~211 MB at 64x64 (512²), ~53 MB at 32x32. 0 without a UNet. */
size_t lvd_sd_unet_batch_bytes(const struct lvd_sd *sd, int h, int w, int n_ctx);

/* Floating-point operations (2 per multiply-add) of one UNet pass at latent h x w with
 * n_ctx text tokens, counted analytically: convolutions, linears, both attentions'
 * score and value products; norms and activations left out (SD 1.5, 77 tokens: 0.803
 * TFLOP at 64x64, 0.180 at 32x32; `bench_sd flops`). 0 without a UNet. */
double lvd_sd_unet_flops(const struct lvd_sd *sd, int h, int w, int n_ctx);

/* Optional timing: when set, forward passes add their wall time to *st, split into
 * GEMM-backed ops (convolutions, linears, attention) and the rest. The struct is
 * borrowed and must outlive its use; NULL turns timing off. */
struct lvd_sd_stats {
	double gemm_s, other_s;
};
void lvd_sd_set_stats(struct lvd_sd *sd, struct lvd_sd_stats *st);

/* ---- DDPM schedule (scaled_linear, SD defaults) ---------------------------------------- */
/* What the UNet predicts (scheduler prediction_type): recorded, changes nothing here. */
enum lvd_sd_pred { LVD_SD_PRED_UNKNOWN = 0, LVD_SD_PRED_EPSILON, LVD_SD_PRED_V, LVD_SD_PRED_SAMPLE };
struct lvd_sd_schedule {
	int T;               /* 1000 */
	int prediction;      /* enum lvd_sd_pred (UNKNOWN after lvd_sd_schedule_init) */
	float betas[1000];
	float alphas_cumprod[1000];
};
/* β_t = (√β0 + (√β1 − √β0)·t/(T−1))², ᾱ_t = Π α (in fp32, as diffusers). T <= 1000. */
void lvd_sd_schedule_init(struct lvd_sd_schedule *s, int T, double beta_start, double beta_end);
/* The schedule of the checkpoint at sd_path: a diffusers folder's
 * scheduler/scheduler_config.json (num_train_timesteps 1000, beta_start, beta_end,
 * beta_schedule "scaled_linear", prediction_type "epsilon" | "v_prediction" | "sample"),
 * else (a single file, or no scheduler/ folder) the SD defaults 1000, 0.00085, 0.012
 * with prediction UNKNOWN. What would change ᾱ and is not implemented (another
 * beta_schedule, trained_betas, rescale_betas_zero_snr) is refused by name
 * (LVD_ERR_UNSUPPORTED); keys that only matter to sampling loops (timestep_spacing,
 * steps_offset, clip_sample, thresholding, variance_type) are irrelevant to q(x_t|x_0). */
int lvd_sd_schedule_load(struct lvd_sd_schedule *s, const char *sd_path, struct lvd_error *err);
/* x_t[n] = √ᾱ_t·x0 + √(1−ᾱ_t)·noise; t in [0, T). */
void lvd_sd_add_noise(const struct lvd_sd_schedule *s, float *xt, const float *x0,
		      const float *noise, size_t n, int t);

#ifdef __cplusplus
}
#endif
#endif
