/* tools/lvd-eval/scorefile.h — the one scoring path of lvd-eval (score.c): `score`
 * and `run` both build scores.json through lvd_evalt_score_file, plus the JSONL/JSON
 * file helpers they share. */
#ifndef LVD_EVAL_TOOL_SCOREFILE_H
#define LVD_EVAL_TOOL_SCOREFILE_H

#include <jansson.h>

#include "core/error.h"
#include "eval/score.h"

/* Reads a JSONL file: *objs = array of the objects, *lines = their 1-based line numbers
 * (blank lines skipped). Errors name file:line (not an object, bad JSON). */
int lvd_evalt_read_jsonl(const char *path, json_t **objs, json_t **lines, struct lvd_error *err);
/* {"path", "sha256"} of a file; NULL with err set. */
json_t *lvd_evalt_file_hash(const char *path, struct lvd_error *err);
/* j as indented JSON + "\n" to path (atomically) or to stdout when path is NULL. */
int lvd_evalt_write_json(const char *path, json_t *j, struct lvd_error *err);
/* Scores a predictions JSONL (with an optional bench JSONL giving the records by id) as
 * `lvd-eval score` does; *scores = the scores.json object (new reference). rescored:
 * also write the predictions with fresh "parsed"/"correct" (NULL: not). */
int lvd_evalt_score_file(const char *pred, const char *bench, const struct lvd_eval_score_opts *o,
			 const char *rescored, json_t **scores, struct lvd_error *err);

#endif
