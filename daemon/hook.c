/*
 * hook.c — the hook runner declared in hook.h.
 *
 * One struct run per hook run, queued or running.  A running run owns five
 * libuv handles (the process, its stdin, stdout and stderr pipes, and one
 * timer that serves in turn as the timeout, the grace before SIGKILL, and
 * the wait for pipes left open after the exit).  In order: the runner's
 * lifecycle; a run's creation, spawn and I/O; its signals; its end (close
 * every handle, report and free in the last close callback, start the next
 * queued run).
 */
#include "engine/file.h"
#include "hook.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define READ_CHUNK 65536
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

struct hook_def {
	char *alert;
	char **argv; /* NULL-terminated */
};

enum phase { RUNNING, TERM_SENT, KILL_SENT, DRAINING };

struct capture {
	char *p;         /* [cap + 1] */
	size_t n;
	uint64_t dropped;
};

struct run {
	struct hooks *h;
	struct run *next; /* queue or running list */
	const struct hook_def *def;
	char *alert, *run, *group, *status;
	int64_t step;
	char *payload;
	size_t len;
	int64_t delivery;
	char *env[8];

	uv_process_t proc;
	uv_pipe_t in, out, err;
	uv_timer_t timer;
	uv_write_t wreq;
	int open;         /* handles initialized and not yet closed */
	bool exited, out_done, err_done, in_done, ending;
	enum phase phase;
	int spawn_error;
	int64_t exit_status;
	int term_signal, sent_signal;
	bool timed_out;
	struct capture cout, cerr;
	uint64_t started;
};

struct hooks {
	uv_loop_t *loop;
	struct hook_def *defs;
	int ndefs;
	uint64_t timeout_ms, grace_ms;
	int concurrency;
	size_t queue_max, output_bytes;
	hook_done_cb done;
	void *ud;
	struct run *qhead, *qtail, *running;
	size_t nqueued, nrunning;
	bool closing;
	bool in_callback; /* inside done(): hooks_close must not free h yet */
	char rbuf[READ_CHUNK];
};

static void run_start(struct run *r);
static void run_end(struct run *r);

/* ---- the runner ------------------------------------------------------------------------ */

int hooks_new(uv_loop_t *loop, const struct hook_opts *o, hook_done_cb done, void *ud,
	      struct hooks **ret_hooks, struct gw_err *err)
{
	struct sigaction sa;
	struct hooks *h;

	if (o->timeout_ms < 1 || o->kill_grace_ms < 1 || o->concurrency < 1 || o->n_hooks < 0)
		return gw_errf(err, -EINVAL, "hooks: timeout, grace and concurrency must be at least 1");
	for (int i = 0; i < o->n_hooks; i++)
		if (!o->hooks[i].alert || o->hooks[i].argc < 1 || !o->hooks[i].argv[0][0])
			return gw_errf(err, -EINVAL, "hooks: hook %d has no program", i);
	if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN)
		return gw_errf(err, -EINVAL, "hooks: SIGPIPE must be ignored before hooks run");

	h = gw_calloc(1, sizeof(*h));
	h->loop = loop;
	h->ndefs = o->n_hooks;
	h->defs = gw_calloc((size_t)o->n_hooks + 1, sizeof(*h->defs));
	for (int i = 0; i < o->n_hooks; i++) {
		const struct hook_spec *c = &o->hooks[i];

		h->defs[i].alert = gw_strdup(c->alert);
		h->defs[i].argv = gw_calloc((size_t)c->argc + 1, sizeof(char *));
		for (int k = 0; k < c->argc; k++)
			h->defs[i].argv[k] = gw_strdup(c->argv[k]);
	}
	h->timeout_ms = o->timeout_ms;
	h->grace_ms = o->kill_grace_ms;
	h->concurrency = o->concurrency;
	h->queue_max = o->queue;
	h->output_bytes = o->output_bytes;
	h->done = done;
	h->ud = ud;
	*ret_hooks = h;
	return 0;
}

static void hooks_free(struct hooks *h)
{
	for (int i = 0; i < h->ndefs; i++) {
		for (char **a = h->defs[i].argv; *a; a++)
			free(*a);
		free(h->defs[i].argv);
		free(h->defs[i].alert);
	}
	free(h->defs);
	free(h);
}

size_t hooks_running(const struct hooks *h)
{
	return h->nrunning;
}

size_t hooks_queued(const struct hooks *h)
{
	return h->nqueued;
}

/* ---- a run ------------------------------------------------------------------------------ */

static struct run *run_new(struct hooks *h, const struct hook_def *def, const struct hook_event *ev)
{
	struct run *r = gw_calloc(1, sizeof(*r));
	const char *path = getenv("PATH");
	char step[24] = "";

