/* lib/train/plan.c — the memory planner (plan.h): parameter counts from the model's
 * table, activations and scratch from lvd_mllama_measure, the rest from the dtypes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/plan.h"
#include "train/zero3.h"

static const char *const PART[LVD_PLAN_NPARTS] = {"weights", "lora",    "grads",   "master", "optim",
						  "aligner", "acts",    "scratch", "latt_ws"};

const char *lvd_plan_part_name(int i) { return i >= 0 && i < LVD_PLAN_NPARTS ? PART[i] : "?"; }

int lvd_plan_mllama(struct lvd_mllama *m, const struct lvd_plan_opts *o, struct lvd_plan *p,
		    struct lvd_error *err)
{
	memset(p, 0, sizeof *p);
	if (o->world < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "plan: world must be >= 1");
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	struct lvd_mllama_mem full, text;
	const enum lvd_mllama_recompute r0 = lvd_mllama_recompute_mode(m);
	const int x0 = lvd_mllama_xent_chunk(m);
	lvd_mllama_set_recompute(m, o->recompute);
	lvd_mllama_set_xent_chunk(m, o->xent_chunk);
	int rc = lvd_mllama_measure(m, o->B, o->T, o->M, o->ncap, &full, err);
	if (!rc)
		rc = lvd_mllama_measure(m, o->B, o->T, 0, 0, &text, err);
	lvd_mllama_set_recompute(m, r0);
	lvd_mllama_set_xent_chunk(m, x0);
	if (rc)
		return rc;
	const int cuda = o->device == LVD_PLAN_CUDA;
	size_t np = lvd_mllama_nparams(m), nt = 0, nall = 0;
	for (size_t i = 0; i < np; i++) {
		const struct lvd_mllama_param *q = lvd_mllama_param_at(m, i);
		nall += q->numel;
		if (o->full && (lvd_mllama_param_group(c, q->name) & o->train_mask))
			nt += q->numel;
	}
	size_t nlora = o->full ? 0 : full.lora / sizeof(float);
	if (!o->full)
		nt = nlora;
	p->n_params = nall;
	p->n_trained = nt;
	const int zero = o->full && o->zero && o->world > 1;
	size_t *q = p->part;
	q[0] = nall * (cuda ? 2 : 4);
	q[1] = nlora * 4 * sizeof(float); /* params, grads, the model's two moment floats */
	q[2] = o->full ? (cuda ? nt * 2 : full.params) : 0; /* CPU: the whole gradient block */
	q[3] = cuda && o->full ? (zero ? (nt / (size_t)o->world + 1) * 4 : nt * 4) : 0;
	q[4] = zero ? 3 * (nt / (size_t)o->world + 1) * sizeof(float) : 2 * nt * sizeof(float);
	q[5] = 4 * o->aligner_params * sizeof(float);
	size_t div = cuda ? 2 : 1;
	q[6] = full.acts / div;
	q[7] = full.scratch / div;
	size_t S = (size_t)o->M * c->v_max_tiles * ((size_t)(c->v_image_size / c->v_patch) *
						    (c->v_image_size / c->v_patch) + 1);
	q[8] = (size_t)c->n_cross * o->ncap * c->t_heads * S * sizeof(float) / div;
	p->acts_text = text.acts / div;
	p->acts_vision = q[6] > p->acts_text ? q[6] - p->acts_text : 0;
	p->acts_per_text_layer = c->t_layers ? p->acts_text / (size_t)c->t_layers : 0;
	int nvl = c->v_layers + c->v_global_layers;
	p->acts_per_vision_layer = nvl ? p->acts_vision / (size_t)nvl : 0;
	for (int i = 0; i < LVD_PLAN_NPARTS; i++)
		p->peak += q[i];
	p->verified = !cuda;
	return 0;
}

