/* lib/train/loader.h — the lvd-sft pack loader: streams the records of an lvd-pack folder
 * in a deterministic order, decodes images and runs the mllama image processor in a small
 * pool of producer threads, and hands out right-padded batches ready for
 * struct lvd_mllama_batch and the Lavender loss (capture rows + one lvd_latt_plan per
 * sample), with the batch's loss counts known before the forward.
 *
 * Pack. PACK/pack.json (provenance: inputs.model holds config_sha256,
 * preprocessor_config_sha256 (when the model had one) and tokenizer_sha256) and
 * PACK/shards.jsonl (one line per complete shard, {"shard": k, "file", "records": n,
 * ...}); the shards are PACK/<file> (PACK/train-NNNNN.lvdp in lines without "file") in
 * the order of their lines. A pack of --shard i/N splits has pack-IIIII-of-NNNNN.json and
 * shards-IIIII-of-NNNNN.jsonl per split (io/splits.h): their shards in split order, all
 * N splits required (a missing one is LVD_ERR_INVALID naming it), inputs.model from
 * split 0's file. Each shard is opened and
 * validated at open (a truncated or corrupt shard is an error naming it), its record
 * count must equal its line's, and its header's inputs.model must equal pack.json's.
 * Memory: every shard's container index stays open (tens of bytes per record) and one
 * permutation (8 bytes per record) per cached epoch; records are read on demand, so RSS
 * is flat in the dataset size apart from that index.
 *
 * Model check (lvd_loader_check_model): the SHA-256 of MODEL/config.json,
 * MODEL/preprocessor_config.json and MODEL/tokenizer.json (else tokenizer.model) must
 * equal pack.json's; a difference (or a file present on one side only) is
 * LVD_ERR_INVALID naming the model file.
 *
 * Order. N records are numbered globally in shard order (shard 0's records, then shard
 * 1's, ...). Epoch e's order is the permutation perm_e of [0, N): the identity without
 * shuffling, else lvd_rng_shuffle (Fisher–Yates with Philox, core/rng.h) of the identity
 * with (seed, stream = LVD_LOADER_STREAM + e). It depends on nothing else.
 *
 * Steps, ranks and the cursor. G = world·batch samples form one global step. Within an
 * epoch the global steps cover order positions [p, p + G), p = p0, p0 + G, ... where p0
 * is where the run entered the epoch (0, or the resumed cursor's pos). Rank r takes the
 * CONTIGUOUS block [p + r·batch, p + (r+1)·batch) of each step (clipped at N). So W ranks
 * with batch b take exactly the samples that 1 rank with batch W·b takes, step for step
 * and in the same order (rank blocks concatenated), and a gradient accumulation of A
 * micro-steps covers what one step of batch A·b covers. drop_last = 1 (default) ends the
 * epoch when fewer than G positions remain (those samples are not used in that epoch);
 * drop_last = 0 gives a last partial step, in which some ranks' batches may be smaller
 * or empty (B = 0). The cursor {epoch, pos} names the next global step; it is the same
 * on every rank. A run that saves lvd_loader_cursor() after its last consumed batch and
 * reopens at that cursor gets the same batches as an uninterrupted run.
 *
 * Batches. Sample b's tokens fill input_ids[b, 0..len_b), then pad_id; labels are the
 * pack's labels, −100 in the padding; T = max len_b. pixel_values [B, 1, TL, 3, tile,
 * tile] from lvd_mllama_image_process (unused tiles zero), aspect_ratio_ids [B, 1],
 * aspect_ratio_mask [B, 1, TL], cross_attention_mask [B, T, 1, TL] from
 * lvd_mllama_cross_mask over the padded ids (the processor's rule). Capture rows: the
 * sorted distinct query positions of the sample's words (= plan.rows_pos), indexed by
 * cap_off[B + 1]. n_label_tokens counts the positions the model's CE counts
 * (t >= 1 with labels[t] != −100, as lvd_mllama_loss_count); n_pairs the matched
 * (sample, word) pairs: the counts of this rank's batch, ready before the forward;
 * lvd_loader_step_counts gives those of whole global steps (all ranks, several
 * accumulation micro-steps) from the records alone. A batch's content depends only on
 * the pack, the options other than threads/prefetch, and its step: it is byte-identical
 * for any thread count.
 *
 * MiniCPM-Llama3-V-2.5 (model_kind LVD_LOADER_MINICPMV; loader_mcv.c): the pack's records
 * must be version-2 MCV records (lavender/packrec.h), an mllama pack is refused at open
 * naming both model types (and a stray record of the other kind by its name). Per sample
 * the decoded image goes through lvd_minicpmv_preprocess with the model's slice_config;
 * its slice grid, picture count, every picture's patch grid (th, tw) and query_num must
 * equal the record's (else LVD_ERR_INVALID naming file, record and the first field that
 * differs). The batch then holds the pictures of all samples in sample order (NI, Lmax,
 * strips [NI, 3, ps, Lmax·ps] zero beyond each picture, tgt_sizes [NI, 2], n_images [B],
 * image_bound [NI, 2] = the record's ranges), tokens and the record's pre-shifted labels
 * (−100 in the padding; pad id: the config's pad_token_id, else 0 — the decoder is causal
 * and right padding is never attended by real tokens), the capture rows as above and one
 * struct lvd_lstep_mcv_sample per sample (its slice grid, N = the record's --grid, rows =
 * the capture rows, one lvd_latt_word per record word with its fp16 target as floats; the
 * targets of a sample are one [W, N·N] block in word order).
 * n_label_tokens counts every position with a label (the labels are aligned with the
 * logits: lvd_minicpmv_loss's count). The mllama fields (pixel_values, aspect ratios,
 * cross-attention mask, plans) stay NULL.
 *
 * Errors: LVD_ERR_IO / LVD_ERR_FORMAT / LVD_ERR_INVALID with a message naming the file
 * and, for records, "PACK/train-00003.lvdp: record 17 ('id')". A batch whose sample fails
 * is returned by lvd_loader_next as that error (the lowest failing sample of the batch);
 * the loader then stays failed. Threads: one consumer calls next/release/seek/cursor. */
