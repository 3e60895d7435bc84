/* lib/nn/ops/kvattn_cpu.c — CPU reference of the kvattn family (lib/nn/ops/kvattn.h):
 * one (sample, head) per work item, rows scored with plain dot products. */
#include "nn/ops/kvattn.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "nn/ops/cpu_internal.h"

struct kvjob {
	float *out, *scr;
	const float *q, *kc, *vc;
	const uint8_t *keep;
	float scale;
	int Tq, Tk, Tc, H, KH, D;
};

static int kv_fn(void *user, size_t lo, size_t hi, int tid)
{
	const struct kvjob *j = user;
	int D = j->D, rep = j->H / j->KH;
	size_t qs = (size_t)j->H * D, ks = (size_t)j->KH * D;
	float *s = j->scr + (size_t)tid * j->Tk;
	for (size_t u = lo; u < hi; u++) {
		int b = (int)(u / (size_t)j->H), h = (int)(u % (size_t)j->H), kvh = h / rep;
		const uint8_t *keep = j->keep ? j->keep + (size_t)b * j->Tc : NULL;
		const float *K = j->kc + (size_t)b * j->Tc * ks + (size_t)kvh * D;
		const float *V = j->vc + (size_t)b * j->Tc * ks + (size_t)kvh * D;
		for (int i = 0; i < j->Tq; i++) {
			const float *qr = j->q + ((size_t)b * j->Tq + i) * qs + (size_t)h * D;
			float *o = j->out + ((size_t)b * j->Tq + i) * qs + (size_t)h * D;
			int je = j->Tk - j->Tq + i + 1, any = 0;
			float mx = -INFINITY;
			for (int c = 0; c < je; c++) {
				if (keep && !keep[c])
					continue;
				const float *kr = K + (size_t)c * ks;
				float d = 0.0f;
				for (int e = 0; e < D; e++)
					d += qr[e] * kr[e];
				s[c] = d * j->scale;
				mx = s[c] > mx ? s[c] : mx;
				any = 1;
			}
			memset(o, 0, sizeof(float) * (size_t)D);
			if (!any)
				continue;
			double sum = 0;
			for (int c = 0; c < je; c++) {
				if (keep && !keep[c])
					continue;
				s[c] = expf(s[c] - mx);
				sum += s[c];
			}
			float inv = (float)(1.0 / sum);
			for (int c = 0; c < je; c++) {
				if (keep && !keep[c])
					continue;
				float p = s[c] * inv;
				const float *vr = V + (size_t)c * ks;
				for (int e = 0; e < D; e++)
					o[e] += p * vr[e];
			}
		}
	}
	return 0;
}

void lvd_kvattn_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *q, const float *kc, const float *vc,
			const uint8_t *keep, float scale, int B, int Tq, int Tk, int Tc, int H, int KH, int D)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_kvattn_fwd");
	LVD_ASSERT(KH > 0 && H % KH == 0 && Tq >= 1 && Tq <= Tk && Tk <= Tc && B >= 1 && D >= 1);
	size_t mk = lvd_ctx_mark(ctx);
	int nt = ctx->pool ? lvd_pool_threads(ctx->pool) : 1;
	struct kvjob j = { .out = out, .q = q, .kc = kc, .vc = vc, .keep = keep, .scale = scale, .Tq = Tq, .Tk = Tk,
			   .Tc = Tc, .H = H, .KH = KH, .D = D };
	j.scr = lvd_ctx_takef(ctx, (size_t)nt * Tk);
	LVD_ASSERT(lvd_ctx_parallel_for(ctx, (size_t)B * H, kv_fn, &j) == 0);
	lvd_ctx_release(ctx, mk);
}
