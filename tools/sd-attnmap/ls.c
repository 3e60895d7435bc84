/* sd-attnmap ls — the shards of maps folders: records, sizes, the manifest range they
 * cover and the parameters they were made with (docs/attnmap.md "ls"). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmds.h"
#include "common/cli.h"
#include "common/shardrun.h"
#include "core/log.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/splits.h"
#include "shards.h"

static const char USAGE[] = "sd-attnmap ls MAPS_DIR|SHARD.lvdm ... [--json]";
static const char DESC[] =
	"Lists the attn-*.lvdm shards of each maps folder (or the shards given): records,\n"
	"file size, the first manifest index covered, and the parameters of the run that\n"
	"wrote them (from the shard headers; a shard whose parameters differ from the\n"
	"folder's first is marked with the differing key). A folder's line also gives the\n"
	"command, the totals and the lines of errors.jsonl. --json prints one object per\n"
	"shard instead. Exit 1 when a shard cannot be read (named).";

static const struct lvd_cli_opt OPTS[] = {
	{"json", 'j', NULL, "one JSON object per shard: path, records, bytes, first_index, params"},
	{0},
};

static int on_opt(int key, const char *arg, void *ctx)
{
	(void)arg;
	*(int *)ctx = key == 'j' || key == 256;
	return 0;
}

/* A human size: "812 B", "3.4 KiB", "1.2 GiB". */
static void human(char *buf, size_t cap, double b)
{
	static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int k = 0;
	while (b >= 1024 && k < 4)
		b /= 1024, k++;
	snprintf(buf, cap, k ? "%.1f %s" : "%.0f %s", b, u[k]);
}

/* "resolution 512, grid 0, ..." of the result-changing params (shard ones left out). */
static void params_line(char *buf, size_t cap, const json_t *params)
{
	const char *k;
	json_t *v;
	size_t n = 0;
	buf[0] = 0;
	json_object_foreach((json_t *)params, k, v) {
		if (!strcmp(k, "shard") || !strcmp(k, "shard_bytes") || !strcmp(k, "zstd_level"))
			continue;
		char *s = lvd_run_dump(v);
		if (s && n < cap)
			n += (size_t)snprintf(buf + n, cap - n, "%s%s %s", n ? ", " : "", k, s);
		free(s);
	}
}

/* Lists one shard; *first_params is the folder's first shard's params (set from this
 * one when NULL). Returns 0 or 1 (printed). */
static int ls_shard(const char *path, int json, json_t **first_params, uint64_t *records, uint64_t *bytes)
{
	struct lvd_error err = {0};
	struct lvd_rec_reader *r = NULL;
	if (lvd_rec_open(&r, path, LVD_REC_KIND_MAPS, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	struct stat st;
	uint64_t size = stat(path, &st) ? 0 : (uint64_t)st.st_size;
	size_t hl;
	const char *h = lvd_rec_header(r, &hl);
	json_t *hdr = json_loadb(h, hl, 0, NULL);
	json_t *params = json_object_get(hdr, "params");
	json_int_t first = json_integer_value(json_object_get(hdr, "first_index"));
	const char *shard = json_string_value(json_object_get(params, "shard"));
	size_t n = lvd_rec_count(r);
	*records += n;
	*bytes += size;
	if (!*first_params && params)
		*first_params = json_deep_copy(params);
	if (json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:O*}", "path", path, "records", (json_int_t)n, "bytes",
				      (json_int_t)size, "first_index", first, "params", params);
		char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		char hs[32], diff[256] = "";
		human(hs, sizeof hs, (double)size);
		const char *k;
		json_t *v;
		json_object_foreach(params, k, v) {
			if (strcmp(k, "shard") && strcmp(k, "shard_bytes") && strcmp(k, "zstd_level") &&
			    !json_equal(v, json_object_get(*first_params, k))) {
				snprintf(diff, sizeof diff, "  PARAMS DIFFER: %s", k);
				break;
			}
		}
		const char *base = strrchr(path, '/');
		printf("  %-22s %8zu records %11s  first_index %lld  shard %s%s\n", base ? base + 1 : path, n, hs,
		       (long long)first, shard ? shard : "?", diff);
	}
	json_decref(hdr);
	lvd_rec_close(r);
	return 0;
}

/* The folder's line: the command of run.json, params, totals, errors.jsonl lines (of
 * run-00000-of-NNNNN.json and all errors-*-of-*.jsonl in a folder of --shard i/N runs). */
static void folder_summary(const char *dir, const json_t *params, size_t shards, uint64_t records, uint64_t bytes)
{
	char pl[2048] = "", hs[32];
	char **files = NULL;
	size_t nf = 0;
	struct lvd_error e = {0};
	json_t *run = NULL;
	if (!lvd_split_list(dir, "run", ".json", &files, &nf, &e))
		run = json_load_file(files[0], 0, NULL);
	lvd_split_list_free(files, nf);
	const char *cmd = json_string_value(json_object_get(run, "command"));
	uint64_t errs = 0;
	if (lvd_split_list(dir, "errors", ".jsonl", &files, &nf, &e))
		nf = 0;
	for (size_t k = 0; k < nf; k++) {
		FILE *f = fopen(files[k], "r");
		for (int c; f && (c = fgetc(f)) != EOF;)
			errs += c == '\n';
		if (f)
			fclose(f);
	}
	lvd_split_list_free(files, nf);
	params_line(pl, sizeof pl, params);
	human(hs, sizeof hs, (double)bytes);
	printf("  total: %zu shard(s), %llu records, %s; %llu skipped sample(s) in errors.jsonl; made by sd-attnmap "
	       "%s\n  params: %s\n",
	       shards, (unsigned long long)records, hs, (unsigned long long)errs, cmd ? cmd : "run", pl);
	json_decref(run);
}

int cmd_ls(int argc, char **argv)
{
	lvd_log_set_prog("sd-attnmap ls"); /* messages and usage hints name the subcommand */
	int json = 0, first;
	int rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &json, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc)
		return lvd_cli_usage_error("expected a maps folder or shard");
	int status = 0;
	for (int a = first; a < argc; a++) {
		struct lvd_error err = {0};
		char **paths = NULL;
		size_t n = 0;
		if (am_list_shards(argv[a], &paths, &n, &err)) {
			lvd_error_log("%s", err.msg);
			status = 1;
			continue;
		}
		int dir = lvd_path_is_dir(argv[a]);
		if (!json && dir)
			printf("%s:\n", argv[a]);
		json_t *params = NULL;
		uint64_t records = 0, bytes = 0;
		for (size_t i = 0; i < n; i++)
			status |= ls_shard(paths[i], json, &params, &records, &bytes);
		if (!json && dir)
			folder_summary(argv[a], params, n, records, bytes);
		json_decref(params);
		am_free_list(paths, n);
	}
	return fflush(stdout) ? 1 : status;
}
