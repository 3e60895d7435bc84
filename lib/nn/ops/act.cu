// lib/nn/ops/act.cu — CUDA twins of family act (ops/act.h): GELU (exact erf, tanh,
// quick = x·σ(1.702x)), SiLU, SwiGLU, GEGLU, forward and backward, as grid-stride
// elementwise kernels. Accurate libdevice expf/erff/tanhf (no fast-math intrinsics).
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/act.h"

namespace {

constexpr float SQRT1_2 = 0.70710678118654752f;
constexpr float INV_SQRT_2PI = 0.39894228040143268f;
constexpr float SQRT_2_PI = 0.79788456080286536f; // √(2/π)
constexpr float GELU_TANH_A = 0.044715f;
constexpr float QUICK_K = 1.702f;

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ inline float gelu_f(float x, int kind)
{
	switch (kind) {
	case LVD_GELU_TANH:
		return 0.5f * x * (1.0f + tanhf(SQRT_2_PI * (x + GELU_TANH_A * x * x * x)));
	case LVD_GELU_QUICK:
		return x * sigmoid(QUICK_K * x);
	default:
		return 0.5f * x * (1.0f + erff(x * SQRT1_2));
	}
}

__device__ inline float gelu_d(float x, int kind)
{
	switch (kind) {
	case LVD_GELU_TANH: {
		float t = tanhf(SQRT_2_PI * (x + GELU_TANH_A * x * x * x));
		return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * SQRT_2_PI * (1.0f + 3.0f * GELU_TANH_A * x * x);
	}
	case LVD_GELU_QUICK: {
		float s = sigmoid(QUICK_K * x);
		return s + QUICK_K * x * s * (1.0f - s);
	}
	default:
		return 0.5f * (1.0f + erff(x * SQRT1_2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
	}
}

#define GRID_STRIDE(i, n) \
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void gelu_fwd_kernel(float *out, const float *inp, size_t n, int kind)
{
	GRID_STRIDE(i, n) out[i] = gelu_f(inp[i], kind);
}

__global__ void gelu_bwd_kernel(float *dinp, const float *dout, const float *inp, size_t n, int kind)
{
	GRID_STRIDE(i, n) dinp[i] += dout[i] * gelu_d(inp[i], kind);
}

__global__ void silu_fwd_kernel(float *out, const float *inp, size_t n)
{
	GRID_STRIDE(i, n) {
		float x = inp[i];
		out[i] = x / (1.0f + expf(-x));
	}
}

__global__ void silu_bwd_kernel(float *dinp, const float *dout, const float *inp, size_t n)
{
	GRID_STRIDE(i, n) {
		float x = inp[i], s = sigmoid(x);
		dinp[i] += dout[i] * s * (1.0f + x * (1.0f - s));
	}
}

__global__ void swiglu_fwd_kernel(float *out, const float *gate, const float *up, size_t n)
{
	GRID_STRIDE(i, n) {
		float g = gate[i];
		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

__global__ void swiglu_bwd_kernel(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
				  size_t n)
{
	GRID_STRIDE(i, n) {
		float g = gate[i], s = sigmoid(g), d = dout[i];
		if (dup)
			dup[i] += d * g * s;
		if (dgate)
			dgate[i] += d * up[i] * s * (1.0f + g * (1.0f - s));
	}
}

// inp [N, 2F] = [a | g] per row; out [N, F]
__global__ void geglu_fwd_kernel(float *out, const float *inp, int F, size_t total)
{
	GRID_STRIDE(i, total) {
		size_t r = i / (size_t)F, f = i % (size_t)F;
		const float *row = inp + r * 2 * (size_t)F;
		out[i] = row[f] * gelu_f(row[F + f], LVD_GELU_EXACT);
	}
}

__global__ void geglu_bwd_kernel(float *dinp, const float *dout, const float *inp, int F, size_t total)
{
	GRID_STRIDE(i, total) {
		size_t r = i / (size_t)F, f = i % (size_t)F;
		const float *row = inp + r * 2 * (size_t)F;
		float *drow = dinp + r * 2 * (size_t)F;
		float a = row[f], g = row[F + f], d = dout[i];
		drow[f] += d * gelu_f(g, LVD_GELU_EXACT);
		drow[F + f] += d * a * gelu_d(g, LVD_GELU_EXACT);
	}
}

} // namespace

#define LAUNCH_ELEM(ctx, n, kernel, ...) do { \
	if ((n) == 0) return; \
	kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(__VA_ARGS__); \
	LVD_CU_LAUNCHED(); } while (0)

extern "C" void lvd_gelu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, size_t n, enum lvd_gelu_kind kind)
{
	LAUNCH_ELEM(ctx, n, gelu_fwd_kernel, out, inp, n, (int)kind);
}

extern "C" void lvd_gelu_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n,
				  enum lvd_gelu_kind kind)
{
	if (!dinp)
		return;
	LAUNCH_ELEM(ctx, n, gelu_bwd_kernel, dinp, dout, inp, n, (int)kind);
}

extern "C" void lvd_silu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, size_t n)
{
	LAUNCH_ELEM(ctx, n, silu_fwd_kernel, out, inp, n);
}

extern "C" void lvd_silu_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n)
{
	if (!dinp)
		return;
	LAUNCH_ELEM(ctx, n, silu_bwd_kernel, dinp, dout, inp, n);
}

extern "C" void lvd_swiglu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *gate, const float *up, size_t n)
{
	LAUNCH_ELEM(ctx, n, swiglu_fwd_kernel, out, gate, up, n);
}

extern "C" void lvd_swiglu_bwd_cuda(struct lvd_ctx *ctx, float *dgate, float *dup, const float *dout,
				    const float *gate, const float *up, size_t n)
{
	if (!dgate && !dup)
		return;
	LAUNCH_ELEM(ctx, n, swiglu_bwd_kernel, dgate, dup, dout, gate, up, n);
}

extern "C" void lvd_geglu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int N, int F)
{
	if (N <= 0 || F <= 0)
		return;
	size_t total = (size_t)N * F;
	LAUNCH_ELEM(ctx, total, geglu_fwd_kernel, out, inp, F, total);
}

extern "C" void lvd_geglu_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, int N, int F)
{
	if (N <= 0 || F <= 0 || !dinp)
		return;
	size_t total = (size_t)N * F;
	LAUNCH_ELEM(ctx, total, geglu_bwd_kernel, dinp, dout, inp, F, total);
}
