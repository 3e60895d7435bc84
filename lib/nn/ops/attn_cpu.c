/* lib/nn/ops/attn_cpu.c — CPU reference of the attn family (lib/nn/ops/attn.h):
 * query rows in blocks of QB against the visible key prefix, probabilities recomputed
 * in backward from the saved (max, 1/sum) per row.
 *
 * PADPAIR runs on a per-sample permutation "real tokens first, then pads": real queries see all T keys, pad queries the first R, so the
 * pad×pad block is never multiplied. Every mask then has visible keys [0, jend(i)). */
#include "nn/ops/attn.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "nn/ops/cpu_internal.h"
#include "nn/ops/exp_avx2.h"
#include "nn/ops/gemm.h"

/* query rows per block (larger blocks: better GEMMs, more workspace); causal blocks are
 * shorter, so fewer masked scores above the diagonal are computed (at T = 320: 19% fewer
 * than with 256-row blocks) */
enum { QB = 256, QB_CAUSAL = 128 };

#if LVD_OPS_X86
/* row[j] = e^(row[j] − mx) · inv with the shared vectorised exp (exp_avx2.h) */
__attribute__((target("avx2,fma"))) static void exp_row_avx2(float *row, int n, float mx, float inv)
{
	__m256 vm = _mm256_set1_ps(mx), vi = _mm256_set1_ps(inv);
	int j = 0;
	for (; j + 8 <= n; j += 8)
		_mm256_storeu_ps(row + j, _mm256_mul_ps(lvd_exp_neg_avx2(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm)), vi));
	if (j < n) {
		float t[8];
		for (int c = 0; c < 8; c++)
			t[c] = j + c < n ? row[j + c] : mx;
		_mm256_storeu_ps(t, _mm256_mul_ps(lvd_exp_neg_avx2(_mm256_sub_ps(_mm256_loadu_ps(t), vm)), vi));
		memcpy(row + j, t, sizeof(float) * (size_t)(n - j));
	}
}
#endif

/* row[j] = e^(row[j] − mx) · inv (row[j] <= mx); fast: the AVX2 exp, else expf */
static void exp_row(int fast, float *row, int n, float mx, float inv)
{
#if LVD_OPS_X86
	if (fast) {
		exp_row_avx2(row, n, mx, inv);
		return;
	}
#else
	(void)fast;
#endif
	for (int j = 0; j < n; j++)
		row[j] = expf(row[j] - mx) * inv;
}

size_t lvd_attn_capture_rows(const struct lvd_attn_capture *cap, int B)
{
	return cap && cap->off ? (size_t)cap->off[B] : 0;
}

struct job {
	/* per sample b, in processing order (gathered when perm != NULL) */
	const float *q, *k, *v, *dout, *bias;
	float *out, *dq, *dk, *dv;
	size_t qs, ks;             /* row strides of q/out/dq/dout and k/v/dk/dv */
	const int *perm;           /* processing index -> token (PADPAIR) or NULL */
	const int *capidx;         /* processing index -> capture slot of b, -1 */
	float *stats;              /* [H, Tq, 2] of sample b (token order) */
	float *cap;                /* probs_cap block of b: [H, Rb, Tk] */
	const float *dcap;
	int Rb, R, kind, Tq, Tk, H, KH, D;
	float scale;
	float *scr;                /* per thread: 2·QB·Tk */
	struct lvd_ctx *ctx;       /* GEMMs (single-threaded inside the chunks) */
	int fast;                  /* AVX2 exp (lvd_ops_fast_avx2) */
};

static int jend_of(const struct job *j, int i)
{
	if (j->kind == LVD_ATTN_MASK_CAUSAL)
		return i + 1 + j->Tk - j->Tq;
	if (j->kind == LVD_ATTN_MASK_PADPAIR)
		return i < j->R ? j->Tk : j->R;
	return j->Tk;
}

/* next block [i0, *i1) and its key extent */
static int block_of(const struct job *j, int i0, int *i1)
{
	int qb = j->kind == LVD_ATTN_MASK_CAUSAL ? QB_CAUSAL : QB;
	int e = i0 + qb < j->Tq ? i0 + qb : j->Tq;
	if (j->kind == LVD_ATTN_MASK_PADPAIR && i0 < j->R && e > j->R)
		e = j->R;
	*i1 = e;
	if (j->kind == LVD_ATTN_MASK_CAUSAL)
		return e + j->Tk - j->Tq;
	if (j->kind == LVD_ATTN_MASK_PADPAIR)
		return i0 < j->R ? j->Tk : j->R;
	return j->Tk;
}

