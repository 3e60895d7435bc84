#include "text/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "text/strmap.h"
#include "text/utf8.h"

#define MAX_ID (1 << 24)
#define CACHE_MAX_WORD 256
#define CACHE_MAX_ENTRIES (1u << 19)

struct pair_ent {
	uint64_t key;    /* left << 32 | right */
	uint64_t rank;   /* UINT64_MAX = empty slot */
	int32_t result;
};

struct heap_ent {
	uint64_t rank;
	uint32_t pos;
	int32_t result;
};

struct lvd_bpe {
	/* vocabulary */
	uint32_t *off, *len;   /* per id; len 0 = no token */
	uint8_t *eow;
	int32_t size, cap;
	uint8_t *bytes;
	size_t nbytes, bcap;
	struct lvd_strmap vocab; /* bytes + flag byte -> id */
	/* merges */
	struct pair_ent *pairs;
	size_t npairs, pcap;
	int32_t byte_id[256], byte_eow_id[256];
	int use_eow, ignore_merges, finished;
	/* encode scratch */
	int32_t *s_id, *s_prev, *s_next;
	uint32_t *s_len;
	size_t s_cap;
	struct heap_ent *heap;
	size_t h_cap;
	/* word cache: word -> offset into cache_ids ([count, ids...]) */
	struct lvd_strmap cache;
	int32_t *cache_ids;
	size_t cache_n, cache_cap;
};

void lvd_bpe_buf_free(struct lvd_bpe_buf *b)
{
	free(b->ids);
	free(b->len);
	memset(b, 0, sizeof *b);
}

static int buf_push(struct lvd_bpe_buf *b, int32_t id, uint32_t len)
{
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 64;
		int32_t *ni = lvd_realloc_array(b->ids, nc, sizeof *ni);
		if (!ni)
			return LVD_ERR_NOMEM;
		b->ids = ni;
		uint32_t *nl = lvd_realloc_array(b->len, nc, sizeof *nl);
		if (!nl)
			return LVD_ERR_NOMEM;
		b->len = nl;
		b->cap = nc;
	}
	b->ids[b->n] = id;
	b->len[b->n] = len;
	b->n++;
	return 0;
}

struct lvd_bpe *lvd_bpe_new(void)
{
	struct lvd_bpe *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	lvd_strmap_init(&b->vocab);
	lvd_strmap_init(&b->cache);
	for (int i = 0; i < 256; i++)
		b->byte_id[i] = b->byte_eow_id[i] = -1;
	return b;
}

void lvd_bpe_free(struct lvd_bpe *b)
{
	if (!b)
		return;
	free(b->off);
	free(b->len);
	free(b->eow);
	free(b->bytes);
	lvd_strmap_free(&b->vocab);
	free(b->pairs);
	free(b->s_id);
	free(b->s_prev);
	free(b->s_next);
	free(b->s_len);
	free(b->heap);
	lvd_strmap_free(&b->cache);
	free(b->cache_ids);
	free(b);
}

/* vocab key: bytes followed by the eow flag byte */
static int32_t vocab_find(const struct lvd_bpe *b, const uint8_t *s, size_t n, int eow)
{
	uint8_t stack[512];
	uint8_t *k = n + 1 <= sizeof stack ? stack : malloc(n + 1);
	if (!k)
		return -1;
	memcpy(k, s, n);
	k[n] = (uint8_t)(eow != 0);
	int64_t v;
	int found = lvd_strmap_get(&b->vocab, k, n + 1, &v);
	if (k != stack)
		free(k);
	return found ? (int32_t)v : -1;
}

int32_t lvd_bpe_find(const struct lvd_bpe *b, const uint8_t *s, size_t n, int eow)
{
	return vocab_find(b, s, n, eow);
}

