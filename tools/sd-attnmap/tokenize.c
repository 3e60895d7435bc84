/* sd-attnmap tokenize — CLIP token ids for text lines (stdin or --text).
 *
 * One output line per input line: space-separated ids with BOS/EOS (no padding
 * unless --max-length and --pad are given), or with --json an object
 * {"ids", "tokens", "offsets" ([start, end) bytes in the line), "words"}. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "core/parse.h"
#include "text/clip_tok.h"
#include "text/utf8.h"

static const struct lvd_cli_opt opts[] = {
	{"tokenizer", 't', "PATH", "SD checkpoint, its tokenizer/ folder, merges.txt/vocab.json or bpe_simple_vocab_16e6.txt.gz"},
	{"text", 0, "STR", "tokenize STR instead of reading lines from stdin"},
	{"json", 'j', NULL, "print a JSON object per line (ids, tokens, byte offsets, word indices)"},
	{"max-length", 0, "N", "truncate to N tokens keeping EOS (SD: 77); default: no limit"},
	{"pad", 0, "MODE", "with --max-length, pad to N: 'eos' (SD 1.x) or 'zero' (SD 2.x, OpenAI)"},
	{0},
};

struct args {
	const char *tokenizer, *text;
	int json;
	struct lvd_clip_opts o;
	const char *pad;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct args *a = ctx;
	struct lvd_error err = {0};
	uint64_t v;
	switch (key) {
	case 't': a->tokenizer = arg; break;
	case 'j': a->json = 1; break;
	case LVD_CLI_KEY(1): a->text = arg; break;
	case LVD_CLI_KEY(3):
		if (lvd_parse_u64(arg, 2, 1 << 20, &v, "--max-length", &err))
			return lvd_cli_usage_error("%s", err.msg);
		a->o.max_len = (size_t)v;
		break;
	case LVD_CLI_KEY(4):
		if (!strcmp(arg, "eos"))
			a->o.pad = LVD_CLIP_PAD_EOS;
		else if (!strcmp(arg, "zero"))
			a->o.pad = LVD_CLIP_PAD_ZERO;
		else
			return lvd_cli_usage_error("--pad: expected 'eos' or 'zero', got '%s'", arg);
		a->pad = arg;
		break;
	}
	return 0;
}

static int emit(struct lvd_clip_tok *tok, const struct args *a, const char *line, size_t n, size_t lineno,
		struct lvd_tokens *t)
{
	struct lvd_error err = {0};
	size_t bad;
	if (!lvd_utf8_valid(line, n, &bad)) {
		lvd_error_log("line %zu: invalid UTF-8 at byte %zu", lineno, bad);
		return 1;
	}
	lvd_tokens_clear(t);
	if (lvd_clip_encode(tok, line, n, &a->o, t, &err)) {
		lvd_error_log("line %zu: %s", lineno, err.msg);
		return 1;
	}
	if (!a->json) {
		for (size_t i = 0; i < t->n; i++)
			printf(i ? " %d" : "%d", (int)t->ids[i]);
		putchar('\n');
		return 0;
	}
	json_t *o = json_object(), *ids = json_array(), *toks = json_array(), *offs = json_array(), *words = json_array();
	for (size_t i = 0; i < t->n; i++) {
		char s[1024];
		lvd_clip_token_str(tok, t->ids[i], s, sizeof s);
		json_array_append_new(ids, json_integer(t->ids[i]));
		json_array_append_new(toks, json_string(s));
		json_array_append_new(offs, json_pack("[II]", (json_int_t)t->start[i], (json_int_t)t->end[i]));
		json_array_append_new(words, json_integer(t->word[i]));
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
	int first;
	int rc = lvd_cli_parse(argc, argv, "sd-attnmap tokenize --tokenizer PATH [--json] [--text STR] < lines",
			       "Print CLIP token ids (with BOS 49406 / EOS 49407) for each UTF-8 input line.",
			       opts, on_opt, &a, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!a.tokenizer)
		return lvd_cli_usage_error("--tokenizer is required");
	if (a.pad && !a.o.max_len)
		return lvd_cli_usage_error("--pad needs --max-length");
	struct lvd_error err = {0};
	struct lvd_clip_tok *tok;
	if (lvd_clip_tok_load(&tok, a.tokenizer, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	int status = 0;
	if (a.text) {
		status = emit(tok, &a, a.text, strlen(a.text), 1, &t);
	} else {
		char *line = NULL;
		size_t cap = 0, lineno = 0;
		ssize_t n;
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			lineno++;
			if (n > 0 && line[n - 1] == '\n')
				n--;
			if ((status = emit(tok, &a, line, (size_t)n, lineno, &t)))
				break;
		}
		free(line);
	}
	if (fflush(stdout) != 0) {
		lvd_error_log("cannot write to stdout");
		status = 1;
	}
	lvd_tokens_free(&t);
	lvd_clip_tok_free(tok);
	return status;
}
