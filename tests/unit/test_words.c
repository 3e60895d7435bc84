/* Word segmentation and CLIP <-> Llama-3 word alignment: the documented rule on
 * hand-made strings, and every word with letters in the shared captions and
 * tokenizer-case strings gets at least one position on both sides. */
#include "harness.h"

#include <jansson.h>

#include "text/clip_tok.h"
#include "text/llama_tok.h"
#include "text/words.h"

static void test_split_rule(void)
{
	struct lvd_words w;
	lvd_words_init(&w);
	struct lvd_error err = {0};
	const char *s = "Can't stop: rock'n'roll, 'quoted' x86-64 \xc4\xb0stanbul caf\x65\xcc\x81 \xf0\x9f\xa6\x99 2016.";
	REQUIRE(lvd_words_split(s, strlen(s), &w, &err) == 0);
	static const char *want[] = {"can't", "stop", ":", "rock'n'roll", ",", "'", "quoted", "'", "x86", "-", "64",
				     "i\xcc\x87stanbul", "caf\xc3\xa9", "\xf0\x9f\xa6\x99", "2016", "."};
	static const int kind[] = {0, 0, 2, 0, 2, 2, 0, 2, 0, 2, 1, 0, 0, 2, 1, 2};
	CHECK(w.n == sizeof want / sizeof *want);
	for (size_t i = 0; i < w.n && i < sizeof want / sizeof *want; i++) {
		CHECK_STR(lvd_word_norm(&w, i), want[i]);
		CHECK(w.w[i].kind == kind[i]);
	}
	CHECK(w.w[0].start == 0 && w.w[0].end == 5);
	CHECK(lvd_words_find(&w, 0, 1) == 0);
	CHECK(lvd_words_find(&w, 5, 6) == -1); /* the space */
	CHECK(lvd_words_find(&w, 5, 7) == 1);
	CHECK(lvd_words_find(&w, 3, 3) == -1);
	CHECK(lvd_words_split("a\xff", 2, &w, &err) == LVD_ERR_INVALID);
	CHECK(lvd_words_split("", 0, &w, &err) == 0 && w.n == 0);
	lvd_words_free(&w);
}

struct both {
	struct lvd_clip_tok *clip;
	struct lvd_llama_tok *llama;
};

static int check_text(struct both *b, const char *text, size_t n, int verbose)
{
	struct lvd_tokens c, v;
	lvd_tokens_init(&c);
	lvd_tokens_init(&v);
	struct lvd_error err = {0};
	struct lvd_alignment a;
	lvd_alignment_init(&a);
	int ok = lvd_clip_encode(b->clip, text, n, NULL, &c, &err) == 0 &&
		 lvd_llama_encode(b->llama, text, n, LVD_LLAMA_BOS, &v, &err) == 0 &&
		 lvd_align_words(text, n, &c, &v, &a, &err) == 0;
	for (size_t i = 0; ok && i < a.words.n; i++) {
		if (a.words.w[i].kind != LVD_WORD_ALPHA)
			continue;
		if (!a.clip_count[i] || !a.vlm_count[i]) {
			ok = 0;
			if (verbose)
				fprintf(stderr, "  word '%s' in \"%.60s\": %u CLIP, %u VLM positions\n",
					lvd_word_norm(&a.words, i), text, a.clip_count[i], a.vlm_count[i]);
		}
		for (uint32_t k = 0; k < a.vlm_count[i]; k++)
			ok &= a.pos[a.vlm_first[i] + k] >= 1; /* never BOS */
	}
	lvd_alignment_free(&a);
	lvd_tokens_free(&c);
	lvd_tokens_free(&v);
	return ok;
}

