/* lib/lavender/packrec.h — the payload of one lvd-pack training sample, stored as one
 * record of a .lvdp shard by the record container. Training reads nothing else: token
 * ids, labels, matched words with their token and query positions, target maps on the
 * VLM patch canvas with the validity mask, the tiling, and the image itself.
 *
 * Layout (integers and floats little-endian, written field by field). Version 1 is an
 * mllama sample; version 2 a MiniCPM-Llama3-V-2.5 sample (flag MCV, the extra block
 * below); a version-1 record is byte for byte what earlier builds wrote.
 *   off size field
 *     0    4 magic "LVDP"
 *     4    2 u16 version: 1, or 2 with the MCV flag (and only then)
 *     6    2 u16 flags: bit 0 IMAGE = image bytes embedded (else a UTF-8 path),
 *                       bit 1 RAW = original SD maps kept, bit 2 GRID = targets are an
 *                       N×N resize of the whole image (--grid) instead of the patch canvas,
 *                       bit 3 MCV = a MiniCPM-V sample (version 2; requires GRID);
 *                       other bits must be 0
 *     8    4 u32 T    tokens (1..LVD_PACKREC_MAX_TOKENS)
 *    12    4 u32 W    matched words (0..LVD_PACKREC_MAX_WORDS)
 *    16    4 u32 GH   target rows    (1..LVD_PACKREC_MAX_GRID)
 *    20    4 u32 GW   target columns (1..LVD_PACKREC_MAX_GRID)
 *    24    4 u32 RH   raw map rows    (0 unless RAW; then 1..LVD_PACKREC_MAX_GRID)
 *    28    4 u32 RW   raw map columns (same)
 *    32    4 u32 id length (1..4096)
 *    36    4 u32 image length in bytes (embedded bytes, or the path; 1..LVD_PACKREC_MAX_IMAGE)
 *    40    4 u32 image width   (original pixels)
 *    44    4 u32 image height
 *    48    4 u32 new_w   resized image extent on the canvas (mllama)
 *    52    4 u32 new_h
 *    56    2 u16 tiles_h  tiles high
 *    58    2 u16 tiles_w  tiles wide (tiles_h·tiles_w <= 16)
 *    60    2 u16 aspect_id (1-based)
 *    62    2 u16 tile_px  (560)
 *    64    2 u16 patch_px (14)
 *    66    2 u16 reserved = 0
 *    68    4 u32 image_pos: position of the <|image|> token, 0xFFFFFFFF if none; that
 *              token has label -100 (its id, 128256 in Llama 3.2 Vision, is the
 *              model's and is not checked here)
 *    (aspect_id names tiles_h x tiles_w among the mllama arrangements of some
 *     max_tiles >= tiles_h*tiles_w; image width/height within io/image.h's limits.
 *     MCV: new_w = img_w, new_h = img_h, tiles_h = tiles_w = aspect_id = tile_px = 0,
 *     patch_px the vision patch (14), image_pos = 0xFFFFFFFF; every word's query rows
 *     lie after the last picture's end)
 *    72      id bytes (UTF-8)
 *            MCV only — the pictures (lvd_minicpmv_preprocess's slicing) and their tokens:
 *              u16 cols, u16 rows (slice grid; both 0: the source picture alone),
 *              u16 n_pics (= 1 + cols·rows, <= LVD_PACKREC_MAX_PICS), u16 query_num Q,
 *              then per picture (source first, slices row-major): u16 th, u16 tw (patch
 *              rows/columns, 1..LVD_PACKREC_MAX_GRID; every slice has one size),
 *              u32 start, u32 end (its image_bound: end - start = Q, pictures in order,
 *              not overlapping, end <= T)
 *            tokens i32[T] (>= 0)
 *            labels i32[T]: version 1: -100, or equal to the token (the model shifts);
 *              MCV: -100 or >= 0, the targets already shifted (OpenBMB's rule,
 *              lvd_minicpmv_chat_build), -100 at every image-token position
 *            W words, each: u16 key length K (1..255), u16 reserved = 0, u32 n_pos (>= 1),
 *              u32 n_query (>= 1), i32 sd_tok (first CLIP token of the SD word),
 *              f32 min, f32 max (the resampled map before normalisation), K key bytes,
 *              u32 pos[n_pos] (strictly increasing, < T), u32 query[n_query] (same)
 *            targets fp16 [W][GH][GW] (min-max normalised per word, finite)
 *            mask u8 [GH][GW] (1 = the patch covers image pixels, else 0; targets are 0
 *              there). Without GRID: GH = tiles_h·tile_px/patch_px (same for GW) and the
 *              mask is exactly y·patch_px < new_h && x·patch_px < new_w. With GRID all 1.
 *            raw fp16 [W][RH][RW] if RAW: the SD word map (mean of its CLIP token maps)
 *            image bytes or path [image length]
 *   The payload ends exactly there.
 *
 * The decoder treats every byte as hostile: sizes are checked against the payload
 * length with overflow checks before any allocation, and every constraint above is
 * verified. Errors (LVD_ERR_FORMAT) name `where`, the field and the offending value. */
