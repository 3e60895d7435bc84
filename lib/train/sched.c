/* lib/train/sched.c — learning-rate schedules (contract and formulas in sched.h). */
#include "train/sched.h"

#include <math.h>
#include <string.h>

#include "core/parse.h"

const char *lvd_sched_name(enum lvd_sched_kind kind)
{
	switch (kind) {
	case LVD_SCHED_CONSTANT: return "constant";
	case LVD_SCHED_STEP: return "step";
	case LVD_SCHED_COSINE: return "cosine";
	case LVD_SCHED_LINEAR: return "linear";
	}
	return "?";
}

int lvd_sched_parse(struct lvd_sched *s, const char *spec, struct lvd_error *err)
{
	if (!strcmp(spec, "constant")) {
		s->kind = LVD_SCHED_CONSTANT;
		return LVD_OK;
	}
	if (!strcmp(spec, "cosine")) {
		s->kind = LVD_SCHED_COSINE;
		return LVD_OK;
	}
	if (!strcmp(spec, "linear")) {
		s->kind = LVD_SCHED_LINEAR;
		return LVD_OK;
	}
	if (!strncmp(spec, "step", 4) && (spec[4] == '\0' || spec[4] == ':')) {
		double gamma = 0.85;
		int64_t size = 1;
		if (spec[4] == ':') {
			char buf[64];
			const char *g = spec + 5;
			const char *colon = strchr(g, ':');
			size_t len = colon ? (size_t)(colon - g) : strlen(g);
			if (len >= sizeof buf)
				return lvd_error_set(err, LVD_ERR_INVALID, "--schedule '%s': gamma too long", spec);
			memcpy(buf, g, len);
			buf[len] = '\0';
			int rc = lvd_parse_double(buf, 0.0, 1e6, &gamma, "--schedule step gamma", err);
			if (rc)
				return rc;
			if (!(gamma > 0.0))
				return lvd_error_set(err, LVD_ERR_INVALID, "--schedule '%s': gamma must be > 0", spec);
			if (colon && (rc = lvd_parse_i64(colon + 1, 1, INT64_MAX, &size,
							 "--schedule step epochs", err)))
				return rc;
		}
		s->kind = LVD_SCHED_STEP;
		s->gamma = gamma;
		s->step_size = size;
		return LVD_OK;
	}
	return lvd_error_set(err, LVD_ERR_INVALID,
			     "--schedule '%s': expected constant, step[:GAMMA[:EPOCHS]], cosine or linear", spec);
}

int lvd_sched_check(const struct lvd_sched *s, struct lvd_error *err)
{
	const char *nm = lvd_sched_name(s->kind);
	if (!(s->lr >= 0.0) || !isfinite(s->lr))
		return lvd_error_set(err, LVD_ERR_INVALID, "schedule %s: learning rate %g must be finite and >= 0", nm, s->lr);
	if (s->warmup < 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "schedule %s: warm-up %lld < 0", nm, (long long)s->warmup);
	switch (s->kind) {
	case LVD_SCHED_CONSTANT:
		return LVD_OK;
	case LVD_SCHED_STEP:
		if (s->step_size < 1 || !(s->gamma > 0.0) || !isfinite(s->gamma))
			return lvd_error_set(err, LVD_ERR_INVALID, "schedule step: need gamma > 0 and a step size >= 1 epoch (got %g, %lld)",
					     s->gamma, (long long)s->step_size);
		return LVD_OK;
	case LVD_SCHED_COSINE:
	case LVD_SCHED_LINEAR:
		if (s->total < 1)
			return lvd_error_set(err, LVD_ERR_INVALID, "schedule %s: needs the run's total step count (got %lld)",
					     nm, (long long)s->total);
		return LVD_OK;
	}
	return lvd_error_set(err, LVD_ERR_INVALID, "schedule: unknown kind %d", (int)s->kind);
}

static int64_t max1(int64_t x)
{
	return x > 1 ? x : 1;
}

double lvd_sched_lr(const struct lvd_sched *s, int64_t step, int64_t epoch)
{
	/* transformers' lambdas: float(current_step) / float(max(1, num_warmup_steps)) */
	int warming = step < s->warmup;
	double warm = warming ? (double)step / (double)max1(s->warmup) : 1.0;
	switch (s->kind) {
	case LVD_SCHED_CONSTANT:
		return s->lr * warm;
	case LVD_SCHED_COSINE: {
		if (warming)
			return s->lr * warm;
		double progress = (double)(step - s->warmup) / (double)max1(s->total - s->warmup);
		/* math.pi * float(num_cycles) * 2.0 * progress, num_cycles = 0.5 */
		double f = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
		return s->lr * (f > 0.0 ? f : 0.0);
	}
	case LVD_SCHED_LINEAR: {
		if (warming)
			return s->lr * warm;
		double f = (double)(s->total - step) / (double)max1(s->total - s->warmup);
		return s->lr * (f > 0.0 ? f : 0.0);
	}
	case LVD_SCHED_STEP: {
		/* StepLR's chained form: group["lr"] * gamma at every step_size-th epoch */
		double lr = s->lr;
		int64_t k = s->step_size >= 1 ? epoch / s->step_size : 0;
		for (int64_t i = 0; i < k; i++)
			lr = lr * s->gamma;
		return s->warmup > 0 ? lr * warm : lr;
	}
	}
	return s->lr;
}
