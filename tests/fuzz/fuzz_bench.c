/* tests/fuzz/fuzz_bench.c — lvd-eval's benchmark and prediction readers
 * (lib/eval/bench.h, score.h). The first byte picks the converter (mod 5: MMBench TSV,
 * POPE, TextVQA, DocVQA, VLMEvalKit TSV) that reads the rest as its input file; then
 * every line of the rest is parsed as a JSONL benchmark item, prompted and scored
 * against a prediction made of the line's first bytes; and the rest is read as a
 * Python list literal. */
#include "fuzz.h"
#include "eval/bench.h"
#include "eval/score.h"

static int fuzz_bench(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct lvd_error err = {0};
	const uint8_t sel = data[0];
	enum lvd_eval_from from = (enum lvd_eval_from)(sel % LVD_EVAL_FROM__COUNT);
	data++, size--;
	static const char *const names[] = {"in/MMBench_DEV_EN.tsv", "in/coco_pope_random.json",
					    "in/TextVQA_0.5.1_val.json", "in/val_v1.0.json", "in/MME.tsv"};
	const char *in = fuzz_file(names[from], data, size);
	char img_dir[512];
	snprintf(img_dir, sizeof img_dir, "%s/img", fuzz_tmpdir());
	mkdir(img_dir, 0700);
	struct lvd_eval_convert_opts o = {.from = from, .kind = -1, .img_dir = img_dir, .img_rel = "img",
					  .image_ext = (sel & 8) ? "png" : NULL};
	json_t *out = json_array();
	size_t n_images = 0;
	lvd_eval_convert(in, &o, out, &n_images, &err);
	json_decref(out);

	struct lvd_eval_score_opts so;
	lvd_eval_score_opts_default(&so);
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_t *obj = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
		struct lvd_eval_item it;
		memset(&it, 0, sizeof it);
		if (obj && json_is_object(obj) && lvd_eval_item_parse(obj, &it, &err) == 0) {
			for (int st = 0; st < 2; st++)
				free(lvd_eval_item_prompt(&it, (enum lvd_eval_mcq_style)st));
			char pred[48];
			size_t pn = n < sizeof pred - 1 ? n : sizeof pred - 1;
			memcpy(pred, p, pn);
			pred[pn] = 0;
			for (int off = 0; off < 2; off++) {
				so.vqa_official = off;
				so.infer_flags = off ? 0 : so.infer_flags;
				struct lvd_eval_result r = {0};
				if (lvd_eval_score_item(&it, it.answer && off ? it.answer : pred, &so, &r, &err) == 0)
					free(r.parsed);
			}
		}
		json_decref(obj);
		p += n + 1;
	}
	char *s = malloc(size + 1);
	if (s) {
		memcpy(s, data, size);
		s[size] = 0;
		json_decref(lvd_eval_pylist(s));
		free(s);
	}
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_bench)
