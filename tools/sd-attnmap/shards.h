/* sd-attnmap: listing the shards of a maps folder (inspect, viz, ls) and opening one for
 * a run (run, import). */
#ifndef LVD_SD_ATTNMAP_SHARDS_H
#define LVD_SD_ATTNMAP_SHARDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

/* A folder gives its attn-*.lvdm files sorted by name (an empty folder is
 * LVD_ERR_NOTFOUND); anything else is returned as the one path. *paths is owned: free
 * with am_free_list. */
int am_list_shards(const char *path, char ***paths, size_t *n, struct lvd_error *err);
void am_free_list(char **paths, size_t n);

/* lvd_run_open_split for split shard_i of shard_n of a maps folder, except that a run.json left by a run that wrote no
 * shard (no attn-*.lvdm, or for a split no first shard of its own: it failed before its
 * first shard) is replaced instead of
 * checked, so a corrected command is not pinned to the failed one's options. run is
 * stolen. Returns 0, or lvd_run_open_out's status after printing. */
int am_open_out(const char *out, uint32_t shard_i, uint32_t shard_n, json_t *run, const json_t *params,
		const json_t *inputs);

#endif