int lvd_bpe_add_token(struct lvd_bpe *b, int32_t id, const uint8_t *s, size_t n, int eow,
		      struct lvd_error *err)
{
	if (id < 0 || id >= MAX_ID)
		return lvd_error_set(err, LVD_ERR_FORMAT, "token id %d out of range", (int)id);
	if (n == 0 || n > UINT32_MAX / 2)
		return lvd_error_set(err, LVD_ERR_FORMAT, "token %d: bad length %zu", (int)id, n);
	if (id >= b->cap) {
		int32_t nc = b->cap ? b->cap : 1024;
		while (nc <= id)
			nc *= 2;
		uint32_t *no = lvd_realloc_array(b->off, (size_t)nc, sizeof *no);
		if (!no)
			goto nomem;
		b->off = no;
		uint32_t *nl = lvd_realloc_array(b->len, (size_t)nc, sizeof *nl);
		if (!nl)
			goto nomem;
		b->len = nl;
		uint8_t *ne = lvd_realloc_array(b->eow, (size_t)nc, 1);
		if (!ne)
			goto nomem;
		b->eow = ne;
		memset(b->len + b->cap, 0, (size_t)(nc - b->cap) * sizeof *b->len);
		b->cap = nc;
	}
	if (b->len[id])
		return lvd_error_set(err, LVD_ERR_FORMAT, "token id %d defined twice", (int)id);
	if (vocab_find(b, s, n, eow) >= 0)
		return lvd_error_set(err, LVD_ERR_FORMAT, "token id %d: same bytes as token %d", (int)id,
				     (int)vocab_find(b, s, n, eow));
	if (b->nbytes + n > b->bcap) {
		size_t nc = b->bcap ? b->bcap : 4096;
		while (nc < b->nbytes + n)
			nc *= 2;
		uint8_t *p = realloc(b->bytes, nc);
		if (!p)
			goto nomem;
		b->bytes = p;
		b->bcap = nc;
	}
	if (b->nbytes > UINT32_MAX - n)
		goto nomem;
	memcpy(b->bytes + b->nbytes, s, n);
	b->off[id] = (uint32_t)b->nbytes;
	b->len[id] = (uint32_t)n;
	b->eow[id] = (uint8_t)(eow != 0);
	b->nbytes += n;
	if (id >= b->size)
		b->size = id + 1;
	{
		uint8_t stack[512];
		uint8_t *k = n + 1 <= sizeof stack ? stack : malloc(n + 1);
		if (!k)
			goto nomem;
		memcpy(k, s, n);
		k[n] = (uint8_t)(eow != 0);
		int rc = lvd_strmap_put(&b->vocab, k, n + 1, id);
		if (k != stack)
			free(k);
		if (rc)
			goto nomem;
	}
	if (n == 1) {
		if (eow)
			b->byte_eow_id[s[0]] = id;
		else
			b->byte_id[s[0]] = id;
	}
	return 0;
nomem:
	return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory adding token %d", (int)id);
}

/* decodes s into out (n bytes at least); returns length or (size_t)-1 */
static size_t decode_str(const char *s, size_t n, const char *suffix, uint8_t *out, int *eow)
{
	size_t sl = suffix ? strlen(suffix) : 0;
	*eow = 0;
	if (sl && n > sl && memcmp(s + n - sl, suffix, sl) == 0) {
		n -= sl;
		*eow = 1;
	}
	return lvd_bytelevel_decode(s, n, out);
}

int lvd_bpe_add_token_str(struct lvd_bpe *b, int32_t id, const char *s, size_t n, const char *suffix,
			  struct lvd_error *err)
{
	uint8_t stack[512];
	uint8_t *buf = n <= sizeof stack ? stack : malloc(n);
	if (!buf)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int eow;
	size_t l = decode_str(s, n, suffix, buf, &eow);
	int rc;
	if (l == (size_t)-1 || l == 0)
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "token %d '%.*s': not a byte-level string", (int)id,
				   (int)(n > 64 ? 64 : n), s);
	else
		rc = lvd_bpe_add_token(b, id, buf, l, eow, err);
	if (buf != stack)
		free(buf);
	return rc;
}

int32_t lvd_bpe_find_str(const struct lvd_bpe *b, const char *s, size_t n, const char *suffix)
{
	uint8_t stack[512];
	uint8_t *buf = n <= sizeof stack ? stack : malloc(n);
	if (!buf)
		return -1;
	int eow;
	size_t l = decode_str(s, n, suffix, buf, &eow);
	int32_t id = (l == (size_t)-1 || l == 0) ? -1 : vocab_find(b, buf, l, eow);
	if (buf != stack)
		free(buf);
	return id;
}

