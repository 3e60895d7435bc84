/* tools/lvd-sft/dist_glue.c — data-parallel lvd-sft run: local launcher, start-up
 * agreement, gradient all-reduce, state sharing (contract in dist_glue.h). */
#include "dist_glue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/shardrun.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/sha256.h"
#include "train/plan.h"
#include "train/zero3.h"

/* ---- --nproc-per-node ------------------------------------------------------------- */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t l = sizeof a;
	int port = -1;
	if (!bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &l))
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int status_code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
}

int sft_dist_launch(int argc, char **argv, int nproc)
{
	if (getenv("RANK") || getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_RANK") || getenv("PMIX_RANK")) {
		lvd_error_log("--nproc-per-node starts the ranks itself: not under a launcher (RANK or "
			      "OMPI_COMM_WORLD_SIZE is set)");
		return 2;
	}
	/* lvd-sft run ARGS without --nproc-per-node [=]N */
	char **cargv = calloc((size_t)argc + 2, sizeof *cargv);
	if (!cargv) {
		lvd_error_log("out of memory");
		return 1;
	}
	int k = 0;
	cargv[k++] = "lvd-sft";
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--nproc-per-node")) {
			i++;
			continue;
		}
		if (!strncmp(argv[i], "--nproc-per-node=", 17))
			continue;
		cargv[k++] = argv[i];
	}
	cargv[k] = NULL;
	int port = 0;
	const char *mp = getenv("MASTER_PORT");
	if (mp)
		port = atoi(mp);
	if (port <= 0 && (port = free_port()) <= 0) {
		lvd_error_log("--nproc-per-node: no free local TCP port for the rendezvous");
		free(cargv);
		return 1;
	}
	pid_t *pid = calloc((size_t)nproc, sizeof *pid);
	if (!pid) {
		free(cargv);
		lvd_error_log("out of memory");
		return 1;
	}
	fflush(stdout);
	fflush(stderr);
	int started = 0, code = 0;
	for (int r = 0; r < nproc; r++) {
		pid_t p = fork();
		if (p < 0) {
			lvd_error_log("--nproc-per-node: fork: %s", strerror(errno));
			code = 1;
			break;
		}
		if (p == 0) {
			char v[32];
			snprintf(v, sizeof v, "%d", r);
			setenv("RANK", v, 1);
			setenv("LOCAL_RANK", v, 1);
			snprintf(v, sizeof v, "%d", nproc);
			setenv("WORLD_SIZE", v, 1);
			setenv("LOCAL_WORLD_SIZE", v, 1);
			snprintf(v, sizeof v, "%d", port);
			setenv("MASTER_PORT", v, 1);
			setenv("MASTER_ADDR", "127.0.0.1", 1);
			setenv("LVD_DIST_BACKEND", "tcp", 1);
			execv("/proc/self/exe", cargv);
			fprintf(stderr, "lvd-sft: error: exec /proc/self/exe: %s\n", strerror(errno));
			_exit(127);
		}
		pid[r] = p;
		started++;
	}
	/* The first failure stops the others (SIGTERM, then SIGKILL after 10 s). */
	int left = started, failed = code != 0;
	double kill_at = 0;
	while (left > 0) {
		int st = 0;
		pid_t p = waitpid(-1, &st, failed ? WNOHANG : 0);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			break;
		if (p == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			double now = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
			if (kill_at > 0 && now > kill_at) {
				for (int r = 0; r < started; r++)
					if (pid[r] > 0)
						kill(pid[r], SIGKILL);
				kill_at = 0;
			}
			struct timespec nap = {0, 50 * 1000 * 1000};
			nanosleep(&nap, NULL);
			continue;
		}
		int r = 0;
		while (r < started && pid[r] != p)
			r++;
		if (r == started)
			continue;
		pid[r] = 0;
		left--;
		int c = status_code(st);
		if (c && !failed) {
			failed = 1;
			code = c;
			if (WIFSIGNALED(st))
				lvd_error_log("rank %d was killed by signal %d; stopping the other ranks", r, WTERMSIG(st));
			else
				lvd_error_log("rank %d exited with status %d; stopping the other ranks", r, c);
			for (int q = 0; q < started; q++)
				if (pid[q] > 0)
					kill(pid[q], SIGTERM);
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			kill_at = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + 10.0;
		}
	}
	free(pid);
	free(cargv);
	return code;
}

