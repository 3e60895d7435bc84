/* lib/nn/conv_winograd.c — 3×3 stride-1 pad-1 convolution by Winograd's minimal filtering
 * F(m×m, 3×3), m = 2 or 4 (Lavin & Gray 2015): per n×n input tile (n = m + 2)
 * V = Bᵀ d B, per (oc, ic) U = G g Gᵀ, n² GEMMs M[k] = U[k] V[k] over channels, then
 * Y = Aᵀ M A per output tile. Contract in nn/ops/conv.h (lvd_conv2d_winograd_fwd): the
 * fast path of lvd_conv2d_fwd. Working memory from the ctx workspace, work over ctx->pool
 * (on the caller alone inside a parallel_for chunk), GEMMs single-threaded.
 *
 * Work plan (fixed by the shape alone, never by the thread count, so every GEMM has the
 * same operands and shape for any T and the result is bit-identical across T):
 *   tiles are processed in blocks of whole tile rows; per block
 *   1. input transform into V[k][C][nt], channels split over the pool;
 *   2. output channels cut into nb (even) blocks of <= 128 rows, blocks split over the
 *      pool; each block transforms its weights into U[k][ob][C] (per call: the frozen
 *      3×3 weights stay the only copy), runs n² single-threaded GEMMs into M[k][ob][nt],
 *      then the output transform + bias into out.
 * The transforms run on 8 tiles (or 8 input channels for U) at once with GCC vector
 * types, compiled for each m twice: AVX2+FMA (picked at run time) and the baseline ISA. */
#include "nn/ops/conv.h"

#include <cblas.h>
#include <string.h>

#include "core/error.h"
#include "nn/ops/cpu_internal.h"

enum {
	NN_MAX = 36,      /* GEMMs per tile block for the largest tile, F(4, 3) */
	VL = 8,           /* lanes per vector */
	OB_MAX = 128,     /* output-channel rows per block */
};
/* Tile-block caps in floats: V (shared by every block's GEMMs) and one block's M. */
#define WINO_V_CAP ((size_t)4 << 20)
#define WINO_M_CAP ((size_t)1 << 20)

typedef float vf __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float))));
#define WINLINE static inline __attribute__((always_inline))

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }
static size_t up16(size_t n) { return (n + 15) & ~(size_t)15; }

struct wplan {
	int m, C, H, W, OC, TH, TW, TWp, rows, nb, T;
	size_t nt;          /* tiles per block: rows · TW */
	size_t v_len;       /* WNN · C · nt */
	size_t ph_len;      /* input phase rows: WN · WM · (TWp + 1) */
	size_t thr_len;     /* per-thread slice */
};

static void wplan_make(struct wplan *p, int m, int C, int H, int W, int OC, int T)
{
	int WM = m, WN = m + 2, WNN = WN * WN;
	p->m = m, p->C = C, p->H = H, p->W = W, p->OC = OC, p->T = T;
	p->TH = (H + WM - 1) / WM;
	p->TW = (W + WM - 1) / WM;
	p->TWp = (p->TW + VL - 1) / VL * VL;
	int nb = (OC + OB_MAX - 1) / OB_MAX;
	p->nb = nb + (nb & 1);                        /* even: balanced over 2 threads */
	if (p->nb > OC)
		p->nb = OC;
	size_t ob = ((size_t)OC + p->nb - 1) / p->nb;
	size_t per_row_v = (size_t)WNN * C * p->TW, per_row_m = (size_t)WNN * ob * p->TW;
	size_t r = WINO_V_CAP / per_row_v, rm = WINO_M_CAP / per_row_m;
	r = r < rm ? r : rm;
	r = r < 1 ? 1 : r > (size_t)p->TH ? (size_t)p->TH : r;
	p->rows = (int)r;
	p->nt = r * p->TW;
	p->v_len = up16((size_t)WNN * C * p->nt);
	p->ph_len = (size_t)WN * WM * (p->TWp + 1);
	size_t Cp = ((size_t)C + VL - 1) / VL * VL;
	/* U [WNN][ob][C], M [WNN][ob][nt] (+ one vector of slack for the ragged last row
	 * read by the output transform), transposed weights [9][Cp] */
	size_t blk = up16((size_t)WNN * ob * C) + up16((size_t)WNN * ob * p->nt + VL) + up16(9 * Cp);
	p->thr_len = up16(zmax(p->ph_len, blk));
}