	r->h = h;
	r->def = def;
	r->alert = gw_strdup(ev->alert);
	r->run = gw_strdup(ev->run ? ev->run : "");
	r->group = gw_strdup(ev->group ? ev->group : "");
	r->status = gw_strdup(ev->status ? ev->status : "");
	r->step = ev->step;
	r->len = ev->len;
	r->payload = gw_malloc(ev->len + 1);
	if (ev->len)
		memcpy(r->payload, ev->payload, ev->len);
	if (ev->step >= 0)
		snprintf(step, sizeof(step), "%" PRId64, ev->step);
	r->env[0] = gw_join("GROKWATCH_ALERT", '=', r->alert);
	r->env[1] = gw_join("GROKWATCH_RUN", '=', r->run);
	r->env[2] = gw_join("GROKWATCH_GROUP", '=', r->group);
	r->env[3] = gw_join("GROKWATCH_STEP", '=', step);
	r->env[4] = gw_join("GROKWATCH_STATUS", '=', r->status);
	r->env[5] = gw_join("PATH", '=', path && *path ? path : DEFAULT_PATH);
	r->env[6] = ev->redelivery ? gw_strdup("GROKWATCH_REDELIVERY=1") : NULL;
	r->env[7] = NULL;
	r->delivery = ev->delivery;
	return r;
}

static void run_free(struct run *r)
{
	for (int i = 0; r->env[i]; i++)
		free(r->env[i]);
	free(r->alert);
	free(r->run);
	free(r->group);
	free(r->status);
	free(r->payload);
	free(r->cout.p);
	free(r->cerr.p);
	free(r);
}

static bool names(const struct hooks *h, int i, const char *alert)
{
	return !strcmp(h->defs[i].alert, "*") || !strcmp(h->defs[i].alert, alert);
}

/* Whether hook i runs for ev. */
static bool takes(const struct hooks *h, int i, const struct hook_event *ev)
{
	return names(h, i, ev->alert) && (ev->only == 0 || ev->only == i + 1);
}

int hooks_match(const struct hooks *h, const char *alert, int *ret_idx, int max)
{
	int n = 0;

	for (int i = 0; i < h->ndefs && n < max; i++)
		if (names(h, i, alert))
			ret_idx[n++] = i;
	return n;
}

const char *hooks_program(const struct hooks *h, int i)
{
	return i >= 0 && i < h->ndefs ? h->defs[i].argv[0] : NULL;
}

size_t hooks_pending(const struct hooks *h,
		     void (*fn)(void *ud, const char *program, const char *alert, int64_t step,
				bool running),
		     void *ud)
{
	size_t n = 0;

	for (const struct run *r = h->running; r; r = r->next, n++)
		fn(ud, r->def->argv[0], r->alert, r->step, true);
	for (const struct run *r = h->qhead; r; r = r->next, n++)
		fn(ud, r->def->argv[0], r->alert, r->step, false);
	return n;
}

int hooks_run(struct hooks *h, const struct hook_event *ev, struct gw_err *err)
{
	size_t want = 0, room;
	int n = 0;

	GW_BUG_ON(h->closing);
	for (int i = 0; i < h->ndefs; i++)
		if (takes(h, i, ev))
			want++;
	if (want == 0)
		return 0;
	room = (size_t)h->concurrency - h->nrunning + (h->queue_max - h->nqueued);
	if (want > room)
		return gw_errf(err, -EAGAIN,
			       "hooks for %s: %zu to run, room for %zu (%zu running, %zu queued)",
			       ev->alert, want, room, h->nrunning, h->nqueued);
	for (int i = 0; i < h->ndefs; i++) {
		struct run *r;

		if (!takes(h, i, ev))
			continue;
		r = run_new(h, &h->defs[i], ev);
		if (h->nrunning < (size_t)h->concurrency) {
			run_start(r);
		} else {
			if (h->qtail)
				h->qtail->next = r;
			else
				h->qhead = r;
			h->qtail = r;
			h->nqueued++;
		}
		n++;
	}
	return n;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	struct run *r = handle->data;

	(void)suggested;
	/* libuv calls alloc and then read for one read at a time on the loop,
	 * so one buffer serves every pipe of every run. */
	*buf = uv_buf_init(r->h->rbuf, sizeof(r->h->rbuf));
}

static void capture_add(struct capture *c, size_t cap, const char *p, size_t n)
{
	size_t take = n;

	if (!c->p)
		c->p = gw_calloc(cap + 1, 1);
	if (take > cap - c->n)
		take = cap - c->n;
	memcpy(c->p + c->n, p, take);
	c->n += take;
	c->dropped += n - take;
}

static void on_close(uv_handle_t *handle);

static void close_handle(struct run *r, uv_handle_t *handle)
{
	if (!uv_is_closing(handle)) {
		handle->data = r;
		uv_close(handle, on_close);
	}
}

