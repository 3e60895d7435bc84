/* tools/lvd-eval/model.c — a VLM (+ adapter or lvd-sft checkpoint) opened for inference
 * (model.h). */
#include "model.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sha256.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "train/loader.h"

#define HASH_WHOLE_MAX ((uint64_t)1 << 30)
#define FP_BLOCKS 16
#define FP_BLOCK ((size_t)64 << 10)

static int hex_of_file(const char *path, char hex[LVD_SHA256_HEX_LEN], struct lvd_error *err)
{
	unsigned char d[LVD_SHA256_LEN];
	int rc = lvd_sha256_file(path, d, err);
	if (!rc)
		lvd_sha256_hex(d, hex);
	return rc;
}

/* size, safetensors header and FP_BLOCKS blocks spread through the file, into s */
static int fingerprint_file(struct lvd_sha256 *s, const char *path, struct lvd_error *err)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	struct stat sb;
	int rc = fstat(fd, &sb) ? lvd_error_errno(err, LVD_ERR_IO, "cannot stat '%s'", path) : 0;
	uint64_t size = rc ? 0 : (uint64_t)sb.st_size, hlen = 0;
	unsigned char *buf = malloc(FP_BLOCK);
	if (!rc && !buf)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	lvd_sha256_update(s, &size, sizeof size);
	if (!rc && size >= 8 && !(rc = lvd_pread_full(fd, &hlen, 8, 0, path, err)) && hlen <= size - 8) {
		for (uint64_t off = 8; !rc && off < 8 + hlen; off += FP_BLOCK) {
			size_t n = 8 + hlen - off < FP_BLOCK ? (size_t)(8 + hlen - off) : FP_BLOCK;
			if (!(rc = lvd_pread_full(fd, buf, n, off, path, err)))
				lvd_sha256_update(s, buf, n);
		}
	}
	for (int k = 0; !rc && k < FP_BLOCKS && size > 0; k++) {
		uint64_t off = size > FP_BLOCK ? (size - FP_BLOCK) / (FP_BLOCKS - 1) * (uint64_t)k : 0;
		size_t n = size - off < FP_BLOCK ? (size_t)(size - off) : FP_BLOCK;
		if (!(rc = lvd_pread_full(fd, buf, n, off, path, err)))
			lvd_sha256_update(s, buf, n);
	}
	free(buf);
	close(fd);
	return rc;
}

/* {"files": [...], "bytes": N, "sha256"|"fingerprint": hex} of the folder's weight files */
static json_t *weights_prov(const char *dir, struct lvd_error *err)
{
	char path[4200];
	json_t *files = json_array();
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	if (lvd_path_is_file(path)) {
		struct lvd_json j = {0};
		if (lvd_json_load(&j, path, err)) {
			json_decref(files);
			return NULL;
		}
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(j.obj, "weight_map"), k, v) {
			size_t i;
			json_t *f;
			int seen = 0;
			json_array_foreach(files, i, f) seen |= json_equal(f, v);
			if (!seen && json_is_string(v))
				json_array_append(files, v);
		}
		lvd_json_release(&j);
	} else {
		json_array_append_new(files, json_string("model.safetensors"));
	}
	uint64_t total = 0;
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f) {
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", dir, json_string_value(f));
		if (stat(path, &sb)) {
			json_decref(files);
			lvd_error_errno(err, LVD_ERR_IO, "cannot stat '%s'", path);
			return NULL;
		}
		total += (uint64_t)sb.st_size;
	}
	struct lvd_sha256 s;
	lvd_sha256_init(&s);
	int whole = total <= HASH_WHOLE_MAX, rc = 0;
	char hex[LVD_SHA256_HEX_LEN];
	json_array_foreach(files, i, f) {
		snprintf(path, sizeof path, "%s/%s", dir, json_string_value(f));
		if (whole) {
			rc = hex_of_file(path, hex, err);
			lvd_sha256_update(&s, hex, 64);
		} else {
			rc = fingerprint_file(&s, path, err);
		}
		if (rc) {
			json_decref(files);
			return NULL;
		}
	}
	unsigned char d[LVD_SHA256_LEN];
	lvd_sha256_final(&s, d);
	lvd_sha256_hex(d, hex);
	if (whole && json_array_size(files) == 1) /* one file: its own sha256 */
		hex_of_file(path, hex, err);
	return json_pack("{s:o, s:I, s:s}", "files", files, "bytes", (json_int_t)total, whole ? "sha256" : "fingerprint",
			 hex);
}

