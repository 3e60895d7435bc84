/* lib/models/hf_save.c — a model as a transformers folder (see hf_save.h): config.json
 * with the written dtype, sharded safetensors with LoRA merged, the index, copied files,
 * a temporary folder renamed into place. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fileutil.h"
#include "io/safetensors.h"
#include "models/hf_save.h"

/* Files every transformers folder may carry, copied when present. */
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

/* t's data (with W + s·B·A merged when it carries an adapter) in the output dtype: either
 * t->data itself (*owned NULL) or a new buffer (*owned = it). */
static int tensor_bytes(const struct lvd_hf_tensor *t, int bf16, const void **data, void **owned)
{
	*owned = NULL;
	*data = t->data;
	if (!t->A && !bf16)
		return 0;
	float *w = malloc(t->numel * sizeof *w);
	if (!w)
		return -1;
	memcpy(w, t->data, t->numel * sizeof *w);
	if (t->A) {
		int r = t->r;
		double s = t->s;
		for (int o = 0; o < t->out; o++) {
			const float *b = t->B + (size_t)o * r;
			float *wo = w + (size_t)o * t->in;
			for (int i = 0; i < t->in; i++) {
				double acc = 0;
				for (int k = 0; k < r; k++)
					acc += (double)b[k] * t->A[(size_t)k * t->in + i];
				wo[i] = (float)((double)wo[i] + s * acc);
			}
		}
	}
	if (bf16) {
		uint16_t *h = (uint16_t *)w;   /* in place: element i is read before slot i is written */
		for (size_t i = 0; i < t->numel; i++)
			h[i] = lvd_f32_to_bf16(w[i]);
	}
	*data = w;
	*owned = w;
	return 0;
}

/* Writes the tensors t[0, n) as shard `path`. */
static int write_shard(const struct lvd_hf_tensor *t, size_t n, int bf16, const char *path, struct lvd_error *err)
{
	struct lvd_st_writer *w = lvd_st_writer_new();
	void **owned = calloc(n + 1, sizeof *owned);
	int rc = 0;
	if (!w || !owned)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	for (size_t i = 0; i < n && !rc; i++) {
		const void *data;
		if (tensor_bytes(&t[i], bf16, &data, &owned[i])) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory for '%s'", path, t[i].name);
			break;
		}
		rc = lvd_st_writer_add(w, t[i].name, bf16 ? LVD_DT_BF16 : LVD_DT_F32, t[i].ndim, t[i].shape, data, err);
	}
	if (!rc)
		rc = lvd_st_writer_meta(w, "format", "pt", err);
	if (!rc)
		rc = lvd_st_writer_write(w, path, err);
	for (size_t i = 0; owned && i < n; i++)
		free(owned[i]);
	free(owned);
	lvd_st_writer_free(w);
	return rc;
}

/* Copies COPY_FILES, o->copy_extra and the files ending in o->copy_suffix from src_dir
 * into tmp. */
static int copy_files(const char *tmp, const struct lvd_hf_save_opts *o, struct lvd_error *err)
{
	char src[4300], p[4300];
	int rc = 0;
	for (int k = 0; k < 2; k++) {
		const char *const *list = k ? o->copy_extra : COPY_FILES;
		for (int i = 0; list && list[i] && !rc; i++) {
			snprintf(src, sizeof src, "%s/%s", o->src_dir, list[i]);
			if (!lvd_path_is_file(src))
				continue;
			snprintf(p, sizeof p, "%s/%s", tmp, list[i]);
			rc = copy_file(src, p, err);
		}
	}
	size_t sl = o->copy_suffix ? strlen(o->copy_suffix) : 0;
	DIR *d = sl ? opendir(o->src_dir) : NULL;
	if (sl && !d)
		return rc ? rc : lvd_error_errno(err, LVD_ERR_IO, "cannot read the folder '%s'", o->src_dir);
	struct dirent *e;
	while (d && !rc && (e = readdir(d))) {
		size_t nl = strlen(e->d_name);
		if (nl <= sl || e->d_name[0] == '.' || strcmp(e->d_name + nl - sl, o->copy_suffix))
			continue;
		snprintf(src, sizeof src, "%s/%s", o->src_dir, e->d_name);
		if (!lvd_path_is_file(src))
			continue;
		snprintf(p, sizeof p, "%s/%s", tmp, e->d_name);
		rc = copy_file(src, p, err);
	}
	if (d)
		closedir(d);
	return rc;
}

static int write_all(const char *tmp, const struct lvd_hf_tensor *t, size_t nt, const struct lvd_hf_save_opts *o,
		     struct lvd_error *err)
{
	int bf16 = o->bf16;
	size_t esz = bf16 ? 2 : 4;
	uint64_t max = o->max_shard_bytes ? o->max_shard_bytes : (uint64_t)5000000000ull;
	/* shard k holds tensors [start[k], start[k + 1]) */
	size_t *start = calloc(nt + 1, sizeof *start);
	if (!start)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	size_t ns = 0;
	uint64_t cur = 0, total = 0;
	for (size_t i = 0; i < nt; i++) {
		uint64_t b = (uint64_t)t[i].numel * esz;
		if (i == 0 || (cur > 0 && cur + b > max)) {
			start[ns++] = i;
			cur = 0;
		}
		cur += b;
		total += b;
	}
	start[ns] = nt;
	int rc = write_config(o->src_dir, tmp, bf16, err);
	json_t *wm = json_object();
	char p[4300], fname[64];
	for (size_t k = 0; k < ns && !rc; k++) {
		snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", k + 1, ns);
		snprintf(p, sizeof p, "%s/%s", tmp, fname);
		rc = write_shard(t + start[k], start[k + 1] - start[k], bf16, p, err);
		for (size_t i = start[k]; i < start[k + 1] && !rc; i++)
			json_object_set_new(wm, t[i].name, json_string(fname));
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
	return rc ? rc : copy_files(tmp, o, err);
}

int lvd_hf_save(const char *dir_arg, const struct lvd_hf_tensor *t, size_t nt, const struct lvd_hf_save_opts *o,
		struct lvd_error *err)
{
	const char *who = o && o->who ? o->who : "save";
	if (!o || !o->src_dir)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: save_hf needs the source folder", who);
	/* "out/" names the folder out: the temporary sibling is out.tmp, not out/.tmp */
	char dir[4096];
	size_t dl = strlen(dir_arg);
	while (dl > 1 && dir_arg[dl - 1] == '/')
		dl--;
	if (dl == 0 || dl >= sizeof dir)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: bad output folder '%s'", who, dir_arg);
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
	int rc = write_all(tmp, t, nt, o, err);
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
