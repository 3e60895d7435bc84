/* lib/eval/score.c — per-item scoring and per-dataset aggregation (score.h). */
#include "eval/score.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eval/pystr.h"

void lvd_eval_score_opts_default(struct lvd_eval_score_opts *o)
{
	o->infer_flags = LVD_EVAL_ANSWER_IS;
	o->circular = -1;
	o->vqa_official = 0;
	o->anls_threshold = 0.5;
}

static int nomem(struct lvd_error *err)
{
	return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
}

int lvd_eval_score_item(const struct lvd_eval_item *it, const char *output, const struct lvd_eval_score_opts *o,
			struct lvd_eval_result *r, struct lvd_error *err)
{
	memset(r, 0, sizeof *r);
	r->value = -1;
	switch (it->kind) {
	case LVD_EVAL_KIND_MCQ: {
		int L = lvd_eval_can_infer(output, &it->choices, o->infer_flags);
		if (L < 0)
			return nomem(err);
		char s[2] = {(char)L, 0};
		r->parsed = strdup(L ? s : "unmatched");
		if (it->answer)
			r->value = L == it->answer[0];
		break;
	}
	case LVD_EVAL_KIND_YESNO: {
		enum lvd_eval_yn y = lvd_eval_yorn(output);
		r->parsed = strdup(y == LVD_EVAL_YES ? "yes" : y == LVD_EVAL_NO ? "no" : "unmatched");
		r->llava_yes = lvd_eval_yorn_llava(output) == LVD_EVAL_YES;
		if (it->answer && r->parsed)
			r->value = !strcmp(r->parsed, it->answer);
		break;
	}
	case LVD_EVAL_KIND_VQA:
		r->parsed = lvd_eval_vqa_normalize(output);
		if (r->parsed && it->n_answers &&
		    lvd_eval_vqa_accuracy(output, it->answers, it->n_answers, o->vqa_official, &r->value))
			return nomem(err);
		break;
	case LVD_EVAL_KIND_ANLS: {
		size_t a, e;
		lvd_py_strip(output, strlen(output), &a, &e);
		r->parsed = strndup(output + a, e - a);
		if (it->n_answers) {
			r->value = lvd_eval_anls(output, it->answers, it->n_answers, o->anls_threshold);
			if (r->value < 0)
				return nomem(err);
		}
		break;
	}
	default:
		return lvd_error_set(err, LVD_ERR_INVALID, "unknown kind");
	}
	return r->parsed ? 0 : nomem(err);
}

/* ---- aggregation ------------------------------------------------------------------------ */