/* eos list and pad id: generation_config.json, then config.json (text_config first) */
static int stop_ids(struct lvd_evalm *e, const char *dir, struct lvd_error *err)
{
	char path[4200];
	const char *files[2] = {"generation_config.json", "config.json"};
	const char *eos_keys[3] = {"eos_token_id", "text_config.eos_token_id", NULL};
	const char *pad_keys[3] = {"pad_token_id", "text_config.pad_token_id", NULL};
	e->n_eos = 0;
	e->pad_id = -1;
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[k]);
		if (!lvd_path_is_file(path))
			continue;
		struct lvd_json j = {0};
		int rc = lvd_json_load(&j, path, err);
		if (rc)
			return rc;
		for (int q = 0; q < 2 && !rc; q++) {
			if (e->n_eos == 0 && lvd_json_has(&j, eos_keys[q])) {
				json_t *v = lvd_json_find(&j, eos_keys[q]);
				if (json_is_integer(v)) {
					e->eos[e->n_eos++] = (int)json_integer_value(v);
				} else {
					size_t n = 0;
					rc = lvd_json_get_i32_array(&j, eos_keys[q], 0, 1 << 30, e->eos, LVD_EVALM_MAX_EOS, &n, err);
					e->n_eos = (int)n;
				}
			}
			if (!rc && e->pad_id < 0)
				rc = lvd_json_get_i32_or(&j, pad_keys[q], -1, -1, 1 << 30, &e->pad_id, err);
		}
		lvd_json_release(&j);
		if (rc)
			return rc;
	}
	if (e->n_eos == 0)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: no eos_token_id in generation_config.json or config.json", dir);
	if (e->pad_id < 0)
		e->pad_id = e->eos[0];
	return 0;
}

/* 1 when DIR holds an lvd-sft checkpoint of a --full run (state.json options.full): its
 * mllama base is then loaded writable (lvd_mllama_load) for the trained tensors */
static int ckpt_full(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/state.json", dir);
	struct lvd_json j = {0};
	struct lvd_error e = {0};
	int full = 0;
	if (lvd_path_is_file(path) && !lvd_json_load(&j, path, &e)) {
		if (lvd_json_get_bool_or(&j, "options.full", 0, &full, &e))
			full = 0;
		lvd_json_release(&j);
	}
	return full;
}

/* The group bits (bits[k] for names[k]) of a checkpoint's options.train list, as lvd-sft
 * wrote it (comma-separated group names) */
static unsigned groups_mask(const char *list, const char *const *names, const unsigned *bits, int n)
{
	unsigned mask = 0;
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		for (int k = 0; k < n; k++)
			if (strlen(names[k]) == len && !strncmp(p, names[k], len))
				mask |= bits[k];
		p += len + (p[len] == ',');
	}
	return mask;
}

/* A --full mllama run's checkpoint: each tensor of the options.train groups (vision,
 * projector, text, cross) under its canonical name (flat) over the base weights. */
static int load_ckpt_mllama_full(struct lvd_evalm *e, const char *dir, const struct lvd_json *j,
				 struct lvd_error *err)
{
	static const char *const G[4] = {"vision", "projector", "text", "cross"};
	static const unsigned bit[4] = {LVD_MLLAMA_VISION, LVD_MLLAMA_PROJECTOR, LVD_MLLAMA_TEXT, LVD_MLLAMA_CROSS};
	const char *groups = NULL;
	int rc = lvd_json_get_string_or(j, "options.train", "vision,projector,text,cross", &groups, err);
	if (rc)
		return rc;
	const unsigned mask = groups_mask(groups, G, bit, 4);
	char path[4200];
	snprintf(path, sizeof path, "%s/state.safetensors", dir);
	struct lvd_st *st = NULL;
	if ((rc = lvd_st_open(&st, path, err)))
		return rc;
	const struct lvd_mllama_config *c = lvd_mllama_cfg(e->m);
	for (size_t i = 0, np = lvd_mllama_nparams(e->m); i < np && !rc; i++) {
		struct lvd_mllama_param *pa = lvd_mllama_param_at(e->m, i);
		if (lvd_mllama_param_group(c, pa->name) & mask) {
			int64_t shape[1] = {(int64_t)pa->numel};
			rc = lvd_st_load_f32(st, pa->name, 1, shape, pa->data, pa->numel, err);
		}
	}
	lvd_st_close(st);
	if (rc)
		lvd_error_prefix(err, "%s (was the checkpoint trained on this --model?): ", dir);
	return rc;
}

/* A MiniCPM-V run's checkpoint (tools/lvd-sft/model_mcv.c): the "lora" block unless
 * options.full, and each tensor of the options.train groups under its hub name (flat)
 * over the base weights. */
