/* Tests for lib/core/rng: Philox4x32-10 known answers (Random123 kat_vectors),
 * counter layout, fill/splitting invariance, distribution moments, shuffle. */
#include <stdint.h>

#include "harness.h"
#include "core/rng.h"

static void test_philox_known_answers(void)
{
	/* Random123 kat_vectors, philox4x32 10 rounds: ctr[4] key[2] -> out[4] */
	static const uint32_t kat[3][10] = {
		{ 0, 0, 0, 0, 0, 0,
		  0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 },
		{ 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
		  0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd },
		{ 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
		  0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 },
	};
	for (int t = 0; t < 3; t++) {
		uint32_t out[4];
		lvd_philox4x32(out, kat[t], kat[t] + 4);
		for (int k = 0; k < 4; k++)
			CHECKF(out[k] == kat[t][6 + k], "vector %d word %d: got %08x want %08x",
			       t, k, out[k], kat[t][6 + k]);
	}
	/* in-place (out aliases ctr) */
	uint32_t c[4] = { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344 };
	lvd_philox4x32(c, c, kat[2] + 4);
	CHECK(c[0] == 0xd16cfe09 && c[3] == 0x24126ea1);
}

static void test_counter_layout(void)
{
	/* u32 index i of (seed, stream) is word i%4 of philox({i/4 lo, hi, stream lo, hi}, seed) */
	uint64_t seed = 0x299f31d0a4093822ull, stream = 0x0370734413198a2eull;
	uint64_t block = 0x05a308d3243f6a88ull; /* index = 4*block must fit in 64 bits */
	const uint32_t ctr[4] = { 0x243f6a88, 0x05a308d3, 0x13198a2e, 0x03707344 };
	const uint32_t key[2] = { 0xa4093822, 0x299f31d0 };
	uint32_t want[4];
	lvd_philox4x32(want, ctr, key);
	for (unsigned k = 0; k < 4; k++)
		CHECK(lvd_rng_u32(seed, stream, block * 4 + k) == want[k]);
	CHECK(lvd_rng_u32(0, 0, 2) == 0xbc57ac4c);
	/* uniform = top 24 bits / 2^24 */
	CHECK(lvd_rng_uniform(0, 0, 0) == (float)(0x6627e8d5u >> 8) / 16777216.0f);
	/* last index: block 2^62-1, word 3; seed and stream all ones */
	const uint32_t c2[4] = { 0xffffffff, 0x3fffffff, 0xffffffff, 0xffffffff };
	const uint32_t k2[2] = { 0xffffffff, 0xffffffff };
	lvd_philox4x32(want, c2, k2);
	CHECK(lvd_rng_uniform(~0ull, ~0ull, ~0ull) == (float)(want[3] >> 8) / 16777216.0f);
	/* normal from words 0,1 of block 0: explicit Box-Muller */
	double u1 = ((0x6627e8d5u >> 8) + 1.0) / 16777216.0, u2 = (0xe169c58du >> 8) / 16777216.0;
	double r = sqrt(-2 * log(u1));
	CHECK(lvd_rng_normal(0, 0, 0) == (float)(r * cos(2 * M_PI * u2)));
	CHECK(lvd_rng_normal(0, 0, 1) == (float)(r * sin(2 * M_PI * u2)));
	/* different seeds / streams differ */
	CHECK(lvd_rng_u32(1, 0, 0) != lvd_rng_u32(0, 0, 0));
	CHECK(lvd_rng_u32(0, 1, 0) != lvd_rng_u32(0, 0, 0));
	/* cursor */
	struct lvd_rng g = lvd_rng_make(5, 6);
	CHECK(lvd_rng_next_u32(&g) == lvd_rng_u32(5, 6, 0));
	CHECK(lvd_rng_next_uniform(&g) == lvd_rng_uniform(5, 6, 1));
	CHECK(lvd_rng_next_normal(&g) == lvd_rng_normal(5, 6, 2));
	CHECK(g.index == 3);
}

static void test_fill_split_invariance(void)
{
	enum { N = 1037 };
	static float a[N], b[N], u[N];
	lvd_rng_fill_normal(a, N, 42, 7, 3);
	for (size_t j = 0; j < N; j++)
		if (a[j] != lvd_rng_normal(42, 7, 3 + j)) { CHECKF(0, "normal %zu", j); break; }
	/* uneven pieces, each with its own offset */
	size_t cuts[] = { 0, 1, 2, 7, 64, 65, 500, 1036, N };
	for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++)
		lvd_rng_fill_normal(b + cuts[c], cuts[c + 1] - cuts[c], 42, 7, 3 + cuts[c]);
	CHECK(memcmp(a, b, sizeof a) == 0);
	lvd_rng_fill_uniform(u, N, 42, 7, 5);
	int ok = 1;
	for (size_t j = 0; j < N; j++)
		ok &= u[j] == lvd_rng_uniform(42, 7, 5 + j) && u[j] >= 0.0f && u[j] < 1.0f;
	CHECK(ok);
}

