/* lib/models/sd/sd_blocks.c — building blocks shared by the VAE and the UNet:
 * a stack-style workspace, convolutions, linears and ResNet blocks. */
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/pool.h"
#include "models/sd/sd_internal.h"
#include "nn/gemm.h"
#include "nn/ops.h"

double sd_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lvd_sd_set_stats(struct lvd_sd *sd, struct lvd_sd_stats *st)
{
	sd->stats = st;
}

/* Takes n floats (64-byte rounded) from the workspace; running out is a sizing bug. */
float *sd_ws_take(struct sd_ws *ws, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	LVD_ASSERTF(ws->used + n <= ws->cap, "sd workspace too small: need %zu more floats, %zu left",
		    n, ws->cap - ws->used);
	float *p = ws->base + ws->used;
	ws->used += n;
	return p;
}

/* 3x3 stride-1 pad-1 convs with at least SD_WINO_MIN_C input channels on at least
 * SD_WINO_MIN_HW pixels run as Winograd (conv_winograd.c: F(2x2, 3x3) below 32x32, where
 * these numbers are from, F(4x4, 3x3) from 32x32 up, another 1.2-1.6x). Measured on
 * SD 1.5 shapes (2-core EPYC, OpenBLAS, per conv): 1.4-1.7x faster than im2col + GEMM
 * from 32x32 up, 1.1-1.3x at 16x16 (64 tiles per GEMM; whole UNet pass 1-2 % faster
 * with it), 2-3x slower at 8x8 and 4x4, where the GEMMs are too thin and the 16/9
 * larger transformed weights dominate; conv_in (3 or 4 channels) is 2.5x slower
 * (K = C is too short for a GEMM). */
enum { SD_WINO_MIN_HW = 256, SD_WINO_MIN_C = 16 };

static int sd_wino_ok(const struct lvd_sd *sd, int cin, int H, int W, int k, int stride, int pt,
		      int pl, int pb, int pr)
{
	if (sd->winograd < 0 || k != 3 || stride != 1 || pt != 1 || pl != 1 || pb != 1 || pr != 1)
		return 0;
	return sd->winograd > 0 || (cin >= SD_WINO_MIN_C && (size_t)H * W >= SD_WINO_MIN_HW);
}

size_t sd_conv3_scratch_bound(const struct lvd_sd *sd, int cin, int cout, int H, int W)
{
	size_t a = lvd_conv2d_scratch(cin, H, W, 3, 3, 1, 1, 1, 1, 1), b = 0;
	if (sd_wino_ok(sd, cin, H, W, 3, 1, 1, 1, 1, 1))
		b = lvd_conv2d_winograd_scratch(cin, H, W, cout, lvd_pool_threads(sd->pool));
	return a > b ? a : b;
}

void sd_conv_run(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_conv *c,
		 int H, int W, int stride, int pad_t, int pad_l, int pad_b, int pad_r, struct sd_ws *ws)
{
	size_t mark = ws->used;
	if (sd_wino_ok(sd, c->cin, H, W, c->k, stride, pad_t, pad_l, pad_b, pad_r)) {
		size_t need = lvd_conv2d_winograd_scratch(c->cin, H, W, c->cout, lvd_pool_threads(sd->pool));
		float *scratch = sd_ws_take(ws, need);
		int m = sd->winograd == 2 ? 4 : lvd_conv2d_winograd_tile(c->cin, H, W, c->cout);
		SD_TIME(sd, gemm_s, lvd_conv2d_winograd_fwd_m(out, inp, c->w, c->b, c->cin, H, W, c->cout,
							      m, scratch, need, sd->pool));
		ws->used = mark;
		return;
	}
	size_t need = lvd_conv2d_scratch(c->cin, H, W, c->k, c->k, stride, pad_t, pad_l, pad_b, pad_r);
	float *scratch = need ? sd_ws_take(ws, need) : NULL;
	SD_TIME(sd, gemm_s, lvd_conv2d_fwd_mt(out, inp, c->w, c->b, c->cin, H, W, c->cout, c->k, c->k,
					      stride, pad_t, pad_l, pad_b, pad_r, scratch, need, sd->pool));
	ws->used = mark;
}

void sd_linear_run(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_lin *l,
		   int N, int IC, int OC)
{
	SD_TIME(sd, gemm_s, lvd_linear_fwd_mt(out, inp, l->w, l->b, N, IC, OC, sd->pool));
}

/* ---- elementwise work spread over the model's pool ------------------------------------
 * Each op is split along an axis whose pieces are independent (groups, rows, ranges) and
 * runs the serial op from ops.h on each piece, so results equal the serial ones bit for
 * bit whatever the thread count. Small tensors stay on the caller (a wake-up costs more). */
enum { SD_PAR_MIN = 1 << 15 };
enum { PAR_GN, PAR_LN, PAR_GEGLU, PAR_ADD };

