/* lib/dist/dist.c — launcher environment, backend choice, the single-rank backend, and the
 * host backends' bf16 staging and MEAN (see dist.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/dist_impl.h"

size_t lvd_comm_dtype_size(enum lvd_comm_dtype dt)
{
	return dt == LVD_COMM_F64 ? 8 : dt == LVD_COMM_F32 ? 4 : 2;
}

void lvd_comm_add(void *dst, const void *src, size_t n, enum lvd_comm_dtype dt)
{
	if (dt == LVD_COMM_F64) {
		double *d = dst;
		const double *s = src;
		for (size_t i = 0; i < n; i++)
			d[i] += s[i];
	} else {
		float *d = dst;
		const float *s = src;
		for (size_t i = 0; i < n; i++)
			d[i] += s[i];
	}
}

/* ---- environment ------------------------------------------------------------------ */

/* Integer environment variable name in [min, max] into *out; 0 when unset (*out kept),
 * 1 when read, -1 (err set) when malformed. */
static int env_int(const char *name, long min, long max, int *out, struct lvd_error *err)
{
	const char *s = getenv(name);
	if (!s)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		lvd_error_set(err, LVD_ERR_INVALID, "environment: %s='%s' is not an integer in [%ld, %ld]", name, s, min,
			      max);
		return -1;
	}
	*out = (int)v;
	return 1;
}

static int env_master(struct lvd_comm_env *e, const char *who, struct lvd_error *err)
{
	const char *a = getenv("MASTER_ADDR");
	snprintf(e->master_addr, sizeof e->master_addr, "%s", a && *a ? a : "127.0.0.1");
	int r = env_int("MASTER_PORT", 1, 65535, &e->master_port, err);
	if (r < 0)
		return LVD_ERR_INVALID;
	if (r == 0)
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "environment: %s without MASTER_PORT (the TCP rendezvous at MASTER_ADDR:MASTER_PORT "
				     "needs it; see docs/dist.md)", who);
	return 0;
}

int lvd_comm_env_read(struct lvd_comm_env *e, struct lvd_error *err)
{
	memset(e, 0, sizeof *e);
	e->world = 1;
	e->backend = LVD_COMM_SINGLE;
	e->launcher = "none";
	const char *force = getenv("LVD_DIST_BACKEND");
	int have_ompi = getenv("OMPI_COMM_WORLD_SIZE") != NULL;
	int have_pmi = getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
	int have_slurm = getenv("SLURM_PROCID") && getenv("SLURM_STEP_ID");
	int have_torch = getenv("RANK") && getenv("WORLD_SIZE");
	if (force && strcmp(force, "single") && strcmp(force, "mpi") && strcmp(force, "tcp"))
		return lvd_error_set(err, LVD_ERR_INVALID, "environment: LVD_DIST_BACKEND='%s' is not single, mpi or tcp",
				     force);
	if (force && !strcmp(force, "single"))
		return 0;
	if ((force && !strcmp(force, "mpi")) || (!force && (have_ompi || have_pmi))) {
		e->launcher = have_ompi ? "mpirun" : have_slurm ? "srun" : "mpirun";
		if (!LVD_HAVE_MPI)
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "environment: launched by %s (%s is set) but this build has no MPI; rebuild "
					     "with libopenmpi-dev installed, or launch with --nproc-per-node or a "
					     "torchrun-style environment", e->launcher,
					     have_ompi ? "OMPI_COMM_WORLD_SIZE" : "PMI_RANK/PMIX_RANK");
		e->backend = LVD_COMM_MPI;
		/* The ranks come from MPI itself; read what the launcher says for messages. */
		if (env_int("OMPI_COMM_WORLD_SIZE", 1, 1 << 20, &e->world, err) < 0 ||
		    env_int("OMPI_COMM_WORLD_RANK", 0, 1 << 20, &e->rank, err) < 0 ||
		    env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0, 1 << 20, &e->local_rank, err) < 0)
			return LVD_ERR_INVALID;
		return 0;
	}
	if (have_torch || (force && !strcmp(force, "tcp"))) {
		e->launcher = "torchrun";
		e->backend = LVD_COMM_TCP;
		e->world = -1;
		if (env_int("RANK", 0, 1 << 20, &e->rank, err) <= 0 ||
		    env_int("WORLD_SIZE", 1, 1 << 20, &e->world, err) <= 0) {
			if (!err || err->code == LVD_OK)
				lvd_error_set(err, LVD_ERR_INVALID, "environment: RANK and WORLD_SIZE must both be set");
			return LVD_ERR_INVALID;
		}
		e->local_rank = e->rank;
		if (env_int("LOCAL_RANK", 0, 1 << 20, &e->local_rank, err) < 0)
			return LVD_ERR_INVALID;
	} else if (have_slurm) {
		e->launcher = "srun";
		e->backend = LVD_COMM_TCP;
		if (env_int("SLURM_PROCID", 0, 1 << 20, &e->rank, err) < 0 ||
		    env_int("SLURM_NTASKS", 1, 1 << 20, &e->world, err) < 0 ||
		    env_int("SLURM_STEP_NUM_TASKS", 1, 1 << 20, &e->world, err) < 0 ||
		    env_int("SLURM_LOCALID", 0, 1 << 20, &e->local_rank, err) < 0)
			return LVD_ERR_INVALID;
		if (e->world > 1 && (!getenv("MASTER_ADDR") || !getenv("MASTER_PORT")))
			return lvd_error_set(err, LVD_ERR_INVALID,
					     "environment: srun without PMI and without MASTER_ADDR/MASTER_PORT: use "
					     "srun --mpi=pmix (MPI build), or export MASTER_ADDR (the first node) and "
					     "MASTER_PORT as docs/dist.md's sbatch script does");
	} else {
		return 0;
	}
	if (e->rank >= e->world)
		return lvd_error_set(err, LVD_ERR_INVALID, "environment: rank %d is not below the world size %d (%s)",
				     e->rank, e->world, e->launcher);
	if (e->world == 1) {
		e->backend = LVD_COMM_SINGLE;
		return 0;
	}
	return env_master(e, e->launcher, err);
}

