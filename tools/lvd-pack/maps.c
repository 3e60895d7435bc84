/* lvd-pack: joining the SD map shards of one or more --maps folders (maps.h). */
#include "maps.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/shardrun.h"
#include "core/alloc.h"
#include "core/sha256.h"
#include "io/manifest.h"
#include "io/splits.h"

struct lp_maps_ent {
	const char *id;     /* borrowed from the reader */
	uint32_t shard;
	uint32_t rec;
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int lp_list_ext(const char *dir, const char *ext, char ***names_out, size_t *n_out, struct lvd_error *err)
{
	*names_out = NULL;
	*n_out = 0;
	DIR *d = opendir(dir);
	if (!d)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open folder '%s'", dir);
	char **names = NULL;
	size_t nn = 0, cap = 0, le = strlen(ext);
	struct dirent *e;
	int rc = LVD_OK;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l <= le || strcmp(e->d_name + l - le, ext))
			continue;
		if (nn == cap) {
			cap = cap ? cap * 2 : 16;
			char **nv = lvd_realloc_array(names, cap, sizeof *nv);
			if (!nv) { rc = LVD_ERR_NOMEM; break; }
			names = nv;
		}
		if (!(names[nn] = lvd_strdup(e->d_name))) { rc = LVD_ERR_NOMEM; break; }
		nn++;
	}
	closedir(d);
	if (!rc && !nn)
		rc = lvd_error_set(err, LVD_ERR_NOTFOUND, "no *%s shards in folder '%s'", ext, dir);
	else if (rc)
		lvd_error_set(err, rc, "out of memory listing '%s'", dir);
	if (rc) {
		for (size_t i = 0; i < nn; i++)
			free(names[i]);
		free(names);
		return rc;
	}
	qsort(names, nn, sizeof *names, cmp_name);
	*names_out = names;
	*n_out = nn;
	return 0;
}

/* The keys of a shard's params that may differ within one configuration. */
static int per_run_key(const char *k)
{
	return !strcmp(k, "shard") || !strcmp(k, "shard_bytes") || !strcmp(k, "zstd_level");
}

/* The first key (in sorted order over both objects, skipping per_run_key when
 * skip_per_run) whose values differ, or NULL. */
static const char *first_diff(const json_t *a, const json_t *b, int skip_per_run)
{
	const char *best = NULL, *k;
	json_t *v;
	for (int pass = 0; pass < 2; pass++) {
		const json_t *x = pass ? b : a, *y = pass ? a : b;
		json_object_foreach((json_t *)x, k, v) {
			if (skip_per_run && per_run_key(k))
				continue;
			if (!json_equal(v, json_object_get(y, k)) && (!best || strcmp(k, best) < 0))
				best = k;
		}
	}
	return best;
}

/* "value" of o[key] for a message (malloc'd). */
static char *show(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return v ? lvd_run_dump(v) : lvd_strdup("(absent)");
}

/* Checks shard i's header against shard 0's (params and the SD / tokenizer inputs). */
static int check_agree(const struct lp_maps *m, json_t *const *hdr, size_t i, struct lvd_error *err)
{
	static const char *const sect[3] = {"params", "inputs", "inputs"};
	static const char *const sub[3] = {NULL, "sd_weights", "tokenizer"};
	for (int s = 0; s < 3; s++) {
		const json_t *a = json_object_get(hdr[0], sect[s]), *b = json_object_get(hdr[i], sect[s]);
		if (sub[s]) {
			const json_t *x = json_object_get(a, sub[s]), *y = json_object_get(b, sub[s]);
			if (json_equal(x, y) || (!x && !y))
				continue;
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "map shards %s and %s were made from different %s (inputs.%s differ): "
					     "join only maps of one stage-1 configuration",
					     lvd_rec_path(m->r[0]), lvd_rec_path(m->r[i]),
					     s == 1 ? "SD weights or configs" : "tokenizers", sub[s]);
		}
		const char *k = first_diff(a, b, 1);
		if (!k)
			continue;
		char *va = show(a, k), *vb = show(b, k);
		int rc = lvd_error_set(err, LVD_ERR_INVALID,
				       "map shards %s and %s were made with different parameters: %s %s vs %s "
				       "(join only maps of one stage-1 configuration)",
				       lvd_rec_path(m->r[0]), lvd_rec_path(m->r[i]), k, va ? va : "?", vb ? vb : "?");
		free(va);
		free(vb);
		return rc;
	}
	return 0;
}

static int cmp_ent(const void *a, const void *b)
{
	const struct lp_maps_ent *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c ? c : (x->shard > y->shard) - (x->shard < y->shard);
}

