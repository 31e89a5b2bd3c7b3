/* test_watch.c — the checkpoint watcher (daemon/watch.c) on a real libuv
 * loop over real directories under the scratch directory: temporary names
 * ignored until renamed, the quiet period, completeness (config and weights
 * of the sizes their headers declare, an index's shards, the marker,
 * routing.safetensors alone, a file longer than its header), steps from
 * names and from trainer_state.json, checkpoints gone, is_done, a caller
 * giving up, a root that appears late; each case in both events and poll
 * mode.
 *
 * Timing.  Quiet periods are tens of ms, but nothing asserts that something
 * happened quickly: every wait runs the loop until the awaited callback
 * with a generous bound (WAIT_MS).  That something did *not* happen is
 * shown by order, never by a pause: a checkpoint that should be ignored is
 * put in place before a sentinel checkpoint, so that had it been tracked,
 * its quiet timer (or poll tick) would have reported it no later than the
 * sentinel's; "judged and not complete yet" is shown by the watcher's own
 * note saying why.  The one time comparison (the quiet test) is a lower
 * bound, which load can only make truer.  Each test ends with
 * uv_loop_close() == 0. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "../tap.h"
#include "engine/step.h"
#include "log.h"
#include "watch.h"

#define QUIET_MS 60
#define POLL_MS 15
#define WAIT_MS 30000 /* an upper bound only: a passing wait ends at its callback */
#define MAX_EVENTS 128
#define MAX_WRITES 64

enum { EV_READY = 'r', EV_GONE = 'g', EV_BAD = 'b' };

struct ev {
	int kind;
	char name[256];
	int64_t step;
	int code;
	char msg[1024];
	uint64_t at; /* uv_now when it came */
};

struct fx {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	struct watch *w;
	int mode;
	char root[512], stage[512];
	struct ev ev[MAX_EVENTS];
	int nev;
	int64_t done[16];
	int ndone;
	/* the note being waited for (a substring) and whether it came */
	const char *fail_in_ready; /* a name on_ready gives up on at once */
	const char *want_note;
	bool got_note;
	char last_notes[8][512];
	int nnotes;
	const char *count_note; /* notes containing this are counted in note_hits */
	int note_hits;
	/* the quiet test's writer */
	uv_timer_t writer;
	bool writer_init;
	char write_path[1024];
	int writes_left, nwrites;
	uint64_t write_at[MAX_WRITES];
};

/* ---- callbacks ---------------------------------------------------------------- */

static struct ev *fx_push(struct fx *f, int kind, const char *name, int64_t step)
{
	struct ev *e;

	CHECK_INT_LT(f->nev, MAX_EVENTS);
	e = &f->ev[f->nev++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->step = step;
	e->at = uv_now(&f->loop);
	return e;
}

static void on_ready(void *ud, const char *name, const char *path, int64_t step)
{
	struct fx *f = ud;
	char want[1024];

	snprintf(want, sizeof(want), "%s/%s", f->root, name);
	CHECK_STR_EQ(path, want);
	fx_push(f, EV_READY, name, step);
	/* as run.c does when its queue is full */
	if (f->fail_in_ready && !strcmp(name, f->fail_in_ready))
		watch_failed(f->w, name);
}

static void on_gone(void *ud, const char *name, int64_t step)
{
	fx_push(ud, EV_GONE, name, step);
}

static void on_bad(void *ud, const char *name, int64_t step, int code, const char *msg)
{
	struct ev *e = fx_push(ud, EV_BAD, name, step);

	e->code = code;
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
}

static bool on_is_done(void *ud, int64_t step)
{
	struct fx *f = ud;

	for (int i = 0; i < f->ndone; i++)
		if (f->done[i] == step)
			return true;
	return false;
}

static void on_note(void *ud, int level, const char *msg)
{
	struct fx *f = ud;

	(void)level;
	snprintf(f->last_notes[f->nnotes++ % 8], sizeof(f->last_notes[0]), "%s", msg);
	if (f->count_note && strstr(msg, f->count_note))
		f->note_hits++;
	if (f->want_note && strstr(msg, f->want_note))
		f->got_note = true;
}

static const struct watch_callbacks callbacks = {
	.ready = on_ready, .gone = on_gone, .bad = on_bad, .is_done = on_is_done, .note = on_note,
};

/* ---- the fixture -------------------------------------------------------------- */

static const char *mode_name(int mode)
{
	return mode == WATCH_POLL ? "poll" : "events";
}

static struct watch_opts fx_opts(struct fx *f)
{
	struct watch_opts o = {
		.root = f->root, .patterns = step_default_patterns, .quiet_ms = QUIET_MS,
		.mode = f->mode, .poll_ms = POLL_MS, .max_entries = 1000,
	};
	return o;
}

/* The loop, the scratch root (made unless make_root is false) and a
 * staging directory beside it; no watcher yet. */
static void fx_init(struct fx *f, int mode, bool make_root)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	snprintf(f->root, sizeof(f->root), "%s/root", tap_tmpdir());
	snprintf(f->stage, sizeof(f->stage), "%s/stage", tap_tmpdir());
	if (make_root)
		CHECK_INT_EQ(mkdir(f->root, 0755), 0);
	CHECK_INT_EQ(mkdir(f->stage, 0755), 0);
	CHECK_INT_EQ(uv_loop_init(&f->loop), 0);
	CHECK_INT_EQ(uv_timer_init(&f->loop, &f->guard), 0);
	f->guard.data = f;
}

