/* lvd-pack viz — PNGs of the packed targets on the VLM canvas over the image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common/cli.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/parse.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/packrec.h"

static const char USAGE[] = "lvd-pack viz SHARD.lvdp --out DIR [--id ID] [--limit N] [--cell PX]";
static const char DESC[] =
	"Writes one PNG per matched word: the VLM canvas (tiles_h x tiles_w tiles of patches,\n"
	"each patch drawn as a PX-pixel cell) with the image resized to its extent on the\n"
	"canvas, the target blended in red, and patches outside the image in dark grey.\n"
	"Files are DIR/<id>_<k>_<word>.png (characters outside [A-Za-z0-9._-] become '_').\n"
	"Samples stored with --no-embed-images are read from their recorded path.\n"
	"Grid records (--grid N, and every MiniCPM-V record) draw the NxN grid over the whole\n"
	"image; a sliced MiniCPM-V record adds its slice boundaries (cols x rows cells) in cyan.";

enum { O_OUT, O_ID, O_LIMIT, O_CELL };
static const struct lvd_cli_opt OPTS[] = {
	[O_OUT] = {"out", 'o', "DIR", "output folder (required)"},
	[O_ID] = {"id", 0, "ID", "only the sample with this id"},
	[O_LIMIT] = {"limit", 'n', "N", "at most N samples (default 16)"},
	[O_CELL] = {"cell", 0, "PX", "pixels per patch cell (default 8)"},
	{0},
};

struct opts {
	const char *out, *id;
	uint64_t limit, cell;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	if (key == 'o') key = 256 + O_OUT;
	if (key == 'n') key = 256 + O_LIMIT;
	switch (key - 256) {
	case O_OUT: o->out = arg; return 0;
	case O_ID: o->id = arg; return 0;
	case O_LIMIT:
		return lvd_cli_u64(arg, 1, 1u << 30, "--limit", &o->limit);
	case O_CELL:
		return lvd_cli_u64(arg, 1, 64, "--cell", &o->cell);
	}
	return lvd_cli_usage_error("unhandled option");
}

static void safe_name(char *dst, size_t cap, const char *s)
{
	size_t n = 0;
	for (; *s && n + 1 < cap && n < 80; s++) {
		char c = *s;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			 c == '-' || c == '_';
		dst[n++] = ok ? c : '_';
	}
	dst[n] = 0;
}

/* 1 when pixel x of an n-pixel axis is the first pixel of slice cell k > 0 of a MiniCPM-V
 * record's `cells` cells along that axis (cell k starts at k·n/cells: the slices cut the
 * whole image into equal parts). */
static int slice_edge(const struct lvd_packrec *r, int x, int n, uint32_t cells)
{
	if (!(r->flags & LVD_PACKREC_MCV) || cells < 2)
		return 0;
	for (uint32_t k = 1; k < cells; k++)
		if ((uint64_t)x == (uint64_t)k * (uint64_t)n / cells)
			return 1;
	return 0;
}