#ifndef LVD_TRAIN_LOADER_H
#define LVD_TRAIN_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "lavender/latt.h"
#include "lavender/lstep_mcv.h"
#include "models/minicpmv/minicpmv_proc.h"
#include "models/mllama/mllama.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_LOADER_STREAM 0x4C4F414400000000ull /* "LOAD" << 32: shuffle stream of epoch 0 */
#define LVD_LOADER_MAX_THREADS 256
#define LVD_LOADER_MAX_PREFETCH 64

/* The model a pack feeds (model_kind). */
enum lvd_loader_model {
	LVD_LOADER_MLLAMA = 0,      /* version-1 records, tiles and cross-attention */
	LVD_LOADER_MINICPMV = 1,    /* version-2 MCV records, slices and image_bound */
};

struct lvd_loader_opts {
	const char *pack;           /* pack folder (required) */
	int model_kind;             /* enum lvd_loader_model (default mllama) */
	struct lvd_minicpmv_slice_cfg slice; /* MiniCPM: max_slices == 0 (default): the model
	                             * folder's slice_config (model required then) */
	int query_num;              /* MiniCPM: Q; 0 (default): the model's query_num */
	const char *model;          /* model folder: fingerprint check, image processor and pad
	                             * id defaults; NULL skips the check (tests, inspection) */
	int batch;                  /* samples per rank per step, >= 1 */
	int rank, world;            /* 0 <= rank < world */
	uint64_t seed;
	int shuffle;                /* 1 (default): permutation per (seed, epoch); 0: pack order */
	int drop_last;              /* 1 (default): no partial last step */
	int threads;                /* producer threads, >= 1 (default 2) */
	int prefetch;               /* batches produced ahead, >= 1 (default 2); also the most
	                             * batches the consumer may hold at once */
	int pad_id;                 /* input id of padding; < 0 (default): the model's
	                             * text_config.pad_token_id (an error when absent) */
	int images;                 /* 1 (default): decode and process images; 0: no pixels */
	const char *image_root;     /* records storing a path: relative paths are joined to it */
	struct lvd_mllama_image_cfg image;  /* tile == 0 (default): tile/max_tiles from the model's
	                             * config.json / preprocessor_config.json (image_mean,
	                             * image_std too), else lvd_mllama_image_cfg_default */
	/* The per-sample Lavender plan (lvd_latt_plan_from_packrec with S = max_tiles·tile_tok,
	 * tok0 = 0): built when heads > 0. */
	int heads, tile_tok, official;
	int image_token;            /* the model's <|image|> id (config image_token_index):
	                             * a record whose image_pos holds another token is an error
	                             * naming it; < 0 (default): not checked */
};

void lvd_loader_opts_default(struct lvd_loader_opts *o);

struct lvd_loader_cursor {
	uint64_t epoch;             /* epoch of the next global step */
	uint64_t pos;               /* its first position in the epoch's order (all ranks) */
};

/* One batch of this rank (all arrays owned by the loader, valid until
 * lvd_loader_release). */
struct lvd_loader_batch {
	uint64_t epoch, pos;        /* the global step: epoch and first order position */
	uint64_t seq;               /* steps handed out since open/seek */
	int B, T, TL;               /* samples, padded length, tiles (M = 1 image per sample) */
	int *input_ids, *labels;    /* [B, T] */
	int *lengths;               /* [B] unpadded lengths */
	float *pixel_values;        /* [B, 1, TL, 3, tile, tile]; NULL without images */
	int *aspect_ratio_ids;      /* [B, 1] */
	int *aspect_ratio_mask;     /* [B, 1, TL] */
	int *cross_attention_mask;  /* [B, T, 1, TL] */
	int *cap_rows, *cap_off;    /* capture rows (see above), cap_off [B + 1] */
	struct lvd_latt_plan *plans;/* [B] when opts.heads > 0, else NULL */
	uint64_t *records;          /* [B] global record numbers */
	const char **ids;           /* [B] sample ids (borrowed from the shard index) */
	int64_t n_label_tokens;     /* CE label positions of the batch */
	int64_t n_pairs;            /* matched (sample, word) pairs of the batch */
	/* MiniCPM (model_kind LVD_LOADER_MINICPMV; else 0 / NULL) */
	int NI, Lmax;               /* pictures of the batch, longest picture in patches */
	float *strips;              /* [NI, 3, ps, Lmax·ps]; NULL without images */
	int *tgt_sizes;             /* [NI, 2] (th, tw) */
	int *n_images;              /* [B] */
	int *image_bound;           /* [NI, 2] token ranges [start, end) */
	struct lvd_lstep_mcv_sample *mcv; /* [B] the Lavender inputs (borrowing the batch) */
};

