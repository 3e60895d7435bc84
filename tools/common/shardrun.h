/* tools/common/shardrun.h — the batch driver shared by the tools that turn a manifest
 * into numbered record shards (sd-attnmap run, lvd-pack run), and its pieces: shard
 * naming and the resume scan, JSONL side files trimmed to the resume point, provenance
 * helpers (argv, shard headers), the progress line and the final status.
 *
 * The driver (lvd_shardrun) reads the tool's samples in manifest order, keeps those of
 * this --shard i/N (manifest index k with k mod N == i), works on them in batches over a
 * thread pool and writes, in manifest order, one record per successful sample into
 * out/<prefix>NNNNN<ext>; failures go to out/errors.jsonl. Results therefore do not
 * depend on --threads or --batch.
 *
 * Splits. With N > 1 every name carries the split (io/splits.h), so the N runs of one
 * job can write into one folder at once: shards out/<prefix>IIIII-of-NNNNN-KKKKK<ext>,
 * out/shards-IIIII-of-NNNNN.jsonl, errors-..., run-....json and the lock
 * out/.lock-IIIII-of-NNNNN; each split resumes on its own by the rule below. N = 1 keeps
 * the plain names. A folder holds one kind of run (lvd_run_lock refuses a mix).
 *
 * Shards. A shard covers a contiguous run of this --shard's samples, [first, end) in
 * manifest indices, and is opened at its first sample. It is closed after a sample once
 * it holds at least one record and has reached its size (max_samples samples covered,
 * or max_bytes compressed record bytes); at the end of the input it is closed when it
 * holds a record and discarded otherwise. After each close the driver appends the line
 * {"shard", "file", "first", "end", "records", ...tool statistics} to out/shards.jsonl
 * ("file": the shard's name in out/; readers use it).
 *
 * The one resume rule. Shard k is complete when out/<prefix>k<ext> exists and
 * out/shards.jsonl has its line; shards 0..n-1 are the longest complete prefix. A rerun
 * of the same command resumes at the end of shard n-1 (manifest index `end`, 0 when
 * n = 0): complete shards are never rewritten or recomputed; a shard file without its
 * line (killed between the rename and the line), an interrupted <name>.tmp and any
 * later shard are recomputed; shards.jsonl and errors.jsonl keep only the lines before
 * the resume point. Since shard boundaries depend only on the samples and the options
 * recorded in the provenance file, a run killed at any moment (SIGKILL included) and
 * resumed writes byte-identical shards.
 *
 * Tool-level code: functions print their errors through lvd_error_log (and a "hint:"
 * line where there is something to do) and return 0 or 1, like the tools' main paths. */
#ifndef LVD_TOOLS_COMMON_SHARDRUN_H
#define LVD_TOOLS_COMMON_SHARDRUN_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "core/progress.h"
#include "io/container.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The shard name prefix of split i of n: prefix itself when n == 1, else
 * prefix + "IIIII-of-NNNNN-" ("attn-" -> "attn-00003-of-00008-"). */
void lvd_run_split_prefix(char *buf, size_t cap, const char *prefix, uint32_t i, uint32_t n);

/* Locks out/ for split i of n (out/.lock, or out/.lock-IIIII-of-NNNNN; lvd_dir_lock_as)
 * after checking that out/ holds no ledger of another kind of run
 * (lvd_split_check_out on "shards.jsonl"). */
int lvd_run_lock(const char *out, uint32_t i, uint32_t n, struct lvd_error *err);

/* out/<prefix>NNNNN<ext>, e.g. ("maps", "attn-", ".lvdm", 3) -> "maps/attn-00003.lvdm". */
void lvd_run_shard_path(char *buf, size_t cap, const char *out, const char *prefix, const char *ext, uint64_t k);

/* The number of complete shards: out/<prefix>00000<ext>, ... while they exist. Removes the
 * stale out/<prefix>*<ext>.tmp files of an interrupted run. */
uint64_t lvd_run_scan_shards(const char *out, const char *prefix, const char *ext);

/* Opens the shard at path as kind (LVD_REC_KIND_*; validating its container); on failure prints the error
 * and "hint: delete PATH to recompute it" and returns 1. */
int lvd_run_open_shard(const char *path, const char *kind, struct lvd_rec_reader **r);

/* Rewrites the JSONL file at path (atomically) keeping the lines whose integer `key` is
 * below limit; keep(ctx, line) is called for each kept line when given. A missing file
 * is fine. *kept = lines kept. Returns 0, or 1 after printing. */
