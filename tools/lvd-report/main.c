/* lvd-report — one markdown report and line plots from lvd-sft runs and lvd-eval outputs
 * (make demo; docs/demo.md): per run the steps, training time and first/last CE and
 * L_att (metrics.jsonl), held-out accuracy per question category (lvd-eval run's
 * predictions.jsonl), attention alignment (lvd-eval align's scores.json), and PNG curves
 * of CE and L_att over steps, one colour per run. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "io/fileutil.h"
#include "lvd-report/report.h"

static const char USAGE[] = "lvd-report --out DIR --run NAME=RUN_DIR [--run ...] [--eval NAME=DIR] [--align NAME=DIR] [options]";
static const char DESC[] =
	"Writes DIR/report.md (also printed on stdout unless -q) and DIR/ce.png, DIR/att.png:\n"
	"  runs        per --run (an lvd-sft run folder): lambda, steps, training seconds (the\n"
	"              last metrics line's elapsed), CE and L_att of the first step and the\n"
	"              mean of the last 10% of steps\n"
	"  accuracy    per --eval (an lvd-eval run folder): accuracy per category from\n"
	"              predictions.jsonl (\"correct\": true/false or a score in [0, 1])\n"
	"  alignment   per --align (an lvd-eval align folder): the metrics of scores.json's\n"
	"              model.raw_mean (the VLM's own maps, mean over cross layers) and\n"
	"              model.aligner_maps (after the run's Aligner) when present; with\n"
	"              --align-base a first column \"before training\" (the base model)\n"
	"  curves      ce.png / att.png: CE / L_att per step, one colour per run in --run\n"
	"              order (blue, orange, green, red, ...), light = per step, dark = trailing\n"
	"              mean over --window steps; the axis ranges are written under each picture\n"
	"NAME ties --eval and --align to a --run. A missing eval or align folder is reported\n"
	"as such. Exit status: 0 written, 1 an unreadable run or output, 2 usage.";

enum { O_OUT, O_RUN, O_EVAL, O_ALIGN, O_ALIGN_BASE, O_TITLE, O_NOTE, O_WINDOW };
static const struct lvd_cli_opt OPTS[] = {
	[O_OUT] = {"out", 'o', "DIR", "output folder (created): report.md, ce.png, att.png (required)"},
	[O_RUN] = {"run", 0, "NAME=DIR", "an lvd-sft run folder (metrics.jsonl); repeat, up to 8 (required)"},
	[O_EVAL] = {"eval", 0, "NAME=DIR", "lvd-eval run output of run NAME (predictions.jsonl)"},
	[O_ALIGN] = {"align", 0, "NAME=DIR", "lvd-eval align output of run NAME (scores.json)"},
	[O_ALIGN_BASE] = {"align-base", 0, "DIR", "lvd-eval align output of the untrained model: a first column"},
	[O_TITLE] = {"title", 0, "TEXT", "first heading (default: lvd report)"},
	[O_NOTE] = {"note", 0, "TEXT", "a line under the title (repeat; markdown)"},
	[O_WINDOW] = {"window", 0, "N", "moving-average window of the curves in steps (default 10)"},
	{0},
};

#define MAX_NOTES 32

struct run {
	const char *name, *dir, *eval, *align;
	double *step, *ce, *att;
	size_t n;
	double lambda, elapsed;
};

struct args {
	const char *out, *title, *align_base;
	struct run runs[LVD_REPORT_MAX_SERIES];
	int nruns;
	const char *notes[MAX_NOTES];
	int nnotes;
	int window;
};

static struct run *find_run(struct args *a, const char *arg, size_t namelen)
{
	for (int i = 0; i < a->nruns; i++)
		if (strlen(a->runs[i].name) == namelen && !strncmp(a->runs[i].name, arg, namelen))
			return &a->runs[i];
	return NULL;
}

static int on_opt(int key, const char *arg, void *ctx)
{
	struct args *a = ctx;
	if (key == 'o')
		key = LVD_CLI_KEY(O_OUT);
	const char *eq = arg ? strchr(arg, '=') : NULL;
	switch (key - 256) {
	case O_OUT: a->out = arg; return 0;
	case O_TITLE: a->title = arg; return 0;
	case O_ALIGN_BASE: a->align_base = arg; return 0;
	case O_NOTE:
		if (a->nnotes == MAX_NOTES)
			return lvd_cli_usage_error("--note: at most %d", MAX_NOTES);
		a->notes[a->nnotes++] = arg;
		return 0;
	case O_WINDOW: return lvd_cli_int(arg, 1, 100000, "--window", &a->window);
	case O_RUN:
		if (!eq || eq == arg || !eq[1])
			return lvd_cli_usage_error("--run: expected NAME=DIR, got '%s'", arg);
		if (find_run(a, arg, (size_t)(eq - arg)))
			return lvd_cli_usage_error("--run: name '%.*s' given twice", (int)(eq - arg), arg);
		if (a->nruns == LVD_REPORT_MAX_SERIES)
			return lvd_cli_usage_error("--run: at most %d runs", LVD_REPORT_MAX_SERIES);
		a->runs[a->nruns].name = strndup(arg, (size_t)(eq - arg));
		a->runs[a->nruns++].dir = eq + 1;
		return 0;
	case O_EVAL:
	case O_ALIGN: {
		const char *opt = key - 256 == O_EVAL ? "--eval" : "--align";
		if (!eq || eq == arg || !eq[1])
			return lvd_cli_usage_error("%s: expected NAME=DIR, got '%s'", opt, arg);
		struct run *r = find_run(a, arg, (size_t)(eq - arg));
		if (!r)
			return lvd_cli_usage_error("%s: no --run named '%.*s' before it", opt, (int)(eq - arg), arg);
		if (key - 256 == O_EVAL)
			r->eval = eq + 1;
		else
			r->align = eq + 1;
		return 0;
	}
	}
	return lvd_cli_usage_error("unhandled option");
}

static double num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* metrics.jsonl of one run: step, ce, att per line; lambda of the first line; the last
 * elapsed. */