static int load_ckpt_mcv(struct lvd_evalm *e, const char *dir, const struct lvd_json *j, int full,
			 struct lvd_error *err)
{
	static const char *const G[3] = {"vision", "resampler", "llm"};
	static const unsigned bit[3] = {LVD_MINICPMV_VISION, LVD_MINICPMV_RESAMPLER, LVD_MINICPMV_LLM};
	int r = 0;
	double alpha = 0;
	const char *targets = NULL, *groups = NULL;
	int rc = lvd_json_get_string_or(j, "options.train", "", &groups, err);
	if (rc)
		return rc;
	const unsigned mask = groups_mask(groups, G, bit, 3);
	if (!full && ((rc = lvd_json_get_i32(j, "options.lora_r", 1, 65536, &r, err)) ||
		      (rc = lvd_json_get_double(j, "options.lora_alpha", &alpha, err)) ||
		      (rc = lvd_json_get_string_or(j, "options.lora_targets", "q_proj,k_proj,v_proj,o_proj", &targets,
						   err))))
		return rc;
	if (!full) {
		struct lvd_minicpmv_lora_cfg lc = {r, (float)alpha, 0.0f, 0, targets, 0};
		if ((rc = lvd_minicpmv_add_lora(e->mc, &lc, err)))
			return rc;
	}
	if (mask && (rc = lvd_minicpmv_make_mutable(e->mc, err)))
		return rc;
	char path[4200];
	snprintf(path, sizeof path, "%s/state.safetensors", dir);
	struct lvd_st *st = NULL;
	if ((rc = lvd_st_open(&st, path, err)))
		return rc;
	if (!full) {
		size_t n;
		float *p = lvd_minicpmv_lora_params(e->mc, &n);
		int64_t shape[1] = {(int64_t)n};
		rc = lvd_st_load_f32(st, "lora", 1, shape, p, n, err);
	}
	const struct lvd_minicpmv_param *p = NULL;
	const size_t np = mask ? lvd_minicpmv_params(e->mc, &p) : 0;
	for (size_t i = 0; i < np && !rc; i++)
		if (lvd_minicpmv_param_group(p[i].name) & mask) {
			int64_t shape[1] = {(int64_t)p[i].n};
			rc = lvd_st_load_f32(st, p[i].name, 1, shape, p[i].data, p[i].n, err);
		}
	lvd_st_close(st);
	if (rc)
		lvd_error_prefix(err, "%s (was the checkpoint trained on this --model?): ", dir);
	return rc;
}

/* lvd-sft checkpoint: the run's model type checked; MiniCPM-V (load_ckpt_mcv) and --full
 * mllama runs (load_ckpt_mllama_full) by their trained tensors, LoRA mllama runs by the
 * LoRA options of state.json and the "lora" block of state.safetensors */
static int load_ckpt(struct lvd_evalm *e, const char *dir, json_t *prov, struct lvd_error *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/state.json", dir);
	struct lvd_json j = {0};
	int rc = lvd_json_load(&j, path, err);
	if (rc)
		return rc;
	int r = 0;
	double alpha = 0;
	const char *targets = NULL, *mt = NULL;
	int64_t step = 0;
	if (!(rc = lvd_json_get_string_or(&j, "options.model_type", "mllama", &mt, err)) &&
	    strcmp(mt, lvd_evalm_kind_name(e->kind)))
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: a checkpoint of a %s run, --model is %s", path, mt,
				   lvd_evalm_kind_name(e->kind));
	int full = 0;
	if (!rc)
		rc = lvd_json_get_bool_or(&j, "options.full", 0, &full, err);
	if (!rc && (e->kind == LVD_EVALM_MINICPMV || full)) {
		if (!(rc = lvd_json_get_int_or(&j, "step", 0, &step, err)))
			rc = e->kind == LVD_EVALM_MINICPMV ? load_ckpt_mcv(e, dir, &j, full, err)
							   : load_ckpt_mllama_full(e, dir, &j, err);
	} else if (!rc && !(rc = lvd_json_get_i32(&j, "options.lora_r", 1, 65536, &r, err)) &&
	    !(rc = lvd_json_get_double(&j, "options.lora_alpha", &alpha, err)) &&
	    !(rc = lvd_json_get_string_or(&j, "options.lora_targets", "q_proj,v_proj", &targets, err)) &&
	    !(rc = lvd_json_get_int_or(&j, "step", 0, &step, err))) {
		struct lvd_mllama_lora_cfg lc = {r, (float)alpha, 0.0f, 0, targets, 0};
		if ((rc = lvd_mllama_add_lora(e->m, &lc, err)))
			lvd_error_prefix(err, "%s: ", path);
	}
	lvd_json_release(&j);
	if (rc)
		return rc;
	json_object_set_new(prov, "step", json_integer((json_int_t)step));
	if (e->kind == LVD_EVALM_MINICPMV || full)
		return 0;
	snprintf(path, sizeof path, "%s/state.safetensors", dir);
	struct lvd_st *st = NULL;
	if ((rc = lvd_st_open(&st, path, err)))
		return rc;
	size_t n;
	float *p = lvd_mllama_lora_params(e->m, &n);
	int64_t shape[1] = {(int64_t)n};
	rc = lvd_st_load_f32(st, "lora", 1, shape, p, n, err);
	lvd_st_close(st);
	if (rc)
		lvd_error_prefix(err, "%s (was the checkpoint trained on this --model?): ", dir);
	return rc;
}

