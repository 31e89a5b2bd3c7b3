/*
 * watch.c — the checkpoint watcher (watch.h states what it promises).
 *
 * Divided into: names (temporary names, steps), the entry table (one entry
 * per checkpoint directory, sorted by name, with its state and, in events
 * mode, its inotify watch and quiet timer), judging an entry (step,
 * completeness, the callbacks), the two modes (events: fs_event callbacks;
 * poll: one tick that rescans), and life (new, close, the root that is not
 * there yet).
 *
 * An entry's states: PENDING (seen, not yet complete), REPORTED (ready()
 * called; the caller computes it), DONE (the caller has it), BAD (malformed
 * or failed; pending again when it changes), IDLE (judged not a checkpoint:
 * none of the files one has; pending again when the directory itself
 * changes, which poll mode sees by one stat of it, not a signature).  An entry's libuv handles
 * exist only while it is PENDING or BAD in events mode; an entry removed
 * while its handles close is freed by the last close callback.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "engine/checkpoint.h"
#include "engine/file.h"
#include "engine/hash.h"
#include "engine/step.h"
#include "engine/sys.h"
#include "log.h"
#include "watch.h"

#define SIG_DEPTH 2
#define SIG_FILES_MAX 100000
#define SWEEP_PER_TICK 16 /* computed checkpoints checked for change per poll interval */
#define IGNORED_MAX 65536 /* names logged as ignored, remembered so each is logged once */

enum entry_state { E_PENDING, E_REPORTED, E_DONE, E_BAD, E_IDLE };

/* Why a PENDING or BAD entry is not computed yet (watch_pending_foreach). */
enum entry_why { W_QUIET, W_INCOMPLETE, W_NO_STEP, W_REFUSED, W_MALFORMED };

static const char *const why_words[] = {
	[W_QUIET] = "quiet", [W_INCOMPLETE] = "incomplete", [W_NO_STEP] = "no_step",
	[W_REFUSED] = "refused", [W_MALFORMED] = "malformed",
};

struct entry {
	struct watch *w;
	char *name, *path;
	int64_t step;          /* -1 until known */
	int state;
	uint64_t sig;          /* poll mode: signature of the files */
	bool have_sig;
	uint64_t changed_at;   /* poll mode: uv_now when sig last changed */
	uint64_t done_sig;     /* DONE: ckpt_signature its result was computed from, 0 unknown */
	uint64_t judged_sig;   /* poll mode: sig when last judged incomplete (0: none) */
	uint64_t dir_sig;      /* IDLE: the directory's own stat when classified */
	bool handles;          /* ev and timer initialized (events mode) */
	int open_handles;      /* not yet closed */
	bool rewatch;          /* watch again once the closing handles are closed */
	bool rewatch_judge;    /* ... and start the quiet timer then */
	bool removed;          /* out of the table; free when handles close */
	int why;               /* enum entry_why */
	char *reason;          /* its words (NULL: the quiet period's) */
	char *refused;         /* the refusal last published, so it is published once */
	bool noted_no_step;    /* "no step" logged */
	uv_fs_event_t ev;
	uv_timer_t timer;
};

struct watch {
	uv_loop_t *loop;
	struct watch_callbacks cb;
	void *ud;
	char *root, *marker;
	char **patterns;
	bool trainer_state;
	uint64_t quiet_ms, poll_ms;
	size_t max_entries;
	bool poll;             /* current mode is poll */
	bool root_ok;          /* the root exists and is watched */
	bool warned_full, warned_missing;
	bool closing;
	uv_fs_event_t root_ev;
	bool root_ev_active;
	uv_timer_t tick;
	uv_timer_t sweep;      /* checks computed checkpoints for change */
	size_t sweep_at;       /* the next entry index the sweep looks at */
	int open_handles;      /* root_ev (once initialized), tick and sweep */
	struct entry **e;      /* sorted by name */
	size_t n, cap;
	uint64_t *ignored;     /* hashes of names logged as ignored, sorted */
	size_t n_ignored, cap_ignored;
};

