/* lib/text/words.h — word segmentation and cross-tokenizer word alignment.
 *
 * Lavender compares SD attention (indexed by CLIP tokens) with VLM attention (indexed
 * by Llama-3 tokens) word by word. Rule for words, applied to the original text:
 *   - a word is a maximal run of Unicode letters (L*) and digits (N*), with combining
 *     marks (M*) kept with it, and apostrophes (' U+2019 U+02BC) kept when they join
 *     two letters/digits ("can't", "o'clock", "rock'n'roll");
 *   - every other maximal run of non-space characters is a punctuation "word"
 *     (LVD_WORD_PUNCT), so hyphens, quotes, emoji and "&" are separate;
 *   - Unicode White_Space separates and belongs to no word.
 * A word's normalised form is NFC + lowercase (full mapping, U+0130 -> "i\u0307").
 * A token belongs to every word whose bytes its span overlaps: a word split into
 * pieces gets several positions, a token spanning two words is listed by both. */
#ifndef LVD_TEXT_WORDS_H
#define LVD_TEXT_WORDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "text/tokens.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_word_kind {
	LVD_WORD_ALPHA = 0,  /* has at least one letter */
	LVD_WORD_NUMBER = 1, /* digits (and marks) only */
	LVD_WORD_PUNCT = 2,  /* anything else that is not space */
};

struct lvd_word {
	uint32_t start, end;         /* byte span in the text */
	uint32_t norm_off, norm_len; /* normalised form in lvd_words.norm */
	uint8_t kind;
};

struct lvd_words {
	struct lvd_word *w;
	size_t n, cap;
	char *norm; /* all normalised forms, each NUL-terminated */
	size_t norm_len, norm_cap;
};

void lvd_words_init(struct lvd_words *w);
void lvd_words_free(struct lvd_words *w);
/* Segments text[0..n) (valid UTF-8, else LVD_ERR_INVALID naming the byte) into out
 * (replacing its contents). */
int lvd_words_split(const char *text, size_t n, struct lvd_words *out, struct lvd_error *err);
static inline const char *lvd_word_norm(const struct lvd_words *w, size_t i)
{
	return w->norm + w->w[i].norm_off;
}

/* Index of the first word overlapping [start, end), or -1 (empty spans: -1). */
int32_t lvd_words_find(const struct lvd_words *w, size_t start, size_t end);

struct lvd_alignment {
	struct lvd_words words;
	/* per word: its CLIP positions are pos[clip_first[i] .. + clip_count[i]], VLM alike */
	uint32_t *clip_first, *clip_count, *vlm_first, *vlm_count;
	int32_t *pos; /* token indices into the arrays passed in */
	size_t npos;
};

void lvd_alignment_init(struct lvd_alignment *a);
void lvd_alignment_free(struct lvd_alignment *a);

/* Splits text into words and, for each, the positions of the CLIP tokens and the VLM
 * tokens whose spans (into this same text) overlap it. clip or vlm may be NULL (no
 * positions on that side). Positions index clip->ids / vlm->ids, so BOS offsets are
 * kept. O(words * tokens). */
int lvd_align_words(const char *text, size_t n, const struct lvd_tokens *clip, const struct lvd_tokens *vlm,
		    struct lvd_alignment *out, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
