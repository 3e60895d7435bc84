/* lib/eval/sample.h — sampled decoding as transformers' generate(do_sample=True) runs it
 * for VLMEvalKit's Llama-3.2-Vision wrapper (`--preset vlmevalkit` of lvd-eval run):
 * the logits warpers in transformers' order — TemperatureLogitsWarper (scores / T),
 * TopKLogitsWarper (keep scores >= the k-th largest; ties kept), TopPLogitsWarper (sort
 * ascending, drop the tokens whose cumulative softmax is <= 1 − top_p, the largest always
 * kept) — then softmax over what is left and one draw. transformers 5.x applies top_k =
 * 50 when neither the model's generation_config nor the caller sets it, so the preset
 * uses temperature 0.6, top_p 0.9, top_k 50.
 *
 * The draw takes a uniform u in [0, 1) (a Philox value from lib/core/rng.h in lvd-eval,
 * keyed by seed, item and step): the kept tokens in ascending id order, the first whose
 * running probability sum exceeds u·total. Runs are therefore reproducible from the seed,
 * but the draws are not torch.multinomial's. */
#ifndef LVD_EVAL_SAMPLE_H
#define LVD_EVAL_SAMPLE_H

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_eval_sampler {
	float temperature; /* > 0 */
	float top_p;       /* (0, 1]; 1 disables */
	int top_k;         /* >= 0; 0 disables */
};

/* The token drawn from logits[V] with uniform u in [0, 1). Scratch: idx[V] ints and
 * prob[V] floats (caller-owned). */
int lvd_eval_sample(const struct lvd_eval_sampler *s, const float *logits, int V, float u, int *idx, float *prob);

#ifdef __cplusplus
}
#endif
#endif
