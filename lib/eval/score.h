/* lib/eval/score.h — scoring a predictions file as VLMEvalKit scores it (exact_matching:
 * no LLM judge), with per-dataset metrics, per-category breakdowns and counts.
 *
 * Per item (lvd_eval_score_item): mcq -> can_infer letter, 'Z' or "unmatched";
 * yesno -> YOrN_Extraction "yes"/"no"/"unmatched"; vqa -> VQA accuracy in [0,1];
 * anls -> ANLS in [0,1]. Per dataset (lvd_eval_score): the headline "overall" is
 *   mcq   circular accuracy (VLMEvalKit mcq_circular_eval: questions grouped by
 *         index % 1000000, the group's main row has index < 1000000, a question counts
 *         only when every rotation is right; unmatched rotations are wrong) when the
 *         dataset is circular, else vanilla accuracy; "vanilla_0"/"vanilla_all" as
 *         PRINT_VANILLA reports them;
 *   yesno F1 with Yes positive (POPE_rating), plus accuracy, precision, recall, and
 *         LLaVA eval_pope's numbers with its yes-ratio under "llava";
 *   vqa   mean VQA accuracy; anls: mean ANLS.
 * All metrics are percentages (x100) as VLMEvalKit prints them. */
#ifndef LVD_EVAL_SCORE_H
#define LVD_EVAL_SCORE_H

#include <jansson.h>

#include "core/error.h"
#include "eval/bench.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_eval_score_opts {
	unsigned infer_flags;  /* LVD_EVAL_ANSWER_IS (VLMEvalKit HEAD) or 0 (before PR #1552) */
	int circular;          /* -1 auto: dataset name contains mmbench, ccbench, circular or
				* mmcr (VLMEvalKit image_mcq.py); 0 off; 1 on */
	int vqa_official; /* 1: VQA accuracy as GT-Vision-Lab/VQA vqaEval.py computes it
				* (lvd_eval_vqa_accuracy official = 1); 0: VLMEvalKit */
	double anls_threshold; /* 0.5 */
};
void lvd_eval_score_opts_default(struct lvd_eval_score_opts *o);

/* One scored item. parsed: "A".."Z", "yes", "no", "unmatched", or the normalised VQA
 * prediction (malloc'd, caller frees); value: 1/0 for mcq/yesno, the score in [0,1] for
 * vqa/anls; *llava_yes: LLaVA's parse for yesno. Items without an answer get value -1. */
struct lvd_eval_result {
	char *parsed;
	double value;
	int llava_yes;
};
int lvd_eval_score_item(const struct lvd_eval_item *it, const char *output, const struct lvd_eval_score_opts *o,
			struct lvd_eval_result *r, struct lvd_error *err);

/* Aggregates n scored items into {"<dataset>": {...}} (new reference in *out). A
 * dataset with several kinds is reported as "<dataset>:<kind>" per kind. */
int lvd_eval_score(const struct lvd_eval_item *items, const struct lvd_eval_result *res, size_t n,
		   const struct lvd_eval_score_opts *o, json_t **out, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
