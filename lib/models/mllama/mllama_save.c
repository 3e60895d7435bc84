/* lib/models/mllama/mllama_save.c — lvd_mllama_save_hf: the model (LoRA merged) as a
 * complete transformers folder (config.json, sharded safetensors + index, the source
 * folder's tokenizer/processor/generation files), written into a temporary folder and
 * renamed. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fileutil.h"
#include "io/safetensors.h"
#include "models/mllama/mllama_internal.h"

/* Files copied verbatim from the source folder when present. */
static const char *const COPY_FILES[] = {
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "preprocessor_config.json",
	"chat_template.json", "chat_template.jinja", "generation_config.json", NULL,
};

static int dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 1;
	struct dirent *e;
	int empty = 1;
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	return empty;
}

static int copy_file(const char *src, const char *dst, struct lvd_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = lvd_file_read_all(src, (size_t)1 << 31, &buf, &len, err);
	if (!rc)
		rc = lvd_file_write_atomic(dst, buf, len, err);
	free(buf);
	return rc;
}

/* config.json of src with the dtype keys ("torch_dtype", "dtype", also in text_config and
 * vision_config) set to the written dtype. */
static int write_config(const char *src_dir, const char *dir, int bf16, struct lvd_error *err)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/config.json", src_dir);
	json_error_t je;
	json_t *c = json_load_file(p, JSON_PRESERVE_ORDER, &je);
	if (!c)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: %s", p, je.text);
	const char *dt = bf16 ? "bfloat16" : "float32";
	json_t *objs[3] = {c, json_object_get(c, "text_config"), json_object_get(c, "vision_config")};
	for (int i = 0; i < 3; i++) {
		if (!json_is_object(objs[i]))
			continue;
		int set = 0;
		for (int k = 0; k < 2; k++) {
			const char *key = k ? "dtype" : "torch_dtype";
			if (json_object_get(objs[i], key)) {
				json_object_set_new(objs[i], key, json_string(dt));
				set = 1;
			}
		}
		if (!set && i == 0)
			json_object_set_new(c, "torch_dtype", json_string(dt));
	}
	char *text = json_dumps(c, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(c);
	if (!text)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	snprintf(p, sizeof p, "%s/config.json", dir);
	size_t n = strlen(text);
	int rc = lvd_file_write_atomic(p, text, n, err);
	free(text);
	return rc;
}

/* The LoRA adapter on parameter p (NULL when none). */
static const struct lvd_mllama_lora *lora_of(const struct lvd_mllama *m, const struct lvd_mllama_param *p)
{
	size_t ml = strlen(p->name);
	if (ml < 8 || strcmp(p->name + ml - 7, ".weight"))
		return NULL;
	for (size_t i = 0; i < m->nlora; i++) {
		size_t n = strlen(m->lora[i].module);
		if (n == ml - 7 && !strncmp(m->lora[i].module, p->name, n))
			return &m->lora[i];
	}
	return NULL;
}

/* p's data (with W + s·B·A merged when it carries an adapter) in the output dtype: either
 * p->data itself (*owned NULL) or a new buffer (*owned = it). */
static int tensor_bytes(const struct lvd_mllama *m, const struct lvd_mllama_param *p, int bf16, const void **data,
			void **owned)
{
	const struct lvd_mllama_lora *l = lora_of(m, p);
	*owned = NULL;
	*data = p->data;
	if (!l && !bf16)
		return 0;
	float *w = malloc(p->numel * sizeof *w);
	if (!w)
		return -1;
	memcpy(w, p->data, p->numel * sizeof *w);
	if (l) {
		int r = m->lora_r;
		double s = m->lora_s;
		for (int o = 0; o < l->out; o++) {
			const float *b = l->B + (size_t)o * r;
			float *wo = w + (size_t)o * l->in;
			for (int i = 0; i < l->in; i++) {
				double acc = 0;
				for (int k = 0; k < r; k++)
					acc += (double)b[k] * l->A[(size_t)k * l->in + i];
				wo[i] = (float)((double)wo[i] + s * acc);
			}
		}
	}
	if (bf16) {
		uint16_t *h = (uint16_t *)w;   /* in place: element i is read before slot i is written */
		for (size_t i = 0; i < p->numel; i++)
			h[i] = lvd_f32_to_bf16(w[i]);
	}
	*data = w;
	*owned = w;
	return 0;
}

/* Writes the tensors [first, last) as shard `path`. */
static int write_shard(const struct lvd_mllama *m, size_t first, size_t last, int bf16, const char *path,
		       struct lvd_error *err)
{
	struct lvd_st_writer *w = lvd_st_writer_new();
	void **owned = calloc(last - first + 1, sizeof *owned);
	char (*names)[192] = calloc(last - first + 1, sizeof *names);
	int rc = 0;
	if (!w || !owned || !names)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	for (size_t i = first; i < last && !rc; i++) {
		const struct lvd_mllama_param *p = &m->params[i];
		const void *data;
		if (tensor_bytes(m, p, bf16, &data, &owned[i - first])) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory for '%s'", path, p->name);
			break;
		}
		mllama_hf_name(names[i - first], sizeof names[0], p->name);
		rc = lvd_st_writer_add(w, names[i - first], bf16 ? LVD_DT_BF16 : LVD_DT_F32, p->ndim, p->shape, data,
				       err);
	}
	if (!rc)
		rc = lvd_st_writer_meta(w, "format", "pt", err);
	if (!rc)
		rc = lvd_st_writer_write(w, path, err);
	for (size_t i = 0; owned && i < last - first; i++)
		free(owned[i]);
	free(owned);
	free(names);
	lvd_st_writer_free(w);
	return rc;
}

