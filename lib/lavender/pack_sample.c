/* lib/lavender/pack_sample.c — one sample's lvd-pack record payload (see pack_sample.h). */
#include "lavender/pack_sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "core/alloc.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/pack_sample_int.h"
#include "lavender/packrec.h"

int lvd_pack_check_tokenizer(const struct lvd_llama_tok *tok, struct lvd_error *err)
{
	static const char *names[5] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
				       "<|eot_id|>", "<|image|>"};
	for (int i = 0; i < 5; i++)
		if (lvd_llama_special_id(tok, names[i]) < 0)
			return lvd_error_set(err, LVD_ERR_NOTFOUND, "tokenizer has no %s token (not a Llama-3.2-Vision tokenizer?)",
					     names[i]);
	return LVD_OK;
}

const char *lvd_pack_labels_name(enum lvd_pack_labels l)
{
	return l == LVD_PACK_LABELS_OFFICIAL ? "official" : l == LVD_PACK_LABELS_OPENBMB ? "openbmb" : "recipes";
}

void lvd_pack_chat_free(struct lvd_pack_chat *c)
{
	lvd_chat_out_free(&c->out);
	free(c->labels);
	free(c->region);
	free(c->text);
	free(c->beg);
	free(c->end);
	free(c->msg_end);
	free(c->msg_role);
	free(c->msgs);
	free(c->items);
	memset(c, 0, sizeof *c);
}

static int blank(const char *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return 0;
	return 1;
}

/* grows *p to n elements of size sz when cap < n (cap updated by the caller) */
static int grow(void *pp, size_t n, size_t sz)
{
	void **p = pp;
	void *q = lvd_realloc_array(*p, n ? n : 1, sz);
	if (!q)
		return -1;
	*p = q;
	return 0;
}

static int chat_views(struct lvd_pack_chat *c, const struct lvd_llama_tok *tok, const struct lvd_turn *turns,
		      size_t n, enum lvd_pack_labels labels)
{
	const struct lvd_chat_out *o = &c->out;
	size_t T = o->toks.n;
	if (T > c->cap_tok) {
		if (grow(&c->labels, T, sizeof *c->labels) || grow(&c->region, T, 1) || grow(&c->beg, T, sizeof *c->beg) ||
		    grow(&c->end, T, sizeof *c->end))
			return -1;
		c->cap_tok = T;
	}
	if (o->text_len + 1 > c->cap_text) {
		if (grow(&c->text, o->text_len + 1, 1))
			return -1;
		c->cap_text = o->text_len + 1;
	}
	if (labels == LVD_PACK_LABELS_OFFICIAL)
		lvd_chat_labels_official(o, c->msgs, c->labels);
	else
		lvd_chat_labels(o, c->msgs, c->labels);
	/* the match text: decoded pieces, where each special token becomes an empty span
	 * followed by "\n" so that it separates words and adds none */
	size_t rp = 0, L = 0;
	c->image_pos = -1;
	for (size_t t = 0; t < T; t++) {
		c->region[t] = o->msg[t] >= 0 && !strcmp(c->msgs[o->msg[t]].role, "assistant") &&
			       (o->seg[t] == LVD_SEG_SEP || o->seg[t] == LVD_SEG_CONTENT);
		if (o->seg[t] == LVD_SEG_IMAGE && c->image_pos < 0)
			c->image_pos = (long)t;
		if (o->msg[t] >= 0)
			c->msg_end[o->msg[t]] = (uint32_t)t + 1;
		if (lvd_llama_is_special(tok, o->toks.ids[t])) {
			c->beg[t] = c->end[t] = (uint32_t)L;
			c->text[L++] = '\n';
		} else {
			size_t s0 = o->toks.start[t] > rp ? o->toks.start[t] : rp;
			c->beg[t] = (uint32_t)(L + (s0 - rp));
			memcpy(c->text + L, o->text + rp, o->toks.end[t] - rp);
			L += o->toks.end[t] - rp;
			c->end[t] = (uint32_t)L;
		}
		rp = o->toks.end[t];
	}
	c->text[L] = 0;
	c->text_len = L;
	for (size_t m = 0; m < n; m++)
		c->msg_role[m] = turns[m].role;
	c->n_msg = n;
	return 0;
}

