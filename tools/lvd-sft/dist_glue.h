/* tools/lvd-sft/dist_glue.h — the data-parallel parts of lvd-sft run (docs/dist.md):
 * starting local ranks (--nproc-per-node), the start-up agreement of the ranks, the
 * per-step gradient all-reduce, and sharing rank 0's resumed state. run.c calls these at
 * a few hooks; with one rank each is a no-op (the one-process run is unchanged). */
#ifndef LVD_SFT_DIST_GLUE_H
#define LVD_SFT_DIST_GLUE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "dist/dist.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"
#include "train/zero.h"

/* --nproc-per-node N: runs this command (argv of `run`, without --nproc-per-node) as N
 * local ranks with a torchrun-style environment (RANK, WORLD_SIZE, LOCAL_RANK,
 * MASTER_ADDR=127.0.0.1, MASTER_PORT: the environment's, else a free port) on the TCP
 * backend, waits, and stops the others when one fails. Returns the job's exit status:
 * 0, the first failing rank's status, or 128 + signal when it was killed. */
int sft_dist_launch(int argc, char **argv, int nproc);

/* The communicator of this process (lib/dist reads the launcher's environment);
 * ranks other than 0 log errors only. Returns 0 or 1 (printed). */
int sft_dist_init(struct lvd_comm **out, double timeout_s);

/* Start-up agreement, called by every rank once its inputs are checked: rc is this
 * rank's start-up status (0, or the exit status of an error it has printed), identity
 * a flat JSON object of everything that must be equal on every rank (options, model and
 * pack hashes; borrowed). All-gathers {rc, SHA-256 of identity}. Returns 0 when every
 * rank is fine and agrees; 1 when a rank failed (rank 0 names it); 2 when identities
 * differ (each differing rank names the first key that differs from rank 0's). The
 * ranks all return the same value. */
int sft_dist_agree(struct lvd_comm *c, int rc, const json_t *identity);

/* Per text decoder layer work of a multi-rank run, through the model's layer hook
 * (lvd_mllama_set_layer_hook):
 *  overlap       the gradient all-reduce overlapped with the backward: the flat gradient
 *                block grad[n_grad] (LoRA or --full --zero 0) is cut into one bucket per
 *                text layer (the range of that layer's gradients: its LoRA adapters' or
 *                its parameters') and the rest; when an armed backward reports layer l
 *                final (BWD_END), that bucket's all-reduce starts at once
 *                (lvd_comm_all_reduce_start) while the backward goes on with layer l - 1;
 *                sft_dist_reduce_step waits for them and reduces the rest. Same sums as
 *                one all-reduce of the block (dist.h: tcp any rank count, mpi 2 ranks).
 *  shard_frozen  ZeRO-3 of the frozen base (LoRA; lib/train/zero3.h): each rank keeps
 *                1/world of every text decoder layer's weights, the model's own copies
 *                are dropped (their pages given back) and the layer's weight pointers
 *                lead to the gathered layer between FWD/BWD_BEGIN and END, the next
 *                layer's gather prefetched.
 * A hook that fails (a collective) logs and ends the job (lvd_comm_abort). With neither
 * option (or one rank and no sharding) *out = NULL and nothing is installed. */
struct sft_dist_layers;
int sft_dist_layers_create(struct sft_dist_layers **out, struct lvd_comm *c, struct lvd_mllama *m, float *grad,
			   size_t n_grad, int overlap, int shard_frozen, struct lvd_error *err);
/* on = 1 before the backward that makes the gradients final (the last micro-batch of the
 * step): its BWD_END events start the buckets; 0 for the others. */
void sft_dist_layers_arm(struct sft_dist_layers *d, int on);
/* A rank with no sample in an eval batch: the gathers of one forward, in step with the
 * ranks that run it (shard_frozen; nothing otherwise). */
void sft_dist_layers_idle_forward(struct sft_dist_layers *d);
/* Logs the sharding's bytes (rank 0), removes the hook, frees. NULL is a no-op. */
void sft_dist_layers_destroy(struct sft_dist_layers *d);

/* Sums the step's gradient blocks and the n_stats doubles (the step's loss terms,
 * sample count) over the ranks; *comm_s = the seconds it took (0 with one rank): with
 * layers' overlap, the wait for the buckets started during the backward plus the
 * blocking rest (the communication the backward did not hide). */
int sft_dist_reduce_step(struct lvd_comm *c, struct sft_dist_layers *layers, float *dlora, size_t n_lora, float *dal,
			 size_t n_al, double *stats, int n_stats, double *comm_s, struct lvd_error *err);

/* ZeRO-1 (--full on several ranks; lib/train/zero.h): the two halves of the step.
 * sft_dist_zero_reduce: reduce-scatter of the gradient blocks, the n_stats doubles summed
 * over the ranks, the global gradient norm into *norm (before clipping) and clipping by
 * clip (0: off). sft_dist_zero_update (after the caller's finiteness check): AdamW with
 * lr on this rank's shard, then the all-gather of the parameters. Each adds its seconds
 * to *comm_s (the collectives, the wait for the slowest rank and the shard's work). */
int sft_dist_zero_reduce(struct lvd_comm *c, struct lvd_zero *z, struct lvd_ctx *ctx, double clip, double *stats,
			 int n_stats, float *norm, double *comm_s, struct lvd_error *err);
int sft_dist_zero_update(struct lvd_comm *c, struct lvd_zero *z, struct lvd_ctx *ctx, double lr, double *comm_s,
			 struct lvd_error *err);

/* Rank root's value of an int64 status to every rank (rank 0's resume point, or its
 * failure), and rank 0's n_blocks float blocks (the resumed weights and moments). */
int sft_dist_share_i64(struct lvd_comm *c, int64_t *v, int n, struct lvd_error *err);
int sft_dist_share_blocks(struct lvd_comm *c, float *const *blocks, const size_t *n, int n_blocks,
			  struct lvd_error *err);

/* LVD_SFT_KILL_RANK (test hook): the rank LVD_SFT_KILL_AT kills (default: every rank). */
int sft_dist_kill_here(const struct lvd_comm *c);

#endif
