/* tools/common/shardrun.c — shared batch-run machinery (see shardrun.h). */
#include "common/shardrun.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/pool.h"
#include "io/fileutil.h"
#include "io/splits.h"

void lvd_run_split_prefix(char *buf, size_t cap, const char *prefix, uint32_t i, uint32_t n)
{
	char tag[32];
	lvd_split_tag(tag, sizeof tag, i, n);
	snprintf(buf, cap, "%s%s%s", prefix, n > 1 ? tag + 1 : "", n > 1 ? "-" : "");
}

int lvd_run_lock(const char *out, uint32_t i, uint32_t n, struct lvd_error *err)
{
	char name[64];
	int rc = lvd_split_check_out(out, "shards", ".jsonl", i, n, err);
	if (rc)
		return rc;
	lvd_split_path(name, sizeof name, ".", ".lock", "", i, n);
	return lvd_dir_lock_as(out, name + 2, err);
}

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

int lvd_run_errors_open(const char *path, uint64_t limit, uint64_t *kept, FILE **ef)
{
	if (lvd_run_trim_jsonl(path, "index", limit, NULL, NULL, kept))
		return 1;
	if (!(*ef = lvd_io_fopen(path, "a"))) {
		lvd_error_log("%s: %s", path, strerror(errno));
		return 1;
	}
	return 0;
}

