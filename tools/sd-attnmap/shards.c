/* sd-attnmap: listing the shards of a maps folder. */
#include "shards.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/shardrun.h"
#include "core/alloc.h"
#include "core/log.h"
#include "io/splits.h"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int am_list_shards(const char *path, char ***paths, size_t *n, struct lvd_error *err)
{
	struct stat st;
	*paths = NULL;
	*n = 0;
	if (stat(path, &st))
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	if (!S_ISDIR(st.st_mode)) {
		char **p = malloc(sizeof *p);
		if (!p || !(p[0] = lvd_strdup(path))) {
			free(p);
			return lvd_error_set(err, LVD_ERR_NOMEM, "path list");
		}
		*paths = p;
		*n = 1;
		return 0;
	}
	DIR *d = opendir(path);
	if (!d)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	size_t cap = 0, cnt = 0;
	char **p = NULL;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 10 || strncmp(e->d_name, "attn-", 5) || strcmp(e->d_name + l - 5, ".lvdm"))
			continue;
		if (cnt == cap) {
			size_t nc = cap ? 2 * cap : 16;
			char **q = lvd_realloc_array(p, nc, sizeof *p);
			if (!q) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "path list");
				break;
			}
			p = q;
			cap = nc;
		}
		size_t sz = strlen(path) + l + 2;
		if (!(p[cnt] = malloc(sz))) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "path list");
			break;
		}
		snprintf(p[cnt++], sz, "%s/%s", path, e->d_name);
	}
	closedir(d);
	if (!rc && !cnt)
		rc = lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: no attn-*.lvdm shards", path);
	if (rc) {
		am_free_list(p, cnt);
		return rc;
	}
	qsort(p, cnt, sizeof *p, cmp_str);
	*paths = p;
	*n = cnt;
	return 0;
}

void am_free_list(char **paths, size_t n)
{
	if (!paths)
		return;
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int am_open_out(const char *out, uint32_t shard_i, uint32_t shard_n, json_t *run, const json_t *params,
		const json_t *inputs)
{
	char path[4096], prefix[64];
	char **shards = NULL;
	size_t n = 0;
	struct lvd_error err = {0};
	lvd_split_path(path, sizeof path, out, "run", ".json", shard_i, shard_n);
	lvd_run_split_prefix(prefix, sizeof prefix, "attn-", shard_i, shard_n);
	int no_shard;
	if (shard_n > 1) { /* this split's first shard */
		char p0[4096];
		lvd_run_shard_path(p0, sizeof p0, out, prefix, ".lvdm", 0);
		no_shard = access(p0, F_OK) != 0;
	} else {
		no_shard = am_list_shards(out, &shards, &n, &err) == LVD_ERR_NOTFOUND;
	}
	if (!access(path, F_OK) && no_shard) {
		if (unlink(path) && errno != ENOENT) {
			lvd_error_log("cannot replace %s: %s", path, strerror(errno));
			json_decref(run);
			return 1;
		}
		lvd_info("%s: replaced (the run that wrote it left no shard)", path);
	}
	am_free_list(shards, n);
	return lvd_run_open_split(out, shard_i, shard_n, run, params, inputs);
}
