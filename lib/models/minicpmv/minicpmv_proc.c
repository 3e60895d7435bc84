/* lib/models/minicpmv/minicpmv_proc.c — the MiniCPM-Llama3-V-2.5 processor (slicing,
 * patch strips) and chat layout (placeholder tokens, Llama-3 rendering, OpenBMB's targets,
 * image_bound), after OpenBMB's finetune/dataset.py of the 2.5 release. The arithmetic
 * follows Python's: true division in double, round() half to even (rint under the default
 * rounding mode), int() truncation, math.log from the same libm. */
#include "models/minicpmv/minicpmv_proc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/strbuf.h"
#include "io/image.h"
#include "text/tokens.h"
#include "text/utf8.h"

/* ---- slicing ---------------------------------------------------------------------- */

int lvd_minicpmv_slice_cfg_from(struct lvd_minicpmv_slice_cfg *s, const struct lvd_minicpmv_config *cfg,
				struct lvd_error *err)
{
	if (!cfg->slice_mode)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED,
				     "minicpmv processor: slice_mode false (unsliced, unresized images) is not supported");
	if (cfg->max_slice_nums > LVD_MINICPMV_MAX_SLICES)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "minicpmv processor: slice_config.max_slice_nums %d > %d",
				     cfg->max_slice_nums, LVD_MINICPMV_MAX_SLICES);
	if (cfg->max_slice_nums < 1 || cfg->scale_resolution < 1 || cfg->slice_patch < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv processor: bad slice_config");
	s->max_slices = cfg->max_slice_nums;
	s->scale = cfg->scale_resolution;
	s->patch = cfg->slice_patch;
	return 0;
}

/* ensure_divide: max(round(length / p) · p, p) */
static double ensure_divide(double length, int p)
{
	double v = rint(length / p) * p;
	return v > p ? v : p;
}

/* find_best_resize: (w, h) -> sides that are multiples of p, about S² area when resized */
static void best_resize(double w, double h, int S, int p, int upscale, double *ow, double *oh)
{
	if (w * h > (double)S * S || upscale) {
		double r = w / h;
		h = trunc(S / sqrt(r));
		w = trunc(h * r);
	}
	*ow = ensure_divide(w, p);
	*oh = ensure_divide(h, p);
}

static void set_pic(struct lvd_minicpmv_pic *p, double w, double h, int ps, int row, int col)
{
	p->w = (int)w;
	p->h = (int)h;
	p->tw = p->w / ps;
	p->th = p->h / ps;
	p->row = row;
	p->col = col;
}

int lvd_minicpmv_slice_geom(struct lvd_minicpmv_geom *g, const struct lvd_minicpmv_slice_cfg *c, int W, int H,
			    struct lvd_error *err)
{
	memset(g, 0, sizeof *g);
	if (W < 1 || H < 1 || W > LVD_IMAGE_MAX_SIDE || H > LVD_IMAGE_MAX_SIDE)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv processor: bad image size %dx%d", W, H);
	if (c->max_slices < 1 || c->max_slices > LVD_MINICPMV_MAX_SLICES || c->scale < 1 || c->patch < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv processor: bad slice config (%d, %d, %d)",
				     c->max_slices, c->scale, c->patch);
	const int S = c->scale, ps = c->patch;
	g->W = W;
	g->H = H;
	double log_ratio = log((double)W / H);
	double ratio = (double)W * H / ((double)S * S);
	double mult = ceil(ratio);
	int multiple = mult > c->max_slices ? c->max_slices : (int)mult;
	double w, h;
	struct lvd_minicpmv_pic *src = &g->pic[0];
	src->x0 = 0, src->y0 = 0, src->x1 = W, src->y1 = H;
	g->n = 1;
	if (multiple <= 1) {
		best_resize(W, H, S, ps, 1, &w, &h);
		set_pic(src, w, h, ps, -1, -1);
		return 0;
	}
	best_resize(W, H, S, ps, 0, &w, &h);
	set_pic(src, w, h, ps, -1, -1);
	int best[2] = {1, 1};
	double min_err = INFINITY;
	for (int k = multiple - 1; k <= multiple + 1; k++) {
		if (k == 1 || k > c->max_slices)
			continue;
		for (int m = 1; m <= k; m++) {
			if (k % m)
				continue;
			double e = fabs(log_ratio - log((double)m / (k / m)));
			if (e < min_err) {
				best[0] = m, best[1] = k / m;
				min_err = e;
			}
		}
	}
	/* get_refine_size: round W, H to the grid, cell = rounded / grid, resized with upscaling */
	int cols = best[0], rows = best[1];
	double cw = ensure_divide(W, cols) / cols, chh = ensure_divide(H, rows) / rows;
	best_resize(cw, chh, S, ps, 1, &w, &h);
	g->cols = cols;
	g->rows = rows;
	g->refine_w = (int)w * cols;
	g->refine_h = (int)h * rows;
	for (int r = 0; r < rows; r++)
		for (int k = 0; k < cols; k++) {
			struct lvd_minicpmv_pic *p = &g->pic[g->n++];
			set_pic(p, w, h, ps, r, k);
			p->x0 = (double)k * W / cols;
			p->x1 = (double)(k + 1) * W / cols;
			p->y0 = (double)r * H / rows;
			p->y1 = (double)(r + 1) * H / rows;
		}
	return 0;
}

