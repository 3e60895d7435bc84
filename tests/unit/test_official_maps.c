/* tests/unit/test_official_maps.c — lib/lavender/official_maps: file-name keys, key
 * cleaning, reading a folder (merge, duplicates, ignored keys, sizes, bad files), map
 * assignment to CLIP words and pieces, the imported record, and the round trip
 * record -> official files -> record (PNG exact to 8 bits, JPEG within its measured loss). */
#include "harness.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/official_maps.h"

static char g_tmp[] = "/tmp/lvd-official-XXXXXX";

static void test_parse_name(void)
{
	static const struct {
		const char *name;
		int want;
		const char *key;
	} c[] = {
		{"attention_dog.jpg", 1, "dog"},      {"attention_dog_2.jpg", 1, "dog"},
		{"attention_hot.dog.png", 1, "hot"},  {"attention_..jpg", 1, ""},
		{"attention_.png", 1, ""},            {"attention__x.jpeg", 1, ""},
		{"attention_Dog.JPG", 1, "Dog"},      {"attention_é.png", 1, "é"},
		{"attention_dog.gif", 0, NULL},       {"attention_dog", 0, NULL},
		{"dog.jpg", 0, NULL},                 {"Attention_dog.jpg", 0, NULL},
		{"xattention_dog.jpg", 0, NULL},      {"attention_dog.jpg.tmp", 0, NULL},
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		char key[LVD_OFFICIAL_MAX_KEY] = "?";
		int r = lvd_official_parse_name(c[i].name, key, sizeof key);
		CHECKF(r == c[i].want, "%s: %d", c[i].name, r);
		if (c[i].key)
			CHECK_STR(key, c[i].key);
	}
	char small[4];
	CHECK(lvd_official_parse_name("attention_dogs.png", small, sizeof small) == -1);
	CHECK(lvd_official_parse_name("attention_dog.png", small, sizeof small) == 1);
}

static void test_keys(void)
{
	char k[LVD_OFFICIAL_MAX_KEY];
	struct lvd_error err = {0};
	CHECK(lvd_official_clean_key("Dog", k, sizeof k, &err) == 0);
	CHECK_STR(k, "dog");
	CHECK(lvd_official_clean_key("  CAFE\xcc\x81 ", k, sizeof k, &err) == 0); /* NFC + lower + trim */
	CHECK_STR(k, "caf\xc3\xa9");
	CHECK(lvd_official_clean_key("a\xff", k, sizeof k, &err) == LVD_ERR_INVALID);
	CHECK(lvd_official_clean_key("dogs", k, 4, &err) == LVD_ERR_INVALID);
	CHECK(lvd_official_piece_key("dog</w>", k, sizeof k) == 3);
	CHECK_STR(k, "dog");
	CHECK(lvd_official_piece_key("skate", k, sizeof k) == 5);
	CHECK_STR(k, "skate");
	/* byte-level: U+00C3 U+00A9 are the bytes c3 a9 ("é") */
	CHECK(lvd_official_piece_key("\xc3\x83\xc2\xa9</w>", k, sizeof k) == 2);
	CHECK_STR(k, "\xc3\xa9");
	CHECK(lvd_official_piece_key("\xe4\xb8\x80", k, sizeof k) == -1); /* not byte-level */
}

static void test_quantize(void)
{
	float a[4] = {0, 0.5f, 1.0f, 2.0f};
	uint8_t q[4];
	lvd_official_quantize(q, a, 4, LVD_OFFICIAL_NORM_MAX);
	CHECK(q[0] == 0 && q[1] == 64 && q[2] == 128 && q[3] == 255); /* 63.75, 127.5 round half up */
	float b[4] = {-1, 0.5f, 2, NAN};
	lvd_official_quantize(q, b, 4, LVD_OFFICIAL_NORM_NONE);
	CHECK(q[0] == 0 && q[1] == 128 && q[2] == 255 && q[3] == 0);
	float z[3] = {0, -2, 0};
	lvd_official_quantize(q, z, 3, LVD_OFFICIAL_NORM_MAX);
	CHECK(q[0] == 0 && q[1] == 0 && q[2] == 0);
}

static char *path_of(const char *a, const char *b)
{
	static char buf[4][1024];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", a, b);
	return buf[k];
}

