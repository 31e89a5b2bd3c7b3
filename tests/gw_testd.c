/*
 * gw_testd.c — a stand-in daemon for the client tests: the real publisher
 * (daemon/publish.c) on a real libuv loop, fed from a script instead of a
 * checkpoint watcher, so the client, the CLI and the Python module can be
 * tested against the daemon's wire protocol before and apart from
 * `grokwatchd run`.
 *
 * usage: gw_testd [--pub EP] [--query EP] [--run NAME] [--heartbeat MS]
 *                 [--ready FILE] [--lifetime MS] [--curve-secret FILE] SCRIPT
 *
 * --curve-secret FILE makes both sockets CURVE servers with that key.
 * --ready FILE receives "PUB QUERY\n" (the bound endpoints) once both
 * sockets are bound.  The script is run line by line; after its end the
 * daemon serves until SIGTERM/SIGINT, an "exit" line or --lifetime
 * (default 60000 ms) passes.  Lines:
 *   result JSON         into the result store, then publish_result (JSON
 *                       needs an integer "step")
 *   restore JSON        into the result store only (served, not sent)
 *   send TYPE JSON      publish_send
 *   status JSON         publish_set_status
 *   heartbeat           publish_heartbeat
 *   sleep MS            keep serving for MS
 *   waitfile PATH [MS]  keep serving until PATH exists (at most MS, default
 *                       20000 ms; past it the script fails)
 *   touch PATH          create PATH (tells the test a point was reached)
 *   exit                stop now
 *   # ...               a comment
 * Exit status 0, or 1 with a message on stderr for a bad script or
 * options.
 */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

#include "engine/json.h"

#include "publish.h"

#define POLL_MS 10

struct testd {
	uv_loop_t *loop;
	struct publish *p;
	struct series *store; /* the result store the publisher answers from */
	FILE *script;
	uv_timer_t step, lifetime;
	uv_signal_t sigterm, sigint;
	char waitfile[4096];
	long long wait_left_ms;
	int lineno, status;
	bool stopped;
	char *line;
	size_t cap;
};

static void stop(struct testd *t, int status)
{
	if (t->stopped)
		return;
	t->stopped = true;
	t->status = status;
	uv_timer_stop(&t->step);
	uv_timer_stop(&t->lifetime);
	uv_signal_stop(&t->sigterm);
	uv_signal_stop(&t->sigint);
	uv_close((uv_handle_t *)&t->step, NULL);
	uv_close((uv_handle_t *)&t->lifetime, NULL);
	uv_close((uv_handle_t *)&t->sigterm, NULL);
	uv_close((uv_handle_t *)&t->sigint, NULL);
	publish_close(t->p);
	t->p = NULL;
}

static int bad(struct testd *t, const char *what)
{
	fprintf(stderr, "gw_testd: script line %d: %s\n", t->lineno, what);
	stop(t, 1);
	return -1;
}

static cJSON *parse_arg(struct testd *t, const char *s)
{
	cJSON *j = cJSON_Parse(s);

	if (!j)
		bad(t, "not valid JSON");
	return j;
}

static void on_step(uv_timer_t *h);

/* Run script lines until one needs the loop to run (sleep, waitfile). */
static void run_script(struct testd *t)
{
	while (!t->stopped && getline(&t->line, &t->cap, t->script) > 0) {
		char *s = t->line, *arg;
		size_t n = strlen(s);
		cJSON *j;

		t->lineno++;
		while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
			s[--n] = 0;
		if (!n || s[0] == '#')
			continue;
		arg = strchr(s, ' ');
		if (arg)
			*arg++ = 0;
		else
			arg = s + n;
		if (!strcmp(s, "result") || !strcmp(s, "restore")) {
			const cJSON *st;
			int64_t r = -EINVAL;

			if (!(j = parse_arg(t, arg)))
				return;
			st = cJSON_GetObjectItemCaseSensitive(j, "step");
			if (cJSON_IsNumber(st) && st->valuedouble >= 0 &&
			    st->valuedouble == (double)(int64_t)st->valuedouble) {
				int64_t step = (int64_t)st->valuedouble;

				series_put(t->store, step, j);
				j = NULL;
				r = !strcmp(s, "result") ? publish_result(t->p, series_get(t->store, step))
							 : 0;
			}
			cJSON_Delete(j);
			if (r < 0) {
				bad(t, "publish_result/restore failed");
				return;
			}
		} else if (!strcmp(s, "send")) {
			char *body = strchr(arg, ' ');

			if (!body) {
				bad(t, "send TYPE JSON");
				return;
			}
			*body++ = 0;
			if (!(j = parse_arg(t, body)))
				return;
			if (publish_send(t->p, arg, j) < 0) {
				bad(t, "publish_send failed");
				return;
			}
		} else if (!strcmp(s, "status")) {
			if (!(j = parse_arg(t, arg)))
				return;
			publish_set_status(t->p, j);
		} else if (!strcmp(s, "heartbeat")) {
			publish_heartbeat(t->p);
		} else if (!strcmp(s, "sleep")) {
			uv_timer_start(&t->step, on_step, strtoull(arg, NULL, 10), 0);
			return;
		} else if (!strcmp(s, "waitfile")) {
			char *sp = strrchr(arg, ' ');

			t->wait_left_ms = 20000;
			if (sp && sp[1] && strspn(sp + 1, "0123456789") == strlen(sp + 1) &&
			    strlen(sp + 1) < 10) {
				t->wait_left_ms = atoll(sp + 1);
				*sp = 0;
			}
			snprintf(t->waitfile, sizeof(t->waitfile), "%s", arg);
			uv_timer_start(&t->step, on_step, POLL_MS, 0);
			return;
		} else if (!strcmp(s, "touch")) {
			int fd = open(arg, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

			if (fd < 0) {
				bad(t, "touch: cannot create the file");
				return;
			}
			close(fd);
		} else if (!strcmp(s, "exit")) {
			stop(t, 0);
			return;
		} else {
			bad(t, "unknown command");
			return;
		}
	}
}

static void on_step(uv_timer_t *h)
{
	struct testd *t = h->data;

	if (t->waitfile[0]) {
		if (access(t->waitfile, F_OK) != 0) {
			t->wait_left_ms -= POLL_MS;
			if (t->wait_left_ms <= 0) {
				bad(t, "waitfile: the file did not appear within 20 s");
				return;
			}
			uv_timer_start(&t->step, on_step, POLL_MS, 0);
			return;
		}
		t->waitfile[0] = 0;
	}
	run_script(t);
}

static void on_lifetime(uv_timer_t *h)
{
	stop(h->data, 0);
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)signum;
	stop(h->data, 0);
}

