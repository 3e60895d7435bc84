/* lib/nn/ops.h — forward-only layer ops on raw fp32 buffers (CPU reference; CUDA twins
 * will take the same arguments in the same order).
 *
 * Forward ops in this file (reuse them; training ops with backward passes live in
 * lib/nn/train_*.h):
 *   lvd_layernorm_fwd       LayerNorm over the last dim        [N, C]
 *   lvd_groupnorm_fwd       GroupNorm (+ optional fused SiLU)  [C, HW] per sample
 *   lvd_conv2d_fwd          2-D convolution, im2col + GEMM     [C, H, W] -> [OC, OH, OW]
 *   lvd_conv2d_scratch      scratch floats lvd_conv2d_fwd wants for a given shape
 *   lvd_conv2d_fwd_mt       the same, output channels split over a thread pool when
 *                           the weights outweigh the pixels
 *   lvd_conv2d_naive        direct 7-loop convolution (test oracle)
 *   lvd_conv2d_winograd_fwd 3×3 stride-1 pad-1 convolution by Winograd F(2×2 or 4×4, 3×3),
 *                           transforms and GEMMs over a thread pool (conv_winograd.c)
 *   lvd_conv2d_winograd_scratch  its scratch floats
 *   lvd_conv2d_winograd_fwd_m    the same with the tile (F(2×2) or F(4×4)) chosen by the caller
 *   lvd_conv2d_winograd_tile     the tile lvd_conv2d_winograd_fwd picks for a shape
 *   lvd_linear_fwd_mt       nn.Linear (lvd_linear_fwd) with output features split over
 *                           a pool when there are fewer rows than features
 *   lvd_silu / lvd_gelu / lvd_quick_gelu   elementwise, in place allowed (out == inp)
 *   lvd_geglu_fwd           a * GELU(g) with [N, 2F] = [a | g] -> [N, F]
 *   lvd_softmax_rows        row softmax in place               [N, M]
 *   lvd_attention_fwd       multi-head softmax(QKᵀ·scale)V, blocked over queries so no
 *                           [H, Sq, Sk] tensor exists; optional causal mask; optional
 *                           head-averaged probabilities out    [Sq, Sk]
 *   lvd_attention_fwd_mt    the same, query blocks spread over a thread pool
 *   lvd_attention_naive     the same, plain loops in double (test oracle)
 *   lvd_upsample_nearest2x  [C, H, W] -> [C, 2H, 2W]
 *   lvd_timestep_embedding  sinusoidal embedding of a scalar timestep [dim]
 *   lvd_transpose           [R, C] -> [C, R]
 *   lvd_add_inplace         y += x
 *   lvd_add_bias_rows       y[N, C] += b[C]
 *   lvd_add_bias_chan       y[C, HW] += b[C]
 *
 * Conventions (STYLE.md): row-major, PyTorch shape order, outputs first, then
 * saved-for-backward, then inputs, then weights, then sizes. Nothing here allocates:
 * ops that need working memory take a `scratch` buffer whose size is documented.
 * Dimension letters: N rows/tokens, C channels, G groups, H/W height/width (or H heads
 * in attention), D head dim, Sq/Sk query/key lengths. Batch loops live in the caller
 * (every SD network runs batch 1 on the CPU). */
#ifndef LVD_NN_OPS_H
#define LVD_NN_OPS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_pool;   /* core/pool.h */

/* out[N,C] = (inp - mean) / sqrt(var + eps) * w + b, biased variance over C.
 * mean/rstd [N] are saved for backward when non-NULL. out may equal inp. */
void lvd_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp,
		       const float *w, const float *b, int N, int C, float eps);

/* GroupNorm of one sample: inp [C, HW], G groups of C/G channels, statistics over
 * (C/G)·HW with the biased variance (computed in double), then per-channel affine w, b
 * [C]. silu != 0 applies SiLU to the result (fused). out may equal inp.
 * C must be divisible by G (asserted). */
void lvd_groupnorm_fwd(float *out, const float *inp, const float *w, const float *b,
		       int C, int HW, int G, float eps, int silu);

/* Output size of a convolution along one axis. */
static inline int lvd_conv_out_size(int in, int k, int stride, int pad_lo, int pad_hi)
{
	return (in + pad_lo + pad_hi - k) / stride + 1;
}

/* Scratch floats lvd_conv2d_fwd needs for this shape: 0 for a 1×1/stride-1/no-pad conv,
 * else C·KH·KW·OW·rows where rows is capped so the im2col slab stays near 8 M floats
 * (never fewer than one output row). */
size_t lvd_conv2d_scratch(int C, int H, int W, int KH, int KW, int stride,
			  int pad_t, int pad_l, int pad_b, int pad_r);