static int write_all(struct lvd_mllama *m, const char *tmp, const struct lvd_mllama_save_opts *o,
		     struct lvd_error *err)
{
	int bf16 = o->bf16;
	size_t esz = bf16 ? 2 : 4;
	uint64_t max = o->max_shard_bytes ? o->max_shard_bytes : (uint64_t)5000000000ull;
	/* shard k holds params [start[k], start[k + 1]) */
	size_t *start = calloc(m->nparams + 1, sizeof *start);
	if (!start)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	size_t ns = 0;
	uint64_t cur = 0, total = 0;
	for (size_t i = 0; i < m->nparams; i++) {
		uint64_t b = (uint64_t)m->params[i].numel * esz;
		if (i == 0 || (cur > 0 && cur + b > max)) {
			start[ns++] = i;
			cur = 0;
		}
		cur += b;
		total += b;
	}
	start[ns] = m->nparams;
	int rc = write_config(o->src_dir, tmp, bf16, err);
	json_t *wm = json_object();
	char p[4300], fname[64];
	for (size_t k = 0; k < ns && !rc; k++) {
		snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", k + 1, ns);
		snprintf(p, sizeof p, "%s/%s", tmp, fname);
		rc = write_shard(m, start[k], start[k + 1], bf16, p, err);
		for (size_t i = start[k]; i < start[k + 1] && !rc; i++) {
			char hf[192];
			mllama_hf_name(hf, sizeof hf, m->params[i].name);
			json_object_set_new(wm, hf, json_string(fname));
		}
	}
	free(start);
	if (!rc) {
		json_t *idx = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
		char *text = idx ? json_dumps(idx, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
		json_decref(idx);
		snprintf(p, sizeof p, "%s/model.safetensors.index.json", tmp);
		rc = text ? lvd_file_write_atomic(p, text, strlen(text), err) : lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		free(text);
	} else {
		json_decref(wm);
	}
	for (int i = 0; COPY_FILES[i] && !rc; i++) {
		char src[4300];
		snprintf(src, sizeof src, "%s/%s", o->src_dir, COPY_FILES[i]);
		if (!lvd_path_is_file(src))
			continue;
		snprintf(p, sizeof p, "%s/%s", tmp, COPY_FILES[i]);
		rc = copy_file(src, p, err);
	}
	return rc;
}

int lvd_mllama_save_hf(struct lvd_mllama *m, const char *dir_arg, const struct lvd_mllama_save_opts *o,
		       struct lvd_error *err)
{
	if (!o || !o->src_dir)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: save_hf needs the source folder");
	if (m->dev)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: save_hf of a device model is not written yet");
	/* "out/" names the folder out: the temporary sibling is out.tmp, not out/.tmp */
	char dir[4096];
	size_t dl = strlen(dir_arg);
	while (dl > 1 && dir_arg[dl - 1] == '/')
		dl--;
	if (dl == 0 || dl >= sizeof dir)
		return lvd_error_set(err, LVD_ERR_INVALID, "mllama: bad output folder '%s'", dir_arg);
	memcpy(dir, dir_arg, dl);
	dir[dl] = 0;
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {   /* create the parent folders */
		*slash = 0;
		int rc = lvd_mkdir_p(dir, err);
		*slash = '/';
		if (rc)
			return rc;
	}
	int exists = lvd_path_is_dir(dir);
	if (exists && !o->replace && !dir_is_empty(dir))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: exists and is not empty (remove it or choose another folder)",
				     dir);
	if (!exists && access(dir, F_OK) == 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: exists and is not a folder", dir);
	char tmp[4200], old[4200];   /* dir + ".tmp" / ".old.tmp" */
	snprintf(tmp, sizeof tmp, "%s.tmp", dir);
	snprintf(old, sizeof old, "%s.old.tmp", dir);
	lvd_dir_remove_flat(tmp);
	if (mkdir(tmp, 0777))
		return lvd_error_errno(err, LVD_ERR_IO, "cannot create '%s'", tmp);
	int rc = write_all(m, tmp, o, err);
	if (rc) {
		lvd_dir_remove_flat(tmp);
		return rc;
	}
	if (exists) {
		lvd_dir_remove_flat(old);
		if (rename(dir, old)) {
			rc = lvd_error_errno(err, LVD_ERR_IO, "cannot rename '%s' to '%s'", dir, old);
			lvd_dir_remove_flat(tmp);
			return rc;
		}
	}
	if (rename(tmp, dir)) {
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot rename '%s' to '%s'", tmp, dir);
		lvd_dir_remove_flat(tmp);
		return rc;
	}
	if (exists)
		lvd_dir_remove_flat(old);
	return lvd_fsync_parent(dir, err);
}
