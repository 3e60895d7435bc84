/* Helpers and unit checks for lvd-sft (tools/lvd-sft): a tiny pack for the golden tiny
 * mllama (tests/golden/mllama/model: tile 56, patch 14, 4 tiles, image token 256), and a
 * safetensors comparer, both used by tests/cli/test_lvd_sft.sh:
 *   test_sft --pack DIR MODEL N [TILE PATCH TILES IMAGE_TOKEN]
 *                                   write an lvd-pack folder of N records for MODEL
 *   test_sft --compare A B TOL [SKIP]  every tensor of A (but SKIP) equals B's within TOL
 *   test_sft --compare-common A B TOL  every tensor of A that B has (>= 1) equals B's
 *                                   (0: bitwise);
 *                                   exit 0 equal, 1 different (max difference printed)
 *   test_sft --diff A B              print the name of every tensor of A that is not
 *                                   bitwise equal to B's (or absent there), one a line
 *   test_sft --pack-mcv DIR MODEL N [BAD]
 *                                   the same for the tiny golden MiniCPM-V
 *                                   (tests/golden/minicpmv/model): version-2 MCV records
 *                                   of 1 or 3 pictures (the model's slicing), a 6x6 grid;
 *                                   BAD = 1: record 1 records a wrong patch grid
 *   test_sft --mcv-grads MODEL PACK FILE
 *                                   lvd-sft's first-step gradients (FILE, written by
 *                                   LVD_SFT_DUMP_GRADS of `lvd-sft run --threads 1
 *                                   --batch 2 --max-steps 1` with the default options)
 *                                   equal lvd_lstep_mcv_run called by hand on the pack's
 *                                   first batch (exit 0 equal, 1 different)
 * Without those arguments: unit checks that the fixture pack opens with the loader for
 * the golden model and that its step counts are split-invariant; MiniCPM batches equal
 * their records and the processor's pictures; the loader's errors for a pack of the
 * other model type and a geometry the model's slicing does not give. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "harness.h"

#include "core/sha256.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/geometry.h"
#include "lavender/lstep_mcv.h"
#include "lavender/packrec.h"
#include "models/minicpmv/minicpmv_proc.h"
#include "nn/ctx.h"
#include "train/loader.h"

/* The tiny model's geometry; `--pack DIR MODEL N TILE PATCH TILES IMAGE_TOKEN` sets them
 * for another model (bench/dist.sh: the medium config). */
static int g_tile = 56, g_patch = 14, g_tiles = 4, g_img_tok = 256;

static const int img_sizes[4][2] = {{64, 48}, {48, 96}, {120, 30}, {40, 40}}; /* w, h */

static int write_str(const char *path, const char *s, struct lvd_error *e)
{
	return lvd_file_write_atomic(path, s, strlen(s), e);
}

/* Record i: 8..10 tokens (image token at 1, labels from t = 3), 1 or 2 matched words. */
static uint8_t *make_record(int i, size_t *len, struct lvd_error *e)
{
	int k = i % 4, w = img_sizes[k][0], h = img_sizes[k][1];
	struct lvd_image im = {w, h, 3, malloc((size_t)w * h * 3)};
	for (int j = 0; j < w * h * 3; j++)
		im.px[j] = (uint8_t)((j * 7 + i * 31 + (j / 3 % w) * 5) & 255);
	uint8_t *png = NULL;
	size_t png_len = 0;
	if (lvd_image_encode_png(&im, &png, &png_len, e)) {
		free(im.px);
		return NULL;
	}
	free(im.px);
	struct lvd_geom_cfg gc = {g_tile, g_patch, g_tiles};
	struct lvd_geom g;
	if (lvd_geom_layout(&g, &gc, h, w, e)) {
		free(png);
		return NULL;
	}
	struct lvd_packrec r = {0};
	char id[16];
	snprintf(id, sizeof id, "s%03d", i);
	r.id = id;
	r.flags = LVD_PACKREC_IMAGE;
	r.T = 8 + (uint32_t)(i % 3);
	int32_t tokens[16], labels[16];
	tokens[0] = 200; /* bos */
	for (uint32_t t = 1; t < r.T; t++)
		tokens[t] = t == 1 ? g_img_tok : 10 + (int)((i * 7 + (int)t * 13) % 180);
	for (uint32_t t = 0; t < r.T; t++)
		labels[t] = t < 3 ? -100 : tokens[t];
	r.tokens = tokens;
	r.labels = labels;
	r.W = 1 + (uint32_t)(i % 2);
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
		r.mask[c] = y * g_patch < g.new_h && x * g_patch < g.new_w;
		for (uint32_t wi = 0; wi < r.W; wi++)
			r.targets[wi * hw + c] = lvd_f32_to_f16(r.mask[c] ? (float)((c * 3 + wi + (size_t)i) % 7) / 6.0f : 0.0f);
	}
	lvd_packrec_set_geom(&r, &g, g_tile, g_patch);
	r.image_pos = 1;
	r.image = png;
	r.image_len = (uint32_t)png_len;
	uint8_t *out = NULL;
	int rc = lvd_packrec_encode(&r, &out, len, e);
	free(png);
	free(r.mask);
	free(r.targets);
	return rc ? NULL : out;
}

