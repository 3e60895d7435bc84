/* lvd-pack: one manifest sample -> one training record payload (lib/lavender/packrec.h).
 *
 * Steps: chat template + labels (pk_chat_encode), image size probe, word matching of the
 * SD record against the answer (lib/lavender/match.h), map resampling onto the VLM patch
 * canvas (lib/lavender/geometry.h), min-max normalisation, encoding. run.c handles the
 * manifest, the maps join, shards, resume and statistics. */
#ifndef LVD_PACK_SAMPLE_H
#define LVD_PACK_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/manifest.h"
#include "lavender/geometry.h"
#include "lavender/mapsrec.h"
#include "lavender/match.h"
#include "text/llama_tok.h"
#include "text/tokens.h"

#define PK_DEFAULT_PROMPT "Describe the image in a single sentence as a caption."

/* Options that change the records (recorded in pack.json and every shard header). */
struct pk_params {
	struct lvd_geom_cfg geom;
	int grid;                        /* 0 = patch canvas, N = N×N */
	int match_all;                   /* --match-in all */
	enum lvd_query_at query_at;
	const struct lvd_stopwords *stop;
	int keep_raw;
	int embed_images;
	int verify_images;               /* fully decode every image */
	uint32_t max_tokens;
	int overlong_truncate;           /* else drop */
	int allow_missing_maps;
	const char *prompt;              /* user text for caption-only samples */
};

/* Chat-template token sequence of a conversation (Mllama instruct template:
 * BOS, then per message <|start_header_id|>role<|end_header_id|>"\n\n" content
 * <|eot_id|>; the image placeholder <|image|> goes first in the first user turn,
 * replacing a leading "<image>" and one newline after it). Content is encoded as plain
 * text (special-token names inside it stay text). */
struct pk_chat {
	struct lvd_tokens tok;           /* ids; start/end = byte spans into text */
	char *text;                      /* decoded pieces, "\n" for every special token */
	size_t text_len, text_cap;
	int32_t *labels;                 /* [n] -100 or the id (llama-recipes rule) */
	uint8_t *region;                 /* [n] 1 = assistant content (answer) */
	uint32_t *msg_end;               /* [n_msg] token index after each message's <|eot_id|> */
	int *msg_role;                   /* [n_msg] */
	size_t n_msg, cap;
	long image_pos;                  /* -1 when none */
};

struct pk_special {
	int32_t bos, sh, eh, eot, image;
};

int pk_special_ids(const struct lvd_llama_tok *tok, struct pk_special *sp, struct lvd_error *err);

/* Encodes the sample's conversation (or, without conversations, user = prompt and
 * assistant = caption). Errors (LVD_ERR_INVALID) for an empty answer or no user turn.
 * c must be zeroed before first use; reused across calls; pk_chat_free at the end. */
int pk_chat_encode(struct pk_chat *c, struct lvd_llama_tok *tok, const struct pk_special *sp,
		   const struct lvd_sample *s, const char *prompt, struct lvd_error *err);
void pk_chat_free(struct pk_chat *c);

/* Width and height from a PNG or JPEG header. LVD_ERR_FORMAT otherwise. */
int pk_image_size(const uint8_t *data, size_t len, int *w, int *h, const char *name, struct lvd_error *err);

/* Per-sample statistics. */
struct pk_stats {
	uint32_t tokens, label_tokens, words;
	uint32_t region_words, content_words, content_matched;
	int missing_maps, truncated, dropped;
};

struct pk_input {
	const struct lvd_sample *s;
	const char *image_path;          /* resolved path (stored with --no-embed-images) */
	const char *image_ref;           /* the manifest's image string */
	const uint8_t *image;            /* file bytes */
	size_t image_len;
	const struct lvd_mapsrec *maps;  /* NULL when the maps have no record for the id */
};

/* Builds the payload. Returns 0 with *out (malloc'd) or *out == NULL when the sample is
 * dropped as overlong (st->dropped); on error err holds the reason and *kind a short
 * category for errors.jsonl ("missing_maps", "image", "empty_answer", "maps", "text"). */
int pk_sample_build(const struct pk_params *p, struct lvd_llama_tok *tok, const struct pk_special *sp,
		    struct pk_chat *chat, const struct pk_input *in, uint8_t **out, size_t *out_len,
		    struct pk_stats *st, const char **kind, struct lvd_error *err);

#endif
