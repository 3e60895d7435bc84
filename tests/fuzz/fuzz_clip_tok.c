/* tests/fuzz/fuzz_clip_tok.c — the CLIP tokenizer's vocabulary files
 * (lib/text/clip_tok.h). Input starting with the gzip magic: OpenAI's
 * bpe_simple_vocab_16e6.txt.gz; otherwise a merges.txt, preceded by a vocab.json when
 * the input holds a "\n@@\n" separator (vocab.json first). A loaded tokenizer encodes
 * a fixed text and the input's first bytes. */
#include "fuzz.h"
#include "text/clip_tok.h"

static int fuzz_clip_tok(const uint8_t *data, size_t size)
{
	const char *path;
	if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
		path = fuzz_file("clipgz/bpe_simple_vocab_16e6.txt.gz", data, size);
	} else {
		const uint8_t *a, *b;
		size_t na, nb;
		fuzz_split(data, size, &a, &na, &b, &nb);
		if (b != data + size) {
			fuzz_file("clip/vocab.json", a, na);
			path = fuzz_file("clip/merges.txt", b, nb);
		} else {
			path = fuzz_file("clip1/merges.txt", a, na);
		}
	}
	struct lvd_clip_tok *tok = NULL;
	struct lvd_error err = {0};
	if (lvd_clip_tok_load(&tok, path, &err) != 0)
		return 0;
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	static const char text[] = "A photo of a dog &amp; \xc3\xa9t\xc3\xa9 <|endoftext|> 123";
	struct lvd_clip_opts o = {.max_len = 77, .pad = LVD_CLIP_PAD_EOS};
	lvd_clip_encode(tok, text, sizeof text - 1, &o, &t, &err);
	lvd_clip_encode(tok, (const char *)data, size < 64 ? size : 64, &o, &t, &err);
	char buf[64];
	for (size_t i = 0; i < t.n; i++)
		lvd_clip_token_str(tok, t.ids[i], buf, sizeof buf);
	lvd_tokens_free(&t);
	lvd_clip_tok_free(tok);
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_clip_tok)
