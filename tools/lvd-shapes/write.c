/* lvd-shapes: the files of a generated split (layout in docs/shapes.md):
 *   DIR/<split>.jsonl                      manifest (DESIGN §4 + extra fields)
 *   DIR/<split>-run.json                   provenance: tool, version, options, count
 *   DIR/<split>-bench.jsonl                one lvd-eval bench line per question (lib/eval/bench.h)
 *   DIR/images/<id>.png                    the image
 *   DIR/attn/<id>.png/lpm_attention/<id>/attention_<word>.jpg
 *                                          official Lavender per-word map (G×G gray JPEG)
 *   DIR/attn-png/<id>.png/lpm_attention/<id>/attention_<word>.png
 *                                          the same map, lossless
 *   DIR/masks/<id>/<word>.png              exact full-resolution mask (0/255 gray) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "lvd-shapes/shapes.h"

#define JPEG_QUALITY 100

/* G×G gray map as a baseline JPEG (quality 100, accurate DCT: deterministic bytes). */
static int save_jpeg_gray(const uint8_t *map, int G, const char *path, struct lvd_error *err)
{
	tjhandle tj = tjInitCompress();
	if (!tj)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: cannot start the JPEG encoder", path);
	unsigned char *buf = NULL;
	unsigned long len = 0;
	int rc = LVD_OK;
	if (tjCompress2(tj, map, G, 0, G, TJPF_GRAY, &buf, &len, TJSAMP_GRAY, JPEG_QUALITY, TJFLAG_ACCURATEDCT))
		rc = lvd_error_set(err, LVD_ERR_IO, "%s: JPEG encoding failed: %s", path, tjGetErrorStr2(tj));
	else
		rc = lvd_file_write_atomic(path, buf, len, err);
	tjFree(buf);
	tjDestroy(tj);
	return rc;
}

static int save_gray_png(const uint8_t *px, int w, int h, const char *path, struct lvd_error *err)
{
	struct lvd_image im = { w, h, 1, (uint8_t *)px };
	return lvd_image_save_png(&im, path, err);
}

static int jset(json_t *obj, const char *key, json_t *v)
{
	return v ? json_object_set_new(obj, key, v) : -1;
}

