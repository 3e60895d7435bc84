/* tests/fuzz/mkseeds.c — writes the binary seed inputs of the record targets into
 * tests/fuzz/corpus/ (run from the source root: `make fuzz-seeds`; the output is
 * checked in, so this only reruns when a format changes):
 *   container/maps.lvdm      3 map records of the lvd-pack fixture (test_pack_fixture.h)
 *   container/pack.lvdp      4 pack records (below)
 *   mapsrec/rec-N            the payloads of those map records
 *   packrec/flags-F          pack payloads with flags 0, IMAGE, IMAGE|RAW, GRID
 *   official_maps/png, jpg   "attention_dog.png" + grey maps (one, and two sizes apart)
 * Text seeds (JSON, manifests, tokenizers, configs, images) are copied from tests/golden
 * by tests/fuzz/mkseeds.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit/test_pack_fixture.h"
#include "lavender/packrec.h"

static void die(const char *what, const struct lvd_error *e)
{
	fprintf(stderr, "mkseeds: %s: %s\n", what, e ? e->msg : "");
	exit(1);
}

static void put(const char *path, const void *d, size_t n)
{
	struct lvd_error e = {0};
	if (lvd_file_write_atomic(path, d, n, &e))
		die(path, &e);
}

/* The small valid pack sample of tests/unit/test_pack_rec.c: 1x2 tiles of 4 patches. */
static void pack_payload(uint32_t flags, uint8_t **out, size_t *n)
{
	static const int32_t tok[6] = {128000, 128256, 9906, 271, 5679, 128009};
	int32_t lab[6];
	for (int i = 0; i < 6; i++)
		lab[i] = i >= 3 ? tok[i] : -100;
	uint32_t p0[1] = {4}, q0[1] = {3}, p1[2] = {3, 4}, q1[2] = {2, 3};
	struct lvd_packrec_word w[2] = {
		{(char *)"dog", 1, 1, p0, q0, 5, 0.01f, 0.5f},
		{(char *)"\xc3\xa9t\xc3\xa9", 2, 2, p1, q1, -1, 0, 0.25f},
	};
	uint16_t tg[64], raw[30];
	uint8_t mask[32], img[5];
	struct lvd_packrec r;
	memset(&r, 0, sizeof r);
	r.id = (char *)"img-1";
	r.flags = flags;
	r.T = 6;
	r.tokens = (int32_t *)tok;
	r.labels = lab;
	r.W = 2;
	r.words = w;
	r.tiles_h = 1; r.tiles_w = 2; r.aspect_id = 2; r.tile_px = 56; r.patch_px = 14;
	r.img_w = 300; r.img_h = 100; r.new_w = 112; r.new_h = 40;
	r.gh = 4; r.gw = 8;
	for (uint32_t y = 0; y < 4; y++)
		for (uint32_t x = 0; x < 8; x++)
			mask[y * 8 + x] = (flags & LVD_PACKREC_GRID) ? 1 : (y * 14 < 40 && x * 14 < 112);
	r.mask = mask;
	for (int i = 0; i < 64; i++)
		tg[i] = mask[i % 32] ? lvd_f32_to_f16((float)(i % 7) / 6.0f) : 0;
	r.targets = tg;
	if (flags & LVD_PACKREC_RAW) {
		r.rh = 3; r.rw = 5;
		for (int i = 0; i < 30; i++)
			raw[i] = lvd_f32_to_f16(i * 0.01f);
		r.raw = raw;
	}
	memcpy(img, (flags & LVD_PACKREC_IMAGE) ? "\x89PNG\r" : "a.png", 5);
	r.image = img;
	r.image_len = 5;
	r.image_pos = 1;
	struct lvd_error e = {0};
	if (lvd_packrec_encode(&r, out, n, &e))
		die("packrec", &e);
}

static void grey_png(int w, int h, uint8_t **out, size_t *n)
{
	struct lvd_image im = {0};
	struct lvd_error e = {0};
	if (lvd_image_alloc(&im, w, h, 1, &e))
		die("image", &e);
	for (int i = 0; i < w * h; i++)
		im.px[i] = (uint8_t)(i * 37);
	if (lvd_image_encode_png(&im, out, n, &e))
		die("png", &e);
	lvd_image_free(&im);
}

int main(int argc, char **argv)
{
	const char *tmp = argc > 1 ? argv[1] : "/tmp/lvd-mkseeds";
	const char *C = "tests/fuzz/corpus";
	char p[4096];
	struct lvd_error e = {0};
	if (pkf_make(tmp, 3, 0, ".", &e))
		die("pkf_make", &e);
	/* container + mapsrec */
	snprintf(p, sizeof p, "%s/maps/attn-00000.lvdm", tmp);
	char *data;
	size_t len;
	if (lvd_file_read_all(p, 1 << 20, &data, &len, &e))
		die(p, &e);
	snprintf(p, sizeof p, "%s/container/maps.lvdm", C);
	put(p, data, len);
	free(data);
	struct lvd_rec_reader *rr;
	snprintf(p, sizeof p, "%s/maps/attn-00000.lvdm", tmp);
	if (lvd_rec_open(&rr, p, NULL, &e))
		die(p, &e);
	for (size_t i = 0; i < lvd_rec_count(rr); i++) {
		void *b;
		size_t n;
		if (lvd_rec_read(rr, i, &b, &n, &e))
			die("read", &e);
		snprintf(p, sizeof p, "%s/mapsrec/rec-%zu", C, i);
		put(p, b, n);
		free(b);
	}
	lvd_rec_close(rr);
	/* packrec + a pack container */
	static const uint32_t flagsets[] = {0, LVD_PACKREC_IMAGE, LVD_PACKREC_RAW | LVD_PACKREC_IMAGE, LVD_PACKREC_GRID};
	struct lvd_rec_writer *w;
	snprintf(p, sizeof p, "%s/container/pack.lvdp", C);
	if (lvd_rec_writer_open(&w, p, LVD_REC_KIND_PACK, "{\"tool\":\"mkseeds\"}", NULL, &e))
		die(p, &e);
	for (int k = 0; k < 4; k++) {
		uint8_t *b;
		size_t n;
		pack_payload(flagsets[k], &b, &n);
		snprintf(p, sizeof p, "%s/packrec/flags-%u", C, flagsets[k]);
		put(p, b, n);
		char id[16];
		snprintf(id, sizeof id, "s%d", k);
		if (lvd_rec_writer_append(w, id, b, n, &e))
			die("append", &e);
		free(b);
	}
	if (lvd_rec_writer_close(w, &e))
		die("close", &e);
	/* official maps: name line, then map files split by "\n@@\n" */
	uint8_t *a, *b;
	size_t na, nb;
	grey_png(8, 6, &a, &na);
	grey_png(4, 3, &b, &nb);
	for (int k = 0; k < 3; k++) {
		static const char *const names[] = {"attention_dog.png\n", "attention_Dog_2.jpg\n", "attention_..jpg\n"};
		size_t hl = strlen(names[k]);
		size_t tot = hl + na + (k ? 4 + (k == 1 ? na : nb) : 0);
		uint8_t *s = malloc(tot);
		memcpy(s, names[k], hl);
		memcpy(s + hl, a, na);
		if (k) {
			memcpy(s + hl + na, "\n@@\n", 4);
			memcpy(s + hl + na + 4, k == 1 ? a : b, k == 1 ? na : nb);
		}
		snprintf(p, sizeof p, "%s/official_maps/maps-%d", C, k);
		put(p, s, tot);
		free(s);
	}
	free(a);
	free(b);
	return 0;
}
