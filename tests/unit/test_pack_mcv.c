/* Tests for lvd-pack's MiniCPM-Llama3-V-2.5 records (lib/lavender/pack_sample_mcv.c, a
 * version-2 record of packrec.h): real photos of three aspect ratios (one picture; two
 * slices; a larger grid of slices) with synthetic SD maps, decoded and compared with
 * what the trainer's own code gives — the ids, pre-shifted labels and image_bound of
 * lvd_minicpmv_chat_build, the pictures' patch grids of lvd_minicpmv_slice_geom — the
 * targets with an independent area average over the image, query rows after the last
 * picture; truncation; the records of the reference processor's cases
 * (tests/golden/minicpmv_proc/proc.json: its input_ids, labels, image_bound); the error
 * paths (canvas mode, mllama labels, missing maps, maps of another image, a conversation
 * not opened by the user, overlong).
 * The model folder: tests/golden/minicpmv/model/config.json (query_num 8, slice_config
 * 9 / 448 / 14) with the small Llama-3 tokenizer.json plus the five MiniCPM tags and
 * "assistant" as one token.
 * `test_pack_mcv --fixture DIR` writes DIR/model, DIR/images (the photos), DIR/maps and
 * DIR/data.jsonl for tests/cli/test_lvd_pack_mcv.sh and exits (1 without the photos). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>

#include "harness.h"
#include "lavender/pack_sample.h"
#include "test_pack_fixture.h"

#include "lavender/packrec.h"
#include "models/minicpmv/minicpmv.h"

/* three photos of ../shared/data/images: 451x300 (one picture), 480x640 (two slices),
 * 960x1280 (a grid of slices) */
static const char *const photos[3] = {"skimage_chelsea.png", "COCO_val2014_000000038678.png",
				      "p2p_gnochi_mirror.png"};
static const char *const texts[3] = {"a tabby cat sitting next to a mirror", "a black dog running on the beach",
				     "two red apples on a wooden table"};

/* DIR/config.json (the golden tiny MiniCPM config) and DIR/tokenizer.json (the small
 * Llama-3 tokenizer with <unk> <image> </image> <slice> </slice> at 5000..5004 and
 * "assistant" at 5010). */
static int mcv_model_make(const char *dir, const char *src, struct lvd_error *err)
{
	char p[4200], q[4200];
	int rc;
	if ((rc = lvd_mkdir_p(dir, err)))
		return rc;
	char *buf = NULL;
	size_t len = 0;
	snprintf(q, sizeof q, "%s/tests/golden/minicpmv/model/config.json", src);
	snprintf(p, sizeof p, "%s/config.json", dir);
	if ((rc = lvd_file_read_all(q, (size_t)1 << 20, &buf, &len, err)))
		return rc;
	rc = lvd_file_write_atomic(p, buf, len, err);
	free(buf);
	if (rc)
		return rc;
	snprintf(q, sizeof q, "%s/tests/golden/tokenizer/small/tokenizer.json", src);
	json_t *t = json_load_file(q, 0, NULL);
	if (!t)
		return lvd_error_set(err, LVD_ERR_IO, "%s: cannot read", q);
	static const char *tags[] = {"<unk>", "<image>", "</image>", "<slice>", "</slice>"};
	json_t *added = json_object_get(t, "added_tokens");
	/* OpenBMB's label rule finds the role "assistant" as one token, as in the real Llama-3
	 * vocabulary (78191); the small one spells it in pieces: give it a token (a pre-token
	 * that is a token is not split: ignore_merges) */
	json_object_set_new(json_object_get(json_object_get(t, "model"), "vocab"), "assistant", json_integer(5010));
	for (int i = 0; i < 5; i++)
		json_array_append_new(added, json_pack("{s:i, s:s, s:b}", "id", 5000 + i, "content", tags[i], "special", 1));
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	rc = json_dump_file(t, p, 0) ? lvd_error_set(err, LVD_ERR_IO, "%s: cannot write", p) : 0;
	json_decref(t);
	return rc;
}

