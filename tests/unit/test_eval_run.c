/* tests/unit/test_eval_run.c — the library pieces of `lvd-eval run`, and the fixture and
 * oracle its CLI test (tests/cli/test_lvd_eval_run.sh) uses.
 *   test_sample_*     lvd_eval_sample against hand-worked cases of transformers' warper
 *                     rules (temperature, top-k with ties, top-p keeping the largest);
 *   test_pick_greedy  lvd_mllama_gen with a pick function returning the argmax gives
 *                     the tokens of the built-in greedy choice (golden tiny mllama);
 *   test_lora_load    lvd_mllama_lora_save then lvd_mllama_lora_load gives the same
 *                     adapters bit for bit (new and legacy key names), and bad adapter
 *                     folders are refused naming file and key;
 *   test_peft_folder  the adapter folder PEFT itself saved (tests/golden/mllama/
 *                     peft_adapter, tests/ref/gen_peft_adapter.py) loads with every A and
 *                     B equal to the golden PEFT weights of lora.safetensors.
 * Modes:
 *   --model DIR       writes a tiny random mllama whose vocabulary is the small Llama-3
 *                     tokenizer of tests/golden/tokenizer/small (4257 ids, <|image|> =
 *                     4256): the golden tiny mllama's weights with new embed_tokens
 *                     [4264, 64] and lm_head [4256, 64]; config.json, generation_config
 *                     (eos 4001/4008/4009, pad 4004), tokenizer.json; plus DIR/adapter
 *                     (a PEFT adapter, q_proj/v_proj r 4 with random B) and DIR/ckpt
 *                     (the same LoRA as an lvd-sft checkpoint: state.json +
 *                     state.safetensors "lora").
 *   --gen MODEL ADAPTER|- IMAGE MAXNEW PROMPT_JSON
 *                     greedy generation of one prompt (given as a JSON string, so that
 *                     trailing newlines survive the shell) straight through
 *                     lvd_mllama_gen_* (B = 1): prints the generated ids on one line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "harness.h"
#include "golden_util.h"
#include "core/rng.h"
#include "eval/sample.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/mllama/mllama.h"
#include "text/chat.h"
#include "text/llama_tok.h"
#include "train/loader.h"

#define GOLD "tests/golden/mllama/model"
#define SMALL_TOK "tests/golden/tokenizer/small/tokenizer.json"
#define V_TOK 4256       /* lm_head rows: ids below <|image|> */
#define N_EMBED 4264     /* vocab + 8, as Llama-3.2-Vision */
static const int EOS[3] = {4001, 4008, 4009};
#define PAD 4004

static char g_tmp[256];

/* ---- sampler ---------------------------------------------------------------------------- */

static void test_sample_topk(void)
{
	/* logits 0..4 for ids 0..4; top_k 2 keeps ids 3, 4; T = 1: p4 = e/(1+e) = 0.731 */
	float lg[5] = {0, 1, 2, 3, 4};
	int idx[5];
	float pr[5];
	struct lvd_eval_sampler s = {1.0f, 1.0f, 2};
	CHECK(lvd_eval_sample(&s, lg, 5, 0.0f, idx, pr) == 3);
	CHECK(lvd_eval_sample(&s, lg, 5, 0.26f, idx, pr) == 3);  /* p3 = 0.269 */
	CHECK(lvd_eval_sample(&s, lg, 5, 0.28f, idx, pr) == 4);
	CHECK(lvd_eval_sample(&s, lg, 5, 0.999f, idx, pr) == 4);
	/* ties with the k-th value are kept (scores < k-th are removed): 3 ids of 2.0 */
	float tie[4] = {2, 2, 2, 0};
	struct lvd_eval_sampler s1 = {1.0f, 1.0f, 1};
	CHECK(lvd_eval_sample(&s1, tie, 4, 0.0f, idx, pr) == 0);
	CHECK(lvd_eval_sample(&s1, tie, 4, 0.5f, idx, pr) == 1);
	CHECK(lvd_eval_sample(&s1, tie, 4, 0.9f, idx, pr) == 2);
}