static void fx_start(struct fx *f, const struct watch_opts *o)
{
	struct gw_err err = { "" };
	int r = watch_new(&f->loop, o, &callbacks, f, &f->w, &err);

	if (r != 0)
		tap_fail(__FILE__, __LINE__, "watch_new: %d %s", r, err.msg);
}

static void fx_open(struct fx *f, int mode)
{
	struct watch_opts o;

	fx_init(f, mode, true);
	o = fx_opts(f);
	fx_start(f, &o);
	CHECK_STR_EQ(watch_mode_name(f->w), mode_name(mode));
}

static void fx_close(struct fx *f)
{
	watch_close(f->w);
	uv_close((uv_handle_t *)&f->guard, NULL);
	if (f->writer_init)
		uv_close((uv_handle_t *)&f->writer, NULL);
	CHECK_INT_EQ(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	CHECK_INT_EQ(uv_loop_close(&f->loop), 0);
}

static void on_guard(uv_timer_t *h)
{
	((struct fx *)h->data)->expired = true;
}

static void fx_arm(struct fx *f)
{
	f->expired = false;
	uv_timer_start(&f->guard, on_guard, WAIT_MS, 0);
}

static void fx_expired_fail(struct fx *f, int line, const char *what)
{
	printf("# %s mode, waited %d ms for %s; %d events:\n", mode_name(f->mode), WAIT_MS, what,
	       f->nev);
	for (int i = 0; i < f->nev; i++)
		printf("#   %c %s step %lld %s\n", f->ev[i].kind, f->ev[i].name,
		       (long long)f->ev[i].step, f->ev[i].msg);
	printf("# last notes:\n");
	for (int i = f->nnotes > 8 ? f->nnotes - 8 : 0; i < f->nnotes; i++)
		printf("#   %s\n", f->last_notes[i % 8]);
	tap_fail(__FILE__, line, "timed out waiting for %s", what);
}

/* Run the loop until cond holds; fail after WAIT_MS. */
#define WAIT_UNTIL(f, cond) do { \
	fx_arm(f); \
	while (!(cond)) { \
		if ((f)->expired) \
			fx_expired_fail((f), __LINE__, #cond); \
		uv_run(&(f)->loop, UV_RUN_ONCE); \
	} \
	uv_timer_stop(&(f)->guard); \
} while (0)

/* Run the loop until a note containing `text` comes. */
#define WAIT_NOTE(f, text) do { \
	(f)->want_note = (text); \
	(f)->got_note = false; \
	WAIT_UNTIL((f), (f)->got_note); \
	(f)->want_note = NULL; \
} while (0)

static int fx_count(const struct fx *f, int kind, const char *name)
{
	int k = 0;

	for (int i = 0; i < f->nev; i++)
		k += f->ev[i].kind == kind && (!name || !strcmp(f->ev[i].name, name));
	return k;
}

static const struct ev *fx_find(const struct fx *f, int kind, const char *name)
{
	for (int i = 0; i < f->nev; i++)
		if (f->ev[i].kind == kind && !strcmp(f->ev[i].name, name))
			return &f->ev[i];
	tap_fail(__FILE__, __LINE__, "no '%c' event for \"%s\"", kind, name);
}

/* ---- files ---------------------------------------------------------------------- */

/* a/b, in one of 8 rotating buffers (a may be an earlier result) */
static const char *pj(const char *a, const char *b)
{
	static char buf[8][1024];
	static int next;
	char tmp[1024], *p = buf[next++ % 8];

	snprintf(tmp, sizeof(tmp), "%s/%s", a, b);
	memcpy(p, tmp, sizeof(tmp));
	return p;
}

static void put_mode(const char *path, const void *data, size_t len, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);

	if (fd < 0)
		tap_fail(__FILE__, __LINE__, "open \"%s\": %s", path, strerror(errno));
	if (len && write(fd, data, len) != (ssize_t)len)
		tap_fail(__FILE__, __LINE__, "write \"%s\": %s", path, strerror(errno));
	CHECK_INT_EQ(close(fd), 0);
}

static void put(const char *path, const void *data, size_t len)
{
	put_mode(path, data, len, O_TRUNC);
}

static void put_str(const char *path, const char *s)
{
	put(path, s, strlen(s));
}

static void append(const char *path, const void *data, size_t len)
{
	put_mode(path, data, len, O_APPEND);
}

static void mkdir_ok(const char *path)
{
	if (mkdir(path, 0755) != 0)
		tap_fail(__FILE__, __LINE__, "mkdir \"%s\": %s", path, strerror(errno));
}

static void rename_ok(const char *from, const char *to)
{
	if (rename(from, to) != 0)
		tap_fail(__FILE__, __LINE__, "rename \"%s\" -> \"%s\": %s", from, to, strerror(errno));
}

static void rm_rf(const char *path)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	CHECK_INT_EQ(system(cmd), 0);
}

/* A safetensors file with one F32 tensor of n values: 8-byte header length,
 * the header, the data.  Returns its length; *ret is malloc'd. */
static size_t st_blob(size_t n, char **ret)
{
	char hdr[256];
	int hl = snprintf(hdr, sizeof(hdr),
			  "{\"w\":{\"dtype\":\"F32\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}", n,
			  4 * n);
	size_t len = 8 + (size_t)hl + 4 * n;
	char *b = calloc(1, len);

	for (int i = 0; i < 8; i++)
		b[i] = (char)(((uint64_t)hl >> (8 * i)) & 0xff);
	memcpy(b + 8, hdr, (size_t)hl);
	for (size_t i = 0; i < 4 * n; i++)
		b[8 + (size_t)hl + i] = (char)(i * 31);
	*ret = b;
	return len;
}