static int tok(const struct job *j, int i) { return j->perm ? j->perm[i] : i; }

/* scores of rows [i0, i1) of head h against keys [0, kend) into S (ld kend), bias added */
static void scores(const struct job *j, float *S, int h, int i0, int i1, int kend)
{
	int D = j->D, kvh = h / (j->H / j->KH);
	lvd_gemm(j->ctx, 0, 1, i1 - i0, kend, D, j->scale, j->q + (size_t)i0 * j->qs + (size_t)h * D, (int)j->qs,
		  j->k + (size_t)kvh * D, (int)j->ks, 0.0f, S, kend);
	if (j->kind == LVD_ATTN_MASK_BIAS)
		for (int i = i0; i < i1; i++) {
			float *row = S + (size_t)(i - i0) * kend;
			const float *br = j->bias + (size_t)i * j->Tk;
			for (int c = 0; c < kend; c++)
				row[c] += br[c];
		}
}

static int fwd_fn(void *user, size_t lo, size_t hi, int tid)
{
	const struct job *j = user;
	int D = j->D, rep = j->H / j->KH;
	float *S = j->scr + (size_t)tid * 2 * QB * j->Tk;
	for (size_t kvh = lo; kvh < hi; kvh++)
		for (int h = (int)kvh * rep; h < ((int)kvh + 1) * rep; h++)
			for (int i0 = 0, i1; i0 < j->Tq; i0 = i1) {
				int kend = block_of(j, i0, &i1);
				scores(j, S, h, i0, i1, kend);
				for (int i = i0; i < i1; i++) {
					float *row = S + (size_t)(i - i0) * kend;
					int je = jend_of(j, i);
					float mx = -INFINITY;
					for (int c = 0; c < je; c++)
						mx = row[c] > mx ? row[c] : mx;
					exp_row(j->fast, row, je, mx, 1.0f);
					double sum = 0; 
					for (int c = 0; c < je; c++)
						sum += row[c];
					float inv = (float)(1.0 / sum);
					for (int c = 0; c < je; c++)
						row[c] *= inv;
					for (int c = je; c < kend; c++)
						row[c] = 0.0f;
					float *st = j->stats + ((size_t)h * j->Tq + tok(j, i)) * 2;
					st[0] = mx;
					st[1] = inv;
					int slot = j->capidx[i];
					if (slot >= 0 && j->cap) {
						float *dst = j->cap + ((size_t)h * j->Rb + slot) * j->Tk;
						if (!j->perm) {
							memcpy(dst, row, sizeof(float) * kend);
							memset(dst + kend, 0, sizeof(float) * (j->Tk - kend));
						} else {
							for (int c = 0; c < j->Tk; c++)
								dst[j->perm[c]] = c < kend ? row[c] : 0.0f;
						}
					}
				}
				lvd_gemm(j->ctx, 0, 0, i1 - i0, D, kend, 1.0f, S, kend, j->v + (size_t)(h / rep) * D, (int)j->ks, 0.0f,
					  j->out + (size_t)i0 * j->qs + (size_t)h * D, (int)j->qs);
			}
	return 0;
}