/* ---- pixels ----------------------------------------------------------------------- */

/* picture [h][w] at (x0, y0) of img ([.][iw][3] 8-bit) -> strip [3, ps, n·ps] */
static void to_strip(float *dst, const uint8_t *img, int iw, int x0, int y0, const struct lvd_minicpmv_pic *p, int ps)
{
	const size_t L = (size_t)p->th * p->tw, row = L * ps;
	for (int c = 0; c < 3; c++)
		for (int ki = 0; ki < ps; ki++) {
			float *d = dst + ((size_t)c * ps + ki) * row;
			for (int py = 0; py < p->th; py++) {
				const uint8_t *s = img + ((size_t)(y0 + py * ps + ki) * iw + x0) * 3 + c;
				for (int px = 0; px < p->tw; px++)
					for (int kj = 0; kj < ps; kj++) {
						/* ToTensor: u / 255 in fp32; Normalize: (x - 0.5) / 0.5 */
						float x = (float)s[(size_t)(px * ps + kj) * 3] / 255.0f;
						*d++ = (x - 0.5f) / 0.5f;
					}
			}
		}
}

int lvd_minicpmv_preprocess(struct lvd_minicpmv_images *out, const struct lvd_minicpmv_slice_cfg *c,
			    const uint8_t *rgb, int W, int H, struct lvd_error *err)
{
	memset(out, 0, sizeof *out);
	int rc = lvd_minicpmv_slice_geom(&out->geom, c, W, H, err);
	if (rc)
		return rc;
	const struct lvd_minicpmv_geom *g = &out->geom;
	const int ps = c->patch;
	out->patch = ps;
	size_t total = 0;
	for (int i = 0; i < g->n; i++) {
		out->off[i] = total;
		size_t sz;
		if (lvd_size_mul4(&sz, 3, (size_t)g->pic[i].w, (size_t)g->pic[i].h, 1) || lvd_size_add(&total, total, sz))
			return lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv processor: picture sizes overflow");
	}
	out->off[g->n] = total;
	struct lvd_image in = {.w = W, .h = H, .c = 3, .px = (uint8_t *)rgb}, rs = {0};
	if ((rc = lvd_image_resize(&rs, &in, g->pic[0].w, g->pic[0].h, LVD_RESAMPLE_BICUBIC, 1, err)))
		goto fail;
	if (!(out->pixels = lvd_alloc_array(total, sizeof *out->pixels))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv processor: out of memory (%zu floats)", total);
		goto fail;
	}
	to_strip(out->pixels, rs.px, rs.w, 0, 0, &g->pic[0], ps);
	lvd_image_free(&rs);
	if (g->n > 1) {
		if ((rc = lvd_image_resize(&rs, &in, g->refine_w, g->refine_h, LVD_RESAMPLE_BICUBIC, 1, err)))
			goto fail;
		for (int i = 1; i < g->n; i++) {
			const struct lvd_minicpmv_pic *p = &g->pic[i];
			to_strip(out->pixels + out->off[i], rs.px, rs.w, p->col * p->w, p->row * p->h, p, ps);
		}
		lvd_image_free(&rs);
	}
	return 0;
fail:
	lvd_image_free(&rs);
	lvd_minicpmv_images_free(out);
	return lvd_error_prefix(err, "minicpmv processor (%dx%d image): ", W, H);
}

void lvd_minicpmv_images_free(struct lvd_minicpmv_images *im)
{
	if (!im)
		return;
	free(im->pixels);
	memset(im, 0, sizeof *im);
}

