/* lvd-sft export and inspect: a checkpoint's PEFT adapter + Aligner, or with --merge (and
 * for --full runs) a complete transformers folder + Aligner (also RUN/final/); a
 * checkpoint as JSON. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "common/cli.h"
#include "common/shardrun.h"
#include "core/log.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "sft.h"

int export_to(struct trainer *t, const char *dir, const struct export_cfg *ec, struct lvd_error *err)
{
	static const struct export_cfg final_cfg = {0, 0, 1, 0};
	char p[4300], fin[4200];
	if (!dir) {
		snprintf(fin, sizeof fin, "%s/final", t->o->out);
		dir = fin;
	}
	if (!ec)
		ec = &final_cfg;
	int rc = t->mo->export(t, dir, ec, err);
	if (rc)
		return rc;
	snprintf(p, sizeof p, "%s/aligner.safetensors", dir);
	if ((rc = lvd_aligner_save(&t->lcfg.aligner, t->al, p, err)))
		return rc;
	char js[512];
	snprintf(js, sizeof js, "{\"d_in\": %d, \"d_h\": %d, \"n_layers\": %d, \"step\": %lld}\n",
		 t->lcfg.aligner.d_in, t->lcfg.aligner.d_h, t->lcfg.n_captured, (long long)t->step);
	snprintf(p, sizeof p, "%s/aligner.json", dir);
	return lvd_file_write_atomic(p, js, strlen(js), err);
}

/* ---- export ----------------------------------------------------------------------- */

static const char EXPORT_USAGE[] =
	"lvd-sft export RUN_DIR/ckpt-NNNNNN --model VLM_DIR --out DIR [--merge] [--dtype bf16|f32]";
static const char EXPORT_DESC[] =
	"Writes the checkpoint's LoRA block as a PEFT adapter (adapter_model.safetensors +\n"
	"adapter_config.json) and its Aligner (aligner.safetensors + aligner.json) into DIR,\n"
	"as `run` does for RUN_DIR/final/. With --merge, and always for a --full checkpoint,\n"
	"DIR becomes a complete transformers folder instead: config.json, sharded\n"
	"model-0000i-of-0000n.safetensors + model.safetensors.index.json (LoRA merged:\n"
	"W + (alpha/r) B A), the model folder's tokenizer, processor, chat template and\n"
	"generation files, and the Aligner; it is written into DIR.tmp and renamed, and an\n"
	"existing non-empty DIR is refused. The run's configuration comes from the\n"
	"checkpoint's state.json; --model must be the folder the run trained on (MiniCPM-V:\n"
	"the hub layout, its remote-code *.py files copied too).";
enum { E_MODEL, E_OUT, E_MERGE, E_DTYPE, E_SHARD };
static const struct lvd_cli_opt EXPORT_OPTS[] = {
	[E_MODEL] = {"model", 0, "DIR", "VLM folder the run trained on (required)"},
	[E_OUT] = {"out", 'o', "DIR", "output folder (required)"},
	[E_MERGE] = {"merge", 0, NULL, "write a complete transformers folder with the LoRA merged"},
	[E_DTYPE] = {"dtype", 0, "T", "weights of a complete folder: f32 (default) | bf16"},
	[E_SHARD] = {"max-shard-size", 0, "SIZE", "largest shard, bytes or with KB/MB/GB (default 5GB = 5e9 bytes)"},
	{0},
};

struct export_opts {
	const char *model, *out;
	struct export_cfg cfg;
	int dtype_set;
};

/* "5GB", "500MB", "64KB" (powers of 1000, as transformers) or a byte count. */
static int parse_size(const char *arg, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(arg, &end);
	if (end == arg || errno || !(v > 0))
		return -1;
	double mul = 1;
	if (!strcmp(end, "KB") || !strcmp(end, "kB"))
		mul = 1e3;
	else if (!strcmp(end, "MB"))
		mul = 1e6;
	else if (!strcmp(end, "GB"))
		mul = 1e9;
	else if (*end && strcmp(end, "B"))
		return -1;
	if (v * mul < 1 || v * mul > 1e15)
		return -1;
	*out = (uint64_t)(v * mul);
	return 0;
}

