/*
 * job.c — one checkpoint's computation on the thread pool (job.h).
 *
 * Divided into: the ctx (series, previous routing, probe), keeping and
 * restoring a step's routing vectors, the computation itself
 * (job_compute, run on a pool thread), and starting a job.
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

#define CONS_FILE "consistency.json"
#define ROUTING_KEEP "routing.safetensors"
#define TOKENS_KEEP "tokens.safetensors"
#define CONS_FILE_MAX (256u * 1024u * 1024u)

struct job_ctx {
	unsigned layer_delay_ms; /* fault injection for tests (job.h) */
	struct probe *probe;
	struct metrics_opts m;
	int threads;
	struct routing_series *series;
	struct routing *prev; /* the newest computed step's routing, with per-token records */
	char *prev_tokens;    /* where prev is kept on disk, or NULL */
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
	free(c->prev_tokens);
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

/* ---- keeping a step's routing vectors -------------------------------------- */

static cJSON *doubles_json(const double *v, int n)
{
	cJSON *a = cJSON_CreateArray();

	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull());
	return a;
}

/* r written to path without router matrices and, unless `tokens`, without
 * per-token records. */
static int write_routing(const char *path, const struct routing *r, bool tokens,
			 struct gw_err *err)
{
	struct routing slim = *r;
	float **no_router = gw_calloc((size_t)(r->n_layers > 0 ? r->n_layers : 1), sizeof(float *));
	int rc;

	if (!tokens) {
		slim.has_tokens = false;
		slim.tok_offset = NULL;
		slim.topk_ids = NULL;
		slim.topk_w = NULL;
		slim.entropy = NULL;
		slim.lse = NULL;
	}
	slim.router = no_router;
	rc = routing_file_write(path, &slim, err);
	free(no_router);
	return rc;
}

static int keep(const char *dir, const struct routing *r, const struct metrics_cons *cons,
		struct gw_err *err)
{
	char *path = gw_join(dir, '/', ROUTING_KEEP), *text = NULL;
	cJSON *o = cJSON_CreateObject();
	int rc;

	rc = write_routing(path, r, false, err);
	if (rc < 0)
		goto out;
	if (cons->c) {
		cJSON_AddItemToObject(o, "c", doubles_json(cons->c, cons->n_samples));
		cJSON_AddItemToObject(o, "adj", doubles_json(cons->adj, cons->n_samples));
	} else {
		cJSON_AddStringToObject(o, "note", cons->note ? cons->note : "");
	}
	text = cJSON_PrintUnformatted(o);
	rc = gw_file_write_atomic(dir, CONS_FILE, text, strlen(text), err);
out:
	cJSON_Delete(o);
	free(text);
	free(path);
	return rc;
}

/* The newest step's per-token records, for churn after a restart: written
 * beside its other vectors, and the previous newest step's removed. */
static int keep_tokens(struct job_ctx *c, const char *dir, const struct routing *r,
		       struct gw_err *err)
{
	char *path = gw_join(dir, '/', TOKENS_KEEP);
	int rc = write_routing(path, r, true, err);

	if (rc < 0) {
		free(path);
		return rc;
	}
	if (c->prev_tokens && strcmp(c->prev_tokens, path))
		unlink(c->prev_tokens);
	free(c->prev_tokens);
	c->prev_tokens = path;
	return 0;
}

int job_ctx_restore_prev(struct job_ctx *c, int64_t step, const char *dir, struct gw_err *err)
{
	char *path = gw_join(dir, '/', TOKENS_KEEP);
	struct routing *r = NULL;
	int rc = routing_file_read(path, &r, err);

	if (rc < 0) {
		free(path);
		return rc;
	}
	r->step = step;
	routing_free(c->prev);
	c->prev = r;
	free(c->prev_tokens);
	c->prev_tokens = path;
	return 0;
}

static int read_doubles(const char *what, const cJSON *a, int n, double **ret, struct gw_err *err)
{
	const cJSON *x;
	double *v;
	int i = 0;

	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
		return gw_errf(err, -EBADMSG, "\"%s\": expected an array of %d numbers", what, n);
	v = gw_malloc((size_t)n * sizeof(double));
	cJSON_ArrayForEach(x, a) {
		if (cJSON_IsNull(x)) {
			v[i++] = NAN;
		} else if (cJSON_IsNumber(x)) {
			v[i++] = x->valuedouble;
		} else {
			free(v);
			return gw_errf(err, -EBADMSG, "\"%s\": item %d is not a number", what, i);
		}
	}
	*ret = v;
	return 0;
}

int job_ctx_restore(struct job_ctx *c, int64_t step, const char *dir, struct gw_err *err)
{
	struct metrics_cons cons = { 0 };
	struct routing *r = NULL;
	char *path = gw_join(dir, '/', ROUTING_KEEP), *cpath = gw_join(dir, '/', CONS_FILE), *text = NULL;
	cJSON *o = NULL;
	size_t len;
	int rc;

	rc = routing_file_read(path, &r, err);
	if (rc < 0)
		goto out;
	rc = gw_file_read(cpath, CONS_FILE_MAX, &text, &len, err);
	if (rc < 0)
		goto out;
	o = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(o)) {
		rc = gw_errf(err, -EBADMSG, "\"%s\": not a JSON object", cpath);
		goto out;
	}
	cons.n_samples = r->n_samples;
	if (cJSON_GetObjectItemCaseSensitive(o, "c")) {
		rc = read_doubles(cpath, cJSON_GetObjectItemCaseSensitive(o, "c"), r->n_samples,
				  &cons.c, err);
		if (rc == 0)
			rc = read_doubles(cpath, cJSON_GetObjectItemCaseSensitive(o, "adj"),
					  r->n_samples, &cons.adj, err);
		if (rc < 0)
			goto out;
	} else {
		cons.note = "no router weights";
	}
	r->step = step;
	rc = routing_series_put(c->series, r, &cons, err);
	if (rc > 0)
		rc = 0;
out:
	free(cons.c);
	free(cons.adj);
	cJSON_Delete(o);
	free(text);
	routing_free(r);
	free(cpath);
	free(path);
	return rc;
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
	cJSON_AddStringToObject(j->result, "kind", "result");
	cJSON_AddStringToObject(j->result, "source", source_kind_name(kind));
	cJSON_AddStringToObject(j->result, "arch", r->arch ? r->arch : "");
	rc = job_ctx_memo(c, &j->memo, &j->n_memo, &j->err);
	if (rc < 0)
		goto out;
	if (j->keep_dir) {
		rc = keep(j->keep_dir, r, cons, &j->err);
		if (rc < 0)
			goto out;
	}
	if (r->has_tokens && (!c->prev || c->prev->step < r->step)) {
		if (j->keep_dir && (rc = keep_tokens(c, j->keep_dir, r, &j->err)) < 0)
			goto out;
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