int lvd_run_trim_jsonl(const char *path, const char *key, uint64_t limit, void (*keep)(void *ctx, const json_t *line),
		       void *ctx, uint64_t *kept);

/* The errors file at path (out/errors.jsonl or its split's) trimmed to the lines with
 * "index" below limit, then opened for appending into *ef. Returns 0, or 1 after printing. */
int lvd_run_errors_open(const char *path, uint64_t limit, uint64_t *kept, FILE **ef);

/* Compact JSON with sorted keys (any value); malloc'd, NULL when out of memory. */
char *lvd_run_dump(const json_t *j);

/* Writes j as one line of f (the file at path, for messages) and flushes. LVD_ERR_IO
 * "cannot write 'PATH': ..." when the write or flush fails (a full disk), LVD_ERR_NOMEM
 * when j cannot be dumped. */
int lvd_run_jsonl_append(FILE *f, const char *path, const json_t *j, struct lvd_error *err);

/* The SHA-256 (hex) of dir/STEM.EXT, or the array of those of its split files
 * STEM-IIIII-of-NNNNN.EXT in split order (lvd_split_list; a pack's pack.json and
 * shards.jsonl for lvd-sft and lvd-eval provenance); NULL with err set when they are
 * missing, incomplete or unreadable. New reference. */
json_t *lvd_run_files_sha(const char *dir, const char *stem, const char *ext, struct lvd_error *err);

/* argv as a JSON array of strings (new reference). */
json_t *lvd_run_argv_json(int argc, char **argv);

/* A shard's header JSON: {"tool", "version", "params", "inputs", "shard", first_key:
 * first} with params and inputs parsed back from their dumps; malloc'd, NULL when out of
 * memory. */
char *lvd_run_shard_header(const char *tool, const char *params_dump, const char *inputs_dump, uint64_t shard,
			   const char *first_key, uint64_t first);

/* Resume check: compares the "params" and "inputs" objects recorded in the provenance file
 * at path (run.json, pack.json) with this run's, key by key. Returns 0 when they match;
 * otherwise prints "PATH: params differ from this run: KEY was OLD, now NEW" (or the
 * whole objects when a key was dropped) with a hint and returns 2; 1 when the file cannot
 * be read or lacks the objects. */
int lvd_run_check_provenance(const char *path, const json_t *params, const json_t *inputs);

/* Creates the output folder out/, locks it for this process (lvd_dir_lock: out/.lock
 * names the pid and host; a second run on the same folder fails saying who holds it)
 * and its provenance file out/run.json: when run.json
 * exists, checks it with lvd_run_check_provenance (returns its status: 2 on changed
 * options, 1 when unreadable); otherwise writes `run` (the whole provenance object,
 * stolen; NULL counts as out of memory) atomically. Returns 0 when the run may go on;
 * failures are logged. */
int lvd_run_open_out(const char *out, json_t *run, const json_t *params, const json_t *inputs);

/* lvd_run_open_out for split i of n: the lock and provenance file of the split
 * (lvd_run_lock; out/run-IIIII-of-NNNNN.json when n > 1). */
int lvd_run_open_split(const char *out, uint32_t shard_i, uint32_t shard_n, json_t *run, const json_t *params,
		       const json_t *inputs);

/* threads, or the number of online cores when threads == 0. */
int lvd_run_threads(int threads);

/* The run's progress line on stderr (none below the info log level); total 0 = unknown. */
struct lvd_progress *lvd_run_progress(const char *tool, const char *unit, uint64_t total);

/* The exit status at the end of a run: 0, or 1 (printed, naming out/errors.jsonl or the
 * split's errors file) when samples were skipped and keep_going is off. */
int lvd_run_exit_status(uint64_t skipped, int keep_going, const char *out, uint32_t shard_i, uint32_t shard_n);

/* ---- the driver ----------------------------------------------------------------------- */

#define LVD_SHARDRUN_EOF 1    /* next(): no more samples */
#define LVD_SHARDRUN_FATAL 2  /* next(): stop the run (the tool has printed why) */

