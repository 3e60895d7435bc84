/* tests/latt_golden.h — helpers shared by the Lavender-loss golden tests (test_lavender.c,
 * test_mcv_maps.c; the generators gen_lavender.py and gen_mcv_maps.py write the same
 * case layout): a case's loss configuration and Aligner parameters, a sample's words,
 * per-sample tensor comparisons, the Aligner gradient check and the trace buffers.
 * Header-only; include after harness.h and golden_util.h. */
#ifndef LVD_TEST_LATT_GOLDEN_H
#define LVD_TEST_LATT_GOLDEN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "lavender/aligner.h"
#include "lavender/latt.h"

/* Case ci of st: cfg from c<ci>.cfg (entries 2.. = depth, norm, act, d_h, agg, n_layers,
 * layers...; the first two are the generator's geometry) with `lean`, *params (malloc'd,
 * *n_params floats) from c<ci>.p.<official name>, returns c<ci>.loss. REQUIREs inside;
 * cfg0/cfg1 (may be NULL) get the first two entries. */
static inline double lvd_tg_case(struct lvd_st *st, int ci, struct lvd_latt_cfg *cfg, float **params,
				 size_t *n_params, int heads, int n_captured, int lean, int *cfg0, int *cfg1)
{
	char k[128];
	snprintf(k, sizeof k, "c%d.cfg", ci);
	size_t n;
	float *v = lvd_gold_f32(st, k, &n);
	REQUIRE(v && n >= 8 && n <= 8 + LVD_LATT_MAX_LAYERS);
	if (cfg0)
		*cfg0 = (int)v[0];
	if (cfg1)
		*cfg1 = (int)v[1];
	lvd_latt_cfg_default(cfg, heads, n_captured);
	cfg->aligner.depth = (enum lvd_aligner_depth)v[2];
	cfg->aligner.norm = (enum lvd_aligner_norm)v[3];
	cfg->aligner.act = (enum lvd_aligner_act)v[4];
	cfg->aligner.d_h = (int)v[5];
	cfg->agg = (enum lvd_latt_agg)v[6];
	cfg->n_layers = (int)v[7];
	for (int i = 0; i < cfg->n_layers && 8 + (size_t)i < n; i++)
		cfg->layers[i] = (int)v[8 + i];
	cfg->lean = lean;
	free(v);
	struct lvd_error e;
	REQUIRE(lvd_latt_cfg_check(cfg, &e) == LVD_OK);
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, &cfg->aligner);
	*n_params = lay.n_params;
	*params = calloc(lay.n_params, sizeof **params);
	for (int t = 0; t < LVD_ALIGNER_MAX_TENSORS; t++) {
		if (!lay.t[t].n)
			continue;
		snprintf(k, sizeof k, "c%d.p.%s", ci, lay.t[t].name);
		float *p = lvd_gold_f32(st, k, &n);
		REQUIRE(p && n == lay.t[t].n);
		memcpy(*params + lay.t[t].off, p, n * sizeof *p);
		free(p);
	}
	snprintf(k, sizeof k, "c%d.loss", ci);
	float *l = lvd_gold_f32(st, k, NULL);
	REQUIRE(l);
	double loss = l[0];
	free(l);
	return loss;
}

/* words[w] from the flattened rows, rows_off [W+1], matched [W] and targets [W, hw] */
static inline void lvd_tg_words(struct lvd_latt_word *words, int W, const int *rows, const int *rows_off,
				const int *matched, const float *targets, size_t hw)
{
	for (int w = 0; w < W; w++) {
		words[w].n_rows = rows_off[w + 1] - rows_off[w];
		words[w].rows = rows + rows_off[w];
		words[w].target = matched[w] ? targets + (size_t)w * hw : NULL;
	}
}

/* got[n] vs golden c<ci>.s<b>.<what>: |diff| <= atol + rtol·max|want| */
static inline void lvd_tg_cmp(struct lvd_st *st, int ci, int b, const char *what, const float *got, size_t n,
			      double atol, double rtol)
{
	char k[128];
	snprintf(k, sizeof k, "c%d.s%d.%s", ci, b, what);
	size_t m = 0;
	float *want = lvd_gold_f32(st, k, &m);
	CHECKF(want && m == n, "%s: missing or %zu elements, expected %zu", k, m, n);
	if (want && m == n)
		CHECK_CLOSE(k, got, want, n, atol, rtol);
	free(want);
}

/* dparams vs c<ci>.dp.<name> tensor by tensor: rtol 5e-5 plus atol 1e-5·max|dparams|
 * (diffag_conv_last.bias has an exact zero gradient, ours is fp32 cancellation; see
 * test_lavender.c) */
static inline void lvd_tg_check_dparams(struct lvd_st *st, int ci, const struct lvd_latt_cfg *cfg,
					const float *dparams)
{
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, &cfg->aligner);
	const double dmax = lvd_gold_max_abs(dparams, lay.n_params);
	for (int t = 0; t < LVD_ALIGNER_MAX_TENSORS; t++) {
		if (!lay.t[t].n)
			continue;
		char k[128];
		snprintf(k, sizeof k, "c%d.dp.%s", ci, lay.t[t].name);
		size_t n;
		float *want = lvd_gold_f32(st, k, &n);
		CHECKF(want && n == lay.t[t].n, "%s", k);
		if (want && n == lay.t[t].n)
			CHECK_CLOSE(k, dparams + lay.t[t].off, want, n, 1e-5 * dmax, 5e-5);
		free(want);
	}
}

/* every trace buffer of a sample: L chosen layers, La Aligner passes per row set, R rows,
 * W words, H heads, hw cells */
static inline void lvd_tg_trace_alloc(struct lvd_latt_trace *tr, size_t L, size_t La, size_t R, size_t W,
				      size_t H, size_t hw)
{
	memset(tr, 0, sizeof *tr);
	tr->maps = malloc(L * R * H * hw * sizeof(float));
	tr->aligned = malloc(La * R * hw * sizeof(float));
	tr->agg = malloc(R * hw * sizeof(float));
	tr->rows = malloc(R * hw * sizeof(float));
	tr->words = malloc(W * hw * sizeof(float));
	tr->word_loss = malloc(W * sizeof(float));
	tr->raw_words = malloc(W * hw * sizeof(float));
}

static inline void lvd_tg_trace_free(struct lvd_latt_trace *tr)
{
	free(tr->maps);
	free(tr->aligned);
	free(tr->agg);
	free(tr->rows);
	free(tr->words);
	free(tr->word_loss);
	free(tr->raw_words);
}

#endif
