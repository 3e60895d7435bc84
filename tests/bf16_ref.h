/* tests/bf16_ref.h — bf16 reference for the tests, written independently of the
 * library's bit trick: ref_bf16 picks the nearer of the two bf16 neighbours of x in
 * double, ties to the even one (NaN -> quiet NaN, ±inf kept); bf16_val widens bf16 bits.
 * Header-only (static functions), used by tests/gpu/test_cuda_ops.c and
 * tests/unit/test_sd_ops.c. */
#ifndef LVD_TESTS_BF16_REF_H
#define LVD_TESTS_BF16_REF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static uint16_t ref_bf16(float x)
{
	uint32_t u;
	memcpy(&u, &x, 4);
	if (isnan(x))
		return (uint16_t)((u >> 16) | 0x40);
	if (isinf(x))
		return (uint16_t)(u >> 16);
	uint32_t t = u & 0xffff0000u;
	float lo;
	memcpy(&lo, &t, 4);
	int e = (int)((u >> 23) & 0xff);
	double ulp = ldexp(1.0, (e ? e : 1) - 127 - 7);
	double dl = fabs((double)x - (double)lo), dh = ulp - dl;
	uint16_t b = (uint16_t)(t >> 16);
	if (dh < dl || (dh == dl && (b & 1)))
		b++;
	return b;
}

static float bf16_val(uint16_t b)
{
	uint32_t u = (uint32_t)b << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

#endif
