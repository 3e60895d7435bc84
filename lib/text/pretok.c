#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/pretok.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

struct lvd_pretok {
	pcre2_code *re;
	pcre2_match_data *md;
	pcre2_match_context *mc;
	pcre2_jit_stack *js;
	int jit;
};

#define WS_RANGES "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

/* Rewrites \s / \S (see the header). Returns a malloc'd string or NULL. */
static char *rewrite(const char *pat, struct lvd_error *err)
{
	size_t n = strlen(pat), cap = n * 48 + 64; /* a 2-byte \s grows to < 96 bytes */
	char *o = malloc(cap), *w = o;
	if (!o) {
		lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		return NULL;
	}
	int in_class = 0;
	for (size_t i = 0; i < n; i++) {
		char c = pat[i];
		if (c == '\\' && i + 1 < n) {
			char d = pat[i + 1];
			if (d == 's' || d == 'S') {
				if (in_class && d == 'S') {
					free(o);
					lvd_error_set(err, LVD_ERR_UNSUPPORTED, "pattern: \\S inside a character class");
					return NULL;
				}
				const char *rep = in_class ? WS_RANGES : d == 's' ? "[" WS_RANGES "]" : "[^" WS_RANGES "]";
				size_t l = strlen(rep);
				memcpy(w, rep, l);
				w += l;
			} else {
				*w++ = c;
				*w++ = d;
			}
			i++;
			continue;
		}
		if (c == '[' && !in_class) {
			in_class = 1;
			*w++ = c;
			if (i + 1 < n && pat[i + 1] == '^')
				*w++ = pat[++i];
			if (i + 1 < n && pat[i + 1] == ']') /* leading ] is literal */
				*w++ = pat[++i];
			continue;
		}
		if (c == ']' && in_class)
			in_class = 0;
		*w++ = c;
	}
	*w = 0;
	return o;
}

int lvd_pretok_new(struct lvd_pretok **out, const char *pattern, struct lvd_error *err)
{
	*out = NULL;
	char *pat = rewrite(pattern, err);
	if (!pat)
		return err ? err->code : LVD_ERR_INVALID;
	struct lvd_pretok *p = calloc(1, sizeof *p);
	if (!p) {
		free(pat);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	int ec;
	PCRE2_SIZE eo;
	p->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
	free(pat);
	if (!p->re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof msg);
		free(p);
		return lvd_error_set(err, LVD_ERR_INVALID, "regex '%s': %s at offset %zu", pattern, (char *)msg,
				     (size_t)eo);
	}
	p->jit = pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE) == 0;
	p->md = pcre2_match_data_create_from_pattern(p->re, NULL);
	p->mc = pcre2_match_context_create(NULL);
	if (!p->md || !p->mc) {
		lvd_pretok_free(p);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	if (p->jit) {
		p->js = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, NULL);
		if (p->js)
			pcre2_jit_stack_assign(p->mc, NULL, p->js);
	}
	*out = p;
	return 0;
}

void lvd_pretok_free(struct lvd_pretok *p)
{
	if (!p)
		return;
	pcre2_jit_stack_free(p->js);
	pcre2_match_context_free(p->mc);
	pcre2_match_data_free(p->md);
	pcre2_code_free(p->re);
	free(p);
}

int lvd_pretok_split(struct lvd_pretok *p, const char *s, size_t n, int keep_gaps,
		     lvd_pretok_fn fn, void *ctx, struct lvd_error *err)
{
	size_t pos = 0, gap = 0;
	while (pos < n) {
		int rc = p->jit ? pcre2_jit_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, p->md, p->mc)
				: -1000;
		if (rc == -1000 || rc == PCRE2_ERROR_JIT_STACKLIMIT)
			rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, p->md, p->mc);
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0) {
			PCRE2_UCHAR msg[256];
			pcre2_get_error_message(rc, msg, sizeof msg);
			return lvd_error_set(err, LVD_ERR_INVALID, "regex match at byte %zu: %s", pos, (char *)msg);
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
		size_t a = ov[0], b = ov[1];
		if (b == a) { /* empty match: step one character */
			pos = a + 1;
			while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80)
				pos++;
			continue;
		}
		if (keep_gaps && a > gap) {
			int r = fn(gap, a, ctx);
			if (r)
				return r;
		}
		int r = fn(a, b, ctx);
		if (r)
			return r;
		pos = gap = b;
	}
	if (keep_gaps && n > gap) {
		int r = fn(gap, n, ctx);
		if (r)
			return r;
	}
	return 0;
}
