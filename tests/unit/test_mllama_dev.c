/* tests/unit/test_mllama_dev.c — the device plumbing of lvd_mllama_to_device on a CPU
 * context (the "device" is a second host copy reached through the same staging, uploads,
 * host mirrors and dprobs uploads as on CUDA): forward, every gradient, an AdamW step and
 * a 5-step LoRA run must equal the plain CPU model bit for bit (every tolerance 0: the
 * same ops in the same order on the same backend). The CUDA run of the same cases, with
 * the twins' tolerances, is tests/gpu/test_cuda_mllama.c. Also: the bf16 base weights
 * (lvd_mllama_dev_opts.w16) against the fp32 model with bf16-sized bounds, and the calls a
 * device model refuses. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "gpu/mllama_dev_util.h"
#include "nn/ops/gemm.h"

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
	mdev_check_train(ctx, &EXACT, 1, 0, NULL);
	lvd_ctx_destroy(ctx);
}

/* bf16 base weights (opts.w16) on the CPU context against the fp32 CPU model: every
 * linear's weights and inputs rounded to bf16 (2^-9 relative each), fp32 sums. Bounds
 * about 3x what this data gives [measured]: LoRA gradients 5e-2 of their scale [1.8e-2];
 * the loss of each of the 5 steps 3e-3 relative [7e-4]; LoRA parameters after 5 steps
 * max |diff| <= 10·lr (AdamW moves an element at most ~lr per step, so two runs differ by
 * at most 2·lr per step) [2.4·lr] and rms <= 0.5·lr [0.14·lr]. */
static const struct mdev_tol BF16_VS_FP32 = {
	.grad_atol = 1e-6, .grad_rtol = 5e-2, .step_loss_rel = 3e-3, .param_max_lr = 2.0 * MDEV_STEPS,
	.param_rms_lr = 0.5,
};

static void test_train_lora_w16(void)
{
	struct lvd_ctx *ctx = host_dev();
	REQUIRE(ctx);
	mdev_check_train(ctx, &BF16_VS_FP32, 0, 1, NULL);
	lvd_ctx_destroy(ctx);
}

/* two bf16 runs, the reference moved to a second CPU context (the path the CUDA test
 * takes for its bf16 case): bit for bit */
static void test_train_lora_w16_ref(void)
{
	struct lvd_ctx *ctx = host_dev(), *ref = host_dev();
	REQUIRE(ctx && ref);
	mdev_check_train(ctx, &EXACT, 1, 1, ref);
	lvd_ctx_destroy(ctx);
	lvd_ctx_destroy(ref);
}

static float bf16f(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* lvd_linear_bwd_w16 against double loops over the bf16-rounded dout and the bf16 weights,
 * accumulating onto a prefilled dinp. Bound 1e-5 of the scale: fp32 sums of OC <= 37
 * exact bf16 products (~OC·6e-8 relative) vs double. */
static void test_linear_bwd_w16(void)
{
	struct lvd_ctx *ctx = host_dev();
	REQUIRE(ctx);
	enum { N = 5, IC = 19, OC = 37 };
	float dout[N * OC], dinp[N * IC], want[N * IC];
	uint16_t w[OC * IC];
	for (int i = 0; i < N * OC; i++)
		dout[i] = sinf(0.37f * i) * 1.7f;
	for (int i = 0; i < OC * IC; i++)
		w[i] = lvd_f32_to_bf16(cosf(0.11f * i + 0.3f));
	for (int n = 0; n < N; n++)
		for (int i = 0; i < IC; i++) {
			double acc = dinp[n * IC + i] = 0.25f * (float)((n + i) % 5);
			for (int o = 0; o < OC; o++)
				acc += (double)bf16f(lvd_f32_to_bf16(dout[n * OC + o])) * bf16f(w[o * IC + i]);
			want[n * IC + i] = (float)acc;
		}
	lvd_linear_bwd_w16(ctx, dinp, dout, w, N, IC, OC);
	CHECK_CLOSE("linear_bwd_w16", dinp, want, N * IC, 0, 1e-5);
	lvd_linear_bwd_w16(ctx, NULL, dout, w, N, IC, OC);   /* no input gradient wanted: nothing */
	CHECK(lvd_ctx_mark(ctx) == 0);
	lvd_ctx_destroy(ctx);
}

static void test_refused(void)
{
	struct lvd_ctx *ctx = host_dev();
	REQUIRE(ctx);
	struct lvd_mllama *m = mdev_load(0);
	REQUIRE(m);
	struct lvd_error err = { 0 };
	CHECK(lvd_mllama_to_device(m, NULL, NULL, &err) == LVD_ERR_INVALID);
	REQUIRE(lvd_mllama_to_device(m, ctx, NULL, &err) == 0);
	CHECK(lvd_mllama_enable_grads(m, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "before lvd_mllama_to_device");
	struct lvd_mllama_save_opts so = { .src_dir = lvd_test_path(MDEV_GOLD "/model") };
	CHECK(lvd_mllama_save_hf(m, "/nonexistent/x", &so, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "device model");
	struct mdev_gold g;
	REQUIRE(mdev_gold_open(&g) == 0);
	struct lvd_gen_opts go = { .max_new_tokens = 1, .pad_id = 0 };
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
						 TEST(test_train_lora_w16), TEST(test_train_lora_w16_ref),
						 TEST(test_linear_bwd_w16),
						 TEST(test_refused), { 0 } };
	return lvd_test_main(argc, argv, tests);
}
