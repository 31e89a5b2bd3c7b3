/*
 * pool.h — a fixed set of worker threads for the forward pass's fork-join
 * loops.  The pass splits several hundred loops a checkpoint over its
 * threads (a layer's rows, its experts, the vocabulary head's blocks);
 * starting and joining a thread for each cost more than some of the loops
 * themselves, and left a core idle while the next one started.  The
 * workers here are started once per pass and sleep on a condition
 * variable between loops.
 *
 * pool_run(p, n, fn, ud) calls fn(ud, tid) once for each tid in [0, n),
 * n <= pool_threads(p): tid 0 on the calling thread, the others on the
 * workers, and returns when every call has returned.  A pool is used from
 * one thread at a time (the pass's), and fn must not call pool_run.
 *
 * pool_new(threads) starts threads - 1 workers; where the system refuses
 * one, the pool has fewer threads (pool_threads says how many, at least
 * 1), and the work is split over those: no caller's result depends on the
 * split.  pool_free(NULL) is a no-op.
 */
#ifndef GW_ENGINE_POOL_H
#define GW_ENGINE_POOL_H

struct pool;

typedef void (*pool_fn)(void *ud, int tid);

struct pool *pool_new(int threads);
int pool_threads(const struct pool *p);
void pool_run(struct pool *p, int n, pool_fn fn, void *ud);
void pool_free(struct pool *p);

#endif
