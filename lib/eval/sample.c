/* lib/eval/sample.c — temperature / top-k / top-p sampling (sample.h). */
#include "eval/sample.h"

#include <math.h>
#include <stdlib.h>

/* a before b: ascending by z, then by id (torch.sort's order among ties is unspecified) */
static int before(const float *z, int a, int b)
{
	return z ? (z[a] < z[b] || (z[a] == z[b] && a < b)) : a < b;
}

/* heap sort of idx[0..n) by `before` (z NULL: by id) */
static void sort_ids(int *idx, int n, const float *z)
{
	for (int end = n; end > 1; end--) {
		for (int i = end == n ? n / 2 - 1 : 0; i >= 0; i--) {
			int c = i;
			for (;;) {
				int l = 2 * c + 1, r = l + 1, m = c;
				if (l < end && before(z, idx[m], idx[l]))
					m = l;
				if (r < end && before(z, idx[m], idx[r]))
					m = r;
				if (m == c)
					break;
				int t = idx[c];
				idx[c] = idx[m];
				idx[m] = t;
				c = m;
			}
			if (end != n)
				break;
		}
		int t = idx[0];
		idx[0] = idx[end - 1];
		idx[end - 1] = t;
	}
}

/* the k-th largest of z[0..V) through a min-heap of k values */
static float kth_largest(const float *z, int V, int k, float *heap)
{
	int n = 0;
	for (int i = 0; i < V; i++) {
		float v = z[i];
		if (n < k) {
			int c = n++;
			heap[c] = v;
			while (c > 0 && heap[(c - 1) / 2] > heap[c]) {
				float t = heap[c];
				heap[c] = heap[(c - 1) / 2];
				heap[(c - 1) / 2] = t;
				c = (c - 1) / 2;
			}
		} else if (v > heap[0]) {
			heap[0] = v;
			int c = 0;
			for (;;) {
				int l = 2 * c + 1, r = l + 1, s = c;
				if (l < n && heap[l] < heap[s])
					s = l;
				if (r < n && heap[r] < heap[s])
					s = r;
				if (s == c)
					break;
				float t = heap[c];
				heap[c] = heap[s];
				heap[s] = t;
				c = s;
			}
		}
	}
	return heap[0];
}

int lvd_eval_sample(const struct lvd_eval_sampler *s, const float *logits, int V, float u, int *idx, float *prob)
{
	/* z = scores / T in prob */
	for (int i = 0; i < V; i++)
		prob[i] = logits[i] / s->temperature;
	float thr = -INFINITY;
	if (s->top_k > 0 && s->top_k < V) {
		float *heap = malloc(sizeof(float) * (size_t)s->top_k);
		if (heap) {
			thr = kth_largest(prob, V, s->top_k, heap);
			free(heap);
		}
	}
	int n = 0;
	for (int i = 0; i < V; i++)
		if (prob[i] >= thr && prob[i] > -INFINITY)
			idx[n++] = i;
	if (n == 0) { /* every score -inf: HF would fail; take the first maximum */
		int b = 0;
		for (int i = 1; i < V; i++)
			if (logits[i] > logits[b])
				b = i;
		return b;
	}
	sort_ids(idx, n, prob);
	double mx = prob[idx[n - 1]], tot = 0;
	for (int k = 0; k < n; k++)
		tot += exp((double)prob[idx[k]] - mx);
	/* top-p: drop the ascending prefix whose cumulative probability is <= 1 - top_p */
	int first = 0;
	if (s->top_p < 1.0f) {
		double cum = 0, lim = 1.0 - (double)s->top_p;
		while (first < n - 1) {
			cum += exp((double)prob[idx[first]] - mx) / tot;
			if (cum > lim)
				break;
			first++;
		}
	}
	int *keep = idx + first, m = n - first;
	double w = 0;
	for (int k = 0; k < m; k++)
		w += exp((double)prob[keep[k]] - mx);
	sort_ids(keep, m, NULL);
	double target = (double)u * w, run = 0;
	for (int k = 0; k < m; k++) {
		run += exp((double)prob[keep[k]] - mx);
		if (run > target)
			return keep[k];
	}
	return keep[m - 1];
}
