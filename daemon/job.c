/*
 * job.c — one checkpoint's computation on the thread pool (job.h).
 *
 * Divided into: the ctx (series, previous routing, probe), taking back a
 * step's kept routing (state.c reads it), the computation itself
 * (job_compute, run on a pool thread; it keeps the vectors through
 * state_keep), and starting a job.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/file.h"
#include "engine/routing_file.h"
#include "engine/source.h"
#include "job.h"
#include "state.h"

struct job_ctx {
	unsigned layer_delay_ms; /* fault injection for tests (job.h) */
	struct probe *probe;
	struct metrics_opts m;
	int threads;
	struct routing_series *series;
	struct routing *prev; /* the newest computed step's routing, with per-token records */
};

struct job_ctx *job_ctx_new(struct probe *probe, const struct metrics_opts *m, int threads)
{
	struct job_ctx *c = gw_calloc(1, sizeof(*c));

	const char *delay = getenv("GROKWATCHD_TEST_LAYER_DELAY_MS");

	if (delay)
		c->layer_delay_ms = (unsigned)strtoul(delay, NULL, 10);
	c->probe = probe;
	c->m = *m;
	c->m.threads = threads;
	c->threads = threads;
	c->series = routing_series_new();
	return c;
}

void job_ctx_free(struct job_ctx *c)
{
	if (!c)
		return;
	probe_free(c->probe);
	routing_series_free(c->series);
	routing_free(c->prev);
	free(c);
}

const struct probe *job_ctx_probe(const struct job_ctx *c)
{
	return c->probe;
}

int job_ctx_memo(struct job_ctx *c, struct metrics_memo **ret_memo, size_t *ret_n,
		 struct gw_err *err)
{
	if (routing_series_count(c->series) == 0) {
		*ret_memo = NULL;
		*ret_n = 0;
		return 0;
	}
	return routing_series_recompute(c->series, &c->m, ret_memo, ret_n, err);
}

/* ---- restoring a step's kept routing (read by state.c) ------------------------ */

int job_ctx_put(struct job_ctx *c, const struct routing *r, const struct metrics_cons *cons,
		struct gw_err *err)
{
	int rc = routing_series_put(c->series, r, cons, err);

	return rc > 0 ? 0 : rc;
}

void job_ctx_set_prev(struct job_ctx *c, struct routing *r)
{
	routing_free(c->prev);
	c->prev = r;
}

/* ---- the computation ---------------------------------------------------------- */

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_layer(void *ud, int done, int total)
{
	struct job *j = ud;

	if (j->ctx->layer_delay_ms && done < total)
		usleep(j->ctx->layer_delay_ms * 1000u);
	atomic_store(&j->n_layers, total);
	atomic_store(&j->layers_done, done);
	if (j->progress)
		uv_async_send(j->progress); /* the one libuv call that is thread-safe */
}

