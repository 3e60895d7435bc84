/* lib/eval/match.c — per-item scoring rules (see match.h; sources cited per function). */
#include "eval/match.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "eval/pystr.h"

/* ---- prompts --------------------------------------------------------------------- */

char *lvd_eval_mcq_prompt(enum lvd_eval_mcq_style style, const char *question, const char *hint,
			  const struct lvd_eval_choices *c)
{
	struct lvd_strbuf b = {0};
	char key[4] = {0, '.', ' ', 0};
	if (style == LVD_EVAL_MCQ_VLMEVALKIT) {
		/* vlmeval/dataset/image_mcq.py ImageMCQDataset.build_prompt */
		if (hint) {
			lvd_strbuf_str(&b, "Hint: ");
			lvd_strbuf_str(&b, hint);
			lvd_strbuf_str(&b, "\n");
		}
		lvd_strbuf_str(&b, "Question: ");
		lvd_strbuf_str(&b, question);
		lvd_strbuf_str(&b, "\n");
		if (c->n) {
			lvd_strbuf_str(&b, "Options:\n");
			for (int i = 0; i < c->n; i++) {
				key[0] = c->letter[i];
				lvd_strbuf_str(&b, key);
				lvd_strbuf_str(&b, c->text[i]);
				lvd_strbuf_str(&b, "\n");
			}
			lvd_strbuf_str(&b, "Please select the correct answer from the options above. \n");
		}
		return lvd_strbuf_done(&b);
	}
	/* vlmeval/vlm/llava/llava.py LLaVA.build_prompt */
	if (hint) {
		lvd_strbuf_str(&b, hint);
		lvd_strbuf_str(&b, "\n");
	}
	lvd_strbuf_str(&b, question);
	for (int i = 0; i < c->n; i++) {
		key[0] = c->letter[i];
		lvd_strbuf_str(&b, "\n");
		lvd_strbuf_str(&b, key);
		lvd_strbuf_str(&b, c->text[i]);
	}
	int cn = !b.oom && lvd_py_has_cjk(b.p, b.len);
	if (c->n)
		lvd_strbuf_str(&b, cn ? "\n请直接回答选项字母。"
			      : "\nAnswer with the option's letter from the given choices directly.");
	else
		lvd_strbuf_str(&b, cn ? "\n请直接回答问题。" : "\nAnswer the question directly.");
	return lvd_strbuf_done(&b);
}

char *lvd_eval_vqa_prompt(const char *question)
{
	struct lvd_strbuf b = {0};
	lvd_strbuf_str(&b, question);
	lvd_strbuf_str(&b, "\nAnswer the question using a single word or phrase.");
	return lvd_strbuf_done(&b);
}

/* ---- can_infer --------------------------------------------------------------------- */

static int has_letter(const struct lvd_eval_choices *c, int ch)
{
	for (int i = 0; i < c->n; i++)
		if (c->letter[i] == ch)
			return 1;
	return 0;
}

/* The regex (?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\** searched in answer: the
 * leftmost "answer" that continues with whitespace, "is", whitespace, asterisks and a
 * letter a-d in either case decides (the optional prefix and trailing stars never
 * change whether or where it matches). Returns the upper-case letter or 0. */
static int answer_is_letter(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i + 6 <= n; i++) {
		if (strncasecmp(s + i, "answer", 6))
			continue;
		size_t j = i + 6, k;
		uint32_t cp;
		for (k = j; k < n; k += lvd_py_next(s, n, k, &cp)) {
			lvd_py_next(s, n, k, &cp);
			if (!lvd_py_isspace(cp))
				break;
		}
		if (k == j || k + 2 > n || strncasecmp(s + k, "is", 2))
			continue;
		j = k + 2;
		for (k = j; k < n; k += lvd_py_next(s, n, k, &cp)) {
			lvd_py_next(s, n, k, &cp);
			if (!lvd_py_isspace(cp))
				break;
		}
		if (k == j)
			continue;
		while (k < n && s[k] == '*')
			k++;
		if (k < n) {
			int ch = s[k] & ~0x20;
			if (ch >= 'A' && ch <= 'D')
				return ch;
		}
	}
	return 0;
}

