/* lib/models/sd/sd_config.h — SD component configs (private to lib/models/sd).
 *
 * The diffusers readers take a config.json path; absent keys take the SD 1.x defaults,
 * wrong types, out-of-range values and unsupported variants (SDXL additions, other block
 * types) are errors naming the file and key (LVD_ERR_INVALID / LVD_ERR_UNSUPPORTED;
 * LVD_ERR_IO / LVD_ERR_FORMAT for unreadable files).
 * The ldm readers infer the same structs from the tensor shapes of an open single file
 * (prefixes cond_stage_model.transformer., first_stage_model., model.diffusion_model.);
 * what shapes cannot tell (head counts, norm groups) comes from opts.
 * LVD_ERR_NOTFOUND when the tensors needed are missing. All fill *k, then check it. */
#ifndef LVD_MODELS_SD_CONFIG_H
#define LVD_MODELS_SD_CONFIG_H

#include "core/error.h"
#include "io/safetensors.h"
#include "models/sd/sd.h"

int sd_clip_cfg_json(struct lvd_sd_clip_cfg *k, const char *path, struct lvd_error *err);
int sd_vae_cfg_json(struct lvd_sd_vae_cfg *k, const char *path, struct lvd_error *err);
int sd_unet_cfg_json(struct lvd_sd_unet_cfg *k, const char *path, struct lvd_error *err);

int sd_ldm_clip_cfg(struct lvd_sd_clip_cfg *k, const struct lvd_st *st, const char *pfx,
		    const struct lvd_sd_opts *o, struct lvd_error *err);
/* SD 2.x OpenCLIP text tower (cond_stage_model.model.*): width, vocab, positions and
 * ffn from shapes, layers = resblocks - 1 (the penultimate-layer rule), exact GELU,
 * heads width/64 unless o->clip_heads. */
int sd_ldm_openclip_cfg(struct lvd_sd_clip_cfg *k, const struct lvd_st *st, const struct lvd_sd_opts *o,
			struct lvd_error *err);
int sd_ldm_vae_cfg(struct lvd_sd_vae_cfg *k, const struct lvd_st *st, const struct lvd_sd_opts *o,
		   struct lvd_error *err);
int sd_ldm_unet_cfg(struct lvd_sd_unet_cfg *k, const struct lvd_st *st, const struct lvd_sd_opts *o,
		    struct lvd_error *err);

/* scheduler_config.json (see lvd_sd_schedule_load): T, betas, prediction (enum lvd_sd_pred). */
int sd_sched_cfg_json(const char *path, int *T, double *beta_start, double *beta_end, int *pred,
		      struct lvd_error *err);

/* 1 when the CLIP tensors under pfx carry the HF "text_model." prefix (transformers 5
 * saves without it). */
int sd_clip_has_text_model(const struct lvd_st *st, const char *pfx);

#endif
