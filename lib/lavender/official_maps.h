/* lib/lavender/official_maps.h — per-word maps in the official Lavender file layout
 * (../shared/reference/lavender.md §2 "Storage format"), read into sd-attnmap records
 * (sd-attnmap import) and written from them (sd-attnmap export). docs/attnmap.md has
 * the user-facing rules; this header is the reference.
 *
 * Layout: ROOT/<image file name>/lpm_attention/<subdir>/attention_<word>.<ext>, one
 * 8-bit grey image per word. The image file name is the base name of the manifest's
 * image path, extension included; the official Flickr/RLAIF loaders want <subdir> to be
 * the image's stem, but every sub-folder is read and merged (as the official loader does).
 *
 * File names (lvd_official_parse_name): a map file is a name starting with "attention_"
 * whose extension (after the last '.') is jpg, jpeg or png (any case); its raw key is the
 * part after "attention_" up to the next '_' or '.', exactly as the official loader
 * splits it ("attention_dog_2.jpg" -> "dog", "attention_..jpg" -> ""). Other files are
 * ignored.
 *
 * Keys are compared after CLIP's text cleaning (lib/text/clip_tok.h: NFC, lowercase,
 * whitespace collapsed), so "attention_Dog.png" names the word "dog". A word's own key
 * is what CLIP's decode() gives for its tokens: the vocabulary strings without "</w>",
 * byte-level decoded, concatenated (the cleaned, lower-cased word). Keys that can never
 * name a word are ignored and counted: "" (what the loader makes of "attention_..jpg" or
 * "attention__x.jpg"), "<|startoftext|>" and "<|endoftext|>" (the maps a prompt-to-prompt
 * export writes for BOS/EOS).
 *
 * Values: the grey value v of a pixel is the map value v/255 (PIL convert("L") then
 * ToTensor, as the official loader). RGB files are converted with PIL's "L" formula
 * (L = (19595 R + 38470 G + 7471 B + 32768) >> 16, exact for grey); alpha is ignored,
 * as convert("L") ignores it. */
#ifndef LVD_LAVENDER_OFFICIAL_MAPS_H
#define LVD_LAVENDER_OFFICIAL_MAPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "lavender/attnmap_sample.h"
#include "lavender/mapsrec.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_OFFICIAL_MAX_KEY 256    /* bytes of a key, NUL included */
#define LVD_OFFICIAL_DIR "lpm_attention"

/* Returns 1 when name is a map file and writes its raw key (NUL-terminated) into key;
 * 0 when it is not a map file; -1 when the key does not fit in cap bytes. */
int lvd_official_parse_name(const char *name, char *key, size_t cap);

/* CLIP-cleans a raw key (NFC, lowercase, whitespace runs to one space, trimmed) into
 * out[cap]. LVD_ERR_INVALID for invalid UTF-8 or a result that does not fit. */
int lvd_official_clean_key(const char *raw, char *out, size_t cap, struct lvd_error *err);

/* Key of one CLIP vocabulary string ("dog</w>" -> "dog", byte-level decoded) into
 * out[cap]; returns its length, or -1 (not byte-level text, or does not fit). */
int lvd_official_piece_key(const char *vocab_str, char *out, size_t cap);

/* ---- reading -------------------------------------------------------------------------- */

struct lvd_official_map {
	char key[LVD_OFFICIAL_MAX_KEY];  /* cleaned */
	char *path;                      /* the file it was read from (owned) */
	uint8_t *px;                     /* [h][w] grey values (owned) */
};

/* The maps of one image folder: unique keys, every map the same size. */
struct lvd_official_set {
	size_t n;
	struct lvd_official_map *maps;   /* in the order files were read */
	int w, h;                        /* the maps' size (0 when n == 0) */
	uint32_t files;                  /* map files read */
	uint32_t ignored;                /* map files with an ignored key ("", BOS, EOS) */
	uint32_t replaced;               /* map files replaced by a later file with the same key */
	char *replaced_path, *replaced_by;   /* the first such pair, for a warning (owned) */
};

/* Reads ROOT/image_name/lpm_attention/<every sub-folder>/<map files>: sub-folders and
 * files in byte order of their names; a key read again replaces the earlier map (the
 * official loader's dict update, made deterministic) and is counted in `replaced`.
 * Errors (the set is freed): LVD_ERR_NOTFOUND when ROOT/image_name/lpm_attention is
 * missing (naming that path); LVD_ERR_FORMAT / LVD_ERR_IO for an unreadable map
 * (naming the file); LVD_ERR_INVALID for a key that is not UTF-8 or too long, and for
 * maps of different sizes ("PATH: map is 16x16, the maps before it are 32x32": one
 * record has one grid, and resampling would invent values, so such a folder is
 * refused); LVD_ERR_NOMEM. A folder without map files is LVD_ERR_NOTFOUND too. An
 * image_name that is empty, ".", ".." or holds '/' is LVD_ERR_INVALID. */
