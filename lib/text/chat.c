#include "text/chat.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "text/utf8.h"

void lvd_chat_out_init(struct lvd_chat_out *o)
{
	memset(o, 0, sizeof *o);
	lvd_tokens_init(&o->toks);
}

void lvd_chat_out_free(struct lvd_chat_out *o)
{
	lvd_tokens_free(&o->toks);
	free(o->seg);
	free(o->msg);
	free(o->text);
	memset(o, 0, sizeof *o);
}

size_t lvd_chat_from_text(const char *c, size_t len, struct lvd_chat_item items[2])
{
	if (len >= 7 && !memcmp(c, "<image>", 7)) {
		size_t k = 7;
		if (k < len && c[k] == '\n')
			k++;
		items[0] = (struct lvd_chat_item){LVD_CHAT_IMAGE, NULL, 0};
		items[1] = (struct lvd_chat_item){LVD_CHAT_TEXT, c + k, len - k};
		return 2;
	}
	items[0] = (struct lvd_chat_item){LVD_CHAT_TEXT, c, len};
	return 1;
}

/* rendered text with a (seg, msg) label per byte */
struct render {
	char *s;
	uint8_t *seg;
	int32_t *msg;
	size_t n, cap;
};

static int r_put(struct render *r, const char *p, size_t l, uint8_t seg, int32_t msg)
{
	if (r->n + l + 1 > r->cap) {
		size_t nc = r->cap ? r->cap : 256;
		while (nc < r->n + l + 1)
			nc *= 2;
		char *s = realloc(r->s, nc);
		if (!s)
			return -1;
		r->s = s;
		uint8_t *g = realloc(r->seg, nc);
		if (!g)
			return -1;
		r->seg = g;
		int32_t *m = lvd_realloc_array(r->msg, nc, sizeof *m);
		if (!m)
			return -1;
		r->msg = m;
		r->cap = nc;
	}
	memcpy(r->s + r->n, p, l);
	memset(r->seg + r->n, seg, l);
	for (size_t i = 0; i < l; i++)
		r->msg[r->n + i] = msg;
	r->n += l;
	r->s[r->n] = 0;
	return 0;
}

/* A text run [a, b) of the rendered string, encoded as one piece of plain text. */
static int flush_text(struct lvd_llama_tok *tok, const struct render *r, size_t a, size_t b,
		      struct lvd_chat_out *o, struct lvd_error *err)
{
	if (b <= a)
		return 0;
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	int rc = lvd_llama_encode(tok, r->s + a, b - a, 0, &t, err);
	for (size_t i = 0; !rc && i < t.n; i++) {
		size_t s = a + t.start[i], e = a + t.end[i];
		uint8_t seg = r->seg[s];
		for (size_t k = s; k < e; k++)
			if (r->seg[k] == LVD_SEG_CONTENT)
				seg = LVD_SEG_CONTENT;
		if (lvd_tokens_push(&o->toks, t.ids[i], s, e, -1))
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		else {
			o->seg[o->toks.n - 1] = seg;
			o->msg[o->toks.n - 1] = r->msg[s];
		}
	}
	lvd_tokens_free(&t);
	return rc;
}

int lvd_chat_render(struct lvd_llama_tok *tok, const struct lvd_chat_msg *msgs, size_t n, unsigned flags,
		    struct lvd_chat_out *o, struct lvd_error *err)
{
	lvd_chat_out_free(o);
	lvd_chat_out_init(o);
	if (n == 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "chat: no messages");
	static const char *names[5] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
				       "<|eot_id|>", "<|image|>"};
	int32_t sid[5];
	for (int i = 0; i < 5; i++)
		if ((sid[i] = lvd_llama_special_id(tok, names[i])) < 0)
			return lvd_error_set(err, LVD_ERR_NOTFOUND, "chat: tokenizer has no %s", names[i]);
	for (size_t m = 0; m < n; m++) {
		size_t bad;
		if (!msgs[m].role || !lvd_utf8_valid(msgs[m].role, strlen(msgs[m].role), &bad))
			return lvd_error_set(err, LVD_ERR_INVALID, "chat: message %zu: bad role", m);
		for (size_t k = 0; k < msgs[m].n_items; k++)
			if (msgs[m].items[k].type == LVD_CHAT_TEXT &&
			    !lvd_utf8_valid(msgs[m].items[k].text, msgs[m].items[k].len, &bad))
				return lvd_error_set(err, LVD_ERR_INVALID,
						     "chat: message %zu item %zu: invalid UTF-8 at byte %zu", m, k, bad);
	}
	/* Render; remember where specials go. A special is recorded as a run of its name
	 * with seg | 0x80 so the text runs between them can be found again. */
	struct render r = {0};
	struct spec { size_t at, len; int32_t id; uint8_t seg; int32_t msg; } *sp = NULL;
	size_t nsp = 0, spcap = 0;
	int rc = 0;
