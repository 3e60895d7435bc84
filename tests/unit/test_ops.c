/* tests/unit/test_ops.c — the op table (ggml test-backend-ops style): every op of
 * lib/nn/ops/ run from one table on
 *   (a) a CPU context with cpu_fast = 0 (the plain reference, compared with an oracle),
 *   (b) CPU contexts with cpu_fast = 1 and 2, 3 threads (compared with (a)),
 *   (c) a CUDA context when lvd_cuda_device_count() > 0 and the entry has a CUDA twin
 *       (compared with (a); "SKIP: cuda: no GPU (...)" once otherwise),
 * plus, for every entry with a backward: central finite differences of the forward,
 * accumulation (+=) and NULL-gradient skipping; for linear operators the adjoint
 * identity <A x, y> = <x, Aᵀ y>. `test_ops --list` prints the table as markdown (the op
 * index of docs/DESIGN.md).
 *
 * The rows: the nn families (gemm, softmax, norm, act, elem, conv, attention, embed, xent,
 * lora) in ops_table_nn.h, then instnorm, act's ReLU6/LeakyReLU and resample below; op_at(t)
 * walks both. The fast column runs at 2 and 3 threads.
 *
 * How to add an op:
 *   1. Write the shape function `sh_<op>(const struct op_case *c, struct op_io *io)`:
 *      sizes of the inputs in[] and outputs out[] in floats, which inputs get gradients
 *      (io->grad[k] = 1), and n_loss (the first n_loss outputs enter the finite-difference
 *      loss; later outputs are saved-for-backward tensors such as mean/rstd).
 *   2. Write `fw_<op>` (and `bw_<op>` if it has a backward) ONCE against the ctx and the
 *      buffers the table hands over (lvd_buf_* memory: host on CPU, device on CUDA);
 *      never touch the data on the host there. bw_ receives dout[k] for k < n_loss and
 *      din[k] for inputs with grad[k] (either may be NULL: skip it), and must ACCUMULATE.
 *   3. Write the oracle `rf_<op>`: plain double loops on host copies filling every
 *      output (NULL only when no independent oracle exists, e.g. lora_dropout's RNG
 *      mask: then an op-specific test checks the values, and ref_why says which).
 *   4. Add cases (C_<op>[], shape sets ending with {0}) and one OP(...) row to
 *      op_table[] (nn families: op_table_nn[] in ops_table_nn.h) with its tolerances and
 *      the reason beside each; set fast = 1 when the op has a fast CPU path, cuda = 1
 *      when it has a .cu twin; a new family also gets a line in op_homes[] (--list).
 * Tolerances: a result passes when max |got - want| <= tol · max(1, max |want|).
 *
 * Dimension letters: B batch, C channels, H/W spatial, OC output channels, G groups. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "core/device.h"
#include "lavender/geometry.h"
#include "nn/ctx.h"
#include "nn/ops/act.h"
#include "nn/ops/attention.h"
#include "nn/ops/conv.h"
#include "nn/ops/elem.h"
#include "nn/ops/embed.h"
#include "nn/ops/gemm.h"
#include "nn/ops/instnorm.h"
#include "nn/ops/norm.h"
#include "nn/ops/lora.h"
#include "nn/ops/resample.h"
#include "nn/ops/softmax.h"
#include "nn/ops/xent.h"

#define OPS_MAX_T 4

/* One shape set: integer sizes i[] and float parameters f[], meaning per entry. */
struct op_case {
	const char *name;
	int i[12];
	double f[4];
};

struct op_io {
	int n_in, n_out, n_loss;
	size_t in_n[OPS_MAX_T], out_n[OPS_MAX_T];
	int grad[OPS_MAX_T];              /* 1: the backward computes d in[k] */
	float lo[OPS_MAX_T], hi[OPS_MAX_T];   /* input k uniform in [lo, hi) (0, 0: [-1, 1)) */
	float kink[2];                    /* inputs are kept >= 0.05 away from these ... */
	int n_kink;                       /* ... (piecewise-linear ops; FD step 0.01) */
};

typedef void op_fn(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out);
typedef void op_bwd_fn(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		       float *const *dout, float *const *din);
typedef void op_ref_fn(const struct op_case *c, const float *const *in, double *const *out);

struct op_entry {
	const char *name;
	const char *fns;                  /* the functions the entry covers */
	const struct op_case *cases;      /* ends with {0} */
	void (*shape)(const struct op_case *c, struct op_io *io);
	op_fn *fwd;
	op_bwd_fn *bwd;                   /* NULL: forward only */
	op_ref_fn *ref;                   /* oracle for every output; NULL: see ref_why */
	int linear;                       /* out[0] = A·in[0]: adjoint identity checked */
	int fast, cuda;                   /* has a fast CPU path / a CUDA twin */
	double ref_tol;  const char *ref_why;
	double fast_tol; const char *fast_why;
	double cuda_tol; const char *cuda_why;
	double fd_h, fd_tol; const char *fd_why;
};

/* ---- small helpers ------------------------------------------------------------- */

static uint64_t rng_s;
static double urand(void)   /* [0, 1) */
{
	uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (double)((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}

static void gen_input(const struct op_io *io, int k, float *x, size_t n)
{
	float lo = io->lo[k], hi = io->hi[k];
	if (lo == 0 && hi == 0)
		lo = -1, hi = 1;
	for (size_t j = 0; j < n; j++) {
		float v;
		int ok;
		do {
			v = (float)(lo + (hi - lo) * urand());
			ok = 1;
			for (int q = 0; q < io->n_kink; q++)
				if (fabsf(v - io->kink[q]) < 0.05f)
					ok = 0;
		} while (!ok);
		x[j] = v;
	}
}

static double max_abs_d(const double *x, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(x[i]) > m)
			m = fabs(x[i]);
	return m;
}

/* max |a - b| <= tol · max(1, max |b|); prints the worst element when not */
static int close_fd(const char *what, const char *op, const char *cs, const float *a, const double *b, size_t n,
		    double tol, const char *why)
{
	double worst = 0, scale = max_abs_d(b, n);
	size_t wi = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);
		if (!(d <= worst)) {
			worst = d;
			wi = i;
			if (d != d)
				break;
		}
	}
	double lim = tol * (scale > 1 ? scale : 1);
	if (getenv("LVD_TEST_VERBOSE"))   /* the margin behind every tolerance */
		fprintf(stderr, "  %-20s %-28s %-34s max |diff| %.3g (limit %.3g)\n", op, cs, what, worst, lim);
	if (!(worst <= lim)) {
		lvd_t_fail_count++;
		fprintf(stderr, "  FAIL %s [%s]: %s: max |diff| %.3g at [%zu] (got %.9g, want %.9g) > %.3g (%s)\n",
			op, cs, what, worst, wi, n ? a[wi] : 0.0, n ? b[wi] : 0.0, lim, why);
		return 0;
	}
	return 1;
}

static int close_ff(const char *what, const char *op, const char *cs, const float *a, const float *b, size_t n,
		    double tol, const char *why)
{
	double *bd = malloc((n ? n : 1) * sizeof *bd);
	for (size_t i = 0; i < n; i++)
		bd[i] = b[i];
	int ok = close_fd(what, op, cs, a, bd, n, tol, why);
	free(bd);
	return ok;
}

static struct lvd_ctx *make_ctx(enum lvd_backend be, int threads, int plain)
{
	struct lvd_ctx_opts o = {0};
	o.backend = be;
	o.threads = threads;
	o.cpu_plain = plain;
	o.ws_bytes = (size_t)1 << 30;
	o.dws_bytes = (size_t)256 << 20;
	struct lvd_ctx *ctx = NULL;
	struct lvd_error e = {0};
	int rc = lvd_ctx_create(&ctx, &o, &e);
	if (rc)
		fprintf(stderr, "  lvd_ctx_create: %s\n", e.msg);
	return ctx;
}

/* ---- running one entry on one context ------------------------------------------ */

/* Host copies of everything one run produced. */
struct op_run {
	struct op_io io;
	float *in[OPS_MAX_T];     /* inputs (generated from the seed) */
	float *out[OPS_MAX_T];    /* forward outputs */
	float *dout[OPS_MAX_T];   /* the upstream gradient used (k < n_loss) */
	float *din[OPS_MAX_T];    /* gradients after bwd, starting from g0 (grad inputs) */
	float *g0[OPS_MAX_T];     /* the values din started from (accumulation check) */
};

static void run_free(struct op_run *r)
{
	for (int k = 0; k < OPS_MAX_T; k++) {
		free(r->in[k]);
		free(r->out[k]);
		free(r->dout[k]);
		free(r->din[k]);
		free(r->g0[k]);
	}
	memset(r, 0, sizeof *r);
}

static float *host_alloc(size_t n)
{
	float *p = calloc(n ? n : 1, sizeof(float));
	REQUIRE(p != NULL);
	return p;
}