static void test_moments(void)
{
	/* 2^18 draws: standard errors of mean ~0.002, of variance ~0.003. Tolerances are
	 * about 5 standard errors, so a correct generator fails with negligible odds while a
	 * wrong layout (e.g. both outputs from one uniform) fails by far. */
	enum { N = 1 << 18 };
	float *z = malloc(N * sizeof *z);
	REQUIRE(z);
	lvd_rng_fill_normal(z, N, 1234, 0, 0);
	double m1 = 0, m2 = 0, m3 = 0, m4 = 0, mx = 0;
	size_t within1 = 0;
	for (size_t i = 0; i < N; i++) {
		double x = z[i];
		m1 += x; m2 += x * x; m3 += x * x * x; m4 += x * x * x * x;
		if (fabs(x) > mx) mx = fabs(x);
		within1 += fabs(x) < 1.0;
	}
	m1 /= N; m2 /= N; m3 /= N; m4 /= N;
	CHECK_NEAR(m1, 0.0, 0.01);
	CHECK_NEAR(m2, 1.0, 0.015);
	CHECK_NEAR(m3, 0.0, 0.03);   /* sd of sample skew ~ sqrt(15/N) = 0.0076 */
	CHECK_NEAR(m4, 3.0, 0.1);    /* sd of 4th moment ~ sqrt(96/N) = 0.019 */
	CHECK_NEAR((double)within1 / N, 0.682689, 0.005); /* binomial sd 0.0009 */
	CHECK(mx < 6.5);             /* |z| <= sqrt(-2 ln 2^-24) = 5.77 by construction */
	double c = 0;
	for (size_t i = 0; i + 1 < N; i += 2)
		c += (double)z[i] * z[i + 1];
	CHECK_NEAR(c / (N / 2), 0.0, 0.015); /* cos/sin pair is uncorrelated; sd 0.002 */
	free(z);

	/* uniform: mean 1/2, variance 1/12 */
	float *u = malloc(N * sizeof *u);
	REQUIRE(u);
	lvd_rng_fill_uniform(u, N, 99, 3, 0);
	double s = 0, s2 = 0;
	for (size_t i = 0; i < N; i++) { s += u[i]; s2 += (double)u[i] * u[i]; }
	s /= N; s2 = s2 / N - s * s;
	CHECK_NEAR(s, 0.5, 0.003);          /* sd 0.00056 */
	CHECK_NEAR(s2, 1.0 / 12, 0.002);    /* sd 0.00016 */
	free(u);
}

static void test_below_and_shuffle(void)
{
	size_t hist[10] = { 0 };
	for (uint64_t i = 0; i < 100000; i++) {
		uint64_t v = lvd_rng_below(7, 1, i, 10);
		REQUIRE(v < 10);
		hist[v]++;
	}
	for (int k = 0; k < 10; k++)
		CHECK_NEAR(hist[k], 10000, 500); /* binomial sd 95 */
	CHECK(lvd_rng_below(7, 1, 5, 1) == 0);

	enum { N = 1000 };
	size_t a[N], b[N], seen[N] = { 0 };
	for (size_t i = 0; i < N; i++) a[i] = b[i] = i;
	lvd_rng_shuffle(a, N, 11, 2);
	lvd_rng_shuffle(b, N, 11, 2);
	CHECK(memcmp(a, b, sizeof a) == 0);
	size_t fixed = 0;
	for (size_t i = 0; i < N; i++) { REQUIRE(a[i] < N); seen[a[i]]++; fixed += a[i] == i; }
	int perm = 1;
	for (size_t i = 0; i < N; i++) perm &= seen[i] == 1;
	CHECK(perm);
	CHECK(fixed < 10); /* expected 1 fixed point for a random permutation */
	for (size_t i = 0; i < N; i++) b[i] = i;
	lvd_rng_shuffle(b, N, 12, 2);
	CHECK(memcmp(a, b, sizeof a) != 0);
	lvd_rng_shuffle(b, 0, 1, 1); /* no-op */
	lvd_rng_shuffle(b, 1, 1, 1);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_philox_known_answers),
		TEST(test_counter_layout),
		TEST(test_fill_split_invariance),
		TEST(test_moments),
		TEST(test_below_and_shuffle),
		{ 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