/* A complete safetensors file at path; with `cut`, only its first
 * len - cut bytes. */
static void put_st(const char *path, size_t n, size_t cut)
{
	char *b;
	size_t len = st_blob(n, &b);

	CHECK_INT_LT(cut, len);
	put(path, b, len - cut);
	free(b);
}

/* The tail of the file put_st(path, n, cut) left short. */
static void finish_st(const char *path, size_t n, size_t cut)
{
	char *b;
	size_t len = st_blob(n, &b);

	append(path, b + len - cut, cut);
	free(b);
}

/* dir with config.json and a complete model.safetensors. */
static void mk_ckpt(const char *dir)
{
	mkdir_ok(dir);
	put_str(pj(dir, "config.json"), "{\"model_type\": \"olmoe\"}\n");
	put_st(pj(dir, "model.safetensors"), 64, 0);
}

/* A complete checkpoint written in the staging directory, renamed into the
 * root as `as` (the way trainers finish one). */
static void place(struct fx *f, const char *as)
{
	const char *tmp = pj(f->stage, as);

	mk_ckpt(tmp);
	rename_ok(tmp, pj(f->root, as));
}

/* ---- tests ------------------------------------------------------------------------ */

/* The names trainers write under while a checkpoint is unfinished. */
static void test_name_is_temporary(void)
{
	static const char *const temp[] = {
		".step100", ".hidden", "tmp", "tmp-checkpoint-500", "TMPstep5", "temp_step5",
		"Temp-step5", "temporary", "step1000.tmp", "step1000.TMP", "step1000.temp",
		"step1000.part", "step1000.partial", "step1000.PARTIAL", "step1000.incomplete",
		"step1000~", NULL,
	};
	static const char *const keep[] = {
		"step100", "checkpoint-500", "iter_0000700", "attempt5", "step-tmp5", "steptemp",
		"step1000.tmpx", "step1000.parts", "step1000-partial-x", "step~1000", "x.tmp.done",
		NULL,
	};

	for (int i = 0; temp[i]; i++)
		if (!watch_name_is_temporary(temp[i]))
			tap_fail(__FILE__, __LINE__, "\"%s\" should be temporary", temp[i]);
	for (int i = 0; keep[i]; i++)
		if (watch_name_is_temporary(keep[i]))
			tap_fail(__FILE__, __LINE__, "\"%s\" should not be temporary", keep[i]);
}

static void test_new_refuses_bad_options(void)
{
	static const char *const none[] = { NULL };
	struct fx f;
	struct watch_opts o;
	struct watch *w = NULL;
	struct gw_err err = { "" };

	fx_init(&f, WATCH_EVENTS, true);
	o = fx_opts(&f);
	o.root = "";
	CHECK_INT_EQ(watch_new(&f.loop, &o, &callbacks, &f, &w, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "watch.root");
	o = fx_opts(&f);
	o.patterns = none;
	CHECK_INT_EQ(watch_new(&f.loop, &o, &callbacks, &f, &w, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "watch.patterns");
	o = fx_opts(&f);
	o.poll_ms = 0;
	CHECK_INT_EQ(watch_new(&f.loop, &o, &callbacks, &f, &w, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "poll_interval_ms");
	CHECK(w == NULL);
	uv_close((uv_handle_t *)&f.guard, NULL);
	CHECK_INT_EQ(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
	CHECK_INT_EQ(uv_loop_close(&f.loop), 0);
}

/* Every temporary form watch.c knows, each a complete checkpoint whose
 * name carries a step, is ignored until it is renamed to its final name. */
static void temporary_names(int mode)
{
	static const char *const pats[] = { "*step{step}*", NULL };
	static const char *const temp[] = {
		".step101", "tmp-step102", "TMPstep103", "temp_step104", "Temp-step105",
		"step106.tmp", "step107.TEMP", "step108.part", "step109.partial",
		"step110.incomplete", "step111~", NULL,
	};
	struct fx f;
	struct watch_opts o;
	char final[64];
	int n = 0;

	fx_init(&f, mode, true);
	o = fx_opts(&f);
	o.patterns = pats;
	fx_start(&f, &o);
	for (int i = 0; temp[i]; i++, n++)
		place(&f, temp[i]);
	/* one written in place under its temporary name, as trainers do */
	mk_ckpt(pj(f.root, "tmp-checkpoint-step112"));
	n++;
	place(&f, "step999");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, NULL) >= 1);
	CHECK_INT_EQ(f.nev, 1);
	CHECK_STR_EQ(f.ev[0].name, "step999");
	CHECK_INT_EQ(f.ev[0].step, 999);
	CHECK_INT_EQ(watch_pending(f.w), 0);

	for (int i = 0; temp[i]; i++) {
		snprintf(final, sizeof(final), "step%d", 101 + i);
		rename_ok(pj(f.root, temp[i]), pj(f.root, final));
	}
	rename_ok(pj(f.root, "tmp-checkpoint-step112"), pj(f.root, "step112"));
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, NULL) >= 1 + n);
	for (int i = 0; i < n; i++) {
		snprintf(final, sizeof(final), "step%d", 101 + i);
		CHECK_INT_EQ(fx_count(&f, EV_READY, final), 1);
		CHECK_INT_EQ(fx_find(&f, EV_READY, final)->step, 101 + i);
	}
	CHECK_INT_EQ(fx_count(&f, EV_BAD, NULL), 0);
	CHECK_INT_EQ(fx_count(&f, EV_GONE, NULL), 0);
	fx_close(&f);
}