/* vlmeval/utils/matching_util.py can_infer_option (VERBOSE unset). */
int lvd_eval_can_infer_option(const char *answer, const struct lvd_eval_choices *c, unsigned flags)
{
	if (strstr(answer, "Failed to obtain answer via API"))
		return 0;
	static const char *const reject[] = {
		"Sorry, I can't help with images of people yet.", "I can't process this file.",
		"I'm sorry, but without the image provided", "Cannot determine the answer"};
	for (size_t i = 0; i < sizeof reject / sizeof *reject; i++)
		if (strstr(answer, reject[i]))
			return 'Z';
	/* each of .()[],:;!*#{} becomes a space, then str.split() */
	size_t n = strlen(answer);
	char *mod = malloc(n + 1);
	if (!mod)
		return -1;
	for (size_t i = 0; i <= n; i++)
		mod[i] = (answer[i] && strchr(".()[],:;!*#{}", answer[i])) ? ' ' : answer[i];
	struct lvd_py_words w;
	int rc = lvd_py_split(mod, n, &w);
	free(mod);
	if (rc)
		return -1;
	int count = 0, res = 0;
	char one[2] = {0, 0};
	for (int i = 0; i < c->n; i++) {
		one[0] = c->letter[i];
		count += lvd_py_words_has(&w, one);
	}
	if (count == 1) {
		/* the single letter counts only among the last tokens: index > len - 5 */
		for (int i = 0; i < c->n && !res; i++) {
			one[0] = c->letter[i];
			long at = lvd_py_words_index(&w, one);
			if (at >= 0 && at > (long)w.n - 5)
				res = c->letter[i];
		}
	} else if (count == 0 && lvd_py_words_has(&w, "Z")) {
		res = 'Z';
	}
	lvd_py_words_free(&w);
	if (res)
		return res;
	if (flags & LVD_EVAL_ANSWER_IS) {
		int ch = answer_is_letter(answer);
		if (ch && has_letter(c, ch))
			return ch;
	}
	return 0;
}

/* vlmeval/utils/matching_util.py can_infer_text: lower-cased; False when the answer is
 * longer than twice the total option length (code points); else the one option whose
 * lower-cased text is a substring of the answer. */
int lvd_eval_can_infer_text(const char *answer, const struct lvd_eval_choices *c)
{
	size_t al;
	char *a = lvd_py_lower(answer, strlen(answer), &al);
	if (!a)
		return -1;
	size_t total = 0;
	for (int i = 0; i < c->n; i++)
		total += lvd_py_len(c->text[i], strlen(c->text[i]));
	int res = 0, cands = 0;
	if (lvd_py_len(a, al) <= 2 * total) {
		for (int i = 0; i < c->n; i++) {
			char *t = lvd_py_lower(c->text[i], strlen(c->text[i]), NULL);
			if (!t) {
				free(a);
				return -1;
			}
			if (strstr(a, t)) {
				cands++;
				res = c->letter[i];
			}
			free(t);
		}
	}
	free(a);
	return cands == 1 ? res : 0;
}

int lvd_eval_can_infer(const char *answer, const struct lvd_eval_choices *c, unsigned flags)
{
	int r = lvd_eval_can_infer_option(answer, c, flags);
	return r ? r : lvd_eval_can_infer_text(answer, c);
}

/* ---- VQA normalisation ----------------------------------------------------------- */

/* The punctuation pass of the VQA normalisation. For each mark p: when "p " or " p"
 * occurs in the *input*, or the input matches (\d)(,)(\d) anywhere, every p is deleted,
 * else every p becomes a space. Then periods are removed by periodStrip — at most 32 of
 * them, because re.UNICODE (32) is passed as sub()'s count argument. The two versions:
 *   VLMEvalKit (vlmeval/smp/misc.py process_punctuation): marks ;/[]"{}()=+\_-><@`,?!,
 *     \d is Unicode (Nd), periodStrip (?<!\d)\.(?!\d): periods touching no digit;
 *   GT-Vision-Lab/VQA vqaEval.py (07aecec, Python 2): marks ;:/'[]"()=+\_><@`,?,
 *     \d is ASCII (a str pattern without re.UNICODE), periodStrip (?!<=\d)(\.)(?!\d) —
 *     "(?!<=" is a typo for a lookbehind, so every period not followed by a digit goes. */