static float *dev_alloc(struct lvd_ctx *ctx, size_t n)
{
	float *p = lvd_buf_alloc(ctx, (n ? n : 1) * sizeof(float));
	REQUIRE(p != NULL);
	return p;
}

/* Generates inputs (deterministic per entry and case), runs the forward and, when the
 * entry has one, the backward with a random dout into gradients prefilled with g0. */
static void op_run_on(struct lvd_ctx *ctx, const struct op_entry *e, const struct op_case *c, int with_bwd,
		      struct op_run *r)
{
	memset(r, 0, sizeof *r);
	e->shape(c, &r->io);
	const struct op_io *io = &r->io;
	rng_s = 0x1234567ull;   /* the same inputs on every context and every run */
	for (const char *p = e->name; *p; p++)
		rng_s = rng_s * 131 + (unsigned char)*p;
	for (const char *p = c->name; *p; p++)
		rng_s = rng_s * 131 + (unsigned char)*p;
	float *din_d[OPS_MAX_T] = {0}, *dout_d[OPS_MAX_T] = {0}, *in_d[OPS_MAX_T] = {0}, *out_d[OPS_MAX_T] = {0};
	for (int k = 0; k < io->n_in; k++) {
		r->in[k] = host_alloc(io->in_n[k]);
		gen_input(io, k, r->in[k], io->in_n[k]);
		in_d[k] = dev_alloc(ctx, io->in_n[k]);
		lvd_buf_upload(ctx, in_d[k], r->in[k], io->in_n[k] * sizeof(float));
	}
	for (int k = 0; k < io->n_out; k++) {
		out_d[k] = dev_alloc(ctx, io->out_n[k]);
		lvd_buf_zero(ctx, out_d[k], io->out_n[k] * sizeof(float));
	}
	e->fwd(ctx, c, in_d, out_d);
	lvd_ctx_sync(ctx);
	for (int k = 0; k < io->n_out; k++) {
		r->out[k] = host_alloc(io->out_n[k]);
		lvd_buf_download(ctx, r->out[k], out_d[k], io->out_n[k] * sizeof(float));
	}
	if (with_bwd && e->bwd) {
		for (int k = 0; k < io->n_loss; k++) {
			r->dout[k] = host_alloc(io->out_n[k]);
			for (size_t j = 0; j < io->out_n[k]; j++)
				r->dout[k][j] = (float)(2 * urand() - 1);
			dout_d[k] = dev_alloc(ctx, io->out_n[k]);
			lvd_buf_upload(ctx, dout_d[k], r->dout[k], io->out_n[k] * sizeof(float));
		}
		for (int k = 0; k < io->n_in; k++) {
			if (!io->grad[k])
				continue;
			r->g0[k] = host_alloc(io->in_n[k]);
			for (size_t j = 0; j < io->in_n[k]; j++)
				r->g0[k][j] = (float)(j % 7) * 0.25f - 0.75f;
			din_d[k] = dev_alloc(ctx, io->in_n[k]);
			lvd_buf_upload(ctx, din_d[k], r->g0[k], io->in_n[k] * sizeof(float));
		}
		e->bwd(ctx, c, in_d, out_d, dout_d, din_d);
		lvd_ctx_sync(ctx);
		for (int k = 0; k < io->n_in; k++) {
			if (!io->grad[k])
				continue;
			r->din[k] = host_alloc(io->in_n[k]);
			lvd_buf_download(ctx, r->din[k], din_d[k], io->in_n[k] * sizeof(float));
		}
	}
	for (int k = 0; k < OPS_MAX_T; k++) {
		lvd_buf_free(ctx, in_d[k]);
		lvd_buf_free(ctx, out_d[k]);
		lvd_buf_free(ctx, dout_d[k]);
		lvd_buf_free(ctx, din_d[k]);
	}
}

/* Σ_k<n_loss Σ_j dout[k][j]·out[k][j] of a forward on (CPU) host buffers in[]. */
static double fd_loss(struct lvd_ctx *ctx, const struct op_entry *e, const struct op_case *c, struct op_run *r,
		      float *const *out)
{
	for (int k = 0; k < r->io.n_out; k++)
		memset(out[k], 0, r->io.out_n[k] * sizeof(float));
	e->fwd(ctx, c, r->in, out);
	double L = 0;
	for (int k = 0; k < r->io.n_loss; k++)
		for (size_t j = 0; j < r->io.out_n[k]; j++)
			L += (double)r->dout[k][j] * out[k][j];
	return L;
}

/* ======================================================================================
 * The ops. Case layouts are given above each group.
 * ==================================================================================== */

/* ---- conv2d shapes (the entries are in ops_table_nn.h): i = {B, C, H, W, OC, KH, KW,
 * stride, pad_t, pad_l, pad_b, pad_r}
 * in: x [B,C,H,W], w [OC,C,KH,KW], b [OC]; out: y [B,OC,OH,OW] */
#define CV_DIMS(c) int B = (c)->i[0], C = (c)->i[1], H = (c)->i[2], W = (c)->i[3], OC = (c)->i[4], \
	KH = (c)->i[5], KW = (c)->i[6], S = (c)->i[7], PT = (c)->i[8], PL = (c)->i[9], PB = (c)->i[10], \
	PR = (c)->i[11], OH = (H + PT + PB - KH) / S + 1, OW = (W + PL + PR - KW) / S + 1; \
	(void)B; (void)C; (void)H; (void)W; (void)OC; (void)OH; (void)OW

static void conv_ref_plain(const int *i, const float *x, const float *w, const float *b, double *y)
{
	int B = i[0], C = i[1], H = i[2], W = i[3], OC = i[4], KH = i[5], KW = i[6], S = i[7], PT = i[8],
	    PL = i[9], PB = i[10], PR = i[11];
	int OH = (H + PT + PB - KH) / S + 1, OW = (W + PL + PR - KW) / S + 1;
	for (int n = 0; n < B; n++)
		for (int o = 0; o < OC; o++)
			for (int oy = 0; oy < OH; oy++)
				for (int ox = 0; ox < OW; ox++) {
					double s = b[o];
					for (int ci = 0; ci < C; ci++)
						for (int ky = 0; ky < KH; ky++)
							for (int kx = 0; kx < KW; kx++) {
								int iy = oy * S + ky - PT, ix = ox * S + kx - PL;
								if (iy < 0 || iy >= H || ix < 0 || ix >= W)
									continue;
								s += (double)x[((size_t)(n * C + ci) * H + iy) * W + ix] *
								     w[((size_t)(o * C + ci) * KH + ky) * KW + kx];
							}
					y[((size_t)(n * OC + o) * OH + oy) * OW + ox] = s;
				}
}

static void sh_conv(const struct op_case *c, struct op_io *io)
{
	CV_DIMS(c);
	io->n_in = 3;
	io->in_n[0] = (size_t)B * C * H * W;
	io->in_n[1] = (size_t)OC * C * KH * KW;
	io->in_n[2] = (size_t)OC;
	io->grad[0] = io->grad[1] = io->grad[2] = 1;
	io->n_out = io->n_loss = 1;
	io->out_n[0] = (size_t)B * OC * OH * OW;
}


/* ---- InstanceNorm2d: i = {B, C, HW}, f = {eps}; in: x [B,C,HW], (w [C], b [C]);
 * out: y [B,C,HW], mean [B,C], rstd [B,C] */