/* ---- names ----------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcasecmp(s + n - k, suffix);
}

bool watch_name_is_temporary(const char *name)
{
	static const char *const suffixes[] = { ".tmp", ".temp", ".part", ".partial",
						".incomplete", "~", NULL };

	if (name[0] == '.' || !strncasecmp(name, "tmp", 3) || !strncasecmp(name, "temp", 4))
		return true;
	for (int i = 0; suffixes[i]; i++)
		if (ends_with(name, suffixes[i]))
			return true;
	return false;
}

static void note(struct watch *w, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(struct watch *w, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!w->cb.note)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	w->cb.note(w->ud, level, buf);
}

/* ---- the entry table ----------------------------------------------------- */

static size_t lower_bound(const struct watch *w, const char *name)
{
	size_t lo = 0, hi = w->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(w->e[mid]->name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct entry *find(const struct watch *w, const char *name)
{
	size_t i = lower_bound(w, name);

	return i < w->n && !strcmp(w->e[i]->name, name) ? w->e[i] : NULL;
}

static void changed(struct watch *w)
{
	if (w->cb.changed && !w->closing)
		w->cb.changed(w->ud);
}

/* Record why the entry waits (msg NULL for the quiet period), and tell the
 * caller when that changed. */
static void entry_why(struct entry *e, int why, const char *msg)
{
	if (e->why == why && (msg ? e->reason && !strcmp(e->reason, msg) : !e->reason))
		return;
	e->why = why;
	free(e->reason);
	e->reason = msg ? gw_strdup(msg) : NULL;
	changed(e->w);
}

/* True the first time `name` is seen here (so that it is logged once). */
static bool ignored_first(struct watch *w, const char *name)
{
	uint64_t h = gw_fnv1a(GW_FNV_BASIS, name, strlen(name));
	size_t lo = 0, hi = w->n_ignored;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (w->ignored[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < w->n_ignored && w->ignored[lo] == h)
		return false;
	if (w->n_ignored == IGNORED_MAX)
		return false;
	if (w->n_ignored == w->cap_ignored) {
		w->cap_ignored = w->cap_ignored ? 2 * w->cap_ignored : 16;
		w->ignored = gw_realloc(w->ignored, w->cap_ignored * sizeof(*w->ignored));
	}
	memmove(w->ignored + lo + 1, w->ignored + lo, (w->n_ignored - lo) * sizeof(*w->ignored));
	w->ignored[lo] = h;
	w->n_ignored++;
	return true;
}

static void entry_free(struct entry *e)
{
	free(e->reason);
	free(e->refused);
	free(e->name);
	free(e->path);
	free(e);
}

static void entry_watch(struct watch *w, struct entry *e, bool judge);

static void on_entry_closed(uv_handle_t *h)
{
	struct entry *e = h->data;
	struct watch *w = e->w;

	if (--e->open_handles == 0) {
		e->handles = false;
		if (e->removed) {
			entry_free(e);
		} else if (e->rewatch) {
			e->rewatch = false;
			if (!w->closing && (e->state == E_PENDING || e->state == E_BAD ||
					    e->state == E_IDLE))
				entry_watch(w, e, e->rewatch_judge);
		}
	}
	if (--w->open_handles == 0 && w->closing)
		free(w);
}

/* Close an entry's inotify watch and timer (the entry lives on). */
static void entry_unwatch(struct entry *e)
{
	e->rewatch = false;
	if (!e->handles || uv_is_closing((uv_handle_t *)&e->timer))
		return;
	uv_close((uv_handle_t *)&e->ev, on_entry_closed);
	uv_close((uv_handle_t *)&e->timer, on_entry_closed);
}

static void entry_remove(struct watch *w, struct entry *e)
{
	size_t i = lower_bound(w, e->name);

	GW_BUG_ON(i >= w->n || w->e[i] != e);
	memmove(w->e + i, w->e + i + 1, (w->n - i - 1) * sizeof(*w->e));
	w->n--;
	e->removed = true;
	changed(w);
	if (e->handles)
		entry_unwatch(e);
	else
		entry_free(e);
}

static void on_entry_event(uv_fs_event_t *h, const char *filename, int events, int status);
static void on_entry_timer(uv_timer_t *h);
static void switch_to_poll(struct watch *w, const char *why, int code);

/* Start noticing changes to an entry (events mode): an inotify watch on
 * its directory and, with `judge`, its quiet timer started now.  Handles
 * still closing (the entry was just reported, and the caller gave up on it
 * from its ready callback) cannot be restarted: the close callback does it. */
static void entry_watch(struct watch *w, struct entry *e, bool judge)
{
	int r;

	if (w->poll)
		return;
	if (e->handles && uv_is_closing((uv_handle_t *)&e->timer)) {
		e->rewatch_judge = e->rewatch ? e->rewatch_judge || judge : judge;
		e->rewatch = true;
		return;
	}
	if (!e->handles) {
		uv_fs_event_init(w->loop, &e->ev);
		uv_timer_init(w->loop, &e->timer);
		e->ev.data = e->timer.data = e;
		e->handles = true;
		e->open_handles = 2;
		w->open_handles += 2;
		r = uv_fs_event_start(&e->ev, on_entry_event, e->path, 0);
		if (r < 0) {
			switch_to_poll(w, e->path, r);
			return;
		}
	}
	if (judge)
		uv_timer_start(&e->timer, on_entry_timer, w->quiet_ms, 0);
}

static int entry_step_from_name(const struct watch *w, const char *name, int64_t *ret)
{
	return step_from_name(name, (const char *const *)w->patterns, ret);
}

/* A directory appeared (or was found by a scan): track it if it is a
 * checkpoint candidate. */
static struct entry *entry_add(struct watch *w, const char *name)
{
	struct entry *e;
	int64_t step = -1;
	size_t i;

	if (watch_name_is_temporary(name)) {
		if (ignored_first(w, name))
			note(w, LOG_LVL_INFO, "\"%s/%s\": ignored while its name is temporary (it "
			     "counts once renamed)", w->root, name);
		return NULL;
	}
	if (entry_step_from_name(w, name, &step) < 0 && !w->trainer_state) {
		if (ignored_first(w, name))
			note(w, LOG_LVL_INFO, "\"%s/%s\": ignored: its name matches none of "
			     "watch.patterns", w->root, name);
		return NULL;
	}
	if (w->n >= w->max_entries) {
		if (!w->warned_full)
			note(w, LOG_LVL_WARN,
			     "\"%s\": more than %zu checkpoints (limits.checkpoints); ignoring \"%s\" and later ones",
			     w->root, w->max_entries, name);
		w->warned_full = true;
		return NULL;
	}
	e = gw_calloc(1, sizeof(*e));
	e->w = w;
	e->name = gw_strdup(name);
	e->path = gw_join(w->root, '/', name);
	e->step = step;
	e->state = E_PENDING;
	if (step >= 0 && w->cb.is_done && w->cb.is_done(w->ud, step)) {
		e->state = E_DONE;
		e->done_sig = w->cb.done_sig ? w->cb.done_sig(w->ud, step) : 0;
	}
	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 64;
		w->e = gw_realloc(w->e, w->cap * sizeof(*w->e));
	}
	i = lower_bound(w, name);
	memmove(w->e + i + 1, w->e + i, (w->n - i) * sizeof(*w->e));
	w->e[i] = e;
	w->n++;
	if (e->state == E_PENDING) {
		note(w, LOG_LVL_DEBUG, "\"%s\": new checkpoint directory", e->path);
		entry_watch(w, e, true);
		changed(w);
	}
	return e;
}

/* ---- judging an entry ---------------------------------------------------- */

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The entry vanished.  Tell the caller if it was waiting for it. */
static void entry_gone(struct watch *w, struct entry *e)
{
	note(w, LOG_LVL_DEBUG, "\"%s\": gone", e->path);
	if (e->state == E_REPORTED && w->cb.gone)
		w->cb.gone(w->ud, e->name, e->step);
	entry_remove(w, e);
}

/* The directory's own stat: what changes when an entry is added, removed
 * or renamed in it. */
static uint64_t dir_stat_sig(const char *path)
{
	struct stat st;
	uint64_t v[5];

	if (stat(path, &st) < 0)
		return 0;
	v[0] = (uint64_t)st.st_ino;
	v[1] = (uint64_t)st.st_mtim.tv_sec;
	v[2] = (uint64_t)st.st_mtim.tv_nsec;
	v[3] = (uint64_t)st.st_ctim.tv_sec;
	v[4] = (uint64_t)st.st_ctim.tv_nsec;
	return gw_fnv1a(GW_FNV_BASIS, v, sizeof(v)) | 1;
}

/* Whether dir holds nothing a checkpoint is made of (its weights or
 * routing records, config.json, trainer_state.json, the marker): a
 * directory of notes, logs or an unrelated tool's. */
static bool holds_nothing(const struct watch *w, const char *path)
{
	DIR *dp = opendir(path);
	struct dirent *d;
	bool none = true;

	if (!dp)
		return false;
	while (none && (d = readdir(dp))) {
		size_t n = strlen(d->d_name);

		if (!strcmp(d->d_name, "config.json") || !strcmp(d->d_name, "trainer_state.json") ||
		    (w->marker && !strcmp(d->d_name, w->marker)) ||
		    (n > 12 && !strcmp(d->d_name + n - 12, ".safetensors")) ||
		    strstr(d->d_name, ".safetensors."))
			none = false;
	}
	closedir(dp);
	return none;
}

/* Judged not complete: a directory holding nothing of a checkpoint is
 * classified IDLE until it changes, so that thousands of them cost a stat
 * each per poll, and are not counted pending. */
static void entry_not_yet(struct watch *w, struct entry *e)
{
	e->judged_sig = e->have_sig ? e->sig : 0;
	if (!holds_nothing(w, e->path))
		return;
	e->dir_sig = dir_stat_sig(e->path);
	if (!e->dir_sig)
		return;
	note(w, LOG_LVL_DEBUG, "\"%s\": nothing of a checkpoint in it; looked at again when it changes",
	     e->path);
	e->state = E_IDLE;
	if (e->handles)
		uv_timer_stop(&e->timer);
}

/* Quiet: is it a complete checkpoint?  May remove e. */
static void entry_judge(struct watch *w, struct entry *e)
{
	struct gw_err err = { "" };
	int r;

	if (!is_dir(e->path)) {
		entry_gone(w, e);
		return;
	}
	if (e->step < 0) {
		int64_t s;

		r = step_from_trainer_state(e->path, &s, &err);
		if (r == -ENOENT) {
			entry_why(e, W_NO_STEP, "its name matches none of watch.patterns and it has "
				  "no trainer_state.json with a global_step");
			note(w, e->noted_no_step ? LOG_LVL_DEBUG : LOG_LVL_INFO,
			     "\"%s\": not a checkpoint yet: its name matches none of watch.patterns "
			     "and it has no trainer_state.json with a global_step", e->path);
			e->noted_no_step = true;
			entry_not_yet(w, e);
			return;
		}
		if (r < 0) {
			entry_why(e, W_MALFORMED, err.msg);
			e->state = E_BAD;
			if (w->cb.bad)
				w->cb.bad(w->ud, e->name, -1, r, err.msg);
			return;
		}
		e->step = s;
		if (w->cb.is_done && w->cb.is_done(w->ud, s)) {
			e->state = E_DONE;
			e->done_sig = w->cb.done_sig ? w->cb.done_sig(w->ud, s) : 0;
			entry_unwatch(e);
			return;
		}
	}
	r = ckpt_check_complete(e->path, w->marker, &err);
	if (r == 0) {
		entry_why(e, W_INCOMPLETE, err.msg);
		note(w, LOG_LVL_DEBUG, "%s", err.msg);
		entry_not_yet(w, e);
		return;
	}
	if (r == -EMFILE || r == -ENFILE) {
		/* Out of file descriptors for now: says nothing about the
		 * checkpoint; looked at again, not skipped until it changes. */
		note(w, LOG_LVL_WARN, "%s; \"%s\" looked at again in %llu ms", err.msg, e->name,
		     (unsigned long long)w->poll_ms);
		if (e->handles && !uv_is_closing((uv_handle_t *)&e->timer))
			uv_timer_start(&e->timer, on_entry_timer, w->poll_ms, 0);
		return;
	}
	if (r < 0) {
		if (!is_dir(e->path)) {
			entry_gone(w, e);
			return;
		}
		e->state = E_BAD;
		/* Another trainer's format: said once, however often the
		 * directory changes while that trainer writes it. */
		if (r == -ENOTSUP) {
			bool again = e->refused && !strcmp(e->refused, err.msg);

			entry_why(e, W_REFUSED, err.msg);
			if (again)
				return;
			free(e->refused);
			e->refused = gw_strdup(err.msg);
		} else {
			entry_why(e, W_MALFORMED, err.msg);
		}
		if (w->cb.bad)
			w->cb.bad(w->ud, e->name, e->step, r, err.msg);
		return;
	}
	e->state = E_REPORTED;
	entry_unwatch(e);
	if (w->cb.ready)
		w->cb.ready(w->ud, e->name, e->path, e->step);
}

/* ---- events mode ----------------------------------------------------------- */

static void on_entry_timer(uv_timer_t *h)
{
	struct entry *e = h->data;

	if (e->state == E_PENDING)
		entry_judge(e->w, e);
}

static void on_entry_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct entry *e = h->data;
	struct watch *w = e->w;

	(void)filename;
	(void)events;
	if (status < 0) {
		switch_to_poll(w, e->path, status);
		return;
	}
	if (e->state == E_BAD || e->state == E_IDLE)
		e->state = E_PENDING; /* changed: worth another look */
	if (e->state == E_PENDING) {
		if (e->why != W_REFUSED)
			entry_why(e, W_QUIET, NULL);
		uv_timer_start(&e->timer, on_entry_timer, w->quiet_ms, 0);
	}
}

/* Something under the root changed: `name` appeared, was renamed or went. */
static void root_changed(struct watch *w, const char *name)
{
	struct entry *e = find(w, name);
	char *path;

	if (!e) {
		path = gw_join(w->root, '/', name);
		if (is_dir(path))
			entry_add(w, name);
		free(path);
		return;
	}
	if (!is_dir(e->path)) {
		entry_gone(w, e);
		return;
	}
	if (e->state == E_BAD || e->state == E_IDLE) {
		e->state = E_PENDING;
		if (e->why != W_REFUSED)
			entry_why(e, W_QUIET, NULL);
		entry_watch(w, e, true);
	}
}

static void scan(struct watch *w, bool remove_missing);
static void root_lost(struct watch *w);

static void on_root_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct watch *w = h->data;

	(void)events;
	if (status < 0) {
		switch_to_poll(w, w->root, status);
		return;
	}
	if (!is_dir(w->root)) {
		root_lost(w);
		return;
	}
	if (filename)
		root_changed(w, filename);
	else
		scan(w, true);
}

