/* lvd-pack ls — the shards of pack folders: records, sizes, the manifest range they
 * cover, and the folder's statistics from pack.json (docs/pack.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmds.h"
#include "common/cli.h"
#include "core/log.h"
#include "io/container.h"
#include "io/splits.h"
#include "io/fileutil.h"
#include "maps.h"

static const char USAGE[] = "lvd-pack ls PACK_DIR|SHARD.lvdp ... [--json]";
static const char DESC[] =
	"Lists the *.lvdp shards of each pack folder (or the shards given): records, file\n"
	"size, the first manifest sample covered, the --shard split and the model (mllama or\n"
	"minicpmv, from the header's params.model_type); a folder's lines end\n"
	"with its totals and pack.json's statistics (samples, skipped, words matched per\n"
	"sample). --json prints one object per shard instead. Exit 1 when a shard cannot be\n"
	"read (named).";

static const struct lvd_cli_opt OPTS[] = {
	{"json", 'j', NULL, "one JSON object per shard: path, records, bytes, first_sample, shard, model"},
	{0},
};

static int on_opt(int key, const char *arg, void *ctx)
{
	(void)arg;
	*(int *)ctx = key == 'j' || key == 256;
	return 0;
}

static int ls_shard(const char *path, int json, uint64_t *records, uint64_t *bytes)
{
	struct lvd_error err = {0};
	struct lvd_rec_reader *r = NULL;
	if (lvd_rec_open(&r, path, LVD_REC_KIND_PACK, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	struct stat st;
	uint64_t size = stat(path, &st) ? 0 : (uint64_t)st.st_size;
	size_t hl, n = lvd_rec_count(r);
	const char *h = lvd_rec_header(r, &hl);
	json_t *hdr = json_loadb(h, hl, 0, NULL);
	json_int_t first = json_integer_value(json_object_get(hdr, "first_sample"));
	const char *split = json_string_value(json_object_get(json_object_get(hdr, "params"), "shard"));
	/* params.model_type is written for MiniCPM-V packs only; absent = mllama */
	const char *model = json_string_value(json_object_get(json_object_get(hdr, "params"), "model_type"));
	if (!model)
		model = "mllama";
	*records += n;
	*bytes += size;
	if (json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:s?, s:s}", "path", path, "records", (json_int_t)n, "bytes",
				      (json_int_t)size, "first_sample", first, "shard", split, "model", model);
		char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(o);
	} else
		printf("  %-22s %8zu records %12.1f KiB  first_sample %lld  shard %s  model %s\n",
		       strrchr(path, '/') ? strrchr(path, '/') + 1 : path, n, (double)size / 1024, (long long)first,
		       split ? split : "?", model);
	json_decref(hdr);
	lvd_rec_close(r);
	return 0;
}

int cmd_ls(int argc, char **argv)
{
	lvd_log_set_prog("lvd-pack ls"); /* messages and usage hints name the subcommand */
	int json = 0, first;
	int rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &json, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc)
		return lvd_cli_usage_error("expected a pack folder or shard");
	int status = 0;
	for (int a = first; a < argc; a++) {
		struct lvd_error err = {0};
		uint64_t records = 0, bytes = 0;
		if (!lvd_path_is_dir(argv[a])) {
			status |= ls_shard(argv[a], json, &records, &bytes);
			continue;
		}
		char **names = NULL;
		size_t n = 0;
		if (lp_list_ext(argv[a], ".lvdp", &names, &n, &err)) {
			lvd_error_log("%s", err.msg);
			status = 1;
			continue;
		}
		if (!json)
			printf("%s:\n", argv[a]);
		for (size_t i = 0; i < n; i++) {
			char path[4400];
			snprintf(path, sizeof path, "%s/%s", argv[a], names[i]);
			status |= ls_shard(path, json, &records, &bytes);
			free(names[i]);
		}
		free(names);
		if (json)
			continue;
		/* pack.json, or the sum over the pack-*-of-N.json of a folder of --shard i/N runs */
		char **files = NULL;
		size_t nf = 0;
		if (lvd_split_list(argv[a], "pack", ".json", &files, &nf, &err))
			nf = 0;
		long long smp = 0, skp = 0, mis = 0, with_stats = 0;
		double words = 0;
		for (size_t k = 0; k < nf; k++) {
			json_t *pk = json_load_file(files[k], 0, NULL);
			json_t *st = json_object_get(pk, "stats");
			if (st) {
				long long ns = (long long)json_integer_value(json_object_get(st, "samples"));
				smp += ns;
				skp += (long long)json_integer_value(json_object_get(st, "skipped"));
				mis += (long long)json_integer_value(json_object_get(st, "missing_maps"));
				words += (double)ns * json_number_value(json_object_get(st, "words_per_sample_mean"));
				with_stats++;
			}
			json_decref(pk);
		}
		lvd_split_list_free(files, nf);
		printf("  total: %zu shard(s), %llu records, %.1f MiB", n, (unsigned long long)records,
		       (double)bytes / (1024.0 * 1024.0));
		if (with_stats)
			printf("; %s: %lld samples, %lld skipped, %lld missing maps, %.2f words matched per sample",
			       nf > 1 ? "pack-*.json" : "pack.json", smp, skp, mis, smp ? words / (double)smp : 0.0);
		printf("\n");
	}
	return fflush(stdout) ? 1 : status;
}
