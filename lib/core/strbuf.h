/* lib/core/strbuf.h — a growing NUL-terminated byte string.
 *
 * Zero-initialise (struct lvd_strbuf b = {0}), append with lvd_strbuf_add/_str, then take
 * the string with lvd_strbuf_done (caller frees) or free b.p. An allocation failure or a
 * size overflow sets b.oom and makes every later append a no-op, so callers check once
 * at the end. p is always NUL-terminated once anything was appended. */
#ifndef LVD_CORE_STRBUF_H
#define LVD_CORE_STRBUF_H

#include <stddef.h>

struct lvd_strbuf {
	char *p;
	size_t len, cap;
	int oom;
};

/* Appends n bytes of s (which may hold NULs). */
void lvd_strbuf_add(struct lvd_strbuf *b, const char *s, size_t n);
/* Appends the C string s. */
void lvd_strbuf_str(struct lvd_strbuf *b, const char *s);
/* The string (owned by the caller; "" when nothing was appended), or NULL after an
 * allocation failure (the buffer is then freed). */
char *lvd_strbuf_done(struct lvd_strbuf *b);

#endif
