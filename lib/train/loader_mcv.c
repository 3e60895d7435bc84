/* The MiniCPM-Llama3-V-2.5 part of the pack loader (loader_mcv.h): an MCV record's
 * pictures through the model's slicing processor, checked against the record's geometry,
 * its words as Lavender inputs, and a batch's picture fields. */
#include "train/loader_mcv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/safetensors.h"

struct loader_mcv_samp {
	struct lvd_minicpmv_images im;   /* pixels NULL without images */
	int have_px;
	int n_pics, cols, rows, grid;
	int th[LVD_PACKREC_MAX_PICS], tw[LVD_PACKREC_MAX_PICS], bound[2 * LVD_PACKREC_MAX_PICS];
	int W;
	struct lvd_latt_word *words;     /* [W] */
	int *wrows;                      /* the words' row indices */
	float *targets;                  /* [W, grid, grid] */
};

int loader_mcv_cfg_load(struct loader_mcv_cfg *c, const struct lvd_loader_opts *o, struct lvd_error *err)
{
	memset(c, 0, sizeof *c);
	c->slice = o->slice;
	c->Q = o->query_num;
	if (c->slice.max_slices > 0 && c->Q > 0)
		return 0;
	if (!o->model)
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: a MiniCPM pack needs the model folder (or slice and "
				     "query_num)");
	char path[4200];
	snprintf(path, sizeof path, "%s/config.json", o->model);
	struct lvd_minicpmv_config mc;
	int rc = lvd_minicpmv_config_load(&mc, path, err);
	if (rc)
		return rc;
	if (c->slice.max_slices <= 0 && (rc = lvd_minicpmv_slice_cfg_from(&c->slice, &mc, err)))
		return lvd_error_prefix(err, "%s: ", path);
	if (c->Q <= 0)
		c->Q = mc.query_num;
	return 0;
}

void loader_mcv_samp_free(struct loader_mcv_samp *s)
{
	if (!s)
		return;
	lvd_minicpmv_images_free(&s->im);
	free(s->words);
	free(s->wrows);
	free(s->targets);
	free(s);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The model's slicing of the record's image equals the record's pictures. */
static int check_geom(const struct loader_mcv_cfg *c, const struct lvd_packrec *rec, const char *where,
		      struct lvd_error *err)
{
	struct lvd_minicpmv_geom g;
	int rc = lvd_minicpmv_slice_geom(&g, &c->slice, (int)rec->img_w, (int)rec->img_h, err);
	if (rc)
		return lvd_error_prefix(err, "%s: ", where);
	if ((uint32_t)g.cols != rec->cols || (uint32_t)g.rows != rec->rows || (uint32_t)g.n != rec->n_pics)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "%s: the model's slice_config gives a %dx%d slice grid (%d pictures) for the %ux%u "
				     "image, the pack recorded %ux%u (%u pictures) (another model config?)",
				     where, g.cols, g.rows, g.n, rec->img_w, rec->img_h, rec->cols, rec->rows, rec->n_pics);
	for (int k = 0; k < g.n; k++)
		if ((uint32_t)g.pic[k].th != rec->pics[k].th || (uint32_t)g.pic[k].tw != rec->pics[k].tw)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "%s: picture %d: the model's slicing gives %dx%d patches (th x tw), the pack "
					     "recorded %ux%u (another model config?)",
					     where, k, g.pic[k].th, g.pic[k].tw, rec->pics[k].th, rec->pics[k].tw);
	if (rec->query_num != (uint32_t)c->Q)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: query_num %u, the model's is %d (another model?)", where,
				     rec->query_num, c->Q);
	if (rec->gh != rec->gw)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: %ux%u targets, a MiniCPM sample needs a square --grid N",
				     where, rec->gh, rec->gw);
	return 0;
}

