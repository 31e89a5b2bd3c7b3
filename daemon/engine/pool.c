/*
 * pool.c — see pool.h.  One mutex guards the job (fn, ud, n), a generation
 * number that each new job increments, and the count of workers still in
 * it; workers wait on `go` for a new generation and the caller waits on
 * `done` for the count to reach zero.  Workers whose tid is not below n
 * take no part and are not counted.
 */
#include "pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "error.h"

struct worker {
	struct pool *p;
	int tid;
	pthread_t th;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	uint64_t gen;
	pool_fn fn;
	void *ud;
	int n;        /* the job's threads, caller included */
	int pending;  /* workers of this job not yet finished */
	bool quit;
	int nworkers;
	struct worker w[];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->p;
	uint64_t seen = 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->gen == seen && !p->quit)
			pthread_cond_wait(&p->go, &p->mu);
		if (p->quit)
			break;
		seen = p->gen;
		if (w->tid < p->n) {
			pool_fn fn = p->fn;
			void *ud = p->ud;

			pthread_mutex_unlock(&p->mu);
			fn(ud, w->tid);
			pthread_mutex_lock(&p->mu);
			if (--p->pending == 0)
				pthread_cond_signal(&p->done);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct pool *pool_new(int threads)
{
	int want = threads > 1 ? threads - 1 : 0;
	struct pool *p = gw_calloc(1, sizeof(*p) + (size_t)want * sizeof(struct worker));

	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	for (int i = 0; i < want; i++) {
		struct worker *w = &p->w[p->nworkers];

		w->p = p;
		w->tid = p->nworkers + 1;
		if (pthread_create(&w->th, NULL, worker_main, w) != 0)
			break; /* fewer threads: the work goes over those started */
		p->nworkers++;
	}
	return p;
}

int pool_threads(const struct pool *p)
{
	return p->nworkers + 1;
}

void pool_run(struct pool *p, int n, pool_fn fn, void *ud)
{
	GW_BUG_ON(n < 1 || n > pool_threads(p));
	if (n > 1) {
		pthread_mutex_lock(&p->mu);
		p->fn = fn;
		p->ud = ud;
		p->n = n;
		p->pending = n - 1;
		p->gen++;
		pthread_cond_broadcast(&p->go);
		pthread_mutex_unlock(&p->mu);
	}
	fn(ud, 0);
	if (n > 1) {
		pthread_mutex_lock(&p->mu);
		while (p->pending > 0)
			pthread_cond_wait(&p->done, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = true;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nworkers; i++)
		pthread_join(p->w[i].th, NULL);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
