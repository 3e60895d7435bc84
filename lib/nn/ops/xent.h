/* lib/nn/ops/xent.h — token cross-entropy (family xent), as torch's
 * cross_entropy(ignore_index=-100): logits [N, V], targets [N] in [0, V) or -100.
 * Reductions in double. CPU only for now (asserts a CPU context). */
#ifndef LVD_NN_OPS_XENT_H
#define LVD_NN_OPS_XENT_H

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the summed loss over kept rows; *count = kept rows (the mean divides by it). */
double lvd_xent_fwd(struct lvd_ctx *ctx, int *count, const float *logits, const int *targets, int N, int V);
/* dlogits += scale · (softmax(logits) − onehot(target)) for kept rows (ACCUMULATES;
 * scale = 1/count for the mean). */
void lvd_xent_bwd(struct lvd_ctx *ctx, float *dlogits, const float *logits, const int *targets, float scale,
		  int N, int V);

#ifdef __cplusplus
}
#endif
#endif
