/* lib/core/parse.h — strict number parsing for options and config strings.
 *
 * The whole string must be consumed (no trailing junk, no empty string), values are
 * range-checked, and integers accept K/M/G/T suffixes (powers of 1024; "Ki" spelled
 * K). Each returns LVD_OK or LVD_ERR_INVALID with err naming `what` and the text. */
#ifndef LVD_CORE_PARSE_H
#define LVD_CORE_PARSE_H

#include <stdint.h>
#include "error.h"

int lvd_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out,
		  const char *what, struct lvd_error *err);
int lvd_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out,
		  const char *what, struct lvd_error *err);
int lvd_parse_double(const char *s, double min, double max, double *out,
		     const char *what, struct lvd_error *err);
/* "i/N" with 0 <= i < N, as used by --shard. */
int lvd_parse_shard(const char *s, uint32_t *index, uint32_t *count,
		    const char *what, struct lvd_error *err);

#endif
