// lib/nn/ops/kvattn.cu — CUDA twin of family kvattn (ops/kvattn.h): decode-step
// attention over a KV cache, the attn family's flash-style forward kernel
// (attn_fwd.cuh) with the cache visibility (key j <= Tk − Tq + i and keep[b, j]), the
// cache's row stride Tc, no stats and no capture rows. A row that sees no key gets 0.
#include "nn/ops/attn_fwd.cuh"
#include "nn/ops/kvattn.h"

extern "C" void lvd_kvattn_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *q, const float *kc,
				    const float *vc, const uint8_t *keep, float scale, int B, int Tq, int Tk, int Tc, int H,
				    int KH, int D)
{
	using namespace lvd_attn_cu;
	LVD_ASSERT(KH > 0 && H % KH == 0 && Tq >= 1 && Tq <= Tk && Tk <= Tc && B >= 1 && D >= 1);
	LVD_ASSERTF(D <= DMAX, "lvd_kvattn_fwd_cuda: head dim %d > %d", D, DMAX);
	LVD_ASSERTF(H <= 65535 && B <= 65535, "lvd_kvattn_fwd_cuda: B %d / H %d beyond the grid", B, H);
	args a = {};
	a.q = q, a.k = kc, a.v = vc, a.out = out, a.keep = keep;
	a.kind = KIND_KV;
	a.Tq = Tq, a.Tk = Tk, a.kT = Tc, a.H = H, a.KH = KH, a.D = D, a.qoff = Tk - Tq;
	a.scale = scale;
	launch_fwd(lvd_cu::stream(ctx), a, B);
}