static void sh_inorm_common(const struct op_case *c, struct op_io *io, int affine)
{
	int B = c->i[0], C = c->i[1], HW = c->i[2];
	io->n_in = affine ? 3 : 1;
	io->in_n[0] = (size_t)B * C * HW;
	io->in_n[1] = io->in_n[2] = (size_t)C;
	io->grad[0] = 1;
	io->grad[1] = io->grad[2] = affine;
	io->lo[1] = 0.5f, io->hi[1] = 1.5f;     /* weights around 1 as initialised */
	io->n_out = 3;
	io->n_loss = 1;
	io->out_n[0] = (size_t)B * C * HW;
	io->out_n[1] = io->out_n[2] = (size_t)B * C;
}
static void sh_inorm(const struct op_case *c, struct op_io *io) { sh_inorm_common(c, io, 1); }
static void sh_inorm0(const struct op_case *c, struct op_io *io) { sh_inorm_common(c, io, 0); }
static void fw_inorm(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_instnorm_fwd(ctx, out[0], out[1], out[2], in[0], in[1], in[2], c->i[0], c->i[1], c->i[2], (float)c->f[0]);
}
static void fw_inorm0(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_instnorm_fwd(ctx, out[0], out[1], out[2], in[0], NULL, NULL, c->i[0], c->i[1], c->i[2], (float)c->f[0]);
}
static void bw_inorm(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		     float *const *dout, float *const *din)
{
	lvd_instnorm_bwd(ctx, din[0], din[1], din[2], dout[0], in[0], in[1], out[1], out[2], c->i[0], c->i[1], c->i[2]);
}
static void bw_inorm0(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		      float *const *dout, float *const *din)
{
	lvd_instnorm_bwd(ctx, din[0], NULL, NULL, dout[0], in[0], NULL, out[1], out[2], c->i[0], c->i[1], c->i[2]);
}
/* oracle: per (b, c) two-pass mean and biased variance in double; G = C gives InstanceNorm */
static void gnorm_ref(const float *x, const float *w, const float *b, int B, int C, int HW, int G, double eps,
		      double *y, double *mean, double *rstd)
{
	int CG = C / G;
	for (int n = 0; n < B; n++)
		for (int g = 0; g < G; g++) {
			const float *xg = x + ((size_t)n * C + (size_t)g * CG) * HW;
			double s = 0, v = 0;
			for (int j = 0; j < CG * HW; j++)
				s += xg[j];
			double mu = s / (CG * HW);
			for (int j = 0; j < CG * HW; j++)
				v += (xg[j] - mu) * (xg[j] - mu);
			v /= CG * HW;
			double rs = 1 / sqrt(v + eps);
			mean[n * G + g] = mu;
			rstd[n * G + g] = rs;
			for (int cc = 0; cc < CG; cc++)
				for (int p = 0; p < HW; p++) {
					int ch = g * CG + cc;
					double t = (xg[(size_t)cc * HW + p] - mu) * rs;
					y[((size_t)n * C + ch) * HW + p] = t * (w ? w[ch] : 1) + (b ? b[ch] : 0);
				}
		}
}
static void rf_inorm(const struct op_case *c, const float *const *in, double *const *out)
{
	gnorm_ref(in[0], in[1], in[2], c->i[0], c->i[1], c->i[2], c->i[1], (float)c->f[0], out[0], out[1], out[2]);
}
static void rf_inorm0(const struct op_case *c, const float *const *in, double *const *out)
{
	gnorm_ref(in[0], NULL, NULL, c->i[0], c->i[1], c->i[2], c->i[1], (float)c->f[0], out[0], out[1], out[2]);
}
static const struct op_case C_inorm[] = {
	{"B2 C3 HW20", {2, 3, 20}, {1e-5}},
	{"B1 C2 HW7 eps1e-3", {1, 2, 7}, {1e-3}},
	{"B3 C1 HW64", {3, 1, 64}, {1e-5}},
	{0},
};

/* ---- GroupNorm shapes (the entries are in ops_table_nn.h): i = {B, C, HW, G}, f = {eps};
 * in: x, w, b; out: y, mean, rstd [B, G] */
static void sh_gnorm(const struct op_case *c, struct op_io *io)
{
	int B = c->i[0], C = c->i[1], HW = c->i[2], G = c->i[3];
	io->n_in = 3;
	io->in_n[0] = (size_t)B * C * HW;
	io->in_n[1] = io->in_n[2] = (size_t)C;
	io->grad[0] = io->grad[1] = io->grad[2] = 1;
	io->lo[1] = 0.5f, io->hi[1] = 1.5f;
	io->n_out = 3;
	io->n_loss = 1;
	io->out_n[0] = (size_t)B * C * HW;
	io->out_n[1] = io->out_n[2] = (size_t)B * G;
}

/* ---- ReLU6 / LeakyReLU: i = {n}, f = {slope}; in: x [n]; out: y [n] */
static void sh_relu6(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0];
	io->grad[0] = 1;
	io->lo[0] = -2, io->hi[0] = 8;
	io->kink[0] = 0, io->kink[1] = 6;
	io->n_kink = 2;
}
static void fw_relu6(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_relu6_fwd(ctx, out[0], in[0], (size_t)c->i[0]);
}
static void bw_relu6(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		     float *const *dout, float *const *din)
{
	if (din[0])
		lvd_relu6_bwd(ctx, din[0], dout[0], in[0], (size_t)c->i[0]);
}
static void rf_relu6(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int j = 0; j < c->i[0]; j++)
		out[0][j] = fmin(fmax(in[0][j], 0.0), 6.0);
}
static void sh_leaky(const struct op_case *c, struct op_io *io)
{
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = io->out_n[0] = (size_t)c->i[0];
	io->grad[0] = 1;
	io->lo[0] = -3, io->hi[0] = 3;
	io->kink[0] = 0;
	io->n_kink = 1;
}
static void fw_leaky(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	lvd_leaky_relu_fwd(ctx, out[0], in[0], (size_t)c->i[0], (float)c->f[0]);
}
static void bw_leaky(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		     float *const *dout, float *const *din)
{
	if (din[0])
		lvd_leaky_relu_bwd(ctx, din[0], dout[0], in[0], (size_t)c->i[0], (float)c->f[0]);
}
static void rf_leaky(const struct op_case *c, const float *const *in, double *const *out)
{
	for (int j = 0; j < c->i[0]; j++)
		out[0][j] = in[0][j] > 0 ? in[0][j] : (float)c->f[0] * (double)in[0][j];
}
static const struct op_case C_relu6[] = {{"n257", {257}, {0}}, {"n3", {3}, {0}}, {0}};
static const struct op_case C_leaky[] = {{"n200 slope0.01", {200}, {0.01}}, {"n31 slope0.2", {31}, {0.2}}, {0}};

/* ---- resampling: i = {B, C, H, W, OH, OW, align_corners}, f = {ext_h, step_h, ext_w,
 * step_w} (areaw); in: x [B,C,H,W]; out: y [B,C,OH,OW] */
#define RS_DIMS(c) int B = (c)->i[0], C = (c)->i[1], H = (c)->i[2], W = (c)->i[3], OH = (c)->i[4], OW = (c)->i[5]
static void sh_rs(const struct op_case *c, struct op_io *io)
{
	RS_DIMS(c);
	io->n_in = io->n_out = io->n_loss = 1;
	io->in_n[0] = (size_t)B * C * H * W;
	io->out_n[0] = (size_t)B * C * OH * OW;
	io->grad[0] = 1;
}
static void fw_area(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	RS_DIMS(c);
	lvd_resample_area_fwd(ctx, out[0], in[0], B, C, H, W, OH, OW);
}
static void bw_area(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		    float *const *dout, float *const *din)
{
	RS_DIMS(c);
	if (din[0])
		lvd_resample_area_bwd(ctx, din[0], dout[0], B, C, H, W, OH, OW);
}
/* oracle: PyTorch's adaptive pooling window [floor(o·in/out), ceil((o+1)·in/out)) in real arithmetic */
static void rf_area(const struct op_case *c, const float *const *in, double *const *out)
{
	RS_DIMS(c);
	for (int p = 0; p < B * C; p++)
		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++) {
				int y0 = (int)floor((double)oy * H / OH), y1 = (int)ceil((double)(oy + 1) * H / OH);
				int x0 = (int)floor((double)ox * W / OW), x1 = (int)ceil((double)(ox + 1) * W / OW);
				double s = 0;
				int n = 0;
				for (int iy = y0; iy < y1; iy++)
					for (int ix = x0; ix < x1; ix++, n++)
						s += in[0][((size_t)p * H + iy) * W + ix];
				out[0][((size_t)p * OH + oy) * OW + ox] = s / n;
			}
}
static const struct op_case C_area[] = {
	{"B1 C2 5x7->3x4", {1, 2, 5, 7, 3, 4}, {0}},
	{"B2 C1 3x4->5x7 (up)", {2, 1, 3, 4, 5, 7}, {0}},
	{"B1 C3 8x8->4x4", {1, 3, 8, 8, 4, 4}, {0}},
	{"B1 C1 6x5->6x5", {1, 1, 6, 5, 6, 5}, {0}},
	{"B2 C2 4x6->1x1", {2, 2, 4, 6, 1, 1}, {0}},
	{0},
};

static void fw_areaw(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	RS_DIMS(c);
	lvd_resample_areaw_fwd(ctx, out[0], in[0], B, C, H, W, OH, OW, c->f[0], c->f[1], c->f[2], c->f[3]);
}
static void bw_areaw(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		     float *const *dout, float *const *din)
{
	RS_DIMS(c);
	if (din[0])
		lvd_resample_areaw_bwd(ctx, din[0], dout[0], B, C, H, W, OH, OW, c->f[0], c->f[1], c->f[2], c->f[3]);
}
/* oracle: the 2-D formula of geometry.h directly, t = Σ |F ∩ cell|·s / Σ |F ∩ cell|, with
 * rectangle intersections in double and no separable pass */
