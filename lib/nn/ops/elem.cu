// lib/nn/ops/elem.cu — CUDA twins of family elem (ops/elem.h): copy, add, axpy, scale, bias
// over rows and over channels, fp32 <-> bf16 conversion (round to nearest even), as
// grid-stride elementwise kernels; transpose by 32×32 tiles.
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/elem.h"

namespace {

#define GRID_STRIDE(i, n) \
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void add_kernel(float *y, const float *x, size_t n)
{
	GRID_STRIDE(i, n) y[i] += x[i];
}

__global__ void axpy_kernel(float *y, float a, const float *x, size_t n)
{
	GRID_STRIDE(i, n) y[i] += a * x[i];
}

__global__ void scale_kernel(float *y, float a, size_t n)
{
	GRID_STRIDE(i, n) y[i] *= a;
}

// y[N, C] += b[C]: blockIdx.y walks rows, x threads walk columns
__global__ void bias_rows_kernel(float *y, const float *b, int N, int C)
{
	for (int r = blockIdx.y; r < N; r += gridDim.y)
		for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x)
			y[(size_t)r * C + c] += b[c];
}

__global__ void f32_to_bf16_kernel(uint16_t *out, const float *inp, size_t n)
{
	GRID_STRIDE(i, n) out[i] = lvd_cu::f32_to_bf16_bits(inp[i]);
}

__global__ void bf16_to_f32_kernel(float *out, const uint16_t *inp, size_t n)
{
	GRID_STRIDE(i, n) out[i] = __uint_as_float((uint32_t)inp[i] << 16);
}

// Launch grid for y[R, L] row-wise kernels: x covers L (<= 64 blocks of 256), y covers R.
dim3 rows_grid(int R, int L)
{
	int bx = (L + 255) / 256;
	if (bx > 64)
		bx = 64;
	if (bx < 1)
		bx = 1;
	return dim3(bx, R < 65535 ? R : 65535);
}

// out[C, R] = inp[R, C]ᵀ: a block moves one 32×32 tile (32×8 threads, 4 rows each)
// through shared memory (+1 column against bank conflicts); grid x over column tiles,
// y over row tiles (grid-stride past 65535).
__global__ void transpose_kernel(float *out, const float *inp, int R, int C)
{
	__shared__ float t[32][33];
	int c0 = blockIdx.x * 32;
	for (int r0 = blockIdx.y * 32; r0 < R; r0 += gridDim.y * 32) {
		for (int k = threadIdx.y; k < 32; k += 8) {
			int r = r0 + k, c = c0 + threadIdx.x;
			if (r < R && c < C)
				t[k][threadIdx.x] = inp[(size_t)r * C + c];
		}
		__syncthreads();
		for (int k = threadIdx.y; k < 32; k += 8) {
			int c = c0 + k, r = r0 + threadIdx.x;
			if (r < R && c < C)
				out[(size_t)c * R + r] = t[threadIdx.x][k];
		}
		__syncthreads();
	}
}

} // namespace

#define LAUNCH_ELEM(ctx, n, kernel, ...) do { \
	if ((n) == 0) return; \
	kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(__VA_ARGS__); \
	LVD_CU_LAUNCHED(); } while (0)

extern "C" void lvd_copy_cuda(struct lvd_ctx *ctx, float *y, const float *x, size_t n)
{
	if (n)
		CUDA_CHECK(cudaMemcpyAsync(y, x, sizeof(float) * n, cudaMemcpyDeviceToDevice, lvd_cu::stream(ctx)));
}

extern "C" void lvd_add_cuda(struct lvd_ctx *ctx, float *y, const float *x, size_t n)
{
	LAUNCH_ELEM(ctx, n, add_kernel, y, x, n);
}

extern "C" void lvd_axpy_cuda(struct lvd_ctx *ctx, float *y, float a, const float *x, size_t n)
{
	LAUNCH_ELEM(ctx, n, axpy_kernel, y, a, x, n);
}

extern "C" void lvd_scale_cuda(struct lvd_ctx *ctx, float *y, float a, size_t n)
{
	LAUNCH_ELEM(ctx, n, scale_kernel, y, a, n);
}

extern "C" void lvd_add_bias_rows_cuda(struct lvd_ctx *ctx, float *y, const float *b, int N, int C)
{
	if (N <= 0 || C <= 0)
		return;
	bias_rows_kernel<<<rows_grid(N, C), 256, 0, lvd_cu::stream(ctx)>>>(y, b, N, C);
	LVD_CU_LAUNCHED();
}

namespace {
// y[C, HW] += b[C]: blockIdx.y walks channels, x threads walk pixels
__global__ void bias_chan_kernel(float *y, const float *b, int C, int HW)
{
	for (int c = blockIdx.y; c < C; c += gridDim.y) {
		float bc = b[c];
		for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < HW; p += gridDim.x * blockDim.x)
			y[(size_t)c * HW + p] += bc;
	}
}
} // namespace

extern "C" void lvd_add_bias_chan_cuda(struct lvd_ctx *ctx, float *y, const float *b, int C, int HW)
{
	if (C <= 0 || HW <= 0)
		return;
	bias_chan_kernel<<<rows_grid(C, HW), 256, 0, lvd_cu::stream(ctx)>>>(y, b, C, HW);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_f32_to_bf16_cuda(struct lvd_ctx *ctx, uint16_t *out, const float *inp, size_t n)
{
	LAUNCH_ELEM(ctx, n, f32_to_bf16_kernel, out, inp, n);
}

extern "C" void lvd_bf16_to_f32_cuda(struct lvd_ctx *ctx, float *out, const uint16_t *inp, size_t n)
{
	LAUNCH_ELEM(ctx, n, bf16_to_f32_kernel, out, inp, n);
}

extern "C" void lvd_transpose_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int R, int C)
{
	if (R <= 0 || C <= 0)
		return;
	int gy = (R + 31) / 32;
	dim3 grid((unsigned)((C + 31) / 32), (unsigned)(gy < 65535 ? gy : 65535));
	transpose_kernel<<<grid, dim3(32, 8), 0, lvd_cu::stream(ctx)>>>(out, inp, R, C);
	LVD_CU_LAUNCHED();
}
