/* lib/models/minicpmv/minicpmv_adapter.h — a PEFT LoRA adapter folder loaded onto a
 * minicpmv model for inference (lvd-eval --adapter): the counterpart of
 * lvd_minicpmv_lora_save (minicpmv.h) and of what PEFT saves for OpenBMB's finetune. */
#ifndef LVD_MODELS_MINICPMV_ADAPTER_H
#define LVD_MODELS_MINICPMV_ADAPTER_H

#include "core/error.h"
#include "models/minicpmv/minicpmv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads dir/adapter_config.json (peft_type LORA, r, lora_alpha, use_rslora; DoRA refused;
 * target_modules may be a list or a regex: the adapters are placed where the file's
 * lora_A/lora_B tensors say) and dir/adapter_model.safetensors:
 *  - "base_model.model.llm.model.layers.N.<self_attn|mlp>.<site>.lora_A.weight" [r, in]
 *    and "….lora_B.weight" [out, r] (an optional ".default" before ".weight"): LoRA on
 *    those sites (lvd_minicpmv_add_lora with the sites' names; a site of that name in a
 *    layer the file does not list keeps B = 0, i.e. no change), eval mode (no dropout);
 *  - full copies of modules_to_save, "base_model.model.llm.model.embed_tokens.weight",
 *    "…llm.lm_head.weight", "…resampler.<param>" (an optional ".modules_to_save.default"
 *    infix): these replace the model's weights (converted to fp32 into one block owned by
 *    the model).
 * Every tensor must land on an adapter or a weight, with its shape; the model must have no
 * LoRA yet. Errors name the file and the key: LVD_ERR_IO, LVD_ERR_FORMAT, LVD_ERR_INVALID,
 * LVD_ERR_NOMEM. On error the model may hold part of the adapter: free it. */
int lvd_minicpmv_adapter_load(struct lvd_minicpmv *m, const char *dir, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
