/* lib/eval/pystr.h — Python `str` semantics on UTF-8, for scoring rules written in Python.
 *
 * The benchmark scorers we reproduce (VLMEvalKit, the official VQA evaluation, LLaVA's
 * eval_pope) count, split, lower-case and compare Python strings, i.e. code points, not
 * bytes. These helpers give the same answers on UTF-8 text:
 *   len(s)            lvd_py_len          (code points)
 *   s.split()         lvd_py_split        (Python's whitespace set, runs collapse)
 *   s.strip()         lvd_py_strip        (same whitespace set)
 *   s.lower()         lvd_py_lower        (full mapping: U+0130 -> "i\u0307", final sigma)
 *   len(s.upper())    lvd_py_upper_len    (SpecialCasing expansions, e.g. "ß" -> "SS")
 *   re '\d'           lvd_py_isdigit      (Unicode category Nd)
 *   cn_string(s)      lvd_py_has_cjk      (VLMEvalKit smp/misc.py: re.search('[\u4e00-\u9fff]'))
 * Simple case mappings come from utf8proc, whose Unicode version may differ from the
 * Python that ran the reference (3.11: Unicode 14); the difference only shows on
 * characters added in between. Invalid UTF-8 bytes are read as U+FFFD, one per byte.
 * All functions take (s, n) byte ranges; outputs are malloc'd and NUL-terminated. */
#ifndef LVD_EVAL_PYSTR_H
#define LVD_EVAL_PYSTR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Decodes the code point at s[i] (i < n) into *cp; returns the byte length (>= 1). */
size_t lvd_py_next(const char *s, size_t n, size_t i, uint32_t *cp);
/* Appends the UTF-8 encoding of cp to out; returns the byte count (1..4). */
size_t lvd_py_put(uint32_t cp, char *out);

size_t lvd_py_len(const char *s, size_t n);
/* Python str.isspace() for one code point (what str.split()/strip() use). */
int lvd_py_isspace(uint32_t cp);
/* Python re `\d` on str patterns: Unicode general category Nd. */
int lvd_py_isdigit(uint32_t cp);
/* 1 when s holds a code point in U+4E00..U+9FFF. */
int lvd_py_has_cjk(const char *s, size_t n);

/* s.lower(): malloc'd result (NULL on OOM), its byte length in *out_n when non-NULL. */
char *lvd_py_lower(const char *s, size_t n, size_t *out_n);
/* len(s.upper()) without building it. */
size_t lvd_py_upper_len(const char *s, size_t n);

/* [start, end) byte range of s.strip(). */
void lvd_py_strip(const char *s, size_t n, size_t *start, size_t *end);

/* s.split(): words in order. w[i] are NUL-terminated pieces of one owned buffer. */
struct lvd_py_words {
	char **w;
	size_t n;
	char *buf;
};
/* Returns 0, or -1 on OOM (out zeroed). Free with lvd_py_words_free. */
int lvd_py_split(const char *s, size_t n, struct lvd_py_words *out);
/* s.split(sep) for a one-byte separator (empty pieces kept, as Python does). */
int lvd_py_split_on(const char *s, size_t n, char sep, struct lvd_py_words *out);
/* 1 when `word` equals one of the words (Python `word in words`). */
int lvd_py_words_has(const struct lvd_py_words *w, const char *word);
/* Index of the first equal word (Python list.index), or -1. */
long lvd_py_words_index(const struct lvd_py_words *w, const char *word);
void lvd_py_words_free(struct lvd_py_words *w);

#ifdef __cplusplus
}
#endif
#endif