static void test_sample_topp(void)
{
	/* probs 0.5, 0.3, 0.15, 0.05 (as logs). top_p 0.9: ascending cumsum 0.05, 0.20 ->
	 * 0.05 <= 0.1 removed, 0.20 > 0.1 kept: ids 0, 1, 2 remain (0.95 in all) */
	float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
	int idx[4];
	float pr[4];
	struct lvd_eval_sampler s = {1.0f, 0.9f, 0};
	CHECK(lvd_eval_sample(&s, lg, 4, 0.999f, idx, pr) == 2);
	CHECK(lvd_eval_sample(&s, lg, 4, 0.5f / 0.95f - 0.01f, idx, pr) == 0);
	CHECK(lvd_eval_sample(&s, lg, 4, 0.5f / 0.95f + 0.01f, idx, pr) == 1);
	/* top_p so small that only the largest survives (it is always kept) */
	struct lvd_eval_sampler g = {0.6f, 0.01f, 50};
	for (int k = 0; k < 8; k++)
		CHECK(lvd_eval_sample(&g, lg, 4, k / 8.0f, idx, pr) == 0);
	/* temperature sharpens: T = 0.25 on logits (0, 1): p1 = 1/(1+e^-4) = 0.982 */
	float two[2] = {0, 1};
	struct lvd_eval_sampler t = {0.25f, 1.0f, 0};
	CHECK(lvd_eval_sample(&t, two, 2, 0.017f, idx, pr) == 0);
	CHECK(lvd_eval_sample(&t, two, 2, 0.019f, idx, pr) == 1);
}

/* ---- pick hook ---------------------------------------------------------------------------- */

static int argmax_pick(void *user, int sample, int step, const float *lg, int V)
{
	(void)sample, (void)step;
	(*(int *)user)++;
	int b = 0;
	for (int j = 1; j < V; j++)
		if (lg[j] > lg[b])
			b = j;
	return b;
}

static void test_pick_greedy(void)
{
	struct lvd_mllama *m = NULL;
	struct lvd_error err = {0};
	REQUIRE(!lvd_mllama_load_frozen(&m, lvd_test_path(GOLD), &err));
	int ids[2][6] = {{200, 5, 17, 99, 3, 42}, {202, 202, 200, 11, 12, 13}};
	int am[2][6] = {{1, 1, 1, 1, 1, 1}, {0, 0, 1, 1, 1, 1}};
	struct lvd_mllama_batch b = {.B = 2, .T = 6, .M = 0, .input_ids = &ids[0][0]};
	int eos = 201, calls = 0, out[2][2][8], next[2];
	for (int v = 0; v < 2; v++) {
		struct lvd_gen_opts o = {8, &eos, 1, 202, v ? argmax_pick : NULL, &calls};
		struct lvd_mllama_gen *g = NULL;
		REQUIRE(!lvd_mllama_gen_begin(&g, m, &b, &am[0][0], &o, &err));
		int done = 0, n = 0;
		memset(out[v], 0, sizeof out[v]);
		while (!lvd_mllama_gen_step(g, next, &done, &err) && !done) {
			out[v][0][n] = next[0];
			out[v][1][n] = next[1];
			n++;
		}
		lvd_mllama_gen_free(g);
	}
	CHECK(calls > 0);
	CHECK(!memcmp(out[0], out[1], sizeof out[0]));
	lvd_mllama_free(m);
}

/* ---- PEFT adapter round trip ------------------------------------------------------------- */

static void fill_lora(struct lvd_mllama *m, uint64_t seed)
{
	size_t n;
	float *p = lvd_mllama_lora_params(m, &n);
	for (size_t i = 0; i < lvd_mllama_nlora(m); i++) {
		struct lvd_mllama_lora *L = lvd_mllama_lora_at(m, i);
		size_t nb = (size_t)L->out * (size_t)lvd_mllama_lora_rank(m);
		lvd_rng_fill_normal(L->B, nb, seed, 7, (uint64_t)(L->B - p));
	}
}

