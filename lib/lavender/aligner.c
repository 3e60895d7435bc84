/* The Lavender Aligner, CPU reference (see aligner.h). */
#include "lavender/aligner.h"

#include <string.h>

#include "nn/ctx.h"
#include "nn/ops/conv.h"
#include "nn/ops/act.h"
#include "nn/ops/instnorm.h"

/* ---- stages ---------------------------------------------------------------------- */

struct stage {
	int w;        /* tensor index of the conv weight */
	int ci, co;
	int norm;     /* 0..2 (norm1..norm3) or -1 */
};

static int stages_of(const struct lvd_aligner_cfg *cfg, struct stage st[5])
{
	const int di = cfg->d_in, dh = cfg->d_h;
	int n = 0;
	st[n++] = (struct stage){ LVD_AL_EXPAND_1, di, dh, 0 };
	if (cfg->depth != LVD_ALIGNER_LIGHT)
		st[n++] = (struct stage){ LVD_AL_EXPAND_2, dh, dh, 1 };
	if (cfg->depth == LVD_ALIGNER_DEEP) {
		st[n++] = (struct stage){ LVD_AL_EXPAND_3, dh, dh, -1 };
		st[n++] = (struct stage){ LVD_AL_EXPAND_4, dh, dh, -1 };
	}
	st[n++] = (struct stage){ LVD_AL_SQUEEZE_1, dh, di, 2 };
	if (cfg->norm == LVD_ALIGNER_NONORM)
		for (int k = 0; k < n; k++)
			st[k].norm = -1;
	return n;
}

/* Per stage in `saved`: z (conv out) [N, co, HW]; if normed: nrm [N, co, HW], mean and
 * rstd [N, co]; a (activation out) [N, co, HW]. */
struct stage_buf {
	float *z, *nrm, *mean, *rstd, *a;
};

static size_t stage_floats(const struct stage *s, size_t N, size_t HW)
{
	size_t plane = N * (size_t)s->co * HW;
	return s->norm >= 0 ? 3 * plane + 2 * N * (size_t)s->co : 2 * plane;
}

static void stage_carve(struct stage_buf *b, float *p, const struct stage *s, size_t N, size_t HW)
{
	size_t plane = N * (size_t)s->co * HW;
	b->z = p;
	p += plane;
	if (s->norm >= 0) {
		b->nrm = p;
		p += plane;
		b->mean = p;
		p += N * (size_t)s->co;
		b->rstd = p;
		p += N * (size_t)s->co;
	} else {
		b->nrm = b->z;
		b->mean = b->rstd = NULL;
	}
	b->a = p;
}

size_t lvd_aligner_saved_floats(const struct lvd_aligner_cfg *cfg, int N, int HW)
{
	struct stage st[5];
	int ns = stages_of(cfg, st);
	size_t tot = 0;
	for (int k = 0; k < ns; k++)
		tot += stage_floats(&st[k], (size_t)N, (size_t)HW);
	return tot;
}

/* a conv over N images (the op splits its GEMMs over ctx's pool) */
struct conv_job {
	float *out;
	const float *inp, *w, *b;
	int ci, co, H, W, k, pad;
};

static void conv_images(struct lvd_ctx *ctx, struct conv_job *j, int N)
{
	lvd_conv2d_fwd(ctx, j->out, j->inp, j->w, j->b, N, j->ci, j->H, j->W, j->co, j->k, j->k, 1,
		       j->pad, j->pad, j->pad, j->pad);
}

static void check_args(const struct lvd_aligner_cfg *cfg, int N, int H, int W)
{
	struct lvd_error e;
	LVD_ASSERTF(lvd_aligner_cfg_check(cfg, &e) == LVD_OK, "lvd_aligner: %s", e.msg);
	LVD_ASSERTF(N >= 1 && H >= 1 && W >= 1, "lvd_aligner: bad shape N=%d H=%d W=%d", N, H, W);
}

