/* sd-attnmap export — write the maps of .lvdm shards in the official Lavender per-word
 * layout (docs/attnmap.md "export"; the rules are lib/lavender/official_maps.h). */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"
#include "common/cli.h"
#include "common/shardrun.h"
#include "core/alloc.h"
#include "core/log.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "lavender/attnmap.h"
#include "lavender/mapsrec.h"
#include "lavender/official_maps.h"
#include "shards.h"

static const char USAGE[] = "sd-attnmap export --maps maps/|SHARD.lvdm --out OFFICIAL_DIR [options]";
static const char DESC[] =
	"Writes every record's maps in the official Lavender layout, one 8-bit grey file per word:\n"
	"  OFFICIAL_DIR/<image file name>/lpm_attention/<stem>/attention_<word>.png\n"
	"where <image file name> is the base name of the record's image_file and <word> the\n"
	"word as CLIP's decode() gives it (lower case); a word's map is the mean of its CLIP\n"
	"tokens' maps, repeated words merged (as lvd-pack does). Words the official loader\n"
	"cannot key back (holding '_', '.' or '/', e.g. punctuation) are skipped. Values are\n"
	"round(255*v/max) per map (--norm max, as prompt-to-prompt) or round(255*v) (--norm\n"
	"none). --size N resamples to NxN (bilinear, as run's grid resize; the official\n"
	"trainer expects 32); --size native keeps the record's grid. PNG is lossless; --jpeg\n"
	"writes the official JPEG (quality 100, grey), which is lossy (a few grey levels).\n"
	"OFFICIAL_DIR must not exist or be empty; OFFICIAL_DIR/export.json records the options.\n"
	"'sd-attnmap import' reads the result back.";

enum { O_MAPS, O_OUT, O_SIZE, O_FORMAT, O_JPEG, O_NORM, O_ID, O_KEEP_GOING };
static const struct lvd_cli_opt OPTS[] = {
	[O_MAPS] = {"maps", 0, "PATH", "sd-attnmap output folder (attn-*.lvdm) or one shard (required)"},
	[O_OUT] = {"out", 'o', "DIR", "root of the official layout to write (new or empty; required)"},
	[O_SIZE] = {"size", 0, "N|native", "maps resampled to NxN (default 32, the official size), or the record's grid"},
	[O_FORMAT] = {"format", 0, "png|jpg", "file format (default png: lossless)"},
	[O_JPEG] = {"jpeg", 0, NULL, "same as --format jpg: the official JPEG, quality 100, lossy"},
	[O_NORM] = {"norm", 0, "max|none", "8-bit scale: 255*v/max per map (default) or 255*v clamped to [0, 1]"},
	[O_ID] = {"id", 0, "ID", "only the record with this id"},
	[O_KEEP_GOING] = {"keep-going", 'k', NULL, "exit 0 even when records could not be written"},
	{0},
};

struct opts {
	const char *maps, *out, *id;
	int size;             /* 0 = native */
	int jpeg, norm, keep_going;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	if (key == 'o')
		key = 256 + O_OUT;
	if (key == 'k')
		key = 256 + O_KEEP_GOING;
	switch (key - 256) {
	case O_MAPS: o->maps = arg; return 0;
	case O_OUT: o->out = arg; return 0;
	case O_ID: o->id = arg; return 0;
	case O_SIZE:
		if (!strcmp(arg, "native")) {
			o->size = 0;
			return 0;
		}
		return lvd_cli_int(arg, 1, 1024, "--size", &o->size);
	case O_FORMAT:
		if (!strcmp(arg, "png"))
			o->jpeg = 0;
		else if (!strcmp(arg, "jpg") || !strcmp(arg, "jpeg"))
			o->jpeg = 1;
		else
			return lvd_cli_usage_error("--format: '%s' is not png or jpg", arg);
		return 0;
	case O_JPEG: o->jpeg = 1; return 0;
	case O_NORM:
		if (!strcmp(arg, "max"))
			o->norm = LVD_OFFICIAL_NORM_MAX;
		else if (!strcmp(arg, "none"))
			o->norm = LVD_OFFICIAL_NORM_NONE;
		else
			return lvd_cli_usage_error("--norm: '%s' is not max or none", arg);
		return 0;
	case O_KEEP_GOING: o->keep_going = 1; return 0;
	}
	return lvd_cli_usage_error("unhandled option");
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* 1 when dir is missing or empty. */
static int dir_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return !lvd_path_is_file(dir) && access(dir, F_OK) != 0;
	struct dirent *e;
	int empty = 1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = 0;
	closedir(d);
	return empty;
}