/* The size reported to callers is a bound that only grows with C, H, W, OC and T, so a
 * caller may size a workspace once for the largest conv of a network level. */
static size_t wino_scratch(int m, int C, int H, int W, int OC, int T)
{
	int WM = m, WN = m + 2, WNN = WN * WN;
	if (T < 1)
		T = 1;
	size_t TH = ((size_t)H + WM - 1) / WM, TW = ((size_t)W + WM - 1) / WM;
	size_t TWp = (TW + VL - 1) / VL * VL, Cp = ((size_t)C + VL - 1) / VL * VL;
	size_t ob = (size_t)OC < OB_MAX ? (size_t)OC : OB_MAX;
	size_t rowv = (size_t)WNN * C * TW, rowm = (size_t)WNN * ob * TW;
	size_t vmax = zmax(WINO_V_CAP, rowv), mmax = zmax(WINO_M_CAP, rowm);
	vmax = vmax < rowv * TH ? vmax : rowv * TH;
	mmax = mmax < rowm * TH ? mmax : rowm * TH;
	size_t blk = up16((size_t)WNN * ob * C) + up16(mmax + VL) + up16(9 * Cp) + 64;
	size_t thr = up16(zmax((size_t)WN * WM * (TWp + 1), blk));
	return up16(vmax) + 16 + (size_t)T * thr;
}

/* ---- 1-D transforms over vectors (element stride s), m = 2 or 4 ----
 * F(2, 3) (points 0, ±1, ∞): Bᵀ rows (1 0 -1 0) (0 1 1 0) (0 -1 1 0) (0 1 0 -1);
 *   G rows (1 0 0) (½ ½ ½) (½ -½ ½) (0 0 1); Aᵀ rows (1 1 1 0) (0 1 -1 -1).
 * F(4, 3) (points 0, ±1, ±2, ∞): Bᵀ rows (4 0 -5 0 1 0) (0 -4 -4 1 1 0) (0 4 -4 -1 1 0)
 *   (0 -2 -1 2 1 0) (0 2 -1 -2 1 0) (0 4 0 -5 0 1); G rows (¼ 0 0) (-⅙ -⅙ -⅙) (-⅙ ⅙ -⅙)
 *   (1/24 1/12 ⅙) (1/24 -1/12 ⅙) (0 0 1); Aᵀ rows (1 1 1 1 1 0) (0 1 -1 2 -2 0)
 *   (0 1 1 4 4 0) (0 1 -1 8 -8 1). */
#define VS(x) ((vf){x, x, x, x, x, x, x, x})

WINLINE void bt1(int m, vf *o, int so, const vf *d, int sd)
{
	if (m == 2) {
		vf d0 = d[0], d1 = d[sd], d2 = d[2 * sd], d3 = d[3 * sd];
		o[0] = d0 - d2;
		o[so] = d1 + d2;
		o[2 * so] = d2 - d1;
		o[3 * so] = d1 - d3;
		return;
	}
	vf d0 = d[0], d1 = d[sd], d2 = d[2 * sd], d3 = d[3 * sd], d4 = d[4 * sd], d5 = d[5 * sd];
	vf e = d4 - VS(4.0f) * d2, f = d3 - VS(4.0f) * d1;   /* rows 1 and 2 */
	vf g = d4 - d2, h = VS(2.0f) * (d3 - d1);             /* rows 3 and 4 */
	o[0] = VS(4.0f) * d0 - VS(5.0f) * d2 + d4;
	o[so] = e + f;
	o[2 * so] = e - f;
	o[3 * so] = g + h;
	o[4 * so] = g - h;
	o[5 * so] = VS(4.0f) * d1 - VS(5.0f) * d3 + d5;
}

