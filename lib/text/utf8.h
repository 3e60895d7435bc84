/* lib/text/utf8.h — UTF-8 helpers shared by the tokenizers: strict decoding and
 * validation, encoding, lossy repair (one U+FFFD per maximal invalid subpart, as
 * Rust's String::from_utf8_lossy and Python's errors="replace" do), and the GPT-2
 * byte-level alphabet (each byte 0..255 <-> one printable code point) used by the
 * vocab files of CLIP and Llama-3. Unicode White_Space is defined here once so the
 * regexes and the cleaners agree on it. */
#ifndef LVD_TEXT_UTF8_H
#define LVD_TEXT_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Decodes one code point from s[0..n). Returns its length (1..4) and sets *cp, or 0
 * when the bytes there are not a complete, minimal, non-surrogate sequence. */
size_t lvd_utf8_decode(const uint8_t *s, size_t n, int32_t *cp);

/* Writes cp (0..0x10FFFF, not a surrogate) as UTF-8 into out; returns 1..4, 0 if invalid. */
size_t lvd_utf8_encode(int32_t cp, uint8_t out[4]);

/* 1 when s[0..n) is valid UTF-8; otherwise 0 and *bad = offset of the first bad byte. */
int lvd_utf8_valid(const char *s, size_t n, size_t *bad);

/* Lossy repair: writes s[0..n) to out with each maximal invalid subpart replaced by
 * U+FFFD. out must hold 3*n bytes (the worst case). Returns the output length. */
size_t lvd_utf8_lossy(const uint8_t *s, size_t n, char *out);

/* Unicode White_Space property (Rust's and Oniguruma's \s). */
int lvd_unicode_is_space(int32_t cp);

/* GPT-2 byte-level alphabet: byte -> code point, and code point -> byte (or -1). */
int32_t lvd_bytelevel_cp(uint8_t b);
int lvd_bytelevel_byte(int32_t cp);

/* Decodes a byte-level string (UTF-8 of alphabet code points) to raw bytes in out
 * (holds at least n bytes). Returns the byte count, or (size_t)-1 when a character
 * is outside the alphabet or the UTF-8 is invalid. */
size_t lvd_bytelevel_decode(const char *s, size_t n, uint8_t *out);

#ifdef __cplusplus
}
#endif
#endif
