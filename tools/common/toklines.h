/* tools/common/toklines.h — the `tokenize` subcommands' shared body (sd-attnmap: CLIP,
 * lvd-pack: Llama-3): tokenize --text STR or each stdin line (newline stripped), after a
 * UTF-8 check, and print per line either the space-separated ids or, with json, one
 * compact object {"ids", "tokens", "offsets" ([start, end) bytes in the line), "words"}.
 * Errors are printed as "line N: ..." and end the run. */
#ifndef LVD_TOOLS_COMMON_TOKLINES_H
#define LVD_TOOLS_COMMON_TOKLINES_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"
#include "text/tokens.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_toklines {
	int json;
	/* Encodes line[0..n) into t (already cleared); json says whether token() and word()
	 * will be asked. 0, or an error code with err set. */
	int (*encode)(void *ctx, const char *line, size_t n, int json, struct lvd_tokens *t, struct lvd_error *err);
	json_t *(*token)(void *ctx, const struct lvd_tokens *t, size_t i); /* new reference */
	json_int_t (*word)(void *ctx, const struct lvd_tokens *t, size_t i);
	void *ctx;
};

/* Runs over text (when not NULL) or stdin. Returns the exit status: 0, or 1 after printing. */
int lvd_toklines_run(const struct lvd_toklines *tl, const char *text);

#ifdef __cplusplus
}
#endif
#endif
