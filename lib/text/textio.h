/* lib/text/textio.h — whole-file reads for the tokenizer loaders: gzip-compressed files
 * are inflated with a small built-in inflater (RFC 1951/1952, so no zlib dependency).
 * Plain reads and path tests are io/fileutil.h's. */
#ifndef LVD_TEXT_TEXTIO_H
#define LVD_TEXT_TEXTIO_H

#include <stddef.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest text file (a vocabulary, tokenizer.json, merges), read or decompressed:
 * 64 MiB (the largest real one, Llama 3's tokenizer.json, is 9 MB). Caps the file read
 * and the gzip output, so a gzip bomb costs at most this much memory. */
#define LVD_TEXT_MAX_BYTES (64 << 20)

/* Reads path ("-" = stdin) into a malloc'd, NUL-terminated buffer (*len excludes the NUL).
 * When the file starts with the gzip magic it is decompressed (all members); a path
 * ending in ".gz" without that magic is an error. Files or decompressed text over
 * LVD_TEXT_MAX_BYTES give LVD_ERR_INVALID.
 * LVD_ERR_IO / LVD_ERR_FORMAT (corrupt gzip) / LVD_ERR_NOMEM, message naming path. */
int lvd_text_read_file(const char *path, char **data, size_t *len, struct lvd_error *err);

/* Line splitting of an in-memory text: from *pos, sets *line / *n to the next line without
 * its "\n" and a trailing "\r" (borrowed from data) and moves *pos past the "\n". Returns
 * 1, or 0 when *pos is at the end of data (a final line without "\n" is still a line). */
int lvd_text_next_line(const char *data, size_t len, size_t *pos, const char **line, size_t *n);

/* Inflates a gzip stream; *out malloc'd (NUL-terminated). LVD_ERR_FORMAT when corrupt,
 * LVD_ERR_INVALID when the output would exceed LVD_TEXT_MAX_BYTES. */
int lvd_gunzip(const unsigned char *in, size_t n, char **out, size_t *out_len, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