static void test_lora_load(void)
{
	struct lvd_mllama *a = NULL, *b = NULL;
	struct lvd_error err = {0};
	char dir[400], path[500];
	REQUIRE(!lvd_mllama_load_frozen(&a, lvd_test_path(GOLD), &err));
	struct lvd_mllama_lora_cfg lc = {4, 8.0f, 0.1f, 0, "q_proj,v_proj,down_proj", 3};
	REQUIRE(!lvd_mllama_add_lora(a, &lc, &err));
	fill_lora(a, 5);
	for (int legacy = 0; legacy < 2; legacy++) {
		snprintf(dir, sizeof dir, "%s/lora%d", g_tmp, legacy);
		mkdir(dir, 0777);
		REQUIRE(!lvd_mllama_lora_save(a, dir, "tiny", legacy, &err));
		REQUIRE(!lvd_mllama_load_frozen(&b, lvd_test_path(GOLD), &err));
		int rc = lvd_mllama_lora_load(b, dir, &err);
		CHECKF(rc == 0, "%s", err.msg);
		CHECK(lvd_mllama_nlora(b) == lvd_mllama_nlora(a));
		size_t na, nb;
		float *pa = lvd_mllama_lora_params(a, &na), *pb = lvd_mllama_lora_params(b, &nb);
		CHECK(na == nb && pb && !memcmp(pa, pb, na * sizeof *pa));
		lvd_mllama_free(b);
		b = NULL;
	}
	/* a regex target_modules, a missing matrix, a foreign key */
	snprintf(dir, sizeof dir, "%s/lora0", g_tmp);
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	json_t *cfg = json_load_file(path, 0, NULL);
	REQUIRE(cfg);
	json_object_set_new(cfg, "target_modules", json_string(".*proj"));
	json_dump_file(cfg, path, 0);
	REQUIRE(!lvd_mllama_load_frozen(&b, lvd_test_path(GOLD), &err));
	CHECK(lvd_mllama_lora_load(b, dir, &err) != 0);
	CHECK_CONTAINS(err.msg, "target_modules");
	lvd_mllama_free(b);
	json_object_set_new(cfg, "target_modules", json_pack("[s, s, s, s]", "q_proj", "v_proj", "down_proj", "k_proj"));
	json_dump_file(cfg, path, 0);
	REQUIRE(!lvd_mllama_load_frozen(&b, lvd_test_path(GOLD), &err));
	CHECK(lvd_mllama_lora_load(b, dir, &err) != 0);
	CHECK_CONTAINS(err.msg, "no lora_A weight");
	CHECK_CONTAINS(err.msg, "k_proj");
	lvd_mllama_free(b);
	json_decref(cfg);
	lvd_mllama_free(a);
}

static void test_peft_folder(void)
{
	struct lvd_mllama *m = NULL;
	struct lvd_st *gs = NULL;
	struct lvd_error err = {0};
	REQUIRE(!lvd_mllama_load_frozen(&m, lvd_test_path(GOLD), &err));
	int rc = lvd_mllama_lora_load(m, lvd_test_path("tests/golden/mllama/peft_adapter"), &err);
	CHECKF(rc == 0, "%s", err.msg);
	REQUIRE(rc == 0);
	REQUIRE(!lvd_st_open(&gs, lvd_test_path("tests/golden/mllama/lora.safetensors"), &err));
	CHECK(lvd_mllama_lora_rank(m) == 4);
	size_t matched = 0;
	for (size_t i = 0; i < lvd_st_count(gs); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(gs, i);
		char mod[200];
		if (strncmp(t->name, "w.", 2) || lvd_gold_peft_module(mod, sizeof mod, t->name))
			continue;
		int isb = strstr(t->name, ".lora_B.") != NULL;
		struct lvd_mllama_lora *L = NULL;
		for (size_t k = 0; k < lvd_mllama_nlora(m); k++)
			if (!strcmp(lvd_mllama_lora_at(m, k)->module, mod))
				L = lvd_mllama_lora_at(m, k);
		CHECKF(L != NULL, "no adapter for %s", mod);
		if (!L)
			continue;
		size_t k;
		float *want = lvd_gold_f32(gs, t->name, &k);
		REQUIRE(want);
		CHECK(k == (size_t)4 * (size_t)(isb ? L->out : L->in));
		CHECK(!memcmp(isb ? L->B : L->A, want, sizeof(float) * k));
		free(want);
		matched++;
	}
	CHECK(matched == 2 * lvd_mllama_nlora(m) && matched > 0);
	lvd_st_close(gs);
	lvd_mllama_free(m);
}

/* ---- fixture: tiny model with the small tokenizer ------------------------------------------ */

static int copy_file(const char *from, const char *to, struct lvd_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = lvd_file_read_all(from, (size_t)64 << 20, &buf, &len, err);
	if (!rc)
		rc = lvd_file_write_atomic(to, buf, len, err);
	free(buf);
	return rc;
}

static int write_json_file(const char *path, json_t *j, struct lvd_error *err)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	int rc = s ? lvd_file_write_atomic(path, s, strlen(s), err) : lvd_error_set(err, LVD_ERR_NOMEM, "oom");
	free(s);
	return rc;
}

