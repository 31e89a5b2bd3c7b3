/* test_hook.c — the hook runner on a real libuv loop with real child
 * processes (small /bin/sh scripts written to the scratch directory):
 * success with the payload checked byte for byte and the environment,
 * failure, a missing program, a hang killed at the timeout (SIGTERM, and
 * SIGKILL when SIGTERM is ignored), an output flood cut at the bound, the
 * concurrency bound and the queue bound, matching by alert name, and a
 * shutdown with hooks running.  Every test ends with uv_loop_close() == 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "../tap.h"
#include "config_opts.h"
#include "hook.h"

#define MAX_REPORTS 64

struct rep {
	enum hook_outcome outcome;
	char reason[512];
	int64_t exit_status;
	int term_signal, spawn_error;
	char *out, *err;
	size_t out_len, err_len;
	uint64_t out_dropped, err_dropped, elapsed_ms;
	char alert[64], argv0[256];
};

struct fx {
	uv_loop_t loop;
	struct hooks *h;
	struct rep reps[MAX_REPORTS];
	int nreps;
	struct hook_spec defs[8];
	int ndefs;
};

static void on_done(void *ud, const struct hook_report *r)
{
	struct fx *f = ud;
	struct rep *x;

	CHECK_INT_LT(f->nreps, MAX_REPORTS);
	x = &f->reps[f->nreps++];
	x->outcome = r->outcome;
	snprintf(x->reason, sizeof(x->reason), "%s", r->reason ? r->reason : "");
	CHECK((r->outcome == HOOK_OK) == (r->reason == NULL));
	x->exit_status = r->exit_status;
	x->term_signal = r->term_signal;
	x->spawn_error = r->spawn_error;
	x->out = malloc(r->out_len + 1);
	memcpy(x->out, r->out, r->out_len + 1);
	x->err = malloc(r->err_len + 1);
	memcpy(x->err, r->err, r->err_len + 1);
	x->out_len = r->out_len;
	x->err_len = r->err_len;
	x->out_dropped = r->out_dropped;
	x->err_dropped = r->err_dropped;
	x->elapsed_ms = r->elapsed_ms;
	snprintf(x->alert, sizeof(x->alert), "%s", r->alert);
	snprintf(x->argv0, sizeof(x->argv0), "%s", r->argv[0]);
}

/* A hook: alert name and argv (static strings, NULL-terminated). */
static void fx_hook(struct fx *f, const char *alert, const char *const *argv)
{
	struct hook_spec *d = &f->defs[f->ndefs++];
	int n = 0;

	while (argv[n])
		n++;
	d->alert = alert;
	d->argv = argv;
	d->argc = n;
}

static struct hook_opts fx_opts(struct fx *f)
{
	struct hook_opts o = {
		.hooks = f->defs, .n_hooks = f->ndefs, .timeout_ms = 5000, .kill_grace_ms = 200,
		.concurrency = 4, .queue = 16, .output_bytes = 65536,
	};
	return o;
}

static void fx_open(struct fx *f, const struct hook_opts *o)
{
	struct gw_err e = { "" };
	int r;

	CHECK_INT_EQ(uv_loop_init(&f->loop), 0);
	r = hooks_new(&f->loop, o, on_done, f, &f->h, &e);
	if (r != 0)
		tap_fail(__FILE__, __LINE__, "hooks_new: %d %s", r, e.msg);
}

static void fx_close(struct fx *f)
{
	hooks_close(f->h);
	CHECK_INT_EQ(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	CHECK_INT_EQ(uv_loop_close(&f->loop), 0);
	for (int i = 0; i < f->nreps; i++) {
		free(f->reps[i].out);
		free(f->reps[i].err);
	}
}

/* Run the loop until n reports arrived. */
static void fx_wait(struct fx *f, int n)
{
	while (f->nreps < n)
		if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && f->nreps < n)
			tap_fail(__FILE__, __LINE__, "the loop ended with %d of %d reports", f->nreps, n);
}

static const char *script(const char *name, const char *body)
{
	const char *p = tap_write_file(name, body, strlen(body));
	static char paths[8][1024]; /* distinct for each of a test's scripts */
	static int next;
	char *path = paths[next++ % 8];

	snprintf(path, 1024, "%s", p);
	CHECK_INT_EQ(chmod(path, 0755), 0);
	return path;
}

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (!fp)
		tap_fail(__FILE__, __LINE__, "open %s", path);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	CHECK_INT_EQ(fread(buf, 1, (size_t)n, fp), n);
	buf[n] = 0;
	fclose(fp);
	*ret_len = (size_t)n;
	return buf;
}

