/* lvd-eval convert — benchmark files into the benchmark JSONL form (docs/eval.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common/cli.h"
#include "core/log.h"
#include "core/progress.h"
#include "eval/bench.h"
#include "io/fileutil.h"
#include "text/strmap.h"

static const char USAGE[] =
	"lvd-eval convert --from FORMAT IN [IN...] --out BENCH.jsonl [--name NAME] [--images DIR]\n"
	"                        [--image-ext EXT] [--category NAME] [--kind KIND]";
static const char DESC[] =
	"Writes one JSON object per question (id, dataset, kind, image, question, hint,\n"
	"choices, answer or answers, category, l2_category, index; docs/eval.md) to BENCH.jsonl.\n"
	"FORMAT is one of:\n"
	"  mmbench-tsv     MMBench/CCBench TSV (VLMEvalKit's MMBench_DEV_EN.tsv, ...): multiple\n"
	"                  choice; the base64 images of the `image` column are written to\n"
	"                  images/<dataset>/<index>.<png|jpg|...> beside BENCH.jsonl; a short\n"
	"                  image cell names the row whose image it shares. The dataset name\n"
	"                  (default: the file name) decides circular scoring.\n"
	"  vlmevalkit-tsv  any VLMEvalKit TSV: rows with options are mcq; else --kind, or anls\n"
	"                  when the name holds DocVQA/InfoVQA, yesno when the answer is yes/no,\n"
	"                  vqa otherwise (a Python-list answer becomes the answers list).\n"
	"  pope            POPE question lines {question_id, image, text, label}; the category\n"
	"                  is the file name after coco_pope_ (LLaVA's rule) or --category.\n"
	"  textvqa         TextVQA JSON (TextVQA_0.5.1_val.json): vqa, image <image_id>.jpg.\n"
	"  docvqa          DocVQA JSON (val_v1.0.json): anls, category = first question type.\n"
	"Exit status: 0 written, 1 bad input (the message names file, line and field), 2 usage.";

enum { O_FROM, O_OUT, O_NAME, O_IMAGES, O_EXT, O_CAT, O_KIND };
static const struct lvd_cli_opt OPTS[] = {
	[O_FROM] = {"from", 0, "FORMAT", "mmbench-tsv, vlmevalkit-tsv, pope, textvqa or docvqa (required)"},
	[O_OUT] = {"out", 'o', "FILE", "benchmark JSONL to write (atomically; required)"},
	[O_NAME] = {"name", 0, "NAME", "dataset name (default: TSV file name; POPE, TextVQA, DocVQA)"},
	[O_IMAGES] = {"images", 0, "DIR", "prefix for image names taken from the input (pope, textvqa, docvqa, image_path)"},
	[O_EXT] = {"image-ext", 0, "EXT", "replace image name extensions, e.g. png for PNG copies of COCO JPEGs"},
	[O_CAT] = {"category", 0, "NAME", "pope: category of every line (default: from the file name)"},
	[O_KIND] = {"kind", 0, "KIND", "vlmevalkit-tsv rows without options: mcq, yesno, vqa or anls"},
	{0},
};

struct args {
	struct lvd_eval_convert_opts c;
	const char *out;
	int have_from;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct args *a = ctx;
	if (key == 'o')
		key = LVD_CLI_KEY(O_OUT);
	switch (key - 256) {
	case O_FROM:
		if (lvd_eval_from_parse(arg, &a->c.from))
			return lvd_cli_usage_error("--from: expected mmbench-tsv, vlmevalkit-tsv, pope, textvqa or docvqa, got '%s'", arg);
		a->have_from = 1;
		return 0;
	case O_OUT: a->out = arg; return 0;
	case O_NAME:
		if (!*arg || strchr(arg, '/'))
			return lvd_cli_usage_error("--name: must be non-empty and without '/', got '%s'", arg);
		a->c.name = arg;
		return 0;
	case O_IMAGES: a->c.images = arg; return 0;
	case O_EXT:
		if (!*arg || strchr(arg, '/') || strchr(arg, '.'))
			return lvd_cli_usage_error("--image-ext: expected an extension without dot, got '%s'", arg);
		a->c.image_ext = arg;
		return 0;
	case O_CAT: a->c.category = arg; return 0;
	case O_KIND: {
		enum lvd_eval_kind k;
		if (lvd_eval_kind_parse(arg, &k))
			return lvd_cli_usage_error("--kind: expected mcq, yesno, vqa or anls, got '%s'", arg);
		a->c.kind = (int)k;
		return 0;
	}
	}
	return lvd_cli_usage_error("unhandled option");
}

static char *dir_of(const char *path)
{
	const char *s = strrchr(path, '/');
	if (!s)
		return strdup(".");
	if (s == path)
		return strdup("/");
	return strndup(path, (size_t)(s - path));
}

static char *tsv_name(const char *in)
{
	const char *b = strrchr(in, '/');
	b = b ? b + 1 : in;
	return strndup(b, strcspn(b, "."));
}

int cmd_convert(int argc, char **argv)
{
	struct args a = {0};
	a.c.kind = -1;
	int first;
	int rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &a, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (!a.have_from)
		return lvd_cli_usage_error("--from FORMAT is required");
	if (!a.out)
		return lvd_cli_usage_error("--out FILE is required");
	if (first >= argc)
		return lvd_cli_usage_error("no input file");
	int tsv = a.c.from == LVD_EVAL_FROM_MMBENCH_TSV || a.c.from == LVD_EVAL_FROM_VLMEVALKIT_TSV;
	if (a.c.kind >= 0 && a.c.from != LVD_EVAL_FROM_VLMEVALKIT_TSV)
		return lvd_cli_usage_error("--kind applies to --from vlmevalkit-tsv only");
	if (a.c.category && a.c.from != LVD_EVAL_FROM_POPE)
		return lvd_cli_usage_error("--category applies to --from pope only");

	struct lvd_error err = {0};
	json_t *recs = json_array();
	char *outdir = dir_of(a.out);
	size_t n_images = 0;
	int status = 0;
	struct lvd_progress *prog = NULL;
	if (tsv && lvd_log_level() >= LVD_LOG_INFO)
		prog = lvd_progress_create(stderr, "lvd-eval", 0, &(struct lvd_progress_opts){.unit = "rows", .tty = -1});
	a.c.progress = prog;
	for (int i = first; i < argc && !status; i++) {
		struct lvd_eval_convert_opts o = a.c;
		char *name = NULL, img_dir[4096], img_rel[4096];
		if (tsv) {
			name = a.c.name ? strdup(a.c.name) : tsv_name(argv[i]);
			snprintf(img_rel, sizeof img_rel, "images/%s", name);
			snprintf(img_dir, sizeof img_dir, "%s/%s", outdir, img_rel);
			o.name = name;
			o.img_dir = img_dir;
			o.img_rel = img_rel;
			if (lvd_mkdir_p(img_dir, &err)) {
				lvd_error_log("%s", err.msg);
				status = 1;
			}
		}
		if (!status && lvd_eval_convert(argv[i], &o, recs, &n_images, &err)) {
			lvd_error_log("%s", err.msg);
			status = 1;
		}
		free(name);
	}
	lvd_progress_finish(prog);
	lvd_progress_destroy(prog);
	/* ids must be unique in one benchmark file */
	struct lvd_strmap ids;
	lvd_strmap_init(&ids);
	for (size_t i = 0; i < json_array_size(recs) && !status; i++) {
		const char *id = json_string_value(json_object_get(json_array_get(recs, i), "id"));
		int64_t prev;
		if (lvd_strmap_get(&ids, id, strlen(id), &prev)) {
			lvd_error_log("duplicate id '%s' (records %lld and %zu); convert the inputs separately or give each a --name/--category",
				      id, (long long)prev + 1, i + 1);
			status = 1;
		} else if (lvd_strmap_put(&ids, id, strlen(id), (int64_t)i)) {
			lvd_error_log("out of memory");
			status = 1;
		}
	}
	lvd_strmap_free(&ids);
	if (!status) {
		struct lvd_afile af;
		if (lvd_afile_open(&af, a.out, &err)) {
			lvd_error_log("%s", err.msg);
			status = 1;
		}
		for (size_t i = 0; i < json_array_size(recs) && !status; i++) {
			char *s = json_dumps(json_array_get(recs, i), JSON_COMPACT | JSON_PRESERVE_ORDER);
			if (!s || lvd_afile_write(&af, s, strlen(s), &err) || lvd_afile_write(&af, "\n", 1, &err)) {
				lvd_error_log("%s", s ? err.msg : "out of memory");
				status = 1;
			}
			free(s);
		}
		if (!status && lvd_afile_commit(&af, &err)) {
			lvd_error_log("%s", err.msg);
			status = 1;
		} else if (status) {
			lvd_afile_abort(&af);
		}
	}
	if (!status)
		lvd_info("wrote %zu records and %zu images to %s", json_array_size(recs), n_images, a.out);
	json_decref(recs);
	free(outdir);
	return status;
}
