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
#include "common/toklines.h"
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

struct llama_ctx {
	struct lvd_llama_tok *tok;
	unsigned flags;
	struct lvd_words w;
};

static int llama_encode(void *ctx, const char *line, size_t n, int json, struct lvd_tokens *t, struct lvd_error *err)
{
	struct llama_ctx *c = ctx;
	int rc = lvd_llama_encode(c->tok, line, n, c->flags, t, err);
	if (!rc && json)
		rc = lvd_words_split(line, n, &c->w, err);
	return rc;
}

static json_t *llama_token(void *ctx, const struct lvd_tokens *t, size_t i)
{
	struct llama_ctx *c = ctx;
	return token_string(c->tok, t->ids[i]);
}

static json_int_t llama_word(void *ctx, const struct lvd_tokens *t, size_t i)
{
	struct llama_ctx *c = ctx;
	return lvd_words_find(&c->w, t->start[i], t->end[i]);
}

int cmd_tokenize(int argc, char **argv)
{
	lvd_log_set_prog("lvd-pack tokenize"); /* messages and usage hints name the subcommand */
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
	if ((a.flags & LVD_LLAMA_BOS) && lvd_llama_special_id(tok, "<|begin_of_text|>") < 0) {
		/* the tokenizer's fault, not the first input line's */
		lvd_error_log("%s: the tokenizer has no <|begin_of_text|> (not a Llama 3 tokenizer?)", a.tokenizer);
		fprintf(stderr, "hint: --no-bos tokenizes without it\n");
		lvd_llama_tok_free(tok);
		return 1;
	}
	struct llama_ctx c = {tok, a.flags, {0}};
	lvd_words_init(&c.w);
	struct lvd_toklines tl = {a.json, llama_encode, llama_token, llama_word, &c};
	int status = lvd_toklines_run(&tl, a.text);
	lvd_words_free(&c.w);
	lvd_llama_tok_free(tok);
	return status;
}