static int make_model(const char *dir, struct lvd_error *err)
{
	char p[600], q[600];
	int rc = lvd_mkdir_p(dir, err);
	struct lvd_st *st = NULL;
	struct lvd_st_writer *w = lvd_st_writer_new();
	float *bufs[128] = {0};
	int nb = 0;
	if (rc || (rc = lvd_st_open(&st, lvd_test_path(GOLD "/model.safetensors"), err)))
		goto out;
	for (size_t i = 0; i < lvd_st_count(st) && !rc; i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		int64_t shape[4] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 0, t->ndim > 2 ? t->shape[2] : 0,
				    t->ndim > 3 ? t->shape[3] : 0};
		int emb = strstr(t->name, "embed_tokens") != NULL, head = strstr(t->name, "lm_head") != NULL;
		if (emb || head)
			shape[0] = emb ? N_EMBED : V_TOK;
		size_t n = (size_t)shape[0];
		for (int d = 1; d < t->ndim; d++)
			n *= (size_t)shape[d];
		float *f = bufs[nb++] = malloc(sizeof(float) * n);
		LVD_ASSERT(f && nb < 128);
		if (emb || head)
			lvd_rng_fill_normal(f, n, 11, emb ? 1 : 2, 0);
		else
			rc = lvd_tensor_to_f32(t, f, n, err);
		if (!rc)
			rc = lvd_st_writer_add(w, t->name, LVD_DT_F32, t->ndim, shape, f, err);
	}
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	if (rc || (rc = lvd_st_writer_write(w, p, err)))
		goto out;
	json_t *cfg = json_load_file(lvd_test_path(GOLD "/config.json"), 0, NULL);
	json_t *tc = json_object_get(cfg, "text_config");
	json_object_set_new(cfg, "image_token_index", json_integer(V_TOK));
	json_object_set_new(tc, "vocab_size", json_integer(V_TOK));
	json_object_set_new(tc, "bos_token_id", json_integer(4000));
	json_object_set_new(tc, "eos_token_id", json_pack("[i, i, i]", EOS[0], EOS[1], EOS[2]));
	json_object_set_new(tc, "pad_token_id", json_integer(PAD));
	snprintf(p, sizeof p, "%s/config.json", dir);
	rc = write_json_file(p, cfg, err);
	json_decref(cfg);
	json_t *gc = json_pack("{s:i, s:[i, i, i], s:i}", "bos_token_id", 4000, "eos_token_id", EOS[0], EOS[1], EOS[2],
			       "pad_token_id", PAD);
	snprintf(p, sizeof p, "%s/generation_config.json", dir);
	if (!rc)
		rc = write_json_file(p, gc, err);
	json_decref(gc);
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	if (!rc)
		rc = copy_file(lvd_test_path(SMALL_TOK), p, err);
	if (rc)
		goto out;
	/* the same LoRA as a PEFT adapter and as an lvd-sft checkpoint */
	struct lvd_mllama *m = NULL;
	if ((rc = lvd_mllama_load_frozen(&m, dir, err)))
		goto out;
	struct lvd_mllama_lora_cfg lc = {4, 16.0f, 0.0f, 0, "q_proj,v_proj", 9};
	if (!(rc = lvd_mllama_add_lora(m, &lc, err))) {
		fill_lora(m, 13);
		snprintf(p, sizeof p, "%s/adapter", dir);
		snprintf(q, sizeof q, "%s/ckpt", dir);
		if (!(rc = lvd_mkdir_p(p, err)) && !(rc = lvd_mllama_lora_save(m, p, dir, 0, err)) &&
		    !(rc = lvd_mkdir_p(q, err))) {
			size_t n;
			float *lp = lvd_mllama_lora_params(m, &n);
			struct lvd_st_writer *cw = lvd_st_writer_new();
			int64_t sh[1] = {(int64_t)n};
			snprintf(p, sizeof p, "%s/ckpt/state.safetensors", dir);
			if (!(rc = lvd_st_writer_add(cw, "lora", LVD_DT_F32, 1, sh, lp, err)))
				rc = lvd_st_writer_write(cw, p, err);
			lvd_st_writer_free(cw);
			json_t *sj = json_pack("{s:i, s:{s:i, s:f, s:f, s:s, s:i}}", "step", 6, "options", "lora_r", 4,
					       "lora_alpha", 16.0, "lora_dropout", 0.05, "lora_targets", "q_proj,v_proj", "seed", 1);
			snprintf(p, sizeof p, "%s/ckpt/state.json", dir);
			if (!rc)
				rc = write_json_file(p, sj, err);
			json_decref(sj);
		}
	}
	lvd_mllama_free(m);
out:
	for (int i = 0; i < nb; i++)
		free(bufs[i]);
	lvd_st_writer_free(w);
	lvd_st_close(st);
	return rc;
}

/* ---- oracle: one prompt straight through lvd_mllama_gen ----------------------------------- */

