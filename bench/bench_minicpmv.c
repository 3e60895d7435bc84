/* bench/bench_minicpmv.c — a MiniCPM-V-2.5 step (fp32, CPU) on the folder that
 * bench/minicpmv_peer.py makes, timed; the peer is that script (same inputs).
 *
 *   bench_minicpmv MODEL_DIR [THREADS [ITERS [fwd|llm|lora|full|lora-res [CAPTURE]]]]
 * fwd: the inference forward (vision tower, resampler, LLM) and the CE of its logits;
 * llm (default): forward + CE + backward with every llm.* parameter trainable, the
 *   vision tower and resampler frozen;
 * lora: forward + CE + backward with r = 16, alpha = 32 adapters on the LLM's
 *   q/k/v/o_proj (OpenBMB's targets), everything else frozen;
 * full: forward + CE + backward with every parameter trainable (LLM, resampler, vision
 *   tower: lvd_minicpmv_vision_backward after the LLM's);
 * lora-res: lora with the resampler trainable too (OpenBMB's modules_to_save), the
 *   vision tower frozen.
 * CAPTURE (llm/lora; default 0 = the plain CE step the peer runs): rows whose
 * text->image-token probabilities are captured at every LLM layer and turned into the
 * rollout maps (lib/lavender/mcv_maps.h: the resampler head mean once, then per layer
 * the maps on a 32x32 grid, source and slice views, their adjoint from a stand-in map
 * gradient), whose dA goes into the LLM backward as the probability gradient and whose
 * dR̄ is spread onto the resampler probabilities (the resampler backward's input in
 * full and lora-res) — the Lavender loss's extra cost on this model without the Aligner. map_s: the
 * median time of the maps alone (included in median_s).
 * prints one JSON line {"side":"lvd","mode":..,"median_s":..,"cpu_s":..,"times_s":[..],
 * "peak_rss_mb":..,"loss":..,"ws_peak_mb":..,"capture_rows":..,"map_s":..}; cpu_s is the median process CPU time of
 * a step, peak_rss_mb the process's peak resident set (getrusage), ws_peak_mb the
 * high-water mark of the context workspace. The input formulas are make_inputs' in
 * bench/minicpmv_peer.py. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/clock.h"
#include "core/parse.h"
#include "lavender/mcv_maps.h"
#include "models/minicpmv/minicpmv.h"
#include "nn/ctx.h"
#include "nn/ops/xent.h"

enum { T = 320, Q = 64, NI = 2, TH = 16, TW = 16, LAB0 = 132, GRID = 32, MAXL = 64 };

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(const double *v, uint64_t n)
{
	double s[1001];
	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, cmpd);
	return s[n / 2];
}

/* mean CE of logits [T, V] rows against labels (no shift; -100 ignored): the op the
 * training step uses (lib/nn/ops/xent.h) */
static double ce_of(struct lvd_ctx *ctx, const float *logits, const int *labels, int V)
{
	int n = 0;
	double sum = lvd_xent_fwd(ctx, &n, logits, labels, T, V);
	return n ? sum / n : 0.0;
}