static void usage(void)
{
	fprintf(stderr, "usage: gw_testd [--pub EP] [--query EP] [--run NAME] [--heartbeat MS] "
			"[--ready FILE] [--lifetime MS] SCRIPT\n");
	exit(1);
}

int main(int argc, char **argv)
{
	struct publish_opts o = {
		.endpoint = "tcp://127.0.0.1:*",
		.query_endpoint = "tcp://127.0.0.1:*",
		.run = "testrun",
		.sndhwm = 10000,
		.max_message_bytes = 1 << 20,
		.request_bytes = 4096,
		.reply_bytes = 64 << 20, /* grokwatchd's default limits.reply_bytes */
		.heartbeat_ms = 100,
	};
	const char *ready = NULL, *script = NULL;
	unsigned long long lifetime = 60000;
	struct testd t = { 0 };
	struct gw_err e = { "" };
	uv_loop_t loop;
	void *ctx;
	int r;

	json_init(); /* as grokwatchd's start-up does */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--pub") && v)
			o.endpoint = v, i++;
		else if (!strcmp(a, "--query") && v)
			o.query_endpoint = v, i++;
		else if (!strcmp(a, "--run") && v)
			o.run = v, i++;
		else if (!strcmp(a, "--heartbeat") && v)
			o.heartbeat_ms = strtoull(v, NULL, 10), i++;
		else if (!strcmp(a, "--ready") && v)
			ready = v, i++;
		else if (!strcmp(a, "--curve-secret") && v)
			o.curve_secret_file = v, i++;
		else if (!strcmp(a, "--lifetime") && v)
			lifetime = strtoull(v, NULL, 10), i++;
		else if (a[0] != '-' && !script)
			script = a;
		else
			usage();
	}
	if (!script)
		usage();
	if (!(t.script = fopen(script, "r"))) {
		fprintf(stderr, "gw_testd: \"%s\": %s\n", script, strerror(errno));
		return 1;
	}
	uv_loop_init(&loop);
	ctx = zmq_ctx_new();
	if ((r = publish_new(&loop, ctx, &o, &t.p, &e)) < 0) {
		fprintf(stderr, "gw_testd: %s\n", e.msg);
		fclose(t.script);
		zmq_ctx_term(ctx);
		uv_loop_close(&loop);
		return 1;
	}
	t.store = series_new();
	publish_set_results(t.p, t.store);
	if (ready) {
		char pub[512], query[512], tmp[4200];
		FILE *f;

		publish_endpoint(t.p, false, pub, sizeof(pub));
		publish_endpoint(t.p, true, query, sizeof(query));
		snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
		if (!(f = fopen(tmp, "w")) || fprintf(f, "%s %s\n", pub, query) < 0 || fclose(f) ||
		    rename(tmp, ready)) {
			fprintf(stderr, "gw_testd: \"%s\": cannot write\n", ready);
			return 1;
		}
	}
	t.loop = &loop;
	uv_timer_init(&loop, &t.step);
	uv_timer_init(&loop, &t.lifetime);
	uv_signal_init(&loop, &t.sigterm);
	uv_signal_init(&loop, &t.sigint);
	t.step.data = t.lifetime.data = t.sigterm.data = t.sigint.data = &t;
	uv_signal_start(&t.sigterm, on_signal, SIGTERM);
	uv_signal_start(&t.sigint, on_signal, SIGINT);
	uv_timer_start(&t.lifetime, on_lifetime, lifetime, 0);
	run_script(&t);
	uv_run(&loop, UV_RUN_DEFAULT);
	series_free(t.store);
	free(t.line);
	fclose(t.script);
	uv_loop_close(&loop);
	zmq_ctx_term(ctx);
	return t.status;
}