static int read_metrics(struct run *r, struct lvd_error *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
	struct lvd_lines *lr;
	int rc = lvd_lines_open(&lr, path, 1 << 20, err);
	if (rc)
		return rc;
	size_t cap = 0;
	const char *line;
	size_t len;
	uint64_t no;
	r->lambda = r->elapsed = NAN;
	while ((rc = lvd_lines_next(lr, &line, &len, &no, err)) == LVD_OK) {
		if (len == 0)
			continue;
		json_error_t je;
		json_t *j = json_loadb(line, len, 0, &je);
		if (!j || !json_is_object(j)) {
			json_decref(j);
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: not a JSON object", path, (unsigned long long)no);
			break;
		}
		if (r->n == cap) {
			cap = cap ? 2 * cap : 256;
			double *s = realloc(r->step, cap * sizeof *s), *c = s ? realloc(r->ce, cap * sizeof *c) : NULL;
			if (s)
				r->step = s;
			if (c)
				r->ce = c;
			double *t = c ? realloc(r->att, cap * sizeof *t) : NULL;
			if (!t) {
				json_decref(j);
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
				break;
			}
			r->att = t;
		}
		r->step[r->n] = num(j, "step");
		r->ce[r->n] = num(j, "ce");
		r->att[r->n] = num(j, "att");
		if (!isfinite(r->step[r->n])) {
			json_decref(j);
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: field 'step' is missing", path,
					   (unsigned long long)no);
			break;
		}
		if (r->n == 0)
			r->lambda = num(j, "lambda");
		r->elapsed = num(j, "elapsed");
		r->n++;
		json_decref(j);
	}
	lvd_lines_close(lr);
	if (rc == LVD_LINES_EOF)
		rc = r->n ? 0 : lvd_error_set(err, LVD_ERR_INVALID, "%s: no steps", path);
	return rc;
}