static json_t *hashed(json_t *o, const char *dir, const char *name, struct lvd_error *err)
{
	char path[4200], hex[LVD_SHA256_HEX_LEN], key[96];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (!o || hex_of_file(path, hex, err)) {
		json_decref(o);
		return NULL;
	}
	snprintf(key, sizeof key, "%s_sha256", name);
	*strchr(key, '.') = '_';
	json_object_set_new(o, key, json_string(hex));
	return o;
}

int lvd_evalm_kind_of(const char *dir, enum lvd_evalm_kind *kind, struct lvd_error *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/config.json", dir);
	struct lvd_json j = {0};
	const char *mt = NULL;
	int rc = lvd_json_load(&j, path, err);
	if (!rc)
		rc = lvd_json_get_string_or(&j, "model_type", "mllama", &mt, err);
	if (!rc) {
		if (!strcmp(mt, "minicpmv"))
			*kind = LVD_EVALM_MINICPMV;
		else if (!strcmp(mt, "mllama"))
			*kind = LVD_EVALM_MLLAMA;
		else
			rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: model_type '%s': lvd-eval runs mllama and minicpmv "
					   "(MiniCPM-Llama3-V-2.5) models", path, mt);
	}
	lvd_json_release(&j);
	return rc;
}

const char *lvd_evalm_kind_name(enum lvd_evalm_kind kind)
{
	return kind == LVD_EVALM_MINICPMV ? "minicpmv" : "mllama";
}

/* mllama: weights, threads, image processor, stop ids, tokenizer, their agreement */
static int open_mllama(struct lvd_evalm *e, const char *model, int mut, int threads, struct lvd_error *err)
{
	int rc = mut ? lvd_mllama_load(&e->m, model, err) : lvd_mllama_load_frozen(&e->m, model, err);
	if (rc || (rc = lvd_mllama_set_threads(e->m, threads, err)) ||
	    (rc = lvd_loader_image_cfg(&e->img, model, err)) || (rc = stop_ids(e, model, err)) ||
	    (rc = lvd_llama_tok_load(&e->tok, model, LVD_LLAMA_SCHEME_MLLAMA, err)))
		return rc;
	const struct lvd_mllama_config *c = lvd_mllama_cfg(e->m);
	int32_t img_id = lvd_llama_special_id(e->tok, "<|image|>");
	if (img_id != c->image_token_index)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: the tokenizer's <|image|> is %d, config.json says %d", model,
				     (int)img_id, c->image_token_index);
	if (lvd_llama_vocab_size(e->tok) > c->n_embed)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: the tokenizer has %d ids, the model embeds %d", model,
				     (int)lvd_llama_vocab_size(e->tok), c->n_embed);
	if (e->img.max_tiles != c->v_max_tiles)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: preprocessor max_image_tiles %d, vision max_num_tiles %d",
				     model, e->img.max_tiles, c->v_max_tiles);
	return 0;
}

/* MiniCPM-Llama3-V-2.5: weights on a context of `threads`, slice_config, tokenizer and its
 * MiniCPM tokens, stop ids (+ the hub's terminators), pad 0 (the hub's generate) */
