/* bench/bench_gen.c — greedy generation with the KV cache (lvd_mllama_gen_*, what
 * `lvd-eval run` drives) on an mllama folder, fp32, CPU; the peer is bench/eval_peer.py
 * (transformers generate(do_sample=False) on the same inputs).
 *
 *   bench_gen MODEL_DIR [THREADS [ITERS [NEW]]]
 * Input: one sample, P = 64 prompt tokens with <|image|> (8192) at position 1, one 224²
 * tile of 4 slots (the formulas of bench_mllama.c / mllama_peer.py make_inputs). NEW
 * (default 32) tokens are generated with no eos (the peer's eos id is outside the
 * vocabulary). Per iteration: time to first token (vision tower, cross K/V, prefill and
 * the first argmax) and the time of the NEW − 1 decode steps after it. Prints one JSON
 * line {"side":"lvd","ttft_s":..,"decode_s_per_token":..,"tokens_per_s":..,"tokens":[..],
 * "peak_rss_mb":..} with medians over ITERS (default 3) after a warm-up. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/clock.h"
#include "core/parse.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"

enum { P = 64, IMG = 224, MAXN = 1024 };

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmpd);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	lvd_blas_policy_init();
	if (argc < 2 || argc > 5) {
		fprintf(stderr, "usage: bench_gen MODEL_DIR [THREADS [ITERS [NEW]]]\n");
		return 2;
	}
	uint64_t threads = 1, iters = 3, nnew = 32;
	struct lvd_error err = {0};
	if ((argc > 2 && lvd_parse_u64(argv[2], 1, 1024, &threads, "THREADS", &err)) ||
	    (argc > 3 && lvd_parse_u64(argv[3], 1, 100, &iters, "ITERS", &err)) ||
	    (argc > 4 && lvd_parse_u64(argv[4], 2, MAXN, &nnew, "NEW", &err))) {
		fprintf(stderr, "bench_gen: error: %s\n", err.msg);
		return 2;
	}
	struct lvd_mllama *m;
	if (lvd_mllama_load_frozen(&m, argv[1], &err) || lvd_mllama_set_threads(m, (int)threads, &err)) {
		fprintf(stderr, "bench_gen: error: %s\n", err.msg);
		return 1;
	}
	static int ids[P], xmask[P * 4], toks[MAXN];
	for (int i = 0; i < P; i++) {
		ids[i] = (i * 37 + 11) % 8000;
		xmask[i * 4] = i >= 1;
	}
	ids[1] = 8192;
	size_t n = (size_t)3 * IMG * IMG;
	float *pix = calloc(4 * n, sizeof *pix);
	for (size_t i = 0; i < n; i++)
		pix[i] = (float)((i * 2654435761ull) % 1000) / 500.0f - 1.0f;
	int arid = 1, armask[4] = {1, 0, 0, 0};
	struct lvd_mllama_batch b = {.B = 1, .T = P, .M = 1, .input_ids = ids, .pixel_values = pix,
				     .aspect_ratio_ids = &arid, .aspect_ratio_mask = armask, .cross_attention_mask = xmask};
	struct lvd_gen_opts o = {(int)nnew, NULL, 0, 8000, NULL, NULL};
	double ttft[101], dec[101];
	for (uint64_t it = 0; it <= iters; it++) {
		struct lvd_mllama_gen *g = NULL;
		double t0 = lvd_time_now(), t1 = 0;
		int next, done = 0, k = 0;
		if (lvd_mllama_gen_begin(&g, m, &b, NULL, &o, &err)) {
			fprintf(stderr, "bench_gen: error: %s\n", err.msg);
			return 1;
		}
		while (!lvd_mllama_gen_step(g, &next, &done, &err) && !done) {
			toks[k++] = next;
			if (k == 1)
				t1 = lvd_time_now();
		}
		double t2 = lvd_time_now();
		lvd_mllama_gen_free(g);
		if (it) {
			ttft[it - 1] = t1 - t0;
			dec[it - 1] = (t2 - t1) / (double)(nnew - 1);
		}
	}
	double mt = median(ttft, (int)iters), md = median(dec, (int)iters);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"side\": \"lvd\", \"threads\": %d, \"new_tokens\": %d, \"ttft_s\": %.4f, \"decode_s_per_token\": %.5f, "
	       "\"tokens_per_s\": %.2f, \"tokens\": [",
	       (int)threads, (int)nnew, mt, md, 1.0 / md);
	for (uint64_t i = 0; i < nnew; i++)
		printf("%s%d", i ? ", " : "", toks[i]);
	printf("], \"peak_rss_mb\": %.1f}\n", ru.ru_maxrss / 1024.0);
	free(pix);
	lvd_mllama_free(m);
	return 0;
}