static void on_write(uv_timer_t *h)
{
	struct fx *f = h->data;

	append(f->write_path, "x", 1);
	CHECK_INT_LT(f->nwrites, MAX_WRITES);
	f->write_at[f->nwrites++] = uv_now(&f->loop);
	if (--f->writes_left == 0)
		uv_timer_stop(h);
}

/* A complete checkpoint that is still being written to (a file appended
 * every QUIET_MS/4 ms, for three quiet periods) is reported only once
 * nothing changed for QUIET_MS: every write before the report is at least
 * QUIET_MS before it, so each restarted the period.  (Were the period not
 * restarted, the report would come QUIET_MS after the first write, with
 * writes still going on.)  Only a lower bound on time is asserted. */
static void quiet_period(int mode)
{
	struct fx f;
	const struct ev *r;
	uint64_t placed_at;
	int before = 0;

	fx_open(&f, mode);
	place(&f, "step100");
	placed_at = uv_now(&f.loop);
	snprintf(f.write_path, sizeof(f.write_path), "%s/step100/optimizer.pt", f.root);
	f.writes_left = 12;
	CHECK_INT_EQ(uv_timer_init(&f.loop, &f.writer), 0);
	f.writer.data = &f;
	f.writer_init = true;
	on_write(&f.writer);
	uv_timer_start(&f.writer, on_write, QUIET_MS / 4, QUIET_MS / 4);
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, NULL) >= 1);
	r = fx_find(&f, EV_READY, "step100");
	CHECK_INT_EQ(r->step, 100);
	if (r->at - placed_at < QUIET_MS)
		tap_fail(__FILE__, __LINE__, "reported %llu ms after it appeared, quiet period %d",
			 (unsigned long long)(r->at - placed_at), QUIET_MS);
	for (int i = 0; i < f.nwrites; i++) {
		if (f.write_at[i] >= r->at)
			continue; /* the same loop turn or later: not before it */
		before++;
		if (r->at - f.write_at[i] < QUIET_MS)
			tap_fail(__FILE__, __LINE__, "reported %llu ms after write %d of %d (quiet "
				 "period %d ms)", (unsigned long long)(r->at - f.write_at[i]), i + 1,
				 f.nwrites, QUIET_MS);
	}
	CHECK(before >= 1);
	/* Let the writer finish: a reported checkpoint is not reported again. */
	WAIT_UNTIL(&f, f.writes_left == 0);
	place(&f, "step999");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step999") == 1);
	CHECK_INT_EQ(fx_count(&f, EV_READY, "step100"), 1);
	CHECK_INT_EQ(f.nev, 2);
	fx_close(&f);
}

/* config.json and model.safetensors: judged incomplete, and told why,
 * until the weights have the length their header declares. */
static void complete_single(int mode)
{
	struct fx f;
	const char *d;

	fx_open(&f, mode);
	d = pj(f.root, "step100");
	mkdir_ok(d);
	WAIT_NOTE(&f, "no config.json yet");
	put_str(pj(d, "config.json"), "{}");
	WAIT_NOTE(&f, "no model.safetensors or model.safetensors.index.json yet");
	put_st(pj(d, "model.safetensors"), 64, 100);
	WAIT_NOTE(&f, "bytes so far, not yet complete");
	CHECK_INT_EQ(f.nev, 0);
	CHECK_INT_EQ(watch_pending(f.w), 1);
	finish_st(pj(d, "model.safetensors"), 64, 100);
	WAIT_UNTIL(&f, f.nev >= 1);
	CHECK_INT_EQ(f.ev[0].kind, EV_READY);
	CHECK_STR_EQ(f.ev[0].name, "step100");
	CHECK_INT_EQ(f.ev[0].step, 100);
	CHECK_INT_EQ(watch_pending(f.w), 0);
	fx_close(&f);
}

/* A sharded checkpoint: every shard the index names must be there and
 * complete. */
static void complete_sharded(int mode)
{
	static const char idx[] =
		"{\"metadata\": {}, \"weight_map\": {"
		"\"a\": \"model-00001-of-00002.safetensors\", "
		"\"b\": \"model-00002-of-00002.safetensors\"}}";
	struct fx f;
	const char *d;

	fx_open(&f, mode);
	d = pj(f.stage, "checkpoint-300");
	mkdir_ok(d);
	put_str(pj(d, "config.json"), "{}");
	put_str(pj(d, "model.safetensors.index.json"), idx);
	put_st(pj(d, "model-00001-of-00002.safetensors"), 16, 0);
	rename_ok(d, pj(f.root, "checkpoint-300"));
	d = pj(f.root, "checkpoint-300");
	WAIT_NOTE(&f, "model-00002-of-00002.safetensors\": not there yet");
	put_st(pj(d, "model-00002-of-00002.safetensors"), 16, 10);
	WAIT_NOTE(&f, "bytes so far, not yet complete");
	CHECK_INT_EQ(f.nev, 0);
	finish_st(pj(d, "model-00002-of-00002.safetensors"), 16, 10);
	WAIT_UNTIL(&f, f.nev >= 1);
	CHECK_INT_EQ(f.ev[0].kind, EV_READY);
	CHECK_STR_EQ(f.ev[0].name, "checkpoint-300");
	CHECK_INT_EQ(f.ev[0].step, 300);
	fx_close(&f);
}

