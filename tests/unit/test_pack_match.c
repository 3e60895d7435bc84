/* Tests for lib/lavender/match: segmentation, keys, stop words, SD↔VLM matching with the
 * position conventions. Token spans here are built by hand (pieces as a BPE tokenizer
 * would cut them) so the test does not depend on the tokenizers. */
#include <stdint.h>

#include "harness.h"
#include "lavender/match.h"

static void test_segment_keys(void)
{
	struct lvd_error e = {0};
	struct lvd_word_span *w;
	size_t n;
	const char *s = "A Dog's t-shirt, don't! -x- 42cats  \xc3\x87" "a\xcc\xa7 \xc3\x89T\xc3\x89... \xc4\xb0" "z";
	REQUIRE(lvd_match_segment(s, strlen(s), &w, &n, &e) == 0);
	const char *want[] = {"a", "dog's", "t", "shirt", "don't", "x", "42cats", "\xc3\xa7" "a\xcc\xa7", "\xc3\xa9" "t\xc3\xa9",
			      "i\xcc\x87z"};
	CHECK(n == 10);
	for (size_t i = 0; i < n && i < 10; i++)
		CHECK_STR(w[i].key, want[i]);
	CHECK(w[1].beg == 2 && w[1].end == 7);
	free(w);
	char key[64];
	/* NFC: e + combining acute -> é (C3 A9) */
	CHECK(lvd_match_key("E\xcc\x81", 3, key, sizeof key) == 2);
	CHECK_STR(key, "\xc3\xa9");
	CHECK(lvd_match_key("\xff", 1, key, sizeof key) == -1);
	CHECK(lvd_match_key("abcdef", 6, key, 4) == -1);
	CHECK(lvd_match_key("two words", 9, key, sizeof key) == -1);
	CHECK(lvd_match_key("--", 2, key, sizeof key) == -1);
	/* invalid UTF-8 is an error */
	CHECK(lvd_match_segment("ab\xffxy", 5, &w, &n, &e) == LVD_ERR_INVALID);
	REQUIRE(lvd_match_segment("", 0, &w, &n, &e) == 0);
	CHECK(n == 0);
	free(w);
}