static char *punct_pass(const char *in, int official)
{
	const char *marks = official ? ";:/'[]\"()=+\\_><@`,?" : ";/[]\"{}()=+\\_-><@`,?!";
	size_t n = strlen(in);
	int comma_digit = 0;
	uint32_t prev = 0, cp;
#define DIGIT(c) (official ? ((c) >= '0' && (c) <= '9') : lvd_py_isdigit(c))
	for (size_t i = 0; i < n; i += lvd_py_next(in, n, i, &cp)) {
		lvd_py_next(in, n, i, &cp);
		if (cp == ',' && DIGIT(prev) && i + 1 < n) {
			uint32_t nx;
			lvd_py_next(in, n, i + 1, &nx);
			if (DIGIT(nx))
				comma_digit = 1;
		}
		prev = cp;
	}
	/* per punctuation byte: 1 = delete, 2 = replace by a space */
	char action[128] = {0};
	for (const char *p = marks; *p; p++) {
		int del = comma_digit;
		for (size_t i = 0; i < n && !del; i++)
			if (in[i] == *p && ((i + 1 < n && in[i + 1] == ' ') || (i > 0 && in[i - 1] == ' ')))
				del = 1;
		action[(unsigned char)*p] = del ? 1 : 2;
	}
	char *mid = malloc(n + 1);
	if (!mid)
		return NULL;
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch < 128 && action[ch] == 1)
			continue;
		mid[m++] = (ch < 128 && action[ch] == 2) ? ' ' : in[i];
	}
	mid[m] = 0;
	char *out = malloc(m + 1);
	if (!out) {
		free(mid);
		return NULL;
	}
	size_t o = 0;
	int removed = 0;
	prev = 0;
	for (size_t i = 0; i < m;) {
		size_t l = lvd_py_next(mid, m, i, &cp);
		if (cp == '.' && removed < 32 && (official || !DIGIT(prev))) {
			uint32_t nx = 0;
			if (i + 1 < m)
				lvd_py_next(mid, m, i + 1, &nx);
			if (!(i + 1 < m && DIGIT(nx))) {
				removed++;
				prev = cp; /* the lookbehind reads the string before substitution */
				i += l;
				continue;
			}
		}
		memcpy(out + o, mid + i, l);
		o += l;
		prev = cp;
		i += l;
	}
#undef DIGIT
	out[o] = 0;
	free(mid);
	return out;
}

char *lvd_eval_vqa_punct(const char *in)
{
	return punct_pass(in, 0);
}

/* vqaEval.py contractions (VLMEvalKit copies it verbatim). Keys with capitals ('Im',
 * 'Ive', "Id've", "I'dve") can never match: the words are lower-cased first. */
