#include "text/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

uint64_t lvd_hash_bytes(const void *p, size_t n)
{
	const uint8_t *s = p;
	uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, s, 8);
		h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
		h ^= h >> 31;
		s += 8;
		n -= 8;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)s[i] << (8 * i);
	h = (h ^ v) * 0x94D049BB133111EBull;
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ull;
	h ^= h >> 32;
	return h;
}

void lvd_strmap_init(struct lvd_strmap *m)
{
	memset(m, 0, sizeof *m);
}

void lvd_strmap_free(struct lvd_strmap *m)
{
	free(m->slot);
	free(m->ent);
	free(m->arena);
	memset(m, 0, sizeof *m);
}

static size_t find_slot(const struct lvd_strmap *m, const void *key, size_t n, uint64_t h)
{
	size_t mask = m->cap - 1, i = (size_t)h & mask;
	for (;;) {
		uint32_t e = m->slot[i];
		if (!e)
			return i;
		const struct lvd_strmap_ent *x = &m->ent[e - 1];
		if (x->hash == h && x->len == n && memcmp(m->arena + x->off, key, n) == 0)
			return i;
		i = (i + 1) & mask;
	}
}

static int grow(struct lvd_strmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;
	uint32_t *ns = lvd_calloc_array(ncap, sizeof *ns);
	if (!ns)
		return LVD_ERR_NOMEM;
	for (size_t k = 0; k < m->n; k++) {
		size_t i = (size_t)m->ent[k].hash & (ncap - 1);
		while (ns[i])
			i = (i + 1) & (ncap - 1);
		ns[i] = (uint32_t)(k + 1);
	}
	free(m->slot);
	m->slot = ns;
	m->cap = ncap;
	return 0;
}

int lvd_strmap_put(struct lvd_strmap *m, const void *key, size_t n, int64_t val)
{
	if (n > UINT32_MAX || m->n >= UINT32_MAX - 1)
		return LVD_ERR_NOMEM;
	if ((m->n + 1) * 2 > m->cap && grow(m))
		return LVD_ERR_NOMEM;
	uint64_t h = lvd_hash_bytes(key, n);
	size_t i = find_slot(m, key, n, h);
	if (m->slot[i]) {
		m->ent[m->slot[i] - 1].val = val;
		return 0;
	}
	if (m->n == m->ecap) {
		size_t nc = m->ecap ? m->ecap * 2 : 64;
		void *p = lvd_realloc_array(m->ent, nc, sizeof *m->ent);
		if (!p)
			return LVD_ERR_NOMEM;
		m->ent = p;
		m->ecap = nc;
	}
	if (m->alen + n > m->acap) {
		size_t nc = m->acap ? m->acap : 1024;
		while (nc < m->alen + n)
			nc *= 2;
		char *p = realloc(m->arena, nc);
		if (!p)
			return LVD_ERR_NOMEM;
		m->arena = p;
		m->acap = nc;
	}
	if (n)
		memcpy(m->arena + m->alen, key, n);
	m->ent[m->n] = (struct lvd_strmap_ent){h, m->alen, (uint32_t)n, val};
	m->alen += n;
	m->slot[i] = (uint32_t)(++m->n);
	return 0;
}

int lvd_strmap_get(const struct lvd_strmap *m, const void *key, size_t n, int64_t *val)
{
	if (!m->cap)
		return 0;
	size_t i = find_slot(m, key, n, lvd_hash_bytes(key, n));
	if (!m->slot[i])
		return 0;
	*val = m->ent[m->slot[i] - 1].val;
	return 1;
}

const char *lvd_strmap_key(const struct lvd_strmap *m, size_t i, size_t *n, int64_t *val)
{
	*n = m->ent[i].len;
	if (val)
		*val = m->ent[i].val;
	return m->arena + m->ent[i].off;
}