static void maybe_end(struct run *r)
{
	if (r->exited && r->out_done && r->err_done)
		run_end(r);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct run *r = s->data;
	bool is_out = s == (uv_stream_t *)&r->out;

	if (nread > 0) {
		capture_add(is_out ? &r->cout : &r->cerr, r->h->output_bytes, buf->base,
			    (size_t)nread);
		return;
	}
	if (nread == 0)
		return; /* EAGAIN */
	/* EOF or a read error: either way this pipe is done. */
	if (is_out)
		r->out_done = true;
	else
		r->err_done = true;
	close_handle(r, (uv_handle_t *)s);
	maybe_end(r);
}

static void on_write(uv_write_t *req, int status)
{
	struct run *r = req->data;

	(void)status; /* EPIPE: the hook did not read its stdin, which is its business */
	r->in_done = true;
	close_handle(r, (uv_handle_t *)&r->in);
}

static void signal_group(struct run *r, int sig)
{
	r->sent_signal = sig;
	/* The process leads its own group (UV_PROCESS_DETACHED = setsid).  Once
	 * it has been reaped its pid may be reused, so only the group, which
	 * lives on while any member does, is signalled then. */
	if (kill(-r->proc.pid, sig) != 0 && !r->exited)
		uv_process_kill(&r->proc, sig);
}

static void on_timer(uv_timer_t *t)
{
	struct run *r = t->data;

	switch (r->phase) {
	case RUNNING:
		r->timed_out = true;
		r->phase = TERM_SENT;
		signal_group(r, SIGTERM);
		uv_timer_start(&r->timer, on_timer, r->h->grace_ms, 0);
		break;
	case TERM_SENT:
		r->phase = KILL_SENT;
		signal_group(r, SIGKILL);
		break;
	case KILL_SENT:
		break;
	case DRAINING:
		/* Exited, but something it left behind in its process group holds
		 * a pipe open: that goes too, and the run ends. */
		signal_group(r, SIGKILL);
		r->out_done = r->err_done = true;
		run_end(r);
		break;
	}
}

static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct run *r = p->data;

	r->exited = true;
	r->exit_status = exit_status;
	r->term_signal = term_signal;
	uv_timer_stop(&r->timer);
	if (r->h->closing) {
		r->out_done = r->err_done = true;
		run_end(r);
		return;
	}
	r->phase = DRAINING;
	if (!(r->out_done && r->err_done))
		uv_timer_start(&r->timer, on_timer, r->h->grace_ms, 0);
	maybe_end(r);
}

static void run_start(struct run *r)
{
	struct hooks *h = r->h;
	uv_process_options_t opt;
	uv_stdio_container_t stdio[3];
	int e;

	r->next = h->running;
	h->running = r;
	h->nrunning++;
	r->started = uv_now(h->loop);

	uv_pipe_init(h->loop, &r->in, 0);
	uv_pipe_init(h->loop, &r->out, 0);
	uv_pipe_init(h->loop, &r->err, 0);
	uv_timer_init(h->loop, &r->timer);
	r->in.data = r->out.data = r->err.data = r->timer.data = r->proc.data = r;
	r->open = 4;

	memset(&opt, 0, sizeof(opt));
	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&r->in;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&r->out;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&r->err;
	opt.file = r->def->argv[0];
	opt.args = r->def->argv;
	opt.env = r->env;
	opt.stdio = stdio;
	opt.stdio_count = 3;
	opt.flags = UV_PROCESS_DETACHED;
	opt.exit_cb = on_proc_exit;

	e = uv_spawn(h->loop, &r->proc, &opt);
	r->open++; /* uv_spawn initializes the process handle even when it fails */
	r->proc.data = r;
	if (e < 0) {
		r->spawn_error = e;
		r->exited = r->out_done = r->err_done = r->in_done = true;
		run_end(r);
		return;
	}
	if (r->len > 0) {
		uv_buf_t b = uv_buf_init(r->payload, (unsigned int)r->len);

		r->wreq.data = r;
		if (uv_write(&r->wreq, (uv_stream_t *)&r->in, &b, 1, on_write) < 0) {
			r->in_done = true;
			close_handle(r, (uv_handle_t *)&r->in);
		}
	} else {
		r->in_done = true;
		close_handle(r, (uv_handle_t *)&r->in);
	}
	if (uv_read_start((uv_stream_t *)&r->out, on_alloc, on_read) < 0) {
		r->out_done = true;
		close_handle(r, (uv_handle_t *)&r->out);
	}
	if (uv_read_start((uv_stream_t *)&r->err, on_alloc, on_read) < 0) {
		r->err_done = true;
		close_handle(r, (uv_handle_t *)&r->err);
	}
	uv_timer_start(&r->timer, on_timer, h->timeout_ms, 0);
}

/* ---- the end of a run ---------------------------------------------------------------------- */