/* ---- poll mode ------------------------------------------------------------- */

static void signature(const char *dir, int depth, uint64_t *h, size_t *count)
{
	struct dirent *d;
	DIR *dp = opendir(dir);

	if (!dp) {
		*h = gw_fnv1a(*h, "?", 1);
		return;
	}
	while (*count < SIG_FILES_MAX && (errno = 0, d = gw_sys.readdir(dp))) {
		struct stat st;
		char *p;

		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		p = gw_join(dir, '/', d->d_name);
		if (lstat(p, &st) == 0) {
			uint64_t v[4] = { (uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
					  (uint64_t)st.st_mtim.tv_nsec, (uint64_t)st.st_ino };

			/* Order-independent: readdir order may change. */
			uint64_t x = gw_fnv1a(gw_fnv1a(GW_FNV_BASIS, d->d_name, strlen(d->d_name)), v,
					      sizeof(v));

			*h += x * 0x9E3779B97F4A7C15ull;
			(*count)++;
			if (S_ISDIR(st.st_mode) && depth > 1)
				signature(p, depth - 1, h, count);
		}
		free(p);
	}
	if (errno && *count < SIG_FILES_MAX)
		*h = gw_fnv1a(*h, "!", 1); /* unreadable now: a change, judged again */
	closedir(dp);
}

static void poll_entry(struct watch *w, struct entry *e)
{
	uint64_t now = uv_now(w->loop), h = 0;
	size_t count = 0;

	if (e->state == E_IDLE) {
		if (dir_stat_sig(e->path) == e->dir_sig)
			return;
		e->state = E_PENDING; /* something was added: judge it afresh */
		e->have_sig = false;
		e->judged_sig = 0;
	}
	signature(e->path, SIG_DEPTH, &h, &count);
	if (!e->have_sig || h != e->sig) {
		if (e->have_sig && e->state == E_BAD)
			e->state = E_PENDING;
		if (e->state == E_PENDING && e->why != W_REFUSED)
			entry_why(e, W_QUIET, NULL);
		e->sig = h;
		e->have_sig = true;
		e->changed_at = now;
		if (w->quiet_ms > 0)
			return;
	}
	/* Judged incomplete as it stands: nothing to judge until it changes. */
	if (e->state == E_PENDING && now - e->changed_at >= w->quiet_ms &&
	    !(e->judged_sig && e->judged_sig == e->sig))
		entry_judge(w, e);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Read the root: add new directories (in name order, so a burst is added
 * in one sorted pass) and, with remove_missing, drop entries that are gone.
 */
static void scan(struct watch *w, bool remove_missing)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *d;
	DIR *dp = opendir(w->root);

	if (!dp) {
		if (errno == ENOENT || errno == ENOTDIR)
			root_lost(w);
		else
			note(w, LOG_LVL_WARN, "\"%s\": %s", w->root, strerror(errno));
		return;
	}
	while ((errno = 0, d = gw_sys.readdir(dp))) {
		if (d->d_name[0] == '.' || (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN &&
					    d->d_type != DT_LNK))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = gw_realloc(names, cap * sizeof(*names));
		}
		names[n++] = gw_strdup(d->d_name);
	}
	if (errno) {
		/* A listing cut short says nothing about what is gone: taking
		 * it whole would drop (and cancel) every checkpoint not read. */
		note(w, LOG_LVL_WARN, "\"%s\": reading the directory: %s; looked at again later",
		     w->root, strerror(errno));
		closedir(dp);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return;
	}
	closedir(dp);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	if (remove_missing) {
		for (size_t i = w->n; i-- > 0;) {
			struct entry *e = w->e[i];

			if (!n || !bsearch(&e->name, names, n, sizeof(*names), cmp_str) ||
			    !is_dir(e->path))
				entry_gone(w, e);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!find(w, names[i])) {
			char *p = gw_join(w->root, '/', names[i]);

			if (is_dir(p))
				entry_add(w, names[i]);
			free(p);
		}
		free(names[i]);
	}
	free(names);
}