/* out[OC, OH, OW] = conv(inp[C, H, W], w[OC, C, KH, KW]) + b[OC] (b may be NULL).
 * Zero padding pad_t/pad_l/pad_b/pad_r (asymmetric allowed, as the VAE downsampler
 * needs), one stride for both axes. scratch holds at least
 * lvd_conv2d_scratch(...) floats (NULL when that is 0); when scratch_len is larger the
 * op processes more output rows per GEMM. out must not alias inp. */
void lvd_conv2d_fwd(float *out, const float *inp, const float *w, const float *b,
		    int C, int H, int W, int OC, int KH, int KW, int stride,
		    int pad_t, int pad_l, int pad_b, int pad_r, float *scratch, size_t scratch_len);

/* lvd_conv2d_fwd with the work spread over `pool` (NULL = lvd_conv2d_fwd). When OC >= OH·OW,
 * OC >= 32·T and one im2col chunk covers the whole output (scratch_len >=
 * C·KH·KW·OH·OW, or a pointwise conv), thread t computes its contiguous block of output
 * channels with a single-threaded GEMM (OpenBLAS set to one thread meanwhile, then
 * restored; do not run GEMMs from other threads concurrently); otherwise it is
 * lvd_conv2d_fwd, threaded inside OpenBLAS. Same contract and scratch as lvd_conv2d_fwd.
 * Each output value is the same dot product as in lvd_conv2d_fwd, computed by a GEMM of
 * another shape, so results agree to fp32 rounding (not bit for bit). */
void lvd_conv2d_fwd_mt(float *out, const float *inp, const float *w, const float *b,
		       int C, int H, int W, int OC, int KH, int KW, int stride,
		       int pad_t, int pad_l, int pad_b, int pad_r, float *scratch, size_t scratch_len,
		       struct lvd_pool *pool);

/* nn.Linear out[N, OC] = inp[N, IC] @ w[OC, IC]ᵀ + bias[OC] (bias may be NULL), as
 * lvd_linear_fwd (nn/gemm.h), with output features split over `pool` when OC >= N and
 * OC >= 32·T (same OpenBLAS single-thread rule as lvd_conv2d_fwd_mt); NULL pool or other
 * shapes = lvd_linear_fwd. */
void lvd_linear_fwd_mt(float *out, const float *inp, const float *w, const float *bias,
		       int N, int IC, int OC, struct lvd_pool *pool);

/* Same result with direct loops in double precision (oracle for tests). */
void lvd_conv2d_naive(float *out, const float *inp, const float *w, const float *b,
		      int C, int H, int W, int OC, int KH, int KW, int stride,
		      int pad_t, int pad_l, int pad_b, int pad_r);

/* Scratch floats lvd_conv2d_winograd_fwd needs for this shape with a pool of T threads
 * (T < 1 counts as 1). A bound that never decreases when any argument grows, so one
 * workspace sized for the widest conv of a resolution serves every conv there. */
size_t lvd_conv2d_winograd_scratch(int C, int H, int W, int OC, int T);

/* out[OC, H, W] = conv(inp[C, H, W], w[OC, C, 3, 3], stride 1, zero padding 1) + b[OC]
 * (b may be NULL): the same result as lvd_conv2d_fwd with KH = KW = 3, stride 1, pads 1,
 * computed with Winograd F(2×2, 3×3) below 32×32 pixels (2.25× fewer multiplies; the
 * transforms add and subtract up to 16 values per term, yet on SD shapes the result
 * stays within ~1e-6 of the output scale of lvd_conv2d_fwd's) and F(4×4, 3×3) from
 * there (4× fewer multiplies, points 0, ±1, ±2; measured error up to 2.6e-6·sqrt(C) of
 * the output scale on random data, ~10× F(2×2)'s): see lvd_conv2d_winograd_tile.
 * scratch holds >= lvd_conv2d_winograd_scratch(C, H, W, OC, T) floats, T =
 * lvd_pool_threads(pool). The weights are transformed on every call (no copy kept).
 * Work is split over `pool` (NULL = the caller) with OpenBLAS set to one thread
 * meanwhile (lvd_gemm_set_threads, then restored: do not run GEMMs from other threads
 * concurrently; no nesting inside the pool's own parallel_for). The split of the work
 * into GEMMs depends only on the shape, so the result is bit-identical for every thread
 * count. out must not alias inp. */
void lvd_conv2d_winograd_fwd(float *out, const float *inp, const float *w, const float *b,
			     int C, int H, int W, int OC, float *scratch, size_t scratch_len,
			     struct lvd_pool *pool);

/* lvd_conv2d_winograd_fwd with the tile chosen by the caller: m = 2 for F(2×2, 3×3),
 * m = 4 for F(4×4, 3×3). Same contract and scratch. */
void lvd_conv2d_winograd_fwd_m(float *out, const float *inp, const float *w, const float *b,
			       int C, int H, int W, int OC, int m, float *scratch, size_t scratch_len,
			       struct lvd_pool *pool);