static const char *const CONTRACTIONS[][2] = {
	{"aint", "ain't"}, {"arent", "aren't"}, {"cant", "can't"}, {"couldve", "could've"},
	{"couldnt", "couldn't"}, {"couldn'tve", "couldn't've"}, {"couldnt've", "couldn't've"},
	{"didnt", "didn't"}, {"doesnt", "doesn't"}, {"dont", "don't"}, {"hadnt", "hadn't"},
	{"hadnt've", "hadn't've"}, {"hadn'tve", "hadn't've"}, {"hasnt", "hasn't"},
	{"havent", "haven't"}, {"hed", "he'd"}, {"hed've", "he'd've"}, {"he'dve", "he'd've"},
	{"hes", "he's"}, {"howd", "how'd"}, {"howll", "how'll"}, {"hows", "how's"},
	{"Id've", "I'd've"}, {"I'dve", "I'd've"}, {"Im", "I'm"}, {"Ive", "I've"},
	{"isnt", "isn't"}, {"itd", "it'd"}, {"itd've", "it'd've"}, {"it'dve", "it'd've"},
	{"itll", "it'll"}, {"let's", "let's"}, {"maam", "ma'am"}, {"mightnt", "mightn't"},
	{"mightnt've", "mightn't've"}, {"mightn'tve", "mightn't've"}, {"mightve", "might've"},
	{"mustnt", "mustn't"}, {"mustve", "must've"}, {"neednt", "needn't"}, {"notve", "not've"},
	{"oclock", "o'clock"}, {"oughtnt", "oughtn't"}, {"ow's'at", "'ow's'at"},
	{"'ows'at", "'ow's'at"}, {"'ow'sat", "'ow's'at"}, {"shant", "shan't"},
	{"shed've", "she'd've"}, {"she'dve", "she'd've"}, {"she's", "she's"},
	{"shouldve", "should've"}, {"shouldnt", "shouldn't"}, {"shouldnt've", "shouldn't've"},
	{"shouldn'tve", "shouldn't've"}, {"somebody'd", "somebodyd"},
	{"somebodyd've", "somebody'd've"}, {"somebody'dve", "somebody'd've"},
	{"somebodyll", "somebody'll"}, {"somebodys", "somebody's"}, {"someoned", "someone'd"},
	{"someoned've", "someone'd've"}, {"someone'dve", "someone'd've"},
	{"someonell", "someone'll"}, {"someones", "someone's"}, {"somethingd", "something'd"},
	{"somethingd've", "something'd've"}, {"something'dve", "something'd've"},
	{"somethingll", "something'll"}, {"thats", "that's"}, {"thered", "there'd"},
	{"thered've", "there'd've"}, {"there'dve", "there'd've"}, {"therere", "there're"},
	{"theres", "there's"}, {"theyd", "they'd"}, {"theyd've", "they'd've"},
	{"they'dve", "they'd've"}, {"theyll", "they'll"}, {"theyre", "they're"},
	{"theyve", "they've"}, {"twas", "'twas"}, {"wasnt", "wasn't"}, {"wed've", "we'd've"},
	{"we'dve", "we'd've"}, {"weve", "we've"}, {"werent", "weren't"}, {"whatll", "what'll"},
	{"whatre", "what're"}, {"whats", "what's"}, {"whatve", "what've"}, {"whens", "when's"},
	{"whered", "where'd"}, {"wheres", "where's"}, {"whereve", "where've"}, {"whod", "who'd"},
	{"whod've", "who'd've"}, {"who'dve", "who'd've"}, {"wholl", "who'll"}, {"whos", "who's"},
	{"whove", "who've"}, {"whyll", "why'll"}, {"whyre", "why're"}, {"whys", "why's"},
	{"wont", "won't"}, {"wouldve", "would've"}, {"wouldnt", "wouldn't"},
	{"wouldnt've", "wouldn't've"}, {"wouldn'tve", "wouldn't've"}, {"yall", "y'all"},
	{"yall'll", "y'all'll"}, {"y'allll", "y'all'll"}, {"yall'd've", "y'all'd've"},
	{"y'alld've", "y'all'd've"}, {"y'all'dve", "y'all'd've"}, {"youd", "you'd"},
	{"youd've", "you'd've"}, {"you'dve", "you'd've"}, {"youll", "you'll"},
	{"youre", "you're"}, {"youve", "you've"},
};

static const char *const NUMBERS[][2] = {
	{"none", "0"}, {"zero", "0"}, {"one", "1"}, {"two", "2"}, {"three", "3"}, {"four", "4"},
	{"five", "5"}, {"six", "6"}, {"seven", "7"}, {"eight", "8"}, {"nine", "9"}, {"ten", "10"},
};

/* vlmeval/dataset/utils/vqa_eval.py _process_digit_article (= vqaEval.processDigitArticle):
 * lower, split, number words to digits, drop a/an/the, contractions word by word, join. */
char *lvd_eval_vqa_digit_article(const char *s)
{
	size_t ln;
	char *low = lvd_py_lower(s, strlen(s), &ln);
	if (!low)
		return NULL;
	struct lvd_py_words w;
	int rc = lvd_py_split(low, ln, &w);
	free(low);
	if (rc)
		return NULL;
	struct lvd_strbuf b = {0};
	int first = 1;
	for (size_t i = 0; i < w.n; i++) {
		const char *word = w.w[i];
		for (size_t k = 0; k < sizeof NUMBERS / sizeof *NUMBERS; k++)
			if (!strcmp(word, NUMBERS[k][0])) {
				word = NUMBERS[k][1];
				break;
			}
		if (!strcmp(word, "a") || !strcmp(word, "an") || !strcmp(word, "the"))
			continue;
		for (size_t k = 0; k < sizeof CONTRACTIONS / sizeof *CONTRACTIONS; k++)
			if (!strcmp(word, CONTRACTIONS[k][0])) {
				word = CONTRACTIONS[k][1];
				break;
			}
		if (!first)
			lvd_strbuf_str(&b, " ");
		lvd_strbuf_str(&b, word);
		first = 0;
	}
	lvd_py_words_free(&w);
	return lvd_strbuf_done(&b);
}

