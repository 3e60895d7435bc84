/* Mllama chat template: ids and rendered text equal transformers' apply_chat_template
 * (golden), segments/labels, the shared chat cases, LLaVA "<image>" content; the official
 * Lavender collator's form (LVD_CHAT_TWO_BOS, lvd_chat_labels_official) against its rule
 * applied to the ids as its code does it (search for the id triple). */
#include "harness.h"

#include <jansson.h>

#include "text/chat.h"

static struct lvd_llama_tok *load(void)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		return NULL;
	char p[4200];
	snprintf(p, sizeof p, "%s/llama3/tokenizer.model", sd);
	struct lvd_llama_tok *t = NULL;
	struct lvd_error err = {0};
	if (lvd_llama_tok_load(&t, p, LVD_LLAMA_SCHEME_MLLAMA, &err))
		fprintf(stderr, "  load: %s\n", err.msg);
	return t;
}

/* builds messages from JSON [{role, content: str | [{type, text}]}] */
static size_t build(json_t *jm, struct lvd_chat_msg *msgs, struct lvd_chat_item items[][8])
{
	size_t i;
	json_t *m;
	json_array_foreach(jm, i, m) {
		json_t *c = json_object_get(m, "content");
		msgs[i].role = json_string_value(json_object_get(m, "role"));
		msgs[i].items = items[i];
		if (json_is_string(c)) {
			items[i][0] = (struct lvd_chat_item){LVD_CHAT_TEXT, json_string_value(c), json_string_length(c)};
			msgs[i].n_items = 1;
		} else {
			size_t k;
			json_t *it;
			json_array_foreach(c, k, it) {
				json_t *tx = json_object_get(it, "text");
				if (!strcmp(json_string_value(json_object_get(it, "type")), "image"))
					items[i][k] = (struct lvd_chat_item){LVD_CHAT_IMAGE, NULL, 0};
				else
					items[i][k] = (struct lvd_chat_item){LVD_CHAT_TEXT, json_string_value(tx),
									     json_string_length(tx)};
			}
			msgs[i].n_items = json_array_size(c);
		}
	}
	return json_array_size(jm);
}

static void test_golden(void)
{
	struct lvd_llama_tok *tok = load();
	if (!tok)
		SKIP("../shared/data absent");
	json_t *g = json_load_file(lvd_test_path("tests/golden/tokenizer/chat.json"), 0, NULL);
	REQUIRE(g);
	size_t ci;
	json_t *c;
	struct lvd_chat_out o;
	lvd_chat_out_init(&o);
	json_array_foreach(json_object_get(g, "cases"), ci, c) {
		struct lvd_chat_msg msgs[8];
		struct lvd_chat_item items[8][8];
		size_t n = build(json_object_get(c, "messages"), msgs, items);
		unsigned fl = json_is_true(json_object_get(c, "add_generation_prompt")) ? LVD_CHAT_GEN_PROMPT : 0;
		struct lvd_error err = {0};
		CHECK(lvd_chat_render(tok, msgs, n, fl, &o, &err) == 0);
		CHECKF(!strcmp(o.text, json_string_value(json_object_get(c, "text"))), "case %zu text", ci);
		json_t *ids = json_object_get(c, "ids");
		int same = o.toks.n == json_array_size(ids);
		for (size_t k = 0; same && k < o.toks.n; k++)
			same = o.toks.ids[k] == json_integer_value(json_array_get(ids, k));
		CHECKF(same, "case %zu ids", ci);
		/* labels (llama-recipes): an assistant message after its header ("\n\n", content,
		 * eot); headers, BOS and every image token are masked */
		int32_t *lab = malloc(o.toks.n * sizeof *lab);
		lvd_chat_labels(&o, msgs, lab);
		for (size_t k = 0; k < o.toks.n; k++) {
			if (o.toks.ids[k] == 128256 || o.toks.ids[k] == 128006 || o.toks.ids[k] == 128000)
				CHECK(lab[k] == -100);
			if (lab[k] != -100) {
				CHECK(!strcmp(msgs[o.msg[k]].role, "assistant"));
				CHECK(o.seg[k] == LVD_SEG_SEP || o.seg[k] == LVD_SEG_CONTENT || o.seg[k] == LVD_SEG_EOT);
			}
		}
		free(lab);
	}
	CHECK(ci == 12);
	/* case 2: user [image, text] + assistant "The Art of War." */
	json_t *c2 = json_array_get(json_object_get(g, "cases"), 4);
	struct lvd_chat_msg msgs[8];
	struct lvd_chat_item items[8][8];
	size_t n = build(json_object_get(c2, "messages"), msgs, items);
	struct lvd_error err = {0};
	REQUIRE(lvd_chat_render(tok, msgs, n, 0, &o, &err) == 0);
	int32_t lab[64];
	REQUIRE(o.toks.n < 64);
	lvd_chat_labels(&o, msgs, lab);
	size_t trained = 0;
	for (size_t k = 0; k < o.toks.n; k++)
		trained += lab[k] != -100;
	CHECK(trained == 7); /* "\n\n", "The", " Art", " of", " War", ".", <|eot_id|> */
	CHECK(o.toks.ids[o.toks.n - 1] == 128009 && lab[o.toks.n - 1] == 128009);
	CHECK(o.seg[0] == LVD_SEG_BOS && o.seg[1] == LVD_SEG_HEADER && o.seg[3] == LVD_SEG_HEADER &&
	      o.seg[4] == LVD_SEG_SEP && o.seg[5] == LVD_SEG_IMAGE);
	/* the assistant's "\n\n" is labelled, the user's is not */
	for (size_t k = 0; k < o.toks.n; k++)
		if (o.seg[k] == LVD_SEG_SEP)
			CHECK((lab[k] != -100) == !strcmp(msgs[o.msg[k]].role, "assistant"));
	lvd_chat_out_free(&o);
	json_decref(g);
	lvd_llama_tok_free(tok);
}

