/* lib/train/zero3.c — sharded frozen layers gathered layer by layer with prefetch
 * (contract in zero3.h). */
#include "train/zero3.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NBUF 2

struct lvd_zero3 {
	struct lvd_comm *comm;
	int n_layers, world, rank;
	size_t *n, *s;            /* [n_layers] floats of the layer, shard floats */
	float **shard;            /* [n_layers] this rank's shard [s_l] */
	size_t buf_floats;        /* world · max s_l */
	float *buf[NBUF];
	int owner[NBUF];          /* layer in the buffer, -1 */
	int held[NBUF];           /* acquired and not released */
	struct lvd_comm_req *req[NBUF];   /* gather in flight, NULL when complete */
	size_t shard_bytes, bytes, peak;
	uint64_t gathers, missed;
};

static void account(struct lvd_zero3 *z)
{
	z->bytes = z->shard_bytes;
	for (int b = 0; b < NBUF; b++)
		if (z->buf[b])
			z->bytes += z->buf_floats * sizeof(float);
	if (z->bytes > z->peak)
		z->peak = z->bytes;
}

int lvd_zero3_create(struct lvd_zero3 **out, struct lvd_comm *comm, const size_t *layer_floats, int n_layers,
		     struct lvd_error *err)
{
	*out = NULL;
	if (n_layers < 1)
		return lvd_error_set(err, LVD_ERR_INVALID, "zero3: no layers");
	struct lvd_zero3 *z = calloc(1, sizeof *z);
	if (!z)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	z->comm = comm;
	z->n_layers = n_layers;
	z->world = lvd_comm_world(comm);
	z->rank = lvd_comm_rank(comm);
	z->n = calloc((size_t)n_layers, sizeof *z->n);
	z->s = calloc((size_t)n_layers, sizeof *z->s);
	z->shard = calloc((size_t)n_layers, sizeof *z->shard);
	if (!z->n || !z->s || !z->shard) {
		lvd_zero3_destroy(z);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	size_t maxs = 0;
	for (int l = 0; l < n_layers; l++) {
		z->n[l] = layer_floats[l];
		z->s[l] = (layer_floats[l] + (size_t)z->world - 1) / (size_t)z->world;
		if (z->s[l] > maxs)
			maxs = z->s[l];
		if (!(z->shard[l] = calloc(z->s[l] ? z->s[l] : 1, sizeof(float)))) {
			lvd_zero3_destroy(z);
			return lvd_error_set(err, LVD_ERR_NOMEM, "zero3: out of memory (layer %d's shard)", l);
		}
		z->shard_bytes += z->s[l] * sizeof(float);
	}
	z->buf_floats = maxs * (size_t)z->world;
	for (int b = 0; b < NBUF; b++)
		z->owner[b] = -1;
	account(z);
	*out = z;
	return 0;
}

/* Waits for buffer b's gather (if any). */
static int finish(struct lvd_zero3 *z, int b, struct lvd_error *err)
{
	if (!z->req[b])
		return 0;
	struct lvd_comm_req *r = z->req[b];
	z->req[b] = NULL;
	return lvd_comm_wait(z->comm, r, err);
}

void lvd_zero3_destroy(struct lvd_zero3 *z)
{
	if (!z)
		return;
	for (int b = 0; b < NBUF; b++) {
		struct lvd_error e = {0};
		finish(z, b, &e);
		free(z->buf[b]);
	}
	for (int l = 0; z->shard && l < z->n_layers; l++)
		free(z->shard[l]);
	free(z->shard);
	free(z->n);
	free(z->s);
	free(z);
}

int lvd_zero3_set_layer(struct lvd_zero3 *z, int l, const float *const *src, const size_t *numel, int n,
			struct lvd_error *err)
{
	if (l < 0 || l >= z->n_layers)
		return lvd_error_set(err, LVD_ERR_INVALID, "zero3: layer %d of %d", l, z->n_layers);
	size_t tot = 0;
	for (int i = 0; i < n; i++)
		tot += numel[i];
	if (tot != z->n[l])
		return lvd_error_set(err, LVD_ERR_INVALID, "zero3: layer %d has %zu floats, its tensors %zu", l, z->n[l],
				     tot);
	size_t lo = (size_t)z->rank * z->s[l], hi = lo + z->s[l], off = 0;
	float *d = z->shard[l];
	memset(d, 0, z->s[l] * sizeof *d);
	for (int i = 0; i < n; i++) {
		size_t a = off > lo ? off : lo, e = off + numel[i] < hi ? off + numel[i] : hi;
		if (a < e)
			memcpy(d + (a - lo), src[i] + (a - off), (e - a) * sizeof *d);
		off += numel[i];
	}
	return 0;
}

/* Starts layer l's gather into a buffer: an empty one, else one that is not held (its
 * layer, released or prefetched, is dropped after its gather completes). Returns the
 * buffer, -1 when both are held (no error), -2 on error. */
static int start(struct lvd_zero3 *z, int l, struct lvd_error *err)
{
	int b = -1;
	for (int i = 0; i < NBUF && b < 0; i++)
		if (z->owner[i] < 0)
			b = i;
	for (int i = 0; i < NBUF && b < 0; i++)
		if (!z->held[i]) {
			if (finish(z, i, err))
				return -2;
			z->owner[i] = -1;
			b = i;
		}
	if (b < 0)
		return -1;
	if (!z->buf[b]) {
		if (!(z->buf[b] = malloc(z->buf_floats * sizeof(float) + 64))) {
			lvd_error_set(err, LVD_ERR_NOMEM, "zero3: out of memory (a layer buffer of %zu floats)",
				      z->buf_floats);
			return -2;
		}
		account(z);
	}
	if (lvd_comm_all_gather_start(z->comm, z->buf[b], z->shard[l], z->s[l] * sizeof(float), &z->req[b], err))
		return -2;
	z->owner[b] = l;
	z->gathers++;
	return b;
}

/* The buffer holding (or gathering) layer l, -1. */
static int holder(const struct lvd_zero3 *z, int l)
{
	for (int i = 0; i < NBUF; i++)
		if (z->owner[i] == l)
			return i;
	return -1;
}

const float *lvd_zero3_acquire(struct lvd_zero3 *z, int l, int next, struct lvd_error *err)
{
	if (l < 0 || l >= z->n_layers || next >= z->n_layers) {
		lvd_error_set(err, LVD_ERR_INVALID, "zero3: layer %d (next %d) of %d", l, next, z->n_layers);
		return NULL;
	}
	int b = holder(z, l);
	if (b < 0) {
		z->missed++;
		if ((b = start(z, l, err)) < 0) {
			if (b == -1)
				lvd_error_set(err, LVD_ERR_INVALID, "zero3: layer %d: both buffers are held (release "
					      "a layer first)", l);
			return NULL;
		}
	}
	z->held[b] = 1;
	if (next >= 0 && next != l && holder(z, next) < 0 && start(z, next, err) == -2)
		return NULL;
	if (finish(z, b, err))
		return NULL;
	return z->buf[b];
}

void lvd_zero3_release(struct lvd_zero3 *z, int l)
{
	/* The buffer keeps the layer (frozen weights never go stale): acquiring it again
	 * before the buffer is taken for another layer needs no gather. */
	int b = holder(z, l);
	if (b >= 0)
		z->held[b] = 0;
}

int lvd_zero3_trim(struct lvd_zero3 *z, struct lvd_error *err)
{
	int rc = 0;
	for (int b = 0; b < NBUF; b++) {
		if (z->held[b])
			continue;
		if (finish(z, b, err))
			rc = rc ? rc : LVD_ERR_IO;
		z->owner[b] = -1;
		free(z->buf[b]);
		z->buf[b] = NULL;
	}
	account(z);
	return rc;
}

size_t lvd_zero3_bytes(const struct lvd_zero3 *z)
{
	return z->bytes;
}

size_t lvd_zero3_peak_bytes(const struct lvd_zero3 *z)
{
	return z->peak;
}

void lvd_zero3_counts(const struct lvd_zero3 *z, uint64_t *gathers, uint64_t *missed)
{
	*gathers = z->gathers;
	*missed = z->missed;
}

size_t lvd_zero3_drop_pages(const void *p, size_t bytes)
{
	long pg = sysconf(_SC_PAGESIZE);
	if (pg <= 0 || !p)
		return 0;
	uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
	uintptr_t e = ((uintptr_t)p + bytes) & ~((uintptr_t)pg - 1);
	if (e <= a)
		return 0;
	return madvise((void *)a, e - a, MADV_DONTNEED) == 0 ? (size_t)(e - a) : 0;
}
