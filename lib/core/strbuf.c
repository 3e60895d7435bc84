#include "core/strbuf.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void lvd_strbuf_add(struct lvd_strbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	size_t need;
	if (lvd_size_add(&need, b->len, n) || lvd_size_add(&need, need, 1)) {
		b->oom = 1;
		return;
	}
	if (need > b->cap) {
		size_t nc = b->cap ? b->cap : 64;
		while (nc < need)
			if (lvd_size_mul(&nc, nc, 2)) {
				b->oom = 1;
				return;
			}
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

void lvd_strbuf_str(struct lvd_strbuf *b, const char *s)
{
	lvd_strbuf_add(b, s, strlen(s));
}

char *lvd_strbuf_done(struct lvd_strbuf *b)
{
	if (!b->oom && !b->p)
		lvd_strbuf_add(b, "", 0);
	if (b->oom) {
		free(b->p);
		b->p = NULL;
		return NULL;
	}
	return b->p;
}
