/* tests/harness.h — the one test harness (header-only; include once per test binary).
 *
 *   static void test_roundtrip(void) { CHECK(x == 3); CHECK_NEAR(a, b, 1e-6); }
 *   int main(int argc, char **argv) {
 *       static const struct lvd_test tests[] = { TEST(test_roundtrip), {0} };
 *       return lvd_test_main(argc, argv, tests);
 *   }
 *
 * A test case passes when none of its CHECKs fail; SKIP("reason") ends the case as
 * skipped (reason printed). The last line is "N passed, N failed, N skipped" and the
 * exit status is 1 when anything failed. A case name given on the command line runs
 * only the cases whose names contain it. LVD_SRCDIR (env) points tests at the source
 * tree; lvd_test_path("tests/golden/x") builds a path under it. */
#ifndef LVD_TEST_HARNESS_H
#define LVD_TEST_HARNESS_H

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lvd_test {
	const char *name;
	void (*fn)(void);
};
#define TEST(fn) { #fn, fn }

static int lvd_t_fail_count;   /* failed CHECKs in the current case */
static int lvd_t_skipped;
static jmp_buf lvd_t_jmp;

#define CHECK(cond) \
	do { if (!(cond)) { lvd_t_fail_count++; \
		fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

#define CHECKF(cond, ...) \
	do { if (!(cond)) { lvd_t_fail_count++; \
		fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* |a-b| <= tol (NaN fails) */
#define CHECK_NEAR(a, b, tol) \
	do { double lvd_a_ = (double)(a), lvd_b_ = (double)(b); \
		if (!(fabs(lvd_a_ - lvd_b_) <= (double)(tol))) { lvd_t_fail_count++; \
		fprintf(stderr, "  FAIL %s:%d: %s = %.9g, %s = %.9g, |diff| %.3g > tol %.3g\n", \
			__FILE__, __LINE__, #a, lvd_a_, #b, lvd_b_, fabs(lvd_a_ - lvd_b_), (double)(tol)); } } while (0)

#define CHECK_STR(a, b) \
	do { const char *lvd_sa_ = (a), *lvd_sb_ = (b); \
		if (!lvd_sa_ || !lvd_sb_ || strcmp(lvd_sa_, lvd_sb_) != 0) { lvd_t_fail_count++; \
		fprintf(stderr, "  FAIL %s:%d: %s = \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
			#a, lvd_sa_ ? lvd_sa_ : "(null)", lvd_sb_ ? lvd_sb_ : "(null)"); } } while (0)

/* substring check, handy for error messages */
#define CHECK_CONTAINS(hay, needle) \
	do { const char *lvd_h_ = (hay), *lvd_n_ = (needle); \
		if (!lvd_h_ || !strstr(lvd_h_, lvd_n_)) { lvd_t_fail_count++; \
		fprintf(stderr, "  FAIL %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
			lvd_h_ ? lvd_h_ : "(null)", lvd_n_); } } while (0)

/* Fatal variant: stop the case when the condition fails (e.g. a NULL you would deref). */
#define REQUIRE(cond) \
	do { if (!(cond)) { lvd_t_fail_count++; \
		fprintf(stderr, "  FAIL %s:%d: %s (required; case stopped)\n", __FILE__, __LINE__, #cond); \
		longjmp(lvd_t_jmp, 1); } } while (0)

#define SKIP(...) \
	do { lvd_t_skipped = 1; fprintf(stderr, "  SKIP: "); fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); longjmp(lvd_t_jmp, 1); } while (0)

/* Compare two float arrays: max |a-b| <= atol + rtol*max|b|; prints the worst index. */
static inline int lvd_t_check_close(const char *file, int line, const char *what,
				    const float *a, const float *b, size_t n, double atol, double rtol)
{
	double worst = 0, scale = 0;
	size_t wi = 0;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - (double)b[i]);
		if (d != d) { worst = INFINITY; wi = i; break; }
		if (d > worst) { worst = d; wi = i; }
		if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
	}
	double tol = atol + rtol * scale;
	if (!(worst <= tol)) {
		lvd_t_fail_count++;
		fprintf(stderr, "  FAIL %s:%d: %s: max |diff| %.3g at [%zu] (got %.9g, want %.9g) > tol %.3g (scale %.3g)\n",
			file, line, what, worst, wi, n ? (double)a[wi] : 0.0, n ? (double)b[wi] : 0.0, tol, scale);
		return 0;
	}
	return 1;
}
#define CHECK_CLOSE(what, a, b, n, atol, rtol) \
	lvd_t_check_close(__FILE__, __LINE__, (what), (a), (b), (n), (atol), (rtol))

static inline const char *lvd_test_path(const char *rel)
{
	static char buf[8][4096];
	static int k;
	const char *root = getenv("LVD_SRCDIR");
	char *out = buf[k++ & 7];
	snprintf(out, sizeof buf[0], "%s/%s", root && *root ? root : ".", rel);
	return out;
}

/* ../shared/data relative to the source tree, or LVD_SHARED_DATA; NULL if absent. */
static inline const char *lvd_test_shared_data(void)
{
	static char buf[4096];
	const char *env = getenv("LVD_SHARED_DATA");
	if (env && *env)
		snprintf(buf, sizeof buf, "%s", env);
	else
		snprintf(buf, sizeof buf, "%s", lvd_test_path("../shared/data"));
	FILE *f;
	char probe[4200];
	snprintf(probe, sizeof probe, "%s/README.md", buf);
	if (!(f = fopen(probe, "rb")))
		return NULL;
	fclose(f);
	return buf;
}

static inline void lvd_t_run(void (*fn)(void))
{
	if (setjmp(lvd_t_jmp) == 0)
		fn();
}

static inline int lvd_test_main(int argc, char **argv, const struct lvd_test *tests)
{
	int passed = 0, failed = 0, skipped = 0;
	const char *filter = argc > 1 ? argv[1] : NULL;
	for (const struct lvd_test *t = tests; t->name; t++) {
		if (filter && !strstr(t->name, filter))
			continue;
		lvd_t_fail_count = 0;
		lvd_t_skipped = 0;
		lvd_t_run(t->fn);
		if (lvd_t_fail_count) {
			failed++;
			fprintf(stderr, "FAIL %s (%d checks)\n", t->name, lvd_t_fail_count);
		} else if (lvd_t_skipped) {
			skipped++;
			fprintf(stderr, "SKIP %s\n", t->name);
		} else {
			passed++;
			if (getenv("LVD_TEST_VERBOSE"))
				fprintf(stderr, "ok   %s\n", t->name);
		}
	}
	printf("%s: %d passed, %d failed, %d skipped\n", argv[0], passed, failed, skipped);
	return failed ? 1 : 0;
}

#endif