/* vqa_eval.py process_answer. */
char *lvd_eval_vqa_normalize(const char *s)
{
	size_t n = strlen(s);
	char *t = malloc(n + 1);
	if (!t)
		return NULL;
	for (size_t i = 0; i <= n; i++)
		t[i] = (s[i] == '\n' || s[i] == '\t') ? ' ' : s[i];
	size_t a, e;
	lvd_py_strip(t, n, &a, &e);
	t[e] = 0;
	char *p = lvd_eval_vqa_punct(t + a);
	free(t);
	if (!p)
		return NULL;
	char *d = lvd_eval_vqa_digit_article(p);
	free(p);
	return d;
}

/* '\n'/'\t' -> ' ' and strip, then (official) punctuation and digits/articles:
 * vqaEval.py's treatment of the prediction. */
static char *official_pred(const char *s)
{
	size_t n = strlen(s);
	char *t = malloc(n + 1);
	if (!t)
		return NULL;
	for (size_t i = 0; i <= n; i++)
		t[i] = (s[i] == '\n' || s[i] == '\t') ? ' ' : s[i];
	size_t a, e;
	lvd_py_strip(t, n, &a, &e);
	t[e] = 0;
	char *p = punct_pass(t + a, 1);
	free(t);
	if (!p)
		return NULL;
	char *d = lvd_eval_vqa_digit_article(p);
	free(p);
	return d;
}

/* VLMEvalKit: vqa_eval.py process_line(method='vqa_score') + hit_calculate (TextVQA: the
 * mean of the leave-one-out list), every answer through process_answer.
 * Official (GT-Vision-Lab/VQA vqaEval.py evaluate): the prediction is cleaned,
 * punctuated and digit/article-mapped; the ground truths get only the punctuation pass
 * and only when they are not all identical (`if len(set(gtAnswers)) > 1`). */
int lvd_eval_vqa_accuracy(const char *pred, const char *const *gts, size_t n, int official,
			  double *acc)
{
	if (n == 0) {
		*acc = NAN;
		return 0;
	}
	int differ = 0;
	for (size_t i = 1; i < n && !differ; i++)
		differ = strcmp(gts[0], gts[i]) != 0;
	char **g = calloc(n, sizeof *g);
	char *p = official ? official_pred(pred) : lvd_eval_vqa_normalize(pred);
	int rc = (g && p) ? 0 : -1;
	for (size_t i = 0; i < n && !rc; i++)
		if (!(g[i] = !official ? lvd_eval_vqa_normalize(gts[i]) : differ ? punct_pass(gts[i], 1) : strdup(gts[i])))
			rc = -1;
	if (!rc) {
		double sum = 0;
		for (size_t i = 0; i < n; i++) {
			size_t match = 0;
			for (size_t j = 0; j < n; j++)
				if (j != i && !strcmp(g[j], p))
					match++;
			sum += match >= 3 ? 1.0 : (double)match / 3.0;
		}
		*acc = sum / (double)n;
	}
	for (size_t i = 0; g && i < n; i++)
		free(g[i]);
	free(g);
	free(p);
	return rc;
}

/* ---- ANLS ---------------------------------------------------------------------------- */

static uint32_t *code_points(const char *s, size_t *m)
{
	size_t n = strlen(s);
	uint32_t *v = malloc((n + 1) * sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i += lvd_py_next(s, n, i, &v[k]), k++)
		;
	*m = k;
	return v;
}

