/* lib/nn/ops/kvattn.h — inference attention over a key/value cache (family "kvattn"):
 * the newest Tq query rows of each sample attend causally to the first Tk cached keys,
 * with a per-sample key mask (left padding of batched prompts). Forward only; keeps
 * nothing for backward (generation with a KV cache, lib/models/mllama/mllama_gen.c).
 *
 * Letters: B batch, Tq new query rows, Tk filled cache length (Tq <= Tk <= Tc), Tc cache
 * capacity, H query heads, KH key/value heads (H % KH == 0; query head h uses kv head
 * h / (H/KH)), D head dim.
 *
 * Tensors (row-major): q, out [B, Tq, H·D]; kc, vc [B, Tc, KH·D] (rows >= Tk unread);
 *   keep [B, Tc] uint8 or NULL (all kept).
 * Visibility: query row i of sample b sits at cache position Tk − Tq + i and sees key j
 *   iff j <= Tk − Tq + i and keep[b, j] != 0. A row that sees no key gets out = 0 (only
 *   pad rows of a left-padded prompt; nothing reads them).
 * Numerics: p = softmax(scale · q·k) over the visible keys, expf, max-subtracted, the
 *   row sum in double, out = Σ p·v in fp32; equal to lvd_attn_fwd (causal) up to
 *   summation order. Work splits over (sample, head) on ctx's pool; results do not
 *   depend on the thread count. Workspace: threads·Tk floats.
 * CUDA twin (kvattn.cu): same arguments in device memory (keep included), D <= 256; the
 *   attn family's flash-style forward (online softmax over key tiles, row sum in fp32
 *   with rescaling): agrees to fp32 rounding. No workspace. */
#ifndef LVD_NN_OPS_KVATTN_H
#define LVD_NN_OPS_KVATTN_H

#include <stdint.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

#if LVD_HAVE_CUDA
void lvd_kvattn_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *q, const float *kc, const float *vc,
			 const uint8_t *keep, float scale, int B, int Tq, int Tk, int Tc, int H, int KH, int D);
#endif

/* out overwritten. Asserts Tq >= 1, Tq <= Tk <= Tc, H % KH == 0. */
void lvd_kvattn_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *q, const float *kc, const float *vc,
			const uint8_t *keep, float scale, int B, int Tq, int Tk, int Tc, int H, int KH, int D);
static inline void lvd_kvattn_fwd(struct lvd_ctx *ctx, float *out, const float *q, const float *kc,
				  const float *vc, const uint8_t *keep, float scale, int B, int Tq, int Tk, int Tc,
				  int H, int KH, int D)
{
#if LVD_HAVE_CUDA
	if (ctx->backend == LVD_BACKEND_CUDA) {
		lvd_kvattn_fwd_cuda(ctx, out, q, kc, vc, keep, scale, B, Tq, Tk, Tc, H, KH, D);
		return;
	}
#endif
	lvd_kvattn_fwd_cpu(ctx, out, q, kc, vc, keep, scale, B, Tq, Tk, Tc, H, KH, D);
}

#ifdef __cplusplus
}
#endif
#endif