/* ---- single rank ------------------------------------------------------------------ */

static int single_all_reduce(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			     struct lvd_error *err)
{
	return 0;
}

static int single_reduce_scatter(struct lvd_comm *c, void *recv, const void *send, size_t n, enum lvd_comm_dtype dt,
				 enum lvd_comm_op op, struct lvd_error *err)
{
	if (recv != send)
		memmove(recv, send, n * lvd_comm_dtype_size(dt));
	return 0;
}

static int single_all_gather(struct lvd_comm *c, void *recv, const void *send, size_t bytes, struct lvd_error *err)
{
	if (recv != send)
		memmove(recv, send, bytes);
	return 0;
}

static int single_broadcast(struct lvd_comm *c, void *buf, size_t bytes, int root, struct lvd_error *err)
{
	return 0;
}

static int single_barrier(struct lvd_comm *c, struct lvd_error *err)
{
	return 0;
}

static void single_abort(struct lvd_comm *c, int code)
{
	_exit(code);
}

static void single_destroy(struct lvd_comm *c)
{
}

static const struct lvd_comm_vt SINGLE_VT = {
	"single", single_all_reduce, single_reduce_scatter, single_all_gather, single_broadcast, single_barrier,
	single_abort, single_destroy, NULL, NULL,
};

/* ---- public ----------------------------------------------------------------------- */

int lvd_comm_init(struct lvd_comm **out, const struct lvd_comm_opts *opts, struct lvd_error *err)
{
	*out = NULL;
	struct lvd_comm_env env;
	int rc = lvd_comm_env_read(&env, err);
	if (rc)
		return rc;
	struct lvd_comm *c = calloc(1, sizeof *c);
	if (!c)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	c->vt = &SINGLE_VT;
	c->backend = LVD_COMM_SINGLE;
	c->rank = env.rank;
	c->world = env.world;
	c->local_rank = env.local_rank;
	c->timeout_s = opts && opts->timeout_s > 0 ? opts->timeout_s : LVD_COMM_DEFAULT_TIMEOUT;
	if (env.backend == LVD_COMM_MPI)
		rc = lvd_comm_mpi_start(c, err);
	else if (env.backend == LVD_COMM_TCP)
		rc = lvd_comm_tcp_start(c, &env, err);
	if (rc) {
		free(c);
		return rc;
	}
	if (opts && opts->device) {
		struct lvd_comm *g = calloc(1, sizeof *g);
		if (!g) {
			lvd_comm_destroy(c);
			return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		}
		*g = *c;
		g->impl = NULL;
		if ((rc = lvd_comm_nccl_start(g, c, err))) {
			free(g);
			lvd_comm_destroy(c);
			return rc;
		}
		c = g;
	}
	*out = c;
	return 0;
}

void lvd_comm_destroy(struct lvd_comm *c)
{
	if (!c)
		return;
	lvd_comm_async_stop(c);
	c->vt->destroy(c);
	if (c->host)
		lvd_comm_destroy(c->host);
	free(c);
}

int lvd_comm_rank(const struct lvd_comm *c) { return c->rank; }
int lvd_comm_world(const struct lvd_comm *c) { return c->world; }
int lvd_comm_local_rank(const struct lvd_comm *c) { return c->local_rank; }
enum lvd_comm_backend lvd_comm_backend(const struct lvd_comm *c) { return c->backend; }
const char *lvd_comm_backend_name(const struct lvd_comm *c) { return c->vt->name; }
uint64_t lvd_comm_bytes_sent(const struct lvd_comm *c) { return c->bytes_sent; }

static float bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static uint16_t f32_to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