/* ---- start-up ------------------------------------------------------------------- */

int sft_dist_init(struct lvd_comm **out, double timeout_s)
{
	struct lvd_error err = {0};
	struct lvd_comm_opts co = {timeout_s, 0};
	if (lvd_comm_init(out, &co, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	if (lvd_comm_rank(*out) != 0)
		lvd_log_set_level(LVD_LOG_ERROR);
	if (lvd_comm_world(*out) > 1)
		lvd_info("rank 0 of %d (%s backend)", lvd_comm_world(*out), lvd_comm_backend_name(*out));
	return 0;
}

struct agree_rec {
	int32_t rc, pad;
	unsigned char sha[LVD_SHA256_LEN];
};

/* The first key of a (rank 0's) whose value differs in b, printed as this rank's error. */
static void name_difference(const json_t *a, const json_t *b, int rank)
{
	const char *key;
	json_t *va;
	json_object_foreach((json_t *)a, key, va) {
		json_t *vb = json_object_get(b, key);
		if (vb && json_equal(va, vb))
			continue;
		char *sa = json_dumps(va, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10)),
		     *sb = vb ? json_dumps(vb, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10)) : NULL;
		lvd_error_log("rank %d: '%s' is %s here but %s on rank 0; every rank must run with the same options, "
			      "model and pack", rank, key, sb ? sb : "absent", sa ? sa : "?");
		free(sa);
		free(sb);
		return;
	}
	lvd_error_log("rank %d: options, model or pack differ from rank 0's (a key rank 0 lacks)", rank);
}

