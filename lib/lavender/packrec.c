/* Encoder and validating decoder of the lvd-pack sample payload (see packrec.h). */
#include "lavender/packrec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/alloc.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/geometry.h"

static int utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		utf8proc_int32_t c;
		utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &c);
		if (k <= 0 || c == 0)
			return 0;
		i += (size_t)k;
	}
	return 1;
}

#define FLAGS_ALL (LVD_PACKREC_IMAGE | LVD_PACKREC_RAW | LVD_PACKREC_GRID | LVD_PACKREC_MCV)

static int f16_finite(uint16_t h)
{
	return (h & 0x7c00) != 0x7c00;
}

/* The mllama tiling, image token and label rule of a version-1 record. */
static int validate_tiles(const struct lvd_packrec *r, int code, const char *where, struct lvd_error *err)
{
	if (r->n_pics || r->pics || r->cols || r->rows || r->query_num)
		return lvd_error_set(err, code, "%s: MiniCPM pictures without the MCV flag", where);
	if (r->tiles_h < 1 || r->tiles_w < 1 || r->tiles_h * r->tiles_w > 16 || r->aspect_id < 1 ||
	    r->aspect_id > 64)
		return lvd_error_set(err, code, "%s: tiling %ux%u (aspect id %u) out of range", where, r->tiles_w,
				     r->tiles_h, r->aspect_id);
	if (r->patch_px < 1 || r->tile_px < 1 || r->tile_px > 8192 || r->tile_px % r->patch_px)
		return lvd_error_set(err, code, "%s: tile %u px / patch %u px inconsistent", where, r->tile_px,
				     r->patch_px);
	int asp_ok = 0;  /* aspect_id: the 1-based index of tiles_h x tiles_w among the mllama
			  * arrangements of some max_tiles in [tiles_h*tiles_w, LVD_GEOM_MAX_TILES] */
	for (int m = (int)(r->tiles_h * r->tiles_w); m <= LVD_GEOM_MAX_TILES && !asp_ok && r->aspect_id <= LVD_GEOM_MAX_ASPECTS; m++) {
		int asp[LVD_GEOM_MAX_ASPECTS][2];
		int na = lvd_geom_aspects(m, asp);
		asp_ok = (int)r->aspect_id <= na && asp[r->aspect_id - 1][0] == (int)r->tiles_h &&
			 asp[r->aspect_id - 1][1] == (int)r->tiles_w;
	}
	if (!asp_ok)
		return lvd_error_set(err, code, "%s: aspect id %u does not name %ux%u tiles (wide x high)", where,
				     r->aspect_id, r->tiles_w, r->tiles_h);
	if (r->img_w < 1 || r->img_h < 1 || r->img_w > LVD_IMAGE_MAX_SIDE || r->img_h > LVD_IMAGE_MAX_SIDE ||
	    (size_t)r->img_w * r->img_h > LVD_IMAGE_MAX_PIXELS || r->new_w < 1 ||
	    r->new_h < 1 || r->new_w > r->tiles_w * r->tile_px || r->new_h > r->tiles_h * r->tile_px)
		return lvd_error_set(err, code, "%s: image %ux%u / extent %ux%u out of range", where, r->img_w,
				     r->img_h, r->new_w, r->new_h);
	if (r->image_pos != LVD_PACKREC_NO_IMAGE && r->image_pos >= r->T)
		return lvd_error_set(err, code, "%s: image token position %u >= %u tokens", where, r->image_pos, r->T);
	/* the <|image|> token is never a label (its id is the model's: not checked here) */
	if (r->image_pos != LVD_PACKREC_NO_IMAGE) {
		int32_t img = r->tokens[r->image_pos];
		if (r->labels[r->image_pos] != -100)
			return lvd_error_set(err, code,
					     "%s: token %u (id %d, label %d) at the image position is not <|image|>", where,
					     r->image_pos, img, r->labels[r->image_pos]);
	}
	for (uint32_t t = 0; t < r->T; t++) {
		if (r->tokens[t] < 0)
			return lvd_error_set(err, code, "%s: token %u: negative id %d", where, t, r->tokens[t]);
		if (r->labels[t] != -100 && r->labels[t] != r->tokens[t])
			return lvd_error_set(err, code, "%s: token %u: label %d is neither -100 nor the token id %d",
					     where, t, r->labels[t], r->tokens[t]);
	}
	return LVD_OK;
}

