/* Tests for lib/core/progress with a fake clock and a memory stream: line mode period,
 * tty redraw rate limit, rate/ETA text, summary, unknown totals, NULL safety. */
#include <stdint.h>

#include "harness.h"
#include "core/progress.h"

static double fake_now;
static double fake_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;
	for (; *s; s++) n += *s == c;
	return n;
}

static void test_line_mode(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	REQUIRE(f);
	fake_now = 100.0;
	struct lvd_progress_opts o = { .unit = "images", .tty = 0, .interval_s = 10,
				       .clock = fake_clock };
	struct lvd_progress *p = lvd_progress_create(f, "sd-attnmap", 1000, &o);
	REQUIRE(p);
	/* 1 item per 0.1 s for 25 s: lines at t = 10 and 20 only */
	for (int i = 1; i <= 250; i++) {
		fake_now = 100.0 + i * 0.1;
		lvd_progress_add(p, 1);
	}
	fflush(f);
	CHECK(count_char(buf, '\n') == 2);
	CHECK(count_char(buf, '\r') == 0);
	CHECK_CONTAINS(buf, "sd-attnmap: 100/1000 images (10.0%), 10.0/s, ETA 1m30s\n");
	CHECK_CONTAINS(buf, "sd-attnmap: 200/1000 images (20.0%), 10.0/s, ETA 1m20s\n");
	fake_now = 189.0;
	lvd_progress_set(p, 1000);
	lvd_progress_finish(p);
	lvd_progress_finish(p); /* prints once */
	fclose(f);
	CHECK_CONTAINS(buf, "sd-attnmap: 1000/1000 images (100.0%), 11.2/s, ETA 0s\n"
			    "sd-attnmap: 1000/1000 images done in 1m29s (11.2/s)\n");
	CHECK(count_char(buf, '\n') == 4);
	lvd_progress_destroy(p);
	free(buf);
}

static void test_tty_mode_rate_limit(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	REQUIRE(f);
	fake_now = 0;
	struct lvd_progress_opts o = { .tty = 1, .clock = fake_clock };
	struct lvd_progress *p = lvd_progress_create(f, "lvd-pack", 0, &o);
	REQUIRE(p);
	/* 10 s of updates every millisecond: at most 6 redraws per second */
	for (int i = 1; i <= 10000; i++) {
		fake_now = i * 0.001;
		lvd_progress_add(p, 3);
	}
	fflush(f);
	size_t redraws = count_char(buf, '\r');
	CHECK(redraws >= 55 && redraws <= 60);
	CHECK(count_char(buf, '\n') == 0);
	/* first redraw after 1/6 s: 0.167 s * 3000/s = 501 */
	CHECK(strncmp(buf, "\rlvd-pack: 501 items, 3000.0/s\rlvd-pack: 1002 items", 51) == 0);
	lvd_progress_finish(p);
	fclose(f);
	/* the summary replaces the live line and ends it */
	size_t n = strlen(buf);
	CHECK(n > 0 && buf[n - 1] == '\n');
	CHECK_CONTAINS(buf, "\rlvd-pack: 30000 items done in 10s (3000.0/s)\n");
	lvd_progress_destroy(p);
	free(buf);
}

static void test_tty_blanks_shorter_line(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	REQUIRE(f);
	fake_now = 0;
	struct lvd_progress_opts o = { .tty = 1, .clock = fake_clock, .unit = "records" };
	struct lvd_progress *p = lvd_progress_create(f, "x", 100000, &o);
	fake_now = 1;
	lvd_progress_set(p, 12345);   /* "x: 12345/100000 records (12.3%), 12345.0/s, ETA 7s" */
	fake_now = 2;
	lvd_progress_set(p, 1);       /* shorter line: old characters are blanked */
	fflush(f);
	const char *second = strrchr(buf, '\r');
	REQUIRE(second);
	CHECK_CONTAINS(buf, "x: 12345/100000 records (12.3%), 12345.0/s, ETA 7s");
	/* after the shorter text comes padding, then a re-print of the shorter text */
	CHECK_CONTAINS(buf, "x: 1/100000 records (0.0%), 0.5/s, ETA 2d07h     ");
	CHECK_STR(second, "\rx: 1/100000 records (0.0%), 0.5/s, ETA 2d07h");
	fclose(f);
	lvd_progress_destroy(p);
	free(buf);
}

static void test_durations_and_null(void)
{
	char b[32];
	lvd_progress_format_duration(0, b, sizeof b); CHECK_STR(b, "0s");
	lvd_progress_format_duration(59.4, b, sizeof b); CHECK_STR(b, "59s");
	lvd_progress_format_duration(67, b, sizeof b); CHECK_STR(b, "1m07s");
	lvd_progress_format_duration(3600 * 2 + 180, b, sizeof b); CHECK_STR(b, "2h03m");
	lvd_progress_format_duration(86400 * 3 + 3600 * 4, b, sizeof b); CHECK_STR(b, "3d04h");
	lvd_progress_format_duration(-1, b, sizeof b); CHECK_STR(b, "?");
	lvd_progress_format_duration(NAN, b, sizeof b); CHECK_STR(b, "?");
	/* NULL reporter and NULL stream are silent no-ops */
	lvd_progress_add(NULL, 1);
	lvd_progress_set(NULL, 1);
	lvd_progress_finish(NULL);
	lvd_progress_destroy(NULL);
	struct lvd_progress *p = lvd_progress_create(NULL, "q", 10, NULL);
	REQUIRE(p);
	lvd_progress_add(p, 5);
	lvd_progress_finish(p);
	lvd_progress_destroy(p);
	/* a reporter created with defaults on a non-tty stream uses the real clock */
	FILE *f = tmpfile();
	REQUIRE(f);
	p = lvd_progress_create(f, "r", 2, NULL);
	lvd_progress_add(p, 2);
	lvd_progress_finish(p);
	long size = ftell(f);
	CHECK(size > 0);
	rewind(f);
	char line[200] = { 0 };
	CHECK(fgets(line, sizeof line, f) != NULL);
	CHECK_CONTAINS(line, "r: 2/2 items done in 0s");
	fclose(f);
	lvd_progress_destroy(p);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_line_mode),
		TEST(test_tty_mode_rate_limit),
		TEST(test_tty_blanks_shorter_line),
		TEST(test_durations_and_null),
		{ 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
