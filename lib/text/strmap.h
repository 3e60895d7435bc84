/* lib/text/strmap.h — open-addressing hash map from byte strings to int64 values,
 * used for vocabularies, special-token tables and the BPE word cache. Keys are
 * copied into an arena owned by the map. Not thread-safe for concurrent writes. */
#ifndef LVD_TEXT_STRMAP_H
#define LVD_TEXT_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_strmap {
	uint32_t *slot;      /* cap entries: 0 = empty, else entry index + 1 */
	size_t cap;          /* power of two */
	struct lvd_strmap_ent { uint64_t hash; size_t off; uint32_t len; int64_t val; } *ent;
	size_t n, ecap;
	char *arena;
	size_t alen, acap;
};

uint64_t lvd_hash_bytes(const void *p, size_t n);

void lvd_strmap_init(struct lvd_strmap *m);
void lvd_strmap_free(struct lvd_strmap *m);
/* Inserts or overwrites. Returns 0, or LVD_ERR_NOMEM (the map is unchanged). */
int lvd_strmap_put(struct lvd_strmap *m, const void *key, size_t n, int64_t val);
/* 1 and *val when present, else 0. */
int lvd_strmap_get(const struct lvd_strmap *m, const void *key, size_t n, int64_t *val);
/* The i-th inserted entry's key (borrowed) and value, i < m->n. */
const char *lvd_strmap_key(const struct lvd_strmap *m, size_t i, size_t *n, int64_t *val);

#ifdef __cplusplus
}
#endif
#endif