static double overlap(double a0, double a1, double b0, double b1)
{
	double lo = fmax(a0, b0), hi = fmin(a1, b1);
	return hi > lo ? hi - lo : 0;
}
static void rf_areaw(const struct op_case *c, const float *const *in, double *const *out)
{
	RS_DIMS(c);
	double eh = c->f[0], sh = c->f[1], ew = c->f[2], sw = c->f[3];
	for (int p = 0; p < B * C; p++)
		for (int y = 0; y < OH; y++)
			for (int x = 0; x < OW; x++) {
				double fy0 = y * sh, fy1 = fmin((y + 1) * sh, eh), fx0 = x * sw, fx1 = fmin((x + 1) * sw, ew);
				double num = 0, den = 0;
				for (int i = 0; i < H; i++)
					for (int j = 0; j < W; j++) {
						double a = overlap(fy0, fy1, eh * i / H, eh * (i + 1) / H) *
							   overlap(fx0, fx1, ew * j / W, ew * (j + 1) / W);
						num += a * in[0][((size_t)p * H + i) * W + j];
						den += a;
					}
				out[0][((size_t)p * OH + y) * OW + x] = den > 0 ? num / den : 0;
			}
}
static const struct op_case C_areaw[] = {
	/* canvas mode: extent 40×30 px on a 6×6 canvas of 8 px patches (rows 5, cols 4 valid) */
	{"B1 C2 4x5->6x6 canvas", {1, 2, 4, 5, 6, 6}, {40, 8, 30, 8}},
	/* --grid 4 over a 37×23 px image */
	{"B2 C1 5x3->4x4 grid", {2, 1, 5, 3, 4, 4}, {37, 37.0 / 4, 23, 23.0 / 4}},
	/* SD 64×64 map onto a 40×40 patch canvas, 3:2 image (560×373 px) */
	{"B1 C1 8x8->10x10 canvas", {1, 1, 8, 8, 10, 10}, {373, 56, 560, 56}},
	{0},
};

static void fw_bil(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	RS_DIMS(c);
	lvd_resample_bilinear_fwd(ctx, out[0], in[0], B, C, H, W, OH, OW, c->i[6]);
}
static void bw_bil(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		   float *const *dout, float *const *din)
{
	RS_DIMS(c);
	if (din[0])
		lvd_resample_bilinear_bwd(ctx, din[0], dout[0], B, C, H, W, OH, OW, c->i[6]);
}
/* oracle: torch's index rule written out in double, one output pixel at a time */
static void bil_src(int o, int in, int out, int ac, int *i0, int *i1, double *l)
{
	double s = ac ? (out > 1 ? (double)o * (in - 1) / (out - 1) : 0) : fmax(((double)o + 0.5) * in / out - 0.5, 0);
	*i0 = (int)floor(s);
	if (*i0 > in - 1)
		*i0 = in - 1;
	*i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
	*l = s - *i0;
}
static void rf_bil(const struct op_case *c, const float *const *in, double *const *out)
{
	RS_DIMS(c);
	for (int p = 0; p < B * C; p++)
		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++) {
				int y0, y1, x0, x1;
				double ly, lx;
				bil_src(oy, H, OH, c->i[6], &y0, &y1, &ly);
				bil_src(ox, W, OW, c->i[6], &x0, &x1, &lx);
				const float *s = in[0] + (size_t)p * H * W;
				out[0][((size_t)p * OH + oy) * OW + ox] =
					(1 - ly) * ((1 - lx) * s[y0 * W + x0] + lx * s[y0 * W + x1]) +
					ly * ((1 - lx) * s[y1 * W + x0] + lx * s[y1 * W + x1]);
			}
}
static const struct op_case C_bil0[] = {
	{"B1 C2 3x4->7x5", {1, 2, 3, 4, 7, 5, 0}, {0}},
	{"B2 C1 6x6->4x3 (down)", {2, 1, 6, 6, 4, 3, 0}, {0}},
	{"B1 C1 1x3->2x5", {1, 1, 1, 3, 2, 5, 0}, {0}},
	{"B1 C1 5x5->5x5", {1, 1, 5, 5, 5, 5, 0}, {0}},
	{0},
};
static const struct op_case C_bil1[] = {
	{"B1 C2 3x4->7x5", {1, 2, 3, 4, 7, 5, 1}, {0}},
	{"B2 C1 6x6->4x3 (down)", {2, 1, 6, 6, 4, 3, 1}, {0}},
	{"B1 C1 4x3->1x2", {1, 1, 4, 3, 1, 2, 1}, {0}},
	{"B1 C1 5x5->5x5", {1, 1, 5, 5, 5, 5, 1}, {0}},
	{0},
};

static void fw_near(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out)
{
	RS_DIMS(c);
	(void)OH, (void)OW;
	lvd_resample_nearest2x_fwd(ctx, out[0], in[0], B, C, H, W);
}
static void bw_near(struct lvd_ctx *ctx, const struct op_case *c, float *const *in, float *const *out,
		    float *const *dout, float *const *din)
{
	RS_DIMS(c);
	(void)OH, (void)OW;
	if (din[0])
		lvd_resample_nearest2x_bwd(ctx, din[0], dout[0], B, C, H, W);
}
static void rf_near(const struct op_case *c, const float *const *in, double *const *out)
{
	RS_DIMS(c);
	for (int p = 0; p < B * C; p++)
		for (int oy = 0; oy < OH; oy++)
			for (int ox = 0; ox < OW; ox++)
				out[0][((size_t)p * OH + oy) * OW + ox] = in[0][((size_t)p * H + oy / 2) * W + ox / 2];
}
static const struct op_case C_near[] = {
	{"B2 C3 3x5", {2, 3, 3, 5, 6, 10}, {0}},
	{"B1 C1 1x1", {1, 1, 1, 1, 2, 2}, {0}},
	{0},
};

/* ======================================================================================
 * The table. One row per op; append phase-2 families here (see the top of the file).
 * ==================================================================================== */

#define OP(name, fns, cases, shape, fwd, bwd, ref, linear, fast, cuda) \
	name, fns, cases, shape, fwd, bwd, ref, linear, fast, cuda

/* shared reasons */
#define WHY_SAME "no fast path: the same code, its planes/groups split over 2-3 threads; must agree to the bit"
#define WHY_NOCUDA "no CUDA twin yet"
#define WHY_CUDA_INORM "the GroupNorm twin with G = C: double statistics in another order, the affine as " \
	"x·a + (b - mean·a): a few ulp of |y| <= ~5"
#define WHY_FD_LIN "linear in each input: central differences are exact up to fp32 rounding of the " \
	"forward (~6e-8·Σ|dout·out| / h, h = 0.5)"
#define WHY_FD_PWL "piecewise linear, inputs kept 0.05 from the kinks and h = 0.01: exact up to fp32 " \
	"rounding of the forward (~6e-8·Σ|out| / h)"
#define WHY_FD_NORM "smooth: h = 1e-2 gives truncation O(h²·rstd³) ~ 1e-4 plus fp32 rounding of " \
	"the forward / h ~ 1e-5 relative to the gradient scale"

#include "ops_table_nn.h"