static int bwd_fn(void *user, size_t lo, size_t hi, int tid)
{
	const struct job *j = user;
	int D = j->D, rep = j->H / j->KH;
	float *P = j->scr + (size_t)tid * 2 * QB * j->Tk, *dP = P + (size_t)QB * j->Tk;
	for (size_t kvh = lo; kvh < hi; kvh++)
		for (int h = (int)kvh * rep; h < ((int)kvh + 1) * rep; h++)
			for (int i0 = 0, i1; i0 < j->Tq; i0 = i1) {
				int kend = block_of(j, i0, &i1), n = i1 - i0;
				size_t qo = (size_t)i0 * j->qs + (size_t)h * D, ko = kvh * D;
				scores(j, P, h, i0, i1, kend);
				for (int i = i0; i < i1; i++) {
					float *row = P + (size_t)(i - i0) * kend;
					int je = jend_of(j, i);
					const float *st = j->stats + ((size_t)h * j->Tq + tok(j, i)) * 2;
					exp_row(j->fast, row, je, st[0], st[1]);
					for (int c = je; c < kend; c++)
						row[c] = 0.0f;
				}
				lvd_gemm(j->ctx, 0, 1, n, kend, D, 1.0f, j->dout + qo, (int)j->qs, j->v + ko, (int)j->ks, 0.0f, dP, kend);
				if (j->dcap)
					for (int i = i0; i < i1; i++) {
						int slot = j->capidx[i];
						if (slot < 0)
							continue;
						const float *e = j->dcap + ((size_t)h * j->Rb + slot) * j->Tk;
						float *dr = dP + (size_t)(i - i0) * kend;
						for (int c = 0; c < kend; c++)
							dr[c] += e[tok(j, c)];
					}
				if (j->dv)
					lvd_gemm(j->ctx, 1, 0, kend, D, n, 1.0f, P, kend, j->dout + qo, (int)j->qs, 1.0f, j->dv + ko,
						  (int)j->ks);
				if (!j->dq && !j->dk)
					continue;
				for (int i = 0; i < n; i++) {
					const float *pr = P + (size_t)i * kend;
					float *dr = dP + (size_t)i * kend;
					double ds = 0; /* double: this row sum cancels */
					for (int c = 0; c < kend; c++)
						ds += (double)pr[c] * dr[c];
					float fs = (float)ds;
					for (int c = 0; c < kend; c++)
						dr[c] = pr[c] * (dr[c] - fs);
				}
				if (j->dq)
					lvd_gemm(j->ctx, 0, 0, n, D, kend, j->scale, dP, kend, j->k + ko, (int)j->ks, 1.0f, j->dq + qo,
						  (int)j->qs);
				if (j->dk)
					lvd_gemm(j->ctx, 1, 0, kend, D, n, j->scale, dP, kend, j->q + qo, (int)j->qs, 1.0f, j->dk + ko,
						  (int)j->ks);
			}
	return 0;
}

static int nthreads(const struct lvd_ctx *ctx)
{
	return ctx->pool ? lvd_pool_threads(ctx->pool) : 1;
}

/* real first, then pads; returns R */
static int pp_perm(int *perm, const uint8_t *pad, int T)
{
	int r = 0;
	for (int t = 0; t < T; t++)
		if (!pad[t])
			perm[r++] = t;
	int R = r;
	for (int t = 0; t < T; t++)
		if (pad[t])
			perm[r++] = t;
	return R;
}

static void gather(float *dst, const float *src, const int *perm, int T, size_t w)
{
	for (int i = 0; i < T; i++)
		memcpy(dst + (size_t)i * w, src + (size_t)perm[i] * w, w * sizeof(float));
}

/* sets up the per-sample part of j (capture map, permutation, gathered tensors);
 * g: 7 gathered [T, W] buffers for PADPAIR (q k v out|dout dq dk dv) */
