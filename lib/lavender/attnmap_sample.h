/* sd-attnmap: the per-sample procedure (decode, resize, VAE, text encoder, noised UNet
 * passes with attn2 capture, aggregation, record payload), one sample at a time
 * (lvd_attnmap_sample_run, CPU threads) or many per batched UNet pass
 * (lvd_attnmap_samples_run, the GPU path). The options that change results live in
 * struct lvd_attnmap_params; run.c handles manifests, shards and resume. */
#ifndef LVD_SD_ATTNMAP_SAMPLE_H
#define LVD_SD_ATTNMAP_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "lavender/attnmap.h"
#include "models/sd/sd.h"

#define LVD_ATTNMAP_MAX_TIMESTEPS 64
#define LVD_ATTNMAP_CTX 77

/* Options that change the maps (sd-attnmap records them in run.json and every shard header). */
struct lvd_attnmap_params {
	int resolution;                 /* longer side of the SD input, multiple of 64 */
	int grid;                       /* 0 = latent / 2 */
	unsigned layers;                /* level mask (lib/lavender/attnmap.h) */
	int n_timesteps;
	int timesteps[LVD_ATTNMAP_MAX_TIMESTEPS];
	int draws;
	uint64_t seed;
	int min_side;                   /* images with a side below this are skipped */
	int fold_vocab;                 /* feed id % vocab to a smaller text encoder (tiny test models) */
	/* --method inversion (enum lvd_attnmap_method): DDIM inversion of the image latent
	 * with the caption over `steps` steps, then regeneration from the inverted latent
	 * with classifier-free guidance `guidance` (1: the conditional pass alone), the maps
	 * of the conditional pass averaged over the steps; timesteps, draws and seed unused */
	int method;
	int steps;                      /* 1..LVD_ATTNMAP_MAX_TIMESTEPS (default 50) */
	float guidance;                 /* default 7.5 (prompt-to-prompt / local prompt mixing) */
	/* --method noise: UNet passes of a sample run per batched UNet pass
	 * (lvd_attnmap_unet_batch; 0 = auto). Changes the maps only in the last fp32 bits
	 * (summation order of wider GEMMs): recorded in run.json when not 0. */
	int unet_batch;
};

/* Batched UNet passes: at most LVD_ATTNMAP_MAX_BATCH per pass; auto (unet_batch 0) runs
 * all n_timesteps × draws passes of a sample in one when their workspace
 * (lvd_sd_unet_batch_bytes per pass) fits LVD_ATTNMAP_UNET_BUDGET, else as many as fit
 * (at least 1). */
#define LVD_ATTNMAP_MAX_BATCH 64
#define LVD_ATTNMAP_UNET_BUDGET ((size_t)2 << 30)
/* The batch lvd_attnmap_sample_run uses for a latent of lat_h x lat_w: unet_batch
 * (or auto as above) capped at the number of passes. */
int lvd_attnmap_unet_batch(const struct lvd_sd *sd, const struct lvd_attnmap_params *p, int lat_h, int lat_w);

enum lvd_attnmap_method {
	LVD_ATTNMAP_NOISE = 0,          /* one noised pass per (timestep, draw) (default) */
	LVD_ATTNMAP_INVERSION = 1,      /* DDIM inversion + regeneration (above) */
};

/* The DDIM timesteps of an N-step schedule over T training steps, as diffusers'
 * DDIMScheduler with SD's timestep_spacing "leading" and steps_offset 1:
 * ts[i] = (N-1-i)·(T/N) + 1, i = 0..N-1 (descending: 981, 961, ..., 1 for 50 of 1000). */
void lvd_attnmap_ddim_timesteps(int *ts, int N, int T);

/* A tokenized SD text (borrowed strings live as long as the struct's owner says). */
struct lvd_attnmap_text {
	int32_t ids[LVD_ATTNMAP_CTX];            /* context fed to the text encoder: BOS, tokens, EOS, padding */
	int32_t pad_id;                 /* the padding id (the empty prompt of --method inversion:
					   BOS, EOS, then pad_id) */
	int T;                          /* real caption tokens, at positions 1..T */
	int truncated;
	char **token_strs;              /* [T] */
	uint32_t *spans;                /* [T][2] byte offsets into the text */
	int32_t *word_idx;              /* [T] */
	uint32_t n_words;
	char **words;                   /* [n_words] */
};