/* MiniCPM-V records: the model's slice_config and query_num (make_pack_mcv), record i's
 * image size, and g_mcv_bad = 1 to give record 1 a patch grid the slicing does not. */
static struct lvd_minicpmv_slice_cfg g_slice;
static int g_q, g_mcv_bad;
#define MCV_GRID 6
static const int mcv_sizes[3][2] = {{40, 30}, {30, 52}, {600, 400}}; /* w, h: 1, 1, 3 pictures */

/* Record i: <bos>, per picture <s> Q x <unk> </s>, 4 prompt tokens, 4 answer tokens with
 * pre-shifted labels; 1 or 2 words whose query rows follow the pictures. */
static uint8_t *make_record_mcv(int i, size_t *len, struct lvd_error *e)
{
	int k = i % 3, w = mcv_sizes[k][0], h = mcv_sizes[k][1];
	struct lvd_image im = {w, h, 3, malloc((size_t)w * h * 3)};
	for (int j = 0; j < w * h * 3; j++)
		im.px[j] = (uint8_t)((j * 5 + i * 29 + (j / 3 / w) * 3) & 255);
	uint8_t *png = NULL;
	size_t png_len = 0;
	int rc = lvd_image_encode_png(&im, &png, &png_len, e);
	free(im.px);
	struct lvd_minicpmv_geom g;
	if (rc || lvd_minicpmv_slice_geom(&g, &g_slice, w, h, e)) {
		free(png);
		return NULL;
	}
	struct lvd_packrec r = {0};
	char id[16];
	snprintf(id, sizeof id, "s%03d", i);
	r.id = id;
	r.flags = LVD_PACKREC_IMAGE | LVD_PACKREC_GRID | LVD_PACKREC_MCV;
	const int n = g.n, pend = 1 + n * (g_q + 2);
	r.T = (uint32_t)(pend + 8);
	int32_t *tokens = malloc(sizeof *tokens * r.T), *labels = malloc(sizeof *labels * r.T);
	struct lvd_packrec_pic pics[LVD_PACKREC_MAX_PICS];
	tokens[0] = 1;
	for (int p = 0; p < n; p++) {
		int s0 = 1 + p * (g_q + 2);
		tokens[s0] = 3;
		for (int q = 0; q < g_q; q++)
			tokens[s0 + 1 + q] = 0;
		tokens[s0 + 1 + g_q] = 4;
		pics[p] = (struct lvd_packrec_pic){(uint32_t)g.pic[p].th, (uint32_t)g.pic[p].tw, (uint32_t)(s0 + 1),
						   (uint32_t)(s0 + 1 + g_q)};
	}
	for (int t = pend; t < (int)r.T; t++)
		tokens[t] = 10 + (i * 11 + t * 7) % 110;
	for (int t = 0; t < (int)r.T; t++)
		labels[t] = t >= pend + 3 && t + 1 < (int)r.T ? tokens[t + 1] : -100;
	if (g_mcv_bad && i == 1)
		pics[0].th += 1;
	r.tokens = tokens;
	r.labels = labels;
	r.W = 1 + (uint32_t)(i % 2);
	struct lvd_packrec_word words[2];
	uint32_t pos[2][1], query[2][2];
	char keys[2][8];
	for (uint32_t wi = 0; wi < r.W; wi++) {
		snprintf(keys[wi], sizeof keys[wi], "w%u", wi);
		pos[wi][0] = (uint32_t)pend + 1 + wi;
		query[wi][0] = (uint32_t)pend + 1 + wi;
		query[wi][1] = (uint32_t)pend + 3;
		words[wi] = (struct lvd_packrec_word){keys[wi], 1, 2, pos[wi], query[wi], 0, 0.0f, 1.0f};
	}
	r.words = words;
	r.gh = r.gw = MCV_GRID;
	uint8_t mask[MCV_GRID * MCV_GRID];
	uint16_t targets[2 * MCV_GRID * MCV_GRID];
	memset(mask, 1, sizeof mask);
	for (int c = 0; c < MCV_GRID * MCV_GRID; c++)
		for (uint32_t wi = 0; wi < r.W; wi++)
			targets[wi * MCV_GRID * MCV_GRID + (uint32_t)c] =
				lvd_f32_to_f16((float)((c * 3 + (int)wi + i) % 7) / 6.0f);
	r.mask = mask;
	r.targets = targets;
	r.img_w = r.new_w = (uint32_t)w;
	r.img_h = r.new_h = (uint32_t)h;
	r.patch_px = (uint32_t)g_slice.patch;
	r.image_pos = LVD_PACKREC_NO_IMAGE;
	r.cols = (uint32_t)g.cols;
	r.rows = (uint32_t)g.rows;
	r.n_pics = (uint32_t)n;
	r.query_num = (uint32_t)g_q;
	r.pics = pics;
	r.image = png;
	r.image_len = (uint32_t)png_len;
	uint8_t *out = NULL;
	rc = lvd_packrec_encode(&r, &out, len, e);
	free(png);
	free(tokens);
	free(labels);
	return rc ? NULL : out;
}