static const struct op_entry op_table[] = {
	{OP("instnorm", "lvd_instnorm_fwd/_bwd (affine)", C_inorm, sh_inorm, fw_inorm, bw_inorm, rf_inorm, 0, 0, 1),
	 2e-6, "double statistics in both; y rounds (x - mean)·(w·rstd) + b in fp32 (~4 ulp of |y| <= ~5)",
	 0, WHY_SAME, 2e-6, WHY_CUDA_INORM, 1e-2, 2e-3, WHY_FD_NORM},
	{OP("instnorm_noaffine", "lvd_instnorm_fwd/_bwd (w = b = NULL)", C_inorm, sh_inorm0, fw_inorm0, bw_inorm0,
	    rf_inorm0, 0, 0, 1),
	 2e-6, "double statistics in both; y rounds (x - mean)·rstd in fp32",
	 0, WHY_SAME, 2e-6, WHY_CUDA_INORM, 1e-2, 2e-3, WHY_FD_NORM},
	{OP("relu6", "lvd_relu6_fwd/_bwd", C_relu6, sh_relu6, fw_relu6, bw_relu6, rf_relu6, 0, 0, 0),
	 0, "min/max are exact", 0, WHY_SAME, 0, WHY_NOCUDA, 1e-2, 1e-4, WHY_FD_PWL},
	{OP("leaky_relu", "lvd_leaky_relu_fwd/_bwd", C_leaky, sh_leaky, fw_leaky, bw_leaky, rf_leaky, 0, 0, 0),
	 1e-7, "one fp32 rounding of slope·x (6e-8 relative) vs the double oracle", 0, WHY_SAME, 0, WHY_NOCUDA, 1e-2, 1e-4,
	 WHY_FD_PWL},
	{OP("resample_area", "lvd_resample_area_fwd/_bwd", C_area, sh_rs, fw_area, bw_area, rf_area, 1, 0, 0),
	 1e-7, "double sums in both, one fp32 rounding of the mean", 0, WHY_SAME, 0, WHY_NOCUDA, 0.5, 2e-5,
	 WHY_FD_LIN},
	{OP("resample_areaw", "lvd_resample_areaw_fwd/_bwd", C_areaw, sh_rs, fw_areaw, bw_areaw, rf_areaw, 1, 0, 0),
	 3e-7, "separable: the row pass rounds to fp32 before the column pass (2 roundings vs none)",
	 0, WHY_SAME, 0, "twin in resample_train.cu (bit-identical), checked by test_cuda_ops (cases_mllama.h), "
	 "not by this table", 0.5, 2e-5, WHY_FD_LIN},
	{OP("resample_bilinear", "lvd_resample_bilinear_fwd/_bwd (align_corners=False)", C_bil0, sh_rs, fw_bil,
	    bw_bil, rf_bil, 1, 0, 0),
	 1e-6, "op computes source index and weights in fp32 as torch does (~1e-7 relative), the oracle in double",
	 0, WHY_SAME, 0, WHY_NOCUDA, 0.5, 2e-5, WHY_FD_LIN},
	{OP("resample_bilinear_ac", "lvd_resample_bilinear_fwd/_bwd (align_corners=True)", C_bil1, sh_rs, fw_bil,
	    bw_bil, rf_bil, 1, 0, 0),
	 1e-6, "op computes source index and weights in fp32 as torch does (~1e-7 relative), the oracle in double",
	 0, WHY_SAME, 0, WHY_NOCUDA, 0.5, 2e-5, WHY_FD_LIN},
	{OP("resample_nearest2x", "lvd_resample_nearest2x_fwd/_bwd", C_near, sh_rs, fw_near, bw_near, rf_near, 1,
	    0, 0),
	 0, "copies", 0, WHY_SAME, 0, WHY_NOCUDA, 0.5, 2e-5, WHY_FD_LIN},
	/* the forwards alone, for their CUDA twins (no backward twin yet) */
	{OP("resample_area_fwd", "lvd_resample_area_fwd", C_area, sh_rs, fw_area, NULL, rf_area, 0, 0, 1),
	 1e-7, "double sums in both, one fp32 rounding of the mean", 0, WHY_SAME,
	 1e-7, "the same double sums in the same order, one fp32 rounding", 0, 0, WHY_FD_NOTHING},
	{OP("resample_bilinear_fwd", "lvd_resample_bilinear_fwd (align_corners=False)", C_bil0, sh_rs, fw_bil, NULL,
	    rf_bil, 0, 0, 1),
	 1e-6, "op computes source index and weights in fp32 as torch does (~1e-7 relative), the oracle in double",
	 0, WHY_SAME, 1e-7, "the same fp32 operations in the same order, no FMA contraction: expected bit-identical",
	 0, 0, WHY_FD_NOTHING},
	{OP("resample_bilinear_ac_fwd", "lvd_resample_bilinear_fwd (align_corners=True)", C_bil1, sh_rs, fw_bil, NULL,
	    rf_bil, 0, 0, 1),
	 1e-6, "op computes source index and weights in fp32 as torch does (~1e-7 relative), the oracle in double",
	 0, WHY_SAME, 1e-7, "the same fp32 operations in the same order, no FMA contraction: expected bit-identical",
	 0, 0, WHY_FD_NOTHING},
	{OP("resample_nearest2x_fwd", "lvd_resample_nearest2x_fwd", C_near, sh_rs, fw_near, NULL, rf_near, 0, 0, 1),
	 0, "copies", 0, WHY_SAME, 0, "copies", 0, 0, WHY_FD_NOTHING},
};
#define N_OPS (N_OPS_NN + (int)(sizeof op_table / sizeof op_table[0]))

/* Entry t of the whole table: the nn rows (ops_table_nn.h), then the rows above. */
static const struct op_entry *op_at(int t)
{
	return t < N_OPS_NN ? &op_table_nn[t] : &op_table[t - N_OPS_NN];
}

/* ======================================================================================
 * Cases
 * ==================================================================================== */

/* (a) plain CPU forward vs the oracle, every output */
static void test_table_oracle(void)
{
	struct lvd_ctx *ctx = make_ctx(LVD_BACKEND_CPU, 1, 1);
	REQUIRE(ctx);
	int n = 0;
	for (int t = 0; t < N_OPS; t++) {
		const struct op_entry *e = op_at(t);
		if (!e->ref)
			continue;
		for (const struct op_case *c = e->cases; c->name; c++) {
			struct op_run r;
			op_run_on(ctx, e, c, 0, &r);
			double *want[OPS_MAX_T] = {0};
			for (int k = 0; k < r.io.n_out; k++)
				want[k] = calloc(r.io.out_n[k], sizeof(double));
			e->ref(c, (const float *const *)r.in, want);
			for (int k = 0; k < r.io.n_out; k++) {
				char what[32];
				snprintf(what, sizeof what, "out[%d] vs oracle", k);
				close_fd(what, e->name, c->name, r.out[k], want[k], r.io.out_n[k], e->ref_tol, e->ref_why);
				free(want[k]);
			}
			run_free(&r);
			n++;
		}
	}
	CHECK(n > 0);
	lvd_ctx_destroy(ctx);
}

/* (b) and (c): another context against the plain one, forward outputs and gradients */
static void compare_backends(struct lvd_ctx *plain, struct lvd_ctx *other, const struct op_entry *e, int cuda)
{
	double tol = cuda ? e->cuda_tol : e->fast_tol;
	const char *why = cuda ? e->cuda_why : e->fast_why;
	for (const struct op_case *c = e->cases; c->name; c++) {
		struct op_run a, b;
		op_run_on(plain, e, c, 1, &a);
		op_run_on(other, e, c, 1, &b);
		for (int k = 0; k < a.io.n_out; k++) {
			char what[48];
			snprintf(what, sizeof what, "%s out[%d]", cuda ? "cuda" : "fast", k);
			close_ff(what, e->name, c->name, b.out[k], a.out[k], a.io.out_n[k], tol, why);
		}
		for (int k = 0; k < a.io.n_in; k++)
			if (a.din[k]) {
				char what[48];
				snprintf(what, sizeof what, "%s d in[%d]", cuda ? "cuda" : "fast", k);
				close_ff(what, e->name, c->name, b.din[k], a.din[k], a.io.in_n[k], tol, why);
			}
		run_free(&a);
		run_free(&b);
	}
}

static void test_table_fast(void)
{
	struct lvd_ctx *plain = make_ctx(LVD_BACKEND_CPU, 1, 1);
	REQUIRE(plain);
	CHECK(plain->cpu_fast == 0);
	static const int threads[] = {2, 3};   /* even and ragged splits */
	for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
		struct lvd_ctx *fast = make_ctx(LVD_BACKEND_CPU, threads[k], 0);
		REQUIRE(fast);
		CHECK(fast->cpu_fast == 1);
		for (int t = 0; t < N_OPS; t++)
			compare_backends(plain, fast, op_at(t), 0);
		lvd_ctx_destroy(fast);
	}
	lvd_ctx_destroy(plain);
}

static void test_table_cuda(void)
{
	int ndev = lvd_cuda_device_count();
	if (ndev <= 0)
		SKIP("cuda: no GPU (lvd_cuda_device_count() = 0, %s build)",
		     LVD_HAVE_CUDA ? "CUDA" : "CPU-only");
	int twins = 0;
	for (int t = 0; t < N_OPS; t++)
		twins += op_at(t)->cuda;
	if (!twins)
		SKIP("cuda: %d GPU(s), but no table entry has a CUDA twin yet", ndev);
	struct lvd_ctx *plain = make_ctx(LVD_BACKEND_CPU, 1, 1), *gpu = make_ctx(LVD_BACKEND_CUDA, 1, 0);
	REQUIRE(plain && gpu);
	for (int t = 0; t < N_OPS; t++)
		if (op_at(t)->cuda)
			compare_backends(plain, gpu, op_at(t), 1);
	lvd_ctx_destroy(plain);
	lvd_ctx_destroy(gpu);
}

/* Backward: (din - g0) against central differences of L = Σ dout·out over up to 24
 * elements of every differentiated input (always the first and the last). Also checks
 * accumulation: din started from g0 != 0. */
