/* lib/eval/align.h — attention-alignment metrics: one VLM word map against its SD target
 * on the pack's grid, over the valid cells only (lvd-eval align, docs/eval.md "align").
 *
 * Inputs: map m[n], target t[n], mask[n] (1 = valid cell); V = the valid cells, |V| >= 1.
 * lvd-eval passes the per-word maps as the Lavender loss computes them (per-row min-max,
 * mean over the word's rows, min-max: values in [0, 1]) and the pack's targets (min-max
 * normalised per word), so the MSE below is exactly the loss's mse_w.
 *   mse      (1/|V|)·Σ_V (m_i − t_i)², in double.
 *   pearson  Σ_V (m_i − m̄)(t_i − t̄) / sqrt(Σ_V (m_i − m̄)² · Σ_V (t_i − t̄)²) (two passes,
 *            double); 0 when either map is constant on V.
 *   kl       KL(t‖m) = Σ_V p_i·ln(p_i/q_i) in nats, p_i = (t_i⁺ + ε)/Σ_V (t_j⁺ + ε),
 *            q_i = (m_i⁺ + ε)/Σ_V (m_j⁺ + ε), x⁺ = max(x, 0), ε = LVD_EVAL_ALIGN_EPS (1e-6).
 *   iou10, iou20  |S_k(m) ∩ S_k(t)| / |S_k(m) ∪ S_k(t)| (0 when the union is empty) for
 *            the top-k% mass sets below, k = 10, 20.
 *   pointing 1 when the argmax of m over V (the lowest cell index among equal maxima) lies
 *            in S_20(t), else 0.
 * Top-k% mass set S_k(x): the valid cells ordered by x descending, equal values by cell
 * index ascending; S_k is the shortest prefix of that order whose running sum of x⁺
 * (accumulated in double in that order) is >= (k/100)·Σ_V x⁺. So S_k is the smallest set
 * of cells holding at least k% of the mass (one cell at least when the mass is positive;
 * empty when the map is 0 on V). */
#ifndef LVD_EVAL_ALIGN_H
#define LVD_EVAL_ALIGN_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_EVAL_ALIGN_EPS 1e-6

struct lvd_eval_align_m {
	double mse, pearson, kl, iou10, iou20, pointing;
};

/* Number of metrics and their names, in struct order ("mse", "pearson", "kl", "iou10",
 * "iou20", "pointing"); lvd_eval_align_get reads metric k of m. */
#define LVD_EVAL_ALIGN_NM 6
extern const char *const lvd_eval_align_names[LVD_EVAL_ALIGN_NM];
double lvd_eval_align_get(const struct lvd_eval_align_m *m, int k);

/* S_frac(x) (frac = k/100 in [0, 1]) into set[n] (1 = member; 0 on invalid cells); returns
 * its size. order: caller's work buffer of 2·n size_t. */
size_t lvd_eval_topk_mass(uint8_t *set, size_t *order, const float *x, const uint8_t *mask, size_t n, double frac);

/* All metrics of map against target (above). work: caller's buffer of
 * lvd_eval_align_work_bytes(n) bytes. LVD_ERR_INVALID when no cell is valid. */
size_t lvd_eval_align_work_bytes(size_t n);
int lvd_eval_align_metrics(struct lvd_eval_align_m *out, const float *map, const float *target, const uint8_t *mask,
			   size_t n, void *work, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