/* A pack of n records made by mk (one shard; n = 0: an empty shard list) for the model
 * folder. */
static int make_pack_with(const char *dir, const char *model, int n, uint8_t *(*mk)(int, size_t *, struct lvd_error *),
			  struct lvd_error *e)
{
	int rc = lvd_mkdir_p(dir, e);
	if (rc)
		return rc;
	char p[600], c[LVD_SHA256_HEX_LEN];
	unsigned char d[LVD_SHA256_LEN];
	snprintf(p, sizeof p, "%s/config.json", model);
	if ((rc = lvd_sha256_file(p, d, e)))
		return rc;
	lvd_sha256_hex(d, c);
	/* the model folder's tokenizer, when it has one (as lvd-pack records it) */
	char tk[200] = "";
	static const char *const toks[2] = {"tokenizer.json", "tokenizer.model"};
	for (int k = 0; k < 2 && !tk[0]; k++) {
		char th[LVD_SHA256_HEX_LEN];
		snprintf(p, sizeof p, "%s/%s", model, toks[k]);
		if (access(p, F_OK) != 0)
			continue;
		if ((rc = lvd_sha256_file(p, d, e)))
			return rc;
		lvd_sha256_hex(d, th);
		snprintf(tk, sizeof tk, ", \"tokenizer_sha256\": \"%s\"", th);
	}
	char js[1200];
	snprintf(js, sizeof js,
		 "{\"tool\": \"test_sft\", \"params\": {}, \"inputs\": {\"model\": {\"config_sha256\": \"%s\"%s}}}\n",
		 c, tk);
	snprintf(p, sizeof p, "%s/pack.json", dir);
	if ((rc = write_str(p, js, e)))
		return rc;
	char lines[256] = "";
	if (n > 0) {
		struct lvd_rec_writer *w = NULL;
		snprintf(p, sizeof p, "%s/train-00000.lvdp", dir);
		if ((rc = lvd_rec_writer_open(&w, p, LVD_REC_KIND_PACK, js, NULL, e)))
			return rc;
		for (int i = 0; i < n && !rc; i++) {
			char id[16];
			snprintf(id, sizeof id, "s%03d", i);
			size_t len = 0;
			uint8_t *pl = mk(i, &len, e);
			rc = pl ? lvd_rec_writer_append(w, id, pl, len, e) : 1;
			free(pl);
		}
		int rc2 = lvd_rec_writer_close(w, e);
		if (rc || rc2)
			return rc ? rc : rc2;
		snprintf(lines, sizeof lines, "{\"shard\": 0, \"first\": 0, \"end\": %d, \"records\": %d}\n", n, n);
	}
	snprintf(p, sizeof p, "%s/shards.jsonl", dir);
	return write_str(p, lines, e);
}

