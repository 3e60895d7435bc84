/* tools/lvd-eval/align_viz.h — `lvd-eval align --viz` pictures: one PNG strip per sample,
 * one row per matched word (docs/eval.md "align"). Tool-private. */
#ifndef LVD_EVAL_ALIGN_VIZ_H
#define LVD_EVAL_ALIGN_VIZ_H

#include <stdint.h>

#include "core/error.h"
#include "lavender/packrec.h"

#define ALIGN_VIZ_PANEL_W 160 /* every panel is this wide; its height keeps the grid's aspect */
#define ALIGN_VIZ_GAP 4
#define ALIGN_VIZ_LINE 18     /* a text line: 7-pixel glyphs drawn at scale 2, plus spacing */

struct align_viz_word {
	const char *word;
	const float *target, *raw, *aligned; /* [GH·GW]; aligned may be NULL */
};

/* Panel height for a gh×gw grid: max(8, round(160·gh/gw)). */
int align_viz_panel_h(int gh, int gw);

/* Writes the strip of record rec (its image, geometry and id) to path (atomically):
 * a title line (the id), column titles, then per word its text line and the panels
 * image | SD target | VLM raw (mean over layers) | VLM Aligner (when has_aligned).
 * Size: width GAP + cols·(160 + GAP), height GAP + 2·LINE + W·(LINE + panel_h + GAP).
 * Errors: the image cannot be decoded (named), LVD_ERR_NOMEM, LVD_ERR_IO. */
int align_viz_write(const char *path, const struct lvd_packrec *rec, const uint8_t *mask,
		    const struct align_viz_word *words, int W, int has_aligned, struct lvd_error *err);

/* The colour of v in [0, 1] (clamped): viridis through its five anchor colours (0, 0.25,
 * 0.5, 0.75, 1), linearly interpolated. */
void align_viz_colour(float v, uint8_t rgb[3]);

#endif