static int circular_name(const char *d)
{
	static const char *const keys[] = {"mmbench", "ccbench", "circular", "mmcr"};
	for (size_t k = 0; k < 4; k++) {
		size_t n = strlen(keys[k]);
		for (const char *p = d; *p; p++)
			if (!strncasecmp(p, keys[k], n))
				return 1;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* sorted distinct non-NULL names; caller frees the array (strings borrowed) */
static const char **distinct(const char **names, size_t n, size_t *m)
{
	const char **v = malloc((n + 1) * sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (names[i])
			v[k++] = names[i];
	qsort(v, k, sizeof *v, cmp_str);
	size_t u = 0;
	for (size_t i = 0; i < k; i++)
		if (!u || strcmp(v[u - 1], v[i]))
			v[u++] = v[i];
	*m = u;
	return v;
}

static double pct(double num, double den)
{
	return den > 0 ? 100.0 * num / den : 0.0;
}

/* report_acc (multiple_choice.py) prints MMBench's L2 abilities by abbreviation */
static const char *mmb_abbr(const char *name)
{
	static const char *const map[][2] = {
		{"coarse_perception", "CP"}, {"finegrained_perception (instance-level)", "FP-S"},
		{"finegrained_perception (cross-instance)", "FP-C"}, {"logic_reasoning", "LR"},
		{"relation_reasoning", "RR"}, {"attribute_reasoning", "AR"}};
	for (size_t i = 0; i < sizeof map / sizeof *map; i++)
		if (!strcmp(name, map[i][0]))
			return map[i][1];
	return name;
}

/* mean of vals[i] over rows whose name equals cat (all rows when cat is NULL), x100 */
static json_t *by_category(const char **names, const double *vals, size_t n, int abbr)
{
	json_t *o = json_object();
	size_t m;
	const char **cats = distinct(names, n, &m);
	for (size_t c = 0; cats && c < m; c++) {
		double s = 0;
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (names[i] && !strcmp(names[i], cats[c])) {
				s += vals[i];
				k++;
			}
		json_object_set_new(o, abbr ? mmb_abbr(cats[c]) : cats[c],
				    json_pack("{s:f, s:I}", "overall", pct(s, (double)k), "n", (json_int_t)k));
	}
	free(cats);
	return o;
}

struct row {
	const struct lvd_eval_item *it;
	const struct lvd_eval_result *r;
};

static int cmp_g(const void *a, const void *b)
{
	int64_t x = (*(const struct row *)a).it->index % 1000000, y = (*(const struct row *)b).it->index % 1000000;
	return x < y ? -1 : x > y;
}

static json_t *score_mcq(const char *name, struct row *rows, size_t n, const struct lvd_eval_score_opts *o)
{
	int circ = o->circular < 0 ? circular_name(name) : o->circular;
	size_t unmatched = 0, refused = 0, orphans = 0, main_n = 0;
	double van_all = 0, van_0 = 0;
	const char **cat = calloc(n + 1, sizeof *cat), **l2 = calloc(n + 1, sizeof *l2);
	double *hit = calloc(n + 1, sizeof *hit);
	struct row *sorted = malloc((n + 1) * sizeof *sorted);
	if (!cat || !l2 || !hit || !sorted) {
		free(cat), free(l2), free(hit), free(sorted);
		return NULL;
	}
	size_t ns = 0;
	for (size_t i = 0; i < n; i++) {
		unmatched += !strcmp(rows[i].r->parsed, "unmatched");
		refused += !strcmp(rows[i].r->parsed, "Z");
		van_all += rows[i].r->value;
		if (circ && rows[i].it->has_index)
			sorted[ns++] = rows[i];
	}
	qsort(sorted, ns, sizeof *sorted, cmp_g);
	for (size_t i = 0; i < n; i++) {
		const struct lvd_eval_item *it = rows[i].it;
		int is_main = !circ || !it->has_index || it->index < 1000000;
		if (!is_main)
			continue;
		double h = rows[i].r->value;
		van_0 += h;
		if (circ && it->has_index) {
			/* every row with the same g_index = index % 1e6 must be right */
			size_t lo = 0, hi = ns;
			while (lo < hi) {
				size_t mid = (lo + hi) / 2;
				if (sorted[mid].it->index % 1000000 < it->index)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (size_t k = lo; k < ns && sorted[k].it->index % 1000000 == it->index; k++)
				if (sorted[k].r->value != 1)
					h = 0;
		}
		cat[main_n] = it->category;
		l2[main_n] = it->l2_category;
		hit[main_n++] = h;
	}
	if (circ) /* rotations whose main row is absent are dropped, as VLMEvalKit does */
		for (size_t k = 0; k < ns; k++) {
			int64_t g = sorted[k].it->index % 1000000;
			if (sorted[k].it->index == g)
				continue;
			int found = 0;
			for (size_t j = 0; j < ns && !found; j++)
				found = sorted[j].it->index == g;
			orphans += !found;
		}
	double sum = 0;
	for (size_t i = 0; i < main_n; i++)
		sum += hit[i];
	json_t *b = json_pack("{s:s, s:b, s:f}", "kind", "mcq", "circular", circ, "overall", pct(sum, (double)main_n));
	json_object_set_new(b, "metrics",
			    json_pack("{s:f, s:f, s:f}", "accuracy", pct(sum, (double)main_n), "vanilla_0",
				      pct(van_0, (double)main_n), "vanilla_all", pct(van_all, (double)n)));
	json_object_set_new(b, "counts",
			    json_pack("{s:I, s:I, s:I, s:I, s:I}", "rows", (json_int_t)n, "questions", (json_int_t)main_n,
				      "unmatched", (json_int_t)unmatched, "refused_z", (json_int_t)refused,
				      "orphan_rotations", (json_int_t)orphans));
	json_object_set_new(b, "categories", by_category(cat, hit, main_n, 1));
	json_object_set_new(b, "l2_categories", by_category(l2, hit, main_n, 1));
	free(cat), free(l2), free(hit), free(sorted);
	return b;
}

/* POPE_rating's numbers for rows whose (exploded) category is cat, or all when NULL. */
struct yn_rows {
	const struct row *r;
	const char **cat; /* one per exploded row */
	size_t n;
};

static json_t *yn_metrics(const struct yn_rows *y, const char *cat)
{
	size_t N = 0, tp = 0, fp = 0, fn = 0, hits = 0, unknown = 0;
	size_t ltp = 0, lfp = 0, lfn = 0, ltn = 0, lyes = 0;
	for (size_t i = 0; i < y->n; i++) {
		if (cat && (!y->cat[i] || strcmp(y->cat[i], cat)))
			continue;
		const struct row *r = &y->r[i];
		int t = !strcmp(r->it->answer, "yes"), p = !strcmp(r->r->parsed, "yes");
		N++;
		hits += r->r->value == 1;
		unknown += !strcmp(r->r->parsed, "unmatched");
		tp += t && p, fp += !t && p, fn += t && !p;
		int lp = r->r->llava_yes;
		lyes += lp;
		ltp += t && lp, lfp += !t && lp, lfn += t && !lp, ltn += !t && !lp;
	}
	double pr = tp + fp ? (double)tp / (double)(tp + fp) : 0, rc = tp + fn ? (double)tp / (double)(tp + fn) : 0;
	double f1 = pr + rc > 0 ? 2 * pr * rc / (pr + rc) : 0;
	double lpr = ltp + lfp ? (double)ltp / (double)(ltp + lfp) : 0, lrc = ltp + lfn ? (double)ltp / (double)(ltp + lfn) : 0;
	double lf1 = lpr + lrc > 0 ? 2 * lpr * lrc / (lpr + lrc) : 0;
	json_t *l = json_pack("{s:f, s:f, s:f, s:f, s:f}", "f1", 100 * lf1, "accuracy", pct((double)(ltp + ltn), (double)N),
			      "precision", 100 * lpr, "recall", 100 * lrc, "yes_ratio", pct((double)lyes, (double)N));
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:o}", "overall", 100 * f1, "f1", 100 * f1, "accuracy",
			 pct((double)hits, (double)N), "precision", 100 * pr, "recall", 100 * rc, "n", (json_int_t)N,
			 "unmatched", (json_int_t)unknown, "llava", l);
}

static json_t *score_yesno(struct row *rows, size_t n)
{
	/* POPE_rating: category.str.split(',') then explode; Overall over exploded rows */
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		m++;
		for (const char *c = rows[i].it->category; c && *c; c++)
			m += *c == ',';
	}
	struct row *er = malloc((m + 1) * sizeof *er);
	const char **ec = malloc((m + 1) * sizeof *ec);
	char **owned = calloc(n + 1, sizeof *owned);
	json_t *b = NULL;
	if (!er || !ec || !owned)
		goto out;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *c = rows[i].it->category;
		if (!c) {
			er[k] = rows[i];
			ec[k++] = NULL;
			continue;
		}
		if (!(owned[i] = strdup(c)))
			goto out;
		char *s = owned[i];
		for (;;) {
			char *e = strchr(s, ',');
			if (e)
				*e = 0;
			er[k] = rows[i];
			ec[k++] = s;
			if (!e)
				break;
			s = e + 1;
		}
	}
	size_t unmatched = 0;
	for (size_t i = 0; i < n; i++)
		unmatched += !strcmp(rows[i].r->parsed, "unmatched");
	struct yn_rows y = {er, ec, k};
	json_t *all = yn_metrics(&y, NULL);
	b = json_pack("{s:s, s:O}", "kind", "yesno", "overall", json_object_get(all, "overall"));
	json_object_set_new(b, "counts", json_pack("{s:I, s:I, s:I}", "rows", (json_int_t)n, "exploded_rows",
						   (json_int_t)k, "unmatched", (json_int_t)unmatched));
	json_object_set_new(b, "metrics", all);
	size_t nc;
	const char **cats = distinct(ec, k, &nc);
	json_t *co = json_object();
	for (size_t c = 0; cats && c < nc; c++)
		json_object_set_new(co, cats[c], yn_metrics(&y, cats[c]));
	json_object_set_new(b, "categories", co);
	free(cats);
out:
	for (size_t i = 0; owned && i < n; i++)
		free(owned[i]);
	free(owned);
	free(er);
	free(ec);
	return b;
}

