/* lib/text/pretok.h — regex pre-tokenization with PCRE2 (UTF + UCP, JIT when
 * available). `\s` and `\S` in a pattern are rewritten to the Unicode White_Space
 * property (as Rust regex and Oniguruma define them, which the Hugging Face and
 * tiktoken tokenizers use) instead of PCRE2's narrower "Z category + \t\n\v\f\r".
 * A compiled pre-tokenizer holds match scratch: one per thread. */
#ifndef LVD_TEXT_PRETOK_H
#define LVD_TEXT_PRETOK_H

#include <stddef.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_pretok;

/* Compiles pattern (UTF-8). LVD_ERR_INVALID with PCRE2's message and offset on a bad
 * pattern. */
int lvd_pretok_new(struct lvd_pretok **out, const char *pattern, struct lvd_error *err);
void lvd_pretok_free(struct lvd_pretok *p);

/* Called per piece [start, end) (offsets into s); a non-zero return stops the split
 * and is returned by lvd_pretok_split. */
typedef int (*lvd_pretok_fn)(size_t start, size_t end, void *ctx);

/* Splits s[0..n) (valid UTF-8: callers validate) into regex matches; with keep_gaps
 * the text between matches is emitted as pieces too (HF "Isolated"), otherwise it is
 * dropped (HF "Removed" with invert). Returns 0, fn's non-zero value, or
 * LVD_ERR_INVALID (err set) when PCRE2 fails. */
int lvd_pretok_split(struct lvd_pretok *p, const char *s, size_t n, int keep_gaps,
		     lvd_pretok_fn fn, void *ctx, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
