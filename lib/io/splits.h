/* lib/io/splits.h — the names of a run split with --shard i/N, so that the N runs of one
 * job can write into one folder (docs/FORMATS.md "Split runs").
 *
 * A run without --shard (N = 1) names its side files STEM.EXT (shards.jsonl, run.json,
 * pack.json, errors.jsonl, .lock). Split i of N > 1 names them STEM-IIIII-of-NNNNN.EXT
 * (shards-00003-of-00008.jsonl, ...), i counted from 0. A folder holds the files of one
 * kind of run: either the plain names or the splits of one N.
 * Every function returns LVD_OK or an error code with err naming the folder. */
#ifndef LVD_IO_SPLITS_H
#define LVD_IO_SPLITS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "" when n <= 1, else "-IIIII-of-NNNNN" (at most 24 bytes with the NUL). */
void lvd_split_tag(char *buf, size_t cap, uint32_t i, uint32_t n);

/* dir/STEM<tag>EXT, e.g. ("maps", "shards", ".jsonl", 3, 8) -> "maps/shards-00003-of-00008.jsonl". */
void lvd_split_path(char *buf, size_t cap, const char *dir, const char *stem, const char *ext, uint32_t i,
		    uint32_t n);

/* The files STEM.EXT / STEM-*-of-*.EXT of dir, in split order, as malloc'd paths (free
 * with lvd_split_list_free). LVD_ERR_NOTFOUND when there is none; LVD_ERR_INVALID when
 * the folder mixes the plain name with splits, mixes two N, or lacks splits of its N
 * (the message names the missing ones and the --shard options that make them). */
int lvd_split_list(const char *dir, const char *stem, const char *ext, char ***paths, size_t *n,
		   struct lvd_error *err);
void lvd_split_list_free(char **paths, size_t n);

/* lvd_split_list's checks over several folders that together hold one job's files
 * (lvd-pack --maps A --maps B): each folder of one kind, every split folder of one N, and
 * the splits found in all of them together complete — or, for a reader that is itself
 * split need_i of need_n with need_n equal to that N, split need_i present (lvd-pack
 * --shard i/N reads only the maps of split i). Folders without STEM files are ignored. */
int lvd_split_check_union(const char *const *dirs, int ndirs, const char *stem, const char *ext, uint32_t need_i,
			  uint32_t need_n, struct lvd_error *err);

/* Before split i of n writes into dir: LVD_ERR_INVALID when dir holds STEM.EXT files of
 * another kind of run (split files when n == 1; the plain file or splits of another N
 * when n > 1). A missing dir is fine. */
int lvd_split_check_out(const char *dir, const char *stem, const char *ext, uint32_t i, uint32_t n,
			struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
