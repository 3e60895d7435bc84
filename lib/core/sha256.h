/* lib/core/sha256.h — SHA-256 (FIPS 180-4) for provenance hashes.
 *
 * Output files record the SHA-256 of their inputs (manifest, checkpoint files) so a
 * later stage can tell it is reading what it thinks. Streaming: init, update any number
 * of times, final. Plain C, no global state, thread-safe per context. */
#ifndef LVD_CORE_SHA256_H
#define LVD_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_SHA256_LEN 32
#define LVD_SHA256_HEX_LEN 65 /* 64 hex digits + NUL */

struct lvd_sha256 {
	uint32_t h[8];
	uint64_t nbytes;        /* total fed so far */
	unsigned char buf[64];  /* pending partial block */
	size_t nbuf;
};

void lvd_sha256_init(struct lvd_sha256 *s);
/* Feeds data[0..len); data may be NULL when len is 0. */
void lvd_sha256_update(struct lvd_sha256 *s, const void *data, size_t len);
/* Writes the digest; the context must be re-initialised before reuse. */
void lvd_sha256_final(struct lvd_sha256 *s, unsigned char out[LVD_SHA256_LEN]);

/* One-shot digest of a buffer. */
void lvd_sha256(const void *data, size_t len, unsigned char out[LVD_SHA256_LEN]);

/* Lower-case hex of a digest into hex[65] (NUL-terminated). */
void lvd_sha256_hex(const unsigned char digest[LVD_SHA256_LEN], char hex[LVD_SHA256_HEX_LEN]);

/* Digest of a whole file read in 1 MiB pieces ("-" is not special). Returns LVD_OK or
 * LVD_ERR_IO with err naming the path. */
int lvd_sha256_file(const char *path, unsigned char out[LVD_SHA256_LEN], struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