static int on_export_opt(int key, const char *arg, void *ctx)
{
	struct export_opts *e = ctx;
	if (key == 'o')
		key = 256 + E_OUT;
	switch (key - 256) {
	case E_MODEL: e->model = arg; return 0;
	case E_OUT: e->out = arg; return 0;
	case E_MERGE: e->cfg.merge = 1; return 0;
	case E_DTYPE:
		if (strcmp(arg, "f32") && strcmp(arg, "bf16"))
			return lvd_cli_usage_error("--dtype: '%s' is not f32 or bf16", arg);
		e->cfg.bf16 = !strcmp(arg, "bf16");
		e->dtype_set = 1;
		return 0;
	case E_SHARD:
		if (parse_size(arg, &e->cfg.max_shard))
			return lvd_cli_usage_error("--max-shard-size: '%s' is not a size (e.g. 5GB, 500MB, 1000000)", arg);
		return 0;
	}
	return lvd_cli_usage_error("unhandled option");
}

static const char *jstr(const json_t *o, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : dflt;
}

int cmd_export(int argc, char **argv)
{
	struct export_opts eo = {0};
	int first = 0;
	int rc = lvd_cli_parse(argc, argv, EXPORT_USAGE, EXPORT_DESC, EXPORT_OPTS, on_export_opt, &eo, &first);
	if (rc == -1)
		return 0;
	if (rc)
		return rc;
	if (first != argc - 1)
		return lvd_cli_usage_error("export takes one checkpoint folder");
	if (!eo.model)
		return lvd_cli_usage_error("--model DIR is required");
	if (!eo.out)
		return lvd_cli_usage_error("--out DIR is required");
	const char *ckpt = argv[first];
	struct lvd_error err = {0};
	char p[4300];
	snprintf(p, sizeof p, "%s/state.json", ckpt);
	json_error_t je;
	json_t *st = json_load_file(p, 0, &je);
	if (!st) {
		lvd_error_log("cannot read '%s': %s", p, je.text);
		return 1;
	}
	const json_t *po = json_object_get(st, "options");
	struct opts o = {0};
	o.lora_r = (int)json_integer_value(json_object_get(po, "lora_r"));
	o.lora_alpha = json_number_value(json_object_get(po, "lora_alpha"));
	o.lora_dropout = json_number_value(json_object_get(po, "lora_dropout"));
	snprintf(o.lora_targets, sizeof o.lora_targets, "%s", jstr(po, "lora_targets", "q_proj,v_proj"));
	o.seed = (uint64_t)json_integer_value(json_object_get(po, "seed"));
	o.al_depth = jstr(po, "aligner_depth", NULL);
	o.al_norm = jstr(po, "aligner_norm", NULL);
	o.al_act = jstr(po, "aligner_act", NULL);
	o.al_hidden = (int)json_integer_value(json_object_get(po, "aligner_hidden"));
	o.agg = jstr(po, "aggregate", NULL);
	o.layers = jstr(po, "layers", NULL);
	if (o.layers && !strcmp(o.layers, "all"))
		o.layers = NULL;
	o.model = eo.model;
	o.full = json_is_true(json_object_get(po, "full"));
	o.minicpm_map = jstr(po, "minicpm_map", NULL);
	struct lvd_error kerr = {0};
	if (lvd_loader_model_kind(eo.model, &o.model_kind, &kerr)) {
		lvd_error_log("%s", kerr.msg);
		json_decref(st);
		return 1;
	}
	if (strcmp(jstr(po, "model_type", "mllama"), sft_model_of(o.model_kind)->name)) {
		lvd_error_log("%s: the checkpoint trained a %s model, %s is %s", p, jstr(po, "model_type", "mllama"),
			      eo.model, sft_model_of(o.model_kind)->name);
		json_decref(st);
		return 1;
	}
	const char *tr = jstr(po, "train", o.full ? "vision,projector,text,cross" : NULL);
	if (tr && parse_groups(sft_model_of(o.model_kind), tr, &o.train_mask, &err)) {
		lvd_error_log("%s: options.train: %s", p, err.msg);
		json_decref(st);
		return 1;
	}
	if ((eo.dtype_set || eo.cfg.max_shard) && !o.full && !eo.cfg.merge) {
		json_decref(st);
		return lvd_cli_usage_error("--dtype and --max-shard-size need --merge (or a --full checkpoint)");
	}
	int64_t step = json_integer_value(json_object_get(st, "step"));
	struct trainer t = {0};
	t.o = &o;
	t.mo = sft_model_of(o.model_kind);
	t.step = step;
	struct lvd_st *sf = NULL;
	int ret = 1;
	if (o.lora_r < 1 && !o.full) {
		lvd_error_set(&err, LVD_ERR_FORMAT, "%s: no options.lora_r", p);
		goto fail;
	}
	if (t.mo->setup(&t, 0, &err) || t.mo->latt(&t, &err))
		goto fail;
	lvd_aligner_layout(&t.alay, &t.lcfg.aligner);
	t.n_al = t.alay.n_params;
	if (!(t.al = calloc(t.n_al ? t.n_al : 1, sizeof *t.al))) {
		lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
		goto fail;
	}
	snprintf(p, sizeof p, "%s/state.safetensors", ckpt);
	/* the trained tensors (LoRA block; --full: the groups' parameters) over the base's */
	if (lvd_st_open(&sf, p, &err) || t.mo->load_trained(&t, sf, &err) || load_block(sf, "aligner", t.al, t.n_al, &err))
		goto fail;
	if (export_to(&t, eo.out, &eo.cfg, &err))
		goto fail;
	ret = 0;
	goto out;
fail:
	lvd_error_log("%s", err.msg);
out:
	lvd_st_close(sf);
	json_decref(st);
	free(t.al);
	t.mo->free(&t);
	return ret;
}

