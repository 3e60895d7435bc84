/* Unit tests of the memory planner (lib/train/plan.h): the parameter arithmetic of the
 * real Llama-3.2-11B-Vision config (tests/golden/mllama/config-11b, a shape-only model:
 * no weights), the parts' dtype / ZeRO rules, size parsing, the advice, and the
 * predicted CPU peak of the tiny golden model against the measured growth of the
 * process's resident set (VmHWM − VmRSS before loading, /proc/self/status) over load +
 * LoRA + one forward + backward of the planned shape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "models/mllama/mllama.h"
#include "train/plan.h"

/* the resident-set check is meaningless under a sanitizer */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

/* kB of a /proc/self/status field ("VmRSS:", "VmHWM:"); -1 when unreadable */
static long status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static void test_parse_size(void)
{
	struct lvd_error err = {0};
	size_t b = 0;
	CHECK(lvd_plan_parse_size("64G", &b, &err) == 0 && b == (size_t)64 << 30);
	CHECK(lvd_plan_parse_size("512MiB", &b, &err) == 0 && b == (size_t)512 << 20);
	CHECK(lvd_plan_parse_size("1.5T", &b, &err) == 0 && b == (size_t)3 << 39);
	CHECK(lvd_plan_parse_size("1000", &b, &err) == 0 && b == 1000);
	CHECK(lvd_plan_parse_size("8kB", &b, &err) == 0 && b == 8192);
	static const char *const bad[] = {"", "G", "0", "-1G", "12X", "64GG", "nan", "1e30"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		CHECK(lvd_plan_parse_size(bad[i], &b, &err) == LVD_ERR_INVALID);
		CHECK(strstr(err.msg, "is not a size") != NULL);
	}
}

/* Llama-3.2-11B-Vision by hand (shapes of HF's MllamaForConditionalGeneration). */
static uint64_t params_11b(void)
{
	const uint64_t D = 1280, P1 = 1601, na = 9, TL = 4, I = 5120;
	uint64_t v = D * 3 * 14 * 14 + D + P1 * D + na * TL * P1 * D + 2 * na * TL * D + 3 + 4 * D; /* 3 gates */
	v += 40 * (4 * D * D + I * D + I + D * I + D + 4 * D) + 8 * 2; /* 32 + 8 layers, global gates */
	const uint64_t Dt = 4096, KV = 1024, It = 14336;
	uint64_t t = 128264 * Dt + 40 * (2 * Dt * Dt + 2 * KV * Dt + 3 * It * Dt + 2 * Dt) + 8 * (2 * 128 + 2) + Dt +
		     128256 * Dt;
	return v + (7680 * Dt + Dt) + t;
}