char *lvd_run_dump(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

int lvd_run_jsonl_append(FILE *f, const char *path, const json_t *j, struct lvd_error *err)
{
	char *s = j ? lvd_run_dump(j) : NULL;
	if (!s)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	/* stdio: only whole-line failures are injected (EINTR and short: the line is written,
	 * as stdio over a regular file does) */
	int fe = lvd_fault_hit(LVD_FAULT_WRITE);
	if (fe > 0 && fe != EINTR) {
		free(s);
		errno = fe;
		return lvd_error_errno(err, LVD_ERR_IO, "cannot write '%s'", path);
	}
	errno = 0;
	int bad = fprintf(f, "%s\n", s) < 0;
	bad |= fflush(f) != 0;
	bad |= ferror(f) != 0;
	free(s);
	if (bad) {
		clearerr(f);
		return lvd_error_errno(err, LVD_ERR_IO, "cannot write '%s'", path);
	}
	return LVD_OK;
}

json_t *lvd_run_files_sha(const char *dir, const char *stem, const char *ext, struct lvd_error *err)
{
	char **files = NULL;
	size_t nf = 0;
	int rc = lvd_split_list(dir, stem, ext, &files, &nf, err);
	if (rc == LVD_ERR_NOTFOUND) { /* name the plain file, as a reader of it would */
		char p[4096];
		unsigned char d[LVD_SHA256_LEN];
		lvd_split_path(p, sizeof p, dir, stem, ext, 0, 1);
		lvd_sha256_file(p, d, err);
	}
	if (rc)
		return NULL;
	json_t *arr = nf > 1 ? json_array() : NULL;
	json_t *one = NULL;
	for (size_t k = 0; k < nf && !rc; k++) {
		unsigned char d[LVD_SHA256_LEN];
		char hex[LVD_SHA256_HEX_LEN];
		if ((rc = lvd_sha256_file(files[k], d, err)))
			break;
		lvd_sha256_hex(d, hex);
		if (arr)
			json_array_append_new(arr, json_string(hex));
		else
			one = json_string(hex);
	}
	lvd_split_list_free(files, nf);
	if (rc) {
		json_decref(arr);
		json_decref(one);
		return NULL;
	}
	return arr ? arr : one;
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

int lvd_run_exit_status(uint64_t skipped, int keep_going, const char *out, uint32_t shard_i, uint32_t shard_n)
{
	if (skipped && !keep_going) {
		char path[4096];
		lvd_split_path(path, sizeof path, out, "errors", ".jsonl", shard_i, shard_n);
		lvd_error_log("%llu sample(s) skipped, listed in %s (use --keep-going to accept)",
			      (unsigned long long)skipped, path);
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

int lvd_run_open_out(const char *out, json_t *run, const json_t *params, const json_t *inputs)
{
	return lvd_run_open_split(out, 0, 1, run, params, inputs);
}

int lvd_run_open_split(const char *out, uint32_t shard_i, uint32_t shard_n, json_t *run, const json_t *params,
		       const json_t *inputs)
{
	struct lvd_error err = {0};
	char path[4096];
	if (lvd_mkdir_p(out, &err) || lvd_run_lock(out, shard_i, shard_n, &err)) {
		json_decref(run);
		lvd_error_log("%s", err.msg);
		return 1;
	}
	lvd_split_path(path, sizeof path, out, "run", ".json", shard_i, shard_n);
	if (!access(path, F_OK)) {
		json_decref(run);
		return lvd_run_check_provenance(path, params, inputs);
	}
	char *s = run ? json_dumps(run, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(run);
	if (!s || lvd_file_write_atomic(path, s, strlen(s), &err)) {
		free(s);
		lvd_error_log("%s", err.msg[0] ? err.msg : "run.json: out of memory");
		return 1;
	}
	free(s);
	return 0;
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

/* ---- the driver ----------------------------------------------------------------------- */

void lvd_shardrun_fail(struct lvd_shardrun_item *it, const char *kind, const struct lvd_error *err)
{
	it->failed = 1;
	it->transient = err->transient;
	it->kind = kind;
	snprintf(it->reason, sizeof it->reason, "%s", err->msg);
}

struct run {
	const struct lvd_shardrun_cfg *c;
	struct lvd_shardrun_result *res;
	char *items;
	struct lvd_progress *prog;
	FILE *ledger, *ef;
	char ledger_path[4096], ef_path[4096];
	char prefix[256];          /* cfg prefix with the split: "attn-" or "attn-00003-of-00008-" */
	struct lvd_rec_writer *w;  /* the open shard, or NULL */
	uint64_t shard, first, end, samples;
};

static struct lvd_shardrun_item *item_at(const struct run *r, size_t i)
{
	return (struct lvd_shardrun_item *)(r->items + i * r->c->item_size);
}

/* The complete shards (see the header) and the resume point. Returns 0, or 1 after printing. */
static int find_resume(struct run *r, const char *ledger_path)
{
	const struct lvd_shardrun_cfg *c = r->c;
	uint64_t n_files = lvd_run_scan_shards(c->out, r->prefix, c->ext), n = 0, kept;
	uint64_t *ends = n_files ? lvd_alloc_array(n_files, sizeof *ends) : NULL;
	char *buf = NULL;
	size_t len = 0;
	struct lvd_error err = {0};
	if (n_files && !ends) {
		lvd_error_log("out of memory");
		return 1;
	}
	for (uint64_t k = 0; k < n_files; k++)
		ends[k] = UINT64_MAX;
	if (n_files && !access(ledger_path, F_OK)) {
		if (lvd_file_read_all(ledger_path, (size_t)1 << 30, &buf, &len, &err)) {
			lvd_error_log("%s", err.msg);
			free(ends);
			return 1;
		}
		for (char *line = buf; line < buf + len;) {
			char *nl = memchr(line, '\n', (size_t)(buf + len - line));
			size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + len - line);
			json_t *j = json_loadb(line, ll, 0, NULL);
			json_t *k = json_object_get(j, "shard"), *e = json_object_get(j, "end");
			if (json_is_integer(k) && json_is_integer(e) && json_integer_value(k) >= 0 &&
			    (uint64_t)json_integer_value(k) < n_files && json_integer_value(e) >= 0)
				ends[json_integer_value(k)] = (uint64_t)json_integer_value(e);
			json_decref(j);
			line += ll + 1;
		}
		free(buf);
	}
	while (n < n_files && ends[n] != UINT64_MAX)
		n++;
	r->res->resumed_shards = r->shard = n;
	r->res->resume_at = n ? ends[n - 1] : 0;
	free(ends);
	if (lvd_run_trim_jsonl(ledger_path, "shard", n, c->keep_shard, c->ctx, &kept))
		return 1;
	/* every kept shard: footer, header and index CRCs (a truncated or damaged earlier shard
	 * is an error, not a silent resume) */
	for (uint64_t k = 0; k < n; k++) {
		char path[4096];
		struct lvd_rec_reader *rd = NULL;
		lvd_run_shard_path(path, sizeof path, c->out, r->prefix, c->ext, k);
		if (lvd_run_open_shard(path, c->kind, &rd))
			return 1;
		lvd_rec_close(rd);
	}
	snprintf(r->ledger_path, sizeof r->ledger_path, "%s", ledger_path);
	lvd_split_path(r->ef_path, sizeof r->ef_path, c->out, "errors", ".jsonl", c->shard_i, c->shard_n);
	if (!(r->ledger = lvd_io_fopen(ledger_path, "a"))) {
		lvd_error_log("%s: %s", ledger_path, strerror(errno));
		return 1;
	}
	if (lvd_run_errors_open(r->ef_path, r->res->resume_at, &kept, &r->ef))
		return 1;
	r->res->skipped = kept;
	return 0;
}

static int shard_open(struct run *r, uint64_t first, struct lvd_error *err)
{
	const struct lvd_shardrun_cfg *c = r->c;
	char path[4096];
	lvd_run_shard_path(path, sizeof path, c->out, r->prefix, c->ext, r->shard);
	char *hdr = lvd_run_shard_header(c->tool, c->params_dump, c->inputs_dump, r->shard, c->first_key, first);
	if (!hdr)
		return lvd_error_set(err, LVD_ERR_NOMEM, "shard header");
	struct lvd_rec_writer_opts wo = {c->zlevel};
	int rc = lvd_rec_writer_open(&r->w, path, c->kind, hdr, &wo, err);
	free(hdr);
	r->first = r->end = first;
	r->samples = 0;
	return rc;
}

static int shard_close(struct run *r, struct lvd_error *err)
{
	const struct lvd_shardrun_cfg *c = r->c;
	size_t records = lvd_rec_writer_count(r->w);
	int rc = lvd_rec_writer_close(r->w, err);
	r->w = NULL;
	if (rc)
		return rc;
	char path[4096];
	lvd_run_shard_path(path, sizeof path, c->out, r->prefix, c->ext, r->shard);
	lvd_info("wrote %s", path);
	const char *slash = strrchr(path, '/');
	json_t *line = json_pack("{s:I, s:s, s:I, s:I, s:I}", "shard", (json_int_t)r->shard, "file",
				 slash ? slash + 1 : path, "first", (json_int_t)r->first, "end", (json_int_t)r->end,
				 "records", (json_int_t)records);
	json_t *st = c->shard_stats ? c->shard_stats(c->ctx) : NULL;
	if (line && st)
		json_object_update_missing(line, st);
	json_decref(st);
	if (!line)
		return lvd_error_set(err, LVD_ERR_NOMEM, "shards.jsonl");
	rc = lvd_run_jsonl_append(r->ledger, r->ledger_path, line, err);
	json_decref(line);
	if (rc)
		return rc;
	r->shard++;
	return 0;
}

/* Writes one worked item in manifest order. Returns 0, or an error code (I/O: stop). */
static int emit(struct run *r, struct lvd_shardrun_item *it, struct lvd_error *err)
{
	const struct lvd_shardrun_cfg *c = r->c;
	int rc;
	if (!r->w && (rc = shard_open(r, it->index, err)))
		return rc;
	if (!it->failed && it->payload) {
		if ((rc = lvd_rec_writer_append(r->w, it->id, it->payload, it->len, err))) {
			if (rc != LVD_ERR_INVALID) /* LVD_ERR_INVALID: a duplicate id in the shard */
				return rc;
			lvd_shardrun_fail(it, c->duplicate_kind, err);
		} else {
			r->res->records++;
		}
	}
	if (it->failed && it->transient)
		return lvd_error_set(err, LVD_ERR_IO,
				     "sample %llu%s%s%s: %s (a failure of the machine, not of the sample: stopping so "
				     "that a rerun computes it)",
				     (unsigned long long)it->index, it->id ? " '" : "", it->id ? it->id : "",
				     it->id ? "'" : "", it->reason);
	if (it->failed) {
		json_t *j = json_pack("{s:I, s:s?, s:s?, s:s?, s:s}", "index", (json_int_t)it->index, "id", it->id,
				      "image", it->image, "kind", it->kind, "reason", it->reason);
		rc = lvd_run_jsonl_append(r->ef, r->ef_path, j, err);
		json_decref(j);
		if (rc)
			return rc;
		lvd_warn("skipped sample %llu%s%s%s: %s", (unsigned long long)it->index, it->id ? " '" : "",
			 it->id ? it->id : "", it->id ? "'" : "", it->reason);
		r->res->skipped++;
	}
	if (c->account)
		c->account(c->ctx, it);
	r->res->done++;
	r->samples++;
	r->end = it->index + 1;
	if (lvd_rec_writer_count(r->w) &&
	    ((c->max_samples && r->samples >= c->max_samples) || (c->max_bytes && lvd_rec_writer_bytes(r->w) >= c->max_bytes)))
		return shard_close(r, err);
	return 0;
}

static int work_fn(void *ctx, size_t begin, size_t end, int tid)
{
	struct run *r = ctx;
	for (size_t i = begin; i < end; i++) {
		struct lvd_shardrun_item *it = item_at(r, i);
		if (!it->failed)
			r->c->work(r->c->ctx, it, tid);
		lvd_progress_add(r->prog, 1);
	}
	return 0;
}

static void release(struct run *r, struct lvd_shardrun_item *it)
{
	free(it->payload);
	it->payload = NULL;
	if (r->c->release)
		r->c->release(r->c->ctx, it);
}

int lvd_shardrun(const struct lvd_shardrun_cfg *c, struct lvd_shardrun_result *res)
{
	LVD_ASSERT(c->item_size >= sizeof(struct lvd_shardrun_item) && c->batch >= 1 && c->shard_n >= 1);
	memset(res, 0, sizeof *res);
	struct run r = {.c = c, .res = res};
	struct lvd_pool *pool = NULL;
	struct lvd_error err = {0};
	char path[4096];
	int status = 1;
	lvd_run_split_prefix(r.prefix, sizeof r.prefix, c->prefix, c->shard_i, c->shard_n);
	lvd_split_path(path, sizeof path, c->out, "shards", ".jsonl", c->shard_i, c->shard_n);
	if (lvd_run_lock(c->out, c->shard_i, c->shard_n, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	if (find_resume(&r, path))
		goto out;
	if (res->resumed_shards)
		lvd_info("resuming after %llu complete shard(s), at manifest sample %llu",
			 (unsigned long long)res->resumed_shards, (unsigned long long)res->resume_at);
	if (lvd_pool_create(&pool, c->threads, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	if (!(r.items = lvd_calloc_array((size_t)c->batch, c->item_size))) {
		lvd_error_log("out of memory");
		goto out;
	}
	uint64_t total = c->count ? c->count(c->ctx) : 0, todo = 0;
	if (total > res->resume_at) { /* k in [resume_at, total) with k mod N == i */
		uint64_t a = res->resume_at, first = a + (c->shard_i + c->shard_n - a % c->shard_n) % c->shard_n;
		todo = first < total ? (total - first - 1) / c->shard_n + 1 : 0;
	}
	r.prog = lvd_run_progress(c->tool, c->unit, todo);
	double t_start = lvd_time_now();
	int eof = 0, failed = 0;
	while (!eof && !failed) {
		size_t nb = 0;
		double t0 = lvd_time_now();
		while (nb < (size_t)c->batch) {
			struct lvd_shardrun_item *it = item_at(&r, nb);
			memset(it, 0, c->item_size);
			int rc = c->next(c->ctx, it);
			if (rc == LVD_SHARDRUN_EOF) {
				eof = 1;
				break;
			}
			if (rc == LVD_SHARDRUN_FATAL) {
				failed = 1;
				break;
			}
			if (it->index % c->shard_n != c->shard_i || it->index < res->resume_at) {
				release(&r, it);
				continue;
			}
			if (c->prepare && !it->failed)
				c->prepare(c->ctx, it);
			nb++;
		}
		res->t_read += lvd_time_now() - t0;
		if (!failed && nb)
			lvd_pool_parallel_for(pool, nb, work_fn, &r);
		if (!failed && nb && c->round)
			c->round(c->ctx, r.items, nb);
		t0 = lvd_time_now();
		for (size_t i = 0; i < nb && !failed; i++)
			if (emit(&r, item_at(&r, i), &err)) {
				lvd_error_log("%s", err.msg);
				failed = 1;
			}
		for (size_t i = 0; i < nb; i++)
			release(&r, item_at(&r, i));
		res->t_write += lvd_time_now() - t0;
	}
	if (failed)
		goto out;
	if (r.w && lvd_rec_writer_count(r.w) && shard_close(&r, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	lvd_progress_finish(r.prog);
	res->wall = lvd_time_now() - t_start;
	status = 0;
out:
	res->shards = r.shard;
	lvd_rec_writer_abort(r.w); /* a shard without records, or a failed run's */
	if (r.ledger && fclose(r.ledger) && status == 0) {
		lvd_error_log("cannot write '%s': %s", r.ledger_path, strerror(errno));
		status = 1;
	}
	if (r.ef && fclose(r.ef) && status == 0) {
		lvd_error_log("cannot write '%s': %s", r.ef_path, strerror(errno));
		status = 1;
	}
	lvd_progress_destroy(r.prog);
	free(r.items);
	lvd_pool_destroy(pool);
	return status;
}
