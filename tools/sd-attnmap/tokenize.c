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
#include "common/toklines.h"
#include "core/error.h"
#include "core/log.h"
#include "core/parse.h"
#include "runctx.h"
#include "text/clip_tok.h"
#include "text/utf8.h"

static const struct lvd_cli_opt opts[] = {
	{"tokenizer", 't', "PATH", "SD checkpoint, its tokenizer/ folder, merges.txt/vocab.json or bpe_simple_vocab_16e6.txt.gz"},
	{"text", 0, "STR", "tokenize STR instead of reading lines from stdin"},
	{"json", 'j', NULL, "print a JSON object per line (ids, tokens, byte offsets, word indices)"},
	{"max-length", 0, "N", "truncate to N tokens keeping EOS (SD: 77); default: no limit"},
	{"pad", 0, "MODE", "with --max-length, pad to N: 'eos' (SD 1.x), 'zero' (SD 2.x, OpenAI) or 'auto' (the tokenizer folder's pad token, as run pads)"},
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
		else if (strcmp(arg, "auto"))
			return lvd_cli_usage_error("--pad: expected 'eos', 'zero' or 'auto', got '%s'", arg);
		a->pad = arg;
		break;
	}
	return 0;
}

struct clip_ctx {
	struct lvd_clip_tok *tok;
	const struct lvd_clip_opts *o;
};

static int clip_encode(void *ctx, const char *line, size_t n, int json, struct lvd_tokens *t, struct lvd_error *err)
{
	struct clip_ctx *c = ctx;
	(void)json;
	return lvd_clip_encode(c->tok, line, n, c->o, t, err);
}

static json_t *clip_token(void *ctx, const struct lvd_tokens *t, size_t i)
{
	struct clip_ctx *c = ctx;
	char s[1024];
	lvd_clip_token_str(c->tok, t->ids[i], s, sizeof s);
	return json_string(s);
}

static json_int_t clip_word(void *ctx, const struct lvd_tokens *t, size_t i)
{
	(void)ctx;
	return t->word[i];
}

int cmd_tokenize(int argc, char **argv)
{
	lvd_log_set_prog("sd-attnmap tokenize"); /* messages and usage hints name the subcommand */
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
	if (a.pad && !strcmp(a.pad, "auto")) {
		int32_t pad;
		if (am_tok_pad_id(a.tokenizer, &pad, &err) ||
		    (pad != 0 && pad != LVD_CLIP_EOS &&
		     lvd_error_set(&err, LVD_ERR_UNSUPPORTED, "%s: pad id %d: --pad auto knows 0 and %d", a.tokenizer,
				   (int)pad, LVD_CLIP_EOS))) {
			lvd_error_log("%s", err.msg);
			lvd_clip_tok_free(tok);
			return 1;
		}
		a.o.pad = pad ? LVD_CLIP_PAD_EOS : LVD_CLIP_PAD_ZERO;
	}
	struct clip_ctx c = {tok, &a.o};
	struct lvd_toklines tl = {a.json, clip_encode, clip_token, clip_word, &c};
	int status = lvd_toklines_run(&tl, a.text);
	lvd_clip_tok_free(tok);
	return status;
}