int lvd_pack_turns(const struct lvd_sample *s, const char *prompt, struct lvd_turn cap[2],
		   const struct lvd_turn **turns_out, size_t *n_out, long *first_user_out, const char **kind,
		   struct lvd_error *err)
{
	const struct lvd_turn *turns = s->turns;
	size_t n = s->n_turns;
	*kind = "text";
	if (!n) {
		if (!s->caption)
			return lvd_error_set(err, LVD_ERR_INVALID, "no conversations and no caption");
		cap[0] = (struct lvd_turn){LVD_ROLE_USER, (char *)prompt};
		cap[1] = (struct lvd_turn){LVD_ROLE_ASSISTANT, s->caption};
		turns = cap;
		n = 2;
	}
	long first_user = -1;
	int answer = 0;
	for (size_t i = 0; i < n; i++) {
		if (turns[i].role == LVD_ROLE_USER && first_user < 0)
			first_user = (long)i;
		if (turns[i].role == LVD_ROLE_ASSISTANT && !blank(turns[i].content))
			answer = 1;
	}
	if (!answer) {
		*kind = "empty_answer";
		return lvd_error_set(err, LVD_ERR_INVALID, "empty answer: no assistant turn with text");
	}
	if (first_user < 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "no user turn to carry the image");
	*turns_out = turns;
	*n_out = n;
	*first_user_out = first_user;
	return LVD_OK;
}

int lvd_pack_chat_encode(struct lvd_pack_chat *c, struct lvd_llama_tok *tok, const struct lvd_sample *s,
			 const char *prompt, enum lvd_pack_labels labels, struct lvd_error *err)
{
	struct lvd_turn cap_turns[2];
	const struct lvd_turn *turns;
	size_t n;
	long first_user;
	const char *kind;
	int rc = lvd_pack_turns(s, prompt, cap_turns, &turns, &n, &first_user, &kind, err);
	if (rc)
		return rc;
	if (n > c->cap_msg) {
		if (grow(&c->msgs, n, sizeof *c->msgs) || grow(&c->items, 2 * n, sizeof *c->items) ||
		    grow(&c->msg_end, n, sizeof *c->msg_end) || grow(&c->msg_role, n, sizeof *c->msg_role))
			return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		c->cap_msg = n;
	}
	/* the image goes first in the first user turn (a leading "<image>\n" is dropped) */
	for (size_t m = 0; m < n; m++) {
		const char *txt = turns[m].content ? turns[m].content : "";
		struct lvd_chat_item *it = &c->items[2 * m];
		c->msgs[m] = (struct lvd_chat_msg){lvd_role_name(turns[m].role), it, 1};
		if ((long)m == first_user) {
			if (!strncmp(txt, "<image>", 7)) {
				txt += 7;
				if (*txt == '\n')
					txt++;
			}
			*it++ = (struct lvd_chat_item){LVD_CHAT_IMAGE, NULL, 0};
			c->msgs[m].n_items = 2;
		}
		*it = (struct lvd_chat_item){LVD_CHAT_TEXT, txt, strlen(txt)};
	}
	rc = lvd_chat_render(tok, c->msgs, n, labels == LVD_PACK_LABELS_OFFICIAL ? LVD_CHAT_TWO_BOS : 0, &c->out, err);
	if (rc)
		return rc;
	if (chat_views(c, tok, turns, n, labels))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	return LVD_OK;
}

