/* Tests for lib/lavender/packrec: round trip, determinism, and a corpus of corrupt
 * payloads (truncation at every length, bit flips, targeted field damage). */
#include <stdint.h>

#include "harness.h"
#include "io/safetensors.h"
#include "lavender/packrec.h"

/* A small valid sample: 1×2 tiles of 4 patches (tile 56 px, patch 14), extent 112×40. */
struct fixture {
	struct lvd_packrec r;
	int32_t tok[6], lab[6];
	struct lvd_packrec_word w[2];
	uint32_t p0[1], q0[1], p1[2], q1[2];
	uint16_t tg[2 * 4 * 8];
	uint8_t mask[4 * 8];
	uint16_t raw[2 * 3 * 5];
	char key0[8], key1[8], id[8];
	uint8_t img[5];
};

static void fixture(struct fixture *f, uint32_t flags)
{
	memset(f, 0, sizeof *f);
	struct lvd_packrec *r = &f->r;
	static const int32_t tok[6] = {128000, 128256, 9906, 271, 5679, 128009};
	memcpy(f->tok, tok, sizeof tok);
	for (int i = 0; i < 6; i++)
		f->lab[i] = i >= 3 ? tok[i] : -100;
	strcpy(f->id, "img-1");
	r->id = f->id;
	strcpy(f->key0, "dog");
	strcpy(f->key1, "été");
	f->p0[0] = 4; f->q0[0] = 3;
	f->p1[0] = 3; f->p1[1] = 4; f->q1[0] = 2; f->q1[1] = 3;
	f->w[0] = (struct lvd_packrec_word){f->key0, 1, 1, f->p0, f->q0, 5, 0.01f, 0.5f};
	f->w[1] = (struct lvd_packrec_word){f->key1, 2, 2, f->p1, f->q1, -1, 0, 0.25f};
	r->flags = flags;
	r->T = 6;
	r->tokens = f->tok;
	r->labels = f->lab;
	r->W = 2;
	r->words = f->w;
	r->tiles_h = 1; r->tiles_w = 2; r->aspect_id = 2; r->tile_px = 56; r->patch_px = 14;
	r->img_w = 300; r->img_h = 100; r->new_w = 112; r->new_h = 40;
	if (flags & LVD_PACKREC_GRID) {
		r->gh = 4; r->gw = 8;
	} else {
		r->gh = 4; r->gw = 8;
	}
	for (uint32_t y = 0; y < 4; y++)
		for (uint32_t x = 0; x < 8; x++)
			f->mask[y * 8 + x] = (flags & LVD_PACKREC_GRID) ? 1 : (y * 14 < 40 && x * 14 < 112);
	r->mask = f->mask;
	for (int i = 0; i < 64; i++)
		f->tg[i] = f->mask[i % 32] ? lvd_f32_to_f16((float)(i % 7) / 6.0f) : 0;
	r->targets = f->tg;
	if (flags & LVD_PACKREC_RAW) {
		r->rh = 3; r->rw = 5;
		for (int i = 0; i < 30; i++)
			f->raw[i] = lvd_f32_to_f16(i * 0.01f);
		r->raw = f->raw;
	}
	memcpy(f->img, (flags & LVD_PACKREC_IMAGE) ? "\x89PNG\r" : "a.png", 5);
	r->image = f->img;
	r->image_len = 5;
	r->image_pos = 1;
}

