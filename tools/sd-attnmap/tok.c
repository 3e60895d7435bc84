/* sd-attnmap: CLIP tokenization of the SD text into struct lvd_attnmap_text (runctx.h).
 *
 * The context fed to the text encoder is BOS, the first 75 tokens, EOS, then padding to
 * 77 with the tokenizer folder's pad token: "<|endoftext|>" = 49407 for SD 1.x, "!" = 0
 * for SD 2.x (special_tokens_map.json, else tokenizer_config.json; a pad token other
 * than <|endoftext|> is looked up in the folder's vocab.json; no folder config: EOS).
 * Kept tokens are positions 1..T. Word w's string is the original text from the first
 * byte to the last byte covered by its kept tokens. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "runctx.h"
#include "text/clip_tok.h"
#include "text/tokens.h"

struct am_tok {
	struct lvd_clip_tok *clip;
	struct lvd_tokens toks;
	int32_t pad_id;
};

static int tok_is_dir(const char *p)
{
	struct stat s;
	return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

/* "pad_token" of a tokenizer config (a string or {"content": ...}), borrowed, or NULL. */
static const char *pad_token_of(json_t *root)
{
	json_t *v = json_object_get(root, "pad_token");
	if (json_is_object(v))
		v = json_object_get(v, "content");
	return json_is_string(v) ? json_string_value(v) : NULL;
}

int am_tok_pad_id(const char *path, int32_t *pad, struct lvd_error *err)
{
	char dir[4096], f[4200];
	*pad = LVD_CLIP_EOS;
	snprintf(dir, sizeof dir, "%s/tokenizer", path);
	if (!tok_is_dir(dir)) {
		snprintf(dir, sizeof dir, "%s", path);
		if (!tok_is_dir(dir)) {
			char *slash = strrchr(dir, '/');
			if (slash)
				*slash = 0;
			else
				snprintf(dir, sizeof dir, ".");
		}
	}
	static const char *const cfgs[2] = {"special_tokens_map.json", "tokenizer_config.json"};
	json_t *root = NULL;
	const char *tokstr = NULL;
	for (int i = 0; i < 2 && !tokstr; i++) {
		snprintf(f, sizeof f, "%s/%s", dir, cfgs[i]);
		json_decref(root);
		root = json_load_file(f, 0, NULL);
		tokstr = root ? pad_token_of(root) : NULL;
	}
	int rc = 0;
	if (tokstr && strcmp(tokstr, "<|endoftext|>")) {
		char cfg[4200];
		snprintf(cfg, sizeof cfg, "%s", f);
		snprintf(f, sizeof f, "%s/vocab.json", dir);
		json_t *vocab = json_load_file(f, 0, NULL);
		json_t *id = vocab ? json_object_get(vocab, tokstr) : NULL;
		if (json_is_integer(id) && json_integer_value(id) >= 0 && json_integer_value(id) < LVD_CLIP_EOS + 1)
			*pad = (int32_t)json_integer_value(id);
		else
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: pad_token '%s' is not in %s", cfg, tokstr, f);
		json_decref(vocab);
	}
	json_decref(root);
	return rc;
}

int am_tok_open(struct am_tok **out, const char *path, struct lvd_error *err)
{
	struct am_tok *t = calloc(1, sizeof *t);
	if (!t)
		return lvd_error_set(err, LVD_ERR_NOMEM, "tokenizer");
	int rc = lvd_clip_tok_load(&t->clip, path, err);
	if (!rc && (rc = am_tok_pad_id(path, &t->pad_id, err)))
		lvd_clip_tok_free(t->clip);
	if (rc) {
		free(t);
		*out = NULL;
		return rc;
	}
	lvd_tokens_init(&t->toks);
	*out = t;
	return 0;
}

void am_tok_close(struct am_tok *t)
{
	if (!t)
		return;
	lvd_clip_tok_free(t->clip);
	lvd_tokens_free(&t->toks);
	free(t);
}