/* Official form on every golden chat case: one more BOS in front of the golden ids; labels
 * equal to the official collator's rule applied to the ids (every [128006, 78191, 128007]
 * triple and 128256 masked, all else trained: system and user turns, both BOS, separators,
 * generation-prompt "\n\n"). */
static void test_official(void)
{
	struct lvd_llama_tok *tok = load();
	if (!tok)
		SKIP("../shared/data absent");
	json_t *g = json_load_file(lvd_test_path("tests/golden/tokenizer/chat.json"), 0, NULL);
	REQUIRE(g);
	size_t ci;
	json_t *c;
	struct lvd_chat_out o;
	lvd_chat_out_init(&o);
	size_t n_triples = 0, n_images = 0;
	json_array_foreach(json_object_get(g, "cases"), ci, c) {
		struct lvd_chat_msg msgs[8];
		struct lvd_chat_item items[8][8];
		size_t n = build(json_object_get(c, "messages"), msgs, items);
		unsigned fl = json_is_true(json_object_get(c, "add_generation_prompt")) ? LVD_CHAT_GEN_PROMPT : 0;
		struct lvd_error err = {0};
		REQUIRE(lvd_chat_render(tok, msgs, n, fl | LVD_CHAT_TWO_BOS, &o, &err) == 0);
		json_t *ids = json_object_get(c, "ids");
		int same = o.toks.n == json_array_size(ids) + 1 && o.toks.ids[0] == 128000;
		for (size_t k = 0; same && k + 1 < o.toks.n; k++)
			same = o.toks.ids[k + 1] == json_integer_value(json_array_get(ids, k));
		CHECKF(same, "case %zu: ids = BOS + golden ids", ci);
		CHECK(o.seg[0] == LVD_SEG_BOS && o.seg[1] == LVD_SEG_BOS && o.msg[1] == -1);
		CHECK(!strncmp(o.text, "<|begin_of_text|><|begin_of_text|><|start_header_id|>", 53));
		int32_t *lab = malloc(o.toks.n * sizeof *lab), *want = malloc(o.toks.n * sizeof *want);
		REQUIRE(lab && want);
		lvd_chat_labels_official(&o, msgs, lab);
		for (size_t k = 0; k < o.toks.n; k++)
			want[k] = o.toks.ids[k] == 128256 ? -100 : o.toks.ids[k];
		for (size_t k = 0; k + 3 <= o.toks.n; k++)
			if (o.toks.ids[k] == 128006 && o.toks.ids[k + 1] == 78191 && o.toks.ids[k + 2] == 128007) {
				want[k] = want[k + 1] = want[k + 2] = -100;
				n_triples++;
			}
		int diff = 0;
		for (size_t k = 0; k < o.toks.n; k++) {
			diff += lab[k] != want[k];
			n_images += o.toks.ids[k] == 128256;
		}
		CHECKF(diff == 0, "case %zu: %d official labels differ", ci, diff);
		free(lab);
		free(want);
	}
	CHECK(ci == 12 && n_triples >= 14 && n_images >= 4);
	/* LVD_CHAT_NO_BOS wins */
	struct lvd_chat_item it = {LVD_CHAT_TEXT, "hi", 2};
	struct lvd_chat_msg m = {"user", &it, 1};
	struct lvd_error err = {0};
	REQUIRE(lvd_chat_render(tok, &m, 1, LVD_CHAT_NO_BOS | LVD_CHAT_TWO_BOS, &o, &err) == 0);
	CHECK(o.toks.ids[0] == 128006);
	lvd_chat_out_free(&o);
	json_decref(g);
	lvd_llama_tok_free(tok);
}

