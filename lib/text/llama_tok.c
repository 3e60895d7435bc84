#include "text/llama_tok.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "text/bpe.h"
#include "text/pretok.h"
#include "text/strmap.h"
#include "text/textio.h"
#include "text/utf8.h"

struct special {
	int32_t id;
	int special; /* 0: a non-special added token (always matched) */
	char *name;
	size_t len;
};

struct lvd_llama_tok {
	struct lvd_bpe *bpe;
	struct lvd_pretok *pre;
	struct special *sp;
	size_t nsp;
	struct lvd_strmap sp_map; /* name -> index into sp */
	uint8_t first_byte[256];  /* possible first bytes of added tokens */
	size_t lens[64];          /* distinct added-token lengths, longest first */
	size_t nlens;
	int32_t bos, eos, size;
	int32_t sp_min, sp_max; /* range of added-token ids */
	struct lvd_bpe_buf buf;   /* scratch */
};

/* ---- special tokens ------------------------------------------------------------ */
int lvd_llama_scheme_names(enum lvd_llama_scheme scheme, char *buf, size_t bufsize, const char **names)
{
	static const char *fixed[11] = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
					"<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", NULL,
					"<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
					"<|python_tag|>"};
	size_t used = 0;
	int count = scheme == LVD_LLAMA_SCHEME_MLLAMA ? 257 : 256;
	int reserved = 2;
	for (int i = 0; i < count; i++) {
		char tmp[64];
		const char *s;
		if (i < 11 && fixed[i]) {
			s = fixed[i];
		} else if (i == 5 && scheme != LVD_LLAMA_SCHEME_HF31) {
			s = "<|step_id|>";
		} else if (i == 11 && scheme == LVD_LLAMA_SCHEME_META) {
			s = "<|image|>";
		} else if (i == 256) {
			s = "<|image|>";
		} else {
			snprintf(tmp, sizeof tmp, "<|reserved_special_token_%d|>", reserved++);
			s = tmp;
		}
		size_t l = strlen(s) + 1;
		LVD_ASSERT(used + l <= bufsize);
		memcpy(buf + used, s, l);
		names[i] = buf + used;
		used += l;
	}
	return count;
}

static int add_special(struct lvd_llama_tok *t, int32_t id, const char *name, size_t len, int special,
		       struct lvd_error *err)
{
	if (len == 0 || len > 256)
		return lvd_error_set(err, LVD_ERR_FORMAT, "added token %d: bad length %zu", (int)id, len);
	if (id < 0 || id >= (1 << 24))
		return lvd_error_set(err, LVD_ERR_FORMAT, "added token '%.*s': id %d out of range", (int)len, name,
				     (int)id);
	struct special *ns = lvd_realloc_array(t->sp, t->nsp + 1, sizeof *ns);
	if (!ns)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	t->sp = ns;
	char *copy = malloc(len + 1);
	if (!copy)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	memcpy(copy, name, len);
	copy[len] = 0;
	t->sp[t->nsp] = (struct special){id, special, copy, len};
	if (lvd_strmap_put(&t->sp_map, name, len, (int64_t)t->nsp))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	t->nsp++;
	t->first_byte[(uint8_t)name[0]] = 1;
	size_t k = 0;
	while (k < t->nlens && t->lens[k] > len)
		k++;
	if (k == t->nlens || t->lens[k] != len) {
		if (t->nlens == 64)
			return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "more than 64 distinct added-token lengths");
		memmove(t->lens + k + 1, t->lens + k, (t->nlens - k) * sizeof *t->lens);
		t->lens[k] = len;
		t->nlens++;
	}
	if (id >= t->size)
		t->size = id + 1;
	if (t->nsp == 1 || id < t->sp_min)
		t->sp_min = id;
	if (t->nsp == 1 || id > t->sp_max)
		t->sp_max = id;
	return 0;
}

