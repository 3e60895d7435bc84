/* bench/bench_sd.c — SD 1.5-sized UNet pass and VAE encode on the CPU (our side of
 * bench/sd.sh; the PyTorch side is bench/sd_peer.py).
 *
 *   bench_sd gen DIR CONFIGS   write DIR/{unet,vae}/ with CONFIGS/{unet,vae}_config.json
 *                              and random F32 weights from a fixed seed (skipped if present)
 *   bench_sd gen-text DIR CONFIGS   the same for DIR/text_encoder/ (model.safetensors from
 *                              CONFIGS/text_encoder_config.json): a folder without Python
 *   bench_sd flops DIR H W     the UNet's analytic FLOPs of one pass at latent H x W, 77
 *                              tokens (lvd_sd_unet_flops), as one number
 *   bench_sd unet DIR RUNS THREADS   one UNet pass at a 32x32 latent (256x256 image), 77 tokens
 *   bench_sd vae DIR RUNS THREADS    one VAE encode of a 256x256 image
 *
 * Env SD_BENCH_WINOGRAD sets lvd_sd_opts.winograd (-1 = im2col only, for comparisons).
 * Prints one JSON line: {"what", "runs", "threads", "median_s", "min_s", "cpu_min_s"
 * (least CPU seconds of one pass, all threads), "gemm_share",
 * "load_s", "peak_rss_mb"}. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/parse.h"
#include "io/safetensors.h"
#include "models/sd/sd.h"
#include "models/sd/sd_internal.h"

struct gen {
	struct lvd_st_writer *w;
	float *bufs[4096];
	int n;
	uint64_t state;
	int failed;
	struct lvd_error err;
};

static uint64_t xs64(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* PyTorch-like init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights, small biases,
 * norms at (1, 0). */
static void declare(void *user, const char *name, int ndim, const int64_t *shape)
{
	struct gen *g = user;
	if (g->failed || g->n >= 4096)
		return;
	int64_t numel = 1;
	for (int i = 0; i < ndim; i++)
		numel *= shape[i];
	float *p = malloc(sizeof(float) * (size_t)numel);
	if (!p) {
		g->failed = 1;
		return;
	}
	int is_norm = strstr(name, "norm") != NULL && ndim == 1;
	int is_bias = strstr(name, ".bias") != NULL;
	double fan_in = ndim >= 2 ? (double)numel / (double)shape[0] : 1.0;
	float bound = (float)(1.0 / sqrt(fan_in));
	for (int64_t i = 0; i < numel; i++) {
		float u = (float)((xs64(&g->state) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
		p[i] = is_norm ? (is_bias ? 0.0f : 1.0f) : is_bias ? 0.01f * u : bound * u;
	}
	g->bufs[g->n++] = p;
	if (lvd_st_writer_add(g->w, name, LVD_DT_F32, ndim, shape, p, &g->err))
		g->failed = 1;
}

static int copy_file(const char *src, const char *dst)
{
	FILE *a = fopen(src, "rb"), *b = a ? fopen(dst, "wb") : NULL;
	if (!a || !b) {
		if (a)
			fclose(a);
		return -1;
	}
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, a)) > 0)
		fwrite(buf, 1, n, b);
	fclose(a);
	return fclose(b);
}

static int gen_component(const char *dir, const char *configs, const char *comp, int mask)
{
	char p[4096], q[4096];
	const char *file = mask == LVD_SD_TEXT ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
	snprintf(p, sizeof p, "%s/%s/%s", dir, comp, file);
	struct stat st;
	if (stat(p, &st) == 0)
		return 0;
	snprintf(q, sizeof q, "%s/%s", dir, comp);
	mkdir(dir, 0755);
	mkdir(q, 0755);
	snprintf(p, sizeof p, "%s/%s_config.json", configs, comp);
	snprintf(q, sizeof q, "%s/%s/config.json", dir, comp);
	if (copy_file(p, q)) {
		fprintf(stderr, "bench_sd: cannot copy %s to %s\n", p, q);
		return 1;
	}
	struct gen *g = calloc(1, sizeof *g);
	g->w = lvd_st_writer_new();
	g->state = 0x9E3779B97F4A7C15ull ^ (uint64_t)mask;
	int rc = sd_declare_diffusers(dir, mask, declare, g, &g->err);
	if (!rc && !g->failed) {
		snprintf(p, sizeof p, "%s/%s/%s", dir, comp, file);
		rc = lvd_st_writer_write(g->w, p, &g->err);
	}
	if (rc || g->failed)
		fprintf(stderr, "bench_sd: %s: %s\n", comp, g->err.msg[0] ? g->err.msg : "out of memory");
	lvd_st_writer_free(g->w);
	for (int i = 0; i < g->n; i++)
		free(g->bufs[i]);
	int bad = rc || g->failed;
	free(g);
	return bad;
}

/* user + system CPU seconds of the whole process (all threads): with a busy machine
 * the wall time mostly measures the other tenants, this one less so */
