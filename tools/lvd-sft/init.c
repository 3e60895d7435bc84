/* lvd-sft init — writes a complete mllama folder with seeded random weights: config.json
 * (a file or the preset `tiny`), model.safetensors with every tensor lvd_mllama_load
 * reads, initialised as transformers' MllamaPreTrainedModel._init_weights does, the
 * tokenizer files of --tokenizer, preprocessor_config.json, generation_config.json and
 * chat_template.jinja. The folder is built under DIR.tmp and renamed, so DIR is complete
 * or absent; the same options give a byte-identical folder (docs/sft.md, "init"). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmds.h"
#include "common/cli.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/rng.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/mllama/mllama.h"

static const char INIT_USAGE[] = "lvd-sft init --config FILE|PRESET --out DIR [--seed S] [--tokenizer DIR] [--gate X]";
static const char INIT_DESC[] =
	"Writes a complete mllama folder with random weights, for tests and the demo:\n"
	"  config.json            FILE copied, or the preset `tiny` (128-wide text model, 4 layers\n"
	"                         with cross-attention at 1 and 3, initializer_range 0.1; 32-wide\n"
	"                         vision tower, 64 px tiles of 8 px patches, up to 4 tiles; the\n"
	"                         Llama-3 vocabulary, 128256)\n"
	"  model.safetensors      every tensor the loader reads, F32, named as the released\n"
	"                         checkpoints name them; initialised like transformers'\n"
	"                         _init_weights: N(0, initializer_range) for linear, conv and\n"
	"                         embedding weights (the pad row 0), class and positional\n"
	"                         embeddings and the global layers' gates; norms 1, biases 0,\n"
	"                         the other gates 0 (or --gate X)\n"
	"  preprocessor_config.json, generation_config.json\n"
	"  tokenizer.json / tokenizer.model / tokenizer_config.json / special_tokens_map.json\n"
	"                         copied from --tokenizer when present there, and\n"
	"  chat_template.jinja    copied, or taken from --tokenizer's special_tokens.json\n"
	"                         (chat_template_mllama_instruct)\n"
	"Value j of parameter i (in the loader's table order) is normal(seed, i, j) of\n"
	"lib/core/rng.h, so the same options give a byte-identical folder. DIR must not exist;\n"
	"it is written as DIR.tmp and renamed.";

enum { O_CONFIG, O_OUT, O_SEED, O_TOK, O_GATE };
static const struct lvd_cli_opt INIT_OPTS[] = {
	[O_CONFIG] = {"config", 0, "FILE", "an MllamaConfig config.json, or the preset name `tiny` (required)"},
	[O_OUT] = {"out", 'o', "DIR", "model folder to create; must not exist (required)"},
	[O_SEED] = {"seed", 's', "S", "weight seed, 0..2^63-1 (default 0)"},
	[O_TOK] = {"tokenizer", 0, "DIR", "copy the tokenizer files from DIR (e.g. ../shared/data/llama3)"},
	[O_GATE] = {"gate", 0, "X", "start the zero-initialised gates (cross-attention, positional) at X (default 0)"},
	{0},
};

/* The `tiny` preset: Llama-3 token ids (image token 128256, pad 128004), a toy width. The
 * text initializer_range is 0.1, not 0.02: LoRA never trains lm_head, and a frozen random
 * row of norm 0.02·√128 against a normed hidden state of norm √128 caps every logit near
 * 2.6 — no answer could beat 128256 others. At 0.1 the cap is about 13 > ln 128256. */