static void test_table_fd(void)
{
	struct lvd_ctx *ctx = make_ctx(LVD_BACKEND_CPU, 1, 1);
	REQUIRE(ctx);
	int n = 0;
	for (int t = 0; t < N_OPS; t++) {
		const struct op_entry *e = op_at(t);
		if (!e->bwd)
			continue;
		for (const struct op_case *c = e->cases; c->name; c++) {
			struct op_run r;
			op_run_on(ctx, e, c, 1, &r);
			float *out[OPS_MAX_T] = {0};
			for (int k = 0; k < r.io.n_out; k++)
				out[k] = host_alloc(r.io.out_n[k]);
			for (int k = 0; k < r.io.n_in; k++) {
				if (!r.io.grad[k])
					continue;
				size_t N = r.io.in_n[k], m = N < 24 ? N : 24;
				float *an = host_alloc(m);
				double *fd = calloc(m, sizeof *fd);
				for (size_t q = 0; q < m; q++) {
					size_t j = q == 0 ? 0 : q == 1 ? N - 1 : N <= 24 ? q : (size_t)(urand() * N);
					float x0 = r.in[k][j];
					float xp = x0 + (float)e->fd_h, xm = x0 - (float)e->fd_h;
					r.in[k][j] = xp;
					double Lp = fd_loss(ctx, e, c, &r, out);
					r.in[k][j] = xm;
					double Lm = fd_loss(ctx, e, c, &r, out);
					r.in[k][j] = x0;
					fd[q] = (Lp - Lm) / ((double)xp - xm);
					an[q] = r.din[k][j] - r.g0[k][j];
				}
				char what[48];
				snprintf(what, sizeof what, "d in[%d] vs finite differences", k);
				close_fd(what, e->name, c->name, an, fd, m, e->fd_tol, e->fd_why);
				free(an);
				free(fd);
			}
			for (int k = 0; k < r.io.n_out; k++)
				free(out[k]);
			run_free(&r);
			n++;
		}
	}
	CHECK(n > 0);
	lvd_ctx_destroy(ctx);
}

/* NULL gradient pointers are skipped and do not change the others: bwd with only
 * din[k] set (starting from 0) equals the full run's din[k] - g0 (same arithmetic). */
static void test_table_null_grads(void)
{
	struct lvd_ctx *ctx = make_ctx(LVD_BACKEND_CPU, 1, 1);
	REQUIRE(ctx);
	for (int t = 0; t < N_OPS; t++) {
		const struct op_entry *e = op_at(t);
		if (!e->bwd)
			continue;
		for (const struct op_case *c = e->cases; c->name; c++) {
			struct op_run r;
			op_run_on(ctx, e, c, 1, &r);
			for (int k = 0; k < r.io.n_in; k++) {
				if (!r.io.grad[k])
					continue;
				float *din[OPS_MAX_T] = {0};
				din[k] = host_alloc(r.io.in_n[k]);
				e->bwd(ctx, c, r.in, r.out, r.dout, din);
				float *want = host_alloc(r.io.in_n[k]);
				for (size_t j = 0; j < r.io.in_n[k]; j++)
					want[j] = r.din[k][j] - r.g0[k][j];
				char what[48];
				snprintf(what, sizeof what, "only d in[%d] requested", k);
				close_ff(what, e->name, c->name, din[k], want, r.io.in_n[k], 1e-6,
					 "same arithmetic; g0 + g - g0 rounds once");
				free(din[k]);
				free(want);
			}
			/* all NULL: nothing to write, must not crash */
			float *none[OPS_MAX_T] = {0};
			e->bwd(ctx, c, r.in, r.out, r.dout, none);
			run_free(&r);
		}
	}
	lvd_ctx_destroy(ctx);
}

/* Linear operators: <A x, y> = <x, Aᵀ y> with random x, y. */
static void test_table_adjoint(void)
{
	struct lvd_ctx *ctx = make_ctx(LVD_BACKEND_CPU, 1, 1);
	REQUIRE(ctx);
	int n = 0;
	for (int t = 0; t < N_OPS; t++) {
		const struct op_entry *e = op_at(t);
		if (!e->linear)
			continue;
		for (const struct op_case *c = e->cases; c->name; c++) {
			struct op_run r;
			op_run_on(ctx, e, c, 1, &r);
			double lhs = 0, rhs = 0, mag = 0;
			for (size_t j = 0; j < r.io.out_n[0]; j++) {
				lhs += (double)r.out[0][j] * r.dout[0][j];
				mag += fabs((double)r.out[0][j] * r.dout[0][j]);
			}
			for (size_t j = 0; j < r.io.in_n[0]; j++) {
				double g = (double)r.din[0][j] - r.g0[0][j];
				rhs += (double)r.in[0][j] * g;
				mag += fabs((double)r.in[0][j] * g);
			}
			/* both sides are sums of fp32-rounded terms: ~1e-7 of Σ|terms| each */
			if (!(fabs(lhs - rhs) <= 1e-6 * (mag + 1e-30))) {
				lvd_t_fail_count++;
				fprintf(stderr, "  FAIL %s [%s]: <Ax,y> = %.10g, <x,A^T y> = %.10g (|diff| %.3g > %.3g)\n",
					e->name, c->name, lhs, rhs, fabs(lhs - rhs), 1e-6 * mag);
			}
			run_free(&r);
			n++;
		}
	}
	CHECK(n > 0);
	lvd_ctx_destroy(ctx);
}

/* ---- op-specific checks ------------------------------------------------------------ */

/* conv2d backward on shapes whose im2col slab exceeds the 4 M-float block (several row
 * blocks) and on Aligner-like shapes, against direct-loop formulas in double:
 *   dx[c,iy,ix] = Σ dout[o,oy,ox]·w[o,c,ky,kx], dw[o,c,ky,kx] = Σ dout·x, db[o] = Σ dout. */
static void conv_bwd_oracle_case(const int *i, double tol)
{
	int B = i[0], C = i[1], H = i[2], W = i[3], OC = i[4], KH = i[5], KW = i[6], S = i[7], PT = i[8], PL = i[9],
	    PB = i[10], PR = i[11];
	int OH = (H + PT + PB - KH) / S + 1, OW = (W + PL + PR - KW) / S + 1;
	size_t nx = (size_t)B * C * H * W, nw = (size_t)OC * C * KH * KW, ny = (size_t)B * OC * OH * OW;
	float *x = host_alloc(nx), *w = host_alloc(nw), *dy = host_alloc(ny);
	float *dx = host_alloc(nx), *dw = host_alloc(nw), *db = host_alloc(OC);
	double *rx = calloc(nx, sizeof *rx), *rw = calloc(nw, sizeof *rw), *rb = calloc(OC, sizeof *rb);
	rng_s = 99;
	for (size_t j = 0; j < nx; j++)
		x[j] = (float)(2 * urand() - 1);
	for (size_t j = 0; j < nw; j++)
		w[j] = (float)(2 * urand() - 1);
	for (size_t j = 0; j < ny; j++)
		dy[j] = (float)(2 * urand() - 1);
	for (int n = 0; n < B; n++)
		for (int o = 0; o < OC; o++)
			for (int oy = 0; oy < OH; oy++)
				for (int ox = 0; ox < OW; ox++) {
					double g = dy[((size_t)(n * OC + o) * OH + oy) * OW + ox];
					rb[o] += g;
					for (int ci = 0; ci < C; ci++)
						for (int ky = 0; ky < KH; ky++)
							for (int kx = 0; kx < KW; kx++) {
								int iy = oy * S + ky - PT, ix = ox * S + kx - PL;
								if (iy < 0 || iy >= H || ix < 0 || ix >= W)
									continue;
								size_t xi = ((size_t)(n * C + ci) * H + iy) * W + ix;
								size_t wi = ((size_t)(o * C + ci) * KH + ky) * KW + kx;
								rx[xi] += g * w[wi];
								rw[wi] += g * x[xi];
							}
				}
	/* the plain path at 1 thread, then the fast path (fixed image groups) at 1, 2 and 3
	 * threads: each against the oracle, and the fast ones bit-identical to each other */
	static const int run_threads[4] = {1, 1, 2, 3}, run_plain[4] = {1, 0, 0, 0};
	float *fx = host_alloc(nx), *fw = host_alloc(nw);
	for (int r = 0; r < 4; r++) {
		memset(dx, 0, nx * sizeof *dx), memset(dw, 0, nw * sizeof *dw), memset(db, 0, OC * sizeof *db);
		struct lvd_ctx *ctx = make_ctx(LVD_BACKEND_CPU, run_threads[r], run_plain[r]);
		REQUIRE(ctx);
		lvd_conv2d_bwd(ctx, dx, dw, db, dy, x, w, B, C, H, W, OC, KH, KW, S, PT, PL, PB, PR);
		char cs[96];
		snprintf(cs, sizeof cs, "B%d C%d %dx%d OC%d %dx%d s%d, %s %d thread(s)", B, C, H, W, OC, KH, KW, S,
			 run_plain[r] ? "plain" : "fast", run_threads[r]);
		const char *why = "fp32 GEMM sums of up to ~600 products of [-1,1] values vs double";
		close_fd("dx", "conv2d_bwd", cs, dx, rx, nx, tol, why);
		close_fd("dw", "conv2d_bwd", cs, dw, rw, nw, tol, why);
		close_fd("db", "conv2d_bwd", cs, db, rb, OC, tol, why);
		CHECK(lvd_ctx_ws_peak(ctx) > 0);
		lvd_ctx_destroy(ctx);
		if (r == 1) {
			memcpy(fx, dx, nx * sizeof *dx);
			memcpy(fw, dw, nw * sizeof *dw);
		} else if (r > 1) {
			CHECKF(memcmp(fx, dx, nx * sizeof *dx) == 0 && memcmp(fw, dw, nw * sizeof *dw) == 0,
			       "%s: fast path at %d threads not bit-identical to 1 thread", cs, run_threads[r]);
		}
	}
	free(fx), free(fw);
	free(x), free(w), free(dy), free(dx), free(dw), free(db), free(rx), free(rw), free(rb);
}

