/* lib/models/peft.c — adapter_config.json of a PEFT LoRA adapter (see peft.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileutil.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/peft.h"

int lvd_peft_add_lora(struct lvd_st_writer *w, char (*names)[192], const char *module, int r, int in, int out,
		      const float *A, const float *B, struct lvd_error *err)
{
	int64_t sa[2] = { r, in }, sb[2] = { out, r };
	snprintf(names[0], sizeof names[0], "base_model.model.%s.lora_A.weight", module);
	snprintf(names[1], sizeof names[0], "base_model.model.%s.lora_B.weight", module);
	int rc = lvd_st_writer_add(w, names[0], LVD_DT_F32, 2, sa, A, err);
	return rc ? rc : lvd_st_writer_add(w, names[1], LVD_DT_F32, 2, sb, B, err);
}

json_t *lvd_peft_csv_list(const char *p)
{
	json_t *a = json_array();
	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n)
			json_array_append_new(a, json_stringn(p, n));
		if (!e)
			break;
		p = e + 1;
	}
	return a;
}

static json_t *string_or_null(const char *s) { return s ? json_string(s) : json_null(); }

int lvd_peft_config_write(const char *dir, const struct lvd_peft_config *pc, struct lvd_error *err)
{
	char path[4200];
	json_t *cfg = json_object(), *mts = lvd_peft_csv_list(pc->modules_to_save);
	json_object_set_new(cfg, "peft_type", json_string("LORA"));
	json_object_set_new(cfg, "task_type", string_or_null(pc->task_type));
	json_object_set_new(cfg, "r", json_integer(pc->r));
	json_object_set_new(cfg, "lora_alpha", json_real(pc->alpha));
	json_object_set_new(cfg, "lora_dropout", json_real(pc->dropout));
	json_object_set_new(cfg, "target_modules",
			    pc->targets_regex ? json_string(pc->targets_regex) : lvd_peft_csv_list(pc->targets));
	json_object_set_new(cfg, "bias", json_string("none"));
	json_object_set_new(cfg, "base_model_name_or_path", string_or_null(pc->base_model));
	json_object_set_new(cfg, "inference_mode", json_true());
	json_object_set_new(cfg, "fan_in_fan_out", json_false());
	json_object_set_new(cfg, "use_rslora", json_boolean(pc->rslora));
	json_object_set_new(cfg, "use_dora", json_false());
	json_object_set_new(cfg, "modules_to_save", json_array_size(mts) ? json_incref(mts) : json_null());
	json_object_set_new(cfg, "layers_to_transform", json_null());
	json_object_set_new(cfg, "init_lora_weights", json_true());
	json_object_set_new(cfg, "rank_pattern", json_object());
	json_object_set_new(cfg, "alpha_pattern", json_object());
	json_object_set_new(cfg, "revision", json_null());
	json_decref(mts);
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
	int rc;
	if (!text)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: cannot serialise", path);
	else
		rc = lvd_file_write_atomic(path, text, strlen(text), err);
	free(text);
	json_decref(cfg);
	return rc;
}
