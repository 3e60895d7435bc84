/* BPE engine, hash map, UTF-8 helpers and gunzip on small hand-made inputs. */
#include "harness.h"

#include "text/bpe.h"
#include "text/pretok.h"
#include "text/strmap.h"
#include "text/textio.h"
#include "text/utf8.h"

#include <unistd.h>

/* bytes 0..255 as ids 0..255, plus tokens given as strings with ids from 256 */
static struct lvd_bpe *tiny(const char **toks, int ntok, int ignore)
{
	struct lvd_bpe *b = lvd_bpe_new();
	struct lvd_error err = {0};
	for (int i = 0; i < 256; i++) {
		uint8_t c = (uint8_t)i;
		REQUIRE(lvd_bpe_add_token(b, i, &c, 1, 0, &err) == 0);
	}
	for (int i = 0; i < ntok; i++)
		REQUIRE(lvd_bpe_add_token(b, 256 + i, (const uint8_t *)toks[i], strlen(toks[i]), 0, &err) == 0);
	REQUIRE(lvd_bpe_merges_from_ranks(b, &err) == 0);
	REQUIRE(lvd_bpe_finish(b, 0, ignore, &err) == 0);
	return b;
}

static void enc(struct lvd_bpe *b, const char *w, struct lvd_bpe_buf *out)
{
	out->n = 0;
	REQUIRE(lvd_bpe_encode(b, (const uint8_t *)w, strlen(w), out) == 0);
}

static void test_merge_order(void)
{
	/* ranks: "ab" 256, "bc" 257, "abc" 258 */
	const char *t[] = {"ab", "bc", "abc", "aa", "aaaa"};
	struct lvd_bpe *b = tiny(t, 5, 0);
	struct lvd_bpe_buf o = {0};
	enc(b, "abc", &o);
	CHECK(o.n == 1 && o.ids[0] == 258);
	enc(b, "xbc", &o);
	CHECK(o.n == 2 && o.ids[0] == 'x' && o.ids[1] == 257 && o.len[1] == 2);
	/* "aaa": the leftmost "aa" merges first (equal ranks go left) */
	enc(b, "aaa", &o);
	CHECK(o.n == 2 && o.ids[0] == 259 && o.ids[1] == 'a');
	enc(b, "aaaaa", &o); /* aa aa a -> aaaa a */
	CHECK(o.n == 2 && o.ids[0] == 260 && o.ids[1] == 'a' && o.len[0] == 4);
	/* cache hit gives the same answer */
	enc(b, "aaaaa", &o);
	CHECK(o.n == 2 && o.ids[0] == 260);
	/* long input: n log n, completes */
	size_t n = 100000;
	char *big = malloc(n + 1);
	memset(big, 'a', n);
	big[n] = 0;
	enc(b, big, &o);
	CHECK(o.n == n / 4 && o.ids[0] == 260);
	free(big);
	lvd_bpe_buf_free(&o);
	lvd_bpe_free(b);
}