static void on_tick(uv_timer_t *h)
{
	struct watch *w = h->data;

	if (!w->root_ok) {
		if (!is_dir(w->root))
			return;
		note(w, LOG_LVL_INFO, "\"%s\": the watched directory exists now", w->root);
		w->warned_missing = false;
		w->root_ok = true;
		if (!w->poll) {
			int r = uv_fs_event_start(&w->root_ev, on_root_event, w->root, 0);

			if (r < 0) {
				switch_to_poll(w, w->root, r);
			} else {
				w->root_ev_active = true;
				uv_timer_stop(&w->tick);
			}
		}
		scan(w, true);
		return;
	}
	scan(w, true);
	for (size_t i = w->n; i-- > 0;) {
		struct entry *e = w->e[i];

		if (i < w->n && w->e[i] == e &&
		    (e->state == E_PENDING || e->state == E_BAD || e->state == E_IDLE))
			poll_entry(w, e);
	}
}

static void switch_to_poll(struct watch *w, const char *what, int code)
{
	if (w->poll)
		return;
	note(w, LOG_LVL_WARN, "\"%s\": inotify watch failed (%s); polling every %llu ms instead", what,
	     uv_strerror(code), (unsigned long long)w->poll_ms);
	w->poll = true;
	if (w->root_ev_active) {
		uv_fs_event_stop(&w->root_ev);
		w->root_ev_active = false;
	}
	for (size_t i = 0; i < w->n; i++)
		entry_unwatch(w->e[i]);
	uv_timer_start(&w->tick, on_tick, w->poll_ms, w->poll_ms);
}

