/*
 * job.h — one checkpoint's computation, off the loop: the engine's
 * pipeline (engine/analysis.h: load its routing, compute its metrics
 * against the series of earlier checkpoints, recompute the memorized
 * subset of every step against the new latest one) run on a pool thread,
 * then the routing vectors the series needs kept on disk.
 *
 * What lives between jobs is a struct job_ctx: the struct analysis (probe,
 * metric options, routing series, the previous checkpoint for churn) and
 * the fault injection below.  Jobs run one at a time, so the worker owns
 * the ctx while a job runs and the loop owns it otherwise; nothing here is
 * locked (STYLE.md habit 7).
 *
 * A job keeps its step's vectors in keep_dir (state.h says what and where:
 * state_keep, and state_keep_tokens for the newest step, from the worker);
 * at start-up run.c reads them back through state.h and hands them to
 * job_ctx_put and job_ctx_set_prev, so a restart recomputes no forward
 * pass and loses no churn.  A late checkpoint older than the newest has no
 * churn (its predecessor's per-token records are gone).
 *
 * Fault injection: with GROKWATCHD_TEST_LAYER_DELAY_MS=N in the environment
 * the forward pass sleeps N ms after each layer, so tests can delete a
 * checkpoint, kill the daemon or stop it in the middle of a job.
 *
 * Threads: job_start and the done callback run on the loop thread; the
 * computation on libuv's thread pool.  Progress and cancellation cross by
 * atomics; the loop is woken for progress with the uv_async_t given.
 */
#ifndef GW_DAEMON_JOB_H
#define GW_DAEMON_JOB_H

#include <cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "engine/error.h"
#include "engine/metrics.h"
#include "engine/probe.h"
#include "engine/routing_series.h"

struct job_ctx;

/* analysis_new's arguments: probe may be NULL (routing files only);
 * ownership moves to the ctx.  m is copied (its eps_groups must outlive
 * the ctx).  threads: OpenBLAS and distance threads. */
struct job_ctx *job_ctx_new(struct probe *probe, const struct metrics_opts *m, int threads);
void job_ctx_free(struct job_ctx *c); /* accepts NULL */
const struct probe *job_ctx_probe(const struct job_ctx *c);

/*
 * Put a step's kept routing and consistency (state_read_kept's; borrowed)
 * back into the series.  Errors: those of routing_series_put.
 */
int job_ctx_put(struct job_ctx *c, const struct routing *r, const struct metrics_cons *cons,
		struct gw_err *err);

/* Make r (ownership moves here; state_read_tokens's) the previous
 * checkpoint for churn. */
void job_ctx_set_prev(struct job_ctx *c, struct routing *r);

/* The memorized-subset values of every kept step against the latest.
 * *ret_memo as routing_series_recompute (0 steps: NULL, 0). */
int job_ctx_memo(struct job_ctx *c, struct metrics_memo **ret_memo, size_t *ret_n,
		 struct gw_err *err);

struct job {
	/* in, set by the caller before job_start (strings owned by the job) */
	char *name, *path, *keep_dir;
	char *label;              /* name as valid UTF-8 (json_utf8_fix): what results say */
	int64_t step;
	int attempt;
	struct job_ctx *ctx;
	uv_async_t *progress;     /* woken after every layer; may be NULL */
	void (*done)(struct job *j);
	void *data;               /* the caller's */
	/* shared */
	atomic_int cancel;        /* set by the loop: stop at the next layer */
	atomic_int layers_done, n_layers;
	bool gone;                /* loop only: the checkpoint went away */
	/* out, read in done() */
	int rc;
	struct gw_err err;
	cJSON *result;            /* {"step", ...metrics...}, no label (state.h) */
	bool kept_tokens;         /* its per-token records were kept: state_tokens_kept */
	uint64_t sig;             /* ckpt_signature of the files read (rc 0 or -ESTALE) */
	struct metrics_memo *memo;
	size_t n_memo;
	double sec;
	uv_work_t req;
};

/* Add "checkpoint": name to o as valid UTF-8 (invalid bytes as U+FFFD)
 * and, when name is not valid UTF-8, "checkpoint_hex": its bytes in hex,
 * so the directory can still be found. */
void job_add_name(cJSON *o, const char *name);
/* Only the "checkpoint_hex" of job_add_name. */
void job_add_name_hex(cJSON *o, const char *name);

/* A new job (free with job_free). */
struct job *job_new(const char *name, const char *path, const char *keep_dir, int64_t step);
void job_free(struct job *j); /* accepts NULL */

/* Queue j on the loop's thread pool; done(j) runs on the loop thread when
 * it finished (rc 0) or failed (rc < 0, err says why; -ECANCELED when
 * cancelled; -ESTALE when a file it read changed while it was read, size,
 * mtime or inode (ckpt_signature): nothing was computed, the series is
 * untouched).  0 or the -errno of uv_queue_work. */
int job_start(uv_loop_t *loop, struct job *j);

/* Whether a failure is worth retrying: I/O trouble and files vanishing
 * mid-read are; malformed or unsupported content is not. */
bool job_error_transient(int rc);

#endif
