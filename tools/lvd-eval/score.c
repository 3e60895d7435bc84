/* lvd-eval score — rescore a predictions JSONL as VLMEvalKit scores it (docs/eval.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "scorefile.h"
#include "common/cli.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/sha256.h"
#include "eval/score.h"
#include "io/fileutil.h"
#include "text/strmap.h"

static const char USAGE[] =
	"lvd-eval score PRED.jsonl [--bench BENCH.jsonl] [--out scores.json] [--rescored FILE]\n"
	"                      [--circular auto|on|off] [--no-answer-is] [--vqa-official]\n"
	"                      [--anls-threshold X]";
static const char DESC[] =
	"Each PRED.jsonl line is a benchmark record (docs/eval.md) plus \"output\", the model's\n"
	"raw text; with --bench the record is taken from BENCH.jsonl by \"id\" and the line\n"
	"needs only \"id\" and \"output\". Stored \"parsed\"/\"correct\" fields are ignored:\n"
	"every answer is extracted and scored again by VLMEvalKit's rules with exact matching\n"
	"(no LLM judge; what the rules cannot read counts as \"unmatched\" and wrong):\n"
	"  mcq    can_infer; circular datasets (name holds mmbench, ccbench, circular or mmcr)\n"
	"         count a question only when every rotation (index % 1000000) is right\n"
	"  yesno  YOrN_Extraction; F1 (headline), accuracy, precision, recall; LLaVA's\n"
	"         eval_pope numbers and yes-ratio under \"llava\"\n"
	"  vqa    VQA accuracy: mean over the 10 answers of min(1, matches among the others/3)\n"
	"  anls   ANLS, threshold 0.5\n"
	"Writes scores.json (per dataset: overall, metrics, counts, categories; provenance:\n"
	"version, options, input sha256) to --out, or to stdout without it.\n"
	"Exit status: 0 scored, 1 bad input (the message names file, line and field), 2 usage.";

enum { O_BENCH, O_OUT, O_RESCORED, O_CIRC, O_NOANS, O_OFFICIAL, O_ANLS };
static const struct lvd_cli_opt OPTS[] = {
	[O_BENCH] = {"bench", 'b', "FILE", "benchmark JSONL giving each id's question, choices and answers"},
	[O_OUT] = {"out", 'o', "FILE", "write scores.json here (atomically) instead of stdout"},
	[O_RESCORED] = {"rescored", 0, "FILE", "also write the predictions with \"parsed\" and \"correct\" recomputed"},
	[O_CIRC] = {"circular", 0, "MODE", "auto (VLMEvalKit's dataset-name rule, default), on or off"},
	[O_NOANS] = {"no-answer-is", 0, NULL, "drop can_infer's \"answer is X\" fallback (VLMEvalKit before PR #1552, 2026-06)"},
	[O_OFFICIAL] = {"vqa-official", 0, NULL, "VQA accuracy as GT-Vision-Lab/VQA vqaEval.py normalises (see docs/eval.md)"},
	[O_ANLS] = {"anls-threshold", 0, "X", "ANLS threshold in [0, 1] (default 0.5)"},
	{0},
};

struct args {
	const char *bench, *out, *rescored;
	struct lvd_eval_score_opts o;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct args *a = ctx;
	if (key == 'b')
		key = LVD_CLI_KEY(O_BENCH);
	if (key == 'o')
		key = LVD_CLI_KEY(O_OUT);
	switch (key - 256) {
	case O_BENCH: a->bench = arg; return 0;
	case O_OUT: a->out = arg; return 0;
	case O_RESCORED: a->rescored = arg; return 0;
	case O_CIRC:
		if (!strcmp(arg, "auto"))
			a->o.circular = -1;
		else if (!strcmp(arg, "on"))
			a->o.circular = 1;
		else if (!strcmp(arg, "off"))
			a->o.circular = 0;
		else
			return lvd_cli_usage_error("--circular: expected auto, on or off, got '%s'", arg);
		return 0;
	case O_NOANS: a->o.infer_flags &= ~LVD_EVAL_ANSWER_IS; return 0;
	case O_OFFICIAL: a->o.vqa_official = 1; return 0;
	case O_ANLS: {
		struct lvd_error e = {0};
		if (lvd_parse_double(arg, 0.0, 1.0, &a->o.anls_threshold, "--anls-threshold", &e))
			return lvd_cli_usage_error("%s", e.msg);
		return 0;
	}
	}
	return lvd_cli_usage_error("unhandled option");
}

int lvd_evalt_read_jsonl(const char *path, json_t **out, json_t **lines, struct lvd_error *err)
{
	struct lvd_lines *lr;
	int rc = lvd_lines_open(&lr, path, (size_t)64 << 20, err);
	if (rc)
		return rc;
	json_t *arr = json_array(), *lns = json_array();
	const char *line;
	size_t len;
	uint64_t ln;
	while ((rc = lvd_lines_next(lr, &line, &len, &ln, err)) == LVD_OK) {
		size_t a = 0;
		while (a < len && (line[a] == ' ' || line[a] == '\t' || line[a] == '\r'))
			a++;
		if (a == len)
			continue;
		json_error_t je;
		json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(o)) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%llu: %s", path, (unsigned long long)ln,
					   o ? "expected a JSON object" : je.text);
			json_decref(o);
			break;
		}
		json_array_append_new(arr, o);
		json_array_append_new(lns, json_integer((json_int_t)ln));
	}
	if (rc == LVD_LINES_EOF)
		rc = 0;
	else if (!rc)
		rc = LVD_ERR_IO;
	lvd_lines_close(lr);
	if (rc) {
		json_decref(arr);
		json_decref(lns);
		return rc;
	}
	*out = arr;
	*lines = lns;
	return 0;
}

json_t *lvd_evalt_file_hash(const char *path, struct lvd_error *err)
{
	unsigned char d[LVD_SHA256_LEN];
	char hex[LVD_SHA256_HEX_LEN];
	if (lvd_sha256_file(path, d, err))
		return NULL;
	lvd_sha256_hex(d, hex);
	return json_pack("{s:s, s:s}", "path", path, "sha256", hex);
}

int lvd_evalt_write_json(const char *path, json_t *j, struct lvd_error *err)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	if (!s)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	size_t n = strlen(s);
	s[n] = '\n';
	int rc = 0;
	if (path)
		rc = lvd_file_write_atomic(path, s, n + 1, err);
	else if (fwrite(s, 1, n + 1, stdout) != n + 1 || fflush(stdout))
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot write to stdout");
	free(s);
	return rc;
}

int cmd_score(int argc, char **argv)
{
	struct args a = {0};
	lvd_eval_score_opts_default(&a.o);
	int first;
	int rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &a, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc)
		return lvd_cli_usage_error("no predictions file");
	if (first + 1 < argc)
		return lvd_cli_usage_error("one predictions file at a time, got '%s' too", argv[first + 1]);
	struct lvd_error err = {0};
	json_t *scores = NULL;
	if (lvd_evalt_score_file(argv[first], a.bench, &a.o, a.rescored, &scores, &err) ||
	    lvd_evalt_write_json(a.out, scores, &err)) {
		lvd_error_log("%s", err.msg[0] ? err.msg : "failed");
		json_decref(scores);
		return 1;
	}
	const char *k;
	json_t *b;
	json_object_foreach(json_object_get(scores, "benchmarks"), k, b)
		lvd_info("%s (%s): %.2f", k, json_string_value(json_object_get(b, "kind")),
			 json_real_value(json_object_get(b, "overall")));
	json_decref(scores);
	return 0;
}

int lvd_evalt_score_file(const char *pred, const char *bench_path, const struct lvd_eval_score_opts *opts,
			 const char *rescored, json_t **out, struct lvd_error *errp)
{
	struct args a = {0};
	a.o = *opts;
	a.bench = bench_path;
	a.rescored = rescored;
	*out = NULL;
	int status = 1;
	struct lvd_error err = {0};
	json_t *preds = NULL, *plines = NULL, *bench = NULL, *blines = NULL, *scores = NULL, *prov = NULL;
	struct lvd_strmap bmap, seen;
	lvd_strmap_init(&bmap);
	lvd_strmap_init(&seen);
	struct lvd_eval_item *items = NULL;
	struct lvd_eval_result *res = NULL;
	size_t n = 0;
	if (lvd_evalt_read_jsonl(pred, &preds, &plines, &err))
		goto fail;
	if (a.bench) {
		if (lvd_evalt_read_jsonl(a.bench, &bench, &blines, &err))
			goto fail;
		for (size_t i = 0; i < json_array_size(bench); i++) {
			const char *id = json_string_value(json_object_get(json_array_get(bench, i), "id"));
			long long ln = (long long)json_integer_value(json_array_get(blines, i));
			if (!id) {
				lvd_error_set(&err, LVD_ERR_INVALID, "%s:%lld: field 'id' is missing", a.bench, ln);
				goto fail;
			}
			lvd_strmap_put(&bmap, id, strlen(id), (int64_t)i);
		}
	}
	/* `run --kind caption` lines: no rule scores a caption; they are counted and left out */
	size_t n_caption = 0;
	for (size_t i = 0; i < json_array_size(preds);) {
		const char *k = json_string_value(json_object_get(json_array_get(preds, i), "kind"));
		if (!a.bench && k && !strcmp(k, "caption")) {
			json_array_remove(preds, i);
			json_array_remove(plines, i);
			n_caption++;
		} else {
			i++;
		}
	}
	n = json_array_size(preds);
	items = calloc(n + 1, sizeof *items);
	res = calloc(n + 1, sizeof *res);
	if (!items || !res) {
		lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *p = json_array_get(preds, i);
		long long ln = (long long)json_integer_value(json_array_get(plines, i));
		const char *id = json_string_value(json_object_get(p, "id"));
		json_t *out = json_object_get(p, "output");
		if (!id) {
			lvd_error_set(&err, LVD_ERR_INVALID, "%s:%lld: field 'id' is missing", pred, ln);
			goto fail;
		}
		if (!json_is_string(out)) {
			lvd_error_set(&err, LVD_ERR_INVALID, "%s:%lld: field 'output' is missing or not a string (the model's raw text)",
				      pred, ln);
			goto fail;
		}
		int64_t prev;
		if (lvd_strmap_get(&seen, id, strlen(id), &prev)) {
			lvd_error_set(&err, LVD_ERR_INVALID, "%s:%lld: id '%s' repeats line %lld", pred, ln, id,
				      (long long)json_integer_value(json_array_get(plines, (size_t)prev)));
			goto fail;
		}
		lvd_strmap_put(&seen, id, strlen(id), (int64_t)i);
		json_t *rec = p;
		const char *where = pred;
		long long wl = ln;
		if (a.bench) {
			int64_t bi;
			if (!lvd_strmap_get(&bmap, id, strlen(id), &bi)) {
				lvd_error_set(&err, LVD_ERR_NOTFOUND, "%s:%lld: id '%s' is not in %s", pred, ln, id, a.bench);
				goto fail;
			}
			/* the bench record with this line's output (and prompt) on top */
			rec = json_deep_copy(json_array_get(bench, (size_t)bi));
			json_object_set(rec, "output", out);
			json_array_set_new(preds, i, rec);
			where = a.bench;
			wl = (long long)json_integer_value(json_array_get(blines, (size_t)bi));
		}
		if (lvd_eval_item_parse(rec, &items[i], &err)) {
			lvd_error_prefix(&err, "%s:%lld: ", where, wl);
			goto fail;
		}
		if (lvd_eval_score_item(&items[i], json_string_value(json_object_get(rec, "output")), &a.o, &res[i], &err))
			goto fail;
	}
	json_t *benches;
	if (lvd_eval_score(items, res, n, &a.o, &benches, &err))
		goto fail;
	json_t *input = json_pack("{s:o}", "predictions", lvd_evalt_file_hash(pred, &err));
	if (!input)
		goto fail;
	if (a.bench)
		json_object_set_new(input, "bench", lvd_evalt_file_hash(a.bench, &err));
	scores = json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:b, s:b, s:f}, s:s, s:I, s:o}", "tool", "lvd-eval score",
			   "version", LVD_VERSION, "rules", "VLMEvalKit e8e78f0 (2026-08-18), exact matching", "input", input,
			   "options", "circular", a.o.circular < 0 ? "auto" : a.o.circular ? "on" : "off",
			   "answer_is_fallback", (int)(a.o.infer_flags & LVD_EVAL_ANSWER_IS), "vqa_official",
			   a.o.vqa_official, "anls_threshold", a.o.anls_threshold, "judge",
			   "none (exact matching; unmatched answers are wrong)", "items", (json_int_t)n, "benchmarks", benches);
	if (!scores) {
		lvd_error_set(&err, LVD_ERR_NOMEM, "cannot build scores.json");
		goto fail;
	}
	if (n_caption)
		json_object_set_new(scores, "captions_unscored", json_integer((json_int_t)n_caption));
	if (a.rescored) {
		struct lvd_afile af;
		if (lvd_afile_open(&af, a.rescored, &err))
			goto fail;
		for (size_t i = 0; i < n; i++) {
			json_t *p = json_array_get(preds, i);
			json_object_set_new(p, "parsed", json_string(res[i].parsed));
			json_object_set_new(p, "correct",
					    res[i].value < 0 ? json_null() :
					    items[i].kind <= LVD_EVAL_KIND_YESNO ? json_boolean(res[i].value == 1) :
										  json_real(res[i].value));
			char *s = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
			if (!s || lvd_afile_write(&af, s, strlen(s), &err) || lvd_afile_write(&af, "\n", 1, &err)) {
				free(s);
				lvd_afile_abort(&af);
				goto fail;
			}
			free(s);
		}
		if (lvd_afile_commit(&af, &err))
			goto fail;
	}
	*out = scores;
	scores = NULL;
	status = 0;
	goto done;
fail:
	*errp = err;
	if (!errp->code)
		errp->code = LVD_ERR_INVALID;
done:
	(void)prov;
	for (size_t i = 0; res && i < n; i++)
		free(res[i].parsed);
	free(items);
	free(res);
	json_decref(scores);
	json_decref(preds);
	json_decref(plines);
	json_decref(bench);
	json_decref(blines);
	lvd_strmap_free(&bmap);
	lvd_strmap_free(&seen);
	return status ? (errp->code ? errp->code : 1) : 0;
}