size_t lvd_plan_shard_frozen(struct lvd_mllama *m, const struct lvd_plan_opts *o, struct lvd_plan *p)
{
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	const int eb = o->device == LVD_PLAN_CUDA ? 2 : 4;
	size_t *nf = calloc((size_t)c->t_layers + 1, sizeof *nf), whole = 0;
	if (!nf)
		return 0;
	for (int l = 0; l < c->t_layers; l++) {
		float **slot[LVD_MLLAMA_LAYER_TENSORS];
		size_t numel[LVD_MLLAMA_LAYER_TENSORS];
		struct lvd_mllama_param *tab[LVD_MLLAMA_LAYER_TENSORS];
		int n = lvd_mllama_text_layer_weights(m, l, slot, numel, tab);
		for (int i = 0; i < n; i++)
			nf[l] += numel[i];
		whole += nf[l] * (size_t)eb;
	}
	size_t sharded = (size_t)lvd_zero3_plan_bytes(nf, c->t_layers, o->world, eb);
	free(nf);
	if (sharded >= whole || p->part[0] < whole)
		return 0;
	p->part[0] -= whole - sharded;
	p->peak -= whole - sharded;
	return whole - sharded;
}

int lvd_plan_dominant(const struct lvd_plan *p)
{
	int d = 0;
	for (int i = 1; i < LVD_PLAN_NPARTS; i++)
		if (p->part[i] > p->part[d])
			d = i;
	return d;
}

const char *lvd_plan_size(char *buf, size_t n, size_t bytes)
{
	static const char *const U[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4)
		v /= 1024, u++;
	if (u == 0)
		snprintf(buf, n, "%zu B", bytes);
	else
		snprintf(buf, n, "%.2f %s", v, U[u]);
	return buf;
}

void lvd_plan_print(FILE *f, const struct lvd_plan *p, const struct lvd_plan_opts *o)
{
	char b[32];
	fprintf(f, "plan: %s, %s, %d rank%s%s, micro-batch %d x %d tokens, %d image%s, %d captured rows%s\n",
		o->device == LVD_PLAN_CUDA ? "cuda (bf16 weights/activations, fp32 master + moments)" : "cpu (fp32)",
		o->full ? "full" : "LoRA", o->world, o->world > 1 ? "s" : "",
		o->full && o->zero && o->world > 1 ? " ZeRO-1" : "", o->B, o->T, o->M, o->M == 1 ? "" : "s", o->ncap,
		p->verified ? "" : " [unverified: no GPU run yet]");
	fprintf(f, "plan: recompute %s, LM head %s\n", lvd_mllama_recompute_name(o->recompute),
		o->xent_chunk ? "fused with the loss (vocabulary chunks, no logits)" : "logits kept");
	if (p->n_params >= 1000000000u)
		fprintf(f, "plan: parameters %.3f B, trained %.3f M\n", (double)p->n_params / 1e9,
			(double)p->n_trained / 1e6);
	else
		fprintf(f, "plan: parameters %.3f M, trained %.3f M\n", (double)p->n_params / 1e6,
			(double)p->n_trained / 1e6);
	for (int i = 0; i < LVD_PLAN_NPARTS; i++)
		if (p->part[i])
			fprintf(f, "plan:   %-8s %12s\n", PART[i], lvd_plan_size(b, sizeof b, p->part[i]));
	char t1[32], t2[32];
	fprintf(f, "plan:   acts per text layer %s, per vision layer %s (average)\n",
		lvd_plan_size(t1, sizeof t1, p->acts_per_text_layer), lvd_plan_size(t2, sizeof t2, p->acts_per_vision_layer));
	fprintf(f, "plan: predicted peak per rank %s\n", lvd_plan_size(b, sizeof b, p->peak));
}

