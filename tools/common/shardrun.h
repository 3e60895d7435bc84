/* tools/common/shardrun.h — the machinery shared by the batch tools that turn a manifest
 * into numbered record shards (sd-attnmap run, lvd-pack run): shard naming and the resume
 * scan, JSONL side files trimmed to the resume point (errors.jsonl, stats.jsonl),
 * provenance helpers (argv, shard headers), the progress line and the final status.
 *
 * Tool-level code: functions print their errors through lvd_error_log (and a "hint:"
 * line where there is something to do) and return 0 or 1, like the tools' main paths. */
#ifndef LVD_TOOLS_COMMON_SHARDRUN_H
#define LVD_TOOLS_COMMON_SHARDRUN_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "core/progress.h"
#include "io/container.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* out/errors.jsonl trimmed to the lines with "index" below limit, then opened for
 * appending into *ef. Returns 0, or 1 after printing. */
int lvd_run_errors_open(const char *out, uint64_t limit, uint64_t *kept, FILE **ef);

/* Compact JSON with sorted keys (any value); malloc'd, NULL when out of memory. */
char *lvd_run_dump(const json_t *j);

/* Writes j as one line of f and flushes (nothing when j cannot be dumped). */
void lvd_run_jsonl_append(FILE *f, const json_t *j);

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

/* threads, or the number of online cores when threads == 0. */
int lvd_run_threads(int threads);

/* The run's progress line on stderr (none below the info log level); total 0 = unknown. */
struct lvd_progress *lvd_run_progress(const char *tool, const char *unit, uint64_t total);

/* The exit status at the end of a run: 0, or 1 (printed, naming out/errors.jsonl) when
 * samples were skipped and keep_going is off. */
int lvd_run_exit_status(uint64_t skipped, int keep_going, const char *out);

#ifdef __cplusplus
}
#endif
#endif
