/* lib/models/sd/sd_blocks.c — building blocks shared by the VAE and the UNet: the
 * context a pass runs on, convolutions, linears and ResNet blocks on the ctx workspace. */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "models/sd/sd_internal.h"
#include "nn/ctx.h"
#include "nn/ops/conv.h"
#include "nn/ops/elem.h"
#include "nn/ops/gemm.h"
#include "nn/ops/norm.h"

void lvd_sd_set_stats(struct lvd_sd *sd, struct lvd_sd_stats *st)
{
	sd->stats = st;
}

int sd_ctx_init(struct lvd_sd *sd, struct lvd_ctx *borrowed, int threads, struct lvd_error *err)
{
	if (borrowed) {
		sd->ctx = borrowed;
		return 0;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct lvd_ctx_opts o = {.threads = threads > 0 ? threads : ncpu > 0 ? (int)ncpu : 1};
	int rc = lvd_ctx_create(&sd->ctx, &o, err);
	if (!rc)
		sd->own_ctx = 1;
	return rc;
}

void sd_ctx_free(struct lvd_sd *sd)
{
	if (sd->own_ctx)
		lvd_ctx_destroy(sd->ctx);
	sd->ctx = NULL;
	sd->own_ctx = 0;
}

struct lvd_ctx *sd_ctx_enter(const struct lvd_sd *sd, struct lvd_error *err)
{
	atomic_int *busy = (atomic_int *)&sd->busy;   /* mutable state of a const model */
	int expect = 0;
	if (!lvd_ctx_in_parallel() && atomic_compare_exchange_strong(busy, &expect, 1))
		return sd->ctx;
	struct lvd_ctx_opts o = {.threads = 1, .cpu_plain = !sd->ctx->cpu_fast};
	struct lvd_ctx *ctx;
	if (lvd_ctx_create(&ctx, &o, err))
		return NULL;
	return ctx;
}

void sd_ctx_leave(const struct lvd_sd *sd, struct lvd_ctx *ctx)
{
	if (ctx == sd->ctx)
		atomic_store((atomic_int *)&sd->busy, 0);
	else
		lvd_ctx_destroy(ctx);
}

void sd_conv_run(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		 const struct sd_conv *c, int H, int W, int stride, int pad_t, int pad_l, int pad_b, int pad_r)
{
	int k = c->k;
	int wino_shape = k == 3 && stride == 1 && pad_t == 1 && pad_l == 1 && pad_b == 1 && pad_r == 1;
	if (sd->winograd > 0 && wino_shape)
		SD_TIME(sd, gemm_s, lvd_conv2d_winograd_fwd(ctx, out, inp, c->w, c->b, 1, c->cin, H, W, c->cout,
							    sd->winograd == 2 ? 4 : 0));
	else if (sd->winograd < 0)
		SD_TIME(sd, gemm_s, lvd_conv2d_im2col_fwd(ctx, out, inp, c->w, c->b, 1, c->cin, H, W, c->cout, k, k,
							  stride, pad_t, pad_l, pad_b, pad_r));
	else
		SD_TIME(sd, gemm_s, lvd_conv2d_fwd(ctx, out, inp, c->w, c->b, 1, c->cin, H, W, c->cout, k, k,
						   stride, pad_t, pad_l, pad_b, pad_r));
}

void sd_linear_run(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		   const struct sd_lin *l, int N, int IC, int OC)
{
	SD_TIME(sd, gemm_s, lvd_linear_fwd(ctx, out, inp, l->w, l->b, N, IC, OC));
}

void sd_groupnorm(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		  const struct sd_norm *n, int C, int HW, int G, float eps, int silu)
{
	SD_TIME(sd, other_s, lvd_groupnorm_fwd(ctx, out, NULL, NULL, inp, n->w, n->b, 1, C, HW, G, eps, silu));
}

void sd_layernorm(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		  const struct sd_norm *n, int N, int C, float eps)
{
	SD_TIME(sd, other_s, lvd_layernorm_fwd(ctx, out, NULL, NULL, inp, n->w, n->b, N, C, eps));
}

void sd_add(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *y, const float *x, size_t n)
{
	SD_TIME(sd, other_s, lvd_add(ctx, y, x, n));
}

void sd_resnet_run(const struct lvd_sd *sd, struct lvd_ctx *ctx, float *out, const float *inp,
		   const struct sd_resnet *r, const float *temb_act, int temb_dim, int H, int W, int groups,
		   float eps)
{
	size_t mark = lvd_ctx_mark(ctx);
	int HW = H * W;
	float *gn1 = lvd_ctx_takef(ctx, (size_t)r->cin * HW);     /* SiLU(GN1(inp)) */
	float *h = lvd_ctx_takef(ctx, (size_t)r->cout * HW);      /* conv1 (+ temb), later shortcut */
	sd_groupnorm(sd, ctx, gn1, inp, &r->n1, r->cin, HW, groups, eps, 1);
	sd_conv_run(sd, ctx, h, gn1, &r->c1, H, W, 1, 1, 1, 1, 1);
	if (temb_act && r->temb.w) {
		float *tproj = lvd_ctx_takef(ctx, (size_t)r->cout);
		sd_linear_run(sd, ctx, tproj, temb_act, &r->temb, 1, temb_dim, r->cout);
		SD_TIME(sd, other_s, lvd_add_bias_chan(ctx, h, tproj, r->cout, HW));
	}
	float *gn2 = lvd_ctx_takef(ctx, (size_t)r->cout * HW);    /* SiLU(GN2(h)) */
	sd_groupnorm(sd, ctx, gn2, h, &r->n2, r->cout, HW, groups, eps, 1);
	sd_conv_run(sd, ctx, out, gn2, &r->c2, H, W, 1, 1, 1, 1, 1);
	if (r->sc.w) {
		sd_conv_run(sd, ctx, h, inp, &r->sc, H, W, 1, 0, 0, 0, 0);
		sd_add(sd, ctx, out, h, (size_t)r->cout * HW);
	} else {
		sd_add(sd, ctx, out, inp, (size_t)r->cout * HW);
	}
	lvd_ctx_release(ctx, mark);
}
