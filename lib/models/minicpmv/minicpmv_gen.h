/* lib/models/minicpmv/minicpmv_gen.h — greedy (or sampled) generation with a KV cache for
 * MiniCPM-Llama3-V-2.5, as the hub's MiniCPMV.generate does it: the pictures through the
 * vision tower and the resampler once, their features scattered into the prompt's input
 * embeddings at image_bound, the prompt prefilled into a self-attention K/V cache, then
 * one row per sample and step (transformers' llm.generate(inputs_embeds=...) with its
 * cache; the hub's terminators are <|end_of_text|> and <|eot_id|>, the caller's eos list).
 * The prompt is the chat rendered with the assistant turn open (minicpmv_proc.h,
 * docs/minicpmv.md "Generation").
 *
 * Rules (transformers' generate, do_sample=False):
 *  - left padding: attn_mask [B, T] (1 real, 0 pad; NULL all real) masks pad keys; the
 *    rotary positions count real tokens only (cumsum − 1), so a padded prompt generates
 *    what it generates alone; image_bound ranges are positions in the padded rows;
 *  - the next token is the argmax of the last row's logits (or opts.pick), a sample stops
 *    on any id of opts.eos, a stopped sample then yields opts.pad_id (and is still fed);
 *    the session ends when every sample stopped or max_new_tokens were produced.
 * LoRA adapters added to the model (lvd_minicpmv_add_lora / lvd_minicpmv_lora_load) apply
 * without dropout. Memory: the caches 2·layers·B·(T + max_new)·KV floats plus one
 * prefill's workspace, owned by the session; the pictures run in the model's activation
 * block. The model must outlive the session and run nothing else in between.
 *
 * Letters: B samples, T prompt length (padded), V vocabulary. */
#ifndef LVD_MODELS_MINICPMV_GEN_H
#define LVD_MODELS_MINICPMV_GEN_H

#include <stddef.h>

#include "core/error.h"
#include "models/gen_loop.h"
#include "models/minicpmv/minicpmv.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_minicpmv_gen;

/* batch: as lvd_minicpmv_forward (training fields ignored). Errors: the batch checks'
 * LVD_ERR_INVALID, a mask row without a real token, max_new_tokens < 1, an image_bound
 * range over pad positions; LVD_ERR_NOMEM. */
int lvd_minicpmv_gen_begin(struct lvd_minicpmv_gen **out, struct lvd_minicpmv *m, const struct lvd_minicpmv_batch *b,
			   const int *attn_mask, const struct lvd_gen_opts *opts, struct lvd_error *err);
/* Next token of every sample into next[B], *done = 0; or *done = 1 (next untouched) when
 * the session is over. Returns 0. */
int lvd_minicpmv_gen_step(struct lvd_minicpmv_gen *g, int *next, int *done, struct lvd_error *err);
/* Logits [B, V] the last step chose from; valid until the next step. */
const float *lvd_minicpmv_gen_logits(const struct lvd_minicpmv_gen *g);
/* Tokens produced so far per sample (stopped samples count their pads). */
int lvd_minicpmv_gen_count(const struct lvd_minicpmv_gen *g);
/* Bytes the session holds (caches + workspace). */
size_t lvd_minicpmv_gen_bytes(const struct lvd_minicpmv_gen *g);
void lvd_minicpmv_gen_free(struct lvd_minicpmv_gen *g);

#ifdef __cplusplus
}
#endif
#endif
