/* tests/unit/test_fuzz_regress.c — replays every checked-in fuzz input (seed corpora
 * tests/fuzz/corpus/<target>/ and found-bug inputs tests/fuzz/regress/<target>/)
 * through the same harness functions the libFuzzer build runs (tests/fuzz/fuzz_*.c,
 * included here with LVD_FUZZ_REGRESS), so `make test` needs no clang. A harness
 * aborts on a broken invariant and the sanitizer build (`make test SAN=1`) reports
 * memory errors; each input's path goes to stderr first so a crash names it. One case
 * per target: it fails when the target has no seed input. */
#define LVD_FUZZ_REGRESS 1
#include "harness.h"

#include <dirent.h>

#include "fuzz/fuzz.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "fuzz/fuzz_bench.c"
#include "fuzz/fuzz_clip_tok.c"
#include "fuzz/fuzz_config.c"
#include "fuzz/fuzz_container.c"
#include "fuzz/fuzz_image.c"
#include "fuzz/fuzz_json.c"
#include "fuzz/fuzz_llama_tok.c"
#include "fuzz/fuzz_manifest.c"
#include "fuzz/fuzz_mapsrec.c"
#include "fuzz/fuzz_official_maps.c"
#include "fuzz/fuzz_packrec.c"
#include "fuzz/fuzz_safetensors.c"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs fn on every file of tests/fuzz/<kind>/<target>/ in name order; returns the count. */
static size_t replay_dir(const char *kind, const char *target, int (*fn)(const uint8_t *, size_t))
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s", lvd_test_path("tests/fuzz"));
	size_t dl = strlen(dir);
	snprintf(dir + dl, sizeof dir - dl, "/%s/%s", kind, target);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			char **nn = realloc(names, cap * sizeof *nn);
			REQUIRE(nn != NULL);
			names = nn;
		}
		names[n] = strdup(e->d_name);
		REQUIRE(names[n] != NULL);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	size_t ran = 0;
	for (size_t i = 0; i < n; i++) {
		char path[2048];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "rb");
		CHECKF(f != NULL, "cannot open %s", path);
		if (f) {
			uint8_t *buf = NULL;
			size_t len = 0, bcap = 0, got;
			do {
				if (len == bcap) {
					bcap = bcap ? 2 * bcap : 4096;
					uint8_t *nb = realloc(buf, bcap);
					REQUIRE(nb != NULL);
					buf = nb;
				}
				got = fread(buf + len, 1, bcap - len, f);
				len += got;
			} while (got > 0);
			fclose(f);
			fprintf(stderr, "  input %s (%zu bytes)\n", path, len);
			/* a copy of exactly len bytes, so ASan sees reads past the input */
			uint8_t *exact = malloc(len ? len : 1);
			REQUIRE(exact != NULL);
			if (len)
				memcpy(exact, buf, len);
			free(buf);
			CHECK(fn(exact, len) == 0);
			free(exact);
			ran++;
		}
		free(names[i]);
	}
	free(names);
	return ran;
}

static void replay(const char *target, int (*fn)(const uint8_t *, size_t))
{
	size_t seeds = replay_dir("corpus", target, fn);
	size_t regress = replay_dir("regress", target, fn);
	CHECKF(seeds > 0, "no seed inputs in tests/fuzz/corpus/%s", target);
	fprintf(stderr, "  %s: %zu seed + %zu regression inputs\n", target, seeds, regress);
}

#define REPLAY_CASE(t) \
	static void test_##t(void) { replay(#t, fuzz_##t); }
REPLAY_CASE(bench)
REPLAY_CASE(clip_tok)
REPLAY_CASE(config)
REPLAY_CASE(container)
REPLAY_CASE(image)
REPLAY_CASE(json)
REPLAY_CASE(llama_tok)
REPLAY_CASE(manifest)
REPLAY_CASE(mapsrec)
REPLAY_CASE(official_maps)
REPLAY_CASE(packrec)
REPLAY_CASE(safetensors)

/* Found-bug inputs whose harness cannot see the bug (no MSan here) get a direct check. */
static void test_jpeg_without_sof(void)
{
	/* tests/fuzz/regress/image/jpeg-no-sof: the sizes were read uninitialised
	 * (garbage "image size 889253892x22093 exceeds the limit") */
	static const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xd9};
	struct lvd_image img = {0};
	struct lvd_error err = {0};
	CHECK(lvd_image_decode(&img, jpg, sizeof jpg, LVD_ALPHA_DROP, "x.jpg", &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "x.jpg: corrupt JPEG header: no frame (SOF) marker");
	CHECK(img.px == NULL && img.w == 0);
}

/* tests/fuzz/regress/image/jpeg-header-28320x9473-in-690-bytes (found by a 10-minute
 * fuzz run): a 690-byte JPEG claiming 268 M pixels was decoded in full (37 s, 0.9 GB
 * under ASan) before failing as truncated; the header check now refuses it at once. A
 * real photo of the corpus passes the same check. */
static void test_jpeg_bomb(void)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct lvd_error err = {0};
	REQUIRE(lvd_file_read_all(lvd_test_path("tests/fuzz/regress/image/jpeg-header-28320x9473-in-690-bytes"),
				  1 << 20, (char **)&buf, &len, &err) == 0);
	struct lvd_image img = {0};
	CHECK(lvd_image_decode(&img, buf, len, LVD_ALPHA_DROP, "bomb.jpg", &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "bomb.jpg: a 28320x9473 JPEG cannot be encoded in 690 bytes");
	CHECK(img.px == NULL);
	free(buf);
	buf = NULL;
	REQUIRE(lvd_file_read_all(lvd_test_path("tests/fuzz/corpus/image/src_q90.jpg"), 1 << 20, (char **)&buf, &len,
				  &err) == 0);
	CHECK(lvd_image_decode(&img, buf, len, LVD_ALPHA_DROP, "src_q90.jpg", &err) == LVD_OK && img.px);
	lvd_image_free(&img);
	free(buf);
}

/* The harness list above must match tests/fuzz/fuzz_*.c (a new harness gets replayed). */
static void test_all_harnesses_listed(void)
{
	static const char *const listed[] = {"bench", "clip_tok", "config", "container", "image", "json",
					     "llama_tok", "manifest", "mapsrec", "official_maps", "packrec",
					     "safetensors"};
	DIR *d = opendir(lvd_test_path("tests/fuzz"));
	REQUIRE(d != NULL);
	struct dirent *e;
	size_t found = 0;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (strncmp(e->d_name, "fuzz_", 5) != 0 || l < 8 || strcmp(e->d_name + l - 2, ".c") != 0)
			continue;
		found++;
		int ok = 0;
		for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
			ok |= strlen(listed[i]) == l - 7 && strncmp(e->d_name + 5, listed[i], l - 7) == 0;
		CHECKF(ok, "tests/fuzz/%s is not replayed by test_fuzz_regress", e->d_name);
	}
	closedir(d);
	CHECK(found == sizeof listed / sizeof listed[0]);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_bench), TEST(test_clip_tok), TEST(test_config), TEST(test_container),
		TEST(test_image), TEST(test_json), TEST(test_llama_tok), TEST(test_manifest),
		TEST(test_mapsrec), TEST(test_official_maps), TEST(test_packrec), TEST(test_safetensors),
		TEST(test_jpeg_without_sof), TEST(test_jpeg_bomb), TEST(test_all_harnesses_listed), {0},
	};
	return lvd_test_main(argc, argv, tests);
}