/* The manifest line of one scene (a new object; NULL when out of memory). */
static json_t *sample_json(const struct lvd_shapes_scene *sc, const char *id, char words[][16], int nw)
{
	char path[256];
	json_t *o = json_object(), *conv = json_array(), *shapes = json_array(), *qa = json_array();
	json_t *maps = json_object(), *masks = json_object();
	int bad = !o || !conv || !shapes || !qa || !maps || !masks;
	snprintf(path, sizeof path, "images/%s.png", id);
	bad |= jset(o, "id", json_string(id)) | jset(o, "image", json_string(path)) |
	       jset(o, "caption", json_string(sc->caption));
	for (int i = 0; i < sc->n_qa; i++) {
		char q[200];
		snprintf(q, sizeof q, "%s%s", i == 0 ? "<image>\n" : "", sc->qa[i].question);
		bad |= json_array_append_new(conv, json_pack("{ssss}", "role", "user", "content", q));
		bad |= json_array_append_new(conv, json_pack("{ssss}", "role", "assistant", "content", sc->qa[i].answer));
		bad |= json_array_append_new(qa, json_pack("{sissssss}", "turn", 2 * i + 1, "type",
							    lvd_shapes_qtype_name(sc->qa[i].type), "question",
							    sc->qa[i].question, "answer", sc->qa[i].answer));
	}
	bad |= json_object_set_new(o, "conversations", conv);
	conv = NULL;
	char lay[20];
	snprintf(lay, sizeof lay, "%016llx", (unsigned long long)sc->layout);
	bad |= jset(o, "split", json_string(lvd_shapes_split_name(sc->split))) | jset(o, "width", json_integer(sc->w)) |
	       jset(o, "height", json_integer(sc->h)) | jset(o, "tiles", json_pack("[ii]", sc->tiles_h, sc->tiles_w)) |
	       jset(o, "layout", json_string(lay));
	for (int i = 0; i < sc->n; i++) {
		const struct lvd_shapes_shape *s = &sc->s[i];
		bad |= json_array_append_new(shapes, json_pack("{sssssisisi}", "shape", lvd_shapes_kind_name(s->kind),
							       "color", lvd_shapes_color_name(s->color), "x", s->x0,
							       "y", s->y0, "size", s->size));
	}
	bad |= json_object_set_new(o, "shapes", shapes) | json_object_set_new(o, "qa", qa);
	shapes = qa = NULL;
	for (int k = 0; k < nw; k++) {
		snprintf(path, sizeof path, "attn/%s.png/lpm_attention/%s/attention_%s.jpg", id, id, words[k]);
		bad |= jset(maps, words[k], json_string(path));
		snprintf(path, sizeof path, "masks/%s/%s.png", id, words[k]);
		bad |= jset(masks, words[k], json_string(path));
	}
	bad |= json_object_set_new(o, "word_maps", maps) | json_object_set_new(o, "word_masks", masks);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int write_line(struct lvd_afile *af, json_t *obj, struct lvd_error *err);

/* The scene's questions as lvd-eval bench lines (lib/eval/bench.h): presence questions
 * are yesno, the others vqa with the gold answer ten times (VQA accuracy compares each of
 * ten annotators with the other nine: ten equal answers make exact match score 1);
 * category = the question type. */
static int write_bench(const struct lvd_shapes_scene *sc, const char *id, struct lvd_afile *af,
		       struct lvd_error *err)
{
	char qid[96], img[96];
	snprintf(img, sizeof img, "images/%s.png", id);
	int rc = 0;
	for (int i = 0; i < sc->n_qa && !rc; i++) {
		const struct lvd_shapes_qa *q = &sc->qa[i];
		int yesno = q->type == LVD_SHAPES_Q_PRESENCE;
		snprintf(qid, sizeof qid, "%s-q%d", id, i);
		json_t *o = json_pack("{ss ss ss ss ss ss ss}", "id", qid, "dataset", "shapes", "kind",
				      yesno ? "yesno" : "vqa", "image", img, "question", q->question, "answer", q->answer,
				      "category", lvd_shapes_qtype_name(q->type));
		json_t *ans = json_array();
		for (int k = 0; k < 10 && ans; k++)
			json_array_append_new(ans, json_string(q->answer));
		int bad = !o || !ans || (!yesno && json_object_set(o, "answers", ans));
		json_decref(ans);
		rc = bad ? lvd_error_set(err, LVD_ERR_NOMEM, "out of memory") : write_line(af, o, err);
		json_decref(o);
	}
	return rc;
}

static int write_line(struct lvd_afile *af, json_t *obj, struct lvd_error *err)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	if (!s)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int rc = lvd_afile_write(af, s, strlen(s), err);
	if (!rc)
		rc = lvd_afile_write(af, "\n", 1, err);
	free(s);
	return rc;
}

