/* sd-attnmap viz — PNG heat-map overlays of one record's word maps. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmds.h"
#include "common/cli.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/parse.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/splits.h"
#include "lavender/attnmap.h"
#include "lavender/mapsrec.h"
#include "shards.h"

static const char USAGE[] = "sd-attnmap viz MAPS_DIR|SHARD.lvdm --id ID --out DIR [--images ROOT] [--size N]";
static const char DESC[] =
	"Writes, for the record ID, one PNG per word (DIR/ID-wNN-WORD.png): the word's map (the\n"
	"mean of its tokens' maps), upsampled bilinearly to the image, min-max normalised and\n"
	"blended as a heat colour over the image; plus DIR/ID-strip.png: the image followed by\n"
	"every word's overlay, left to right in word order. The image is found from the\n"
	"record's image path under --images (default: the 'images' or manifest folder named in\n"
	"MAPS_DIR/run.json); without it the overlays are drawn on grey. The words and files\n"
	"are listed on stdout.";

enum { O_ID, O_OUT, O_IMAGES, O_SIZE };
static const struct lvd_cli_opt OPTS[] = {
	[O_ID] = {"id", 0, "ID", "record to draw (required)"},
	[O_OUT] = {"out", 'o', "DIR", "output folder (required)"},
	[O_IMAGES] = {"images", 0, "DIR", "root for the record's image path"},
	[O_SIZE] = {"size", 0, "N", "longer side of each picture in pixels (default 256)"},
	{0},
};

struct opts {
	const char *id, *out, *images;
	int size;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	if (key == 'o')
		key = 256 + O_OUT;
	switch (key - 256) {
	case O_ID: o->id = arg; return 0;
	case O_OUT: o->out = arg; return 0;
	case O_IMAGES: o->images = arg; return 0;
	case O_SIZE:
		return lvd_cli_int(arg, 16, 4096, "--size", &o->size);
	}
	return lvd_cli_usage_error("unhandled option");
}

/* A blue -> cyan -> green -> yellow -> red ramp for v in [0, 1]. */
static void heat(float v, uint8_t rgb[3])
{
	static const float stops[5][3] = {{0, 0, 255}, {0, 255, 255}, {0, 255, 0}, {255, 255, 0}, {255, 0, 0}};
	if (!(v >= 0))
		v = 0;
	if (v > 1)
		v = 1;
	float s = v * 4;
	int i = (int)s;
	if (i > 3)
		i = 3;
	float f = s - (float)i;
	for (int c = 0; c < 3; c++)
		rgb[c] = (uint8_t)(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]) + 0.5f);
}

/* Root for image paths from MAPS_DIR/run.json ("images", else the manifest's folder);
 * for a shard file, the run.json beside it (in a folder of --shard i/N runs, split 0's
 * run-00000-of-NNNNN.json: the splits share their inputs). */
static char *root_from_run_json(const char *maps)
{
	char p[4200];
	const char *sl = strrchr(maps, '/');
	if (lvd_path_is_dir(maps))
		snprintf(p, sizeof p, "%s", maps);
	else if (sl)
		snprintf(p, sizeof p, "%.*s", (int)(sl - maps), maps);
	else
		snprintf(p, sizeof p, ".");
	char **files = NULL;
	size_t nf = 0;
	struct lvd_error e = {0};
	json_t *j = lvd_split_list(p, "run", ".json", &files, &nf, &e) ? NULL : json_load_file(files[0], 0, NULL);
	lvd_split_list_free(files, nf);
	if (!j)
		return NULL;
	char *out = NULL;
	const char *im = json_string_value(json_object_get(j, "images"));
	const char *man = json_string_value(json_object_get(j, "manifest"));
	if (im) {
		out = lvd_strdup(im);
	} else if (man) {
		const char *ms = strrchr(man, '/');
		out = ms ? strndup(man, (size_t)(ms - man)) : lvd_strdup(".");
	}
	json_decref(j);
	return out;
}

