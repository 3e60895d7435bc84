/* lib/text/chat.h — the Llama-3.2-Vision (mllama) instruct chat format, implemented
 * for that one template (no general Jinja engine). The template, as shipped in the
 * HF converter and ../shared/data/llama3/special_tokens.json:
 *
 *   <|begin_of_text|>                                  (before the first message)
 *   per message: <|start_header_id|>{role}<|end_header_id|>\n\n
 *                content: a string, or items in order: image -> <|image|>, text -> text
 *                <|eot_id|>
 *   add_generation_prompt: <|start_header_id|>assistant<|end_header_id|>\n\n
 *
 * No system block is added (the template adds none; with an image a system message
 * is not expected). Put the image item before the first user text (lvd_chat_from_text
 * does this for the "<image>\n..." convention of LLaVA-style data).
 * Token ids equal transformers' apply_chat_template(tokenize=True) for content free of
 * special-token strings; content text is always encoded as plain text (a literal
 * "<|eot_id|>" inside content does not become the special id, unlike HF). */
#ifndef LVD_TEXT_CHAT_H
#define LVD_TEXT_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "text/llama_tok.h"
#include "text/tokens.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_chat_item_type { LVD_CHAT_TEXT = 0, LVD_CHAT_IMAGE = 1 };

struct lvd_chat_item {
	enum lvd_chat_item_type type;
	const char *text; /* LVD_CHAT_TEXT: UTF-8, len bytes (borrowed) */
	size_t len;
};

struct lvd_chat_msg {
	const char *role; /* "system", "user", "assistant" (any text is accepted) */
	const struct lvd_chat_item *items;
	size_t n_items;
};

/* What each token of a rendered chat is. */
enum lvd_chat_seg {
	LVD_SEG_BOS = 0,    /* <|begin_of_text|> */
	LVD_SEG_HEADER,     /* <|start_header_id|> role <|end_header_id|> */
	LVD_SEG_CONTENT,    /* message text (a token touching any content byte counts here) */
	LVD_SEG_IMAGE,      /* <|image|> */
	LVD_SEG_EOT,        /* <|eot_id|> */
	LVD_SEG_GEN_PROMPT, /* the generation-prompt header (its "\n\n" included) */
	LVD_SEG_SEP,        /* the "\n\n" after a message's <|end_header_id|> */
};

struct lvd_chat_out {
	struct lvd_tokens toks; /* spans index `text` */
	uint8_t *seg;           /* enum lvd_chat_seg per token */
	int32_t *msg;           /* message index per token; -1 for BOS and the generation prompt */
	char *text;             /* the rendered string (NUL-terminated) */
	size_t text_len;
};

#define LVD_CHAT_GEN_PROMPT 1u /* add the assistant header at the end */
#define LVD_CHAT_NO_BOS 2u     /* leave out <|begin_of_text|> */
/* two <|begin_of_text|> (both LVD_SEG_BOS): what the official Lavender collators feed,
 * MllamaProcessor(text=processor.apply_chat_template(...)): the template writes one, the
 * tokenizer's post-processor adds another (../shared/reference/lavender.md §3.1 "Prompt
 * and label construction"). Ignored with LVD_CHAT_NO_BOS. */
#define LVD_CHAT_TWO_BOS 4u

void lvd_chat_out_init(struct lvd_chat_out *o);
void lvd_chat_out_free(struct lvd_chat_out *o);

/* Renders and tokenizes msgs[0..n) into out (previous contents replaced). Errors:
 * LVD_ERR_INVALID (invalid UTF-8 in a message, naming message and item; no messages),
 * LVD_ERR_NOTFOUND (tokenizer lacks a chat special token), LVD_ERR_NOMEM. */
int lvd_chat_render(struct lvd_llama_tok *tok, const struct lvd_chat_msg *msgs, size_t n, unsigned flags,
		    struct lvd_chat_out *out, struct lvd_error *err);

/* Labels for supervised fine-tuning, as llama-recipes masks them (tokenize_dialogs for
 * Llama-3.2-Vision): labels[i] = id for every token of an assistant message after its
 * <|end_header_id|> (the "\n\n" separator, content and <|eot_id|>), -100 for everything
 * else (BOS, headers, image tokens, other roles, the generation prompt). */
void lvd_chat_labels(const struct lvd_chat_out *o, const struct lvd_chat_msg *msgs, int32_t *labels);

/* Labels as the official Lavender Flickr30k and RLAIF-V collators really build them
 * (AstraZeneca/vlm llama_finetune/src/llama_recipes/datasets/flickr30k_dataset.py;
 * ../shared/reference/lavender.md §3.1): their user-turn mask never fires, so labels[i] =
 * id for every token except -100 at each assistant header triple (<|start_header_id|>,
 * the role's token(s), <|end_header_id|>: the tokens of an assistant message's header)
 * and at <|image|>. BOS, system/user turns, the "\n\n" separators and every <|eot_id|>
 * are trained. The collators also mask padding, which a rendered chat never holds (it is
 * added per batch). With the Llama-3 vocabulary the masked triple is exactly
 * [128006, 78191, 128007], the ids the official code searches for; the header of a
 * generation prompt is masked the same way (its "\n\n" is not). */
void lvd_chat_labels_official(const struct lvd_chat_out *o, const struct lvd_chat_msg *msgs, int32_t *labels);

/* Splits LLaVA-style content: a leading "<image>" marker (and one "\n" after it)
 * becomes an image item followed by the rest as a text item. items holds 2. Returns
 * the item count (1 or 2; text may be empty). */
size_t lvd_chat_from_text(const char *content, size_t len, struct lvd_chat_item items[2]);

#ifdef __cplusplus
}
#endif
#endif
