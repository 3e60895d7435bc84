/* tests/sd_dev_util.h — shared by tests/unit/test_sd_dev.c (the device path of the SD
 * model and sd-attnmap's sample procedure, run on a CPU context) and
 * tests/gpu/test_cuda_sd.c (the same on a CUDA context): the tiny SD checkpoint of
 * tests/golden/sd, two real photos of ../shared/data/images with made-up captions,
 * the sample procedure at resolution 256, and record maps decoded to fp32.
 *
 * Tolerance of the device path against the fp32 CPU path (SD_DEV_MAP_TOL): every
 * product rounds its activation input and its weight to bf16 (8-bit significand,
 * relative error <= 2^-9 each), so each layer's output moves by ~2^-8 of its scale and
 * the UNet's ~40 layers add these up, partly cancelling, before the softmax of attn2;
 * the maps are averages of probabilities over 4 timesteps and the selected layers.
 * Measured on this checkpoint and these photos, bf16 weights on the CPU vs fp32 (when
 * the test was written): max |diff| 6.1e-4 and 7.6e-4 of maps whose largest values are
 * 0.074 and 0.061, i.e. 0.8% and 1.3% of the scale. The bound is 5% of each map set's
 * largest value, about 4x the measurement, still far below a wrong map (a transposed or
 * mis-resized map, another token, a missed layer or timestep moves values by the scale
 * itself). */
#ifndef LVD_TESTS_SD_DEV_UTIL_H
#define LVD_TESTS_SD_DEV_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"
#include "lavender/attnmap.h"
#include "lavender/attnmap_sample.h"
#include "lavender/mapsrec.h"
#include "models/sd/sd.h"

#define SD_DEV_MAP_TOL 0.05

#define SD_DEV_NS 3   /* samples: astronaut, coco, astronaut again under another id */

struct sd_dev_fixture {
	struct lvd_attnmap_params p;
	struct lvd_sd_schedule sched;
	struct lvd_attnmap_text text[SD_DEV_NS];
	struct lvd_attnmap_sample s[SD_DEV_NS];
	char img[SD_DEV_NS][4200];
	char *strs[8];
	uint32_t spans[16];
	int32_t widx[8];
	char *words[8];
};

/* Fixed made-up captions: T tokens with ids folded into the tiny vocabulary. */
static inline void sd_dev_fixture_init(struct sd_dev_fixture *f, const char *shared)
{
	static const char *const files[SD_DEV_NS] = {"skimage_astronaut.png", "COCO_val2014_000000038678.png",
						     "skimage_astronaut.png"};
	static const char *const ids[SD_DEV_NS] = {"astronaut", "coco38678", "astronaut-2"};
	static const int T[SD_DEV_NS] = {5, 7, 3};
	memset(f, 0, sizeof *f);
	f->p.resolution = 256;
	f->p.layers = LVD_ATTNMAP_DEFAULT_LAYERS;
	f->p.n_timesteps = 4;
	f->p.timesteps[0] = 100;
	f->p.timesteps[1] = 300;
	f->p.timesteps[2] = 500;
	f->p.timesteps[3] = 700;
	f->p.draws = 1;
	f->p.seed = 7;
	f->p.min_side = 64;
	f->p.fold_vocab = 1;
	lvd_sd_schedule_init(&f->sched, 1000, 0.00085, 0.012);
	for (int i = 0; i < 8; i++) {
		f->strs[i] = "w</w>";
		f->spans[2 * i] = 0;
		f->spans[2 * i + 1] = 1;
		f->widx[i] = 0;
		f->words[i] = "w";
	}
	for (int k = 0; k < SD_DEV_NS; k++) {
		struct lvd_attnmap_text *t = &f->text[k];
		t->ids[0] = 49406;
		for (int i = 1; i <= T[k]; i++)
			t->ids[i] = 320 + 97 * i + 13 * k;
		for (int i = T[k] + 1; i < LVD_ATTNMAP_CTX; i++)
			t->ids[i] = 49407;
		t->pad_id = 49407;
		t->T = T[k];
		t->token_strs = f->strs;
		t->spans = f->spans;
		t->word_idx = f->widx;
		t->n_words = 1;
		t->words = f->words;
		snprintf(f->img[k], sizeof f->img[k], "%s/images/%s", shared, files[k]);
		f->s[k] = (struct lvd_attnmap_sample){.index = (uint64_t)k, .id = ids[k], .text = "w", .image = files[k],
						      .image_path = f->img[k], .tok = t};
	}
}

/* The tiny checkpoint (fp32 CPU model on 2 threads), moved onto dev when given
 * (lvd_sd_to_device); NULL on failure (printed). */