/* The root went away (or never was): forget what was under it and wait
 * for it. */
static void root_lost(struct watch *w)
{
	if (!w->warned_missing)
		note(w, LOG_LVL_WARN, "\"%s\": watched directory does not exist; checking every %llu ms",
		     w->root, (unsigned long long)w->poll_ms);
	w->warned_missing = true;
	w->root_ok = false;
	if (w->root_ev_active) {
		uv_fs_event_stop(&w->root_ev);
		w->root_ev_active = false;
	}
	while (w->n > 0)
		entry_gone(w, w->e[w->n - 1]);
	if (!uv_is_active((uv_handle_t *)&w->tick))
		uv_timer_start(&w->tick, on_tick, w->poll_ms, w->poll_ms);
}

/* ---- computed checkpoints that change ----------------------------------------- */

/* Pending again: judged once quiet, reported again if complete. */
static void entry_again(struct watch *w, struct entry *e)
{
	e->state = E_PENDING;
	e->have_sig = false;
	e->done_sig = 0;
	entry_watch(w, e, true);
}

/* A few computed checkpoints a tick, in turn: the files their result was
 * computed from (ckpt_signature) against what they are now.  Bounded: at
 * most SWEEP_PER_TICK signatures per poll interval, whatever the count of
 * checkpoints, so a run of 10,000 is swept every 10,000 / 16 intervals. */