static int make_pack(const char *dir, const char *model, int n, struct lvd_error *e)
{
	return make_pack_with(dir, model, n, make_record, e);
}

static int make_pack_mcv(const char *dir, const char *model, int n, int bad, struct lvd_error *e)
{
	char path[600];
	struct lvd_minicpmv_config c;
	snprintf(path, sizeof path, "%s/config.json", model);
	int rc = lvd_minicpmv_config_load(&c, path, e);
	if (rc || (rc = lvd_minicpmv_slice_cfg_from(&g_slice, &c, e)))
		return rc;
	g_q = c.query_num;
	g_mcv_bad = bad;
	return make_pack_with(dir, model, n, make_record_mcv, e);
}

/* Every tensor of A (but skip) equals B's within tol; with common, only the tensors B also
 * has (at least one). */
static int compare(const char *a, const char *b, double tol, const char *skip, int common)
{
	struct lvd_error e = {0};
	struct lvd_st *sa = NULL, *sb = NULL;
	if (lvd_st_open(&sa, a, &e) || lvd_st_open(&sb, b, &e)) {
		fprintf(stderr, "compare: %s\n", e.msg);
		return 2;
	}
	int bad = 0;
	double worst = 0;
	size_t seen = 0;
	if (!common && lvd_st_count(sa) != lvd_st_count(sb)) {
		fprintf(stderr, "compare: %zu vs %zu tensors\n", lvd_st_count(sa), lvd_st_count(sb));
		bad = 1;
	}
	for (size_t i = 0; i < lvd_st_count(sa) && !bad; i++) {
		const struct lvd_tensor_view *ta = lvd_st_at(sa, i), *tb = lvd_st_find(sb, ta->name);
		if ((skip && !strcmp(ta->name, skip)) || (common && !tb))
			continue;
		seen++;
		if (!tb || tb->numel != ta->numel) {
			fprintf(stderr, "compare: tensor '%s' missing or of another size in %s\n", ta->name, b);
			bad = 1;
			break;
		}
		float *x = malloc((size_t)ta->numel * sizeof *x + 4), *y = malloc((size_t)tb->numel * sizeof *y + 4);
		LVD_ASSERT(x && y);
		LVD_ASSERT(lvd_tensor_to_f32(ta, x, (size_t)ta->numel, &e) == 0 && lvd_tensor_to_f32(tb, y, (size_t)tb->numel, &e) == 0);
		for (size_t j = 0; j < (size_t)ta->numel; j++) {
			double dlt = fabs((double)x[j] - (double)y[j]);
			if (tol == 0 ? memcmp(&x[j], &y[j], sizeof *x) != 0 : !(dlt <= tol)) {
				if (!bad)
					fprintf(stderr, "compare: '%s'[%zu]: %.9g vs %.9g\n", ta->name, j, x[j], y[j]);
				bad = 1;
			}
			if (dlt > worst)
				worst = dlt;
		}
		free(x);
		free(y);
	}
	if (common && !seen && !bad) {
		fprintf(stderr, "compare: no tensor of %s is in %s\n", a, b);
		bad = 1;
	}
	fprintf(stderr, "compare: max |difference| %.3g over %zu tensors\n", worst, seen);
	lvd_st_close(sa);
	lvd_st_close(sb);
	return bad;
}

static int diff_names(const char *a, const char *b)
{
	struct lvd_error e = {0};
	struct lvd_st *sa = NULL, *sb = NULL;
	if (lvd_st_open(&sa, a, &e) || lvd_st_open(&sb, b, &e)) {
		fprintf(stderr, "diff: %s\n", e.msg);
		lvd_st_close(sa);
		return 2;
	}
	for (size_t i = 0; i < lvd_st_count(sa); i++) {
		const struct lvd_tensor_view *ta = lvd_st_at(sa, i), *tb = lvd_st_find(sb, ta->name);
		if (!tb || tb->dtype != ta->dtype || tb->nbytes != ta->nbytes || memcmp(ta->data, tb->data, ta->nbytes))
			printf("%s\n", ta->name);
	}
	lvd_st_close(sa);
	lvd_st_close(sb);
	return 0;
}