static double cpu_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
	       (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "gen"))
		return gen_component(argv[2], argv[3], "unet", LVD_SD_UNET) ||
		       gen_component(argv[2], argv[3], "vae", LVD_SD_VAE);
	if (argc >= 4 && !strcmp(argv[1], "gen-text"))
		return gen_component(argv[2], argv[3], "text_encoder", LVD_SD_TEXT);
	if (argc >= 5 && !strcmp(argv[1], "flops")) {
		struct lvd_sd *sd = NULL;
		struct lvd_error err = {0};
		struct lvd_sd_opts o = {.components = LVD_SD_UNET, .threads = 1};
		uint64_t h, w;
		if (lvd_parse_u64(argv[3], 1, 4096, &h, "H", &err) || lvd_parse_u64(argv[4], 1, 4096, &w, "W", &err) ||
		    lvd_sd_load(&sd, argv[2], &o, &err)) {
			fprintf(stderr, "bench_sd: %s\n", err.msg);
			return 1;
		}
		printf("%.6g\n", lvd_sd_unet_flops(sd, (int)h, (int)w, 77));
		lvd_sd_free(sd);
		return 0;
	}
	if (argc < 5 || (strcmp(argv[1], "unet") && strcmp(argv[1], "vae"))) {
		fprintf(stderr, "usage: bench_sd gen|gen-text DIR CONFIGS | bench_sd flops DIR H W | "
			"bench_sd unet|vae DIR RUNS THREADS\n");
		return 2;
	}
	int is_unet = !strcmp(argv[1], "unet");
	int runs = atoi(argv[3]), threads = atoi(argv[4]);
	if (runs < 1 || runs > 100 || threads < 1 || threads > 1024) {
		fprintf(stderr, "bench_sd: bad RUNS or THREADS\n");
		return 2;
	}
	struct lvd_sd_opts o = {.components = is_unet ? LVD_SD_UNET : LVD_SD_VAE, .threads = threads};
	const char *wg = getenv("SD_BENCH_WINOGRAD");   /* lvd_sd_opts.winograd: 2, 1, 0 or -1 */
	if (wg && *wg)
		o.winograd = atoi(wg);
	struct lvd_sd *sd;
	struct lvd_error err = {0};
	double t0 = lvd_time_now();
	if (lvd_sd_load(&sd, argv[2], &o, &err)) {
		fprintf(stderr, "bench_sd: %s\n", err.msg);
		return 1;
	}
	double load_s = lvd_time_now() - t0;
	struct lvd_sd_stats stats = {0};
	lvd_sd_set_stats(sd, &stats);
	int S = 32, IMG = 256, NCTX = 77;
	size_t nin = is_unet ? 4 * (size_t)S * S : 3 * (size_t)IMG * IMG;
	float *in = malloc(sizeof(float) * nin), *out = malloc(sizeof(float) * 4 * S * S);
	float *ctx = malloc(sizeof(float) * NCTX * 768);
	uint64_t s = 42;
	for (size_t i = 0; i < nin; i++)
		in[i] = (float)((xs64(&s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
	for (size_t i = 0; i < (size_t)NCTX * 768; i++)
		ctx[i] = (float)((xs64(&s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
	double times[100], cpus[100], gemm = 0, other = 0;
	int rc = 0;
	for (int r = 0; r < runs && !rc; r++) {
		stats.gemm_s = stats.other_s = 0;
		double a = lvd_time_now(), c0 = cpu_now();
		if (is_unet)
			rc = lvd_sd_unet_forward(sd, out, in, S, S, 500.0f, ctx, NCTX, NULL, NULL, &err);
		else
			rc = lvd_sd_vae_encode(sd, out, NULL, in, IMG, IMG, &err);
		times[r] = lvd_time_now() - a;
		cpus[r] = cpu_now() - c0;
		gemm += stats.gemm_s;
		other += stats.other_s;
	}
	if (rc) {
		fprintf(stderr, "bench_sd: %s\n", err.msg);
		return 1;
	}
	double sum = 0;
	for (int i = 0; i < 4 * S * S; i++)
		sum += fabs(out[i]);
	qsort(times, (size_t)runs, sizeof(double), cmp_d);
	qsort(cpus, (size_t)runs, sizeof(double), cmp_d);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"impl\": \"lvd\", \"what\": \"%s\", \"runs\": %d, \"threads\": %d, \"median_s\": %.4f, "
	       "\"min_s\": %.4f, \"cpu_min_s\": %.4f, \"gemm_share\": %.3f, \"load_s\": %.3f, \"peak_rss_mb\": %.1f, \"out_abs_mean\": %.4g}\n",
	       argv[1], runs, threads, times[runs / 2], times[0], cpus[0], gemm / (gemm + other + 1e-12), load_s,
	       ru.ru_maxrss / 1024.0, sum / (4.0 * S * S));
	free(in);
	free(out);
	free(ctx);
	lvd_sd_free(sd);
	return 0;
}
