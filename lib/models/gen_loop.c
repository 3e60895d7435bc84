/* lib/models/gen_loop.c — generation bookkeeping shared by the models (gen_loop.h). */
#include "models/gen_loop.h"

#include <stdlib.h>
#include <string.h>

int lvd_gen_loop_init(struct lvd_gen_loop *L, int B, int T0, const int *attn_mask, int *pos,
		      const struct lvd_gen_opts *o, const char *what, struct lvd_error *err)
{
	memset(L, 0, sizeof *L);
	if (!o || o->max_new_tokens < 1 || o->n_eos < 0 || (o->n_eos && !o->eos))
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: generate: max_new_tokens >= 1 and an eos list needed", what);
	if (B < 1 || T0 < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: generate: empty batch", what);
	for (int s = 0; attn_mask && s < B; s++) {
		int any = 0;
		for (int t = 0; t < T0; t++)
			any |= attn_mask[(size_t)s * T0 + t] != 0;
		if (!any)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: generate: sample %d has no real token", what, s);
	}
	L->B = B, L->T0 = T0, L->Tc = T0 + o->max_new_tokens, L->max_new = o->max_new_tokens;
	L->n_eos = o->n_eos, L->pad = o->pad_id, L->pick = o->pick, L->pick_user = o->pick_user;
	size_t nints = (size_t)o->n_eos + 1 + 3 * (size_t)B;
	L->block = calloc(nints * sizeof(int) + (size_t)B * L->Tc, 1);
	if (!L->block)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: generate: out of memory", what);
	int *ip = L->block;
	L->eos = ip, ip += o->n_eos + 1;
	L->done = ip, ip += B;
	L->last = ip, ip += B;
	L->posnext = ip, ip += B;
	L->keep = (uint8_t *)ip;
	if (o->n_eos)
		memcpy(L->eos, o->eos, sizeof(int) * (size_t)o->n_eos);
	for (int s = 0; s < B; s++)
		for (int t = 0; t < T0; t++) {
			int real = attn_mask ? attn_mask[(size_t)s * T0 + t] != 0 : 1;
			L->keep[(size_t)s * L->Tc + t] = (uint8_t)real;
			L->posnext[s] += real;
		}
	if (pos)
		lvd_gen_loop_prompt_pos(L, pos);
	return 0;
}

void lvd_gen_loop_prompt_pos(const struct lvd_gen_loop *L, int *pos)
{
	for (int s = 0; s < L->B; s++)
		for (int t = 0, n = 0; t < L->T0; t++) {
			int real = L->keep[(size_t)s * L->Tc + t];
			pos[(size_t)s * L->T0 + t] = real ? n : 0;
			n += real;
		}
}

void lvd_gen_loop_free(struct lvd_gen_loop *L)
{
	free(L->block);
	memset(L, 0, sizeof *L);
}

int lvd_gen_loop_over(const struct lvd_gen_loop *L)
{
	int alldone = 1;
	for (int s = 0; s < L->B; s++)
		alldone &= L->done[s];
	return L->n_new >= L->max_new || alldone;
}

void lvd_gen_loop_feed(struct lvd_gen_loop *L, int t, int *ids, int *pos)
{
	for (int s = 0; s < L->B; s++) {
		ids[s] = L->last[s];
		pos[s] = L->posnext[s]++;
		L->keep[(size_t)s * L->Tc + t] = 1;
	}
}

void lvd_gen_loop_choose(struct lvd_gen_loop *L, const float *logits, int V, int *next)
{
	for (int s = 0; s < L->B; s++) {
		const float *lg = logits + (size_t)s * V;
		int best = 0;
		if (L->done[s]) {
			best = L->pad;
		} else {
			if (L->pick) {
				best = L->pick(L->pick_user, s, L->n_new, lg, V);
				LVD_ASSERT(best >= 0 && best < V);
			} else {
				for (int j = 1; j < V; j++)
					if (lg[j] > lg[best])
						best = j;
			}
			for (int e = 0; e < L->n_eos; e++)
				if (best == L->eos[e])
					L->done[s] = 1;
		}
		L->last[s] = best;
		next[s] = best;
	}
	L->n_new++;
}
