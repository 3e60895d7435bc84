/* lib/lavender/match.h — matching the words of the SD text (whose CLIP tokens carry the
 * attention maps) to the words of the VLM's tokenized conversation.
 *
 * Words. Both sides go through one segmenter (lib/text/words.h, the project's word
 * rule) so multi-piece words are merged the same way on each side: a word is a maximal
 * run of letters and digits with combining marks, where an apostrophe (U+0027, U+2019,
 * U+02BC) between two such characters stays inside ("don't", "dog's"). Spaces separate;
 * punctuation and symbol runs (hyphens included: "t-shirt" is "t", "shirt") are never
 * matched. The key of a word is NFC + lowercase (full mapping). Keys listed in a
 * stop-word set are skipped.
 *
 * SD side: the words of the SD text; a word's CLIP tokens are those whose byte span
 * overlaps the word (a word cut off by CLIP's 77-token truncation is dropped). Its map
 * is the mean of those tokens' maps (multi-piece merge). Repeated words: all CLIP
 * tokens of all occurrences of the key are averaged.
 *
 * VLM side: the text is the concatenation of the decoded token pieces; each token has a
 * byte span in it (special tokens have empty spans and separate words). A word's token
 * positions are the tokens overlapping it. With match_all = 0 only words whose tokens
 * all lie in the answer region (tokens with region[t] != 0, i.e. assistant content)
 * count. Occurrences with the same key are grouped into one matched word holding all
 * their positions (in increasing order).
 *
 * Position convention. For a token at position p, the attention row (query) used is
 *   predict (default): q = p - 1, the row that *predicts* the token, as the official
 *                      implementation keys each row by its predicted next token;
 *   token:             q = p.
 * Queries below `min_query` (rows that see no image: before the <|image|> token) are
 * dropped; a word left with no query is not matched. */
#ifndef LVD_LAVENDER_MATCH_H
#define LVD_LAVENDER_MATCH_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_MATCH_MAX_KEY 256   /* bytes of a word key; longer words are never matched */

struct lvd_word_span {
	uint32_t beg, end;          /* byte span in the text */
	char key[LVD_MATCH_MAX_KEY];/* NUL-terminated; "" when the word is too long */
};

/* Splits text[0..len) into its (non-punctuation) words. *out is malloc'd (caller frees),
 * *n its count. LVD_ERR_INVALID for invalid UTF-8, LVD_ERR_NOMEM. */
int lvd_match_segment(const char *text, size_t len, struct lvd_word_span **out, size_t *n,
		      struct lvd_error *err);

/* Writes the key of s[0..len) into key[cap] when s is exactly one word; returns its
 * length, or -1 (not one word, invalid UTF-8, does not fit). */
int lvd_match_key(const char *s, size_t len, char *key, size_t cap);

/* Stop words: a sorted set of keys. */
struct lvd_stopwords {
	char **keys;
	size_t n;
};
/* Parses a file's contents: one word per line, '#' starts a comment, blank lines
 * ignored, each word keyed as above (a line that is not exactly one word is an error,
 * LVD_ERR_FORMAT naming name:line). */
int lvd_stopwords_parse(struct lvd_stopwords *sw, const char *text, size_t len, const char *name,
			struct lvd_error *err);
int lvd_stopwords_has(const struct lvd_stopwords *sw, const char *key);
void lvd_stopwords_free(struct lvd_stopwords *sw);

enum lvd_query_at { LVD_QUERY_PREDICT = 0, LVD_QUERY_TOKEN = 1 };

struct lvd_match_opts {
	int match_all;                      /* 0: answer region only */
	enum lvd_query_at query_at;
	const struct lvd_stopwords *stop;   /* may be NULL */
	uint32_t min_query;                 /* first allowed query row */
};

/* The VLM side (all borrowed). */
struct lvd_match_vlm {
	const char *text;           /* concatenated decoded pieces */
	size_t text_len;
	uint32_t T;                 /* tokens */
	const uint32_t *tok_beg;    /* [T] byte span of token t: [tok_beg, tok_end) */
	const uint32_t *tok_end;
	const uint8_t *region;      /* [T] 1 = answer token; NULL = all */
};

/* The SD side (all borrowed). */
struct lvd_match_sd {
	const char *text;
	size_t text_len;
	uint32_t T;                 /* kept CLIP tokens */
	const uint32_t *spans;      /* [T][2] byte [begin, end) in text */
};

struct lvd_match_word {
	char key[LVD_MATCH_MAX_KEY];
	uint32_t n_sd;              /* CLIP tokens whose maps are averaged */
	uint32_t *sd_tok;           /* [n_sd] increasing */
	uint32_t n_pos;             /* VLM token positions, increasing */
	uint32_t *pos;              /* [n_pos] */
	uint32_t n_query;
	uint32_t *query;            /* [n_query] increasing, unique */
};

struct lvd_match_result {
	size_t n;                   /* matched words (unique keys), in order of first VLM occurrence */
	struct lvd_match_word *w;
	/* statistics over VLM word occurrences in the match region */
	size_t n_region_words;      /* all words in the region */
	size_t n_content;           /* ... not stop words */
	size_t n_content_matched;   /* ... whose key is an SD word */
	size_t n_sd_words;          /* SD words with a map */
};

int lvd_match(struct lvd_match_result *res, const struct lvd_match_vlm *vlm, const struct lvd_match_sd *sd,
	      const struct lvd_match_opts *opts, struct lvd_error *err);
void lvd_match_result_free(struct lvd_match_result *res);

#ifdef __cplusplus
}
#endif
#endif
