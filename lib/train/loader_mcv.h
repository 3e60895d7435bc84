/* lib/train/loader_mcv.h — the MiniCPM-Llama3-V-2.5 part of the pack loader (loader.h):
 * one MCV record into a sample (pictures, geometry check, Lavender words) and the batch
 * fields of a MiniCPM batch. loader.c keeps the shards, the order, the producers and the
 * common fields (tokens, labels, capture rows); not a public header. */
#ifndef LVD_TRAIN_LOADER_MCV_H
#define LVD_TRAIN_LOADER_MCV_H

#include "io/image.h"
#include "lavender/packrec.h"
#include "train/loader.h"

/* What the model folder fixes: slicing, Q and the patch side. */
struct loader_mcv_cfg {
	struct lvd_minicpmv_slice_cfg slice;
	int Q;
};

/* opts' slice / query_num, else the model folder's config.json (errors name it). */
int loader_mcv_cfg_load(struct loader_mcv_cfg *c, const struct lvd_loader_opts *o, struct lvd_error *err);

struct loader_mcv_samp; /* one sample's pictures and words (loader_mcv.c) */

/* Sample from rec (an MCV record, checked by the caller) and its decoded image (NULL: no
 * pixels; the patch grids come from the record): the model's slicing must give the
 * record's geometry. rows [R]: the sample's sorted capture rows (borrowed; the words
 * index them). Errors name `where`. */
int loader_mcv_sample(struct loader_mcv_samp **out, const struct loader_mcv_cfg *c, const struct lvd_packrec *rec,
		      const struct lvd_image *im, const uint32_t *rows, int R, const char *where, struct lvd_error *err);
void loader_mcv_samp_free(struct loader_mcv_samp *s);

/* Growing buffers of one slot's MiniCPM fields. */
struct loader_mcv_bufs {
	size_t cap_strips, cap_pics;
};

/* The MiniCPM fields of b (B samples s[B]; rows[i] / R[i] their capture rows, borrowed
 * until release) into b; b->n_images and b->mcv hold B entries. LVD_ERR_NOMEM. */
int loader_mcv_assemble(struct loader_mcv_bufs *bb, struct lvd_loader_batch *b, struct loader_mcv_samp *const *s,
			uint32_t *const *rows, const int *R, struct lvd_error *err);
void loader_mcv_bufs_free(struct lvd_loader_batch *b);

#endif
