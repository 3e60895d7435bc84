/* Attention-alignment metrics (see align.h for the definitions). */
#include "eval/align.h"

#include <math.h>

const char *const lvd_eval_align_names[LVD_EVAL_ALIGN_NM] = {"mse", "pearson", "kl", "iou10", "iou20", "pointing"};

double lvd_eval_align_get(const struct lvd_eval_align_m *m, int k)
{
	switch (k) {
	case 0: return m->mse;
	case 1: return m->pearson;
	case 2: return m->kl;
	case 3: return m->iou10;
	case 4: return m->iou20;
	default: return m->pointing;
	}
}

/* order[0..nv) = the valid cells sorted by (x descending, index ascending). A stable
 * bottom-up merge sort (tmp: n more entries). */
static size_t topk_sort(size_t *order, size_t *tmp, const float *x, const uint8_t *mask, size_t n)
{
	size_t nv = 0;
	for (size_t i = 0; i < n; i++)
		if (mask[i])
			order[nv++] = i;
	for (size_t w = 1; w < nv; w *= 2) {
		for (size_t lo = 0; lo < nv; lo += 2 * w) {
			size_t mid = lo + w < nv ? lo + w : nv, hi = lo + 2 * w < nv ? lo + 2 * w : nv;
			size_t a = lo, b = mid, k = lo;
			while (a < mid && b < hi) {
				/* indices within each run ascend, so ties keep index order */
				float xa = x[order[a]], xb = x[order[b]];
				if (xa > xb || (xa == xb && order[a] < order[b]))
					tmp[k++] = order[a++];
				else
					tmp[k++] = order[b++];
			}
			while (a < mid)
				tmp[k++] = order[a++];
			while (b < hi)
				tmp[k++] = order[b++];
		}
		for (size_t i = 0; i < nv; i++)
			order[i] = tmp[i];
	}
	return nv;
}

static size_t topk_from_order(uint8_t *set, const size_t *order, size_t nv, const float *x, size_t n, double frac)
{
	double tot = 0;
	for (size_t k = 0; k < nv; k++)
		tot += x[order[k]] > 0 ? (double)x[order[k]] : 0.0;
	for (size_t i = 0; i < n; i++)
		set[i] = 0;
	const double need = frac * tot;
	double run = 0;
	size_t k = 0;
	while (k < nv && !(run >= need)) {
		const float v = x[order[k]];
		run += v > 0 ? (double)v : 0.0;
		set[order[k++]] = 1;
	}
	return k;
}

size_t lvd_eval_topk_mass(uint8_t *set, size_t *order, const float *x, const uint8_t *mask, size_t n, double frac)
{
	size_t nv = topk_sort(order, order + n, x, mask, n);
	return topk_from_order(set, order, nv, x, n, frac);
}

size_t lvd_eval_align_work_bytes(size_t n)
{
	return 2 * n * sizeof(size_t) + 4 * n + 16;
}

int lvd_eval_align_metrics(struct lvd_eval_align_m *out, const float *map, const float *target, const uint8_t *mask,
			   size_t n, void *work, struct lvd_error *err)
{
	size_t *order = work, *tmp = order + n;
	uint8_t *sm10 = (uint8_t *)(tmp + n), *st10 = sm10 + n, *sm20 = st10 + n, *st20 = sm20 + n;
	size_t nv = 0;
	double mm = 0, mt = 0;
	for (size_t i = 0; i < n; i++)
		if (mask[i]) {
			nv++;
			mm += map[i];
			mt += target[i];
		}
	if (!nv)
		return lvd_error_set(err, LVD_ERR_INVALID, "alignment metrics: no valid cell");
	mm /= (double)nv;
	mt /= (double)nv;
	double se = 0, sxy = 0, sxx = 0, syy = 0, pm = 0, pt = 0;
	for (size_t i = 0; i < n; i++)
		if (mask[i]) {
			const double a = map[i], b = target[i];
			se += (a - b) * (a - b);
			sxy += (a - mm) * (b - mt);
			sxx += (a - mm) * (a - mm);
			syy += (b - mt) * (b - mt);
			pm += (a > 0 ? a : 0) + LVD_EVAL_ALIGN_EPS;
			pt += (b > 0 ? b : 0) + LVD_EVAL_ALIGN_EPS;
		}
	out->mse = se / (double)nv;
	out->pearson = sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0.0;
	double kl = 0;
	for (size_t i = 0; i < n; i++)
		if (mask[i]) {
			const double a = map[i], b = target[i];
			const double q = ((a > 0 ? a : 0) + LVD_EVAL_ALIGN_EPS) / pm;
			const double p = ((b > 0 ? b : 0) + LVD_EVAL_ALIGN_EPS) / pt;
			kl += p * log(p / q);
		}
	out->kl = kl;
	/* top-k sets: one sort per map serves both k */
	topk_sort(order, tmp, map, mask, n);
	topk_from_order(sm10, order, nv, map, n, 0.10);
	topk_from_order(sm20, order, nv, map, n, 0.20);
	const size_t arg = order[0]; /* argmax, lowest index among equal maxima */
	topk_sort(order, tmp, target, mask, n);
	topk_from_order(st10, order, nv, target, n, 0.10);
	topk_from_order(st20, order, nv, target, n, 0.20);
	size_t i10 = 0, u10 = 0, i20 = 0, u20 = 0;
	for (size_t i = 0; i < n; i++) {
		i10 += sm10[i] && st10[i];
		u10 += sm10[i] || st10[i];
		i20 += sm20[i] && st20[i];
		u20 += sm20[i] || st20[i];
	}
	out->iou10 = u10 ? (double)i10 / (double)u10 : 0.0;
	out->iou20 = u20 ? (double)i20 / (double)u20 : 0.0;
	out->pointing = st20[arg] ? 1.0 : 0.0;
	return 0;
}