static void on_sweep(uv_timer_t *h)
{
	struct watch *w = h->data;
	size_t looked = 0, steps = 0;

	while (looked < SWEEP_PER_TICK && steps < w->n) {
		struct entry *e;
		uint64_t sig;

		if (w->sweep_at >= w->n)
			w->sweep_at = 0;
		e = w->e[w->sweep_at++];
		steps++;
		if (e->state != E_DONE)
			continue;
		looked++;
		if (ckpt_signature(e->path, &sig) < 0)
			continue; /* gone: the root's events or the scan say so */
		if (!e->done_sig) {
			e->done_sig = sig;
			continue;
		}
		if (sig == e->done_sig)
			continue;
		note(w, LOG_LVL_WARN,
		     "\"%s\": changed after its result was recorded; computed again once quiet",
		     e->path);
		entry_again(w, e);
	}
}

/* ---- life ------------------------------------------------------------------- */

/* Filesystems where inotify does not see changes made by other hosts. */
static bool remote_fs(const char *path)
{
	static const unsigned long magic[] = {
		0x6969,     /* NFS */
		0x0BD00BD0, /* Lustre */
		0x65735546, /* FUSE */
		0xFF534D42, /* CIFS */
		0xFE534D42, /* SMB2 */
		0x517B,     /* SMB */
		0x47504653, /* GPFS */
		0x00C36400, /* Ceph */
		0x01021997, /* 9p */
		0x5346414F, /* AFS */
		0x6B414653, /* kAFS */
		0x19830326, /* BeeGFS */
		0x013111A8, /* IBRIX */
		0x73757245, /* Coda */
		0x564C,     /* NCP */
	};
	struct statfs sf;

	if (statfs(path, &sf) < 0)
		return false;
	for (size_t i = 0; i < sizeof(magic) / sizeof(magic[0]); i++)
		if ((unsigned long)sf.f_type == magic[i])
			return true;
	return false;
}