static json_t *score_mean(enum lvd_eval_kind kind, struct row *rows, size_t n)
{
	const char **cat = calloc(n + 1, sizeof *cat);
	double *v = calloc(n + 1, sizeof *v);
	if (!cat || !v) {
		free(cat), free(v);
		return NULL;
	}
	double s = 0;
	for (size_t i = 0; i < n; i++) {
		cat[i] = rows[i].it->category;
		v[i] = rows[i].r->value;
		s += v[i];
	}
	const char *metric = kind == LVD_EVAL_KIND_ANLS ? "anls" : "accuracy";
	json_t *b = json_pack("{s:s, s:f, s:{s:f}, s:{s:I}}", "kind", lvd_eval_kind_name(kind), "overall",
			      pct(s, (double)n), "metrics", metric, pct(s, (double)n), "counts", "rows", (json_int_t)n);
	json_object_set_new(b, "categories", by_category(cat, v, n, 0));
	free(cat), free(v);
	return b;
}

int lvd_eval_score(const struct lvd_eval_item *items, const struct lvd_eval_result *res, size_t n,
		   const struct lvd_eval_score_opts *o, json_t **out, struct lvd_error *err)
{
	/* datasets in order of first appearance, with the kinds each holds */
	const char **names = calloc(n + 1, sizeof *names);
	unsigned *kinds = calloc(n + 1, sizeof *kinds);
	struct row *rows = malloc((n + 1) * sizeof *rows);
	json_t *all = json_object();
	int rc = 0;
	if (!names || !kinds || !rows || !all) {
		rc = nomem(err);
		goto out;
	}
	size_t nd = 0;
	for (size_t i = 0; i < n; i++) {
		size_t d = 0;
		while (d < nd && strcmp(names[d], items[i].dataset))
			d++;
		if (d == nd)
			names[nd++] = items[i].dataset;
		kinds[d] |= 1u << items[i].kind;
	}
	for (size_t d = 0; d < nd && !rc; d++) {
		int mixed = (kinds[d] & (kinds[d] - 1)) != 0;
		for (int k = 0; k < LVD_EVAL_KIND__COUNT && !rc; k++) {
			if (!(kinds[d] & (1u << k)))
				continue;
			size_t m = 0, no_answer = 0;
			for (size_t i = 0; i < n; i++) {
				if (strcmp(items[i].dataset, names[d]) || (int)items[i].kind != k)
					continue;
				if (res[i].value < 0) {
					no_answer++;
					continue;
				}
				rows[m].it = &items[i];
				rows[m++].r = &res[i];
			}
			json_t *b = k == LVD_EVAL_KIND_MCQ   ? score_mcq(names[d], rows, m, o) :
				    k == LVD_EVAL_KIND_YESNO ? score_yesno(rows, m) :
							       score_mean((enum lvd_eval_kind)k, rows, m);
			if (!b) {
				rc = nomem(err);
				break;
			}
			json_object_set_new(json_object_get(b, "counts"), "no_answer", json_integer((json_int_t)no_answer));
			char key[1024];
			snprintf(key, sizeof key, mixed ? "%s:%s" : "%s", names[d], lvd_eval_kind_name((enum lvd_eval_kind)k));
			json_object_set_new(all, key, b);
		}
	}
out:
	free(names);
	free(kinds);
	free(rows);
	if (rc) {
		json_decref(all);
		all = NULL;
	}
	*out = all;
	return rc;
}