int main(int argc, char **argv)
{
	lvd_blas_policy_init();
	const char *mode = argc >= 5 ? argv[4] : "llm";
	int fwd = strcmp(mode, "fwd") == 0, lora_res = strcmp(mode, "lora-res") == 0;
	int lora = lora_res || strcmp(mode, "lora") == 0, full = strcmp(mode, "full") == 0;
	int vision = full || lora_res;   /* the resampler (and in full the vision tower) train */
	if (argc < 2 || argc > 6 || (!fwd && !lora && !full && strcmp(mode, "llm"))) {
		fprintf(stderr, "usage: bench_minicpmv MODEL_DIR [THREADS [ITERS [fwd|llm|lora|full|lora-res [CAPTURE]]]]\n");
		return 2;
	}
	uint64_t threads = 1, iters = 3, capture = 0;
	struct lvd_error err = { 0 };
	if ((argc > 2 && lvd_parse_u64(argv[2], 1, 1024, &threads, "THREADS", &err)) ||
	    (argc > 3 && lvd_parse_u64(argv[3], 1, 1000, &iters, "ITERS", &err)) ||
	    (argc > 5 && lvd_parse_u64(argv[5], 0, T - LAB0, &capture, "CAPTURE", &err))) {
		fprintf(stderr, "bench_minicpmv: error: %s\n", err.msg);
		return 2;
	}
	struct lvd_minicpmv *m = NULL;
	struct lvd_ctx *ctx = NULL;
	struct lvd_ctx_opts co = { .threads = (int)threads };
	struct lvd_minicpmv_lora_cfg lc = { .r = 16, .alpha = 32, .targets = "q_proj,k_proj,v_proj,o_proj", .seed = 1 };
	if (lvd_minicpmv_load(&m, argv[1], &err) || lvd_ctx_create(&ctx, &co, &err) ||
	    (lora && lvd_minicpmv_add_lora(m, &lc, &err)) || (!fwd && !lora && lvd_minicpmv_enable_grads(m, &err)) ||
	    (vision && lvd_minicpmv_vision_train(m, full, &err))) {
		fprintf(stderr, "bench_minicpmv: error: %s\n", err.msg);
		return 1;
	}
	lvd_minicpmv_set_ctx(m, ctx);
	const struct lvd_minicpmv_config *cfg = lvd_minicpmv_cfg(m);
	if (cfg->query_num != Q || cfg->v_patch != 14 || cfg->t_layers > MAXL) {
		fprintf(stderr, "bench_minicpmv: error: %s: not bench/minicpmv_peer.py's model (query_num %d, patch %d)\n",
			argv[1], cfg->query_num, cfg->v_patch);
		return 1;
	}
	/* the peer's fixed A (so the losses compare) and non-zero B, as a trained adapter */
	for (size_t i = 0; lora && i < lvd_minicpmv_nlora(m); i++) {
		struct lvd_minicpmv_lora *l = lvd_minicpmv_lora_at(m, i);
		for (size_t j = 0; j < (size_t)l->out * 16; j++)
			l->B[j] = 0.01f * (float)((int)(j % 7) - 3);
		for (size_t j = 0; j < (size_t)l->in * 16; j++)
			l->A[j] = 0.01f * (float)((int)(j % 5) - 2);
	}
	static int ids[T], labels[T];
	int starts[NI] = { 2, 68 };
	for (int t = 0; t < T; t++)
		ids[t] = (t * 37 + 11) % 8000 + 3;
	int bound[NI * 2], tgt[NI * 2], nimg = NI;
	for (int k = 0; k < NI; k++) {
		for (int q = 0; q < Q; q++)
			ids[starts[k] + q] = 0;
		bound[2 * k] = starts[k];
		bound[2 * k + 1] = starts[k] + Q;
		tgt[2 * k] = TH;
		tgt[2 * k + 1] = TW;
	}
	for (int t = 0; t < T; t++)
		labels[t] = t >= LAB0 && t < T - 1 ? ids[t + 1] : -100;
	int ps = cfg->v_patch, L = TH * TW;
	size_t n = (size_t)NI * 3 * ps * L * ps;
	float *pix = malloc(n * sizeof *pix);
	if (!pix) {
		fprintf(stderr, "bench_minicpmv: error: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		pix[i] = (float)((i * 2654435761ull) % 1000) / 500.0f - 1.0f;
	struct lvd_minicpmv_batch b = { .B = 1, .T = T, .input_ids = ids, .NI = NI, .Lmax = L, .pixel_values = pix,
					.tgt_sizes = tgt, .n_images = &nimg, .image_bound = bound,
					.labels = fwd ? NULL : labels };
	/* capture rows spread over the scored text rows, as matched words would be */
	static int cap_rows[T], cap_layers[MAXL];
	int cap_off[2] = { 0, (int)capture }, R = (int)capture;
	for (int i = 0; i < R; i++)
		cap_rows[i] = LAB0 + i * (T - LAB0) / R;
	for (int l = 0; l < cfg->t_layers; l++)
		cap_layers[l] = l;
	struct lvd_mcv_geom g = { .mode = LVD_MCV_MAP_ROLLOUT, .heads = cfg->t_heads, .n_pics = NI, .Q = Q, .cols = 1,
				  .rows = 1, .Hr = cfg->r_heads, .Lmax = L, .th = { TH, TH }, .tw = { TW, TW },
				  .grid = GRID };
	float *rbar = NULL, *drbar = NULL, *maps = NULL, *dmaps = NULL, *dA = NULL, *dRr = NULL;
	const float *dprobs[MAXL] = { 0 };
	size_t nA = (size_t)cfg->t_heads * R * NI * Q, nmap = 0, nrbar = 0, nRr = (size_t)NI * cfg->r_heads * Q * L;
	if (R && !fwd) {
		if (lvd_mcv_geom_check(&g, &err)) {
			fprintf(stderr, "bench_minicpmv: error: %s\n", err.msg);
			return 1;
		}
		b.n_cap_layers = cfg->t_layers;
		b.cap_layers = cap_layers;
		b.cap_rows = cap_rows;
		b.cap_off = cap_off;
		nmap = (size_t)g.views * R * g.heads * GRID * GRID;
		nrbar = lvd_mcv_rbar_floats(&g);
		rbar = malloc(nrbar * sizeof *rbar);
		drbar = malloc(nrbar * sizeof *drbar);
		maps = malloc(nmap * sizeof *maps);
		dmaps = malloc(nmap * sizeof *dmaps);
		dA = malloc((size_t)cfg->t_layers * nA * sizeof *dA);
		dRr = malloc(nRr * sizeof *dRr);
		if (!rbar || !drbar || !maps || !dmaps || !dA || !dRr) {
			fprintf(stderr, "bench_minicpmv: error: out of memory\n");
			return 1;
		}
		for (size_t i = 0; i < nmap; i++)
			dmaps[i] = 1e-3f * (float)((int)(i % 5) - 2); /* an attention-loss gradient stand-in */
		for (int l = 0; l < cfg->t_layers; l++)
			dprobs[l] = dA + (size_t)l * nA;
	}
	double times[1001], cpu[1001], mtimes[1001], loss = 0.0;
	for (uint64_t it = 0; it <= iters; it++) {
		if (!fwd)
			lvd_minicpmv_zero_grads(m);
		if (vision)
			lvd_minicpmv_vision_zero_grads(m);
		double t0 = lvd_time_now(), c0 = lvd_cpu_now();
		double mt = 0.0;
		if (lvd_minicpmv_forward(m, &b, &err)) {
			fprintf(stderr, "bench_minicpmv: error: %s\n", err.msg);
			return 1;
		}
		if (R && !fwd) { /* the rollout maps of every captured layer, forward and adjoint */
			double m0 = lvd_time_now();
			memset(dA, 0, (size_t)cfg->t_layers * nA * sizeof *dA);
			memset(drbar, 0, nrbar * sizeof *drbar);
			memset(dRr, 0, nRr * sizeof *dRr);
			lvd_mcv_rbar_fwd(ctx, rbar, lvd_minicpmv_resampler_probs(m), &g);
			for (int l = 0; l < cfg->t_layers; l++) {
				const float *A = lvd_minicpmv_cap_probs(m, l, NULL);
				lvd_mcv_maps_fwd(ctx, maps, A, rbar, &g, R);
				lvd_mcv_maps_bwd(ctx, dA + (size_t)l * nA, drbar, dmaps, A, rbar, &g, R);
			}
			lvd_mcv_rbar_bwd(dRr, drbar, &g);
			mt = lvd_time_now() - m0;
		}
		if (!fwd && lvd_minicpmv_backward(m, R ? dprobs : NULL, &err)) {
			fprintf(stderr, "bench_minicpmv: error: %s\n", err.msg);
			return 1;
		}
		if (vision && lvd_minicpmv_vision_backward(m, lvd_minicpmv_d_resampled(m), R ? dRr : NULL, &err)) {
			fprintf(stderr, "bench_minicpmv: error: %s\n", err.msg);
			return 1;
		}
		loss = fwd ? ce_of(ctx, lvd_minicpmv_logits(m), labels, cfg->vocab) : lvd_minicpmv_loss(m, NULL);
		if (it) {
			times[it - 1] = lvd_time_now() - t0;
			cpu[it - 1] = lvd_cpu_now() - c0;
			mtimes[it - 1] = mt;
		}
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"side\": \"lvd\", \"mode\": \"%s\", \"threads\": %d, \"loss\": %.7f, \"median_s\": %.4f, "
	       "\"cpu_s\": %.4f, \"times_s\": [", mode, (int)threads, loss, median(times, iters), median(cpu, iters));
	for (uint64_t i = 0; i < iters; i++)
		printf("%s%.4f", i ? ", " : "", times[i]);
	printf("], \"peak_rss_mb\": %.1f, \"ws_peak_mb\": %.1f, \"capture_rows\": %d, \"map_s\": %.4f, "
	       "\"blas\": \"OpenBLAS %s\"}\n",
	       ru.ru_maxrss / 1024.0, lvd_ctx_ws_peak(ctx) / 1048576.0, fwd ? 0 : R, median(mtimes, iters),
	       lvd_blas_corename());
	free(rbar);
	free(drbar);
	free(maps);
	free(dmaps);
	free(dA);
	free(dRr);
	free(pix);
	lvd_minicpmv_free(m);
	lvd_ctx_destroy(ctx);
	return 0;
}