/* mean of the last max(1, n/10) finite values */
static double tail_mean(const double *v, size_t n)
{
	size_t k = n / 10 ? n / 10 : 1, c = 0;
	double s = 0;
	for (size_t i = n - k; i < n; i++)
		if (isfinite(v[i])) {
			s += v[i];
			c++;
		}
	return c ? s / (double)c : NAN;
}

static void fmt_num(char *buf, size_t cap, double v, int prec)
{
	if (isfinite(v))
		snprintf(buf, cap, "%.*f", prec, v);
	else
		snprintf(buf, cap, "–");
}

/* Accuracy per category of predictions.jsonl: cats (a JSON object category -> [n, sum])
 * gets this run's counts at index `col`. */
struct acc {
	char name[64];
	double n[LVD_REPORT_MAX_SERIES], sum[LVD_REPORT_MAX_SERIES];
};
#define MAX_CATS 64

static int read_predictions(const char *dir, int col, struct acc *cats, int *ncat, struct lvd_error *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/predictions.jsonl", dir);
	struct lvd_lines *lr;
	int rc = lvd_lines_open(&lr, path, 1 << 24, err);
	if (rc)
		return rc;
	const char *line;
	size_t len;
	uint64_t no;
	while ((rc = lvd_lines_next(lr, &line, &len, &no, err)) == LVD_OK) {
		if (len == 0)
			continue;
		json_error_t je;
		json_t *j = json_loadb(line, len, 0, &je);
		json_t *c = json_object_get(j, "correct"), *cat = json_object_get(j, "category");
		if (!j || !(json_is_boolean(c) || json_is_number(c))) {
			json_decref(j);
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: field 'correct': expected true/false or a number",
					   path, (unsigned long long)no);
			break;
		}
		double v = json_is_boolean(c) ? (json_is_true(c) ? 1.0 : 0.0) : json_number_value(c);
		const char *names[2] = {json_is_string(cat) ? json_string_value(cat) : "(none)", "all"};
		for (int k = 0; k < 2; k++) {
			int i = 0;
			while (i < *ncat && strcmp(cats[i].name, names[k]))
				i++;
			if (i == *ncat) {
				if (*ncat == MAX_CATS)
					continue;
				memset(&cats[i], 0, sizeof cats[i]);
				snprintf(cats[i].name, sizeof cats[i].name, "%s", names[k]);
				(*ncat)++;
			}
			cats[i].n[col] += 1;
			cats[i].sum[col] += v;
		}
		json_decref(j);
	}
	lvd_lines_close(lr);
	return rc == LVD_LINES_EOF ? 0 : rc;
}

/* printf into the buffer */
static void af(struct lvd_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void af(struct lvd_strbuf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof tmp) {
		char *big = malloc((size_t)n + 1);
		if (!big) {
			b->oom = 1;
			return;
		}
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		lvd_strbuf_add(b, big, (size_t)n);
		free(big);
	} else if (n > 0) {
		lvd_strbuf_add(b, tmp, (size_t)n);
	}
}

/* "| first | run1 | run2 | [extra |]" and its separator line */
static void table_head(struct lvd_strbuf *b, const char *first, const struct args *a, const char *extra)
{
	af(b, "| %s |", first);
	if (extra)
		af(b, " %s |", extra);
	for (int i = 0; i < a->nruns; i++)
		af(b, " %s |", a->runs[i].name);
	af(b, "\n|---|");
	for (int i = 0; i < a->nruns + (extra != NULL); i++)
		af(b, "---|");
	af(b, "\n");
}

static json_t *path_get(json_t *o, const char *a, const char *b)
{
	json_t *x = json_object_get(o, a);
	return b ? json_object_get(x, b) : x;
}

