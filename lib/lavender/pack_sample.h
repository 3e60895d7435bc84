/* lib/lavender/pack_sample.h — one manifest sample -> one lvd-pack training record
 * payload (lib/lavender/packrec.h).
 *
 * Steps: the conversation as Llama-3.2-Vision chat tokens and labels (enum lvd_pack_labels)
 * (lib/text/chat.h, through lvd_pack_chat_encode), image size probe, word matching of the
 * SD record against the answer (lib/lavender/match.h), map resampling onto the VLM patch
 * canvas (lib/lavender/geometry.h), min-max normalisation, encoding.
 *
 * MiniCPM-Llama3-V-2.5 (params.model = LVD_PACK_MODEL_MINICPMV; pack_sample_mcv.c): the
 * image's slicing (lvd_minicpmv_slice_geom), the chat, pre-shifted labels and image_bound
 * of lvd_minicpmv_chat_build, the same word matching with query rows after the last
 * picture, targets on an N×N grid over the whole image; a version-2 record (packrec.h,
 * flag MCV). The lvd-pack tool handles the manifest, the maps join, shards, resume and
 * statistics (docs/pack.md). */
#ifndef LVD_LAVENDER_PACK_SAMPLE_H
#define LVD_LAVENDER_PACK_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/manifest.h"
#include "lavender/geometry.h"
#include "lavender/mapsrec.h"
#include "lavender/match.h"
#include "models/minicpmv/minicpmv_proc.h"
#include "text/chat.h"
#include "text/llama_tok.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_PACK_DEFAULT_PROMPT "Describe the image in a single sentence as a caption."

/* Which tokens are trained (--labels) and which BOS the sequence starts with. */
enum lvd_pack_labels {
	LVD_PACK_LABELS_RECIPES = 0,  /* one BOS; labels = the assistant turns (lvd_chat_labels,
					 llama-recipes' tokenize_dialogs) */
	LVD_PACK_LABELS_OFFICIAL = 1, /* two BOS (LVD_CHAT_TWO_BOS); labels = every token but the
					 assistant header triples and <|image|>
					 (lvd_chat_labels_official): what the official Lavender
					 Flickr30k/RLAIF-V collators really feed
					 (../shared/reference/lavender.md §3.1) */
	LVD_PACK_LABELS_OPENBMB = 2,  /* MiniCPM-V only: OpenBMB's finetune rule, targets already
					 shifted (lvd_minicpmv_chat_build) */
};

/* The VLM the records are for (MODEL/config.json's model_type). */
enum lvd_pack_model {
	LVD_PACK_MODEL_MLLAMA = 0,    /* Llama-3.2-Vision: version-1 records */
	LVD_PACK_MODEL_MINICPMV = 1,  /* MiniCPM-Llama3-V-2.5: version-2 records (flag MCV) */
};

/* MiniCPM-V constants (params.model = LVD_PACK_MODEL_MINICPMV). */
struct lvd_pack_mcv {
	struct lvd_minicpmv_slice_cfg slice; /* config.json slice_config */
	int query_num;                       /* config.json query_num: <unk> tokens per picture */
	struct lvd_minicpmv_tok_ids ids;     /* lvd_minicpmv_tok_ids_get on the tokenizer */
};

/* "recipes" / "official" / "openbmb" */
const char *lvd_pack_labels_name(enum lvd_pack_labels l);

/* Options that change the records (recorded in pack.json and every shard header). */
struct lvd_pack_params {
	enum lvd_pack_model model;
	enum lvd_pack_labels labels;     /* MiniCPM-V: LVD_PACK_LABELS_OPENBMB */
	struct lvd_geom_cfg geom;        /* mllama */
	struct lvd_pack_mcv mcv;         /* MiniCPM-V */
	int grid;                        /* 0 = patch canvas (mllama only), N = N×N */
	int match_all;                   /* --match-in all */
	enum lvd_query_at query_at;
	const struct lvd_stopwords *stop;/* borrowed; may be NULL */
	int keep_raw;
	int embed_images;
	int verify_images;               /* fully decode every image */
	uint32_t max_tokens;
	int overlong_truncate;           /* else drop */
	int allow_missing_maps;
	const char *prompt;              /* user text for caption-only samples */
};