int loader_mcv_sample(struct loader_mcv_samp **out, const struct loader_mcv_cfg *c, const struct lvd_packrec *rec,
		      const struct lvd_image *im, const uint32_t *rows, int R, const char *where, struct lvd_error *err)
{
	*out = NULL;
	int rc = check_geom(c, rec, where, err);
	if (rc)
		return rc;
	struct loader_mcv_samp *s = calloc(1, sizeof *s);
	if (!s)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: sample", where);
	s->n_pics = (int)rec->n_pics;
	s->cols = (int)rec->cols;
	s->rows = (int)rec->rows;
	s->grid = (int)rec->gh;
	s->W = (int)rec->W;
	for (int k = 0; k < s->n_pics; k++) {
		s->th[k] = (int)rec->pics[k].th;
		s->tw[k] = (int)rec->pics[k].tw;
		s->bound[2 * k] = (int)rec->pics[k].start;
		s->bound[2 * k + 1] = (int)rec->pics[k].end;
	}
	if (im) {
		struct lvd_image rgb = {0};
		const struct lvd_image *src = im;
		if (im->c != 3) {
			if ((rc = lvd_image_alloc(&rgb, im->w, im->h, 3, err)))
				goto fail;
			for (size_t p = 0; p < (size_t)im->w * im->h; p++)
				for (int ch = 0; ch < 3; ch++)
					rgb.px[3 * p + ch] = im->px[p * (size_t)im->c + (im->c >= 3 ? (size_t)ch : 0)];
			src = &rgb;
		}
		rc = lvd_minicpmv_preprocess(&s->im, &c->slice, src->px, src->w, src->h, err);
		lvd_image_free(&rgb);
		if (rc) {
			lvd_error_prefix(err, "%s: ", where);
			goto fail;
		}
		s->have_px = 1;
	}
	size_t nr = 0, G = (size_t)s->grid * (size_t)s->grid;
	for (uint32_t w = 0; w < rec->W; w++)
		nr += rec->words[w].n_query;
	s->words = lvd_calloc_array((size_t)s->W + 1, sizeof *s->words);
	s->wrows = lvd_alloc_array(nr + 1, sizeof *s->wrows);
	s->targets = lvd_alloc_array((size_t)s->W * G + 1, sizeof *s->targets);
	if (!s->words || !s->wrows || !s->targets) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: words", where);
		goto fail;
	}
	size_t k = 0;
	for (int w = 0; w < s->W; w++) {
		const struct lvd_packrec_word *pw = &rec->words[w];
		int *wr = s->wrows + k;
		for (uint32_t q = 0; q < pw->n_query; q++) {
			const uint32_t *hit = bsearch(&pw->query[q], rows, (size_t)R, sizeof *rows, cmp_u32);
			if (!hit) {
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: word %d: query row %u is not a capture row", where,
						   w, pw->query[q]);
				goto fail;
			}
			s->wrows[k++] = (int)(hit - rows);
		}
		float *t = s->targets + (size_t)w * G;
		for (size_t i = 0; i < G; i++)
			t[i] = lvd_f16_to_f32(rec->targets[(size_t)w * G + i]);
		s->words[w] = (struct lvd_latt_word){(int)pw->n_query, wr, t};
	}
	*out = s;
	return 0;
fail:
	loader_mcv_samp_free(s);
	return rc;
}

int loader_mcv_assemble(struct loader_mcv_bufs *bb, struct lvd_loader_batch *b, struct loader_mcv_samp *const *s,
			uint32_t *const *rows, const int *R, struct lvd_error *err)
{
	const int B = b->B;
	int NI = 0, Lmax = 1, px = 1;
	for (int i = 0; i < B; i++) {
		NI += s[i]->n_pics;
		px &= s[i]->have_px;
		for (int k = 0; k < s[i]->n_pics; k++)
			Lmax = s[i]->th[k] * s[i]->tw[k] > Lmax ? s[i]->th[k] * s[i]->tw[k] : Lmax;
	}
	const int ps = B ? s[0]->im.patch : 0;
	size_t pic_floats = (size_t)3 * (size_t)ps * (size_t)ps * (size_t)Lmax, need = px ? (size_t)NI * pic_floats : 0;
	if ((size_t)NI > bb->cap_pics) {
		int *t = lvd_realloc_array(b->tgt_sizes, 2 * (size_t)NI, sizeof *t);
		if (t)
			b->tgt_sizes = t;
		int *bd = t ? lvd_realloc_array(b->image_bound, 2 * (size_t)NI, sizeof *bd) : NULL;
		if (bd)
			b->image_bound = bd;
		if (!t || !bd)
			return lvd_error_set(err, LVD_ERR_NOMEM, "loader: %d pictures", NI);
		bb->cap_pics = (size_t)NI;
	}
	if (need > bb->cap_strips) {
		float *p = lvd_realloc_array(b->strips, need, sizeof *p);
		if (!p)
			return lvd_error_set(err, LVD_ERR_NOMEM, "loader: pictures of %d x %d patches", NI, Lmax);
		b->strips = p;
		bb->cap_strips = need;
	}
	b->NI = NI;
	b->Lmax = Lmax;
	for (int i = 0, pic = 0; i < B; i++) {
		const struct loader_mcv_samp *x = s[i];
		if (px)
			lvd_minicpmv_images_batch(b->strips + (size_t)pic * pic_floats, b->tgt_sizes + 2 * pic, Lmax, &x->im);
		for (int k = 0; k < x->n_pics; k++) {
			b->tgt_sizes[2 * (pic + k)] = x->th[k];
			b->tgt_sizes[2 * (pic + k) + 1] = x->tw[k];
			b->image_bound[2 * (pic + k)] = x->bound[2 * k];
			b->image_bound[2 * (pic + k) + 1] = x->bound[2 * k + 1];
		}
		b->n_images[i] = x->n_pics;
		pic += x->n_pics;
		b->mcv[i] = (struct lvd_lstep_mcv_sample){x->cols, x->rows, x->grid, R[i], rows[i], x->W, x->words};
	}
	if (!px) {
		free(b->strips);
		b->strips = NULL;
		bb->cap_strips = 0;
	}
	return 0;
}

void loader_mcv_bufs_free(struct lvd_loader_batch *b)
{
	free(b->strips);
	free(b->tgt_sizes);
	free(b->n_images);
	free(b->image_bound);
	free(b->mcv);
	b->strips = NULL;
	b->tgt_sizes = b->n_images = b->image_bound = NULL;
	b->mcv = NULL;
}
