/* lvd-pack tokenize — Llama-3 (VLM) token ids for text lines (stdin or --text).
 *
 * One output line per input line: space-separated ids (BOS unless --no-bos, EOS with
 * --eos, special-token strings mapped only with --special), or with --json an object
 * {"ids", "tokens" (byte-level strings as in tokenizer.json), "offsets" ([start, end)
 * bytes in the line), "words" (index of the first word the token overlaps, see
 * lib/text/words.h; -1 for none)}. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "text/llama_tok.h"
#include "text/utf8.h"
#include "text/words.h"

static const struct lvd_cli_opt opts[] = {
	{"tokenizer", 't', "PATH", "VLM folder, tokenizer.json, or Meta's tokenizer.model"},
	{"text", 0, "STR", "tokenize STR instead of reading lines from stdin"},
	{"no-bos", 0, NULL, "do not prepend <|begin_of_text|>"},
	{"eos", 0, NULL, "append <|end_of_text|>"},
	{"special", 0, NULL, "map special-token strings in the text (\"<|eot_id|>\") to their ids"},
	{"json", 'j', NULL, "print a JSON object per line (ids, tokens, byte offsets, word indices)"},
	{"scheme", 0, "NAME", "special-token names for a tokenizer.model: mllama (default), hf31, meta"},
	{0},
};

struct args {
	const char *tokenizer, *text;
	unsigned flags;
	int json;
	enum lvd_llama_scheme scheme;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct args *a = ctx;
	switch (key) {
	case 't': a->tokenizer = arg; break;
	case 'j': a->json = 1; break;
	case LVD_CLI_KEY(1): a->text = arg; break;
	case LVD_CLI_KEY(2): a->flags &= ~LVD_LLAMA_BOS; break;
	case LVD_CLI_KEY(3): a->flags |= LVD_LLAMA_EOS; break;
	case LVD_CLI_KEY(4): a->flags |= LVD_LLAMA_ALLOW_SPECIAL; break;
	case LVD_CLI_KEY(6):
		if (!strcmp(arg, "mllama"))
			a->scheme = LVD_LLAMA_SCHEME_MLLAMA;
		else if (!strcmp(arg, "hf31"))
			a->scheme = LVD_LLAMA_SCHEME_HF31;
		else if (!strcmp(arg, "meta"))
			a->scheme = LVD_LLAMA_SCHEME_META;
		else
			return lvd_cli_usage_error("--scheme: expected mllama, hf31 or meta, got '%s'", arg);
		break;
	}
	return 0;
}

static json_t *token_string(const struct lvd_llama_tok *tok, int32_t id)
{
	size_t n;
	const uint8_t *p = lvd_llama_token_bytes(tok, id, &n);
	if (!p)
		return json_string("");
	if (lvd_llama_is_special(tok, id))
		return json_stringn((const char *)p, n);
	char *s = malloc(n * 2 + 1);
	if (!s)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		o += lvd_utf8_encode(lvd_bytelevel_cp(p[i]), (uint8_t *)s + o);
	json_t *j = json_stringn(s, o);
	free(s);
	return j;
}

static int emit(struct lvd_llama_tok *tok, const struct args *a, const char *line, size_t n, size_t lineno,
		struct lvd_tokens *t, struct lvd_words *w)
{
	struct lvd_error err = {0};
	size_t bad;
	if (!lvd_utf8_valid(line, n, &bad)) {
		lvd_error_log("line %zu: invalid UTF-8 at byte %zu", lineno, bad);
		return 1;
	}
	lvd_tokens_clear(t);
	if (lvd_llama_encode(tok, line, n, a->flags, t, &err)) {
		lvd_error_log("line %zu: %s", lineno, err.msg);
		return 1;
	}
	if (!a->json) {
		for (size_t i = 0; i < t->n; i++)
			printf(i ? " %d" : "%d", (int)t->ids[i]);
		putchar('\n');
		return 0;
	}
	if (lvd_words_split(line, n, w, &err)) {
		lvd_error_log("line %zu: %s", lineno, err.msg);
		return 1;
	}
	json_t *o = json_object(), *ids = json_array(), *toks = json_array(), *offs = json_array(), *words = json_array();
	for (size_t i = 0; i < t->n; i++) {
		json_array_append_new(ids, json_integer(t->ids[i]));
		json_array_append_new(toks, token_string(tok, t->ids[i]));
		json_array_append_new(offs, json_pack("[II]", (json_int_t)t->start[i], (json_int_t)t->end[i]));
		json_array_append_new(words, json_integer(lvd_words_find(w, t->start[i], t->end[i])));
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

int cmd_tokenize(int argc, char **argv)
{
	struct args a = {0};
	a.flags = LVD_LLAMA_BOS;
	int first;
	int rc = lvd_cli_parse(argc, argv,
			       "lvd-pack tokenize --tokenizer PATH [--no-bos] [--eos] [--special] [--json] [--text STR] < lines",
			       "Print Llama-3 token ids for each UTF-8 input line.", opts, on_opt, &a, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!a.tokenizer)
		return lvd_cli_usage_error("--tokenizer is required");
	struct lvd_error err = {0};
	struct lvd_llama_tok *tok;
	if (lvd_llama_tok_load(&tok, a.tokenizer, a.scheme, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	struct lvd_tokens t;
	struct lvd_words w;
	lvd_tokens_init(&t);
	lvd_words_init(&w);
	int status = 0;
	if (a.text) {
		status = emit(tok, &a, a.text, strlen(a.text), 1, &t, &w);
	} else {
		char *line = NULL;
		size_t cap = 0, lineno = 0;
		ssize_t n;
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			lineno++;
			if (n > 0 && line[n - 1] == '\n')
				n--;
			if ((status = emit(tok, &a, line, (size_t)n, lineno, &t, &w)))
				break;
		}
		free(line);
	}
	if (fflush(stdout) != 0) {
		lvd_error_log("cannot write to stdout");
		status = 1;
	}
	lvd_words_free(&w);
	lvd_tokens_free(&t);
	lvd_llama_tok_free(tok);
	return status;
}
