/* lib/nn/ops/attention_cpu.c — CPU blocked inference attention and its oracle (contract
 * in attention.h). */
#include "nn/ops/attention.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "nn/ops/cpu_internal.h"
#include "nn/ops/softmax.h"

#define ATTN_BLOCK_ROWS 128
#define ATTN_BLOCK_FLOATS ((size_t)4 << 20)
#define ATTN_MIN_BLOCKS 8

/* Rows per score block for one thread. */
static size_t attn_rows(int Sq, int Sk)
{
	size_t rows = ATTN_BLOCK_ROWS;
	if (rows * (size_t)Sk > ATTN_BLOCK_FLOATS)
		rows = ATTN_BLOCK_FLOATS / (size_t)Sk;
	if (rows < 1)
		rows = 1;
	if (rows > (size_t)Sq)
		rows = (size_t)Sq;
	return rows;
}

struct attn_job {
	struct lvd_ctx *ctx;
	float *out, *probs_mean, *scratch;
	const float *q, *k, *v;
	int ldq, ldk, ldv, Sq, Sk, H, D, causal, bq;
	int by_head;              /* 1: items are (block, head) pairs (no probs_mean) */
	size_t per_thread;
	float scale;
};

/* Work items [begin, end): query blocks of bq rows with every head of a block in head
 * order (so the head average is accumulated in one fixed order whatever the thread
 * count), or, without a head average, (block, head) pairs, which every thread count
 * computes with the same GEMMs too. */
static int attn_blocks(void *u, size_t begin, size_t end, int tid)
{
	const struct attn_job *j = u;
	int Sk = j->Sk, D = j->D, HD = j->H * j->D;
	float invH = 1.0f / (float)j->H;
	float *S = j->scratch + (size_t)tid * j->per_thread;
	for (size_t it = begin; it < end; it++) {
		size_t blk = j->by_head ? it / (size_t)j->H : it;
		int h0 = j->by_head ? (int)(it % (size_t)j->H) : 0, h1 = j->by_head ? h0 + 1 : j->H;
		int i0 = (int)blk * j->bq;
		int r = j->Sq - i0 < j->bq ? j->Sq - i0 : j->bq;
		for (int h = h0; h < h1; h++) {
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, Sk, D, j->scale,
				    j->q + (size_t)i0 * j->ldq + (size_t)h * D, j->ldq, j->k + (size_t)h * D, j->ldk,
				    0.0f, S, Sk);
			if (j->causal)
				for (int i = 0; i < r; i++)
					for (int c = i0 + i + 1; c < Sk; c++)
						S[(size_t)i * Sk + c] = -INFINITY;
			lvd_softmax_fwd_cpu(j->ctx, S, S, r, Sk);
			if (j->probs_mean) {
				float *pm = j->probs_mean + (size_t)i0 * Sk;
				size_t n = (size_t)r * Sk;
				if (h == 0)
					for (size_t c = 0; c < n; c++)
						pm[c] = S[c] * invH;
				else
					for (size_t c = 0; c < n; c++)
						pm[c] += S[c] * invH;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, D, Sk, 1.0f, S, Sk,
				    j->v + (size_t)h * D, j->ldv, 0.0f, j->out + (size_t)i0 * HD + (size_t)h * D, HD);
		}
	}
	return 0;
}

void lvd_attention_fwd_cpu(struct lvd_ctx *ctx, float *out, float *probs_mean, const float *q, int ldq,
			   const float *k, int ldk, const float *v, int ldv,
			   int Sq, int Sk, int H, int D, float scale, int causal)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_attention_fwd");
	LVD_ASSERT(!causal || Sq == Sk);
	LVD_ASSERT(Sq > 0 && Sk > 0 && H > 0 && D > 0);
	int T = lvd_ops_threads(ctx);
	/* The block plan depends on the shape only (so every thread count runs the same
	 * GEMMs and gives the same bits). Without a head average the items are (block, head)
	 * pairs of full-size blocks (H items per block keep a pool busy); with one, a block
	 * runs all its heads in order, so blocks are cut to >= 16 rows, up to
	 * ATTN_MIN_BLOCKS of them, to give a pool work when Sq is short. */
	int bq = (int)attn_rows(Sq, Sk);
	int by_head = probs_mean == NULL && H > 1;
	if (!by_head) {
		int fair = (Sq + ATTN_MIN_BLOCKS - 1) / ATTN_MIN_BLOCKS;
		fair = fair < 16 ? 16 : fair;
		if (bq > fair)
			bq = fair;
	}
	size_t per = (size_t)bq * Sk;
	size_t mk = lvd_ctx_mark(ctx);
	struct attn_job j = {
		.ctx = ctx, .out = out, .probs_mean = probs_mean, .scratch = lvd_ctx_takef(ctx, per * T),
		.q = q, .k = k, .v = v, .ldq = ldq, .ldk = ldk, .ldv = ldv, .Sq = Sq, .Sk = Sk, .H = H, .D = D,
		.causal = causal, .bq = bq, .by_head = by_head, .per_thread = per, .scale = scale,
	};
	size_t nblk = (size_t)((Sq + bq - 1) / bq);
	lvd_ops_run(ctx, by_head ? nblk * (size_t)H : nblk, attn_blocks, &j);
	lvd_ctx_release(ctx, mk);
}

void lvd_attention_naive(struct lvd_ctx *ctx, float *out, float *probs_mean, const float *q, int ldq,
			 const float *k, int ldk, const float *v, int ldv,
			 int Sq, int Sk, int H, int D, float scale, int causal)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_attention_naive");
	int HD = H * D;
	if (probs_mean)
		memset(probs_mean, 0, sizeof(float) * (size_t)Sq * Sk);
	for (int h = 0; h < H; h++)
		for (int i = 0; i < Sq; i++) {
			double mx = -INFINITY, s = 0;
			int n = causal ? i + 1 : Sk;
			double p[n > 0 ? n : 1];
			for (int j = 0; j < n; j++) {
				double d = 0;
				for (int e = 0; e < D; e++)
					d += (double)q[(size_t)i * ldq + h * D + e] * k[(size_t)j * ldk + h * D + e];
				p[j] = d * scale;
				mx = p[j] > mx ? p[j] : mx;
			}
			for (int j = 0; j < n; j++) {
				p[j] = exp(p[j] - mx);
				s += p[j];
			}
			for (int j = 0; j < n; j++) {
				p[j] /= s;
				if (probs_mean)
					probs_mean[(size_t)i * Sk + j] += (float)(p[j] / H);
			}
			for (int e = 0; e < D; e++) {
				double o = 0;
				for (int j = 0; j < n; j++)
					o += p[j] * v[(size_t)j * ldv + h * D + e];
				out[(size_t)i * HD + h * D + e] = (float)o;
			}
		}
}