const uint8_t *lvd_bpe_token(const struct lvd_bpe *b, int32_t id, size_t *n, int *eow)
{
	if (id < 0 || id >= b->size || !b->len[id])
		return NULL;
	*n = b->len[id];
	if (eow)
		*eow = b->eow[id];
	return b->bytes + b->off[id];
}

int32_t lvd_bpe_size(const struct lvd_bpe *b)
{
	return b->size;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xFF51AFD7ED558CCDull;
	x ^= x >> 33;
	x *= 0xC4CEB9FE1A85EC53ull;
	x ^= x >> 33;
	return x;
}

static inline const struct pair_ent *pair_get(const struct lvd_bpe *b, int32_t l, int32_t r)
{
	if (!b->pcap)
		return NULL;
	uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
	size_t mask = b->pcap - 1, i = (size_t)mix64(key) & mask;
	for (;;) {
		const struct pair_ent *e = &b->pairs[i];
		if (e->rank == UINT64_MAX)
			return NULL;
		if (e->key == key)
			return e;
		i = (i + 1) & mask;
	}
}

static int pair_put(struct lvd_bpe *b, uint64_t key, uint64_t rank, int32_t result)
{
	if ((b->npairs + 1) * 2 > b->pcap) {
		size_t nc = b->pcap ? b->pcap * 2 : 1024;
		struct pair_ent *np = lvd_alloc_array(nc, sizeof *np);
		if (!np)
			return LVD_ERR_NOMEM;
		for (size_t i = 0; i < nc; i++)
			np[i].rank = UINT64_MAX;
		for (size_t i = 0; i < b->pcap; i++) {
			if (b->pairs[i].rank == UINT64_MAX)
				continue;
			size_t j = (size_t)mix64(b->pairs[i].key) & (nc - 1);
			while (np[j].rank != UINT64_MAX)
				j = (j + 1) & (nc - 1);
			np[j] = b->pairs[i];
		}
		free(b->pairs);
		b->pairs = np;
		b->pcap = nc;
	}
	size_t mask = b->pcap - 1, i = (size_t)mix64(key) & mask;
	while (b->pairs[i].rank != UINT64_MAX) {
		if (b->pairs[i].key == key) {
			if (rank < b->pairs[i].rank) {
				b->pairs[i].rank = rank;
				b->pairs[i].result = result;
			}
			return 0;
		}
		i = (i + 1) & mask;
	}
	b->pairs[i] = (struct pair_ent){key, rank, result};
	b->npairs++;
	return 0;
}

int lvd_bpe_add_merge(struct lvd_bpe *b, int32_t l, int32_t r, uint64_t rank, struct lvd_error *err)
{
	size_t nl = 0, nr = 0;
	int el = 0, er = 0;
	const uint8_t *sl = lvd_bpe_token(b, l, &nl, &el), *sr = lvd_bpe_token(b, r, &nr, &er);
	if (!sl || !sr)
		return lvd_error_set(err, LVD_ERR_FORMAT, "merge (%d, %d): unknown token", (int)l, (int)r);
	if (el)
		return lvd_error_set(err, LVD_ERR_FORMAT, "merge (%d, %d): left token ends a word", (int)l, (int)r);
	if (rank == UINT64_MAX)
		return lvd_error_set(err, LVD_ERR_FORMAT, "merge (%d, %d): rank out of range", (int)l, (int)r);
	uint8_t stack[512];
	uint8_t *k = nl + nr <= sizeof stack ? stack : malloc(nl + nr);
	if (!k)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	memcpy(k, sl, nl);
	memcpy(k + nl, sr, nr);
	int32_t res = vocab_find(b, k, nl + nr, er);
	if (k != stack)
		free(k);
	if (res < 0)
		return lvd_error_set(err, LVD_ERR_FORMAT, "merge (%d, %d): the merged token is not in the vocabulary",
				     (int)l, (int)r);
	if (pair_put(b, (uint64_t)(uint32_t)l << 32 | (uint32_t)r, rank, res))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory adding merges");
	return 0;
}

