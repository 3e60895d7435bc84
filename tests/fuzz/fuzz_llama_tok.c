/* tests/fuzz/fuzz_llama_tok.c — the Llama tokenizer files (lib/text/llama_tok.h): input
 * starting with '{' is a tokenizer.json, anything else a tiktoken tokenizer.model (the
 * scheme chosen by the input length mod 3). A loaded tokenizer encodes a fixed text and
 * the input's first bytes, and decodes the ids again. */
#include "fuzz.h"
#include "text/llama_tok.h"

static int fuzz_llama_tok(const uint8_t *data, size_t size)
{
	const char *path = size && data[0] == '{' ? fuzz_file("llama/tokenizer.json", data, size)
						  : fuzz_file("llama/tokenizer.model", data, size);
	struct lvd_llama_tok *tok = NULL;
	struct lvd_error err = {0};
	if (lvd_llama_tok_load(&tok, path, (enum lvd_llama_scheme)(size % 3), &err) != 0)
		return 0;
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	static const char text[] = "<|begin_of_text|>Hello, w\xc3\xb6rld! 12345 <|image|>\n\n  x";
	lvd_llama_encode(tok, text, sizeof text - 1, LVD_LLAMA_BOS | LVD_LLAMA_EOS | LVD_LLAMA_ALLOW_SPECIAL, &t,
			 &err);
	lvd_llama_encode(tok, (const char *)data, size < 64 ? size : 64, 0, &t, &err);
	char *s = NULL;
	size_t n = 0;
	if (lvd_llama_decode(tok, t.ids, t.n, (unsigned)(size & 1), &s, &n, &err) == 0)
		free(s);
	int32_t v = lvd_llama_vocab_size(tok);
	for (int32_t id = v - 3; id < v + 1; id++) {
		size_t bn;
		lvd_llama_token_bytes(tok, id, &bn);
		lvd_llama_is_special(tok, id);
	}
	lvd_tokens_free(&t);
	lvd_llama_tok_free(tok);
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_llama_tok)