int lvd_pack_image_size(const uint8_t *d, size_t len, int *w, int *h, const char *name, struct lvd_error *err)
{
	static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	if (len >= 24 && !memcmp(d, png, 8) && !memcmp(d + 12, "IHDR", 4)) {
		uint32_t W = (uint32_t)d[16] << 24 | (uint32_t)d[17] << 16 | (uint32_t)d[18] << 8 | d[19];
		uint32_t H = (uint32_t)d[20] << 24 | (uint32_t)d[21] << 16 | (uint32_t)d[22] << 8 | d[23];
		if (W < 1 || H < 1 || W > 1u << 20 || H > 1u << 20)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: PNG size %ux%u out of range", name, W, H);
		*w = (int)W;
		*h = (int)H;
		return LVD_OK;
	}
	if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) {
		tjhandle tj = tjInitDecompress();
		if (!tj)
			return lvd_error_set(err, LVD_ERR_NOMEM, "%s: cannot start the JPEG decoder", name);
		int W = 0, H = 0, sub = 0, cs = 0;
		int r = tjDecompressHeader3(tj, d, (unsigned long)len, &W, &H, &sub, &cs);
		tjDestroy(tj);
		if (r || W < 1 || H < 1)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: corrupt JPEG header", name);
		*w = W;
		*h = H;
		return LVD_OK;
	}
	return lvd_error_set(err, LVD_ERR_FORMAT, "%s: not a PNG or JPEG file", name);
}

int lvd_pack_image_check(const struct lvd_pack_params *p, const struct lvd_pack_input *in, int *img_w, int *img_h,
			 struct lvd_pack_stats *st, const char **kind, struct lvd_error *err)
{
	int rc;
	*kind = "image";
	if ((rc = lvd_pack_image_size(in->image, in->image_len, img_w, img_h, in->image_path, err)))
		return rc;
	if (p->verify_images) {
		struct lvd_image im = {0};
		rc = lvd_image_decode(&im, in->image, in->image_len, LVD_ALPHA_WHITE, in->image_path, err);
		lvd_image_free(&im);
		if (rc)
			return rc;
	}
	const struct lvd_mapsrec *mr = in->maps;
	if (!mr) {
		if (!p->allow_missing_maps) {
			*kind = "missing_maps";
			return lvd_error_set(err, LVD_ERR_NOTFOUND, "no map record for id '%s' in --maps", in->s->id);
		}
		st->missing_maps = 1;
	} else if (mr->img_w && mr->img_h && (mr->img_w != *img_w || mr->img_h != *img_h)) {
		*kind = "maps";
		return lvd_error_set(err, LVD_ERR_INVALID, "the maps were computed for a %dx%d image, '%s' is %dx%d",
				     mr->img_w, mr->img_h, in->image_path, *img_w, *img_h);
	}
	return LVD_OK;
}

void lvd_pack_work_free(struct lvd_pack_work *wk)
{
	lvd_match_result_free(&wk->mres);
	lvd_geom_resampler_free(&wk->rs);
	free(wk->acc);
	free(wk->dst);
	free(wk->targets);
	free(wk->raw);
	free(wk->words);
	memset(wk, 0, sizeof *wk);
}