void am_text_free(struct lvd_attnmap_text *t)
{
	if (t->token_strs)
		for (int i = 0; i < t->T; i++)
			free(t->token_strs[i]);
	free(t->token_strs);
	free(t->spans);
	free(t->word_idx);
	if (t->words)
		for (uint32_t i = 0; i < t->n_words; i++)
			free(t->words[i]);
	free(t->words);
	memset(t, 0, sizeof *t);
}

int am_tok_text(struct am_tok *t, const char *text, struct lvd_attnmap_text *out, struct lvd_error *err)
{
	memset(out, 0, sizeof *out);
	lvd_tokens_clear(&t->toks);
	int rc = lvd_clip_encode(t->clip, text, strlen(text), NULL, &t->toks, err);
	if (rc)
		return rc;
	/* toks = BOS, n content tokens, EOS */
	size_t n = t->toks.n >= 2 ? t->toks.n - 2 : 0;
	if (!n)
		return lvd_error_set(err, LVD_ERR_INVALID, "empty text (no CLIP tokens)");
	int T = n > LVD_ATTNMAP_CTX - 2 ? LVD_ATTNMAP_CTX - 2 : (int)n;
	out->T = T;
	out->truncated = n > (size_t)T;
	out->ids[0] = LVD_CLIP_BOS;
	for (int i = 0; i < T; i++)
		out->ids[1 + i] = t->toks.ids[1 + i];
	out->ids[T + 1] = LVD_CLIP_EOS;
	out->pad_id = t->pad_id;
	for (int i = T + 2; i < LVD_ATTNMAP_CTX; i++)
		out->ids[i] = t->pad_id;
	int32_t first_word = t->toks.word[1], last_word = t->toks.word[T];
	if (first_word < 0 || last_word < first_word)
		return lvd_error_set(err, LVD_ERR_INVALID, "tokenizer gave no word indices");
	out->n_words = (uint32_t)(last_word - first_word + 1);
	if (!(out->token_strs = calloc((size_t)T, sizeof(char *))) ||
	    !(out->spans = lvd_alloc_array((size_t)T, 2 * sizeof(uint32_t))) ||
	    !(out->word_idx = lvd_alloc_array((size_t)T, sizeof(int32_t))) ||
	    !(out->words = calloc(out->n_words, sizeof(char *)))) {
		am_text_free(out);
		return lvd_error_set(err, LVD_ERR_NOMEM, "tokens");
	}
	for (int i = 0; i < T; i++) {
		char buf[512];
		size_t L = lvd_clip_token_str(t->clip, out->ids[1 + i], buf, sizeof buf);
		out->token_strs[i] = lvd_strdup(L ? buf : "");
		out->spans[2 * i] = t->toks.start[1 + i];
		out->spans[2 * i + 1] = t->toks.end[1 + i];
		out->word_idx[i] = t->toks.word[1 + i] < 0 ? -1 : t->toks.word[1 + i] - first_word;
		if (!out->token_strs[i]) {
			am_text_free(out);
			return lvd_error_set(err, LVD_ERR_NOMEM, "tokens");
		}
	}
	for (uint32_t w = 0; w < out->n_words; w++) {
		uint32_t b = UINT32_MAX, e = 0;
		for (int i = 0; i < T; i++)
			if (out->word_idx[i] == (int32_t)w) {
				if (out->spans[2 * i] < b)
					b = out->spans[2 * i];
				if (out->spans[2 * i + 1] > e)
					e = out->spans[2 * i + 1];
			}
		if (b > e)
			b = e = 0;
		char *s = malloc(e - b + 1);
		if (!s) {
			am_text_free(out);
			return lvd_error_set(err, LVD_ERR_NOMEM, "words");
		}
		memcpy(s, text + b, e - b);
		s[e - b] = 0;
		out->words[w] = s;
	}
	return 0;
}