static const char TINY_CONFIG[] =
	"{\n"
	"  \"architectures\": [\"MllamaForConditionalGeneration\"],\n"
	"  \"dtype\": \"float32\",\n"
	"  \"image_token_index\": 128256,\n"
	"  \"model_type\": \"mllama\",\n"
	"  \"text_config\": {\n"
	"    \"bos_token_id\": 128000,\n"
	"    \"cross_attention_layers\": [1, 3],\n"
	"    \"dropout\": 0.0,\n"
	"    \"eos_token_id\": [128001, 128008, 128009],\n"
	"    \"hidden_act\": \"silu\",\n"
	"    \"hidden_size\": 128,\n"
	"    \"initializer_range\": 0.1,\n"
	"    \"intermediate_size\": 256,\n"
	"    \"max_position_embeddings\": 131072,\n"
	"    \"model_type\": \"mllama_text_model\",\n"
	"    \"num_attention_heads\": 4,\n"
	"    \"num_hidden_layers\": 4,\n"
	"    \"num_key_value_heads\": 2,\n"
	"    \"pad_token_id\": 128004,\n"
	"    \"rms_norm_eps\": 1e-05,\n"
	"    \"rope_parameters\": {\"factor\": 8.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,\n"
	"      \"original_max_position_embeddings\": 8192, \"rope_theta\": 500000.0, \"rope_type\": \"llama3\"},\n"
	"    \"tie_word_embeddings\": false,\n"
	"    \"use_cache\": true,\n"
	"    \"vocab_size\": 128256\n"
	"  },\n"
	"  \"vision_config\": {\n"
	"    \"attention_heads\": 2,\n"
	"    \"hidden_act\": \"gelu\",\n"
	"    \"hidden_size\": 32,\n"
	"    \"image_size\": 64,\n"
	"    \"initializer_range\": 0.02,\n"
	"    \"intermediate_layers_indices\": [0, 1],\n"
	"    \"intermediate_size\": 64,\n"
	"    \"max_num_tiles\": 4,\n"
	"    \"model_type\": \"mllama_vision_model\",\n"
	"    \"norm_eps\": 1e-05,\n"
	"    \"num_channels\": 3,\n"
	"    \"num_global_layers\": 1,\n"
	"    \"num_hidden_layers\": 2,\n"
	"    \"patch_size\": 8,\n"
	"    \"supported_aspect_ratios\": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],\n"
	"    \"vision_output_dim\": 96\n"
	"  }\n"
	"}\n";

struct init_opts {
	const char *config, *out, *tok;
	uint64_t seed;
	double gate;
};

static int on_init_opt(int key, const char *arg, void *ctx)
{
	struct init_opts *o = ctx;
	switch (key) {
	case LVD_CLI_KEY(O_CONFIG): o->config = arg; return 0;
	case 'o': o->out = arg; return 0;
	case 's': return lvd_cli_u64(arg, 0, (uint64_t)INT64_MAX, "--seed", &o->seed);
	case LVD_CLI_KEY(O_TOK): o->tok = arg; return 0;
	case LVD_CLI_KEY(O_GATE): {
		struct lvd_error e = { 0 };
		if (lvd_parse_double(arg, -100, 100, &o->gate, "--gate", &e))
			return lvd_cli_usage_error("%s", e.msg);
		return 0;
	}
	}
	return 0;
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

/* What _init_weights gives a parameter (canonical v4.45 name). */
enum init_kind { INIT_NORMAL, INIT_ONE, INIT_ZERO, INIT_GATE };
static enum init_kind init_kind_of(const struct lvd_mllama_param *p)
{
	const char *n = p->name;
	if (ends_with(n, "gate_attn") || ends_with(n, "gate_ffn"))   /* gated vision layers: normal */
		return INIT_NORMAL;
	if (ends_with(n, "_gate") || ends_with(n, ".gate"))          /* cross-attn, positional gates */
		return INIT_GATE;
	if (ends_with(n, ".bias"))
		return INIT_ZERO;
	if (p->ndim == 1 && strstr(n, "norm") && ends_with(n, ".weight"))   /* LayerNorm, RMSNorm */
		return INIT_ONE;
	return INIT_NORMAL;   /* linear, conv, embeddings, class_embedding */
}

static int write_weights(const char *dir, const struct init_opts *o, struct lvd_error *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/config.json", dir);
	struct lvd_json j;
	int rc = lvd_json_load(&j, path, err);
	if (rc)
		return rc;
	double std_v = 0.02, std_t = 0.02;
	int64_t pad = -1;
	if ((rc = lvd_json_get_double_or(&j, "vision_config.initializer_range", 0.02, &std_v, err)) ||
	    (rc = lvd_json_get_double_or(&j, "text_config.initializer_range", 0.02, &std_t, err)))
		goto done_json;
	json_t *pj = lvd_json_find(&j, "text_config.pad_token_id");
	if (pj && json_is_integer(pj))
		pad = json_integer_value(pj);
done_json:
	lvd_json_release(&j);
	if (rc)
		return rc;

	struct lvd_mllama *m;
	if ((rc = lvd_mllama_create(&m, dir, err)))
		return rc;
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	size_t np = lvd_mllama_nparams(m);
	struct lvd_st_writer *w = lvd_st_writer_new();
	rc = w ? lvd_st_writer_meta(w, "format", "pt", err) : lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < np && !rc; i++) {
		struct lvd_mllama_param *p = lvd_mllama_param_at(m, i);
		int vision = strncmp(p->name, "vision_model.", 13) == 0;
		switch (init_kind_of(p)) {
		case INIT_NORMAL: {
			float sd = (float)(vision ? std_v : std_t);
			lvd_rng_fill_normal(p->data, p->numel, o->seed, i, 0);
			for (size_t k = 0; k < p->numel; k++)
				p->data[k] *= sd;
			break;
		}
		case INIT_ONE:
			for (size_t k = 0; k < p->numel; k++)
				p->data[k] = 1.0f;
			break;
		case INIT_GATE:
			for (size_t k = 0; k < p->numel; k++)
				p->data[k] = (float)o->gate;
			break;
		case INIT_ZERO:
			break;   /* lvd_mllama_create zeroes */
		}
		if (pad >= 0 && pad < c->n_embed && ends_with(p->name, "embed_tokens.weight"))
			memset(p->data + (size_t)pad * (size_t)c->t_hidden, 0, (size_t)c->t_hidden * sizeof(float));
		rc = lvd_st_writer_add(w, p->name, LVD_DT_F32, p->ndim, p->shape, p->data, err);
	}
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	if (!rc)
		rc = lvd_st_writer_write(w, path, err);
	lvd_st_writer_free(w);
	lvd_mllama_free(m);
	return rc;
}

