/* lib/models/minicpmv/minicpmv_proc.h — the MiniCPM-Llama3-V-2.5 processor: the slicing
 * of one image into a source picture and a grid of slices, the pictures as the
 * normalised patch strips the forward takes (minicpmv.h), and the chat layout: image
 * placeholder tokens, the Llama-3 rendering of OpenBMB's finetune, its pre-shifted
 * targets and the image_bound ranges. The reference is OpenBMB's finetune/dataset.py
 * of the 2.5 release (the hub's modeling_minicpmv.py slices the same way);
 * docs/minicpmv.md ("Processor") states each rule and where it is exact.
 *
 * Letters: W, H original image width/height in pixels; ps patch side; n_i = th_i·tw_i
 * patches of picture i; C = 3 channels; T tokens; Q query_num. */
#ifndef LVD_MODELS_MINICPMV_PROC_H
#define LVD_MODELS_MINICPMV_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "models/minicpmv/minicpmv.h"
#include "text/llama_tok.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most slices a config may ask for (the release asks for 9). */
#define LVD_MINICPMV_MAX_SLICES 64
#define LVD_MINICPMV_MAX_PICTURES (1 + LVD_MINICPMV_MAX_SLICES)

/* slice_config: max_slice_nums, scale_resolution, patch_size. */
struct lvd_minicpmv_slice_cfg {
	int max_slices, scale, patch;
};

/* From a loaded config. LVD_ERR_UNSUPPORTED for slice_mode false (the reference then
 * feeds the image unresized, which only works for sizes divisible by the patch) or
 * max_slice_nums over LVD_MINICPMV_MAX_SLICES; LVD_ERR_INVALID for sizes < 1. */
int lvd_minicpmv_slice_cfg_from(struct lvd_minicpmv_slice_cfg *s, const struct lvd_minicpmv_config *cfg,
				struct lvd_error *err);

/* One picture: the source image (picture 0) or a slice. */
struct lvd_minicpmv_pic {
	int w, h;                 /* size in pixels, multiples of ps */
	int th, tw;               /* tgt_size: h / ps, w / ps (patch rows, columns) */
	int row, col;             /* the slice's grid cell; -1, -1 for the source */
	double x0, y0, x1, y1;    /* the part of the original image it shows, in original
				   * pixels: the whole image for the source, cell (row, col)
				   * = [col·W/cols, (col+1)·W/cols) x [row·H/rows, ...) for a slice */
};

/* The slicing of one W x H image (pure arithmetic; no pixels). */
struct lvd_minicpmv_geom {
	int W, H;
	int cols, rows;           /* slice grid, row-major; 0, 0 when not sliced */
	int refine_w, refine_h;   /* the whole image is resized to this, then cut into cells
				   * (cell = refine / grid); 0, 0 when not sliced */
	int n;                    /* pictures: 1 + cols·rows (1 when not sliced) */
	struct lvd_minicpmv_pic pic[LVD_MINICPMV_MAX_PICTURES];
};

/* The reference's slice_image geometry: multiple = min(ceil(W·H/S²), max); multiple <= 1:
 * the source alone, resized with upscaling to about S² area keeping the aspect; else the
 * source downscaled only, and the best grid among the factor pairs of multiple-1,
 * multiple, multiple+1 (not 1, not over max) by |log(W/H) - log(cols/rows)| (first
 * minimum), the refine size from the cell size (W/cols, H/rows after rounding W, H to the
 * grid) resized with upscaling. Every side = max(round_half_even(x / ps)·ps, ps).
 * Errors: LVD_ERR_INVALID (W, H < 1 or over LVD_IMAGE_MAX_SIDE, bad cfg). */
int lvd_minicpmv_slice_geom(struct lvd_minicpmv_geom *g, const struct lvd_minicpmv_slice_cfg *c, int W, int H,
			    struct lvd_error *err);

/* Pictures as the forward takes them. */
struct lvd_minicpmv_images {
	struct lvd_minicpmv_geom geom;
	int patch;
	float *pixels;                              /* owned; picture i is [C, ps, n_i·ps] at pixels + off[i] */
	size_t off[LVD_MINICPMV_MAX_PICTURES + 1];  /* floats; off[n] = total */
};

/* Slices rgb ([H][W][3] 8-bit, as Image.convert("RGB") gives it; borrowed) per
 * lvd_minicpmv_slice_geom; the source picture is a PIL-bicubic resize of the image, the
 * slices are cells of one PIL-bicubic resize to (refine_w, refine_h)
 * (lvd_image_resize, 8-bit, bit-exact to PIL); each picture is normalised
 * (u / 255 - 0.5) / 0.5 in fp32 as torchvision's ToTensor + Normalize(0.5, 0.5) do, and
 * laid out by reshape_by_patch: strip[c][ki][l·ps + kj] = picture[c][py·ps + ki][px·ps + kj]
 * with l = py·tw + px. *out is zeroed first; free with lvd_minicpmv_images_free.
 * Errors: those of lvd_minicpmv_slice_geom, LVD_ERR_INVALID (picture too large for
 * lvd_image_resize), LVD_ERR_NOMEM. */
