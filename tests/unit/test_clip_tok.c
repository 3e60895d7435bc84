/* CLIP tokenizer: shared test vectors, golden ids from HF CLIPTokenizer on the corpus,
 * folder vs OpenAI .gz, truncation/padding, spans into the original text, words. */
#include "harness.h"

#include <jansson.h>
#include <unistd.h>

#include "text/clip_tok.h"

static const char *shared_path(const char *rel)
{
	static char buf[4][4096];
	static int k;
	const char *sd = lvd_test_shared_data();
	if (!sd)
		return NULL;
	char *o = buf[k++ & 3];
	snprintf(o, sizeof buf[0], "%s/%s", sd, rel);
	return o;
}

static struct lvd_clip_tok *load(const char *rel)
{
	const char *p = shared_path(rel);
	if (!p)
		return NULL;
	struct lvd_clip_tok *t = NULL;
	struct lvd_error err = {0};
	if (lvd_clip_tok_load(&t, p, &err))
		fprintf(stderr, "  load %s: %s\n", p, err.msg);
	return t;
}

static int ids_equal(const struct lvd_tokens *t, json_t *want, const char *what)
{
	size_t n = json_array_size(want);
	int ok = t->n == n;
	for (size_t i = 0; ok && i < n; i++)
		ok = t->ids[i] == json_integer_value(json_array_get(want, i));
	if (!ok) {
		fprintf(stderr, "  ids differ for %s\n    got :", what);
		for (size_t i = 0; i < t->n && i < 80; i++)
			fprintf(stderr, " %d", (int)t->ids[i]);
		fprintf(stderr, "\n    want:");
		for (size_t i = 0; i < n && i < 80; i++)
			fprintf(stderr, " %d", (int)json_integer_value(json_array_get(want, i)));
		fputc('\n', stderr);
	}
	return ok;
}

static void test_shared_cases(void)
{
	const char *p = shared_path("tokenizer_tests/tokenizer_cases.json");
	if (!p)
		SKIP("../shared/data absent");
	struct lvd_clip_tok *tok = load("clip");
	REQUIRE(tok);
	json_t *root = json_load_file(p, JSON_ALLOW_NUL, NULL);
	REQUIRE(root);
	json_t *c;
	size_t i;
	int n = 0;
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	json_array_foreach(json_object_get(root, "cases"), i, c) {
		if (strcmp(json_string_value(json_object_get(c, "tokenizer")), "clip"))
			continue;
		json_t *jt = json_object_get(c, "text");
		struct lvd_error err = {0};
		char what[64];
		snprintf(what, sizeof what, "clip case %d", (int)json_integer_value(json_object_get(c, "id")));
		lvd_tokens_clear(&t);
		CHECK(lvd_clip_encode(tok, json_string_value(jt), json_string_length(jt), NULL, &t, &err) == 0);
		CHECK(ids_equal(&t, json_object_get(c, "expected_ids"), what));
		json_t *toks = json_object_get(c, "expected_tokens");
		for (size_t k = 0; toks && k < json_array_size(toks) && k + 1 < t.n; k++) {
			char s[256];
			lvd_clip_token_str(tok, t.ids[k + 1], s, sizeof s);
			CHECKF(!strcmp(s, json_string_value(json_array_get(toks, k))), "%s token %zu: %s", what, k, s);
		}
		json_t *pad = json_object_get(c, "expected_ids_padded77_openai");
		if (pad) {
			struct lvd_clip_opts o = {LVD_CLIP_CONTEXT, LVD_CLIP_PAD_ZERO};
			lvd_tokens_clear(&t);
			CHECK(lvd_clip_encode(tok, json_string_value(jt), json_string_length(jt), &o, &t, &err) == 0);
			CHECK(ids_equal(&t, pad, what));
		}
		n++;
	}
	CHECK(n == 26);
	lvd_tokens_free(&t);
	json_decref(root);
	lvd_clip_tok_free(tok);
}