void lvd_aligner_fwd(struct lvd_ctx *ctx, float *out, float *saved, const float *inp,
		     const float *params, const struct lvd_aligner_cfg *cfg, int N, int H, int W)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_aligner_fwd");
	check_args(cfg, N, H, W);
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, cfg);
	struct stage st[5];
	const int ns = stages_of(cfg, st);
	const size_t HW = (size_t)H * W;
	size_t mk = lvd_ctx_mark(ctx);
	if (!saved)
		saved = lvd_ctx_takef(ctx, lvd_aligner_saved_floats(cfg, N, (int)HW));
	const float *x = inp;
	float *p = saved;
	for (int k = 0; k < ns; k++) {
		const struct stage *s = &st[k];
		struct stage_buf b;
		stage_carve(&b, p, s, (size_t)N, HW);
		p += stage_floats(s, (size_t)N, HW);
		const float *w = params + lay.t[s->w].off;
		struct conv_job cj = { b.z, x, w, NULL, s->ci, s->co, H, W, 3, 1 };
		conv_images(ctx, &cj, N);
		if (s->norm >= 0) {
			const float *nw = NULL, *nb = NULL;
			if (cfg->norm == LVD_ALIGNER_GROUP) {
				nw = params + lay.t[LVD_AL_NORM1_W + 2 * s->norm].off;
				nb = params + lay.t[LVD_AL_NORM1_B + 2 * s->norm].off;
			}
			lvd_instnorm_fwd(ctx, b.nrm, b.mean, b.rstd, b.z, nw, nb, N, s->co, (int)HW, cfg->norm_eps);
		}
		size_t n_el = (size_t)N * s->co * HW;
		if (cfg->act == LVD_ALIGNER_RELU6)
			lvd_relu6_fwd(ctx, b.a, b.nrm, n_el);
		else
			lvd_leaky_relu_fwd(ctx, b.a, b.nrm, n_el, cfg->slope);
		x = b.a;
	}
	/* conv_last: 1×1, d_in -> 1, with bias */
	const float *wl = params + lay.t[LVD_AL_LAST_W].off, *bl = params + lay.t[LVD_AL_LAST_B].off;
	struct conv_job lj = { out, x, wl, bl, cfg->d_in, 1, H, W, 1, 0 };
	conv_images(ctx, &lj, N);
	lvd_ctx_release(ctx, mk);
}

void lvd_aligner_bwd(struct lvd_ctx *ctx, float *dinp, float *dparams, const float *dout,
		     const float *saved, const float *inp, const float *params,
		     const struct lvd_aligner_cfg *cfg, int N, int H, int W)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_aligner_bwd");
	check_args(cfg, N, H, W);
	if (!dinp && !dparams)
		return;
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, cfg);
	struct stage st[5];
	struct stage_buf sb[5];
	const int ns = stages_of(cfg, st);
	const size_t HW = (size_t)H * W;
	float *p = (float *)saved;
	for (int k = 0; k < ns; k++) {
		stage_carve(&sb[k], p, &st[k], (size_t)N, HW);
		p += stage_floats(&st[k], (size_t)N, HW);
	}
	const int cmax = cfg->d_in > cfg->d_h ? cfg->d_in : cfg->d_h;
	const size_t big = (size_t)N * cmax * HW;
	size_t mk = lvd_ctx_mark(ctx);
	float *da = lvd_ctx_takef(ctx, big), *dn = lvd_ctx_takef(ctx, big);
	float *dz = lvd_ctx_takef(ctx, big), *dprev = lvd_ctx_takef(ctx, big);
	/* conv_last */
	memset(da, 0, (size_t)N * cfg->d_in * HW * sizeof *da);
	lvd_conv2d_bwd(ctx, da, dparams ? dparams + lay.t[LVD_AL_LAST_W].off : NULL,
		       dparams ? dparams + lay.t[LVD_AL_LAST_B].off : NULL, dout, sb[ns - 1].a,
		       params + lay.t[LVD_AL_LAST_W].off, N, cfg->d_in, H, W, 1, 1, 1, 1, 0, 0, 0, 0);
	for (int k = ns - 1; k >= 0; k--) {
		const struct stage *s = &st[k];
		const struct stage_buf *b = &sb[k];
		const size_t n_el = (size_t)N * s->co * HW;
		memset(dn, 0, n_el * sizeof *dn);
		if (cfg->act == LVD_ALIGNER_RELU6)
			lvd_relu6_bwd(ctx, dn, da, b->nrm, n_el);
		else
			lvd_leaky_relu_bwd(ctx, dn, da, b->nrm, n_el, cfg->slope);
		const float *dzp = dn;
		if (s->norm >= 0) {
			const float *nw = NULL;
			float *dnw = NULL, *dnb = NULL;
			if (cfg->norm == LVD_ALIGNER_GROUP) {
				nw = params + lay.t[LVD_AL_NORM1_W + 2 * s->norm].off;
				if (dparams) {
					dnw = dparams + lay.t[LVD_AL_NORM1_W + 2 * s->norm].off;
					dnb = dparams + lay.t[LVD_AL_NORM1_B + 2 * s->norm].off;
				}
			}
			memset(dz, 0, n_el * sizeof *dz);
			lvd_instnorm_bwd(ctx, dz, dnw, dnb, dn, b->z, nw, b->mean, b->rstd, N, s->co, (int)HW);
			dzp = dz;
		}
		const float *x = k > 0 ? sb[k - 1].a : inp;
		float *dx = NULL;
		if (k > 0) {
			dx = dprev;
			memset(dx, 0, (size_t)N * s->ci * HW * sizeof *dx);
		} else {
			dx = dinp;
		}
		float *dw = dparams ? dparams + lay.t[s->w].off : NULL;
		lvd_conv2d_bwd(ctx, dx, dw, NULL, dzp, x, params + lay.t[s->w].off, N, s->ci, H, W, s->co, 3, 3, 1,
			       1, 1, 1, 1);
		if (k > 0) {
			float *t = da;
			da = dprev;
			dprev = t;
		}
	}
	lvd_ctx_release(ctx, mk);
}