WINLINE void g1(int m, vf *o, int so, const vf *g, int sg)
{
	vf g0 = g[0], g1v = g[sg], g2 = g[2 * sg];
	if (m == 2) {
		vf e = (g0 + g2) * VS(0.5f), f = g1v * VS(0.5f);
		o[0] = g0;
		o[so] = e + f;
		o[2 * so] = e - f;
		o[3 * so] = g2;
		return;
	}
	vf e = (g0 + g2) * VS(-1.0f / 6), f = g1v * VS(-1.0f / 6);
	vf h = g0 * VS(1.0f / 24) + g2 * VS(1.0f / 6), k = g1v * VS(1.0f / 12);
	o[0] = g0 * VS(0.25f);
	o[so] = e + f;
	o[2 * so] = e - f;
	o[3 * so] = h + k;
	o[4 * so] = h - k;
	o[5 * so] = g2;
}

WINLINE void at1(int m, vf *o, int so, const vf *x, int sx)
{
	if (m == 2) {
		o[0] = x[0] + x[sx] + x[2 * sx];
		o[so] = x[sx] - x[2 * sx] - x[3 * sx];
		return;
	}
	vf a = x[sx] + x[2 * sx], b = x[sx] - x[2 * sx], c = x[3 * sx] + x[4 * sx], d = x[3 * sx] - x[4 * sx];
	o[0] = x[0] + a + c;
	o[so] = b + VS(2.0f) * d;
	o[2 * so] = a + VS(4.0f) * c;
	o[3 * so] = b + VS(8.0f) * d + x[5 * sx];
}

/* ---- pieces run on the pool, each compiled for AVX2 and for the baseline ---- */
struct wjob {
	const struct wplan *p;
	float *out, *V, *scratch;
	const float *inp, *w, *b;
	int ty0, ty1;       /* tile rows of this block */
};

/* Input transform of channels [lo, hi) for tile rows [ty0, ty1) into V[k][c][nt]. */
WINLINE void in_body(const int m, const struct wjob *j, size_t lo, size_t hi, int tid)
{
	const int WM = m, WN = m + 2, WNN = WN * WN;
	const struct wplan *p = j->p;
	int W = p->W, H = p->H, TW = p->TW;
	size_t PL = (size_t)p->TWp + 1;
	float *ph = j->scratch + (size_t)tid * p->thr_len;   /* [WN][WM][PL] */
	for (size_t c = lo; c < hi; c++) {
		const float *x = j->inp + c * (size_t)H * W;
		for (int ty = j->ty0; ty < j->ty1; ty++) {
			/* phase split of the padded rows: ph[i][q][t] = x[ty·m - 1 + i][m·t + q - 1] */
			for (int i = 0; i < WN; i++) {
				int ih = ty * WM - 1 + i;
				const float *row = ih >= 0 && ih < H ? x + (size_t)ih * W : NULL;
				for (int q = 0; q < WM; q++) {
					float *d = ph + ((size_t)i * WM + q) * PL;
					/* t in [tlo, thi) reads 0 <= m·t + q - 1 < W */
					size_t tlo = q == 0 ? 1 : 0, thi = ((size_t)W + WM - q) / WM;
					thi = thi < PL ? thi : PL;
					if (!row)
						tlo = thi = 0;
					for (size_t t = 0; t < tlo; t++)
						d[t] = 0.0f;
					for (size_t t = tlo; t < thi; t++)
						d[t] = row[WM * t + q - 1];
					for (size_t t = thi > tlo ? thi : tlo; t < PL; t++)
						d[t] = 0.0f;
				}
			}
			size_t base = (size_t)(ty - j->ty0) * TW;
			for (int tx = 0; tx < TW; tx += VL) {
				vf d[NN_MAX], t[NN_MAX], v[NN_MAX];
				for (int i = 0; i < WN; i++)
					for (int jj = 0; jj < WN; jj++)
						memcpy(&d[i * WN + jj],
						       ph + ((size_t)i * WM + jj % WM) * PL + tx + jj / WM, sizeof(vf));
				for (int jj = 0; jj < WN; jj++)
					bt1(m, t + jj, WN, d + jj, WN);        /* columns: t = Bᵀ d */
				for (int a = 0; a < WN; a++)
					bt1(m, v + a * WN, 1, t + a * WN, 1);  /* rows: v = t B */
				int cnt = TW - tx < VL ? TW - tx : VL;
				for (int k = 0; k < WNN; k++)
					memcpy(j->V + ((size_t)k * p->C + c) * p->nt + base + tx, &v[k],
					       sizeof(float) * cnt);
			}
		}
	}
}