static void setup_sample(struct job *j, int b, int *capidx, int *perm, float *g, const float *q, const float *k,
			 const float *v, const float *o_or_dout, const struct lvd_attn_mask *mask,
			 const struct lvd_attn_capture *cap, float *stats, float *probs_cap, const float *dprobs_cap,
			 float scale)
{
	int Tq = j->Tq, Tk = j->Tk, H = j->H;
	size_t qs = (size_t)H * j->D, ks = (size_t)j->KH * j->D;
	j->scale = scale;
	j->capidx = capidx;
	j->stats = stats + (size_t)b * H * Tq * 2;
	j->bias = j->kind == LVD_ATTN_MASK_BIAS ? mask->bias + (size_t)b * Tq * Tk : NULL;
	for (int i = 0; i < Tq; i++)
		capidx[i] = -1;
	j->Rb = 0;
	if (cap && cap->off) {
		int o0 = cap->off[b];
		j->Rb = cap->off[b + 1] - o0;
		LVD_ASSERT(j->Rb >= 0);
		j->cap = probs_cap ? probs_cap + (size_t)H * o0 * Tk : NULL;
		j->dcap = dprobs_cap ? dprobs_cap + (size_t)H * o0 * Tk : NULL;
		for (int r = 0; r < j->Rb; r++) {
			int row = cap->rows[o0 + r];
			LVD_ASSERTF(row >= 0 && row < Tq && capidx[row] < 0, "lvd_attn: capture row %d of sample %d "
				    "out of range or repeated", row, b);
			capidx[row] = r;
		}
	}
	j->perm = NULL;
	j->qs = qs;
	j->ks = ks;
	if (j->kind != LVD_ATTN_MASK_PADPAIR)
		return;
	int T = Tq, R = pp_perm(perm, mask->pad + (size_t)b * T, T);
	if (R == 0) { /* nothing visible: uniform rows, no q/k gradient */
		R = T;
		j->scale = 0.0f;
	}
	j->R = R;
	j->perm = perm;
	/* capture map in processing order */
	int *tmp = capidx + Tq;
	memcpy(tmp, capidx, sizeof(int) * Tq);
	for (int i = 0; i < T; i++)
		capidx[i] = tmp[perm[i]];
	size_t TW = (size_t)T * qs;
	gather(g, q + b * TW, perm, T, qs);
	gather(g + TW, k + b * TW, perm, T, qs);
	gather(g + 2 * TW, v + b * TW, perm, T, qs);
	if (o_or_dout)
		gather(g + 3 * TW, o_or_dout + b * TW, perm, T, qs);
	j->q = g, j->k = g + TW, j->v = g + 2 * TW;
}

void lvd_attn_fwd_cpu(struct lvd_ctx *ctx, float *out, float *stats, float *probs_cap, const float *q,
		      const float *k, const float *v, const struct lvd_attn_mask *mask,
		      const struct lvd_attn_capture *cap, float scale, int B, int Tq, int Tk, int H, int KH, int D)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_attn_fwd");
	LVD_ASSERT(KH > 0 && H % KH == 0);
	enum lvd_attn_mask_kind kind = mask ? mask->kind : LVD_ATTN_MASK_NONE;
	LVD_ASSERT(kind != LVD_ATTN_MASK_CAUSAL || Tq <= Tk);
	LVD_ASSERT(kind != LVD_ATTN_MASK_PADPAIR || Tq == Tk);
	LVD_ASSERT(kind != LVD_ATTN_MASK_PADPAIR || H == KH);
	size_t mk = lvd_ctx_mark(ctx), qs = (size_t)H * D, ks = (size_t)KH * D;
	struct job j = { .kind = kind, .Tq = Tq, .Tk = Tk, .H = H, .KH = KH, .D = D, .ctx = ctx,
			 .fast = lvd_ops_fast_avx2(ctx) };
	j.scr = lvd_ctx_takef(ctx, (size_t)nthreads(ctx) * 2 * QB * Tk);
	int *capidx = lvd_ctx_take(ctx, sizeof(int) * 2 * (size_t)Tq);
	int *perm = kind == LVD_ATTN_MASK_PADPAIR ? lvd_ctx_take(ctx, sizeof(int) * (size_t)Tq) : NULL;
	float *g = kind == LVD_ATTN_MASK_PADPAIR ? lvd_ctx_takef(ctx, 4 * (size_t)Tq * qs) : NULL;
	for (int b = 0; b < B; b++) {
		j.q = q + (size_t)b * Tq * qs;
		j.k = k + (size_t)b * Tk * ks;
		j.v = v + (size_t)b * Tk * ks;
		j.out = out + (size_t)b * Tq * qs;
		setup_sample(&j, b, capidx, perm, g, q, k, v, NULL, mask, cap, stats, probs_cap, NULL, scale);
		if (j.perm)
			j.out = g + 3 * (size_t)Tq * qs;
		LVD_ASSERT(lvd_ctx_parallel_for(ctx, (size_t)KH, fwd_fn, &j) == 0);
		if (j.perm)
			for (int i = 0; i < Tq; i++)
				memcpy(out + ((size_t)b * Tq + j.perm[i]) * qs, j.out + (size_t)i * qs, qs * sizeof(float));
	}
	lvd_ctx_release(ctx, mk);
}