/* One scene: image, per-word maps and masks; appends its manifest line. */
static int write_scene(const struct lvd_shapes_opts *o, uint64_t index, const char *dir, struct lvd_afile *man,
		       struct lvd_afile *bench, struct lvd_error *err)
{
	struct lvd_shapes_scene sc;
	lvd_shapes_scene_make(&sc, o, index);
	char id[64], path[4400], sub[4400];
	snprintf(id, sizeof id, "%s-%06llu", lvd_shapes_split_name(o->split), (unsigned long long)index);
	struct lvd_image img = { 0 };
	int G = o->map_size, rc;
	if ((rc = lvd_image_alloc(&img, sc.w, sc.h, 3, err)))
		return rc;
	uint8_t *mask = malloc((size_t)sc.w * sc.h), *mask8 = malloc((size_t)sc.w * sc.h), *map = malloc((size_t)G * G);
	json_t *obj = NULL;
	if (!mask || !mask8 || !map) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	lvd_shapes_render(&sc, o->seed, img.px);
	snprintf(path, sizeof path, "%s/images/%s.png", dir, id);
	if ((rc = lvd_image_save_png(&img, path, err)))
		goto out;
	char words[LVD_SHAPES_MAX_WORDS][16];
	int nw = lvd_shapes_words(&sc, words);
	for (int k = 0; k < nw; k++) {
		lvd_shapes_word_mask(&sc, words[k], mask);
		for (size_t p = 0; p < (size_t)sc.w * sc.h; p++)
			mask8[p] = mask[p] ? 255 : 0;
		snprintf(sub, sizeof sub, "%s/masks/%s", dir, id);
		snprintf(path, sizeof path, "%s/%s.png", sub, words[k]);
		if ((rc = lvd_mkdir_p(sub, err)) || (rc = save_gray_png(mask8, sc.w, sc.h, path, err)))
			goto out;
		lvd_shapes_map(map, G, mask, sc.w, sc.h);
		snprintf(sub, sizeof sub, "%s/attn/%s.png/lpm_attention/%s", dir, id, id);
		snprintf(path, sizeof path, "%s/attention_%s.jpg", sub, words[k]);
		if ((rc = lvd_mkdir_p(sub, err)) || (rc = save_jpeg_gray(map, G, path, err)))
			goto out;
		snprintf(sub, sizeof sub, "%s/attn-png/%s.png/lpm_attention/%s", dir, id, id);
		snprintf(path, sizeof path, "%s/attention_%s.png", sub, words[k]);
		if ((rc = lvd_mkdir_p(sub, err)) || (rc = save_gray_png(map, G, G, path, err)))
			goto out;
	}
	if (!(obj = sample_json(&sc, id, words, nw))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!(rc = write_line(man, obj, err)))
		rc = write_bench(&sc, id, bench, err);
out:
	json_decref(obj);
	free(mask);
	free(mask8);
	free(map);
	lvd_image_free(&img);
	return rc;
}

int lvd_shapes_generate(const struct lvd_shapes_opts *o, uint64_t n, const char *dir,
			struct lvd_progress *progress, struct lvd_error *err)
{
	int rc;
	char path[4400];
	if ((rc = lvd_shapes_opts_check(o, err)))
		return rc;
	snprintf(path, sizeof path, "%s/images", dir);
	if ((rc = lvd_mkdir_p(path, err)))
		return rc;
	const char *split = lvd_shapes_split_name(o->split);
	struct lvd_afile man;
	snprintf(path, sizeof path, "%s/%s.jsonl", dir, split);
	if ((rc = lvd_afile_open(&man, path, err)))
		return rc;
	struct lvd_afile bench;
	snprintf(path, sizeof path, "%s/%s-bench.jsonl", dir, split);
	if ((rc = lvd_afile_open(&bench, path, err))) {
		lvd_afile_abort(&man);
		return rc;
	}
	for (uint64_t i = 0; i < n; i++) {
		if ((rc = write_scene(o, i, dir, &man, &bench, err))) {
			lvd_afile_abort(&bench);
			lvd_afile_abort(&man);
			return rc;
		}
		lvd_progress_add(progress, 1);
	}
	/* the bench first, the manifest last: a complete manifest means a complete split */
	if ((rc = lvd_afile_commit(&bench, err))) {
		lvd_afile_abort(&man);
		return rc;
	}
	if ((rc = lvd_afile_commit(&man, err)))
		return rc;
	json_t *run = json_pack("{sssssssIsIsisisisisisisisi}", "tool", "lvd-shapes", "version", LVD_VERSION, "split",
				split, "n", (json_int_t)n, "seed", (json_int_t)o->seed, "min_shapes", o->min_shapes,
				"max_shapes", o->max_shapes, "tile_size", o->tile_size, "max_tiles", o->max_tiles,
				"map_size", o->map_size, "questions", o->questions, "heldout_mod",
				LVD_SHAPES_HELDOUT_MOD, "jpeg_quality", JPEG_QUALITY);
	char *text = run ? json_dumps(run, JSON_INDENT(2)) : NULL;
	json_decref(run);
	if (!text)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	size_t len = strlen(text);
	text[len] = 0;
	snprintf(path, sizeof path, "%s/%s-run.json", dir, split);
	char *withnl = realloc(text, len + 2);
	if (!withnl) {
		free(text);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	withnl[len] = '\n';
	withnl[len + 1] = 0;
	rc = lvd_file_write_atomic(path, withnl, len + 1, err);
	free(withnl);
	return rc;
}