static const struct special *special_by_id(const struct lvd_llama_tok *t, int32_t id)
{
	if (!t->nsp || id < t->sp_min || id > t->sp_max)
		return NULL;
	for (size_t i = 0; i < t->nsp; i++)
		if (t->sp[i].id == id)
			return &t->sp[i];
	return NULL;
}

/* ---- loading ------------------------------------------------------------------- */
static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

/* decodes base64 s[0..n) into out; returns length or -1 */
static long b64dec(const char *s, size_t n, uint8_t *out)
{
	if (n % 4)
		return -1;
	long o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++) {
			v[k] = s[i + k] == '=' ? -2 : b64val((unsigned char)s[i + k]);
			if (v[k] == -1 || (v[k] == -2 && (i + 4 < n || k < 2)))
				return -1;
		}
		out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (v[2] >= 0)
			out[o++] = (uint8_t)((v[1] & 15) << 4 | v[2] >> 2);
		if (v[3] >= 0) {
			if (v[2] < 0)
				return -1;
			out[o++] = (uint8_t)((v[2] & 3) << 6 | v[3]);
		}
	}
	return o;
}

static int load_tiktoken(struct lvd_llama_tok *t, const char *path, enum lvd_llama_scheme scheme,
			 struct lvd_error *err)
{
	char *data;
	size_t len;
	int rc = lvd_text_read_file(path, &data, &len, err);
	if (rc)
		return rc;
	size_t line = 0, p = 0, ll;
	const char *ln;
	int32_t maxid = -1;
	while (lvd_text_next_line(data, len, &p, &ln, &ll)) {
		line++;
		if (ll > 0) {
			const char *sp = memchr(ln, ' ', ll);
			uint8_t tok[512];
			if (!sp || (size_t)(sp - ln) > 680) {
				rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%zu: expected 'base64 rank'", path, line);
				goto out;
			}
			long n = b64dec(ln, (size_t)(sp - ln), tok);
			char num[32];
			size_t nl = (size_t)(ln + ll - (sp + 1));
			uint64_t rank = 0;
			int ok = n > 0 && nl > 0 && nl < sizeof num;
			for (size_t k = 0; ok && k < nl; k++) {
				char c = sp[1 + k];
				ok = c >= '0' && c <= '9' && rank < (1u << 24);
				rank = rank * 10 + (uint64_t)(c - '0');
			}
			if (!ok || rank >= 128000 * 8) {
				rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%zu: bad base64 token or rank", path, line);
				goto out;
			}
			if ((rc = lvd_bpe_add_token(t->bpe, (int32_t)rank, tok, (size_t)n, 0, err))) {
				lvd_error_prefix(err, "%s:%zu: ", path, line);
				goto out;
			}
			if ((int32_t)rank > maxid)
				maxid = (int32_t)rank;
		}
	}
	if ((rc = lvd_bpe_merges_from_ranks(t->bpe, err)) || (rc = lvd_bpe_finish(t->bpe, 0, 1, err))) {
		lvd_error_prefix(err, "%s: ", path);
		goto out;
	}
	{
		char buf[257 * 40];
		const char *names[257];
		int cnt = lvd_llama_scheme_names(scheme, buf, sizeof buf, names);
		int32_t first = maxid + 1 > 128000 ? maxid + 1 : 128000;
		for (int i = 0; i < cnt; i++)
			if ((rc = add_special(t, first + i, names[i], strlen(names[i]), 1, err)))
				goto out;
	}
	if ((rc = lvd_pretok_new(&t->pre, LVD_LLAMA_PATTERN, err)))
		goto out;
out:
	free(data);
	return rc;
}

static const char *split_pattern(json_t *pre)
{
	if (!json_is_object(pre))
		return NULL;
	const char *type = json_string_value(json_object_get(pre, "type"));
	if (type && !strcmp(type, "Split")) {
		json_t *pat = json_object_get(pre, "pattern");
		return json_string_value(json_object_get(pat, "Regex"));
	}
	if (type && !strcmp(type, "Sequence")) {
		json_t *arr = json_object_get(pre, "pretokenizers");
		size_t i;
		json_t *v;
		json_array_foreach(arr, i, v) {
			const char *s = split_pattern(v);
			if (s)
				return s;
		}
	}
	return NULL;
}

