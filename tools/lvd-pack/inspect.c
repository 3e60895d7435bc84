/* lvd-pack inspect — print packed samples as JSON lines (docs/pack.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "maps.h"
#include "common/cli.h"
#include "core/log.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "lavender/packrec.h"
#include "text/llama_tok.h"

static const char USAGE[] = "lvd-pack inspect SHARD.lvdp|pack/ [--id ID] [--model VLM_DIR] [--full]";
static const char DESC[] =
	"Prints one JSON object per sample on stdout (a folder stands for its *.lvdp shards in\n"
	"name order; --header prints each shard's header before its records): id, token and label counts, tiling\n"
	"(MiniCPM-V records: model and slicing: slice grid, query_num, per picture its patch grid and\n"
	"image_bound), the\n"
	"matched words with their token positions, query rows and target statistics. With\n"
	"--model (the VLM folder or a tokenizer file) the text is decoded and the matched\n"
	"words are marked [[like this]]. --full adds the token ids, labels and target maps.";

enum { O_ID, O_MODEL, O_FULL, O_HEADER };
static const struct lvd_cli_opt OPTS[] = {
	[O_ID] = {"id", 0, "ID", "only the sample with this id"},
	[O_MODEL] = {"model", 0, "PATH", "VLM folder or tokenizer.json/.model to decode the text"},
	[O_FULL] = {"full", 0, NULL, "include ids, labels, masks and targets"},
	[O_HEADER] = {"header", 0, NULL, "print the shard's provenance header first"},
	{0},
};

struct opts {
	const char *id, *model;
	int full, header;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	switch (key - 256) {
	case O_ID: o->id = arg; return 0;
	case O_MODEL: o->model = arg; return 0;
	case O_FULL: o->full = 1; return 0;
	case O_HEADER: o->header = 1; return 0;
	}
	return lvd_cli_usage_error("unhandled option");
}

static json_t *u32_array(const uint32_t *v, uint32_t n)
{
	json_t *a = json_array();
	for (uint32_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(v[i]));
	return a;
}

static json_t *i32_array(const int32_t *v, uint32_t n)
{
	json_t *a = json_array();
	for (uint32_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(v[i]));
	return a;
}

/* Decoded text, and the same with matched words' tokens wrapped in [[ ]]. */
static void add_text(json_t *j, const struct lvd_packrec *r, const struct lvd_llama_tok *tok)
{
	uint8_t *mark = calloc(r->T, 1); /* word index + 1 per token */
	size_t cap = 256, n = 0;
	char *m = malloc(cap);
	if (!mark || !m)
		goto out;
	for (uint32_t w = 0; w < r->W; w++)
		for (uint32_t i = 0; i < r->words[w].n_pos; i++)
			mark[r->words[w].pos[i]] = (uint8_t)(w % 255 + 1);
	char *all = NULL;
	size_t alen = 0;
	struct lvd_error err = {0};
	if (lvd_llama_decode(tok, r->tokens, r->T, 0, &all, &alen, &err)) {
		json_object_set_new(j, "text_error", json_string(err.msg));
		goto out;
	}
	json_object_set_new(j, "text", json_stringn(all, alen));
	free(all);
	/* token by token so marks fall on token boundaries; a piece that is half of a
	 * UTF-8 character decodes to U+FFFD, acceptable in a marked view */
	for (uint32_t t = 0; t <= r->T; t++) {
		int open = t < r->T && mark[t] && (t == 0 || mark[t - 1] != mark[t]);
		int close = t > 0 && mark[t - 1] && (t == r->T || mark[t] != mark[t - 1]);
		char *piece = NULL;
		size_t pl = 0;
		if (t < r->T && lvd_llama_decode(tok, &r->tokens[t], 1, 0, &piece, &pl, &err))
			goto out;
		/* a word starting with a space: keep the space outside the marks */
		size_t lead = (open && pl && piece[0] == ' ') ? 1 : 0;
		size_t need = n + pl + 8;
		if (need > cap) {
			while (cap < need)
				cap *= 2;
			char *nm = realloc(m, cap);
			if (!nm) {
				free(piece);
				goto out;
			}
			m = nm;
		}
		if (close) {
			memcpy(m + n, "]]", 2);
			n += 2;
		}
		if (lead)
			m[n++] = ' ';
		if (open) {
			memcpy(m + n, "[[", 2);
			n += 2;
		}
		if (pl > lead)
			memcpy(m + n, piece + lead, pl - lead);
		n += pl - lead;
		free(piece);
	}
	json_object_set_new(j, "marked", json_stringn(m, n));
out:
	free(mark);
	free(m);
}