static inline struct lvd_sd *sd_dev_load(struct lvd_ctx *dev)
{
	struct lvd_sd *sd = NULL;
	struct lvd_error err = {0};
	struct lvd_sd_opts o = {.threads = 2};
	const char *path = lvd_test_path("tests/golden/sd/diffusers");
	if (lvd_sd_load(&sd, path, &o, &err)) {
		fprintf(stderr, "  load %s: %s\n", path, err.msg);
		return NULL;
	}
	if (dev && lvd_sd_to_device(sd, dev, &err)) {
		fprintf(stderr, "  lvd_sd_to_device: %s\n", err.msg);
		lvd_sd_free(sd);
		return NULL;
	}
	return sd;
}

/* Decodes every fixture sample into in[] and points sp[] / ip[] at them (for
 * lvd_attnmap_samples_run); 0, or -1 after printing. */
static inline int sd_dev_prepare_all(const struct sd_dev_fixture *f, struct lvd_attnmap_input *in,
				     const struct lvd_attnmap_sample **sp, const struct lvd_attnmap_input **ip)
{
	struct lvd_attnmap_timing tm = {0};
	struct lvd_error err = {0};
	for (int k = 0; k < SD_DEV_NS; k++) {
		if (lvd_attnmap_sample_prepare(&f->p, &f->s[k], &in[k], &tm, &err)) {
			fprintf(stderr, "  prepare %s: %s\n", f->s[k].id, err.msg);
			return -1;
		}
		sp[k] = &f->s[k];
		ip[k] = &in[k];
	}
	return 0;
}

/* The fp32 maps [T][GH][GW] of a record payload (malloc'd), with *n values. */
static inline float *sd_dev_maps(const uint8_t *payload, size_t len, size_t *n)
{
	struct lvd_mapsrec r;
	struct lvd_error err = {0};
	if (lvd_mapsrec_decode(&r, payload, len, "test", &err))
		return NULL;
	*n = (size_t)r.T * r.grid_w * r.grid_h;
	float *m = malloc(*n * sizeof *m);
	for (size_t i = 0; m && i < *n; i++)
		m[i] = lvd_f16_to_f32(r.maps[i]);
	lvd_mapsrec_free(&r);
	return m;
}

/* The maps of sample k by lvd_attnmap_sample_run (malloc'd; NULL on failure, printed). */
static inline float *sd_dev_run(const struct lvd_sd *sd, const struct sd_dev_fixture *f, int k, size_t *n)
{
	struct lvd_attnmap_timing tm = {0};
	struct lvd_error err = {0};
	uint8_t *buf = NULL;
	size_t len = 0;
	if (lvd_attnmap_sample_run(sd, &f->sched, &f->p, &f->s[k], &buf, &len, &tm, &err)) {
		fprintf(stderr, "  sample %s: %s\n", f->s[k].id, err.msg);
		return NULL;
	}
	float *m = sd_dev_maps(buf, len, n);
	free(buf);
	return m;
}

/* The first two samples one at a time (lvd_attnmap_sample_run) on model b against
 * model a: maps within tol of each map set's largest value. */
static inline void sd_dev_check_samples(const struct lvd_sd *a, const struct lvd_sd *b,
					const struct sd_dev_fixture *f, double tol)
{
	for (int k = 0; k < 2; k++) {
		size_t na = 0, nb = 0;
		float *ma = sd_dev_run(a, f, k, &na), *mb = sd_dev_run(b, f, k, &nb);
		REQUIRE(ma && mb && na == nb);
		CHECK_CLOSE(f->s[k].id, mb, ma, na, 0, tol);
		free(ma);
		free(mb);
	}
}

/* All three samples through lvd_attnmap_samples_run on model b, max_items 8 (two
 * samples of 4 passes per UNet pass: astronaut and astronaut-2 share a pass, coco runs
 * alone), against each sample run alone on model a, within tol. */
static inline void sd_dev_check_grouped(const struct lvd_sd *a, const struct lvd_sd *b,
					const struct sd_dev_fixture *f, double tol)
{
	struct lvd_attnmap_timing tm = {0};
	struct lvd_attnmap_input in[SD_DEV_NS];
	const struct lvd_attnmap_sample *sp[SD_DEV_NS];
	const struct lvd_attnmap_input *ip[SD_DEV_NS];
	struct lvd_attnmap_result res[SD_DEV_NS];
	REQUIRE(sd_dev_prepare_all(f, in, sp, ip) == 0);
	REQUIRE(lvd_attnmap_samples_run(b, &f->sched, &f->p, SD_DEV_NS, sp, ip, 8, res, &tm) == 0);
	for (int k = 0; k < SD_DEV_NS; k++) {
		CHECKF(res[k].rc == 0, "sample %d: %s", k, res[k].err.msg);
		if (res[k].rc)
			continue;
		size_t ng = 0, n1 = 0;
		float *mg = sd_dev_maps(res[k].payload, res[k].len, &ng), *m1 = sd_dev_run(a, f, k, &n1);
		REQUIRE(mg && m1 && ng == n1);
		CHECK_CLOSE(f->s[k].id, mg, m1, ng, 0, tol);
		free(mg);
		free(m1);
		free(res[k].payload);
	}
	for (int k = 0; k < SD_DEV_NS; k++)
		lvd_attnmap_input_free(&in[k]);
}

#endif