static void test_conv_bwd_blocks(void)
{
	/* C·9·OW = 64·9·128 = 73728 floats per output row: 56 rows per block, 3 blocks */
	static const int big[12] = {1, 64, 130, 128, 2, 3, 3, 1, 1, 1, 1, 1};
	conv_bwd_oracle_case(big, 2e-6);
	/* Aligner-like: several maps, 3×3 pad 1 then 1×1 */
	static const int al3[12] = {4, 8, 16, 12, 16, 3, 3, 1, 1, 1, 1, 1};
	static const int al1[12] = {4, 16, 16, 12, 1, 1, 1, 1, 0, 0, 0, 0};
	conv_bwd_oracle_case(al3, 2e-6);
	conv_bwd_oracle_case(al1, 2e-6);
	/* more images than the fast path's 16 groups (uneven groups of 1 and 2 images) */
	static const int al20[12] = {21, 6, 9, 7, 5, 3, 3, 1, 1, 1, 1, 1};
	conv_bwd_oracle_case(al20, 2e-6);
}

/* lvd_resample_areaw reproduces lvd_geom_resample (lvd-pack) bit for bit, canvas mode and
 * --grid, on real layouts. */
static void areaw_vs_geom(int img_h, int img_w, int gh, int gw, int grid)
{
	struct lvd_geom_cfg cfg;
	struct lvd_geom g;
	struct lvd_error e = {0};
	lvd_geom_cfg_default(&cfg);
	REQUIRE(lvd_geom_layout(&g, &cfg, img_h, img_w, &e) == 0);
	struct lvd_geom_resampler rs;
	REQUIRE(lvd_geom_resampler_init(&rs, &g, gh, gw, grid, &e) == 0);
	size_t ns = (size_t)gh * gw, nd = (size_t)rs.dst_h * rs.dst_w;
	float *src = host_alloc(2 * ns), *want = host_alloc(2 * nd), *got = host_alloc(2 * nd);
	rng_s = 7;
	for (size_t j = 0; j < 2 * ns; j++)
		src[j] = (float)urand();
	lvd_geom_resample(&rs, want, src);
	lvd_geom_resample(&rs, want + nd, src + ns);
	double eh = g.new_h, ew = g.new_w, sh, sw;
	if (grid > 0) {
		sh = (double)g.new_h / grid;
		sw = (double)g.new_w / grid;
	} else {
		sh = sw = (double)g.canvas_h / g.grid_h;
	}
	struct lvd_ctx *ctx = make_ctx(LVD_BACKEND_CPU, 1, 1);
	REQUIRE(ctx);
	lvd_resample_areaw_fwd(ctx, got, src, 2, 1, gh, gw, rs.dst_h, rs.dst_w, eh, sh, ew, sw);
	int same = memcmp(got, want, 2 * nd * sizeof(float)) == 0;
	CHECKF(same, "%dx%d image, %dx%d map, grid %d: not bit-identical to lvd_geom_resample", img_w, img_h, gw,
	       gh, grid);
	lvd_ctx_destroy(ctx);
	lvd_geom_resampler_free(&rs);
	free(src), free(want), free(got);
}

static void test_areaw_matches_geom(void)
{
	areaw_vs_geom(480, 640, 64, 64, 0);
	areaw_vs_geom(1000, 300, 64, 48, 0);
	areaw_vs_geom(560, 560, 32, 32, 0);
	areaw_vs_geom(480, 640, 64, 64, 24);
	areaw_vs_geom(333, 777, 48, 64, 7);
}

/* Values PyTorch prints, worked by hand from its definitions (no torch at test time). */
static void test_torch_values(void)
{
	struct lvd_ctx *ctx = make_ctx(LVD_BACKEND_CPU, 1, 1);
	REQUIRE(ctx);
	float out[16];
	/* F.interpolate(torch.arange(5.).view(1,1,1,5), size=(1,3), mode='area') -> [0.5, 2, 3.5]
	 * (windows [0,2), [1,4), [3,5)) */
	const float r5[5] = {0, 1, 2, 3, 4};
	lvd_resample_area_fwd(ctx, out, r5, 1, 1, 1, 5, 1, 3);
	CHECK(out[0] == 0.5f && out[1] == 2.0f && out[2] == 3.5f);
	/* F.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode='bilinear',
	 * align_corners=False) -> [0, 0.25, 0.75, 1] */
	const float r2[2] = {0, 1};
	lvd_resample_bilinear_fwd(ctx, out, r2, 1, 1, 1, 2, 1, 4, 0);
	CHECK(out[0] == 0.0f && out[1] == 0.25f && out[2] == 0.75f && out[3] == 1.0f);
	/* align_corners=True, size 4: [0, 1/3, 2/3, 1] */
	lvd_resample_bilinear_fwd(ctx, out, r2, 1, 1, 1, 2, 1, 4, 1);
	CHECK_NEAR(out[1], 1.0 / 3, 1e-7);
	CHECK_NEAR(out[2], 2.0 / 3, 1e-7);
	CHECK(out[0] == 0.0f && out[3] == 1.0f);
	/* downsampling 4 -> 2, align_corners=False: src = 0.5, 2.5 -> [0.5, 2.5] of arange(4) */
	const float r4[4] = {0, 1, 2, 3};
	lvd_resample_bilinear_fwd(ctx, out, r4, 1, 1, 1, 4, 1, 2, 0);
	CHECK(out[0] == 0.5f && out[1] == 2.5f);
	/* relu6 / leaky_relu gradients at the kinks (hardtanh_backward, leaky_relu_backward):
	 * relu6'(0) = relu6'(6) = 0, leaky'(0) = slope */
	const float k[3] = {0.0f, 6.0f, 3.0f}, ones[3] = {1, 1, 1};
	float g[3] = {0, 0, 0};
	lvd_relu6_bwd(ctx, g, ones, k, 3);
	CHECK(g[0] == 0 && g[1] == 0 && g[2] == 1);
	g[0] = 0;
	lvd_leaky_relu_bwd(ctx, g, ones, k, 1, 0.25f);
	CHECK(g[0] == 0.25f);
	/* InstanceNorm2d of [1, 2, 3, 4] (biased var 1.25, eps 0): ±1.3416408, ±0.4472136 */
	const float x4[4] = {1, 2, 3, 4};
	float mean, rstd;
	lvd_instnorm_fwd(ctx, out, &mean, &rstd, x4, NULL, NULL, 1, 1, 4, 0.0f);
	CHECK_NEAR(out[0], -1.3416408, 1e-6);
	CHECK_NEAR(out[2], 0.4472136, 1e-6);
	CHECK_NEAR(mean, 2.5, 0);
	CHECK_NEAR(rstd, 1 / sqrt(1.25), 1e-7);
	lvd_ctx_destroy(ctx);
}

/* Where each entry's code lives, by the prefix of its first function: the family, its
 * plain reference (the table's oracle is the rf_ function beside the entry), the fast
 * path and the CUDA twin (shown when the entry has them), and the other tests that
 * check the op beyond this table. */
