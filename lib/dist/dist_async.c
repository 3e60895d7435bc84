/* lib/dist/dist_async.c — asynchronous collectives (dist.h): requests, the host backends'
 * progress thread, and the hand-off to a device backend's own start/wait.
 *
 * Host backends: one progress thread per communicator, created at the first start. It
 * takes the queued requests in start order and runs each with the blocking call's body
 * (lvd_comm_run_all_reduce / lvd_comm_run_all_gather), so a request computes exactly what
 * the blocking call computes. Only one thread calls the backend at a time: a blocking
 * call first waits (lvd_comm_async_drain) until the queue is empty and the thread idle;
 * the mutex hand-off orders the two threads' use of the backend's state. After a failed
 * request the communicator is marked failed: later requests and blocking calls return
 * that error without touching the backend. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist_impl.h"

struct lvd_comm_async {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct lvd_comm_req *head, *tail;
	int busy, stop, failed;
	struct lvd_error ferr;    /* the first failure */
};

static int run_req(struct lvd_comm *c, struct lvd_comm_req *r)
{
	if (r->kind == LVD_REQ_ALL_REDUCE)
		return lvd_comm_run_all_reduce(c, r->buf, r->n, r->dt, r->op, &r->err);
	return lvd_comm_run_all_gather(c, r->buf, r->send, r->n, &r->err);
}

static void *progress(void *arg)
{
	struct lvd_comm *c = arg;
	struct lvd_comm_async *a = c->async;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->head && !a->stop)
			pthread_cond_wait(&a->work, &a->mu);
		if (!a->head)
			break;
		struct lvd_comm_req *r = a->head;
		a->head = r->next;
		if (!a->head)
			a->tail = NULL;
		a->busy = 1;
		int failed = a->failed;
		pthread_mutex_unlock(&a->mu);
		if (failed) {
			r->err = a->ferr;
			r->rc = a->ferr.code ? a->ferr.code : LVD_ERR_IO;
		} else {
			r->rc = run_req(c, r);
		}
		pthread_mutex_lock(&a->mu);
		if (r->rc && !a->failed) {
			a->failed = 1;
			a->ferr = r->err;
		}
		r->done = 1;
		a->busy = 0;
		pthread_cond_broadcast(&a->done);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static int async_open(struct lvd_comm *c, struct lvd_error *err)
{
	if (c->async)
		return 0;
	struct lvd_comm_async *a = calloc(1, sizeof *a);
	if (!a)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->done, NULL);
	c->async = a;
	if (pthread_create(&a->th, NULL, progress, c)) {
		c->async = NULL;
		pthread_mutex_destroy(&a->mu);
		pthread_cond_destroy(&a->work);
		pthread_cond_destroy(&a->done);
		free(a);
		return lvd_error_set(err, LVD_ERR_NOMEM, "rank %d: cannot start the communicator's progress thread",
				     c->rank);
	}
	return 0;
}

void lvd_comm_async_stop(struct lvd_comm *c)
{
	struct lvd_comm_async *a = c->async;
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_broadcast(&a->work);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->th, NULL);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->done);
	free(a);
	c->async = NULL;
}

int lvd_comm_async_drain(struct lvd_comm *c, struct lvd_error *err)
{
	struct lvd_comm_async *a = c->async;
	if (!a)
		return 0;
	pthread_mutex_lock(&a->mu);
	while (a->head || a->busy)
		pthread_cond_wait(&a->done, &a->mu);
	int rc = 0;
	if (a->failed) {
		rc = a->ferr.code ? a->ferr.code : LVD_ERR_IO;
		if (err)
			*err = a->ferr;
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

static int start(struct lvd_comm *c, struct lvd_comm_req *r, struct lvd_comm_req **out, struct lvd_error *err)
{
	*out = NULL;
	struct lvd_comm_req *q = malloc(sizeof *q);
	if (!q)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	*q = *r;
	int rc = 0;
	if (c->vt->req_start) {
		rc = c->vt->req_start(c, q, err);
	} else if (c->world == 1 || c->no_thread) {
		/* Nothing to overlap (one rank), or the backend is not thread-safe: run now. */
		rc = lvd_comm_async_drain(c, err);
		if (!rc)
			q->rc = run_req(c, q);
		q->done = 1;
	} else if (!(rc = async_open(c, err))) {
		struct lvd_comm_async *a = c->async;
		pthread_mutex_lock(&a->mu);
		if (a->failed) {
			rc = a->ferr.code ? a->ferr.code : LVD_ERR_IO;
			if (err)
				*err = a->ferr;
		} else {
			if (a->tail)
				a->tail->next = q;
			else
				a->head = q;
			a->tail = q;
			pthread_cond_signal(&a->work);
		}
		pthread_mutex_unlock(&a->mu);
	}
	if (rc) {
		free(q);
		return rc;
	}
	c->pending++;
	*out = q;
	return 0;
}

int lvd_comm_all_reduce_start(struct lvd_comm *c, void *buf, size_t n, enum lvd_comm_dtype dt, enum lvd_comm_op op,
			      struct lvd_comm_req **req, struct lvd_error *err)
{
	struct lvd_comm_req r = {LVD_REQ_ALL_REDUCE, buf, NULL, n, dt, op, 0, 0, {0}, NULL, NULL};
	return start(c, &r, req, err);
}

int lvd_comm_all_gather_start(struct lvd_comm *c, void *recv, const void *send, size_t bytes,
			      struct lvd_comm_req **req, struct lvd_error *err)
{
	struct lvd_comm_req r = {LVD_REQ_ALL_GATHER, recv, send, bytes, LVD_COMM_F32, LVD_COMM_SUM, 0, 0, {0}, NULL, NULL};
	return start(c, &r, req, err);
}

int lvd_comm_wait(struct lvd_comm *c, struct lvd_comm_req *r, struct lvd_error *err)
{
	if (!r)
		return 0;
	int rc;
	if (c->vt->req_wait) {
		rc = c->vt->req_wait(c, r, err);
	} else {
		struct lvd_comm_async *a = c->async;
		if (a) {
			pthread_mutex_lock(&a->mu);
			while (!r->done)
				pthread_cond_wait(&a->done, &a->mu);
			pthread_mutex_unlock(&a->mu);
		}
		rc = r->rc;
		if (rc && err)
			*err = r->err;
	}
	c->pending--;
	free(r);
	return rc;
}

int lvd_comm_pending(const struct lvd_comm *c)
{
	return c->pending;
}

void lvd_comm_set_stream(struct lvd_comm *c, void *stream)
{
	c->stream = stream;
}
