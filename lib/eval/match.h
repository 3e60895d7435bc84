/* lib/eval/match.h — the per-item rules of benchmark scoring, as the community code has
 * them: VLMEvalKit's multiple-choice prompt and its rule-based answer extraction
 * (can_infer), its yes/no extraction, LLaVA's POPE parser, the official VQA answer
 * normalisation and accuracy, and ANLS. Each function names its source; the sources
 * are open-compass/VLMEvalKit at e8e78f0 (2026-08-18), haotian-liu/LLaVA
 * llava/eval/eval_pope.py and GT-Vision-Lab/VQA vqaEval.py. docs/eval.md explains the
 * rules and their quirks. Strings are UTF-8; lengths count code points as Python does
 * (lib/eval/pystr.h). Results that are strings are malloc'd (caller frees); NULL means
 * out of memory. */
#ifndef LVD_EVAL_MATCH_H
#define LVD_EVAL_MATCH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The options of one multiple-choice question in letter order: letter[i] is 'A'..'Z'
 * (ascending, gaps allowed: VLMEvalKit keeps the non-NaN columns A..Z), text[i] borrowed. */
struct lvd_eval_choices {
	int n;
	char letter[26];
	const char *text[26];
};

/* ---- prompts ------------------------------------------------------------------- */

enum lvd_eval_mcq_style {
	/* VLMEvalKit ImageMCQDataset.build_prompt (dataset/image_mcq.py), what a model
	 * without its own prompt (Llama-3.2-Vision) gets for MMBench:
	 *   "Hint: {hint}\n" (when present) "Question: {q}\n" "Options:\n" "A. {a}\n"...
	 *   "Please select the correct answer from the options above. \n" */
	LVD_EVAL_MCQ_VLMEVALKIT = 0,
	/* VLMEvalKit LLaVA wrapper build_prompt (vlm/llava/llava.py), LLaVA's own MMBench
	 * prompt: "{hint}\n" (when present) "{q}" "\nA. {a}"... then
	 * "\nAnswer with the option's letter from the given choices directly." — or
	 * "\n请直接回答选项字母。" when the prompt holds a CJK ideograph (cn_string). */
	LVD_EVAL_MCQ_LETTER = 1,
};

/* The text prompt of a multiple-choice item (the image goes first in the message).
 * hint may be NULL. With no choices the LETTER style ends with "\nAnswer the question
 * directly." ("\n请直接回答问题。") and the VLMEVALKIT style with the question line. */
char *lvd_eval_mcq_prompt(enum lvd_eval_mcq_style style, const char *question, const char *hint,
			  const struct lvd_eval_choices *c);

/* VLMEvalKit ImageVQADataset.build_prompt: question + "\nAnswer the question using a
 * single word or phrase." */
char *lvd_eval_vqa_prompt(const char *question);

/* ---- multiple choice: can_infer (vlmeval/utils/matching_util.py) ---------------- */

/* The "answer is X" regex fallback of can_infer_option, added by VLMEvalKit PR #1552
 * (2026-06-17); older versions (those of the Lavender paper) lack it. */
#define LVD_EVAL_ANSWER_IS 1u

/* Return values: the option letter, 'Z' (refusal / "Z" answer), or 0 for False. */
int lvd_eval_can_infer_option(const char *answer, const struct lvd_eval_choices *c, unsigned flags);
int lvd_eval_can_infer_text(const char *answer, const struct lvd_eval_choices *c);
/* can_infer = can_infer_option, else can_infer_text. Returns -1 on out of memory. */
int lvd_eval_can_infer(const char *answer, const struct lvd_eval_choices *c, unsigned flags);

/* ---- yes/no --------------------------------------------------------------------- */

enum lvd_eval_yn { LVD_EVAL_UNKNOWN = 0, LVD_EVAL_YES = 1, LVD_EVAL_NO = 2 };
/* VLMEvalKit YOrN_Extraction (dataset/utils/yorn.py): lower, process_punctuation,
 * split; Yes iff 'yes' is a word and 'no' is not, No for the reverse, else Unknown. */
enum lvd_eval_yn lvd_eval_yorn(const char *output);
/* LLaVA eval_pope.py: the text before the first '.', commas removed, split on ' ';
 * "no" if a word is 'No', 'not' or 'no', else "yes" (never unknown). */
enum lvd_eval_yn lvd_eval_yorn_llava(const char *output);

/* ---- VQA accuracy (official VQA normalisation, VLMEvalKit vqa_eval.py) ----------- */

/* process_punctuation (vlmeval/smp/misc.py = vqaEval.processPunctuation). */
char *lvd_eval_vqa_punct(const char *s);
/* _process_digit_article (= vqaEval.processDigitArticle). */
char *lvd_eval_vqa_digit_article(const char *s);
/* process_answer: '\n','\t' -> ' ', strip, punctuation, digits/articles. */
char *lvd_eval_vqa_normalize(const char *s);

/* VQA accuracy of one prediction against n ground-truth answers (TextVQA: 10):
 * mean over i of min(1, #{j != i : gt_j == pred} / 3).
 * official = 0: VLMEvalKit (every answer normalised with lvd_eval_vqa_normalize).
 * official = 1: GT-Vision-Lab/VQA vqaEval.py (07aecec): its own punctuation list and
 *   period rule; the prediction is fully normalised, the ground truths get only the
 *   punctuation pass and only when they are not all identical.
 * n == 0 gives NaN. Returns -1 (with *acc untouched) on out of memory. */
int lvd_eval_vqa_accuracy(const char *pred, const char *const *gts, size_t n, int official,
			  double *acc);

/* ---- ANLS (VLMEvalKit anls_compute / hit_calculate) ------------------------------ */

/* Levenshtein distance between two code-point strings. */
size_t lvd_eval_levenshtein(const char *a, const char *b);
/* Normalised Levenshtein distance: strings lower-cased, stripped and whitespace-joined
 * for the distance, but divided by max(len(gt.upper()), len(pred.upper())) of the raw
 * strings (VLMEvalKit's quirk); 0 when both are empty. -1 on out of memory. */
double lvd_eval_anls_nl(const char *gt, const char *pred);
/* 1 - min over GTs of NL; 0 when that is below threshold (0.5). -1 on OOM. */
double lvd_eval_anls(const char *pred, const char *const *gts, size_t n, double threshold);

#ifdef __cplusplus
}
#endif
#endif