static int gen_one(const char *model, const char *adapter, const char *image, int maxnew, const char *prompt)
{
	struct lvd_error err = {0};
	struct lvd_mllama *m = NULL;
	struct lvd_llama_tok *tok = NULL;
	struct lvd_mllama_image_cfg ic;
	struct lvd_image im = {0};
	struct lvd_chat_out co;
	lvd_chat_out_init(&co);
	int rc = lvd_mllama_load_frozen(&m, model, &err);
	if (!rc && strcmp(adapter, "-"))
		rc = lvd_mllama_lora_load(m, adapter, &err);
	if (!rc)
		rc = lvd_llama_tok_load(&tok, model, LVD_LLAMA_SCHEME_MLLAMA, &err);
	if (!rc)
		rc = lvd_loader_image_cfg(&ic, model, &err);
	if (!rc)
		rc = lvd_image_load(&im, image, LVD_ALPHA_WHITE, &err);
	if (rc) {
		fprintf(stderr, "test_eval_run --gen: %s\n", err.msg);
		return 1;
	}
	const struct lvd_mllama_config *c = lvd_mllama_cfg(m);
	int TL = c->v_max_tiles, arid, ntiles, armask[64];
	float *px = malloc(sizeof(float) * (size_t)TL * 3 * ic.tile * ic.tile);
	rc = lvd_mllama_image_process(px, &arid, armask, &ntiles, &ic, im.px, im.h, im.w, &err);
	struct lvd_chat_item items[2] = {{LVD_CHAT_IMAGE, NULL, 0}, {LVD_CHAT_TEXT, prompt, strlen(prompt)}};
	struct lvd_chat_msg msg = {"user", items, 2};
	if (!rc)
		rc = lvd_chat_render(tok, &msg, 1, LVD_CHAT_GEN_PROMPT, &co, &err);
	int T = (int)co.toks.n, *ids = malloc(sizeof(int) * (size_t)T), *xm = calloc((size_t)T * TL, sizeof(int));
	for (int t = 0; t < T; t++)
		ids[t] = co.toks.ids[t];
	lvd_mllama_cross_mask(xm, ids, T, c->image_token_index, 1, TL, &ntiles);
	struct lvd_mllama_batch b = {.B = 1, .T = T, .M = 1, .input_ids = ids, .pixel_values = px,
				     .aspect_ratio_ids = &arid, .aspect_ratio_mask = armask, .cross_attention_mask = xm};
	struct lvd_gen_opts o = {maxnew, EOS, 3, PAD, NULL, NULL};
	struct lvd_mllama_gen *g = NULL;
	if (!rc)
		rc = lvd_mllama_gen_begin(&g, m, &b, NULL, &o, &err);
	int next, done = 0;
	while (!rc && !lvd_mllama_gen_step(g, &next, &done, &err) && !done) {
		printf("%s%d", lvd_mllama_gen_count(g) > 1 ? " " : "", next);
		if (next == EOS[0] || next == EOS[1] || next == EOS[2])
			break;
	}
	printf("\n");
	if (rc)
		fprintf(stderr, "test_eval_run --gen: %s\n", err.msg);
	lvd_mllama_gen_free(g);
	free(ids), free(xm), free(px);
	lvd_chat_out_free(&co);
	lvd_image_free(&im);
	lvd_llama_tok_free(tok);
	lvd_mllama_free(m);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--model")) {
		struct lvd_error e = {0};
		if (make_model(argv[2], &e)) {
			fprintf(stderr, "test_eval_run --model: %s\n", e.msg);
			return 1;
		}
		return 0;
	}
	if (argc == 7 && !strcmp(argv[1], "--gen")) {
		json_t *p = json_loads(argv[6], JSON_DECODE_ANY, NULL);
		if (!json_is_string(p)) {
			fprintf(stderr, "test_eval_run --gen: the prompt must be a JSON string\n");
			return 2;
		}
		int rc = gen_one(argv[2], argv[3], argv[4], atoi(argv[5]), json_string_value(p));
		json_decref(p);
		return rc;
	}
	snprintf(g_tmp, sizeof g_tmp, "/tmp/lvd_test_eval_run.XXXXXX");
	LVD_ASSERT(mkdtemp(g_tmp));
	static const struct lvd_test tests[] = {TEST(test_sample_topk), TEST(test_sample_topp), TEST(test_pick_greedy),
						TEST(test_lora_load), TEST(test_peft_folder), {0}};
	int rc = lvd_test_main(argc, argv, tests);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
	if (system(cmd)) {
	}
	return rc;
}
