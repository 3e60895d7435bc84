/* Tests for lib/core: errors, size arithmetic, strict parsing. */
#include <errno.h>
#include <stdint.h>

#include "harness.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/parse.h"
#include "core/strbuf.h"

static void test_error_messages(void)
{
	struct lvd_error e = {0};
	CHECK(lvd_error_set(&e, LVD_ERR_FORMAT, "%s: bad magic", "x.lvdm") == LVD_ERR_FORMAT);
	CHECK_STR(e.msg, "x.lvdm: bad magic");
	lvd_error_prefix(&e, "record %d: ", 7);
	CHECK_STR(e.msg, "record 7: x.lvdm: bad magic");
	CHECK(e.code == LVD_ERR_FORMAT);
	errno = ENOENT;
	lvd_error_errno(&e, LVD_ERR_IO, "cannot open '%s'", "a");
	CHECK_STR(e.msg, "cannot open 'a': No such file or directory");
	lvd_error_clear(&e);
	CHECK(e.code == LVD_OK && e.msg[0] == 0);
	CHECK_STR(lvd_err_name(LVD_ERR_NOMEM), "out of memory");
	CHECK_STR(lvd_err_name(999), "unknown error");
	CHECK(lvd_error_set(NULL, LVD_ERR_IO, "x") == LVD_ERR_IO);
}

static void test_size_arith(void)
{
	size_t r = 0;
	CHECK(lvd_size_mul(&r, 1u << 20, 1u << 10) == 0 && r == (size_t)1 << 30);
	CHECK(lvd_size_mul(&r, SIZE_MAX / 2 + 1, 2) == LVD_ERR_NOMEM);
	CHECK(lvd_size_add(&r, SIZE_MAX, 1) == LVD_ERR_NOMEM);
	CHECK(lvd_size_mul4(&r, 2, 3, 4, 5) == 0 && r == 120);
	CHECK(lvd_size_mul4(&r, 1u << 31, 1u << 31, 1u << 31, 2) == LVD_ERR_NOMEM);
	CHECK(lvd_alloc_array(SIZE_MAX / 4, 8) == NULL);
	void *p = lvd_alloc_aligned(3, 7);
	CHECK(p && ((uintptr_t)p & 63) == 0);
	free(p);
}

static void test_parse_numbers(void)
{
	struct lvd_error e = {0};
	uint64_t u;
	CHECK(lvd_parse_u64("1G", 0, UINT64_MAX, &u, "--shard-bytes", &e) == 0 && u == 1ull << 30);
	CHECK(lvd_parse_u64("64KiB", 0, UINT64_MAX, &u, "x", &e) == 0 && u == 65536);
	CHECK(lvd_parse_u64("12", 0, 100, &u, "x", &e) == 0 && u == 12);
	CHECK(lvd_parse_u64("12x", 0, 100, &u, "--batch", &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "--batch: '12x'");
	CHECK(lvd_parse_u64("-1", 0, 100, &u, "x", &e) == LVD_ERR_INVALID);
	CHECK(lvd_parse_u64("", 0, 100, &u, "x", &e) == LVD_ERR_INVALID);
	CHECK(lvd_parse_u64("101", 0, 100, &u, "--threads", &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "out of range");
	CHECK(lvd_parse_u64("99999999999999999999", 0, UINT64_MAX, &u, "x", &e) == LVD_ERR_INVALID);
	CHECK(lvd_parse_u64("17179869184G", 0, UINT64_MAX, &u, "x", &e) == LVD_ERR_INVALID);
	int64_t i;
	CHECK(lvd_parse_i64("-5", -10, 10, &i, "x", &e) == 0 && i == -5);
	CHECK(lvd_parse_i64("5 ", -10, 10, &i, "x", &e) == LVD_ERR_INVALID);
	double d;
	CHECK(lvd_parse_double("1e-4", 0, 1, &d, "--lr", &e) == 0 && d == 1e-4);
	CHECK(lvd_parse_double("nan", 0, 1, &d, "--lr", &e) == LVD_ERR_INVALID);
	CHECK(lvd_parse_double("2", 0, 1, &d, "--lr", &e) == LVD_ERR_INVALID);
	uint32_t si, sn;
	CHECK(lvd_parse_shard("1/4", &si, &sn, "--shard", &e) == 0 && si == 1 && sn == 4);
	CHECK(lvd_parse_shard("4/4", &si, &sn, "--shard", &e) == LVD_ERR_INVALID);
	CHECK(lvd_parse_shard("1/0", &si, &sn, "--shard", &e) == LVD_ERR_INVALID);
	CHECK(lvd_parse_shard("/4", &si, &sn, "--shard", &e) == LVD_ERR_INVALID);
	CHECK(lvd_parse_shard("14", &si, &sn, "--shard", &e) == LVD_ERR_INVALID);
}

static void test_strbuf(void)
{
	struct lvd_strbuf b = {0};
	char *e = lvd_strbuf_done(&b);
	CHECK(e && e[0] == 0);
	free(e);
	struct lvd_strbuf c = {0};
	for (int i = 0; i < 1000; i++)
		lvd_strbuf_str(&c, "ab");
	lvd_strbuf_add(&c, "x\0y", 3);
	CHECK(c.len == 2003 && c.p[2003] == 0 && c.p[2001] == 0 && c.p[2002] == 'y' && !memcmp(c.p, "abab", 4));
	char *s = lvd_strbuf_done(&c);
	CHECK(s != NULL);
	free(s);
	struct lvd_strbuf d = {0};
	lvd_strbuf_str(&d, "q");
	lvd_strbuf_add(&d, "z", SIZE_MAX); /* overflowing size: oom, never a write */
	CHECK(d.oom == 1 && d.len == 1);
	lvd_strbuf_str(&d, "more");
	CHECK(d.len == 1);
	CHECK(lvd_strbuf_done(&d) == NULL && d.p == NULL);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_error_messages),
		TEST(test_size_arith),
		TEST(test_parse_numbers),
		TEST(test_strbuf),
		{0},
	};
	return lvd_test_main(argc, argv, tests);
}