static void test_stopwords(void)
{
	struct lvd_error e = {0};
	struct lvd_stopwords sw;
	const char *f = "# English\nThe\n  a  \n\nof # trailing\r\n";
	REQUIRE(lvd_stopwords_parse(&sw, f, strlen(f), "stop.txt", &e) == 0);
	CHECK(sw.n == 3);
	CHECK(lvd_stopwords_has(&sw, "the") && lvd_stopwords_has(&sw, "a") && lvd_stopwords_has(&sw, "of"));
	CHECK(!lvd_stopwords_has(&sw, "dog"));
	lvd_stopwords_free(&sw);
	CHECK(lvd_stopwords_parse(&sw, "ok\nbad\xff\n", 8, "stop.txt", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "stop.txt:2:");
	CHECK(lvd_stopwords_parse(&sw, "ok\nt-shirt\n", 11, "stop.txt", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "stop.txt:2: not a single word");
}

/* Builds token spans from pieces; an empty piece is a special token (empty span, "\n"
 * separator in the text, as lvd-pack renders them); NULL ends the list. */
struct toks {
	char text[512];
	size_t len;
	uint32_t beg[64], end[64];
	uint32_t T;
};
static void build(struct toks *t, const char *const *pieces)
{
	memset(t, 0, sizeof *t);
	for (const char *const *p = pieces; *p; p++) {
		if (!**p) {
			t->beg[t->T] = t->end[t->T] = (uint32_t)t->len;
			t->text[t->len++] = '\n';
		} else {
			t->beg[t->T] = (uint32_t)t->len;
			memcpy(t->text + t->len, *p, strlen(*p));
			t->len += strlen(*p);
			t->end[t->T] = (uint32_t)t->len;
		}
		t->T++;
	}
}

static void test_match_positions(void)
{
	struct lvd_error e = {0};
	/* VLM: [BOS] [image] "Describe" [eot] [hdr] "A" " black" " dog" "gy" " and" " a" " dog" "." [eot] */
	static const char *const vp[] = {"", "", "Describe", "", "", "A", " black", " dog", "gy",
					 " and", " a", " dog", ".", "", NULL};
	struct toks v;
	build(&v, vp);
	REQUIRE(v.T == 14);
	uint8_t region[14] = {0};
	for (int i = 5; i < 14; i++)
		region[i] = 1;
	/* SD text with CLIP-like pieces (lower-case text, spans into the original) */
	const char *sdt = "a black doggy and a dog.";
	uint32_t sp[][2] = {{0, 1}, {2, 7}, {8, 11}, {11, 13}, {14, 17}, {18, 19}, {20, 23}, {23, 24}};
	struct lvd_match_sd sd = {sdt, strlen(sdt), 8, &sp[0][0]};
	struct lvd_match_vlm vl = {v.text, v.len, v.T, v.beg, v.end, region};
	struct lvd_stopwords sw;
	REQUIRE(lvd_stopwords_parse(&sw, "a\nand\n", 6, "s", &e) == 0);
	struct lvd_match_opts o = {0, LVD_QUERY_PREDICT, &sw, 1};
	struct lvd_match_result r;
	REQUIRE(lvd_match(&r, &vl, &sd, &o, &e) == 0);
	/* words in the answer region: a black doggy and a dog -> 6, content 3 (black doggy dog) */
	CHECK(r.n_region_words == 6 && r.n_content == 3 && r.n_content_matched == 3);
	REQUIRE(r.n == 3);
	CHECK_STR(r.w[0].key, "black");
	CHECK(r.w[0].n_pos == 1 && r.w[0].pos[0] == 6 && r.w[0].n_query == 1 && r.w[0].query[0] == 5);
	CHECK(r.w[0].n_sd == 1 && r.w[0].sd_tok[0] == 1);
	CHECK_STR(r.w[1].key, "doggy");
	CHECK(r.w[1].n_pos == 2 && r.w[1].pos[0] == 7 && r.w[1].pos[1] == 8);
	CHECK(r.w[1].n_query == 2 && r.w[1].query[0] == 6 && r.w[1].query[1] == 7);
	CHECK(r.w[1].n_sd == 2 && r.w[1].sd_tok[0] == 2 && r.w[1].sd_tok[1] == 3);
	CHECK_STR(r.w[2].key, "dog");
	CHECK(r.w[2].n_pos == 1 && r.w[2].pos[0] == 11 && r.w[2].query[0] == 10 && r.w[2].sd_tok[0] == 6);
	lvd_match_result_free(&r);
	/* token convention; match in all: "Describe" is not an SD word */
	o.query_at = LVD_QUERY_TOKEN;
	o.match_all = 1;
	REQUIRE(lvd_match(&r, &vl, &sd, &o, &e) == 0);
	CHECK(r.n_region_words == 7 && r.n_content == 4 && r.n_content_matched == 3);
	CHECK(r.n == 3 && r.w[0].query[0] == 6);
	lvd_match_result_free(&r);
	/* no stop words: "a" matches twice (positions 5 and 10), "and" once */
	o.stop = NULL;
	o.query_at = LVD_QUERY_PREDICT;
	o.match_all = 0;
	REQUIRE(lvd_match(&r, &vl, &sd, &o, &e) == 0);
	CHECK(r.n == 5);
	CHECK_STR(r.w[0].key, "a");
	CHECK(r.w[0].n_pos == 2 && r.w[0].pos[0] == 5 && r.w[0].pos[1] == 10);
	CHECK(r.w[0].n_sd == 2 && r.w[0].sd_tok[0] == 0 && r.w[0].sd_tok[1] == 5);
	lvd_match_result_free(&r);
	/* min_query beyond the answer: every query dropped -> nothing matched */
	o.min_query = 100;
	REQUIRE(lvd_match(&r, &vl, &sd, &o, &e) == 0);
	CHECK(r.n == 0 && r.n_content == 6 && r.n_content_matched == 0);
	lvd_match_result_free(&r);
	/* CLIP truncation: "dog." cut after "a" -> dog has no map */
	o.min_query = 1;
	o.stop = &sw;
	sd.T = 6;
	REQUIRE(lvd_match(&r, &vl, &sd, &o, &e) == 0);
	CHECK(r.n == 2 && r.n_sd_words == 5);
	lvd_match_result_free(&r);
	lvd_stopwords_free(&sw);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_segment_keys), TEST(test_stopwords), TEST(test_match_positions), {0}};
	return lvd_test_main(argc, argv, tests);
}
