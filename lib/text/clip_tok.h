/* lib/text/clip_tok.h — the CLIP tokenizer of Stable Diffusion 1.x/2.x text encoders.
 *
 * Loads an SD checkpoint's tokenizer/ folder (vocab.json + merges.txt), the checkpoint
 * root holding it, a merges.txt / vocab.json file, or OpenAI's
 * bpe_simple_vocab_16e6.txt.gz (vocabulary derived as OpenAI's simple_tokenizer does:
 * 256 byte characters, the same with "</w>", 48894 merges, <|startoftext|> 49406,
 * <|endoftext|> 49407).
 *
 * Text cleaning (what OpenAI's basic_clean + whitespace_clean + lower do, minus ftfy):
 *   1. HTML unescape, twice (html.unescape): numeric references (&#39; &#x27;, with
 *      Python's fix-ups for 0x80..0x9F, surrogates and non-characters) and the named
 *      entities amp lt gt quot apos nbsp copy reg deg times hellip mdash ndash lsquo
 *      rsquo ldquo rdquo eacute AMP LT GT QUOT COPY REG (those Python also accepts
 *      without ';' likewise);
 *      other names are left as text (Python knows all 2231 HTML5 names);
 *   2. NFC (utf8proc);
 *   3. runs of Unicode White_Space become one space; leading/trailing space dropped;
 *   4. lowercase per character with the full mapping (U+0130 -> "i\u0307"; no
 *      final-sigma context rule), as Hugging Face's Lowercase normalizer does.
 * Hugging Face's CLIPTokenizer (transformers 5) does 2-4 but not 1. Python's ftfy
 * (mojibake repair, quote/ligature fixes, control-character removal) is NOT
 * reproduced: text that ftfy would change (mojibake such as "Ã©", curly-quote
 * variants, terminal escapes) can tokenize differently from OpenAI's reference;
 * plain text is unaffected (tests check this against HF ids).
 * Then the CLIP regex splits the text (matches kept, the rest dropped), each piece is
 * BPE-encoded with "</w>" on its last byte, and BOS/EOS are added.
 * A tokenizer holds caches and scratch: one per thread. */
#ifndef LVD_TEXT_CLIP_TOK_H
#define LVD_TEXT_CLIP_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "text/tokens.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_CLIP_BOS 49406
#define LVD_CLIP_EOS 49407
#define LVD_CLIP_CONTEXT 77
#define LVD_CLIP_PATTERN \
	"<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"

enum lvd_clip_pad {
	LVD_CLIP_PAD_NONE = 0,
	LVD_CLIP_PAD_EOS,  /* SD 1.x (diffusers/HF tokenizer folder): pad with 49407 */
	LVD_CLIP_PAD_ZERO, /* SD 2.x and OpenAI clip.tokenize: pad with id 0 */
};

struct lvd_clip_opts {
	size_t max_len;        /* 0: no truncation; else BOS + tokens + EOS cut to max_len, EOS kept */
	enum lvd_clip_pad pad; /* pad up to max_len (needs max_len > 0) */
};

struct lvd_clip_tok;

/* Errors name the file and line/entry (LVD_ERR_IO, LVD_ERR_FORMAT, LVD_ERR_NOTFOUND). */
int lvd_clip_tok_load(struct lvd_clip_tok **out, const char *path, struct lvd_error *err);
void lvd_clip_tok_free(struct lvd_clip_tok *tok);

/* Encodes text[0..n) (valid UTF-8, else LVD_ERR_INVALID naming the byte), appending
 * BOS, tokens, EOS (and padding) to out. Spans index the ORIGINAL text: a token made
 * from an HTML entity or an NFC-recomposed run covers those source bytes; BOS, EOS and
 * padding have empty spans and word -1. word[i] numbers the words: a word ends at a
 * token with "</w>". opts may be NULL (no truncation, no padding). */
int lvd_clip_encode(struct lvd_clip_tok *tok, const char *text, size_t n, const struct lvd_clip_opts *opts,
		    struct lvd_tokens *out, struct lvd_error *err);

/* The cleaned text (steps 1-4 above), malloc'd and NUL-terminated, with for each of
 * its bytes the source span [src_start[i], src_end[i]) (malloc'd arrays; any of the
 * three output pointers may be NULL when not wanted). */
int lvd_clip_clean(const char *text, size_t n, char **clean, size_t *clean_len, uint32_t **src_start,
		   uint32_t **src_end, struct lvd_error *err);

/* The token's string as in vocab.json ("cat</w>"), written to buf (NUL-terminated,
 * truncated to size); returns its full length, or 0 for an unknown id. */
size_t lvd_clip_token_str(const struct lvd_clip_tok *tok, int32_t id, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