/* ---- inspect ---------------------------------------------------------------------- */

static const char INSPECT_USAGE[] = "lvd-sft inspect RUN_DIR/ckpt-NNNNNN";
static const char INSPECT_DESC[] =
	"Prints the checkpoint as one JSON object on stdout: its state.json (step, epoch,\n"
	"loader cursor, options) plus \"tensors\": name, elements and L2 norm of each block.";
static const struct lvd_cli_opt INSPECT_OPTS[] = {{0}};

static int on_no_opt(int key, const char *arg, void *ctx)
{
	(void)key, (void)arg, (void)ctx;
	return lvd_cli_usage_error("unhandled option");
}

int cmd_inspect(int argc, char **argv)
{
	int first = 0;
	int rc = lvd_cli_parse(argc, argv, INSPECT_USAGE, INSPECT_DESC, INSPECT_OPTS, on_no_opt, NULL, &first);
	if (rc == -1)
		return 0;
	if (rc)
		return rc;
	if (first != argc - 1)
		return lvd_cli_usage_error("inspect takes one checkpoint folder");
	char p[4300];
	snprintf(p, sizeof p, "%s/state.json", argv[first]);
	json_error_t je;
	json_t *st = json_load_file(p, 0, &je);
	if (!st) {
		lvd_error_log("cannot read '%s': %s", p, je.text);
		return 1;
	}
	struct lvd_error err = {0};
	struct lvd_st *sf = NULL;
	snprintf(p, sizeof p, "%s/state.safetensors", argv[first]);
	if (lvd_st_open(&sf, p, &err)) {
		lvd_error_log("%s", err.msg);
		json_decref(st);
		return 1;
	}
	json_t *ts = json_array();
	for (size_t i = 0; i < lvd_st_count(sf); i++) {
		const struct lvd_tensor_view *v = lvd_st_at(sf, i);
		float *x = malloc((size_t)v->numel * sizeof *x + 4);
		if (!x || lvd_tensor_to_f32(v, x, (size_t)v->numel, &err)) {
			free(x);
			lvd_error_log("%s", x ? err.msg : "out of memory");
			lvd_st_close(sf);
			json_decref(ts);
			json_decref(st);
			return 1;
		}
		double ss = 0;
		for (int64_t j = 0; j < v->numel; j++)
			ss += (double)x[j] * x[j];
		free(x);
		json_array_append_new(ts, json_pack("{s:s, s:I, s:f}", "name", v->name, "numel", (json_int_t)v->numel,
						    "l2", sqrt(ss)));
	}
	lvd_st_close(sf);
	json_object_set_new(st, "tensors", ts);
	char *d = json_dumps(st, JSON_SORT_KEYS | JSON_INDENT(2));
	json_decref(st);
	if (!d) {
		lvd_error_log("out of memory");
		return 1;
	}
	printf("%s\n", d);
	free(d);
	return 0;
}