/* Output-channel blocks [lo, hi): weight transform, n² GEMMs, output transform. */
WINLINE void blk_body(const int m, const struct wjob *j, size_t lo, size_t hi, int tid)
{
	const int WM = m, WN = m + 2, WNN = WN * WN;
	const struct wplan *p = j->p;
	int C = p->C, OC = p->OC, TW = p->TW, OW = p->W, OH = p->H;
	size_t nt = p->nt, Cp = ((size_t)C + VL - 1) / VL * VL;
	size_t ob_max = ((size_t)OC + p->nb - 1) / p->nb;
	float *U = j->scratch + (size_t)tid * p->thr_len;
	float *M = U + up16((size_t)WNN * ob_max * C);
	float *gt = M + up16((size_t)WNN * ob_max * nt + VL);
	for (size_t b = lo; b < hi; b++) {
		int o0 = (int)(b * OC / p->nb), o1 = (int)((b + 1) * OC / p->nb), ob = o1 - o0;
		/* U[k][ol][c] = (G g Gᵀ)[k] for g = w[o0 + ol][c] */
		for (int ol = 0; ol < ob; ol++) {
			const float *g = j->w + (size_t)(o0 + ol) * C * 9;
			for (int c = 0; c < C; c++)
				for (int s = 0; s < 9; s++)
					gt[s * Cp + c] = g[(size_t)c * 9 + s];
			for (size_t c = C; c < Cp; c++)
				for (int s = 0; s < 9; s++)
					gt[s * Cp + c] = 0.0f;
			for (int c = 0; c < C; c += VL) {
				vf gv[9], t[6 * 3], u[NN_MAX];
				for (int s = 0; s < 9; s++)
					memcpy(&gv[s], gt + s * Cp + c, sizeof(vf));
				for (int s = 0; s < 3; s++)
					g1(m, t + s, 3, gv + s, 3);            /* t[n][3] = G g */
				for (int a = 0; a < WN; a++)
					g1(m, u + a * WN, 1, t + a * 3, 1);    /* u = t Gᵀ */
				int cnt = C - c < VL ? C - c : VL;
				for (int k = 0; k < WNN; k++)
					memcpy(U + ((size_t)k * ob + ol) * C + c, &u[k], sizeof(float) * cnt);
			}
		}
		int ntb = (j->ty1 - j->ty0) * TW;   /* tiles of this block (ld stays nt) */
		for (int k = 0; k < WNN; k++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ob, ntb, C, 1.0f, U + (size_t)k * ob * C, C,
				    j->V + (size_t)k * C * nt, (int)nt, 0.0f, M + (size_t)k * ob * nt, (int)nt);
		for (int ol = 0; ol < ob; ol++) {
			float bias = j->b ? j->b[o0 + ol] : 0.0f;
			float *y = j->out + (size_t)(o0 + ol) * OH * OW;
			for (int ty = j->ty0; ty < j->ty1; ty++) {
				size_t base = (size_t)(ty - j->ty0) * TW;
				for (int tx = 0; tx < TW; tx += VL) {
					vf mm[NN_MAX], t[4 * 6], r[4 * 4];
					for (int k = 0; k < WNN; k++)
						memcpy(&mm[k], M + ((size_t)k * ob + ol) * nt + base + tx, sizeof(vf));
					for (int jj = 0; jj < WN; jj++)
						at1(m, t + jj, WN, mm + jj, WN);       /* t[m][n] = Aᵀ M */
					for (int a = 0; a < WM; a++)
						at1(m, r + a * WM, 1, t + a * WN, 1);  /* r = t A */
					int cnt = TW - tx < VL ? TW - tx : VL;
					for (int a = 0; a < WM; a++) {
						int oh = ty * WM + a;
						if (oh >= OH)
							break;
						float *yr = y + (size_t)oh * OW;
						for (int l = 0; l < cnt; l++)
							for (int s = 0; s < WM; s++) {
								int ow = (tx + l) * WM + s;
								if (ow < OW)
									yr[ow] = r[a * WM + s][l] + bias;
							}
					}
				}
			}
		}
	}
}