static void test_golden_corpus(void)
{
	if (!lvd_test_shared_data())
		SKIP("../shared/data absent");
	struct lvd_clip_tok *tok = load("clip"), *gz = load("clip/bpe_simple_vocab_16e6.txt.gz");
	REQUIRE(tok && gz);
	json_t *corpus = json_load_file(lvd_test_path("tests/golden/tokenizer/corpus.json"), JSON_ALLOW_NUL, NULL);
	json_t *g = json_load_file(lvd_test_path("tests/golden/tokenizer/clip.json"), 0, NULL);
	REQUIRE(corpus && g);
	json_t *lines = json_object_get(corpus, "lines"), *rows = json_object_get(g, "rows");
	size_t n = json_array_size(rows);
	REQUIRE(n == json_array_size(lines) && n > 1000);
	struct lvd_tokens t, t2;
	lvd_tokens_init(&t);
	lvd_tokens_init(&t2);
	int bad = 0;
	for (size_t i = 0; i < n && bad < 5; i++) {
		json_t *jl = json_array_get(lines, i);
		const char *text = json_string_value(jl);
		size_t len = json_string_length(jl);
		struct lvd_error err = {0};
		lvd_tokens_clear(&t);
		lvd_tokens_clear(&t2);
		CHECK(lvd_clip_encode(tok, text, len, NULL, &t, &err) == 0);
		CHECK(lvd_clip_encode(gz, text, len, NULL, &t2, &err) == 0);
		char what[64];
		snprintf(what, sizeof what, "corpus line %zu", i);
		if (!ids_equal(&t, json_object_get(json_array_get(rows, i), "ids"), what))
			bad++;
		int same = t.n == t2.n;
		for (size_t k = 0; same && k < t.n; k++)
			same = t.ids[k] == t2.ids[k];
		CHECKF(same, "%s: .gz and folder differ", what);
		/* spans are ordered and inside the text; words count up from 0 */
		int ok = 1;
		int32_t w = 0;
		for (size_t k = 1; k + 1 < t.n; k++) {
			ok &= t.start[k] < t.end[k] && t.end[k] <= len && t.start[k] >= t.start[k - 1];
			ok &= t.word[k] == w || t.word[k] == w + 1;
			w = t.word[k];
		}
		CHECKF(ok, "%s: spans/words", what);
	}
	CHECK(bad == 0);
	lvd_tokens_free(&t);
	lvd_tokens_free(&t2);
	json_decref(corpus);
	json_decref(g);
	lvd_clip_tok_free(tok);
	lvd_clip_tok_free(gz);
}