static int write_json(const char *dir, const char *file, json_t *obj, struct lvd_error *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	char *text = obj ? json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(obj);
	if (!text)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: cannot serialise", path);
	size_t n = strlen(text);
	char *buf = realloc(text, n + 2);
	if (!buf) {
		free(text);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	}
	buf[n] = '\n';
	int rc = lvd_file_write_atomic(path, buf, n + 1, err);
	free(buf);
	return rc;
}

/* preprocessor_config.json (MllamaImageProcessor, CLIP mean/std) and generation_config.json. */
static int write_side_configs(const char *dir, struct lvd_error *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/config.json", dir);
	struct lvd_mllama_config c;
	int rc = lvd_mllama_config_load(&c, path, err);
	if (rc)
		return rc;
	struct lvd_json j;
	if ((rc = lvd_json_load(&j, path, err)))
		return rc;
	struct lvd_mllama_image_cfg ic;
	lvd_mllama_image_cfg_default(&ic);
	json_t *mean = json_array(), *sd = json_array();
	for (int k = 0; k < 3; k++) {
		json_array_append_new(mean, json_real(ic.mean[k]));
		json_array_append_new(sd, json_real(ic.std[k]));
	}
	json_t *pre = json_pack("{s:b, s:b, s:b, s:b, s:o, s:s, s:o, s:i, s:i, s:f, s:b, s:{s:i, s:i}}",
				"do_convert_rgb", 1, "do_normalize", 1, "do_pad", 1, "do_rescale", 1, "image_mean",
				mean, "image_processor_type", "MllamaImageProcessor", "image_std", sd,
				"max_image_tiles", c.v_max_tiles, "resample", 2, "rescale_factor", 1.0 / 255,
				"do_resize", 1, "size", "height", c.v_image_size, "width", c.v_image_size);
	rc = write_json(dir, "preprocessor_config.json", pre, err);
	json_t *bos = lvd_json_find(&j, "text_config.bos_token_id");
	json_t *eos = lvd_json_find(&j, "text_config.eos_token_id");
	json_t *pad = lvd_json_find(&j, "text_config.pad_token_id");
	json_t *gen = json_object();
	json_object_set_new(gen, "_from_model_config", json_true());
	if (bos)
		json_object_set(gen, "bos_token_id", bos);
	if (eos)
		json_object_set(gen, "eos_token_id", eos);
	if (pad)
		json_object_set(gen, "pad_token_id", pad);
	json_object_set_new(gen, "do_sample", json_false());
	if (!rc)
		rc = write_json(dir, "generation_config.json", gen, err);
	else
		json_decref(gen);
	lvd_json_release(&j);
	return rc;
}

