/* tests/gpu/test_cuda_dist.c — the NCCL backend of lib/dist with one rank (a single device
 * cannot hold two NCCL ranks): lvd_comm_init with device = 1, then every collective on
 * device buffers (blocking, then asynchronous after a user stream), checked on the host.
 * Built when CUDA=1 (as $(BUILD)/tests/test_cuda_dist, so tests/run.sh runs it); SKIPs
 * without NCCL in the build or without a visible device. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "harness.h"
#include "core/device.h"
#include "dist/dist.h"

static uint16_t bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return (uint16_t)(u >> 16);
}

static void test_nccl_one_rank(void)
{
	if (!LVD_HAVE_NCCL)
		SKIP("this build has no NCCL");
	if (lvd_cuda_device_count() == 0)
		SKIP("no CUDA device visible (no GPU or no driver)");
	if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("RANK"))
		SKIP("runs as one rank without a launcher");
	struct lvd_error err = {0};
	struct lvd_comm *c = NULL;
	struct lvd_comm_opts o = {30, 1};
	int rc = lvd_comm_init(&c, &o, &err);
	if (rc)
		fprintf(stderr, "  %s\n", err.msg);
	REQUIRE(rc == 0);
	CHECK(lvd_comm_backend(c) == LVD_COMM_NCCL && lvd_comm_world(c) == 1 && lvd_comm_rank(c) == 0);
	CHECK_STR(lvd_comm_backend_name(c), "nccl");
	enum { N = 4096 };
	float *h = malloc(2 * N * sizeof *h), *d = NULL;
	REQUIRE(h && cudaMalloc((void **)&d, 2 * N * sizeof *d) == cudaSuccess);
	for (int i = 0; i < 2 * N; i++)
		h[i] = 0.25f * (float)(i % 97) - 3.0f;
	cudaMemcpy(d, h, 2 * N * sizeof *d, cudaMemcpyHostToDevice);
	float *back = malloc(2 * N * sizeof *back);
	REQUIRE(back);
	/* One rank: sum, mean, reduce-scatter, all-gather and broadcast leave the data alone. */
	CHECK(lvd_comm_all_reduce(c, d, N, LVD_COMM_F32, LVD_COMM_SUM, &err) == 0);
	CHECK(lvd_comm_all_reduce(c, d, N, LVD_COMM_F32, LVD_COMM_MEAN, &err) == 0);
	CHECK(lvd_comm_reduce_scatter(c, d + N, d, N, LVD_COMM_F32, LVD_COMM_SUM, &err) == 0);
	cudaMemcpy(back, d, 2 * N * sizeof *d, cudaMemcpyDeviceToHost);
	CHECK(memcmp(back, h, N * sizeof *h) == 0 && memcmp(back + N, h, N * sizeof *h) == 0);
	cudaMemcpy(d + N, h + N, N * sizeof *d, cudaMemcpyHostToDevice);
	CHECK(lvd_comm_all_gather(c, d, d + N, N * sizeof *d, &err) == 0);
	CHECK(lvd_comm_broadcast(c, d + N, N * sizeof *d, 0, &err) == 0);
	cudaMemcpy(back, d, 2 * N * sizeof *d, cudaMemcpyDeviceToHost);
	CHECK(memcmp(back, h + N, N * sizeof *h) == 0 && memcmp(back + N, h + N, N * sizeof *h) == 0);
	uint16_t hb[3] = {bf16(1.5f), bf16(-2.0f), bf16(0.0f)}, *db = NULL, bb[3];
	REQUIRE(cudaMalloc((void **)&db, sizeof hb) == cudaSuccess);
	cudaMemcpy(db, hb, sizeof hb, cudaMemcpyHostToDevice);
	CHECK(lvd_comm_all_reduce(c, db, 3, LVD_COMM_BF16, LVD_COMM_SUM, &err) == 0);
	double hd[2] = {1e-300, 3.0}, *dd = NULL, bd[2];
	REQUIRE(cudaMalloc((void **)&dd, sizeof hd) == cudaSuccess);
	cudaMemcpy(dd, hd, sizeof hd, cudaMemcpyHostToDevice);
	CHECK(lvd_comm_all_reduce(c, dd, 2, LVD_COMM_F64, LVD_COMM_SUM, &err) == 0);
	cudaMemcpy(bb, db, sizeof bb, cudaMemcpyDeviceToHost);
	cudaMemcpy(bd, dd, sizeof bd, cudaMemcpyDeviceToHost);
	CHECK(memcmp(bb, hb, sizeof hb) == 0 && memcmp(bd, hd, sizeof hd) == 0);
	CHECK(lvd_comm_barrier(c, &err) == 0);
	/* Asynchronous requests after a kernel-free copy on the caller's stream: ordered after
	 * it (lvd_comm_set_stream), completed by the waits, in start order. */
	cudaStream_t st;
	REQUIRE(cudaStreamCreate(&st) == cudaSuccess);
	lvd_comm_set_stream(c, st);
	cudaMemcpyAsync(d, h, N * sizeof *d, cudaMemcpyHostToDevice, st);
	struct lvd_comm_req *q1 = NULL, *q2 = NULL;
	CHECK(lvd_comm_all_reduce_start(c, d, N, LVD_COMM_F32, LVD_COMM_MEAN, &q1, &err) == 0);
	CHECK(lvd_comm_all_gather_start(c, d + N, d, N * sizeof *d, &q2, &err) == 0);
	CHECK(lvd_comm_pending(c) == 2);
	CHECK(lvd_comm_wait(c, q1, &err) == 0 && lvd_comm_wait(c, q2, &err) == 0 && lvd_comm_pending(c) == 0);
	cudaMemcpy(back, d, 2 * N * sizeof *d, cudaMemcpyDeviceToHost);
	CHECK(memcmp(back, h, N * sizeof *h) == 0 && memcmp(back + N, h, N * sizeof *h) == 0);
	lvd_comm_set_stream(c, NULL);
	cudaStreamDestroy(st);
	if (err.code)
		fprintf(stderr, "  %s\n", err.msg);
	CHECK(lvd_comm_broadcast(c, d, 4, 1, &err) == LVD_ERR_INVALID);
	cudaFree(d);
	cudaFree(db);
	cudaFree(dd);
	free(h);
	free(back);
	lvd_comm_destroy(c);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_nccl_one_rank), {0}};
	return lvd_test_main(argc, argv, tests);
}
