/* lib/train/zero3.h — ZeRO-3 for frozen weights: a stack of layers whose weights each rank
 * keeps only 1/world of, gathered whole layer by layer just before use, the next layer's
 * gather prefetched (started asynchronously, lib/dist) while this one computes, the
 * gathered copy released after use (FSDP full-shard of a frozen base; issue #20: the
 * 11B mllama's bf16 base does not fit a 24 GB card with activations).
 *
 * Layout. Layer l is the concatenation of its tensors (lvd_zero3_set_layer's order),
 * n_l floats, padded with zeros to world·s_l, s_l = ceil(n_l / world); rank r keeps
 * [r·s_l, (r+1)·s_l). A gather is lvd_comm_all_gather_start of the shards into one of
 * two layer buffers (world·max_l s_l floats each): byte copies, so the gathered weights
 * are the original bits and a sharded run computes exactly what the unsharded one does.
 * Memory per rank: Σ_l s_l + 2·world·max_l s_l floats instead of Σ_l n_l
 * (lvd_zero3_plan_bytes predicts it; lib/train/plan.h prints it).
 *
 * Use (every rank in the same order — the gathers are collectives):
 *   acquire(l, next) — layer l's full weights (waits for its gather, starting it if no
 *   buffer holds l), and starts the gather of layer next (-1: none) into the other buffer
 *   unless a buffer holds it already; release(l) gives l's buffer back. Forward:
 *   acquire(l, l+1), compute, release(l); backward: acquire(l, l-1), compute,
 *   release(l). A released buffer keeps its layer until it is taken for another one (the
 *   weights are frozen, so it never goes stale): the backward's first two layers are the
 *   forward's last two, and the next forward's first two the backward's last two, with
 *   no gather. A prefetched layer that is not acquired next stays until its buffer is
 *   needed, so any order is correct; the intended one is fast.
 * Two buffers at most; both are allocated at the first acquires and freed by
 * lvd_zero3_destroy (or lvd_zero3_trim between steps).
 *
 * Errors: lib/dist's (the communicator is then unusable: lvd_comm_abort), LVD_ERR_NOMEM,
 * LVD_ERR_INVALID (layer out of range, sizes that do not match the layer's). */
#ifndef LVD_TRAIN_ZERO3_H
#define LVD_TRAIN_ZERO3_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "dist/dist.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lvd_zero3;

/* A stack of n_layers layers of layer_floats[l] floats each (every rank the same). */
int lvd_zero3_create(struct lvd_zero3 **out, struct lvd_comm *comm, const size_t *layer_floats, int n_layers,
		     struct lvd_error *err);
/* Waits for gathers in flight, frees everything; NULL is a no-op. */
void lvd_zero3_destroy(struct lvd_zero3 *z);

/* Keeps this rank's shard of layer l, whose full weights are the n tensors src[i] of
 * numel[i] floats (concatenated in this order; Σ numel = layer_floats[l]). Local, no
 * communication; the caller may free or drop src afterwards. */
int lvd_zero3_set_layer(struct lvd_zero3 *z, int l, const float *const *src, const size_t *numel, int n,
			struct lvd_error *err);

/* Layer l's full weights (layer_floats[l] floats, read-only, valid until
 * lvd_zero3_release(z, l)); starts the prefetch of layer next (-1: none). NULL on error
 * (err set). */
const float *lvd_zero3_acquire(struct lvd_zero3 *z, int l, int next, struct lvd_error *err);
void lvd_zero3_release(struct lvd_zero3 *z, int l);
/* Between steps: waits for a prefetch in flight and frees the two buffers (the next
 * acquire allocates them again). Errors: the prefetch's. */
int lvd_zero3_trim(struct lvd_zero3 *z, struct lvd_error *err);

/* Bytes held now: the shards plus the allocated buffers; and the most held so far. */
size_t lvd_zero3_bytes(const struct lvd_zero3 *z);
size_t lvd_zero3_peak_bytes(const struct lvd_zero3 *z);
/* Gathers done so far, and the acquires among them that had to start their own gather
 * (`missed`: neither a prefetch nor a kept buffer held the layer). */
void lvd_zero3_counts(const struct lvd_zero3 *z, uint64_t *gathers, uint64_t *missed);

/* Bytes per rank the scheme holds for these layers at world ranks (elem_bytes per
 * weight: 4 fp32, 2 bf16): Σ s_l + 2·world·max s_l elements; the planner's prediction.
 * Inline, so the planner (lib/train/plan.c) does not pull lib/dist into its binaries. */
static inline uint64_t lvd_zero3_plan_bytes(const size_t *layer_floats, int n_layers, int world, int elem_bytes)
{
	uint64_t sum = 0, maxs = 0;
	for (int l = 0; l < n_layers; l++) {
		uint64_t s = ((uint64_t)layer_floats[l] + (uint64_t)world - 1) / (uint64_t)world;
		sum += s;
		if (s > maxs)
			maxs = s;
	}
	return (sum + 2 * (uint64_t)world * maxs) * (uint64_t)elem_bytes;
}

/* Gives the page-aligned interior of [p, p + bytes) back to the system (madvise
 * MADV_DONTNEED): for weights that are sharded and must never be read again through p
 * (anonymous memory then reads as zeros, a private file mapping as the file). Returns the
 * bytes released. */
size_t lvd_zero3_drop_pages(const void *p, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
