/* lvd-pack: the SD map shards of one or more --maps folders, joined as one set (run),
 * and the listing of a shard folder (ls).
 *
 * Joining checks that the set is one stage-1 configuration: every shard's header
 * `params` must equal the first shard's except the per-run keys shard, shard_bytes and
 * zstd_level, and its `inputs` must name the same SD weights and tokenizer; a record id
 * may occur in one shard only. A refusal names both shards and the differing key. */
#ifndef LVD_PACK_MAPS_H
#define LVD_PACK_MAPS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "io/container.h"

struct lp_maps_ent;

struct lp_maps {
	struct lvd_rec_reader **r;    /* [n], in folder order, then file-name order */
	int *text_field;              /* [n]: the SD text rule its maker used (enum lvd_text_field) */
	size_t n;
	struct lp_maps_ent *idx;      /* every record id, sorted */
	size_t n_idx;
};

/* Opens every *.lvdm of dirs[0..ndirs) and checks them as above. fp gets one
 * {file, header_sha256, records} per shard (file: the name; "DIR/name" with several
 * folders). Folders of --shard i/N runs (shards-IIIII-of-NNNNN.jsonl) must together hold
 * all N splits, or split shard_i when this pack run is --shard shard_i/N of the same N
 * (lvd_split_check_union; the error names the missing ones), and then only the shards
 * of split shard_i are opened and fingerprinted. Errors name
 * the folder or shards. */
int lp_maps_open(struct lp_maps *m, const char *const *dirs, int ndirs, uint32_t shard_i, uint32_t shard_n, json_t *fp,
		 struct lvd_error *err);
/* The shard holding id (its index; *rec the record), or -1. */
long lp_maps_find(const struct lp_maps *m, const char *id, size_t *rec);
void lp_maps_close(struct lp_maps *m);

/* The *.lvdm or *.lvdp files (ext) of dir, sorted by name; owned, free each and the
 * array. A folder without any is LVD_ERR_NOTFOUND. */
int lp_list_ext(const char *dir, const char *ext, char ***names, size_t *n, struct lvd_error *err);

#endif