/* vqa_eval.py levenshtein_distance (the classic two-row dynamic programme). */
size_t lvd_eval_levenshtein(const char *sa, const char *sb)
{
	size_t na, nb;
	uint32_t *a = code_points(sa, &na), *b = code_points(sb, &nb);
	size_t *row = malloc((na + 1) * sizeof *row);
	if (!a || !b || !row) {
		free(a);
		free(b);
		free(row);
		return (size_t)-1;
	}
	for (size_t i = 0; i <= na; i++)
		row[i] = i;
	for (size_t j = 1; j <= nb; j++) {
		size_t diag = row[0];
		row[0] = j;
		for (size_t i = 1; i <= na; i++) {
			size_t up = row[i];
			size_t best = a[i - 1] == b[j - 1] ? diag : 1 + diag;
			if (up + 1 < best)
				best = up + 1;
			if (row[i - 1] + 1 < best)
				best = row[i - 1] + 1;
			diag = up;
			row[i] = best;
		}
	}
	size_t d = row[na];
	free(a);
	free(b);
	free(row);
	return d;
}

/* ' '.join(s.strip().lower().split()) */
static char *anls_norm(const char *s)
{
	size_t ln;
	char *low = lvd_py_lower(s, strlen(s), &ln);
	if (!low)
		return NULL;
	struct lvd_py_words w;
	int rc = lvd_py_split(low, ln, &w);
	free(low);
	if (rc)
		return NULL;
	struct lvd_strbuf b = {0};
	for (size_t i = 0; i < w.n; i++) {
		if (i)
			lvd_strbuf_str(&b, " ");
		lvd_strbuf_str(&b, w.w[i]);
	}
	lvd_py_words_free(&w);
	return lvd_strbuf_done(&b);
}

/* vqa_eval.py anls_compute. */
double lvd_eval_anls_nl(const char *gt, const char *pred)
{
	char *g = anls_norm(gt), *p = anls_norm(pred);
	double v = -1;
	if (g && p) {
		size_t d = lvd_eval_levenshtein(g, p);
		size_t lg = lvd_py_upper_len(gt, strlen(gt)), lp = lvd_py_upper_len(pred, strlen(pred));
		size_t len = lg > lp ? lg : lp;
		if (d != (size_t)-1)
			v = len == 0 ? 0.0 : (double)d / (double)len;
	}
	free(g);
	free(p);
	return v;
}

/* vqa_eval.py hit_calculate for DocVQA/InfoVQA. */
double lvd_eval_anls(const char *pred, const char *const *gts, size_t n, double threshold)
{
	double best = INFINITY;
	for (size_t i = 0; i < n; i++) {
		double nl = lvd_eval_anls_nl(gts[i], pred);
		if (nl < 0)
			return -1;
		if (nl < best)
			best = nl;
	}
	double s = 1.0 - best;
	return s < threshold ? 0.0 : s;
}

/* ---- yes/no --------------------------------------------------------------------------- */

/* vlmeval/dataset/utils/yorn.py YOrN_Extraction. */
enum lvd_eval_yn lvd_eval_yorn(const char *output)
{
	size_t ln;
	char *low = lvd_py_lower(output, strlen(output), &ln);
	if (!low)
		return LVD_EVAL_UNKNOWN;
	char *p = lvd_eval_vqa_punct(low);
	free(low);
	if (!p)
		return LVD_EVAL_UNKNOWN;
	struct lvd_py_words w;
	int rc = lvd_py_split(p, strlen(p), &w);
	free(p);
	if (rc)
		return LVD_EVAL_UNKNOWN;
	int yes = lvd_py_words_has(&w, "yes"), no = lvd_py_words_has(&w, "no");
	lvd_py_words_free(&w);
	if (yes && !no)
		return LVD_EVAL_YES;
	if (no && !yes)
		return LVD_EVAL_NO;
	return LVD_EVAL_UNKNOWN;
}

/* haotian-liu/LLaVA llava/eval/eval_pope.py eval_pope. */
enum lvd_eval_yn lvd_eval_yorn_llava(const char *output)
{
	size_t n = strlen(output);
	const char *dot = strchr(output, '.');
	if (dot)
		n = (size_t)(dot - output);
	char *t = malloc(n + 1);
	if (!t)
		return LVD_EVAL_YES;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (output[i] != ',')
			t[m++] = output[i];
	t[m] = 0;
	struct lvd_py_words w;
	int rc = lvd_py_split_on(t, m, ' ', &w);
	free(t);
	if (rc)
		return LVD_EVAL_YES;
	int no = lvd_py_words_has(&w, "No") || lvd_py_words_has(&w, "not") || lvd_py_words_has(&w, "no");
	lvd_py_words_free(&w);
	return no ? LVD_EVAL_NO : LVD_EVAL_YES;
}