static void test_truncate_pad_spans(void)
{
	struct lvd_clip_tok *tok = load("clip");
	if (!tok)
		SKIP("../shared/data absent");
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	struct lvd_error err = {0};
	const char *s = "  A  Cat's &amp; dog\t";
	CHECK(lvd_clip_encode(tok, s, strlen(s), NULL, &t, &err) == 0);
	/* <bos> a</w> cat</w> 's</w> &</w> dog</w> <eos> */
	REQUIRE(t.n == 7);
	CHECK(t.start[1] == 2 && t.end[1] == 3);   /* "A" */
	CHECK(t.start[2] == 5 && t.end[2] == 8);   /* "Cat" */
	CHECK(t.start[3] == 8 && t.end[3] == 10);  /* "'s" */
	CHECK(t.start[4] == 11 && t.end[4] == 16); /* "&amp;" */
	CHECK(t.start[5] == 17 && t.end[5] == 20); /* "dog" */
	CHECK(t.word[0] == -1 && t.word[1] == 0 && t.word[2] == 1 && t.word[3] == 2 && t.word[5] == 4 && t.word[6] == -1);
	/* truncation keeps EOS; SD1 pads with EOS, SD2 with 0 */
	char longtext[2000] = "";
	for (int i = 0; i < 100; i++)
		strcat(longtext, "cat ");
	struct lvd_clip_opts o1 = {77, LVD_CLIP_PAD_EOS}, o2 = {77, LVD_CLIP_PAD_ZERO};
	lvd_tokens_clear(&t);
	CHECK(lvd_clip_encode(tok, longtext, strlen(longtext), &o1, &t, &err) == 0);
	CHECK(t.n == 77 && t.ids[0] == LVD_CLIP_BOS && t.ids[75] == 2368 && t.ids[76] == LVD_CLIP_EOS);
	lvd_tokens_clear(&t);
	CHECK(lvd_clip_encode(tok, "cat", 3, &o1, &t, &err) == 0);
	CHECK(t.n == 77 && t.ids[2] == LVD_CLIP_EOS && t.ids[3] == LVD_CLIP_EOS && t.ids[76] == LVD_CLIP_EOS);
	lvd_tokens_clear(&t);
	CHECK(lvd_clip_encode(tok, "cat", 3, &o2, &t, &err) == 0);
	CHECK(t.n == 77 && t.ids[2] == LVD_CLIP_EOS && t.ids[3] == 0 && t.ids[76] == 0);
	/* invalid UTF-8 */
	CHECK(lvd_clip_encode(tok, "a\xc3", 2, NULL, &t, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "byte 1");
	/* a 1 MB run of one character completes (timing is in the bench) */
	size_t n = 1 << 20;
	char *big = malloc(n);
	memset(big, 'x', n);
	lvd_tokens_clear(&t);
	CHECK(lvd_clip_encode(tok, big, n, NULL, &t, &err) == 0);
	CHECK(t.n > 2);
	free(big);
	lvd_tokens_free(&t);
	lvd_clip_tok_free(tok);
}

static void test_clean(void)
{
	char *c;
	size_t n;
	uint32_t *a, *b;
	struct lvd_error err = {0};
	/* plain text: only case and spaces change */
	CHECK(lvd_clip_clean(" Hello,\t\tWorld ", 15, &c, &n, &a, &b, &err) == 0);
	CHECK_STR(c, "hello, world");
	CHECK(a[0] == 1 && b[0] == 2 && a[6] == 7 && b[6] == 9 && a[7] == 9);
	free(c); free(a); free(b);
	/* entities (twice), NFC, full lowercase of U+0130, Unicode spaces */
	const char *s = "&amp;lt;x&#39;s e\xcc\x81 \xc4\xb0\xc2\xa0\xe3\x80\x80&ampy &#x80; &bogus;";
	CHECK(lvd_clip_clean(s, strlen(s), &c, &n, NULL, NULL, &err) == 0);
	CHECK_STR(c, "<x's \xc3\xa9 i\xcc\x87 &y \xe2\x82\xac &bogus;");
	free(c);
}

static void test_bad_files(void)
{
	char dir[] = "/tmp/lvd-clip-XXXXXX";
	REQUIRE(mkdtemp(dir));
	char p[256];
	struct lvd_clip_tok *tok = NULL;
	struct lvd_error err = {0};
	CHECK(lvd_clip_tok_load(&tok, dir, &err) == LVD_ERR_NOTFOUND);
	snprintf(p, sizeof p, "%s/merges.txt", dir);
	FILE *f = fopen(p, "w");
	fputs("#version: 0.2\ni n\nt h\nzz q\n", f);
	fclose(f);
	CHECK(lvd_clip_tok_load(&tok, dir, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "merges.txt:4");
	f = fopen(p, "w");
	fputs("#version: 0.2\ni n\n", f);
	fclose(f);
	CHECK(lvd_clip_tok_load(&tok, dir, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "expected 48894");
	remove(p);
	snprintf(p, sizeof p, "%s/bpe_simple_vocab_16e6.txt.gz", dir);
	f = fopen(p, "wb");
	fwrite("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xff", 1, 12, f);
	fclose(f);
	CHECK(lvd_clip_tok_load(&tok, dir, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "gzip");
	CHECK(tok == NULL);
	remove(p);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_shared_cases), TEST(test_golden_corpus),
						TEST(test_truncate_pad_spans), TEST(test_clean), TEST(test_bad_files), {0}};
	return lvd_test_main(argc, argv, tests);
}
