/* lvd-shapes — generate the shapes world: seeded images of coloured shapes with
 * captions, typed question-answer turns and exact per-word maps (docs/shapes.md). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/cli.h"
#include "core/log.h"
#include "core/progress.h"
#include "lvd-shapes/shapes.h"

static const char USAGE[] = "lvd-shapes --out DIR [--n N] [--seed S] [--split train|heldout] [options]";
static const char DESC[] =
	"Writes N images of 1-3 coloured shapes (circle, square, triangle; red, green, blue,\n"
	"yellow, purple) on textured backgrounds, sized so that mllama tiles them into 1..T\n"
	"tiles (cycling through every arrangement), with a caption and typed question-answer\n"
	"turns per image, and for every colour word and shape noun of the texts the exact\n"
	"mask of the pixels it names:\n"
	"  DIR/<split>.jsonl        manifest (id, image, caption, conversations + split, width,\n"
	"                           height, tiles, layout, shapes, qa, word_maps, word_masks)\n"
	"  DIR/<split>-run.json     the options used\n"
	"  DIR/images/<id>.png      the image (<id> = <split>-NNNNNN)\n"
	"  DIR/attn/<id>.png/lpm_attention/<id>/attention_<word>.jpg\n"
	"                           per-word G x G map in the official Lavender layout\n"
	"  DIR/attn-png/...         the same maps as lossless PNG\n"
	"  DIR/masks/<id>/<word>.png  exact full-resolution masks (0/255)\n"
	"Words that name nothing in the image (as in a presence question answered \"no\") get no map.\n"
	"The same seed gives byte-identical files. Held-out scenes come from layout classes\n"
	"that training scenes never use (any seed), so train and heldout can share DIR.\n"
	"Question types, geometry and the map values are described in docs/shapes.md.";

enum { O_OUT, O_N, O_SEED, O_SPLIT, O_MIN, O_MAX, O_TILE, O_TILES, O_MAP, O_QUESTIONS, O_VERSION };
static const struct lvd_cli_opt OPTS[] = {
	[O_OUT] = {"out", 'o', "DIR", "output folder (required; created)"},
	[O_N] = {"n", 'n', "N", "number of images (default 100)"},
	[O_SEED] = {"seed", 's', "S", "random seed, 0..2^63-1 (default 0)"},
	[O_SPLIT] = {"split", 0, "NAME", "train or heldout (default train)"},
	[O_MIN] = {"min-shapes", 0, "K", "fewest shapes per image, 1..3 (default 1)"},
	[O_MAX] = {"max-shapes", 0, "K", "most shapes per image, 1..3 (default 3)"},
	[O_TILE] = {"tile-size", 0, "PX", "mllama tile side the sizes are chosen for, 32..2048 (default 560)"},
	[O_TILES] = {"max-tiles", 0, "T", "mllama max_image_tiles, 1..8 (default 4)"},
	[O_MAP] = {"map-size", 0, "G", "per-word map side in cells (default 32, the official size)"},
	[O_QUESTIONS] = {"questions", 0, "Q", "question-answer pairs per image, 1..5 (default 4)"},
	[O_VERSION] = {"version", 'V', NULL, "print the version and build features and exit"},
	{0},
};

struct args {
	struct lvd_shapes_opts o;
	const char *out;
	uint64_t n;
	int version;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct args *a = ctx;
	if (key == 'o') key = LVD_CLI_KEY(O_OUT);
	if (key == 'n') key = LVD_CLI_KEY(O_N);
	if (key == 's') key = LVD_CLI_KEY(O_SEED);
	if (key == 'V') key = LVD_CLI_KEY(O_VERSION);
	switch (key - 256) {
	case O_OUT: a->out = arg; return 0;
	case O_N: return lvd_cli_u64(arg, 1, 100000000, "--n", &a->n);
	case O_SEED: return lvd_cli_u64(arg, 0, INT64_MAX, "--seed", &a->o.seed);
	case O_SPLIT:
		if (!strcmp(arg, "train"))
			a->o.split = LVD_SHAPES_TRAIN;
		else if (!strcmp(arg, "heldout"))
			a->o.split = LVD_SHAPES_HELDOUT;
		else
			return lvd_cli_usage_error("--split: expected train or heldout, got '%s'", arg);
		return 0;
	case O_MIN: return lvd_cli_int(arg, 1, LVD_SHAPES_MAX, "--min-shapes", &a->o.min_shapes);
	case O_MAX: return lvd_cli_int(arg, 1, LVD_SHAPES_MAX, "--max-shapes", &a->o.max_shapes);
	case O_TILE: return lvd_cli_int(arg, 32, 2048, "--tile-size", &a->o.tile_size);
	case O_TILES: return lvd_cli_int(arg, 1, 8, "--max-tiles", &a->o.max_tiles);
	case O_MAP: return lvd_cli_int(arg, 1, 1024, "--map-size", &a->o.map_size);
	case O_QUESTIONS: return lvd_cli_int(arg, 1, LVD_SHAPES_N_QTYPES, "--questions", &a->o.questions);
	case O_VERSION: a->version = 1; return 0;
	}
	return lvd_cli_usage_error("unhandled option");
}

int main(int argc, char **argv)
{
	lvd_log_set_prog("lvd-shapes");
	struct args a = { .n = 100 };
	lvd_shapes_opts_default(&a.o);
	int first = 0;
	int rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &a, &first);
	if (rc < 0)
		return 0;
	if (rc)
		return rc;
	if (a.version) {
		lvd_cli_version("lvd-shapes");
		return 0;
	}
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!a.out)
		return lvd_cli_usage_error("--out DIR is required");
	struct lvd_error err = { 0 };
	if (lvd_shapes_opts_check(&a.o, &err))
		return lvd_cli_usage_error("%s", err.msg);
	struct lvd_progress_opts po = { .unit = "images" };
	struct lvd_progress *pr =
		lvd_progress_create(lvd_log_level() >= LVD_LOG_INFO ? stderr : NULL, "lvd-shapes", a.n, &po);
	rc = lvd_shapes_generate(&a.o, a.n, a.out, pr, &err);
	if (rc) {
		lvd_progress_destroy(pr);
		lvd_error_log("%s", err.msg);
		return 1;
	}
	lvd_progress_finish(pr);
	lvd_progress_destroy(pr);
	lvd_info("wrote %llu %s images to %s/ (manifest %s/%s.jsonl)", (unsigned long long)a.n,
		 lvd_shapes_split_name(a.o.split), a.out, a.out, lvd_shapes_split_name(a.o.split));
	return 0;
}
