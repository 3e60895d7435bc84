/* Philox4x32-10 and the draws built on it; layout documented in rng.h. */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

void lvd_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
	uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
	uint32_t k0 = key[0], k1 = key[1];
	for (int round = 0; round < 10; round++) {
		uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
		uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
		uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
		uint32_t n1 = (uint32_t)p1;
		uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
		uint32_t n3 = (uint32_t)p0;
		c0 = n0; c1 = n1; c2 = n2; c3 = n3;
		k0 += PHILOX_W0;
		k1 += PHILOX_W1;
	}
	out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* The four words of block `block` of (seed, stream). */
static void block_words(uint32_t w[4], uint64_t seed, uint64_t stream, uint64_t block)
{
	const uint32_t ctr[4] = { (uint32_t)block, (uint32_t)(block >> 32),
				  (uint32_t)stream, (uint32_t)(stream >> 32) };
	const uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
	lvd_philox4x32(w, ctr, key);
}

static inline float to_uniform(uint32_t w)
{
	return (float)(w >> 8) * (1.0f / 16777216.0f);
}

/* Box-Muller on one word pair; out[0] = r cos t, out[1] = r sin t. */
static inline void box_muller(float out[2], uint32_t wa, uint32_t wb)
{
	double u1 = ((double)(wa >> 8) + 1.0) * (1.0 / 16777216.0); /* (0, 1] */
	double u2 = (double)(wb >> 8) * (1.0 / 16777216.0);        /* [0, 1) */
	double r = sqrt(-2.0 * log(u1));
	double t = 6.283185307179586476925286766559 * u2;
	out[0] = (float)(r * cos(t));
	out[1] = (float)(r * sin(t));
}

uint32_t lvd_rng_u32(uint64_t seed, uint64_t stream, uint64_t index)
{
	uint32_t w[4];
	block_words(w, seed, stream, index / 4);
	return w[index % 4];
}

float lvd_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index)
{
	return to_uniform(lvd_rng_u32(seed, stream, index));
}

float lvd_rng_normal(uint64_t seed, uint64_t stream, uint64_t index)
{
	uint32_t w[4];
	float z[2];
	block_words(w, seed, stream, index / 4);
	unsigned p = (unsigned)(index % 4) / 2;
	box_muller(z, w[2 * p], w[2 * p + 1]);
	return z[index % 2];
}

uint64_t lvd_rng_below(uint64_t seed, uint64_t stream, uint64_t index, uint64_t n)
{
	uint32_t w[4];
	block_words(w, seed, stream, index / 2);
	unsigned p = (unsigned)(index % 2);
	uint64_t x = (uint64_t)w[2 * p] | (uint64_t)w[2 * p + 1] << 32;
	return (uint64_t)(((unsigned __int128)x * n) >> 64);
}

void lvd_rng_fill_uniform(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
	size_t j = 0;
	while (j < n) {
		uint64_t i = offset + j;
		uint32_t w[4];
		block_words(w, seed, stream, i / 4);
		for (unsigned k = (unsigned)(i % 4); k < 4 && j < n; k++, j++)
			dst[j] = to_uniform(w[k]);
	}
}

void lvd_rng_fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
	size_t j = 0;
	while (j < n) {
		uint64_t i = offset + j;
		uint32_t w[4];
		float z[4];
		block_words(w, seed, stream, i / 4);
		box_muller(z, w[0], w[1]);
		box_muller(z + 2, w[2], w[3]);
		for (unsigned k = (unsigned)(i % 4); k < 4 && j < n; k++, j++)
			dst[j] = z[k];
	}
}

void lvd_rng_shuffle(size_t *idx, size_t n, uint64_t seed, uint64_t stream)
{
	for (size_t k = n; k-- > 1;) {
		size_t j = (size_t)lvd_rng_below(seed, stream, k, (uint64_t)k + 1);
		size_t t = idx[k];
		idx[k] = idx[j];
		idx[j] = t;
	}
}