/* A sample's conversation as chat tokens (lvd_chat_render: BOS (two with
 * LVD_PACK_LABELS_OFFICIAL), then per message
 * <|start_header_id|>role<|end_header_id|>"\n\n" content <|eot_id|>; <|image|> goes first
 * in the first user turn, replacing a leading "<image>" and one newline after it), with
 * the views lvd-pack needs. Content is plain text (special-token names stay text). */
struct lvd_pack_chat {
	struct lvd_chat_out out;         /* ids, segments, message index, rendered text */
	int32_t *labels;                 /* [T] -100 or the id (enum lvd_pack_labels) */
	uint8_t *region;                 /* [T] 1 = the answer: a token of an assistant message after
					    its header, not <|eot_id|> (for every label mode) */
	char *text;                      /* [text_len] decoded pieces, "\n" for every special token */
	size_t text_len;
	uint32_t *beg, *end;             /* [T] byte span of each token in text (specials: empty) */
	uint32_t *msg_end;               /* [n_msg] token index after each message's <|eot_id|> */
	int *msg_role;                   /* [n_msg] enum lvd_role */
	size_t n_msg;
	long image_pos;                  /* -1 when none */
	/* scratch, reused across calls */
	struct lvd_chat_msg *msgs;
	struct lvd_chat_item *items;
	size_t cap_msg, cap_tok, cap_text;
};

/* Checks that tok has the chat special tokens. LVD_ERR_NOTFOUND names the missing one. */
int lvd_pack_check_tokenizer(const struct lvd_llama_tok *tok, struct lvd_error *err);

/* Encodes the sample's conversation (or, without conversations, user = prompt and
 * assistant = caption), with BOS and labels as `labels` says. Errors: LVD_ERR_INVALID for
 * an empty answer ("empty answer: ..."), no user turn, no conversations and no caption,
 * invalid UTF-8; LVD_ERR_NOTFOUND (chat specials), LVD_ERR_NOMEM. c must be zeroed
 * before first use; it is reused across calls; lvd_pack_chat_free at the end. */
int lvd_pack_chat_encode(struct lvd_pack_chat *c, struct lvd_llama_tok *tok, const struct lvd_sample *s,
			 const char *prompt, enum lvd_pack_labels labels, struct lvd_error *err);
void lvd_pack_chat_free(struct lvd_pack_chat *c);

/* Width and height from a PNG or JPEG header (name is used in messages). LVD_ERR_FORMAT
 * otherwise. */
int lvd_pack_image_size(const uint8_t *data, size_t len, int *w, int *h, const char *name, struct lvd_error *err);

/* Per-sample statistics. */
struct lvd_pack_stats {
	uint32_t tokens, label_tokens, words;
	uint32_t region_words, content_words, content_matched;
	int missing_maps, truncated, dropped;
};

/* One sample's inputs (all borrowed). */
struct lvd_pack_input {
	const struct lvd_sample *s;
	const char *image_path;          /* resolved path (stored with --no-embed-images) */
	const char *image_ref;           /* the manifest's image string */
	const uint8_t *image;            /* file bytes */
	size_t image_len;
	const struct lvd_mapsrec *maps;  /* NULL when the maps have no record for the id */
};

/* Builds the payload (a MiniCPM-V record when p->model says so; chat is then unused).
 * Returns 0 with *out (malloc'd, caller frees) or *out == NULL when the
 * sample is dropped as overlong (st->dropped); on error err holds the reason and *kind a
 * short category for errors.jsonl ("missing_maps", "image", "empty_answer", "maps",
 * "text"). chat is scratch (see lvd_pack_chat_encode). LVD_ERR_INVALID for labels openbmb
 * on mllama; MiniCPM-V: for grid 0 (its targets are N×N over the image), labels other
 * than openbmb, and a conversation whose first turn is not the user's (OpenBMB puts the
 * image in message 0). */
int lvd_pack_sample_build(const struct lvd_pack_params *p, struct lvd_llama_tok *tok, struct lvd_pack_chat *chat,
			  const struct lvd_pack_input *in, uint8_t **out, size_t *out_len, struct lvd_pack_stats *st,
			  const char **kind, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
