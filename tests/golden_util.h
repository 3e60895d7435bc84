/* tests/golden_util.h — helpers shared by the golden tests (header-only; include after
 * harness.h): reading a golden tensor as fp32 (or int), the largest magnitude of a buffer, and
 * the PEFT adapter key -> lvd module name mapping the golden generators write. */
#ifndef LVD_TEST_GOLDEN_UTIL_H
#define LVD_TEST_GOLDEN_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

/* Tensor `name` of g as f32 (malloc'd; caller frees), *n = numel (n may be NULL); NULL
 * (with a message) when g is NULL, the tensor is missing or cannot be converted. */
static inline float *lvd_gold_f32(struct lvd_st *g, const char *name, size_t *n)
{
	if (n)
		*n = 0;
	if (!g)
		return NULL;
	const struct lvd_tensor_view *tv = lvd_st_find(g, name);
	if (!tv) {
		fprintf(stderr, "  golden tensor %s missing\n", name);
		return NULL;
	}
	float *p = malloc(sizeof(float) * (size_t)tv->numel + 4);
	struct lvd_error err = {0};
	if (!p || lvd_tensor_to_f32(tv, p, (size_t)tv->numel, &err)) {
		fprintf(stderr, "  golden tensor %s: %s\n", name, err.msg);
		free(p);
		return NULL;
	}
	if (n)
		*n = (size_t)tv->numel;
	return p;
}

/* The same as ints (golden ids, masks), converted through f32 (exact below 2^24). */
static inline int *lvd_gold_i32(struct lvd_st *g, const char *name)
{
	size_t n;
	float *f = lvd_gold_f32(g, name, &n);
	int *p = f ? malloc(sizeof(int) * n + 4) : NULL;
	for (size_t i = 0; p && i < n; i++)
		p[i] = (int)f[i];
	free(f);
	return p;
}

static inline double lvd_gold_max_abs(const float *x, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		m = fabs(x[i]) > m ? fabs(x[i]) : m;
	return m;
}

/* PEFT adapter key ("w.base_model.model.<module>.lora_A.weight", as the generators store
 * it) -> our module name (on-disk v4.45 names); -1 when the key has no ".lora_". */
static inline int lvd_gold_peft_module(char *out, size_t n, const char *key)
{
	const char *k = key + strlen("w.base_model.model.");
	const char *e = strstr(k, ".lora_");
	if (!e)
		return -1;
	char tmp[200];
	snprintf(tmp, sizeof tmp, "%.*s", (int)(e - k), k);
	if (strncmp(tmp, "model.language_model.", 21) == 0)
		snprintf(out, n, "language_model.model.%s", tmp + 21);
	else if (strncmp(tmp, "model.", 6) == 0)
		snprintf(out, n, "%s", tmp + 6);
	else
		snprintf(out, n, "%s", tmp);
	return 0;
}

#endif