void lvd_attn_bwd_cpu(struct lvd_ctx *ctx, float *dq, float *dk, float *dv, const float *stats, const float *dout,
		      const float *dprobs_cap, const float *q, const float *k, const float *v,
		      const struct lvd_attn_mask *mask, const struct lvd_attn_capture *cap, float scale, int B,
		      int Tq, int Tk, int H, int KH, int D)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_attn_bwd");
	LVD_ASSERT(KH > 0 && H % KH == 0);
	enum lvd_attn_mask_kind kind = mask ? mask->kind : LVD_ATTN_MASK_NONE;
	LVD_ASSERT(kind != LVD_ATTN_MASK_CAUSAL || Tq <= Tk);
	LVD_ASSERT(kind != LVD_ATTN_MASK_PADPAIR || Tq == Tk);
	LVD_ASSERT(kind != LVD_ATTN_MASK_PADPAIR || H == KH);
	size_t mk = lvd_ctx_mark(ctx), qs = (size_t)H * D, ks = (size_t)KH * D;
	struct job j = { .kind = kind, .Tq = Tq, .Tk = Tk, .H = H, .KH = KH, .D = D, .ctx = ctx,
			 .fast = lvd_ops_fast_avx2(ctx) };
	j.scr = lvd_ctx_takef(ctx, (size_t)nthreads(ctx) * 2 * QB * Tk);
	int *capidx = lvd_ctx_take(ctx, sizeof(int) * 2 * (size_t)Tq);
	int *perm = kind == LVD_ATTN_MASK_PADPAIR ? lvd_ctx_take(ctx, sizeof(int) * (size_t)Tq) : NULL;
	size_t TW = (size_t)Tq * qs;
	float *g = kind == LVD_ATTN_MASK_PADPAIR ? lvd_ctx_takef(ctx, 7 * TW) : NULL;
	for (int b = 0; b < B; b++) {
		j.q = q + (size_t)b * Tq * qs;
		j.k = k + (size_t)b * Tk * ks;
		j.v = v + (size_t)b * Tk * ks;
		j.dout = dout + (size_t)b * Tq * qs;
		j.dq = dq ? dq + (size_t)b * Tq * qs : NULL;
		j.dk = dk ? dk + (size_t)b * Tk * ks : NULL;
		j.dv = dv ? dv + (size_t)b * Tk * ks : NULL;
		setup_sample(&j, b, capidx, perm, g, q, k, v, dout, mask, cap, (float *)(uintptr_t)stats, NULL,
			     dprobs_cap, scale);
		if (j.perm) {
			j.dout = g + 3 * TW;
			memset(g + 4 * TW, 0, 3 * TW * sizeof(float));
			j.dq = dq ? g + 4 * TW : NULL;
			j.dk = dk ? g + 5 * TW : NULL;
			j.dv = dv ? g + 6 * TW : NULL;
		}
		LVD_ASSERT(lvd_ctx_parallel_for(ctx, (size_t)KH, bwd_fn, &j) == 0);
		if (!j.perm)
			continue;
		float *dst[3] = { dq, dk, dv };
		for (int t = 0; t < 3; t++) {
			if (!dst[t])
				continue;
			const float *src = g + (4 + t) * TW;
			for (int i = 0; i < Tq; i++) {
				float *d = dst[t] + ((size_t)b * Tq + j.perm[i]) * qs;
				const float *s = src + (size_t)i * qs;
				for (size_t c = 0; c < qs; c++)
					d[c] += s[c];
			}
		}
	}
	lvd_ctx_release(ctx, mk);
}

void lvd_attn_group_bias_cpu(struct lvd_ctx *ctx, float *bias, float *rowmask, const int *gmask, int N, int G,
			     int P)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_attn_group_bias");
	size_t S = (size_t)G * P;
	for (int r = 0; r < N; r++) {
		const int *gm = gmask + (size_t)r * G;
		float *br = bias + (size_t)r * S;
		int any = 0;
		for (int g = 0; g < G; g++) {
			float v = gm[g] ? 0.0f : -FLT_MAX;
			any |= gm[g] != 0;
			for (int p = 0; p < P; p++)
				br[(size_t)g * P + p] = v;
		}
		rowmask[r] = any ? 1.0f : 0.0f;
		if (!any)
			memset(br, 0, sizeof(float) * S);
	}
}
