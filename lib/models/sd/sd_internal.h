/* lib/models/sd/sd_internal.h — weight structures shared by the SD loader and the
 * networks (not a public header). Every pointer is resolved once at load time and is
 * either into a safetensors mapping (F32) or into the converted block. After
 * lvd_sd_to_device (sd_dev.c) every norm weight and bias pointer points into the device
 * block instead (fp32), and every linear / conv weight also has a bf16 copy there
 * (w16); the fp32 host w stays for the CPU path and the text embeddings stay on the host. */
#ifndef LVD_MODELS_SD_INTERNAL_H
#define LVD_MODELS_SD_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "models/sd/sd.h"

struct lvd_st;
struct lvd_ctx;

struct sd_lin {           /* Linear / 1x1 conv: w [out, in], b [out] or NULL */
	const float *w, *b;
	const uint16_t *w16;      /* bf16 w on the device (lvd_sd_to_device), else NULL */
};
struct sd_norm {
	const float *w, *b;
};
struct sd_conv {          /* w [out, in, k, k], b [out] */
	const float *w, *b;
	const uint16_t *w16;      /* bf16 w on the device (lvd_sd_to_device), else NULL */
	int cin, cout, k;
};

struct sd_resnet {
	struct sd_norm n1, n2;
	struct sd_conv c1, c2;
	struct sd_lin temb;       /* UNet only */
	struct sd_conv sc;        /* 1x1 shortcut, w == NULL when cin == cout */
	int cin, cout;
};

struct sd_attn {
	struct sd_lin q, k, v, o;
};

struct sd_tblock {
	struct sd_norm ln1, ln2, ln3;
	struct sd_attn a1, a2;
	struct sd_lin ff1, ff2;   /* ff1 [8C, C] (GEGLU), ff2 [C, 4C] */
};

struct sd_transformer {
	struct sd_norm gn;
	struct sd_lin pin, pout;
	struct sd_tblock tb[LVD_SD_MAX_TBLOCKS];
	int C, heads;
	char name[LVD_SD_MAX_TBLOCKS][96]; /* diffusers name of each attn2 */
};

struct sd_clip_layer {
	struct sd_norm ln1, ln2;
	struct sd_attn at;
	struct sd_lin fc1, fc2;
	struct sd_lin qkv;        /* OpenCLIP fused in_proj [3D, D], [3D] (at.q/k/v point into it) */
};

struct sd_clip {
	struct lvd_sd_clip_cfg cfg;
	const float *tok_emb, *pos_emb;
	struct sd_clip_layer *layers;  /* cfg.layers */
	struct sd_norm final_ln;
	int openclip;                  /* ldm SD 2.x names (cond_stage_model.model.*) */
};

struct sd_vae {
	struct lvd_sd_vae_cfg cfg;
	struct sd_conv conv_in, conv_out, quant;
	struct sd_resnet down[LVD_SD_MAX_LEVELS][LVD_SD_MAX_RES];
	struct sd_conv downsample[LVD_SD_MAX_LEVELS];
	struct sd_resnet mid[2];
	struct sd_norm mid_gn, norm_out;
	struct sd_attn mid_attn;
};

struct sd_unet {
	struct lvd_sd_unet_cfg cfg;
	struct sd_conv conv_in, conv_out;
	struct sd_lin t1, t2;
	struct sd_resnet down[LVD_SD_MAX_LEVELS][LVD_SD_MAX_RES];
	struct sd_transformer down_tf[LVD_SD_MAX_LEVELS][LVD_SD_MAX_RES];
	struct sd_conv downsample[LVD_SD_MAX_LEVELS];
	struct sd_resnet mid[2];
	struct sd_transformer mid_tf;
	struct sd_resnet up[LVD_SD_MAX_LEVELS][LVD_SD_MAX_RES];
	struct sd_transformer up_tf[LVD_SD_MAX_LEVELS][LVD_SD_MAX_RES];
	struct sd_conv upsample[LVD_SD_MAX_LEVELS];
	struct sd_norm norm_out;
};

struct lvd_sd {
	int has_text, has_vae, has_unet;
	struct sd_clip clip;
	struct sd_vae vae;
	struct sd_unet unet;
	struct lvd_st *st[3];        /* open mappings (single file: st[0] only) */
	float *converted;            /* one block for every F16/BF16/unaligned weight */
	size_t converted_bytes;
	struct lvd_sd_stats *stats;  /* borrowed, may be NULL */
	struct lvd_ctx *ctx;         /* lvd_sd_opts.ctx (borrowed) or owned (own_ctx) */
	int own_ctx;
	atomic_int busy;             /* 1 while a forward runs on ctx (sd_ctx_enter) */
	int winograd;                /* lvd_sd_opts.winograd */
	/* lvd_sd_to_device: weights in dev_block (memory of ctx), forwards use w16 and take
	 * tensors where ctx computes; hctx is a one-thread CPU context for host-side helpers
	 * (the sinusoidal timestep embedding) */
	int dev;
	void *dev_block;
	size_t dev_bytes;
	struct lvd_ctx *hctx;
};