#define ADD_SPECIAL(k, SEG, MSG)                                                                    \
	do {                                                                                        \
		if (nsp == spcap) {                                                                 \
			spcap = spcap ? spcap * 2 : 32;                                             \
			void *np_ = lvd_realloc_array(sp, spcap, sizeof *sp);                       \
			if (!np_) { rc = -1; goto out; }                                            \
			sp = np_;                                                                   \
		}                                                                                   \
		sp[nsp++] = (struct spec){r.n, strlen(names[k]), sid[k], (SEG), (MSG)};             \
		if (r_put(&r, names[k], strlen(names[k]), (SEG), (MSG))) { rc = -1; goto out; }     \
	} while (0)
	if (!(flags & LVD_CHAT_NO_BOS))
		ADD_SPECIAL(0, LVD_SEG_BOS, -1);
	if (!(flags & LVD_CHAT_NO_BOS) && (flags & LVD_CHAT_TWO_BOS))
		ADD_SPECIAL(0, LVD_SEG_BOS, -1);
	for (size_t m = 0; m < n; m++) {
		int32_t mi = (int32_t)m;
		ADD_SPECIAL(1, LVD_SEG_HEADER, mi);
		if (r_put(&r, msgs[m].role, strlen(msgs[m].role), LVD_SEG_HEADER, mi))
			{ rc = -1; goto out; }
		ADD_SPECIAL(2, LVD_SEG_HEADER, mi);
		if (r_put(&r, "\n\n", 2, LVD_SEG_SEP, mi))
			{ rc = -1; goto out; }
		for (size_t k = 0; k < msgs[m].n_items; k++) {
			const struct lvd_chat_item *it = &msgs[m].items[k];
			if (it->type == LVD_CHAT_IMAGE)
				ADD_SPECIAL(4, LVD_SEG_IMAGE, mi);
			else if (r_put(&r, it->text, it->len, LVD_SEG_CONTENT, mi))
				{ rc = -1; goto out; }
		}
		ADD_SPECIAL(3, LVD_SEG_EOT, mi);
	}
	if (flags & LVD_CHAT_GEN_PROMPT) {
		ADD_SPECIAL(1, LVD_SEG_GEN_PROMPT, -1);
		if (r_put(&r, "assistant", 9, LVD_SEG_GEN_PROMPT, -1))
			{ rc = -1; goto out; }
		ADD_SPECIAL(2, LVD_SEG_GEN_PROMPT, -1);
		if (r_put(&r, "\n\n", 2, LVD_SEG_GEN_PROMPT, -1))
			{ rc = -1; goto out; }
	}
#undef ADD_SPECIAL
	o->seg = malloc(r.n + 1);
	o->msg = lvd_alloc_array(r.n + 1, sizeof *o->msg);
	if (!o->seg || !o->msg) {
		rc = -1;
		goto out;
	}
	/* tokens are never more than bytes, so seg/msg sized r.n + 1 suffice */
	size_t pos = 0;
	for (size_t i = 0; i <= nsp && !rc; i++) {
		size_t at = i < nsp ? sp[i].at : r.n;
		if ((rc = flush_text(tok, &r, pos, at, o, err)))
			break;
		if (i == nsp)
			break;
		if (lvd_tokens_push(&o->toks, sp[i].id, at, at + sp[i].len, -1)) {
			rc = -1;
			break;
		}
		o->seg[o->toks.n - 1] = sp[i].seg;
		o->msg[o->toks.n - 1] = sp[i].msg;
		pos = at + sp[i].len;
	}
	if (!rc) {
		o->text = r.s;
		o->text_len = r.n;
		r.s = NULL;
		if (!o->text && !(o->text = calloc(1, 1)))
			rc = -1;
	}
out:
	free(r.s);
	free(r.seg);
	free(r.msg);
	free(sp);
	if (rc == -1)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "chat: out of memory");
	if (rc) {
		lvd_chat_out_free(o);
		lvd_chat_out_init(o);
	}
	return rc;
}

void lvd_chat_labels(const struct lvd_chat_out *o, const struct lvd_chat_msg *msgs, int32_t *labels)
{
	for (size_t i = 0; i < o->toks.n; i++) {
		int32_t m = o->msg[i];
		int train = m >= 0 && !strcmp(msgs[m].role, "assistant") &&
			    (o->seg[i] == LVD_SEG_SEP || o->seg[i] == LVD_SEG_CONTENT || o->seg[i] == LVD_SEG_EOT);
		labels[i] = train ? o->toks.ids[i] : -100;
	}
}

void lvd_chat_labels_official(const struct lvd_chat_out *o, const struct lvd_chat_msg *msgs, int32_t *labels)
{
	for (size_t i = 0; i < o->toks.n; i++) {
		int32_t m = o->msg[i];
		/* the generation prompt's header tokens, not its "\n\n" */
		int gen_header = o->seg[i] == LVD_SEG_GEN_PROMPT && o->text[o->toks.start[i]] != '\n';
		int masked = o->seg[i] == LVD_SEG_IMAGE || gen_header ||
			     (o->seg[i] == LVD_SEG_HEADER && m >= 0 && !strcmp(msgs[m].role, "assistant"));
		labels[i] = masked ? -100 : o->toks.ids[i];
	}
}
