/* tools/common/shardrun.c — shared batch-run machinery (see shardrun.h). */
#include "common/shardrun.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "io/fileutil.h"

void lvd_run_shard_path(char *buf, size_t cap, const char *out, const char *prefix, const char *ext, uint64_t k)
{
	snprintf(buf, cap, "%s/%s%05llu%s", out, prefix, (unsigned long long)k, ext);
}

uint64_t lvd_run_scan_shards(const char *out, const char *prefix, const char *ext)
{
	char path[4096];
	uint64_t n = 0;
	for (;; n++) {
		lvd_run_shard_path(path, sizeof path, out, prefix, ext, n);
		if (access(path, F_OK))
			break;
	}
	DIR *dir = opendir(out);
	if (dir) {
		size_t lp = strlen(prefix), le = strlen(ext);
		struct dirent *e;
		while ((e = readdir(dir))) {
			size_t l = strlen(e->d_name);
			if (l > le + 4 && !strncmp(e->d_name, prefix, lp) && !strncmp(e->d_name + l - le - 4, ext, le) &&
			    !strcmp(e->d_name + l - 4, ".tmp")) {
				snprintf(path, sizeof path, "%s/%s", out, e->d_name);
				unlink(path);
			}
		}
		closedir(dir);
	}
	return n;
}

int lvd_run_open_shard(const char *path, const char *kind, struct lvd_rec_reader **r)
{
	struct lvd_error err = {0};
	if (lvd_rec_open(r, path, kind, &err)) {
		lvd_error_log("%s", err.msg);
		fprintf(stderr, "hint: delete %s to recompute it\n", path);
		return 1;
	}
	return 0;
}

int lvd_run_trim_jsonl(const char *path, const char *key, uint64_t limit, void (*keep)(void *ctx, const json_t *line),
		       void *ctx, uint64_t *kept)
{
	struct lvd_error err = {0};
	char *buf = NULL;
	size_t len = 0;
	*kept = 0;
	if (access(path, F_OK))
		return 0;
	if (lvd_file_read_all(path, (size_t)1 << 30, &buf, &len, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	char *outb = malloc(len + 1);
	size_t on = 0;
	for (char *line = buf; outb && line < buf + len;) {
		char *nl = memchr(line, '\n', (size_t)(buf + len - line));
		size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + len - line);
		json_t *j = json_loadb(line, ll, 0, NULL);
		json_t *ix = j ? json_object_get(j, key) : NULL;
		if (json_is_integer(ix) && (uint64_t)json_integer_value(ix) < limit) {
			memcpy(outb + on, line, ll);
			on += ll;
			outb[on++] = '\n';
			(*kept)++;
			if (keep)
				keep(ctx, j);
		}
		json_decref(j);
		line += ll + 1;
	}
	int rc = outb ? lvd_file_write_atomic(path, outb, on, &err) : lvd_error_set(&err, LVD_ERR_NOMEM, "%s", path);
	if (rc)
		lvd_error_log("%s", err.msg);
	free(outb);
	free(buf);
	return rc ? 1 : 0;
}

int lvd_run_errors_open(const char *out, uint64_t limit, uint64_t *kept, FILE **ef)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/errors.jsonl", out);
	if (lvd_run_trim_jsonl(path, "index", limit, NULL, NULL, kept))
		return 1;
	if (!(*ef = fopen(path, "a"))) {
		lvd_error_log("%s: %s", path, strerror(errno));
		return 1;
	}
	return 0;
}

char *lvd_run_dump(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

void lvd_run_jsonl_append(FILE *f, const json_t *j)
{
	char *s = j ? lvd_run_dump(j) : NULL;
	if (s) {
		fprintf(f, "%s\n", s);
		fflush(f);
	}
	free(s);
}

json_t *lvd_run_argv_json(int argc, char **argv)
{
	json_t *args = json_array();
	for (int i = 0; i < argc; i++)
		json_array_append_new(args, json_string(argv[i]));
	return args;
}

char *lvd_run_shard_header(const char *tool, const char *params_dump, const char *inputs_dump, uint64_t shard,
			   const char *first_key, uint64_t first)
{
	json_t *h = json_pack("{s:s, s:s, s:o, s:o, s:I, s:I}", "tool", tool, "version", LVD_VERSION, "params",
			      json_loads(params_dump, 0, NULL), "inputs", json_loads(inputs_dump, 0, NULL), "shard",
			      (json_int_t)shard, first_key, (json_int_t)first);
	char *s = h ? lvd_run_dump(h) : NULL;
	json_decref(h);
	return s;
}

int lvd_run_threads(int threads)
{
	if (threads)
		return threads;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

struct lvd_progress *lvd_run_progress(const char *tool, const char *unit, uint64_t total)
{
	struct lvd_progress_opts po = {0};
	po.unit = unit;
	po.tty = -1;
	return lvd_progress_create(lvd_log_level() >= LVD_LOG_INFO ? stderr : NULL, tool, total, &po);
}

int lvd_run_exit_status(uint64_t skipped, int keep_going, const char *out)
{
	if (skipped && !keep_going) {
		lvd_error_log("%llu sample(s) skipped, listed in %s/errors.jsonl (use --keep-going to accept)",
			      (unsigned long long)skipped, out);
		return 1;
	}
	return 0;
}

/* The first key of now whose value differs in old (or is absent there); NULL when every
 * key of now matches. */
static const char *first_diff(const json_t *old, const json_t *now)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)now, key, v) {
		json_t *ov = json_object_get(old, key);
		if (!ov || !json_equal(ov, v))
			return key;
	}
	return NULL;
}

int lvd_run_check_provenance(const char *path, const json_t *params, const json_t *inputs)
{
	json_error_t je;
	json_t *old = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!old) {
		lvd_error_log("%s: cannot read: %s", path, je.text);
		return 1;
	}
	int rc = 0;
	const char *what[2] = {"params", "inputs"};
	const json_t *now[2] = {params, inputs};
	for (int k = 0; k < 2 && !rc; k++) {
		json_t *o = json_object_get(old, what[k]);
		if (!json_is_object(o)) {
			lvd_error_log("%s: no '%s' object; not a provenance file of this tool", path, what[k]);
			rc = 1;
			break;
		}
		if (json_equal(o, now[k]))
			continue;
		const char *key = first_diff(o, now[k]);
		const json_t *a = key ? json_object_get(o, key) : o, *b = key ? json_object_get(now[k], key) : now[k];
		char *sa = a ? lvd_run_dump(a) : NULL, *sb = lvd_run_dump(b);
		if (key)
			lvd_error_log("%s: %s differ from this run: %s was %s, now %s", path, what[k], key,
				      sa ? sa : "(absent)", sb ? sb : "?");
		else
			lvd_error_log("%s: %s differ from this run: was %s, now %s", path, what[k], sa ? sa : "?",
				      sb ? sb : "?");
		fprintf(stderr, "hint: repeat the original options and inputs to resume, or use a new --out folder\n");
		free(sa);
		free(sb);
		rc = 2;
	}
	json_decref(old);
	return rc;
}