struct par_job {
	int kind, C, HW, G, silu;
	float eps;
	float *out;
	const float *inp, *w, *b;
};

static int par_piece(void *ctx, size_t lo, size_t hi, int tid)
{
	const struct par_job *j = ctx;
	(void)tid;
	switch (j->kind) {
	case PAR_GN: {   /* items: groups */
		size_t cg = (size_t)(j->C / j->G), off = lo * cg * (size_t)j->HW;
		lvd_groupnorm_fwd(j->out + off, j->inp + off, j->w ? j->w + lo * cg : NULL,
				  j->b ? j->b + lo * cg : NULL, (int)((hi - lo) * cg), j->HW, (int)(hi - lo),
				  j->eps, j->silu);
		break;
	}
	case PAR_LN:     /* items: rows of C */
		lvd_layernorm_fwd(j->out + lo * j->C, NULL, NULL, j->inp + lo * j->C, j->w, j->b,
				  (int)(hi - lo), j->C, j->eps);
		break;
	case PAR_GEGLU:  /* items: rows, C = F */
		lvd_geglu_fwd(j->out + lo * j->C, j->inp + lo * 2 * j->C, (int)(hi - lo), j->C);
		break;
	case PAR_ADD:    /* items: values */
		lvd_add_inplace(j->out + lo, j->inp + lo, hi - lo);
		break;
	}
	return 0;
}

static void par_run(const struct lvd_sd *sd, struct par_job *j, size_t items, size_t total)
{
	if (total < SD_PAR_MIN || !sd->pool || items < 2)
		par_piece(j, 0, items, 0);
	else
		lvd_pool_parallel_for(sd->pool, items, par_piece, j);
}

void sd_groupnorm(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_norm *n,
		  int C, int HW, int G, float eps, int silu)
{
	LVD_ASSERT(G > 0 && C % G == 0);
	struct par_job j = {.kind = PAR_GN, .C = C, .HW = HW, .G = G, .silu = silu, .eps = eps,
			    .out = out, .inp = inp, .w = n->w, .b = n->b};
	SD_TIME(sd, other_s, par_run(sd, &j, (size_t)G, (size_t)C * HW));
}

void sd_layernorm(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_norm *n,
		  int N, int C, float eps)
{
	struct par_job j = {.kind = PAR_LN, .C = C, .eps = eps, .out = out, .inp = inp, .w = n->w, .b = n->b};
	SD_TIME(sd, other_s, par_run(sd, &j, (size_t)N, (size_t)N * C));
}

void sd_geglu(const struct lvd_sd *sd, float *out, const float *inp, int N, int F)
{
	struct par_job j = {.kind = PAR_GEGLU, .C = F, .out = out, .inp = inp};
	SD_TIME(sd, other_s, par_run(sd, &j, (size_t)N, (size_t)N * F * 8));
}

void sd_add(const struct lvd_sd *sd, float *y, const float *x, size_t n)
{
	struct par_job j = {.kind = PAR_ADD, .out = y, .inp = x};
	SD_TIME(sd, other_s, par_run(sd, &j, n, n / 4));
}

/* out [cout, H, W] = shortcut(inp) + conv2(SiLU(GN2(conv1(SiLU(GN1(inp))) + temb)));
 * temb_act = SiLU(temb) [temb_dim] or NULL (VAE). out must not alias inp.
 * Workspace: 2·cout·H·W + cin·H·W + conv scratch. */
void sd_resnet_run(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_resnet *r,
		   const float *temb_act, int temb_dim, int H, int W, int groups, float eps,
		   struct sd_ws *ws)
{
	size_t mark = ws->used;
	int HW = H * W;
	float *a = sd_ws_take(ws, (size_t)r->cin * HW);
	float *h = sd_ws_take(ws, (size_t)r->cout * HW);
	sd_groupnorm(sd, a, inp, &r->n1, r->cin, HW, groups, eps, 1);
	sd_conv_run(sd, h, a, &r->c1, H, W, 1, 1, 1, 1, 1, ws);
	if (temb_act && r->temb.w) {
		float *tp = sd_ws_take(ws, (size_t)r->cout);
		sd_linear_run(sd, tp, temb_act, &r->temb, 1, temb_dim, r->cout);
		SD_TIME(sd, other_s, lvd_add_bias_chan(h, tp, r->cout, HW));
	}
	float *a2 = sd_ws_take(ws, (size_t)r->cout * HW);
	sd_groupnorm(sd, a2, h, &r->n2, r->cout, HW, groups, eps, 1);
	sd_conv_run(sd, out, a2, &r->c2, H, W, 1, 1, 1, 1, 1, ws);
	if (r->sc.w) {
		sd_conv_run(sd, h, inp, &r->sc, H, W, 1, 0, 0, 0, 0, ws);
		sd_add(sd, out, h, (size_t)r->cout * HW);
	} else {
		sd_add(sd, out, inp, (size_t)r->cout * HW);
	}
	ws->used = mark;
}
