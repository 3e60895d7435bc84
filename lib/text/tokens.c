#include "text/tokens.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

void lvd_tokens_init(struct lvd_tokens *t)
{
	memset(t, 0, sizeof *t);
}

void lvd_tokens_free(struct lvd_tokens *t)
{
	free(t->ids);
	free(t->start);
	free(t->end);
	free(t->word);
	memset(t, 0, sizeof *t);
}

int lvd_tokens_push(struct lvd_tokens *t, int32_t id, size_t start, size_t end, int32_t word)
{
	if (start > UINT32_MAX || end > UINT32_MAX)
		return LVD_ERR_NOMEM;
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 64;
		int32_t *a = lvd_realloc_array(t->ids, nc, sizeof *a);
		if (!a)
			return LVD_ERR_NOMEM;
		t->ids = a;
		uint32_t *b = lvd_realloc_array(t->start, nc, sizeof *b);
		if (!b)
			return LVD_ERR_NOMEM;
		t->start = b;
		if (!(b = lvd_realloc_array(t->end, nc, sizeof *b)))
			return LVD_ERR_NOMEM;
		t->end = b;
		if (!(a = lvd_realloc_array(t->word, nc, sizeof *a)))
			return LVD_ERR_NOMEM;
		t->word = a;
		t->cap = nc;
	}
	t->ids[t->n] = id;
	t->start[t->n] = (uint32_t)start;
	t->end[t->n] = (uint32_t)end;
	t->word[t->n] = word;
	t->n++;
	return 0;
}