static char g_tmp[256];

static void test_fixture_loader(void)
{
	struct lvd_error e = {0};
	char model[400], pack[400];
	snprintf(model, sizeof model, "%s", lvd_test_path("tests/golden/mllama/model"));
	snprintf(pack, sizeof pack, "%s/pack", g_tmp);
	REQUIRE(make_pack(pack, model, 6, &e) == 0);
	CHECK(lvd_loader_check_model(pack, model, &e) == 0);
	int64_t tok[2], pairs[2];
	for (int v = 0; v < 2; v++) {
		struct lvd_loader_opts o;
		lvd_loader_opts_default(&o);
		o.pack = pack;
		o.model = model;
		o.batch = v ? 1 : 2;
		o.seed = 7;
		o.heads = 4;
		o.tile_tok = 17;
		struct lvd_loader *l = NULL;
		REQUIRE(lvd_loader_open(&l, &o, NULL, &e) == 0);
		CHECK(lvd_loader_records(l) == 6);
		struct lvd_loader_batch *b = NULL;
		REQUIRE(lvd_loader_next(l, &b, &e) == 0);
		CHECK(b->B == o.batch);
		CHECK(b->plans != NULL);
		CHECK(b->n_pairs >= 1);
		CHECK(lvd_loader_step_counts(l, b->seq, v ? 2 : 1, &tok[v], &pairs[v], &e) == 0);
		lvd_loader_release(l, b);
		lvd_loader_close(l);
	}
	CHECK(tok[0] == tok[1] && tok[0] > 0);
	CHECK(pairs[0] == pairs[1] && pairs[0] >= 2);
}

#define MCV_MODEL "tests/golden/minicpmv/model"

static void mcv_opts(struct lvd_loader_opts *o, const char *pack, const char *model, int batch)
{
	lvd_loader_opts_default(o);
	o->pack = pack;
	o->model = model;
	o->batch = batch;
	o->seed = 42;
	o->model_kind = LVD_LOADER_MINICPMV;
}

/* A MiniCPM batch holds its records: pictures as the processor makes them from the
 * decoded image, tgt_sizes, bounds, tokens, labels (padding -100), the Lavender inputs. */