#ifndef LVD_LAVENDER_PACKREC_H
#define LVD_LAVENDER_PACKREC_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_PACKREC_VERSION 1      /* mllama records */
#define LVD_PACKREC_VERSION_MCV 2  /* MiniCPM-V records (flag MCV) */
#define LVD_PACKREC_MAX_PICS 65u
#define LVD_PACKREC_HEADER 72
#define LVD_PACKREC_MAX_TOKENS (1u << 20)
#define LVD_PACKREC_MAX_WORDS 4096u
#define LVD_PACKREC_MAX_GRID 4096u
#define LVD_PACKREC_MAX_IMAGE (1u << 30)
#define LVD_PACKREC_MAX_ID 4096u
#define LVD_PACKREC_NO_IMAGE 0xFFFFFFFFu

enum {
	LVD_PACKREC_IMAGE = 1,
	LVD_PACKREC_RAW = 2,
	LVD_PACKREC_GRID = 4,
	LVD_PACKREC_MCV = 8,
};

/* One MiniCPM picture of an MCV record: its patch grid and image_bound range. */
struct lvd_packrec_pic {
	uint32_t th, tw;
	uint32_t start, end;
};

struct lvd_packrec_word {
	char *key;                  /* NUL-terminated */
	uint32_t n_pos, n_query;
	uint32_t *pos, *query;
	int32_t sd_tok;
	float min, max;
};

struct lvd_packrec {
	char *id;                   /* NUL-terminated */
	uint32_t flags;
	uint32_t T;
	int32_t *tokens, *labels;   /* [T] */
	uint32_t W;
	struct lvd_packrec_word *words; /* [W] */
	uint32_t gh, gw;
	uint16_t *targets;          /* [W][gh][gw] fp16 bits */
	uint8_t *mask;              /* [gh][gw] */
	uint32_t rh, rw;
	uint16_t *raw;              /* [W][rh][rw] fp16 bits, NULL without RAW */
	uint32_t img_w, img_h, new_w, new_h;
	uint32_t tiles_h, tiles_w, aspect_id, tile_px, patch_px;
	uint32_t image_pos;
	/* MCV only (else 0 / NULL) */
	uint32_t cols, rows, n_pics, query_num;
	struct lvd_packrec_pic *pics; /* [n_pics] */
	uint8_t *image;             /* [image_len] (+ a NUL after it when decoded) */
	uint32_t image_len;
};

/* Serialises rec (borrowed) into a malloc'd *out of *out_len bytes. Validates rec with
 * the decoder's rules first (LVD_ERR_INVALID naming the field). Deterministic. */
struct lvd_geom; /* lavender/geometry.h */

/* The record's image layout fields from a geometry (lvd_geom_layout): img_w/img_h,
 * new_w/new_h, tiles_h/tiles_w, aspect_id, and the tile and patch sides it used. */
void lvd_packrec_set_geom(struct lvd_packrec *rec, const struct lvd_geom *g, int tile_px, int patch_px);

int lvd_packrec_encode(const struct lvd_packrec *rec, uint8_t **out, size_t *out_len,
		       struct lvd_error *err);

/* Parses and validates a payload into *rec (owned; free with lvd_packrec_free, also
 * after a failure). `where` names the record ("pack/train-00000.lvdp: record 3"). */
int lvd_packrec_decode(struct lvd_packrec *rec, const void *buf, size_t len, const char *where,
		       struct lvd_error *err);

void lvd_packrec_free(struct lvd_packrec *rec);

#ifdef __cplusplus
}
#endif
#endif
