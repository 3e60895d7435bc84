/* Tests for lib/io/manifest (+ the line reader and UTF-8 check in lib/io/fileutil):
 * the invalid-line corpus in tests/golden/manifest/, long lines, SD text selection,
 * JSON-array files, and the real files in shared/data (Lavender's ocrvqa sample in
 * {role, content} form, captions.jsonl without ids, the Alpaca placeholder). */
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "io/fileutil.h"
#include "io/manifest.h"

static char g_tmp[64];

static const char *write_tmp(const char *suffix, const void *data, size_t n)
{
	static char path[128];
	if (g_tmp[0])
		unlink(g_tmp);
	snprintf(g_tmp, sizeof g_tmp, "/tmp/lvd-test-manifest-XXXXXX");
	int fd = mkstemp(g_tmp);
	LVD_ASSERT(fd >= 0);
	close(fd);
	unlink(g_tmp);
	snprintf(path, sizeof path, "%s%s", g_tmp, suffix);
	snprintf(g_tmp, sizeof g_tmp, "%s", path);
	FILE *f = fopen(path, "wb");
	LVD_ASSERT(f && fwrite(data, 1, n, f) == n);
	fclose(f);
	return path;
}

static void test_utf8_check(void)
{
	CHECK(lvd_utf8_check("", 0) == 0);
	CHECK(lvd_utf8_check("abc", 3) == 3);
	CHECK(lvd_utf8_check("caf\xc3\xa9", 5) == 5);
	CHECK(lvd_utf8_check("\xe6\x97\xa5\xf0\x9f\x98\x80", 7) == 7);   /* 日 😀 */
	CHECK(lvd_utf8_check("\xf4\x8f\xbf\xbf", 4) == 4);               /* U+10FFFF */
	CHECK(lvd_utf8_check("ab\x80", 3) == 2);                         /* lone continuation */
	CHECK(lvd_utf8_check("\xc0\xaf", 2) == 0);                       /* overlong '/' */
	CHECK(lvd_utf8_check("\xe0\x80\xaf", 3) == 0);                   /* overlong */
	CHECK(lvd_utf8_check("\xed\xa0\x80", 3) == 0);                   /* surrogate */
	CHECK(lvd_utf8_check("\xf4\x90\x80\x80", 4) == 0);               /* > U+10FFFF */
	CHECK(lvd_utf8_check("x\xe6\x97", 3) == 1);                      /* truncated */
	CHECK(lvd_utf8_check("\xf5\x80\x80\x80", 4) == 0);
	CHECK(lvd_utf8_check("a\0b", 3) == 3);                           /* NUL is valid UTF-8 */
}

static void test_corpus(void)
{
	struct lvd_error err = { 0 };
	char *exp;
	size_t elen;
	REQUIRE(lvd_file_read_all(lvd_test_path("tests/golden/manifest/cases.expected"), 1 << 20, &exp,
				  &elen, &err) == LVD_OK);
	struct lvd_manifest *m;
	REQUIRE(lvd_manifest_open(&m, lvd_test_path("tests/golden/manifest/cases.jsonl"), NULL, &err) == LVD_OK);
	struct lvd_sample s = { 0 };
	uint64_t line = 0;
	size_t n_ok = 0, n_bad = 0;
	char *save = NULL;
	for (char *e = strtok_r(exp, "\n", &save); e; e = strtok_r(NULL, "\n", &save)) {
		if (e[0] == '#')
			continue;
		line++;
		if (!strcmp(e, "SKIP"))
			continue; /* blank lines produce nothing; the next call reads past them */
		int rc = lvd_manifest_next(m, &s, &err);
		if (!strncmp(e, "OK ", 3)) {
			CHECKF(rc == LVD_OK, "line %llu: %s", (unsigned long long)line, err.msg);
			if (rc == LVD_OK) {
				CHECK_STR(s.id, e + 3);
				CHECK(s.line == line);
				n_ok++;
			}
		} else {
			char want[600];
			snprintf(want, sizeof want, "cases.jsonl:%llu: %s", (unsigned long long)line, e);
			CHECKF(rc == LVD_ERR_FORMAT || rc == LVD_ERR_INVALID, "line %llu: rc %d", (unsigned long long)line, rc);
			CHECK_CONTAINS(err.msg, want);
			CHECK(s.id == NULL);
			n_bad++;
		}
		CHECK(lvd_manifest_position(m) == line);
	}
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_MANIFEST_EOF);
	CHECK(n_ok == 4 && n_bad > 20);
	lvd_manifest_close(m);
	lvd_sample_clear(&s);
	free(exp);
}

