#include "parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int suffix_shift(const char *end, unsigned *shift)
{
	*shift = 0;
	if (*end == '\0')
		return 1;
	switch (*end) {
	case 'k': case 'K': *shift = 10; break;
	case 'm': case 'M': *shift = 20; break;
	case 'g': case 'G': *shift = 30; break;
	case 't': case 'T': *shift = 40; break;
	default: return 0;
	}
	end++;
	if (*end == 'i' || *end == 'B')
		end++;
	if (end[-1] == 'i' && *end == 'B')
		end++;
	return *end == '\0';
}

int lvd_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out,
		  const char *what, struct lvd_error *err)
{
	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: '%s' is not a non-negative integer", what, s ? s : "");
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift;
	if (end == s || !suffix_shift(end, &shift))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: '%s' is not a non-negative integer", what, s);
	if (errno == ERANGE || (shift && v > (UINT64_MAX >> shift)))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: '%s' is too large", what, s);
	v <<= shift;
	if (v < min || v > max)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: %s is out of range [%llu, %llu]", what, s,
				     (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return LVD_OK;
}

int lvd_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out,
		  const char *what, struct lvd_error *err)
{
	if (!s || !*s || *s == ' ')
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: '%s' is not an integer", what, s ? s : "");
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end != '\0')
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: '%s' is not an integer", what, s);
	if (errno == ERANGE || v < min || v > max)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: %s is out of range [%lld, %lld]", what, s,
				     (long long)min, (long long)max);
	*out = v;
	return LVD_OK;
}

int lvd_parse_double(const char *s, double min, double max, double *out,
		     const char *what, struct lvd_error *err)
{
	if (!s || !*s || *s == ' ')
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: '%s' is not a number", what, s ? s : "");
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || !isfinite(v))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: '%s' is not a finite number", what, s);
	if (v < min || v > max)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: %s is out of range [%g, %g]", what, s, min, max);
	*out = v;
	return LVD_OK;
}

int lvd_parse_shard(const char *s, uint32_t *index, uint32_t *count,
		    const char *what, struct lvd_error *err)
{
	const char *slash = s ? strchr(s, '/') : NULL;
	if (!slash || slash == s || slash - s > 20)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: '%s' is not of the form i/N", what, s ? s : "");
	char head[24];
	memcpy(head, s, (size_t)(slash - s));
	head[slash - s] = '\0';
	uint64_t i, n;
	if (lvd_parse_u64(head, 0, UINT32_MAX, &i, what, err) ||
	    lvd_parse_u64(slash + 1, 1, UINT32_MAX, &n, what, err))
		return LVD_ERR_INVALID;
	if (i >= n)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: shard index %llu must be below the count %llu",
				     what, (unsigned long long)i, (unsigned long long)n);
	*index = (uint32_t)i;
	*count = (uint32_t)n;
	return LVD_OK;
}
