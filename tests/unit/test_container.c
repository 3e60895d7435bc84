/* Tests for lib/io/container (.lvdm/.lvdp record container): round trip, random access,
 * find by id, empty shard and empty records, determinism, the documented byte layout,
 * and hostile files: truncation at every length, flipped bytes in records, index,
 * header and footer, wrong kind/version, tmp files and abort. */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "core/crc32c.h"
#include "core/rng.h"
#include "io/container.h"
#include "io/fileutil.h"

static char g_dir[64];

static const char *tmp_path(const char *name)
{
	static char buf[4][256];
	static int k;
	char *b = buf[k++ & 3];
	if (!g_dir[0]) {
		snprintf(g_dir, sizeof g_dir, "/tmp/lvd-test-container-XXXXXX");
		LVD_ASSERT(mkdtemp(g_dir));
	}
	snprintf(b, 256, "%s/%s", g_dir, name);
	return b;
}

static int exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static char *read_file(const char *p, size_t *len)
{
	char *buf;
	struct lvd_error err = { 0 };
	if (lvd_file_read_all(p, (size_t)1 << 30, &buf, len, &err))
		return NULL;
	return buf;
}

static void write_file(const char *p, const void *d, size_t n)
{
	FILE *f = fopen(p, "wb");
	LVD_ASSERT(f);
	LVD_ASSERT(fwrite(d, 1, n, f) == n);
	fclose(f);
}

/* Record i: a deterministic payload of varying size and compressibility. */
static size_t make_payload(unsigned char *buf, size_t i)
{
	size_t n = (i * 7919) % 3000 + (i % 5 == 0 ? 0 : 1);
	if (i % 17 == 3)
		n = 0;
	for (size_t k = 0; k < n; k++)
		buf[k] = i % 2 ? (unsigned char)lvd_rng_u32(9, i, k) : (unsigned char)(k / 13 + i);
	return n;
}

static const char *HEADER = "{\"tool\":\"test\",\"version\":\"0.1.0\",\"options\":{\"grid\":64}}";

static int write_shard(const char *path, size_t n, int level)
{
	struct lvd_error err = { 0 };
	struct lvd_rec_writer *w;
	struct lvd_rec_writer_opts o = { .level = level };
	if (lvd_rec_writer_open(&w, path, LVD_REC_KIND_MAPS, HEADER, &o, &err))
		return -1;
	static unsigned char buf[4096];
	for (size_t i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof id, "coco_%zu", i * 3 + 1);
		size_t len = make_payload(buf, i);
		if (lvd_rec_writer_append(w, id, buf, len, &err)) {
			lvd_rec_writer_abort(w);
			return -1;
		}
	}
	return lvd_rec_writer_close(w, &err) ? -1 : 0;
}

