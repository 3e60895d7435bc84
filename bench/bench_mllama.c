/* bench/bench_mllama.c — one full fine-tuning step (forward + backward, fp32, CPU) of
 * an mllama folder, timed; the peer is bench/mllama_peer.py (same inputs).
 *
 *   bench_mllama MODEL_DIR [THREADS [ITERS [full|lora [CAPTURE]]]]
 * lora: frozen base (weights mapped, not copied) with r = 16, alpha = 32 adapters on
 * q_proj,v_proj (PEFT's default targets; the peer wraps the model with PEFT the same way).
 * CAPTURE (default 8, what a Lavender step uses: the matched-word rows of a sample): rows
 * per sample whose cross-attention probabilities are kept, with an injected probability
 * gradient on every cross layer in backward (0: no capture, plain CE step).
 * prints one JSON line {"side":"lvd","mode":..,"median_s":..,"cpu_s":..,"times_s":[..],
 * "peak_rss_mb":..,"loss":..,"capture_rows":..,"ws_peak_mb":..}; cpu_s is the median
 * process CPU time of a step (robust to other processes sharing the cores at 1 thread);
 * peak_rss_mb the process's peak resident set (getrusage), ws_peak_mb the high-water mark
 * of the context workspace (ops' working memory and the backward scratch). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/clock.h"
#include "core/parse.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"

enum { T = 128, IMG = 224 };

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	lvd_blas_policy_init();
	if (argc < 2 || argc > 6 || (argc >= 5 && strcmp(argv[4], "full") && strcmp(argv[4], "lora"))) {
		fprintf(stderr, "usage: bench_mllama MODEL_DIR [THREADS [ITERS [full|lora [CAPTURE]]]]\n");
		return 2;
	}
	uint64_t threads = 1, iters = 3, capture = 8;
	struct lvd_error err = { 0 };
	if ((argc > 2 && lvd_parse_u64(argv[2], 1, 1024, &threads, "THREADS", &err)) ||
	    (argc > 3 && lvd_parse_u64(argv[3], 1, 1000, &iters, "ITERS", &err)) ||
	    (argc > 5 && lvd_parse_u64(argv[5], 0, T, &capture, "CAPTURE", &err))) {
		fprintf(stderr, "bench_mllama: error: %s\n", err.msg);
		return 2;
	}
	int lora = argc >= 5 && strcmp(argv[4], "lora") == 0;
	struct lvd_mllama *m;
	struct lvd_mllama_lora_cfg lc = { .r = 16, .alpha = 32, .targets = "q_proj,v_proj", .seed = 1 };
	if ((lora ? lvd_mllama_load_frozen(&m, argv[1], &err) : lvd_mllama_load(&m, argv[1], &err)) ||
	    lvd_mllama_set_threads(m, (int)threads, &err) ||
	    (lora ? lvd_mllama_add_lora(m, &lc, &err) : lvd_mllama_enable_grads(m, &err))) {
		fprintf(stderr, "bench_mllama: error: %s\n", err.msg);
		return 1;
	}
	for (size_t i = 0; lora && i < lvd_mllama_nlora(m); i++) { /* non-zero B, as a trained adapter */
		struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, i);
		for (size_t j = 0; j < (size_t)l->out * 16; j++)
			l->B[j] = 0.01f * (float)((int)(j % 7) - 3);
	}
	static int ids[T], labels[T], xmask[T * 4];
	for (int i = 0; i < T; i++) {
		ids[i] = (i * 37 + 11) % 8000;
		xmask[i * 4] = i >= 1; /* tile 0 of the one image, rows after <|image|> */
	}
	ids[1] = 8192;
	for (int i = 0; i < T; i++)
		labels[i] = i < T / 2 ? -100 : ids[i];
	size_t n = (size_t)3 * IMG * IMG;
	float *pix = calloc(4 * n, sizeof *pix); /* 4 tiles, only tile 0 used */
	for (size_t i = 0; i < n; i++)
		pix[i] = (float)((i * 2654435761ull) % 1000) / 500.0f - 1.0f;
	int arid = 1, armask[4] = { 1, 0, 0, 0 };
	struct lvd_mllama_batch b = { .B = 1, .T = T, .M = 1, .input_ids = ids, .labels = labels, .pixel_values = pix,
				      .aspect_ratio_ids = &arid, .aspect_ratio_mask = armask,
				      .cross_attention_mask = xmask };
	/* capture rows spread over the text rows that see the image, as matched words would be */
	static int cap_rows[T], cap_off[2];
	for (int i = 0; i < (int)capture; i++)
		cap_rows[i] = 1 + (int)((size_t)i * (T - 1) / capture);
	cap_off[1] = (int)capture;
	if (capture) {
		b.cap_rows = cap_rows;
		b.cap_off = cap_off;
	}
	const struct lvd_mllama_config *cfg = lvd_mllama_cfg(m);
	int gs = cfg->v_image_size / cfg->v_patch;
	size_t S = (size_t)cfg->v_max_tiles * (gs * gs + 1), ndp = capture * (size_t)cfg->t_heads * S;
	float *dp = calloc(ndp + 1, sizeof *dp);
	const float *dprobs[LVD_MLLAMA_MAX_LIST] = { 0 };
	for (size_t i = 0; i < ndp; i++)
		dp[i] = 1e-3f * (float)((int)(i % 5) - 2); /* an attention-loss gradient stand-in */
	for (int k = 0; capture && k < cfg->n_cross; k++)
		dprobs[k] = dp;
	double times[1001], cpu[1001];
	for (uint64_t it = 0; it <= iters; it++) {
		lvd_mllama_zero_grads(m);
		double t0 = lvd_time_now(), c0 = lvd_cpu_now();
		if (lvd_mllama_forward(m, &b, &err) || lvd_mllama_backward(m, 1.0f, dprobs, &err)) {
			fprintf(stderr, "bench_mllama: error: %s\n", err.msg);
			return 1;
		}
		if (it) {
			times[it - 1] = lvd_time_now() - t0;
			cpu[it - 1] = lvd_cpu_now() - c0;
		}
	}
	double sorted[1001];
	for (uint64_t i = 0; i < iters; i++)
		sorted[i] = times[i];
	qsort(sorted, iters, sizeof(double), cmpd);
	double med = sorted[iters / 2];
	for (uint64_t i = 0; i < iters; i++)
		sorted[i] = cpu[i];
	qsort(sorted, iters, sizeof(double), cmpd);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"side\": \"lvd\", \"mode\": \"%s\", \"threads\": %d, \"loss\": %.7f, \"median_s\": %.4f, "
	       "\"cpu_s\": %.4f, \"times_s\": [", lora ? "lora" : "full", (int)threads, lvd_mllama_loss(m), med,
	       sorted[iters / 2]);
	for (uint64_t i = 0; i < iters; i++)
		printf("%s%.4f", i ? ", " : "", times[i]);
	printf("], \"peak_rss_mb\": %.1f, \"capture_rows\": %d, \"ws_peak_mb\": %.1f}\n", ru.ru_maxrss / 1024.0,
	       (int)capture, lvd_ctx_ws_peak(lvd_mllama_ctx(m)) / 1048576.0);
	free(pix);
	free(dp);
	lvd_mllama_free(m);
	return 0;
}
