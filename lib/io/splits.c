/* lib/io/splits.c — split run names (see splits.h). */
#include "io/splits.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"

void lvd_split_tag(char *buf, size_t cap, uint32_t i, uint32_t n)
{
	if (n <= 1)
		snprintf(buf, cap, "%s", "");
	else
		snprintf(buf, cap, "-%05u-of-%05u", (unsigned)i, (unsigned)n);
}

void lvd_split_path(char *buf, size_t cap, const char *dir, const char *stem, const char *ext, uint32_t i,
		    uint32_t n)
{
	char tag[32];
	lvd_split_tag(tag, sizeof tag, i, n);
	snprintf(buf, cap, "%s/%s%s%s", dir, stem, tag, ext);
}

/* What dir holds: *plain when STEM.EXT exists; the split names as (i, n) pairs in
 * *ix and *nx (malloc'd, *cnt of them). */
struct scan {
	int plain;
	uint32_t *ix, *nx;
	size_t cnt;
};

static int scan_dir(const char *dir, const char *stem, const char *ext, struct scan *s, struct lvd_error *err)
{
	memset(s, 0, sizeof *s);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? LVD_OK : lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", dir);
	size_t ls = strlen(stem), le = strlen(ext), cap = 0;
	int rc = LVD_OK;
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		size_t l = strlen(nm);
		if (l < ls + le || strncmp(nm, stem, ls) || strcmp(nm + l - le, ext))
			continue;
		if (l == ls + le) {
			s->plain = 1;
			continue;
		}
		unsigned i, n;
		char want[512];
		int used = 0;
		if (sscanf(nm + ls, "-%5u-of-%5u%n", &i, &n, &used) != 2 || n < 2 || i >= n)
			continue;
		snprintf(want, sizeof want, "%s-%05u-of-%05u%s", stem, i, n, ext);
		if (strcmp(want, nm))
			continue;
		if (s->cnt == cap) {
			size_t nc = cap ? 2 * cap : 16;
			uint32_t *a = lvd_realloc_array(s->ix, nc, sizeof *a);
			if (a)
				s->ix = a;
			uint32_t *b = lvd_realloc_array(s->nx, nc, sizeof *b);
			if (b)
				s->nx = b;
			if (!a || !b) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory listing %s files", dir, stem);
				break;
			}
			cap = nc;
		}
		s->ix[s->cnt] = i;
		s->nx[s->cnt++] = n;
	}
	closedir(d);
	return rc;
}

static void scan_free(struct scan *s)
{
	free(s->ix);
	free(s->nx);
}

/* The plain/split mix and the N of the splits: LVD_ERR_INVALID on a mix. */
static int check_one_kind(const char *dir, const char *stem, const char *ext, const struct scan *s, uint32_t *n,
			  struct lvd_error *err)
{
	*n = s->cnt ? s->nx[0] : 1;
	if (s->plain && s->cnt)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "%s holds both %s%s (a run without --shard) and %s-%05u-of-%05u%s (split %u of "
				     "--shard i/%u): one kind of run per folder",
				     dir, stem, ext, stem, s->ix[0], s->nx[0], ext, s->ix[0], s->nx[0]);
	for (size_t k = 1; k < s->cnt; k++)
		if (s->nx[k] != *n)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "%s holds splits of --shard i/%u and of --shard i/%u (%s-%05u-of-%05u%s): "
					     "one N per folder",
					     dir, *n, s->nx[k], stem, s->ix[k], s->nx[k], ext);
	return LVD_OK;
}

/* The missing splits of have[0..N) as "i = 1, 3" into err; LVD_OK when none. */
static int check_complete(const char *where, const char *stem, const char *ext, const uint8_t *have, uint32_t N,
			  struct lvd_error *err)
{
	char miss[256] = "";
	size_t nm = 0, at = 0;
	for (uint32_t i = 0; i < N; i++)
		if (!have[i] && nm++ < 8 && at < sizeof miss)
			at += (size_t)snprintf(miss + at, sizeof miss - at, "%s%u", nm > 1 ? ", " : "", i);
	if (!nm)
		return LVD_OK;
	return lvd_error_set(err, LVD_ERR_INVALID,
			     "%s: %zu of the %u splits missing (no %s-IIIII-of-%05u%s for i = %s%s): run --shard i/%u "
			     "for them into this folder",
			     where, nm, N, stem, N, ext, miss, nm > 8 ? ", ..." : "", N);
}

