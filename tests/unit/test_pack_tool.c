/* Tests for lvd-pack's per-sample procedure (lib/lavender/pack_sample.h):
 * chat template + labels against transformers/llama-recipes (golden), --labels official
 * (two BOS, the official Flickr collator's labels) against MllamaProcessor + that collator's
 * rules (golden, tests/ref/gen_pack.py), caption-only
 * samples, a whole sample built from synthetic maps (targets, mask, words, image bytes),
 * overlong handling, missing maps.
 * `test_pack_tool --fixture DIR N [nomap]` writes the synthetic input set used by
 * tests/cli/test_lvd_pack.sh (see test_pack_fixture.h) and exits. */
#include <jansson.h>
#include <stdint.h>
#include <turbojpeg.h>

#include "harness.h"
#include "lavender/pack_sample.h"
#include "test_pack_fixture.h"

#include "lavender/packrec.h"
#include "text/clip_tok.h"

static const char *small_tok(void)
{
	return lvd_test_path("tests/golden/tokenizer/small/tokenizer.json");
}

static void test_labels_golden(void)
{
	const char *shared = lvd_test_shared_data();
	if (!shared)
		SKIP("../shared/data absent (needs llama3/tokenizer.model)");
	char path[4200];
	snprintf(path, sizeof path, "%s/llama3/tokenizer.model", shared);
	struct lvd_error e = {0};
	struct lvd_llama_tok *tok = NULL;
	REQUIRE(lvd_llama_tok_load(&tok, path, LVD_LLAMA_SCHEME_MLLAMA, &e) == 0);
	REQUIRE(lvd_pack_check_tokenizer(tok, &e) == 0);
	json_error_t je;
	json_t *root = json_load_file(lvd_test_path("tests/golden/pack/labels.json"), 0, &je);
	REQUIRE(root);
	json_t *cases = json_object_get(root, "cases"), *c;
	REQUIRE(json_array_size(cases) >= 7);
	size_t i;
	struct lvd_pack_chat chat = {0};
	json_array_foreach(cases, i, c) {
		json_t *line = json_pack("{s:s, s:O}", "id", "x", "conversations", json_object_get(c, "conversations"));
		char *ls = json_dumps(line, JSON_COMPACT);
		struct lvd_sample s = {0};
		int ok = pkf_parse_sample(&s, ls) == 0;
		CHECK(ok);
		if (ok) {
			/* recipes, then official (one more BOS; labels of the official Flickr collator) */
			static const char *const key_ids[2] = {"ids", "ids_official"};
			static const char *const key_lab[2] = {"labels", "labels_official"};
			size_t region[2] = {0, 0};
			for (int m = 0; m < 2; m++) {
				enum lvd_pack_labels mode = m ? LVD_PACK_LABELS_OFFICIAL : LVD_PACK_LABELS_RECIPES;
				int rc = lvd_pack_chat_encode(&chat, tok, &s, LVD_PACK_DEFAULT_PROMPT, mode, &e);
				CHECKF(rc == 0, "case %zu %s: %s", i, key_lab[m], e.msg);
				json_t *ids = json_object_get(c, key_ids[m]), *lab = json_object_get(c, key_lab[m]);
				REQUIRE(json_array_size(ids) > 8 && json_array_size(lab) == json_array_size(ids));
				CHECKF(chat.out.toks.n == json_array_size(ids), "case %zu %s: %zu tokens, want %zu", i,
				       key_ids[m], chat.out.toks.n, json_array_size(ids));
				int bad_id = 0, bad_lab = 0;
				for (size_t t = 0; t < chat.out.toks.n && t < json_array_size(ids); t++) {
					bad_id += chat.out.toks.ids[t] != json_integer_value(json_array_get(ids, t));
					bad_lab += chat.labels[t] != json_integer_value(json_array_get(lab, t));
					region[m] += chat.region[t];
				}
				CHECKF(bad_id == 0, "case %zu %s: %d ids differ", i, key_ids[m], bad_id);
				CHECKF(bad_lab == 0, "case %zu %s: %d labels differ", i, key_lab[m], bad_lab);
				CHECK(chat.image_pos == 5 + m && chat.out.toks.ids[5 + m] == 128256);
				CHECK(chat.out.toks.ids[0] == 128000 && (chat.out.toks.ids[1] == 128000) == (m == 1));
			}
			/* the matched answer region does not depend on the label mode */
			CHECKF(region[0] == region[1] && region[0] > 0, "case %zu: region %zu vs %zu", i, region[0],
			       region[1]);
		}
		lvd_sample_clear(&s);
		free(ls);
		json_decref(line);
	}
	lvd_pack_chat_free(&chat);
	json_decref(root);
	lvd_llama_tok_free(tok);
}

