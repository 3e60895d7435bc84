/* Aligner parameters to and from safetensors (see aligner.h). This file does not include
 * nn/ctx.h: until io/safetensors.h renames its dtype enum both cannot share a unit. */
#include "lavender/aligner.h"

#include <stdio.h>
#include <string.h>

#include "io/safetensors.h"

static const char *depth_name[] = { "sim", "light", "deep" };
static const char *norm_name[] = { "instance", "group", "none" };
static const char *act_name[] = { "relu6", "leaky" };

int lvd_aligner_save(const struct lvd_aligner_cfg *cfg, const float *params, const char *path,
		     struct lvd_error *err)
{
	int rc = lvd_aligner_cfg_check(cfg, err);
	if (rc)
		return rc;
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, cfg);
	struct lvd_st_writer *w = lvd_st_writer_new();
	if (!w)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	for (int k = 0; k < LVD_ALIGNER_MAX_TENSORS && !rc; k++) {
		const struct lvd_aligner_tensor *t = &lay.t[k];
		if (t->n)
			rc = lvd_st_writer_add(w, t->name, LVD_DT_F32, t->ndim, t->shape, params + t->off, err);
	}
	char meta[256];
	snprintf(meta, sizeof meta, "depth=%s norm=%s act=%s d_in=%d d_h=%d", depth_name[cfg->depth],
		 norm_name[cfg->norm], act_name[cfg->act], cfg->d_in, cfg->d_h);
	if (!rc)
		rc = lvd_st_writer_meta(w, "lvd.aligner", meta, err);
	if (!rc)
		rc = lvd_st_writer_write(w, path, err);
	lvd_st_writer_free(w);
	return rc;
}

/* The tensor called `name`, or a key ending in "." + name, or name without "diffag_". */
static const struct lvd_tensor_view *find_tensor(const struct lvd_st *st, const char *name)
{
	const struct lvd_tensor_view *v = lvd_st_find(st, name);
	if (v)
		return v;
	size_t ln = strlen(name);
	const struct lvd_tensor_view *hit = NULL;
	for (size_t i = 0; i < lvd_st_count(st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		size_t lt = strlen(t->name);
		if (lt > ln && t->name[lt - ln - 1] == '.' && !strcmp(t->name + lt - ln, name)) {
			if (hit)
				return NULL; /* ambiguous: two modules hold one */
			hit = t;
		}
	}
	if (hit)
		return hit;
	if (!strncmp(name, "diffag_", 7))
		return lvd_st_find(st, name + 7);
	return NULL;
}

int lvd_aligner_load(const struct lvd_aligner_cfg *cfg, float *params, const char *path,
		     struct lvd_error *err)
{
	int rc = lvd_aligner_cfg_check(cfg, err);
	if (rc)
		return rc;
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, cfg);
	struct lvd_st *st = NULL;
	if ((rc = lvd_st_open(&st, path, err)))
		return rc;
	for (int k = 0; k < LVD_ALIGNER_MAX_TENSORS && !rc; k++) {
		const struct lvd_aligner_tensor *t = &lay.t[k];
		if (!t->n)
			continue;
		const struct lvd_tensor_view *v = find_tensor(st, t->name);
		if (!v) {
			int unused = (k == LVD_AL_EXPAND_3 || k == LVD_AL_EXPAND_4) && cfg->depth != LVD_ALIGNER_DEEP;
			if (!unused)
				rc = lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: aligner tensor '%s' not found", path,
						   t->name);
			continue;
		}
		int ok = v->ndim == t->ndim;
		for (int d = 0; ok && d < t->ndim; d++)
			ok = v->shape[d] == t->shape[d];
		if (!ok) {
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s: aligner tensor '%s' has %d dims [%lld, ...], expected [%lld, %lld, %lld, %lld] (first %d)",
					   path, v->name, v->ndim, v->ndim ? (long long)v->shape[0] : 0LL,
					   (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
					   (long long)t->shape[3], t->ndim);
			break;
		}
		rc = lvd_tensor_to_f32(v, params + t->off, t->n, err);
	}
	lvd_st_close(st);
	return rc;
}