static int job_compute(struct job *j)
{
	struct job_ctx *c = j->ctx;
	struct forward_opts fo = {
		.progress = on_layer, .ud = j, .cancel = &j->cancel, .threads = c->threads,
	};
	const struct probe *probe = c->probe;
	struct metrics_result *res = NULL;
	struct metrics_cons *cons = NULL;
	struct routing *r = NULL;
	enum source_kind kind;
	const struct routing *prev = NULL;
	bool *mask = NULL;
	long idx;
	int rc;

	rc = source_load(j->path, probe, &fo, &r, &kind, &j->err);
	if (rc < 0)
		goto out;
	if (atomic_load(&j->cancel)) {
		rc = gw_errf(&j->err, -ECANCELED, "\"%s\": cancelled", j->path);
		goto out;
	}
	if (probe && r->probe_hash && strcmp(r->probe_hash, probe->hash)) {
		rc = gw_errf(&j->err, -EINVAL,
			     "\"%s\": routing records of probe %.12s, not of the configured probe %.12s",
			     j->path, r->probe_hash, probe->hash);
		goto out;
	}
	r->step = j->step;
	free(r->checkpoint);
	r->checkpoint = gw_strdup(j->name);
	rc = metrics_consistency(r, &cons, &j->err);
	if (rc < 0)
		goto out;
	rc = routing_series_put(c->series, r, cons, &j->err);
	if (rc < 0) {
		gw_err_prefix(&j->err, rc, "\"%s\"", j->path);
		goto out;
	}
	idx = routing_series_find(c->series, j->step);
	mask = gw_malloc((size_t)r->n_samples * sizeof(bool));
	routing_series_memorized(c->series, (size_t)idx, &c->m, mask);
	/* Churn only against the step just before this one, when its
	 * per-token records are still in memory. */
	if (c->prev && idx > 0 && routing_series_step_at(c->series, (size_t)idx - 1) == c->prev->step)
		prev = c->prev;
	rc = metrics_compute(r, prev, cons, mask, &c->m, &res, &j->err);
	if (rc < 0)
		goto out;
	j->result = metrics_result_json(res);
	cJSON_DeleteItemFromObjectCaseSensitive(j->result, "type");
	cJSON_AddStringToObject(j->result, "source", source_kind_name(kind));
	cJSON_AddStringToObject(j->result, "arch", r->arch ? r->arch : "");
	rc = job_ctx_memo(c, &j->memo, &j->n_memo, &j->err);
	if (rc < 0)
		goto out;
	if (j->keep_dir) {
		rc = state_keep(j->keep_dir, r, cons, &j->err);
		if (rc < 0)
			goto out;
	}
	if (r->has_tokens && (!c->prev || c->prev->step < r->step)) {
		if (j->keep_dir) {
			if ((rc = state_keep_tokens(j->keep_dir, r, &j->err)) < 0)
				goto out;
			j->kept_tokens = true;
		}
		routing_free(c->prev);
		c->prev = r;
		r = NULL;
	}
	rc = 0;
out:
	free(mask);
	metrics_result_free(res);
	metrics_cons_free(cons);
	routing_free(r);
	return rc;
}

/* ---- starting ------------------------------------------------------------------ */

struct job *job_new(const char *name, const char *path, const char *keep_dir, int64_t step)
{
	struct job *j = gw_calloc(1, sizeof(*j));

	j->name = gw_strdup(name);
	j->path = gw_strdup(path);
	j->keep_dir = keep_dir ? gw_strdup(keep_dir) : NULL;
	j->step = step;
	j->attempt = 1;
	atomic_init(&j->cancel, 0);
	atomic_init(&j->layers_done, 0);
	atomic_init(&j->n_layers, 0);
	j->req.data = j;
	return j;
}

void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->name);
	free(j->path);
	free(j->keep_dir);
	cJSON_Delete(j->result);
	routing_series_memo_free(j->memo, j->n_memo);
	free(j);
}

static void work(uv_work_t *req)
{
	struct job *j = req->data;
	double t0 = now_sec();

	j->rc = job_compute(j);
	j->sec = now_sec() - t0;
	if (j->rc == 0)
		cJSON_AddNumberToObject(j->result, "compute_sec", j->sec);
}

static void after_work(uv_work_t *req, int status)
{
	struct job *j = req->data;

	if (status == UV_ECANCELED) {
		j->rc = gw_errf(&j->err, -ECANCELED, "\"%s\": cancelled before it started", j->path);
	}
	j->done(j);
}

int job_start(uv_loop_t *loop, struct job *j)
{
	return uv_queue_work(loop, &j->req, work, after_work);
}

bool job_error_transient(int rc)
{
	switch (rc) {
	case -EBADMSG:
	case -ENOTSUP:
	case -EINVAL:
	case -EFBIG:
	case -E2BIG:
	case -ENOTDIR:
	case -ECANCELED:
		return false;
	default:
		return true;
	}
}
