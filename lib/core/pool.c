/* Thread pool: workers sleep on a condition variable and wake on a job generation
 * counter; the caller runs chunk 0 and waits for the others on a second condvar. */
#include "core/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LVD_POOL_MAX 1024

struct lvd_pool_worker {
	struct lvd_pool *pool;
	int id;
	pthread_t thread;
};

struct lvd_pool {
	int n;                       /* threads including the caller */
	struct lvd_pool_worker *workers; /* n - 1 */
	int started;                 /* workers successfully created */

	pthread_mutex_t call_mu;     /* serialises parallel_for calls */
	pthread_mutex_t mu;          /* guards everything below */
	pthread_cond_t wake;         /* workers wait for a new generation / quit */
	pthread_cond_t done;         /* caller waits for pending == 0 */
	unsigned long generation;
	int quit;
	int pending;                 /* workers still running the current job */

	/* current job (written by the caller under mu before bumping generation) */
	size_t n_items;
	lvd_pool_fn fn;
	void *ctx;
	int *results;                /* per thread */
};

void lvd_pool_chunk(size_t n_items, int n_threads, int t, size_t *begin, size_t *end)
{
	LVD_ASSERT(n_threads >= 1 && t >= 0 && t < n_threads);
	size_t T = (size_t)n_threads, q = n_items / T, r = n_items % T;
	/* t*n/T without overflow: t*(q*T + r)/T = t*q + t*r/T */
	*begin = (size_t)t * q + (size_t)t * r / T;
	*end = (size_t)(t + 1) * q + (size_t)(t + 1) * r / T;
}

/* The pool whose job this thread is running (for the nested-call assertion only). */
static _Thread_local const struct lvd_pool *tls_running;

int lvd_pool_in_chunk(void)
{
	return tls_running != NULL;
}

static void run_chunk(struct lvd_pool *p, int t)
{
	size_t b, e;
	lvd_pool_chunk(p->n_items, p->n, t, &b, &e);
	tls_running = p;
	p->results[t] = b < e ? p->fn(p->ctx, b, e, t) : 0;
	tls_running = NULL;
}

static void *worker_main(void *arg)
{
	struct lvd_pool_worker *w = arg;
	struct lvd_pool *p = w->pool;
	unsigned long seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->quit && p->generation == seen)
			pthread_cond_wait(&p->wake, &p->mu);
		if (p->quit)
			break;
		seen = p->generation;
		pthread_mutex_unlock(&p->mu);
		run_chunk(p, w->id);
		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int lvd_pool_create(struct lvd_pool **out, int n, struct lvd_error *err)
{
	*out = NULL;
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c < 1 ? 1 : c > LVD_POOL_MAX ? LVD_POOL_MAX : (int)c;
	}
	if (n < 1 || n > LVD_POOL_MAX)
		return lvd_error_set(err, LVD_ERR_INVALID, "thread count %d out of range [1, %d]",
				     n, LVD_POOL_MAX);
	struct lvd_pool *p = calloc(1, sizeof *p);
	int *results = calloc((size_t)n, sizeof *results);
	struct lvd_pool_worker *workers = n > 1 ? calloc((size_t)n - 1, sizeof *workers) : NULL;
	if (!p || !results || (n > 1 && !workers)) {
		free(p);
		free(results);
		free(workers);
		return lvd_error_set(err, LVD_ERR_NOMEM, "thread pool of %d: out of memory", n);
	}
	p->n = n;
	p->results = results;
	p->workers = workers;
	pthread_mutex_init(&p->call_mu, NULL);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	for (int i = 0; i < n - 1; i++) {
		workers[i].pool = p;
		workers[i].id = i + 1;
		int rc = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		if (rc != 0) {
			lvd_pool_destroy(p);
			return lvd_error_set(err, LVD_ERR_IO, "cannot start thread %d of %d: %s",
					     i + 1, n, strerror(rc));
		}
		p->started++;
	}
	*out = p;
	return LVD_OK;
}

void lvd_pool_destroy(struct lvd_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->started; i++)
		pthread_join(p->workers[i].thread, NULL);
	pthread_cond_destroy(&p->done);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->call_mu);
	free(p->workers);
	free(p->results);
	free(p);
}

int lvd_pool_threads(const struct lvd_pool *pool)
{
	return pool ? pool->n : 1;
}

int lvd_pool_parallel_for(struct lvd_pool *p, size_t n_items, lvd_pool_fn fn, void *ctx)
{
	if (n_items == 0)
		return 0;
	if (!p || p->n == 1)
		return fn(ctx, 0, n_items, 0);
	LVD_ASSERTF(tls_running != p, "lvd_pool_parallel_for called from inside a job of the same pool");
	pthread_mutex_lock(&p->call_mu);
	pthread_mutex_lock(&p->mu);
	p->n_items = n_items;
	p->fn = fn;
	p->ctx = ctx;
	p->pending = p->n - 1;
	p->generation++;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);

	run_chunk(p, 0);

	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	int rc = 0;
	for (int t = 0; t < p->n && !rc; t++)
		rc = p->results[t];
	pthread_mutex_unlock(&p->call_mu);
	return rc;
}
