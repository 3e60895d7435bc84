/* lib/core/alloc.h — overflow-checked size arithmetic and allocation helpers.
 *
 * Every size computed from file contents or user options goes through these.
 * lvd_size_mul/add return 0 on success and LVD_ERR_NOMEM on overflow (leaving *out
 * untouched). The allocators return NULL on failure (never abort): callers turn that
 * into an lvd_error. Memory from lvd_xalloc* is released with free().
 * Under LVD_FAULT=alloc:N (core/fault.h, tests only) the N-th call of these allocators
 * returns NULL. */
#ifndef LVD_CORE_ALLOC_H
#define LVD_CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

int lvd_size_mul(size_t *out, size_t a, size_t b);
int lvd_size_add(size_t *out, size_t a, size_t b);
/* out = a*b*c*d (pass 1 for unused factors) */
int lvd_size_mul4(size_t *out, size_t a, size_t b, size_t c, size_t d);

/* malloc(n*size) with the product checked; NULL on overflow or failure. */
void *lvd_alloc_array(size_t n, size_t size);
/* calloc(n, size), NULL on failure. */
void *lvd_calloc_array(size_t n, size_t size);
/* 64-byte aligned, n*size bytes, NULL on overflow/failure; release with free(). */
void *lvd_alloc_aligned(size_t n, size_t size);
/* realloc(p, n*size) with the product checked; on failure p is left intact. */
void *lvd_realloc_array(void *p, size_t n, size_t size);
/* strdup that returns NULL on failure. */
char *lvd_strdup(const char *s);

#endif
