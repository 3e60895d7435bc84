/* lvd-sft checkpoints (docs/sft.md FILES, RESUME): RUN/ckpt-NNNNNN/ written through a
 * temporary folder and renamed, scanned for the newest complete one, loaded for an exact
 * resume, pruned by --keep. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/shardrun.h"
#include "core/fault.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "sft.h"

static void ckpt_name(char *buf, size_t cap, const char *out, int64_t step)
{
	snprintf(buf, cap, "%s/ckpt-%06lld", out, (long long)step);
}

/* Newest complete checkpoint (dir with state.json) step, or -1. Also removes stale
 * temporary folders. */
int64_t ckpt_scan(const char *out, int64_t **all, size_t *n_all)
{
	DIR *d = opendir(out);
	int64_t best = -1;
	size_t dummy = 0;
	if (!n_all)
		n_all = &dummy;
	*n_all = 0;
	if (all)
		*all = NULL;
	if (!d)
		return -1;
	struct dirent *e;
	size_t cap = 0;
	while ((e = readdir(d))) {
		long long s;
		char tail;
		if (sscanf(e->d_name, "ckpt-%lld%c", &s, &tail) != 1 || strlen(e->d_name) != 11)
			continue;
		char p[4200];
		snprintf(p, sizeof p, "%s/%s/state.json", out, e->d_name);
		if (access(p, R_OK))
			continue;
		if (s > best)
			best = s;
		if (all) {
			if (*n_all == cap) {
				cap = cap ? 2 * cap : 16;
				int64_t *nv = realloc(*all, cap * sizeof *nv);
				if (!nv)
					break;
				*all = nv;
			}
			(*all)[(*n_all)++] = s;
		}
	}
	closedir(d);
	return best;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int ckpt_save(struct trainer *t, struct lvd_error *err)
{
	char tmp[4200], fin[4200], p[4300];
	snprintf(tmp, sizeof tmp, "%s/.ckpt-%06lld.tmp", t->o->out, (long long)t->step);
	ckpt_name(fin, sizeof fin, t->o->out, t->step);
	lvd_dir_remove_flat(tmp);
	if (mkdir(tmp, 0777))
		return lvd_error_errno(err, LVD_ERR_IO, "cannot create '%s'", tmp);
	struct lvd_st_writer *w = lvd_st_writer_new();
	if (!w)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < t->n_tens && !rc; i++) {
		int64_t shape[1] = {(int64_t)t->tens[i].n};
		rc = lvd_st_writer_add(w, t->tens[i].name, LVD_DT_F32, 1, shape, t->tens[i].p, err);
	}
	snprintf(p, sizeof p, "%s/state.safetensors", tmp);
	if (!rc)
		rc = lvd_st_writer_write(w, p, err);
	lvd_st_writer_free(w);
	if (rc)
		return rc;
	json_t *s = json_object();
	json_object_set_new(s, "step", json_integer(t->step));
	json_object_set_new(s, "epoch", json_integer((json_int_t)t->epoch));
	json_object_set_new(s, "cursor_epoch", json_integer((json_int_t)t->cur.epoch));
	json_object_set_new(s, "cursor_pos", json_integer((json_int_t)t->cur.pos));
	json_object_set_new(s, "options", params_json(t->o));
	char *dump = lvd_run_dump(s);
	json_decref(s);
	if (!dump)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	snprintf(p, sizeof p, "%s/state.json", tmp);
	size_t dl = strlen(dump);
	dump[dl] = 0;
	rc = lvd_file_write_atomic(p, dump, dl, err);
	free(dump);
	if (rc)
		return rc;
	lvd_dir_remove_flat(fin);
	if (lvd_io_rename(tmp, fin))
		return lvd_error_errno(err, LVD_ERR_IO, "cannot rename '%s' to '%s'", tmp, fin);
	if ((rc = lvd_fsync_parent(fin, err)))
		return rc;
	/* --keep: prune the oldest complete checkpoints. */
	if (t->o->keep > 0) {
		int64_t *all = NULL;
		size_t n = 0;
		ckpt_scan(t->o->out, &all, &n);
		if (all && n > (size_t)t->o->keep) {
			qsort(all, n, sizeof *all, cmp_i64);
			for (size_t i = 0; i + (size_t)t->o->keep < n; i++) {
				ckpt_name(p, sizeof p, t->o->out, all[i]);
				lvd_dir_remove_flat(p);
			}
		}
		free(all);
	}
	return 0;
}

