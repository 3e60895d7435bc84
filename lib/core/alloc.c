#include "alloc.h"
#include "error.h"
#include "fault.h"

#include <stdlib.h>
#include <string.h>

int lvd_size_mul(size_t *out, size_t a, size_t b)
{
	size_t r;
	if (__builtin_mul_overflow(a, b, &r))
		return LVD_ERR_NOMEM;
	*out = r;
	return LVD_OK;
}

int lvd_size_add(size_t *out, size_t a, size_t b)
{
	size_t r;
	if (__builtin_add_overflow(a, b, &r))
		return LVD_ERR_NOMEM;
	*out = r;
	return LVD_OK;
}

int lvd_size_mul4(size_t *out, size_t a, size_t b, size_t c, size_t d)
{
	size_t r;
	if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r) ||
	    __builtin_mul_overflow(r, d, &r))
		return LVD_ERR_NOMEM;
	*out = r;
	return LVD_OK;
}

void *lvd_alloc_array(size_t n, size_t size)
{
	if (lvd_fault_alloc())
		return NULL;
	size_t bytes;
	if (lvd_size_mul(&bytes, n, size))
		return NULL;
	return malloc(bytes ? bytes : 1);
}

void *lvd_calloc_array(size_t n, size_t size)
{
	if (lvd_fault_alloc())
		return NULL;
	if (n == 0 || size == 0)
		return calloc(1, 1);
	return calloc(n, size);
}

void *lvd_alloc_aligned(size_t n, size_t size)
{
	if (lvd_fault_alloc())
		return NULL;
	size_t bytes;
	if (lvd_size_mul(&bytes, n, size) || lvd_size_add(&bytes, bytes, 63))
		return NULL;
	bytes &= ~(size_t)63;
	return aligned_alloc(64, bytes ? bytes : 64);
}

void *lvd_realloc_array(void *p, size_t n, size_t size)
{
	if (lvd_fault_alloc())
		return NULL;
	size_t bytes;
	if (lvd_size_mul(&bytes, n, size))
		return NULL;
	return realloc(p, bytes ? bytes : 1);
}

char *lvd_strdup(const char *s)
{
	if (lvd_fault_alloc())
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}
