/* tests/unit/test_dist.c — lib/dist's communicator and lib/train/zero.h. Run alone it
 * tests the single-rank backend and the launcher environment rules; under
 * `mpirun -np N` (MPI backend) or with a torchrun-style environment (TCP backend) every
 * rank runs the collective cases (tests/cli/test_dist.sh does both, with 2 and 3 ranks).
 * `test_dist --hang S`: the last rank stops answering; the others must fail their next
 * collective after S seconds naming it, and end the job (exit 3 from lvd_comm_abort). */
#include "harness.h"

#include <unistd.h>

#include "dist/dist.h"
#include "train/optim.h"
#include "train/zero.h"
#include "train/zero3.h"

static struct lvd_comm *g_comm;
static int g_rank, g_world;

/* ---- environment ------------------------------------------------------------------ */

static const char *const ENV_VARS[] = {"LVD_DIST_BACKEND", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
				       "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
				       "SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS", NULL};

static void env_clear(void)
{
	for (int i = 0; ENV_VARS[i]; i++)
		unsetenv(ENV_VARS[i]);
}

static void test_env(void)
{
	if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_RANK") || getenv("PMIX_RANK") || getenv("RANK") ||
	    getenv("SLURM_PROCID"))
		SKIP("runs without a launcher only");
	struct lvd_comm_env e;
	struct lvd_error err = {0};
	env_clear();
	CHECK(lvd_comm_env_read(&e, &err) == 0 && e.world == 1 && e.rank == 0 && e.backend == LVD_COMM_SINGLE);
	CHECK_STR(e.launcher, "none");
	/* torchrun-style */
	setenv("RANK", "1", 1);
	setenv("WORLD_SIZE", "4", 1);
	setenv("LOCAL_RANK", "1", 1);
	setenv("MASTER_ADDR", "node7", 1);
	setenv("MASTER_PORT", "29500", 1);
	CHECK(lvd_comm_env_read(&e, &err) == 0);
	CHECK(e.rank == 1 && e.world == 4 && e.local_rank == 1 && e.backend == LVD_COMM_TCP && e.master_port == 29500);
	CHECK_STR(e.master_addr, "node7");
	CHECK_STR(e.launcher, "torchrun");
	setenv("RANK", "4", 1);
	CHECK(lvd_comm_env_read(&e, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "rank 4 is not below the world size 4");
	setenv("RANK", "x", 1);
	CHECK(lvd_comm_env_read(&e, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "RANK='x'");
	setenv("RANK", "0", 1);
	unsetenv("MASTER_PORT");
	CHECK(lvd_comm_env_read(&e, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "MASTER_PORT");
	setenv("WORLD_SIZE", "1", 1);
	CHECK(lvd_comm_env_read(&e, &err) == 0 && e.backend == LVD_COMM_SINGLE);
	env_clear();
	/* srun without PMI */
	setenv("SLURM_PROCID", "2", 1);
	setenv("SLURM_NTASKS", "8", 1);
	setenv("SLURM_LOCALID", "2", 1);
	setenv("SLURM_STEP_ID", "0", 1);
	CHECK(lvd_comm_env_read(&e, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "srun without PMI");
	setenv("MASTER_ADDR", "n1", 1);
	setenv("MASTER_PORT", "1234", 1);
	CHECK(lvd_comm_env_read(&e, &err) == 0 && e.rank == 2 && e.world == 8 && e.local_rank == 2);
	CHECK_STR(e.launcher, "srun");
	/* the batch step of an sbatch script (no SLURM_STEP_ID) is no launch */
	unsetenv("SLURM_STEP_ID");
	CHECK(lvd_comm_env_read(&e, &err) == 0 && e.world == 1);
	env_clear();
	setenv("LVD_DIST_BACKEND", "carrier-pigeon", 1);
	CHECK(lvd_comm_env_read(&e, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "LVD_DIST_BACKEND");
	env_clear();
}

/* ---- collectives ------------------------------------------------------------------ */

static uint16_t bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return (uint16_t)(u >> 16);
}

static void test_collectives(void)
{
	struct lvd_error err = {0};
	struct lvd_comm *c = g_comm;
	const int W = g_world, R = g_rank;
	CHECK(lvd_comm_world(c) == W && lvd_comm_rank(c) == R && R < W);
	/* Sums of small dyadic values are exact in any order. */
	enum { N = 1000 };
	float x[N], want[N];
	for (int i = 0; i < N; i++) {
		x[i] = (float)(R + 1) * 0.5f + (float)i;
		want[i] = 0;
		for (int r = 0; r < W; r++)
			want[i] += (float)(r + 1) * 0.5f + (float)i;
	}
	CHECK(lvd_comm_all_reduce(c, x, N, LVD_COMM_F32, LVD_COMM_SUM, &err) == 0);
	CHECK(memcmp(x, want, sizeof x) == 0);
	for (int i = 0; i < N; i++)
		x[i] = (float)(R + 1) * (float)W;
	CHECK(lvd_comm_all_reduce(c, x, N, LVD_COMM_F32, LVD_COMM_MEAN, &err) == 0);
	CHECK(x[0] == (float)((W + 1) * W / 2) && x[N - 1] == x[0]);
	double d[3] = {R, 1e-300, (double)R * 0.25};
	CHECK(lvd_comm_all_reduce(c, d, 3, LVD_COMM_F64, LVD_COMM_SUM, &err) == 0);
	CHECK(d[0] == (double)W * (W - 1) / 2 && d[1] == 1e-300 * W && d[2] == 0.25 * W * (W - 1) / 2);
	uint16_t h[4] = {bf16(1.0f), bf16((float)R), bf16(-2.0f), bf16(0.5f)};
	CHECK(lvd_comm_all_reduce(c, h, 4, LVD_COMM_BF16, LVD_COMM_SUM, &err) == 0);
	CHECK(h[0] == bf16((float)W) && h[1] == bf16((float)(W * (W - 1) / 2)) && h[2] == bf16(-2.0f * W));
	uint16_t hm[1] = {bf16(3.0f)};
	CHECK(lvd_comm_all_reduce(c, hm, 1, LVD_COMM_BF16, LVD_COMM_MEAN, &err) == 0 && hm[0] == bf16(3.0f));
	/* reduce-scatter: send[j] = R + j; recv[k] = Σ_r (r + R·n + k) */
	enum { NS = 5 };
	float *send = malloc((size_t)W * NS * sizeof *send), recv[NS];
	REQUIRE(send);
	for (int j = 0; j < W * NS; j++)
		send[j] = (float)(R + j);
	CHECK(lvd_comm_reduce_scatter(c, recv, send, NS, LVD_COMM_F32, LVD_COMM_SUM, &err) == 0);
	for (int k = 0; k < NS; k++)
		CHECKF(recv[k] == (float)(W * (W - 1) / 2 + W * (R * NS + k)), "recv[%d] = %g", k, recv[k]);
	free(send);
	/* all-gather, with send aliasing the rank's slot */
	char *g = calloc((size_t)W, 3);
	REQUIRE(g);
	char mine[3] = {(char)('a' + R), (char)R, 'z'};
	CHECK(lvd_comm_all_gather(c, g, mine, 3, &err) == 0);
	for (int r = 0; r < W; r++)
		CHECK(g[3 * r] == 'a' + r && g[3 * r + 1] == r && g[3 * r + 2] == 'z');
	g[3 * R] = 'A';
	CHECK(lvd_comm_all_gather(c, g, g + 3 * R, 3, &err) == 0);
	for (int r = 0; r < W; r++)
		CHECK(g[3 * r] == 'A');
	free(g);
	/* broadcast from the last rank and from rank 0 */
	uint64_t v[2] = {R == W - 1 ? 0xfeedULL : 0, (uint64_t)R};
	CHECK(lvd_comm_broadcast(c, v, sizeof v, W - 1, &err) == 0 && v[0] == 0xfeedULL && v[1] == (uint64_t)(W - 1));
	v[0] = (uint64_t)R + 100;
	CHECK(lvd_comm_broadcast(c, v, 8, 0, &err) == 0 && v[0] == 100);
	CHECK(lvd_comm_barrier(c, &err) == 0);
	CHECK(W == 1 || lvd_comm_bytes_sent(c) > 0);
	if (err.code)
		fprintf(stderr, "%s\n", err.msg);
	CHECK(lvd_comm_broadcast(c, v, 8, W, &err) == LVD_ERR_INVALID);
}

/* ---- asynchronous collectives ------------------------------------------------------ */

/* A value of rank r that is not dyadic: sums over ranks round, so the order shows. */
static float rnd_at(int r, size_t i)
{
	uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(r * 40503u + 7u);
	h ^= h >> 13;
	h *= 0x5bd1e995u;
	h ^= h >> 15;
	return ((float)(h & 0xffffff) / 16777216.0f - 0.5f) * (1.0f + (float)(i % 7)) * 3.3f;
}

static void test_async(void)
{
	struct lvd_error err = {0};
	struct lvd_comm *c = g_comm;
	const int W = g_world, R = g_rank;
	enum { N = 100003, NB = 7 };
	float *ref = malloc(N * sizeof *ref), *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
	REQUIRE(ref && x && y);
	for (size_t i = 0; i < N; i++)
		ref[i] = x[i] = y[i] = rnd_at(R, i);
	CHECK(lvd_comm_all_reduce(c, ref, N, LVD_COMM_F32, LVD_COMM_SUM, &err) == 0);
	/* One request equals the blocking call on the same buffer, bit for bit. */
	struct lvd_comm_req *q = NULL;
	CHECK(lvd_comm_all_reduce_start(c, x, N, LVD_COMM_F32, LVD_COMM_SUM, &q, &err) == 0);
	CHECK(lvd_comm_pending(c) == 1);
	CHECK(lvd_comm_wait(c, q, &err) == 0 && lvd_comm_pending(c) == 0);
	CHECK(memcmp(x, ref, N * sizeof *x) == 0);
	/* Buckets of uneven sizes in flight together, a blocking collective and an all-gather
	 * request among them: same results, in start order. With TCP (fixed rank-order sum)
	 * or 2 ranks (a + b = b + a) the split equals the one flat call. */
	static const size_t cut[NB + 1] = {0, 1, 17, 4096, 4097, 50000, 99999, N};
	struct lvd_comm_req *rq[NB + 1];
	for (int b = 0; b < NB; b++)
		CHECK(lvd_comm_all_reduce_start(c, y + cut[b], cut[b + 1] - cut[b], LVD_COMM_F32, LVD_COMM_SUM, &rq[b],
						&err) == 0);
	int64_t me = 1000 + R, all[64];
	REQUIRE(W <= 64);
	CHECK(lvd_comm_all_gather_start(c, all, &me, sizeof me, &rq[NB], &err) == 0);
	CHECK(lvd_comm_pending(c) == NB + 1);
	double d = R + 0.5;
	CHECK(lvd_comm_all_reduce(c, &d, 1, LVD_COMM_F64, LVD_COMM_SUM, &err) == 0);
	CHECK(d == (double)W * (W - 1) / 2 + 0.5 * W);
	for (int b = NB; b >= 0; b--)
		CHECK(lvd_comm_wait(c, rq[b], &err) == 0);
	for (int r = 0; r < W; r++)
		CHECK(all[r] == 1000 + r);
	if (lvd_comm_backend(c) == LVD_COMM_TCP || W <= 2) {
		CHECK(memcmp(y, ref, N * sizeof *y) == 0);
	} else {
		/* MPI with 3+ ranks: each bucket equals the blocking call of its own size. */
		for (size_t i = 0; i < N; i++)
			x[i] = rnd_at(R, i);
		for (int b = 0; b < NB; b++)
			CHECK(lvd_comm_all_reduce(c, x + cut[b], cut[b + 1] - cut[b], LVD_COMM_F32, LVD_COMM_SUM, &err) == 0);
		CHECK(memcmp(y, x, N * sizeof *y) == 0);
	}
	/* bf16 and MEAN go through the same staging as the blocking call. */
	uint16_t h[3] = {bf16(1.0f), bf16((float)R), bf16(0.25f)};
	CHECK(lvd_comm_all_reduce_start(c, h, 3, LVD_COMM_BF16, LVD_COMM_MEAN, &q, &err) == 0);
	CHECK(lvd_comm_wait(c, q, &err) == 0);
	CHECK(h[0] == bf16(1.0f) && h[2] == bf16(0.25f));
	CHECK(W == 1 || lvd_comm_bytes_sent(c) > 0);
	if (err.code)
		fprintf(stderr, "%s\n", err.msg);
	free(ref);
	free(x);
	free(y);
}

/* ---- ZeRO-1 ------------------------------------------------------------------------ */

/* Gradients of rank r at step t, dyadic so that sums over ranks are exact. */
static float grad_at(int r, int t, size_t i)
{
	return (float)((int)((i * 7 + (size_t)t * 3 + (size_t)r * 5) % 17) - 8) * 0.125f;
}

static void test_zero(void)
{
	struct lvd_error err = {0};
	struct lvd_ctx *ctx = NULL;
	struct lvd_ctx_opts co = {0};
	co.threads = 1;
	REQUIRE(lvd_ctx_create(&ctx, &co, &err) == 0);
	const int W = g_world, R = g_rank;
	/* Two blocks, one of three tensors; sizes not divisible by the world size. */
	enum { NA = 37, NB = 10 };
	static const size_t toff[4] = {0, 11, 11, NA};
	float pa[NA], pb[NB], ga[NA], gb[NB];     /* sharded run */
	float ua[NA], ub[NB], uga[NA], ugb[NB];   /* unsharded reference on the summed gradient */
	for (size_t i = 0; i < NA; i++)
		pa[i] = ua[i] = 0.01f * (float)i - 0.1f;
	for (size_t i = 0; i < NB; i++)
		pb[i] = ub[i] = 0.5f - 0.03f * (float)i;
	struct lvd_param_block zb[2] = {{"a", pa, ga, NA, 0.01, toff, 3}, {"b", pb, gb, NB, 0.0, NULL, 0}};
	struct lvd_param_block rb[2] = {{"a", ua, uga, NA, 0.01, toff, 3}, {"b", ub, ugb, NB, 0.0, NULL, 0}};
	struct lvd_optim_cfg cfg = {0.9, 0.999, 1e-8};
	struct lvd_zero *z = NULL;
	struct lvd_optim *ref = NULL;
	REQUIRE(lvd_zero_create(&z, ctx, g_comm, zb, 2, &cfg, &err) == 0);
	REQUIRE(lvd_optim_create(&ref, ctx, rb, 2, &cfg, &err) == 0);
	CHECK(z->opt->state_floats == 2 * ((z->hi[0] - z->lo[0]) + (z->hi[1] - z->lo[1])));
	for (int t = 0; t < 4; t++) {
		for (size_t i = 0; i < NA; i++) {
			ga[i] = grad_at(R, t, i);
			uga[i] = 0;
			for (int r = 0; r < W; r++)
				uga[i] += grad_at(r, t, i);
		}
		for (size_t i = 0; i < NB; i++) {
			gb[i] = grad_at(R, t, i + 100);
			ugb[i] = 0;
			for (int r = 0; r < W; r++)
				ugb[i] += grad_at(r, t, i + 100);
		}
		float nz = 0, nr = lvd_optim_clip(ctx, ref, 1.0);
		CHECK(lvd_zero_reduce(z, ctx, g_comm, 1.0, &nz, &err) == 0);
		CHECKF(nz == nr, "step %d: norm %.9g, unsharded %.9g", t, nz, nr);
		lvd_optim_step(ctx, ref, 1e-2);
		CHECK(lvd_zero_update(z, ctx, g_comm, 1e-2, &err) == 0);
		CHECKF(memcmp(pa, ua, sizeof pa) == 0 && memcmp(pb, ub, sizeof pb) == 0, "step %d: parameters differ", t);
	}
	/* The gathered state equals the unsharded one; setting it back restores the shard. */
	float ma[NA], va[NA], mb[NB], vb[NB];
	float *m[2] = {ma, mb}, *v[2] = {va, vb};
	CHECK(lvd_zero_gather_state(z, g_comm, m, v, &err) == 0);
	CHECK(memcmp(ma, ref->m[0], sizeof ma) == 0 && memcmp(va, ref->v[0], sizeof va) == 0);
	CHECK(memcmp(mb, ref->m[1], sizeof mb) == 0 && memcmp(vb, ref->v[1], sizeof vb) == 0);
	memset(z->opt->state, 0, z->opt->state_floats * sizeof(float));
	lvd_zero_set_state(z, m, v, 4);
	CHECK(z->opt->step == 4);
	CHECK(z->hi[0] == z->lo[0] || memcmp(z->opt->m[0], ref->m[0] + z->lo[0], (z->hi[0] - z->lo[0]) * 4) == 0);
	/* Only rank 0 holds the full state (the other ranks pass NULL): gather, then share it
	 * back after the shards are wiped (a resume). */
	memset(ma, 0, sizeof ma);
	memset(vb, 0, sizeof vb);
	CHECK(lvd_zero_gather_state(z, g_comm, R == 0 ? m : NULL, R == 0 ? v : NULL, &err) == 0);
	CHECK(R != 0 || (memcmp(ma, ref->m[0], sizeof ma) == 0 && memcmp(vb, ref->v[1], sizeof vb) == 0));
	memset(z->opt->state, 0, z->opt->state_floats * sizeof(float));
	CHECK(lvd_zero_share_state(z, g_comm, 0, R == 0 ? m : NULL, R == 0 ? v : NULL, R == 0 ? 4 : 0, &err) == 0);
	CHECK(z->opt->step == 4);
	for (int b = 0; b < 2; b++) {
		size_t k = z->hi[b] - z->lo[b];
		CHECKF(memcmp(z->opt->m[b], ref->m[b] + z->lo[b], k * 4) == 0 &&
			       memcmp(z->opt->v[b], ref->v[b] + z->lo[b], k * 4) == 0,
		       "block %d: shared moments differ", b);
	}
	if (err.code)
		fprintf(stderr, "%s\n", err.msg);
	lvd_zero_destroy(ctx, z);
	lvd_optim_destroy(ctx, ref);
	lvd_ctx_destroy(ctx);
}

/* ---- ZeRO-3 of frozen weights --------------------------------------------------------- */

/* A synthetic stack: layer l maps x[D] to tanh(W_l x + b_l) (W_l [D_l·D], b_l [D]; the
 * layers' sizes differ and do not divide by the world size); the "backward" walks the
 * layers in reverse and reads every weight again (dx = W_lᵀ (dy ⊙ (1 − y²))). The
 * sharded run (weights gathered layer by layer, prefetching) must equal the unsharded
 * one bit for bit, hold less, and gather only what the two buffers do not hold. */
enum { Z3_L = 6, Z3_D = 13 };

static void z3_layer(const float *W, const float *b, const float *x, float *y)
{
	for (int i = 0; i < Z3_D; i++) {
		float a = b[i];
		for (int j = 0; j < Z3_D; j++)
			a += W[i * Z3_D + j] * x[j];
		y[i] = tanhf(a);
	}
}

static void z3_back(const float *W, const float *y, const float *dy, float *dx)
{
	for (int j = 0; j < Z3_D; j++) {
		float a = 0;
		for (int i = 0; i < Z3_D; i++)
			a += W[i * Z3_D + j] * dy[i] * (1.0f - y[i] * y[i]);
		dx[j] = a;
	}
}

static void test_zero3(void)
{
	struct lvd_error err = {0};
	const int W = g_world;
	/* Layer l: W_l plus an unused tail of l floats (uneven sizes), then b_l. */
	float *w[Z3_L], *b[Z3_L];
	size_t nf[Z3_L], full = 0;
	for (int l = 0; l < Z3_L; l++) {
		w[l] = malloc((Z3_D * Z3_D + (size_t)l) * sizeof(float));
		b[l] = malloc(Z3_D * sizeof(float));
		REQUIRE(w[l] && b[l]);
		for (size_t i = 0; i < Z3_D * Z3_D + (size_t)l; i++)
			w[l][i] = rnd_at(l + 100, i) * 0.3f;
		for (size_t i = 0; i < Z3_D; i++)
			b[l][i] = rnd_at(l + 200, i);
		nf[l] = Z3_D * Z3_D + (size_t)l + Z3_D;
		full += nf[l] * sizeof(float);
	}
	/* unsharded reference */
	float ys[Z3_L + 1][Z3_D], ref_y[Z3_D], ref_dx[Z3_D], dy[Z3_D];
	for (int i = 0; i < Z3_D; i++)
		ys[0][i] = rnd_at(7, (size_t)i);
	for (int l = 0; l < Z3_L; l++)
		z3_layer(w[l], b[l], ys[l], ys[l + 1]);
	memcpy(ref_y, ys[Z3_L], sizeof ref_y);
	memcpy(dy, ref_y, sizeof dy);
	for (int l = Z3_L - 1; l >= 0; l--) {
		z3_back(w[l], ys[l + 1], dy, ref_dx);
		memcpy(dy, ref_dx, sizeof dy);
	}
	/* sharded */
	struct lvd_zero3 *z = NULL;
	REQUIRE(lvd_zero3_create(&z, g_comm, nf, Z3_L, &err) == 0);
	for (int l = 0; l < Z3_L; l++) {
		const float *src[2] = {w[l], b[l]};
		size_t n[2] = {Z3_D * Z3_D + (size_t)l, Z3_D};
		CHECK(lvd_zero3_set_layer(z, l, src, n, 2, &err) == 0);
		CHECK(lvd_zero3_set_layer(z, l, src, n, 1, &err) == LVD_ERR_INVALID);
	}
	/* Step 0 ends with a trim (buffers freed), steps 1 and 2 keep them. */
	for (int step = 0; step < 3; step++) {
		for (int l = 0; l < Z3_L; l++) {
			const float *g = lvd_zero3_acquire(z, l, l + 1 < Z3_L ? l + 1 : -1, &err);
			REQUIRE(g);
			z3_layer(g, g + Z3_D * Z3_D + l, ys[l], ys[l + 1]);
			lvd_zero3_release(z, l);
		}
		CHECK(memcmp(ys[Z3_L], ref_y, sizeof ref_y) == 0);
		memcpy(dy, ys[Z3_L], sizeof dy);
		float dx[Z3_D];
		for (int l = Z3_L - 1; l >= 0; l--) {
			const float *g = lvd_zero3_acquire(z, l, l - 1, &err);
			REQUIRE(g);
			z3_back(g, ys[l + 1], dy, dx);
			memcpy(dy, dx, sizeof dy);
			lvd_zero3_release(z, l);
		}
		CHECK(memcmp(dx, ref_dx, sizeof dx) == 0);
		CHECK(step > 0 || lvd_zero3_trim(z, &err) == 0);
	}
	/* From empty buffers a step gathers 2L − 2 layers (the backward's first two are the
	 * forward's last two, kept), one of them not prefetched (the first); with the
	 * buffers kept from the last step 2L − 4, none missed. */
	uint64_t gathers = 0, missed = 0;
	lvd_zero3_counts(z, &gathers, &missed);
	CHECKF(missed == 2 && gathers == 2 * (2 * Z3_L - 2) + 2 * Z3_L - 4, "gathers %llu, missed %llu",
	       (unsigned long long)gathers, (unsigned long long)missed);
	/* Memory: the shards plus two buffers (the planner's formula); with 3+ ranks less than
	 * the whole stack even for this tiny one. */
	size_t peak = lvd_zero3_peak_bytes(z);
	CHECKF(peak == lvd_zero3_plan_bytes(nf, Z3_L, W, 4), "peak %zu, plan %llu", peak,
	       (unsigned long long)lvd_zero3_plan_bytes(nf, Z3_L, W, 4));
	CHECK(W < 3 || peak < full);
	CHECK(lvd_zero3_plan_bytes(nf, Z3_L, 8, 2) < full / 2);
	CHECK(lvd_zero3_acquire(z, Z3_L, -1, &err) == NULL && err.code == LVD_ERR_INVALID);
	lvd_zero3_destroy(z);
	for (int l = 0; l < Z3_L; l++) {
		free(w[l]);
		free(b[l]);
	}
}

static int hang(double timeout)
{
	struct lvd_error err = {0};
	float x[4] = {1, 2, 3, 4};
	if (g_rank == g_world - 1 && g_world > 1) {
		sleep((unsigned)(timeout + 3)); /* killed by MPI_Abort, or fails on the closed sockets */
		lvd_comm_all_reduce(g_comm, x, 4, LVD_COMM_F32, LVD_COMM_SUM, &err);
		fprintf(stderr, "%s\n", err.msg);
		lvd_comm_abort(g_comm, 3);
	}
	if (lvd_comm_all_reduce(g_comm, x, 4, LVD_COMM_F32, LVD_COMM_SUM, &err) == 0) {
		fprintf(stderr, "rank %d: the all-reduce completed without rank %d\n", g_rank, g_world - 1);
		return 1;
	}
	fprintf(stderr, "%s\n", err.msg);
	lvd_comm_abort(g_comm, 3);
}

int main(int argc, char **argv)
{
	struct lvd_error err = {0};
	double timeout = 0;
	if (argc > 2 && !strcmp(argv[1], "--hang"))
		timeout = atof(argv[2]);
	struct lvd_comm_opts co = {timeout > 0 ? timeout : 60, 0};
	if (lvd_comm_init(&g_comm, &co, &err)) {
		fprintf(stderr, "test_dist: %s\n", err.msg);
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	g_rank = lvd_comm_rank(g_comm);
	g_world = lvd_comm_world(g_comm);
	if (timeout > 0)
		return hang(timeout);
	static const struct lvd_test tests[] = {TEST(test_env), TEST(test_collectives), TEST(test_async), TEST(test_zero), TEST(test_zero3), {0}};
	int rc = lvd_test_main(argc, argv, tests);
	lvd_comm_destroy(g_comm);
	return rc;
}