static int build_index(struct lp_maps *m, struct lvd_error *err)
{
	size_t total = 0;
	for (size_t i = 0; i < m->n; i++)
		total += lvd_rec_count(m->r[i]);
	if (total && !(m->idx = lvd_alloc_array(total, sizeof *m->idx)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory indexing map records");
	for (size_t i = 0; i < m->n; i++)
		for (size_t k = 0; k < lvd_rec_count(m->r[i]); k++)
			m->idx[m->n_idx++] = (struct lp_maps_ent){lvd_rec_id(m->r[i], k), (uint32_t)i, (uint32_t)k};
	qsort(m->idx, m->n_idx, sizeof *m->idx, cmp_ent);
	for (size_t j = 1; j < m->n_idx; j++)
		if (!strcmp(m->idx[j].id, m->idx[j - 1].id))
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "record id '%s' is in two map shards, %s (record %u) and %s (record %u): "
					     "one id, one map record",
					     m->idx[j].id, lvd_rec_path(m->r[m->idx[j - 1].shard]), m->idx[j - 1].rec,
					     lvd_rec_path(m->r[m->idx[j].shard]), m->idx[j].rec);
	return 0;
}

int lp_maps_open(struct lp_maps *m, const char *const *dirs, int ndirs, uint32_t shard_i, uint32_t shard_n, json_t *fp,
		 struct lvd_error *err)
{
	memset(m, 0, sizeof *m);
	json_t **hdr = NULL;
	size_t cap = 0;
	int rc = 0;
	/* folders of split runs: all N splits (their ledgers) must be there over all folders,
	 * or split i when this is --shard i/N of the same N */
	struct lvd_error e2 = {0};
	if ((rc = lvd_split_check_union(dirs, ndirs, "shards", ".jsonl", shard_i, shard_n, &e2)))
		return lvd_error_set(err, rc, "--maps: %s", e2.msg);
	for (int d = 0; d < ndirs && !rc; d++) {
		char **names = NULL;
		size_t nn = 0;
		if ((rc = lp_list_ext(dirs[d], ".lvdm", &names, &nn, err))) {
			if (rc == LVD_ERR_NOTFOUND)
				lvd_error_set(err, rc, "no .lvdm shards in --maps folder '%s'", dirs[d]);
			else if (rc == LVD_ERR_IO)
				lvd_error_errno(err, rc, "cannot open --maps folder '%s'", dirs[d]);
			break;
		}
		if (m->n + nn > cap) {
			cap = (m->n + nn) * 2;
			struct lvd_rec_reader **r = lvd_realloc_array(m->r, cap, sizeof *r);
			if (r)
				m->r = r;
			int *tf = lvd_realloc_array(m->text_field, cap, sizeof *tf);
			if (tf)
				m->text_field = tf;
			json_t **h = lvd_realloc_array(hdr, cap, sizeof *h);
			if (h)
				hdr = h;
			if (!r || !tf || !h)
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		}
		for (size_t i = 0; i < nn && !rc; i++) {
			char path[4096];
			unsigned si, sn;
			/* --shard i/N over maps split the same N: only split i's shards (others may
			 * still be growing; they are not this run's input) */
			if (shard_n > 1 && sscanf(names[i], "attn-%5u-of-%5u-", &si, &sn) == 2 && sn == shard_n &&
			    si != shard_i)
				continue;
			snprintf(path, sizeof path, "%s/%s", dirs[d], names[i]);
			if ((rc = lvd_rec_open(&m->r[m->n], path, LVD_REC_KIND_MAPS, err)))
				break;
			size_t hl;
			const char *h = lvd_rec_header(m->r[m->n], &hl);
			json_error_t je;
			hdr[m->n] = json_loadb(h, hl, 0, &je);
			m->n++;
			if (!json_is_object(hdr[m->n - 1])) {
				rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: header is not a JSON object", path);
				break;
			}
			const json_t *tf = json_object_get(json_object_get(hdr[m->n - 1], "params"), "text_field");
			struct lvd_error e2 = {0};
			if (lvd_text_field_parse(json_is_string(tf) ? json_string_value(tf) : "auto",
						 &m->text_field[m->n - 1], &e2))
				m->text_field[m->n - 1] = LVD_TEXT_AUTO;
			if (m->n > 1 && (rc = check_agree(m, hdr, m->n - 1, err)))
				break;
			unsigned char dg[LVD_SHA256_LEN];
			char hex[LVD_SHA256_HEX_LEN];
			lvd_sha256(h, hl, dg);
			lvd_sha256_hex(dg, hex);
			json_array_append_new(fp, json_pack("{s:s, s:s, s:I}", "file", ndirs > 1 ? path : names[i],
							    "header_sha256", hex, "records",
							    (json_int_t)lvd_rec_count(m->r[m->n - 1])));
		}
		for (size_t i = 0; i < nn; i++)
			free(names[i]);
		free(names);
	}
	if (!rc)
		rc = build_index(m, err);
	for (size_t i = 0; i < m->n; i++)
		json_decref(hdr[i]);
	free(hdr);
	if (rc)
		lp_maps_close(m);
	return rc;
}

long lp_maps_find(const struct lp_maps *m, const char *id, size_t *rec)
{
	size_t lo = 0, hi = m->n_idx;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->idx[mid].id, id);
		if (!c) {
			*rec = m->idx[mid].rec;
			return (long)m->idx[mid].shard;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void lp_maps_close(struct lp_maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		lvd_rec_close(m->r[i]);
	free(m->r);
	free(m->text_field);
	free(m->idx);
	memset(m, 0, sizeof *m);
}
