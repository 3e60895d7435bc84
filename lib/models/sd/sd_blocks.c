/* lib/models/sd/sd_blocks.c — building blocks shared by the VAE and the UNet:
 * a stack-style workspace, convolutions, linears and ResNet blocks. */
#include <string.h>
#include <time.h>

#include "core/error.h"
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

void sd_conv_run(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_conv *c,
		 int H, int W, int stride, int pad_t, int pad_l, int pad_b, int pad_r, struct sd_ws *ws)
{
	size_t mark = ws->used;
	size_t need = lvd_conv2d_scratch(c->cin, H, W, c->k, c->k, stride, pad_t, pad_l, pad_b, pad_r);
	float *scratch = need ? sd_ws_take(ws, need) : NULL;
	SD_TIME(sd, gemm_s, lvd_conv2d_fwd(out, inp, c->w, c->b, c->cin, H, W, c->cout, c->k, c->k,
					   stride, pad_t, pad_l, pad_b, pad_r, scratch, need));
	ws->used = mark;
}

void sd_linear_run(const struct lvd_sd *sd, float *out, const float *inp, const struct sd_lin *l,
		   int N, int IC, int OC)
{
	SD_TIME(sd, gemm_s, lvd_linear_fwd(out, inp, l->w, l->b, N, IC, OC));
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
	SD_TIME(sd, other_s, lvd_groupnorm_fwd(a, inp, r->n1.w, r->n1.b, r->cin, HW, groups, eps, 1));
	sd_conv_run(sd, h, a, &r->c1, H, W, 1, 1, 1, 1, 1, ws);
	if (temb_act && r->temb.w) {
		float *tp = sd_ws_take(ws, (size_t)r->cout);
		sd_linear_run(sd, tp, temb_act, &r->temb, 1, temb_dim, r->cout);
		SD_TIME(sd, other_s, lvd_add_bias_chan(h, tp, r->cout, HW));
	}
	float *a2 = sd_ws_take(ws, (size_t)r->cout * HW);
	SD_TIME(sd, other_s, lvd_groupnorm_fwd(a2, h, r->n2.w, r->n2.b, r->cout, HW, groups, eps, 1));
	sd_conv_run(sd, out, a2, &r->c2, H, W, 1, 1, 1, 1, 1, ws);
	if (r->sc.w) {
		sd_conv_run(sd, h, inp, &r->sc, H, W, 1, 0, 0, 0, 0, ws);
		SD_TIME(sd, other_s, lvd_add_inplace(out, h, (size_t)r->cout * HW));
	} else {
		SD_TIME(sd, other_s, lvd_add_inplace(out, inp, (size_t)r->cout * HW));
	}
	ws->used = mark;
}
