/* lib/text/bpe.h — the byte-level BPE engine behind the CLIP and Llama-3 tokenizers.
 *
 * A vocabulary maps ids to raw byte strings (plus, for CLIP, an end-of-word flag: the
 * "</w>" suffix). Merges map an adjacent pair (left id, right id) to a rank (lower
 * merges first) and the id of the concatenation. Encoding one pre-token ("word"):
 *   - with ignore_merges (Llama-3 / tiktoken), a word that is itself a token is
 *     returned as that token;
 *   - otherwise each byte becomes its byte token (the last one the end-of-word
 *     variant when use_eow), then the lowest-rank adjacent pair is merged repeatedly,
 *     ties going to the leftmost pair (Hugging Face `tokenizers` semantics), with a
 *     binary heap: O(n log n) per word;
 *   - results are kept in a word cache (words up to 256 bytes, bounded entries).
 * An lvd_bpe is not safe for concurrent encodes (the cache and scratch are shared):
 * use one per thread. */
#ifndef LVD_TEXT_BPE_H
#define LVD_TEXT_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_bpe;

/* Growable output: token ids and each token's length in bytes of the word. */
struct lvd_bpe_buf {
	int32_t *ids;
	uint32_t *len;
	size_t n, cap;
};
void lvd_bpe_buf_free(struct lvd_bpe_buf *b);

struct lvd_bpe *lvd_bpe_new(void);
void lvd_bpe_free(struct lvd_bpe *bpe);

/* Adds token `id` (0 <= id < 2^24) with raw bytes s[0..n), n >= 1. A duplicate id or
 * duplicate (bytes, eow) is LVD_ERR_FORMAT. */
int lvd_bpe_add_token(struct lvd_bpe *bpe, int32_t id, const uint8_t *s, size_t n, int eow,
		      struct lvd_error *err);
/* The same for a vocabulary-file string: GPT-2 byte-level characters, optionally
 * ending in eow_suffix (e.g. "</w>"; NULL for none) which sets the eow flag. A string
 * outside the byte-level alphabet is LVD_ERR_FORMAT (quoted in the message). */
int lvd_bpe_add_token_str(struct lvd_bpe *bpe, int32_t id, const char *s, size_t n,
			  const char *eow_suffix, struct lvd_error *err);
/* Id of a vocabulary-file string (as above), or -1. */
int32_t lvd_bpe_find_str(const struct lvd_bpe *bpe, const char *s, size_t n, const char *eow_suffix);
/* Id of the token with these bytes and flag, or -1. */
int32_t lvd_bpe_find(const struct lvd_bpe *bpe, const uint8_t *s, size_t n, int eow);
/* Bytes of token id (borrowed), or NULL when id is not a token. */
const uint8_t *lvd_bpe_token(const struct lvd_bpe *bpe, int32_t id, size_t *n, int *eow);
/* One more than the largest token id. */
int32_t lvd_bpe_size(const struct lvd_bpe *bpe);

/* Adds the merge (left, right) -> concat(left, right) with `rank`; the result token
 * (right's eow flag) must exist: LVD_ERR_FORMAT otherwise. An existing pair keeps its
 * lower rank. */
int lvd_bpe_add_merge(struct lvd_bpe *bpe, int32_t left, int32_t right, uint64_t rank,
		      struct lvd_error *err);
/* tiktoken rule: for every token t and every split t = a + b with a, b tokens, a merge
 * ranked (rank(t), rank(a), rank(b)) where rank = id (transformers' TikTokenConverter
 * order). Tokens without eow only. */
int lvd_bpe_merges_from_ranks(struct lvd_bpe *bpe, struct lvd_error *err);

/* Ends construction: every byte (and with use_eow every byte's eow variant) must be a
 * token (LVD_ERR_FORMAT naming the byte). */
int lvd_bpe_finish(struct lvd_bpe *bpe, int use_eow, int ignore_merges, struct lvd_error *err);

/* Encodes one word w[0..n) (n >= 1), appending to out. Returns 0 or LVD_ERR_NOMEM. */
int lvd_bpe_encode(struct lvd_bpe *bpe, const uint8_t *w, size_t n, struct lvd_bpe_buf *out);

#ifdef __cplusplus
}
#endif
#endif
