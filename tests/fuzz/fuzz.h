/* tests/fuzz/fuzz.h — shared helpers of the fuzz harnesses (tests/fuzz/fuzz_<target>.c).
 *
 * Each harness defines `static int fuzz_<target>(const uint8_t *data, size_t size)`
 * (feeds the bytes to one parser, frees everything, prints nothing, returns 0) and
 * ends with LVD_FUZZ_ENTRY(fuzz_<target>), which becomes libFuzzer's
 * LLVMFuzzerTestOneInput in the fuzz build and nothing in the regression runner
 * (tests/unit/test_fuzz_regress.c defines LVD_FUZZ_REGRESS and includes every harness,
 * so `make test` replays the seed corpora and regression inputs without clang).
 *
 * Parsers that only read files get the bytes through fuzz_file(): one private temp
 * folder per process (under $TMPDIR), removed at exit. Include once per program. */
#ifndef LVD_TESTS_FUZZ_H
#define LVD_TESTS_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"

#ifdef LVD_FUZZ_REGRESS
#define LVD_FUZZ_ENTRY(fn)
#else
#define LVD_FUZZ_ENTRY(fn) \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fn(data, size); }
#endif

static char fuzz_dir_[256];

static int fuzz_rm_one_(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	remove(p);
	return 0;
}

static void fuzz_cleanup_(void)
{
	if (fuzz_dir_[0])
		nftw(fuzz_dir_, fuzz_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}

/* The private temp folder (created on first use; aborts if it cannot be). Library
 * logging is silenced at the same time: harnesses print nothing. */
static inline const char *fuzz_tmpdir(void)
{
	if (!fuzz_dir_[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/lvd-fuzz-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(fuzz_dir_))
			abort();
		atexit(fuzz_cleanup_);
		lvd_log_set_level(-1);
	}
	return fuzz_dir_;
}

/* Path of `name` inside the temp folder (a static buffer of 4 slots, so a harness can
 * hold a few paths at once). */
static inline const char *fuzz_path(const char *name)
{
	static char buf[4][512];
	static int k;
	char *out = buf[k++ & 3];
	snprintf(out, sizeof buf[0], "%s/%s", fuzz_tmpdir(), name);
	return out;
}

/* Writes size bytes to the temp file `name` (sub-folders created), returns its path. */
static inline const char *fuzz_file(const char *name, const void *data, size_t size)
{
	const char *p = fuzz_path(name);
	char dir[512];
	snprintf(dir, sizeof dir, "%s", p);
	for (char *s = dir + strlen(fuzz_tmpdir()) + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			mkdir(dir, 0700);
			*s = '/';
		}
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	const uint8_t *b = data;
	while (size) {
		ssize_t w = write(fd, b, size);
		if (w <= 0)
			abort();
		b += w;
		size -= (size_t)w;
	}
	close(fd);
	return p;
}

/* Splits data at the first occurrence of the 4-byte separator "\n@@\n" into two parts
 * (a multi-file input: e.g. vocab.json and merges.txt); without it, part 2 is empty. */
static inline void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *na,
		       const uint8_t **b, size_t *nb)
{
	const uint8_t *sep = size >= 4 ? memmem(data, size, "\n@@\n", 4) : NULL;
	*a = data;
	if (!sep) {
		*na = size;
		*b = data + size;
		*nb = 0;
		return;
	}
	*na = (size_t)(sep - data);
	*b = sep + 4;
	*nb = size - *na - 4;
}

#endif
