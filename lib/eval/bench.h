/* lib/eval/bench.h — the benchmark JSONL form of lvd-eval and the converters into it.
 *
 * One JSON object per line (docs/eval.md has the full table):
 *   id        string, unique in the file
 *   dataset   string: the benchmark name; VLMEvalKit's rules key on it (circular MCQ
 *             when it contains mmbench/ccbench/circular/mmcr)
 *   kind      "mcq" | "yesno" | "vqa" | "anls"
 *   image     path relative to the JSONL's folder (or absolute)
 *   question  string; hint: optional string
 *   choices   mcq: {"A": text, "B": text, ...} (letters A-Z ascending, gaps allowed)
 *   answer    mcq: a letter of choices; yesno: "yes" or "no"
 *   answers   vqa/anls: non-empty array of strings
 *   category, l2_category  optional strings; index: optional integer >= 0 (VLMEvalKit's
 *             row index: rotation k of a circular question has index + k * 1000000)
 * A predictions line is a bench line plus "prompt", "output" (raw model text), "parsed"
 * and "correct" (written by the scorer; ignored when read back).
 *
 * Converters (lvd_eval_convert) read the formats users have — MMBench / VLMEvalKit TSV
 * (base64 images in the `image` column, written out as files), POPE question lines,
 * TextVQA and DocVQA JSON — and append records to a JSON array. */
#ifndef LVD_EVAL_BENCH_H
#define LVD_EVAL_BENCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/progress.h"
#include "eval/match.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_eval_kind {
	LVD_EVAL_KIND_MCQ = 0,
	LVD_EVAL_KIND_YESNO,
	LVD_EVAL_KIND_VQA,
	LVD_EVAL_KIND_ANLS,
	LVD_EVAL_KIND__COUNT
};
const char *lvd_eval_kind_name(enum lvd_eval_kind k);
/* 0 and *k, or -1 for an unknown name. */
int lvd_eval_kind_parse(const char *s, enum lvd_eval_kind *k);

#define LVD_EVAL_MAX_ANSWERS 64

/* One record; every string is borrowed from the JSON object it was parsed from. */
struct lvd_eval_item {
	const char *id, *dataset, *image, *question, *hint, *category, *l2_category;
	enum lvd_eval_kind kind;
	int has_index;
	int64_t index;
	struct lvd_eval_choices choices; /* mcq */
	const char *answer;              /* mcq letter, yesno "yes"/"no" */
	const char *answers[LVD_EVAL_MAX_ANSWERS];
	size_t n_answers;                /* vqa/anls */
};

/* Checks obj against the form and fills it. LVD_ERR_INVALID names the field
 * ("field 'answer': 'E' is not one of the choices"); the caller prefixes file:line. */
int lvd_eval_item_parse(json_t *obj, struct lvd_eval_item *it, struct lvd_error *err);

/* The text prompt VLMEvalKit gives a model without its own prompt builder (Llama-3.2-
 * Vision for these kinds): mcq -> lvd_eval_mcq_prompt(style, question, hint, choices);
 * yesno -> the question as is (ImageBaseDataset.build_prompt; POPE adds nothing);
 * vqa/anls -> lvd_eval_vqa_prompt (ImageVQADataset.build_prompt). malloc'd; NULL on OOM. */
char *lvd_eval_item_prompt(const struct lvd_eval_item *it, enum lvd_eval_mcq_style style);

/* ---- converters ------------------------------------------------------------------ */

enum lvd_eval_from {
	LVD_EVAL_FROM_MMBENCH_TSV = 0, /* MMBench/CCBench TSV: mcq, dataset name from the file */
	LVD_EVAL_FROM_POPE,            /* POPE question lines {"question_id","image","text","label"} */
	LVD_EVAL_FROM_TEXTVQA,         /* TextVQA JSON {"data":[{question_id,question,image_id,answers}]} */
	LVD_EVAL_FROM_DOCVQA,          /* DocVQA JSON {"data":[{questionId,question,image,answers,...}]} */
	LVD_EVAL_FROM_VLMEVALKIT_TSV,  /* any VLMEvalKit TSV; kind per row (see lvd_eval_convert) */
	LVD_EVAL_FROM__COUNT
};
/* "mmbench-tsv", "pope", "textvqa", "docvqa", "vlmevalkit-tsv". */
const char *lvd_eval_from_name(enum lvd_eval_from f);
int lvd_eval_from_parse(const char *s, enum lvd_eval_from *f);

struct lvd_eval_convert_opts {
	enum lvd_eval_from from;
	const char *name;      /* dataset name; NULL: the input's file name without extensions
				* (POPE: "POPE", TextVQA: "TextVQA", DocVQA: "DocVQA") */
	const char *images;    /* prefix joined to image names from the input (POPE, TextVQA,
				* DocVQA, TSV image_path); NULL: names as given */
	const char *image_ext; /* replace the extension of image names ("png"); NULL: keep */
	const char *category;  /* POPE: category for every line; NULL: from the file name */
	int kind;              /* vlmevalkit-tsv rows without options: forced kind, or -1 */
	const char *img_dir;   /* TSV: folder the decoded images are written into */
	const char *img_rel;   /* TSV: how records name that folder (relative to the JSONL) */
	struct lvd_progress *progress; /* borrowed, may be NULL: one count per TSV row */
};

/* Converts one input file, appending records (new references) to `out`. TSV images are
 * written atomically to img_dir/<index>.<png|jpg|gif|webp|bmp> (by magic bytes); a
 * short `image` cell (<= 64 characters) names the index of the row holding the image,
 * as VLMEvalKit's ImageBaseDataset resolves it. *n_images counts files written.
 * Errors name the file and line (TSV: the line the row starts on) and field. */
int lvd_eval_convert(const char *in, const struct lvd_eval_convert_opts *o, json_t *out,
		     size_t *n_images, struct lvd_error *err);

/* Parses a Python list literal of strings ("['a', \"b\"]") into a JSON array (new
 * reference), or NULL when s is not one. Escapes: \\ \' \" \n \t \r; others kept. */
json_t *lvd_eval_pylist(const char *s);

#ifdef __cplusplus
}
#endif
#endif