static void test_11b(void)
{
	struct lvd_error err = {0};
	struct lvd_mllama *m = NULL;
	REQUIRE(lvd_mllama_create_shape(&m, lvd_test_path("tests/golden/mllama/config-11b"), &err) == 0);
	struct lvd_plan_opts o = {LVD_PLAN_CPU, 1, LVD_MLLAMA_ALL_GROUPS, 1, 0, 1, 512, 1, 64, 1000,
				  LVD_MLLAMA_RECOMPUTE_NONE, 0};
	struct lvd_plan p, z, c, cz;
	REQUIRE(lvd_plan_mllama(m, &o, &p, &err) == 0);
	CHECK(p.n_params == params_11b() && p.n_params == 10670220835ull); /* the published 10.67 B */
	CHECK(p.n_trained == p.n_params);
	const uint64_t n = p.n_params;
	CHECK(p.part[0] == 4 * n && p.part[2] == 4 * n && p.part[3] == 0 && p.part[4] == 8 * n);
	CHECK(p.part[5] == 4 * 1000 * 4);
	/* latt_ws = 8 cross layers · 64 rows · 32 heads · 4·1601 vision tokens floats */
	CHECK(p.part[8] == (size_t)8 * 64 * 32 * 4 * 1601 * 4);
	size_t sum = 0;
	for (int i = 0; i < LVD_PLAN_NPARTS; i++)
		sum += p.part[i];
	CHECK(p.peak == sum && p.verified);
	CHECK(p.acts_text > 0 && p.acts_vision > 0 && p.part[6] == p.acts_text + p.acts_vision);
	/* ZeRO-1 on 8 ranks: 3·n/8 floats (m, v, reduced gradient shard) */
	o.world = 8, o.zero = 1;
	REQUIRE(lvd_plan_mllama(m, &o, &z, &err) == 0);
	CHECK(z.part[4] == 3 * (n / 8 + 1) * 4 && z.part[0] == p.part[0] && z.part[6] == p.part[6]);
	/* CUDA: bf16 weights/gradients/activations, fp32 master; unverified */
	o.device = LVD_PLAN_CUDA, o.world = 1, o.zero = 0;
	REQUIRE(lvd_plan_mllama(m, &o, &c, &err) == 0);
	CHECK(c.part[0] == 2 * n && c.part[2] == 2 * n && c.part[3] == 4 * n && c.part[4] == 8 * n);
	CHECK(c.part[6] == p.part[6] / 2 && !c.verified);
	o.world = 8, o.zero = 1;
	REQUIRE(lvd_plan_mllama(m, &o, &cz, &err) == 0);
	CHECK(cz.part[3] == (n / 8 + 1) * 4 && cz.part[4] == z.part[4]);
	/* frozen groups: only the vision tower trained (its 863.6 M); the CPU gradient block still holds all */
	o.device = LVD_PLAN_CPU, o.world = 1, o.zero = 0, o.train_mask = LVD_MLLAMA_VISION;
	REQUIRE(lvd_plan_mllama(m, &o, &z, &err) == 0);
	CHECK(z.n_trained == 863567379ull && z.part[4] == 8 * z.n_trained && z.part[2] == 4 * n);
	/* LoRA r 8 on q_proj,v_proj: 40 text layers r·(4096+4096) + r·(4096+1024), 40 vision
	 * layers 2·r·(1280+1280) */
	struct lvd_mllama_lora_cfg lc = {8, 32, 0.05f, 0, "q_proj,v_proj", 1};
	REQUIRE(lvd_mllama_add_lora(m, &lc, &err) == 0);
	o.full = 0, o.train_mask = 0;
	REQUIRE(lvd_plan_mllama(m, &o, &p, &err) == 0);
	const uint64_t nl = 40 * 8 * (8192 + 5120) + 40 * 2 * 8 * 2560;
	CHECK(p.n_trained == nl && p.n_trained == 5898240);
	CHECK(p.part[1] == 4 * nl * 4 && p.part[2] == 0 && p.part[4] == 2 * nl * 4 && p.part[0] == 4 * n);
	/* training memory modes (T 512, one 4-tile image, 64 captured rows): recompute xattn
	 * keeps the 8 cross layers' inputs (+ one shared layer), all keeps every layer's;
	 * the fused head drops the [512, 128256] logits (one double per row kept) and the
	 * dlogits of the scratch (a [512, 8192] vocabulary block instead) */
	struct lvd_plan q[7];
	static const int rmode[7] = {0, 1, 2, 2, 6, 6, 4}, xchunk[7] = {0, 0, 0, LVD_MLLAMA_XENT_CHUNK, 0,
									 LVD_MLLAMA_XENT_CHUNK, 0};
	for (int i = 0; i < 7; i++) {
		o.recompute = (enum lvd_mllama_recompute)rmode[i];
		o.xent_chunk = xchunk[i];
		REQUIRE(lvd_plan_mllama(m, &o, &q[i], &err) == 0);
		if (getenv("LVD_TEST_VERBOSE"))
			fprintf(stderr, "  11B LoRA, recompute %s, fused head %d: acts %.1f MiB (text %.1f), scratch %.1f MiB, "
				"peak %.2f GiB\n", lvd_mllama_recompute_name(rmode[i]), xchunk[i],
				q[i].part[6] / 1048576.0, q[i].acts_text / 1048576.0, q[i].part[7] / 1048576.0,
				q[i].peak / 1073741824.0);
	}
	CHECK(q[0].part[6] == p.part[6] && q[1].part[6] < q[0].part[6] && q[2].part[6] < q[1].part[6]);
	CHECK(q[3].part[6] == q[2].part[6] - (512 * 128256 - 1024) * 4);
	CHECK(q[3].part[7] == q[2].part[7] - (512 * 128256 - (512 * 8192 + 4 * 512)) * 4);
	/* ,vision: the 40 vision layers keep their inputs and share one region (N = 4·1608
	 * tokens, D 1280, I 5120, 16 heads; LoRA r 8 on q and v with dropout): 39 layers'
	 * ln1 q k v att o_out x_mid ln2 m_out (N·D each), 4 row stats, attention stats, fc1
	 * and GELU outputs (N·I each) and the two sites' u and dropped inputs are saved */
	const size_t N = 4 * 1608, D = 1280;
	const size_t vlayer = 9 * N * D + 4 * N + 16 * N * 2 + 2 * N * 5120 + 2 * (N * 8 + N * D);
	CHECK(q[4].part[6] == q[2].part[6] - 39 * vlayer * 4 && q[4].acts_text == q[2].acts_text);
	CHECK(q[6].part[6] == q[0].part[6] - 39 * vlayer * 4 && q[4].part[7] == q[2].part[7]);
	CHECK(q[5].part[6] == q[4].part[6] - (512 * 128256 - 1024) * 4 &&
	      q[5].acts_vision < q[3].acts_vision / 9);
	CHECK(lvd_mllama_recompute_mode(m) == LVD_MLLAMA_RECOMPUTE_NONE && lvd_mllama_xent_chunk(m) == 0); /* restored */
	/* the advice for activations names --recompute */
	char buf[512];
	o.recompute = LVD_MLLAMA_RECOMPUTE_NONE, o.xent_chunk = 0;
	struct lvd_plan a = q[0];
	a.part[6] = (size_t)1 << 40;
	a.peak = a.part[6];
	CHECK(lvd_plan_advice(&a, &o, (size_t)64 << 30, buf, sizeof buf) && strstr(buf, "--recompute xattn or all"));
	/* all without vision, the vision tower's activations dominating: ,vision */
	o.recompute = LVD_MLLAMA_RECOMPUTE_ALL;
	a = q[2];
	a.part[6] = a.peak = (size_t)1 << 40;
	CHECK(a.acts_vision > a.acts_text && lvd_plan_advice(&a, &o, (size_t)64 << 30, buf, sizeof buf) &&
	      strstr(buf, "--recompute all,vision"));
	o.recompute = LVD_MLLAMA_RECOMPUTE_ALL | LVD_MLLAMA_RECOMPUTE_VISION;
	CHECK(lvd_plan_advice(&a, &o, (size_t)64 << 30, buf, sizeof buf) && !strstr(buf, "--recompute"));
	/* --full with the vision tower frozen: vision first, free */
	o.full = 1, o.train_mask = LVD_MLLAMA_TEXT, o.recompute = LVD_MLLAMA_RECOMPUTE_ALL;
	CHECK(lvd_plan_advice(&a, &o, (size_t)64 << 30, buf, sizeof buf) && strstr(buf, "--recompute vision (free"));
	o.train_mask = LVD_MLLAMA_ALL_GROUPS;
	CHECK(lvd_plan_advice(&a, &o, (size_t)64 << 30, buf, sizeof buf) && strstr(buf, "--recompute all,vision"));
	o.full = 0, o.train_mask = 0;
	o.recompute = LVD_MLLAMA_RECOMPUTE_NONE;
	/* the advice names the dominating part and the option */
	CHECK(lvd_plan_advice(&p, &o, p.peak, buf, sizeof buf) == NULL);
	CHECK(lvd_plan_advice(&p, &o, (size_t)64 << 30, buf, sizeof buf) != NULL);
	CHECK(strstr(buf, "weights dominates") != NULL);
	o.full = 1, o.train_mask = LVD_MLLAMA_ALL_GROUPS;
	lvd_mllama_free(m);
	REQUIRE(lvd_mllama_create_shape(&m, lvd_test_path("tests/golden/mllama/config-11b"), &err) == 0);
	REQUIRE(lvd_plan_mllama(m, &o, &p, &err) == 0);
	CHECK(lvd_plan_advice(&p, &o, (size_t)64 << 30, buf, sizeof buf) != NULL);
	CHECK(strstr(buf, "optim dominates") != NULL && strstr(buf, "ZeRO") != NULL);
	CHECK(lvd_plan_dominant(&p) == 4);
	/* errors */
	o.world = 0;
	CHECK(lvd_plan_mllama(m, &o, &p, &err) == LVD_ERR_INVALID);
	o.world = 1, o.T = 0;
	CHECK(lvd_plan_mllama(m, &o, &p, &err) == LVD_ERR_INVALID);
	lvd_mllama_free(m);
}