struct lvd_loader;

/* The image processor of a model folder: CLIP defaults (lvd_mllama_image_cfg_default),
 * tile size and max tiles from MODEL/config.json then MODEL/preprocessor_config.json
 * (when present: size, max_image_tiles, image_mean, image_std). Errors name the file. */
int lvd_loader_image_cfg(struct lvd_mllama_image_cfg *img, const char *model, struct lvd_error *err);

/* Checks the pack's recorded model fingerprints against the model folder (above). */
int lvd_loader_check_model(const char *pack, const char *model, struct lvd_error *err);

/* The order of epoch e over n records (out[n]: record numbers). */
void lvd_loader_order(size_t *out, size_t n, uint64_t seed, uint64_t epoch, int shuffle);

/* Opens the pack (check, shards, options) and starts the producers at cursor (NULL: the
 * start). Errors: LVD_ERR_INVALID (options, model mismatch, an empty pack or fewer
 * records than one global step with drop_last), LVD_ERR_IO/FORMAT (files), LVD_ERR_NOMEM. */
int lvd_loader_open(struct lvd_loader **out, const struct lvd_loader_opts *opts,
		    const struct lvd_loader_cursor *cursor, struct lvd_error *err);
/* Stops the producers and frees everything (held batches included). NULL is a no-op. */
void lvd_loader_close(struct lvd_loader *l);

uint64_t lvd_loader_records(const struct lvd_loader *l);        /* N */
uint64_t lvd_loader_steps_per_epoch(const struct lvd_loader *l); /* global steps of a full epoch */
/* Shard path and record id of global record g < N (borrowed). */
const char *lvd_loader_record_shard(const struct lvd_loader *l, uint64_t g);
const char *lvd_loader_record_id(const struct lvd_loader *l, uint64_t g);

/* The next batch of this rank (blocks until produced). Epochs follow one another without
 * end; the caller stops. Errors: a failed sample (see above), LVD_ERR_INVALID when the
 * caller already holds `prefetch` batches. */
int lvd_loader_next(struct lvd_loader *l, struct lvd_loader_batch **out, struct lvd_error *err);
/* Gives a batch back (its slot is reused). */
void lvd_loader_release(struct lvd_loader *l, struct lvd_loader_batch *b);
/* The cursor of the step after the last batch handed out (save it in a checkpoint). */
struct lvd_loader_cursor lvd_loader_cursor(const struct lvd_loader *l);
/* Restarts production at cursor (queued batches dropped). Every batch must have been
 * released (LVD_ERR_INVALID otherwise). */
int lvd_loader_seek(struct lvd_loader *l, const struct lvd_loader_cursor *cursor, struct lvd_error *err);

/* Loss counts of the k global steps seq, seq + 1, ... (seq = a batch's seq field; all
 * ranks' samples of those steps: what n_label_tokens and n_pairs sum to over every rank's
 * batches), read from the records without image work. For split-invariant normalisation
 * (--loss-norm tokens) of a gradient accumulation of k micro-steps over W ranks, before
 * the first forward and without communication. Thread: the consumer's. Errors: those of a
 * record read (named), LVD_ERR_INVALID (k < 0 or too large), LVD_ERR_NOMEM. */
int lvd_loader_step_counts(struct lvd_loader *l, uint64_t seq, int k, int64_t *label_tokens, int64_t *pairs,
			   struct lvd_error *err);

/* Fills mb (borrowing b's arrays; M = 1) for lvd_mllama_forward. */
void lvd_loader_batch_view(const struct lvd_loader_batch *b, struct lvd_mllama_batch *mb);
/* Fills mb (borrowing b's arrays, labels included; no capture) from a MiniCPM batch for
 * lvd_minicpmv_forward / lvd_lstep_mcv_run. */
void lvd_loader_batch_view_mcv(const struct lvd_loader_batch *b, struct lvd_minicpmv_batch *mb);

/* The model kind of a model folder: its config.json model_type "mllama" or "minicpmv"
 * (LVD_ERR_UNSUPPORTED naming the file and the type otherwise; IO/FORMAT errors named). */
int lvd_loader_model_kind(const char *model, int *kind, struct lvd_error *err);
/* "mllama" / "MiniCPM-V (minicpmv)": a kind's name in messages. */
const char *lvd_loader_model_name(int kind);

#ifdef __cplusplus
}
#endif
#endif