static void test_shared_chat_cases(void)
{
	struct lvd_llama_tok *tok = load();
	if (!tok)
		SKIP("../shared/data absent");
	char p[4200];
	snprintf(p, sizeof p, "%s/tokenizer_tests/tokenizer_cases.json", lvd_test_shared_data());
	json_t *root = json_load_file(p, JSON_ALLOW_NUL, NULL);
	REQUIRE(root);
	size_t i;
	json_t *c;
	int seen = 0;
	struct lvd_chat_out o;
	lvd_chat_out_init(&o);
	json_array_foreach(json_object_get(root, "cases"), i, c) {
		const char *kind = json_string_value(json_object_get(c, "kind"));
		if (!kind || (strcmp(kind, "chat_message") && strcmp(kind, "chat_dialog")))
			continue;
		json_t *jm = json_object_get(c, "messages");
		json_t *one = NULL;
		if (!jm) {
			one = json_array();
			json_array_append(one, json_object_get(c, "message"));
			jm = one;
		}
		struct lvd_chat_msg msgs[8];
		struct lvd_chat_item items[8][8];
		size_t n = build(jm, msgs, items);
		/* Meta's format: a single message has no BOS; a dialog adds the assistant prompt */
		unsigned fl = !strcmp(kind, "chat_message") ? LVD_CHAT_NO_BOS : LVD_CHAT_GEN_PROMPT;
		struct lvd_error err = {0};
		CHECK(lvd_chat_render(tok, msgs, n, fl, &o, &err) == 0);
		json_t *ids = json_object_get(c, "expected_ids");
		int same = o.toks.n == json_array_size(ids);
		for (size_t k = 0; same && k < o.toks.n; k++)
			same = o.toks.ids[k] == json_integer_value(json_array_get(ids, k));
		CHECKF(same, "%s", kind);
		seen++;
		json_decref(one);
	}
	CHECK(seen == 2);
	lvd_chat_out_free(&o);
	json_decref(root);
	lvd_llama_tok_free(tok);
}

static void test_from_text_and_errors(void)
{
	struct lvd_chat_item it[2];
	const char *s = "<image>\nWhat is this?";
	REQUIRE(lvd_chat_from_text(s, strlen(s), it) == 2);
	CHECK(it[0].type == LVD_CHAT_IMAGE && it[1].type == LVD_CHAT_TEXT && it[1].len == 13 &&
	      !memcmp(it[1].text, "What", 4));
	CHECK(lvd_chat_from_text("plain", 5, it) == 1 && it[0].len == 5);
	struct lvd_llama_tok *tok = load();
	if (!tok)
		SKIP("../shared/data absent");
	struct lvd_chat_out o;
	lvd_chat_out_init(&o);
	struct lvd_error err = {0};
	CHECK(lvd_chat_render(tok, NULL, 0, 0, &o, &err) == LVD_ERR_INVALID);
	struct lvd_chat_item bad = {LVD_CHAT_TEXT, "ok\xff", 3};
	struct lvd_chat_msg m[2] = {{"user", it, 1}, {"assistant", &bad, 1}};
	CHECK(lvd_chat_render(tok, m, 2, 0, &o, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "message 1 item 0");
	/* content that spells a special token stays plain text */
	struct lvd_chat_item inj = {LVD_CHAT_TEXT, "<|eot_id|>", 10};
	struct lvd_chat_msg m2 = {"user", &inj, 1};
	CHECK(lvd_chat_render(tok, &m2, 1, LVD_CHAT_NO_BOS, &o, &err) == 0);
	int n_eot = 0;
	for (size_t k = 0; k < o.toks.n; k++)
		n_eot += o.toks.ids[k] == 128009;
	CHECK(n_eot == 1);
	lvd_chat_out_free(&o);
	lvd_llama_tok_free(tok);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_golden), TEST(test_official), TEST(test_shared_chat_cases),
						TEST(test_from_text_and_errors), {0}};
	return lvd_test_main(argc, argv, tests);
}
