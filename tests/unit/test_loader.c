/* Tests for the lvd-sft pack loader (lib/train/loader.h) on small synthetic packs written
 * here record by record (tile 56, patch 14, 4 tiles, so image processing stays cheap):
 * the epoch order (determinism, a permutation), coverage per epoch, resume from a cursor
 * and seek, the rank split (with the step counts of whole global steps), thread-count
 * invariance (byte-equal batches), padding and labels, counts and capture rows against
 * the plan, pixels against the image processor, records that store image paths, the
 * model fingerprint check, and errors for a truncated, missing or miscounted shard, a
 * bad record and an image that no longer decodes. */
#include <stdint.h>
#include <unistd.h>

#include "harness.h"

#include "core/rng.h"
#include "core/sha256.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/geometry.h"
#include "lavender/packrec.h"
#include "train/loader.h"

#define TILE 56
#define PATCH 14
#define TL 4
#define IMG_TOK 9
#define PAD_ID 0

static const int img_sizes[4][2] = {{64, 48}, {48, 96}, {120, 30}, {40, 40}}; /* w, h */

static char g_root[256];  /* one temporary folder for the whole binary */

static void rm_rf(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd)) {
	}
}

static void sha_hex(const char *path, char hex[LVD_SHA256_HEX_LEN])
{
	unsigned char d[LVD_SHA256_LEN];
	struct lvd_error e = {0};
	LVD_ASSERT(lvd_sha256_file(path, d, &e) == 0);
	lvd_sha256_hex(d, hex);
}

static void write_str(const char *path, const char *s)
{
	struct lvd_error e = {0};
	LVD_ASSERT(lvd_file_write_atomic(path, s, strlen(s), &e) == 0);
}

/* The model folder (config + tokenizer placeholder). */
static void make_model(const char *dir, const char *tok_text)
{
	char p[512];
	struct lvd_error e = {0};
	LVD_ASSERT(lvd_mkdir_p(dir, &e) == 0);
	snprintf(p, sizeof p, "%s/config.json", dir);
	write_str(p, "{\"model_type\": \"mllama\", \"image_token_index\": 9, \"text_config\": {\"pad_token_id\": 0}, "
		     "\"vision_config\": {\"image_size\": 56, \"patch_size\": 14, \"max_num_tiles\": 4}}\n");
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	write_str(p, tok_text);
}

/* Encoded payload of synthetic record i (bad_image: truncated PNG bytes). path_root:
 * store the image as the file path_root/img/rNNN.png, the record holding the relative
 * path "img/rNNN.png" (lvd-pack --no-embed-images). */
static uint8_t *make_record(int i, int bad_image, const char *path_root, size_t *len)
{
	struct lvd_error e = {0};
	int k = i % 4, w = img_sizes[k][0], h = img_sizes[k][1];
	struct lvd_image im = {w, h, 3, malloc((size_t)w * h * 3)};
	for (int j = 0; j < w * h * 3; j++)
		im.px[j] = (uint8_t)((j * 7 + i * 31) & 255);
	uint8_t *png = NULL;
	size_t png_len = 0;
	LVD_ASSERT(lvd_image_encode_png(&im, &png, &png_len, &e) == 0);
	free(im.px);
	struct lvd_geom_cfg gc = {TILE, PATCH, TL};
	struct lvd_geom g;
	LVD_ASSERT(lvd_geom_layout(&g, &gc, h, w, &e) == 0);

	struct lvd_packrec r = {0};
	char id[16];
	snprintf(id, sizeof id, "r%03d", i);
	r.id = id;
	r.flags = LVD_PACKREC_IMAGE;
	r.T = 6 + (uint32_t)(i % 5);
	int32_t tokens[16], labels[16];
	for (uint32_t t = 0; t < r.T; t++) {
		tokens[t] = t == 1 ? IMG_TOK : 100 + i + (int)t;
		labels[t] = t < 3 && !(t == 0 && i % 5 == 4) ? -100 : tokens[t]; /* record 4: a label at t = 0 */
	}
	r.tokens = tokens;
	r.labels = labels;
	r.W = (uint32_t)(i % 3);
	struct lvd_packrec_word words[2];
	uint32_t pos[2][2], query[2][2];
	char keys[2][8];
	for (uint32_t wi = 0; wi < r.W; wi++) {
		snprintf(keys[wi], sizeof keys[wi], "w%u", wi);
		pos[wi][0] = 3 + wi;
		pos[wi][1] = 5;
		query[wi][0] = 2 + wi;
		query[wi][1] = 4;
		words[wi] = (struct lvd_packrec_word){keys[wi], 2, 2, pos[wi], query[wi], 0, 0.0f, 1.0f};
	}
	r.words = words;
	r.gh = (uint32_t)g.grid_h;
	r.gw = (uint32_t)g.grid_w;
	size_t hw = (size_t)r.gh * r.gw;
	r.mask = malloc(hw);
	r.targets = calloc(r.W * hw + 1, sizeof *r.targets);
	for (size_t c = 0; c < hw; c++) {
		int y = (int)(c / r.gw), x = (int)(c % r.gw);
		r.mask[c] = y * PATCH < g.new_h && x * PATCH < g.new_w;
		for (uint32_t wi = 0; wi < r.W; wi++)
			r.targets[wi * hw + c] = lvd_f32_to_f16(r.mask[c] ? (float)((c + wi) % 5) / 4.0f : 0.0f);
	}
	lvd_packrec_set_geom(&r, &g, TILE, PATCH);
	r.image_pos = 1;
	r.image = png;
	r.image_len = (uint32_t)(bad_image ? png_len / 2 : png_len);
	char rel[32];
	if (path_root) {
		char full[600];
		snprintf(full, sizeof full, "%s/img", path_root);
		LVD_ASSERT(lvd_mkdir_p(full, &e) == 0);
		snprintf(rel, sizeof rel, "img/r%03d.png", i);
		snprintf(full, sizeof full, "%s/%s", path_root, rel);
		LVD_ASSERT(lvd_file_write_atomic(full, png, png_len, &e) == 0);
		r.flags = 0;
		r.image = (uint8_t *)rel;
		r.image_len = (uint32_t)strlen(rel);
	}
	uint8_t *out = NULL;
	int rc = lvd_packrec_encode(&r, &out, len, &e);
	if (rc)
		fprintf(stderr, "encode: %s\n", e.msg);
	LVD_ASSERT(rc == 0);
	free(png);
	free(r.mask);
	free(r.targets);
	return out;
}