/* A whole input set for the CLI test (top comment). */
static int mcv_fixture(const char *dir, const char *src, const char *shared, struct lvd_error *err)
{
	char p[4200], q[4200];
	int rc;
	snprintf(p, sizeof p, "%s/model", dir);
	if ((rc = mcv_model_make(p, src, err)))
		return rc;
	snprintf(p, sizeof p, "%s/images", dir);
	if ((rc = lvd_mkdir_p(p, err)))
		return rc;
	snprintf(p, sizeof p, "%s/maps", dir);
	if ((rc = lvd_mkdir_p(p, err)))
		return rc;
	struct lvd_rec_writer *w = NULL;
	snprintf(p, sizeof p, "%s/maps/attn-00000.lvdm", dir);
	if ((rc = lvd_rec_writer_open(&w, p, LVD_REC_KIND_MAPS, "{\"tool\": \"test_pack_mcv\"}", NULL, err)))
		return rc;
	char man[4096];
	size_t ml = 0;
	for (int k = 0; k < 3 && !rc; k++) {
		char *buf = NULL;
		size_t len = 0;
		int iw = 0, ih = 0;
		snprintf(q, sizeof q, "%s/images/%s", shared, photos[k]);
		snprintf(p, sizeof p, "%s/images/%s", dir, photos[k]);
		if ((rc = lvd_file_read_all(q, (size_t)64 << 20, &buf, &len, err)) ||
		    (rc = lvd_pack_image_size((const uint8_t *)buf, len, &iw, &ih, q, err)) ||
		    (rc = lvd_file_write_atomic(p, buf, len, err))) {
			free(buf);
			break;
		}
		free(buf);
		char id[16];
		snprintf(id, sizeof id, "m%d", k);
		rc = pkf_maps_record(w, id, (uint64_t)k, texts[k], iw, ih, err);
		if (k == 1) /* a conversation: the SD text is the answer */
			ml += (size_t)snprintf(man + ml, sizeof man - ml,
					       "{\"id\": \"%s\", \"image\": \"images/%s\", \"conversations\": [{\"role\": "
					       "\"user\", \"content\": \"<image>\\nWhat is shown?\"}, {\"role\": \"assistant\", "
					       "\"content\": \"%s\"}]}\n",
					       id, photos[k], texts[k]);
		else
			ml += (size_t)snprintf(man + ml, sizeof man - ml,
					       "{\"id\": \"%s\", \"image\": \"images/%s\", \"caption\": \"%s\"}\n", id,
					       photos[k], texts[k]);
	}
	if (rc) {
		lvd_rec_writer_abort(w);
		return rc;
	}
	if ((rc = lvd_rec_writer_close(w, err)))
		return rc;
	snprintf(p, sizeof p, "%s/data.jsonl", dir);
	if ((rc = lvd_file_write_atomic(p, man, ml, err)))
		return rc;
	/* the same plus a sample without maps */
	ml += (size_t)snprintf(man + ml, sizeof man - ml,
			       "{\"id\": \"nomap\", \"image\": \"images/%s\", \"caption\": \"a lone cat\"}\n", photos[0]);
	snprintf(p, sizeof p, "%s/nomap.jsonl", dir);
	return lvd_file_write_atomic(p, man, ml, err);
}

/* ---- the unit tests ---------------------------------------------------------------- */

struct env {
	char dir[64];
	struct lvd_llama_tok *tok;
	struct lvd_pack_params p;
};

