/* lvd-pack: chat template, labels and one sample's record payload (see sample.h). */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "core/alloc.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/packrec.h"

int pk_special_ids(const struct lvd_llama_tok *tok, struct pk_special *sp, struct lvd_error *err)
{
	static const char *names[5] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
				       "<|eot_id|>", "<|image|>"};
	int32_t *dst[5] = {&sp->bos, &sp->sh, &sp->eh, &sp->eot, &sp->image};
	for (int i = 0; i < 5; i++)
		if ((*dst[i] = lvd_llama_special_id(tok, names[i])) < 0)
			return lvd_error_set(err, LVD_ERR_NOTFOUND, "tokenizer has no %s token (not a Llama-3.2-Vision tokenizer?)",
					     names[i]);
	return LVD_OK;
}

void pk_chat_free(struct pk_chat *c)
{
	lvd_tokens_free(&c->tok);
	free(c->text);
	free(c->labels);
	free(c->region);
	free(c->msg_end);
	free(c->msg_role);
	memset(c, 0, sizeof *c);
}

static int text_append(struct pk_chat *c, const char *s, size_t n)
{
	if (c->text_len + n + 1 > c->text_cap) {
		size_t cap = (c->text_len + n + 1) * 2;
		char *t = realloc(c->text, cap);
		if (!t)
			return -1;
		c->text = t;
		c->text_cap = cap;
	}
	memcpy(c->text + c->text_len, s, n);
	c->text_len += n;
	c->text[c->text_len] = 0;
	return 0;
}

static int push_special(struct pk_chat *c, int32_t id, struct lvd_error *err)
{
	if (lvd_tokens_push(&c->tok, id, c->text_len, c->text_len, -1) || text_append(c, "\n", 1))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	return LVD_OK;
}

/* Appends the segment to the text and encodes it (spans shifted into the text). */
static int push_text(struct pk_chat *c, struct lvd_llama_tok *tok, const char *a, size_t na, const char *b,
		     size_t nb, struct lvd_error *err)
{
	size_t off = c->text_len, first = c->tok.n;
	if (text_append(c, a, na) || text_append(c, b, nb))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	if (na + nb == 0)
		return LVD_OK;
	int rc = lvd_llama_encode(tok, c->text + off, na + nb, 0, &c->tok, err);
	if (rc)
		return rc;
	for (size_t i = first; i < c->tok.n; i++) {
		c->tok.start[i] += (uint32_t)off;
		c->tok.end[i] += (uint32_t)off;
	}
	return LVD_OK;
}

static int blank(const char *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return 0;
	return 1;
}

int pk_chat_encode(struct pk_chat *c, struct lvd_llama_tok *tok, const struct pk_special *sp,
		   const struct lvd_sample *s, const char *prompt, struct lvd_error *err)
{
	struct lvd_turn cap_turns[2];
	const struct lvd_turn *turns = s->turns;
	size_t n = s->n_turns;
	if (!n) {
		if (!s->caption)
			return lvd_error_set(err, LVD_ERR_INVALID, "no conversations and no caption");
		cap_turns[0] = (struct lvd_turn){LVD_ROLE_USER, (char *)prompt};
		cap_turns[1] = (struct lvd_turn){LVD_ROLE_ASSISTANT, s->caption};
		turns = cap_turns;
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
	if (!answer)
		return lvd_error_set(err, LVD_ERR_INVALID, "empty answer: no assistant turn with text");
	if (first_user < 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "no user turn to carry the image");
	c->tok.n = 0;
	c->text_len = 0;
	c->n_msg = 0;
	c->image_pos = -1;
	if (n > c->cap) {
		uint32_t *me = lvd_realloc_array(c->msg_end, n, sizeof *me);
		if (me)
			c->msg_end = me;
		int *mr = lvd_realloc_array(c->msg_role, n, sizeof *mr);
		if (mr)
			c->msg_role = mr;
		if (!me || !mr)
			return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		c->cap = n;
	}
	/* content starts (token index after "<|end_header_id|>") per message */
	size_t *cstart = lvd_alloc_array(n, sizeof *cstart);
	if (!cstart)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int rc;
	if ((rc = push_special(c, sp->bos, err)))
		goto out;
	for (size_t m = 0; m < n; m++) {
		const char *role = lvd_role_name(turns[m].role);
		const char *txt = turns[m].content ? turns[m].content : "";
		if ((rc = push_special(c, sp->sh, err)) || (rc = push_text(c, tok, role, strlen(role), "", 0, err)) ||
		    (rc = push_special(c, sp->eh, err)))
			goto out;
		cstart[m] = c->tok.n;
		if ((long)m == first_user) {
			if (!strncmp(txt, "<image>", 7)) {
				txt += 7;
				if (*txt == '\n')
					txt++;
			}
			if ((rc = push_text(c, tok, "\n\n", 2, "", 0, err)))
				goto out;
			c->image_pos = (long)c->tok.n;
			if ((rc = push_special(c, sp->image, err)) || (rc = push_text(c, tok, txt, strlen(txt), "", 0, err)))
				goto out;
		} else if ((rc = push_text(c, tok, "\n\n", 2, txt, strlen(txt), err))) {
			goto out;
		}
		if ((rc = push_special(c, sp->eot, err)))
			goto out;
		c->msg_end[m] = (uint32_t)c->tok.n;
		c->msg_role[m] = turns[m].role;
		c->n_msg++;
	}
	size_t T = c->tok.n;
	int32_t *lab = lvd_realloc_array(c->labels, T, sizeof *lab);
	if (lab)
		c->labels = lab;
	uint8_t *reg = lvd_realloc_array(c->region, T, 1);
	if (reg)
		c->region = reg;
	if (!lab || !reg) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t t = 0; t < T; t++) {
		c->labels[t] = -100;
		c->region[t] = 0;
	}
	/* llama-recipes: an assistant turn counts from the token after its header (the
	 * "\n\n") through its <|eot_id|>; system/user turns, headers and images do not */
	for (size_t m = 0; m < n; m++) {
		if (turns[m].role != LVD_ROLE_ASSISTANT)
			continue;
		for (size_t t = cstart[m]; t < c->msg_end[m]; t++) {
			if (c->tok.ids[t] != sp->image)
				c->labels[t] = c->tok.ids[t];
			c->region[t] = t + 1 < c->msg_end[m];
		}
	}
	rc = LVD_OK;
out:
	free(cstart);
	return rc;
}