static const struct op_home {
	const char *prefix, *family, *plain, *fast, *more;
} op_homes[] = {
	{"lvd_gemm", "gemm", "gemm_cpu.c", "gemm_cpu.c (pool split)", "test_nn_ops, test_cuda_ops"},
	{"lvd_linear", "gemm", "gemm_cpu.c", "gemm_cpu.c (pool split)", "test_nn_ops, test_cuda_ops"},
	{"lvd_softmax", "softmax", "softmax_cpu.c", "softmax_fast.c", "test_nn_ops, test_train_ops, test_cuda_ops"},
	{"lvd_layernorm", "norm", "norm_cpu.c", "-", "test_nn_ops, test_train_ops, test_cuda_ops"},
	{"lvd_rmsnorm", "norm", "norm_cpu.c", "-", "test_train_ops, test_cuda_ops"},
	{"lvd_groupnorm", "norm", "norm_cpu.c", "norm_fast.c", "test_nn_ops, test_cuda_ops"},
	{"lvd_gelu", "act", "act_cpu.c", "act_fast.c (tanh form)", "test_nn_ops, test_train_ops, test_cuda_ops"},
	{"lvd_silu", "act", "act_cpu.c", "-", "test_nn_ops, test_train_ops, test_cuda_ops"},
	{"lvd_swiglu", "act", "act_cpu.c", "act_fast.c", "test_train_ops, test_cuda_ops"},
	{"lvd_geglu", "act", "act_cpu.c", "act_fast.c", "test_nn_ops, test_train_ops, test_cuda_ops"},
	{"lvd_relu6", "act", "act_cpu.c", "-", "-"},
	{"lvd_leaky", "act", "act_cpu.c", "-", "-"},
	{"lvd_add", "elem", "elem_cpu.c", "-", "test_nn_ops, test_cuda_ops"},
	{"lvd_axpy", "elem", "elem_cpu.c", "-", "test_cuda_ops"},
	{"lvd_scale", "elem", "elem_cpu.c", "-", "test_cuda_ops"},
	{"lvd_f32_to_bf16", "elem", "elem_cpu.c", "-", "test_nn_ops, test_cuda_ops"},
	{"lvd_transpose", "elem", "elem_cpu.c", "-", "test_nn_ops"},
	{"lvd_copy", "elem", "elem_cpu.c", "-", "-"},
	{"lvd_conv2d", "conv", "conv_cpu.c, conv_bwd_cpu.c", "conv_winograd.c", "test_nn_ops (Winograd, pools), test_cuda_ops"},
	{"lvd_attention", "attention", "attention_cpu.c", "softmax_fast.c", "test_nn_ops (pools, strided views), test_cuda_ops"},
	{"lvd_embedding", "embed", "embed_cpu.c", "-", "test_train_ops"},
	{"lvd_patch_unfold", "embed", "embed_cpu.c", "-", "test_train_ops"},
	{"lvd_rope", "embed", "embed_cpu.c", "-", "test_train_ops"},
	{"lvd_timestep", "embed", "embed_cpu.c", "-", "test_nn_ops"},
	{"lvd_xent", "xent", "xent_cpu.c", "softmax_fast.c", "test_train_ops"},
	{"lvd_lora", "lora", "lora_cpu.c", "-", "test_train_ops"},
	{"lvd_instnorm", "instnorm", "instnorm_cpu.c", "-", "-"},
	{"lvd_resample", "resample", "resample_cpu.c", "-", "test_cuda_ops (area, bilinear, nearest2x forwards)"},
};

static const struct op_home *op_home_of(const struct op_entry *e)
{
	for (size_t k = 0; k < sizeof op_homes / sizeof op_homes[0]; k++)
		if (strncmp(e->fns, op_homes[k].prefix, strlen(op_homes[k].prefix)) == 0)
			return &op_homes[k];
	return NULL;
}

/* s with '|' escaped, so a reason like "|y| <= 5" stays inside its markdown cell */
static void md_put(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', f);
		fputc(*s, f);
	}
}

/* --list: the table as markdown (the op index of docs/DESIGN.md). Files are under
 * lib/nn/ops/; tests under tests/unit/ (test_cuda_ops: tests/gpu/). */
static void print_table(FILE *f)
{
	fprintf(f, "| op | functions | family | plain (oracle: rf_ in test_ops) | fast path | CUDA twin | backward "
		   "| oracle tol | fast tol | cuda tol | FD (h, tol) | also checked by | reasons |\n");
	fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	for (int t = 0; t < N_OPS; t++) {
		const struct op_entry *e = op_at(t);
		const struct op_home *h = op_home_of(e);
		int nc = 0;
		for (const struct op_case *c = e->cases; c->name; c++)
			nc++;
		fprintf(f, "| %s | %s | %s | %s | %s | %s%s | %s | %g | %g | %g | ", e->name, e->fns,
			h ? h->family : "?", h ? h->plain : "?", e->fast && h ? h->fast : "-",
			e->cuda && h ? h->family : "-", e->cuda ? ".cu" : "", e->bwd ? "yes" : "no", e->ref_tol,
			e->fast_tol, e->cuda_tol);
		if (e->bwd)
			fprintf(f, "%g, %g", e->fd_h, e->fd_tol);
		else
			fprintf(f, "-");
		fprintf(f, " | %s | oracle: ", h ? h->more : "?");
		md_put(f, e->ref_why);
		fprintf(f, "; fast: ");
		md_put(f, e->fast_why);
		fprintf(f, "; cuda: ");
		md_put(f, e->cuda_why);
		if (e->bwd) {
			fprintf(f, "; FD: ");
			md_put(f, e->fd_why);
		}
		fprintf(f, "; %d shape set%s%s |\n", nc, nc == 1 ? "" : "s", e->linear ? "; adjoint identity" : "");
	}
}

static void test_list(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	REQUIRE(f);
	print_table(f);
	fclose(f);
	int rows = 0;
	for (char *p = buf; *p; p++)
		rows += *p == '\n';
	CHECK(rows == N_OPS + 2);
	CHECK_CONTAINS(buf, "| resample_areaw | lvd_resample_areaw_fwd/_bwd | resample | resample_cpu.c | - | - | yes |");
	CHECK_CONTAINS(buf, "| softmax | lvd_softmax_fwd/_bwd | softmax | softmax_cpu.c | softmax_fast.c | softmax.cu | yes |");
	/* every entry knows its family */
	for (int t = 0; t < N_OPS; t++)
		CHECKF(op_home_of(op_at(t)) != NULL, "%s: no family for '%s'", op_at(t)->name, op_at(t)->fns);
	free(buf);
}

/* The BLAS policy's kernel set: on an AMD family 25 CPU with AVX-512 (Zen 4, read from
 * /proc/cpuinfo, not from the code under test) OpenBLAS runs AVX2 kernels (Haswell after
 * the switch, or Zen where an OpenBLAS picks that itself), not its AVX-512 sets, unless
 * OPENBLAS_CORETYPE names a set; then a product through them equals the double-precision
 * oracle. Elsewhere SKIP naming the CPU and the set OpenBLAS chose. */
static void test_blas_policy(void)
{
	struct lvd_ctx *ctx = make_ctx(LVD_BACKEND_CPU, 1, 0);
	REQUIRE(ctx);
	const char *core = lvd_blas_corename();
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	int amd = 0, fam = -1, avx512 = 0;
	while (f && fgets(line, sizeof line, f) && !(fam >= 0 && strncmp(line, "flags", 5) == 0 &&
						       (avx512 = strstr(line, " avx512f") != NULL, 1))) {
		if (strncmp(line, "vendor_id", 9) == 0)
			amd = strstr(line, "AuthenticAMD") != NULL;
		else if (strncmp(line, "cpu family", 10) == 0)
			fam = atoi(strchr(line, ':') + 1);
	}
	if (f)
		fclose(f);
	const char *user = getenv("OPENBLAS_CORETYPE");
	if (strcmp(core, "unknown") == 0 || (user && *user) || !amd || fam != 25 || !avx512) {
		lvd_ctx_destroy(ctx);
		SKIP("kernel set %s left as OpenBLAS chose it (%s, family %d, avx512f %d, OPENBLAS_CORETYPE %s)", core,
		     amd ? "AMD" : "not AMD", fam, avx512, user && *user ? user : "unset");
	}
	CHECKF(strcmp(core, "SkylakeX") && strcmp(core, "Cooperlake") && strcmp(core, "SapphireRapids"),
	       "AMD Zen 4: OpenBLAS kernel set %s, want an AVX2 one (Haswell, or Zen where OpenBLAS picks it)", core);
	enum { M = 37, N = 300, K = 129 };
	float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K);
	float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
	for (int i = 0; i < M * K; i++)
		A[i] = (float)((i * 37 % 101) - 50) / 50.0f;
	for (int i = 0; i < N * K; i++)
		B[i] = (float)((i * 53 % 97) - 48) / 48.0f;
	lvd_gemm_cpu(ctx, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
	lvd_gemm_naive(ctx, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, R, N);
	CHECK_CLOSE("gemm through the Haswell kernels", C, R, (size_t)M * N, 1e-5, 1e-5);
	free(A), free(B), free(C), free(R);
	lvd_ctx_destroy(ctx);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--list") == 0) {
		print_table(stdout);
		return 0;
	}
	static const struct lvd_test tests[] = {
		TEST(test_table_oracle),
		TEST(test_table_fast),
		TEST(test_table_cuda),
		TEST(test_table_fd),
		TEST(test_table_null_grads),
		TEST(test_table_adjoint),
		TEST(test_conv_bwd_blocks),
		TEST(test_areaw_matches_geom),
		TEST(test_torch_values),
		TEST(test_lora_dropout_values),
		TEST(test_list),
		TEST(test_blas_policy),
		{0},
	};
	return lvd_test_main(argc, argv, tests);
}