static json_t *record_json(const struct lvd_packrec *r, const struct lvd_llama_tok *tok, int full)
{
	uint32_t nl = 0, valid = 0;
	for (uint32_t t = 0; t < r->T; t++)
		nl += r->labels[t] != -100;
	size_t cells = (size_t)r->gh * r->gw;
	for (size_t i = 0; i < cells; i++)
		valid += r->mask[i];
	json_t *words = json_array();
	for (uint32_t w = 0; w < r->W; w++) {
		const struct lvd_packrec_word *x = &r->words[w];
		double sum = 0, mx = 0;
		size_t arg = 0;
		for (size_t i = 0; i < cells; i++) {
			double v = lvd_f16_to_f32(r->targets[w * cells + i]);
			sum += v;
			if (v > mx) {
				mx = v;
				arg = i;
			}
		}
		json_t *wj = json_pack("{s:s, s:o, s:o, s:i, s:f, s:f, s:f, s:[i,i]}", "word", x->key, "positions",
				       u32_array(x->pos, x->n_pos), "queries", u32_array(x->query, x->n_query), "sd_token",
				       x->sd_tok, "map_min", (double)x->min, "map_max", (double)x->max, "target_mean",
				       cells ? sum / (double)valid : 0.0, "target_peak", (int)(arg / r->gw),
				       (int)(arg % r->gw));
		if (full) {
			json_t *t = json_array();
			for (size_t i = 0; i < cells; i++)
				json_array_append_new(t, json_real(lvd_f16_to_f32(r->targets[w * cells + i])));
			json_object_set_new(wj, "target", t);
		}
		json_array_append_new(words, wj);
	}
	json_t *j = json_pack("{s:s, s:i, s:i, s:o, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}, s:s, s:[i,i], s:i, "
			      "s:o}",
			      "id", r->id, "tokens", (int)r->T, "label_tokens", (int)nl, "image_token",
			      r->image_pos == LVD_PACKREC_NO_IMAGE ? json_null() : json_integer(r->image_pos), "tiling",
			      "tiles_h", (int)r->tiles_h, "tiles_w", (int)r->tiles_w, "aspect_id", (int)r->aspect_id,
			      "tile_px", (int)r->tile_px, "patch_px", (int)r->patch_px, "image_w", (int)r->img_w,
			      "image_h", (int)r->img_h, "new_w", (int)r->new_w, "new_h", (int)r->new_h, "targets",
			      (r->flags & LVD_PACKREC_GRID) ? "grid" : "canvas", "grid", (int)r->gh, (int)r->gw,
			      "valid_patches", (int)valid, "words", words);
	if (r->flags & LVD_PACKREC_MCV) {
		/* MiniCPM-V: the slicing instead of the mllama tiling (all 0 there) */
		json_t *pics = json_array();
		for (uint32_t k = 0; k < r->n_pics; k++)
			json_array_append_new(pics, json_pack("{s:i, s:i, s:[i,i]}", "th", (int)r->pics[k].th, "tw",
							      (int)r->pics[k].tw, "bound", (int)r->pics[k].start,
							      (int)r->pics[k].end));
		json_object_del(j, "tiling");
		json_object_set_new(j, "model", json_string("minicpmv"));
		json_object_set_new(j, "slicing",
				    json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:o}", "cols", (int)r->cols, "rows",
					      (int)r->rows, "query_num", (int)r->query_num, "patch_px", (int)r->patch_px,
					      "image_w", (int)r->img_w, "image_h", (int)r->img_h, "pictures", pics));
	}
	if (r->flags & LVD_PACKREC_IMAGE)
		json_object_set_new(j, "image_bytes", json_integer(r->image_len));
	else
		json_object_set_new(j, "image_path", json_stringn((const char *)r->image, r->image_len));
	if (r->flags & LVD_PACKREC_RAW)
		json_object_set_new(j, "raw_grid", json_pack("[i,i]", (int)r->rh, (int)r->rw));
	if (tok)
		add_text(j, r, tok);
	if (full) {
		json_object_set_new(j, "ids", i32_array(r->tokens, r->T));
		json_object_set_new(j, "labels", i32_array(r->labels, r->T));
		json_t *m = json_array();
		for (size_t i = 0; i < cells; i++)
			json_array_append_new(m, json_integer(r->mask[i]));
		json_object_set_new(j, "mask", m);
	}
	return j;
}