static int load_json(struct lvd_llama_tok *t, const char *path, struct lvd_error *err)
{
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	if (!root) {
		if (!lvd_path_is_file(path))
			return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text);
	}
	int rc = 0;
	json_t *model = json_object_get(root, "model");
	const char *type = json_string_value(json_object_get(model, "type"));
	if (!type || strcmp(type, "BPE")) {
		rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: model.type is '%s', not BPE", path, type ? type : "?");
		goto out;
	}
	json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
	if (!json_is_object(vocab) || !json_is_array(merges)) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: model.vocab / model.merges missing", path);
		goto out;
	}
	const char *suffix = json_string_value(json_object_get(model, "end_of_word_suffix"));
	if (suffix && !*suffix)
		suffix = NULL;
	const char *key;
	json_t *v;
	json_object_foreach(vocab, key, v) {
		if (!json_is_integer(v)) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: model.vocab['%s'] is not an integer", path, key);
			goto out;
		}
		if ((rc = lvd_bpe_add_token_str(t->bpe, (int32_t)json_integer_value(v), key, strlen(key), suffix, err))) {
			lvd_error_prefix(err, "%s: model.vocab: ", path);
			goto out;
		}
	}
	size_t i;
	json_array_foreach(merges, i, v) {
		const char *a, *b;
		size_t al, bl;
		char tmp[1024];
		if (json_is_string(v)) {
			const char *s = json_string_value(v);
			const char *sp = strchr(s, ' ');
			if (!sp || strchr(sp + 1, ' ') || strlen(s) >= sizeof tmp) {
				rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: model.merges[%zu]: expected 'a b'", path, i);
				goto out;
			}
			a = s;
			al = (size_t)(sp - s);
			b = sp + 1;
			bl = strlen(b);
		} else if (json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
			   json_is_string(json_array_get(v, 1))) {
			a = json_string_value(json_array_get(v, 0));
			b = json_string_value(json_array_get(v, 1));
			al = strlen(a);
			bl = strlen(b);
		} else {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: model.merges[%zu]: expected 'a b' or [a, b]", path, i);
			goto out;
		}
		int32_t l = lvd_bpe_find_str(t->bpe, a, al, suffix), r = lvd_bpe_find_str(t->bpe, b, bl, suffix);
		if (l < 0 || r < 0) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: model.merges[%zu]: '%.*s' not in the vocabulary", path,
					   i, l < 0 ? (int)al : (int)bl, l < 0 ? a : b);
			goto out;
		}
		if ((rc = lvd_bpe_add_merge(t->bpe, l, r, i, err))) {
			lvd_error_prefix(err, "%s: model.merges[%zu]: ", path, i);
			goto out;
		}
	}
	int ignore = json_is_true(json_object_get(model, "ignore_merges"));
	if ((rc = lvd_bpe_finish(t->bpe, suffix != NULL, ignore, err))) {
		lvd_error_prefix(err, "%s: ", path);
		goto out;
	}
	t->size = lvd_bpe_size(t->bpe);
	json_t *added = json_object_get(root, "added_tokens");
	json_array_foreach(added, i, v) {
		json_t *id = json_object_get(v, "id");
		const char *c = json_string_value(json_object_get(v, "content"));
		if (!json_is_integer(id) || !c) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: added_tokens[%zu]: needs id and content", path, i);
			goto out;
		}
		if ((rc = add_special(t, (int32_t)json_integer_value(id), c, strlen(c),
				      !json_is_false(json_object_get(v, "special")), err))) {
			lvd_error_prefix(err, "%s: added_tokens[%zu]: ", path, i);
			goto out;
		}
	}
	const char *pat = split_pattern(json_object_get(root, "pre_tokenizer"));
	if ((rc = lvd_pretok_new(&t->pre, pat ? pat : LVD_LLAMA_PATTERN, err)))
		lvd_error_prefix(err, "%s: pre_tokenizer: ", path);