static void test_alignment_example(void)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		SKIP("../shared/data absent");
	char p[4200];
	struct both b = {0};
	struct lvd_error err = {0};
	snprintf(p, sizeof p, "%s/clip", sd);
	REQUIRE(lvd_clip_tok_load(&b.clip, p, &err) == 0);
	snprintf(p, sizeof p, "%s/llama3/tokenizer.model", sd);
	REQUIRE(lvd_llama_tok_load(&b.llama, p, 0, &err) == 0);
	/* "astronaut" is 2 CLIP pieces? whatever the split, positions are contiguous and
	 * decode back to the word */
	const char *s = "A portrait of an astronaut, unwantedly grabbed";
	struct lvd_tokens c, v;
	lvd_tokens_init(&c);
	lvd_tokens_init(&v);
	struct lvd_alignment a;
	lvd_alignment_init(&a);
	REQUIRE(lvd_clip_encode(b.clip, s, strlen(s), NULL, &c, &err) == 0);
	REQUIRE(lvd_llama_encode(b.llama, s, strlen(s), LVD_LLAMA_BOS, &v, &err) == 0);
	REQUIRE(lvd_align_words(s, strlen(s), &c, &v, &a, &err) == 0);
	REQUIRE(a.words.n == 8);
	CHECK_STR(lvd_word_norm(&a.words, 0), "a");
	CHECK(a.clip_count[0] == 1 && a.pos[a.clip_first[0]] == 1); /* after BOS */
	CHECK(a.vlm_count[0] == 1 && a.pos[a.vlm_first[0]] == 1);
	for (size_t i = 0; i < a.words.n; i++) {
		/* the union of each side's token spans covers the word */
		for (int side = 0; side < 2; side++) {
			const struct lvd_tokens *t = side ? &v : &c;
			uint32_t f = side ? a.vlm_first[i] : a.clip_first[i], n = side ? a.vlm_count[i] : a.clip_count[i];
			REQUIRE(n > 0);
			CHECK(t->start[a.pos[f]] <= a.words.w[i].start + 1); /* +1: Llama's leading space */
			CHECK(t->end[a.pos[f + n - 1]] >= a.words.w[i].end);
			for (uint32_t k = 1; k < n; k++)
				CHECK(a.pos[f + k] == a.pos[f + k - 1] + 1);
		}
	}
	/* a multi-piece word: "unwantedly" is several tokens on at least one side */
	CHECK_STR(lvd_word_norm(&a.words, 6), "unwantedly");
	CHECK(a.clip_count[6] >= 2 && a.vlm_count[6] >= 2);
	lvd_alignment_free(&a);
	lvd_tokens_free(&c);
	lvd_tokens_free(&v);
	/* one token spanning two words is listed by both: CLIP joins "x++" punctuation? use
	 * an apostrophe pair: Llama's "?'" token spans "?" and the "'" before "d" */
	const char *s2 = "to?'d";
	lvd_tokens_init(&v);
	lvd_alignment_init(&a);
	REQUIRE(lvd_llama_encode(b.llama, s2, strlen(s2), 0, &v, &err) == 0);
	REQUIRE(lvd_align_words(s2, strlen(s2), NULL, &v, &a, &err) == 0);
	/* words: "to", "?'", "d" (the apostrophe does not join: '?' precedes it) */
	REQUIRE(a.words.n == 3);
	CHECK(a.clip_count[0] == 0);
	CHECK(a.vlm_count[1] >= 1 && a.vlm_count[2] >= 1);
	lvd_alignment_free(&a);
	lvd_tokens_free(&v);
	lvd_clip_tok_free(b.clip);
	lvd_llama_tok_free(b.llama);
}

static void test_every_word_aligned(void)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		SKIP("../shared/data absent");
	char p[4200];
	struct both b = {0};
	struct lvd_error err = {0};
	snprintf(p, sizeof p, "%s/clip", sd);
	REQUIRE(lvd_clip_tok_load(&b.clip, p, &err) == 0);
	snprintf(p, sizeof p, "%s/llama3/tokenizer.model", sd);
	REQUIRE(lvd_llama_tok_load(&b.llama, p, 0, &err) == 0);
	int texts = 0, bad = 0;
	/* captions: caption and all_captions */
	snprintf(p, sizeof p, "%s/images/captions.jsonl", sd);
	FILE *f = fopen(p, "r");
	REQUIRE(f);
	char line[65536];
	while (fgets(line, sizeof line, f)) {
		json_t *r = json_loads(line, 0, NULL);
		REQUIRE(r);
		json_t *cap = json_object_get(r, "caption"), *all = json_object_get(r, "all_captions"), *x;
		size_t i;
		if (cap) {
			bad += !check_text(&b, json_string_value(cap), json_string_length(cap), 1);
			texts++;
		}
		json_array_foreach(all, i, x) {
			bad += !check_text(&b, json_string_value(x), json_string_length(x), 1);
			texts++;
		}
		json_decref(r);
	}
	fclose(f);
	/* every text of the shared tokenizer cases (both tokenizers on the same strings) */
	snprintf(p, sizeof p, "%s/tokenizer_tests/tokenizer_cases.json", sd);
	json_t *root = json_load_file(p, JSON_ALLOW_NUL, NULL);
	REQUIRE(root);
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(root, "cases"), i, c) {
		json_t *t = json_object_get(c, "text");
		if (!t)
			continue;
		bad += !check_text(&b, json_string_value(t), json_string_length(t), 1);
		texts++;
	}
	json_decref(root);
	CHECK(texts > 250);
	CHECK(bad == 0);
	lvd_clip_tok_free(b.clip);
	lvd_llama_tok_free(b.llama);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_split_rule), TEST(test_alignment_example),
						TEST(test_every_word_aligned), {0}};
	return lvd_test_main(argc, argv, tests);
}