struct seen {
	char **img, **id;
	size_t n, cap;
};

/* The id that already exported image name `img`, or NULL (then records it). */
static const char *seen_add(struct seen *s, const char *img, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->img[i], img))
			return s->id[i];
	if (s->n == s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 64;
		char **a = lvd_realloc_array(s->img, nc, sizeof *a);
		if (a)
			s->img = a;
		char **b = a ? lvd_realloc_array(s->id, nc, sizeof *b) : NULL;
		if (!b)
			return NULL; /* cannot track: no check (out of memory is reported elsewhere) */
		s->id = b;
		s->cap = nc;
	}
	s->img[s->n] = lvd_strdup(img);
	s->id[s->n] = lvd_strdup(id);
	if (s->img[s->n] && s->id[s->n])
		s->n++;
	return NULL;
}

/* One record: returns 0 or an error in err; *files += files written. */
static int export_one(const struct opts *o, const struct lvd_mapsrec *r, struct seen *seen, uint64_t *files,
		      uint64_t *skipped_words, struct lvd_error *err)
{
	const char *img = r->image_file ? base_name(r->image_file) : "";
	if (!img[0])
		return lvd_error_set(err, LVD_ERR_INVALID, "record '%s' has no image file name", r->id);
	const char *prev = seen_add(seen, img, r->id);
	if (prev)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "record '%s': image file name '%s' was already exported for record '%s' (one "
				     "folder per image file name)", r->id, img, prev);
	struct lvd_official_word *w = NULL;
	size_t nw = 0;
	uint32_t skipped = 0;
	int rc = lvd_official_words(&w, &nw, &skipped, r, err);
	if (rc)
		return rc;
	*skipped_words += skipped;
	int gw = o->size ? o->size : r->grid_w, gh = o->size ? o->size : r->grid_h;
	size_t plane = (size_t)gw * (size_t)gh;
	float *rs = lvd_alloc_array(plane, sizeof *rs);
	uint8_t *px = lvd_alloc_array(plane, 1);
	if (!rs || !px)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "record '%s'", r->id);
	for (size_t i = 0; i < nw && !rc; i++) {
		const float *src = w[i].map;
		if (gw != r->grid_w || gh != r->grid_h) {
			lvd_attnmap_resize_bilinear(rs, w[i].map, 1, r->grid_h, r->grid_w, gh, gw);
			src = rs;
		}
		lvd_official_quantize(px, src, plane, (enum lvd_official_norm)o->norm);
		if (!(rc = lvd_official_write(o->out, img, w[i].key, px, gw, gh,
					      o->jpeg ? LVD_OFFICIAL_JPEG : LVD_OFFICIAL_PNG, err)))
			(*files)++;
	}
	free(rs);
	free(px);
	lvd_official_words_free(w, nw);
	return rc;
}