int lvd_bpe_merges_from_ranks(struct lvd_bpe *b, struct lvd_error *err)
{
	if (b->size > (1 << 20))
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "rank-derived merges need ids below 2^20 (have %d)",
				     (int)b->size);
	for (int32_t id = 0; id < b->size; id++) {
		if (b->len[id] < 2 || b->eow[id])
			continue;
		const uint8_t *s = b->bytes + b->off[id];
		size_t n = b->len[id];
		for (size_t i = 1; i < n; i++) {
			int32_t l = vocab_find(b, s, i, 0), r = vocab_find(b, s + i, n - i, 0);
			if (l < 0 || r < 0)
				continue;
			uint64_t rank = (uint64_t)id << 40 | (uint64_t)l << 20 | (uint64_t)r;
			if (pair_put(b, (uint64_t)(uint32_t)l << 32 | (uint32_t)r, rank, id))
				return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory deriving merges");
		}
	}
	return 0;
}

int lvd_bpe_finish(struct lvd_bpe *b, int use_eow, int ignore_merges, struct lvd_error *err)
{
	for (int i = 0; i < 256; i++) {
		if (b->byte_id[i] < 0)
			return lvd_error_set(err, LVD_ERR_FORMAT, "vocabulary lacks the token for byte 0x%02x", i);
		if (use_eow && b->byte_eow_id[i] < 0)
			return lvd_error_set(err, LVD_ERR_FORMAT,
					     "vocabulary lacks the end-of-word token for byte 0x%02x", i);
	}
	b->use_eow = use_eow;
	b->ignore_merges = ignore_merges;
	b->finished = 1;
	return 0;
}

static int scratch(struct lvd_bpe *b, size_t n)
{
	if (n <= b->s_cap)
		return 0;
	size_t nc = b->s_cap ? b->s_cap : 64;
	while (nc < n)
		nc *= 2;
	int32_t *a = lvd_realloc_array(b->s_id, nc, sizeof *a);
	if (!a)
		return LVD_ERR_NOMEM;
	b->s_id = a;
	if (!(a = lvd_realloc_array(b->s_prev, nc, sizeof *a)))
		return LVD_ERR_NOMEM;
	b->s_prev = a;
	if (!(a = lvd_realloc_array(b->s_next, nc, sizeof *a)))
		return LVD_ERR_NOMEM;
	b->s_next = a;
	uint32_t *l = lvd_realloc_array(b->s_len, nc, sizeof *l);
	if (!l)
		return LVD_ERR_NOMEM;
	b->s_len = l;
	struct heap_ent *h = lvd_realloc_array(b->heap, nc * 2, sizeof *h);
	if (!h)
		return LVD_ERR_NOMEM;
	b->heap = h;
	b->h_cap = nc * 2;
	b->s_cap = nc;
	return 0;
}

static inline int heap_less(const struct heap_ent *a, const struct heap_ent *c)
{
	return a->rank < c->rank || (a->rank == c->rank && a->pos < c->pos);
}

static int heap_push(struct lvd_bpe *b, size_t *hn, struct heap_ent e)
{
	if (*hn == b->h_cap) {
		size_t nc = b->h_cap * 2;
		struct heap_ent *h = lvd_realloc_array(b->heap, nc, sizeof *h);
		if (!h)
			return LVD_ERR_NOMEM;
		b->heap = h;
		b->h_cap = nc;
	}
	struct heap_ent *h = b->heap;
	size_t i = (*hn)++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!heap_less(&e, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = e;
	return 0;
}

static struct heap_ent heap_pop(struct lvd_bpe *b, size_t *hn)
{
	struct heap_ent *h = b->heap, top = h[0], last = h[--(*hn)];
	size_t i = 0, n = *hn;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && heap_less(&h[c + 1], &h[c]))
			c++;
		if (!heap_less(&h[c], &last))
			break;
		h[i] = h[c];
		i = c;
	}
	if (n)
		h[i] = last;
	return top;
}

