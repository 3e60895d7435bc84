/* lib/models/mllama/mllama_peft.c — loading a PEFT LoRA adapter folder onto the model
 * (lvd_mllama_lora_load, mllama.h): the counterpart of lvd_mllama_lora_save, through the
 * public model API only (add the adapters, then fill A and B from the file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "models/mllama/mllama.h"

/* "base_model.model.<module>.lora_A[.default].weight" -> on-disk v4.45 module name and
 * which matrix (0 A, 1 B); -1 when the key is not a LoRA weight */
static int peft_module(const char *key, char *out, size_t n)
{
	static const char pre[] = "base_model.model.";
	if (strncmp(key, pre, sizeof pre - 1))
		return -1;
	const char *k = key + sizeof pre - 1, *e = strstr(k, ".lora_");
	if (!e || (e[6] != 'A' && e[6] != 'B'))
		return -1;
	const char *rest = e + 7;
	if (strcmp(rest, ".weight") && strcmp(rest, ".default.weight"))
		return -1;
	int len = (int)(e - k);
	if (!strncmp(k, "model.language_model.", 21))
		snprintf(out, n, "language_model.model.%.*s", len - 21, k + 21);
	else if (!strncmp(k, "model.vision_model.", 19))
		snprintf(out, n, "%.*s", len - 6, k + 6);
	else
		snprintf(out, n, "%.*s", len, k);
	return e[6] == 'B';
}

int lvd_mllama_lora_load(struct lvd_mllama *m, const char *dir, struct lvd_error *err)
{
	char path[4200], targets[1024] = "";
	struct lvd_json j = {0};
	struct lvd_st *st = NULL;
	unsigned char *have = NULL;
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	int rc = lvd_json_load(&j, path, err);
	if (rc)
		return rc;
	const char *type = NULL, *tgt[256];
	int r = 0, rslora = 0, dora = 0;
	double alpha = 0;
	size_t nt = 0;
	if ((rc = lvd_json_get_string_or(&j, "peft_type", "LORA", &type, err)) ||
	    (rc = lvd_json_get_i32(&j, "r", 1, 65536, &r, err)) || (rc = lvd_json_get_double(&j, "lora_alpha", &alpha, err)) ||
	    (rc = lvd_json_get_bool_or(&j, "use_rslora", 0, &rslora, err)) ||
	    (rc = lvd_json_get_bool_or(&j, "use_dora", 0, &dora, err)))
		goto out;
	if (strcmp(type, "LORA") || dora) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: only plain LoRA adapters are supported (peft_type %s%s)", path,
				   type, dora ? ", use_dora" : "");
		goto out;
	}
	json_t *tm = json_object_get(j.obj, "target_modules");
	if (json_is_string(tm)) {
		rc = lvd_error_set(err, LVD_ERR_INVALID,
				   "%s: key 'target_modules': a regex string ('%s') is not supported, a list is needed", path,
				   json_string_value(tm));
		goto out;
	}
	if ((rc = lvd_json_get_string_array(&j, "target_modules", tgt, 256, &nt, err)))
		goto out;
	for (size_t i = 0; i < nt; i++) {
		size_t l = strlen(targets);
		if (l + strlen(tgt[i]) + 2 > sizeof targets) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: key 'target_modules': list too long", path);
			goto out;
		}
		snprintf(targets + l, sizeof targets - l, "%s%s", l ? "," : "", tgt[i]);
	}
	struct lvd_mllama_lora_cfg lc = {r, (float)alpha, 0.0f, rslora, targets, 0};
	if ((rc = lvd_mllama_add_lora(m, &lc, err))) {
		lvd_error_prefix(err, "%s: ", path);
		goto out;
	}
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	if ((rc = lvd_st_open(&st, path, err)))
		goto out;
	size_t nl = lvd_mllama_nlora(m);
	have = calloc(2 * nl, 1);
	if (!have) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < lvd_st_count(st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		char mod[256];
		int which = peft_module(t->name, mod, sizeof mod);
		if (which < 0) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s' is not a LoRA weight (modules_to_save?)", path,
					   t->name);
			goto out;
		}
		size_t k = 0;
		while (k < nl && strcmp(lvd_mllama_lora_at(m, k)->module, mod))
			k++;
		if (k == nl) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s': no module '%s' among the targets '%s'", path,
					   t->name, mod, targets);
			goto out;
		}
		struct lvd_mllama_lora *L = lvd_mllama_lora_at(m, k);
		int64_t shape[2] = {which ? L->out : r, which ? r : L->in};
		if (t->ndim != 2 || t->shape[0] != shape[0] || t->shape[1] != shape[1]) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tensor '%s' has the wrong shape, want [%lld, %lld]", path,
					   t->name, (long long)shape[0], (long long)shape[1]);
			goto out;
		}
		if ((rc = lvd_tensor_to_f32(t, which ? L->B : L->A, (size_t)(shape[0] * shape[1]), err)))
			goto out;
		have[2 * k + (size_t)which] = 1;
	}
	for (size_t k = 0; k < 2 * nl; k++)
		if (!have[k]) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: no lora_%c weight for module '%s'", path,
					   k % 2 ? 'B' : 'A', lvd_mllama_lora_at(m, k / 2)->module);
			goto out;
		}
out:
	free(have);
	lvd_st_close(st);
	lvd_json_release(&j);
	return rc;
}