static void scale_mean(void *buf, size_t n, enum lvd_comm_dtype dt, int world)
{
	if (dt == LVD_COMM_F64) {
		double *d = buf;
		for (size_t i = 0; i < n; i++)
			d[i] /= world;
	} else {
		float *f = buf;
		for (size_t i = 0; i < n; i++)
			f[i] /= (float)world;
	}
}

static int is_host(const struct lvd_comm *c)
{
	return c->backend != LVD_COMM_NCCL;
}

int lvd_comm_all_reduce(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			struct lvd_error *err)
{
	int rc = lvd_comm_async_drain(c, err);
	return rc ? rc : lvd_comm_run_all_reduce(c, buf, n, dt, op, err);
}

int lvd_comm_run_all_reduce(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			    struct lvd_error *err)
{
	if (!is_host(c))
		return c->vt->all_reduce(c, buf, n, dt, op, err);
	if (c->world == 1 || n == 0)
		return 0;
	if (dt == LVD_COMM_BF16) {
		float *t = malloc(n * sizeof *t);
		if (!t)
			return lvd_error_set(err, LVD_ERR_NOMEM, "all-reduce: out of memory (%zu bf16 values)", n);
		const uint16_t *h = buf;
		for (size_t i = 0; i < n; i++)
			t[i] = bf16_to_f32(h[i]);
		int rc = c->vt->all_reduce(c, t, n, LVD_COMM_F32, LVD_COMM_SUM, err);
		if (!rc) {
			if (op == LVD_COMM_MEAN)
				scale_mean(t, n, LVD_COMM_F32, c->world);
			uint16_t *o = buf;
			for (size_t i = 0; i < n; i++)
				o[i] = f32_to_bf16(t[i]);
		}
		free(t);
		return rc;
	}
	int rc = c->vt->all_reduce(c, buf, n, dt, LVD_COMM_SUM, err);
	if (!rc && op == LVD_COMM_MEAN)
		scale_mean(buf, n, dt, c->world);
	return rc;
}

int lvd_comm_reduce_scatter(struct lvd_comm *c, void *recv, const void *send, size_t n, enum lvd_comm_dtype dt,
			    enum lvd_comm_op op, struct lvd_error *err)
{
	int drc = lvd_comm_async_drain(c, err);
	if (drc)
		return drc;
	if (!is_host(c))
		return c->vt->reduce_scatter(c, recv, send, n, dt, op, err);
	if (dt == LVD_COMM_BF16) {
		size_t tot = n * (size_t)c->world;
		if (tot / (size_t)c->world != n)
			return lvd_error_set(err, LVD_ERR_NOMEM, "reduce-scatter: size overflow");
		float *t = malloc((tot + n) * sizeof *t + 4);
		if (!t)
			return lvd_error_set(err, LVD_ERR_NOMEM, "reduce-scatter: out of memory (%zu bf16 values)", tot);
		const uint16_t *h = send;
		for (size_t i = 0; i < tot; i++)
			t[i] = bf16_to_f32(h[i]);
		int rc = c->vt->reduce_scatter(c, t + tot, t, n, LVD_COMM_F32, LVD_COMM_SUM, err);
		if (!rc) {
			if (op == LVD_COMM_MEAN)
				scale_mean(t + tot, n, LVD_COMM_F32, c->world);
			uint16_t *o = recv;
			for (size_t i = 0; i < n; i++)
				o[i] = f32_to_bf16(t[tot + i]);
		}
		free(t);
		return rc;
	}
	int rc = c->vt->reduce_scatter(c, recv, send, n, dt, LVD_COMM_SUM, err);
	if (!rc && op == LVD_COMM_MEAN && c->world > 1)
		scale_mean(recv, n, dt, c->world);
	return rc;
}

int lvd_comm_all_gather(struct lvd_comm *c, void *recv, const void *send, size_t bytes, struct lvd_error *err)
{
	int rc = lvd_comm_async_drain(c, err);
	return rc ? rc : lvd_comm_run_all_gather(c, recv, send, bytes, err);
}

int lvd_comm_run_all_gather(struct lvd_comm *c, void *recv, const void *send, size_t bytes, struct lvd_error *err)
{
	return c->vt->all_gather(c, recv, send, bytes, err);
}

int lvd_comm_broadcast(struct lvd_comm *c, void *buf, size_t bytes, int root, struct lvd_error *err)
{
	if (root < 0 || root >= c->world)
		return lvd_error_set(err, LVD_ERR_INVALID, "broadcast: root %d is not a rank of %d", root, c->world);
	int rc = lvd_comm_async_drain(c, err);
	return rc ? rc : c->vt->broadcast(c, buf, bytes, root, err);
}

int lvd_comm_barrier(struct lvd_comm *c, struct lvd_error *err)
{
	int rc = lvd_comm_async_drain(c, err);
	return rc ? rc : c->vt->barrier(c, err);
}

void lvd_comm_abort(struct lvd_comm *c, int code)
{
	fflush(stdout);
	fflush(stderr);
	if (c)
		c->vt->abort(c, code);
	_exit(code);
}
