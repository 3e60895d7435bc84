/* lib/lavender/mapsrec.h — the payload of one sd-attnmap record (one image-text pair)
 * stored in a .lvdm shard by the record container.
 *
 * Layout (all integers little-endian, written field by field; version 1):
 *   off  size  field
 *     0     4  magic "LVAM"
 *     4     2  u16 version = 1
 *     6     2  u16 flags = 0 (reserved, must be 0)
 *     8     4  u32 T       kept caption tokens (1..LVD_MAPSREC_MAX_TOKENS)
 *    12     4  u32 GH      grid rows    (1..LVD_MAPSREC_MAX_GRID)
 *    16     4  u32 GW      grid columns (1..LVD_MAPSREC_MAX_GRID)
 *    20     4  u32 J       JSON metadata length in bytes (1..LVD_MAPSREC_MAX_JSON)
 *    24     J  JSON metadata, UTF-8, one object, compact, keys sorted:
 *              "id": string, "index": int (the sample's 0-based position in the
 *              manifest), "text": string (the SD text as fed to the tokenizer),
 *              "truncated": bool (the text had more than 75 tokens),
 *              "tokens": [T ints] (CLIP ids), "token_strs": [T strings] (BPE pieces),
 *              "spans": [T [begin, end]] (byte offsets into "text", begin <= end),
 *              "word_idx": [T ints] (index into "words", -1 for none),
 *              "words": [W strings], "image": [w, h], "image_file": string (the
 *              manifest's image path, "" when unknown), "sd_size": [w, h],
 *              "grid": [GW, GH], "resolution": int, "layers": [sides at resolution],
 *              "timesteps": [ints], "draws": int, "seed": int,
 *              "stats": [T [min, max, mean, sum]] (of the fp32 maps before fp16)
 *  24+J  2·T·GH·GW  maps, IEEE fp16, [T][GH][GW] row-major
 * The payload ends exactly there: a longer or shorter payload is refused.
 *
 * The decoder treats every byte as hostile: sizes against the payload length with
 * overflow checks, every JSON field present with the right type, array lengths equal
 * to T, spans inside the text, word indices in range, grid equal to the header. */
#ifndef LVD_LAVENDER_MAPSREC_H
#define LVD_LAVENDER_MAPSREC_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"
#include "lavender/attnmap.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_MAPSREC_VERSION 1
#define LVD_MAPSREC_HEADER 24
#define LVD_MAPSREC_MAX_TOKENS 1024
#define LVD_MAPSREC_MAX_GRID 1024
#define LVD_MAPSREC_MAX_JSON (16u << 20)
#define LVD_MAPSREC_MAX_LIST 1024   /* words, layers, timesteps */

struct lvd_mapsrec {
	char *id;
	uint64_t index;             /* position of the sample in the manifest */
	char *text;
	int truncated;
	uint32_t T;                 /* kept tokens */
	int32_t *tokens;            /* [T] */
	char **token_strs;          /* [T] */
	uint32_t *spans;            /* [T][2] byte [begin, end) into text */
	int32_t *word_idx;          /* [T], -1 = none */
	uint32_t n_words;
	char **words;               /* [n_words] */
	int img_w, img_h;
	char *image_file;           /* manifest's image path; NULL encodes as "" */
	int sd_w, sd_h;
	int grid_w, grid_h;
	int resolution;
	uint32_t n_layers;
	int32_t *layers;            /* [n_layers] layer sides at `resolution` */
	uint32_t n_timesteps;
	int32_t *timesteps;         /* [n_timesteps] */
	uint32_t draws;
	uint64_t seed;
	struct lvd_attnmap_stats *stats; /* [T] */
	uint16_t *maps;             /* [T][grid_h][grid_w] fp16 bits */
};

/* Serialises rec (pointers borrowed) into a malloc'd buffer *out of *out_len bytes
 * (caller frees). LVD_ERR_INVALID when the record breaks the limits above or a string
 * is not valid UTF-8; LVD_ERR_NOMEM. Deterministic: equal records give equal bytes. */
int lvd_mapsrec_encode(const struct lvd_mapsrec *rec, uint8_t **out, size_t *out_len,
		       struct lvd_error *err);

/* Parses and validates a payload into *rec (all memory owned by rec; release with
 * lvd_mapsrec_free, also after a failure). `where` names the record in messages
 * ("maps/attn-00000.lvdm: record 3"). LVD_ERR_FORMAT for bad bytes, LVD_ERR_NOMEM. */
int lvd_mapsrec_decode(struct lvd_mapsrec *rec, const void *buf, size_t len, const char *where,
		       struct lvd_error *err);

/* Frees what lvd_mapsrec_decode allocated and zeroes rec. NULL-safe. */
void lvd_mapsrec_free(struct lvd_mapsrec *rec);

#ifdef __cplusplus
}
#endif
#endif