/* The output tile side m (2 or 4) lvd_conv2d_winograd_fwd uses for this shape. */
int lvd_conv2d_winograd_tile(int C, int H, int W, int OC);

/* Elementwise activations over n values; out may equal inp.
 * silu(x) = x·σ(x); gelu = exact erf form; quick_gelu(x) = x·σ(1.702x). */
void lvd_silu(float *out, const float *inp, size_t n);
void lvd_gelu(float *out, const float *inp, size_t n);
void lvd_quick_gelu(float *out, const float *inp, size_t n);

/* GEGLU: inp [N, 2F] holds [a | g] per row; out[N, F] = a · gelu(g). out must not
 * alias inp. */
void lvd_geglu_fwd(float *out, const float *inp, int N, int F);

/* In-place softmax over each row of x [N, M] (max-subtracted, fp32 sum; AVX2 path with
 * a ~1 ulp polynomial exp where the CPU has it; -inf entries give exactly 0). */
void lvd_softmax_rows(float *x, int N, int M);

/* Scratch floats lvd_attention_fwd needs: a [bq, Sk] score block, bq = min(Sq, 128)
 * when 128·Sk fits in 4 M floats, else fewer rows (>= 1). */
size_t lvd_attention_scratch(int Sq, int Sk);

/* Multi-head attention. q [Sq, ldq], k [Sk, ldk], v [Sk, ldv]: head h uses columns
 * [h·D, (h+1)·D) of each (contiguous head split). out [Sq, H·D] (row stride H·D) gets
 * softmax(q_h k_hᵀ · scale) v_h per head. causal != 0 masks keys j > i (needs Sq == Sk).
 * probs_mean [Sq, Sk], when non-NULL, receives the probabilities averaged over heads
 * (overwritten, not accumulated). Work is blocked over query rows: the largest
 * temporary is scratch [bq, Sk] with scratch_len >= lvd_attention_scratch(Sq, Sk);
 * a larger scratch lets it take more rows per block. out must not alias q, k, v. */
void lvd_attention_fwd(float *out, float *probs_mean, const float *q, int ldq,
		       const float *k, int ldk, const float *v, int ldv,
		       int Sq, int Sk, int H, int D, float scale, int causal,
		       float *scratch, size_t scratch_len);

/* Scratch floats lvd_attention_fwd_mt needs with a pool of T threads:
 * T · lvd_attention_scratch(Sq, Sk). */
size_t lvd_attention_scratch_mt(int Sq, int Sk, int T);

/* lvd_attention_fwd with query blocks spread over `pool` (NULL = run on the caller).
 * Thread t uses the t-th of T equal slices of scratch (each >= Sk floats); blocks hold at
 * most ceil(Sq / T) rows so every thread gets work. Every block runs its heads in order,
 * so probs_mean is summed in the same order for any T. While the pool runs, OpenBLAS is
 * set to one thread (lvd_gemm_set_threads) and restored afterwards, so do not run other
 * GEMMs concurrently from other threads. The pool must not be running a parallel_for
 * of its own caller (no nesting). */
void lvd_attention_fwd_mt(float *out, float *probs_mean, const float *q, int ldq,
			  const float *k, int ldk, const float *v, int ldv,
			  int Sq, int Sk, int H, int D, float scale, int causal,
			  float *scratch, size_t scratch_len, struct lvd_pool *pool);

/* Plain-loop double-precision oracle with the same contract (no scratch). */
void lvd_attention_naive(float *out, float *probs_mean, const float *q, int ldq,
			 const float *k, int ldk, const float *v, int ldv,
			 int Sq, int Sk, int H, int D, float scale, int causal);

/* out[C, 2H, 2W] = nearest-neighbour ×2 upsampling of inp[C, H, W]. */
void lvd_upsample_nearest2x(float *out, const float *inp, int C, int H, int W);

/* Sinusoidal timestep embedding (diffusers get_timestep_embedding): half = dim/2,
 * f_i = exp(-ln(max_period)·i/(half - freq_shift)), emb = [sin(t f), cos(t f)], or
 * [cos, sin] when flip_sin_to_cos. dim must be even (asserted). Computed in fp32 in
 * the same order as PyTorch. */
void lvd_timestep_embedding(float *out, float t, int dim, int flip_sin_to_cos,
			    float freq_shift, float max_period);

/* out[C, R] = inp[R, C]ᵀ (blocked). out must not alias inp. */
void lvd_transpose(float *out, const float *inp, int R, int C);

/* y[i] += x[i] for n values. */
void lvd_add_inplace(float *y, const float *x, size_t n);
/* y[n, c] += b[c] for a row-major [N, C] matrix. */
void lvd_add_bias_rows(float *y, const float *b, int N, int C);
/* y[c, p] += b[c] for a channel-major [C, HW] tensor. */
void lvd_add_bias_chan(float *y, const float *b, int C, int HW);

#ifdef __cplusplus
}
#endif
#endif
