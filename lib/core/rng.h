/* lib/core/rng.h — counter-based random numbers (Philox4x32-10).
 *
 * Every random value in lvd is a pure function of (seed, stream, index): there is no
 * hidden state, so results do not depend on the thread count, the batch split or the
 * shard split. Callers pick a stream per purpose (noise draws, dropout, shuffling...)
 * and an index per value.
 *
 * The generator is Philox4x32 with 10 rounds (Salmon, Moraes, Dror, Shaw, "Parallel
 * random numbers: as easy as 1, 2, 3", SC 2011), bit-exact with Random123's
 * philox4x32_10 (tested against its known-answer vectors).
 *
 * Counter layout (documented here because files record seeds and must stay
 * reproducible): value number `index` of (seed, stream) is 32-bit word (index % 4) of
 *     philox4x32_10(ctr = { lo32(index/4), hi32(index/4), lo32(stream), hi32(stream) },
 *                   key = { lo32(seed), hi32(seed) }).
 *   - lvd_rng_u32(seed, stream, i)     = that word.
 *   - lvd_rng_uniform(seed, stream, i) = (word >> 8) * 2^-24, in [0, 1), 24-bit mantissa.
 *   - lvd_rng_normal(seed, stream, i): the block b = i/4 gives four words w0..w3; the
 *     pair p = (i%4)/2 uses u1 = ((w[2p] >> 8) + 1) * 2^-24 in (0, 1] and
 *     u2 = (w[2p+1] >> 8) * 2^-24; r = sqrt(-2 ln u1), t = 2 pi u2; even i gives
 *     r cos t, odd i gives r sin t (Box-Muller, computed in double, rounded to float).
 *     So normal i and uniform i share a block: do not draw both kinds from one stream.
 *   - lvd_rng_below(seed, stream, i, n): words 2(i%2), 2(i%2)+1 of block i/2 form a
 *     u64 x = w_lo | w_hi << 32; the result is floor(x * n / 2^64) (bias <= n / 2^64).
 * All functions are thread-safe (pure). */
#ifndef LVD_CORE_RNG_H
#define LVD_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One Philox4x32-10 block: out = philox(ctr, key). out may alias ctr. */
void lvd_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

/* Raw 32-bit value number `index` of (seed, stream). */
uint32_t lvd_rng_u32(uint64_t seed, uint64_t stream, uint64_t index);

/* Uniform float in [0, 1) with a 24-bit mantissa (layout above). */
float lvd_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);

/* Standard normal N(0, 1) via Box-Muller (layout above). */
float lvd_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);

/* Integer in [0, n) for n >= 1 (layout above). */
uint64_t lvd_rng_below(uint64_t seed, uint64_t stream, uint64_t index, uint64_t n);

/* dst[j] = lvd_rng_uniform(seed, stream, offset + j) for j < n. Splitting a fill into
 * pieces with matching offsets gives the same bytes as one call. */
void lvd_rng_fill_uniform(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

/* dst[j] = lvd_rng_normal(seed, stream, offset + j) for j < n (same splitting rule). */
void lvd_rng_fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

/* Fisher-Yates shuffle of idx[0..n) in place: for k = n-1 down to 1, swap idx[k] with
 * idx[lvd_rng_below(seed, stream, k, k + 1)]. Deterministic in (seed, stream, n). */
void lvd_rng_shuffle(size_t *idx, size_t n, uint64_t seed, uint64_t stream);

/* A cursor for sequential use (dropout masks, ...): each call consumes one index. */
struct lvd_rng {
	uint64_t seed, stream, index;
};
static inline struct lvd_rng lvd_rng_make(uint64_t seed, uint64_t stream)
{
	struct lvd_rng r = { seed, stream, 0 };
	return r;
}
static inline uint32_t lvd_rng_next_u32(struct lvd_rng *r) { return lvd_rng_u32(r->seed, r->stream, r->index++); }
static inline float lvd_rng_next_uniform(struct lvd_rng *r) { return lvd_rng_uniform(r->seed, r->stream, r->index++); }
static inline float lvd_rng_next_normal(struct lvd_rng *r) { return lvd_rng_normal(r->seed, r->stream, r->index++); }

#ifdef __cplusplus
}
#endif
#endif
