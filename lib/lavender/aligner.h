/* lib/lavender/aligner.h — the Lavender Aligner: a small conv net that turns the
 * head-stacked VLM attention of one text row (heads = input channels) into one map,
 * forward and backward, with the official variants and state-dict names.
 *
 * The official module (AstraZeneca/vlm, diffag/diffag_xattn_manager.py, class
 * DiffagFovProjection; ../shared/reference/lavender.md §1.2) has five 3×3 convs without
 * bias (padding 1), three norms, one activation and a 1×1 conv with bias:
 *   diffag_expand_1  d_in -> d_h      diffag_norm1 (d_h)
 *   diffag_expand_2  d_h  -> d_h      diffag_norm2 (d_h)
 *   diffag_squeeze_1 d_h  -> d_in     diffag_norm3 (d_in)
 *   diffag_expand_3  d_h  -> d_h      (deep only; always instantiated)
 *   diffag_expand_4  d_h  -> d_h      (deep only; always instantiated)
 *   diffag_conv_last d_in -> 1, 1×1, with bias
 * Depths (act = ReLU6 or LeakyReLU(0.1), norm = InstanceNorm2d (affine off, eps 1e-5),
 * GroupNorm(C, C) (affine, i.e. instance statistics with a per-channel weight and bias)
 * or none):
 *   light: a = act(norm1(e1(x)));                          y = last(act(norm3(sq(a))))
 *   sim:   a = act(norm1(e1(x))); a = act(norm2(e2(a)));   y = last(act(norm3(sq(a))))   (default)
 *   deep:  a = act(norm1(e1(x))); a = act(norm2(e2(a))); a = act(e3(a)); a = act(e4(a));
 *          y = last(act(norm3(sq(a))))
 * d_in is the number of heads of the hooked layers (32 for Llama-3.2-11B-Vision).
 *
 * Parameters live in ONE contiguous fp32 block; lvd_aligner_layout names every tensor
 * (official state-dict names, PyTorch shapes) and its offset. All five convs are in the
 * block for every depth, as the official module instantiates them (so a state dict
 * loads either way); unused ones get zero gradients. GroupNorm weights/biases are in the
 * block only with norm = group.
 *
 * Shapes (PyTorch order; N independent images of H×W cells, HW = H·W):
 *   inp, dinp [N, d_in, H, W]; out, dout [N, 1, H, W]; params, dparams [n_params].
 * The forward saves what the backward needs into `saved` (lvd_aligner_saved_floats
 * floats; NULL for inference). The backward ACCUMULATES into dinp and dparams (either may
 * be NULL: skipped). Working memory comes from ctx's workspace; nothing allocates.
 * CPU only for now (the ops it uses have no CUDA twins yet): asserts a CPU context.
 * Errors: lvd_aligner_cfg_check returns LVD_ERR_INVALID naming the field; the compute
 * functions assert a checked cfg. Files: aligner_cfg.c (configuration, layout,
 * initialisation; no execution context), aligner.c (forward/backward), aligner_io.c
 * (load/save through lib/io/safetensors). */
#ifndef LVD_LAVENDER_ALIGNER_H
#define LVD_LAVENDER_ALIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_ctx; /* nn/ctx.h */

enum lvd_aligner_depth { LVD_ALIGNER_SIM = 0, LVD_ALIGNER_LIGHT = 1, LVD_ALIGNER_DEEP = 2 };
enum lvd_aligner_norm { LVD_ALIGNER_INSTANCE = 0, LVD_ALIGNER_GROUP = 1, LVD_ALIGNER_NONORM = 2 };
enum lvd_aligner_act { LVD_ALIGNER_RELU6 = 0, LVD_ALIGNER_LEAKY = 1 };
enum lvd_aligner_init { LVD_ALIGNER_INIT_NORMAL = 0, LVD_ALIGNER_INIT_KAIMING = 1 };

struct lvd_aligner_cfg {
	enum lvd_aligner_depth depth;
	enum lvd_aligner_norm norm;
	enum lvd_aligner_act act;
	int d_in;        /* heads of the hooked layers (input channels), 1..4096 */
	int d_h;         /* hidden width (diffag_hidden_dim), 1..4096; official 32 */
	float norm_eps;  /* 1e-5 (PyTorch default of InstanceNorm2d / GroupNorm) */
	float slope;     /* LeakyReLU negative slope, 0.1 */
};

/* sim, instance, relu6, d_h 32, eps 1e-5, slope 0.1 and the given d_in. */
void lvd_aligner_cfg_default(struct lvd_aligner_cfg *cfg, int d_in);
int lvd_aligner_cfg_check(const struct lvd_aligner_cfg *cfg, struct lvd_error *err);
/* "sim"/"light"/"deep", "instance"/"group"/"none" (also "identical"), "relu6" (also
 * "relu", the official spelling)/"leaky" (also "leakyrelu"). LVD_ERR_INVALID otherwise. */
