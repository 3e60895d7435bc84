/* tests/unit/test_mllama_dev.c — the device plumbing of lvd_mllama_to_device on a CPU
 * context (the "device" is a second host copy reached through the same staging, uploads,
 * host mirrors and dprobs uploads as on CUDA): forward, every gradient, an AdamW step and
 * a 5-step LoRA run must equal the plain CPU model bit for bit (every tolerance 0: the
 * same ops in the same order on the same backend). The CUDA run of the same cases, with
 * the twins' tolerances, is tests/gpu/test_cuda_mllama.c. Also: the calls a device model
 * refuses. */
#include "harness.h"
#include "gpu/mllama_dev_util.h"

static const struct mdev_tol EXACT = { 0 };

static struct lvd_ctx *host_dev(void)
{
	struct lvd_ctx *ctx = NULL;
	struct lvd_error err = { 0 };
	struct lvd_ctx_opts o = { .backend = LVD_BACKEND_CPU, .threads = 1, .ws_bytes = (size_t)1 << 30 };
	if (lvd_ctx_create(&ctx, &o, &err))
		fprintf(stderr, "  ctx: %s\n", err.msg);
	return ctx;
}

static void test_full_bitwise(void)
{
	struct lvd_ctx *ctx = host_dev();
	REQUIRE(ctx);
	mdev_check_full(ctx, &EXACT);
	lvd_ctx_destroy(ctx);
}

static void test_train_lora_frozen_bitwise(void)
{
	struct lvd_ctx *ctx = host_dev();
	REQUIRE(ctx);
	mdev_check_train(ctx, &EXACT, 1);
	lvd_ctx_destroy(ctx);
}

static void test_refused(void)
{
	struct lvd_ctx *ctx = host_dev();
	REQUIRE(ctx);
	struct lvd_mllama *m = mdev_load(0);
	REQUIRE(m);
	struct lvd_error err = { 0 };
	CHECK(lvd_mllama_to_device(m, NULL, &err) == LVD_ERR_INVALID);
	REQUIRE(lvd_mllama_to_device(m, ctx, &err) == 0);
	CHECK(lvd_mllama_enable_grads(m, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "before lvd_mllama_to_device");
	struct lvd_mllama_save_opts so = { .src_dir = lvd_test_path(MDEV_GOLD "/model") };
	CHECK(lvd_mllama_save_hf(m, "/nonexistent/x", &so, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "device model");
	struct mdev_gold g;
	REQUIRE(mdev_gold_open(&g) == 0);
	struct lvd_mllama_gen_opts go = { .max_new_tokens = 1, .pad_id = 0 };
	struct lvd_mllama_gen *gs = NULL;
	CHECK(lvd_mllama_gen_begin(&gs, m, &g.b, NULL, &go, &err) == LVD_ERR_INVALID && !gs);
	CHECK_CONTAINS(err.msg, "device model");
	/* a backward without gradients is still refused; a forward still works */
	REQUIRE(lvd_mllama_forward(m, &g.b, &err) == 0);
	CHECK(lvd_mllama_backward(m, 1.0f, NULL, &err) == LVD_ERR_INVALID);
	mdev_gold_close(&g);
	lvd_mllama_free(m);
	CHECK(lvd_ctx_mark(ctx) == 0);
	lvd_ctx_destroy(ctx);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = { TEST(test_full_bitwise), TEST(test_train_lora_frozen_bitwise),
						 TEST(test_refused), { 0 } };
	return lvd_test_main(argc, argv, tests);
}