/* The MiniCPM block of an MCV record (packrec.h): pictures, bounds, labels, query rows. */
static int validate_mcv(const struct lvd_packrec *r, int code, const char *where, struct lvd_error *err)
{
	if (!(r->flags & LVD_PACKREC_GRID) || r->gh != r->gw)
		return lvd_error_set(err, code, "%s: a MiniCPM record needs square grid targets (GRID, got %ux%u%s)",
				     where, r->gw, r->gh, (r->flags & LVD_PACKREC_GRID) ? "" : ", no GRID flag");
	if (r->tiles_h || r->tiles_w || r->aspect_id || r->tile_px || r->image_pos != LVD_PACKREC_NO_IMAGE)
		return lvd_error_set(err, code, "%s: a MiniCPM record has tiling fields %ux%u/%u/%u or image position %u",
				     where, r->tiles_w, r->tiles_h, r->aspect_id, r->tile_px, r->image_pos);
	if (r->patch_px < 1 || r->patch_px > 1024)
		return lvd_error_set(err, code, "%s: patch %u px out of range", where, r->patch_px);
	if (r->img_w < 1 || r->img_h < 1 || r->img_w > LVD_IMAGE_MAX_SIDE || r->img_h > LVD_IMAGE_MAX_SIDE ||
	    (size_t)r->img_w * r->img_h > LVD_IMAGE_MAX_PIXELS || r->new_w != r->img_w || r->new_h != r->img_h)
		return lvd_error_set(err, code, "%s: image %ux%u / extent %ux%u out of range", where, r->img_w,
				     r->img_h, r->new_w, r->new_h);
	if ((r->cols == 0) != (r->rows == 0) || r->cols > LVD_PACKREC_MAX_PICS || r->rows > LVD_PACKREC_MAX_PICS ||
	    r->n_pics != 1 + r->cols * r->rows || r->n_pics > LVD_PACKREC_MAX_PICS || !r->pics)
		return lvd_error_set(err, code, "%s: %u pictures for a %ux%u slice grid", where, r->n_pics, r->cols,
				     r->rows);
	if (r->query_num < 1 || r->query_num > r->T)
		return lvd_error_set(err, code, "%s: query_num %u out of range", where, r->query_num);
	uint32_t prev = 0;
	for (uint32_t k = 0; k < r->n_pics; k++) {
		const struct lvd_packrec_pic *p = &r->pics[k];
		if (p->th < 1 || p->tw < 1 || p->th > LVD_PACKREC_MAX_GRID || p->tw > LVD_PACKREC_MAX_GRID)
			return lvd_error_set(err, code, "%s: picture %u: patch grid %ux%u out of range", where, k, p->tw,
					     p->th);
		if (k > 1 && (p->th != r->pics[1].th || p->tw != r->pics[1].tw))
			return lvd_error_set(err, code, "%s: picture %u: slice grid %ux%u differs from slice 1's %ux%u",
					     where, k, p->tw, p->th, r->pics[1].tw, r->pics[1].th);
		if (p->start < prev || p->end > r->T || p->start > p->end || p->end - p->start != r->query_num)
			return lvd_error_set(err, code,
					     "%s: picture %u: image bound [%u, %u) not %u tokens after %u and inside %u",
					     where, k, p->start, p->end, r->query_num, prev, r->T);
		prev = p->end;
	}
	for (uint32_t t = 0; t < r->T; t++)
		if (r->tokens[t] < 0 || r->labels[t] < -100 || (r->labels[t] < 0 && r->labels[t] != -100))
			return lvd_error_set(err, code, "%s: token %u: id %d / label %d out of range", where, t,
					     r->tokens[t], r->labels[t]);
	for (uint32_t k = 0; k < r->n_pics; k++)
		for (uint32_t t = r->pics[k].start; t < r->pics[k].end; t++)
			if (r->labels[t] != -100)
				return lvd_error_set(err, code, "%s: token %u of picture %u has label %d, want -100", where,
						     t, k, r->labels[t]);
	for (uint32_t w = 0; w < r->W; w++)
		if (r->words[w].n_query && r->words[w].query && r->words[w].query[0] < prev)
			return lvd_error_set(err, code, "%s: word %u '%s': query row %u before the end %u of the pictures",
					     where, w, r->words[w].key ? r->words[w].key : "", r->words[w].query[0], prev);
	return LVD_OK;
}