int watch_new(uv_loop_t *loop, const struct watch_opts *o, const struct watch_callbacks *cb,
	      void *ud, struct watch **ret_watch, struct gw_err *err)
{
	struct watch *w;
	size_t np = 0;
	int r;

	if (!o->root || !o->root[0])
		return gw_errf(err, -EINVAL, "watch.root is not set");
	if (!o->patterns || !o->patterns[0])
		return gw_errf(err, -EINVAL, "watch.patterns is empty");
	if (o->poll_ms == 0)
		return gw_errf(err, -EINVAL, "watch.poll_interval_ms is 0");
	w = gw_calloc(1, sizeof(*w));
	w->loop = loop;
	w->cb = *cb;
	w->ud = ud;
	w->root = gw_strdup(o->root);
	w->marker = o->marker && o->marker[0] ? gw_strdup(o->marker) : NULL;
	while (o->patterns[np])
		np++;
	w->patterns = gw_calloc(np + 1, sizeof(char *));
	for (size_t i = 0; i < np; i++)
		w->patterns[i] = gw_strdup(o->patterns[i]);
	w->trainer_state = o->step_from_trainer_state;
	w->quiet_ms = o->quiet_ms;
	w->poll_ms = o->poll_ms;
	w->max_entries = o->max_entries ? o->max_entries : 100000;
	w->poll = o->mode == WATCH_POLL || (o->mode == WATCH_AUTO && remote_fs(o->root));

	uv_timer_init(loop, &w->tick);
	uv_timer_init(loop, &w->sweep);
	uv_fs_event_init(loop, &w->root_ev);
	w->tick.data = w->root_ev.data = w->sweep.data = w;
	w->open_handles = 3;
	uv_timer_start(&w->sweep, on_sweep, w->poll_ms, w->poll_ms);

	if (!is_dir(w->root)) {
		root_lost(w);
	} else {
		w->root_ok = true;
		if (!w->poll) {
			r = uv_fs_event_start(&w->root_ev, on_root_event, w->root, 0);
			if (r < 0)
				switch_to_poll(w, w->root, r);
			else
				w->root_ev_active = true;
		}
		if (w->poll)
			uv_timer_start(&w->tick, on_tick, w->poll_ms, w->poll_ms);
		scan(w, false);
		if (w->poll)
			on_tick(&w->tick); /* first signatures now, not a poll interval later */
	}
	*ret_watch = w;
	return 0;
}