static int env_open(struct env *e)
{
	struct lvd_error err = {0};
	char p[256];
	memset(e, 0, sizeof *e);
	snprintf(e->dir, sizeof e->dir, "/tmp/lvd_pmcv_XXXXXX");
	if (!mkdtemp(e->dir))
		return -1;
	const char *src = getenv("LVD_SRCDIR");
	if (mcv_model_make(e->dir, src && *src ? src : ".", &err)) {
		fprintf(stderr, "  model: %s\n", err.msg);
		return -1;
	}
	snprintf(p, sizeof p, "%s/tokenizer.json", e->dir);
	struct lvd_minicpmv_config cfg;
	if (lvd_llama_tok_load(&e->tok, p, LVD_LLAMA_SCHEME_MLLAMA, &err) ||
	    lvd_minicpmv_tok_ids_get(&e->p.mcv.ids, e->tok, &err) ||
	    (snprintf(p, sizeof p, "%s/config.json", e->dir), lvd_minicpmv_config_load(&cfg, p, &err)) ||
	    lvd_minicpmv_slice_cfg_from(&e->p.mcv.slice, &cfg, &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		return -1;
	}
	e->p.mcv.query_num = cfg.query_num;
	e->p.model = LVD_PACK_MODEL_MINICPMV;
	e->p.labels = LVD_PACK_LABELS_OPENBMB;
	e->p.grid = 32;
	e->p.embed_images = 1;
	e->p.keep_raw = 1;
	e->p.max_tokens = 4096;
	e->p.overlong_truncate = 1;
	e->p.prompt = LVD_PACK_DEFAULT_PROMPT;
	return 0;
}

static void env_close(struct env *e)
{
	char cmd[128];
	lvd_llama_tok_free(e->tok);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
	if (system(cmd))
		fprintf(stderr, "  cannot remove %s\n", e->dir);
}

/* An SD maps record for text over a w x h image: one token per word, 8x12 maps, each
 * word a different smooth bump (no ties, so the normalised targets are well spread). */
struct sdmaps {
	struct lvd_mapsrec mr;
	char keys[16][LVD_MATCH_MAX_KEY];
	uint32_t spans[64];
	uint16_t maps[16 * PKF_GH * PKF_GW];
};

static int sdmaps_make(struct sdmaps *m, const char *id, const char *text, int w, int h)
{
	struct lvd_error e = {0};
	struct lvd_word_span *ws;
	size_t nw;
	if (lvd_match_segment(text, strlen(text), &ws, &nw, &e) || nw > 16)
		return -1;
	for (size_t i = 0; i < nw; i++) {
		m->spans[2 * i] = ws[i].beg;
		m->spans[2 * i + 1] = ws[i].end;
		snprintf(m->keys[i], sizeof m->keys[i], "%s", ws[i].key);
	}
	free(ws);
	for (size_t t = 0; t < nw; t++)
		for (int y = 0; y < PKF_GH; y++)
			for (int x = 0; x < PKF_GW; x++) {
				double cy = (double)(t * 3 % PKF_GH), cx = (double)(t * 5 % PKF_GW);
				double v = exp(-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / 6.0) + 0.01 * x;
				m->maps[(t * PKF_GH + y) * PKF_GW + x] = lvd_f32_to_f16((float)v);
			}
	memset(&m->mr, 0, sizeof m->mr);
	m->mr.id = (char *)id;
	m->mr.text = (char *)text;
	m->mr.T = (uint32_t)nw;
	m->mr.spans = m->spans;
	m->mr.img_w = w;
	m->mr.img_h = h;
	m->mr.grid_w = PKF_GW;
	m->mr.grid_h = PKF_GH;
	m->mr.maps = m->maps;
	return 0;
}

/* The --grid N target of an SD map [gh, gw] over a W x H image, computed directly: cell
 * (y, x) = the area-weighted mean of the SD cells over its footprint
 * [y·H/N, (y+1)·H/N) x [x·W/N, (x+1)·W/N), then min-max normalised with eps 1e-6. */
static void ref_target(double *out, const float *map, int gh, int gw, int W, int H, int N)
{
	double mn = INFINITY, mx = -INFINITY;
	for (int y = 0; y < N; y++)
		for (int x = 0; x < N; x++) {
			double y0 = (double)y * H / N, y1 = (double)(y + 1) * H / N;
			double x0 = (double)x * W / N, x1 = (double)(x + 1) * W / N;
			double s = 0, a = 0;
			for (int i = 0; i < gh; i++)
				for (int j = 0; j < gw; j++) {
					double oy = fmin(y1, (double)(i + 1) * H / gh) - fmax(y0, (double)i * H / gh);
					double ox = fmin(x1, (double)(j + 1) * W / gw) - fmax(x0, (double)j * W / gw);
					if (oy > 0 && ox > 0) {
						s += oy * ox * map[i * gw + j];
						a += oy * ox;
					}
				}
			double v = s / a;
			out[y * N + x] = v;
			mn = fmin(mn, v);
			mx = fmax(mx, v);
		}
	for (int i = 0; i < N * N; i++)
		out[i] = (out[i] - mn) / (mx - mn + 1e-6);
}

static uint8_t *read_photo(const char *name, size_t *len)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		return NULL;
	char p[4200];
	char *buf = NULL;
	struct lvd_error e = {0};
	snprintf(p, sizeof p, "%s/images/%s", sd, name);
	if (lvd_file_read_all(p, (size_t)64 << 20, &buf, len, &e))
		return NULL;
	return (uint8_t *)buf;
}

/* The messages lvd-pack renders for a sample line (caption -> prompt + caption). */
static size_t sample_msgs(struct lvd_minicpmv_msg *m, const struct lvd_sample *s, const char *prompt)
{
	if (!s->n_turns) {
		m[0] = (struct lvd_minicpmv_msg){"user", prompt, strlen(prompt)};
		m[1] = (struct lvd_minicpmv_msg){"assistant", s->caption, strlen(s->caption)};
		return 2;
	}
	for (size_t i = 0; i < s->n_turns; i++)
		m[i] = (struct lvd_minicpmv_msg){lvd_role_name(s->turns[i].role), s->turns[i].content,
						 strlen(s->turns[i].content)};
	return s->n_turns;
}