/* Seconds spent per stage, added to by lvd_attnmap_sample_run (one per worker; the
 * caller sums them; text, compress and io are the caller's to fill). */
struct lvd_attnmap_timing {
	double decode, text, vae, unet, aggregate, encode, compress, io;
};

/* One sample's input. */
struct lvd_attnmap_sample {
	uint64_t index;                 /* position in the manifest (0-based, over samples) */
	const char *id;
	const char *text;               /* the SD text as tokenized */
	const char *image;              /* as written in the manifest (recorded) */
	const char *image_path;         /* resolved */
	const struct lvd_attnmap_text *tok;
};

/* The noise stream of (sample id, timestep, draw): FNV-1a 64 over the id's bytes, a 0
 * byte, u32 LE timestep, u32 LE draw (offset basis 0xcbf29ce484222325, prime
 * 0x100000001b3). Noise element j of the latent [4][h][w] (C order) is
 * lvd_rng_normal(seed, stream, j). */
uint64_t lvd_attnmap_noise_stream(const char *id, int timestep, int draw);

/* Step 1 alone (decode, resize, scale to [-1, 1]) on the host; thread-safe. in->pix
 * [3][sd_h][sd_w] is freed by lvd_attnmap_input_free (also after a failure). Failures
 * belong to the sample (unreadable image, too small). */
struct lvd_attnmap_input {
	struct lvd_attnmap_geom g;
	float *pix;
};
int lvd_attnmap_sample_prepare(const struct lvd_attnmap_params *p, const struct lvd_attnmap_sample *s,
			       struct lvd_attnmap_input *in, struct lvd_attnmap_timing *tm, struct lvd_error *err);
void lvd_attnmap_input_free(struct lvd_attnmap_input *in);

/* What lvd_attnmap_samples_run gives per sample: rc 0 and the record payload
 * (malloc'd; the caller frees it), or rc and err (the sample is skipped). */
struct lvd_attnmap_result {
	uint8_t *payload;
	size_t len;
	int rc;
	struct lvd_error err;
};

/* Steps 2-5 of --method noise for n prepared samples where the model computes
 * (lvd_sd_ctx: its CPU context, or the device of lvd_sd_to_device; one thread at a time
 * there): samples of one latent shape are grouped in input order, max_items / (timesteps
 * × draws) samples per group (at least 1), and a group's passes run as batched UNet
 * passes of at most max_items (1..LVD_ATTNMAP_MAX_BATCH) items, each item with its
 * sample's text context. The maps of every sample are summed in the order of its
 * unbatched passes, so grouping changes a record only through the batched GEMMs' fp32
 * summation order. Returns LVD_ERR_NOMEM when the bookkeeping cannot be allocated, else
 * LVD_OK with res[i] filled (a failing pass fails every sample of its group). */
int lvd_attnmap_samples_run(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched,
			    const struct lvd_attnmap_params *p, int n, const struct lvd_attnmap_sample *const *s,
			    const struct lvd_attnmap_input *const *in, int max_items, struct lvd_attnmap_result *res,
			    struct lvd_attnmap_timing *tm);

/* Computes one sample's record payload into a malloc'd buffer (*out, *out_len; the
 * caller frees it): lvd_attnmap_sample_prepare, then --method noise by
 * lvd_attnmap_samples_run on this sample alone (lvd_attnmap_unet_batch items per UNet
 * pass), or --method inversion (CPU path only). sd is only read, so on the CPU path
 * several threads may run samples at once, each with its own tm (a device model runs
 * one at a time). Failures that belong to the sample (unreadable image, too small, a
 * text encoder with another context length, ...) return an error code with err holding
 * the reason; the caller lists the sample as skipped. */
int lvd_attnmap_sample_run(const struct lvd_sd *sd, const struct lvd_sd_schedule *sched,
		  const struct lvd_attnmap_params *p, const struct lvd_attnmap_sample *s, uint8_t **out,
		  size_t *out_len, struct lvd_attnmap_timing *tm, struct lvd_error *err);

#endif
