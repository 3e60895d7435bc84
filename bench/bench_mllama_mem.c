/* bench/bench_mllama_mem.c — the training memory modes of issue #20 on one mllama
 * config: one LoRA step (forward + backward, fp32, CPU) with --recompute MODE and the LM
 * head fused with the loss (CHUNK > 0: vocabulary chunks, no logits) or not (0), run in
 * a process of its own so its peak resident set is that configuration's.
 *
 *   bench_mllama_mem CONFIG_DIR MODE CHUNK [THREADS]   (MODE: none|xattn|all[,vision] | vision)
 * CONFIG_DIR holds config.json only: the weights are seeded random (lvd_mllama_create,
 * then a hash), LoRA r 8 on q_proj,v_proj with non-zero B; one sample of T = 512 tokens
 * (the second half labelled), one image (tile 0), 16 captured rows with an injected
 * probability gradient on every cross layer (a Lavender step). Two steps, the second
 * timed. Prints one JSON line {"recompute", "xent_chunk", "loss", "step_s",
 * "peak_rss_mb" (getrusage), "ws_peak_mb" (context workspace high-water mark: the
 * backward scratch and the ops' working memory), "acts_mb" (the activation block),
 * "planned_mb" (lvd_mllama_measure: acts + scratch)}. bench/mllama_mem.sh runs the modes
 * on a Llama-3-sized vocabulary. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/clock.h"
#include "core/parse.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"

enum { T = 512, NCAP = 16 };

int main(int argc, char **argv)
{
	lvd_blas_policy_init();
	struct lvd_error err = {0};
	uint64_t chunk = 0, threads = 1;
	int rmode = argc >= 4 ? lvd_mllama_recompute_parse(argv[2]) : -1;
	if (argc < 4 || argc > 5 || rmode < 0 || lvd_parse_u64(argv[3], 0, 1u << 30, &chunk, "CHUNK", &err) ||
	    (argc > 4 && lvd_parse_u64(argv[4], 1, 1024, &threads, "THREADS", &err))) {
		fprintf(stderr, "usage: bench_mllama_mem CONFIG_DIR none|xattn|all[,vision]|vision CHUNK [THREADS]%s%s\n",
			err.msg[0] ? "\nbench_mllama_mem: error: " : "", err.msg);
		return 2;
	}
	struct lvd_mllama *m = NULL;
	if (lvd_mllama_create(&m, argv[1], &err) || lvd_mllama_set_threads(m, (int)threads, &err)) {
		fprintf(stderr, "bench_mllama_mem: error: %s\n", err.msg);
		return 1;
	}
	for (size_t i = 0; i < lvd_mllama_nparams(m); i++) {
		struct lvd_mllama_param *p = lvd_mllama_param_at(m, i);
		int norm = strstr(p->name, "norm") != NULL;
		for (size_t j = 0; j < p->numel; j++)
			p->data[j] = norm ? 1.0f : 0.04f * (float)((int)(((j + 977 * i) * 2654435761u) % 1001) - 500) / 500.0f;
	}
	struct lvd_mllama_lora_cfg lc = {.r = 8, .alpha = 32, .targets = "q_proj,v_proj", .seed = 1};
	if (lvd_mllama_add_lora(m, &lc, &err)) {
		fprintf(stderr, "bench_mllama_mem: error: %s\n", err.msg);
		return 1;
	}
	for (size_t i = 0; i < lvd_mllama_nlora(m); i++) {
		struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, i);
		for (size_t j = 0; j < (size_t)l->out * 8; j++)
			l->B[j] = 0.01f * (float)((int)(j % 7) - 3);
	}
	lvd_mllama_set_recompute(m, (enum lvd_mllama_recompute)rmode);
	lvd_mllama_set_xent_chunk(m, (int)chunk);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	const int TL = c->v_max_tiles, HW = c->v_image_size;
	static int ids[T], labels[T], cap_rows[NCAP], cap_off[2] = {0, NCAP};
	int *xmask = calloc((size_t)T * TL, sizeof *xmask);
	size_t n = (size_t)3 * HW * HW;
	float *pix = calloc((size_t)TL * n, sizeof *pix);
	if (!xmask || !pix)
		return 1;
	for (int i = 0; i < T; i++) {
		ids[i] = i == 1 ? c->image_token_index : (int)(((size_t)i * 7919 + 11) % (size_t)c->vocab);
		labels[i] = i < T / 2 ? -100 : ids[i] % c->vocab;
		xmask[(size_t)i * TL] = i >= 1;
	}
	for (int i = 0; i < NCAP; i++)
		cap_rows[i] = 2 + i * (T - 2) / NCAP;
	for (size_t i = 0; i < n; i++)
		pix[i] = (float)((i * 2654435761ull) % 1000) / 500.0f - 1.0f;
	int arid = 1, armask[LVD_MLLAMA_MAX_LIST] = {1};
	struct lvd_mllama_batch b = {.B = 1, .T = T, .M = 1, .input_ids = ids, .labels = labels, .pixel_values = pix,
				     .aspect_ratio_ids = &arid, .aspect_ratio_mask = armask, .cross_attention_mask = xmask,
				     .cap_rows = cap_rows, .cap_off = cap_off};
	int gs = c->v_image_size / c->v_patch;
	size_t S = (size_t)TL * (gs * gs + 1), ndp = (size_t)NCAP * c->t_heads * S;
	float *dp = calloc(ndp, sizeof *dp);
	const float *dprobs[LVD_MLLAMA_MAX_LIST] = {0};
	for (size_t i = 0; dp && i < ndp; i++)
		dp[i] = 1e-3f * (float)((int)(i % 5) - 2);
	for (int k = 0; k < c->n_cross; k++)
		dprobs[k] = dp;
	struct lvd_mllama_mem plan, used;
	if (!dp || lvd_mllama_measure(m, 1, T, 1, NCAP, &plan, &err)) {
		fprintf(stderr, "bench_mllama_mem: error: %s\n", err.msg[0] ? err.msg : "out of memory");
		return 1;
	}
	double dt = 0;
	for (int it = 0; it < 2; it++) {
		lvd_mllama_zero_grads(m);
		double t0 = lvd_time_now();
		if (lvd_mllama_forward(m, &b, &err) || lvd_mllama_backward(m, 1.0f, dprobs, &err)) {
			fprintf(stderr, "bench_mllama_mem: error: %s\n", err.msg);
			return 1;
		}
		dt = lvd_time_now() - t0;
	}
	lvd_mllama_mem_used(m, &used);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"recompute\": \"%s\", \"xent_chunk\": %d, \"vocab\": %d, \"tokens\": %d, \"loss\": %.9f, "
	       "\"step_s\": %.3f, \"peak_rss_mb\": %.1f, \"ws_peak_mb\": %.1f, \"acts_mb\": %.1f, \"planned_mb\": %.1f}\n",
	       argv[2], (int)chunk, c->vocab, T, lvd_mllama_loss(m), dt, ru.ru_maxrss / 1024.0,
	       lvd_ctx_ws_peak(lvd_mllama_ctx(m)) / 1048576.0, used.acts / 1048576.0,
	       (plan.acts + plan.scratch) / 1048576.0);
	free(pix), free(xmask), free(dp);
	lvd_mllama_free(m);
	return 0;
}