int lvd_official_read(struct lvd_official_set *set, const char *root, const char *image_name,
		      struct lvd_error *err);
void lvd_official_set_free(struct lvd_official_set *set);

/* Where the words of a tokenized text get their maps. */
struct lvd_official_assign_stats {
	uint32_t words;       /* words of the text with a map (all their tokens have one) */
	uint32_t piecewise;   /* ... of which got one map per CLIP piece ("skate" + "board") */
	uint32_t partial;     /* words with maps for some but not all of their pieces (absent) */
	uint32_t unused;      /* maps whose key is in the text but was not used (a word map won) */
	uint32_t cut;         /* maps of words past CLIP's 75-token truncation (unused) */
	uint32_t unknown;     /* maps whose key is not in the text (skip_unknown on) */
};

/* Assigns maps to the T kept tokens of tok: tok_map[t] = index into set->maps, or -1.
 * A word (tokens with the same word_idx) whose own key has a map gets it on all its
 * tokens; otherwise, when every one of its tokens' piece keys has a map, each token
 * gets its piece's map; otherwise the word has none. Repeated words get the same map.
 * cut_keys[n_cut]: keys (word and piece keys) of the text past the kept tokens; maps
 * with those keys are counted as `cut`. A map whose key is none of these is unknown:
 * LVD_ERR_NOTFOUND "PATH: word 'KEY' is not in the SD text" unless skip_unknown.
 * No map used at all is LVD_ERR_NOTFOUND ("no map ... names a word of the SD text"). */
int lvd_official_assign(int32_t *tok_map, struct lvd_official_assign_stats *st,
			const struct lvd_attnmap_text *tok, const struct lvd_official_set *set,
			const char *const *cut_keys, size_t n_cut, int skip_unknown, struct lvd_error *err);

/* The record payload of an imported sample (lib/lavender/mapsrec.h): the tokens with a
 * map (tok_map[t] >= 0) in text order with their ids, strings, spans; the words list
 * holds only the words that have maps (word_idx renumbered); maps are v/255 in fp16 on
 * the maps' own grid (grid [set->w, set->h]); image [img_w, img_h]; there is no SD
 * input, so sd_size is the image size, resolution its longer side, layers and timesteps
 * are empty lists, draws 1, seed 0. *out malloc'd (caller frees). */
int lvd_official_encode(uint8_t **out, size_t *out_len, const struct lvd_attnmap_sample *s,
			const struct lvd_official_set *set, const int32_t *tok_map, int img_w, int img_h,
			struct lvd_error *err);

/* ---- writing -------------------------------------------------------------------------- */

/* One word of a record, as the official loader keys it. */
struct lvd_official_word {
	char key[LVD_OFFICIAL_MAX_KEY];
	float *map;                      /* [grid_h][grid_w] (owned) */
};

/* The words of a decoded record: per unique word key, the mean of the fp16 maps of all
 * tokens of every word with that key (as lvd-pack merges a word's pieces and its
 * repeats). Words whose key cannot be a file name the loader parses back (empty, or
 * holding '_', '.', '/' or a NUL, or longer than 200 bytes) are left out and counted in
 * *skipped. *out malloc'd: free with lvd_official_words_free. */
int lvd_official_words(struct lvd_official_word **out, size_t *n, uint32_t *skipped,
		       const struct lvd_mapsrec *r, struct lvd_error *err);
void lvd_official_words_free(struct lvd_official_word *w, size_t n);

enum lvd_official_norm {
	LVD_OFFICIAL_NORM_MAX = 0,   /* round(255·v/max), max over the map (prompt-to-prompt); 0 when max <= 0 */
	LVD_OFFICIAL_NORM_NONE = 1,  /* round(255·clamp(v, 0, 1)) */
};

/* Quantises n values to 8 bits (negative and non-finite values count as 0). */
void lvd_official_quantize(uint8_t *dst, const float *src, size_t n, enum lvd_official_norm norm);

enum lvd_official_format { LVD_OFFICIAL_PNG = 0, LVD_OFFICIAL_JPEG = 1 };

/* Writes px [h][w] as ROOT/image_name/lpm_attention/<stem>/attention_<key>.png|.jpg
 * (stem: image_name without its last extension), creating the folders; atomically
 * (tmp, fsync, rename). JPEG: baseline grey, quality 100, accurate DCT — lossy (a few
 * levels off). LVD_ERR_IO naming the file, LVD_ERR_INVALID for a bad key or name. */
int lvd_official_write(const char *root, const char *image_name, const char *key, const uint8_t *px, int w,
		       int h, enum lvd_official_format fmt, struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