int lvd_plan_parse_size(const char *s, size_t *out, struct lvd_error *err)
{
	char *end;
	double v = strtod(s, &end);
	double mul = 1;
	if (end != s && *end) {
		switch (*end) {
		case 'K': case 'k': mul = 1024.0; end++; break;
		case 'M': case 'm': mul = 1024.0 * 1024; end++; break;
		case 'G': case 'g': mul = 1024.0 * 1024 * 1024; end++; break;
		case 'T': case 't': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
		default: break;
		}
		if (mul > 1 && *end == 'i')
			end++;
		if (*end == 'B')
			end++;
	}
	if (end == s || *end || !(v > 0) || !isfinite(v) || v * mul > 1.8e19)
		return lvd_error_set(err, LVD_ERR_INVALID, "'%s' is not a size (e.g. 64G, 512M, 1.5T)", s);
	*out = (size_t)(v * mul);
	return 0;
}

const char *lvd_plan_advice(const struct lvd_plan *p, const struct lvd_plan_opts *o, size_t limit, char *buf,
			    size_t n)
{
	if (p->peak <= limit)
		return NULL;
	int d = lvd_plan_dominant(p);
	const char *fix;
	if (d == 2 || d == 3 || d == 4) {
		if (o->full && o->train_mask != LVD_MLLAMA_ALL_GROUPS)
			fix = "LoRA instead of --full";
		else if (o->full)
			fix = "LoRA instead of --full, or fewer --train groups";
		else
			fix = "a smaller --lora r or fewer targets";
		if (o->full && d == 4 && !(o->zero && o->world > 1))
			fix = "more ranks with ZeRO (--nproc-per-node N --zero 1), or LoRA instead of --full";
	} else if (d == 6 || d == 7 || d == 8) {
		const int rt = o->recompute & LVD_MLLAMA_RECOMPUTE_TEXT, rv = (o->recompute & LVD_MLLAMA_RECOMPUTE_VISION) != 0;
		if (d == 6 && !rv && o->full && !(o->train_mask & LVD_MLLAMA_VISION))
			fix = "--recompute vision (free here: the frozen vision tower's backward does not run, so nothing "
			      "is recomputed), then xattn,vision or all,vision, or a smaller --batch";
		else if (d == 6 && rt == LVD_MLLAMA_RECOMPUTE_NONE)
			fix = rv ? "--recompute xattn or all (activation checkpointing; with ,vision), or a smaller --batch"
				 : "--recompute xattn or all (activation checkpointing of the decoder layers; add ,vision for "
				   "the vision tower: all,vision keeps least), or a smaller --batch";
		else if (d == 6 && !rv && p->acts_vision > p->acts_text)
			fix = rt == LVD_MLLAMA_RECOMPUTE_XATTN ? "--recompute xattn,vision or all,vision (activation "
								  "checkpointing of the vision tower too), or a smaller --batch"
								: "--recompute all,vision (activation checkpointing of the vision "
								  "tower too), or a smaller --batch";
		else if (d == 6 && rt != LVD_MLLAMA_RECOMPUTE_ALL)
			fix = rv ? "--recompute all,vision (activation checkpointing), or a smaller --batch"
				 : "--recompute all (activation checkpointing; ,vision for the vision tower), or a smaller "
				   "--batch";
		else if (d == 6 && !rv)
			fix = "--recompute all,vision (activation checkpointing of the vision tower too), or a smaller "
			      "--batch";
		else
			fix = o->B > 1 ? "a smaller --batch (micro-batch; raise --grad-accum to keep the step)"
				       : "shorter records (fewer tokens or tiles per sample: the plan assumes --plan-tokens)";
	} else if (d == 0) {
		fix = o->full ? "LoRA instead of --full (the frozen base needs no gradients or moments)"
			      : "a machine with more memory (the base weights alone exceed it)";
	} else {
		fix = "a smaller --lora r or --aligner-hidden";
	}
	char a[32], b[32], c[32];
	snprintf(buf, n, "predicted peak %s exceeds --max-memory %s; %s dominates (%s): try %s",
		 lvd_plan_size(a, sizeof a, p->peak), lvd_plan_size(b, sizeof b, limit), PART[d],
		 lvd_plan_size(c, sizeof c, p->part[d]), fix);
	return buf;
}
