/* tools/common/toklines.c — the tokenize subcommands' line loop (see toklines.h). */
#include "common/toklines.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "text/utf8.h"

static int emit(const struct lvd_toklines *tl, const char *line, size_t n, size_t lineno, struct lvd_tokens *t)
{
	struct lvd_error err = {0};
	size_t bad;
	if (!lvd_utf8_valid(line, n, &bad)) {
		lvd_error_log("line %zu: invalid UTF-8 at byte %zu", lineno, bad);
		return 1;
	}
	lvd_tokens_clear(t);
	if (tl->encode(tl->ctx, line, n, tl->json, t, &err)) {
		lvd_error_log("line %zu: %s", lineno, err.msg);
		return 1;
	}
	if (!tl->json) {
		for (size_t i = 0; i < t->n; i++)
			printf(i ? " %d" : "%d", (int)t->ids[i]);
		putchar('\n');
		return 0;
	}
	json_t *o = json_object(), *ids = json_array(), *toks = json_array(), *offs = json_array(), *words = json_array();
	for (size_t i = 0; i < t->n; i++) {
		json_array_append_new(ids, json_integer(t->ids[i]));
		json_array_append_new(toks, tl->token(tl->ctx, t, i));
		json_array_append_new(offs, json_pack("[II]", (json_int_t)t->start[i], (json_int_t)t->end[i]));
		json_array_append_new(words, json_integer(tl->word(tl->ctx, t, i)));
	}
	json_object_set_new(o, "ids", ids);
	json_object_set_new(o, "tokens", toks);
	json_object_set_new(o, "offsets", offs);
	json_object_set_new(o, "words", words);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s) {
		lvd_error_log("line %zu: out of memory", lineno);
		return 1;
	}
	puts(s);
	free(s);
	return 0;
}

int lvd_toklines_run(const struct lvd_toklines *tl, const char *text)
{
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	int status = 0;
	if (text) {
		status = emit(tl, text, strlen(text), 1, &t);
	} else {
		char *line = NULL;
		size_t cap = 0, lineno = 0;
		ssize_t n;
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			lineno++;
			if (n > 0 && line[n - 1] == '\n')
				n--;
			if ((status = emit(tl, line, (size_t)n, lineno, &t)))
				break;
		}
		free(line);
	}
	if (fflush(stdout) != 0) {
		lvd_error_log("cannot write to stdout");
		status = 1;
	}
	lvd_tokens_free(&t);
	return status;
}