/* Semantic checks shared by encoder (code INVALID) and decoder (code FORMAT). */
static int validate(const struct lvd_packrec *r, int code, const char *where, struct lvd_error *err)
{
	if (r->flags & ~(uint32_t)FLAGS_ALL)
		return lvd_error_set(err, code, "%s: unknown flags 0x%x", where, r->flags);
	if (r->T < 1 || r->T > LVD_PACKREC_MAX_TOKENS)
		return lvd_error_set(err, code, "%s: token count %u out of range", where, r->T);
	if (r->W > LVD_PACKREC_MAX_WORDS)
		return lvd_error_set(err, code, "%s: word count %u out of range", where, r->W);
	if (r->gh < 1 || r->gw < 1 || r->gh > LVD_PACKREC_MAX_GRID || r->gw > LVD_PACKREC_MAX_GRID)
		return lvd_error_set(err, code, "%s: target grid %ux%u out of range", where, r->gw, r->gh);
	if (r->flags & LVD_PACKREC_RAW) {
		if (r->rh < 1 || r->rw < 1 || r->rh > LVD_PACKREC_MAX_GRID || r->rw > LVD_PACKREC_MAX_GRID)
			return lvd_error_set(err, code, "%s: raw map grid %ux%u out of range", where, r->rw, r->rh);
	} else if (r->rh || r->rw) {
		return lvd_error_set(err, code, "%s: raw map grid %ux%u without the RAW flag", where, r->rw, r->rh);
	}
	size_t idl = r->id ? strlen(r->id) : 0;
	if (idl < 1 || idl > LVD_PACKREC_MAX_ID || !utf8_ok((const uint8_t *)r->id, idl))
		return lvd_error_set(err, code, "%s: id is empty, too long or not UTF-8", where);
	if (r->image_len < 1 || r->image_len > LVD_PACKREC_MAX_IMAGE || !r->image)
		return lvd_error_set(err, code, "%s: image length %u out of range", where, r->image_len);
	if (!(r->flags & LVD_PACKREC_IMAGE) && !utf8_ok(r->image, r->image_len))
		return lvd_error_set(err, code, "%s: image path is not UTF-8", where);
	int rc = (r->flags & LVD_PACKREC_MCV) ? validate_mcv(r, code, where, err) : validate_tiles(r, code, where, err);
	if (rc)
		return rc;
	for (uint32_t w = 0; w < r->W; w++) {
		const struct lvd_packrec_word *x = &r->words[w];
		size_t kl = x->key ? strlen(x->key) : 0;
		if (kl < 1 || kl > 255 || !utf8_ok((const uint8_t *)x->key, kl))
			return lvd_error_set(err, code, "%s: word %u: key empty, longer than 255 bytes or not UTF-8",
					     where, w);
		if (x->n_pos < 1 || x->n_pos > r->T || x->n_query < 1 || x->n_query > r->T)
			return lvd_error_set(err, code, "%s: word %u '%s': %u positions / %u queries out of range",
					     where, w, x->key, x->n_pos, x->n_query);
		for (uint32_t i = 0; i < x->n_pos; i++)
			if (x->pos[i] >= r->T || (i && x->pos[i] <= x->pos[i - 1]))
				return lvd_error_set(err, code, "%s: word %u '%s': position %u not increasing or >= %u",
						     where, w, x->key, x->pos[i], r->T);
		for (uint32_t i = 0; i < x->n_query; i++)
			if (x->query[i] >= r->T || (i && x->query[i] <= x->query[i - 1]))
				return lvd_error_set(err, code, "%s: word %u '%s': query %u not increasing or >= %u",
						     where, w, x->key, x->query[i], r->T);
		if (!isfinite(x->min) || !isfinite(x->max) || x->min > x->max)
			return lvd_error_set(err, code, "%s: word %u '%s': bad min/max %g/%g", where, w, x->key,
					     (double)x->min, (double)x->max);
	}
	size_t cells = (size_t)r->gh * r->gw;
	if (r->flags & LVD_PACKREC_GRID) {
		for (size_t i = 0; i < cells; i++)
			if (r->mask[i] != 1)
				return lvd_error_set(err, code, "%s: mask[%zu] = %u, want 1 in grid mode", where, i,
						     r->mask[i]);
	} else {
		uint32_t per = r->tile_px / r->patch_px;
		if (r->gh != r->tiles_h * per || r->gw != r->tiles_w * per)
			return lvd_error_set(err, code, "%s: target grid %ux%u does not match %ux%u tiles of %u patches",
					     where, r->gw, r->gh, r->tiles_w, r->tiles_h, per);
		for (uint32_t y = 0; y < r->gh; y++)
			for (uint32_t x = 0; x < r->gw; x++) {
				uint8_t want = y * r->patch_px < r->new_h && x * r->patch_px < r->new_w;
				if (r->mask[(size_t)y * r->gw + x] != want)
					return lvd_error_set(err, code, "%s: mask[%u][%u] = %u, want %u for extent %ux%u",
							     where, y, x, r->mask[(size_t)y * r->gw + x], want, r->new_w,
							     r->new_h);
			}
	}
	for (size_t w = 0; w < r->W; w++) {
		const uint16_t *t = r->targets + w * cells;
		for (size_t i = 0; i < cells; i++)
			if (!f16_finite(t[i]) || (!r->mask[i] && (t[i] & 0x7fff)) ||
			    (t[i] > 0x3c00 && t[i] != 0x8000)) /* min-max normalised: in [0, 1] */
				return lvd_error_set(err, code,
						     "%s: word %zu: target[%zu] (fp16 0x%04x) not in [0, 1] or non-zero "
						     "outside the image", where, w, i, t[i]);
	}
	if (r->flags & LVD_PACKREC_RAW)
		for (size_t i = 0; i < (size_t)r->W * r->rh * r->rw; i++)
			if (!f16_finite(r->raw[i]))
				return lvd_error_set(err, code, "%s: raw map value %zu not finite", where, i);
	return LVD_OK;
}

