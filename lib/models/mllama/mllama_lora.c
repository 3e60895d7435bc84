/* lib/models/mllama/mllama_lora.c — the linear layer with an optional LoRA adapter,
 * used by both towers (PEFT numerics, lib/nn/ops/lora.h), on the model's context. */
#include <string.h>

#include "models/mllama/mllama_internal.h"
#include "nn/ctx.h"
#include "nn/ops/gemm.h"
#include "nn/ops/lora.h"

void mllama_lin_fwd(struct lvd_mllama *m, float *out, float *u, float *xd, const float *x, const float *W,
		    const float *b, const struct lvd_mllama_lora *l, int N, int IC, int OC, uint64_t seed)
{
	lvd_linear_fwd(m->ctx, out, x, W, b, N, IC, OC);
	if (!l)
		return;
	const float *xin = x;
	if (m->lora_p > 0) {
		lvd_lora_dropout_fwd(m->ctx, xd, x, (size_t)N * IC, m->lora_p, seed);
		xin = xd;
	}
	lvd_lora_fwd(m->ctx, out, u, xin, l->A, l->B, m->lora_s, N, IC, OC, m->lora_r);
}

void mllama_lin_bwd(struct lvd_mllama *m, float *dx, float *dW, float *db, const float *dout, const float *x,
		    const float *W, const float *u, const float *xd, struct lvd_mllama_lora *l, int N, int IC, int OC,
		    uint64_t seed)
{
	int base = mllama_train_base(m);
	lvd_linear_bwd(m->ctx, dx, base ? dW : NULL, base ? db : NULL, dout, x, W, N, IC, OC);
	if (!l)
		return;
	if (m->lora_p > 0) {
		size_t mk = lvd_ctx_mark(m->ctx);
		float *dxd = dx ? lvd_ctx_takef(m->ctx, (size_t)N * IC) : NULL;
		if (dxd)
			memset(dxd, 0, sizeof(float) * (size_t)N * IC);
		lvd_lora_bwd(m->ctx, dxd, l->dA, l->dB, dout, xd, u, l->A, l->B, m->lora_s, N, IC, OC, m->lora_r);
		if (dx)
			lvd_lora_dropout_bwd(m->ctx, dx, dxd, (size_t)N * IC, m->lora_p, seed);
		lvd_ctx_release(m->ctx, mk);
	} else {
		lvd_lora_bwd(m->ctx, dx, l->dA, l->dB, dout, x, u, l->A, l->B, m->lora_s, N, IC, OC, m->lora_r);
	}
}
