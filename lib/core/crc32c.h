/* lib/core/crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * The checksum of container indexes and footers (docs/FORMATS.md). Same convention as
 * zlib's crc32(): start with crc = 0, feed pieces in order, the running value is the
 * CRC of everything fed so far ("123456789" -> 0xE3069283). Uses the SSE4.2 crc32
 * instruction when the compiler targets it, else slicing-by-8 tables; both give the
 * same values. Thread-safe. */
#ifndef LVD_CORE_CRC32C_H
#define LVD_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CRC-32C of buf[0..len) continuing from crc (0 for a fresh checksum). buf may be
 * NULL when len is 0. */
uint32_t lvd_crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable table path, always available (tests compare it with lvd_crc32c). */
uint32_t lvd_crc32c_sw(uint32_t crc, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
