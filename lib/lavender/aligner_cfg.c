/* The Aligner's configuration, parameter layout and initialisation (see aligner.h).
 * Kept apart from the compute (aligner.c) so that users of the layout alone (load/save,
 * tests) do not pull in the execution context. */
#include "lavender/aligner.h"

#include <math.h>
#include <string.h>

#include "core/rng.h"

void lvd_aligner_cfg_default(struct lvd_aligner_cfg *cfg, int d_in)
{
	cfg->depth = LVD_ALIGNER_SIM;
	cfg->norm = LVD_ALIGNER_INSTANCE;
	cfg->act = LVD_ALIGNER_RELU6;
	cfg->d_in = d_in;
	cfg->d_h = 32;
	cfg->norm_eps = 1e-5f;
	cfg->slope = 0.1f;
}

int lvd_aligner_cfg_check(const struct lvd_aligner_cfg *cfg, struct lvd_error *err)
{
	if ((unsigned)cfg->depth > LVD_ALIGNER_DEEP)
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner: depth %d out of range", (int)cfg->depth);
	if ((unsigned)cfg->norm > LVD_ALIGNER_NONORM)
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner: norm %d out of range", (int)cfg->norm);
	if ((unsigned)cfg->act > LVD_ALIGNER_LEAKY)
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner: act %d out of range", (int)cfg->act);
	if (cfg->d_in < 1 || cfg->d_in > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner: d_in %d out of range [1, 4096]", cfg->d_in);
	if (cfg->d_h < 1 || cfg->d_h > 4096)
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner: hidden width %d out of range [1, 4096]", cfg->d_h);
	if (!(cfg->norm_eps > 0) || !isfinite(cfg->norm_eps))
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner: norm eps %g must be > 0", (double)cfg->norm_eps);
	if (!isfinite(cfg->slope))
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner: leaky slope is not finite");
	return LVD_OK;
}

int lvd_aligner_parse_depth(const char *s, enum lvd_aligner_depth *out, struct lvd_error *err)
{
	if (!strcmp(s, "sim"))
		*out = LVD_ALIGNER_SIM;
	else if (!strcmp(s, "light"))
		*out = LVD_ALIGNER_LIGHT;
	else if (!strcmp(s, "deep"))
		*out = LVD_ALIGNER_DEEP;
	else
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner depth '%s': expected sim, light or deep", s);
	return LVD_OK;
}

int lvd_aligner_parse_norm(const char *s, enum lvd_aligner_norm *out, struct lvd_error *err)
{
	if (!strcmp(s, "instance"))
		*out = LVD_ALIGNER_INSTANCE;
	else if (!strcmp(s, "group"))
		*out = LVD_ALIGNER_GROUP;
	else if (!strcmp(s, "none") || !strcmp(s, "identical"))
		*out = LVD_ALIGNER_NONORM;
	else
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner norm '%s': expected instance, group or none", s);
	return LVD_OK;
}

int lvd_aligner_parse_act(const char *s, enum lvd_aligner_act *out, struct lvd_error *err)
{
	if (!strcmp(s, "relu6") || !strcmp(s, "relu"))
		*out = LVD_ALIGNER_RELU6;
	else if (!strcmp(s, "leaky") || !strcmp(s, "leakyrelu"))
		*out = LVD_ALIGNER_LEAKY;
	else
		return lvd_error_set(err, LVD_ERR_INVALID, "aligner activation '%s': expected relu6 or leaky", s);
	return LVD_OK;
}

static const char *const tensor_names[LVD_ALIGNER_MAX_TENSORS] = {
	"diffag_expand_1.weight", "diffag_expand_2.weight", "diffag_squeeze_1.weight",
	"diffag_expand_3.weight", "diffag_expand_4.weight",
	"diffag_norm1.weight", "diffag_norm1.bias", "diffag_norm2.weight", "diffag_norm2.bias",
	"diffag_norm3.weight", "diffag_norm3.bias",
	"diffag_conv_last.weight", "diffag_conv_last.bias",
};

void lvd_aligner_layout(struct lvd_aligner_layout *lay, const struct lvd_aligner_cfg *cfg)
{
	const int64_t di = cfg->d_in, dh = cfg->d_h;
	/* conv [out, in, 3, 3] */
	const int64_t conv[5][2] = { { dh, di }, { dh, dh }, { di, dh }, { dh, dh }, { dh, dh } };
	const int64_t normc[3] = { dh, dh, di };
	memset(lay, 0, sizeof *lay);
	size_t off = 0;
	for (int k = 0; k < LVD_ALIGNER_MAX_TENSORS; k++) {
		struct lvd_aligner_tensor *t = &lay->t[k];
		t->name = tensor_names[k];
		if (k <= LVD_AL_EXPAND_4) {
			t->ndim = 4;
			t->shape[0] = conv[k][0];
			t->shape[1] = conv[k][1];
			t->shape[2] = t->shape[3] = 3;
			t->n = (size_t)(conv[k][0] * conv[k][1] * 9);
		} else if (k <= LVD_AL_NORM3_B) {
			t->ndim = 1;
			t->shape[0] = normc[(k - LVD_AL_NORM1_W) / 2];
			t->n = cfg->norm == LVD_ALIGNER_GROUP ? (size_t)t->shape[0] : 0;
		} else if (k == LVD_AL_LAST_W) {
			t->ndim = 4;
			t->shape[0] = 1;
			t->shape[1] = di;
			t->shape[2] = t->shape[3] = 1;
			t->n = (size_t)di;
		} else {
			t->ndim = 1;
			t->shape[0] = 1;
			t->n = 1;
		}
		t->off = off;
		off += t->n;
	}
	lay->n_params = off;
}

void lvd_aligner_init(const struct lvd_aligner_cfg *cfg, float *params, uint64_t seed,
		      enum lvd_aligner_init how, float std)
{
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, cfg);
	for (int k = 0; k < LVD_ALIGNER_MAX_TENSORS; k++) {
		const struct lvd_aligner_tensor *t = &lay.t[k];
		float *p = params + t->off;
		if (!t->n)
			continue;
		uint64_t stream = LVD_ALIGNER_RNG_STREAM + (uint64_t)k;
		if (k >= LVD_AL_NORM1_W && k <= LVD_AL_NORM3_B) {
			float v = (k - LVD_AL_NORM1_W) % 2 == 0 ? 1.0f : 0.0f;
			for (size_t j = 0; j < t->n; j++)
				p[j] = v;
			continue;
		}
		int is_bias = k == LVD_AL_LAST_B;
		if (how == LVD_ALIGNER_INIT_KAIMING) {
			/* kaiming_uniform(a = sqrt 5) gives bound = 1/sqrt(fan_in); the bias uses
			 * the same bound (PyTorch's _ConvNd.reset_parameters) */
			int64_t fan_in = k == LVD_AL_LAST_B ? cfg->d_in : t->shape[1] * t->shape[2] * t->shape[3];
			double bound = 1.0 / sqrt((double)fan_in);
			lvd_rng_fill_uniform(p, t->n, seed, stream, 0);
			for (size_t j = 0; j < t->n; j++)
				p[j] = (float)((2.0 * p[j] - 1.0) * bound);
		} else if (is_bias) {
			for (size_t j = 0; j < t->n; j++)
				p[j] = 0.0f;
		} else {
			lvd_rng_fill_normal(p, t->n, seed, stream, 0);
			for (size_t j = 0; j < t->n; j++)
				p[j] *= std;
		}
	}
}

