/* tools/lvd-shapes/shapes.h — the shapes world: seeded scenes of coloured shapes on a
 * textured background, their captions and typed question-answer turns, and the exact
 * per-word masks of what each colour word and shape noun names (docs/shapes.md).
 *
 * Everything is a pure function of (seed, split, index): scene i of a split never
 * depends on N, on other scenes or on the thread count, and all pixel and map
 * arithmetic is integer, so the same seed gives byte-identical files on any machine.
 *
 * Geometry (integer pixel coordinates; pixel (x, y) has its centre at (x+½, y+½)).
 * Every shape has a bounding box [x0, x0+s) × [y0, y0+s) and covers exactly the pixels
 * whose centre lies in the closed figure:
 *   square    x0 <= x < x0+s and y0 <= y < y0+s
 *   circle    the inscribed disc: centre (x0 + s/2, y0 + s/2), radius s/2, i.e. in
 *             doubled units X = 2x+1-2x0-s, Y = 2y+1-2y0-s:  X² + Y² <= s²
 *   triangle  apex (x0 + s/2, y0), base (x0, y0+s)-(x0+s, y0+s): for y0 <= y < y0+s,
 *             2·|2x+1-2x0-s| <= 2y+1-2y0
 * Bounding boxes of one scene are separated by a gap (so shapes never overlap or
 * touch), and the (colour, shape) pairs of a scene are distinct. */
#ifndef LVD_SHAPES_H
#define LVD_SHAPES_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/progress.h"

enum lvd_shapes_kind { LVD_SHAPES_CIRCLE, LVD_SHAPES_SQUARE, LVD_SHAPES_TRIANGLE, LVD_SHAPES_N_KINDS };
enum lvd_shapes_split { LVD_SHAPES_TRAIN = 0, LVD_SHAPES_HELDOUT = 1 };
enum lvd_shapes_qtype {
	LVD_SHAPES_Q_COLOR,     /* "What color is the circle?" -> "red" */
	LVD_SHAPES_Q_SHAPE,     /* "What shape is the red object?" -> "circle" */
	LVD_SHAPES_Q_PRESENCE,  /* "Is there a green triangle in the image?" -> "yes"/"no" */
	LVD_SHAPES_Q_COUNT,     /* "How many circles are there?" -> "0".."3" */
	LVD_SHAPES_Q_POSITION,  /* "Is the red circle above or below the blue square?" -> "above" */
	LVD_SHAPES_N_QTYPES
};
#define LVD_SHAPES_N_COLORS 5
#define LVD_SHAPES_MAX 3          /* shapes per scene */
#define LVD_SHAPES_MAX_WORDS 16   /* mapped words per scene (5 colours + 3·2 nouns) */
#define LVD_SHAPES_HELDOUT_MOD 4  /* layout classes with key % 4 == 0 are held out */

struct lvd_shapes_opts {
	uint64_t seed;
	int split;               /* enum lvd_shapes_split */
	int min_shapes, max_shapes; /* 1 <= min <= max <= LVD_SHAPES_MAX */
	int tile_size;           /* mllama tile side S the image sizes are chosen for (32..2048) */
	int max_tiles;           /* T: arrangements a·b <= T are cycled through (1..8) */
	int map_size;            /* G: per-word maps are G×G (official: 32) */
	int questions;           /* question-answer pairs per image (1..LVD_SHAPES_N_QTYPES) */
};

/* Llama-3.2-Vision tiling (560, 4 tiles), 1..3 shapes, 32×32 maps, 4 questions, train. */
void lvd_shapes_opts_default(struct lvd_shapes_opts *o);
/* LVD_ERR_INVALID naming the option when a field is out of range. */
int lvd_shapes_opts_check(const struct lvd_shapes_opts *o, struct lvd_error *err);

struct lvd_shapes_shape {
	int kind, color;         /* enum lvd_shapes_kind, index into the palette */
	int x0, y0, size;        /* bounding box [x0, x0+size) × [y0, y0+size) */
};