static int copy_file(const char *from, const char *to, struct lvd_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = lvd_file_read_all(from, (size_t)1 << 30, &buf, &len, err);
	if (!rc)
		rc = lvd_file_write_atomic(to, buf, len, err);
	free(buf);
	return rc;
}

/* The tokenizer files present in src, and a chat template (copied, or from
 * special_tokens.json's chat_template_mllama_instruct). At least one tokenizer file. */
static int copy_tokenizer(const char *src, const char *dir, struct lvd_error *err)
{
	static const char *files[] = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
				      "special_tokens_map.json", "chat_template.jinja"};
	char from[4200], to[4200];
	int ntok = 0, tmpl = 0, rc = 0;
	for (size_t k = 0; k < sizeof files / sizeof *files && !rc; k++) {
		snprintf(from, sizeof from, "%s/%s", src, files[k]);
		if (!lvd_path_is_file(from))
			continue;
		snprintf(to, sizeof to, "%s/%s", dir, files[k]);
		rc = copy_file(from, to, err);
		ntok += k < 2;
		tmpl += k == 4;
	}
	if (rc)
		return rc;
	if (!ntok)
		return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: no tokenizer.json or tokenizer.model", src);
	snprintf(from, sizeof from, "%s/special_tokens.json", src);
	if (tmpl || !lvd_path_is_file(from))
		return 0;
	struct lvd_json j;
	if ((rc = lvd_json_load(&j, from, err)))
		return rc;
	const char *t = NULL;
	rc = lvd_json_get_string_or(&j, "chat_template_mllama_instruct.template", NULL, &t, err);
	if (!rc && t) {
		snprintf(to, sizeof to, "%s/chat_template.jinja", dir);
		rc = lvd_file_write_atomic(to, t, strlen(t), err);
	}
	lvd_json_release(&j);
	return rc;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[4400];
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

int cmd_init(int argc, char **argv)
{
	struct init_opts o = { 0 };
	int first = 0;
	int rc = lvd_cli_parse(argc, argv, INIT_USAGE, INIT_DESC, INIT_OPTS, on_init_opt, &o, &first);
	if (rc == -1)
		return 0;
	if (rc)
		return rc;
	if (first != argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!o.config)
		return lvd_cli_usage_error("--config FILE|PRESET is required");
	if (!o.out)
		return lvd_cli_usage_error("--out DIR is required");
	int preset = strcmp(o.config, "tiny") == 0;
	if (!preset && !lvd_path_is_file(o.config)) {
		lvd_error_log("--config: '%s' is neither a file nor a preset (tiny)", o.config);
		return 1;
	}
	struct lvd_error err = { 0 };
	struct lvd_mllama_config cfg;
	if (!preset && lvd_mllama_config_load(&cfg, o.config, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	struct stat sb;
	if (stat(o.out, &sb) == 0) {
		lvd_error_log("%s: already exists (init writes a new folder)", o.out);
		return 1;
	}
	char tmp[4200], path[4300];
	snprintf(tmp, sizeof tmp, "%s.tmp", o.out);
	remove_tree(tmp);
	rc = lvd_mkdir_p(tmp, &err);
	snprintf(path, sizeof path, "%s/config.json", tmp);
	if (!rc)
		rc = preset ? lvd_file_write_atomic(path, TINY_CONFIG, sizeof TINY_CONFIG - 1, &err)
			    : copy_file(o.config, path, &err);
	if (!rc)
		rc = write_side_configs(tmp, &err);
	if (!rc && o.tok)
		rc = copy_tokenizer(o.tok, tmp, &err);
	if (!rc)
		rc = write_weights(tmp, &o, &err);
	if (!rc && rename(tmp, o.out) != 0)
		rc = lvd_error_set(&err, LVD_ERR_IO, "%s: cannot rename to %s: %s", tmp, o.out, strerror(errno));
	if (!rc)
		rc = lvd_fsync_parent(o.out, &err);
	if (rc) {
		lvd_error_log("%s", err.msg);
		remove_tree(tmp);
		return 1;
	}
	lvd_info("%s: mllama with random weights (seed %llu)", o.out, (unsigned long long)o.seed);
	return 0;
}
