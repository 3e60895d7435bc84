/* lib/text/tokens.h — a token sequence as produced by the tokenizers: ids with the
 * byte span each token covers in the text that was encoded, and a word index.
 * Tokens inserted by the tokenizer (BOS, EOS, padding) have start == end. */
#ifndef LVD_TEXT_TOKENS_H
#define LVD_TEXT_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_tokens {
	int32_t *ids;
	uint32_t *start, *end; /* byte span [start, end) in the encoded text */
	int32_t *word;         /* CLIP: index of the word ("</w>" ends one); -1 = none */
	size_t n, cap;
};

void lvd_tokens_init(struct lvd_tokens *t);
void lvd_tokens_free(struct lvd_tokens *t);
static inline void lvd_tokens_clear(struct lvd_tokens *t) { t->n = 0; }
/* Appends one token; returns 0 or LVD_ERR_NOMEM (t unchanged). */
int lvd_tokens_push(struct lvd_tokens *t, int32_t id, size_t start, size_t end, int32_t word);

#ifdef __cplusplus
}
#endif
#endif