/* Builds one record and checks it against the trainer's code and the reference target. */
static void check_photo(struct env *E, int k, int want_sliced, int grid)
{
	size_t len = 0;
	uint8_t *img = read_photo(photos[k], &len);
	REQUIRE(img);
	struct lvd_error e = {0};
	int W, H;
	REQUIRE(lvd_pack_image_size(img, len, &W, &H, photos[k], &e) == 0);
	struct sdmaps sm;
	REQUIRE(sdmaps_make(&sm, "p", texts[k], W, H) == 0);
	char line[512];
	if (k == 1)
		snprintf(line, sizeof line,
			 "{\"id\": \"p\", \"image\": \"x.png\", \"conversations\": [{\"role\": \"user\", \"content\": "
			 "\"What is shown?\\n<image>\"}, {\"role\": \"assistant\", \"content\": \"%s.\"}]}",
			 texts[k]);
	else
		snprintf(line, sizeof line, "{\"id\": \"p\", \"image\": \"x.png\", \"caption\": \"%s\"}", texts[k]);
	struct lvd_sample s = {0};
	REQUIRE(pkf_parse_sample(&s, line) == 0);
	struct lvd_pack_params p = E->p;
	p.grid = grid;
	struct lvd_pack_input in = {&s, photos[k], photos[k], img, len, &sm.mr};
	uint8_t *out = NULL;
	size_t olen = 0;
	struct lvd_pack_stats st;
	const char *kind = NULL;
	int rc = lvd_pack_sample_build(&p, E->tok, NULL, &in, &out, &olen, &st, &kind, &e);
	CHECKF(rc == 0, "%s: %s", photos[k], e.msg);
	REQUIRE(rc == 0 && out);
	struct lvd_packrec r;
	REQUIRE(lvd_packrec_decode(&r, out, olen, "t", &e) == 0);
	CHECK(r.flags == (LVD_PACKREC_IMAGE | LVD_PACKREC_RAW | LVD_PACKREC_GRID | LVD_PACKREC_MCV));
	CHECK(r.img_w == (uint32_t)W && r.img_h == (uint32_t)H && r.patch_px == 14 && r.query_num == 8);
	CHECK(r.image_len == len && !memcmp(r.image, img, len));
	/* the trainer's geometry and chat on the same inputs */
	struct lvd_minicpmv_geom geo;
	REQUIRE(lvd_minicpmv_slice_geom(&geo, &p.mcv.slice, W, H, &e) == 0);
	CHECKF((geo.n > 1) == want_sliced, "%s: %d pictures", photos[k], geo.n);
	CHECK(r.cols == (uint32_t)geo.cols && r.rows == (uint32_t)geo.rows && r.n_pics == (uint32_t)geo.n);
	struct lvd_minicpmv_msg msgs[4];
	size_t nm = sample_msgs(msgs, &s, p.prompt);
	struct lvd_minicpmv_chat ch;
	REQUIRE(lvd_minicpmv_chat_build(&ch, E->tok, &p.mcv.ids, 8, &geo, msgs, nm, &e) == 0);
	CHECK(r.T == ch.T && st.tokens == ch.T);
	size_t bad = 0, nl = 0;
	for (size_t t = 0; t < ch.T && t < r.T; t++) {
		bad += r.tokens[t] != ch.ids[t] || r.labels[t] != ch.labels[t];
		nl += ch.labels[t] != -100;
	}
	CHECKF(bad == 0, "%s: %zu tokens/labels differ from lvd_minicpmv_chat_build", photos[k], bad);
	CHECK(nl > 0 && st.label_tokens == nl);
	REQUIRE(ch.n_bound == geo.n);
	for (int i = 0; i < geo.n && i < (int)r.n_pics; i++) {
		CHECK(r.pics[i].th == (uint32_t)geo.pic[i].th && r.pics[i].tw == (uint32_t)geo.pic[i].tw);
		CHECK(r.pics[i].start == (uint32_t)ch.bound[2 * i] && r.pics[i].end == (uint32_t)ch.bound[2 * i + 1]);
		CHECK(r.tokens[r.pics[i].start - 1] == p.mcv.ids.im_start && r.tokens[r.pics[i].end] == p.mcv.ids.im_end);
	}
	uint32_t last = r.pics[r.n_pics - 1].end;
	/* every content word of the answer is matched (the SD text is the answer), rows after the
	 * last picture, query = position - 1, positions inside the answer */
	struct lvd_word_span *ws;
	size_t nw;
	REQUIRE(lvd_match_segment(texts[k], strlen(texts[k]), &ws, &nw, &e) == 0);
	size_t keys = 0;
	for (size_t i = 0; i < nw; i++) {
		size_t j = 0;
		while (j < i && strcmp(ws[j].key, ws[i].key))
			j++;
		keys += j == i;
	}
	free(ws);
	CHECKF(r.W == keys && st.words == keys, "%s: %u words matched, the answer has %zu keys", photos[k], r.W, keys);
	uint32_t eot0 = 0;
	for (uint32_t t = 0; t < r.T && !eot0; t++)
		if (r.tokens[t] == p.mcv.ids.eot)
			eot0 = t;
	int Nn = (int)r.gh;
	CHECK(r.gh == (uint32_t)grid && r.gw == (uint32_t)grid && r.rh == PKF_GH && r.rw == PKF_GW);
	double *ref = malloc(sizeof(double) * (size_t)Nn * Nn);
	REQUIRE(ref);
	double worst = 0;
	for (uint32_t w = 0; w < r.W; w++) {
		const struct lvd_packrec_word *x = &r.words[w];
		for (uint32_t i = 0; i < x->n_query; i++) {
			CHECK(x->query[i] >= last && x->query[i] == x->pos[i] - 1);
			CHECK(x->pos[i] > eot0);
		}
		/* the word's SD map: the mean of the CLIP tokens (one per SD word here) of every
		 * occurrence of its key, kept as it came (fp16) */
		REQUIRE(x->sd_tok >= 0 && (uint32_t)x->sd_tok < sm.mr.T);
		uint16_t m[PKF_GH * PKF_GW];
		float mf[PKF_GH * PKF_GW];
		int occ = 0;
		for (int i = 0; i < PKF_GH * PKF_GW; i++) {
			float a = 0;
			occ = 0;
			for (size_t j = 0; j < nw; j++)
				if (!strcmp(sm.keys[j], x->key)) {
					a += lvd_f16_to_f32(sm.maps[j * PKF_GH * PKF_GW + i]);
					occ++;
				}
			mf[i] = occ ? a / (float)occ : NAN;
			m[i] = lvd_f32_to_f16(mf[i]);
		}
		CHECK(occ >= 1);
		CHECK(!memcmp(r.raw + (size_t)w * PKF_GH * PKF_GW, m, sizeof m));
		ref_target(ref, mf, PKF_GH, PKF_GW, W, H, Nn);
		for (int i = 0; i < Nn * Nn; i++) {
			double d = fabs(lvd_f16_to_f32(r.targets[(size_t)w * Nn * Nn + i]) - ref[i]);
			worst = d > worst ? d : worst;
		}
	}
	for (int i = 0; i < Nn * Nn; i++)
		CHECK(r.mask[i] == 1);
	/* fp16 storage of values in [0, 1]: half an ulp is at most 2^-12 */
	CHECKF(worst <= 2.5e-4, "%s: targets differ from the direct area average by %.3g", photos[k], worst);
	fprintf(stderr, "  %s %dx%d: %d picture(s) (%dx%d slices), %u tokens, %u words, grid %d, worst %.2g\n",
		photos[k], W, H, geo.n, geo.cols, geo.rows, r.T, r.W, grid, worst);
	free(ref);
	lvd_minicpmv_chat_free(&ch);
	lvd_packrec_free(&r);
	free(out);
	lvd_sample_clear(&s);
	free(img);
}