int lvd_minicpmv_images_lmax(const struct lvd_minicpmv_images *im)
{
	int m = 0;
	for (int i = 0; i < im->geom.n; i++) {
		int n = im->geom.pic[i].th * im->geom.pic[i].tw;
		m = n > m ? n : m;
	}
	return m;
}

void lvd_minicpmv_images_batch(float *dst, int *tgt, int Lmax, const struct lvd_minicpmv_images *im)
{
	LVD_ASSERT(Lmax >= lvd_minicpmv_images_lmax(im));
	const int ps = im->patch;
	const size_t drow = (size_t)Lmax * ps;
	for (int i = 0; i < im->geom.n; i++) {
		const struct lvd_minicpmv_pic *p = &im->geom.pic[i];
		const size_t srow = (size_t)p->th * p->tw * ps;
		for (int r = 0; r < 3 * ps; r++) {
			float *d = dst + ((size_t)i * 3 * ps + r) * drow;
			memcpy(d, im->pixels + im->off[i] + r * srow, srow * sizeof *d);
			memset(d + srow, 0, (drow - srow) * sizeof *d);
		}
		tgt[2 * i] = p->th;
		tgt[2 * i + 1] = p->tw;
	}
}

/* ---- chat layout ------------------------------------------------------------------ */

int lvd_minicpmv_tok_ids_get(struct lvd_minicpmv_tok_ids *ids, struct lvd_llama_tok *tok, struct lvd_error *err)
{
	static const char *names[9] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
				       "<unk>", "<image>", "</image>", "<slice>", "</slice>"};
	int32_t *dst[9] = {&ids->bos, &ids->start_header, &ids->end_header, &ids->eot, &ids->unk,
			   &ids->im_start, &ids->im_end, &ids->slice_start, &ids->slice_end};
	for (int i = 0; i < 9; i++)
		if ((*dst[i] = lvd_llama_special_id(tok, names[i])) < 0)
			return lvd_error_set(err, LVD_ERR_NOTFOUND, "minicpmv: tokenizer has no %s%s", names[i],
					     i >= 4 ? " (not a MiniCPM-V tokenizer?)" : "");
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	int rc = lvd_llama_encode(tok, "assistant", 9, 0, &t, err);
	ids->assistant = !rc && t.n == 1 ? t.ids[0] : -1;
	lvd_tokens_free(&t);
	return rc;
}

/* Python's str.isspace() code points (what Jinja's trim strips) */
static int py_space(uint32_t u)
{
	return (u >= 0x09 && u <= 0x0d) || (u >= 0x1c && u <= 0x20) || u == 0x85 || u == 0xa0 || u == 0x1680 ||
	       (u >= 0x2000 && u <= 0x200a) || u == 0x2028 || u == 0x2029 || u == 0x202f || u == 0x205f ||
	       u == 0x3000;
}

