/* lib/dist/dist_tcp.c — the TCP backend (dist.h): a star of sockets to rank 0 for CPU
 * ranks launched without MPI (torchrun-style environment, lvd-sft --nproc-per-node) and
 * for the NCCL bootstrap.
 *
 * Rendezvous: rank 0 listens on MASTER_PORT (all interfaces); every other rank connects
 * to MASTER_ADDR:MASTER_PORT (retrying until the timeout) and sends HELLO {rank, world}.
 * Messages: a 24-byte header {magic "LVDT", kind, seq (collective number), bytes}, then
 * the payload, little-endian host order (the ranks of one job share an architecture).
 * Every collective is an up phase (each rank sends its part to rank 0, which reads the
 * ranks in order 1, 2, ... and combines: sums run ((x0 + x1) + x2) + ...) and a down phase
 * (rank 0 sends the result to every rank). A rank that closes its socket or does not send
 * within the timeout is named; a mismatched collective (another kind, number or size) is
 * an error naming both sides. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "dist/dist_impl.h"

#define TCP_MAGIC 0x5444564Cu /* "LVDT" */

enum { K_HELLO = 1, K_REDUCE_F32, K_REDUCE_F64, K_GATHER, K_BCAST, K_BARRIER, K_DOWN };
static const char *const KIND_NAME[] = {"?", "hello", "all-reduce", "all-reduce", "all-gather", "broadcast",
					"barrier", "result"};

struct tcp_state {
	int *fd;       /* rank 0: [world] sockets of ranks 1..world-1 (fd[0] unused); others: fd[0] */
	void *scratch;
	size_t scratch_cap;
};

struct hdr {
	uint32_t magic, kind;
	uint64_t seq, bytes;
};

