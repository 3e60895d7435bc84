/* lib/lavender/pack_sample_int.h — the steps lvd-pack's two sample builders share
 * (pack_sample.c: mllama, pack_sample_mcv.c: MiniCPM-V). Not a public interface: only
 * those two files include it. Each builder renders and tokenizes the conversation its
 * model's way, then hands the token view to the same word matching, map resampling,
 * normalisation and record assembly below.
 *
 * Letters: T tokens, W matched words, G = GH·GW target cells, S = gh·gw SD map cells. */
#ifndef LVD_LAVENDER_PACK_SAMPLE_INT_H
#define LVD_LAVENDER_PACK_SAMPLE_INT_H

#include "lavender/pack_sample.h"
#include "lavender/packrec.h"

/* The sample's turns: its conversation, or for a caption-only sample user = prompt and
 * assistant = caption (cap is the storage for those two). *first_user gets the first
 * user turn. Errors (LVD_ERR_INVALID, *kind set): no conversations and no caption, no
 * assistant text ("empty answer: ...", kind "empty_answer"), no user turn (kind "text"). */
int lvd_pack_turns(const struct lvd_sample *s, const char *prompt, struct lvd_turn cap[2],
		   const struct lvd_turn **turns, size_t *n, long *first_user, const char **kind,
		   struct lvd_error *err);

/* The image's size from its header (fully decoded with p->verify_images), and the maps'
 * presence and image size checked against it (missing maps: an error unless
 * p->allow_missing_maps, then st->missing_maps = 1). *kind set on error. */
int lvd_pack_image_check(const struct lvd_pack_params *p, const struct lvd_pack_input *in, int *w, int *h,
			 struct lvd_pack_stats *st, const char **kind, struct lvd_error *err);

/* Matched words and their targets of one sample (owned; lvd_pack_work_free). */
struct lvd_pack_work {
	struct lvd_match_result mres;
	struct lvd_geom_resampler rs;   /* its valid mask is the record's mask */
	float *acc, *dst;               /* [S], [G] scratch */
	uint16_t *targets, *raw;        /* [W, G], [W, S] fp16 */
	struct lvd_packrec_word *words; /* [W], borrowing mres */
	size_t W;
};

/* Matches the SD record mr (NULL: no words, a 1x1 zero source) against the token view v
 * (rows below min_query dropped), then for every word averages its CLIP tokens' maps,
 * resamples onto g with `grid` (0: g's patch canvas, N: N×N over the image extent
 * new_h × new_w), min-max normalises over the valid cells. Fills st's word counts.
 * *kind set on error ("text", "maps"). *wk zeroed first. */
int lvd_pack_words(struct lvd_pack_work *wk, const struct lvd_pack_params *p, const struct lvd_match_vlm *v,
		   uint32_t min_query, const struct lvd_geom *g, int grid, const struct lvd_mapsrec *mr,
		   struct lvd_pack_stats *st, const char **kind, struct lvd_error *err);
void lvd_pack_work_free(struct lvd_pack_work *wk);

/* The record fields both models fill alike: id, flags IMAGE / RAW / GRID, the words,
 * targets, mask and raw maps of wk, the image bytes or path. */
void lvd_pack_rec_common(struct lvd_packrec *rec, const struct lvd_pack_work *wk, const struct lvd_pack_params *p,
			 const struct lvd_pack_input *in, int grid);

/* Encodes rec into *out and counts tokens, label tokens and words into st. */
int lvd_pack_rec_finish(const struct lvd_packrec *rec, uint8_t **out, size_t *out_len, struct lvd_pack_stats *st,
			const char **kind, struct lvd_error *err);

/* MiniCPM-V's builder (pack_sample_mcv.c); lvd_pack_sample_build dispatches to it. */
int lvd_pack_sample_build_mcv(const struct lvd_pack_params *p, struct lvd_llama_tok *tok,
			      const struct lvd_pack_input *in, uint8_t **out, size_t *out_len,
			      struct lvd_pack_stats *st, const char **kind, struct lvd_error *err);

#endif
