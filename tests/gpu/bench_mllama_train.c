/* tests/gpu/bench_mllama_train.c — one mllama training step on the CUDA backend (issue
 * #20 bench; driven by tests/gpu/bench_mllama_train.sh beside its PyTorch peer
 * tests/gpu/mllama_train_peer.py).
 *
 *   bench_mllama_train CONFIG_DIR lora|full ITERS [T]
 *
 * CONFIG_DIR/config.json (an MllamaConfig; the script writes the Llama-3.2-11B-Vision one
 * with fewer layers) → lvd_mllama_create, every parameter filled with a seeded hash in
 * [-0.02, 0.02] (gates 0.1; norm weights 1), then: lora: adapters r 8, alpha 16 on
 * q_proj,v_proj (PEFT's suffix match: the vision tower's too); full: every parameter
 * trained. The planner's prediction (lib/train/plan.h, CUDA) is printed, the model moved to
 * a CUDA context (lvd_mllama_to_device; device workspace LVD_DWS_GIB, default 8), and
 * ITERS steps timed after one warm-up (BENCH_DEVICE=cpu: the same on a CPU context, a smoke
 * test of this program on a small config; device memory then 0): zero grads, forward (CE), backward, AdamW over the
 * trained block, stream synchronised. The sample: one image of 4 tiles (2×2 canvas) and T
 * (default 512) text tokens, the formulas the peer repeats (ids (i·37 + 11) mod min(V, 120000) with
 * the image token at 1, labels on the second half, pixels from a hash, every row after the
 * image token sees the 4 tiles).
 *
 * Prints one JSON line: median_s, times_s, tokens_per_s, text_tflop (model FLOPs of the
 * text decoder per step: forward 2·T·(linear weights incl. lm_head) + cross K/V over the
 * S vision tokens + attention 4·T·Tk·D per layer; backward 2× forward with full, 1× with
 * LoRA (no weight gradients of frozen weights)), text_tflops (per second over the whole
 * step: vision included in the time, so a lower bound), mfu (of PEAK_TFLOPS, env, default
 * 989: dense bf16 of an H100 SXM), device memory (cudaMemGetInfo: used after the steps,
 * context and the preallocated workspace arena included), lvd's own accounting (weights,
 * grads, lora, opt, acts, workspace peak) and the planner's parts. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/device.h"
#include "core/parse.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"
#include "nn/ops/adamw.h"
#include "train/plan.h"

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static float hashf(uint64_t i, uint64_t seed)
{
	uint64_t z = i * 0x9E3779B97F4A7C15ull + seed;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	return (float)((double)(z >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

static void fill(struct lvd_mllama *m)
{
	for (size_t i = 0; i < lvd_mllama_nparams(m); i++) {
		struct lvd_mllama_param *p = lvd_mllama_param_at(m, i);
		int norm = strstr(p->name, "norm") != NULL, gate = strstr(p->name, "gate") && p->numel == 1;
		for (size_t j = 0; j < p->numel; j++)
			p->data[j] = norm ? 1.0f : gate ? 0.1f : 0.02f * hashf(j, i + 1);
	}
}

/* text decoder model FLOPs of one step (see the header) */
static double text_flops(const struct lvd_mllama_config *c, int T, int S, int full)
{
	double D = c->t_hidden, KV = (double)c->t_kv_heads * c->t_head_dim, I = c->t_inter, fwd = 0;
	for (int l = 0; l < c->t_layers; l++) {
		int cross = 0;
		for (int k = 0; k < c->n_cross; k++)
			cross |= c->cross_layers[k] == l;
		double q_o = 2 * D * D, kv = 2 * D * KV, mlp = 3 * D * I;
		fwd += 2.0 * T * (q_o + mlp) + 2.0 * (cross ? S : T) * kv;
		fwd += 4.0 * T * (cross ? S : T) * D;
	}
	fwd += 2.0 * T * D * c->vocab;
	return fwd * (full ? 3 : 2);
}

