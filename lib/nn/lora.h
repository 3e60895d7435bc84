/* lib/nn/lora.h — LoRA adapters as PEFT computes them (peft tuners/lora, Linear):
 *   y = W x (+ b) + s · B (A dropout(x)),  s = alpha / r  (alpha / √r with rslora)
 * A [r, IC] initialised kaiming-uniform(a = √5) = U(−1/√IC, 1/√IC), B [OC, r] zeros.
 * Dropout is inverted dropout driven by a counter-based RNG (seed, element index), so a
 * mask can be regenerated in backward instead of stored; it does not reproduce
 * torch's RNG stream (golden tests use p = 0).
 *
 * Letters: N rows, IC input features, OC output features, R rank. Nothing allocates. */
#ifndef LVD_NN_LORA_H
#define LVD_NN_LORA_H

#include <stddef.h>
#include <stdint.h>

/* Phase-1 leftover (issue #10): these ctx-less functions keep lib/models/mllama working
 * until it moves to lib/nn/ops/lora.h, which owns the public names; here they link under
 * lvd_legacy_* so both sets coexist. Do not include this header together with
 * nn/ops/lora.h. Deleted in phase 2. */
#define lvd_lora_matches lvd_legacy_lora_matches
#define lvd_lora_init_a lvd_legacy_lora_init_a
#define lvd_lora_dropout_fwd lvd_legacy_lora_dropout_fwd
#define lvd_lora_dropout_bwd lvd_legacy_lora_dropout_bwd
#define lvd_lora_fwd lvd_legacy_lora_fwd
#define lvd_lora_bwd lvd_legacy_lora_bwd

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the dotted module name is targeted by a comma-separated target list in PEFT's
 * list form: the name equals an entry or ends with "." + entry. */
int lvd_lora_matches(const char *module_name, const char *targets_csv);

/* A[R, IC] ← U(−1/√IC, 1/√IC) from a seeded counter RNG (deterministic, not torch's). */
void lvd_lora_init_a(float *A, int R, int IC, uint64_t seed);

/* xd[n] = x[n] · keep / (1 − p), keep ~ Bernoulli(1 − p) from (seed, i). p = 0 copies. */
void lvd_lora_dropout_fwd(float *xd, const float *x, size_t n, float p, uint64_t seed);
/* dx[i] += dxd[i] · keep / (1 − p) with the same mask. */
void lvd_lora_dropout_bwd(float *dx, const float *dxd, size_t n, float p, uint64_t seed);

/* out[N, OC] += s · (xd Aᵀ) Bᵀ; u[N, R] = xd Aᵀ is saved for backward. */
void lvd_lora_fwd(float *out, float *u, const float *xd, const float *A, const float *B,
		  float s, int N, int IC, int OC, int R);
/* Backward, accumulating: dB += s · doutᵀ u; du = s · dout B (into scratch[N, R]);
 * dA += duᵀ xd; dxd += du A. Any of dxd, dA, dB may be NULL. */
void lvd_lora_bwd(float *dxd, float *dA, float *dB, float *scratch, const float *dout,
		  const float *xd, const float *u, const float *A, const float *B,
		  float s, int N, int IC, int OC, int R);

#ifdef __cplusplus
}
#endif
#endif
