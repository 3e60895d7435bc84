/* lib/nn/ops/gemm_w16.c — the input gradient of the bf16-weight linear (gemm.h), composed
 * of dispatching ops so one function serves both backends. */
#include "nn/ops/elem.h"
#include "nn/ops/gemm.h"

void lvd_linear_bwd_w16(struct lvd_ctx *ctx, float *dinp, const float *dout, const uint16_t *w, int N, int IC,
			int OC)
{
	if (!dinp || N <= 0 || IC <= 0 || OC <= 0)
		return;
	size_t mk = lvd_ctx_mark(ctx);
	uint16_t *db = lvd_ctx_take(ctx, sizeof(uint16_t) * ((size_t)N * OC + 1));
	lvd_f32_to_bf16(ctx, db, dout, (size_t)N * OC);
	lvd_gemm_bf16(ctx, 0, 0, N, IC, OC, 1.0f, db, OC, w, IC, 1.0f, dinp, IC);
	lvd_ctx_release(ctx, mk);
}
