/* lib/models/sd/sd_internal.h — weight structures shared by the SD loader and the
 * networks (not a public header). Every pointer is resolved once at load time and is
 * either into a safetensors mapping (F32) or into the converted block. */
#ifndef LVD_MODELS_SD_INTERNAL_H
#define LVD_MODELS_SD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "models/sd/sd.h"

struct lvd_st;
struct lvd_pool;

struct sd_lin {           /* Linear / 1x1 conv: w [out, in], b [out] or NULL */
	const float *w, *b;
};
struct sd_norm {
	const float *w, *b;
};
struct sd_conv {          /* w [out, in, k, k], b [out] */
	const float *w, *b;
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
};

struct sd_clip {
	struct lvd_sd_clip_cfg cfg;
	const float *tok_emb, *pos_emb;
	struct sd_clip_layer *layers;  /* cfg.layers */
	struct sd_norm final_ln;
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
	struct lvd_pool *pool;       /* owned; NULL = single-threaded outside OpenBLAS */
	int winograd;                /* lvd_sd_opts.winograd */
};

/* Declares every weight a diffusers folder's configs call for (name, shape) without
 * reading weights: used by the benchmark to write random-weight checkpoints. comps is
 * a LVD_SD_* mask; the folder needs only <component>/config.json. */
typedef void (*sd_declare_fn)(void *user, const char *name, int ndim, const int64_t *shape);
int sd_declare_diffusers(const char *dir, int comps, sd_declare_fn fn, void *user, struct lvd_error *err);

/* Timing helpers for the optional stats. */
double sd_now(void);
#define SD_TIME(sd, field, stmt) do { \
		if ((sd)->stats) { double t0_ = sd_now(); stmt; (sd)->stats->field += sd_now() - t0_; } \
		else { stmt; } } while (0)

/* Shared building blocks (sd_blocks.c). Scratch sizes are documented there. */
struct sd_ws {           /* a bump allocator over one malloc'd block */
	float *base;
	size_t cap, used;
};
float *sd_ws_take(struct sd_ws *ws, size_t n);

/* Scratch floats sd_conv_run needs for any 3x3 stride-1 pad-1 conv with at most cin
 * input and cout output channels on H x W (whichever path it picks). */
size_t sd_conv3_scratch_bound(const struct lvd_sd *sd, int cin, int cout, int H, int W);
void sd_conv_run(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_conv *c,
		 int H, int W, int stride, int pad_t, int pad_l, int pad_b, int pad_r, struct sd_ws *ws);
void sd_resnet_run(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_resnet *r,
		   const float *temb_act, int temb_dim, int H, int W, int groups, float eps,
		   struct sd_ws *ws);
/* Elementwise ops from ops.h split over sd->pool (bit-identical to the serial op). */
void sd_groupnorm(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_norm *n,
		  int C, int HW, int G, float eps, int silu);
void sd_layernorm(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_norm *n,
		  int N, int C, float eps);
void sd_geglu(const struct lvd_sd *sd, float *out, const float *inp, int N, int F);
void sd_add(const struct lvd_sd *sd, float *y, const float *x, size_t n);
void sd_linear_run(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_lin *l,
		   int N, int IC, int OC);

#endif