static void test_roundtrip_random_access(void)
{
	enum { N = 300 };
	const char *p = tmp_path("a.lvdm");
	REQUIRE(write_shard(p, N, 0) == 0);
	CHECK(!exists(tmp_path("a.lvdm.tmp")));
	struct lvd_error err = { 0 };
	struct lvd_rec_reader *r;
	REQUIRE(lvd_rec_open(&r, p, LVD_REC_KIND_MAPS, &err) == LVD_OK);
	CHECK(lvd_rec_count(r) == N);
	CHECK_STR(lvd_rec_kind(r), "LVDM");
	size_t hl;
	CHECK_STR(lvd_rec_header(r, &hl), HEADER);
	CHECK(hl == strlen(HEADER));
	static unsigned char want[4096];
	int ok = 1;
	/* a permutation of the records: random access */
	for (size_t k = 0; k < N; k++) {
		size_t i = (k * 113) % N;
		void *buf;
		size_t len;
		REQUIRE(lvd_rec_read(r, i, &buf, &len, &err) == LVD_OK);
		size_t wl = make_payload(want, i);
		ok &= len == wl && lvd_rec_raw_size(r, i) == wl && memcmp(buf, want, wl) == 0 &&
		      ((char *)buf)[len] == 0;
		free(buf);
		char id[32];
		snprintf(id, sizeof id, "coco_%zu", i * 3 + 1);
		ok &= strcmp(lvd_rec_id(r, i), id) == 0;
		size_t found = SIZE_MAX;
		ok &= lvd_rec_find(r, id, &found, &err) == LVD_OK && found == i;
	}
	CHECK(ok);
	size_t found;
	CHECK(lvd_rec_find(r, "coco_2", &found, &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, "a.lvdm: no record with id 'coco_2'");
	/* compressible records are actually compressed */
	CHECK(lvd_rec_stored_size(r, 2) < lvd_rec_raw_size(r, 2) / 4);
	lvd_rec_close(r);

	/* wrong expected kind */
	CHECK(lvd_rec_open(&r, p, LVD_REC_KIND_PACK, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "a 'LVDM' shard, expected 'LVDP'");
}

static void test_determinism_and_layout(void)
{
	const char *a = tmp_path("d1.lvdm"), *b = tmp_path("d2.lvdm");
	REQUIRE(write_shard(a, 40, 5) == 0);
	REQUIRE(write_shard(b, 40, 5) == 0);
	size_t la, lb;
	unsigned char *da = (unsigned char *)read_file(a, &la), *db = (unsigned char *)read_file(b, &lb);
	REQUIRE(da && db);
	CHECK(la == lb && memcmp(da, db, la) == 0);
	/* the documented layout, decoded independently of the reader */
	static const unsigned char magic[8] = { 0x89, 'L', 'V', 'D', '\r', '\n', 0x1a, '\n' };
	CHECK(memcmp(da, magic, 8) == 0);
	CHECK(memcmp(da + 8, "LVDM", 4) == 0);
	uint32_t ver = da[12] | da[13] << 8 | da[14] << 16 | (uint32_t)da[15] << 24;
	uint32_t hlen = da[16] | da[17] << 8 | da[18] << 16 | (uint32_t)da[19] << 24;
	uint32_t hcrc = da[20] | da[21] << 8 | da[22] << 16 | (uint32_t)da[23] << 24;
	CHECK(ver == 1 && hlen == strlen(HEADER));
	CHECK(hcrc == lvd_crc32c(0, HEADER, hlen));
	CHECK(memcmp(da + 24, HEADER, hlen) == 0);
	/* first record: a zstd frame right after the header */
	CHECK(da[24 + hlen] == 0x28 && da[25 + hlen] == 0xB5 && da[26 + hlen] == 0x2F && da[27 + hlen] == 0xFD);
	const unsigned char *f = da + la - 32;
	CHECK(memcmp(f + 24, "LVDFOOT\n", 8) == 0);
	uint64_t ioff = 0, ilen = 0;
	for (int i = 7; i >= 0; i--) { ioff = ioff << 8 | f[i]; ilen = ilen << 8 | f[8 + i]; }
	CHECK(ioff + ilen + 32 == la);
	uint32_t icrc = f[16] | f[17] << 8 | f[18] << 16 | (uint32_t)f[19] << 24;
	CHECK(icrc == lvd_crc32c(0, da + ioff, ilen));
	uint32_t fcrc = f[20] | f[21] << 8 | f[22] << 16 | (uint32_t)f[23] << 24;
	CHECK(fcrc == lvd_crc32c(0, f, 20));
	CHECK(da[ioff] == 40 && da[ioff + 8] == 6 && da[ioff + 9] == 0);  /* count, id length */
	CHECK(memcmp(da + ioff + 10, "coco_1", 6) == 0);
	CHECK(da[ioff + 16] == 24 + hlen);                                  /* offset of record 0 */
	free(da);
	free(db);
}

static void test_empty_shard_and_errors_on_write(void)
{
	struct lvd_error err = { 0 };
	struct lvd_rec_writer *w;
	const char *p = tmp_path("empty.lvdp");
	REQUIRE(lvd_rec_writer_open(&w, p, LVD_REC_KIND_PACK, "{}", NULL, &err) == LVD_OK);
	CHECK(lvd_rec_writer_count(w) == 0);
	/* invalid ids and duplicates are refused without spoiling the writer */
	CHECK(lvd_rec_writer_append(w, "", "x", 1, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "empty id");
	CHECK(lvd_rec_writer_append(w, "a\tb", "x", 1, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "control character");
	CHECK(lvd_rec_writer_append(w, "\xff\xfe", "x", 1, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "not valid UTF-8");
	char longid[1100];
	memset(longid, 'x', sizeof longid - 1);
	longid[sizeof longid - 1] = 0;
	CHECK(lvd_rec_writer_append(w, longid, "x", 1, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "longer than 1024");
	CHECK(lvd_rec_writer_count(w) == 0);
	CHECK(lvd_rec_writer_bytes(w) == 0); /* refused appends write nothing */
	REQUIRE(lvd_rec_writer_close(w, &err) == LVD_OK);
	struct lvd_rec_reader *r;
	REQUIRE(lvd_rec_open(&r, p, NULL, &err) == LVD_OK);
	CHECK(lvd_rec_count(r) == 0);
	CHECK_STR(lvd_rec_kind(r), "LVDP");
	size_t i;
	CHECK(lvd_rec_find(r, "x", &i, &err) == LVD_ERR_NOTFOUND);
	lvd_rec_close(r);

	/* duplicates: error names both records; the shard stays valid */
	p = tmp_path("dup.lvdp");
	REQUIRE(lvd_rec_writer_open(&w, p, LVD_REC_KIND_PACK, "{\"a\":1}", NULL, &err) == LVD_OK);
	for (int k = 0; k < 200; k++) { /* enough to grow the id set a few times */
		char id[16];
		snprintf(id, sizeof id, "id%d", k);
		REQUIRE(lvd_rec_writer_append(w, id, id, strlen(id), &err) == LVD_OK);
	}
	uint64_t bytes200 = lvd_rec_writer_bytes(w);
	CHECK(bytes200 > 200 * 9); /* a zstd frame with checksum is more than 9 bytes */
	CHECK(lvd_rec_writer_append(w, "id7", "y", 1, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "dup.lvdp: record 200: duplicate id 'id7' (also record 7)");
	CHECK(lvd_rec_writer_bytes(w) == bytes200);
	REQUIRE(lvd_rec_writer_append(w, "caf\xc3\xa9 \xe6\x97\xa5", "", 0, &err) == LVD_OK);
	REQUIRE(lvd_rec_writer_close(w, &err) == LVD_OK);
	REQUIRE(lvd_rec_open(&r, p, LVD_REC_KIND_PACK, &err) == LVD_OK);
	CHECK(lvd_rec_count(r) == 201);
	CHECK(lvd_rec_find(r, "caf\xc3\xa9 \xe6\x97\xa5", &i, &err) == LVD_OK && i == 200);
	void *buf;
	size_t len;
	CHECK(lvd_rec_read(r, 200, &buf, &len, &err) == LVD_OK && len == 0);
	free(buf);
	CHECK(lvd_rec_read(r, 123, &buf, &len, &err) == LVD_OK && len == 5 && memcmp(buf, "id123", 5) == 0);
	free(buf);
	lvd_rec_close(r);

	/* bad writer arguments */
	CHECK(lvd_rec_writer_open(&w, tmp_path("x.lvdm"), "LVD", "{}", NULL, &err) == LVD_ERR_INVALID);
	CHECK(lvd_rec_writer_open(&w, tmp_path("x.lvdm"), "LVDM", "[1]", NULL, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "must be a JSON object");
	CHECK(lvd_rec_writer_open(&w, tmp_path("x.lvdm"), "LVDM", "{\"a\":", NULL, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "not valid JSON");
	struct lvd_rec_writer_opts o = { .level = 30 };
	CHECK(lvd_rec_writer_open(&w, tmp_path("x.lvdm"), "LVDM", "{}", &o, &err) == LVD_ERR_INVALID);
	CHECK(lvd_rec_writer_open(&w, "/nonexistent-dir/x.lvdm", "LVDM", "{}", NULL, &err) == LVD_ERR_IO);
	CHECK_CONTAINS(err.msg, "cannot create '/nonexistent-dir/x.lvdm.tmp'");
	CHECK(!exists(tmp_path("x.lvdm")) && !exists(tmp_path("x.lvdm.tmp")));
}

static void test_tmp_and_abort(void)
{
	struct lvd_error err = { 0 };
	struct lvd_rec_writer *w;
	const char *p = tmp_path("t.lvdm"), *t = tmp_path("t.lvdm.tmp");
	REQUIRE(lvd_rec_writer_open(&w, p, LVD_REC_KIND_MAPS, "{}", NULL, &err) == LVD_OK);
	REQUIRE(lvd_rec_writer_append(w, "r0", "hello", 5, &err) == LVD_OK);
	CHECK(exists(t) && !exists(p));
	/* the half-written tmp file is not a valid shard */
	struct lvd_rec_reader *r;
	CHECK(lvd_rec_open(&r, t, NULL, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "t.lvdm.tmp: ");
	CHECK(lvd_rec_open(&r, p, NULL, &err) == LVD_ERR_IO);
	lvd_rec_writer_abort(w);
	CHECK(!exists(t) && !exists(p));
	lvd_rec_writer_abort(NULL);

	/* a stale tmp from a killed run is overwritten */
	write_file(t, "garbage", 7);
	REQUIRE(lvd_rec_writer_open(&w, p, LVD_REC_KIND_MAPS, "{}", NULL, &err) == LVD_OK);
	REQUIRE(lvd_rec_writer_close(w, &err) == LVD_OK);
	CHECK(!exists(t) && exists(p));
	REQUIRE(lvd_rec_open(&r, p, NULL, &err) == LVD_OK);
	lvd_rec_close(r);
}

static void test_truncated_at_every_length(void)
{
	const char *p = tmp_path("tr.lvdm"), *q = tmp_path("tr-cut.lvdm");
	REQUIRE(write_shard(p, 6, 0) == 0);
	size_t n;
	char *d = read_file(p, &n);
	REQUIRE(d);
	int all_fail = 1, msg_ok = 1;
	for (size_t cut = 0; cut < n; cut++) {
		write_file(q, d, cut);
		struct lvd_error err = { 0 };
		struct lvd_rec_reader *r = NULL;
		int rc = lvd_rec_open(&r, q, NULL, &err);
		if (rc == LVD_OK) {
			all_fail = 0;
			lvd_rec_close(r);
			fprintf(stderr, "  truncation to %zu bytes opened\n", cut);
		}
		msg_ok &= rc == LVD_ERR_FORMAT && strstr(err.msg, "tr-cut.lvdm") != NULL;
	}
	CHECK(all_fail);
	CHECK(msg_ok);
	/* trailing garbage is refused too */
	char *d2 = malloc(n + 1);
	memcpy(d2, d, n);
	d2[n] = 0;
	write_file(q, d2, n + 1);
	struct lvd_error err = { 0 };
	struct lvd_rec_reader *r;
	CHECK(lvd_rec_open(&r, q, NULL, &err) == LVD_ERR_FORMAT);
	free(d2);
	free(d);
}

/* Opens q and reads every record. Returns the first error (open or read), with its
 * message in err. With check set, a record whose bytes differ from make_payload is
 * counted in *wrong (silently wrong data). */
static int open_and_read_check(const char *q, struct lvd_error *err, int *wrong)
{
	struct lvd_rec_reader *r;
	int rc = lvd_rec_open(&r, q, NULL, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < lvd_rec_count(r) && !rc; i++) {
		void *buf;
		size_t len;
		rc = lvd_rec_read(r, i, &buf, &len, err);
		if (rc)
			break;
		if (wrong) {
			static unsigned char want[4096];
			size_t wl = make_payload(want, i);
			*wrong += len != wl || memcmp(buf, want, wl) != 0;
		}
		free(buf);
	}
	lvd_rec_close(r);
	return rc;
}

static int open_and_read_all(const char *q, struct lvd_error *err)
{
	return open_and_read_check(q, err, NULL);
}

static void test_flipped_bytes(void)
{
	const char *p = tmp_path("fl.lvdm"), *q = tmp_path("fl-bad.lvdm");
	enum { N = 8 };
	REQUIRE(write_shard(p, N, 0) == 0);
	size_t n;
	char *d = read_file(p, &n);
	REQUIRE(d);
	struct lvd_error err = { 0 };
	struct lvd_rec_reader *r;
	REQUIRE(lvd_rec_open(&r, p, NULL, &err) == LVD_OK);
	size_t hlen;
	lvd_rec_header(r, &hlen);
	uint64_t rec_start = 24 + hlen, rec_end = rec_start;
	uint64_t off[N], len[N];
	for (size_t i = 0; i < N; i++) {
		off[i] = rec_end;
		len[i] = lvd_rec_stored_size(r, i);
		rec_end += len[i];
	}
	lvd_rec_close(r);

	/* the zstd content checksum (last 4 bytes of record 1's frame) and a byte in the
	 * middle of record 1's compressed data */
	d[off[1] + len[1] - 2] ^= 0x10;
	write_file(q, d, n);
	CHECK(open_and_read_all(q, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "fl-bad.lvdm: record 1 ('coco_4'): zstd: checksum mismatch");
	d[off[1] + len[1] - 2] ^= 0x10;

	/* bytes of every record (all of the first and last 16, every 3rd in between): an
	 * error naming that record, or (rarely: e.g. a changed match offset inside a run
	 * of equal bytes) output identical to the original. Never a crash, never wrong
	 * data. */
	int wrong = 0, named = 1, benign = 0, detected = 0;
	for (size_t i = 0; i < N; i++)
		for (uint64_t b = off[i]; b < off[i] + len[i]; b++) {
			if (b >= off[i] + 16 && b + 16 < off[i] + len[i] && (b - off[i]) % 3)
				continue;
			d[b] ^= 0x01;
			write_file(q, d, n);
			int rc = open_and_read_check(q, &err, &wrong);
			d[b] ^= 0x01;
			if (rc == LVD_OK) {
				benign++;
				continue;
			}
			detected++;
			char want[64];
			snprintf(want, sizeof want, ": record %zu ('coco_%zu'): ", i, i * 3 + 1);
			if (rc != LVD_ERR_FORMAT || !strstr(err.msg, want)) {
				named = 0;
				fprintf(stderr, "  flip at %llu: %s\n", (unsigned long long)b, err.msg);
			}
		}
	CHECK(wrong == 0);
	CHECK(named);
	if (getenv("LVD_TEST_VERBOSE")) fprintf(stderr, "  flips: %d detected, %d benign\n", detected, benign);
	CHECK(detected > 20 * benign); /* benign flips are rare (a handful of ~1000) */

	/* index bytes -> index CRC; header bytes -> header CRC; footer -> footer CRC/magic */
	uint64_t ioff = rec_end;
	d[ioff + 12] ^= 0x40;
	write_file(q, d, n);
	CHECK(lvd_rec_open(&r, q, NULL, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "fl-bad.lvdm: index CRC mismatch");
	d[ioff + 12] ^= 0x40;
	d[30] ^= 0x02;
	write_file(q, d, n);
	CHECK(lvd_rec_open(&r, q, NULL, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "header CRC mismatch");
	d[30] ^= 0x02;
	for (size_t b = n - 32; b < n; b++) {
		d[b] ^= 0x80;
		write_file(q, d, n);
		CHECK(lvd_rec_open(&r, q, NULL, &err) == LVD_ERR_FORMAT);
		d[b] ^= 0x80;
	}
	CHECK_CONTAINS(err.msg, "footer magic missing");
	/* magic, kind, version */
	d[1] = 'X';
	write_file(q, d, n);
	CHECK(lvd_rec_open(&r, q, NULL, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "bad magic");
	d[1] = 'L';
	d[12] = 2;
	write_file(q, d, n);
	CHECK(lvd_rec_open(&r, q, NULL, &err) == LVD_ERR_UNSUPPORTED);
	CHECK_CONTAINS(err.msg, "container version 2");
	d[12] = 1;
	d[9] = 0x01;
	write_file(q, d, n);
	CHECK(lvd_rec_open(&r, q, NULL, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "kind");
	d[9] = 'V';
	write_file(q, d, n);
	CHECK(open_and_read_all(q, &err) == LVD_OK);
	free(d);
}

/* A hand-built shard whose index is internally consistent (valid CRCs) but lies. */
static void put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i); }
static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i); }

static int open_forged(const unsigned char *index, size_t ilen, const void *data, size_t dlen,
		       struct lvd_error *err)
{
	static unsigned char f[8192];
	size_t pos = 0;
	static const unsigned char magic[8] = { 0x89, 'L', 'V', 'D', '\r', '\n', 0x1a, '\n' };
	memcpy(f, magic, 8);
	memcpy(f + 8, "LVDM", 4);
	put32(f + 12, 1);
	put32(f + 16, 2);
	put32(f + 20, lvd_crc32c(0, "{}", 2));
	memcpy(f + 24, "{}", 2);
	pos = 26;
	memcpy(f + pos, data, dlen);
	pos += dlen;
	uint64_t ioff = pos;
	memcpy(f + pos, index, ilen);
	pos += ilen;
	put64(f + pos, ioff);
	put64(f + pos + 8, ilen);
	put32(f + pos + 16, lvd_crc32c(0, index, ilen));
	put32(f + pos + 20, lvd_crc32c(0, f + pos, 20));
	memcpy(f + pos + 24, "LVDFOOT\n", 8);
	pos += 32;
	const char *q = tmp_path("forged.lvdm");
	write_file(q, f, pos);
	return open_and_read_all(q, err);
}

/* One index entry at ix; returns its length. */
static size_t entry(unsigned char *ix, const char *id, uint64_t off, uint64_t clen, uint64_t rlen)
{
	size_t n = strlen(id);
	ix[0] = (unsigned char)n;
	ix[1] = 0;
	memcpy(ix + 2, id, n);
	put64(ix + 2 + n, off);
	put64(ix + 10 + n, clen);
	put64(ix + 18 + n, rlen);
	return 26 + n;
}

/* An index of `count` with one entry. */
static size_t index1(unsigned char *ix, uint64_t count, const char *id, uint64_t off, uint64_t clen,
		     uint64_t rlen)
{
	put64(ix, count);
	return 8 + entry(ix + 8, id, off, clen, rlen);
}

static void test_forged_index(void)
{
	struct lvd_error err = { 0 };
	unsigned char ix[256];
	/* a real frame for "hello" to place in the forged files */
	const char *p = tmp_path("h.lvdm");
	struct lvd_rec_writer *w;
	REQUIRE(lvd_rec_writer_open(&w, p, "LVDM", "{}", NULL, &err) == LVD_OK);
	REQUIRE(lvd_rec_writer_append(w, "h", "hello", 5, &err) == LVD_OK);
	REQUIRE(lvd_rec_writer_close(w, &err) == LVD_OK);
	size_t n;
	char *d = read_file(p, &n);
	REQUIRE(d);
	const unsigned char *frame = (unsigned char *)d + 26;
	size_t flen = n - 26 - 32 - 35;
	size_t il = index1(ix, 1, "h", 26, flen, 5);
	CHECK(open_forged(ix, il, frame, flen, &err) == LVD_OK);
	/* huge count */
	put64(ix, 1ull << 60);
	CHECK(open_forged(ix, il, frame, flen, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "record count 1152921504606846976 does not fit");
	/* offset not where records start */
	il = index1(ix, 1, "h", 27, flen - 1, 5);
	CHECK(open_forged(ix, il, frame, flen, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "record 0 ('h'): offset 27, expected 26");
	/* length past the index */
	il = index1(ix, 1, "h", 26, flen + 1, 5);
	CHECK(open_forged(ix, il, frame, flen, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "runs past the index");
	/* gap: records do not reach the index */
	il = index1(ix, 1, "h", 26, flen - 1, 5);
	CHECK(open_forged(ix, il, frame, flen, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "records end at");
	/* raw length lies (smaller, larger, over the limit) */
	il = index1(ix, 1, "h", 26, flen, 4);
	CHECK(open_forged(ix, il, frame, flen, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "record 0 ('h'): zstd frame size does not match the index");
	il = index1(ix, 1, "h", 26, flen, 1ull << 40);
	CHECK(open_forged(ix, il, frame, flen, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "over the 2 GiB limit");
	/* bad id */
	il = index1(ix, 1, "h\n", 26, flen, 5);
	CHECK(open_forged(ix, il, frame, flen, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "index entry 0: id contains a control character");
	/* duplicate ids: two entries over two copies of the frame */
	unsigned char two[2 * 64];
	REQUIRE(flen <= 64);
	memcpy(two, frame, flen);
	memcpy(two + flen, frame, flen);
	size_t a = index1(ix, 2, "h", 26, flen, 5);
	a += entry(ix + a, "h", 26 + flen, flen, 5);
	CHECK(open_forged(ix, a, two, 2 * flen, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "records 0 and 1 have the same id 'h'");
	/* index with trailing bytes */
	il = index1(ix, 1, "h", 26, flen, 5);
	ix[il] = 0;
	CHECK(open_forged(ix, il + 1, frame, flen, &err) == LVD_ERR_FORMAT);
	/* a frame without the checksum flag is refused */
	unsigned char nock[64];
	memcpy(nock, frame, flen);
	nock[4] &= (unsigned char)~0x04;
	il = index1(ix, 1, "h", 26, flen, 5);
	CHECK(open_forged(ix, il, nock, flen, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "no content checksum");
	free(d);
}

struct reader_arg {
	const struct lvd_rec_reader *r;
	int start, bad;
};

static void *reader_main(void *va)
{
	struct reader_arg *a = va;
	static _Thread_local unsigned char want[4096];
	size_t n = lvd_rec_count(a->r);
	for (size_t k = 0; k < n; k++) {
		size_t i = (k + (size_t)a->start * 37) % n;
		void *buf;
		size_t len;
		struct lvd_error err = { 0 };
		if (lvd_rec_read(a->r, i, &buf, &len, &err)) {
			a->bad++;
			continue;
		}
		size_t wl = make_payload(want, i);
		a->bad += len != wl || memcmp(buf, want, wl) != 0;
		free(buf);
	}
	return NULL;
}

static void test_threads_read_concurrently(void)
{
	/* lvd_rec_read is documented thread-safe: four threads share one reader */
	struct lvd_error err = { 0 };
	struct lvd_rec_reader *r;
	REQUIRE(write_shard(tmp_path("th.lvdm"), 120, 0) == 0);
	REQUIRE(lvd_rec_open(&r, tmp_path("th.lvdm"), NULL, &err) == LVD_OK);
	pthread_t th[4];
	struct reader_arg args[4];
	for (int t = 0; t < 4; t++) {
		args[t] = (struct reader_arg){ r, t, 0 };
		REQUIRE(pthread_create(&th[t], NULL, reader_main, &args[t]) == 0);
	}
	int bad = 0;
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		bad += args[t].bad;
	}
	CHECK(bad == 0);
	lvd_rec_close(r);
}

static void test_fileutil_helpers(void)
{
	struct lvd_error err = { 0 };
	char dir[300];
	snprintf(dir, sizeof dir, "%s/m1/m2/m3/", tmp_path(""));
	CHECK(lvd_mkdir_p(dir, &err) == LVD_OK);
	CHECK(lvd_mkdir_p(dir, &err) == LVD_OK); /* existing is fine */
	char file[320];
	snprintf(file, sizeof file, "%s/m1/m2/m3/f.json", tmp_path(""));
	CHECK(lvd_file_write_atomic(file, "{\"a\": 1}", 9, &err) == LVD_OK);
	char tmp[330];
	snprintf(tmp, sizeof tmp, "%s.tmp", file);
	CHECK(exists(file) && !exists(tmp));
	CHECK(lvd_path_is_file(file) && !lvd_path_is_dir(file));
	CHECK(lvd_path_is_dir(dir) && !lvd_path_is_file(dir));
	CHECK(!lvd_path_is_file(tmp) && !lvd_path_is_dir(tmp));
	char *buf;
	size_t len;
	CHECK(lvd_file_read_all(file, 100, &buf, &len, &err) == LVD_OK && len == 9 && !strcmp(buf, "{\"a\": 1}"));
	free(buf);
	CHECK(lvd_file_read_all(file, 8, &buf, &len, &err) == LVD_ERR_INVALID && buf == NULL);
	CHECK_CONTAINS(err.msg, "f.json: file larger than 8 bytes");
	/* a file where a directory should be */
	char bad[340];
	snprintf(bad, sizeof bad, "%s/sub", file);
	CHECK(lvd_mkdir_p(bad, &err) == LVD_ERR_IO);
	CHECK_CONTAINS(err.msg, "cannot create directory");
	CHECK(lvd_mkdir_p(file, &err) == LVD_ERR_IO);
	CHECK_CONTAINS(err.msg, "a file of that name exists");
	CHECK(lvd_mkdir_p("", &err) == LVD_ERR_INVALID);
	/* pread past the end */
	int fd = open(file, O_RDONLY);
	REQUIRE(fd >= 0);
	char b4[16];
	CHECK(lvd_pread_full(fd, b4, 4, 2, file, &err) == LVD_OK && !memcmp(b4, "a\": ", 4));
	CHECK(lvd_pread_full(fd, b4, 16, 0, file, &err) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(err.msg, "unexpected end of file at byte 9");
	close(fd);
	/* a failed atomic write leaves nothing behind */
	snprintf(bad, sizeof bad, "%s/nodir/x", tmp_path(""));
	CHECK(lvd_file_write_atomic(bad, "x", 1, &err) == LVD_ERR_IO);
	unlink(file);
	for (int k = 3; k >= 1; k--) {
		char d[300];
		snprintf(d, sizeof d, "%s/m1%s%s", tmp_path(""), k >= 2 ? "/m2" : "", k >= 3 ? "/m3" : "");
		CHECK(rmdir(d) == 0);
	}
}

static void cleanup(void)
{
	static const char *names[] = { "a.lvdm", "d1.lvdm", "d2.lvdm", "empty.lvdp", "dup.lvdp",
				       "t.lvdm", "tr.lvdm", "tr-cut.lvdm", "fl.lvdm", "fl-bad.lvdm",
				       "h.lvdm", "forged.lvdm", "th.lvdm", NULL };
	if (!g_dir[0])
		return;
	for (int i = 0; names[i]; i++)
		unlink(tmp_path(names[i]));
	rmdir(g_dir);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_roundtrip_random_access),
		TEST(test_determinism_and_layout),
		TEST(test_empty_shard_and_errors_on_write),
		TEST(test_tmp_and_abort),
		TEST(test_truncated_at_every_length),
		TEST(test_flipped_bytes),
		TEST(test_forged_index),
		TEST(test_threads_read_concurrently),
		TEST(test_fileutil_helpers),
		{ 0 },
	};
	int rc = lvd_test_main(argc, argv, tests);
	cleanup();
	return rc;
}