static int open_minicpmv(struct lvd_evalm *e, const char *model, int threads, struct lvd_error *err)
{
	struct lvd_ctx_opts co = {.backend = LVD_BACKEND_CPU, .threads = threads};
	int rc;
	if ((rc = lvd_minicpmv_load(&e->mc, model, err)) || (rc = lvd_ctx_create(&e->ctx, &co, err)))
		return rc;
	lvd_minicpmv_set_ctx(e->mc, e->ctx);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(e->mc);
	if ((rc = lvd_minicpmv_slice_cfg_from(&e->slice, c, err)) || (rc = stop_ids(e, model, err)) ||
	    (rc = lvd_llama_tok_load(&e->tok, model, LVD_LLAMA_SCHEME_MLLAMA, err)))
		return rc;
	if ((rc = lvd_minicpmv_tok_ids_get(&e->mids, e->tok, err))) {
		lvd_error_prefix(err, "%s: ", model);
		return rc;
	}
	if (lvd_llama_vocab_size(e->tok) > c->vocab)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: the tokenizer has %d ids, the model embeds %d", model,
				     (int)lvd_llama_vocab_size(e->tok), c->vocab);
	/* the hub's terminators: tokenizer.eos_token_id (<|end_of_text|>) and <|eot_id|> */
	int32_t term[2] = {lvd_llama_special_id(e->tok, "<|end_of_text|>"), e->mids.eot};
	for (int k = 0; k < 2; k++) {
		int seen = term[k] < 0;
		for (int i = 0; i < e->n_eos; i++)
			seen |= e->eos[i] == term[k];
		if (!seen && e->n_eos < LVD_EVALM_MAX_EOS)
			e->eos[e->n_eos++] = term[k];
	}
	e->pad_id = 0;
	return 0;
}

int lvd_evalm_open(struct lvd_evalm *e, const char *model, const char *adapter, int threads, struct lvd_error *err)
{
	char path[4200];
	memset(e, 0, sizeof *e);
	e->adapter_kind = "none";
	snprintf(path, sizeof path, "%s/config.json", model);
	if (!lvd_path_is_file(path)) {
		snprintf(path, sizeof path, "%s/adapter_config.json", model);
		if (lvd_path_is_file(path))
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "%s is an adapter folder: give the base model with --model and this with --adapter",
					     model);
		snprintf(path, sizeof path, "%s/state.json", model);
		if (lvd_path_is_file(path))
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "%s is an lvd-sft checkpoint: give the base model with --model and this with --adapter",
					     model);
		return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s/config.json: no such file (not a model folder)", model);
	}
	int rc;
	json_t *mp = NULL, *ap = NULL;
	if ((rc = lvd_evalm_kind_of(model, &e->kind, err)))
		goto fail;
	rc = e->kind == LVD_EVALM_MINICPMV ? open_minicpmv(e, model, threads, err)
					    : open_mllama(e, model, adapter && ckpt_full(adapter), threads, err);
	if (rc)
		goto fail;
	json_t *w = weights_prov(model, err);
	mp = hashed(json_pack("{s:s, s:s, s:o*}", "path", model, "model_type", lvd_evalm_kind_name(e->kind), "weights", w),
		    model, "config.json", err);
	if (!w || !mp) {
		rc = err->code ? err->code : LVD_ERR_NOMEM;
		goto fail;
	}
	if (adapter) {
		snprintf(path, sizeof path, "%s/adapter_config.json", adapter);
		int peft = lvd_path_is_file(path);
		snprintf(path, sizeof path, "%s/state.json", adapter);
		if (!peft && !lvd_path_is_file(path)) {
			rc = lvd_error_set(err, LVD_ERR_NOTFOUND,
					   "%s: neither a PEFT adapter (adapter_config.json) nor an lvd-sft checkpoint (state.json)",
					   adapter);
			goto fail;
		}
		e->adapter_kind = peft ? "peft" : "lvd-sft checkpoint";
		ap = json_pack("{s:s, s:s}", "path", adapter, "kind", e->adapter_kind);
		if (peft) {
			rc = e->kind == LVD_EVALM_MINICPMV ? lvd_minicpmv_lora_load(e->mc, adapter, err)
							   : lvd_mllama_lora_load(e->m, adapter, err);
			if (rc)
				goto fail;
			ap = hashed(hashed(ap, adapter, "adapter_config.json", err), adapter, "adapter_model.safetensors", err);
		} else {
			if ((rc = load_ckpt(e, adapter, ap, err)))
				goto fail;
			ap = hashed(hashed(ap, adapter, "state.json", err), adapter, "state.safetensors", err);
		}
		if (!ap) {
			rc = err->code ? err->code : LVD_ERR_NOMEM;
			goto fail;
		}
	}
	e->prov = json_pack("{s:o, s:o}", "model", mp, "adapter", ap ? ap : json_null());
	return 0;
fail:
	json_decref(mp);
	json_decref(ap);
	lvd_evalm_close(e);
	return rc;
}

void lvd_evalm_close(struct lvd_evalm *e)
{
	lvd_mllama_free(e->m);
	lvd_minicpmv_free(e->mc);
	lvd_ctx_destroy(e->ctx);
	lvd_llama_tok_free(e->tok);
	json_decref(e->prov);
	memset(e, 0, sizeof *e);
}