int lvd_aligner_parse_depth(const char *s, enum lvd_aligner_depth *out, struct lvd_error *err);
int lvd_aligner_parse_norm(const char *s, enum lvd_aligner_norm *out, struct lvd_error *err);
int lvd_aligner_parse_act(const char *s, enum lvd_aligner_act *out, struct lvd_error *err);

#define LVD_ALIGNER_MAX_TENSORS 13

/* Tensor indices in the layout (fixed; norm entries have n == 0 unless norm = group). */
enum {
	LVD_AL_EXPAND_1 = 0, LVD_AL_EXPAND_2, LVD_AL_SQUEEZE_1, LVD_AL_EXPAND_3, LVD_AL_EXPAND_4,
	LVD_AL_NORM1_W, LVD_AL_NORM1_B, LVD_AL_NORM2_W, LVD_AL_NORM2_B, LVD_AL_NORM3_W, LVD_AL_NORM3_B,
	LVD_AL_LAST_W, LVD_AL_LAST_B
};

struct lvd_aligner_tensor {
	const char *name;     /* official state-dict name, e.g. "diffag_expand_1.weight" */
	int ndim;
	int64_t shape[4];
	size_t off, n;        /* offset into the block and element count (0: absent) */
};

struct lvd_aligner_layout {
	struct lvd_aligner_tensor t[LVD_ALIGNER_MAX_TENSORS];
	size_t n_params;      /* floats in the block */
};

/* Fills the layout for a checked cfg. Order in the block: the five convs, the norms
 * (group only), conv_last weight, conv_last bias. */
void lvd_aligner_layout(struct lvd_aligner_layout *lay, const struct lvd_aligner_cfg *cfg);

/* Initialises params[n_params] from the seeded counter RNG (lib/core/rng.h), stream
 * LVD_ALIGNER_RNG_STREAM + tensor index, value j of a tensor = index j:
 *   NORMAL  (official run: from_pretrained initialises the missing module with the
 *            model's initializer_range): conv weights N(0, std) (std 0.02), biases 0;
 *   KAIMING (PyTorch's Conv2d default, kaiming_uniform(a = sqrt 5)): weights and bias
 *            U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels·kh·kw.
 * GroupNorm weights 1, biases 0 either way. */
#define LVD_ALIGNER_RNG_STREAM 0x414C49474E000000ull /* "ALIGN" */
void lvd_aligner_init(const struct lvd_aligner_cfg *cfg, float *params, uint64_t seed,
		      enum lvd_aligner_init how, float std);

/* Floats of `saved` the forward writes for N images of HW cells. */
size_t lvd_aligner_saved_floats(const struct lvd_aligner_cfg *cfg, int N, int HW);

/* out[N, 1, H, W] = Aligner(inp[N, d_in, H, W]). saved: NULL or
 * lvd_aligner_saved_floats(cfg, N, H·W) floats (kept for lvd_aligner_bwd). */
void lvd_aligner_fwd(struct lvd_ctx *ctx, float *out, float *saved, const float *inp,
		     const float *params, const struct lvd_aligner_cfg *cfg, int N, int H, int W);

/* dinp += ∂/∂inp, dparams += ∂/∂params of <dout, out> (ACCUMULATES; NULL skipped),
 * with the `saved` block and the same inp/params the forward saw. */
void lvd_aligner_bwd(struct lvd_ctx *ctx, float *dinp, float *dparams, const float *dout,
		     const float *saved, const float *inp, const float *params,
		     const struct lvd_aligner_cfg *cfg, int N, int H, int W);

/* Save params as a safetensors file with the official names (F32), metadata
 * "lvd.aligner" = "depth=sim norm=instance act=relu6 d_in=32 d_h=32". Atomic. */
int lvd_aligner_save(const struct lvd_aligner_cfg *cfg, const float *params, const char *path,
		     struct lvd_error *err);
/* Load params[n_params] from a safetensors file (or an HF checkpoint folder). Each
 * tensor is found by its official name, or by a key ending in "." + that name (a
 * module prefix such as "diffag_projection."), or by the name without the "diffag_"
 * prefix (issue #11's spelling, "expand_1.weight"); shapes must match exactly; any
 * float dtype converts. expand_3/expand_4 may be absent for depths that do not use
 * them (left as they are). LVD_ERR_NOTFOUND / LVD_ERR_INVALID name the tensor. */
int lvd_aligner_load(const struct lvd_aligner_cfg *cfg, float *params, const char *path,
		     struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