/* Prints the records of the shard at path (only o->id's when set). Returns 0, 1 after
 * printing an error, or 3 when --id is not in this shard. */
static int inspect_shard(const char *path, const struct opts *o, const struct lvd_llama_tok *tok)
{
	struct lvd_error err = {0};
	struct lvd_rec_reader *r = NULL;
	int status = 1;
	if (lvd_rec_open(&r, path, LVD_REC_KIND_PACK, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	size_t lo = 0, hi = lvd_rec_count(r);
	if (o->id) {
		if (lvd_rec_find(r, o->id, &lo, &err)) {
			lvd_rec_close(r);
			return 3;
		}
		hi = lo + 1;
	}
	if (o->header)
		printf("%s\n", lvd_rec_header(r, NULL));
	for (size_t i = lo; i < hi; i++) {
		void *buf = NULL;
		size_t len = 0;
		struct lvd_packrec rec = {0};
		char where[4200];
		snprintf(where, sizeof where, "%s: record %zu", path, i);
		if (lvd_rec_read(r, i, &buf, &len, &err) || lvd_packrec_decode(&rec, buf, len, where, &err) ||
		    lvd_rec_check_id(r, i, rec.id, where, &err)) {
			lvd_error_log("%s", err.msg);
			free(buf);
			lvd_packrec_free(&rec);
			goto out;
		}
		json_t *j = record_json(&rec, tok, o->full);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(j);
		free(buf);
		lvd_packrec_free(&rec);
	}
	status = 0;
out:
	lvd_rec_close(r);
	return status;
}

int cmd_inspect(int argc, char **argv)
{
	lvd_log_set_prog("lvd-pack inspect"); /* messages and usage hints name the subcommand */
	struct opts o = {0};
	int first, rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first + 1 != argc)
		return lvd_cli_usage_error("expected one shard file or pack folder");
	struct lvd_error err = {0};
	struct lvd_llama_tok *tok = NULL;
	char **names = NULL;
	size_t n = 0;
	int status = 1, found = 0;
	const char *arg = argv[first];
	int dir = lvd_path_is_dir(arg);
	if (dir && lp_list_ext(arg, ".lvdp", &names, &n, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	if (o.model && lvd_llama_tok_load(&tok, o.model, LVD_LLAMA_SCHEME_MLLAMA, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	for (size_t i = 0; i < (dir ? n : 1); i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", arg, dir ? names[i] : "");
		rc = inspect_shard(dir ? path : arg, &o, tok);
		if (rc == 1)
			goto out;
		found |= rc == 0;
		if (o.id && rc == 0)
			break;
	}
	if (o.id && !found) {
		lvd_error_log("%s: no record with id '%s'", arg, o.id);
		goto out;
	}
	status = fflush(stdout) ? 1 : 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	lvd_llama_tok_free(tok);
	return status;
}