static void on_watch_closed(uv_handle_t *h)
{
	struct watch *w = h->data;

	if (--w->open_handles == 0)
		free(w);
}

void watch_close(struct watch *w)
{
	if (!w)
		return;
	w->closing = true;
	while (w->n > 0)
		entry_remove(w, w->e[w->n - 1]);
	free(w->e);
	w->e = NULL;
	free(w->ignored);
	w->ignored = NULL;
	for (int i = 0; w->patterns[i]; i++)
		free(w->patterns[i]);
	free(w->patterns);
	free(w->root);
	free(w->marker);
	uv_close((uv_handle_t *)&w->tick, on_watch_closed);
	uv_close((uv_handle_t *)&w->sweep, on_watch_closed);
	uv_close((uv_handle_t *)&w->root_ev, on_watch_closed);
}

void watch_done(struct watch *w, const char *name, uint64_t sig)
{
	struct entry *e = find(w, name);

	if (e) {
		e->state = E_DONE;
		e->done_sig = sig;
		entry_unwatch(e);
	}
}

void watch_recheck(struct watch *w, const char *name)
{
	struct entry *e = find(w, name);

	if (e && !w->closing)
		entry_again(w, e);
}

void watch_failed(struct watch *w, const char *name)
{
	struct entry *e = find(w, name);

	/* Not judged again until it changes: an event (events mode) or a new
	 * signature (poll mode; the next tick takes the baseline). */
	if (e) {
		e->state = E_BAD;
		e->have_sig = false;
		entry_watch(w, e, false);
	}
}

void watch_set_quiet(struct watch *w, uint64_t quiet_ms)
{
	w->quiet_ms = quiet_ms;
}

const char *watch_mode_name(const struct watch *w)
{
	if (!w->root_ok)
		return "waiting";
	return w->poll ? "poll" : "events";
}

void watch_pending_foreach(const struct watch *w, watch_pending_fn fn, void *ud)
{
	for (size_t i = 0; i < w->n; i++) {
		const struct entry *e = w->e[i];

		/* IDLE ones too: classified once (entry_not_yet), listed with why */
		if (e->state != E_PENDING && e->state != E_BAD && e->state != E_IDLE)
			continue;
		fn(ud, e->name, e->step, why_words[e->why],
		   e->reason ? e->reason : "quiet period running (watch.quiet_period_ms)");
	}
}

size_t watch_pending(const struct watch *w)
{
	size_t k = 0;

	for (size_t i = 0; i < w->n; i++)
		k += w->e[i]->state == E_PENDING;
	return k;
}