#define WPIECES(m, attr, sfx)                                                          \
	attr static int in_piece##m##sfx(void *ctx, size_t lo, size_t hi, int tid)          \
	{                                                                                   \
		in_body(m, ctx, lo, hi, tid);                                               \
		return 0;                                                                   \
	}                                                                                   \
	attr static int blk_piece##m##sfx(void *ctx, size_t lo, size_t hi, int tid)         \
	{                                                                                   \
		blk_body(m, ctx, lo, hi, tid);                                              \
		return 0;                                                                   \
	}
WPIECES(2, , )
WPIECES(4, , )

#if defined(__x86_64__) && defined(__GNUC__)
WPIECES(2, __attribute__((target("avx2,fma"))), _avx2)
WPIECES(4, __attribute__((target("avx2,fma"))), _avx2)

static int wino_avx2(void)
{
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
#define in_piece2_avx2 in_piece2
#define blk_piece2_avx2 blk_piece2
#define in_piece4_avx2 in_piece4
#define blk_piece4_avx2 blk_piece4
static int wino_avx2(void) { return 0; }
#endif

void lvd_conv2d_winograd_fwd(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
			     int B, int C, int H, int W, int OC, int m)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_conv2d_winograd_fwd");
	if (m == 0)
		m = lvd_conv2d_winograd_tile(C, H, W, OC);
	LVD_ASSERT(C > 0 && H > 0 && W > 0 && OC > 0 && out != inp && (m == 2 || m == 4));
	int T = lvd_ops_threads(ctx);
	struct wplan p;
	wplan_make(&p, m, C, H, W, OC, T);
	size_t need = p.v_len + (size_t)T * p.thr_len;
	LVD_ASSERT(need <= wino_scratch(m, C, H, W, OC, T));
	size_t mk = lvd_ctx_mark(ctx);
	float *scratch = lvd_ctx_takef(ctx, need);
	int avx = ctx->cpu_fast && wino_avx2();   /* AVX2 transforms only with the fast paths on */
	lvd_pool_fn fin, fblk;
	if (m == 2)
		fin = avx ? in_piece2_avx2 : in_piece2, fblk = avx ? blk_piece2_avx2 : blk_piece2;
	else
		fin = avx ? in_piece4_avx2 : in_piece4, fblk = avx ? blk_piece4_avx2 : blk_piece4;
	/* the GEMMs are single-threaded so that only the fixed block plan decides the work */
	for (int n = 0; n < B; n++) {
		struct wjob j = {.p = &p, .out = out + (size_t)n * OC * H * W, .V = scratch, .scratch = scratch + p.v_len,
				 .inp = inp + (size_t)n * C * H * W, .w = w, .b = b};
		for (int ty0 = 0; ty0 < p.TH; ty0 += p.rows) {
			j.ty0 = ty0;
			j.ty1 = ty0 + p.rows < p.TH ? ty0 + p.rows : p.TH;
			lvd_ops_run(ctx, (size_t)C, fin, &j);
			lvd_ops_run(ctx, (size_t)p.nb, fblk, &j);
		}
	}
	lvd_ctx_release(ctx, mk);
}

/* Measured on SD 1.5 shapes (Zen 4 core, OpenBLAS, 1 thread): F(4, 3) is 1.2-1.6x faster
 * than F(2, 3) from 32x32 up (64+ tiles per GEMM), 10-35 % slower at 16x16 and below
 * (16 tiles per GEMM, and its 4x larger transformed weights are rebuilt on every call). */
int lvd_conv2d_winograd_tile(int C, int H, int W, int OC)
{
	(void)C, (void)OC;
	return (size_t)H * W >= 1024 ? 4 : 2;
}