/* ---- little-endian writer ---- */
struct wbuf {
	uint8_t *p;
	size_t n;
};
static void put16(struct wbuf *b, uint32_t v)
{
	b->p[b->n++] = (uint8_t)v;
	b->p[b->n++] = (uint8_t)(v >> 8);
}
static void put32(struct wbuf *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b->p[b->n++] = (uint8_t)(v >> (8 * i));
}
static void putf(struct wbuf *b, float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	put32(b, u);
}
static void putn(struct wbuf *b, const void *s, size_t n)
{
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

void lvd_packrec_set_geom(struct lvd_packrec *rec, const struct lvd_geom *g, int tile_px, int patch_px)
{
	rec->img_w = (uint32_t)g->img_w;
	rec->img_h = (uint32_t)g->img_h;
	rec->new_w = (uint32_t)g->new_w;
	rec->new_h = (uint32_t)g->new_h;
	rec->tiles_h = (uint32_t)g->tiles_h;
	rec->tiles_w = (uint32_t)g->tiles_w;
	rec->aspect_id = (uint32_t)g->aspect_id;
	rec->tile_px = (uint32_t)tile_px;
	rec->patch_px = (uint32_t)patch_px;
}

int lvd_packrec_encode(const struct lvd_packrec *r, uint8_t **out, size_t *out_len, struct lvd_error *err)
{
	*out = NULL;
	*out_len = 0;
	int rc = validate(r, LVD_ERR_INVALID, r->id ? r->id : "(no id)", err);
	if (rc)
		return rc;
	size_t cells = (size_t)r->gh * r->gw, rawc = (size_t)r->rh * r->rw;
	int mcv = (r->flags & LVD_PACKREC_MCV) != 0;
	size_t n = LVD_PACKREC_HEADER + strlen(r->id) + 8 * (size_t)r->T + (mcv ? 8 + 12 * (size_t)r->n_pics : 0);
	for (uint32_t w = 0; w < r->W; w++)
		n += 24 + strlen(r->words[w].key) + 4 * ((size_t)r->words[w].n_pos + r->words[w].n_query);
	/* all factors are bounded by the validated limits: W·cells·2 < 2^12·2^24·2 fits size_t */
	n += 2 * (size_t)r->W * cells + cells + 2 * (size_t)r->W * rawc + r->image_len;
	struct wbuf b = {malloc(n), 0};
	if (!b.p)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory encoding %zu bytes", r->id, n);
	putn(&b, "LVDP", 4);
	put16(&b, mcv ? LVD_PACKREC_VERSION_MCV : LVD_PACKREC_VERSION);
	put16(&b, r->flags);
	put32(&b, r->T);
	put32(&b, r->W);
	put32(&b, r->gh);
	put32(&b, r->gw);
	put32(&b, r->rh);
	put32(&b, r->rw);
	put32(&b, (uint32_t)strlen(r->id));
	put32(&b, r->image_len);
	put32(&b, r->img_w);
	put32(&b, r->img_h);
	put32(&b, r->new_w);
	put32(&b, r->new_h);
	put16(&b, r->tiles_h);
	put16(&b, r->tiles_w);
	put16(&b, r->aspect_id);
	put16(&b, r->tile_px);
	put16(&b, r->patch_px);
	put16(&b, 0);
	put32(&b, r->image_pos);
	LVD_ASSERT(b.n == LVD_PACKREC_HEADER);
	putn(&b, r->id, strlen(r->id));
	if (mcv) {
		put16(&b, r->cols);
		put16(&b, r->rows);
		put16(&b, r->n_pics);
		put16(&b, r->query_num);
		for (uint32_t k = 0; k < r->n_pics; k++) {
			put16(&b, r->pics[k].th);
			put16(&b, r->pics[k].tw);
			put32(&b, r->pics[k].start);
			put32(&b, r->pics[k].end);
		}
	}
	for (uint32_t t = 0; t < r->T; t++)
		put32(&b, (uint32_t)r->tokens[t]);
	for (uint32_t t = 0; t < r->T; t++)
		put32(&b, (uint32_t)r->labels[t]);
	for (uint32_t w = 0; w < r->W; w++) {
		const struct lvd_packrec_word *x = &r->words[w];
		size_t kl = strlen(x->key);
		put16(&b, (uint32_t)kl);
		put16(&b, 0);
		put32(&b, x->n_pos);
		put32(&b, x->n_query);
		put32(&b, (uint32_t)x->sd_tok);
		putf(&b, x->min);
		putf(&b, x->max);
		putn(&b, x->key, kl);
		for (uint32_t i = 0; i < x->n_pos; i++)
			put32(&b, x->pos[i]);
		for (uint32_t i = 0; i < x->n_query; i++)
			put32(&b, x->query[i]);
	}
	for (size_t i = 0; i < (size_t)r->W * cells; i++)
		put16(&b, r->targets[i]);
	putn(&b, r->mask, cells);
	if (r->flags & LVD_PACKREC_RAW)
		for (size_t i = 0; i < (size_t)r->W * rawc; i++)
			put16(&b, r->raw[i]);
	putn(&b, r->image, r->image_len);
	LVD_ASSERT(b.n == n);
	*out = b.p;
	*out_len = n;
	return LVD_OK;
}

/* ---- reader ---- */
struct rbuf {
	const uint8_t *p;
	size_t n, off;
};
static int need(struct rbuf *b, size_t k)
{
	return k <= b->n - b->off;
}
static uint32_t get16(struct rbuf *b)
{
	uint32_t v = (uint32_t)b->p[b->off] | (uint32_t)b->p[b->off + 1] << 8;
	b->off += 2;
	return v;
}
static uint32_t get32(struct rbuf *b)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)b->p[b->off + i] << (8 * i);
	b->off += 4;
	return v;
}