static void test_chat_caption_only(void)
{
	struct lvd_error e = {0};
	struct lvd_llama_tok *tok = NULL;
	REQUIRE(lvd_llama_tok_load(&tok, small_tok(), LVD_LLAMA_SCHEME_MLLAMA, &e) == 0);
	REQUIRE(lvd_pack_check_tokenizer(tok, &e) == 0);
	CHECK(lvd_llama_special_id(tok, "<|image|>") == 4256 && lvd_llama_special_id(tok, "<|eot_id|>") == 4009);
	struct lvd_sample s = {0};
	REQUIRE(pkf_parse_sample(&s, "{\"id\": \"a\", \"image\": \"x.png\", \"caption\": \"a dog\"}") == 0);
	struct lvd_pack_chat c = {0};
	REQUIRE(lvd_pack_chat_encode(&c, tok, &s, "Say it.", LVD_PACK_LABELS_RECIPES, &e) == 0);
	/* text: BOS, user header, "\n\n", image, prompt, eot, assistant header, "\n\n" + answer, eot */
	CHECK(c.n_msg == 2 && c.image_pos == 5);
	CHECK(c.out.toks.ids[c.out.toks.n - 1] == 4009);
	int nl = 0, nr = 0;
	for (size_t t = 0; t < c.out.toks.n; t++) {
		nl += c.labels[t] != -100;
		nr += c.region[t];
	}
	/* labels: "\n\n", "a", " dog", eot; region: "\n\n", "a", " dog" */
	CHECK(nl >= 4 && nr == nl - 1);
	CHECK_CONTAINS(c.text, "Say it.");
	CHECK_CONTAINS(c.text, "a dog");
	/* an empty answer and a sample with nothing to say are errors */
	REQUIRE(pkf_parse_sample(&s, "{\"id\": \"b\", \"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}, "
				 "{\"from\": \"gpt\", \"value\": \"  \"}]}") == 0);
	CHECK(lvd_pack_chat_encode(&c, tok, &s, "x", LVD_PACK_LABELS_RECIPES, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "empty answer");
	REQUIRE(pkf_parse_sample(&s, "{\"id\": \"c\", \"image\": \"x.png\"}") == 0);
	CHECK(lvd_pack_chat_encode(&c, tok, &s, "x", LVD_PACK_LABELS_RECIPES, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "no conversations and no caption");
	lvd_sample_clear(&s);
	lvd_pack_chat_free(&c);
	lvd_llama_tok_free(tok);
}

/* A 300x200 image, caption "a black dog near a red ball", one token per word, 8x12
 * maps: "dog" is a bump at cell (2, 9), "ball" a bump at (6, 1). */
static void test_sample_build(void)
{
	struct lvd_error e = {0};
	struct lvd_llama_tok *tok = NULL;
	REQUIRE(lvd_llama_tok_load(&tok, small_tok(), LVD_LLAMA_SCHEME_MLLAMA, &e) == 0);
	REQUIRE(lvd_pack_check_tokenizer(tok, &e) == 0);
	struct lvd_image im = {300, 200, 3, calloc(300 * 200, 3)};
	uint8_t *png = NULL;
	size_t png_len = 0;
	REQUIRE(lvd_image_encode_png(&im, &png, &png_len, &e) == 0);
	free(im.px);
	const char *text = "a black dog near a red ball";
	struct lvd_word_span *ws;
	size_t nw;
	REQUIRE(lvd_match_segment(text, strlen(text), &ws, &nw, &e) == 0 && nw == 7);
	uint32_t spans[14];
	for (size_t i = 0; i < nw; i++) {
		spans[2 * i] = ws[i].beg;
		spans[2 * i + 1] = ws[i].end;
	}
	free(ws);
	uint16_t maps[7 * 96];
	for (int t = 0; t < 7; t++)
		for (int i = 0; i < 96; i++) {
			int hot = (t == 2 && i == 2 * 12 + 9) || (t == 6 && i == 6 * 12 + 1);
			maps[t * 96 + i] = lvd_f32_to_f16(hot ? 1.0f : 0.0f);
		}
	struct lvd_mapsrec mr = {0};
	mr.id = "d";
	mr.text = (char *)text;
	mr.T = 7;
	mr.spans = spans;
	mr.img_w = 300;
	mr.img_h = 200;
	mr.grid_w = 12;
	mr.grid_h = 8;
	mr.maps = maps;
	struct lvd_sample s = {0};
	REQUIRE(pkf_parse_sample(&s, "{\"id\": \"d\", \"image\": \"d.png\", \"conversations\": [{\"role\": \"user\", "
				 "\"content\": \"<image>\\nWhat is the dog doing?\"}, {\"role\": \"assistant\", \"content\": "
				 "\"A black Dog chases a red ball.\"}]}") == 0);
	struct lvd_stopwords stop;
	REQUIRE(lvd_stopwords_parse(&stop, "a\nthe\n", 6, "stop", &e) == 0);
	struct lvd_pack_params p = {0};
	lvd_geom_cfg_default(&p.geom);
	p.embed_images = 1;
	p.keep_raw = 1;
	p.max_tokens = 4096;
	p.overlong_truncate = 1;
	p.prompt = LVD_PACK_DEFAULT_PROMPT;
	p.stop = &stop;
	struct lvd_pack_input in = {&s, "d.png", "d.png", png, png_len, &mr};
	struct lvd_pack_chat chat = {0};
	uint8_t *out = NULL;
	size_t len = 0;
	struct lvd_pack_stats st;
	const char *kind = NULL;
	int rc = lvd_pack_sample_build(&p, tok, &chat, &in, &out, &len, &st, &kind, &e);
	CHECKF(rc == 0, "%s", e.msg);
	REQUIRE(rc == 0 && out);
	/* answer words: black dog chases red ball (content: 5 after stop words), matched: black dog red ball;
	 * "dog" in the question is outside the answer region */
	CHECK(st.region_words == 7 && st.content_words == 5 && st.content_matched == 4 && st.words == 4);
	struct lvd_packrec r;
	REQUIRE(lvd_packrec_decode(&r, out, len, "t", &e) == 0);
	CHECK(r.W == 4 && r.flags == (LVD_PACKREC_IMAGE | LVD_PACKREC_RAW));
	/* 300x200 -> one tile, resized to 560x373 (extent), 40x40 patches, 27 valid rows */
	CHECK(r.tiles_h == 1 && r.tiles_w == 1 && r.new_w == 560 && r.new_h == 373 && r.gh == 40 && r.gw == 40);
	int valid = 0;
	for (int i = 0; i < 1600; i++)
		valid += r.mask[i];
	CHECK(valid == 27 * 40);
	CHECK(r.image_len == png_len && memcmp(r.image, png, png_len) == 0);
	CHECK(r.rh == 8 && r.rw == 12);
	const char *want[4] = {"black", "dog", "red", "ball"};
	for (uint32_t w = 0; w < r.W && w < 4; w++) {
		CHECK_STR(r.words[w].key, want[w]);
		CHECK(r.words[w].n_pos >= 1 && r.words[w].n_query == r.words[w].n_pos);
		CHECK(r.words[w].query[0] == r.words[w].pos[0] - 1);
		CHECK(r.labels[r.words[w].pos[0]] == r.tokens[r.words[w].pos[0]]);
	}
	/* "dog" peak: source cell (2, 9) covers image rows 50..75 and columns 225..250 ->
	 * canvas (x 560/300) rows 93..140, columns 420..467 -> patches y 6..10, x 30..33 */
	size_t cells = 1600;
	for (int w = 1; w < 4; w += 2) {
		float best = -1;
		int by = -1, bx = -1;
		for (int i = 0; i < 1600; i++) {
			float v = lvd_f16_to_f32(r.targets[w * cells + i]);
			if (v > best) { best = v; by = i / 40; bx = i % 40; }
		}
		CHECK_NEAR(best, 1.0, 1e-3); /* min-max normalised, fp16 */
		if (w == 1)
			CHECK(by >= 6 && by <= 10 && bx >= 30 && bx <= 33);
		else /* ball: cell (6, 1): rows 150..175 -> canvas 280..326 -> y 20..23; cols 25..50 -> x 3..6 */
			CHECK(by >= 20 && by <= 23 && bx >= 3 && bx <= 6);
	}

	/* --labels official: one more BOS in front, so every position moves by one; the same
	 * words and targets; every label is the token except <|image|> and the assistant
	 * header (<|start_header_id|>, the pieces of "assistant", <|end_header_id|>) */
	{
		struct lvd_pack_stats st2;
		uint8_t *out2 = NULL;
		size_t len2 = 0;
		struct lvd_packrec r2;
		p.labels = LVD_PACK_LABELS_OFFICIAL;
		REQUIRE(lvd_pack_sample_build(&p, tok, &chat, &in, &out2, &len2, &st2, &kind, &e) == 0 && out2);
		p.labels = LVD_PACK_LABELS_RECIPES;
		REQUIRE(lvd_packrec_decode(&r2, out2, len2, "t", &e) == 0);
		CHECK(r2.T == r.T + 1 && r2.tokens[0] == 4000 && r2.tokens[1] == 4000);
		CHECK(memcmp(r2.tokens + 1, r.tokens, r.T * sizeof *r.tokens) == 0);
		CHECK(r2.image_pos == r.image_pos + 1 && r2.tokens[r2.image_pos] == 4256);
		CHECK(st2.words == st.words && st2.region_words == st.region_words && r2.W == r.W);
		for (uint32_t w = 0; w < r.W && w < r2.W; w++) {
			CHECK_STR(r2.words[w].key, r.words[w].key);
			CHECK(r2.words[w].n_pos == r.words[w].n_pos && r2.words[w].pos[0] == r.words[w].pos[0] + 1 &&
			      r2.words[w].query[0] == r.words[w].query[0] + 1);
		}
		CHECK(memcmp(r2.targets, r.targets, (size_t)r.W * cells * sizeof *r.targets) == 0);
		/* the assistant header: the second <|start_header_id|> (4006) up to its <|end_header_id|> (4007) */
		uint32_t hs = 0, he = 0, nstart = 0;
		for (uint32_t t = 0; t < r2.T; t++)
			if (r2.tokens[t] == 4006 && ++nstart == 2)
				hs = t;
		for (he = hs; he < r2.T && r2.tokens[he] != 4007; he++)
			;
		REQUIRE(hs > 0 && he < r2.T && he - hs >= 2);
		uint32_t masked = 0;
		for (uint32_t t = 0; t < r2.T; t++) {
			int want_mask = t == r2.image_pos || (t >= hs && t <= he);
			CHECKF(r2.labels[t] == (want_mask ? -100 : r2.tokens[t]), "official label at %u", t);
			masked += r2.labels[t] == -100;
		}
		CHECK(masked == 1 + (he - hs + 1) && st2.label_tokens == r2.T - masked);
		CHECK(st.label_tokens < st2.label_tokens);
		lvd_packrec_free(&r2);
		free(out2);
	}
	lvd_packrec_free(&r);
	free(out);

	/* --grid 32 and --no-embed-images */
	p.grid = 32;
	p.embed_images = 0;
	p.keep_raw = 0;
	REQUIRE(lvd_pack_sample_build(&p, tok, &chat, &in, &out, &len, &st, &kind, &e) == 0);
	REQUIRE(lvd_packrec_decode(&r, out, len, "t", &e) == 0);
	CHECK(r.gh == 32 && r.gw == 32 && r.flags == LVD_PACKREC_GRID && r.image_len == 5);
	lvd_packrec_free(&r);
	free(out);
	p.grid = 0;

	/* overlong: drop, or truncate at a turn boundary (nothing fits -> dropped) */
	p.max_tokens = 20;
	REQUIRE(lvd_pack_sample_build(&p, tok, &chat, &in, &out, &len, &st, &kind, &e) == 0);
	CHECK(out == NULL && st.dropped == 1);
	p.max_tokens = 4096;

	/* missing maps: error, or no targets with allow_missing_maps */
	in.maps = NULL;
	CHECK(lvd_pack_sample_build(&p, tok, &chat, &in, &out, &len, &st, &kind, &e) == LVD_ERR_NOTFOUND);
	CHECK_STR(kind, "missing_maps");
	p.allow_missing_maps = 1;
	REQUIRE(lvd_pack_sample_build(&p, tok, &chat, &in, &out, &len, &st, &kind, &e) == 0);
	REQUIRE(lvd_packrec_decode(&r, out, len, "t", &e) == 0);
	CHECK(r.W == 0 && st.missing_maps == 1);
	lvd_packrec_free(&r);
	free(out);
	in.maps = &mr;

	/* image mismatch and a broken image */
	mr.img_w = 301;
	CHECK(lvd_pack_sample_build(&p, tok, &chat, &in, &out, &len, &st, &kind, &e) == LVD_ERR_INVALID);
	CHECK_STR(kind, "maps");
	mr.img_w = 300;
	in.image_len = 10;
	CHECK(lvd_pack_sample_build(&p, tok, &chat, &in, &out, &len, &st, &kind, &e) == LVD_ERR_FORMAT);
	CHECK_STR(kind, "image");

	lvd_stopwords_free(&stop);
	lvd_sample_clear(&s);
	lvd_pack_chat_free(&chat);
	free(png);
	lvd_llama_tok_free(tok);
}

static void test_multiturn_truncate(void)
{
	struct lvd_error e = {0};
	struct lvd_llama_tok *tok = NULL;
	REQUIRE(lvd_llama_tok_load(&tok, small_tok(), LVD_LLAMA_SCHEME_MLLAMA, &e) == 0);
	REQUIRE(lvd_pack_check_tokenizer(tok, &e) == 0);
	struct lvd_sample s = {0};
	REQUIRE(pkf_parse_sample(&s, "{\"id\": \"m\", \"conversations\": [{\"role\": \"user\", \"content\": \"<image>\\nQ1\"}, "
				 "{\"role\": \"assistant\", \"content\": \"first answer\"}, {\"role\": \"user\", \"content\": "
				 "\"Q2 is a much longer question with many many words in it\"}, {\"role\": \"assistant\", "
				 "\"content\": \"second\"}]}") == 0);
	struct lvd_pack_chat c = {0};
	REQUIRE(lvd_pack_chat_encode(&c, tok, &s, "x", LVD_PACK_LABELS_RECIPES, &e) == 0);
	REQUIRE(c.n_msg == 4);
	uint32_t cut = c.msg_end[1];
	CHECK(c.out.toks.ids[cut - 1] == 4009);
	/* build with max_tokens between the two assistant turns: kept up to the first */
	struct lvd_image im = {16, 16, 3, calloc(16 * 16, 3)};
	uint8_t *png = NULL;
	size_t pl = 0;
	REQUIRE(lvd_image_encode_png(&im, &png, &pl, &e) == 0);
	free(im.px);
	struct lvd_pack_params p = {0};
	lvd_geom_cfg_default(&p.geom);
	p.embed_images = 1;
	p.max_tokens = cut + 2;
	p.overlong_truncate = 1;
	p.allow_missing_maps = 1;
	p.prompt = "x";
	struct lvd_pack_input in = {&s, "m.png", "m.png", png, pl, NULL};
	uint8_t *out = NULL;
	size_t len = 0;
	struct lvd_pack_stats st;
	const char *kind;
	REQUIRE(lvd_pack_sample_build(&p, tok, &c, &in, &out, &len, &st, &kind, &e) == 0);
	CHECK(st.truncated == 1 && st.tokens == cut);
	free(out);
	p.overlong_truncate = 0;
	REQUIRE(lvd_pack_sample_build(&p, tok, &c, &in, &out, &len, &st, &kind, &e) == 0);
	CHECK(out == NULL && st.dropped == 1);
	free(png);
	lvd_sample_clear(&s);
	lvd_pack_chat_free(&c);
	lvd_llama_tok_free(tok);
}

/* Header-only size probe: PNG and JPEG (made with libturbojpeg), garbage, truncation. */
static void test_image_probe(void)
{
	struct lvd_error e = {0};
	struct lvd_image im = {37, 21, 3, calloc(37 * 21, 3)};
	uint8_t *png = NULL;
	size_t pl = 0;
	REQUIRE(lvd_image_encode_png(&im, &png, &pl, &e) == 0);
	int w = 0, h = 0;
	CHECK(lvd_pack_image_size(png, pl, &w, &h, "a.png", &e) == 0 && w == 37 && h == 21);
	CHECK(lvd_pack_image_size(png, 20, &w, &h, "a.png", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "a.png: not a PNG or JPEG file");
	tjhandle tj = tjInitCompress();
	REQUIRE(tj);
	unsigned char *jpg = NULL;
	unsigned long jl = 0;
	REQUIRE(tjCompress2(tj, im.px, 37, 0, 21, TJPF_RGB, &jpg, &jl, TJSAMP_420, 90, 0) == 0);
	CHECK(lvd_pack_image_size(jpg, jl, &w, &h, "b.jpg", &e) == 0 && w == 37 && h == 21);
	CHECK(lvd_pack_image_size(jpg, 40, &w, &h, "b.jpg", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "b.jpg: corrupt JPEG header");
	CHECK(lvd_pack_image_size((const uint8_t *)"GIF89a", 6, &w, &h, "c.gif", &e) == LVD_ERR_FORMAT);
	/* a PNG header claiming a 0-pixel width */
	uint8_t bad[24];
	memcpy(bad, png, 24);
	memset(bad + 16, 0, 4);
	CHECK(lvd_pack_image_size(bad, 24, &w, &h, "d.png", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "out of range");
	tjFree(jpg);
	tjDestroy(tj);
	free(png);
	free(im.px);
}

/* The match rate of content words when the SD text and the answer are the same caption
 * (Flickr-style samples): CLIP spans (SD side, 77-token truncation as SD) against the
 * Llama-3 chat tokens (VLM side), on every caption of ../shared/data/images. */
static void test_captions_match_rate(void)
{
	const char *shared = lvd_test_shared_data();
	if (!shared)
		SKIP("../shared/data absent (needs clip/, llama3/, images/captions.jsonl)");
	char path[4200];
	struct lvd_error e = {0};
	struct lvd_clip_tok *clip = NULL;
	struct lvd_llama_tok *tok = NULL;
	snprintf(path, sizeof path, "%s/clip", shared);
	REQUIRE(lvd_clip_tok_load(&clip, path, &e) == 0);
	snprintf(path, sizeof path, "%s/llama3/tokenizer.model", shared);
	REQUIRE(lvd_llama_tok_load(&tok, path, LVD_LLAMA_SCHEME_MLLAMA, &e) == 0);
	REQUIRE(lvd_pack_check_tokenizer(tok, &e) == 0);
	char *sw_text = NULL;
	size_t sw_len = 0;
	struct lvd_stopwords stop;
	REQUIRE(lvd_file_read_all(lvd_test_path("tests/golden/pack/stopwords.txt"), 1 << 20, &sw_text, &sw_len, &e) == 0);
	REQUIRE(lvd_stopwords_parse(&stop, sw_text, sw_len, "stopwords.txt", &e) == 0);
	free(sw_text);
	snprintf(path, sizeof path, "%s/images/captions.jsonl", shared);
	FILE *f = fopen(path, "r");
	REQUIRE(f);
	char line[65536];
	size_t n_caps = 0, content = 0, matched = 0, words = 0;
	struct lvd_pack_chat chat = {0};
	struct lvd_tokens ct;
	lvd_tokens_init(&ct);
	while (fgets(line, sizeof line, f)) {
		json_t *j = json_loads(line, 0, NULL);
		if (!j)
			continue;
		json_t *caps = json_array();
		json_array_append(caps, json_object_get(j, "caption"));
		json_t *all = json_object_get(j, "all_captions"), *c;
		size_t i;
		json_array_foreach(all, i, c) json_array_append(caps, c);
		json_array_foreach(caps, i, c) {
			const char *text = json_string_value(c);
			if (!text)
				continue;
			struct lvd_clip_opts co = {LVD_CLIP_CONTEXT, LVD_CLIP_PAD_NONE};
			ct.n = 0;
			REQUIRE(lvd_clip_encode(clip, text, strlen(text), &co, &ct, &e) == 0);
			uint32_t spans[2 * LVD_CLIP_CONTEXT], T = 0;
			for (size_t t = 0; t < ct.n; t++)
				if (ct.end[t] > ct.start[t]) {
					spans[2 * T] = ct.start[t];
					spans[2 * T + 1] = ct.end[t];
					T++;
				}
			struct lvd_sample s = {0};
			s.id = "c";
			s.caption = (char *)text;
			REQUIRE(lvd_pack_chat_encode(&chat, tok, &s, LVD_PACK_DEFAULT_PROMPT, LVD_PACK_LABELS_RECIPES, &e) == 0);
			struct lvd_match_vlm v = {chat.text, chat.text_len, (uint32_t)chat.out.toks.n, chat.beg, chat.end,
						  chat.region};
			struct lvd_match_sd sd = {text, strlen(text), T, spans};
			struct lvd_match_opts mo = {0, LVD_QUERY_PREDICT, &stop, (uint32_t)chat.image_pos};
			struct lvd_match_result r;
			REQUIRE(lvd_match(&r, &v, &sd, &mo, &e) == 0);
			content += r.n_content;
			matched += r.n_content_matched;
			words += r.n_region_words;
			if (r.n_content_matched < r.n_content)
				fprintf(stderr, "  note: %zu of %zu content words unmatched in \"%s\"\n",
					r.n_content - r.n_content_matched, r.n_content, text);
			lvd_match_result_free(&r);
			n_caps++;
		}
		json_decref(caps);
		json_decref(j);
	}
	fclose(f);
	fprintf(stderr, "  captions: %zu, answer words %zu, content words %zu, matched %zu (%.2f%%)\n", n_caps, words,
		content, matched, content ? 100.0 * (double)matched / (double)content : 0.0);
	CHECK(n_caps >= 150);
	/* same text on both sides: only CLIP's text cleaning or truncation may lose a word */
	CHECK(content > 500 && matched * 1000 >= content * 995);
	lvd_tokens_free(&ct);
	lvd_pack_chat_free(&chat);
	lvd_stopwords_free(&stop);
	lvd_llama_tok_free(tok);
	lvd_clip_tok_free(clip);
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "--fixture")) {
		struct lvd_error e = {0};
		const char *src = getenv("LVD_SRCDIR");
		if (pkf_make(argv[2], atoi(argv[3]), argc > 4 && !strcmp(argv[4], "nomap"), src && *src ? src : ".",
			     &e)) {
			fprintf(stderr, "fixture: %s\n", e.msg);
			return 1;
		}
		return 0;
	}
	static const struct lvd_test tests[] = {
		TEST(test_labels_golden), TEST(test_chat_caption_only), TEST(test_sample_build),
		TEST(test_multiturn_truncate), TEST(test_image_probe), TEST(test_captions_match_rate), {0}};
	return lvd_test_main(argc, argv, tests);
}