static void test_roundtrip(void)
{
	static const uint32_t flagsets[] = {0, LVD_PACKREC_IMAGE, LVD_PACKREC_RAW | LVD_PACKREC_IMAGE, LVD_PACKREC_GRID};
	for (int k = 0; k < 4; k++) {
		struct fixture f;
		fixture(&f, flagsets[k]);
		struct lvd_error e = {0};
		uint8_t *buf, *buf2;
		size_t n, n2;
		REQUIRE(lvd_packrec_encode(&f.r, &buf, &n, &e) == 0);
		struct lvd_packrec d;
		int rc = lvd_packrec_decode(&d, buf, n, "t", &e);
		CHECKF(rc == 0, "%s", e.msg);
		if (rc == 0) {
			CHECK_STR(d.id, "img-1");
			CHECK(d.T == 6 && d.W == 2 && d.gh == 4 && d.gw == 8 && d.flags == flagsets[k]);
			CHECK(memcmp(d.tokens, f.tok, sizeof f.tok) == 0 && memcmp(d.labels, f.lab, sizeof f.lab) == 0);
			CHECK_STR(d.words[1].key, "été");
			CHECK(d.words[1].n_pos == 2 && d.words[1].pos[1] == 4 && d.words[1].query[0] == 2);
			CHECK(d.words[0].sd_tok == 5 && d.words[1].sd_tok == -1 && d.words[0].min == 0.01f);
			CHECK(memcmp(d.targets, f.tg, sizeof f.tg) == 0 && memcmp(d.mask, f.mask, 32) == 0);
			CHECK((d.raw != NULL) == !!(flagsets[k] & LVD_PACKREC_RAW));
			CHECK(d.image_len == 5 && memcmp(d.image, f.img, 5) == 0 && d.image[5] == 0);
			CHECK(d.tiles_w == 2 && d.aspect_id == 2 && d.new_w == 112 && d.image_pos == 1);
			/* re-encoding gives the same bytes */
			REQUIRE(lvd_packrec_encode(&d, &buf2, &n2, &e) == 0);
			CHECK(n2 == n && memcmp(buf, buf2, n) == 0);
			free(buf2);
		}
		lvd_packrec_free(&d);
		free(buf);
	}
}