/* A pack at dir for the model folder: shards of the given sizes (records numbered in
 * order). bad_rec >= 0: that record's payload is garbage; bad_img >= 0: that record's
 * image is truncated. */
static void make_pack(const char *dir, const char *model, const int *sizes, int nsh, int bad_rec, int bad_img,
		      const char *path_root)
{
	struct lvd_error e = {0};
	LVD_ASSERT(lvd_mkdir_p(dir, &e) == 0);
	char p[512], c[LVD_SHA256_HEX_LEN], t[LVD_SHA256_HEX_LEN];
	snprintf(p, sizeof p, "%s/config.json", model);
	sha_hex(p, c);
	snprintf(p, sizeof p, "%s/tokenizer.json", model);
	sha_hex(p, t);
	char fp[400], js[1200];
	snprintf(fp, sizeof fp, "{\"config_sha256\": \"%s\", \"tokenizer_sha256\": \"%s\"}", c, t);
	snprintf(js, sizeof js, "{\"tool\": \"test_loader\", \"params\": {}, \"inputs\": {\"model\": %s}}\n", fp);
	snprintf(p, sizeof p, "%s/pack.json", dir);
	write_str(p, js);
	char lines[4096] = "";
	int rec = 0;
	for (int s = 0; s < nsh; s++) {
		struct lvd_rec_writer *w = NULL;
		snprintf(p, sizeof p, "%s/train-%05d.lvdp", dir, s);
		LVD_ASSERT(lvd_rec_writer_open(&w, p, LVD_REC_KIND_PACK, js, NULL, &e) == 0);
		for (int k = 0; k < sizes[s]; k++, rec++) {
			char id[16];
			snprintf(id, sizeof id, "r%03d", rec);
			size_t len = 0;
			uint8_t *pl = make_record(rec, rec == bad_img, path_root, &len);
			if (rec == bad_rec)
				memcpy(pl, "XXXX", 4);
			LVD_ASSERT(lvd_rec_writer_append(w, id, pl, len, &e) == 0);
			free(pl);
		}
		LVD_ASSERT(lvd_rec_writer_close(w, &e) == 0);
		size_t n = strlen(lines);
		snprintf(lines + n, sizeof lines - n, "{\"shard\": %d, \"first\": 0, \"end\": 0, \"records\": %d}\n", s,
			 sizes[s]);
	}
	snprintf(p, sizeof p, "%s/shards.jsonl", dir);
	write_str(p, lines);
}

static const int SIZES[3] = {7, 5, 9}; /* 21 records */
#define NREC 21
static char g_model[300], g_pack[300];

static void opts_base(struct lvd_loader_opts *o, int batch, int images)
{
	lvd_loader_opts_default(o);
	o->pack = g_pack;
	o->batch = batch;
	o->seed = 1234;
	o->pad_id = PAD_ID;
	o->images = images;
	o->image.tile = TILE;
	o->image.max_tiles = TL;
	struct lvd_mllama_image_cfg d;
	lvd_mllama_image_cfg_default(&d);
	memcpy(o->image.mean, d.mean, sizeof d.mean);
	memcpy(o->image.std, d.std, sizeof d.std);
}

static struct lvd_loader *open_or_die(const struct lvd_loader_opts *o, const struct lvd_loader_cursor *c)
{
	struct lvd_error e = {0};
	struct lvd_loader *l = NULL;
	int rc = lvd_loader_open(&l, o, c, &e);
	if (rc)
		fprintf(stderr, "  open: %s\n", e.msg);
	return l;
}