int lvd_split_check_union(const char *const *dirs, int ndirs, const char *stem, const char *ext, uint32_t need_i,
			  uint32_t need_n, struct lvd_error *err)
{
	uint32_t N = 0;
	uint8_t *have = NULL;
	int rc = LVD_OK;
	char where[1024] = "";
	size_t at = 0;
	for (int d = 0; d < ndirs && !rc; d++) {
		struct scan s;
		uint32_t n;
		if ((rc = scan_dir(dirs[d], stem, ext, &s, err)))
			break;
		rc = check_one_kind(dirs[d], stem, ext, &s, &n, err);
		if (!rc && s.cnt) {
			if (!N && !(have = calloc(n, 1)))
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dirs[d]);
			else if (N && n != N)
				rc = lvd_error_set(err, LVD_ERR_INVALID,
						   "%s holds splits of --shard i/%u, %s of --shard i/%u: one N per job", dirs[d],
						   n, where, N);
			if (!rc) {
				N = n;
				for (size_t k = 0; k < s.cnt; k++)
					have[s.ix[k]] = 1;
				if (at < sizeof where)
					at += (size_t)snprintf(where + at, sizeof where - at, "%s%s", at ? " + " : "", dirs[d]);
			}
		}
		scan_free(&s);
	}
	if (!rc && N && need_n > 1 && N == need_n) {
		if (!have[need_i])
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s: no split %u of %u (%s-%05u-of-%05u%s): --shard %u/%u needs its split", where,
					   need_i, N, stem, need_i, N, ext, need_i, N);
	} else if (!rc && N) {
		rc = check_complete(where, stem, ext, have, N, err);
	}
	free(have);
	return rc;
}

int lvd_split_list(const char *dir, const char *stem, const char *ext, char ***paths, size_t *n,
		   struct lvd_error *err)
{
	struct scan s;
	*paths = NULL;
	*n = 0;
	uint32_t N = 1;
	int rc = scan_dir(dir, stem, ext, &s, err);
	if (!rc)
		rc = check_one_kind(dir, stem, ext, &s, &N, err);
	if (!rc && !s.plain && !s.cnt)
		rc = lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: no %s%s", dir, stem, ext);
	uint8_t *have = rc || s.plain ? NULL : calloc(N, 1);
	if (!rc && !s.plain && !have)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dir);
	for (size_t k = 0; have && k < s.cnt; k++)
		have[s.ix[k]] = 1;
	if (!rc && have)
		rc = check_complete(dir, stem, ext, have, N, err);
	size_t cnt = s.plain ? 1 : N;
	char **p = rc ? NULL : lvd_calloc_array(cnt, sizeof *p);
	if (!rc && !p)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dir);
	for (size_t k = 0; !rc && k < cnt; k++) {
		char buf[4096];
		lvd_split_path(buf, sizeof buf, dir, stem, ext, (uint32_t)k, s.plain ? 1 : N);
		if (!(p[k] = lvd_strdup(buf)))
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", dir);
	}
	free(have);
	scan_free(&s);
	if (rc) {
		lvd_split_list_free(p, cnt);
		return rc;
	}
	*paths = p;
	*n = cnt;
	return LVD_OK;
}

void lvd_split_list_free(char **paths, size_t n)
{
	if (!paths)
		return;
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int lvd_split_check_out(const char *dir, const char *stem, const char *ext, uint32_t i, uint32_t n,
			struct lvd_error *err)
{
	struct scan s;
	int rc = scan_dir(dir, stem, ext, &s, err);
	if (!rc && n <= 1 && s.cnt)
		rc = lvd_error_set(err, LVD_ERR_INVALID,
				   "%s holds the split %s-%05u-of-%05u%s of a --shard i/%u run: a run without --shard "
				   "needs its own folder",
				   dir, stem, s.ix[0], s.nx[0], ext, s.nx[0]);
	if (!rc && n > 1 && s.plain)
		rc = lvd_error_set(err, LVD_ERR_INVALID,
				   "%s holds %s%s of a run without --shard: --shard %u/%u needs a folder of its own or of "
				   "the other --shard i/%u runs",
				   dir, stem, ext, i, n, n);
	for (size_t k = 0; !rc && n > 1 && k < s.cnt; k++)
		if (s.nx[k] != n)
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s holds %s-%05u-of-%05u%s of a --shard i/%u run: --shard %u/%u needs a folder "
					   "of its own or of the other --shard i/%u runs",
					   dir, stem, s.ix[k], s.nx[k], ext, s.nx[k], i, n, n);
	scan_free(&s);
	return rc;
}
