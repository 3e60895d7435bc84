/* Helpers and unit checks for lvd-sft (tools/lvd-sft): a tiny pack for the golden tiny
 * mllama (tests/golden/mllama/model: tile 56, patch 14, 4 tiles, image token 256), and a
 * safetensors comparer, both used by tests/cli/test_lvd_sft.sh:
 *   test_sft --pack DIR MODEL N [TILE PATCH TILES IMAGE_TOKEN]
 *                                   write an lvd-pack folder of N records for MODEL
 *   test_sft --compare A B TOL [SKIP]  every tensor of A (but SKIP) equals B's within TOL
 *                                   (0: bitwise);
 *                                   exit 0 equal, 1 different (max difference printed)
 *   test_sft --diff A B              print the name of every tensor of A that is not
 *                                   bitwise equal to B's (or absent there), one a line
 * Without those arguments: unit checks that the fixture pack opens with the loader for
 * the golden model and that its step counts are split-invariant. */
#include <stdint.h>
#include <unistd.h>

#include "harness.h"

#include "core/sha256.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/geometry.h"
#include "lavender/packrec.h"
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

/* A pack of n records (one shard; n = 0: an empty shard list) for the model folder. */
static int make_pack(const char *dir, const char *model, int n, struct lvd_error *e)
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
			uint8_t *pl = make_record(i, &len, e);
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

static int compare(const char *a, const char *b, double tol, const char *skip)
{
	struct lvd_error e = {0};
	struct lvd_st *sa = NULL, *sb = NULL;
	if (lvd_st_open(&sa, a, &e) || lvd_st_open(&sb, b, &e)) {
		fprintf(stderr, "compare: %s\n", e.msg);
		return 2;
	}
	int bad = 0;
	double worst = 0;
	if (lvd_st_count(sa) != lvd_st_count(sb)) {
		fprintf(stderr, "compare: %zu vs %zu tensors\n", lvd_st_count(sa), lvd_st_count(sb));
		bad = 1;
	}
	for (size_t i = 0; i < lvd_st_count(sa) && !bad; i++) {
		const struct lvd_tensor_view *ta = lvd_st_at(sa, i), *tb = lvd_st_find(sb, ta->name);
		if (skip && !strcmp(ta->name, skip))
			continue;
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
	fprintf(stderr, "compare: max |difference| %.3g\n", worst);
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

int main(int argc, char **argv)
{
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
		return compare(argv[2], argv[3], atof(argv[4]), argc > 5 ? argv[5] : NULL);
	snprintf(g_tmp, sizeof g_tmp, "/tmp/lvd_test_sft.XXXXXX");
	LVD_ASSERT(mkdtemp(g_tmp));
	static const struct lvd_test tests[] = {TEST(test_fixture_loader), {0}};
	int rc = lvd_test_main(argc, argv, tests);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
	if (system(cmd)) {
	}
	return rc;
}