static int try_pair(struct lvd_bpe *b, size_t *hn, int32_t pos)
{
	int32_t r = b->s_next[pos];
	if (r < 0)
		return 0;
	const struct pair_ent *e = pair_get(b, b->s_id[pos], b->s_id[r]);
	if (!e)
		return 0;
	return heap_push(b, hn, (struct heap_ent){e->rank, (uint32_t)pos, e->result});
}

static int cache_put(struct lvd_bpe *b, const uint8_t *w, size_t n, const struct lvd_bpe_buf *out, size_t first)
{
	size_t k = out->n - first;
	if (b->cache.n >= CACHE_MAX_ENTRIES)
		return 0;
	if (b->cache_n + k + 1 > b->cache_cap) {
		size_t nc = b->cache_cap ? b->cache_cap * 2 : 4096;
		while (nc < b->cache_n + k + 1)
			nc *= 2;
		int32_t *p = lvd_realloc_array(b->cache_ids, nc, sizeof *p);
		if (!p)
			return 0; /* a cache miss is never an error */
		b->cache_ids = p;
		b->cache_cap = nc;
	}
	if (lvd_strmap_put(&b->cache, w, n, (int64_t)b->cache_n))
		return 0;
	b->cache_ids[b->cache_n] = (int32_t)k;
	memcpy(b->cache_ids + b->cache_n + 1, out->ids + first, k * sizeof(int32_t));
	b->cache_n += k + 1;
	return 0;
}

int lvd_bpe_encode(struct lvd_bpe *b, const uint8_t *w, size_t n, struct lvd_bpe_buf *out)
{
	LVD_ASSERT(b->finished && n > 0);
	int64_t cv;
	if (n <= CACHE_MAX_WORD && lvd_strmap_get(&b->cache, w, n, &cv)) {
		int32_t k = b->cache_ids[cv];
		for (int32_t i = 0; i < k; i++) {
			int32_t id = b->cache_ids[cv + 1 + i];
			if (buf_push(out, id, b->len[id]))
				return LVD_ERR_NOMEM;
		}
		return 0;
	}
	if (b->ignore_merges) {
		int32_t id = vocab_find(b, w, n, b->use_eow);
		if (id >= 0)
			return buf_push(out, id, (uint32_t)n) ? LVD_ERR_NOMEM : 0;
	}
	if (n > INT32_MAX / 2 || scratch(b, n))
		return LVD_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		b->s_id[i] = (b->use_eow && i == n - 1) ? b->byte_eow_id[w[i]] : b->byte_id[w[i]];
		b->s_len[i] = 1;
		b->s_prev[i] = (int32_t)i - 1;
		b->s_next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
	}
	size_t hn = 0;
	for (size_t i = 0; i + 1 < n; i++)
		if (try_pair(b, &hn, (int32_t)i))
			return LVD_ERR_NOMEM;
	while (hn) {
		struct heap_ent top = heap_pop(b, &hn);
		int32_t p = (int32_t)top.pos;
		if (!b->s_len[p])
			continue;
		int32_t r = b->s_next[p];
		if (r < 0)
			continue;
		const struct pair_ent *e = pair_get(b, b->s_id[p], b->s_id[r]);
		if (!e || e->result != top.result || e->rank != top.rank)
			continue;
		b->s_id[p] = e->result;
		b->s_len[p] += b->s_len[r];
		b->s_len[r] = 0;
		int32_t rn = b->s_next[r];
		b->s_next[p] = rn;
		if (rn >= 0)
			b->s_prev[rn] = p;
		if (b->s_prev[p] >= 0 && try_pair(b, &hn, b->s_prev[p]))
			return LVD_ERR_NOMEM;
		if (try_pair(b, &hn, p))
			return LVD_ERR_NOMEM;
	}
	size_t first = out->n;
	for (int32_t i = 0; i >= 0; i = b->s_next[i])
		if (buf_push(out, b->s_id[i], b->s_len[i]))
			return LVD_ERR_NOMEM;
	if (n <= CACHE_MAX_WORD)
		cache_put(b, w, n, out, first);
	return 0;
}
