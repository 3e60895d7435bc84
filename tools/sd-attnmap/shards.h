/* sd-attnmap: listing the shards of a maps folder (inspect, viz). */
#ifndef LVD_SD_ATTNMAP_SHARDS_H
#define LVD_SD_ATTNMAP_SHARDS_H

#include <stddef.h>
#include "core/error.h"

/* A folder gives its attn-*.lvdm files sorted by name (an empty folder is
 * LVD_ERR_NOTFOUND); anything else is returned as the one path. *paths is owned: free
 * with am_free_list. */
int am_list_shards(const char *path, char ***paths, size_t *n, struct lvd_error *err);
void am_free_list(char **paths, size_t n);

#endif