/* With a marker, a complete checkpoint waits for the marker file. */
static void complete_marker(int mode)
{
	struct fx f;
	struct watch_opts o;

	fx_init(&f, mode, true);
	o = fx_opts(&f);
	o.marker = "COMPLETE";
	fx_start(&f, &o);
	place(&f, "step100");
	WAIT_NOTE(&f, "COMPLETE\": no marker yet");
	CHECK_INT_EQ(f.nev, 0);
	put_str(pj(pj(f.root, "step100"), "COMPLETE"), "");
	WAIT_UNTIL(&f, f.nev >= 1);
	CHECK_INT_EQ(f.ev[0].kind, EV_READY);
	CHECK_STR_EQ(f.ev[0].name, "step100");
	fx_close(&f);
}

/* routing.safetensors alone is a checkpoint once it is complete; with
 * config.json beside it, the weights are needed too. */
static void complete_routing(int mode)
{
	struct fx f;
	const char *d, *e;

	fx_open(&f, mode);
	d = pj(f.root, "step100");
	mkdir_ok(d);
	put_st(pj(d, "routing.safetensors"), 32, 20);
	WAIT_NOTE(&f, "routing.safetensors\": ");
	CHECK_INT_EQ(f.nev, 0);
	finish_st(pj(d, "routing.safetensors"), 32, 20);
	WAIT_UNTIL(&f, f.nev >= 1);
	CHECK_INT_EQ(f.ev[0].kind, EV_READY);
	CHECK_STR_EQ(f.ev[0].name, "step100");
	CHECK_INT_EQ(f.ev[0].step, 100);

	e = pj(f.stage, "step200");
	mkdir_ok(e);
	put_st(pj(e, "routing.safetensors"), 32, 0);
	put_str(pj(e, "config.json"), "{}");
	rename_ok(e, pj(f.root, "step200"));
	WAIT_NOTE(&f, "no model.safetensors or model.safetensors.index.json yet");
	CHECK_INT_EQ(f.nev, 1);
	put_st(pj(pj(f.root, "step200"), "model.safetensors"), 8, 0);
	WAIT_UNTIL(&f, f.nev >= 2);
	CHECK_INT_EQ(f.ev[1].kind, EV_READY);
	CHECK_STR_EQ(f.ev[1].name, "step200");
	fx_close(&f);
}

/* Weights longer than their header says: bad() once, naming the file and
 * the fault; judged again only once the file changes. */
static void too_long(int mode)
{
	struct fx f;
	const char *d, *m;

	fx_open(&f, mode);
	d = pj(f.stage, "step100");
	mk_ckpt(d);
	append(pj(d, "model.safetensors"), "garbage", 7);
	rename_ok(d, pj(f.root, "step100"));
	WAIT_UNTIL(&f, f.nev >= 1);
	CHECK_INT_EQ(f.ev[0].kind, EV_BAD);
	CHECK_STR_EQ(f.ev[0].name, "step100");
	CHECK_INT_EQ(f.ev[0].step, 100);
	CHECK_INT_EQ(f.ev[0].code, -EBADMSG);
	CHECK_STR_HAS(f.ev[0].msg, "model.safetensors");
	CHECK_STR_HAS(f.ev[0].msg, "longer than");
	CHECK_INT_EQ(watch_pending(f.w), 0);
	/* not judged again while unchanged: a sentinel placed now is reported
	 * a quiet period (many poll ticks) later, and no second bad() before */
	place(&f, "step999");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step999") == 1);
	CHECK_INT_EQ(fx_count(&f, EV_BAD, NULL), 1);
	/* rewritten right: looked at again, and ready */
	m = pj(pj(f.root, "step100"), "model.safetensors");
	put_st(m, 64, 0);
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step100") == 1);
	CHECK_INT_EQ(fx_find(&f, EV_READY, "step100")->step, 100);
	CHECK_INT_EQ(fx_count(&f, EV_BAD, NULL), 1);
	fx_close(&f);
}

/* Steps from the default name patterns; names no pattern matches, and
 * plain files, are ignored. */
static void step_names(int mode)
{
	static const struct { const char *name; int64_t step; } ok[] = {
		{ "checkpoint-500", 500 }, { "iter_0000700", 700 }, { "global_step900", 900 },
		{ "step1000-tokens4B", 1000 }, { "step1100", 1100 }, { "step_2000", 2000 },
		{ "step-2100", 2100 }, { "checkpoint_2200", 2200 },
	};
	struct fx f;
	char *b;
	size_t len = st_blob(4, &b);

	fx_open(&f, mode);
	f.count_note = "/final\": ignored: its name matches none of watch.patterns";
	place(&f, "final");           /* no step in the name, trainer_state off */
	place(&f, "model-v2");
	put(pj(f.root, "step1200"), b, len); /* a file, not a directory */
	free(b);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		place(&f, ok[i].name);
	WAIT_UNTIL(&f, f.nev >= 8);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK_INT_EQ(fx_count(&f, EV_READY, ok[i].name), 1);
		CHECK_INT_EQ(fx_find(&f, EV_READY, ok[i].name)->step, ok[i].step);
	}
	CHECK_INT_EQ(f.nev, 8);
	/* Each ignored directory logged once, however often it is looked at
	 * (poll mode rescans every tick): a change inside it and a sentinel
	 * checkpoint after it. */
	put_str(pj(pj(f.root, "final"), "notes.txt"), "x");
	place(&f, "step3000");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step3000") == 1);
	CHECK_INT_EQ(f.note_hits, 1);
	fx_close(&f);
}

/* With step_from_trainer_state: a name no pattern matches takes its step
 * from trainer_state.json once it is there; a name with a step keeps it;
 * an unusable trainer_state.json is bad, and looked at again when fixed. */