/* the code point starting at s[i] (valid UTF-8) and its length */
static uint32_t cp_at(const char *s, size_t i, size_t *len)
{
	const unsigned char *p = (const unsigned char *)s + i;
	if (p[0] < 0x80)
		return *len = 1, p[0];
	if (p[0] < 0xe0)
		return *len = 2, ((uint32_t)(p[0] & 0x1f) << 6) | (p[1] & 0x3f);
	if (p[0] < 0xf0)
		return *len = 3, ((uint32_t)(p[0] & 0x0f) << 12) | ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
	return *len = 4, ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3f) << 12) |
			 ((uint32_t)(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
}

static size_t lstrip_len(const char *s, size_t n)
{
	size_t i = 0, l;
	while (i < n && py_space(cp_at(s, i, &l)))
		i += l;
	return i;
}

/* length of s[0..n) without trailing whitespace */
static size_t rstrip_len(const char *s, size_t n)
{
	while (n > 0) {
		size_t b = n - 1, l;
		while (b > 0 && ((unsigned char)s[b] & 0xc0) == 0x80)
			b--;
		if (!py_space(cp_at(s, b, &l)))
			break;
		n = b;
	}
	return n;
}

/* ids and rendered text being built; text between specials waits in `pend` */
struct builder {
	struct lvd_llama_tok *tok;
	struct lvd_tokens toks, piece;
	struct lvd_strbuf text, pend;
	int rc;
	struct lvd_error *err;
};

static void b_text(struct builder *b, const char *s, size_t n)
{
	lvd_strbuf_add(&b->pend, s, n);
	lvd_strbuf_add(&b->text, s, n);
}

static void b_flush(struct builder *b)
{
	if (b->rc || !b->pend.len)
		return;
	if (b->pend.oom) {
		b->rc = lvd_error_set(b->err, LVD_ERR_NOMEM, "out of memory");
		return;
	}
	lvd_tokens_clear(&b->piece);
	if ((b->rc = lvd_llama_encode(b->tok, b->pend.p, b->pend.len, 0, &b->piece, b->err)))
		return;
	for (size_t i = 0; i < b->piece.n && !b->rc; i++)
		if (lvd_tokens_push(&b->toks, b->piece.ids[i], 0, 0, -1))
			b->rc = lvd_error_set(b->err, LVD_ERR_NOMEM, "out of memory");
	b->pend.len = 0;
}

static void b_special(struct builder *b, int32_t id, const char *name)
{
	b_flush(b);
	if (b->rc)
		return;
	if (lvd_tokens_push(&b->toks, id, 0, 0, -1))
		b->rc = lvd_error_set(b->err, LVD_ERR_NOMEM, "out of memory");
	lvd_strbuf_str(&b->text, name);
}

static void b_picture(struct builder *b, const struct lvd_minicpmv_tok_ids *ids, int Q)
{
	b_special(b, ids->im_start, "<image>");
	for (int q = 0; q < Q; q++)
		b_special(b, ids->unk, "<unk>");
	b_special(b, ids->im_end, "</image>");
}

static void b_placeholder(struct builder *b, const struct lvd_minicpmv_tok_ids *ids, int Q,
			  const struct lvd_minicpmv_geom *g)
{
	b_picture(b, ids, Q);
	if (g->n <= 1)
		return;
	b_special(b, ids->slice_start, "<slice>");
	for (int r = 0; r < g->rows; r++) {
		if (r)
			b_text(b, "\n", 1);
		for (int k = 0; k < g->cols; k++)
			b_picture(b, ids, Q);
	}
	b_special(b, ids->slice_end, "</slice>");
}

/* OpenBMB's context/target rule on the ids (see the header). pos: scratch [2T]. */
static void openbmb_targets(int32_t *tgt, uint8_t *ctx, size_t *pos, const int32_t *id, size_t T,
			    const struct lvd_minicpmv_tok_ids *k)
{
	size_t *S = pos, *E = pos + T, ns = 0, ne = 0;
	for (size_t i = 0; i < T; i++) {
		ctx[i] = 1;
		if (id[i] == k->start_header)
			S[ns++] = i;
		if (id[i] == k->end_header)
			E[ne++] = i;
	}
	size_t np = ns < ne ? ns : ne;
	for (size_t a = 0; a < T; a++) {
		if (id[a] != k->assistant)
			continue;
		int mid = 0; /* a in {(S_j + E_j) / 2} */
		for (size_t j = 0; j < np && !mid; j++)
			mid = S[j] + E[j] == 2 * a;
		if (!mid)
			continue;
		size_t st = a + 3;
		for (size_t e = st + 1; e < T; e++)
			if (id[e] == k->eot) {
				for (size_t i = st; i <= e; i++)
					ctx[i] = 0;
				break;
			}
	}
	for (size_t i = 0; i < T; i++)
		tgt[i] = -100;
	for (size_t i = 1; i < T; i++) {
		if (ctx[i] == 0)
			tgt[i - 1] = id[i];
		if (ctx[i] == 1 && ctx[i - 1] == 0)
			tgt[i - 1] = k->eot;
	}
}

void lvd_minicpmv_chat_free(struct lvd_minicpmv_chat *c)
{
	if (!c)
		return;
	free(c->ids);
	free(c->labels);
	free(c->bound);
	free(c->text);
	memset(c, 0, sizeof *c);
}

int lvd_minicpmv_chat_build(struct lvd_minicpmv_chat *out, struct lvd_llama_tok *tok,
			    const struct lvd_minicpmv_tok_ids *ids, int query_num, const struct lvd_minicpmv_geom *g,
			    const struct lvd_minicpmv_msg *msgs, size_t n, struct lvd_error *err)
{
	memset(out, 0, sizeof *out);
	if (n < 2)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv chat: %zu message(s); a conversation needs 2 or more", n);
	if (!msgs[0].role || strcmp(msgs[0].role, "user"))
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv chat: message 0 has role '%s', not 'user'",
				     msgs[0].role ? msgs[0].role : "(null)");
	if (query_num < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv chat: query_num %d", query_num);
	for (size_t m = 0; m < n; m++) {
		size_t bad;
		if (!msgs[m].role || !lvd_utf8_valid(msgs[m].role, strlen(msgs[m].role), &bad))
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv chat: message %zu: bad role", m);
		if (!lvd_utf8_valid(msgs[m].content, msgs[m].len, &bad))
			return lvd_error_set(err, LVD_ERR_INVALID, "minicpmv chat: message %zu: invalid UTF-8 at byte %zu", m,
					     bad);
	}
	/* where the placeholder goes in message 0: at its one "<image>", else before it + "\n" */
	const char *c0 = msgs[0].content;
	size_t at = (size_t)-1;
	for (size_t i = 0; g && i + 7 <= msgs[0].len; i++)
		if (!memcmp(c0 + i, "<image>", 7)) {
			if (at != (size_t)-1)
				return lvd_error_set(err, LVD_ERR_INVALID,
						     "minicpmv chat: message 0 holds more than one \"<image>\" (one image per conversation)");
			at = i;
		}
	struct builder b = {.tok = tok, .err = err};
	lvd_tokens_init(&b.toks);
	lvd_tokens_init(&b.piece);
	b_special(&b, ids->bos, "<|begin_of_text|>");
	for (size_t m = 0; m < n && !b.rc; m++) {
		b_special(&b, ids->start_header, "<|start_header_id|>");
		b_text(&b, msgs[m].role, strlen(msgs[m].role));
		b_special(&b, ids->end_header, "<|end_header_id|>");
		b_text(&b, "\n\n", 2);
		const char *s = msgs[m].content;
		size_t len = msgs[m].len;
		if (m == 0 && g) {
			/* content = pre + placeholder + post, stripped; the placeholder is not space */
			size_t pre = at == (size_t)-1 ? 0 : at;
			const char *post = at == (size_t)-1 ? s : s + at + 7;
			size_t post_len = at == (size_t)-1 ? len : len - at - 7;
			size_t a = lstrip_len(s, pre);
			b_text(&b, s + a, pre - a);
			b_placeholder(&b, ids, query_num, g);
			if (at == (size_t)-1) {
				/* "\n" + content: only trailing space can go */
				size_t e = rstrip_len(post, post_len);
				if (e)
					b_text(&b, "\n", 1);
				b_text(&b, post, e);
			} else {
				b_text(&b, post, rstrip_len(post, post_len));
			}
		} else {
			size_t a = lstrip_len(s, len);
			b_text(&b, s + a, rstrip_len(s + a, len - a));
		}
		b_special(&b, ids->eot, "<|eot_id|>");
	}
	b_flush(&b);
	int rc = b.rc;
	size_t T = b.toks.n;
	uint8_t *ctx = NULL;
	size_t *pos = NULL;
	if (!rc) {
		out->T = T;
		out->ids = lvd_alloc_array(T, sizeof *out->ids);
		out->labels = lvd_alloc_array(T, sizeof *out->labels);
		ctx = malloc(T + 1);
		pos = lvd_alloc_array(2 * T + 1, sizeof *pos);
		out->text = lvd_strbuf_done(&b.text);
		b.text.p = NULL;
		if (!out->ids || !out->labels || !ctx || !pos || !out->text)
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv chat: out of memory");
	}
	if (!rc) {
		memcpy(out->ids, b.toks.ids, T * sizeof *out->ids);
		openbmb_targets(out->labels, ctx, pos, out->ids, T, ids);
		int ns = 0, ne = 0;
		for (size_t i = 0; i < T; i++)
			ns += out->ids[i] == ids->im_start, ne += out->ids[i] == ids->im_end;
		if (ns != ne)
			rc = lvd_error_set(err, LVD_ERR_INVALID, "minicpmv chat: %d <image> but %d </image> tokens", ns, ne);
		else if (ns && !(out->bound = lvd_alloc_array((size_t)ns * 2, sizeof *out->bound)))
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "minicpmv chat: out of memory");
		for (size_t i = 0, s = 0, e = 0; !rc && i < T; i++) {
			if (out->ids[i] == ids->im_start)
				out->bound[2 * s++] = (int)i + 1;
			if (out->ids[i] == ids->im_end)
				out->bound[2 * e++ + 1] = (int)i;
		}
		out->n_bound = ns;
	}
	free(ctx);
	free(pos);
	free(b.text.p);
	free(b.pend.p);
	lvd_tokens_free(&b.toks);
	lvd_tokens_free(&b.piece);
	if (rc)
		lvd_minicpmv_chat_free(out);
	return rc;
}