/* Draws every word of one record. */
static int viz_record(const struct lvd_packrec *r, const struct opts *o, struct lvd_error *err)
{
	struct lvd_image img = {0}, fit = {0}, out = {0};
	int rc;
	if (r->flags & LVD_PACKREC_IMAGE)
		rc = lvd_image_decode(&img, r->image, r->image_len, LVD_ALPHA_WHITE, r->id, err);
	else
		rc = lvd_image_load(&img, (const char *)r->image, LVD_ALPHA_WHITE, err);
	if (rc)
		return rc;
	const int cell = (int)o->cell;
	int W = (int)r->gw * cell, H = (int)r->gh * cell;
	/* extent of the image on the drawn canvas */
	int ew, eh;
	if (r->flags & LVD_PACKREC_GRID) {
		ew = W;
		eh = H;
	} else {
		ew = (int)((uint64_t)r->new_w * (uint64_t)cell / r->patch_px);
		eh = (int)((uint64_t)r->new_h * (uint64_t)cell / r->patch_px);
		if (ew < 1) ew = 1;
		if (eh < 1) eh = 1;
	}
	if ((rc = lvd_image_resize(&fit, &img, ew, eh, LVD_RESAMPLE_BILINEAR, 1, err)))
		goto out;
	out.w = W;
	out.h = H;
	out.c = 3;
	if (!(out.px = lvd_alloc_array((size_t)W * H, 3))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	size_t cells = (size_t)r->gh * r->gw;
	for (uint32_t w = 0; w < r->W; w++) {
		for (int y = 0; y < H; y++)
			for (int x = 0; x < W; x++) {
				size_t c = (size_t)(y / cell) * r->gw + (size_t)(x / cell);
				uint8_t *p = out.px + ((size_t)y * W + x) * 3;
				if (!r->mask[c] || x >= ew || y >= eh) {
					p[0] = p[1] = p[2] = r->mask[c] ? 0 : 40;
					continue;
				}
				const uint8_t *q = fit.px + ((size_t)y * ew + x) * 3;
				if (slice_edge(r, x, W, r->cols) || slice_edge(r, y, H, r->rows)) {
					p[0] = 0;
					p[1] = p[2] = 255;
					continue;
				}
				float t = lvd_f16_to_f32(r->targets[w * cells + c]);
				float g = (q[0] + q[1] + q[2]) / 3.0f * 0.6f;
				p[0] = (uint8_t)(g + t * (255.0f - g) + 0.5f);
				p[1] = (uint8_t)(g * (1.0f - t) + 0.5f);
				p[2] = (uint8_t)(g * (1.0f - t) + 0.5f);
			}
		char a[96], b[96], path[4400];
		safe_name(a, sizeof a, r->id);
		safe_name(b, sizeof b, r->words[w].key);
		snprintf(path, sizeof path, "%s/%s_%u_%s.png", o->out, a, w, b);
		if ((rc = lvd_image_save_png(&out, path, err)))
			goto out;
	}
out:
	lvd_image_free(&img);
	lvd_image_free(&fit);
	lvd_image_free(&out);
	return rc;
}

int cmd_viz(int argc, char **argv)
{
	lvd_log_set_prog("lvd-pack viz"); /* messages and usage hints name the subcommand */
	struct opts o = {0};
	o.limit = 16;
	o.cell = 8;
	int first, rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first + 1 != argc)
		return lvd_cli_usage_error("expected one shard file");
	if (!o.out)
		return lvd_cli_usage_error("--out is required");
	struct lvd_error err = {0};
	struct lvd_rec_reader *r = NULL;
	if (lvd_mkdir_p(o.out, &err) || lvd_rec_open(&r, argv[first], LVD_REC_KIND_PACK, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	int status = 1;
	size_t lo = 0, hi = lvd_rec_count(r), files = 0;
	if (o.id) {
		if (lvd_rec_find(r, o.id, &lo, &err)) {
			lvd_error_log("%s", err.msg);
			goto out;
		}
		hi = lo + 1;
	}
	if (hi - lo > o.limit)
		hi = lo + o.limit;
	size_t failed = 0;
	for (size_t i = lo; i < hi; i++) {
		void *buf = NULL;
		size_t len = 0;
		struct lvd_packrec rec = {0};
		char where[4200];
		snprintf(where, sizeof where, "%s: record %zu", argv[first], i);
		if (lvd_rec_read(r, i, &buf, &len, &err) || lvd_packrec_decode(&rec, buf, len, where, &err)) {
			lvd_error_log("%s", err.msg);
			failed++;
		} else if (viz_record(&rec, &o, &err)) {
			/* a corrupt or missing image: name the shard and sample, go on with the rest */
			lvd_error_log("%s '%s': %s", where, rec.id, err.msg);
			failed++;
		} else {
			files += rec.W;
		}
		free(buf);
		lvd_packrec_free(&rec);
	}
	lvd_info("wrote %zu PNG(s) to %s", files, o.out);
	if (failed)
		lvd_error_log("%zu sample(s) not drawn (named above)", failed);
	status = failed ? 1 : 0;
out:
	lvd_rec_close(r);
	return status;
}