/* The driver's part of a tool's work item; the tool's item type starts with it. */
struct lvd_shardrun_item {
	uint64_t index;            /* manifest index */
	const char *id, *image;    /* for the record id and errors.jsonl; borrowed from the tool's item */
	uint8_t *payload;          /* the record (malloc'd; freed by the driver), or NULL for none */
	size_t len;
	int failed;                /* skipped: listed in errors.jsonl with reason (and kind) */
	int transient;             /* failed by a transient error (lvd_error.transient): the run
				    * stops at this item instead (exit 1), so that a rerun
				    * computes it rather than keeping a skip */
	const char *kind;          /* errors.jsonl "kind" (NULL: the line has none) */
	char reason[LVD_ERROR_MSG_MAX];
};

/* Marks it failed with err's message and kind (and err's transient flag). */
void lvd_shardrun_fail(struct lvd_shardrun_item *it, const char *kind, const struct lvd_error *err);

struct lvd_shardrun_cfg {
	const char *tool;              /* "lvd-pack": shard headers, progress */
	const char *out, *prefix, *ext, *kind;   /* shards out/<prefix>NNNNN<ext> of container kind */
	const char *first_key;         /* shard header key holding the first manifest index */
	const char *params_dump, *inputs_dump;   /* for the shard headers (lvd_run_shard_header) */
	int zlevel;
	uint32_t shard_i, shard_n;     /* --shard i/N */
	uint64_t max_samples;          /* shard size in samples covered (0: no limit) */
	uint64_t max_bytes;            /* shard size in compressed record bytes (0: no limit) */
	int threads, batch;
	size_t item_size;              /* sizeof the tool's item (starts with struct lvd_shardrun_item) */
	const char *unit;              /* progress unit ("images") */
	const char *duplicate_kind;    /* errors.jsonl kind of a duplicate id within a shard (may be NULL) */
	void *ctx;                     /* passed to every callback */
	/* Fills *it (zeroed by the driver) with the next manifest sample: 0 (it->index set;
	 * it->failed may be set already, e.g. an unparsable line), LVD_SHARDRUN_EOF or
	 * LVD_SHARDRUN_FATAL. */
	int (*next)(void *ctx, struct lvd_shardrun_item *it);
	/* Serial preparation of a sample kept for this run (e.g. tokenizing with a shared
	 * tokenizer); may mark it failed. May be NULL. */
	void (*prepare)(void *ctx, struct lvd_shardrun_item *it);
	/* Computes it->payload or marks it failed; runs on pool thread tid. */
	void (*work)(void *ctx, struct lvd_shardrun_item *it, int tid);
	/* Called once per round after work ran on all of its items, on the driver's thread:
	 * items [n] of item_size bytes each, in manifest order (failed ones included, marked).
	 * For work that spans samples (sd-attnmap on a GPU: many images per UNet pass); it
	 * fills payloads or marks items failed. May be NULL. */
	void (*round)(void *ctx, void *items, size_t n);
	/* Called once per sample of this run in manifest order, after its record was written
	 * (or it failed): the tool's accounting. May be NULL. */
	void (*account)(void *ctx, const struct lvd_shardrun_item *it);
	/* Frees what the tool's item owns (not payload). Called for every filled item. May be NULL. */
	void (*release)(void *ctx, struct lvd_shardrun_item *it);
	/* The tool's statistics of the shard being closed, as fields added to its
	 * shards.jsonl line (new reference or NULL); then the tool starts a new shard's. */
	json_t *(*shard_stats)(void *ctx);
	/* On resume, each kept shards.jsonl line (the tool sums its statistics). May be NULL. */
	void (*keep_shard)(void *ctx, const json_t *line);
	/* Samples in the manifest (for the progress total), or NULL when unknown. */
	uint64_t (*count)(void *ctx);
};

struct lvd_shardrun_result {
	uint64_t resumed_shards;   /* complete shards found */
	uint64_t resume_at;        /* manifest index this run started at */
	uint64_t done;             /* samples processed by this run */
	uint64_t records;          /* records written by this run */
	uint64_t skipped;          /* failed samples: errors.jsonl lines kept from before + this run's */
	uint64_t shards;           /* complete shards at the end */
	double t_read, t_write, wall;   /* seconds: reading samples, writing records, the whole loop */
};

/* Runs the loop described above, holding the lock on out/ (lvd_dir_lock). On resume every
 * kept shard is opened and validated (footer, header and index CRCs). Returns 0, or 1
 * after printing (I/O errors, including failed writes of errors.jsonl and shards.jsonl,
 * a corrupt kept shard, out/ locked by another run, a FATAL from next). */
int lvd_shardrun(const struct lvd_shardrun_cfg *cfg, struct lvd_shardrun_result *res);

#ifdef __cplusplus
}
#endif
#endif
