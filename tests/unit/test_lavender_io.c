/* tests/unit/test_lavender_io.c — Aligner parameters to and from safetensors
 * (lvd_aligner_save / lvd_aligner_load, lib/lavender/aligner_io.c): round trip, the
 * official names with a module prefix or issue #11's short spelling, missing and
 * misshapen tensors, ambiguous prefixes, and the golden file's PyTorch-written names.
 * A separate binary from test_lavender.c because it links lib/io/safetensors and no
 * execution context (see that file's header). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "io/safetensors.h"
#include "lavender/aligner.h"

static const char *tmp_path(const char *name)
{
	static char buf[4][512];
	static int k;
	char *p = buf[k++ & 3];
	const char *d = getenv("TMPDIR");
	snprintf(p, sizeof buf[0], "%s/lvd_test_lavender_io_%d_%s", d && *d ? d : "/tmp", (int)getpid(), name);
	return p;
}

static void test_roundtrip(void)
{
	struct lvd_error e;
	struct lvd_aligner_cfg cfg;
	lvd_aligner_cfg_default(&cfg, 8);
	cfg.norm = LVD_ALIGNER_GROUP;
	cfg.d_h = 6;
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, &cfg);
	float *p = malloc(lay.n_params * sizeof *p), *q = calloc(lay.n_params, sizeof *q);
	lvd_aligner_init(&cfg, p, 9, LVD_ALIGNER_INIT_KAIMING, 0);
	const char *path = tmp_path("rt.safetensors");
	REQUIRE(lvd_aligner_save(&cfg, p, path, &e) == LVD_OK);
	REQUIRE(lvd_aligner_load(&cfg, q, path, &e) == LVD_OK);
	CHECK(!memcmp(p, q, lay.n_params * sizeof *p));
	/* the file holds the official names and shapes */
	struct lvd_st *st = NULL;
	REQUIRE(lvd_st_open(&st, path, &e) == LVD_OK);
	const struct lvd_tensor_view *v = lvd_st_find(st, "diffag_squeeze_1.weight");
	CHECK(v && v->ndim == 4 && v->shape[0] == 8 && v->shape[1] == 6 && v->shape[2] == 3 && v->shape[3] == 3);
	v = lvd_st_find(st, "diffag_conv_last.weight");
	CHECK(v && v->ndim == 4 && v->shape[0] == 1 && v->shape[1] == 8 && v->shape[2] == 1);
	CHECK(lvd_st_find(st, "diffag_norm3.bias") != NULL);
	CHECK(lvd_st_count(st) == 13);
	CHECK_STR(lvd_st_metadata(st, "lvd.aligner"), "depth=sim norm=group act=relu6 d_in=8 d_h=6");
	lvd_st_close(st);
	/* a different shape is refused, naming the tensor */
	cfg.d_h = 7;
	lvd_aligner_layout(&lay, &cfg);
	float *r = calloc(lay.n_params, sizeof *r);
	CHECK(lvd_aligner_load(&cfg, r, path, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "diffag_expand_1.weight");
	/* instance norm: the norm tensors are not needed */
	cfg.d_h = 6;
	cfg.norm = LVD_ALIGNER_INSTANCE;
	CHECK(lvd_aligner_load(&cfg, r, path, &e) == LVD_OK);
	unlink(path);
	free(p);
	free(q);
	free(r);
}

/* a checkpoint written with a module prefix, or with issue #11's short names */
static void test_prefix_and_short_names(void)
{
	struct lvd_error e;
	struct lvd_aligner_cfg cfg;
	lvd_aligner_cfg_default(&cfg, 4);
	cfg.d_h = 5;
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, &cfg);
	float *p = malloc(lay.n_params * sizeof *p), *q = calloc(lay.n_params, sizeof *q);
	lvd_aligner_init(&cfg, p, 1, LVD_ALIGNER_INIT_NORMAL, 0.02f);
	p[lay.t[LVD_AL_LAST_B].off] = 0.5f;
	for (int mode = 0; mode < 3; mode++) {
		struct lvd_st_writer *w = lvd_st_writer_new();
		REQUIRE(w);
		char names[LVD_ALIGNER_MAX_TENSORS][96];
		for (int k = 0; k < LVD_ALIGNER_MAX_TENSORS; k++) {
			const struct lvd_aligner_tensor *t = &lay.t[k];
			if (!t->n)
				continue;
			/* mode 2: a "light" checkpoint without the deep-only convs */
			if (mode == 2 && (k == LVD_AL_EXPAND_3 || k == LVD_AL_EXPAND_4))
				continue;
			if (mode == 0)
				snprintf(names[k], sizeof names[k], "model.diffag_projection.%s", t->name);
			else
				snprintf(names[k], sizeof names[k], "%s", t->name + 7); /* "expand_1.weight" */
			REQUIRE(lvd_st_writer_add(w, names[k], LVD_DT_F32, t->ndim, t->shape, p + t->off, &e) == LVD_OK);
		}
		const char *path = tmp_path("prefix.safetensors");
		REQUIRE(lvd_st_writer_write(w, path, &e) == LVD_OK);
		lvd_st_writer_free(w);
		memset(q, 0, lay.n_params * sizeof *q);
		cfg.depth = mode == 2 ? LVD_ALIGNER_LIGHT : LVD_ALIGNER_SIM;
		CHECKF(lvd_aligner_load(&cfg, q, path, &e) == LVD_OK, "mode %d: %s", mode, e.msg);
		size_t skip0 = lay.t[LVD_AL_EXPAND_3].off, skip1 = lay.t[LVD_AL_NORM1_W].off;
		int same = 1;
		for (size_t i = 0; i < lay.n_params; i++)
			if (!(mode == 2 && i >= skip0 && i < skip1))
				same &= p[i] == q[i];
		CHECK(same);
		if (mode == 2) {
			/* deep needs expand_3 */
			cfg.depth = LVD_ALIGNER_DEEP;
			CHECK(lvd_aligner_load(&cfg, q, path, &e) == LVD_ERR_NOTFOUND);
			CHECK_CONTAINS(e.msg, "diffag_expand_3.weight");
		}
		unlink(path);
	}
	free(p);
	free(q);
}

/* the golden file holds five configurations' parameters as c<k>.p.<official name>:
 * a suffix match is ambiguous there and must not pick one */
static void test_ambiguous_prefix(void)
{
	struct lvd_error e;
	const char *path = lvd_test_path("tests/golden/lavender/golden.safetensors");
	FILE *f = fopen(path, "rb");
	if (!f)
		SKIP("tests/golden/lavender/golden.safetensors missing (make golden)");
	fclose(f);
	struct lvd_aligner_cfg cfg;
	lvd_aligner_cfg_default(&cfg, 4);
	cfg.d_h = 6;
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, &cfg);
	float *q = calloc(lay.n_params, sizeof *q);
	CHECK(lvd_aligner_load(&cfg, q, path, &e) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(e.msg, "diffag_expand_1.weight");
	free(q);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_roundtrip),
		TEST(test_prefix_and_short_names),
		TEST(test_ambiguous_prefix),
		{ 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
