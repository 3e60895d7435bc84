/* lib/lavender/pack_sample_mcv.c — one sample's lvd-pack record for MiniCPM-Llama3-V-2.5
 * (pack_sample.h; a version-2 record, packrec.h flag MCV).
 *
 * The conversation goes through lvd_minicpmv_chat_build with the image's slicing
 * (lvd_minicpmv_slice_geom of the header-probed size), so ids, the pre-shifted labels and
 * image_bound are the trainer's exactly. The token view for word matching is built from
 * the ids: each token's bytes (lvd_llama_token_bytes), special tokens as an empty span
 * followed by "\n"; the answer region is the tokens of every assistant message after its
 * header, before its <|eot_id|> (as the mllama path's). Query rows start at the last
 * picture's end (the </image> position: the first row that sees every picture). Targets:
 * N×N over the whole image (lvd_pack_words with grid N). */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "lavender/pack_sample_int.h"

/* The match view of a MiniCPM chat (all owned; mcv_view_free). */
struct mcv_view {
	char *text;
	size_t len;
	uint32_t *beg, *end; /* [T] */
	uint8_t *region;     /* [T] */
	uint32_t *msg_end;   /* [n] token index after message m's <|eot_id|> (0: not found) */
};

static void mcv_view_free(struct mcv_view *v)
{
	free(v->text);
	free(v->beg);
	free(v->end);
	free(v->region);
	free(v->msg_end);
	memset(v, 0, sizeof *v);
}

/* Message m runs from the m-th <|start_header_id|> through the m-th <|eot_id|>: the ids hold
 * no other special tokens of the template (lvd_minicpmv_chat_build encodes content as
 * plain text). */
static int mcv_view_build(struct mcv_view *v, const struct lvd_llama_tok *tok, const struct lvd_pack_mcv *mc,
			  const struct lvd_minicpmv_chat *ch, const struct lvd_minicpmv_msg *msgs, size_t n,
			  struct lvd_error *err)
{
	size_t T = ch->T, cap = 1;
	memset(v, 0, sizeof *v);
	for (size_t t = 0; t < T; t++) {
		size_t nb = 0;
		if (!lvd_llama_is_special(tok, ch->ids[t]) && !lvd_llama_token_bytes(tok, ch->ids[t], &nb))
			return lvd_error_set(err, LVD_ERR_INVALID, "token %zu: id %d is not in the tokenizer", t, ch->ids[t]);
		cap += lvd_llama_is_special(tok, ch->ids[t]) ? 1 : nb;
	}
	v->text = malloc(cap);
	v->beg = lvd_alloc_array(T ? T : 1, sizeof *v->beg);
	v->end = lvd_alloc_array(T ? T : 1, sizeof *v->end);
	v->region = calloc(T ? T : 1, 1);
	v->msg_end = lvd_calloc_array(n ? n : 1, sizeof *v->msg_end);
	if (!v->text || !v->beg || !v->end || !v->region || !v->msg_end)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	size_t L = 0;
	long m = -1;          /* current message */
	int in_content = 0;   /* after the message's <|end_header_id|> */
	for (size_t t = 0; t < T; t++) {
		int32_t id = ch->ids[t];
		if (lvd_llama_is_special(tok, id)) {
			v->beg[t] = v->end[t] = (uint32_t)L;
			v->text[L++] = '\n';
		} else {
			size_t nb = 0;
			const uint8_t *b = lvd_llama_token_bytes(tok, id, &nb);
			v->beg[t] = (uint32_t)L;
			memcpy(v->text + L, b, nb);
			L += nb;
			v->end[t] = (uint32_t)L;
		}
		if (id == mc->ids.start_header) {
			m++;
			in_content = 0;
		} else if (id == mc->ids.end_header) {
			in_content = 1;
		} else if (id == mc->ids.eot) {
			if (m >= 0 && (size_t)m < n)
				v->msg_end[m] = (uint32_t)t + 1;
			in_content = 0;
		} else if (in_content && m >= 0 && (size_t)m < n) {
			v->region[t] = !strcmp(msgs[m].role, "assistant");
		}
	}
	v->text[L] = 0;
	v->len = L;
	return LVD_OK;
}

static int has_label(const struct lvd_minicpmv_chat *ch)
{
	for (size_t t = 0; t < ch->T; t++)
		if (ch->labels[t] != -100)
			return 1;
	return 0;
}