int pk_image_size(const uint8_t *d, size_t len, int *w, int *h, const char *name, struct lvd_error *err)
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

int pk_sample_build(const struct pk_params *p, struct lvd_llama_tok *tok, const struct pk_special *sp,
		    struct pk_chat *chat, const struct pk_input *in, uint8_t **out, size_t *out_len,
		    struct pk_stats *st, const char **kind, struct lvd_error *err)
{
	memset(st, 0, sizeof *st);
	*out = NULL;
	*out_len = 0;
	const struct lvd_sample *s = in->s;
	int rc = pk_chat_encode(chat, tok, sp, s, p->prompt, err);
	if (rc) {
		*kind = rc == LVD_ERR_INVALID && strstr(err->msg, "empty answer") ? "empty_answer" : "text";
		return rc;
	}
	/* --max-tokens: keep whole messages up to the last assistant turn that fits */
	uint32_t T = (uint32_t)chat->tok.n;
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
	if ((rc = pk_image_size(in->image, in->image_len, &img_w, &img_h, in->image_path, err))) {
		*kind = "image";
		return rc;
	}
	if (p->verify_images) {
		struct lvd_image im = {0};
		rc = lvd_image_decode(&im, in->image, in->image_len, LVD_ALPHA_WHITE, in->image_path, err);
		lvd_image_free(&im);
		if (rc) {
			*kind = "image";
			return rc;
		}
	}
	struct lvd_geom g;
	if ((rc = lvd_geom_layout(&g, &p->geom, img_h, img_w, err))) {
		*kind = "image";
		return rc;
	}
	const struct lvd_mapsrec *mr = in->maps;
	if (!mr) {
		if (!p->allow_missing_maps) {
			*kind = "missing_maps";
			return lvd_error_set(err, LVD_ERR_NOTFOUND, "no map record for id '%s' in --maps", s->id);
		}
		st->missing_maps = 1;
	} else if (mr->img_w && mr->img_h && (mr->img_w != img_w || mr->img_h != img_h)) {
		*kind = "maps";
		return lvd_error_set(err, LVD_ERR_INVALID, "the maps were computed for a %dx%d image, '%s' is %dx%d",
				     mr->img_w, mr->img_h, in->image_path, img_w, img_h);
	}
	struct lvd_match_result mres = {0};
	struct lvd_geom_resampler rs = {0};
	struct lvd_packrec rec = {0};
	float *acc = NULL, *dst = NULL;
	uint16_t *targets = NULL, *raw = NULL;
	struct lvd_packrec_word *words = NULL;
	if (mr) {
		struct lvd_match_vlm v = {chat->text, chat->tok.n ? chat->tok.end[T - 1] : 0, T, chat->tok.start,
					  chat->tok.end, chat->region};
		struct lvd_match_sd sdv = {mr->text, strlen(mr->text), mr->T, mr->spans};
		struct lvd_match_opts mo = {p->match_all, p->query_at, p->stop,
					    chat->image_pos >= 0 ? (uint32_t)chat->image_pos : 0};
		if ((rc = lvd_match(&mres, &v, &sdv, &mo, err))) {
			*kind = "text";
			goto out;
		}
		st->region_words = (uint32_t)mres.n_region_words;
		st->content_words = (uint32_t)mres.n_content;
		st->content_matched = (uint32_t)mres.n_content_matched;
	}
	if ((rc = lvd_geom_resampler_init(&rs, &g, mr ? mr->grid_h : 1, mr ? mr->grid_w : 1, p->grid, err))) {
		*kind = "maps";
		goto out;
	}
	size_t W = mres.n, cells = (size_t)rs.dst_h * rs.dst_w, src_n = mr ? (size_t)mr->grid_h * mr->grid_w : 1;
	if (W > LVD_PACKREC_MAX_WORDS)
		W = LVD_PACKREC_MAX_WORDS;
	acc = lvd_alloc_array(src_n, sizeof *acc);
	dst = lvd_alloc_array(cells, sizeof *dst);
	targets = lvd_alloc_array(W ? W * cells : 1, sizeof *targets);
	raw = lvd_alloc_array(W ? W * src_n : 1, sizeof *raw);
	words = lvd_calloc_array(W ? W : 1, sizeof *words);
	if (!acc || !dst || !targets || !raw || !words) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t w = 0; w < W; w++) {
		const struct lvd_match_word *mw = &mres.w[w];
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
				rc = lvd_error_set(err, LVD_ERR_INVALID, "map of CLIP token %u is not finite", mw->sd_tok[0]);
				goto out;
			}
			raw[w * src_n + i] = lvd_f32_to_f16(acc[i]);
		}
		lvd_geom_resample(&rs, dst, acc);
		float mn, mx;
		lvd_minmax_norm(dst, rs.valid, cells, 1e-6f, &mn, &mx);
		for (size_t i = 0; i < cells; i++)
			targets[w * cells + i] = lvd_f32_to_f16(dst[i]);
		words[w] = (struct lvd_packrec_word){(char *)mw->key, mw->n_pos, mw->n_query, mw->pos, mw->query,
						     (int32_t)mw->sd_tok[0], mn, mx};
	}
	rec.id = s->id;
	rec.flags = (p->embed_images ? LVD_PACKREC_IMAGE : 0) | (p->keep_raw && mr ? LVD_PACKREC_RAW : 0) |
		    (p->grid ? LVD_PACKREC_GRID : 0);
	rec.T = T;
	rec.tokens = chat->tok.ids;
	rec.labels = chat->labels;
	rec.W = (uint32_t)W;
	rec.words = words;
	rec.gh = (uint32_t)rs.dst_h;
	rec.gw = (uint32_t)rs.dst_w;
	rec.targets = targets;
	rec.mask = rs.valid;
	if (rec.flags & LVD_PACKREC_RAW) {
		rec.rh = (uint32_t)mr->grid_h;
		rec.rw = (uint32_t)mr->grid_w;
		rec.raw = raw;
	}
	rec.img_w = (uint32_t)img_w;
	rec.img_h = (uint32_t)img_h;
	rec.new_w = (uint32_t)g.new_w;
	rec.new_h = (uint32_t)g.new_h;
	rec.tiles_h = (uint32_t)g.tiles_h;
	rec.tiles_w = (uint32_t)g.tiles_w;
	rec.aspect_id = (uint32_t)g.aspect_id;
	rec.tile_px = (uint32_t)p->geom.tile_size;
	rec.patch_px = (uint32_t)p->geom.patch_size;
	rec.image_pos = chat->image_pos >= 0 && chat->image_pos < (long)T ? (uint32_t)chat->image_pos
									 : LVD_PACKREC_NO_IMAGE;
	if (p->embed_images) {
		rec.image = (uint8_t *)in->image;
		rec.image_len = (uint32_t)in->image_len;
	} else {
		rec.image = (uint8_t *)in->image_path;
		rec.image_len = (uint32_t)strlen(in->image_path);
	}
	if ((rc = lvd_packrec_encode(&rec, out, out_len, err))) {
		*kind = "text";
		goto out;
	}
	st->tokens = T;
	for (uint32_t t = 0; t < T; t++)
		st->label_tokens += chat->labels[t] != -100;
	st->words = (uint32_t)W;
out:
	lvd_match_result_free(&mres);
	lvd_geom_resampler_free(&rs);
	free(acc);
	free(dst);
	free(targets);
	free(raw);
	free(words);
	return rc;
}