static void step_trainer_state(int mode)
{
	struct fx f;
	struct watch_opts o;
	const char *d;

	fx_init(&f, mode, true);
	o = fx_opts(&f);
	o.step_from_trainer_state = true;
	fx_start(&f, &o);

	place(&f, "final");
	WAIT_NOTE(&f, "not a checkpoint yet: its name matches none of watch.patterns and it has "
		  "no trainer_state.json");
	CHECK_INT_EQ(f.nev, 0);
	put_str(pj(pj(f.root, "final"), "trainer_state.json"), "{\"global_step\": 700}");
	WAIT_UNTIL(&f, f.nev >= 1);
	CHECK_INT_EQ(f.ev[0].kind, EV_READY);
	CHECK_STR_EQ(f.ev[0].name, "final");
	CHECK_INT_EQ(f.ev[0].step, 700);

	d = pj(f.stage, "step300");
	mk_ckpt(d);
	put_str(pj(d, "trainer_state.json"), "{\"global_step\": 999}");
	rename_ok(d, pj(f.root, "step300"));
	WAIT_UNTIL(&f, f.nev >= 2);
	CHECK_STR_EQ(f.ev[1].name, "step300");
	CHECK_INT_EQ(f.ev[1].step, 300);

	d = pj(f.stage, "best");
	mk_ckpt(d);
	put_str(pj(d, "trainer_state.json"), "{\"global_step\": -5}");
	rename_ok(d, pj(f.root, "best"));
	WAIT_UNTIL(&f, f.nev >= 3);
	CHECK_INT_EQ(f.ev[2].kind, EV_BAD);
	CHECK_STR_EQ(f.ev[2].name, "best");
	CHECK_INT_EQ(f.ev[2].step, -1);
	CHECK_INT_EQ(f.ev[2].code, -EBADMSG);
	CHECK_STR_HAS(f.ev[2].msg, "trainer_state.json");
	put_str(pj(pj(f.root, "best"), "trainer_state.json"), "{\"global_step\": 1500}");
	WAIT_UNTIL(&f, f.nev >= 4);
	CHECK_INT_EQ(f.ev[3].kind, EV_READY);
	CHECK_STR_EQ(f.ev[3].name, "best");
	CHECK_INT_EQ(f.ev[3].step, 1500);
	fx_close(&f);
}

/* A reported checkpoint deleted, renamed out of the root or renamed to a
 * temporary name: gone().  One the caller has (watch_done) goes quietly.
 * A pending one deleted is forgotten, and reported when it comes back. */
static void gone(int mode)
{
	struct fx f;

	fx_open(&f, mode);
	place(&f, "step100");
	place(&f, "step200");
	place(&f, "step300");
	place(&f, "step400");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, NULL) >= 4);
	watch_done(f.w, "step400", 0);

	rm_rf(pj(f.root, "step400")); /* done: no gone() */
	rm_rf(pj(f.root, "step100"));
	WAIT_UNTIL(&f, fx_count(&f, EV_GONE, NULL) >= 1);
	CHECK_STR_EQ(f.ev[4].name, "step100");
	CHECK_INT_EQ(f.ev[4].step, 100);
	rename_ok(pj(f.root, "step200"), pj(f.stage, "step200"));
	WAIT_UNTIL(&f, fx_count(&f, EV_GONE, NULL) >= 2);
	CHECK_STR_EQ(f.ev[5].name, "step200");
	CHECK_INT_EQ(f.ev[5].step, 200);
	rename_ok(pj(f.root, "step300"), pj(f.root, "step300.tmp"));
	WAIT_UNTIL(&f, fx_count(&f, EV_GONE, NULL) >= 3);
	CHECK_STR_EQ(f.ev[6].name, "step300");
	CHECK_INT_EQ(f.ev[6].step, 300);
	CHECK_INT_EQ(fx_count(&f, EV_GONE, "step400"), 0);

	/* pending, then deleted */
	mkdir_ok(pj(f.root, "step500"));
	put_str(pj(pj(f.root, "step500"), "config.json"), "{}");
	WAIT_NOTE(&f, "no model.safetensors");
	CHECK_INT_EQ(watch_pending(f.w), 1);
	rm_rf(pj(f.root, "step500"));
	WAIT_UNTIL(&f, watch_pending(f.w) == 0);
	place(&f, "step500");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step500") >= 1);
	CHECK_INT_EQ(fx_count(&f, EV_READY, "step500"), 1);
	CHECK_INT_EQ(fx_count(&f, EV_GONE, NULL), 3);
	CHECK_INT_EQ(fx_count(&f, EV_READY, "step300.tmp"), 0);
	CHECK_INT_EQ(f.nev, 8);
	fx_close(&f);
}

/* Steps the caller has are never reported: present at start, arriving
 * later, or with the step from trainer_state.json. */
static void is_done(int mode)
{
	struct fx f;
	struct watch_opts o;
	const char *d;

	fx_init(&f, mode, true);
	f.done[f.ndone++] = 100;
	f.done[f.ndone++] = 300;
	f.done[f.ndone++] = 700;
	mk_ckpt(pj(f.root, "step100"));
	mk_ckpt(pj(f.root, "step200"));
	o = fx_opts(&f);
	o.step_from_trainer_state = true;
	fx_start(&f, &o);
	WAIT_UNTIL(&f, f.nev >= 1);
	CHECK_INT_EQ(f.nev, 1);
	CHECK_STR_EQ(f.ev[0].name, "step200");

	place(&f, "step300");
	d = pj(f.stage, "final");
	mk_ckpt(d);
	put_str(pj(d, "trainer_state.json"), "{\"global_step\": 700}");
	rename_ok(d, pj(f.root, "final"));
	place(&f, "step400");
	WAIT_UNTIL(&f, f.nev >= 2);
	CHECK_INT_EQ(f.nev, 2);
	CHECK_STR_EQ(f.ev[1].name, "step400");
	CHECK_INT_EQ(f.ev[1].step, 400);
	CHECK_INT_EQ(watch_pending(f.w), 0);
	fx_close(&f);
}

