/* Tests for lib/core/crc32c and lib/core/sha256: published known answers, streaming
 * splits equal one-shot, the hardware CRC path equals the table path, the file helper. */
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "core/crc32c.h"
#include "core/rng.h"
#include "core/sha256.h"

static void test_crc32c_known_answers(void)
{
	CHECK(lvd_crc32c(0, "123456789", 9) == 0xE3069283u);
	CHECK(lvd_crc32c_sw(0, "123456789", 9) == 0xE3069283u);
	CHECK(lvd_crc32c(0, NULL, 0) == 0);
	/* RFC 3720 (iSCSI) appendix B.4 test patterns */
	unsigned char buf[48];
	memset(buf, 0, 32);
	CHECK(lvd_crc32c(0, buf, 32) == 0x8A9136AAu);
	memset(buf, 0xff, 32);
	CHECK(lvd_crc32c(0, buf, 32) == 0x62A8AB43u);
	for (int i = 0; i < 32; i++) buf[i] = (unsigned char)i;
	CHECK(lvd_crc32c(0, buf, 32) == 0x46DD794Eu);
	for (int i = 0; i < 32; i++) buf[i] = (unsigned char)(31 - i);
	CHECK(lvd_crc32c(0, buf, 32) == 0x113FDB5Cu);
	static const unsigned char iscsi_read[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
		0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	CHECK(lvd_crc32c(0, iscsi_read, 48) == 0xD9963A56u);
	CHECK(lvd_crc32c_sw(0, iscsi_read, 48) == 0xD9963A56u);
}

static void test_crc32c_streaming_and_paths(void)
{
	enum { N = 4099 };
	static unsigned char d[N];
	for (size_t i = 0; i < N; i++)
		d[i] = (unsigned char)lvd_rng_u32(3, 0, i);
	uint32_t whole = lvd_crc32c(0, d, N);
	CHECK(whole == lvd_crc32c_sw(0, d, N));
	int ok = 1;
	for (size_t cut = 0; cut <= N; cut += 37)
		ok &= lvd_crc32c(lvd_crc32c(0, d, cut), d + cut, N - cut) == whole &&
		      lvd_crc32c_sw(lvd_crc32c_sw(0, d, cut), d + cut, N - cut) == whole;
	CHECK(ok);
	/* unaligned starts and every short length agree between the two paths */
	ok = 1;
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 40; len++)
			ok &= lvd_crc32c(0, d + off, len) == lvd_crc32c_sw(0, d + off, len);
	CHECK(ok);
	d[100] ^= 4;
	CHECK(lvd_crc32c(0, d, N) != whole);
}

static void hex_of(const void *msg, size_t len, char hex[65])
{
	unsigned char dg[32];
	lvd_sha256(msg, len, dg);
	lvd_sha256_hex(dg, hex);
}

static void test_sha256_fips_vectors(void)
{
	char hex[65];
	/* FIPS 180-2 appendix B and the NIST example values */
	hex_of("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	hex_of("", 0, hex);
	CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	hex_of(m448, strlen(m448), hex);
	CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
			   "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	hex_of(m896, strlen(m896), hex);
	CHECK_STR(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
	/* one million 'a', fed in uneven pieces */
	static char chunk[1000];
	memset(chunk, 'a', sizeof chunk);
	struct lvd_sha256 s;
	lvd_sha256_init(&s);
	size_t fed = 0, step = 1;
	while (fed < 1000000) {
		size_t n = step < 1000000 - fed ? step : 1000000 - fed;
		if (n > sizeof chunk) n = sizeof chunk;
		lvd_sha256_update(&s, chunk, n);
		fed += n;
		step = step * 3 % 997 + 1;
	}
	unsigned char dg[32];
	lvd_sha256_final(&s, dg);
	lvd_sha256_hex(dg, hex);
	CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_sha256_padding_boundaries(void)
{
	/* lengths around the 55/56/64-byte padding edges: split feeding equals one-shot */
	static unsigned char d[200];
	for (size_t i = 0; i < sizeof d; i++) d[i] = (unsigned char)(i * 7 + 1);
	int ok = 1;
	for (size_t len = 50; len < 140; len++) {
		unsigned char a[32], b[32];
		lvd_sha256(d, len, a);
		for (size_t cut = 0; cut <= len; cut += 5) {
			struct lvd_sha256 s;
			lvd_sha256_init(&s);
			lvd_sha256_update(&s, d, cut);
			lvd_sha256_update(&s, NULL, 0);
			lvd_sha256_update(&s, d + cut, len - cut);
			lvd_sha256_final(&s, b);
			ok &= memcmp(a, b, 32) == 0;
		}
	}
	CHECK(ok);
	/* 64 bytes of 'a' (one full block + a padding block) */
	char hex[65];
	memset(d, 'a', 64);
	hex_of(d, 64, hex);
	CHECK_STR(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

static void test_sha256_file(void)
{
	struct lvd_error err = { 0 };
	unsigned char dg[32];
	char hex[65];
	char path[] = "/tmp/lvd-test-sha-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	REQUIRE(write(fd, "abc", 3) == 3);
	close(fd);
	CHECK(lvd_sha256_file(path, dg, &err) == LVD_OK);
	lvd_sha256_hex(dg, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	unlink(path);
	CHECK(lvd_sha256_file(path, dg, &err) == LVD_ERR_IO);
	CHECK_CONTAINS(err.msg, path);
	CHECK_CONTAINS(err.msg, "No such file");

	/* a real file against the sha256 recorded in shared/data/SOURCES.md */
	const char *data = lvd_test_shared_data();
	if (!data)
		SKIP("shared/data not found (set LVD_SHARED_DATA)");
	char p[4200];
	snprintf(p, sizeof p, "%s/clip/LICENSE.openai-CLIP.txt", data);
	REQUIRE(lvd_sha256_file(p, dg, &err) == LVD_OK);
	lvd_sha256_hex(dg, hex);
	CHECK(strncmp(hex, "987e63b32f6c89ff", 16) == 0);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_crc32c_known_answers),
		TEST(test_crc32c_streaming_and_paths),
		TEST(test_sha256_fips_vectors),
		TEST(test_sha256_padding_boundaries),
		TEST(test_sha256_file),
		{ 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
