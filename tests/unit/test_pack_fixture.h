/* tests/unit/test_pack_fixture.h — a synthetic lvd-pack input set, shared by
 * test_pack_tool.c (unit tests; `test_pack_tool --fixture DIR N` for the CLI test) and
 * bench/bench_pack.c:
 *   DIR/model/config.json       mllama vision constants (560/14/4), image_token_index 4256
 *   DIR/model/tokenizer.json    copy of tests/golden/tokenizer/small/tokenizer.json
 *   DIR/images/img0..3.png      four small PNGs of different aspect ratios
 *   DIR/data.jsonl              N samples s00000.. (captions; every third one as a
 *                               conversation), plus "nomap" (no map record) when asked
 *   DIR/maps/attn-00000.lvdm    one map record per sample: one CLIP-like token per
 *                               word, a fixed 8x12 map per token with a bump at a
 *                               position that depends on the word index.
 * pkf_parse_sample parses one manifest line (the unit tests' samples).
 * Include once per program, after harness.h or on its own. */
#ifndef LVD_TEST_PACK_FIXTURE_H
#define LVD_TEST_PACK_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/manifest.h"
#include "io/safetensors.h"
#include "lavender/mapsrec.h"
#include "lavender/match.h"

static const char *const pkf_captions[] = {
	"a black dog running on the beach",
	"two red apples on a wooden table",
	"A man riding a horse, near a river.",
	"the astronaut holds the American flag",
	"a tabby cat sitting next to a mirror",
	"Children's books on a shelf",
};
#define PKF_NCAP 6
static const int pkf_sizes[4][2] = {{64, 48}, {48, 96}, {1200, 300}, {40, 40}}; /* w, h */
#define PKF_GH 8
#define PKF_GW 12

static int pkf_write(const char *path, const char *s, struct lvd_error *err)
{
	return lvd_file_write_atomic(path, s, strlen(s), err);
}

/* Parses one manifest line into s (the error on stderr). */
static inline int pkf_parse_sample(struct lvd_sample *s, const char *line)
{
	struct lvd_error e = {0};
	int rc = lvd_manifest_parse_line("test", line, strlen(line), NULL, s, &e);
	if (rc)
		fprintf(stderr, "  manifest: %s\n", e.msg);
	return rc;
}

/* One map record for text (one token per word). */
static int pkf_maps_record(struct lvd_rec_writer *w, const char *id, uint64_t index, const char *text, int img_w,
			   int img_h, struct lvd_error *err)
{
	struct lvd_word_span *ws = NULL;
	size_t nw = 0;
	int rc = lvd_match_segment(text, strlen(text), &ws, &nw, err);
	if (rc)
		return rc;
	uint32_t T = (uint32_t)nw;
	int32_t *tokens = calloc(T, sizeof *tokens), *widx = calloc(T, sizeof *widx);
	uint32_t *spans = calloc(2 * T, sizeof *spans);
	char **strs = calloc(T, sizeof *strs);
	struct lvd_attnmap_stats *st = calloc(T, sizeof *st);
	uint16_t *maps = calloc((size_t)T * PKF_GH * PKF_GW, sizeof *maps);
	int32_t layers[1] = {16}, ts[1] = {500};
	for (uint32_t t = 0; t < T; t++) {
		tokens[t] = 1000 + (int32_t)t;
		widx[t] = (int32_t)t;
		spans[2 * t] = ws[t].beg;
		spans[2 * t + 1] = ws[t].end;
		strs[t] = ws[t].key;
		st[t] = (struct lvd_attnmap_stats){0.1f, 1.0f, 0.2f, 20.0f};
		int by = (int)(t * 3) % PKF_GH, bx = (int)(t * 5) % PKF_GW;
		for (int i = 0; i < PKF_GH * PKF_GW; i++)
			maps[(size_t)t * PKF_GH * PKF_GW + i] = lvd_f32_to_f16(i == by * PKF_GW + bx ? 1.0f : 0.1f);
	}
	struct lvd_mapsrec r = {0};
	r.id = (char *)id;
	r.index = index;
	r.text = (char *)text;
	r.T = T;
	r.tokens = tokens;
	r.token_strs = strs;
	r.spans = spans;
	r.word_idx = widx;
	r.n_words = T;
	r.words = strs;
	r.img_w = img_w;
	r.img_h = img_h;
	r.sd_w = 512;
	r.sd_h = 384;
	r.grid_w = PKF_GW;
	r.grid_h = PKF_GH;
	r.resolution = 512;
	r.n_layers = 1;
	r.layers = layers;
	r.n_timesteps = 1;
	r.timesteps = ts;
	r.draws = 1;
	r.stats = st;
	r.maps = maps;
	uint8_t *buf = NULL;
	size_t len = 0;
	rc = lvd_mapsrec_encode(&r, &buf, &len, err);
	if (!rc)
		rc = lvd_rec_writer_append(w, id, buf, len, err);
	free(buf);
	free(tokens);
	free(widx);
	free(spans);
	free(strs);
	free(st);
	free(maps);
	free(ws);
	return rc;
}