int lvd_minicpmv_preprocess(struct lvd_minicpmv_images *out, const struct lvd_minicpmv_slice_cfg *c,
			    const uint8_t *rgb, int W, int H, struct lvd_error *err);
void lvd_minicpmv_images_free(struct lvd_minicpmv_images *im);

/* Largest picture in patches (the Lmax of a batch holding only these pictures). */
int lvd_minicpmv_images_lmax(const struct lvd_minicpmv_images *im);
/* Writes the pictures into the forward's batch layout: dst [n, C, ps, Lmax·ps] (zero
 * beyond n_i·ps) and tgt [n, 2] = (th_i, tw_i). Lmax >= lvd_minicpmv_images_lmax. */
void lvd_minicpmv_images_batch(float *dst, int *tgt, int Lmax, const struct lvd_minicpmv_images *im);

/* Token ids the layout needs. */
struct lvd_minicpmv_tok_ids {
	int32_t bos, start_header, end_header, eot;    /* Llama-3 chat specials */
	int32_t assistant;                              /* the vocabulary token "assistant" (-1: none) */
	int32_t unk, im_start, im_end, slice_start, slice_end; /* <unk> <image> </image> <slice> </slice> */
};

/* Looks every id up by name in tok (the model folder's tokenizer.json carries the MiniCPM
 * tokens as added tokens): "<|begin_of_text|>", "<|start_header_id|>",
 * "<|end_header_id|>", "<|eot_id|>", "<unk>", "<image>", "</image>", "<slice>",
 * "</slice>"; "assistant" is the plain text's single token. Errors: LVD_ERR_NOTFOUND
 * naming the missing token. */
int lvd_minicpmv_tok_ids_get(struct lvd_minicpmv_tok_ids *ids, struct lvd_llama_tok *tok, struct lvd_error *err);

/* One message of a conversation (borrowed UTF-8). */
struct lvd_minicpmv_msg {
	const char *role;       /* "user", "assistant" (any text is rendered) */
	const char *content;
	size_t len;
};

struct lvd_minicpmv_chat {
	size_t T;
	int32_t *ids;           /* [T] input_ids */
	int32_t *labels;        /* [T] targets, already shifted (see lvd_minicpmv_chat_build); -100 ignored */
	int n_bound;
	int *bound;             /* [n_bound, 2] image_bound: [pos(<image>) + 1, pos(</image>)) */
	char *text;             /* the rendered string (NUL-terminated) */
};

/* Renders a conversation as OpenBMB's finetune does for llm_type llama3 and tokenizes it.
 * The placeholder of image g (NULL: no image) is
 *   <image> + Q x <unk> + </image>                                   (the source)
 *   + <slice> + rows joined by "\n", each cols x (<image> Q x <unk> </image>) + </slice>
 * and replaces the one "<image>" in message 0's content, or goes before it followed by
 * "\n" when it has none. The template (no system block):
 *   <|begin_of_text|> then per message <|start_header_id|>role<|end_header_id|>\n\n
 *   + content.strip() (Python's whitespace) + <|eot_id|>.
 * The text between two special tokens is encoded as one piece of plain text (a literal
 * special-token string in content stays text, unlike Hugging Face).
 * Labels (OpenBMB's rule, applied to the ids as its code does): for every token
 * "assistant" that sits midway between the k-th <|start_header_id|> and the k-th
 * <|end_header_id|>, the tokens from 3 after it through the first <|eot_id|> beyond that
 * are trainable (context 0); then target[i-1] = ids[i] for each trainable i, and
 * target[i-1] = <|eot_id|> where a trainable run ends at i-1 (so an <|eot_id|> followed by
 * more tokens also targets <|eot_id|>); all else -100. image_bound pairs the positions
 * after each <image> with the positions of each </image>.
 * Errors: LVD_ERR_INVALID (fewer than 2 messages, message 0 not "user", invalid UTF-8,
 * more than one "<image>" in message 0, Q < 1), LVD_ERR_NOMEM; *out is empty on error.
 * Free with lvd_minicpmv_chat_free. */
int lvd_minicpmv_chat_build(struct lvd_minicpmv_chat *out, struct lvd_llama_tok *tok,
			    const struct lvd_minicpmv_tok_ids *ids, int query_num, const struct lvd_minicpmv_geom *g,
			    const struct lvd_minicpmv_msg *msgs, size_t n, struct lvd_error *err);
void lvd_minicpmv_chat_free(struct lvd_minicpmv_chat *c);

#ifdef __cplusplus
}
#endif
#endif