static void test_photos(void)
{
	if (!lvd_test_shared_data())
		SKIP("../shared/data absent (the photos)");
	struct env E;
	REQUIRE(env_open(&E) == 0);
	check_photo(&E, 0, 0, 32);
	check_photo(&E, 1, 1, 32);
	check_photo(&E, 2, 1, 20);
	env_close(&E);
}

/* one build; returns rc, fills kind/err; *rec decoded when it produced a record */
static int build(struct env *E, const struct lvd_pack_params *p, const char *line, const uint8_t *img, size_t len,
		 const struct lvd_mapsrec *mr, struct lvd_packrec *rec, struct lvd_pack_stats *st, const char **kind,
		 struct lvd_error *e)
{
	struct lvd_sample s = {0};
	if (pkf_parse_sample(&s, line))
		return -1;
	struct lvd_pack_input in = {&s, "img.png", "img.png", img, len, mr};
	uint8_t *out = NULL;
	size_t olen = 0;
	*kind = "";
	memset(rec, 0, sizeof *rec);
	int rc = lvd_pack_sample_build(p, E->tok, NULL, &in, &out, &olen, st, kind, e);
	if (!rc && out && lvd_packrec_decode(rec, out, olen, "t", e))
		rc = -2;
	free(out);
	lvd_sample_clear(&s);
	return rc;
}

/* a small synthetic PNG (the error paths need no photo) */
static uint8_t *small_png(int w, int h, size_t *len)
{
	struct lvd_image im = {w, h, 3, calloc((size_t)w * h, 3)};
	uint8_t *png = NULL;
	struct lvd_error e = {0};
	if (!im.px || lvd_image_encode_png(&im, &png, len, &e))
		png = NULL;
	free(im.px);
	return png;
}

