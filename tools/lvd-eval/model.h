/* tools/lvd-eval/model.h — one VLM opened for inference as lvd-eval's model commands
 * (run, align) take it. config.json's model_type picks the model: "mllama" (or none) a
 * base or merged Hugging Face mllama folder, "minicpmv" a MiniCPM-Llama3-V-2.5 folder.
 * Optionally a LoRA given with --adapter: a PEFT adapter folder (adapter_config.json +
 * adapter_model.safetensors, ours or PEFT's; for MiniCPM with modules_to_save copies of
 * embed_tokens / resampler) or, for mllama, an lvd-sft checkpoint folder
 * (RUN/ckpt-NNNNNN: state.json options lora_r/lora_alpha/lora_targets and the flat "lora"
 * block of state.safetensors). Also loaded: the tokenizer of the model folder, the image
 * processor (mllama: config.json + preprocessor_config.json, as the training loader reads
 * them; MiniCPM: config.json's slice_config) and the generation stop/pad ids
 * (generation_config.json, else config.json; MiniCPM adds the hub's terminators
 * <|end_of_text|> and <|eot_id|> and pads with 0 as the hub's generate does). */
#ifndef LVD_EVAL_TOOL_MODEL_H
#define LVD_EVAL_TOOL_MODEL_H

#include <jansson.h>

#include "core/error.h"
#include "models/minicpmv/minicpmv.h"
#include "models/minicpmv/minicpmv_proc.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"
#include "text/llama_tok.h"

#define LVD_EVALM_MAX_EOS 16

enum lvd_evalm_kind { LVD_EVALM_MLLAMA, LVD_EVALM_MINICPMV };

struct lvd_evalm {
	enum lvd_evalm_kind kind;
	struct lvd_mllama *m;               /* mllama: frozen base, LoRA added when an adapter is given */
	struct lvd_minicpmv *mc;            /* minicpmv: the model (+ adapter) */
	struct lvd_ctx *ctx;                /* minicpmv: the CPU context of `threads` */
	struct lvd_minicpmv_slice_cfg slice;   /* minicpmv: slice_config */
	struct lvd_minicpmv_tok_ids mids;      /* minicpmv: chat layout ids */
	struct lvd_llama_tok *tok;
	struct lvd_mllama_image_cfg img;
	int eos[LVD_EVALM_MAX_EOS], n_eos;  /* generation_config eos_token_id (int or list) */
	int pad_id;                         /* generation_config / config pad_token_id, else eos[0] */
	const char *adapter_kind;           /* "none", "peft" or "lvd-sft checkpoint" */
	/* provenance: {"model": {"path", "weights": {...}, "config_json_sha256"}, "adapter":
	 * {"path", "kind", ["step",] "<file>_<ext>_sha256"...}
	 * or null}. Weights up to 1 GiB in all are hashed whole ("sha256"); bigger sets get
	 * "fingerprint": sha256 over each file's size, safetensors header and 16 blocks of
	 * 64 KiB spread through it (seconds instead of minutes on an 11B folder). */
	json_t *prov;
};

/* config.json's model_type: "minicpmv" or "mllama" (also when absent); errors name the
 * file and the value (LVD_ERR_UNSUPPORTED for another type). */
int lvd_evalm_kind_of(const char *dir, enum lvd_evalm_kind *kind, struct lvd_error *err);
/* "mllama" or "minicpmv" */
const char *lvd_evalm_kind_name(enum lvd_evalm_kind kind);

/* Opens model (+ adapter, may be NULL) with `threads` CPU threads. Errors name the
 * folder and file; on error *e is left closed. */
int lvd_evalm_open(struct lvd_evalm *e, const char *model, const char *adapter, int threads, struct lvd_error *err);
void lvd_evalm_close(struct lvd_evalm *e);

#endif
