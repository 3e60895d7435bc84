/* lib/models/hf_save.h — writing a model as a transformers folder, shared by the models'
 * full exports (mllama_save.c, minicpmv_save.c): config.json (the source folder's, its
 * dtype keys set to the written dtype), the tensors in shards
 * model-0000k-of-0000n.safetensors + model.safetensors.index.json, LoRA adapters merged
 * on the way (W + s·B·A in fp32), files copied verbatim from the source folder; all of it
 * written into DIR.tmp and renamed to DIR. The model supplies the list of tensors under
 * the key names its checkpoint uses. */
#ifndef LVD_MODELS_HF_SAVE_H
#define LVD_MODELS_HF_SAVE_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One tensor to write (everything borrowed until lvd_hf_save returns). */
struct lvd_hf_tensor {
	const char *name;             /* key in the checkpoint */
	int ndim;
	const int64_t *shape;         /* [ndim] */
	size_t numel;
	const float *data;            /* fp32 values [numel] */
	/* a LoRA adapter merged on write (A NULL: none): data is W [out, in] (out·in = numel),
	 * written as W + s·B·A with A [r, in], B [out, r], the sum in double per element */
	const float *A, *B;
	int r, in, out;
	double s;
};

struct lvd_hf_save_opts {
	const char *src_dir;          /* config.json and the copied files come from here */
	int bf16;                     /* 1: BF16 tensors, 0: F32 */
	uint64_t max_shard_bytes;     /* 0: 5 GB (5·10^9 bytes, transformers' "5GB") */
	int replace;                  /* 1: replace an existing non-empty dir */
	const char *const *copy_extra;   /* NULL-terminated names also copied from src_dir when
					  * present (the common set: below); NULL: none */
	const char *copy_suffix;      /* also every regular file of src_dir whose name ends so (".py"); NULL: none */
	const char *who;              /* prefix of the argument errors ("mllama") */
};

/* Writes the n tensors t (in this order; shard k holds the next run of tensors that fits
 * max_shard_bytes, a tensor larger than it a shard of its own) into dir, and copies from
 * src_dir, when present, the tokenizer / processor / generation files of every
 * transformers folder (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
 * preprocessor_config.json, chat_template.json, chat_template.jinja,
 * generation_config.json) and the ones the options add. Everything is
 * built in dir.tmp (removed first), renamed over dir (the old one moved to
 * dir.old.tmp and removed), parent folders created, the parent fsynced. Errors:
 * LVD_ERR_INVALID (no src_dir, a bad folder name, dir not empty without replace, dir a
 * file), LVD_ERR_FORMAT (src_dir/config.json), LVD_ERR_IO, LVD_ERR_NOMEM; each names the
 * folder, file or tensor; nothing is left behind on failure. */
int lvd_hf_save(const char *dir, const struct lvd_hf_tensor *t, size_t n, const struct lvd_hf_save_opts *o,
		struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