/* Declares every weight a diffusers folder's configs call for (name, shape) without
 * reading weights: used by the benchmark to write random-weight checkpoints. comps is
 * a LVD_SD_* mask; the folder needs only <component>/config.json. */
typedef void (*sd_declare_fn)(void *user, const char *name, int ndim, const int64_t *shape);
int sd_declare_diffusers(const char *dir, int comps, sd_declare_fn fn, void *user, struct lvd_error *err);

/* Timing helper for the optional stats (lvd_time_now, core/clock.h). */
#define SD_TIME(sd, field, stmt) do { \
		if ((sd)->stats) { double t0_ = lvd_time_now(); stmt; (sd)->stats->field += lvd_time_now() - t0_; } \
		else { stmt; } } while (0)

/* sd->ctx: the borrowed ctx, or an owned CPU context of `threads` threads (0 = online
 * CPUs). sd_ctx_free destroys an owned one. */
int sd_ctx_init(struct lvd_sd *sd, struct lvd_ctx *borrowed, int threads, struct lvd_error *err);
void sd_ctx_free(struct lvd_sd *sd);
/* Frees the device weight block and hctx of lvd_sd_to_device (sd_dev.c); no-op before. */
void sd_dev_free(struct lvd_sd *sd);

/* The context a forward pass runs on: sd->ctx when it is free and the caller is not
 * inside a pool chunk, else a private one-thread context with sd->ctx's cpu_fast (made
 * here, freed by sd_ctx_leave). On the device path (sd->dev) there is no private
 * context: a busy model is an error. Returns NULL with err filled when that fails. */
struct lvd_ctx *sd_ctx_enter(const struct lvd_sd *sd, struct lvd_error *err);
void sd_ctx_leave(const struct lvd_sd *sd, struct lvd_ctx *ctx);

/* dst = src (n floats) where ctx computes: memcpy on a CPU context, a device-to-device
 * copy queued on the stream on CUDA (sd_dev.cu). */
void sd_copy(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *dst, const float *src, size_t n);
/* bf16-weight products of the device path (activations rounded to bf16, fp32
 * accumulation): out[N, OC] = inp[N, IC]·w16ᵀ + b, and the general form
 * C[M, N] = op(A)·op(W) with A an fp32 activation (converted in the workspace) and W a
 * bf16 weight, or (w_left) C = op(W)·op(A). */
void sd_linear16(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w16, const float *b, int N,
		 int IC, int OC);
void sd_gemm16(struct lvd_ctx *ctx, int w_left, int transA, int transB, int M, int N, int K, const float *act,
	       size_t act_n, int lda, const uint16_t *w16, int ldw, float *C, int ldc);

/* Shared building blocks (sd_blocks.c). Working memory comes from the ctx workspace. */
/* Convolution by lvd_sd_opts.winograd: 0 = lvd_conv2d_fwd (Winograd where the op picks
 * it), > 0 = Winograd for every 3x3 stride-1 pad-1 conv (2: F(4x4)), < 0 = im2col. */
void sd_conv_run(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		 const struct sd_conv *c, int H, int W, int stride, int pad_t, int pad_l, int pad_b, int pad_r);
/* The same on B items [B, cin, H, W] -> [B, cout, H, W]. */
void sd_conv_run_b(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		   const struct sd_conv *c, int B, int H, int W, int stride, int pad_t, int pad_l, int pad_b, int pad_r);
/* out [cout, H, W] = shortcut(inp) + conv2(SiLU(GN2(conv1(SiLU(GN1(inp))) + temb)));
 * temb_act = SiLU(temb) [temb_dim] or NULL (VAE). out must not alias inp. */
void sd_resnet_run(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		   const struct sd_resnet *r, const float *temb_act, int temb_dim, int H, int W, int groups,
		   float eps);
/* The same on B items [B, cin, H, W] -> [B, cout, H, W]; temb_act [B, temb_dim] (one row
 * per item) or NULL. */
void sd_resnet_run_b(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		     const struct sd_resnet *r, const float *temb_act, int temb_dim, int B, int H, int W, int groups,
		     float eps);
/* Timed op calls (sd->stats). */
void sd_groupnorm(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		  const struct sd_norm *n, int C, int HW, int G, float eps, int silu);
/* GroupNorm on B items [B, C, HW] (statistics per item and group). */
void sd_groupnorm_b(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		    const struct sd_norm *n, int B, int C, int HW, int G, float eps, int silu);
void sd_layernorm(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		  const struct sd_norm *n, int N, int C, float eps);
void sd_add(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *y, const float *x, size_t n);
void sd_linear_run(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		   const struct sd_lin *l, int N, int IC, int OC);

#endif