static void fill(uint8_t *px, int n, int seed)
{
	for (int i = 0; i < n; i++)
		px[i] = (uint8_t)((i * 37 + seed * 11) & 0xff);
}

static void test_write_read(void)
{
	struct lvd_error err = {0};
	char root[512];
	snprintf(root, sizeof root, "%s/rw", g_tmp);
	uint8_t a[12], b[12], c[12], d[6];
	fill(a, 12, 1);
	fill(b, 12, 2);
	fill(c, 12, 3);
	fill(d, 6, 4);
	REQUIRE(lvd_official_write(root, "img.x.png", "dog", a, 4, 3, LVD_OFFICIAL_PNG, &err) == 0);
	REQUIRE(lvd_official_write(root, "img.x.png", "cat", b, 4, 3, LVD_OFFICIAL_PNG, &err) == 0);
	char sub[1024];
	snprintf(sub, sizeof sub, "%s/img.x.png/lpm_attention/img.x", root);
	struct stat st;
	CHECK(stat(path_of(sub, "attention_dog.png"), &st) == 0);
	/* bad names are refused */
	CHECK(lvd_official_write(root, "img.png", "a_b", a, 4, 3, LVD_OFFICIAL_PNG, &err) == LVD_ERR_INVALID);
	CHECK(lvd_official_write(root, "img.png", "a.b", a, 4, 3, LVD_OFFICIAL_PNG, &err) == LVD_ERR_INVALID);
	CHECK(lvd_official_write(root, "a/b.png", "dog", a, 4, 3, LVD_OFFICIAL_PNG, &err) == LVD_ERR_INVALID);
	CHECK(lvd_official_write(root, "img.png", "", a, 4, 3, LVD_OFFICIAL_PNG, &err) == LVD_ERR_INVALID);

	/* a second sub-folder ("zz" sorts after "img.x") re-keys "Dog" (cleaned to dog): it
	 * replaces the first; an RGB file goes through PIL's L formula; ignored keys; a
	 * non-map file */
	char sub2[1024];
	snprintf(sub2, sizeof sub2, "%s/img.x.png/lpm_attention/zz", root);
	REQUIRE(mkdir(sub2, 0777) == 0);
	struct lvd_image rgb = {0};
	REQUIRE(lvd_image_alloc(&rgb, 4, 3, 3, &err) == 0);
	for (int i = 0; i < 12; i++) {
		rgb.px[3 * i] = c[i];
		rgb.px[3 * i + 1] = (uint8_t)(255 - c[i]);
		rgb.px[3 * i + 2] = (uint8_t)(c[i] / 2);
	}
	REQUIRE(lvd_image_save_png(&rgb, path_of(sub2, "attention_Dog_1.png"), &err) == 0);
	lvd_image_free(&rgb);
	struct lvd_image g = {4, 3, 1, a};
	REQUIRE(lvd_image_save_png(&g, path_of(sub2, "attention_..png"), &err) == 0);
	REQUIRE(lvd_image_save_png(&g, path_of(sub2, "attention_<|endoftext|>.png"), &err) == 0);
	FILE *f = fopen(path_of(sub2, "notes.txt"), "w");
	REQUIRE(f);
	fputs("not a map", f);
	fclose(f);

	struct lvd_official_set set;
	CHECKF(lvd_official_read(&set, root, "img.x.png", &err) == 0, "%s", err.msg);
	REQUIRE(set.n);
	CHECK(set.n == 2 && set.w == 4 && set.h == 3);
	CHECK(set.files == 5 && set.ignored == 2 && set.replaced == 1);
	CHECK_CONTAINS(set.replaced_path, "img.x/attention_dog.png");
	CHECK_CONTAINS(set.replaced_by, "zz/attention_Dog_1.png");
	REQUIRE(set.n == 2);
	CHECK_STR(set.maps[0].key, "cat");   /* files in name order: cat, dog, then zz/ */
	CHECK_STR(set.maps[1].key, "dog");
	CHECK(memcmp(set.maps[0].px, b, 12) == 0);
	int okL = 1;
	for (int i = 0; i < 12; i++) {
		unsigned L = (19595u * c[i] + 38470u * (255u - c[i]) + 7471u * (c[i] / 2u) + 0x8000u) >> 16;
		okL &= set.maps[1].px[i] == L;
	}
	CHECK(okL);
	lvd_official_set_free(&set);

	/* JPEG: lossy but close */
	REQUIRE(lvd_official_write(root, "j.png", "dog", a, 4, 3, LVD_OFFICIAL_JPEG, &err) == 0);
	REQUIRE(lvd_official_read(&set, root, "j.png", &err) == 0);
	REQUIRE(set.n == 1);
	CHECK_CONTAINS(set.maps[0].path, "attention_dog.jpg");
	int worst = 0;
	for (int i = 0; i < 12; i++) {
		int dlt = abs((int)set.maps[0].px[i] - (int)a[i]);
		worst = dlt > worst ? dlt : worst;
	}
	CHECKF(worst <= 3, "JPEG q100 worst %d levels", worst); /* measured 0 here; see roundtrip */
	lvd_official_set_free(&set);

	/* errors name the path or file */
	CHECK(lvd_official_read(&set, root, "..", &err) == LVD_ERR_INVALID);
	CHECK(lvd_official_read(&set, root, "", &err) == LVD_ERR_INVALID);
	CHECK(lvd_official_read(&set, root, "nope.png", &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, "nope.png");
	char p[1024];
	snprintf(p, sizeof p, "%s/empty.png/lpm_attention/empty", root);
	REQUIRE(lvd_mkdir_p(p, &err) == 0);
	CHECK(lvd_official_read(&set, root, "empty.png", &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, "no attention_<word>");
	REQUIRE(lvd_official_write(root, "size.png", "dog", a, 4, 3, LVD_OFFICIAL_PNG, &err) == 0);
	REQUIRE(lvd_official_write(root, "size.png", "emu", d, 3, 2, LVD_OFFICIAL_PNG, &err) == 0);
	CHECK(lvd_official_read(&set, root, "size.png", &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "attention_emu.png: map is 3x2, the maps before it are 4x3");
	REQUIRE(lvd_official_write(root, "bad.png", "dog", a, 4, 3, LVD_OFFICIAL_PNG, &err) == 0);
	snprintf(p, sizeof p, "%s/bad.png/lpm_attention/bad/attention_cat.jpg", root);
	f = fopen(p, "w");
	REQUIRE(f);
	fputs("garbage", f);
	fclose(f);
	CHECK(lvd_official_read(&set, root, "bad.png", &err) != 0);
	CHECK_CONTAINS(err.msg, "attention_cat.jpg");
	CHECK(set.n == 0 && set.maps == NULL);
}

/* A hand-made tokenization of "a skateboard, a Dog and a dog" (CLIP: a | skate board |
 * , | a | dog | and | a | dog). */
static char *g_strs[] = {"a</w>", "skate", "board</w>", ",</w>", "a</w>", "dog</w>", "and</w>", "a</w>", "dog</w>"};
static char *g_words[] = {"a", "skateboard", ",", "a", "Dog", "and", "a", "dog"};
static const char g_text[] = "a skateboard, a Dog and a dog";

static void make_text(struct lvd_attnmap_text *t, uint32_t *spans, int32_t *widx)
{
	static const uint32_t sp[9][2] = {{0, 1}, {2, 7}, {7, 12}, {12, 13}, {14, 15}, {16, 19}, {20, 23}, {24, 25}, {26, 29}};
	static const int32_t wi[9] = {0, 1, 1, 2, 3, 4, 5, 6, 7};
	memset(t, 0, sizeof *t);
	t->T = 9;
	t->ids[0] = 49406;
	for (int i = 0; i < 9; i++) {
		t->ids[1 + i] = 1000 + i;
		spans[2 * i] = sp[i][0];
		spans[2 * i + 1] = sp[i][1];
		widx[i] = wi[i];
	}
	t->token_strs = g_strs;
	t->spans = spans;
	t->word_idx = widx;
	t->n_words = 8;
	t->words = g_words;
}

/* A set with the given keys (maps of size 2x2 filled with the key index). */
static void make_set(struct lvd_official_set *s, const char *const *keys, size_t n)
{
	memset(s, 0, sizeof *s);
	s->n = n;
	s->w = 2;
	s->h = 2;
	s->maps = calloc(n, sizeof *s->maps);
	for (size_t i = 0; i < n; i++) {
		snprintf(s->maps[i].key, sizeof s->maps[i].key, "%s", keys[i]);
		s->maps[i].path = malloc(64);
		snprintf(s->maps[i].path, 64, "root/attention_%s.png", keys[i]);
		s->maps[i].px = malloc(4);
		for (int k = 0; k < 4; k++)
			s->maps[i].px[k] = (uint8_t)(10 * i + (size_t)k * 60);
	}
	s->files = (uint32_t)n;
}

static void test_assign(void)
{
	struct lvd_attnmap_text t;
	uint32_t spans[18];
	int32_t widx[9], tm[9];
	make_text(&t, spans, widx);
	struct lvd_official_assign_stats st;
	struct lvd_error err = {0};
	struct lvd_official_set s;

	/* word maps: dog on both occurrences, skateboard on both pieces */
	const char *k1[] = {"dog", "skateboard"};
	make_set(&s, k1, 2);
	REQUIRE(lvd_official_assign(tm, &st, &t, &s, NULL, 0, 0, &err) == 0);
	static const int32_t w1[9] = {-1, 1, 1, -1, -1, 0, -1, -1, 0};
	CHECK(memcmp(tm, w1, sizeof w1) == 0);
	CHECK(st.words == 3 && st.piecewise == 0 && st.unknown == 0);
	lvd_official_set_free(&s);

	/* piece maps; "a" maps its three occurrences */
	const char *k2[] = {"board", "skate", "a"};
	make_set(&s, k2, 3);
	REQUIRE(lvd_official_assign(tm, &st, &t, &s, NULL, 0, 0, &err) == 0);
	static const int32_t w2[9] = {2, 1, 0, -1, 2, -1, -1, 2, -1};
	CHECK(memcmp(tm, w2, sizeof w2) == 0);
	CHECK(st.words == 4 && st.piecewise == 1);
	lvd_official_set_free(&s);

	/* a word map wins over its pieces (counted as unused); a lone piece is partial */
	const char *k3[] = {"skateboard", "skate", "board", ","};
	make_set(&s, k3, 4);
	REQUIRE(lvd_official_assign(tm, &st, &t, &s, NULL, 0, 0, &err) == 0);
	CHECK(tm[1] == 0 && tm[2] == 0 && tm[3] == 3);
	CHECK(st.words == 2 && st.unused == 2 && st.partial == 0);
	lvd_official_set_free(&s);
	const char *k4[] = {"skate", "dog"};
	make_set(&s, k4, 2);
	REQUIRE(lvd_official_assign(tm, &st, &t, &s, NULL, 0, 0, &err) == 0);
	CHECK(tm[1] == -1 && tm[2] == -1 && tm[5] == 1);
	CHECKF(st.partial == 1 && st.words == 2 && st.unused == 0, "%u %u %u", st.partial, st.words, st.unused);
	lvd_official_set_free(&s);

	/* unknown words: an error naming the file, or counted; cut keys are counted */
	const char *k5[] = {"dog", "zebra", "tail"};
	make_set(&s, k5, 3);
	CHECK(lvd_official_assign(tm, &st, &t, &s, NULL, 0, 0, &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, "root/attention_zebra.png: word 'zebra' is not in the SD text");
	const char *cut[] = {"tail"};
	REQUIRE(lvd_official_assign(tm, &st, &t, &s, cut, 1, 1, &err) == 0);
	CHECK(st.unknown == 1 && st.cut == 1 && st.words == 2);
	lvd_official_set_free(&s);

	/* nothing matches */
	const char *k6[] = {"zebra"};
	make_set(&s, k6, 1);
	CHECK(lvd_official_assign(tm, &st, &t, &s, NULL, 0, 1, &err) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(err.msg, "names a word of the SD text");
	lvd_official_set_free(&s);

	/* the record: tokens with maps in order, words renumbered, values v/255 */
	const char *k7[] = {"dog", "skate", "board"};
	make_set(&s, k7, 3);
	REQUIRE(lvd_official_assign(tm, &st, &t, &s, NULL, 0, 0, &err) == 0);
	struct lvd_attnmap_sample smp = {7, "id7", g_text, "imgs/x.jpg", "/abs/imgs/x.jpg", &t};
	uint8_t *pay = NULL;
	size_t len = 0;
	REQUIRE(lvd_official_encode(&pay, &len, &smp, &s, tm, 640, 480, &err) == 0);
	struct lvd_mapsrec r = {0};
	REQUIRE(lvd_mapsrec_decode(&r, pay, len, "test", &err) == 0);
	CHECK(r.T == 4 && r.n_words == 3 && r.grid_w == 2 && r.grid_h == 2 && r.index == 7);
	CHECK(r.img_w == 640 && r.img_h == 480 && r.sd_w == 640 && r.resolution == 640 && r.n_layers == 0);
	CHECK_STR(r.image_file, "imgs/x.jpg");
	CHECK_STR(r.text, g_text);
	if (r.T == 4 && r.n_words == 3) {
		CHECK(r.tokens[0] == 1001 && r.tokens[1] == 1002 && r.tokens[2] == 1005 && r.tokens[3] == 1008);
		CHECK(r.word_idx[0] == 0 && r.word_idx[1] == 0 && r.word_idx[2] == 1 && r.word_idx[3] == 2);
		CHECK_STR(r.words[0], "skateboard");
		CHECK_STR(r.words[1], "Dog");
		CHECK_STR(r.token_strs[1], "board</w>");
		CHECK(r.spans[4] == 16 && r.spans[5] == 19);
		for (int k = 0; k < 4; k++) {
			CHECK_NEAR(lvd_f16_to_f32(r.maps[1 * 4 + k]), s.maps[2].px[k] / 255.0, 5e-4);
			CHECK_NEAR(lvd_f16_to_f32(r.maps[3 * 4 + k]), s.maps[0].px[k] / 255.0, 5e-4);
		}
		CHECK_NEAR(r.stats[3].max, s.maps[0].px[3] / 255.0, 1e-6);
	}
	lvd_mapsrec_free(&r);
	free(pay);
	lvd_official_set_free(&s);
}

/* record -> words -> 8-bit files -> set -> assigned -> record: each word's map comes back
 * as mean/max of its tokens' maps, within half a grey level (plus fp16 storage). */
static void roundtrip(enum lvd_official_format fmt, const char *sub, double tol)
{
	struct lvd_attnmap_text t;
	uint32_t spans[18];
	int32_t widx[9];
	make_text(&t, spans, widx);
	enum { GW = 5, GH = 3, P = GW * GH };
	uint16_t maps[9 * P];
	for (int i = 0; i < 9 * P; i++)
		maps[i] = lvd_f32_to_f16(0.1f * (float)lvd_rng_uniform(42, 7, (uint64_t)i));
	int32_t ids[9];
	struct lvd_attnmap_stats stats[9] = {{0}};
	for (int i = 0; i < 9; i++)
		ids[i] = t.ids[1 + i];
	struct lvd_mapsrec r = {0};
	r.id = "rt";
	r.text = (char *)g_text;
	r.T = 9;
	r.tokens = ids;
	r.token_strs = g_strs;
	r.spans = spans;
	r.word_idx = widx;
	r.n_words = 8;
	r.words = g_words;
	r.grid_w = GW;
	r.grid_h = GH;
	r.maps = maps;
	r.stats = stats;
	struct lvd_official_word *w = NULL;
	size_t nw = 0;
	uint32_t skipped = 0;
	struct lvd_error err = {0};
	REQUIRE(lvd_official_words(&w, &nw, &skipped, &r, &err) == 0);
	/* keys a (3 words), skateboard, ",", dog (Dog + dog), and */
	CHECK(nw == 5 && skipped == 0);
	char root[512];
	snprintf(root, sizeof root, "%s/%s", g_tmp, sub);
	for (size_t i = 0; i < nw; i++) {
		uint8_t px[P];
		lvd_official_quantize(px, w[i].map, P, LVD_OFFICIAL_NORM_MAX);
		REQUIRE(lvd_official_write(root, "rt.jpg", w[i].key, px, GW, GH, fmt, &err) == 0);
	}
	struct lvd_official_set s;
	REQUIRE(lvd_official_read(&s, root, "rt.jpg", &err) == 0);
	CHECK(s.n == 5 && s.w == GW && s.h == GH);
	int32_t tm[9];
	struct lvd_official_assign_stats st;
	REQUIRE(lvd_official_assign(tm, &st, &t, &s, NULL, 0, 0, &err) == 0);
	CHECK(st.words == 8);
	struct lvd_attnmap_sample smp = {0, "rt", g_text, "rt.jpg", "rt.jpg", &t};
	uint8_t *pay = NULL;
	size_t len = 0;
	REQUIRE(lvd_official_encode(&pay, &len, &smp, &s, tm, 10, 6, &err) == 0);
	struct lvd_mapsrec b = {0};
	REQUIRE(lvd_mapsrec_decode(&b, pay, len, "rt", &err) == 0);
	REQUIRE(b.T == 9);
	/* expected per token: mean over all tokens of all words with the same key, / max */
	static const int key_of_tok[9] = {0, 1, 1, 2, 0, 3, 4, 0, 3}; /* a, skateboard, ",", dog, and */
	double worst = 0;
	for (int k = 0; k < 5; k++) {
		float m[P] = {0}, mx = 0;
		int n = 0;
		for (int tk = 0; tk < 9; tk++)
			if (key_of_tok[tk] == k) {
				for (int i = 0; i < P; i++)
					m[i] += lvd_f16_to_f32(maps[tk * P + i]);
				n++;
			}
		for (int i = 0; i < P; i++) {
			m[i] /= (float)n;
			mx = m[i] > mx ? m[i] : mx;
		}
		for (int tk = 0; tk < 9; tk++)
			if (key_of_tok[tk] == k)
				for (int i = 0; i < P; i++) {
					double d = fabs(lvd_f16_to_f32(b.maps[tk * P + i]) - m[i] / mx);
					worst = d > worst ? d : worst;
				}
	}
	CHECKF(worst <= tol, "%s: worst %.3g > %.3g", sub, worst, tol);
	lvd_mapsrec_free(&b);
	free(pay);
	lvd_official_set_free(&s);
	lvd_official_words_free(w, nw);
}

static void test_roundtrip_png(void)
{
	/* half a level of 8-bit rounding + fp16 storage of a value <= 1 (2^-11) */
	roundtrip(LVD_OFFICIAL_PNG, "rt-png", 0.5 / 255 + 1.0 / 2048);
}

static void test_roundtrip_jpeg(void)
{
	/* quality-100 grey JPEG of 5x3 noise maps: measured worst 1.4 levels (rounding
	 * included) with this libjpeg-turbo; 3 levels leave room for other builds' DCT */
	roundtrip(LVD_OFFICIAL_JPEG, "rt-jpg", 3.0 / 255 + 1.0 / 2048);
}

static void test_words_skip(void)
{
	/* words whose key the loader cannot parse back are skipped and counted */
	char *strs[] = {"a_b</w>", ".</w>", "x</w>"};
	char *words[] = {"a_b", ".", "x"};
	uint32_t spans[6] = {0, 3, 3, 4, 5, 6};
	int32_t widx[3] = {0, 1, 2}, ids[3] = {1, 2, 3};
	uint16_t maps[3] = {0, 0, 0};
	struct lvd_attnmap_stats stats[3] = {{0}};
	struct lvd_mapsrec r = {0};
	r.id = "s";
	r.text = "a_b. x";
	r.T = 3;
	r.tokens = ids;
	r.token_strs = strs;
	r.spans = spans;
	r.word_idx = widx;
	r.n_words = 3;
	r.words = words;
	r.grid_w = r.grid_h = 1;
	r.maps = maps;
	r.stats = stats;
	struct lvd_official_word *w = NULL;
	size_t n = 0;
	uint32_t skipped = 0;
	struct lvd_error err = {0};
	REQUIRE(lvd_official_words(&w, &n, &skipped, &r, &err) == 0);
	CHECK(n == 1 && skipped == 2);
	if (n == 1)
		CHECK_STR(w[0].key, "x");
	lvd_official_words_free(w, n);
}

int main(int argc, char **argv)
{
	if (!mkdtemp(g_tmp)) {
		perror("mkdtemp");
		return 1;
	}
	static const struct lvd_test tests[] = {
		TEST(test_parse_name), TEST(test_keys),        TEST(test_quantize),       TEST(test_write_read),
		TEST(test_assign),     TEST(test_roundtrip_png), TEST(test_roundtrip_jpeg), TEST(test_words_skip),
		{0},
	};
	int rc = lvd_test_main(argc, argv, tests);
	char cmd[1100];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", g_tmp);
	return rc;
}