static void test_fields_and_roles(void)
{
	struct lvd_error err = { 0 };
	struct lvd_sample s = { 0 };
	const char *l1 = "{\"id\":\"x\",\"image\":\"a/b.jpg\",\"conversations\":[{\"from\":\"system\",\"value\":\"be brief\"},"
			 "{\"from\":\"human\",\"value\":\"<image>\\nWhat is it?\"},{\"from\":\"gpt\",\"value\":\" A cat. \"},"
			 "{\"from\":\"user\",\"value\":\"Colour?\"},{\"from\":\"assistant\",\"value\":\"Grey.\"}]}";
	REQUIRE(lvd_manifest_parse_line("m.jsonl:3", l1, strlen(l1), NULL, &s, &err) == LVD_OK);
	CHECK_STR(s.id, "x");
	CHECK_STR(s.image, "a/b.jpg");
	CHECK(s.caption == NULL);
	REQUIRE(s.n_turns == 5);
	CHECK(s.turns[0].role == LVD_ROLE_SYSTEM && s.turns[1].role == LVD_ROLE_USER &&
	      s.turns[2].role == LVD_ROLE_ASSISTANT && s.turns[3].role == LVD_ROLE_USER &&
	      s.turns[4].role == LVD_ROLE_ASSISTANT);
	CHECK_STR(s.turns[1].content, "<image>\nWhat is it?");
	CHECK_STR(lvd_role_name(s.turns[2].role), "assistant");

	char *t;
	CHECK(lvd_sample_sd_text(&s, LVD_TEXT_AUTO, &t, &err) == LVD_OK);
	CHECK_STR(t, "A cat. Grey.");
	free(t);
	CHECK(lvd_sample_sd_text(&s, LVD_TEXT_ASSISTANT, &t, &err) == LVD_OK);
	CHECK_STR(t, "A cat. Grey.");
	free(t);
	CHECK(lvd_sample_sd_text(&s, LVD_TEXT_ALL, &t, &err) == LVD_OK);
	CHECK_STR(t, "What is it? A cat. Colour? Grey.");
	free(t);
	CHECK(lvd_sample_sd_text(&s, LVD_TEXT_CAPTION, &t, &err) == LVD_ERR_INVALID && t == NULL);
	CHECK_CONTAINS(err.msg, "sample 'x': no 'caption'");

	const char *l2 = "{\"id\":\"y\",\"caption\":\"  a red <image>bus \",\"conversations\":"
			 "[{\"role\":\"assistant\",\"content\":\"ignored in auto\"}]}";
	REQUIRE(lvd_manifest_parse_line("m.jsonl:4", l2, strlen(l2), NULL, &s, &err) == LVD_OK);
	CHECK(lvd_sample_sd_text(&s, LVD_TEXT_AUTO, &t, &err) == LVD_OK);
	CHECK_STR(t, "a red bus");
	free(t);
	CHECK(lvd_sample_sd_text(&s, LVD_TEXT_ASSISTANT, &t, &err) == LVD_OK);
	CHECK_STR(t, "ignored in auto");
	free(t);

	/* empty results are errors */
	const char *l3 = "{\"id\":\"z\",\"caption\":\" \\n\"}";
	REQUIRE(lvd_manifest_parse_line("m.jsonl:5", l3, strlen(l3), NULL, &s, &err) == LVD_OK);
	CHECK(lvd_sample_sd_text(&s, LVD_TEXT_AUTO, &t, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "sample 'z': empty SD text (the caption is empty)");
	const char *l4 = "{\"id\":\"w\",\"conversations\":[{\"role\":\"user\",\"content\":\"<image>\"}]}";
	REQUIRE(lvd_manifest_parse_line("m.jsonl:6", l4, strlen(l4), NULL, &s, &err) == LVD_OK);
	CHECK(lvd_sample_sd_text(&s, LVD_TEXT_AUTO, &t, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "no caption and no assistant text");
	CHECK(lvd_sample_sd_text(&s, LVD_TEXT_ALL, &t, &err) == LVD_ERR_INVALID);

	int f;
	CHECK(lvd_text_field_parse("assistant", &f, &err) == LVD_OK && f == LVD_TEXT_ASSISTANT);
	CHECK(lvd_text_field_parse("all", &f, &err) == LVD_OK && f == LVD_TEXT_ALL);
	CHECK(lvd_text_field_parse("Caption", &f, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "unknown text field 'Caption'");

	/* id_from_image */
	struct lvd_manifest_opts o = { .id_from_image = 1 };
	const char *l5 = "{\"image\":\"skimage_astronaut.png\",\"caption\":\"x\"}";
	REQUIRE(lvd_manifest_parse_line("m.jsonl:7", l5, strlen(l5), &o, &s, &err) == LVD_OK);
	CHECK_STR(s.id, "skimage_astronaut.png");
	CHECK(lvd_manifest_parse_line("m.jsonl:7", l5, strlen(l5), NULL, &s, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "m.jsonl:7: missing 'id'");
	const char *l6 = "{\"caption\":\"x\"}";
	CHECK(lvd_manifest_parse_line("m.jsonl:8", l6, strlen(l6), &o, &s, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "missing 'id' and no 'image'");
	/* large integer ids keep every digit */
	const char *l7 = "{\"id\":-9007199254740993}";
	REQUIRE(lvd_manifest_parse_line("m.jsonl:9", l7, strlen(l7), NULL, &s, &err) == LVD_OK);
	CHECK_STR(s.id, "-9007199254740993");
	lvd_sample_clear(&s);
}

static void test_long_lines_and_line_endings(void)
{
	/* a 300-byte cap: line 2 is too long, the reader reports it and resumes at line 3;
	 * CRLF endings, a BOM and a missing final newline are all fine */
	char buf[2048];
	size_t n = 0;
	n += (size_t)sprintf(buf + n, "\xEF\xBB\xBF{\"id\":\"first\"}\r\n{\"id\":\"long\",\"caption\":\"");
	for (int i = 0; i < 400; i++) buf[n++] = 'x';
	n += (size_t)sprintf(buf + n, "\"}\r\n\r\n{\"id\":\"after\"}\n{\"id\":\"last\"}");
	const char *p = write_tmp(".jsonl", buf, n);
	struct lvd_error err = { 0 };
	struct lvd_manifest *m;
	struct lvd_manifest_opts o = { .max_line = 300 };
	REQUIRE(lvd_manifest_open(&m, p, &o, &err) == LVD_OK);
	struct lvd_sample s = { 0 };
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_OK);
	CHECK_STR(s.id, "first");
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_ERR_FORMAT);
	char want[200];
	snprintf(want, sizeof want, "%s:2: line longer than 300 bytes", p);
	CHECK_STR(err.msg, want);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_OK);
	CHECK_STR(s.id, "after");
	CHECK(s.line == 4);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_OK);
	CHECK_STR(s.id, "last");
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_MANIFEST_EOF);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_MANIFEST_EOF);
	lvd_manifest_close(m);
	lvd_sample_clear(&s);

	/* the default cap message */
	char sz[32];
	lvd_format_size((size_t)16 << 20, sz, sizeof sz);
	CHECK_STR(sz, "16 MiB");
	lvd_format_size(1536, sz, sizeof sz);
	CHECK_STR(sz, "1.5 KiB");

	/* lines longer than the 64 KiB read buffer are assembled correctly */
	size_t big = 200000;
	char *b = malloc(big + 64);
	REQUIRE(b);
	size_t k = (size_t)sprintf(b, "{\"id\":\"big\",\"caption\":\"");
	for (; k < big; k++) b[k] = (char)('a' + k % 26);
	k += (size_t)sprintf(b + k, "\"}\n");
	p = write_tmp(".jsonl", b, k);
	free(b);
	REQUIRE(lvd_manifest_open(&m, p, NULL, &err) == LVD_OK);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_OK);
	CHECK(s.caption && strlen(s.caption) == big - 23); /* minus the 23-byte prefix {"id":"big","caption":" */
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_MANIFEST_EOF);
	lvd_manifest_close(m);
	lvd_sample_clear(&s);

	/* empty file, missing file */
	p = write_tmp(".jsonl", "", 0);
	REQUIRE(lvd_manifest_open(&m, p, NULL, &err) == LVD_OK);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_MANIFEST_EOF);
	lvd_manifest_close(m);
	CHECK(lvd_manifest_open(&m, "/nonexistent/x.jsonl", NULL, &err) == LVD_ERR_IO);
	CHECK_STR(err.msg, "cannot open '/nonexistent/x.jsonl': No such file or directory");
}