struct lvd_shapes_qa {
	int type;                /* enum lvd_shapes_qtype */
	char question[160];
	char answer[16];
};

struct lvd_shapes_scene {
	uint64_t index;
	int split;
	int w, h;                /* image size in pixels */
	int tiles_h, tiles_w;    /* the mllama arrangement this size selects */
	int n;                   /* shapes, 1..LVD_SHAPES_MAX, in caption order */
	struct lvd_shapes_shape s[LVD_SHAPES_MAX];
	uint64_t layout;         /* layout-class key (docs/shapes.md); split by key % 4 */
	char caption[256];
	int n_qa;
	struct lvd_shapes_qa qa[LVD_SHAPES_N_QTYPES];
};

/* Names: "red" "green" "blue" "yellow" "purple"; "circle" "square" "triangle";
 * "color" "shape" "presence" "count" "position"; "train" "heldout". */
const char *lvd_shapes_color_name(int color);
void lvd_shapes_color_rgb(int color, uint8_t rgb[3]);
const char *lvd_shapes_kind_name(int kind);
const char *lvd_shapes_qtype_name(int type);
const char *lvd_shapes_split_name(int split);

/* Samples scene `index` of o->split (o must pass lvd_shapes_opts_check). */
void lvd_shapes_scene_make(struct lvd_shapes_scene *sc, const struct lvd_shapes_opts *o, uint64_t index);

/* The layout-class key of a scene: a fixed 64-bit hash (independent of the seed) of
 * (tiles_h, tiles_w, n, and per shape kind, colour and the 3×3 image cell holding the
 * bounding-box centre). Train scenes have key % 4 != 0, held-out scenes key % 4 == 0. */
uint64_t lvd_shapes_layout_key(const struct lvd_shapes_scene *sc);

/* 1 when pixel (x, y) is covered by shape sh (rules at the top). */
int lvd_shapes_inside(const struct lvd_shapes_shape *sh, int x, int y);

/* Which side of b shape a lies on: "above", "below", "left" or "right" (the axis with
 * the larger bounding-box gap; vertical on ties). */
const char *lvd_shapes_relation(const struct lvd_shapes_shape *a, const struct lvd_shapes_shape *b);

/* Draws the scene into rgb [h][w][3] (caller-allocated): seeded integer value noise,
 * then the shapes in solid palette colours. */
void lvd_shapes_render(const struct lvd_shapes_scene *sc, uint64_t seed, uint8_t *rgb);

/* The mapped words of a scene, in order of first appearance in the caption, then the
 * turns: every colour word and shape noun (singular, or plural as in "How many
 * circles") whose mask is non-empty. Fills words[k] (lower case) and returns the count. */
int lvd_shapes_words(const struct lvd_shapes_scene *sc, char words[][16]);

/* mask [h][w] = 1 on the pixels `word` names (the union of the shapes of that colour
 * or kind), else 0. Returns the number of pixels set (0 for unknown words). */
size_t lvd_shapes_word_mask(const struct lvd_shapes_scene *sc, const char *word, uint8_t *mask);

/* The G×G map of a mask covering the whole image (row i spans image rows
 * [i·h/G, (i+1)·h/G), likewise columns): the exact covered fraction of each cell,
 * scaled so the largest cell is 255 (p2p's 255·map/max), rounded half up; computed in
 * integers. map is [G][G]; an empty mask gives zeros. */
void lvd_shapes_map(uint8_t *map, int G, const uint8_t *mask, int w, int h);

/* Writes images, maps, masks, the manifest <split>.jsonl and the run record
 * <split>-run.json of n scenes under dir (layout in docs/shapes.md), every file
 * atomically (tmp + fsync + rename). progress may be NULL. LVD_ERR_IO naming the
 * file, LVD_ERR_NOMEM. */
int lvd_shapes_generate(const struct lvd_shapes_opts *o, uint64_t n, const char *dir,
			struct lvd_progress *progress, struct lvd_error *err);

#endif