int lvd_pack_words(struct lvd_pack_work *wk, const struct lvd_pack_params *p, const struct lvd_match_vlm *v,
		   uint32_t min_query, const struct lvd_geom *g, int grid, const struct lvd_mapsrec *mr,
		   struct lvd_pack_stats *st, const char **kind, struct lvd_error *err)
{
	memset(wk, 0, sizeof *wk);
	int rc;
	if (mr) {
		struct lvd_match_sd sdv = {mr->text, strlen(mr->text), mr->T, mr->spans};
		struct lvd_match_opts mo = {p->match_all, p->query_at, p->stop, min_query};
		if ((rc = lvd_match(&wk->mres, v, &sdv, &mo, err))) {
			*kind = "text";
			return rc;
		}
		st->region_words = (uint32_t)wk->mres.n_region_words;
		st->content_words = (uint32_t)wk->mres.n_content;
		st->content_matched = (uint32_t)wk->mres.n_content_matched;
	}
	if ((rc = lvd_geom_resampler_init(&wk->rs, g, mr ? mr->grid_h : 1, mr ? mr->grid_w : 1, grid, err))) {
		*kind = "maps";
		return rc;
	}
	size_t W = wk->mres.n, cells = (size_t)wk->rs.dst_h * wk->rs.dst_w;
	size_t src_n = mr ? (size_t)mr->grid_h * mr->grid_w : 1;
	if (W > LVD_PACKREC_MAX_WORDS)
		W = LVD_PACKREC_MAX_WORDS;
	wk->acc = lvd_alloc_array(src_n, sizeof *wk->acc);
	wk->dst = lvd_alloc_array(cells, sizeof *wk->dst);
	wk->targets = lvd_alloc_array(W ? W * cells : 1, sizeof *wk->targets);
	wk->raw = lvd_alloc_array(W ? W * src_n : 1, sizeof *wk->raw);
	wk->words = lvd_calloc_array(W ? W : 1, sizeof *wk->words);
	if (!wk->acc || !wk->dst || !wk->targets || !wk->raw || !wk->words)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	float *acc = wk->acc, *dst = wk->dst;
	for (size_t w = 0; w < W; w++) {
		const struct lvd_match_word *mw = &wk->mres.w[w];
		memset(acc, 0, src_n * sizeof *acc);
		for (uint32_t k = 0; k < mw->n_sd; k++) {
			const uint16_t *m = mr->maps + (size_t)mw->sd_tok[k] * src_n;
			for (size_t i = 0; i < src_n; i++)
				acc[i] += lvd_f16_to_f32(m[i]);
		}
		for (size_t i = 0; i < src_n; i++) {
			acc[i] /= (float)mw->n_sd;
			if (!isfinite(acc[i])) {
				*kind = "maps";
				return lvd_error_set(err, LVD_ERR_INVALID, "map of CLIP token %u is not finite", mw->sd_tok[0]);
			}
			wk->raw[w * src_n + i] = lvd_f32_to_f16(acc[i]);
		}
		lvd_geom_resample(&wk->rs, dst, acc);
		float mn, mx;
		lvd_minmax_norm(dst, wk->rs.valid, cells, 1e-6f, &mn, &mx);
		for (size_t i = 0; i < cells; i++)
			wk->targets[w * cells + i] = lvd_f32_to_f16(dst[i]);
		wk->words[w] = (struct lvd_packrec_word){(char *)mw->key, mw->n_pos, mw->n_query, mw->pos, mw->query,
							 (int32_t)mw->sd_tok[0], mn, mx};
	}
	wk->W = W;
	st->words = (uint32_t)W;
	return LVD_OK;
}

void lvd_pack_rec_common(struct lvd_packrec *rec, const struct lvd_pack_work *wk, const struct lvd_pack_params *p,
			 const struct lvd_pack_input *in, int grid)
{
	const struct lvd_mapsrec *mr = in->maps;
	rec->id = in->s->id;
	rec->flags = (p->embed_images ? LVD_PACKREC_IMAGE : 0) | (p->keep_raw && mr ? LVD_PACKREC_RAW : 0) |
		     (grid ? LVD_PACKREC_GRID : 0);
	rec->W = (uint32_t)wk->W;
	rec->words = wk->words;
	rec->gh = (uint32_t)wk->rs.dst_h;
	rec->gw = (uint32_t)wk->rs.dst_w;
	rec->targets = wk->targets;
	rec->mask = wk->rs.valid;
	if (rec->flags & LVD_PACKREC_RAW) {
		rec->rh = (uint32_t)mr->grid_h;
		rec->rw = (uint32_t)mr->grid_w;
		rec->raw = wk->raw;
	}
	if (p->embed_images) {
		rec->image = (uint8_t *)in->image;
		rec->image_len = (uint32_t)in->image_len;
	} else {
		rec->image = (uint8_t *)in->image_path;
		rec->image_len = (uint32_t)strlen(in->image_path);
	}
}

