/* bench/bench_mllama.c — one full fine-tuning step (forward + backward, fp32, CPU) of
 * an mllama folder, timed; the peer is bench/mllama_peer.py (same inputs).
 *
 *   bench_mllama MODEL_DIR [THREADS [ITERS]]
 * prints one JSON line {"side":"lvd","median_s":..,"times_s":[..],"peak_rss_mb":..,"loss":..}. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "core/parse.h"
#include "models/mllama/mllama.h"
#include "nn/gemm.h"

enum { T = 128, IMG = 224 };

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: bench_mllama MODEL_DIR [THREADS [ITERS]]\n");
		return 2;
	}
	uint64_t threads = 1, iters = 3;
	struct lvd_error err = { 0 };
	if ((argc > 2 && lvd_parse_u64(argv[2], 1, 1024, &threads, "THREADS", &err)) ||
	    (argc > 3 && lvd_parse_u64(argv[3], 1, 1000, &iters, "ITERS", &err))) {
		fprintf(stderr, "bench_mllama: error: %s\n", err.msg);
		return 2;
	}
	lvd_gemm_set_threads((int)threads);
	struct lvd_mllama *m;
	if (lvd_mllama_load(&m, argv[1], &err) || lvd_mllama_enable_grads(m, &err)) {
		fprintf(stderr, "bench_mllama: error: %s\n", err.msg);
		return 1;
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
	double times[1001];
	for (uint64_t it = 0; it <= iters; it++) {
		lvd_mllama_zero_grads(m);
		double t0 = now();
		if (lvd_mllama_forward(m, &b, &err) || lvd_mllama_backward(m, 1.0f, NULL, &err)) {
			fprintf(stderr, "bench_mllama: error: %s\n", err.msg);
			return 1;
		}
		if (it)
			times[it - 1] = now() - t0;
	}
	double sorted[1001];
	for (uint64_t i = 0; i < iters; i++)
		sorted[i] = times[i];
	qsort(sorted, iters, sizeof(double), cmpd);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"side\": \"lvd\", \"threads\": %d, \"loss\": %.7f, \"median_s\": %.4f, \"times_s\": [", (int)threads,
	       lvd_mllama_loss(m), sorted[iters / 2]);
	for (uint64_t i = 0; i < iters; i++)
		printf("%s%.4f", i ? ", " : "", times[i]);
	printf("], \"peak_rss_mb\": %.1f}\n", ru.ru_maxrss / 1024.0);
	free(pix);
	lvd_mllama_free(m);
	return 0;
}