/* watch_failed: not judged again until the checkpoint changes, then it
 * is; whether the caller gives up from inside its ready callback (run.c,
 * when its queue is full) or later (a job that failed). */
static void failed_looks_again(int mode)
{
	struct fx f;

	fx_open(&f, mode);
	f.fail_in_ready = "step100";
	place(&f, "step100");
	place(&f, "step200");
	WAIT_UNTIL(&f, f.nev >= 2);
	watch_failed(f.w, "step200");
	place(&f, "step999");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step999") == 1);
	CHECK_INT_EQ(fx_count(&f, EV_READY, "step100"), 1);
	CHECK_INT_EQ(fx_count(&f, EV_READY, "step200"), 1);
	CHECK_INT_EQ(f.nev, 3);
	f.fail_in_ready = NULL;
	put_str(pj(pj(f.root, "step100"), "config.json"), "{\"changed\": true}");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step100") == 2);
	put_str(pj(pj(f.root, "step200"), "config.json"), "{\"changed\": true}");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step200") == 2);
	CHECK_INT_EQ(f.nev, 5);
	fx_close(&f);
}

/* A root that does not exist yet is waited for; once there it is watched
 * in the mode asked for; when it goes, what was reported under it is gone. */
static void root_appears(int mode)
{
	struct fx f;
	struct watch_opts o;

	fx_init(&f, mode, false);
	o = fx_opts(&f);
	fx_start(&f, &o);
	CHECK_STR_EQ(watch_mode_name(f.w), "waiting");
	mkdir_ok(f.root);
	WAIT_NOTE(&f, "the watched directory exists now");
	CHECK_STR_EQ(watch_mode_name(f.w), mode_name(mode));
	place(&f, "step100");
	WAIT_UNTIL(&f, f.nev >= 1);
	CHECK_INT_EQ(f.ev[0].kind, EV_READY);
	CHECK_STR_EQ(f.ev[0].name, "step100");
	rename_ok(f.root, pj(f.stage, "old-root"));
	WAIT_UNTIL(&f, f.nev >= 2);
	CHECK_INT_EQ(f.ev[1].kind, EV_GONE);
	CHECK_STR_EQ(f.ev[1].name, "step100");
	CHECK_STR_EQ(watch_mode_name(f.w), "waiting");
	fx_close(&f);
}

/* Every directory not computed yet, as watch_pending_foreach lists it. */
struct listed {
	char name[64][128], why[64][32], reason[64][1024];
	int64_t step[64];
	int n;
};

static void on_listed(void *ud, const char *name, int64_t step, const char *why,
		      const char *reason)
{
	struct listed *l = ud;

	CHECK_INT_LT(l->n, 64);
	snprintf(l->name[l->n], sizeof(l->name[0]), "%s", name);
	snprintf(l->why[l->n], sizeof(l->why[0]), "%s", why);
	snprintf(l->reason[l->n], sizeof(l->reason[0]), "%s", reason);
	l->step[l->n++] = step;
}

static int listed_at(struct fx *f, struct listed *l, const char *name)
{
	memset(l, 0, sizeof(*l));
	watch_pending_foreach(f->w, on_listed, l);
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->name[i], name))
			return i;
	return -1;
}

/* Why each directory waits: its quiet period, then (judged) which file is
 * incomplete and why; a name with no step and no trainer_state.json. */
static void pending_reasons(int mode)
{
	struct fx f;
	struct watch_opts o;
	struct listed l;
	const char *d;
	int i;

	fx_init(&f, mode, true);
	o = fx_opts(&f);
	o.step_from_trainer_state = true;
	fx_start(&f, &o);
	d = pj(f.stage, "step100");
	mkdir_ok(d);
	put_str(pj(d, "config.json"), "{}");
	put_st(pj(d, "model.safetensors"), 64, 10);
	rename_ok(d, pj(f.root, "step100"));
	WAIT_UNTIL(&f, listed_at(&f, &l, "step100") >= 0);
	i = listed_at(&f, &l, "step100");
	/* Judged only after the quiet period: until then it is "quiet"
	 * (unless a slow machine already judged it). */
	if (strcmp(l.why[i], "incomplete") != 0) {
		CHECK_STR_EQ(l.why[i], "quiet");
		CHECK_STR_HAS(l.reason[i], "quiet period running");
	}
	CHECK_INT_EQ(l.step[i], 100);
	WAIT_NOTE(&f, "not yet complete");
	i = listed_at(&f, &l, "step100");
	CHECK_STR_EQ(l.why[i], "incomplete");
	CHECK_STR_HAS(l.reason[i], "step100/model.safetensors\": ");
	CHECK_STR_HAS(l.reason[i], "bytes so far, not yet complete");

	place(&f, "final");
	WAIT_NOTE(&f, "/final\": not a checkpoint yet");
	i = listed_at(&f, &l, "final");
	CHECK_STR_EQ(l.why[i], "no_step");
	CHECK_INT_EQ(l.step[i], -1);
	CHECK_STR_HAS(l.reason[i], "matches none of watch.patterns");

	finish_st(pj(pj(f.root, "step100"), "model.safetensors"), 64, 10);
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step100") == 1);
	CHECK_INT_EQ(listed_at(&f, &l, "step100"), -1);
	fx_close(&f);
}

