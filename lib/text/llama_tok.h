/* lib/text/llama_tok.h — the Llama-3 tokenizer (the VLM side: Llama-3.2-Vision /
 * mllama): tiktoken-style byte-level BPE with 128000 ranked tokens and special tokens
 * from id 128000.
 *
 * Loads either a Hugging Face tokenizer.json (model BPE with vocab + merges, the Split
 * regex of its pre-tokenizer, added tokens with their ids) or Meta's tokenizer.model
 * (one "base64(bytes) rank" per line) with the special tokens of a naming scheme given
 * separately. Both give the same ids: the merges of a tokenizer.model are derived
 * exactly as transformers' TikTokenConverter derives them, and a pre-token that is
 * itself a token is never split (ignore_merges).
 *
 * Special tokens in text become special ids only with LVD_LLAMA_ALLOW_SPECIAL
 * (Hugging Face always maps them; tiktoken's encode(allowed_special=...) is the
 * model here). A tokenizer holds caches and scratch: one per thread. */
#ifndef LVD_TEXT_LLAMA_TOK_H
#define LVD_TEXT_LLAMA_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "text/tokens.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Names of ids 128000.. (see ../shared/data/llama3/special_tokens.json). */
enum lvd_llama_scheme {
	LVD_LLAMA_SCHEME_MLLAMA = 0, /* HF Llama-3.2-Vision: <|step_id|>=128005, reserved_2..246 at
					128011..128255, <|image|>=128256 (default) */
	LVD_LLAMA_SCHEME_HF31,       /* HF Llama 3.1: reserved_2=128005, reserved_3=128011, ..247=128255 */
	LVD_LLAMA_SCHEME_META,       /* Meta llama-models: <|image|>=128011, reserved_2.. from 128012 */
};

#define LVD_LLAMA_PATTERN \
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* encode flags */
#define LVD_LLAMA_BOS 1u           /* prepend <|begin_of_text|> */
#define LVD_LLAMA_EOS 2u           /* append <|end_of_text|> */
#define LVD_LLAMA_ALLOW_SPECIAL 4u /* "<|eot_id|>" etc. in text become special ids */
/* decode flags */
#define LVD_LLAMA_SKIP_SPECIAL 1u

struct lvd_llama_tok;

/* path: a tokenizer.json, a tokenizer.model, or a folder holding one of them
 * (tokenizer.json preferred). `scheme` names the specials of a tokenizer.model (a
 * tokenizer.json carries its own). Errors name the file and the offending entry. */
int lvd_llama_tok_load(struct lvd_llama_tok **out, const char *path, enum lvd_llama_scheme scheme,
		       struct lvd_error *err);
void lvd_llama_tok_free(struct lvd_llama_tok *tok);

/* Name of scheme ids 128000..: fills names[i] for id 128000+i, returns the count
 * (257 for MLLAMA, 256 otherwise). buf holds the strings (>= 257*40 bytes). */
int lvd_llama_scheme_names(enum lvd_llama_scheme scheme, char *buf, size_t bufsize, const char **names);

/* Encodes text[0..n) (must be valid UTF-8: LVD_ERR_INVALID naming the byte offset
 * otherwise), appending to out: ids, byte spans into text, word = -1. */
int lvd_llama_encode(struct lvd_llama_tok *tok, const char *text, size_t n, unsigned flags,
		     struct lvd_tokens *out, struct lvd_error *err);

/* Id of a special/added token by name ("<|eot_id|>"), or -1. */
int32_t lvd_llama_special_id(const struct lvd_llama_tok *tok, const char *name);
/* 1 when id is a special (added) token. */
int lvd_llama_is_special(const struct lvd_llama_tok *tok, int32_t id);
/* Raw bytes of a token (special tokens: their name). NULL for an unknown id. */
const uint8_t *lvd_llama_token_bytes(const struct lvd_llama_tok *tok, int32_t id, size_t *n);
/* One more than the largest id. */
int32_t lvd_llama_vocab_size(const struct lvd_llama_tok *tok);

/* ids -> UTF-8 (malloc'd, NUL-terminated; invalid byte sequences, e.g. half of a
 * character split across tokens, become U+FFFD per maximal invalid subpart).
 * LVD_ERR_INVALID for an unknown id (naming its index). */
int lvd_llama_decode(const struct lvd_llama_tok *tok, const int32_t *ids, size_t n, unsigned flags,
		     char **text, size_t *len, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