out:
	json_decref(root);
	return rc;
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

int lvd_llama_tok_load(struct lvd_llama_tok **out, const char *path, enum lvd_llama_scheme scheme,
		       struct lvd_error *err)
{
	*out = NULL;
	struct lvd_llama_tok *t = calloc(1, sizeof *t);
	if (!t || !(t->bpe = lvd_bpe_new())) {
		free(t);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	lvd_strmap_init(&t->sp_map);
	int rc;
	char buf[4096];
	if (lvd_path_is_dir(path)) {
		snprintf(buf, sizeof buf, "%s/tokenizer.json", path);
		if (lvd_path_is_file(buf)) {
			rc = load_json(t, buf, err);
		} else {
			snprintf(buf, sizeof buf, "%s/tokenizer.model", path);
			if (lvd_path_is_file(buf))
				rc = load_tiktoken(t, buf, scheme, err);
			else
				rc = lvd_error_set(err, LVD_ERR_NOTFOUND, "'%s' holds neither tokenizer.json nor tokenizer.model",
						   path);
		}
	} else if (ends_with(path, ".json")) {
		rc = load_json(t, path, err);
	} else if (lvd_path_is_file(path)) {
		rc = load_tiktoken(t, path, scheme, err);
	} else {
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	}
	if (!rc) {
		t->bos = lvd_llama_special_id(t, "<|begin_of_text|>");
		t->eos = lvd_llama_special_id(t, "<|end_of_text|>");
		*out = t;
	} else {
		lvd_llama_tok_free(t);
	}
	return rc;
}

void lvd_llama_tok_free(struct lvd_llama_tok *t)
{
	if (!t)
		return;
	lvd_bpe_free(t->bpe);
	lvd_pretok_free(t->pre);
	for (size_t i = 0; i < t->nsp; i++)
		free(t->sp[i].name);
	free(t->sp);
	lvd_strmap_free(&t->sp_map);
	lvd_bpe_buf_free(&t->buf);
	free(t);
}

int32_t lvd_llama_special_id(const struct lvd_llama_tok *t, const char *name)
{
	int64_t k;
	return lvd_strmap_get(&t->sp_map, name, strlen(name), &k) ? t->sp[k].id : -1;
}

int lvd_llama_is_special(const struct lvd_llama_tok *t, int32_t id)
{
	return special_by_id(t, id) != NULL;
}

int32_t lvd_llama_vocab_size(const struct lvd_llama_tok *t)
{
	return t->size;
}

const uint8_t *lvd_llama_token_bytes(const struct lvd_llama_tok *t, int32_t id, size_t *n)
{
	const struct special *s = special_by_id(t, id);
	if (s) {
		*n = s->len;
		return (const uint8_t *)s->name;
	}
	return lvd_bpe_token(t->bpe, id, n, NULL);
}

/* ---- encoding ------------------------------------------------------------------ */
struct enc_ctx {
	struct lvd_llama_tok *t;
	const char *text;
	size_t base;
	struct lvd_tokens *out;
};

static int piece(size_t a, size_t b, void *vctx)
{
	struct enc_ctx *c = vctx;
	struct lvd_bpe_buf *buf = &c->t->buf;
	buf->n = 0;
	if (lvd_bpe_encode(c->t->bpe, (const uint8_t *)c->text + c->base + a, b - a, buf))
		return LVD_ERR_NOMEM;
	size_t pos = c->base + a;
	for (size_t i = 0; i < buf->n; i++) {
		if (lvd_tokens_push(c->out, buf->ids[i], pos, pos + buf->len[i], -1))
			return LVD_ERR_NOMEM;
		pos += buf->len[i];
	}
	return 0;
}

static int encode_plain(struct lvd_llama_tok *t, const char *text, size_t a, size_t b, struct lvd_tokens *out,
			struct lvd_error *err)
{
	if (b <= a)
		return 0;
	struct enc_ctx c = {t, text, a, out};
	int rc = lvd_pretok_split(t->pre, text + a, b - a, 1, piece, &c, err);
	if (rc == LVD_ERR_NOMEM)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory encoding");
	return rc;
}

/* the added token starting at text[i] (longest), or NULL */
static const struct special *match_special(const struct lvd_llama_tok *t, const char *text, size_t i, size_t n,
					   int allow_special)
{
	for (size_t k = 0; k < t->nlens; k++) {
		size_t l = t->lens[k];
		int64_t idx;
		if (l <= n - i && lvd_strmap_get(&t->sp_map, text + i, l, &idx) &&
		    (allow_special || !t->sp[idx].special))
			return &t->sp[idx];
	}
	return NULL;
}

int lvd_llama_encode(struct lvd_llama_tok *t, const char *text, size_t n, unsigned flags,
		     struct lvd_tokens *out, struct lvd_error *err)
{
	size_t bad;
	if (!lvd_utf8_valid(text, n, &bad))
		return lvd_error_set(err, LVD_ERR_INVALID, "invalid UTF-8 at byte %zu", bad);
	if (flags & LVD_LLAMA_BOS) {
		if (t->bos < 0)
			return lvd_error_set(err, LVD_ERR_NOTFOUND, "tokenizer has no <|begin_of_text|>");
		if (lvd_tokens_push(out, t->bos, 0, 0, -1))
			return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	int allow = (flags & LVD_LLAMA_ALLOW_SPECIAL) != 0;
	int any = 0;
	for (size_t i = 0; i < t->nsp && !any; i++)
		any = allow || !t->sp[i].special;
	size_t seg = 0;
	if (any) {
		for (size_t i = 0; i < n; i++) {
			if (!t->first_byte[(uint8_t)text[i]])
				continue;
			const struct special *s = match_special(t, text, i, n, allow);
			if (!s)
				continue;
			int rc = encode_plain(t, text, seg, i, out, err);
			if (rc)
				return rc;
			if (lvd_tokens_push(out, s->id, i, i + s->len, -1))
				return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
			i += s->len - 1;
			seg = i + 1;
		}
	}
	int rc = encode_plain(t, text, seg, n, out, err);
	if (rc)
		return rc;
	if (flags & LVD_LLAMA_EOS) {
		if (t->eos < 0)
			return lvd_error_set(err, LVD_ERR_NOTFOUND, "tokenizer has no <|end_of_text|>");
		if (lvd_tokens_push(out, t->eos, n, n, -1))
			return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	return 0;
}

int lvd_llama_decode(const struct lvd_llama_tok *t, const int32_t *ids, size_t n, unsigned flags,
		     char **text, size_t *len, struct lvd_error *err)
{
	*text = NULL;
	*len = 0;
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l;
		const uint8_t *p = lvd_llama_token_bytes(t, ids[i], &l);
		if (!p)
			return lvd_error_set(err, LVD_ERR_INVALID, "id %d at index %zu is not in the vocabulary",
					     (int)ids[i], i);
		if ((flags & LVD_LLAMA_SKIP_SPECIAL) && lvd_llama_is_special(t, ids[i]))
			continue;
		total += l;
	}
	uint8_t *raw = malloc(total + 1);
	size_t cap;
	char *o = NULL;
	if (raw && !lvd_size_mul(&cap, total, 3) && !lvd_size_add(&cap, cap, 1))
		o = malloc(cap);
	if (!raw || !o) {
		free(raw);
		free(o);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory decoding");
	}
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if ((flags & LVD_LLAMA_SKIP_SPECIAL) && lvd_llama_is_special(t, ids[i]))
			continue;
		size_t l;
		const uint8_t *p = lvd_llama_token_bytes(t, ids[i], &l);
		memcpy(raw + w, p, l);
		w += l;
	}
	size_t ol = lvd_utf8_lossy(raw, w, o);
	free(raw);
	o[ol] = 0;
	*text = o;
	*len = ol;
	return 0;
}