int main(int argc, char **argv)
{
	lvd_blas_policy_init();
	if (argc < 4 || argc > 5 || (strcmp(argv[2], "lora") && strcmp(argv[2], "full"))) {
		fprintf(stderr, "usage: bench_mllama_train CONFIG_DIR lora|full ITERS [T]\n");
		return 2;
	}
	struct lvd_error err = { 0 };
	uint64_t iters, T = 512;
	if (lvd_parse_u64(argv[3], 1, 1000, &iters, "ITERS", &err) ||
	    (argc > 4 && lvd_parse_u64(argv[4], 2, 1 << 16, &T, "T", &err))) {
		fprintf(stderr, "bench_mllama_train: error: %s\n", err.msg);
		return 2;
	}
	int full = strcmp(argv[2], "full") == 0;
	const char *bd = getenv("BENCH_DEVICE");
	int on_cpu = bd && strcmp(bd, "cpu") == 0;   /* a smoke test of this program on a small config */
	if (!on_cpu && lvd_cuda_device_count() == 0) {
		printf("{\"side\": \"lvd\", \"skip\": \"no CUDA device\"}\n");
		return 0;
	}
	const char *peak_s = getenv("PEAK_TFLOPS"), *dws_s = getenv("LVD_DWS_GIB");
	double peak = peak_s ? atof(peak_s) : 989.0, dws_gib = dws_s ? atof(dws_s) : 8.0;
	struct lvd_mllama *m;
	struct lvd_mllama_lora_cfg lc = { .r = 8, .alpha = 16, .targets = "q_proj,v_proj", .seed = 1 };
	if (lvd_mllama_create(&m, argv[1], &err) ||
	    (fill(m), full ? lvd_mllama_enable_grads(m, &err) : lvd_mllama_add_lora(m, &lc, &err))) {
		fprintf(stderr, "bench_mllama_train: error: %s\n", err.msg);
		return 1;
	}
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	int TL = c->v_max_tiles, gs = c->v_image_size / c->v_patch, S = TL * (gs * gs + 1), nt = (int)T;
	/* the planner's prediction for this run (CUDA, one rank) */
	struct lvd_plan_opts po = { .device = LVD_PLAN_CUDA, .full = full, .train_mask = LVD_MLLAMA_ALL_GROUPS,
				    .world = 1, .B = 1, .T = nt, .M = 1, .ncap = 0 };
	struct lvd_plan plan;
	if (lvd_plan_mllama(m, &po, &plan, &err)) {
		fprintf(stderr, "bench_mllama_train: plan: %s\n", err.msg);
		return 1;
	}
	lvd_plan_print(stderr, &plan, &po);
	size_t free0 = 0, free1 = 0, total;
	if (!on_cpu)
		cudaMemGetInfo(&free0, &total);
	struct lvd_ctx *ctx;
	struct lvd_ctx_opts co = { .backend = on_cpu ? LVD_BACKEND_CPU : LVD_BACKEND_CUDA, .threads = 1,
				   .dws_bytes = (size_t)(dws_gib * (1 << 30)), .ws_bytes = (size_t)(dws_gib * (1 << 30)) };
	if (lvd_ctx_create(&ctx, &co, &err) || lvd_mllama_to_device(m, ctx, &(struct lvd_mllama_dev_opts){ .w16 = 1 }, &err)) {
		fprintf(stderr, "bench_mllama_train: error: %s\n", err.msg);
		return 1;
	}
	/* the sample (the peer builds the same) */
	int *ids = calloc(T, sizeof *ids), *labels = calloc(T, sizeof *labels), *xmask = calloc(T * TL, sizeof *xmask);
	size_t npx = (size_t)TL * c->v_channels * c->v_image_size * c->v_image_size;
	float *pix = malloc(npx * sizeof *pix);
	int aspects[LVD_MLLAMA_MAX_LIST][2], na = lvd_mllama_aspect_ratios(TL, aspects), arid = 1;
	int *armask = calloc(TL, sizeof *armask);
	if (!ids || !labels || !xmask || !pix || !armask)
		return 1;
	for (int i = 0; i < na; i++)
		if (aspects[i][0] == 2 && aspects[i][1] == 2)
			arid = i + 1;
	for (int t = 0; t < TL && t < 4; t++)
		armask[t] = 1;
	for (int i = 0; i < nt; i++) {
		ids[i] = (i * 37 + 11) % (c->vocab < 120000 ? c->vocab : 120000);
		for (int t = 0; t < TL && t < 4; t++)
			xmask[i * TL + t] = i >= 1;
	}
	ids[1] = c->image_token_index;
	for (int i = 0; i < nt; i++)
		labels[i] = i < nt / 2 ? -100 : ids[i];
	for (size_t i = 0; i < npx; i++)
		pix[i] = (float)((i * 2654435761ull) % 1000) / 500.0f - 1.0f;
	struct lvd_mllama_batch b = { .B = 1, .T = nt, .M = 1, .input_ids = ids, .labels = labels, .pixel_values = pix,
				      .aspect_ratio_ids = &arid, .aspect_ratio_mask = armask,
				      .cross_attention_mask = xmask };
	size_t n, n2;
	float *p = full ? lvd_mllama_param_block(m, &n) : lvd_mllama_lora_params(m, &n);
	float *g = full ? lvd_mllama_grad_block(m, &n) : lvd_mllama_lora_grads(m, &n);
	float *mv = full ? lvd_buf_alloc(ctx, 2 * n * sizeof(float)) : lvd_mllama_lora_opt_state(m, &n2);
	if (!p || !g || !mv) {
		fprintf(stderr, "bench_mllama_train: no trained block or out of device memory for the moments\n");
		return 1;
	}
	lvd_buf_zero(ctx, mv, 2 * n * sizeof(float));
	double *times = calloc(iters, sizeof *times);
	for (uint64_t it = 0; it <= iters; it++) {
		lvd_ctx_sync(ctx);
		double t0 = lvd_time_now();
		lvd_mllama_zero_grads(m);
		if (lvd_mllama_forward(m, &b, &err) || lvd_mllama_backward(m, 1.0f, NULL, &err)) {
			fprintf(stderr, "bench_mllama_train: error: %s\n", err.msg);
			return 1;
		}
		lvd_adamw_step(ctx, p, mv, mv + n, g, n, 1e-5, 0.9, 0.999, 1e-8, 0.0, (int64_t)it + 1);
		lvd_ctx_sync(ctx);
		if (it)
			times[it - 1] = lvd_time_now() - t0;
	}
	if (!on_cpu)
		cudaMemGetInfo(&free1, &total);
	double *sorted = malloc(iters * sizeof *sorted);
	memcpy(sorted, times, iters * sizeof *sorted);
	qsort(sorted, iters, sizeof *sorted, cmpd);
	double med = sorted[iters / 2], tf = text_flops(c, nt, S, full) / 1e12;
	struct lvd_mllama_mem mu;
	lvd_mllama_mem_used(m, &mu);
	const double MB = 1048576.0;
	printf("{\"side\": \"lvd\", \"mode\": \"%s\", \"T\": %d, \"text_layers\": %d, \"vision_layers\": %d, "
	       "\"loss\": %.6f, \"median_s\": %.4f, \"times_s\": [", full ? "full" : "lora", nt, c->t_layers,
	       c->v_layers + c->v_global_layers, lvd_mllama_loss(m), med);
	for (uint64_t i = 0; i < iters; i++)
		printf("%s%.4f", i ? ", " : "", times[i]);
	printf("], \"tokens_per_s\": %.1f, \"text_tflop\": %.3f, \"text_tflops\": %.1f, \"mfu\": %.4f, "
	       "\"device_used_mb\": %.0f, \"ours_mb\": {\"params\": %.0f, \"grads\": %.0f, \"lora\": %.0f, "
	       "\"opt\": %.0f, \"acts\": %.0f, \"ws_peak\": %.0f}, \"plan_peak_mb\": %.0f, \"plan_mb\": {",
	       nt / med, tf, tf / med, tf / med / peak, (double)(free0 - free1) / MB, mu.params / MB, mu.grads / MB,
	       mu.lora / MB, (full ? 2 * n * sizeof(float) : mu.opt) / MB, mu.acts / MB, lvd_ctx_ws_peak(ctx) / MB,
	       plan.peak / MB);
	for (int i = 0; i < LVD_PLAN_NPARTS; i++)
		printf("%s\"%s\": %.0f", i ? ", " : "", lvd_plan_part_name(i), plan.part[i] / MB);
	printf("}}\n");
	if (full)
		lvd_buf_free(ctx, mv);
	lvd_mllama_free(m);
	lvd_ctx_destroy(ctx);
	free(ids), free(labels), free(xmask), free(pix), free(armask), free(times), free(sorted);
	return 0;
}