/* Other trainers' checkpoints: refused by name (bad() with -ENOTSUP and
 * the ways forward), once however often the directory then changes, and
 * listed as "refused". */
static void foreign_formats(int mode)
{
	static const struct {
		const char *name, *files[3], *what;
	} cases[] = {
		{ "step-300", { ".metadata", "__0_0.distcp", NULL }, "a PyTorch DCP checkpoint" },
		{ "step400", { "model_and_optim/.metadata", "model_and_optim/__0_0.distcp", NULL },
		  "an OLMo-core checkpoint" },
		{ "iter_0000500", { "mp_rank_00/model_optim_rng.pt", NULL }, "a Megatron-LM checkpoint" },
		{ "iter_0000600", { ".metadata", "__0_0.distcp", "common.pt" },
		  "a Megatron-LM checkpoint (torch_dist" },
		{ "global_step700", { "mp_rank_00_model_states.pt", NULL }, "a DeepSpeed checkpoint" },
		{ "checkpoint-800", { "config.json", "global_step800/mp_rank_00_model_states.pt", NULL },
		  "a DeepSpeed checkpoint (global_step" },
		{ "checkpoint_900", { "config.json", "pytorch_model.bin", NULL },
		  "PyTorch pickle weights only (pytorch_model.bin)" },
	};
	size_t nc = sizeof(cases) / sizeof(cases[0]);
	struct fx f;
	struct listed l;

	fx_open(&f, mode);
	for (size_t k = 0; k < nc; k++) {
		const char *d = pj(f.stage, cases[k].name);

		mkdir_ok(d);
		for (int j = 0; j < 3 && cases[k].files[j]; j++) {
			const char *slash = strchr(cases[k].files[j], '/');

			if (slash) {
				char sub[256];

				snprintf(sub, sizeof(sub), "%.*s", (int)(slash - cases[k].files[j]),
					 cases[k].files[j]);
				if (access(pj(d, sub), F_OK) != 0)
					mkdir_ok(pj(d, sub));
			}
			put_str(pj(d, cases[k].files[j]), "x");
		}
		rename_ok(d, pj(f.root, cases[k].name));
	}
	WAIT_UNTIL(&f, fx_count(&f, EV_BAD, NULL) >= (int)nc);
	for (size_t k = 0; k < nc; k++) {
		const struct ev *e = fx_find(&f, EV_BAD, cases[k].name);
		int i;

		CHECK_INT_EQ(e->code, -ENOTSUP);
		CHECK_STR_HAS(e->msg, cases[k].what);
		CHECK_STR_HAS(e->msg, "not a Hugging Face checkpoint; grokwatch cannot read it: save "
			      "Hugging Face safetensors (save_pretrained: config.json and "
			      "model.safetensors), or write routing files with grokwatch.trace");
		CHECK_STR_HAS(e->msg, cases[k].name);
		i = listed_at(&f, &l, cases[k].name);
		CHECK(i >= 0);
		CHECK_STR_EQ(l.why[i], "refused");
		CHECK_STR_HAS(l.reason[i], cases[k].what);
	}
	/* The trainer writes on: still said once. */
	put_str(pj(pj(f.root, "step-300"), "__1_0.distcp"), "y");
	place(&f, "step5000");
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step5000") == 1);
	CHECK_INT_EQ(fx_count(&f, EV_BAD, "step-300"), 1);
	/* The way forward taken: safetensors saved beside it. */
	put_str(pj(pj(f.root, "step-300"), "config.json"), "{}");
	put_st(pj(pj(f.root, "step-300"), "model.safetensors"), 64, 0);
	WAIT_UNTIL(&f, fx_count(&f, EV_READY, "step-300") == 1);
	fx_close(&f);
}

#define BOTH(fn) \
	static void test_##fn##_events(void) { fn(WATCH_EVENTS); } \
	static void test_##fn##_poll(void) { fn(WATCH_POLL); }
#define ROWS(fn) { #fn "_events", test_##fn##_events }, { #fn "_poll", test_##fn##_poll }

BOTH(temporary_names)
BOTH(quiet_period)
BOTH(complete_single)
BOTH(complete_sharded)
BOTH(complete_marker)
BOTH(complete_routing)
BOTH(too_long)
BOTH(step_names)
BOTH(step_trainer_state)
BOTH(gone)
BOTH(is_done)
BOTH(failed_looks_again)
BOTH(root_appears)
BOTH(pending_reasons)
BOTH(foreign_formats)

static const struct tap_test tests[] = {
	{ "name_is_temporary", test_name_is_temporary },
	{ "new_refuses_bad_options", test_new_refuses_bad_options },
	ROWS(temporary_names),
	ROWS(quiet_period),
	ROWS(complete_single),
	ROWS(complete_sharded),
	ROWS(complete_marker),
	ROWS(complete_routing),
	ROWS(too_long),
	ROWS(step_names),
	ROWS(step_trainer_state),
	ROWS(gone),
	ROWS(is_done),
	ROWS(failed_looks_again),
	ROWS(root_appears),
	ROWS(pending_reasons),
	ROWS(foreign_formats),
	{ NULL, NULL },
};

TAP_MAIN(tests)