/* Records of the next n batches (flattened into rec[], -1 separators not used); returns
 * how many were written. Also checks every batch's epoch/pos against want_* if given. */
static int64_t g_cnt[2]; /* label tokens and pairs of the batches take() saw */

static size_t take(struct lvd_loader *l, int n, uint64_t *rec, uint64_t *epochs)
{
	size_t k = 0;
	for (int s = 0; s < n; s++) {
		struct lvd_loader_batch *b = NULL;
		struct lvd_error e = {0};
		int rc = lvd_loader_next(l, &b, &e);
		CHECKF(rc == 0, "next: %s", e.msg);
		if (rc)
			return k;
		for (int i = 0; i < b->B; i++) {
			if (epochs)
				epochs[k] = b->epoch;
			rec[k++] = b->records[i];
		}
		g_cnt[0] += b->n_label_tokens;
		g_cnt[1] += b->n_pairs;
		lvd_loader_release(l, b);
	}
	return k;
}

static void test_order(void)
{
	size_t a[NREC], b[NREC], c[NREC];
	lvd_loader_order(a, NREC, 7, 0, 1);
	lvd_loader_order(b, NREC, 7, 0, 1);
	lvd_loader_order(c, NREC, 7, 1, 1);
	CHECK(memcmp(a, b, sizeof a) == 0);
	CHECK(memcmp(a, c, sizeof a) != 0);
	int seen[NREC] = {0}, ident = 1;
	for (int i = 0; i < NREC; i++) {
		CHECK(a[i] < NREC);
		if (a[i] < NREC)
			seen[a[i]]++;
		ident &= a[i] == (size_t)i;
	}
	for (int i = 0; i < NREC; i++)
		CHECK(seen[i] == 1);
	CHECK(!ident);
	lvd_loader_order(a, NREC, 7, 3, 0);
	for (int i = 0; i < NREC; i++)
		CHECK(a[i] == (size_t)i);
	/* the documented definition: Fisher-Yates with Philox on stream LOAD<<32 + epoch */
	size_t d[NREC];
	for (int i = 0; i < NREC; i++)
		d[i] = (size_t)i;
	lvd_rng_shuffle(d, NREC, 7, LVD_LOADER_STREAM + 1);
	CHECK(memcmp(c, d, sizeof c) == 0);
}

static void test_coverage(void)
{
	struct lvd_loader_opts o;
	opts_base(&o, 4, 0);
	o.drop_last = 0;
	struct lvd_loader *l = open_or_die(&o, NULL);
	REQUIRE(l);
	CHECK(lvd_loader_records(l) == NREC);
	CHECK(lvd_loader_steps_per_epoch(l) == 6);
	uint64_t rec[64], ep[64];
	size_t n = take(l, 12, rec, ep); /* two epochs */
	CHECK(n == 2 * NREC);
	for (int e = 0; e < 2; e++) {
		size_t ord[NREC];
		lvd_loader_order(ord, NREC, 1234, (uint64_t)e, 1);
		int seen[NREC] = {0};
		for (int i = 0; i < NREC && e * NREC + i < (int)n; i++) {
			uint64_t r = rec[e * NREC + i];
			CHECK(ep[e * NREC + i] == (uint64_t)e);
			CHECK(r == ord[i]);
			if (r < NREC)
				seen[r]++;
		}
		for (int i = 0; i < NREC; i++)
			CHECKF(seen[i] == 1, "epoch %d record %d seen %d times", e, i, seen[i]);
	}
	struct lvd_loader_cursor c = lvd_loader_cursor(l);
	CHECK(c.epoch == 2 && c.pos == 0);
	lvd_loader_close(l);

	/* drop_last: 5 steps of 4, the last record of each epoch's order unused */
	opts_base(&o, 4, 0);
	l = open_or_die(&o, NULL);
	REQUIRE(l);
	CHECK(lvd_loader_steps_per_epoch(l) == 5);
	n = take(l, 6, rec, ep);
	CHECK(n == 24);
	size_t ord[NREC];
	lvd_loader_order(ord, NREC, 1234, 0, 1);
	for (int i = 0; i < 20; i++)
		CHECK(rec[i] == ord[i] && ep[i] == 0);
	lvd_loader_order(ord, NREC, 1234, 1, 1);
	for (int i = 0; i < 4; i++)
		CHECK(rec[20 + i] == ord[i] && ep[20 + i] == 1);
	lvd_loader_close(l);
}