/* 0 ok, -1 closed or failed (errno kept, 0 for EOF), -2 deadline passed. */
static int io_all(int fd, void *buf, size_t n, double deadline, int out)
{
	char *p = buf;
	while (n) {
		double left = deadline - lvd_time_now();
		if (left <= 0)
			return -2;
		struct pollfd pf = {fd, (short)(out ? POLLOUT : POLLIN), 0};
		int pr = poll(&pf, 1, left > 1e6 ? 1000000000 : (int)(left * 1000) + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -1;
		if (pr == 0)
			continue;
		ssize_t k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = 0;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int peer_error(struct lvd_comm *c, int peer, int r, const char *what, struct lvd_error *err)
{
	const char *who = c->rank == 0 ? "" : " (the TCP root)";
	if (r == -2)
		return lvd_error_set(err, LVD_ERR_IO,
				     "rank %d: %s #%llu did not complete within %g s: rank(s) %d%s did not reach it%s",
				     c->rank, what, (unsigned long long)c->seq, c->timeout_s, peer, who,
				     c->rank == 0 ? " (dead, hung, or stuck in another collective)"
						  : " (rank 0 names the missing ranks)");
	return lvd_error_set(err, LVD_ERR_IO, "rank %d: %s #%llu: the connection to rank %d%s failed (%s): it "
			     "died or stopped on an error (see its message)", c->rank, what, (unsigned long long)c->seq,
			     peer, who, errno ? strerror(errno) : "closed");
}

static int send_msg(struct lvd_comm *c, int fd, int peer, uint32_t kind, const void *buf, size_t bytes,
		    double deadline, const char *what, struct lvd_error *err)
{
	struct hdr h = {TCP_MAGIC, kind, c->seq, bytes};
	int r = io_all(fd, &h, sizeof h, deadline, 1);
	if (!r && bytes)
		r = io_all(fd, (void *)buf, bytes, deadline, 1);
	if (r)
		return peer_error(c, peer, r, what, err);
	c->bytes_sent += sizeof h + bytes;
	return 0;
}

/* Receives a message of kind and exactly `bytes` payload into buf. */
static int recv_msg(struct lvd_comm *c, int fd, int peer, uint32_t kind, void *buf, size_t bytes, double deadline,
		    const char *what, struct lvd_error *err)
{
	struct hdr h;
	int r = io_all(fd, &h, sizeof h, deadline, 0);
	if (r)
		return peer_error(c, peer, r, what, err);
	if (h.magic != TCP_MAGIC)
		return lvd_error_set(err, LVD_ERR_IO, "rank %d: %s #%llu: rank %d sent a corrupt message header",
				     c->rank, what, (unsigned long long)c->seq, peer);
	if (h.kind != kind || h.seq != c->seq || h.bytes != bytes)
		return lvd_error_set(err, LVD_ERR_IO,
				     "rank %d: %s #%llu of %zu bytes, but rank %d is in %s #%llu of %llu bytes (the "
				     "ranks diverged)", c->rank, what, (unsigned long long)c->seq, bytes, peer,
				     h.kind < sizeof KIND_NAME / sizeof *KIND_NAME ? KIND_NAME[h.kind] : "?",
				     (unsigned long long)h.seq, (unsigned long long)h.bytes);
	if (bytes && (r = io_all(fd, buf, bytes, deadline, 0)))
		return peer_error(c, peer, r, what, err);
	return 0;
}

static void *scratch(struct tcp_state *s, size_t bytes)
{
	if (bytes > s->scratch_cap) {
		void *p = realloc(s->scratch, bytes);
		if (!p)
			return NULL;
		s->scratch = p;
		s->scratch_cap = bytes;
	}
	return s->scratch;
}

/* Rank 0, after a failed receive from rank `bad`: the other ranks that have not sent
 * anything either are added to the message. */
static void name_others(struct lvd_comm *c, int bad, struct lvd_error *err)
{
	struct tcp_state *s = c->impl;
	if (!err || !strstr(err->msg, "did not reach it"))
		return;
	char more[256] = "";
	size_t l = 0;
	for (int r = bad + 1; r < c->world && l + 16 < sizeof more; r++) {
		struct pollfd pf = {s->fd[r], POLLIN, 0};
		if (poll(&pf, 1, 0) == 0)
			l += (size_t)snprintf(more + l, sizeof more - l, ", %d", r);
	}
	if (l)
		lvd_error_prefix(err, "rank(s) %d%s and others: ", bad, more);
}

/* The up and down phases of one collective. Rank r sends up[up_bytes] (kind); rank 0
 * receives rank r's part into dst(r): for reductions a scratch summed into `down`, for
 * all-gather down + r·up_bytes; then rank 0 sends down[down_bytes] to every rank, which
 * receives it into down. up_from: -1 every rank sends up, else only that rank does (the
 * others send an empty message). */
static int star(struct lvd_comm *c, uint32_t kind, const void *up, size_t up_bytes, int up_from, void *down,
		size_t down_bytes, struct lvd_error *err)
{
	struct tcp_state *s = c->impl;
	const char *what = KIND_NAME[kind];
	c->seq++;
	double deadline = lvd_time_now() + c->timeout_s;
	if (c->rank != 0) {
		size_t ub = up_from < 0 || up_from == c->rank ? up_bytes : 0;
		int rc = send_msg(c, s->fd[0], 0, kind, up, ub, deadline, what, err);
		if (!rc)
			rc = recv_msg(c, s->fd[0], 0, K_DOWN, down, down_bytes, deadline, what, err);
		return rc;
	}
	for (int r = 1; r < c->world; r++) {
		size_t ub = up_from < 0 || up_from == r ? up_bytes : 0;
		void *dst = NULL;
		if (kind == K_REDUCE_F32 || kind == K_REDUCE_F64) {
			if (!(dst = scratch(s, ub ? ub : 1)))
				return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", what);
		} else if (kind == K_GATHER) {
			dst = (char *)down + (size_t)r * up_bytes;
		} else {
			dst = down;
		}
		int rc = recv_msg(c, s->fd[r], r, kind, dst, ub, deadline, what, err);
		if (rc) {
			name_others(c, r, err);
			return rc;
		}
		if (kind == K_REDUCE_F32)
			lvd_comm_add(down, dst, ub / 4, LVD_COMM_F32);
		else if (kind == K_REDUCE_F64)
			lvd_comm_add(down, dst, ub / 8, LVD_COMM_F64);
	}
	for (int r = 1; r < c->world; r++) {
		int rc = send_msg(c, s->fd[r], r, K_DOWN, down, down_bytes, deadline, what, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int tcp_all_reduce(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			  struct lvd_error *err)
{
	size_t b = n * lvd_comm_dtype_size(dt);
	return star(c, dt == LVD_COMM_F64 ? K_REDUCE_F64 : K_REDUCE_F32, buf, b, -1, buf, b, err);
}

static int tcp_reduce_scatter(struct lvd_comm *c, void *recv, const void *send, size_t n, enum lvd_comm_dtype dt,
			      enum lvd_comm_op op, struct lvd_error *err)
{
	size_t es = lvd_comm_dtype_size(dt), tot = n * (size_t)c->world;
	if (tot / (size_t)c->world != n || tot * es / es != tot)
		return lvd_error_set(err, LVD_ERR_NOMEM, "reduce-scatter: size overflow");
	char *t = malloc(tot * es + 1);
	if (!t)
		return lvd_error_set(err, LVD_ERR_NOMEM, "reduce-scatter: out of memory");
	memcpy(t, send, tot * es);
	int rc = tcp_all_reduce(c, t, tot, dt, op, err);
	if (!rc)
		memcpy(recv, t + (size_t)c->rank * n * es, n * es);
	free(t);
	return rc;
}

static int tcp_all_gather(struct lvd_comm *c, void *recv, const void *send, size_t bytes, struct lvd_error *err)
{
	char *mine = (char *)recv + (size_t)c->rank * bytes;
	if (send != mine)
		memmove(mine, send, bytes);
	return star(c, K_GATHER, mine, bytes, -1, recv, bytes * (size_t)c->world, err);
}

static int tcp_broadcast(struct lvd_comm *c, void *buf, size_t bytes, int root, struct lvd_error *err)
{
	return star(c, K_BCAST, buf, root == 0 ? 0 : bytes, root == 0 ? 0 : root, buf, bytes, err);
}

static int tcp_barrier(struct lvd_comm *c, struct lvd_error *err)
{
	return star(c, K_BARRIER, NULL, 0, -1, NULL, 0, err);
}

static void close_all(struct lvd_comm *c)
{
	struct tcp_state *s = c->impl;
	if (!s)
		return;
	for (int r = 0; r < c->world; r++)
		if (s->fd[r] >= 0)
			close(s->fd[r]);
	free(s->fd);
	free(s->scratch);
	free(s);
	c->impl = NULL;
}

static void tcp_abort(struct lvd_comm *c, int code)
{
	close_all(c);
	_exit(code);
}

static void tcp_destroy(struct lvd_comm *c)
{
	struct lvd_error err = {0};
	tcp_barrier(c, &err);
	close_all(c);
}

static const struct lvd_comm_vt TCP_VT = {
	"tcp", tcp_all_reduce, tcp_reduce_scatter, tcp_all_gather, tcp_broadcast, tcp_barrier, tcp_abort, tcp_destroy,
	NULL, NULL,
};

static void set_opts(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int root_listen(struct lvd_comm *c, const struct lvd_comm_env *e, struct tcp_state *s, struct lvd_error *err)
{
	int lf = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int v6 = lf >= 0;
	if (lf < 0)
		lf = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lf < 0)
		return lvd_error_errno(err, LVD_ERR_IO, "rank 0: socket");
	int one = 1, zero = 0;
	setsockopt(lf, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	int rc;
	if (v6) {
		setsockopt(lf, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
		struct sockaddr_in6 a = {0};
		a.sin6_family = AF_INET6;
		a.sin6_addr = in6addr_any;
		a.sin6_port = htons((uint16_t)e->master_port);
		rc = bind(lf, (struct sockaddr *)&a, sizeof a);
	} else {
		struct sockaddr_in a = {0};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_ANY);
		a.sin_port = htons((uint16_t)e->master_port);
		rc = bind(lf, (struct sockaddr *)&a, sizeof a);
	}
	if (rc || listen(lf, c->world)) {
		lvd_error_errno(err, LVD_ERR_IO, "rank 0: cannot listen on port %d (MASTER_PORT)", e->master_port);
		close(lf);
		return LVD_ERR_IO;
	}
	double deadline = lvd_time_now() + c->timeout_s;
	int joined = 1;
	while (joined < c->world) {
		double left = deadline - lvd_time_now();
		struct pollfd pf = {lf, POLLIN, 0};
		if (left <= 0 || poll(&pf, 1, (int)(left * 1000) + 1) == 0) {
			char miss[256] = "";
			size_t l = 0;
			for (int r = 1; r < c->world && l + 16 < sizeof miss; r++)
				if (s->fd[r] < 0)
					l += (size_t)snprintf(miss + l, sizeof miss - l, "%s%d", l ? ", " : "", r);
			close(lf);
			return lvd_error_set(err, LVD_ERR_IO, "rank 0: rank(s) %s did not join the rendezvous on port %d "
					     "within %g s", miss, e->master_port, c->timeout_s);
		}
		int fd = accept4(lf, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		set_opts(fd);
		struct hdr h;
		int32_t who[2];
		if (io_all(fd, &h, sizeof h, deadline, 0) || h.magic != TCP_MAGIC || h.kind != K_HELLO ||
		    h.bytes != sizeof who || io_all(fd, who, sizeof who, deadline, 0)) {
			close(fd); /* not one of ours (a port scan, an old job): ignore */
			continue;
		}
		if (who[1] != c->world || who[0] <= 0 || who[0] >= c->world || s->fd[who[0]] >= 0) {
			close(fd);
			close(lf);
			return lvd_error_set(err, LVD_ERR_IO, "rank 0: a process joined as rank %d of %d, but this job "
					     "has %d ranks%s (two jobs on one MASTER_PORT?)", who[0], who[1], c->world,
					     who[0] > 0 && who[0] < c->world && s->fd[who[0]] >= 0 ? " and that rank "
					     "already joined" : "");
		}
		s->fd[who[0]] = fd;
		joined++;
	}
	close(lf);
	return 0;
}

static int peer_connect(struct lvd_comm *c, const struct lvd_comm_env *e, struct tcp_state *s, struct lvd_error *err)
{
	double deadline = lvd_time_now() + c->timeout_s;
	char port[16];
	snprintf(port, sizeof port, "%d", e->master_port);
	struct addrinfo hints = {0}, *ai = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int last_errno = 0;
	while (lvd_time_now() < deadline) {
		int g = getaddrinfo(e->master_addr, port, &hints, &ai);
		if (g == 0) {
			for (struct addrinfo *p = ai; p; p = p->ai_next) {
				int fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
				if (fd < 0)
					continue;
				if (connect(fd, p->ai_addr, p->ai_addrlen) == 0) {
					freeaddrinfo(ai);
					set_opts(fd);
					s->fd[0] = fd;
					int32_t who[2] = {c->rank, c->world};
					struct hdr h = {TCP_MAGIC, K_HELLO, 0, sizeof who};
					if (io_all(fd, &h, sizeof h, deadline, 1) || io_all(fd, who, sizeof who, deadline, 1))
						return lvd_error_errno(err, LVD_ERR_IO, "rank %d: rendezvous with %s:%d",
								       c->rank, e->master_addr, e->master_port);
					return 0;
				}
				last_errno = errno;
				close(fd);
			}
			freeaddrinfo(ai);
		}
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return lvd_error_set(err, LVD_ERR_IO, "rank %d: no rank 0 at %s:%d (MASTER_ADDR:MASTER_PORT) within %g s%s%s",
			     c->rank, e->master_addr, e->master_port, c->timeout_s, last_errno ? ": " : "",
			     last_errno ? strerror(last_errno) : "");
}

int lvd_comm_tcp_start(struct lvd_comm *c, const struct lvd_comm_env *e, struct lvd_error *err)
{
	struct tcp_state *s = calloc(1, sizeof *s);
	if (!s || !(s->fd = malloc((size_t)c->world * sizeof *s->fd))) {
		free(s);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	for (int r = 0; r < c->world; r++)
		s->fd[r] = -1;
	int rc = c->rank == 0 ? root_listen(c, e, s, err) : peer_connect(c, e, s, err);
	c->impl = s;
	if (rc) {
		close_all(c);
		return rc;
	}
	c->vt = &TCP_VT;
	c->backend = LVD_COMM_TCP;
	/* Everyone has joined once the first barrier completes. */
	return tcp_barrier(c, err);
}