int lvd_pack_sample_build_mcv(const struct lvd_pack_params *p, struct lvd_llama_tok *tok,
			      const struct lvd_pack_input *in, uint8_t **out, size_t *out_len,
			      struct lvd_pack_stats *st, const char **kind, struct lvd_error *err)
{
	memset(st, 0, sizeof *st);
	*out = NULL;
	*out_len = 0;
	*kind = "text";
	if (p->grid < 1)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "MiniCPM-V targets are an NxN grid over the image (--grid N, default 32); the "
				     "mllama patch canvas does not exist for it");
	if (p->labels != LVD_PACK_LABELS_OPENBMB)
		return lvd_error_set(err, LVD_ERR_INVALID, "--labels %s is a Llama-3.2-Vision rule; MiniCPM-V records use "
				     "OpenBMB's (openbmb)", lvd_pack_labels_name(p->labels));
	struct lvd_turn cap[2];
	const struct lvd_turn *turns;
	size_t n;
	long first_user;
	int rc = lvd_pack_turns(in->s, p->prompt, cap, &turns, &n, &first_user, kind, err);
	if (rc)
		return rc;
	if (first_user != 0)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "the conversation starts with a %s turn: MiniCPM-V (OpenBMB's layout) puts the image "
				     "in a first user turn",
				     lvd_role_name(turns[0].role));
	int img_w, img_h;
	if ((rc = lvd_pack_image_check(p, in, &img_w, &img_h, st, kind, err)))
		return rc;
	struct lvd_minicpmv_geom geo;
	if ((rc = lvd_minicpmv_slice_geom(&geo, &p->mcv.slice, img_w, img_h, err))) {
		*kind = "image";
		return rc;
	}
	struct lvd_minicpmv_msg *msgs = lvd_alloc_array(n, sizeof *msgs);
	if (!msgs)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	for (size_t m = 0; m < n; m++) {
		const char *c = turns[m].content ? turns[m].content : "";
		msgs[m] = (struct lvd_minicpmv_msg){lvd_role_name(turns[m].role), c, strlen(c)};
	}
	struct lvd_minicpmv_chat ch = {0};
	struct mcv_view v = {0};
	struct lvd_pack_work wk = {0};
	struct lvd_packrec_pic pics[LVD_MINICPMV_MAX_PICTURES];
	*kind = "text";
	if ((rc = lvd_minicpmv_chat_build(&ch, tok, &p->mcv.ids, p->mcv.query_num, &geo, msgs, n, err)) ||
	    (rc = mcv_view_build(&v, tok, &p->mcv, &ch, msgs, n, err)))
		goto out;
	/* --max-tokens: keep the messages up to the last assistant turn that fits, rendered
	 * anew so that the labels are OpenBMB's for the shorter conversation */
	if (p->max_tokens && ch.T > p->max_tokens) {
		size_t keep = 0;
		for (size_t m = 1; m < n; m++)
			if (turns[m].role == LVD_ROLE_ASSISTANT && v.msg_end[m] && v.msg_end[m] <= p->max_tokens)
				keep = m + 1;
		lvd_minicpmv_chat_free(&ch);
		mcv_view_free(&v);
		if (p->overlong_truncate && keep &&
		    !(rc = lvd_minicpmv_chat_build(&ch, tok, &p->mcv.ids, p->mcv.query_num, &geo, msgs, keep, err)) &&
		    !(rc = mcv_view_build(&v, tok, &p->mcv, &ch, msgs, keep, err)) && has_label(&ch)) {
			st->truncated = 1;
		} else {
			if (!rc)
				st->dropped = 1;
			goto out;
		}
	}
	if (ch.n_bound != geo.n) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%d image_bound ranges for %d pictures", ch.n_bound, geo.n);
		goto out;
	}
	for (int k = 0; k < geo.n; k++)
		pics[k] = (struct lvd_packrec_pic){(uint32_t)geo.pic[k].th, (uint32_t)geo.pic[k].tw,
						   (uint32_t)ch.bound[2 * k], (uint32_t)ch.bound[2 * k + 1]};
	/* the targets' extent: the whole image (GRID) */
	struct lvd_geom g = {0};
	g.img_h = g.new_h = img_h;
	g.img_w = g.new_w = img_w;
	uint32_t T = (uint32_t)ch.T;
	struct lvd_match_vlm mv = {v.text, v.len, T, v.beg, v.end, v.region};
	if ((rc = lvd_pack_words(&wk, p, &mv, pics[geo.n - 1].end, &g, p->grid, in->maps, st, kind, err)))
		goto out;
	struct lvd_packrec rec = {0};
	lvd_pack_rec_common(&rec, &wk, p, in, p->grid);
	rec.flags |= LVD_PACKREC_MCV;
	rec.T = T;
	rec.tokens = ch.ids;
	rec.labels = ch.labels;
	rec.img_w = rec.new_w = (uint32_t)img_w;
	rec.img_h = rec.new_h = (uint32_t)img_h;
	rec.patch_px = (uint32_t)p->mcv.slice.patch;
	rec.image_pos = LVD_PACKREC_NO_IMAGE;
	rec.cols = (uint32_t)geo.cols;
	rec.rows = (uint32_t)geo.rows;
	rec.n_pics = (uint32_t)geo.n;
	rec.query_num = (uint32_t)p->mcv.query_num;
	rec.pics = pics;
	rc = lvd_pack_rec_finish(&rec, out, out_len, st, kind, err);
out:
	lvd_pack_work_free(&wk);
	mcv_view_free(&v);
	lvd_minicpmv_chat_free(&ch);
	free(msgs);
	return rc;
}
