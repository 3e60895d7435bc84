/* lib/models/mllama/mllama_lora.c — the linear layer with an optional LoRA adapter,
 * used by both towers (PEFT numerics, lib/nn/ops/lora.h), on the model's context. A
 * weight stored in bf16 on a device model (lvd_mllama_to_device with w16: frozen linear
 * weights) takes the bf16-weight products: lvd_linear_fwd_w16 forward, lvd_linear_bwd_w16
 * for the input gradient (it gets no weight gradient). */
#include "models/llama_layer.h"
#include "models/mllama/mllama_internal.h"
#include "nn/ops/gemm.h"

/* the glue is lib/models/llama_layer.c's, shared with minicpmv */
static struct lvd_llama_lora glue(const struct lvd_mllama *m, const struct lvd_mllama_lora *l)
{
	struct lvd_llama_lora g = { l->A, l->B, l->dA, l->dB, m->lora_r, m->lora_s, m->lora_p };
	return g;
}

void mllama_lin_fwd(struct lvd_mllama *m, float *out, float *u, float *xd, const float *x, const float *W,
		    const float *b, const struct lvd_mllama_lora *l, int N, int IC, int OC, uint64_t seed)
{
	struct lvd_llama_lora g = l ? glue(m, l) : (struct lvd_llama_lora){ 0 };
	const uint16_t *w16 = mllama_dev_w16(m, W);
	if (w16)
		lvd_linear_fwd_w16(m->ctx, out, x, w16, b, N, IC, OC);
	lvd_llama_lora_lin_fwd(m->ctx, out, u, xd, x, w16 ? NULL : W, b, l ? &g : NULL, N, IC, OC, seed);
}

void mllama_lin_bwd(struct lvd_mllama *m, float *dx, float *dW, float *db, const float *dout, const float *x,
		    const float *W, const float *u, const float *xd, struct lvd_mllama_lora *l, int N, int IC, int OC,
		    uint64_t seed)
{
	int base = mllama_train_base(m);
	struct lvd_llama_lora g = l ? glue(m, l) : (struct lvd_llama_lora){ 0 };
	const uint16_t *w16 = mllama_dev_w16(m, W);
	if (w16) {
		LVD_ASSERTF(!base || (!dW && !db), "mllama: a bf16 (frozen) weight asked for its gradient");
		lvd_linear_bwd_w16(m->ctx, dx, dout, w16, N, IC, OC);
	}
	lvd_llama_lora_lin_bwd(m->ctx, dx, base ? dW : NULL, base ? db : NULL, dout, x, w16 ? NULL : W, u, xd,
			       l ? &g : NULL, N, IC, OC, seed);
}