static struct hook_event event(const char *alert, const char *payload, size_t len)
{
	struct hook_event ev = {
		.alert = alert, .run = "r1", .group = "math", .status = "firing", .step = 1200,
		.payload = payload, .len = len,
	};
	return ev;
}

static int run_ok(struct fx *f, const struct hook_event *ev)
{
	struct gw_err e = { "" };
	int r = hooks_run(f->h, ev, &e);

	if (r < 0)
		tap_fail(__FILE__, __LINE__, "hooks_run: %d %s", r, e.msg);
	return r;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* The payload (larger than a pipe buffer, every byte value) arrives on
 * stdin exactly; the environment holds the five variables and PATH and
 * nothing else; stdout and stderr are captured. */
static void test_success_payload_and_env(void)
{
	static char dst[1024], envf[1024];
	static const char *argv[4];
	struct fx f;
	struct hook_opts o;
	struct hook_event ev;
	size_t len = 200000, got_len;
	char *payload = malloc(len), *got;

	memset(&f, 0, sizeof(f));
	for (size_t i = 0; i < len; i++)
		payload[i] = (char)(i * 7 + i / 251);
	snprintf(dst, sizeof(dst), "%s/payload.out", tap_tmpdir());
	snprintf(envf, sizeof(envf), "%s/env.out", tap_tmpdir());
	argv[0] = script("ok.sh", "#!/bin/sh\ncat > \"$1\"\n"
			 "printf '%s|%s|%s|%s|%s|%s|%s\\n' \"$GROKWATCH_ALERT\" \"$GROKWATCH_RUN\" "
			 "\"$GROKWATCH_GROUP\" \"$GROKWATCH_STEP\" \"$GROKWATCH_STATUS\" "
			 "\"${HOME-unset}\" \"$PATH\" > \"$2\"\n"
			 "tr '\\0' '\\n' < /proc/$$/environ | sort >> \"$2\"\n"
			 "echo out; echo err >&2\n");
	argv[1] = dst;
	argv[2] = envf;
	argv[3] = NULL;
	fx_hook(&f, "grokking", argv);
	o = fx_opts(&f);
	fx_open(&f, &o);
	ev = event("grokking", payload, len);
	CHECK_INT_EQ(run_ok(&f, &ev), 1);
	CHECK_INT_EQ(f.nreps, 0); /* never reported from hooks_run */
	fx_wait(&f, 1);
	CHECK_INT_EQ(f.reps[0].outcome, HOOK_OK);
	CHECK_INT_EQ(f.reps[0].exit_status, 0);
	CHECK_STR_EQ(f.reps[0].out, "out\n");
	CHECK_STR_EQ(f.reps[0].err, "err\n");
	CHECK_STR_EQ(f.reps[0].alert, "grokking");
	got = slurp(dst, &got_len);
	CHECK_INT_EQ(got_len, len);
	CHECK(memcmp(got, payload, len) == 0);
	free(got);
	got = slurp(envf, &got_len);
	{
		char want[2048];
		const char *path = getenv("PATH");

		path = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
		/* the shell's environment as exec gave it, sorted */
		snprintf(want, sizeof(want), "grokking|r1|math|1200|firing|unset|%s\n"
			 "GROKWATCH_ALERT=grokking\nGROKWATCH_GROUP=math\nGROKWATCH_RUN=r1\n"
			 "GROKWATCH_STATUS=firing\nGROKWATCH_STEP=1200\nPATH=%s\n", path, path);
		CHECK_STR_EQ(got, want);
	}
	free(got);
	free(payload);
	fx_close(&f);
}

/* A non-zero exit status, and death by a signal the daemon did not send. */
static void test_failure(void)
{
	static const char *argv1[2], *argv2[2];
	struct fx f;
	struct hook_opts o;
	struct hook_event ev = event("plateau", "{}", 2);

	memset(&f, 0, sizeof(f));
	argv1[0] = script("fail.sh", "#!/bin/sh\necho failing >&2\nexit 3\n");
	fx_hook(&f, "plateau", argv1);
	argv2[0] = script("segv.sh", "#!/bin/sh\nkill -USR1 $$\n");
	fx_hook(&f, "*", argv2);
	o = fx_opts(&f);
	fx_open(&f, &o);
	CHECK_INT_EQ(run_ok(&f, &ev), 2);
	fx_wait(&f, 2);
	CHECK(strcmp(f.reps[0].argv0, f.reps[1].argv0) != 0);
	for (int i = 0; i < 2; i++) {
		const struct rep *r = &f.reps[i];

		CHECK_INT_EQ(r->outcome, HOOK_FAILED);
		if (strstr(r->argv0, "fail.sh")) {
			CHECK_INT_EQ(r->exit_status, 3);
			CHECK_STR_EQ(r->err, "failing\n");
			CHECK_STR_HAS(r->reason, "\" for plateau exited with status 3");
			CHECK_STR_HAS(r->reason, "hook \"");
		} else {
			CHECK_INT_EQ(r->term_signal, SIGUSR1);
			CHECK_STR_HAS(r->reason, "segv.sh\" for plateau was killed by signal 10");
		}
	}
	fx_close(&f);
}

/* A missing program and one that is not executable: reported from the
 * loop, with the spawn error. */
static void test_missing_program(void)
{
	static const char *argv1[] = { "/nonexistent/grokwatch-hook", NULL };
	static const char *argv2[2];
	struct fx f;
	struct hook_opts o;
	struct hook_event ev = event("grokking", "{}", 2);

	memset(&f, 0, sizeof(f));
	fx_hook(&f, "grokking", argv1);
	argv2[0] = tap_write_file("noexec.sh", "#!/bin/sh\n", 10);
	argv2[0] = strdup(argv2[0]);
	fx_hook(&f, "grokking", argv2);
	o = fx_opts(&f);
	fx_open(&f, &o);
	CHECK_INT_EQ(run_ok(&f, &ev), 2);
	CHECK_INT_EQ(f.nreps, 0);
	fx_wait(&f, 2);
	for (int i = 0; i < 2; i++) {
		const struct rep *r = &f.reps[i];

		CHECK_INT_EQ(r->outcome, HOOK_NOT_STARTED);
		if (!strcmp(r->argv0, argv1[0])) {
			CHECK_INT_EQ(r->spawn_error, -ENOENT);
			CHECK_STR_EQ(r->reason, "hook \"/nonexistent/grokwatch-hook\" for grokking "
						"could not start: no such file or directory");
		} else {
			CHECK_STR_EQ(r->argv0, argv2[0]);
			CHECK_INT_EQ(r->spawn_error, -EACCES);
			CHECK_STR_HAS(r->reason, "noexec.sh\" for grokking could not start: "
						 "permission denied");
		}
	}
	fx_close(&f);
	free((char *)argv2[0]);
}

/* A hang: SIGTERM at the timeout; one that ignores SIGTERM (and whose
 * child, holding the pipes, ignores it too) gets SIGKILL after the grace,
 * and the whole process group goes. */
static void test_hang_killed_at_timeout(void)
{
	static const char *argv1[2], *argv2[2];
	struct fx f;
	struct hook_opts o;
	struct hook_event ev = event("grokking", "{}", 2);

	memset(&f, 0, sizeof(f));
	argv1[0] = script("hang.sh", "#!/bin/sh\nexec sleep 30\n");
	fx_hook(&f, "grokking", argv1);
	argv2[0] = script("stubborn.sh", "#!/bin/sh\ntrap '' TERM\nsleep 30\necho never\n");
	fx_hook(&f, "grokking", argv2);
	o = fx_opts(&f);
	o.timeout_ms = 300;
	o.kill_grace_ms = 300;
	fx_open(&f, &o);
	CHECK_INT_EQ(run_ok(&f, &ev), 2);
	fx_wait(&f, 2);
	/* the one that obeys SIGTERM ends first */
	CHECK_STR_HAS(f.reps[0].argv0, "hang.sh");
	CHECK_INT_EQ(f.reps[0].outcome, HOOK_TIMED_OUT);
	CHECK_INT_EQ(f.reps[0].term_signal, SIGTERM);
	CHECK_STR_HAS(f.reps[0].reason, "hang.sh\" for grokking timed out after 300 ms and was "
					"killed by signal 15");
	CHECK(f.reps[0].elapsed_ms >= 300 && f.reps[0].elapsed_ms < 3000);
	CHECK_STR_HAS(f.reps[1].argv0, "stubborn.sh");
	CHECK_INT_EQ(f.reps[1].outcome, HOOK_TIMED_OUT);
	CHECK_INT_EQ(f.reps[1].term_signal, SIGKILL);
	CHECK_STR_HAS(f.reps[1].reason, "killed by signal 9");
	CHECK(f.reps[1].elapsed_ms >= 600 && f.reps[1].elapsed_ms < 5000);
	CHECK_STR_EQ(f.reps[1].out, "");
	fx_close(&f);
}

/* A hook that exits but leaves a background child holding its stdout:
 * the run ends kill_grace_ms after the exit, with its output, and the
 * child is killed (gone, or a zombie waiting for init). */
static void test_background_child_killed(void)
{
	static const char *argv[3];
	static char pidf[1024];
	struct fx f;
	struct hook_opts o;
	struct hook_event ev = event("grokking", "{}", 2);
	size_t len;
	char *pid, stat[64];
	bool gone = false;

	memset(&f, 0, sizeof(f));
	snprintf(pidf, sizeof(pidf), "%s/bg.pid", tap_tmpdir());
	argv[0] = script("bg.sh", "#!/bin/sh\nsleep 30 &\necho $! > \"$1\"\necho started\n");
	argv[1] = pidf;
	argv[2] = NULL;
	fx_hook(&f, "*", argv);
	o = fx_opts(&f);
	o.kill_grace_ms = 200;
	fx_open(&f, &o);
	CHECK_INT_EQ(run_ok(&f, &ev), 1);
	fx_wait(&f, 1);
	CHECK_INT_EQ(f.reps[0].outcome, HOOK_OK);
	CHECK_STR_EQ(f.reps[0].out, "started\n");
	CHECK(f.reps[0].elapsed_ms >= 200 && f.reps[0].elapsed_ms < 3000);
	pid = slurp(pidf, &len);
	snprintf(stat, sizeof(stat), "/proc/%d/stat", atoi(pid));
	for (int i = 0; i < 200 && !gone; i++) {
		FILE *fp = fopen(stat, "r");
		char line[512] = "";

		if (!fp || !fgets(line, sizeof(line), fp) || strstr(line, ") Z "))
			gone = true;
		if (fp)
			fclose(fp);
		if (!gone)
			uv_sleep(10);
	}
	CHECK(gone);
	free(pid);
	fx_close(&f);
}

/* 300000 bytes on stdout and 5000 on stderr with a bound of 4096: the
 * first 4096 of each kept, the rest counted, the hook not blocked. */
static void test_output_flood_truncated(void)
{
	static const char *argv[2];
	struct fx f;
	struct hook_opts o;
	struct hook_event ev = event("grokking", "{}", 2);

	memset(&f, 0, sizeof(f));
	argv[0] = script("flood.sh", "#!/bin/sh\nhead -c 300000 /dev/zero | tr '\\0' a\n"
			 "head -c 5000 /dev/zero | tr '\\0' b >&2\n");
	fx_hook(&f, "*", argv);
	o = fx_opts(&f);
	o.output_bytes = 4096;
	fx_open(&f, &o);
	CHECK_INT_EQ(run_ok(&f, &ev), 1);
	fx_wait(&f, 1);
	CHECK_INT_EQ(f.reps[0].outcome, HOOK_OK);
	CHECK_INT_EQ(f.reps[0].out_len, 4096);
	CHECK_INT_EQ(f.reps[0].out_dropped, 300000 - 4096);
	CHECK_INT_EQ(f.reps[0].err_len, 4096);
	CHECK_INT_EQ(f.reps[0].err_dropped, 5000 - 4096);
	CHECK_INT_EQ(strlen(f.reps[0].out), 4096);
	CHECK_INT_EQ(strspn(f.reps[0].out, "a"), 4096);
	CHECK_INT_EQ(strspn(f.reps[0].err, "b"), 4096);
	fx_close(&f);
}

/* Concurrency 2, queue 10: 12 runs accepted, the 13th refused; each hook
 * counts the hooks alive (marker files) while it runs, and none ever sees
 * more than 2; and two did run side by side. */
static void test_concurrency_bound(void)
{
	static const char *argv[3];
	static char dir[1024];
	struct fx f;
	struct hook_opts o;
	struct hook_event ev = event("plateau", "{}", 2);
	struct gw_err e = { "" };
	int max = 0;

	memset(&f, 0, sizeof(f));
	snprintf(dir, sizeof(dir), "%s/alive", tap_tmpdir());
	CHECK_INT_EQ(mkdir(dir, 0755), 0);
	argv[0] = script("count.sh", "#!/bin/sh\ntouch \"$1/$$\"\nsleep 0.15\n"
			 "ls \"$1\" | wc -l\nrm \"$1/$$\"\n");
	argv[1] = dir;
	argv[2] = NULL;
	fx_hook(&f, "plateau", argv);
	o = fx_opts(&f);
	o.concurrency = 2;
	o.queue = 10;
	fx_open(&f, &o);
	for (int i = 0; i < 12; i++)
		CHECK_INT_EQ(run_ok(&f, &ev), 1);
	CHECK_INT_EQ(hooks_running(f.h), 2);
	CHECK_INT_EQ(hooks_queued(f.h), 10);
	CHECK_INT_EQ(hooks_run(f.h, &ev, &e), -EAGAIN);
	CHECK_STR_HAS(e.msg, "hooks for plateau: 1 to run, room for 0 (2 running, 10 queued)");
	fx_wait(&f, 12);
	for (int i = 0; i < 12; i++) {
		int n = atoi(f.reps[i].out);

		CHECK_INT_EQ(f.reps[i].outcome, HOOK_OK);
		CHECK(n >= 1);
		if (n > max)
			max = n;
	}
	CHECK_INT_EQ(max, 2);
	CHECK_INT_EQ(hooks_running(f.h), 0);
	CHECK_INT_EQ(hooks_queued(f.h), 0);
	fx_close(&f);
}

/* Which hooks run: those naming the alert and "*", in config order; none
 * for another alert; a transition whose runs do not all fit is refused
 * whole. */
static void test_matching_and_all_or_nothing(void)
{
	static const char *a1[] = { "/bin/true", NULL }, *a2[] = { "/bin/false", NULL };
	struct fx f;
	struct hook_opts o;
	struct hook_event ev;
	struct gw_err e = { "" };

	memset(&f, 0, sizeof(f));
	fx_hook(&f, "grokking", a1);
	fx_hook(&f, "*", a2);
	o = fx_opts(&f);
	o.concurrency = 1;
	o.queue = 2;
	fx_open(&f, &o);
	ev = event("routing_collapse", "", 0);
	CHECK_INT_EQ(run_ok(&f, &ev), 1);
	ev = event("grokking", "", 0);
	CHECK_INT_EQ(run_ok(&f, &ev), 2);
	CHECK_INT_EQ(hooks_running(f.h), 1);
	CHECK_INT_EQ(hooks_queued(f.h), 2);
	CHECK_INT_EQ(hooks_run(f.h, &ev, &e), -EAGAIN);
	CHECK_INT_EQ(hooks_queued(f.h), 2);
	fx_wait(&f, 3);
	CHECK_STR_EQ(f.reps[0].argv0, "/bin/false");
	CHECK_INT_EQ(f.reps[0].outcome, HOOK_FAILED);
	CHECK_STR_EQ(f.reps[1].argv0, "/bin/true");
	CHECK_INT_EQ(f.reps[1].outcome, HOOK_OK);
	CHECK_STR_EQ(f.reps[2].argv0, "/bin/false");
	CHECK_STR_EQ(f.reps[2].alert, "grokking");
	fx_close(&f);
}

/* Shutdown with hooks running and queued: no report, every child killed
 * and reaped, the runner freed, the loop closes. */
static void test_close_while_running(void)
{
	static const char *argv[2];
	struct fx f;
	struct hook_opts o;
	struct hook_event ev = event("grokking", "{}", 2);
	uint64_t t0;

	memset(&f, 0, sizeof(f));
	argv[0] = script("long.sh", "#!/bin/sh\ntrap '' TERM\nsleep 30\n");
	fx_hook(&f, "*", argv);
	o = fx_opts(&f);
	o.concurrency = 2;
	fx_open(&f, &o);
	for (int i = 0; i < 4; i++)
		CHECK_INT_EQ(run_ok(&f, &ev), 1);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	t0 = uv_hrtime();
	fx_close(&f);
	CHECK_INT_EQ(f.nreps, 0);
	CHECK((uv_hrtime() - t0) / 1000000 < 5000);
}

/* The done callback may start more runs and may shut the runner down. */
struct chain {
	struct fx *f;
	int left;
};

static void on_done_chain(void *ud, const struct hook_report *r)
{
	struct chain *c = ud;
	struct hook_event ev = event("grokking", "{}", 2);

	on_done(c->f, r);
	if (--c->left > 0)
		CHECK_INT_EQ(run_ok(c->f, &ev), 1);
	else
		hooks_close(c->f->h);
}

static void test_callback_reentry(void)
{
	static const char *argv[] = { "/bin/true", NULL };
	struct fx f;
	struct chain c = { &f, 3 };
	struct hook_opts o;
	struct hook_event ev = event("grokking", "{}", 2);
	struct gw_err e = { "" };

	memset(&f, 0, sizeof(f));
	fx_hook(&f, "*", argv);
	o = fx_opts(&f);
	o.concurrency = 1;
	o.queue = 0;
	CHECK_INT_EQ(uv_loop_init(&f.loop), 0);
	CHECK_INT_EQ(hooks_new(&f.loop, &o, on_done_chain, &c, &f.h, &e), 0);
	CHECK_INT_EQ(run_ok(&f, &ev), 1);
	CHECK_INT_EQ(hooks_run(f.h, &ev, &e), -EAGAIN); /* queue 0: nothing waits */
	CHECK_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	CHECK_INT_EQ(f.nreps, 3);
	for (int i = 0; i < 3; i++)
		CHECK_INT_EQ(f.reps[i].outcome, HOOK_OK);
	CHECK_INT_EQ(uv_loop_close(&f.loop), 0);
	for (int i = 0; i < f.nreps; i++) {
		free(f.reps[i].out);
		free(f.reps[i].err);
	}
}

/* Options and process state hooks_new refuses. */
static void test_bad_options(void)
{
	static const char *empty[] = { "", NULL };
	struct fx f;
	struct hook_opts o;
	struct gw_err e = { "" };
	struct hooks *h = (struct hooks *)&e;
	uv_loop_t loop;

	memset(&f, 0, sizeof(f));
	CHECK_INT_EQ(uv_loop_init(&loop), 0);
	o = fx_opts(&f);
	o.concurrency = 0;
	CHECK_INT_EQ(hooks_new(&loop, &o, on_done, &f, &h, &e), -EINVAL);
	o = fx_opts(&f);
	o.timeout_ms = 0;
	CHECK_INT_EQ(hooks_new(&loop, &o, on_done, &f, &h, &e), -EINVAL);
	fx_hook(&f, "*", empty);
	o = fx_opts(&f);
	CHECK_INT_EQ(hooks_new(&loop, &o, on_done, &f, &h, &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "hook 0 has no program");
	f.ndefs = 0;
	signal(SIGPIPE, SIG_DFL);
	o = fx_opts(&f);
	CHECK_INT_EQ(hooks_new(&loop, &o, on_done, &f, &h, &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "SIGPIPE must be ignored");
	signal(SIGPIPE, SIG_IGN);
	CHECK(h == (struct hooks *)&e);
	CHECK_INT_EQ(uv_loop_close(&loop), 0);
}

/* The options from the daemon's config. */
static void test_opts_from_config(void)
{
	const char *t = "{\"alerts\": {\"hooks\": [{\"alert\": \"*\", \"argv\": [\"/bin/true\"]}], "
			"\"hook_timeout_ms\": 1234, \"hook_queue\": 7, \"hook_output_bytes\": 99}}";
	struct config *c = NULL;
	struct gw_err e = { "" };
	struct hook_opts o;

	CHECK_INT_EQ(config_parse("t.json", t, strlen(t), &c, &e), 0);
	config_opts_hooks(c, &o);
	CHECK_INT_EQ(o.n_hooks, 1);
	CHECK_STR_EQ(o.hooks[0].argv[0], "/bin/true");
	CHECK_INT_EQ(o.timeout_ms, 1234);
	CHECK_INT_EQ(o.kill_grace_ms, 5000);
	CHECK_INT_EQ(o.concurrency, 4);
	CHECK_INT_EQ(o.queue, 7);
	CHECK_INT_EQ(o.output_bytes, 99);
	config_opts_hooks_release(&o);
	config_free(c);
}

static void ignore_sigpipe(void) __attribute__((constructor));
static void ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static const struct tap_test tests[] = {
	{ "success_payload_and_env", test_success_payload_and_env },
	{ "failure", test_failure },
	{ "missing_program", test_missing_program },
	{ "hang_killed_at_timeout", test_hang_killed_at_timeout },
	{ "background_child_killed", test_background_child_killed },
	{ "output_flood_truncated", test_output_flood_truncated },
	{ "concurrency_bound", test_concurrency_bound },
	{ "matching_and_all_or_nothing", test_matching_and_all_or_nothing },
	{ "close_while_running", test_close_while_running },
	{ "callback_reentry", test_callback_reentry },
	{ "bad_options", test_bad_options },
	{ "opts_from_config", test_opts_from_config },
	{ NULL, NULL },
};
TAP_MAIN_DAEMON(tests)
