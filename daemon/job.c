/*
 * job.c — one checkpoint's computation on the thread pool (job.h).
 *
 * Thread glue around the engine's one pipeline (engine/analysis.h): the
 * ctx (the analysis and the fault injection), taking back a step's kept
 * routing (state.c reads it), the job's work on a pool thread
 * (job_compute: analysis_run, then the vectors kept through state_keep),
 * and starting a job.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/analysis.h"
#include "engine/checkpoint.h"
#include "engine/json.h"
#include "job.h"
#include "state.h"

struct job_ctx {
	unsigned layer_delay_ms; /* fault injection for tests (job.h) */
	struct analysis *an;
};

struct job_ctx *job_ctx_new(struct probe *probe, const struct metrics_opts *m, int threads)
{
	struct job_ctx *c = gw_calloc(1, sizeof(*c));

	const char *delay = getenv("GROKWATCHD_TEST_LAYER_DELAY_MS");

	if (delay)
		c->layer_delay_ms = (unsigned)strtoul(delay, NULL, 10);
	c->an = analysis_new(probe, m, threads);
	return c;
}

void job_ctx_free(struct job_ctx *c)
{
	if (!c)
		return;
	analysis_free(c->an);
	free(c);
}

const struct probe *job_ctx_probe(const struct job_ctx *c)
{
	return analysis_probe(c->an);
}

int job_ctx_memo(struct job_ctx *c, struct metrics_memo **ret_memo, size_t *ret_n,
		 struct gw_err *err)
{
	return analysis_memo(c->an, ret_memo, ret_n, err);
}

/* ---- restoring a step's kept routing (read by state.c) ------------------------ */

int job_ctx_put(struct job_ctx *c, const struct routing *r, const struct metrics_cons *cons,
		struct gw_err *err)
{
	return analysis_put(c->an, r, cons, err);
}

void job_ctx_set_prev(struct job_ctx *c, struct routing *r)
{
	analysis_set_prev(c->an, r);
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

/* The analysis (engine/analysis.h), then what the state directory keeps
 * of it: every step's routing and consistency, and the newest step's
 * per-token records. */
static int job_compute(struct job *j)
{
	struct job_ctx *c = j->ctx;
	const struct forward_opts fo = { .progress = on_layer, .ud = j, .cancel = &j->cancel };
	struct analysis_out out = { 0 };
	struct routing *r = NULL;
	enum source_kind kind;
	uint64_t sig_end = 0;
	int rc;

	/* Every file the computation reads is read by the load: a checkpoint
	 * whose files changed between before and after it is discarded here,
	 * before it touches the series. */
	rc = ckpt_signature(j->path, &j->sig);
	if (rc < 0)
		return gw_errf(&j->err, rc, "\"%s\": %s", j->path, strerror(-rc));
	rc = analysis_load(c->an, j->path, &fo, &r, &kind, &j->err);
	if (rc < 0)
		return rc;
	if (ckpt_signature(j->path, &sig_end) < 0 || sig_end != j->sig) {
		routing_free(r);
		return gw_errf(&j->err, -ESTALE, "\"%s\": changed while it was computed", j->path);
	}
	rc = analysis_add(c->an, j->path, r, kind, j->label, j->step, true, &out, &j->err);
	if (rc < 0)
		return rc;
	if (strcmp(j->label, j->name))
		job_add_name_hex(out.result, j->name);
	if (j->keep_dir) {
		rc = state_keep(j->keep_dir, out.routing, out.cons, &j->err);
		if (rc == 0 && out.newest && out.routing->has_tokens) {
			rc = state_keep_tokens(j->keep_dir, out.routing, &j->err);
			j->kept_tokens = rc == 0;
		}
		if (rc < 0)
			goto out;
	}
	j->result = out.result;
	out.result = NULL;
	j->memo = out.memo;
	j->n_memo = out.n_memo;
	out.memo = NULL;
	out.n_memo = 0;
out:
	analysis_out_release(&out);
	return rc;
}

/* ---- names -------------------------------------------------------------------- */

void job_add_name(cJSON *o, const char *name)
{
	char *label = json_utf8_fix(name);

	cJSON_AddStringToObject(o, "checkpoint", label);
	if (strcmp(label, name))
		job_add_name_hex(o, name);
	free(label);
}

void job_add_name_hex(cJSON *o, const char *name)
{
	size_t n = strlen(name);
	char *hex = gw_malloc(2 * n + 1);

	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)name[i]);
	hex[2 * n] = 0;
	cJSON_AddStringToObject(o, "checkpoint_hex", hex);
	free(hex);
}

/* ---- starting ------------------------------------------------------------------ */

struct job *job_new(const char *name, const char *path, const char *keep_dir, int64_t step)
{
	struct job *j = gw_calloc(1, sizeof(*j));

	j->name = gw_strdup(name);
	j->label = json_utf8_fix(name);
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
	free(j->label);
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
	case -ESTALE:
		return false;
	default:
		return true;
	}
}