static void test_encode_rejects(void)
{
	struct fixture f;
	struct lvd_error e = {0};
	uint8_t *buf;
	size_t n;
	fixture(&f, 0);
	f.lab[4] = 7;
	CHECK(lvd_packrec_encode(&f.r, &buf, &n, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "token 4: label 7 is neither -100 nor the token id 5679");
	fixture(&f, 0);
	f.p1[1] = 3;
	CHECK(lvd_packrec_encode(&f.r, &buf, &n, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "word 1 'été': position 3 not increasing");
	fixture(&f, 0);
	f.mask[31] = 1;
	CHECK(lvd_packrec_encode(&f.r, &buf, &n, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "mask[3][7] = 1, want 0");
	fixture(&f, 0);
	f.tg[31] = lvd_f32_to_f16(0.5f); /* outside the image */
	CHECK(lvd_packrec_encode(&f.r, &buf, &n, &e) == LVD_ERR_INVALID);
	fixture(&f, 0);
	f.tg[0] = 0x7e00; /* NaN */
	CHECK(lvd_packrec_encode(&f.r, &buf, &n, &e) == LVD_ERR_INVALID);
	fixture(&f, 0);
	f.r.gw = 9;
	CHECK(lvd_packrec_encode(&f.r, &buf, &n, &e) == LVD_ERR_INVALID);
	fixture(&f, 0);
	f.r.image_pos = 6;
	CHECK(lvd_packrec_encode(&f.r, &buf, &n, &e) == LVD_ERR_INVALID);
}

static void test_corrupt_corpus(void)
{
	struct fixture f;
	fixture(&f, LVD_PACKREC_RAW | LVD_PACKREC_IMAGE);
	struct lvd_error e = {0};
	uint8_t *buf;
	size_t n;
	REQUIRE(lvd_packrec_encode(&f.r, &buf, &n, &e) == 0);
	struct lvd_packrec d;
	/* every truncation fails cleanly */
	int ok = 1;
	for (size_t k = 0; k < n; k++) {
		uint8_t *cut = malloc(k ? k : 1);
		memcpy(cut, buf, k);
		int rc = lvd_packrec_decode(&d, cut, k, "t", &e);
		ok &= rc == LVD_ERR_FORMAT;
		lvd_packrec_free(&d);
		free(cut);
	}
	CHECK(ok);
	/* trailing byte */
	uint8_t *longer = malloc(n + 1);
	memcpy(longer, buf, n);
	longer[n] = 0;
	CHECK(lvd_packrec_decode(&d, longer, n + 1, "pack/x.lvdp: record 0", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "pack/x.lvdp: record 0: 1 trailing bytes");
	lvd_packrec_free(&d);
	free(longer);
	/* every single-bit flip either decodes to a valid record or fails with FORMAT */
	int crashes_or_bad = 0, rejected = 0;
	uint8_t *m = malloc(n);
	for (size_t k = 0; k < n; k++)
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(m, buf, n);
			m[k] ^= (uint8_t)(1u << bit);
			int rc = lvd_packrec_decode(&d, m, n, "t", &e);
			if (rc != 0 && rc != LVD_ERR_FORMAT)
				crashes_or_bad++;
			rejected += rc != 0;
			lvd_packrec_free(&d);
		}
	CHECK(crashes_or_bad == 0);
	CHECK(rejected > 0);
	/* targeted damage with the expected message */
	struct { size_t off; uint8_t val; const char *msg; } cases[] = {
		{0, 'X', "bad magic"},
		{4, 3, "unsupported version 3"},
		{4, 2, "the MCV flag is version 2's"},
		{6, 0x10, "unknown flags 0x10"},
		{8, 0, "header counts out of range"},
		{66, 1, "reserved header field"},
		{68, 9, "image token position 9 >= 6 tokens"},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		memcpy(m, buf, n);
		m[cases[c].off] = cases[c].val;
		CHECK(lvd_packrec_decode(&d, m, n, "t", &e) == LVD_ERR_FORMAT);
		CHECK_CONTAINS(e.msg, cases[c].msg);
		lvd_packrec_free(&d);
	}
	/* a huge token count with a tiny payload must not allocate first */
	memcpy(m, buf, n);
	m[8] = 0; m[9] = 0; m[10] = 0x10; m[11] = 0;
	CHECK(lvd_packrec_decode(&d, m, n, "t", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "truncated in the tokens");
	lvd_packrec_free(&d);
	free(m);
	free(buf);
}

/* A MiniCPM record: 12 tokens, a 1x2 slice grid (3 pictures of Q = 2 image tokens:
 * source 3x4 patches, slices 2x2), 4x4 grid targets, one word queried after the pictures. */
struct mfix {
	struct lvd_packrec r;
	int32_t tok[12], lab[12];
	struct lvd_packrec_pic pic[3];
	struct lvd_packrec_word w[1];
	uint32_t p0[1], q0[2];
	uint16_t tg[16];
	uint8_t mask[16];
	char key[4], id[4];
	uint8_t img[5];
};

static void mfixture(struct mfix *f)
{
	memset(f, 0, sizeof *f);
	struct lvd_packrec *r = &f->r;
	for (int i = 0; i < 12; i++) {
		f->tok[i] = 100 + i;
		f->lab[i] = i >= 9 && i < 11 ? 100 + i + 1 : -100; /* pre-shifted */
	}
	f->pic[0] = (struct lvd_packrec_pic){3, 4, 1, 3};
	f->pic[1] = (struct lvd_packrec_pic){2, 2, 4, 6};
	f->pic[2] = (struct lvd_packrec_pic){2, 2, 6, 8};
	strcpy(f->key, "cat");
	strcpy(f->id, "m-1");
	f->p0[0] = 10;
	f->q0[0] = 9;
	f->q0[1] = 10;
	f->w[0] = (struct lvd_packrec_word){f->key, 1, 2, f->p0, f->q0, 3, 0, 1};
	r->id = f->id;
	r->flags = LVD_PACKREC_MCV | LVD_PACKREC_GRID;
	r->T = 12;
	r->tokens = f->tok;
	r->labels = f->lab;
	r->W = 1;
	r->words = f->w;
	r->gh = r->gw = 4;
	for (int i = 0; i < 16; i++) {
		f->mask[i] = 1;
		f->tg[i] = lvd_f32_to_f16((float)i / 15.0f);
	}
	r->targets = f->tg;
	r->mask = f->mask;
	r->img_w = r->new_w = 60;
	r->img_h = r->new_h = 40;
	r->patch_px = 14;
	r->image_pos = LVD_PACKREC_NO_IMAGE;
	r->cols = 2;
	r->rows = 1;
	r->n_pics = 3;
	r->query_num = 2;
	r->pics = f->pic;
	memcpy(f->img, "b.jpg", 5);
	r->image = f->img;
	r->image_len = 5;
}

static void test_mcv(void)
{
	struct mfix f;
	mfixture(&f);
	struct lvd_error e = {0};
	uint8_t *buf, *buf2;
	size_t n, n2;
	REQUIRE(lvd_packrec_encode(&f.r, &buf, &n, &e) == 0);
	CHECK(buf[4] == 2 && buf[5] == 0); /* version 2 */
	struct lvd_packrec d;
	int rc = lvd_packrec_decode(&d, buf, n, "t", &e);
	CHECKF(rc == 0, "%s", e.msg);
	if (rc == 0) {
		CHECK(d.flags == (LVD_PACKREC_MCV | LVD_PACKREC_GRID) && d.n_pics == 3 && d.cols == 2 && d.rows == 1);
		CHECK(d.query_num == 2 && d.pics[0].th == 3 && d.pics[0].tw == 4 && d.pics[2].start == 6 &&
		      d.pics[2].end == 8);
		CHECK(memcmp(d.labels, f.lab, sizeof f.lab) == 0 && d.words[0].query[1] == 10);
		REQUIRE(lvd_packrec_encode(&d, &buf2, &n2, &e) == 0);
		CHECK(n2 == n && memcmp(buf, buf2, n) == 0);
		free(buf2);
	}
	lvd_packrec_free(&d);
	/* every truncation fails cleanly; every bit flip decodes or fails with FORMAT */
	int ok = 1;
	uint8_t *m = malloc(n);
	for (size_t k = 0; k < n; k++) {
		rc = lvd_packrec_decode(&d, buf, k, "t", &e);
		ok &= rc == LVD_ERR_FORMAT;
		lvd_packrec_free(&d);
		for (int bit = 0; bit < 8; bit += 2) {
			memcpy(m, buf, n);
			m[k] ^= (uint8_t)(1u << bit);
			rc = lvd_packrec_decode(&d, m, n, "t", &e);
			ok &= rc == 0 || rc == LVD_ERR_FORMAT;
			lvd_packrec_free(&d);
		}
	}
	CHECK(ok);
	/* version 1 with the MCV flag */
	memcpy(m, buf, n);
	m[4] = 1;
	CHECK(lvd_packrec_decode(&d, m, n, "t", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "version 1 with flags 0xc");
	lvd_packrec_free(&d);
	free(m);
	free(buf);
	/* the encoder's MiniCPM rules */
	static const struct {
		int what;
		const char *msg;
	} bad[] = {
		{0, "square grid targets"},   {1, "4 pictures for a 2x1 slice grid"},
		{2, "slice grid 3x2 differs"}, {3, "image bound [2, 4) not 2 tokens after 3"},
		{4, "token 7 of picture 2 has label 5"}, {5, "query row 7 before the end 8"},
		{6, "tiling fields"},         {7, "extent 61x40"},
		{8, "label -5 out of range"},
	};
	for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
		mfixture(&f);
		switch (bad[c].what) {
		case 0: f.r.flags = LVD_PACKREC_MCV; break;
		case 1: f.r.n_pics = 4; break;
		case 2: f.pic[2].tw = 3; break;
		case 3: f.pic[1].start = 2; f.pic[1].end = 4; break;
		case 4: f.lab[7] = 5; break;
		case 5: f.q0[0] = 7; break;
		case 6: f.r.tile_px = 56; break;
		case 7: f.r.new_w = 61; break;
		case 8: f.lab[0] = -5; break;
		}
		CHECK(lvd_packrec_encode(&f.r, &buf, &n, &e) == LVD_ERR_INVALID);
		CHECK_CONTAINS(e.msg, bad[c].msg);
	}
	/* an mllama record must not carry pictures */
	struct fixture g;
	fixture(&g, 0);
	g.r.n_pics = 1;
	CHECK(lvd_packrec_encode(&g.r, &buf, &n, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "pictures without the MCV flag");
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_roundtrip), TEST(test_encode_rejects), TEST(test_corrupt_corpus), TEST(test_mcv), {0}};
	return lvd_test_main(argc, argv, tests);
}
