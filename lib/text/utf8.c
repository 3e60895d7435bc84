#include "text/utf8.h"

size_t lvd_utf8_decode(const uint8_t *s, size_t n, int32_t *cp)
{
	if (n == 0)
		return 0;
	uint8_t c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t len;
	int32_t v, min;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2; v = c & 0x1F; min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3; v = c & 0x0F; min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4; v = c & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

size_t lvd_utf8_encode(int32_t cp, uint8_t out[4])
{
	if (cp < 0)
		return 0;
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xC0 | (cp >> 6));
		out[1] = (uint8_t)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp >= 0xD800 && cp <= 0xDFFF)
		return 0;
	if (cp < 0x10000) {
		out[0] = (uint8_t)(0xE0 | (cp >> 12));
		out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (uint8_t)(0x80 | (cp & 0x3F));
		return 3;
	}
	if (cp <= 0x10FFFF) {
		out[0] = (uint8_t)(0xF0 | (cp >> 18));
		out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
		out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
		out[3] = (uint8_t)(0x80 | (cp & 0x3F));
		return 4;
	}
	return 0;
}

int lvd_utf8_valid(const char *s, size_t n, size_t *bad)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		int32_t cp;
		size_t l = lvd_utf8_decode(p + i, n - i, &cp);
		if (!l) {
			if (bad)
				*bad = i;
			return 0;
		}
		i += l;
	}
	return 1;
}

/* Length of the maximal prefix of s that could start a valid sequence (>= 1):
 * the "maximal subpart" of the Unicode standard (§3.9, U+FFFD substitution). */
static size_t maximal_subpart(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	size_t len;
	uint8_t lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0) lo = 0xA0;
		if (c == 0xED) hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0) lo = 0x90;
		if (c == 0xF4) hi = 0x8F;
	} else
		return 1;
	size_t i = 1;
	if (i < n && s[i] >= lo && s[i] <= hi) {
		i++;
		while (i < len && i < n && (s[i] & 0xC0) == 0x80)
			i++;
	}
	return i;
}

size_t lvd_utf8_lossy(const uint8_t *s, size_t n, char *out)
{
	size_t o = 0, i = 0;
	while (i < n) {
		int32_t cp;
		size_t l = s[i] < 0x80 ? 1 : lvd_utf8_decode(s + i, n - i, &cp);
		if (l) {
			for (size_t k = 0; k < l; k++)
				out[o++] = (char)s[i + k];
			i += l;
		} else {
			out[o++] = (char)0xEF; out[o++] = (char)0xBF; out[o++] = (char)0xBD;
			i += maximal_subpart(s + i, n - i);
		}
	}
	return o;
}

int lvd_unicode_is_space(int32_t c)
{
	return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
	       c == 0x205F || c == 0x3000;
}

/* bytes 33..126, 161..172, 174..255 map to themselves; the other 68 bytes map to
 * 256, 257, ... in byte order. */
static int printable_byte(int b)
{
	return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

int32_t lvd_bytelevel_cp(uint8_t b)
{
	if (printable_byte(b))
		return b;
	if (b <= 32)
		return 256 + b;
	if (b >= 127 && b <= 160)
		return 256 + 33 + (b - 127);
	return 256 + 67; /* 173 */
}

int lvd_bytelevel_byte(int32_t cp)
{
	if (cp >= 0 && cp < 256)
		return printable_byte(cp) ? cp : -1;
	int n = cp - 256;
	if (n < 0 || n > 67)
		return -1;
	if (n < 33)
		return n;
	if (n < 67)
		return 127 + (n - 33);
	return 173;
}

size_t lvd_bytelevel_decode(const char *s, size_t n, uint8_t *out)
{
	size_t o = 0, i = 0;
	while (i < n) {
		int32_t cp;
		size_t l = lvd_utf8_decode((const uint8_t *)s + i, n - i, &cp);
		int b = l ? lvd_bytelevel_byte(cp) : -1;
		if (b < 0)
			return (size_t)-1;
		out[o++] = (uint8_t)b;
		i += l;
	}
	return o;
}
