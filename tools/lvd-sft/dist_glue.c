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

/* ---- per step ------------------------------------------------------------------- */

int sft_dist_reduce_step(struct lvd_comm *c, float *dlora, size_t n_lora, float *dal, size_t n_al, double *stats,
			 int n_stats, double *comm_s, struct lvd_error *err)
{
	*comm_s = 0;
	if (lvd_comm_world(c) == 1)
		return 0;
	double t0 = lvd_time_now();
	int rc = lvd_comm_all_reduce(c, dlora, n_lora, LVD_COMM_F32, LVD_COMM_SUM, err);
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