/* Predicted vs measured on the tiny model: the parts a forward + backward holds
 * (weights, LoRA, acts, scratch) against the resident-set growth of this process. */
static void test_tiny_measured(void)
{
#ifdef SANITIZED
	SKIP("a sanitizer's shadow memory and quarantine inflate the resident set");
#endif
	FILE *cr = fopen("/proc/self/clear_refs", "w"); /* "5" resets VmHWM to VmRSS */
	int reset = cr && fputs("5", cr) >= 0;
	if (cr && fclose(cr))
		reset = 0;
	long rss0 = status_kb("VmRSS:");
	if (!reset || rss0 < 0 || status_kb("VmHWM:") < 0)
		SKIP("no /proc/self/status VmRSS/VmHWM or clear_refs to reset the peak");
	struct lvd_error err = {0};
	struct lvd_mllama *m = NULL;
	REQUIRE(lvd_mllama_load_frozen(&m, lvd_test_path("tests/golden/mllama/model"), &err) == 0);
	struct lvd_mllama_lora_cfg lc = {8, 32, 0.0f, 0, "q_proj,v_proj", 1};
	REQUIRE(lvd_mllama_add_lora(m, &lc, &err) == 0);
	enum { T = 1024, NCAP = 64 };
	struct lvd_plan_opts o = {LVD_PLAN_CPU, 0, 0, 1, 0, 1, T, 1, NCAP, 0, LVD_MLLAMA_RECOMPUTE_NONE, 0};
	struct lvd_plan p;
	REQUIRE(lvd_plan_mllama(m, &o, &p, &err) == 0);
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	const int TL = c->v_max_tiles, HW = c->v_image_size;
	float *pix = calloc((size_t)TL * 3 * HW * HW, sizeof *pix);
	int *ids = calloc(T, sizeof *ids), *lab = calloc(T, sizeof *lab), *xm = calloc((size_t)T * TL, sizeof *xm);
	int arid[1] = {1}, arm[4] = {1, 0, 0, 0}, rows[NCAP], off[2] = {0, NCAP};
	REQUIRE(pix && ids && lab && xm);
	for (size_t i = 0; i < (size_t)TL * 3 * HW * HW; i++)
		pix[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
	for (int t = 0; t < T; t++) {
		ids[t] = t == 0 ? c->image_token_index : (t * 37) % c->vocab;
		lab[t] = (t * 53) % c->vocab;
		xm[(size_t)t * TL] = 1;
	}
	for (int i = 0; i < NCAP; i++)
		rows[i] = 2 * i + 1;
	struct lvd_mllama_batch b = {.B = 1, .T = T, .M = 1, .input_ids = ids, .labels = lab, .pixel_values = pix,
				     .aspect_ratio_ids = arid, .aspect_ratio_mask = arm, .cross_attention_mask = xm,
				     .cap_rows = rows, .cap_off = off};
	long in_kb = (long)(((size_t)TL * 3 * HW * HW * 4 + (size_t)T * (12 + 4 * TL)) / 1024);
	REQUIRE(lvd_mllama_forward(m, &b, &err) == 0);
	REQUIRE(lvd_mllama_backward(m, 1.0f, NULL, &err) == 0);
	struct lvd_mllama_mem used;
	lvd_mllama_mem_used(m, &used);
	CHECK(used.acts == p.part[6] && used.scratch == p.part[7]); /* the model carved what was planned */
	long grown = status_kb("VmHWM:") - rss0 - in_kb;
	double pred = (double)(p.part[0] + p.part[1] + p.part[6] + p.part[7]) / 1024.0;
	printf("  predicted %.0f kB (weights %zu, lora %zu, acts %zu, scratch %zu B), measured growth %ld kB, "
	       "ratio %.3f\n", pred, p.part[0], p.part[1], p.part[6], p.part[7], grown, grown / pred);
	/* tolerance: the measured growth within 0.8x .. 1.25x of the prediction (the ops' own
	 * workspace, allocator and page rounding come on top) */
	CHECK(grown >= 0.8 * pred && grown <= 1.25 * pred);
	/* the shape-only model (what lvd-sft plans with, before loading) plans the same bytes */
	struct lvd_mllama *sm = NULL;
	struct lvd_plan sp;
	REQUIRE(lvd_mllama_create_shape(&sm, lvd_test_path("tests/golden/mllama/model"), &err) == 0);
	REQUIRE(lvd_mllama_add_lora(sm, &lc, &err) == 0);
	REQUIRE(lvd_plan_mllama(sm, &o, &sp, &err) == 0);
	CHECK(sp.peak == p.peak && sp.n_params == p.n_params && memcmp(sp.part, p.part, sizeof p.part) == 0);
	lvd_mllama_free(sm);
	/* the training memory modes: what the planner predicts is what forward + backward
	 * carve, on a fresh model in growing order (a model keeps its largest capacity) */
	REQUIRE(lvd_mllama_load_frozen(&sm, lvd_test_path("tests/golden/mllama/model"), &err) == 0);
	REQUIRE(lvd_mllama_add_lora(sm, &lc, &err) == 0);
	static const int rmode[6] = {6, 2, 5, 1, 4, 0};
	struct lvd_plan rp[6];
	int order[6];
	for (int i = 0; i < 6; i++) { /* growing acts: the vision modes' order depends on the shape */
		o.recompute = (enum lvd_mllama_recompute)rmode[i];
		o.xent_chunk = i == 0 ? 64 : 0;
		REQUIRE(lvd_plan_mllama(sm, &o, &rp[i], &err) == 0);
		int j = i;
		for (; j > 0 && rp[order[j - 1]].part[6] > rp[i].part[6]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	CHECK(order[0] == 0 && order[5] == 5);
	for (int k = 0; k < 6; k++) {
		int i = order[k];
		o.recompute = (enum lvd_mllama_recompute)rmode[i];
		o.xent_chunk = i == 0 ? 64 : 0;
		sp = rp[i];
		lvd_mllama_set_recompute(sm, o.recompute);
		lvd_mllama_set_xent_chunk(sm, o.xent_chunk);
		REQUIRE(lvd_mllama_forward(sm, &b, &err) == 0);
		REQUIRE(lvd_mllama_backward(sm, 1.0f, NULL, &err) == 0);
		lvd_mllama_mem_used(sm, &used);
		CHECKF(used.acts == sp.part[6], "recompute %s: acts carved %zu, planned %zu",
		       lvd_mllama_recompute_name(rmode[i]), used.acts, sp.part[6]);
		CHECKF(i > 0 || used.scratch == sp.part[7], "scratch carved %zu, planned %zu", used.scratch, sp.part[7]);
		if (getenv("LVD_TEST_VERBOSE"))
			printf("  recompute %s, fused head %d: acts %zu B, scratch %zu B\n", lvd_mllama_recompute_name(rmode[i]),
			       o.xent_chunk, sp.part[6], sp.part[7]);
	}
	CHECK(sp.part[6] == p.part[6]); /* none, logits: the plan above */
	lvd_mllama_free(sm);
	free(pix), free(ids), free(lab), free(xm);
	lvd_mllama_free(m);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_tiny_measured), /* first: before the 11B LoRA blocks raise the peak */
		TEST(test_parse_size),
		TEST(test_11b),
		{0},
	};
	return lvd_test_main(argc, argv, tests);
}
