/* Tests for lib/core/pool: chunking arithmetic, every item visited exactly once,
 * results identical for 1, 2, 3, 4 and 8 threads, error propagation, reuse, concurrent
 * callers. Run under ASan (make test SAN=1); TSan builds it cleanly too. */
#include <pthread.h>
#include <stdint.h>

#include "harness.h"
#include "core/pool.h"

static void test_chunking(void)
{
	size_t b, e;
	/* chunks tile [0, n) in order for many (n, T) */
	int ok = 1;
	for (size_t n = 0; n < 50; n++)
		for (int T = 1; T <= 9; T++) {
			size_t next = 0;
			for (int t = 0; t < T; t++) {
				lvd_pool_chunk(n, T, t, &b, &e);
				ok &= b == next && e >= b && e - b <= n / T + 1;
				next = e;
			}
			ok &= next == n;
		}
	CHECK(ok);
	lvd_pool_chunk(10, 4, 0, &b, &e);
	CHECK(b == 0 && e == 2);
	lvd_pool_chunk(10, 4, 3, &b, &e);
	CHECK(b == 7 && e == 10);
	/* no overflow near SIZE_MAX */
	lvd_pool_chunk(SIZE_MAX, 3, 2, &b, &e);
	CHECK(e == SIZE_MAX && b == SIZE_MAX / 3 * 2); /* SIZE_MAX = 2^64-1 is divisible by 3 */
	lvd_pool_chunk(SIZE_MAX - 1, 7, 6, &b, &e);
	CHECK(e == SIZE_MAX - 1 && b < e);
}

struct sum_ctx {
	const float *x;
	double partial[16];
	unsigned char *visits;
	int fail_at_thread; /* -1: none */
};

static int sum_fn(void *vctx, size_t begin, size_t end, int tid)
{
	struct sum_ctx *c = vctx;
	double s = 0;
	for (size_t i = begin; i < end; i++) {
		s += c->x[i];
		c->visits[i]++;
	}
	c->partial[tid] = s;
	return tid >= c->fail_at_thread && c->fail_at_thread >= 0 ? 10 + tid : 0;
}

static double pooled_sum(struct lvd_pool *p, const float *x, size_t n, unsigned char *visits, int *rc)
{
	struct sum_ctx c = { .x = x, .visits = visits, .fail_at_thread = -1 };
	memset(visits, 0, n);
	*rc = lvd_pool_parallel_for(p, n, sum_fn, &c);
	double s = 0;
	for (int t = 0; t < lvd_pool_threads(p); t++)
		s += c.partial[t];
	return s;
}

static void test_sums_equal_across_thread_counts(void)
{
	enum { N = 100003 };
	float *x = malloc(N * sizeof *x);
	unsigned char *v = malloc(N);
	REQUIRE(x && v);
	for (size_t i = 0; i < N; i++)
		x[i] = (float)((i * 2654435761u) % 1000) / 7.0f - 50.0f;
	double exact = 0;
	for (size_t i = 0; i < N; i++) exact += x[i];
	int counts[] = { 1, 2, 3, 4, 8 };
	double first_by_t[9] = { 0 };
	for (size_t k = 0; k < 5; k++) {
		struct lvd_pool *p = NULL;
		struct lvd_error err = { 0 };
		REQUIRE(lvd_pool_create(&p, counts[k], &err) == LVD_OK);
		CHECK(lvd_pool_threads(p) == counts[k]);
		for (int rep = 0; rep < 20; rep++) {
			int rc;
			double s = pooled_sum(p, x, N, v, &rc);
			CHECK(rc == 0);
			/* same thread count -> bit-identical result every time */
			if (rep == 0) first_by_t[counts[k]] = s;
			else CHECK(s == first_by_t[counts[k]]);
			/* 1e-6 relative: different chunkings reorder a double sum of floats */
			CHECK_NEAR(s, exact, 1e-6 * N * 50);
		}
		int once = 1;
		for (size_t i = 0; i < N; i++) once &= v[i] == 1;
		CHECK(once);
		lvd_pool_destroy(p);
	}
	/* fewer items than threads: empty chunks are not called */
	struct lvd_pool *p = NULL;
	REQUIRE(lvd_pool_create(&p, 8, NULL) == LVD_OK);
	int rc;
	CHECK(pooled_sum(p, x, 3, v, &rc) == (double)x[0] + x[1] + x[2] && rc == 0);
	CHECK(v[0] == 1 && v[1] == 1 && v[2] == 1);
	CHECK(lvd_pool_parallel_for(p, 0, sum_fn, NULL) == 0);
	lvd_pool_destroy(p);
	/* NULL pool runs inline */
	CHECK(pooled_sum(NULL, x, 1000, v, &rc) > -1e30 && rc == 0);
	free(x);
	free(v);
}

static void test_errors(void)
{
	struct lvd_pool *p = NULL;
	struct lvd_error err = { 0 };
	CHECK(lvd_pool_create(&p, -1, &err) == LVD_ERR_INVALID && p == NULL);
	CHECK_CONTAINS(err.msg, "thread count -1");
	CHECK(lvd_pool_create(&p, 5000, &err) == LVD_ERR_INVALID);
	REQUIRE(lvd_pool_create(&p, 0, &err) == LVD_OK);
	CHECK(lvd_pool_threads(p) >= 1);
	lvd_pool_destroy(p);
	lvd_pool_destroy(NULL);

	REQUIRE(lvd_pool_create(&p, 4, &err) == LVD_OK);
	enum { N = 400 };
	float x[N] = { 0 };
	unsigned char v[N] = { 0 };
	/* threads 2 and 3 fail: the lowest failing thread's code wins; all chunks ran */
	struct sum_ctx c = { .x = x, .visits = v, .fail_at_thread = 2 };
	CHECK(lvd_pool_parallel_for(p, N, sum_fn, &c) == 12);
	int once = 1;
	for (size_t i = 0; i < N; i++) once &= v[i] == 1;
	CHECK(once);
	/* the pool is still usable afterwards */
	c.fail_at_thread = -1;
	memset(v, 0, N);
	CHECK(lvd_pool_parallel_for(p, N, sum_fn, &c) == 0);
	lvd_pool_destroy(p);
}

struct caller_arg {
	struct lvd_pool *pool;
	const float *x;
	double result;
	int rc;
};

static void *caller_main(void *va)
{
	struct caller_arg *a = va;
	unsigned char *v = malloc(5000);
	a->result = 0;
	for (int rep = 0; rep < 50 && v; rep++)
		a->result += pooled_sum(a->pool, a->x, 5000, v, &a->rc);
	free(v);
	return NULL;
}

static void test_concurrent_callers(void)
{
	/* two threads share one pool: calls are serialised, both get correct sums */
	static float x[5000];
	for (int i = 0; i < 5000; i++) x[i] = 1.0f;
	struct lvd_pool *p = NULL;
	REQUIRE(lvd_pool_create(&p, 3, NULL) == LVD_OK);
	struct caller_arg a = { p, x, 0, -1 }, b = { p, x, 0, -1 };
	pthread_t ta, tb;
	REQUIRE(pthread_create(&ta, NULL, caller_main, &a) == 0);
	REQUIRE(pthread_create(&tb, NULL, caller_main, &b) == 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(a.result == 250000.0 && b.result == 250000.0);
	CHECK(a.rc == 0 && b.rc == 0);
	lvd_pool_destroy(p);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_chunking),
		TEST(test_sums_equal_across_thread_counts),
		TEST(test_errors),
		TEST(test_concurrent_callers),
		{ 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