/* Writes the fixture (see the top comment). srcdir locates the small tokenizer. */
static int pkf_make(const char *dir, int n, int with_nomap, const char *srcdir, struct lvd_error *err)
{
	char p[4096], q[4096];
	int rc;
	snprintf(p, sizeof p, "%s/model", dir);
	if ((rc = lvd_mkdir_p(p, err)))
		return rc;
	snprintf(p, sizeof p, "%s/images", dir);
	if ((rc = lvd_mkdir_p(p, err)))
		return rc;
	snprintf(p, sizeof p, "%s/maps", dir);
	if ((rc = lvd_mkdir_p(p, err)))
		return rc;
	snprintf(p, sizeof p, "%s/model/config.json", dir);
	if ((rc = pkf_write(p, "{\"model_type\": \"mllama\", \"image_token_index\": 4256, \"vision_config\": "
			       "{\"image_size\": 560, \"patch_size\": 14, \"max_num_tiles\": 4}}\n", err)))
		return rc;
	char *tj = NULL;
	size_t tl = 0;
	snprintf(q, sizeof q, "%s/tests/golden/tokenizer/small/tokenizer.json", srcdir);
	if ((rc = lvd_file_read_all(q, (size_t)64 << 20, &tj, &tl, err)))
		return rc;
	snprintf(p, sizeof p, "%s/model/tokenizer.json", dir);
	rc = lvd_file_write_atomic(p, tj, tl, err);
	free(tj);
	if (rc)
		return rc;
	for (int k = 0; k < 4; k++) {
		struct lvd_image im = {pkf_sizes[k][0], pkf_sizes[k][1], 3, NULL};
		im.px = malloc((size_t)im.w * im.h * 3);
		if (!im.px)
			return lvd_error_set(err, LVD_ERR_NOMEM, "fixture image");
		for (int i = 0; i < im.w * im.h * 3; i++)
			im.px[i] = (uint8_t)((i * 7 + k * 50) & 255);
		snprintf(p, sizeof p, "%s/images/img%d.png", dir, k);
		rc = lvd_image_save_png(&im, p, err);
		free(im.px);
		if (rc)
			return rc;
	}
	struct lvd_rec_writer *w = NULL;
	snprintf(p, sizeof p, "%s/maps/attn-00000.lvdm", dir);
	if ((rc = lvd_rec_writer_open(&w, p, LVD_REC_KIND_MAPS, "{\"tool\": \"test_pack_fixture\"}", NULL, err)))
		return rc;
	size_t cap = (size_t)n * 300 + 1000, len = 0;
	char *man = malloc(cap);
	if (!man) {
		lvd_rec_writer_abort(w);
		return lvd_error_set(err, LVD_ERR_NOMEM, "fixture manifest");
	}
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof id, "s%05d", i);
		const char *cap_text = pkf_captions[i % PKF_NCAP];
		int k = i % 4;
		if (i % 3 == 2)
			len += (size_t)snprintf(man + len, cap - len,
						"{\"id\": \"%s\", \"image\": \"images/img%d.png\", \"conversations\": "
						"[{\"role\": \"user\", \"content\": \"<image>\\nWhat is shown?\"}, "
						"{\"role\": \"assistant\", \"content\": \"%s\"}]}\n",
						id, k, cap_text);
		else
			len += (size_t)snprintf(man + len, cap - len,
						"{\"id\": \"%s\", \"image\": \"images/img%d.png\", \"caption\": \"%s\"}\n", id, k,
						cap_text);
		if ((rc = pkf_maps_record(w, id, (uint64_t)i, cap_text, pkf_sizes[k][0], pkf_sizes[k][1], err))) {
			lvd_rec_writer_abort(w);
			free(man);
			return rc;
		}
	}
	if (with_nomap)
		len += (size_t)snprintf(man + len, cap - len,
					"{\"id\": \"nomap\", \"image\": \"images/img0.png\", \"caption\": \"a lone cat\"}\n");
	if ((rc = lvd_rec_writer_close(w, err))) {
		free(man);
		return rc;
	}
	snprintf(p, sizeof p, "%s/data.jsonl", dir);
	rc = lvd_file_write_atomic(p, man, len, err);
	free(man);
	return rc;
}

#endif