static void test_mcv_loader(void)
{
	struct lvd_error e = {0};
	char model[400], pack[400];
	snprintf(model, sizeof model, "%s", lvd_test_path(MCV_MODEL));
	snprintf(pack, sizeof pack, "%s/mpack", g_tmp);
	REQUIRE(make_pack_mcv(pack, model, 3, 0, &e) == 0);
	struct lvd_loader_opts o;
	mcv_opts(&o, pack, model, 3);
	o.shuffle = 0;
	struct lvd_loader *l = NULL;
	REQUIRE(lvd_loader_open(&l, &o, NULL, &e) == 0);
	struct lvd_loader_batch *b = NULL;
	if (lvd_loader_next(l, &b, &e))
		fprintf(stderr, "  %s\n", e.msg);
	REQUIRE(b);
	CHECK(b->B == 3 && b->NI == 5 && b->strips && b->mcv && !b->plans && !b->pixel_values);
	CHECK(b->n_images[0] == 1 && b->n_images[1] == 1 && b->n_images[2] == 3);
	int64_t nlab = 0, tok = 0, pairs = 0;
	for (int i = 0, pic = 0; i < b->B; i++) {
		size_t len = 0;
		uint8_t *pl = make_record_mcv(i, &len, &e);
		struct lvd_packrec r = {0};
		REQUIRE(pl && lvd_packrec_decode(&r, pl, len, "test", &e) == 0);
		free(pl);
		CHECK(b->lengths[i] == (int)r.T);
		for (int t = 0; t < b->T; t++) {
			CHECK(b->input_ids[i * b->T + t] == (t < (int)r.T ? r.tokens[t] : 0));
			CHECK(b->labels[i * b->T + t] == (t < (int)r.T ? r.labels[t] : -100));
			nlab += t < (int)r.T && r.labels[t] != -100;
		}
		const struct lvd_lstep_mcv_sample *ms = &b->mcv[i];
		CHECK(ms->cols == (int)r.cols && ms->rows == (int)r.rows && ms->grid == MCV_GRID && ms->W == (int)r.W);
		CHECK(ms->R == 1 + (int)r.W && ms->rows_pos[ms->R - 1] == r.words[0].query[1]);
		CHECK(ms->words[0].n_rows == 2 && ms->words[0].target[1] == lvd_f16_to_f32(r.targets[1]));
		/* the pictures: the processor's strips of the decoded image, zero beyond */
		struct lvd_image im = {0};
		struct lvd_minicpmv_images px = {0};
		REQUIRE(lvd_image_decode(&im, r.image, r.image_len, LVD_ALPHA_WHITE, "png", &e) == 0);
		REQUIRE(lvd_minicpmv_preprocess(&px, &g_slice, im.px, im.w, im.h, &e) == 0);
		const int Lmax = b->Lmax, ps = g_slice.patch;
		float *want = calloc((size_t)px.geom.n * 3 * ps * ps * Lmax, sizeof *want);
		int tgt[2 * LVD_MINICPMV_MAX_PICTURES];
		lvd_minicpmv_images_batch(want, tgt, Lmax, &px);
		CHECK(!memcmp(want, b->strips + (size_t)pic * 3 * ps * ps * Lmax,
			      sizeof *want * (size_t)px.geom.n * 3 * ps * ps * Lmax));
		for (int k = 0; k < (int)r.n_pics; k++) {
			CHECK(b->tgt_sizes[2 * (pic + k)] == (int)r.pics[k].th && b->tgt_sizes[2 * (pic + k) + 1] == (int)r.pics[k].tw);
			CHECK(b->image_bound[2 * (pic + k)] == (int)r.pics[k].start &&
			      b->image_bound[2 * (pic + k) + 1] == (int)r.pics[k].end);
		}
		pic += (int)r.n_pics;
		free(want);
		lvd_minicpmv_images_free(&px);
		lvd_image_free(&im);
		lvd_packrec_free(&r);
	}
	CHECK(b->n_label_tokens == nlab && nlab > 0);
	CHECK(lvd_loader_step_counts(l, b->seq, 1, &tok, &pairs, &e) == 0);
	CHECK(tok == nlab && pairs == b->n_pairs && pairs == 4);
	lvd_loader_release(l, b);
	lvd_loader_close(l);
}

/* A pack of the other model type is refused at open naming both; a record whose picture
 * grid the model's slicing does not give fails its batch naming the file and record. */
static void test_mcv_errors(void)
{
	struct lvd_error e = {0};
	char model[400], mmodel[400], pack[400], mpack[400], bpack[400];
	snprintf(model, sizeof model, "%s", lvd_test_path(MCV_MODEL));
	snprintf(mmodel, sizeof mmodel, "%s", lvd_test_path("tests/golden/mllama/model"));
	snprintf(pack, sizeof pack, "%s/llpack", g_tmp);
	snprintf(mpack, sizeof mpack, "%s/mpack2", g_tmp);
	snprintf(bpack, sizeof bpack, "%s/bad", g_tmp);
	REQUIRE(make_pack(pack, mmodel, 2, &e) == 0);
	REQUIRE(make_pack_mcv(mpack, model, 2, 0, &e) == 0);
	REQUIRE(make_pack_mcv(bpack, model, 3, 1, &e) == 0);
	struct lvd_loader_opts o;
	struct lvd_loader *l = NULL;
	mcv_opts(&o, pack, model, 1);
	CHECK(lvd_loader_open(&l, &o, NULL, &e) == LVD_ERR_INVALID);
	CHECK(strstr(e.msg, "an mllama pack") && strstr(e.msg, "MiniCPM-V") && strstr(e.msg, model));
	mcv_opts(&o, mpack, mmodel, 1);
	o.model_kind = LVD_LOADER_MLLAMA;
	CHECK(lvd_loader_open(&l, &o, NULL, &e) == LVD_ERR_INVALID);
	CHECK(strstr(e.msg, "MiniCPM-V (minicpmv) pack") && strstr(e.msg, "mllama"));
	mcv_opts(&o, bpack, model, 3);
	o.shuffle = 0;
	REQUIRE(lvd_loader_open(&l, &o, NULL, &e) == 0);
	struct lvd_loader_batch *b = NULL;
	CHECK(lvd_loader_next(l, &b, &e) == LVD_ERR_INVALID);
	fprintf(stderr, "  (expected) %s\n", e.msg);
	CHECK(strstr(e.msg, "train-00000.lvdp: record 1 ('s001')") && strstr(e.msg, "picture 0") &&
	      strstr(e.msg, "slicing"));
	lvd_loader_close(l);
	int kind = -1;
	CHECK(lvd_loader_model_kind(model, &kind, &e) == 0 && kind == LVD_LOADER_MINICPMV);
	CHECK(lvd_loader_model_kind(mmodel, &kind, &e) == 0 && kind == LVD_LOADER_MLLAMA);
}