static int write_report(struct args *a, struct lvd_error *err)
{
	struct lvd_strbuf sb = {0};
	char b1[64], b2[64], b3[64], b4[64];
	af(&sb, "# %s\n\n", a->title ? a->title : "lvd report");
	for (int i = 0; i < a->nnotes; i++)
		af(&sb, "%s\n", a->notes[i]);
	if (a->nnotes)
		af(&sb, "\n");
	af(&sb, "## Training\n\n| run | λ | steps | train s | CE first | CE last | L_att first | L_att last |\n"
				"|---|---|---|---|---|---|---|---|\n");
	for (int i = 0; i < a->nruns; i++) {
		struct run *r = &a->runs[i];
		fmt_num(b1, sizeof b1, r->ce[0], 4);
		fmt_num(b2, sizeof b2, tail_mean(r->ce, r->n), 4);
		fmt_num(b3, sizeof b3, r->att[0], 4);
		fmt_num(b4, sizeof b4, tail_mean(r->att, r->n), 4);
		af(&sb, "| %s | %g | %zu | %.1f | %s | %s | %s | %s |\n", r->name, r->lambda, r->n,
				   isfinite(r->elapsed) ? r->elapsed : 0.0, b1, b2, b3, b4);
	}
	af(&sb, "\n\"last\" is the mean over the last 10%% of steps. L_att is measured through each "
				"run's own Aligner (a λ = 0 run never trains its Aligner).\n\n");

	/* accuracy */
	struct acc *cats = calloc(MAX_CATS, sizeof *cats);
	int ncat = 0, rc = cats ? 0 : lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int any = 0;
	af(&sb, "## Held-out accuracy per question type (lvd-eval run)\n\n");
	for (int i = 0; i < a->nruns && !rc; i++) {
		if (!a->runs[i].eval)
			continue;
		rc = read_predictions(a->runs[i].eval, i, cats, &ncat, err);
		any = 1;
	}
	for (int c = 0; c + 1 < ncat; c++)   /* "all" last */
		if (!strcmp(cats[c].name, "all")) {
			struct acc t = cats[c];
			memmove(&cats[c], &cats[c + 1], (size_t)(ncat - c - 1) * sizeof *cats);
			cats[ncat - 1] = t;
			break;
		}
	if (!rc && any) {
		table_head(&sb, "type", a, NULL);
		for (int c = 0; c < ncat; c++) {
			af(&sb, "| %s |", cats[c].name);
			for (int i = 0; i < a->nruns; i++)
				if (cats[c].n[i] > 0)
					af(&sb, " %.1f%% (n=%.0f) |", 100 * cats[c].sum[i] / cats[c].n[i],
							   cats[c].n[i]);
				else
					af(&sb, " – |");
			af(&sb, "\n");
		}
		af(&sb, "\nExact match after VQA normalisation (`lvd-eval score` rules); yes/no "
					"questions count as right only when the answer is read as the gold word.\n\n");
	} else if (!rc) {
		af(&sb, "Not measured (lvd-eval run was not available or was skipped).\n\n");
	}
	free(cats);

	/* alignment */
	af(&sb, "## Attention alignment on the held-out pack (lvd-eval align)\n\n");
	static const char *const keys[] = {"pearson", "iou20", "iou10", "pointing", "kl", "mse"};
	static const char *const blocks[2][2] = {{"model", "raw_mean"}, {"model", "aligner_maps"}};
	static const char *const block_names[2] = {"VLM maps (head mean, mean over cross layers)", "after the Aligner"};
	/* column 0: --align-base (when given), then the runs */
	json_t *sc[LVD_REPORT_MAX_SERIES + 1] = {0};
	int nb = a->align_base != NULL, ncol = a->nruns + nb;
	any = 0;
	for (int i = 0; i < ncol && !rc; i++) {
		const char *dir = nb && i == 0 ? a->align_base : a->runs[i - nb].align;
		if (!dir)
			continue;
		char path[4200];
		snprintf(path, sizeof path, "%s/scores.json", dir);
		json_error_t je;
		sc[i] = json_load_file(path, 0, &je);
		if (!sc[i])
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: %s", path, je.text);
		any = 1;
	}
	for (int bl = 0; bl < 2 && !rc && any; bl++) {
		int present = 0;
		for (int i = 0; i < ncol; i++)
			present |= json_is_object(path_get(sc[i], blocks[bl][0], blocks[bl][1]));
		if (!present)
			continue;
		af(&sb, "%s:\n\n", block_names[bl]);
		table_head(&sb, "metric", a, nb ? "before training" : NULL);
		for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
			af(&sb, "| %s |", keys[k]);
			for (int i = 0; i < ncol; i++) {
				fmt_num(b1, sizeof b1, num(path_get(sc[i], blocks[bl][0], blocks[bl][1]), keys[k]), 4);
				af(&sb, " %s |", b1);
			}
			af(&sb, "\n");
		}
		json_t *words = NULL;
		for (int i = 0; i < ncol && !json_is_integer(words); i++)
			words = path_get(sc[i], "model", "words");
		if (json_is_integer(words))
			af(&sb, "\n%lld matched words.", (long long)json_integer_value(words));
		af(&sb, "\n\n");
	}
	if (!rc && !any)
		af(&sb, "Not measured (lvd-eval align was not available or was skipped).\n\n");
	for (int i = 0; i < ncol; i++)
		json_decref(sc[i]);

	/* curves */
	struct lvd_report_series s[LVD_REPORT_MAX_SERIES];
	static const char *const files[2] = {"ce.png", "att.png"};
	static const char *const what[2] = {"CE (cross-entropy of the answer tokens)", "L_att (attention loss)"};
	for (int p = 0; p < 2 && !rc; p++) {
		for (int i = 0; i < a->nruns; i++)
			s[i] = (struct lvd_report_series){a->runs[i].step, p ? a->runs[i].att : a->runs[i].ce, a->runs[i].n};
		char path[4200];
		snprintf(path, sizeof path, "%s/%s", a->out, files[p]);
		rc = lvd_report_plot(path, s, a->nruns, 640, 320, a->window, err);
		double x0, x1, y0, y1;
		lvd_report_range(s, a->nruns, &x0, &x1, &y0, &y1);
		af(&sb, "## %s per step\n\n![%s](%s)\n\nx: step %g … %g; y: %.4g (bottom) … %.4g (top), "
					"grid lines at quarters.",
				   what[p], files[p], files[p], x0, x1, y0, y1);
		for (int i = 0; i < a->nruns; i++)
			af(&sb, " %s: %s.", lvd_report_color_name(i), a->runs[i].name);
		af(&sb, " Light: per step; dark: mean over the last %d steps.\n\n", a->window);
	}
	char path[4200];
	snprintf(path, sizeof path, "%s/report.md", a->out);
	size_t len = sb.len;
	char *text = lvd_strbuf_done(&sb);
	if (!rc && !text)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	if (!rc)
		rc = lvd_file_write_atomic(path, text, len, err);
	if (!rc && lvd_log_level() >= LVD_LOG_INFO)
		fwrite(text, 1, len, stdout);
	free(text);
	return rc;
}

int main(int argc, char **argv)
{
	lvd_log_set_prog("lvd-report");
	struct args a = {.window = 10};
	int first = 0;
	int rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &a, &first), ret;
	if (rc < 0)
		ret = 0;
	else if (rc)
		ret = rc;
	else if (first < argc)
		ret = lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	else if (!a.out)
		ret = lvd_cli_usage_error("--out DIR is required");
	else if (!a.nruns)
		ret = lvd_cli_usage_error("--run NAME=DIR is required");
	else {
		struct lvd_error err = {0};
		for (int i = 0; i < a.nruns && !rc; i++)
			rc = read_metrics(&a.runs[i], &err);
		if (!rc)
			rc = lvd_mkdir_p(a.out, &err);
		if (!rc)
			rc = write_report(&a, &err);
		if (rc)
			lvd_error_log("%s", err.msg);
		ret = rc ? 1 : 0;
	}
	for (int i = 0; i < a.nruns; i++) {
		free((char *)a.runs[i].name);
		free(a.runs[i].step);
		free(a.runs[i].ce);
		free(a.runs[i].att);
	}
	return ret;
}