static void test_resume(void)
{
	struct lvd_loader_opts o;
	opts_base(&o, 3, 0);
	o.threads = 3;
	o.prefetch = 3;
	struct lvd_loader *l = open_or_die(&o, NULL);
	REQUIRE(l);
	uint64_t full[64], part[64];
	size_t n = take(l, 16, full, NULL); /* 7 steps per epoch: crosses two boundaries */
	CHECK(n == 48);
	lvd_loader_close(l);
	for (int cut = 1; cut < 16; cut += 4) {
		l = open_or_die(&o, NULL);
		REQUIRE(l);
		size_t k = take(l, cut, part, NULL);
		struct lvd_loader_cursor c = lvd_loader_cursor(l);
		lvd_loader_close(l);
		CHECK(c.epoch == (uint64_t)cut / 7 && c.pos == (uint64_t)(cut % 7) * 3);
		l = open_or_die(&o, &c);
		REQUIRE(l);
		k += take(l, 16 - cut, part + k, NULL);
		lvd_loader_close(l);
		CHECK(k == n);
		CHECKF(memcmp(part, full, sizeof(uint64_t) * n) == 0, "resume at step %d differs", cut);
	}
	/* seek inside one loader (with batches in flight) */
	l = open_or_die(&o, NULL);
	REQUIRE(l);
	take(l, 2, part, NULL);
	struct lvd_loader_cursor c = {1, 6};
	struct lvd_error e = {0};
	CHECK(lvd_loader_seek(l, &c, &e) == 0);
	size_t k = take(l, 5, part, NULL);
	CHECK(k == 15 && memcmp(part, full + 27, sizeof(uint64_t) * 15) == 0);
	lvd_loader_close(l);
}

static void test_ranks(void)
{
	for (int drop = 0; drop < 2; drop++) {
		struct lvd_loader_opts o;
		opts_base(&o, 6, 0);
		o.drop_last = drop;
		struct lvd_loader *one = open_or_die(&o, NULL);
		REQUIRE(one);
		struct lvd_loader *r[3];
		for (int k = 0; k < 3; k++) {
			opts_base(&o, 2, 0);
			o.drop_last = drop;
			o.world = 3;
			o.rank = k;
			o.threads = 1 + k;
			r[k] = open_or_die(&o, NULL);
			REQUIRE(r[k]);
		}
		CHECK(lvd_loader_steps_per_epoch(one) == lvd_loader_steps_per_epoch(r[0]));
		struct lvd_error e = {0};
		int64_t all[2], tot[2] = {0, 0};
		CHECK(lvd_loader_step_counts(r[1], 0, 9, &all[0], &all[1], &e) == 0);
		for (int s = 0; s < 9; s++) { /* over an epoch boundary */
			uint64_t a[8], b[8];
			int64_t c1[2], c3[2], sc[2];
			CHECK(lvd_loader_step_counts(r[2], (uint64_t)s, 1, &sc[0], &sc[1], &e) == 0);
			g_cnt[0] = g_cnt[1] = 0;
			size_t na = take(one, 1, a, NULL), nb = 0;
			memcpy(c1, g_cnt, sizeof c1);
			g_cnt[0] = g_cnt[1] = 0;
			for (int k = 0; k < 3; k++)
				nb += take(r[k], 1, b + nb, NULL);
			memcpy(c3, g_cnt, sizeof c3);
			CHECKF(na == nb && memcmp(a, b, sizeof(uint64_t) * na) == 0, "drop %d step %d: %zu vs %zu samples",
			       drop, s, na, nb);
			CHECKF(c1[0] == c3[0] && c1[1] == c3[1] && c1[0] == sc[0] && c1[1] == sc[1],
			       "step %d counts: 1 rank %lld/%lld, 3 ranks %lld/%lld, step_counts %lld/%lld", s, (long long)c1[0],
			       (long long)c1[1], (long long)c3[0], (long long)c3[1], (long long)sc[0], (long long)sc[1]);
			CHECK(c1[0] > 0 && (na == 0 || c1[1] > 0));
			tot[0] += c1[0];
			tot[1] += c1[1];
		}
		CHECK(all[0] == tot[0] && all[1] == tot[1]);
		struct lvd_loader_cursor c1 = lvd_loader_cursor(one), c2 = lvd_loader_cursor(r[2]);
		CHECK(c1.epoch == c2.epoch && c1.pos == c2.pos);
		lvd_loader_close(one);
		for (int k = 0; k < 3; k++)
			lvd_loader_close(r[k]);
	}
}