/* Close every handle; on_close reports and frees after the last one. */
static void run_end(struct run *r)
{
	if (r->ending)
		return;
	r->ending = true;
	uv_timer_stop(&r->timer);
	close_handle(r, (uv_handle_t *)&r->timer);
	close_handle(r, (uv_handle_t *)&r->in);
	close_handle(r, (uv_handle_t *)&r->out);
	close_handle(r, (uv_handle_t *)&r->err);
	close_handle(r, (uv_handle_t *)&r->proc);
}

static void report(struct run *r)
{
	struct hooks *h = r->h;
	struct hook_report rep;
	char reason[GW_ERR_MAX];
	const char *prog = r->def->argv[0];

	memset(&rep, 0, sizeof(rep));
	rep.alert = r->alert;
	rep.run = r->run;
	rep.group = r->group;
	rep.status = r->status;
	rep.step = r->step;
	rep.argv = (const char *const *)r->def->argv;
	rep.exit_status = r->exit_status;
	rep.term_signal = r->term_signal;
	rep.spawn_error = r->spawn_error;
	rep.out = r->cout.p ? r->cout.p : "";
	rep.err = r->cerr.p ? r->cerr.p : "";
	rep.out_len = r->cout.n;
	rep.err_len = r->cerr.n;
	rep.out_dropped = r->cout.dropped;
	rep.err_dropped = r->cerr.dropped;
	rep.elapsed_ms = uv_now(h->loop) - r->started;
	rep.delivery = r->delivery;
	rep.hook = (int)(r->def - h->defs);
	if (r->spawn_error) {
		rep.outcome = HOOK_NOT_STARTED;
		snprintf(reason, sizeof(reason), "hook \"%.200s\" for %s could not start: %s", prog,
			 r->alert, uv_strerror(r->spawn_error));
	} else if (r->timed_out) {
		rep.outcome = HOOK_TIMED_OUT;
		if (r->term_signal)
			snprintf(reason, sizeof(reason),
				 "hook \"%.200s\" for %s timed out after %" PRIu64
				 " ms and was killed by signal %d", prog, r->alert, h->timeout_ms,
				 r->term_signal);
		else
			snprintf(reason, sizeof(reason),
				 "hook \"%.200s\" for %s timed out after %" PRIu64
				 " ms and exited with status %" PRId64 " on SIGTERM", prog, r->alert,
				 h->timeout_ms, r->exit_status);
	} else if (r->term_signal) {
		rep.outcome = HOOK_FAILED;
		snprintf(reason, sizeof(reason), "hook \"%.200s\" for %s was killed by signal %d",
			 prog, r->alert, r->term_signal);
	} else if (r->exit_status != 0) {
		rep.outcome = HOOK_FAILED;
		snprintf(reason, sizeof(reason), "hook \"%.200s\" for %s exited with status %" PRId64,
			 prog, r->alert, r->exit_status);
	} else {
		rep.outcome = HOOK_OK;
	}
	rep.reason = rep.outcome == HOOK_OK ? NULL : reason;
	if (h->done)
		h->done(h->ud, &rep);
}

static void unlink_running(struct hooks *h, struct run *r)
{
	for (struct run **p = &h->running; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			h->nrunning--;
			return;
		}
	GW_BUG_ON(1);
}

static void on_close(uv_handle_t *handle)
{
	struct run *r = handle->data;
	struct hooks *h = r->h;

	if (--r->open > 0)
		return;
	unlink_running(h, r);
	if (!h->closing) {
		h->in_callback = true;
		report(r); /* which may call hooks_run or hooks_close */
		h->in_callback = false;
	}
	run_free(r);
	if (h->closing) {
		if (h->nrunning == 0)
			hooks_free(h);
		return;
	}
	while (h->qhead && h->nrunning < (size_t)h->concurrency) {
		struct run *next = h->qhead;

		h->qhead = next->next;
		if (!h->qhead)
			h->qtail = NULL;
		h->nqueued--;
		next->next = NULL;
		run_start(next);
	}
}

void hooks_close(struct hooks *h)
{
	if (!h)
		return;
	GW_BUG_ON(h->closing);
	h->closing = true;
	while (h->qhead) {
		struct run *r = h->qhead;

		h->qhead = r->next;
		run_free(r);
	}
	h->qtail = NULL;
	h->nqueued = 0;
	for (struct run *r = h->running; r; r = r->next) {
		if (r->ending)
			continue;
		if (r->exited) {
			run_end(r); /* draining: stop waiting for the pipes */
			continue;
		}
		/* Reaped in on_proc_exit, which ends the run; the process handle must
		 * stay open until then, or the zombie is never collected. */
		r->phase = KILL_SENT;
		uv_timer_stop(&r->timer);
		signal_group(r, SIGKILL);
	}
	if (h->nrunning == 0 && !h->in_callback)
		hooks_free(h);
}