int cmd_export(int argc, char **argv)
{
	lvd_log_set_prog("sd-attnmap export"); /* messages and usage hints name the subcommand */
	struct opts o = {0};
	o.size = 32;
	int first, rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!o.maps || !o.out)
		return lvd_cli_usage_error("--maps and --out are required");
	struct lvd_error err = {0};
	char **paths = NULL;
	size_t np = 0;
	if (am_list_shards(o.maps, &paths, &np, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	if (!dir_empty(o.out)) {
		lvd_error_log("--out '%s' exists and is not empty", o.out);
		fprintf(stderr, "hint: export into a new folder (the official loader merges every file it finds)\n");
		am_free_list(paths, np);
		return 1;
	}
	if (lvd_mkdir_p(o.out, &err)) {
		lvd_error_log("%s", err.msg);
		am_free_list(paths, np);
		return 1;
	}
	/* provenance: OUT/export.json (a file, so the loader, which looks for image folders, ignores it) */
	{
		char pj[4096];
		snprintf(pj, sizeof pj, "%s/export.json", o.out);
		json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:s, s:{s:s?, s:s, s:s, s:s?}}", "tool", "sd-attnmap", "command",
				      "export", "version", LVD_VERSION, "argv", lvd_run_argv_json(argc, argv), "maps", o.maps,
				      "params", "size", o.size ? NULL : "native", "format", o.jpeg ? "jpg" : "png", "norm",
				      o.norm == LVD_OFFICIAL_NORM_NONE ? "none" : "max", "id", o.id);
		if (j && o.size)
			json_object_set_new(json_object_get(j, "params"), "size", json_integer(o.size));
		char *txt = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
		json_decref(j);
		if (!txt || lvd_file_write_atomic(pj, txt, strlen(txt), &err)) {
			lvd_error_log("%s", err.msg[0] ? err.msg : "export.json: out of memory");
			free(txt);
			am_free_list(paths, np);
			return 1;
		}
		free(txt);
	}
	struct seen seen = {0};
	uint64_t records = 0, bad = 0, files = 0, skipped_words = 0;
	int fatal = 0, found = 0;
	for (size_t s = 0; s < np && !fatal; s++) {
		struct lvd_rec_reader *r = NULL;
		if (lvd_rec_open(&r, paths[s], LVD_REC_KIND_MAPS, &err)) {
			lvd_error_log("%s", err.msg);
			fatal = 1;
			break;
		}
		for (size_t i = 0; i < lvd_rec_count(r); i++) {
			if (o.id && strcmp(lvd_rec_id(r, i), o.id))
				continue;
			found = 1;
			void *buf = NULL;
			size_t len = 0;
			struct lvd_mapsrec rec = {0};
			char where[4200];
			snprintf(where, sizeof where, "%s: record %zu ('%s')", paths[s], i, lvd_rec_id(r, i));
			if (lvd_rec_read(r, i, &buf, &len, &err) || lvd_mapsrec_decode(&rec, buf, len, where, &err)) {
				lvd_error_log("%s", err.msg);
				bad++;
			} else if (export_one(&o, &rec, &seen, &files, &skipped_words, &err)) {
				lvd_error_log("%s", err.msg);
				bad++;
				if (err.code == LVD_ERR_IO || err.code == LVD_ERR_NOMEM)
					fatal = 1;
			} else {
				records++;
			}
			lvd_mapsrec_free(&rec);
			free(buf);
			if (fatal)
				break;
		}
		lvd_rec_close(r);
	}
	for (size_t i = 0; i < seen.n; i++) {
		free(seen.img[i]);
		free(seen.id[i]);
	}
	free(seen.img);
	free(seen.id);
	am_free_list(paths, np);
	if (!fatal && o.id && !found) {
		lvd_error_log("no record with id '%s' in '%s'", o.id, o.maps);
		return 1;
	}
	lvd_info("summary: %llu records exported, %llu files written, %llu words skipped (no file name the loader "
		 "keys back), %llu records failed",
		 (unsigned long long)records, (unsigned long long)files, (unsigned long long)skipped_words,
		 (unsigned long long)bad);
	if (fatal)
		return 1;
	if (bad && !o.keep_going) {
		lvd_error_log("%llu record(s) could not be exported (use --keep-going to accept)",
			      (unsigned long long)bad);
		return 1;
	}
	return 0;
}
