/* bench/bench_lavender.c — the Lavender loss on the medium mllama config (CPU, fp32):
 * the loss alone (forward + backward of L_att on the captured probabilities) and its
 * share of a full LoRA training step (lvd_lstep_run: model forward with capture rows,
 * loss, injected gradient, model backward), next to the plain LoRA step (CE only) on
 * the same batch. The peer (bench/lavender_peer.py) times the PyTorch reference of the
 * same loss on the same inputs, which this program writes to DUMP (bench/sft_peer.py
 * the same training step, reading the plan from DUMP).
 *
 *   bench_lavender MODEL_DIR THREADS ITERS DUMP
 * Model and batch as bench_mllama lora (T = 128, one 224² tile of 4 slots, r = 16 on
 * q_proj,v_proj); a pack plan of W = 8 words with 1-2 query rows each in the answer half
 * (R = 10 capture rows), canvas targets 16×16 (the tile's patches); Aligner sim /
 * instance / relu6, d_in = 16 heads, d_h = 32, N(0, 0.02) init, λ = 10.
 * Prints one JSON line {"side":"lvd","threads":..,"loss_s":..,"step_s":..,
 * "step_plain_s":..,"share":loss_s/step_s,"latt":..,"peak_rss_mb":..}: medians of ITERS steps and of
 * 10·ITERS loss evaluations (it is cheap and the box is noisy), after a warm-up. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "core/parse.h"
#include "io/safetensors.h"
#include "lavender/aligner.h"
#include "lavender/lstep.h"
#include "lavender/packrec.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"
#include "core/clock.h"
#include "nn/ctx.h"

enum { T = 128, IMG = 224, W = 8, G = IMG / 14 };

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

static int die(const char *what, const struct lvd_error *err)
{
	fprintf(stderr, "bench_lavender: error: %s: %s\n", what, err->msg);
	return 1;
}

int main(int argc, char **argv)
{
	lvd_blas_policy_init();
	if (argc != 5) {
		fprintf(stderr, "usage: bench_lavender MODEL_DIR THREADS ITERS DUMP\n");
		return 2;
	}
	uint64_t threads = 1, iters = 3;
	struct lvd_error err = { 0 };
	if (lvd_parse_u64(argv[2], 1, 1024, &threads, "THREADS", &err) ||
	    lvd_parse_u64(argv[3], 1, 1000, &iters, "ITERS", &err)) {
		fprintf(stderr, "bench_lavender: error: %s\n", err.msg);
		return 2;
	}
	struct lvd_mllama *m;
	struct lvd_mllama_lora_cfg lc = { .r = 16, .alpha = 32, .targets = "q_proj,v_proj", .seed = 1 };
	if (lvd_mllama_load_frozen(&m, argv[1], &err) || lvd_mllama_set_threads(m, (int)threads, &err) ||
	    lvd_mllama_add_lora(m, &lc, &err))
		return die(argv[1], &err);
	for (size_t i = 0; i < lvd_mllama_nlora(m); i++) { /* non-zero B, as bench_mllama */
		struct lvd_mllama_lora *l = lvd_mllama_lora_at(m, i);
		for (size_t j = 0; j < (size_t)l->out * 16; j++)
			l->B[j] = 0.01f * (float)((int)(j % 7) - 3);
	}
	struct lvd_ctx *ctx = NULL;
	struct lvd_ctx_opts co = { .threads = (int)threads, .ws_bytes = (size_t)4 << 30 };
	if (lvd_ctx_create(&ctx, &co, &err))
		return die("context", &err);
	/* the batch: bench_mllama's */
	static int ids[T], labels[T], xmask[T * 4];
	for (int i = 0; i < T; i++) {
		ids[i] = (i * 37 + 11) % 8000;
		xmask[i * 4] = i >= 1;
	}
	ids[1] = 8192;
	for (int i = 0; i < T; i++)
		labels[i] = i < T / 2 ? -100 : ids[i];
	size_t n = (size_t)3 * IMG * IMG;
	float *pix = calloc(4 * n, sizeof *pix);
	for (size_t i = 0; i < n; i++)
		pix[i] = (float)((i * 2654435761ull) % 1000) / 500.0f - 1.0f;
	int arid = 1, armask[4] = { 1, 0, 0, 0 };
	struct lvd_mllama_batch b = { .B = 1, .T = T, .M = 1, .input_ids = ids, .labels = labels, .pixel_values = pix,
				      .aspect_ratio_ids = &arid, .aspect_ratio_mask = armask,
				      .cross_attention_mask = xmask };
	/* a pack record: 8 words, query rows 70, 74, ... (words 2 and 5 take two rows) */
	struct lvd_packrec rec;
	memset(&rec, 0, sizeof rec);
	static struct lvd_packrec_word words[W];
	static uint32_t pos[W][2], query[W][2];
	static uint16_t targets[W * G * G];
	static uint8_t mask[G * G];
	static char keys[W][8];
	uint64_t s = 88172645463325252ull;
	for (int w = 0; w < W; w++) {
		int two = w == 2 || w == 5;
		query[w][0] = (uint32_t)(70 + 7 * w);
		query[w][1] = query[w][0] + 3;
		pos[w][0] = query[w][0] + 1;
		pos[w][1] = query[w][1] + 1;
		snprintf(keys[w], sizeof keys[w], "w%d", w);
		words[w] = (struct lvd_packrec_word){ .key = keys[w], .n_pos = (uint32_t)(1 + two),
						      .n_query = (uint32_t)(1 + two), .pos = pos[w], .query = query[w],
						      .sd_tok = w, .min = 0, .max = 1 };
		for (int i = 0; i < G * G; i++) {
			s ^= s << 13, s ^= s >> 7, s ^= s << 17;
			targets[w * G * G + i] = lvd_f32_to_f16((float)(s % 1000) / 999.0f);
		}
	}
	memset(mask, 1, sizeof mask);
	rec.id = "bench";
	rec.T = T;
	rec.tokens = ids;
	rec.labels = labels;
	rec.W = W;
	rec.words = words;
	rec.gh = rec.gw = G;
	rec.targets = targets;
	rec.mask = mask;
	rec.img_w = rec.img_h = rec.new_w = rec.new_h = IMG;
	rec.tiles_h = rec.tiles_w = 1;
	rec.aspect_id = 1;
	rec.tile_px = IMG;
	rec.patch_px = 14;
	rec.image_pos = 1;
	struct lvd_latt_plan plan;
	if (lvd_lstep_plan(&plan, m, &rec, 1, 0, 0, &err))
		return die("plan", &err);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	struct lvd_latt_cfg cfg;
	lvd_latt_cfg_default(&cfg, c->t_heads, c->n_cross);
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, &cfg.aligner);
	float *params = calloc(lay.n_params, sizeof *params), *dparams = calloc(lay.n_params, sizeof *dparams);
	lvd_aligner_init(&cfg.aligner, params, 1, LVD_ALIGNER_INIT_NORMAL, 0.02f);
	float *dprobs = calloc(lvd_lstep_dprobs_floats(m, &plan, 1, 1, 0), sizeof *dprobs);
	struct lvd_lstep_in in = { .batch = &b, .plans = &plan, .params = params, .cfg = &cfg, .lambda = 10.0f,
				   .ce_scale = 1.0f, .backward = 1, .dprobs = dprobs };
	struct lvd_lstep_out out;
	double t_step[1001], t_plain[1001];
	static double t_loss[10001];
	const uint64_t liters = 10 * iters;
	for (uint64_t it = 0; it <= iters; it++) {
		lvd_mllama_zero_grads(m);
		double t0 = lvd_time_now();
		if (lvd_mllama_forward(m, &b, &err) || lvd_mllama_backward(m, 1.0f, NULL, &err))
			return die("plain step", &err);
		double t1 = lvd_time_now();
		lvd_mllama_zero_grads(m);
		if (lvd_lstep_run(ctx, m, &out, dparams, NULL, &in, &err))
			return die("lavender step", &err);
		double t2 = lvd_time_now();
		if (it) {
			t_plain[it - 1] = t1 - t0;
			t_step[it - 1] = t2 - t1;
		}
	}
	/* the loss alone on the probabilities the last step captured */
	const int S = plan.geom.S, H = plan.geom.heads;
	const float *probs[LVD_LATT_MAX_LAYERS] = { 0 };
	for (int k = 0; k < c->n_cross; k++)
		probs[k] = lvd_mllama_xattn_probs(m, k);
	struct lvd_latt_sample smp = lvd_latt_plan_sample(&plan, probs);
	if (lvd_latt_sample_check(&smp, &cfg, &err))
		return die("sample", &err);
	float *dpl[LVD_LATT_MAX_LAYERS] = { 0 };
	for (int k = 0; k < c->n_cross; k++)
		dpl[k] = dprobs + (size_t)k * plan.R * H * S;
	double latt = 0;
	for (uint64_t it = 0; it <= liters; it++) {
		memset(dparams, 0, lay.n_params * sizeof *dparams);
		latt = 0;
		double t0 = lvd_time_now();
		lvd_latt_sample_loss(ctx, &latt, dparams, dpl, &smp, params, &cfg, plan.W, 10.0f, NULL);
		if (it)
			t_loss[it - 1] = lvd_time_now() - t0;
	}
	/* the peer's inputs */
	struct lvd_st_writer *wr = lvd_st_writer_new();
	int64_t sh_p[4] = { c->n_cross, H, plan.R, S }, sh_t[3] = { W, G, G }, sh_r[1] = { 0 }, sh_o[1] = { W + 1 };
	float *pall = malloc((size_t)c->n_cross * H * plan.R * S * sizeof *pall);
	for (int k = 0; k < c->n_cross; k++)
		memcpy(pall + (size_t)k * H * plan.R * S, probs[k], (size_t)H * plan.R * S * sizeof *pall);
	int32_t rows[64], off[W + 1];
	int nr = 0;
	for (int w = 0; w < W; w++) {
		off[w] = nr;
		for (int i = 0; i < plan.words[w].n_rows; i++)
			rows[nr++] = plan.words[w].rows[i];
	}
	off[W] = nr;
	sh_r[0] = nr;
	/* the token positions of the R captured rows (bench/sft_peer.py captures them) */
	int *rpos = malloc(sizeof *rpos * (size_t)(plan.R + 1));
	int64_t sh_q[1] = {plan.R};
	for (int i = 0; i < plan.R; i++)
		rpos[i] = (int)plan.rows_pos[i];
	int rc = lvd_st_writer_add(wr, "probs", LVD_DT_F32, 4, sh_p, pall, &err) ||
		 lvd_st_writer_add(wr, "targets", LVD_DT_F32, 3, sh_t, plan.targets, &err) ||
		 lvd_st_writer_add(wr, "rows", LVD_DT_I32, 1, sh_r, rows, &err) ||
		 lvd_st_writer_add(wr, "rows_off", LVD_DT_I32, 1, sh_o, off, &err) ||
		 lvd_st_writer_add(wr, "rows_pos", LVD_DT_I32, 1, sh_q, rpos, &err);
	for (int i = 0; !rc && i < LVD_ALIGNER_MAX_TENSORS; i++)
		if (lay.t[i].n)
			rc = lvd_st_writer_add(wr, lay.t[i].name, LVD_DT_F32, lay.t[i].ndim, lay.t[i].shape,
					       params + lay.t[i].off, &err);
	if (rc || lvd_st_writer_write(wr, argv[4], &err))
		return die(argv[4], &err);
	lvd_st_writer_free(wr);
	free(rpos);
	double ls = median(t_loss, (int)liters), ss = median(t_step, (int)iters), ps = median(t_plain, (int)iters);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"side\": \"lvd\", \"threads\": %d, \"R\": %d, \"W\": %d, \"latt\": %.7f, \"loss_s\": %.4f, "
	       "\"step_s\": %.4f, \"step_plain_s\": %.4f, \"share\": %.4f, \"peak_rss_mb\": %.1f}\n",
	       (int)threads, plan.R, W, latt, ls, ss, ps, ls / ss, (double)ru.ru_maxrss / 1024.0);
	free(pall), free(dprobs), free(params), free(dparams), free(pix);
	lvd_latt_plan_free(&plan);
	lvd_ctx_destroy(ctx);
	lvd_mllama_free(m);
	return 0;
}