static int same_batch(const struct lvd_loader_batch *a, const struct lvd_loader_batch *b)
{
	if (a->B != b->B || a->T != b->T || a->epoch != b->epoch || a->pos != b->pos)
		return 0;
	size_t bt = (size_t)a->B * a->T, px = (size_t)a->B * TL * 3 * TILE * TILE;
	int ok = !memcmp(a->input_ids, b->input_ids, bt * sizeof(int)) && !memcmp(a->labels, b->labels, bt * sizeof(int)) &&
		 !memcmp(a->cross_attention_mask, b->cross_attention_mask, bt * TL * sizeof(int)) &&
		 !memcmp(a->pixel_values, b->pixel_values, px * sizeof(float)) &&
		 !memcmp(a->aspect_ratio_ids, b->aspect_ratio_ids, (size_t)a->B * sizeof(int)) &&
		 !memcmp(a->aspect_ratio_mask, b->aspect_ratio_mask, (size_t)a->B * TL * sizeof(int)) &&
		 !memcmp(a->cap_off, b->cap_off, (size_t)(a->B + 1) * sizeof(int)) &&
		 !memcmp(a->cap_rows, b->cap_rows, (size_t)a->cap_off[a->B] * sizeof(int)) &&
		 a->n_label_tokens == b->n_label_tokens && a->n_pairs == b->n_pairs;
	for (int i = 0; ok && i < a->B; i++) {
		const struct lvd_latt_plan *p = &a->plans[i], *q = &b->plans[i];
		size_t hw = (size_t)p->geom.gh * p->geom.gw;
		ok = p->R == q->R && p->W == q->W && hw == (size_t)q->geom.gh * q->geom.gw &&
		     !memcmp(p->targets, q->targets, (size_t)p->W * hw * sizeof(float)) && !memcmp(p->mask, q->mask, hw);
	}
	return ok;
}

static void test_threads(void)
{
	struct lvd_loader_opts o;
	opts_base(&o, 3, 1);
	o.heads = 2;
	o.tile_tok = (TILE / PATCH) * (TILE / PATCH) + 1;
	o.threads = 1;
	o.prefetch = 1;
	struct lvd_loader *a = open_or_die(&o, NULL);
	o.threads = 4;
	o.prefetch = 3;
	struct lvd_loader *b = open_or_die(&o, NULL);
	REQUIRE(a && b);
	for (int s = 0; s < 9; s++) {
		struct lvd_loader_batch *x = NULL, *y = NULL;
		struct lvd_error e = {0};
		REQUIRE(lvd_loader_next(a, &x, &e) == 0);
		REQUIRE(lvd_loader_next(b, &y, &e) == 0);
		CHECKF(same_batch(x, y), "step %d differs between 1 and 4 threads", s);
		lvd_loader_release(a, x);
		lvd_loader_release(b, y);
	}
	lvd_loader_close(a);
	lvd_loader_close(b);
}

static void test_padding(void)
{
	struct lvd_loader_opts o;
	opts_base(&o, 5, 1);
	o.shuffle = 0;
	o.heads = 2;
	o.tile_tok = (TILE / PATCH) * (TILE / PATCH) + 1;
	o.pad_id = 77;
	struct lvd_loader *l = open_or_die(&o, NULL);
	REQUIRE(l);
	struct lvd_loader_batch *b = NULL;
	struct lvd_error e = {0};
	REQUIRE(lvd_loader_next(l, &b, &e) == 0);
	REQUIRE(b->B == 5);
	CHECK(b->T == 10); /* lengths 6..10 for records 0..4 */
	int64_t nlab = 0, npairs = 0;
	for (int i = 0; i < 5; i++) {
		CHECK(b->records[i] == (uint64_t)i);
		CHECK_STR(b->ids[i], (i == 0 ? "r000" : i == 1 ? "r001" : i == 2 ? "r002" : i == 3 ? "r003" : "r004"));
		int len = 6 + i;
		CHECK(b->lengths[i] == len);
		for (int t = 0; t < b->T; t++) {
			int id = b->input_ids[i * b->T + t], lab = b->labels[i * b->T + t];
			int want_id = t >= len ? 77 : t == 1 ? IMG_TOK : 100 + i + t;
			int want_lab = t >= len || (t < 3 && !(t == 0 && i == 4)) ? -100 : want_id;
			CHECK(id == want_id);
			CHECK(lab == want_lab);
			nlab += t >= 1 && want_lab != -100;
			for (int k = 0; k < TL; k++) {
				int m = b->cross_attention_mask[((size_t)i * b->T + t) * TL + k];
				int nt = b->plans[i].geom.tiles_h * b->plans[i].geom.tiles_w;
				CHECK(m == (t >= 1 && k < nt));
			}
		}
		npairs += i % 3;
		/* capture rows = the plan's rows: queries {2 + w, 4} over its words */
		const struct lvd_latt_plan *p = &b->plans[i];
		CHECK(p->W == i % 3);
		CHECK(b->cap_off[i + 1] - b->cap_off[i] == p->R);
		for (int r = 0; r < p->R; r++)
			CHECK(b->cap_rows[b->cap_off[i] + r] == (int)p->rows_pos[r]);
		CHECK(p->R == (i % 3 == 0 ? 0 : i % 3 == 1 ? 2 : 3));
	}
	CHECK(b->n_label_tokens == nlab);
	CHECK(b->n_pairs == npairs);
	/* pixels: the image processor on the decoded record image */
	size_t len = 0;
	uint8_t *pl = make_record(2, 0, NULL, &len);
	struct lvd_packrec rec = {0};
	struct lvd_image im = {0};
	REQUIRE(lvd_packrec_decode(&rec, pl, len, "r2", &e) == 0);
	REQUIRE(lvd_image_decode(&im, rec.image, rec.image_len, LVD_ALPHA_WHITE, "r2", &e) == 0);
	size_t tf = (size_t)TL * 3 * TILE * TILE;
	float *px = malloc(tf * sizeof(float));
	int aid = 0, mask[TL], nt = 0;
	REQUIRE(lvd_mllama_image_process(px, &aid, mask, &nt, &o.image, im.px, im.h, im.w, &e) == 0);
	CHECK(memcmp(px, b->pixel_values + 2 * tf, tf * sizeof(float)) == 0);
	CHECK(aid == b->aspect_ratio_ids[2] && aid == (int)rec.aspect_id);
	for (int t = 0; t < TL; t++)
		CHECK(mask[t] == b->aspect_ratio_mask[2 * TL + t]);
	struct lvd_mllama_batch mb;
	lvd_loader_batch_view(b, &mb);
	CHECK(mb.B == 5 && mb.T == 10 && mb.M == 1 && mb.input_ids == b->input_ids && mb.cap_off == b->cap_off);
	free(px);
	free(pl);
	lvd_image_free(&im);
	lvd_packrec_free(&rec);
	/* holding more than prefetch batches is refused, not a deadlock */
	struct lvd_loader_batch *b2 = NULL, *b3 = NULL;
	REQUIRE(lvd_loader_next(l, &b2, &e) == 0);
	CHECK(lvd_loader_next(l, &b3, &e) == LVD_ERR_INVALID);
	lvd_loader_release(l, b);
	lvd_loader_release(l, b2);
	lvd_loader_close(l);
}