void lvd_packrec_free(struct lvd_packrec *r)
{
	if (!r)
		return;
	if (r->words)
		for (uint32_t w = 0; w < r->W; w++) {
			free(r->words[w].key);
			free(r->words[w].pos);
			free(r->words[w].query);
		}
	free(r->words);
	free(r->id);
	free(r->tokens);
	free(r->labels);
	free(r->targets);
	free(r->mask);
	free(r->raw);
	free(r->image);
	free(r->pics);
	memset(r, 0, sizeof *r);
}

#define TRUNC(what) lvd_error_set(err, LVD_ERR_FORMAT, "%s: payload truncated in %s (%zu bytes)", where, what, len)

int lvd_packrec_decode(struct lvd_packrec *r, const void *buf, size_t len, const char *where,
		       struct lvd_error *err)
{
	memset(r, 0, sizeof *r);
	struct rbuf b = {buf, len, 0};
	if (len < LVD_PACKREC_HEADER)
		return TRUNC("the header");
	if (memcmp(b.p, "LVDP", 4) != 0)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: bad magic (not an lvd-pack sample)", where);
	b.off = 4;
	uint32_t ver = get16(&b);
	if (ver != LVD_PACKREC_VERSION && ver != LVD_PACKREC_VERSION_MCV)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: unsupported version %u (this build reads %d and %d)",
				     where, ver, LVD_PACKREC_VERSION, LVD_PACKREC_VERSION_MCV);
	r->flags = get16(&b);
	r->T = get32(&b);
	r->W = get32(&b);
	r->gh = get32(&b);
	r->gw = get32(&b);
	r->rh = get32(&b);
	r->rw = get32(&b);
	uint32_t idl = get32(&b);
	r->image_len = get32(&b);
	r->img_w = get32(&b);
	r->img_h = get32(&b);
	r->new_w = get32(&b);
	r->new_h = get32(&b);
	r->tiles_h = get16(&b);
	r->tiles_w = get16(&b);
	r->aspect_id = get16(&b);
	r->tile_px = get16(&b);
	r->patch_px = get16(&b);
	uint32_t resv = get16(&b);
	r->image_pos = get32(&b);
	int rc = LVD_ERR_FORMAT;
	uint32_t W = r->W;
	r->W = 0; /* words[] not allocated yet */
	if (resv)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: reserved header field is %u, want 0", where, resv);
	if (r->flags & ~(uint32_t)FLAGS_ALL)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: unknown flags 0x%x", where, r->flags);
	if ((ver == LVD_PACKREC_VERSION_MCV) != ((r->flags & LVD_PACKREC_MCV) != 0))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: version %u with flags 0x%x (the MCV flag is version 2's)",
				     where, ver, r->flags);
	if (r->T < 1 || r->T > LVD_PACKREC_MAX_TOKENS || W > LVD_PACKREC_MAX_WORDS || r->gh < 1 || r->gw < 1 ||
	    r->gh > LVD_PACKREC_MAX_GRID || r->gw > LVD_PACKREC_MAX_GRID || r->rh > LVD_PACKREC_MAX_GRID ||
	    r->rw > LVD_PACKREC_MAX_GRID || idl < 1 || idl > LVD_PACKREC_MAX_ID || r->image_len > LVD_PACKREC_MAX_IMAGE)
		return lvd_error_set(err, LVD_ERR_FORMAT,
				     "%s: header counts out of range (tokens %u, words %u, grid %ux%u, raw %ux%u, id %u, image %u)",
				     where, r->T, W, r->gw, r->gh, r->rw, r->rh, idl, r->image_len);
	if (!need(&b, idl))
		return TRUNC("the id");
	if (!(r->id = malloc((size_t)idl + 1)))
		goto nomem;
	memcpy(r->id, b.p + b.off, idl);
	r->id[idl] = 0;
	if (memchr(r->id, 0, idl))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: id contains a NUL byte", where);
	b.off += idl;
	if (r->flags & LVD_PACKREC_MCV) {
		if (!need(&b, 8))
			return TRUNC("the pictures");
		r->cols = get16(&b);
		r->rows = get16(&b);
		r->n_pics = get16(&b);
		r->query_num = get16(&b);
		if (r->n_pics < 1 || r->n_pics > LVD_PACKREC_MAX_PICS)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: %u pictures out of range", where, r->n_pics);
		if (!need(&b, 12 * (size_t)r->n_pics))
			return TRUNC("the pictures");
		if (!(r->pics = lvd_calloc_array(r->n_pics, sizeof *r->pics)))
			goto nomem;
		for (uint32_t k = 0; k < r->n_pics; k++) {
			r->pics[k].th = get16(&b);
			r->pics[k].tw = get16(&b);
			r->pics[k].start = get32(&b);
			r->pics[k].end = get32(&b);
		}
	}
	if (!need(&b, 8 * (size_t)r->T))
		return TRUNC("the tokens");
	r->tokens = lvd_alloc_array(r->T, sizeof *r->tokens);
	r->labels = lvd_alloc_array(r->T, sizeof *r->labels);
	if (!r->tokens || !r->labels)
		goto nomem;
	for (uint32_t t = 0; t < r->T; t++)
		r->tokens[t] = (int32_t)get32(&b);
	for (uint32_t t = 0; t < r->T; t++)
		r->labels[t] = (int32_t)get32(&b);
	if (W && !(r->words = lvd_calloc_array(W, sizeof *r->words)))
		goto nomem;
	for (uint32_t w = 0; w < W; w++) {
		struct lvd_packrec_word *x = &r->words[w];
		r->W = w + 1; /* so free releases what is allocated */
		if (!need(&b, 24))
			return TRUNC("a word");
		uint32_t kl = get16(&b), z = get16(&b);
		x->n_pos = get32(&b);
		x->n_query = get32(&b);
		x->sd_tok = (int32_t)get32(&b);
		uint32_t u = get32(&b);
		memcpy(&x->min, &u, 4);
		u = get32(&b);
		memcpy(&x->max, &u, 4);
		if (z || kl < 1 || kl > 255 || x->n_pos < 1 || x->n_pos > r->T || x->n_query < 1 || x->n_query > r->T)
			return lvd_error_set(err, LVD_ERR_FORMAT,
					     "%s: word %u: key length %u, %u positions, %u queries out of range", where,
					     w, kl, x->n_pos, x->n_query);
		if (!need(&b, kl + 4 * ((size_t)x->n_pos + x->n_query)))
			return TRUNC("a word");
		x->key = malloc(kl + 1);
		x->pos = lvd_alloc_array(x->n_pos, 4);
		x->query = lvd_alloc_array(x->n_query, 4);
		if (!x->key || !x->pos || !x->query)
			goto nomem;
		memcpy(x->key, b.p + b.off, kl);
		x->key[kl] = 0;
		if (memchr(x->key, 0, kl))
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: word %u: key contains a NUL byte", where, w);
		b.off += kl;
		for (uint32_t i = 0; i < x->n_pos; i++)
			x->pos[i] = get32(&b);
		for (uint32_t i = 0; i < x->n_query; i++)
			x->query[i] = get32(&b);
	}
	r->W = W;
	size_t cells = (size_t)r->gh * r->gw, rawc = (size_t)r->rh * r->rw, tb = 2 * (size_t)W * cells;
	size_t rb = (r->flags & LVD_PACKREC_RAW) ? 2 * (size_t)W * rawc : 0;
	if (!need(&b, tb))
		return TRUNC("the targets");
	if (!(r->targets = malloc(tb ? tb : 1)))
		goto nomem;
	for (size_t i = 0; i < (size_t)W * cells; i++)
		r->targets[i] = (uint16_t)get16(&b);
	if (!need(&b, cells))
		return TRUNC("the mask");
	if (!(r->mask = malloc(cells)))
		goto nomem;
	memcpy(r->mask, b.p + b.off, cells);
	b.off += cells;
	if (rb) {
		if (!need(&b, rb))
			return TRUNC("the raw maps");
		if (!(r->raw = malloc(rb)))
			goto nomem;
		for (size_t i = 0; i < (size_t)W * rawc; i++)
			r->raw[i] = (uint16_t)get16(&b);
	}
	if (!need(&b, r->image_len))
		return TRUNC("the image");
	if (!(r->image = malloc((size_t)r->image_len + 1)))
		goto nomem;
	memcpy(r->image, b.p + b.off, r->image_len);
	r->image[r->image_len] = 0;
	b.off += r->image_len;
	if (b.off != len)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: %zu trailing bytes after the image", where, len - b.off);
	return validate(r, LVD_ERR_FORMAT, where, err);
nomem:
	rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory decoding", where);
	return rc;
}
