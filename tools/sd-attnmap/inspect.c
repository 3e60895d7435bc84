/* sd-attnmap inspect — print .lvdm records as JSON lines. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmds.h"
#include "common/cli.h"
#include "core/log.h"
#include "io/container.h"
#include "io/safetensors.h"
#include "lavender/mapsrec.h"
#include "shards.h"

static const char USAGE[] = "sd-attnmap inspect SHARD.lvdm|MAPS_DIR... [--id ID] [--maps] [--header]";
static const char DESC[] =
	"Prints one JSON object per record on stdout: shard, record number, id, manifest index,\n"
	"text, words, tokens (ids, strings, byte spans, word indices), image/SD/grid sizes, and\n"
	"per-token statistics [min, max, mean, sum]; --maps adds the fp16 maps as nested lists\n"
	"[T][GH][GW]. A folder stands for its attn-*.lvdm shards in order. Every record is\n"
	"validated (container checksums and payload layout).";

enum { O_ID, O_MAPS, O_HEADER };
static const struct lvd_cli_opt OPTS[] = {
	[O_ID] = {"id", 0, "ID", "only the record with this id"},
	[O_MAPS] = {"maps", 0, NULL, "include the map values"},
	[O_HEADER] = {"header", 0, NULL, "print each shard's header JSON instead of records"},
	{0},
};

struct opts {
	const char *id;
	int maps, header;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	switch (key - 256) {
	case O_ID: o->id = arg; return 0;
	case O_MAPS: o->maps = 1; return 0;
	case O_HEADER: o->header = 1; return 0;
	}
	return lvd_cli_usage_error("unhandled option");
}

static json_t *record_json(const struct lvd_mapsrec *r, const char *shard, size_t i, int with_maps)
{
	json_t *o = json_object();
	json_t *a;
	json_object_set_new(o, "shard", json_string(shard));
	json_object_set_new(o, "record", json_integer((json_int_t)i));
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "index", json_integer((json_int_t)r->index));
	json_object_set_new(o, "text", json_string(r->text));
	json_object_set_new(o, "truncated", json_boolean(r->truncated));
	a = json_array();
	for (uint32_t w = 0; w < r->n_words; w++)
		json_array_append_new(a, json_string(r->words[w]));
	json_object_set_new(o, "words", a);
	json_t *toks = json_array();
	for (uint32_t t = 0; t < r->T; t++) {
		const struct lvd_attnmap_stats *s = &r->stats[t];
		json_t *tk = json_pack("{s:i, s:s, s:[i,i], s:i, s:[f,f,f,f]}", "id", r->tokens[t], "str",
				       r->token_strs[t], "span", (int)r->spans[2 * t], (int)r->spans[2 * t + 1], "word",
				       r->word_idx[t], "stats", (double)s->min, (double)s->max, (double)s->mean,
				       (double)s->sum);
		json_array_append_new(toks, tk);
	}
	json_object_set_new(o, "tokens", toks);
	json_object_set_new(o, "image", json_pack("[i,i]", r->img_w, r->img_h));
	json_object_set_new(o, "image_file", json_string(r->image_file));
	json_object_set_new(o, "sd_size", json_pack("[i,i]", r->sd_w, r->sd_h));
	json_object_set_new(o, "grid", json_pack("[i,i]", r->grid_w, r->grid_h));
	if (with_maps) {
		json_t *m = json_array();
		size_t k = 0;
		for (uint32_t t = 0; t < r->T; t++) {
			json_t *plane = json_array();
			for (int y = 0; y < r->grid_h; y++) {
				json_t *row = json_array();
				for (int x = 0; x < r->grid_w; x++)
					json_array_append_new(row, json_real(lvd_f16_to_f32(r->maps[k++])));
				json_array_append_new(plane, row);
			}
			json_array_append_new(m, plane);
		}
		json_object_set_new(o, "maps", m);
	}
	return o;
}

static int inspect_shard(const char *path, const struct opts *o, int *found)
{
	struct lvd_error err = {0};
	struct lvd_rec_reader *r = NULL;
	if (lvd_rec_open(&r, path, LVD_REC_KIND_MAPS, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	if (o->header) {
		printf("%s\n", lvd_rec_header(r, NULL));
		lvd_rec_close(r);
		return 0;
	}
	size_t begin = 0, end = lvd_rec_count(r);
	if (o->id) {
		if (lvd_rec_find(r, o->id, &begin, &err)) {
			lvd_rec_close(r);
			return 0;
		}
		end = begin + 1;
	}
	int rc = 0;
	for (size_t i = begin; i < end; i++) {
		void *buf = NULL;
		size_t len = 0;
		struct lvd_mapsrec rec;
		char where[4200];
		snprintf(where, sizeof where, "%s: record %zu ('%s')", path, i, lvd_rec_id(r, i));
		if (lvd_rec_read(r, i, &buf, &len, &err) || lvd_mapsrec_decode(&rec, buf, len, where, &err) ||
		    lvd_rec_check_id(r, i, rec.id, where, &err)) {
			lvd_error_log("%s", err.msg);
			rc = 1;
		} else {
			json_t *j = record_json(&rec, path, i, o->maps);
			char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(8));
			if (s)
				printf("%s\n", s);
			free(s);
			json_decref(j);
			(*found)++;
		}
		lvd_mapsrec_free(&rec);
		free(buf);
	}
	lvd_rec_close(r);
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	lvd_log_set_prog("sd-attnmap inspect"); /* messages and usage hints name the subcommand */
	struct opts o = {0};
	int first, rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc)
		return lvd_cli_usage_error("no shard or folder given");
	int status = 0, found = 0;
	for (int a = first; a < argc; a++) {
		char **paths = NULL;
		size_t n = 0;
		struct lvd_error err = {0};
		if (am_list_shards(argv[a], &paths, &n, &err)) {
			lvd_error_log("%s", err.msg);
			status = 1;
			continue;
		}
		for (size_t i = 0; i < n; i++)
			if (inspect_shard(paths[i], &o, &found))
				status = 1;
		am_free_list(paths, n);
	}
	if (o.id && !found && !o.header) {
		lvd_error_log("no record with id '%s'", o.id);
		status = 1;
	}
	fflush(stdout);
	return status;
}
