/* sd-attnmap run: inputs of the work loop — manifest samples with their SD text and
 * image path (inputs.c), CLIP tokenization into struct lvd_attnmap_text (tok.c), and the
 * provenance hashes of the checkpoint and tokenizer files (inputs.c). */
#ifndef LVD_SD_ATTNMAP_RUNCTX_H
#define LVD_SD_ATTNMAP_RUNCTX_H

#include <jansson.h>
#include <stdint.h>

#include "core/error.h"
#include "lavender/attnmap_sample.h"

#define AM_TEXT_AUTO 0
#define AM_EOF (-1)

/* "caption" | "assistant" | "all" | "auto" -> field, or -1. */
int am_text_field_parse(const char *name);
const char *am_text_field_name(int field);

/* One manifest sample, owned. */
struct am_input {
	uint64_t index;        /* 0-based position among the manifest's samples */
	char *id;              /* NULL when the line could not be parsed */
	char *image;           /* as written in the manifest */
	char *image_path;      /* resolved against --images */
	char *text;            /* the SD text */
	struct lvd_attnmap_text tok;    /* filled by am_tok_text */
};
void am_input_free(struct am_input *in);

struct am_manifest;
/* images: root for relative paths (NULL: the manifest's folder). field: enum
 * lvd_text_field. id_from_image: a sample without "id" takes its "image" string
 * (lvd_manifest_opts). */
int am_manifest_open(struct am_manifest **out, const char *path, const char *images, int field,
		     int id_from_image, struct lvd_error *err);
/* Samples in the file (counted once at open). */
uint64_t am_manifest_count(const struct am_manifest *m);
/* Next sample: 0 (filled), AM_EOF, or an error code for this sample with err set and
 * in->index/id filled as far as known (the caller lists it as skipped). I/O errors
 * while reading are reported as AM_EOF after logging them (am_item_next then stops the
 * run: LVD_SHARDRUN_FATAL). */
int am_manifest_next(struct am_manifest *m, struct am_input *in, struct lvd_error *err);
void am_manifest_close(struct am_manifest *m);
/* The shard driver's `next` step shared by run and import: reads the next sample into
 * in, points s and base at it, and marks base failed (stage `what`, may be NULL) when the
 * sample is bad. Returns LVD_SHARDRUN_EOF at the end, else 0. */
struct lvd_shardrun_item;
int am_item_next(struct am_manifest *m, struct am_input *in, struct lvd_attnmap_sample *s,
		 struct lvd_shardrun_item *base, const char *what);

/* CLIP tokenizer (BOS 49406, EOS 49407, padding to 77 with the tokenizer folder's pad
 * token: EOS for SD 1.x, "!" = 0 for SD 2.x; see tok.c). */
struct am_tok;
/* The pad id of the tokenizer at path (a folder, a checkpoint root holding tokenizer/,
 * or a file in such a folder), as above; LVD_ERR_INVALID when its pad token is not in
 * the folder's vocab.json. */
int am_tok_pad_id(const char *path, int32_t *pad, struct lvd_error *err);
int am_tok_open(struct am_tok **out, const char *path, struct lvd_error *err);
/* Tokenizes text into *out (owned arrays; freed by am_text_free). Text with no token
 * is an error ("empty text"). More than 75 tokens are truncated (out->truncated). */
int am_tok_text(struct am_tok *t, const char *text, struct lvd_attnmap_text *out, struct lvd_error *err);
void am_text_free(struct lvd_attnmap_text *t);
void am_tok_close(struct am_tok *t);

/* {"file": sha256 of (8-byte length + JSON header)} for every .safetensors file of the
 * checkpoint (a single file, or text_encoder/ vae/ unet/ of a diffusers folder), plus
 * {"file": sha256} of a folder's model_index.json, the config.json of each component and
 * scheduler/scheduler_config.json. */
int am_hash_sd_headers(const char *sd_path, json_t **out, struct lvd_error *err);
/* {"file": sha256} of the tokenizer files (vocab.json, merges.txt, ..., or the file given)
 * and of the folder's special_tokens_map.json and tokenizer_config.json (the pad token). */
int am_hash_tokenizer(const char *path, json_t **out, struct lvd_error *err);

#endif