/* lvd_minicpmv_make_mutable (lvd-sft --full): the same logits from the writable copy,
 * every weight listed by hub name, and a write to one reaching the forward. */
static void test_mcv_mutable(void)
{
	struct lvd_error e = {0};
	struct lvd_minicpmv *m = NULL;
	REQUIRE(lvd_minicpmv_load(&m, lvd_test_path(MCV_MODEL), &e) == 0);
	const struct lvd_minicpmv_param *p = NULL;
	CHECK(lvd_minicpmv_params(m, &p) == 0 && !p);
	const int ids[6] = {1, 17, 33, 5, 90, 2};
	struct lvd_minicpmv_batch b = {.B = 1, .T = 6, .input_ids = ids};
	const size_t nv = (size_t)6 * lvd_minicpmv_cfg(m)->vocab;
	float *l0 = malloc(nv * sizeof *l0);
	REQUIRE(lvd_minicpmv_forward(m, &b, &e) == 0);
	memcpy(l0, lvd_minicpmv_logits(m), nv * sizeof *l0);
	REQUIRE(lvd_minicpmv_make_mutable(m, &e) == 0);
	CHECK(lvd_minicpmv_make_mutable(m, &e) == 0);
	size_t np = lvd_minicpmv_params(m, &p), head = np;
	for (size_t i = 0; i < np; i++)
		if (!strcmp(p[i].name, "llm.lm_head.weight"))
			head = i;
	CHECK(np > 40 && head < np && !strcmp(p[0].name, "vpm.embeddings.patch_embedding.weight"));
	REQUIRE(lvd_minicpmv_forward(m, &b, &e) == 0);
	CHECK(!memcmp(l0, lvd_minicpmv_logits(m), nv * sizeof *l0));
	p[head].data[0] += 1.0f;
	REQUIRE(lvd_minicpmv_forward(m, &b, &e) == 0);
	CHECK(memcmp(l0, lvd_minicpmv_logits(m), nv * sizeof *l0) != 0);
	free(l0);
	lvd_minicpmv_free(m);
}

