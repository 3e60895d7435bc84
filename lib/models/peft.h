/* lib/models/peft.h — writing a PEFT LoRA adapter's adapter_config.json, shared by the
 * models' adapter exports (mllama_load.c, minicpmv_peft.c). PEFT's format: the only
 * required key is peft_type; we write the full LoraConfig set PEFT itself writes
 * (sorted keys, indent 2), atomically. */
#ifndef LVD_MODELS_PEFT_H
#define LVD_MODELS_PEFT_H

#include "core/error.h"
#include "io/json.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_peft_config {
	int r;
	float alpha, dropout;
	int rslora;
	const char *task_type;        /* "CAUSAL_LM", or NULL: null */
	const char *targets;          /* comma-separated list form, written as a JSON list ... */
	const char *targets_regex;    /* ... unless this regex string is given (PEFT fully matches it) */
	const char *modules_to_save;  /* comma-separated, NULL or "": null */
	const char *base_model;       /* base_model_name_or_path, NULL: null */
};

struct lvd_st_writer;
/* Adds a LoRA adapter's two tensors to w (F32): "base_model.model.<module>.lora_A.weight"
 * [r, in] and "….lora_B.weight" [out, r]; names[0..1] receive the keys and must stay
 * valid until the write (lib/io/safetensors.h borrows them). */
int lvd_peft_add_lora(struct lvd_st_writer *w, char (*names)[192], const char *module, int r, int in, int out,
		      const float *A, const float *B, struct lvd_error *err);

/* "a,b,,c" -> the JSON list ["a", "b", "c"] (new reference; NULL csv: empty list). */
json_t *lvd_peft_csv_list(const char *csv);

/* Writes dir/adapter_config.json (dir must exist). Errors name the file (LVD_ERR_IO,
 * LVD_ERR_NOMEM). */
int lvd_peft_config_write(const char *dir, const struct lvd_peft_config *pc, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
