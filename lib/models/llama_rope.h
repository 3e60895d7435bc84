/* lib/models/llama_rope.h — the rotary settings of a Hugging Face Llama (text) config,
 * shared by the models with a Llama-3 decoder (mllama's text_config, minicpmv's top-level
 * config): rope_theta at the object's top or inside rope_parameters (transformers 5) /
 * rope_scaling (4.x), and the rope type (default, or llama3 with its factor,
 * low/high_freq_factor and original_max_position_embeddings). */
#ifndef LVD_MODELS_LLAMA_ROPE_H
#define LVD_MODELS_LLAMA_ROPE_H

#include "core/error.h"
#include "io/json.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_llama_rope {
	double theta;                            /* default 500000 */
	int llama3;                              /* 1: Llama-3 wavelength scaling below */
	double factor, low, high, orig_max;      /* llama3 only (defaults 8, 1, 4, 8192) */
};

/* Reads the rotary settings from the config object t (a view of `path`; what names the
 * object in messages is `what`, e.g. "text_config"). Errors: LVD_ERR_UNSUPPORTED (a rope
 * type other than default/llama3, "path: what rope type 'yarn' (llama3 or default)"),
 * LVD_ERR_INVALID (a value that is not a positive number), those of lib/io/json.h. */
int lvd_llama_rope_load(struct lvd_llama_rope *r, const struct lvd_json *t, const char *path, const char *what,
			struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