int sft_dist_agree(struct lvd_comm *c, int rc, const json_t *identity)
{
	int W = lvd_comm_world(c), R = lvd_comm_rank(c);
	if (W == 1)
		return rc;
	struct lvd_error err = {0};
	struct agree_rec me = {rc, 0, {0}};
	char *dump = identity ? json_dumps(identity, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
	if (dump)
		lvd_sha256(dump, strlen(dump), me.sha);
	struct agree_rec *all = calloc((size_t)W, sizeof *all);
	if (!all) {
		free(dump);
		lvd_error_log("out of memory");
		lvd_comm_abort(c, 1);
	}
	if (lvd_comm_all_gather(c, all, &me, sizeof me, &err)) {
		lvd_error_log("start-up: %s", err.msg);
		lvd_comm_abort(c, 1);
	}
	int ret = 0;
	char bad[256] = "";
	size_t l = 0;
	for (int r = 0; r < W; r++)
		if (all[r].rc) {
			ret = 1;
			if (l + 16 < sizeof bad)
				l += (size_t)snprintf(bad + l, sizeof bad - l, "%s%d", l ? ", " : "", r);
		}
	if (ret) {
		if (R == 0)
			lvd_error_log("rank(s) %s failed at start (see their messages); nothing was written", bad);
		free(all);
		free(dump);
		return 1;
	}
	for (int r = 1; r < W; r++)
		if (memcmp(all[r].sha, all[0].sha, LVD_SHA256_LEN))
			ret = 2;
	if (ret) {
		/* Rank 0's identity to everyone, so each differing rank names the key. */
		int64_t len = R == 0 && dump ? (int64_t)strlen(dump) + 1 : 0;
		if (lvd_comm_broadcast(c, &len, sizeof len, 0, &err)) {
			lvd_error_log("start-up: %s", err.msg);
			lvd_comm_abort(c, 1);
		}
		char *r0 = R == 0 ? dump : malloc((size_t)len + 1);
		if (!r0 || lvd_comm_broadcast(c, r0, (size_t)len, 0, &err)) {
			lvd_error_log("start-up: %s", r0 ? err.msg : "out of memory");
			lvd_comm_abort(c, 1);
		}
		if (memcmp(all[R].sha, all[0].sha, LVD_SHA256_LEN)) {
			json_t *j = json_loads(r0, 0, NULL);
			name_difference(j, identity, R);
			json_decref(j);
		}
		if (R == 0) {
			char diff[256] = "";
			size_t dl = 0;
			for (int r = 1; r < W; r++)
				if (memcmp(all[r].sha, all[0].sha, LVD_SHA256_LEN) && dl + 16 < sizeof diff)
					dl += (size_t)snprintf(diff + dl, sizeof diff - dl, "%s%d", dl ? ", " : "", r);
			lvd_error_log("rank(s) %s run with other options, model or pack than rank 0; refused", diff);
		} else {
			free(r0);
		}
	}
	free(all);
	free(dump);
	return ret;
}

/* ---- per layer: overlap and frozen-weight sharding -------------------------------- */

struct grange {
	size_t lo, hi;
};

struct sft_dist_layers {
	struct lvd_comm *c;
	struct lvd_mllama *m;
	int L;
	/* overlap */
	int overlap, armed;
	float *grad;
	size_t n_grad;
	struct grange *bucket;        /* [L] layer l's gradient range (lo == hi: no bucket) */
	struct lvd_comm_req **req;    /* [L] its all-reduce in flight */
	struct grange *rest;          /* the block outside the buckets, ascending */
	int n_rest;
	/* shard_frozen */
	struct lvd_zero3 *z;
	float **(*slot)[LVD_MLLAMA_LAYER_TENSORS];   /* [L] the model's weight pointers */
	size_t (*off)[LVD_MLLAMA_LAYER_TENSORS];     /* [L] their offsets in the gathered layer */
	int *nt;                      /* [L] tensors per layer */
	size_t whole;                 /* bytes of the sharded layers' weights */
	size_t planned;               /* lvd_zero3_plan_bytes: shards + two layer buffers */
};

static void bind_layer(struct sft_dist_layers *d, int l, const float *g)
{
	for (int i = 0; i < d->nt[l]; i++)
		*d->slot[l][i] = g ? (float *)g + d->off[l][i] : NULL;
}

static void layer_hook(void *user, enum lvd_mllama_layer_event ev, int l)
{
	struct sft_dist_layers *d = user;
	struct lvd_error err = {0};
	int rc = 0;
	if (d->z && (ev == LVD_MLLAMA_FWD_BEGIN || ev == LVD_MLLAMA_BWD_BEGIN)) {
		int next = ev == LVD_MLLAMA_FWD_BEGIN ? (l + 1 < d->L ? l + 1 : -1) : l - 1;
		const float *g = lvd_zero3_acquire(d->z, l, next, &err);
		if (g)
			bind_layer(d, l, g);
		else
			rc = 1;
	} else if (d->z) {
		bind_layer(d, l, NULL);
		lvd_zero3_release(d->z, l);
	}
	if (!rc && ev == LVD_MLLAMA_BWD_END && d->overlap && d->armed && d->bucket[l].hi > d->bucket[l].lo &&
	    !d->req[l])
		rc = lvd_comm_all_reduce_start(d->c, d->grad + d->bucket[l].lo, d->bucket[l].hi - d->bucket[l].lo,
					       LVD_COMM_F32, LVD_COMM_SUM, &d->req[l], &err);
	if (rc) {
		lvd_error_log("text layer %d: %s", l, err.msg);
		lvd_comm_abort(d->c, 1);
	}
}

/* The text layer of a canonical name ("language_model.model.layers.L."), or -1. */
static int text_layer_of(const char *name)
{
	static const char pre[] = "language_model.model.layers.";
	if (strncmp(name, pre, sizeof pre - 1))
		return -1;
	char *end;
	long l = strtol(name + sizeof pre - 1, &end, 10);
	return *end == '.' && l >= 0 && l < 100000 ? (int)l : -1;
}

/* Buckets: each text layer's gradient range in grad (LoRA adapters' or parameters'),
 * kept only when no other tensor lies inside it; the rest: the complement. */
static int make_buckets(struct sft_dist_layers *d, struct lvd_error *err)
{
	struct lvd_mllama *m = d->m;
	size_t nl = lvd_mllama_nlora(m), np = lvd_mllama_nparams(m);
	size_t nr = nl ? 2 * nl : np;
	struct grange *r = calloc(nr + 1, sizeof *r);
	int *lay = calloc(nr + 1, sizeof *lay);
	d->bucket = calloc((size_t)d->L, sizeof *d->bucket);
	d->req = calloc((size_t)d->L, sizeof *d->req);
	d->rest = calloc((size_t)d->L + 2, sizeof *d->rest);
	if (!r || !lay || !d->bucket || !d->req || !d->rest) {
		free(r);
		free(lay);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	size_t k = 0;
	if (nl) {
		int rk = lvd_mllama_lora_rank(m);
		for (size_t i = 0; i < nl; i++) {
			const struct lvd_mllama_lora *a = lvd_mllama_lora_at(m, i);
			int l = text_layer_of(a->module);
			r[k] = (struct grange){(size_t)(a->dA - d->grad), (size_t)(a->dA - d->grad) + (size_t)rk * a->in};
			lay[k++] = l;
			r[k] = (struct grange){(size_t)(a->dB - d->grad), (size_t)(a->dB - d->grad) + (size_t)a->out * rk};
			lay[k++] = l;
		}
	} else {
		for (size_t i = 0; i < np; i++) {
			const struct lvd_mllama_param *p = lvd_mllama_param_at(m, i);
			r[k] = (struct grange){(size_t)(p->grad - d->grad), (size_t)(p->grad - d->grad) + p->numel};
			lay[k++] = text_layer_of(p->name);
		}
	}
	for (int l = 0; l < d->L; l++) {
		struct grange b = {SIZE_MAX, 0};
		for (size_t i = 0; i < k; i++)
			if (lay[i] == l) {
				b.lo = r[i].lo < b.lo ? r[i].lo : b.lo;
				b.hi = r[i].hi > b.hi ? r[i].hi : b.hi;
			}
		int ok = b.hi > b.lo && b.hi <= d->n_grad;
		for (size_t i = 0; i < k && ok; i++)
			if (lay[i] != l && r[i].lo < b.hi && r[i].hi > b.lo && r[i].hi > r[i].lo)
				ok = 0;
		d->bucket[l] = ok ? b : (struct grange){0, 0};
	}
	free(r);
	free(lay);
	/* the rest: [0, n_grad) minus the buckets, in ascending order */
	size_t at = 0;
	for (;;) {
		int nx = -1;
		for (int l = 0; l < d->L; l++)
			if (d->bucket[l].hi > d->bucket[l].lo && d->bucket[l].lo >= at &&
			    (nx < 0 || d->bucket[l].lo < d->bucket[nx].lo))
				nx = l;
		size_t end = nx < 0 ? d->n_grad : d->bucket[nx].lo;
		if (end > at)
			d->rest[d->n_rest++] = (struct grange){at, end};
		if (nx < 0)
			break;
		at = d->bucket[nx].hi;
	}
	return 0;
}

static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = strtoull(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb * 1024;
}

static int make_shards(struct sft_dist_layers *d, struct lvd_error *err)
{
	int L = d->L;
	d->slot = calloc((size_t)L, sizeof *d->slot);
	d->off = calloc((size_t)L, sizeof *d->off);
	d->nt = calloc((size_t)L, sizeof *d->nt);
	size_t *nf = calloc((size_t)L, sizeof *nf);
	struct lvd_mllama_param *tab[LVD_MLLAMA_LAYER_TENSORS];
	size_t numel[LVD_MLLAMA_LAYER_TENSORS];
	if (!d->slot || !d->off || !d->nt || !nf) {
		free(nf);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	for (int l = 0; l < L; l++) {
		d->nt[l] = lvd_mllama_text_layer_weights(d->m, l, d->slot[l], numel, tab);
		for (int i = 0; i < d->nt[l]; i++) {
			d->off[l][i] = nf[l];
			nf[l] += numel[i];
		}
		d->whole += nf[l] * sizeof(float);
	}
	d->planned = (size_t)lvd_zero3_plan_bytes(nf, L, lvd_comm_world(d->c), (int)sizeof(float));
	int rc = lvd_zero3_create(&d->z, d->c, nf, L, err);
	free(nf);
	if (rc)
		return rc;
	size_t dropped = 0;
	for (int l = 0; l < L; l++) {
		const float *src[LVD_MLLAMA_LAYER_TENSORS];
		int n = lvd_mllama_text_layer_weights(d->m, l, d->slot[l], numel, tab);
		for (int i = 0; i < n; i++)
			src[i] = *d->slot[l][i];
		if ((rc = lvd_zero3_set_layer(d->z, l, src, numel, n, err)))
			return rc;
		/* the model's copy is never read again: its pages go back to the system */
		for (int i = 0; i < n; i++)
			dropped += lvd_zero3_drop_pages(src[i], numel[i] * sizeof(float));
		bind_layer(d, l, NULL);
	}
	char a[32], b[32], c[32], e[32], f[32];
	lvd_info("shard-frozen: the %d text layers' weights (%s) kept as 1/%d shards (%s per rank) + two gathered "
		 "layers (%s); %s of the model's pages released (RSS now %s)", L,
		 lvd_plan_size(a, sizeof a, d->whole), lvd_comm_world(d->c),
		 lvd_plan_size(b, sizeof b, lvd_zero3_bytes(d->z)),
		 lvd_plan_size(c, sizeof c, d->planned - lvd_zero3_bytes(d->z)),
		 lvd_plan_size(e, sizeof e, dropped), lvd_plan_size(f, sizeof f, rss_bytes()));
	return 0;
}

int sft_dist_layers_create(struct sft_dist_layers **out, struct lvd_comm *c, struct lvd_mllama *m, float *grad,
			   size_t n_grad, int overlap, int shard_frozen, struct lvd_error *err)
{
	*out = NULL;
	overlap = overlap && lvd_comm_world(c) > 1 && grad;
	if (!overlap && !shard_frozen)
		return 0;
	struct sft_dist_layers *d = calloc(1, sizeof *d);
	if (!d)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	d->c = c;
	d->m = m;
	d->L = lvd_mllama_cfg(m)->t_layers;
	d->overlap = overlap;
	d->grad = grad;
	d->n_grad = n_grad;
	int rc = overlap ? make_buckets(d, err) : 0;
	if (!rc && shard_frozen)
		rc = make_shards(d, err);
	if (rc) {
		sft_dist_layers_destroy(d);
		return rc;
	}
	lvd_mllama_set_layer_hook(m, layer_hook, d);
	*out = d;
	return 0;
}

void sft_dist_layers_arm(struct sft_dist_layers *d, int on)
{
	if (d)
		d->armed = on;
}

void sft_dist_layers_idle_forward(struct sft_dist_layers *d)
{
	if (!d || !d->z)
		return;
	for (int l = 0; l < d->L; l++) {
		layer_hook(d, LVD_MLLAMA_FWD_BEGIN, l);
		layer_hook(d, LVD_MLLAMA_FWD_END, l);
	}
}

void sft_dist_layers_destroy(struct sft_dist_layers *d)
{
	if (!d)
		return;
	if (d->m)
		lvd_mllama_set_layer_hook(d->m, NULL, NULL);
	if (d->z) {
		uint64_t g = 0, miss = 0;
		lvd_zero3_counts(d->z, &g, &miss);
		char a[32];
		lvd_info("shard-frozen: %llu layer gathers (%llu not prefetched), at most %s held for the text layers",
			 (unsigned long long)g, (unsigned long long)miss, lvd_plan_size(a, sizeof a,
											lvd_zero3_peak_bytes(d->z)));
		lvd_zero3_destroy(d->z);
	}
	for (int l = 0; d->req && l < d->L; l++)
		if (d->req[l]) {
			struct lvd_error e = {0};
			lvd_comm_wait(d->c, d->req[l], &e);
		}
	free(d->bucket);
	free(d->req);
	free(d->rest);
	free(d->slot);
	free(d->off);
	free(d->nt);
	free(d);
}

/* ---- per step ------------------------------------------------------------------- */

int sft_dist_reduce_step(struct lvd_comm *c, struct sft_dist_layers *d, float *dlora, size_t n_lora, float *dal,
			 size_t n_al, double *stats, int n_stats, double *comm_s, struct lvd_error *err)
{
	*comm_s = 0;
	if (lvd_comm_world(c) == 1)
		return 0;
	double t0 = lvd_time_now();
	int rc = 0;
	if (d && d->overlap) {
		/* the buckets in the backward's order (started ones waited for, the others now),
		 * then the rest */
		for (int l = d->L - 1; l >= 0; l--) {
			size_t lo = d->bucket[l].lo, n = d->bucket[l].hi - lo;
			if (d->req[l]) {
				int w = lvd_comm_wait(c, d->req[l], err);
				d->req[l] = NULL;
				rc = rc ? rc : w;
			} else if (n && !rc) {
				rc = lvd_comm_all_reduce(c, dlora + lo, n, LVD_COMM_F32, LVD_COMM_SUM, err);
			}
		}
		for (int i = 0; i < d->n_rest && !rc; i++)
			rc = lvd_comm_all_reduce(c, dlora + d->rest[i].lo, d->rest[i].hi - d->rest[i].lo, LVD_COMM_F32,
						 LVD_COMM_SUM, err);
		d->armed = 0;
	} else {
		rc = lvd_comm_all_reduce(c, dlora, n_lora, LVD_COMM_F32, LVD_COMM_SUM, err);
	}
	if (!rc)
		rc = lvd_comm_all_reduce(c, dal, n_al, LVD_COMM_F32, LVD_COMM_SUM, err);
	if (!rc)
		rc = lvd_comm_all_reduce(c, stats, (size_t)n_stats, LVD_COMM_F64, LVD_COMM_SUM, err);
	*comm_s = lvd_time_now() - t0;
	return rc;
}

int sft_dist_zero_reduce(struct lvd_comm *c, struct lvd_zero *z, struct lvd_ctx *ctx, double clip, double *stats,
			 int n_stats, float *norm, double *comm_s, struct lvd_error *err)
{
	double t0 = lvd_time_now();
	int rc = lvd_zero_reduce(z, ctx, c, clip, norm, err);
	if (!rc)
		rc = lvd_comm_all_reduce(c, stats, (size_t)n_stats, LVD_COMM_F64, LVD_COMM_SUM, err);
	*comm_s += lvd_time_now() - t0;
	return rc;
}

int sft_dist_zero_update(struct lvd_comm *c, struct lvd_zero *z, struct lvd_ctx *ctx, double lr, double *comm_s,
			 struct lvd_error *err)
{
	double t0 = lvd_time_now();
	int rc = lvd_zero_update(z, ctx, c, lr, err);
	*comm_s += lvd_time_now() - t0;
	return rc;
}

int sft_dist_share_i64(struct lvd_comm *c, int64_t *v, int n, struct lvd_error *err)
{
	if (lvd_comm_world(c) == 1)
		return 0;
	return lvd_comm_broadcast(c, v, (size_t)n * sizeof *v, 0, err);
}

int sft_dist_share_blocks(struct lvd_comm *c, float *const *blocks, const size_t *n, int n_blocks,
			  struct lvd_error *err)
{
	if (lvd_comm_world(c) == 1)
		return 0;
	for (int b = 0; b < n_blocks; b++) {
		int rc = lvd_comm_broadcast(c, blocks[b], n[b] * sizeof(float), 0, err);
		if (rc)
			return rc;
	}
	return 0;
}

int sft_dist_kill_here(const struct lvd_comm *c)
{
	const char *s = getenv("LVD_SFT_KILL_RANK");
	return !s || atoi(s) == lvd_comm_rank(c);
}