int load_block(struct lvd_st *st, const char *name, float *dst, size_t n, struct lvd_error *err)
{
	int64_t shape[1] = {(int64_t)n};
	return lvd_st_load_f32(st, name, 1, shape, dst, n, err);
}

int ckpt_load(struct trainer *t, int64_t step, struct lvd_error *err)
{
	char dir[4200], p[4300];
	ckpt_name(dir, sizeof dir, t->o->out, step);
	snprintf(p, sizeof p, "%s/state.json", dir);
	json_error_t je;
	json_t *s = json_load_file(p, 0, &je);
	if (!s)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: %s", p, je.text);
	json_int_t st_step = json_integer_value(json_object_get(s, "step"));
	t->epoch = (uint64_t)json_integer_value(json_object_get(s, "epoch"));
	t->cur.epoch = (uint64_t)json_integer_value(json_object_get(s, "cursor_epoch"));
	t->cur.pos = (uint64_t)json_integer_value(json_object_get(s, "cursor_pos"));
	json_decref(s);
	if (st_step != step)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: step %lld, folder says %lld", p, (long long)st_step,
				     (long long)step);
	snprintf(p, sizeof p, "%s/state.safetensors", dir);
	struct lvd_st *st = NULL;
	int rc = lvd_st_open(&st, p, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < t->n_tens && !rc; i++)
		rc = load_block(st, t->tens[i].name, t->tens[i].p, t->tens[i].n, err);
	lvd_st_close(st);
	if (rc)
		return rc;
	t->step = step;
	t->opt->step = step;
	return 0;
}

/* Removes RUN/.ckpt-*.tmp folders left by a killed run (never complete checkpoints). */
void remove_stale_tmp(const char *out)
{
	DIR *d = opendir(out);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (strncmp(e->d_name, ".ckpt-", 6) || l < 10 || strcmp(e->d_name + l - 4, ".tmp"))
			continue;
		char p[4200];
		snprintf(p, sizeof p, "%s/%s", out, e->d_name);
		lvd_dir_remove_flat(p);
	}
	closedir(d);
}

static int add_tensor(struct trainer *t, size_t *cap, const char *name, const char *suffix, float *p, size_t n)
{
	if (t->n_tens == *cap) {
		size_t nc = *cap ? 2 * *cap : 64;
		struct ckpt_tensor *nt = realloc(t->tens, nc * sizeof *nt);
		if (!nt)
			return -1;
		t->tens = nt;
		*cap = nc;
	}
	struct ckpt_tensor *e = &t->tens[t->n_tens++];
	snprintf(e->name, sizeof e->name, "%s%s", name, suffix);
	e->p = p;
	e->n = n;
	return 0;
}

int ckpt_tensors(struct trainer *t, struct lvd_error *err)
{
	static const char *const sfx[3] = {"", ".adam_m", ".adam_v"};
	size_t cap = 0;
	t->n_tens = 0;
	int bad = 0;
	for (int k = 0; k < 3 && !bad; k++) {
		for (int b = 0; b < t->n_blocks && !bad; b++) {
			float *base = k == 0 ? t->blocks[b].param : k == 1 ? t->opt->m[b] : t->opt->v[b];
			if (!t->toff || !t->toff[b]) {
				bad = add_tensor(t, &cap, t->blocks[b].name, sfx[k], base, t->blocks[b].n);
				continue;
			}
			/* a --full range: one tensor per parameter (padding left out) */
			for (size_t i = 0, np = lvd_mllama_nparams(t->m); i < np && !bad; i++) {
				struct lvd_mllama_param *pa = lvd_mllama_param_at(t->m, i);
				if (pa->data < t->blocks[b].param || pa->data >= t->blocks[b].param + t->blocks[b].n)
					continue;
				bad = add_tensor(t, &cap, pa->name, sfx[k], base + (pa->data - t->blocks[b].param), pa->numel);
			}
		}
	}
	return bad ? lvd_error_set(err, LVD_ERR_NOMEM, "out of memory") : 0;
}