/* --mcv-grads: lvd-sft's defaults for MiniCPM-V, the first step by hand. */
static int mcv_grads(const char *model, const char *pack, const char *file)
{
	struct lvd_error e = {0};
	struct lvd_minicpmv *m = NULL;
	struct lvd_ctx *ctx = NULL;
	struct lvd_ctx_opts co = {0};
	co.threads = 1;
	char path[600];
	snprintf(path, sizeof path, "%s/config.json", model);
	struct lvd_minicpmv_config c;
	if (lvd_minicpmv_config_load(&c, path, &e) || lvd_minicpmv_slice_cfg_from(&g_slice, &c, &e) ||
	    lvd_ctx_create(&ctx, &co, &e) || lvd_minicpmv_load(&m, model, &e)) {
		fprintf(stderr, "mcv-grads: %s\n", e.msg);
		return 2;
	}
	lvd_minicpmv_set_ctx(m, ctx);
	struct lvd_minicpmv_lora_cfg lc = {8, 32.0f, 0.05f, 0, "q_proj,k_proj,v_proj,o_proj", 42};
	struct lvd_latt_cfg cfg;
	lvd_latt_cfg_default(&cfg, c.t_heads, c.t_layers);
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, &cfg.aligner);
	float *al = calloc(lay.n_params, sizeof *al), *dal = calloc(lay.n_params, sizeof *dal);
	int *layers = calloc((size_t)c.t_layers, sizeof *layers);
	for (int k = 0; k < c.t_layers; k++)
		layers[k] = k;
	lvd_aligner_init(&cfg.aligner, al, 42, LVD_ALIGNER_INIT_NORMAL, 0.02f);
	struct lvd_loader_opts o;
	mcv_opts(&o, pack, model, 2);
	struct lvd_loader *l = NULL;
	struct lvd_loader_batch *b = NULL;
	int rc = 2;
	struct lvd_st *st = NULL;
	if (lvd_minicpmv_add_lora(m, &lc, &e) || lvd_loader_open(&l, &o, NULL, &e) || lvd_loader_next(l, &b, &e) ||
	    lvd_st_open(&st, file, &e)) {
		fprintf(stderr, "mcv-grads: %s\n", e.msg);
		goto out;
	}
	struct lvd_minicpmv_batch mb;
	lvd_loader_batch_view_mcv(b, &mb);
	struct lvd_lstep_mcv_in in = {&mb, b->mcv, c.t_layers, layers, LVD_MCV_MAP_ROLLOUT, al, &cfg, (double)b->n_pairs,
				      10.0f, 1.0f, 1, NULL, NULL};
	struct lvd_lstep_out out = {0};
	if (lvd_lstep_mcv_run(ctx, m, &out, dal, NULL, &in, &e)) {
		fprintf(stderr, "mcv-grads: %s\n", e.msg);
		goto out;
	}
	size_t nl = 0;
	const float *dl = lvd_minicpmv_lora_grads(m, &nl);
	const struct lvd_tensor_view *vl = lvd_st_find(st, "lora_grad"), *va = lvd_st_find(st, "aligner_grad");
	double ss = 0;
	for (size_t i = 0; i < nl; i++)
		ss += (double)dl[i] * dl[i];
	rc = !vl || !va || (size_t)vl->numel != nl || (size_t)va->numel != lay.n_params ||
	     memcmp(vl->data, dl, nl * sizeof *dl) || memcmp(va->data, dal, lay.n_params * sizeof *dal) || !(ss > 0) ||
	     !(out.latt > 0) || out.n_pairs != b->n_pairs;
	fprintf(stderr, "mcv-grads: %zu LoRA + %zu Aligner gradients %s (|dLoRA| %.3g, ce %.4f, att %.4g, pairs %d)\n",
		nl, lay.n_params, rc ? "DIFFER" : "bitwise equal", sqrt(ss), out.ce, out.latt, out.n_pairs);
out:
	lvd_st_close(st);
	lvd_loader_release(l, b);
	lvd_loader_close(l);
	lvd_minicpmv_free(m);
	lvd_ctx_destroy(ctx);
	free(al);
	free(dal);
	free(layers);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "--pack-mcv")) {
		struct lvd_error e = {0};
		if (make_pack_mcv(argv[2], argv[3], atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 0, &e)) {
			fprintf(stderr, "test_sft --pack-mcv: %s\n", e.msg);
			return 1;
		}
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "--mcv-grads"))
		return mcv_grads(argv[2], argv[3], argv[4]);
	if (argc >= 5 && !strcmp(argv[1], "--pack")) {
		struct lvd_error e = {0};
		if (argc >= 9) {
			g_tile = atoi(argv[5]);
			g_patch = atoi(argv[6]);
			g_tiles = atoi(argv[7]);
			g_img_tok = atoi(argv[8]);
		}
		if (make_pack(argv[2], argv[3], atoi(argv[4]), &e)) {
			fprintf(stderr, "test_sft --pack: %s\n", e.msg);
			return 1;
		}
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "--diff"))
		return diff_names(argv[2], argv[3]);
	if (argc >= 5 && !strcmp(argv[1], "--compare"))
		return compare(argv[2], argv[3], atof(argv[4]), argc > 5 ? argv[5] : NULL, 0);
	if (argc == 5 && !strcmp(argv[1], "--compare-common"))
		return compare(argv[2], argv[3], atof(argv[4]), NULL, 1);
	snprintf(g_tmp, sizeof g_tmp, "/tmp/lvd_test_sft.XXXXXX");
	LVD_ASSERT(mkdtemp(g_tmp));
	static const struct lvd_test tests[] = {TEST(test_fixture_loader), TEST(test_mcv_loader), TEST(test_mcv_errors),
						TEST(test_mcv_mutable), {0}};
	int rc = lvd_test_main(argc, argv, tests);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
	if (system(cmd)) {
	}
	return rc;
}