static void test_model_check(void)
{
	struct lvd_error e = {0};
	CHECK(lvd_loader_check_model(g_pack, g_model, &e) == 0);
	struct lvd_loader_opts o;
	opts_base(&o, 2, 0);
	o.model = g_model;
	o.pad_id = -1;
	o.image.tile = 0; /* from the model's config.json */
	struct lvd_loader *l = open_or_die(&o, NULL);
	CHECK(l != NULL);
	lvd_loader_close(l);

	char other[400], p[500];
	snprintf(other, sizeof other, "%s/model2", g_root);
	make_model(other, "{\"other\": 1}\n");
	CHECK(lvd_loader_check_model(g_pack, other, &e) == LVD_ERR_INVALID);
	snprintf(p, sizeof p, "%s/tokenizer.json", other);
	CHECK_CONTAINS(e.msg, p);
	CHECK_CONTAINS(e.msg, "tokenizer");
	o.model = other;
	CHECK(lvd_loader_open(&l, &o, NULL, &e) == LVD_ERR_INVALID && !l);
	CHECK_CONTAINS(e.msg, "tokenizer.json");
	/* same tokenizer, another config */
	make_model(other, "{\"model\": {\"type\": \"BPE\"}}\n");
	snprintf(p, sizeof p, "%s/config.json", other);
	write_str(p, "{\"model_type\": \"mllama\"}\n");
	CHECK(lvd_loader_check_model(g_pack, other, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, p);
	/* a preprocessor config the pack never saw */
	make_model(other, "{\"model\": {\"type\": \"BPE\"}}\n");
	snprintf(p, sizeof p, "%s/preprocessor_config.json", other);
	write_str(p, "{}\n");
	CHECK(lvd_loader_check_model(g_pack, other, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "preprocessor_config.json");
	rm_rf(other);
}

static void test_errors(void)
{
	struct lvd_error e = {0};
	struct lvd_loader_opts o;
	struct lvd_loader *l = NULL;
	char dir[400], p[500], q[500];

	/* fewer records than one global step */
	opts_base(&o, 8, 0);
	o.world = 3;
	CHECK(lvd_loader_open(&l, &o, NULL, &e) == LVD_ERR_INVALID && !l);
	CHECK_CONTAINS(e.msg, "fewer than one global step");

	/* truncated shard: named at open */
	snprintf(dir, sizeof dir, "%s/trunc", g_root);
	make_pack(dir, g_model, SIZES, 3, -1, -1, NULL);
	snprintf(p, sizeof p, "%s/train-00001.lvdp", dir);
	REQUIRE(truncate(p, 200) == 0);
	opts_base(&o, 2, 0);
	o.pack = dir;
	CHECK(lvd_loader_open(&l, &o, NULL, &e) == LVD_ERR_FORMAT && !l);
	CHECK_CONTAINS(e.msg, p);
	/* a shard missing */
	REQUIRE(unlink(p) == 0);
	CHECK(lvd_loader_open(&l, &o, NULL, &e) == LVD_ERR_IO && !l);
	CHECK_CONTAINS(e.msg, "train-00001.lvdp");
	/* a record count that disagrees with shards.jsonl */
	snprintf(q, sizeof q, "%s/train-00002.lvdp", dir);
	REQUIRE(rename(q, p) == 0);
	CHECK(lvd_loader_open(&l, &o, NULL, &e) == LVD_ERR_FORMAT && !l);
	CHECK_CONTAINS(e.msg, "shards.jsonl");
	rm_rf(dir);

	/* a record that does not decode, and an image that no longer decodes: named at next */
	for (int k = 0; k < 2; k++) {
		snprintf(dir, sizeof dir, "%s/bad%d", g_root, k);
		make_pack(dir, g_model, SIZES, 3, k == 0 ? 9 : -1, k == 1 ? 10 : -1, NULL);
		opts_base(&o, 4, 1);
		o.pack = dir;
		o.shuffle = 0;
		o.threads = 3;
		l = open_or_die(&o, NULL);
		REQUIRE(l);
		uint64_t rec[8];
		CHECK(take(l, 2, rec, NULL) == 8); /* records 0..7 are fine */
		struct lvd_loader_batch *b = NULL;
		int rc = lvd_loader_next(l, &b, &e);
		CHECK(rc != 0 && !b);
		snprintf(p, sizeof p, "%s/train-00001.lvdp: record %d ('r%03d')", dir, k == 0 ? 2 : 3, k == 0 ? 9 : 10);
		CHECK_CONTAINS(e.msg, p);
		if (k == 1)
			CHECK_CONTAINS(e.msg, "no longer decodes");
		CHECK(lvd_loader_next(l, &b, &e) == rc); /* stays failed */
		lvd_loader_close(l);
		rm_rf(dir);
	}

	/* the model's <|image|> id given: a record whose image_pos holds another token is
	 * named at next (here every record: the model says IMG_TOK + 1) */
	snprintf(dir, sizeof dir, "%s/imgtok", g_root);
	make_pack(dir, g_model, SIZES, 3, -1, -1, NULL);
	opts_base(&o, 2, 0);
	o.pack = dir;
	o.shuffle = 0;
	o.image_token = IMG_TOK;
	l = open_or_die(&o, NULL);
	REQUIRE(l);
	struct lvd_loader_batch *b = NULL;
	CHECK(lvd_loader_next(l, &b, &e) == 0 && b); /* the right id: fine */
	lvd_loader_release(l, b);
	lvd_loader_close(l);
	o.image_token = IMG_TOK + 1;
	l = open_or_die(&o, NULL);
	REQUIRE(l);
	b = NULL;
	CHECK(lvd_loader_next(l, &b, &e) == LVD_ERR_INVALID && !b);
	CHECK_CONTAINS(e.msg, "not the model's <|image|>");
	CHECK_CONTAINS(e.msg, "record 0 ('r000')");
	lvd_loader_close(l);
	rm_rf(dir);
}

/* A pack of --shard i/2 splits (lvd-pack run --shard 0/2 and 1/2 into one folder): the
 * plain pack's shards 0, 1 as split 0 and shard 2 as split 1, named by split, with
 * "file" in the ledgers: the same records in the same order; a missing split is refused
 * naming it, a folder that mixes both kinds too. */
static void test_splits(void)
{
	struct lvd_error e = {0};
	struct lvd_loader_opts o;
	char dir[400], a[600], b[600];
	static const char *const files[3][2] = {{"train-00000.lvdp", "train-00000-of-00002-00000.lvdp"},
						{"train-00001.lvdp", "train-00000-of-00002-00001.lvdp"},
						{"train-00002.lvdp", "train-00001-of-00002-00000.lvdp"}};
	snprintf(dir, sizeof dir, "%s/split", g_root);
	REQUIRE(lvd_mkdir_p(dir, &e) == 0);
	for (int k = 0; k < 3; k++) {
		snprintf(a, sizeof a, "%s/%s", g_pack, files[k][0]);
		snprintf(b, sizeof b, "%s/%s", dir, files[k][1]);
		REQUIRE(link(a, b) == 0);
	}
	for (int k = 0; k < 2; k++) {
		snprintf(a, sizeof a, "%s/pack.json", g_pack);
		snprintf(b, sizeof b, "%s/pack-0000%d-of-00002.json", dir, k);
		REQUIRE(link(a, b) == 0);
	}
	char lines[600];
	snprintf(b, sizeof b, "%s/shards-00000-of-00002.jsonl", dir);
	snprintf(lines, sizeof lines, "{\"shard\": 0, \"file\": \"%s\", \"records\": %d}\n"
		 "{\"shard\": 1, \"file\": \"%s\", \"records\": %d}\n", files[0][1], SIZES[0], files[1][1], SIZES[1]);
	write_str(b, lines);
	snprintf(a, sizeof a, "%s/shards-00001-of-00002.jsonl", dir);
	snprintf(lines, sizeof lines, "{\"shard\": 0, \"file\": \"%s\", \"records\": %d}\n", files[2][1], SIZES[2]);
	write_str(a, lines);

	struct lvd_loader *pl = NULL, *sl = NULL;
	opts_base(&o, 2, 0);
	o.shuffle = 0;
	pl = open_or_die(&o, NULL);
	o.pack = dir;
	sl = open_or_die(&o, NULL);
	REQUIRE(pl && sl);
	CHECK(lvd_loader_records(sl) == NREC);
	int same = 1;
	for (uint64_t g = 0; g < NREC && lvd_loader_records(sl) == NREC; g++)
		same &= !strcmp(lvd_loader_record_id(pl, g), lvd_loader_record_id(sl, g));
	CHECK(same);
	CHECK_CONTAINS(lvd_loader_record_shard(sl, NREC - 1), files[2][1]);
	uint64_t ra[8], rb[8];
	CHECK(take(pl, 4, ra, NULL) == 8 && take(sl, 4, rb, NULL) == 8 && !memcmp(ra, rb, sizeof ra));
	lvd_loader_close(pl);
	lvd_loader_close(sl);
	CHECK(lvd_loader_check_model(dir, g_model, &e) == 0);

	/* split 1 missing: named */
	snprintf(b, sizeof b, "%s.away", a);
	REQUIRE(rename(a, b) == 0);
	CHECK(lvd_loader_open(&sl, &o, NULL, &e) == LVD_ERR_INVALID && !sl);
	CHECK_CONTAINS(e.msg, "1 of the 2 splits missing");
	CHECK_CONTAINS(e.msg, "i = 1");
	REQUIRE(rename(b, a) == 0);
	/* a plain ledger beside the splits */
	snprintf(a, sizeof a, "%s/shards.jsonl", g_pack);
	snprintf(b, sizeof b, "%s/shards.jsonl", dir);
	REQUIRE(link(a, b) == 0);
	CHECK(lvd_loader_open(&sl, &o, NULL, &e) == LVD_ERR_INVALID && !sl);
	CHECK_CONTAINS(e.msg, "one kind of run per folder");
	rm_rf(dir);
}

/* Records that store an image path (--no-embed-images): the same batches as embedded
 * images; a deleted image file is an error naming the record. */
static void test_image_paths(void)
{
	char dir[400], p[500];
	snprintf(dir, sizeof dir, "%s/paths", g_root);
	make_pack(dir, g_model, SIZES, 3, -1, -1, dir);
	struct lvd_loader_opts o;
	opts_base(&o, 4, 1);
	o.shuffle = 0;
	struct lvd_loader *a = open_or_die(&o, NULL);
	o.pack = dir;
	o.image_root = dir;
	struct lvd_loader *b = open_or_die(&o, NULL);
	REQUIRE(a && b);
	struct lvd_loader_batch *x = NULL, *y = NULL;
	struct lvd_error e = {0};
	REQUIRE(lvd_loader_next(a, &x, &e) == 0);
	REQUIRE(lvd_loader_next(b, &y, &e) == 0);
	size_t px = (size_t)4 * TL * 3 * TILE * TILE;
	CHECK(x->B == 4 && y->B == 4 && x->T == y->T);
	CHECK(memcmp(x->pixel_values, y->pixel_values, px * sizeof(float)) == 0);
	CHECK(memcmp(x->input_ids, y->input_ids, (size_t)x->B * x->T * sizeof(int)) == 0);
	lvd_loader_release(a, x);
	lvd_loader_release(b, y);
	lvd_loader_close(a);
	lvd_loader_close(b);
	snprintf(p, sizeof p, "%s/img/r005.png", dir);
	REQUIRE(unlink(p) == 0);
	b = open_or_die(&o, NULL);
	REQUIRE(b);
	REQUIRE(lvd_loader_next(b, &y, &e) == 0);
	lvd_loader_release(b, y);
	CHECK(lvd_loader_next(b, &y, &e) != 0);
	snprintf(p, sizeof p, "%s/train-00000.lvdp: record 5 ('r005'): the image no longer decodes", dir);
	CHECK_CONTAINS(e.msg, p);
	CHECK_CONTAINS(e.msg, "img/r005.png");
	lvd_loader_close(b);
	rm_rf(dir);
}

int main(int argc, char **argv)
{
	snprintf(g_root, sizeof g_root, "/tmp/lvd_test_loader_XXXXXX");
	if (!mkdtemp(g_root)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(g_model, sizeof g_model, "%s/model", g_root);
	snprintf(g_pack, sizeof g_pack, "%s/pack", g_root);
	make_model(g_model, "{\"model\": {\"type\": \"BPE\"}}\n");
	make_pack(g_pack, g_model, SIZES, 3, -1, -1, NULL);
	static const struct lvd_test tests[] = {
		TEST(test_order),   TEST(test_coverage),    TEST(test_resume), TEST(test_ranks),
		TEST(test_threads), TEST(test_padding),     TEST(test_model_check),
		TEST(test_errors),  TEST(test_image_paths), TEST(test_splits), {0},
	};
	int rc = lvd_test_main(argc, argv, tests);
	rm_rf(g_root);
	return rc;
}