static void test_ignore_merges_and_eow(void)
{
	/* "xyz" is a token but no merge path reaches it (neither "xy" nor "yz" exist) */
	const char *t[] = {"xyz"};
	struct lvd_bpe *b = tiny(t, 1, 0), *c = tiny(t, 1, 1);
	struct lvd_bpe_buf o = {0};
	enc(b, "xyz", &o);
	CHECK(o.n == 3);
	enc(c, "xyz", &o);
	CHECK(o.n == 1 && o.ids[0] == 256);
	lvd_bpe_free(b);
	lvd_bpe_free(c);
	/* end-of-word variants: "a</w>" differs from "a" */
	struct lvd_bpe *e = lvd_bpe_new();
	struct lvd_error err = {0};
	for (int i = 0; i < 256; i++) {
		uint8_t ch = (uint8_t)i;
		lvd_bpe_add_token(e, i, &ch, 1, 0, &err);
		lvd_bpe_add_token(e, 256 + i, &ch, 1, 1, &err);
	}
	CHECK(lvd_bpe_add_token_str(e, 600, "ab</w>", 6, "</w>", &err) == 0);
	CHECK(lvd_bpe_find_str(e, "ab</w>", 6, "</w>") == 600);
	CHECK(lvd_bpe_add_merge(e, 'a', 256 + 'b', 0, &err) == 0);
	CHECK(lvd_bpe_add_merge(e, 256 + 'a', 'b', 1, &err) == LVD_ERR_FORMAT); /* left ends a word */
	CHECK(lvd_bpe_add_merge(e, 'a', 'b', 1, &err) == LVD_ERR_FORMAT);       /* "ab" without </w> absent */
	CHECK_CONTAINS(err.msg, "not in the vocabulary");
	CHECK(lvd_bpe_add_token(e, 600, (const uint8_t *)"zz", 2, 0, &err) == LVD_ERR_FORMAT);
	CHECK(lvd_bpe_add_token_str(e, 601, "\xe4\xb8\x80", 3, NULL, &err) == LVD_ERR_FORMAT); /* not byte-level */
	REQUIRE(lvd_bpe_finish(e, 1, 0, &err) == 0);
	enc(e, "ab", &o);
	CHECK(o.n == 1 && o.ids[0] == 600);
	enc(e, "abab", &o); /* a b a b</w> -> a b ab</w> */
	CHECK(o.n == 3 && o.ids[0] == 'a' && o.ids[1] == 'b' && o.ids[2] == 600);
	lvd_bpe_free(e);
	/* finish refuses a vocabulary without every byte */
	struct lvd_bpe *f = lvd_bpe_new();
	CHECK(lvd_bpe_finish(f, 0, 0, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "byte 0x00");
	lvd_bpe_free(f);
	lvd_bpe_buf_free(&o);
}

static void test_strmap(void)
{
	struct lvd_strmap m;
	lvd_strmap_init(&m);
	char k[32];
	for (int i = 0; i < 5000; i++) {
		int l = snprintf(k, sizeof k, "key%d", i);
		REQUIRE(lvd_strmap_put(&m, k, (size_t)l, i) == 0);
	}
	int64_t v = -1;
	CHECK(lvd_strmap_get(&m, "key4321", 7, &v) && v == 4321);
	CHECK(!lvd_strmap_get(&m, "key5000", 7, &v));
	CHECK(lvd_strmap_put(&m, "key7", 4, 77) == 0 && lvd_strmap_get(&m, "key7", 4, &v) && v == 77);
	CHECK(m.n == 5000);
	CHECK(lvd_strmap_put(&m, "", 0, 9) == 0 && lvd_strmap_get(&m, "", 0, &v) && v == 9);
	lvd_strmap_free(&m);
}

static void test_utf8(void)
{
	int32_t cp;
	CHECK(lvd_utf8_decode((const uint8_t *)"\xe2\x82\xac", 3, &cp) == 3 && cp == 0x20AC);
	CHECK(lvd_utf8_decode((const uint8_t *)"\xc0\x80", 2, &cp) == 0);     /* overlong */
	CHECK(lvd_utf8_decode((const uint8_t *)"\xed\xa0\x80", 3, &cp) == 0); /* surrogate */
	size_t bad;
	CHECK(!lvd_utf8_valid("ab\xe2\x82", 4, &bad) && bad == 2);
	char out[64];
	/* maximal subparts: E2 82 is one U+FFFD, the lone 80 another */
	size_t n = lvd_utf8_lossy((const uint8_t *)"a\xe2\x82" "b\x80", 5, out);
	CHECK(n == 8 && !memcmp(out, "a\xef\xbf\xbd" "b\xef\xbf\xbd", 8));
	for (int b = 0; b < 256; b++)
		CHECK(lvd_bytelevel_byte(lvd_bytelevel_cp((uint8_t)b)) == b);
	CHECK(lvd_bytelevel_cp(' ') == 0x120 && lvd_bytelevel_cp('\n') == 0x10A && lvd_bytelevel_cp('A') == 'A');
	CHECK(lvd_unicode_is_space(0x85) && lvd_unicode_is_space(0x3000) && !lvd_unicode_is_space(0x200B));
}

static int collect_piece(size_t a, size_t b, void *ctx)
{
	size_t *v = ctx;
	v[1 + 2 * v[0]] = a;
	v[2 + 2 * v[0]] = b;
	v[0]++;
	return 0;
}

static void test_pretok(void)
{
	struct lvd_pretok *p;
	struct lvd_error err = {0};
	REQUIRE(lvd_pretok_new(&p, "\\s+|[^\\s]+", &err) == 0);
	size_t v[64] = {0};
	const char *s = "a\xc2\x85" "b"; /* NEL is White_Space here, as in Rust/Oniguruma */
	CHECK(lvd_pretok_split(p, s, strlen(s), 1, collect_piece, v, &err) == 0);
	CHECK(v[0] == 3 && v[3] == 1 && v[4] == 3);
	lvd_pretok_free(p);
	REQUIRE(lvd_pretok_new(&p, "b", &err) == 0);
	memset(v, 0, sizeof v);
	CHECK(lvd_pretok_split(p, "abcb", 4, 1, collect_piece, v, &err) == 0);
	CHECK(v[0] == 4); /* gaps kept: a, b, c, b */
	memset(v, 0, sizeof v);
	CHECK(lvd_pretok_split(p, "abcb", 4, 0, collect_piece, v, &err) == 0);
	CHECK(v[0] == 2);
	lvd_pretok_free(p);
	CHECK(lvd_pretok_new(&p, "(unclosed", &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "offset");
}

static void test_next_line(void)
{
	static const char text[] = "a b\r\n\nlast";
	const char *want[] = {"a b", "", "last"};
	size_t pos = 0, n, k = 0;
	const char *line;
	while (lvd_text_next_line(text, sizeof text - 1, &pos, &line, &n)) {
		REQUIRE(k < 3);
		CHECK(n == strlen(want[k]) && !memcmp(line, want[k], n));
		k++;
	}
	CHECK(k == 3 && pos == sizeof text);
	pos = 0;
	CHECK(lvd_text_next_line("", 0, &pos, &line, &n) == 0);
	CHECK(lvd_text_next_line("\n", 1, &pos, &line, &n) == 1 && n == 0 && pos == 1);
	CHECK(lvd_text_next_line("\n", 1, &pos, &line, &n) == 0);
}

static void test_gunzip(void)
{
	/* gzip -n of "hello hello hello\n" (fixed Huffman with a back-reference) */
	static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48,
					   0xcd, 0xc9, 0xc9, 0x57, 0xc8, 0x40, 0x90, 0x5c, 0x00, 0x3b, 0x7c, 0x8a,
					   0xdf, 0x12, 0x00, 0x00, 0x00};
	char *out;
	size_t n;
	struct lvd_error err = {0};
	CHECK(lvd_gunzip(gz, sizeof gz, &out, &n, &err) == 0);
	CHECK(n == 18 && !memcmp(out, "hello hello hello\n", 18));
	free(out);
	unsigned char bad[sizeof gz];
	memcpy(bad, gz, sizeof gz);
	bad[sizeof gz - 6] ^= 1; /* CRC */
	CHECK(lvd_gunzip(bad, sizeof bad, &out, &n, &err) == LVD_ERR_FORMAT);
	CHECK(lvd_gunzip(gz, sizeof gz - 5, &out, &n, &err) == LVD_ERR_FORMAT); /* truncated */
}

struct bitw {
	unsigned char *p;
	size_t nbits;
};

/* Appends a Huffman code (MSB first) to the LSB-first deflate bit stream. */
static void put_code(struct bitw *b, unsigned code, int len)
{
	for (int i = len - 1; i >= 0; i--, b->nbits++)
		if ((code >> i) & 1)
			b->p[b->nbits / 8] |= (unsigned char)(1u << (b->nbits % 8));
}

/* A gzip bomb (issue #17): one fixed-Huffman block of a literal 0 and length-258
 * distance-1 copies, inflating to just over LVD_TEXT_MAX_BYTES from ~430 KB, is refused
 * at the cap; a plain file named .gz is refused by name. */
static void test_gunzip_bomb(void)
{
	size_t reps = (size_t)LVD_TEXT_MAX_BYTES / 258 + 2, cap = 10 + reps * 13 / 8 + 64;
	unsigned char *gz = calloc(1, cap);
	CHECK(gz != NULL);
	if (!gz)
		return;
	static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
	memcpy(gz, hdr, 10);
	struct bitw b = {gz + 10, 0};
	put_code(&b, 1, 1);               /* BFINAL */
	put_code(&b, 2, 2);               /* BTYPE 01 (LSB-first value 1 = bits 1,0) */
	put_code(&b, 0x30, 8);            /* literal 0 */
	for (size_t i = 0; i < reps; i++) {
		put_code(&b, 0xC5, 8);    /* length code 285 (258) */
		put_code(&b, 0, 5);       /* distance code 0 (1) */
	}
	put_code(&b, 0, 7);               /* end of block */
	size_t n = 10 + (b.nbits + 7) / 8 + 8;
	char *out = NULL;
	size_t olen = 0;
	struct lvd_error err = {0};
	CHECK(lvd_gunzip(gz, n, &out, &olen, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "inflates to more than 64 MiB");
	CHECK(out == NULL);
	free(gz);

	char path[] = "/tmp/lvd_test_bpe_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	close(fd);
	char gzpath[64];
	snprintf(gzpath, sizeof gzpath, "%s.gz", path);
	FILE *f = fopen(gzpath, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("\"h e\"\nh e\n", f);
		fclose(f);
		CHECK(lvd_text_read_file(gzpath, &out, &olen, &err) == LVD_ERR_FORMAT);
		CHECK_CONTAINS(err.msg, "named .gz but not gzip data");
	}
	unlink(gzpath);
	unlink(path);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_merge_order), TEST(test_ignore_merges_and_eow),
						TEST(test_strmap), TEST(test_utf8), TEST(test_pretok),
						TEST(test_gunzip), TEST(test_gunzip_bomb), TEST(test_next_line), {0}};
	return lvd_test_main(argc, argv, tests);
}