int lvd_pack_rec_finish(const struct lvd_packrec *rec, uint8_t **out, size_t *out_len, struct lvd_pack_stats *st,
			const char **kind, struct lvd_error *err)
{
	int rc = lvd_packrec_encode(rec, out, out_len, err);
	if (rc) {
		*kind = "text";
		return rc;
	}
	st->tokens = rec->T;
	for (uint32_t t = 0; t < rec->T; t++)
		st->label_tokens += rec->labels[t] != -100;
	st->words = rec->W;
	return LVD_OK;
}

int lvd_pack_sample_build(const struct lvd_pack_params *p, struct lvd_llama_tok *tok, struct lvd_pack_chat *chat,
			  const struct lvd_pack_input *in, uint8_t **out, size_t *out_len, struct lvd_pack_stats *st,
			  const char **kind, struct lvd_error *err)
{
	if (p->model == LVD_PACK_MODEL_MINICPMV)
		return lvd_pack_sample_build_mcv(p, tok, in, out, out_len, st, kind, err);
	memset(st, 0, sizeof *st);
	*out = NULL;
	*out_len = 0;
	if (p->labels == LVD_PACK_LABELS_OPENBMB) {
		*kind = "text";
		return lvd_error_set(err, LVD_ERR_INVALID, "--labels openbmb is MiniCPM-V's rule, not Llama-3.2-Vision's");
	}
	int rc = lvd_pack_chat_encode(chat, tok, in->s, p->prompt, p->labels, err);
	if (rc) {
		*kind = rc == LVD_ERR_INVALID && strstr(err->msg, "empty answer") ? "empty_answer" : "text";
		return rc;
	}
	/* --max-tokens: keep whole messages up to the last assistant turn that fits */
	uint32_t T = (uint32_t)chat->out.toks.n;
	if (p->max_tokens && T > p->max_tokens) {
		uint32_t keep = 0;
		for (size_t m = 0; m < chat->n_msg; m++)
			if (chat->msg_role[m] == LVD_ROLE_ASSISTANT && chat->msg_end[m] <= p->max_tokens)
				keep = chat->msg_end[m];
		int has_label = 0;
		for (uint32_t t = 0; t < keep; t++)
			has_label |= chat->labels[t] != -100;
		if (!p->overlong_truncate || !keep || !has_label) {
			st->dropped = 1;
			return LVD_OK;
		}
		T = keep;
		st->truncated = 1;
	}
	int img_w, img_h;
	if ((rc = lvd_pack_image_check(p, in, &img_w, &img_h, st, kind, err)))
		return rc;
	struct lvd_geom g;
	if ((rc = lvd_geom_layout(&g, &p->geom, img_h, img_w, err))) {
		*kind = "image";
		return rc;
	}
	struct lvd_pack_work wk;
	struct lvd_match_vlm v = {chat->text, T ? chat->end[T - 1] : 0, T, chat->beg, chat->end, chat->region};
	rc = lvd_pack_words(&wk, p, &v, chat->image_pos >= 0 ? (uint32_t)chat->image_pos : 0, &g, p->grid, in->maps,
			    st, kind, err);
	if (!rc) {
		struct lvd_packrec rec = {0};
		lvd_pack_rec_common(&rec, &wk, p, in, p->grid);
		rec.T = T;
		rec.tokens = chat->out.toks.ids;
		rec.labels = chat->labels;
		lvd_packrec_set_geom(&rec, &g, p->geom.tile_size, p->geom.patch_size);
		rec.image_pos = chat->image_pos >= 0 && chat->image_pos < (long)T ? (uint32_t)chat->image_pos
										 : LVD_PACKREC_NO_IMAGE;
		rc = lvd_pack_rec_finish(&rec, out, out_len, st, kind, err);
	}
	lvd_pack_work_free(&wk);
	return rc;
}