static void test_json_array_files(void)
{
	const char *arr = "  [ {\"id\": \"0\", \"image\": \"i0.jpg\", \"caption\": \"c\"},\n"
			  "    {\"image\": \"i1.jpg\"},\n    {\"id\": 2} ]\n";
	const char *p = write_tmp(".json", arr, strlen(arr));
	struct lvd_error err = { 0 };
	struct lvd_manifest *m;
	struct lvd_sample s = { 0 };
	REQUIRE(lvd_manifest_open(&m, p, NULL, &err) == LVD_OK);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_OK && !strcmp(s.id, "0") && s.line == 1);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_ERR_INVALID);
	char want[200];
	snprintf(want, sizeof want, "%s: element 2: missing 'id'", p);
	CHECK_STR(err.msg, want);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_OK && !strcmp(s.id, "2"));
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_MANIFEST_EOF);
	lvd_manifest_close(m);
	lvd_sample_clear(&s);

	const char *bad = "[{\"id\": \"0\"},\n {\"id\": }]";
	p = write_tmp(".json", bad, strlen(bad));
	CHECK(lvd_manifest_open(&m, p, NULL, &err) == LVD_ERR_FORMAT);
	snprintf(want, sizeof want, "%s:2: invalid JSON at column", p);
	CHECK_CONTAINS(err.msg, want);
	const char *badu = "[{\"id\": \"\xff\"}]";
	p = write_tmp(".json", badu, strlen(badu));
	CHECK(lvd_manifest_open(&m, p, NULL, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "invalid UTF-8 at byte 10");
	struct lvd_manifest_opts o = { .max_file = 8 };
	p = write_tmp(".json", arr, strlen(arr));
	CHECK(lvd_manifest_open(&m, p, &o, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "file larger than 8 bytes");
	unlink(p);
}

static void test_shared_data(void)
{
	const char *data = lvd_test_shared_data();
	if (!data)
		SKIP("shared/data not found (set LVD_SHARED_DATA)");
	char p[4200];
	struct lvd_error err = { 0 };
	struct lvd_manifest *m;
	struct lvd_sample s = { 0 };
	char *t;

	/* Lavender's OCR-VQA sample: a JSON array of {id, image, conversations[{role, content}]} */
	snprintf(p, sizeof p, "%s/vqa/lavender_finetune_format/ocrvqa30k_first20.json", data);
	REQUIRE(lvd_manifest_open(&m, p, NULL, &err) == LVD_OK);
	size_t n = 0;
	int rc;
	while ((rc = lvd_manifest_next(m, &s, &err)) == LVD_OK) {
		CHECK(s.image && s.n_turns >= 2 && s.n_turns % 2 == 0);
		CHECK(s.turns[0].role == LVD_ROLE_USER && !strncmp(s.turns[0].content, "<image>\n", 8));
		CHECK(s.turns[1].role == LVD_ROLE_ASSISTANT);
		if (n == 0) {
			CHECK_STR(s.id, "0");
			CHECK_STR(s.image, "/LOCAL_OCRVQA_IMG_PATH/imgs/image_0.jpg");
			CHECK_STR(s.turns[1].content, "David MACAULAY.");
			REQUIRE(lvd_sample_sd_text(&s, LVD_TEXT_AUTO, &t, &err) == LVD_OK);
			CHECK(!strncmp(t, "David MACAULAY. Underground. Children's Books. Yes", 50));
			free(t);
		}
		n++;
	}
	CHECK(rc == LVD_MANIFEST_EOF);
	CHECK(n == 20);
	lvd_manifest_close(m);

	/* captions.jsonl has no "id": every line fails clearly by default and works with
	 * id_from_image */
	snprintf(p, sizeof p, "%s/images/captions.jsonl", data);
	REQUIRE(lvd_manifest_open(&m, p, NULL, &err) == LVD_OK);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "captions.jsonl:1: missing 'id'");
	lvd_manifest_close(m);
	struct lvd_manifest_opts o = { .id_from_image = 1 };
	REQUIRE(lvd_manifest_open(&m, p, &o, &err) == LVD_OK);
	n = 0;
	while ((rc = lvd_manifest_next(m, &s, &err)) == LVD_OK) {
		CHECK(s.caption && s.image && !strcmp(s.id, s.image));
		REQUIRE(lvd_sample_sd_text(&s, LVD_TEXT_AUTO, &t, &err) == LVD_OK);
		if (!strcmp(s.id, "skimage_astronaut.png"))
			CHECK_STR(t, "a portrait of an astronaut with the American flag");
		free(t);
		n++;
	}
	CHECKF(rc == LVD_MANIFEST_EOF, "%s", err.msg);
	CHECK(n == 39);
	lvd_manifest_close(m);

	/* the Alpaca placeholder: no id, no image -> clear per-line errors */
	snprintf(p, sizeof p, "%s/vqa/lavender_finetune_format/sample_dataset.jsonl", data);
	REQUIRE(lvd_manifest_open(&m, p, &o, &err) == LVD_OK);
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "sample_dataset.jsonl:1: missing 'id' and no 'image' to take it from");
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "sample_dataset.jsonl:2: ");
	CHECK(lvd_manifest_next(m, &s, &err) == LVD_MANIFEST_EOF);
	lvd_manifest_close(m);
	lvd_sample_clear(&s);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_utf8_check),
		TEST(test_corpus),
		TEST(test_fields_and_roles),
		TEST(test_long_lines_and_line_endings),
		TEST(test_json_array_files),
		TEST(test_shared_data),
		{ 0 },
	};
	int rc = lvd_test_main(argc, argv, tests);
	if (g_tmp[0])
		unlink(g_tmp);
	return rc;
}