static void safe_name(char *dst, size_t cap, const char *s)
{
	size_t n = 0;
	for (; *s && n + 1 < cap && n < 40; s++) {
		unsigned char c = (unsigned char)*s;
		dst[n++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ? (char)c : '_';
	}
	dst[n] = 0;
}

static int find_record(const char *where, const char *id, struct lvd_mapsrec *rec, struct lvd_error *err)
{
	char **paths = NULL;
	size_t n = 0;
	int rc = am_list_shards(where, &paths, &n, err);
	if (rc)
		return rc;
	rc = LVD_ERR_NOTFOUND;
	for (size_t i = 0; i < n && rc == LVD_ERR_NOTFOUND; i++) {
		struct lvd_rec_reader *r = NULL;
		size_t k;
		if ((rc = lvd_rec_open(&r, paths[i], LVD_REC_KIND_MAPS, err)))
			break;
		rc = LVD_ERR_NOTFOUND;
		if (!lvd_rec_find(r, id, &k, err)) {
			void *buf = NULL;
			size_t len = 0;
			char w[4200];
			snprintf(w, sizeof w, "%s: record %zu ('%s')", paths[i], k, id);
			if (!(rc = lvd_rec_read(r, k, &buf, &len, err)))
				rc = lvd_mapsrec_decode(rec, buf, len, w, err);
			free(buf);
		}
		lvd_rec_close(r);
	}
	if (rc == LVD_ERR_NOTFOUND)
		lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: no record with id '%s'", where, id);
	am_free_list(paths, n);
	return rc;
}

int cmd_viz(int argc, char **argv)
{
	lvd_log_set_prog("sd-attnmap viz"); /* messages and usage hints name the subcommand */
	struct opts o = {0};
	o.size = 256;
	int first, rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first != argc - 1)
		return lvd_cli_usage_error("give exactly one maps folder or shard");
	if (!o.id || !o.out)
		return lvd_cli_usage_error("--id and --out are required");
	const char *maps = argv[first];
	struct lvd_error err = {0};
	struct lvd_mapsrec rec;
	memset(&rec, 0, sizeof rec);
	if (find_record(maps, o.id, &rec, &err)) {
		lvd_error_log("%s", err.msg);
		lvd_mapsrec_free(&rec);
		return 1;
	}
	int status = 1;
	struct lvd_image img = {0}, base = {0}, tile = {0}, strip = {0};
	float *wmap = NULL, *up = NULL;
	char *root = o.images ? lvd_strdup(o.images) : root_from_run_json(maps);

	/* the base picture: the image (or grey) at the display size, aspect as the SD input */
	int W, H;
	if (rec.sd_w >= rec.sd_h) {
		W = o.size;
		H = (int)((int64_t)o.size * rec.sd_h / rec.sd_w);
	} else {
		H = o.size;
		W = (int)((int64_t)o.size * rec.sd_w / rec.sd_h);
	}
	if (H < 1)
		H = 1;
	if (W < 1)
		W = 1;
	char path[4400];
	int have_img = 0;
	if (rec.image_file[0]) {
		if (rec.image_file[0] == '/' || !root)
			snprintf(path, sizeof path, "%s", rec.image_file);
		else
			snprintf(path, sizeof path, "%s/%s", root, rec.image_file);
		if (lvd_image_load(&img, path, LVD_ALPHA_BLACK, &err))
			lvd_warn("%s; drawing on grey", err.msg);
		else if (lvd_image_resize(&base, &img, W, H, LVD_RESAMPLE_BICUBIC, 1, &err))
			lvd_warn("%s; drawing on grey", err.msg);
		else
			have_img = 1;
	}
	if (!have_img) {
		lvd_image_free(&base);
		base.w = W;
		base.h = H;
		base.c = 3;
		if (!(base.px = lvd_alloc_array((size_t)W * H, 3)))
			goto out;
		memset(base.px, 128, (size_t)W * H * 3);
	}
	if (lvd_mkdir_p(o.out, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	size_t gplane = (size_t)rec.grid_w * rec.grid_h, pix = (size_t)W * H;
	wmap = lvd_alloc_array(gplane, sizeof(float));
	up = lvd_alloc_array(pix, sizeof(float));
	tile.w = W;
	tile.h = H;
	tile.c = 3;
	tile.px = lvd_alloc_array(pix, 3);
	strip.w = W * (int)(rec.n_words + 1);
	strip.h = H;
	strip.c = 3;
	strip.px = lvd_alloc_array((size_t)strip.w * H, 3);
	if (!wmap || !up || !tile.px || !strip.px) {
		lvd_error_log("out of memory");
		goto out;
	}
	for (int y = 0; y < H; y++)
		memcpy(strip.px + (size_t)y * strip.w * 3, base.px + (size_t)y * W * 3, (size_t)W * 3);
	char safe_id[64];
	safe_name(safe_id, sizeof safe_id, rec.id);
	for (uint32_t w = 0; w < rec.n_words; w++) {
		int cnt = 0;
		memset(wmap, 0, gplane * sizeof(float));
		for (uint32_t t = 0; t < rec.T; t++) {
			if (rec.word_idx[t] != (int32_t)w)
				continue;
			for (size_t i = 0; i < gplane; i++)
				wmap[i] += lvd_f16_to_f32(rec.maps[t * gplane + i]);
			cnt++;
		}
		if (cnt)
			for (size_t i = 0; i < gplane; i++)
				wmap[i] /= (float)cnt;
		lvd_attnmap_resize_bilinear(up, wmap, 1, rec.grid_h, rec.grid_w, H, W);
		float mn = up[0], mx = up[0];
		for (size_t i = 0; i < pix; i++) {
			if (up[i] < mn)
				mn = up[i];
			if (up[i] > mx)
				mx = up[i];
		}
		float range = mx > mn ? mx - mn : 1;
		for (size_t i = 0; i < pix; i++) {
			uint8_t c[3];
			heat((up[i] - mn) / range, c);
			for (int k = 0; k < 3; k++)
				tile.px[i * 3 + (size_t)k] = (uint8_t)((base.px[i * 3 + (size_t)k] + c[k] + 1) / 2);
		}
		char word[64];
		safe_name(word, sizeof word, rec.words[w]);
		snprintf(path, sizeof path, "%s/%s-w%02u-%s.png", o.out, safe_id, w, word);
		if (lvd_image_save_png(&tile, path, &err)) {
			lvd_error_log("%s", err.msg);
			goto out;
		}
		printf("%u\t%s\t%s\n", w, rec.words[w], path);
		for (int y = 0; y < H; y++)
			memcpy(strip.px + ((size_t)y * strip.w + (size_t)(w + 1) * W) * 3, tile.px + (size_t)y * W * 3,
			       (size_t)W * 3);
	}
	snprintf(path, sizeof path, "%s/%s-strip.png", o.out, safe_id);
	if (lvd_image_save_png(&strip, path, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	printf("strip\t\t%s\n", path);
	status = 0;
out:
	free(root);
	free(wmap);
	free(up);
	lvd_image_free(&img);
	lvd_image_free(&base);
	lvd_image_free(&tile);
	lvd_image_free(&strip);
	lvd_mapsrec_free(&rec);
	return status;
}