static void test_errors(void)
{
	struct env E;
	REQUIRE(env_open(&E) == 0);
	size_t len = 0;
	uint8_t *png = small_png(300, 200, &len);
	REQUIRE(png);
	const char *cap = "{\"id\": \"d\", \"image\": \"img.png\", \"caption\": \"a black dog near a red ball\"}";
	struct sdmaps sm;
	REQUIRE(sdmaps_make(&sm, "d", "a black dog near a red ball", 300, 200) == 0);
	struct lvd_packrec r;
	struct lvd_pack_stats st;
	struct lvd_error e = {0};
	const char *kind;
	struct lvd_pack_params p = E.p;
	/* the default works: one picture, 5 words (a, black, dog, near, red, ball minus the repeated "a") */
	CHECK(build(&E, &p, cap, png, len, &sm.mr, &r, &st, &kind, &e) == 0);
	CHECK(r.n_pics == 1 && r.cols == 0 && r.W == 6);
	lvd_packrec_free(&r);
	/* the patch canvas does not exist for MiniCPM-V */
	p.grid = 0;
	CHECK(build(&E, &p, cap, png, len, &sm.mr, &r, &st, &kind, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "--grid");
	/* mllama label rules are refused; openbmb is refused for mllama */
	p = E.p;
	p.labels = LVD_PACK_LABELS_OFFICIAL;
	CHECK(build(&E, &p, cap, png, len, &sm.mr, &r, &st, &kind, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "--labels official");
	p = E.p;
	p.model = LVD_PACK_MODEL_MLLAMA;
	lvd_geom_cfg_default(&p.geom);
	struct lvd_pack_chat chat = {0};
	{
		struct lvd_sample s = {0};
		REQUIRE(pkf_parse_sample(&s, cap) == 0);
		struct lvd_pack_input in = {&s, "img.png", "img.png", png, len, &sm.mr};
		uint8_t *out = NULL;
		size_t olen = 0;
		CHECK(lvd_pack_sample_build(&p, E.tok, &chat, &in, &out, &olen, &st, &kind, &e) == LVD_ERR_INVALID);
		CHECK_CONTAINS(e.msg, "openbmb");
		lvd_sample_clear(&s);
		lvd_pack_chat_free(&chat);
	}
	/* missing maps: named by id; --allow-missing-maps packs it without words */
	p = E.p;
	CHECK(build(&E, &p, cap, png, len, NULL, &r, &st, &kind, &e) == LVD_ERR_NOTFOUND);
	CHECK_STR(kind, "missing_maps");
	CHECK_CONTAINS(e.msg, "'d'");
	p.allow_missing_maps = 1;
	CHECK(build(&E, &p, cap, png, len, NULL, &r, &st, &kind, &e) == 0);
	CHECK(r.W == 0 && st.missing_maps == 1 && r.n_pics == 1);
	lvd_packrec_free(&r);
	/* maps of another image size */
	p = E.p;
	sm.mr.img_w = 301;
	CHECK(build(&E, &p, cap, png, len, &sm.mr, &r, &st, &kind, &e) == LVD_ERR_INVALID);
	CHECK_STR(kind, "maps");
	CHECK_CONTAINS(e.msg, "img.png");
	sm.mr.img_w = 300;
	/* a conversation opened by the system: OpenBMB's layout has the image in message 0 */
	CHECK(build(&E, &p,
		    "{\"id\": \"d\", \"image\": \"img.png\", \"conversations\": [{\"role\": \"system\", \"content\": \"Be "
		    "brief.\"}, {\"role\": \"user\", \"content\": \"<image>\\nWhat?\"}, {\"role\": \"assistant\", "
		    "\"content\": \"a dog\"}]}",
		    png, len, &sm.mr, &r, &st, &kind, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "system");
	/* empty answer */
	CHECK(build(&E, &p,
		    "{\"id\": \"d\", \"image\": \"img.png\", \"conversations\": [{\"role\": \"user\", \"content\": "
		    "\"<image>\\nWhat?\"}, {\"role\": \"assistant\", \"content\": \" \"}]}",
		    png, len, &sm.mr, &r, &st, &kind, &e) == LVD_ERR_INVALID);
	CHECK_STR(kind, "empty_answer");
	/* overlong: two turns; the limit keeps the first exchange (rendered anew: OpenBMB's labels of
	 * the shorter chat), or drops; a limit below the picture drops */
	const char *two = "{\"id\": \"d\", \"image\": \"img.png\", \"conversations\": [{\"role\": \"user\", \"content\": "
			  "\"<image>\\nWhat is it?\"}, {\"role\": \"assistant\", \"content\": \"a black dog\"}, {\"role\": "
			  "\"user\", \"content\": \"And the ball?\"}, {\"role\": \"assistant\", \"content\": \"a red "
			  "ball near the dog\"}]}";
	CHECK(build(&E, &p, two, png, len, &sm.mr, &r, &st, &kind, &e) == 0);
	uint32_t full_T = r.T;
	lvd_packrec_free(&r);
	struct lvd_minicpmv_geom geo;
	REQUIRE(lvd_minicpmv_slice_geom(&geo, &p.mcv.slice, 300, 200, &e) == 0);
	struct lvd_minicpmv_msg m2[2] = {{"user", "<image>\nWhat is it?", 19}, {"assistant", "a black dog", 11}};
	struct lvd_minicpmv_chat ch;
	REQUIRE(lvd_minicpmv_chat_build(&ch, E.tok, &p.mcv.ids, 8, &geo, m2, 2, &e) == 0);
	REQUIRE(ch.T < full_T);
	p.max_tokens = (uint32_t)ch.T + 1;
	CHECK(build(&E, &p, two, png, len, &sm.mr, &r, &st, &kind, &e) == 0);
	CHECK(st.truncated == 1 && r.T == ch.T);
	size_t bad = 0;
	for (size_t t = 0; t < ch.T && r.T == ch.T; t++)
		bad += r.tokens[t] != ch.ids[t] || r.labels[t] != ch.labels[t];
	CHECK(bad == 0);
	/* the last label of a chat ending at that <|eot_id|> is -100 (OpenBMB: the final
	 * <|eot_id|> is not trained), unlike the same position in the two-turn chat */
	CHECK(r.labels[r.T - 1] == -100);
	/* only "a black dog" is left to match */
	CHECK(r.W == 3);
	lvd_packrec_free(&r);
	lvd_minicpmv_chat_free(&ch);
	p.overlong_truncate = 0;
	CHECK(build(&E, &p, two, png, len, &sm.mr, &r, &st, &kind, &e) == 0);
	CHECK(st.dropped == 1);
	p.overlong_truncate = 1;
	p.max_tokens = 16;
	CHECK(build(&E, &p, two, png, len, &sm.mr, &r, &st, &kind, &e) == 0);
	CHECK(st.dropped == 1);
	/* --match-in all: the question's words count too, but only rows after the picture */
	p = E.p;
	p.match_all = 1;
	CHECK(build(&E, &p,
		    "{\"id\": \"d\", \"image\": \"img.png\", \"conversations\": [{\"role\": \"user\", \"content\": \"Is "
		    "the dog black? <image> Is the ball red?\"}, {\"role\": \"assistant\", \"content\": \"yes\"}]}",
		    png, len, &sm.mr, &r, &st, &kind, &e) == 0);
	/* "dog" and "black" before the picture are dropped, "ball" and "red" after it match */
	int seen_ball = 0, seen_dog = 0;
	for (uint32_t w = 0; w < r.W; w++) {
		seen_ball |= !strcmp(r.words[w].key, "ball");
		seen_dog |= !strcmp(r.words[w].key, "dog");
		for (uint32_t i = 0; i < r.words[w].n_query; i++)
			CHECK(r.words[w].query[i] >= r.pics[0].end);
	}
	CHECK(seen_ball && !seen_dog);
	lvd_packrec_free(&r);
	free(png);
	env_close(&E);
}

/* Against the reference processor: tests/golden/minicpmv_proc/proc.json holds, for real
 * photos of several aspect ratios and two slice configs, the input_ids, labels and
 * image_bound of OpenBMB's processor and chat code (tests/ref/gen_minicpmv_proc.py; the
 * real Llama-3 vocabulary, query_num 96, the tags at the ids it lists). Each case becomes
 * a manifest sample with the case's messages; the record must hold exactly those, and the
 * words matched in the answers sit at trained positions (labels[p-1] = ids[p]). The image
 * bytes only give the size (header probe): the photo itself, or a blank PNG of the case's
 * size (its 2x2 tiling case). */
static void test_reference(void)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		SKIP("../shared/data absent (Llama-3 vocabulary, photos)");
	json_t *g = json_load_file(lvd_test_path("tests/golden/minicpmv_proc/proc.json"), 0, NULL);
	REQUIRE(g);
	char path[4200];
	snprintf(path, sizeof path, "%s/llama3/tokenizer.model", sd);
	struct lvd_llama_tok *tok = NULL;
	struct lvd_error e = {0};
	REQUIRE(lvd_llama_tok_load(&tok, path, LVD_LLAMA_SCHEME_HF31, &e) == 0);
	struct lvd_pack_params p = {0};
	json_t *sp = json_object_get(g, "special_ids");
#define SPID(k) ((int32_t)json_integer_value(json_object_get(sp, k)))
	p.mcv.ids = (struct lvd_minicpmv_tok_ids){lvd_llama_special_id(tok, "<|begin_of_text|>"),
						  lvd_llama_special_id(tok, "<|start_header_id|>"),
						  lvd_llama_special_id(tok, "<|end_header_id|>"),
						  lvd_llama_special_id(tok, "<|eot_id|>"),
						  -1,
						  SPID("<unk>"),
						  SPID("<image>"),
						  SPID("</image>"),
						  SPID("<slice>"),
						  SPID("</slice>")};
#undef SPID
	struct lvd_tokens at;
	lvd_tokens_init(&at);
	REQUIRE(lvd_llama_encode(tok, "assistant", 9, 0, &at, &e) == 0 && at.n == 1);
	p.mcv.ids.assistant = at.ids[0];
	lvd_tokens_free(&at);
	p.mcv.query_num = (int)json_integer_value(json_object_get(g, "query_num"));
	p.model = LVD_PACK_MODEL_MINICPMV;
	p.labels = LVD_PACK_LABELS_OPENBMB;
	p.grid = 32;
	p.embed_images = 1;
	p.max_tokens = 1u << 16;
	p.overlong_truncate = 1;
	p.prompt = LVD_PACK_DEFAULT_PROMPT;
	size_t i;
	json_t *c;
	int ncase = 0, nwords = 0;
	json_array_foreach(json_object_get(g, "cases"), i, c) {
		json_t *cfg = json_object_get(c, "cfg");
		p.mcv.slice = (struct lvd_minicpmv_slice_cfg){
			(int)json_integer_value(json_object_get(cfg, "max_slice_nums")),
			(int)json_integer_value(json_object_get(cfg, "scale_resolution")),
			(int)json_integer_value(json_object_get(cfg, "patch_size"))};
		const char *name = json_string_value(json_object_get(c, "image"));
		int W = (int)json_integer_value(json_object_get(c, "W")), H = (int)json_integer_value(json_object_get(c, "H"));
		size_t len = 0;
		uint8_t *img = read_photo(name, &len);
		int iw = 0, ih = 0;
		if (!img || lvd_pack_image_size(img, len, &iw, &ih, name, &e) || iw != W || ih != H) {
			free(img);
			img = small_png(W, H, &len);
		}
		REQUIRE(img);
		json_t *msgs = json_object_get(c, "messages");
		json_t *line = json_pack("{s:s, s:s, s:O}", "id", "ref", "image", name, "conversations", msgs);
		char *ls = json_dumps(line, JSON_COMPACT);
		json_decref(line);
		REQUIRE(ls);
		/* the SD text: the last answer (at most 16 words), so that its words match */
		const char *ans = json_string_value(json_object_get(json_array_get(msgs, json_array_size(msgs) - 1), "content"));
		struct sdmaps sm;
		REQUIRE(sdmaps_make(&sm, "ref", ans, W, H) == 0);
		struct lvd_packrec r;
		struct lvd_pack_stats st;
		const char *kind;
		struct env E = {.tok = tok};
		int rc = build(&E, &p, ls, img, len, &sm.mr, &r, &st, &kind, &e);
		free(ls);
		free(img);
		CHECKF(rc == 0, "%s %dx%d: %s", name, W, H, e.msg);
		if (rc)
			continue;
		json_t *ids = json_object_get(c, "input_ids"), *lab = json_object_get(c, "labels");
		json_t *bd = json_object_get(c, "image_bound");
		CHECKF(r.T == json_array_size(ids), "%s %dx%d: %u tokens, the reference %zu", name, W, H, r.T,
		       json_array_size(ids));
		size_t bad = 0;
		for (uint32_t t = 0; t < r.T && t < json_array_size(ids); t++)
			bad += r.tokens[t] != json_integer_value(json_array_get(ids, t)) ||
			       r.labels[t] != json_integer_value(json_array_get(lab, t));
		CHECKF(bad == 0, "%s %dx%d: %zu ids/labels differ from the reference", name, W, H, bad);
		CHECK(r.n_pics == json_array_size(bd) && r.query_num == 96);
		for (uint32_t k = 0; k < r.n_pics && k < json_array_size(bd); k++)
			CHECK(r.pics[k].start == json_integer_value(json_array_get(json_array_get(bd, k), 0)) &&
			      r.pics[k].end == json_integer_value(json_array_get(json_array_get(bd, k), 1)));
		CHECK(r.cols == json_integer_value(json_object_get(c, "cols")) &&
		      r.rows == json_integer_value(json_object_get(c, "rows")));
		json_t *pics = json_object_get(c, "pics");
		for (uint32_t k = 0; k < r.n_pics && k < json_array_size(pics); k++) {
			json_t *pk = json_array_get(pics, k);
			CHECK(r.pics[k].th == json_integer_value(json_object_get(pk, "th")) &&
			      r.pics[k].tw == json_integer_value(json_object_get(pk, "tw")));
		}
		CHECK(r.W >= 1);
		for (uint32_t w = 0; w < r.W; w++)
			for (uint32_t q = 0; q < r.words[w].n_pos; q++) {
				uint32_t pos = r.words[w].pos[q];
				CHECK(pos >= 1 && r.labels[pos - 1] == r.tokens[pos]);
				CHECK(r.words[w].query[q] >= r.pics[r.n_pics - 1].end);
			}
		nwords += (int)r.W;
		lvd_packrec_free(&r);
		ncase++;
	}
	fprintf(stderr, "  %d reference cases, %d words matched\n", ncase, nwords);
	CHECK(ncase >= 9);
	lvd_llama_tok_free(tok);
	json_decref(g);
}

int main(int argc, char **argv)
{
	(void)pkf_make; /* the mllama fixture of the shared header: not used here */
	if (argc >= 3 && !strcmp(argv[1], "--fixture")) {
		struct lvd_error e = {0};
		const char *src = getenv("LVD_SRCDIR");
		const char *sd = lvd_test_shared_data();
		if (!sd) {
			fprintf(stderr, "fixture: ../shared/data absent (the photos)\n");
			return 1;
		}
		if (mcv_fixture(argv[2], src && *src ? src : ".", sd, &e)) {
			fprintf(stderr, "fixture: %s\n", e.msg);
			return 1;
		}
		return 0;
	}
	static const struct lvd_test tests[] = {TEST(test_photos), TEST(test_errors), TEST(test_reference), {0}};
	return lvd_test_main(argc, argv, tests);
}
