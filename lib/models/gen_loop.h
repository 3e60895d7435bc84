/* lib/models/gen_loop.h — the model-independent bookkeeping of batched generation with a
 * KV cache, as transformers' generate does it: the prompt's key mask and rotary
 * positions under left padding, the next-token choice (argmax or a caller's sampler),
 * stop ids, stopped samples fed the pad id, the end of the session. A model's session
 * (lib/models/mllama/mllama_gen.c, lib/models/minicpmv/minicpmv_gen.c) owns the network
 * part and calls these around it.
 *
 * Letters: B samples, T0 prompt length (padded), Tc = T0 + max_new cache capacity,
 * V vocabulary. */
#ifndef LVD_MODELS_GEN_LOOP_H
#define LVD_MODELS_GEN_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of a generation session (shared by the models' sessions). */
struct lvd_gen_opts {
	int max_new_tokens;              /* >= 1 */
	const int *eos;                  /* n_eos stop ids */
	int n_eos;
	int pad_id;                      /* emitted by stopped samples (HF: pad_token_id) */
	/* Next-token choice of a running sample: NULL picks the argmax (the first maximum, as
	 * torch.argmax); otherwise pick(pick_user, sample, step, logits[V], V) returns an id
	 * in [0, V) (a sampler; step counts from 0). Stopped samples are not asked. */
	int (*pick)(void *user, int sample, int step, const float *logits, int V);
	void *pick_user;
};

struct lvd_gen_loop {
	int B, T0, Tc, max_new, n_new, n_eos, pad;
	int (*pick)(void *user, int sample, int step, const float *logits, int V);
	void *pick_user;
	int *eos;        /* [n_eos] */
	int *done;       /* [B] sample stopped */
	int *last;       /* [B] the last chosen token */
	int *posnext;    /* [B] the rotary position of the next fed row */
	uint8_t *keep;   /* [B, Tc] key mask of the cache (1 real, 0 pad) */
	void *block;
};

/* Sets up a session of B prompts of T0 tokens: attn_mask [B, T0] (1 real, 0 pad; NULL all
 * real); pos [B, T0] (may be NULL: lvd_gen_loop_prompt_pos later) receives the prompt's
 * rotary positions (HF: cumsum(mask) − 1, pads 0).
 * Errors: LVD_ERR_INVALID (max_new_tokens < 1, an eos count without a list, a mask row
 * without a real token: names the sample; what = the caller's name for messages),
 * LVD_ERR_NOMEM. */
int lvd_gen_loop_init(struct lvd_gen_loop *L, int B, int T0, const int *attn_mask, int *pos,
		      const struct lvd_gen_opts *o, const char *what, struct lvd_error *err);
void lvd_gen_loop_free(struct lvd_gen_loop *L);
/* The prompt's positions pos [B, T0] as lvd_gen_loop_init gives them. */
void lvd_gen_loop_prompt_pos(const struct lvd_gen_loop *L, int *pos);
/* 1 when every sample stopped or max_new_tokens were produced. */
int lvd_gen_loop_over(const struct lvd_gen_loop *L);
/* The rows of the next step: ids[B] = the last tokens, pos[B] = their positions; marks
 * cache row t as real for every sample. */
void lvd_gen_loop_feed(struct lvd_gen_loop *L, int t, int *ids, int *pos);
/* Chooses next[B] from logits [B, V] (stopped samples get the pad id), marks samples that
 * emitted a stop id, counts the step. */
void lvd_gen_loop_choose(struct lvd_gen_loop *L, const float *logits, int V, int *next);

#ifdef __cplusplus
}
#endif
#endif
