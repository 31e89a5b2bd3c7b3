/*
 * alertmanager.c — the Alertmanager sender declared in alertmanager.h.
 *
 * In order: the body of a POST (PostableAlerts from the firing set and the
 * queued resolutions); libcurl's multi interface on the libuv loop (socket
 * callback onto uv_poll handles, timer callback onto one uv timer, the
 * finished transfers read back); a target's POST (start, finish, the next
 * one's time); and the lifecycle (new, transition, status, close).
 */
#include "alertmanager.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/file.h"
#include "engine/json.h"
#include "log.h"

#define AM_ANSWER_KEPT 512 /* bytes of an answer kept for the error message */
#define AM_SECRET_MAX 4096 /* bytes of a password or token file */

/* A resolution not yet delivered to a target. */
struct pending {
	uint64_t seq;
	char fp[17];
	cJSON *alert; /* the PostableAlert */
};

struct target {
	struct alertmanager *m;
	char *url;        /* <base>/api/v2/alerts */
	uv_timer_t timer; /* the next POST */
	CURL *easy;       /* the POST in flight, or NULL */
	char *body;       /* its body */
	struct curl_slist *headers;
	char answer[AM_ANSWER_KEPT + 1];
	size_t answer_len;
	uint64_t sent_seq; /* resolutions up to this seq are in the POST in flight */
	bool dirty;        /* something changed while a POST was in flight */
	struct pending *res;
	size_t nres, capres;
	uint64_t sent, failed_total, failures, backoff_ms;
	bool ok;
	char *last_error;
	double last_ok; /* Unix time, 0 = never */
};

struct alertmanager {
	uv_loop_t *loop;
	const struct alerts *alerts;
	CURLM *multi;
	uv_timer_t curl_timer;
	struct target *t;
	int nt;
	uint64_t resend_ms, timeout_ms;
	void (*changed)(void *ud);
	void *ud;
	char *userpwd;   /* "user:password", or NULL */
	char *auth_hdr;  /* "Authorization: Bearer ...", or NULL */
	char *ca_file;   /* or NULL */
	uint64_t seq;    /* of the last queued resolution */
	bool closing;
	int open_handles; /* uv handles not yet closed */
	struct am_sock *socks;
};

/* One socket libcurl watches. */
struct am_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct alertmanager *m;
	struct am_sock *prev, *next; /* m->socks: watched, not yet closing */
};

static void maybe_free(struct alertmanager *m);

/* ---- the body ------------------------------------------------------------------ */

static void add(cJSON *o, const char *key, cJSON *item)
{
	/* Cannot fail: cJSON allocates through gw_malloc (engine/json.h). */
	cJSON_AddItemToObject(o, key, item);
}

/* A PostableAlert from an Alertmanager alert object (alert.h's shape):
 * labels, annotations, startsAt, and endsAt when resolved. */
static cJSON *postable(const cJSON *al, bool resolved)
{
	cJSON *p = cJSON_CreateObject();
	static const char *const keys[] = { "labels", "annotations", "startsAt" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(al, keys[i]);

		if (v)
			add(p, keys[i], cJSON_Duplicate(v, 1));
	}
	if (resolved) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(al, "endsAt");

		if (cJSON_IsString(e))
			add(p, "endsAt", cJSON_CreateString(e->valuestring));
	}
	return p;
}

/* The body of a POST to t: every firing alert, then t's queued
 * resolutions (their seqs up to *ret_seq). */
static char *body_of(const struct target *t, uint64_t *ret_seq)
{
	cJSON *firing = alerts_firing_json(t->m->alerts), *arr = cJSON_CreateArray(), *al;
	uint64_t seq = 0;
	char *s;

	cJSON_ArrayForEach(al, firing)
		cJSON_AddItemToArray(arr, postable(al, false));
	for (size_t i = 0; i < t->nres; i++) {
		cJSON_AddItemToArray(arr, cJSON_Duplicate(t->res[i].alert, 1));
		seq = t->res[i].seq;
	}
	cJSON_Delete(firing);
	s = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	*ret_seq = seq;
	return s;
}

/* ---- libcurl on the loop ---------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
	struct alertmanager *m = h->data;

	m->open_handles--;
	maybe_free(m);
}

static void sock_closed(uv_handle_t *h)
{
	struct am_sock *s = (struct am_sock *)h;
	struct alertmanager *m = s->m;

	free(s);
	m->open_handles--;
	maybe_free(m);
}

static void post_done(struct target *t, CURLcode rc);

/* Stop watching a socket; its memory goes in the close callback. */
static void sock_release(struct am_sock *s)
{
	struct alertmanager *m = s->m;

	if (s->prev)
		s->prev->next = s->next;
	else
		m->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, sock_closed);
}

/* Read back the transfers that ended. */
static void check_done(struct alertmanager *m)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(m->multi, &left))) {
		struct target *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		post_done(t, msg->data.result);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct am_sock *s = (struct am_sock *)h;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(s->m->multi, s->fd, flags, &running);
	check_done(s->m);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd as libcurl asks. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct alertmanager *m = userp;
	struct am_sock *s = socketp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			sock_release(s);
			curl_multi_assign(m->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = gw_calloc(1, sizeof(*s));
		s->fd = fd;
		s->m = m;
		if (uv_poll_init_socket(m->loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->poll.data = m;
		m->open_handles++;
		s->next = m->socks;
		if (m->socks)
			m->socks->prev = s;
		m->socks = s;
		curl_multi_assign(m->multi, fd, s);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, on_poll);
	return 0;
}

static void on_curl_timer(uv_timer_t *h)
{
	struct alertmanager *m = h->data;
	int running;

	curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(m);
}

/* CURLMOPT_TIMERFUNCTION: call back in timeout_ms (-1: no timer). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct alertmanager *m = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&m->curl_timer);
	else
		uv_timer_start(&m->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- a target's POST ------------------------------------------------------------- */

static size_t on_answer(char *p, size_t size, size_t n, void *ud)
{
	struct target *t = ud;
	size_t len = size * n, room = AM_ANSWER_KEPT - t->answer_len;

	if (room > len)
		room = len;
	memcpy(t->answer + t->answer_len, p, room);
	t->answer_len += room;
	t->answer[t->answer_len] = 0;
	return len;
}

static void on_target_timer(uv_timer_t *h);

static void schedule(struct target *t, uint64_t ms)
{
	if (!t->m->closing)
		uv_timer_start(&t->timer, on_target_timer, ms, 0);
}

static void fail(struct target *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct target *t, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(t->last_error);
	t->last_error = gw_strdup(msg);
	t->ok = false;
	t->failures++;
	t->failed_total++;
	t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : AM_BACKOFF_MIN_MS;
	if (t->backoff_ms > t->m->resend_ms)
		t->backoff_ms = t->m->resend_ms;
	log_warn("alertmanager: POST \"%s\" failed (%" PRIu64 " in a row): %s; retrying in %" PRIu64
		 " ms", t->url, t->failures, msg, t->backoff_ms);
	schedule(t, t->backoff_ms);
}

/* Drop the resolutions the POST that succeeded carried. */
static void delivered(struct target *t)
{
	size_t j = 0;

	for (size_t i = 0; i < t->nres; i++) {
		if (t->res[i].seq <= t->sent_seq) {
			cJSON_Delete(t->res[i].alert);
			continue;
		}
		t->res[j++] = t->res[i];
	}
	t->nres = j;
}

static void succeeded(struct target *t);

static void post_done(struct target *t, CURLcode rc)
{
	long code = 0;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(t->m->multi, t->easy);
	curl_easy_cleanup(t->easy);
	t->easy = NULL;
	curl_slist_free_all(t->headers);
	t->headers = NULL;
	free(t->body);
	t->body = NULL;
	if (t->m->closing)
		return;
	if (rc != CURLE_OK)
		fail(t, "%s", curl_easy_strerror(rc));
	else if (code < 200 || code > 299)
		fail(t, "HTTP %ld: %.200s", code, t->answer);
	else
		succeeded(t);
	if (t->m->changed)
		t->m->changed(t->m->ud);
}

static void succeeded(struct target *t)
{
	uv_timeval64_t tv;

	if (t->failures)
		log_info("alertmanager: POST \"%s\" succeeded again after %" PRIu64 " failures",
			 t->url, t->failures);
	uv_gettimeofday(&tv);
	t->last_ok = (double)tv.tv_sec + tv.tv_usec * 1e-6;
	t->ok = true;
	t->sent++;
	t->failures = 0;
	t->backoff_ms = 0;
	delivered(t);
	schedule(t, t->dirty ? 0 : t->m->resend_ms);
	t->dirty = false;
}

static void post_start(struct target *t)
{
	struct alertmanager *m = t->m;
	CURL *e;
	CURLMcode mc;

	if (t->easy || m->closing)
		return;
	t->dirty = false;
	t->answer_len = 0;
	t->answer[0] = 0;
	t->body = body_of(t, &t->sent_seq);
	e = curl_easy_init();
	if (!e) {
		free(t->body);
		t->body = NULL;
		fail(t, "curl_easy_init failed");
		return;
	}
	t->headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* No "Expect: 100-continue" wait (a second for a body over 1 KiB to a
	 * server that does not answer it). */
	t->headers = curl_slist_append(t->headers, "Expect:");
	if (m->auth_hdr)
		t->headers = curl_slist_append(t->headers, m->auth_hdr);
	curl_easy_setopt(e, CURLOPT_URL, t->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)t);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(t->body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)m->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)m->timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* One POST per resend_ms: a kept connection would only be one more
	 * socket to watch between them. */
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "grokwatchd/" GW_VERSION);
	if (m->userpwd) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERPWD, m->userpwd);
	}
	if (m->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, m->ca_file);
	t->easy = e;
	if ((mc = curl_multi_add_handle(m->multi, e)) != CURLM_OK) {
		curl_easy_cleanup(e);
		t->easy = NULL;
		curl_slist_free_all(t->headers);
		t->headers = NULL;
		free(t->body);
		t->body = NULL;
		fail(t, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
	}
}

static void on_target_timer(uv_timer_t *h)
{
	post_start(h->data);
}

/* ---- lifecycle ------------------------------------------------------------------- */

/* A secret file's text without one trailing newline. */
static int read_secret(const char *path, const char *key, char **ret, struct gw_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int r = gw_file_read(path, AM_SECRET_MAX, &text, &len, err);

	if (r < 0)
		return gw_err_prefix(err, r, "alerts.alertmanager.%s", key);
	if (len && text[len - 1] == '\n')
		text[--len] = 0;
	if (len && text[len - 1] == '\r')
		text[--len] = 0;
	if (strlen(text) != len || !len) {
		free(text);
		return gw_errf(err, -EINVAL, "alerts.alertmanager.%s: \"%s\" is empty or holds a NUL",
			       key, path);
	}
	*ret = text;
	return 0;
}

static void maybe_free(struct alertmanager *m)
{
	if (!m->closing || m->open_handles > 0)
		return;
	for (int i = 0; i < m->nt; i++) {
		struct target *t = &m->t[i];

		for (size_t k = 0; k < t->nres; k++)
			cJSON_Delete(t->res[k].alert);
		free(t->res);
		free(t->url);
		free(t->last_error);
	}
	free(m->t);
	free(m->userpwd);
	free(m->auth_hdr);
	free(m->ca_file);
	free(m);
}

static int curl_global(struct gw_err *err)
{
	static bool done;
	CURLcode rc;

	if (done)
		return 0;
	if ((rc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK)
		return gw_errf(err, -EIO, "curl_global_init: %s", curl_easy_strerror(rc));
	done = true;
	return 0;
}

static int auth_init(struct alertmanager *m, const struct am_opts *o, struct gw_err *err)
{
	char *secret = NULL;
	int r;

	if (o->user && *o->user) {
		if ((r = read_secret(o->password_file ? o->password_file : "", "password_file",
				     &secret, err)) < 0)
			return r;
		m->userpwd = gw_malloc(strlen(o->user) + strlen(secret) + 2);
		snprintf(m->userpwd, strlen(o->user) + strlen(secret) + 2, "%s:%s", o->user, secret);
	} else if (o->bearer_token_file && *o->bearer_token_file) {
		if ((r = read_secret(o->bearer_token_file, "bearer_token_file", &secret, err)) < 0)
			return r;
		if (strpbrk(secret, "\r\n")) {
			free(secret);
			return gw_errf(err, -EINVAL, "alerts.alertmanager.bearer_token_file: \"%s\" "
				       "holds more than one line", o->bearer_token_file);
		}
		m->auth_hdr = gw_malloc(strlen(secret) + 32);
		snprintf(m->auth_hdr, strlen(secret) + 32, "Authorization: Bearer %s", secret);
	}
	if (secret)
		memset(secret, 0, strlen(secret));
	free(secret);
	return 0;
}

int alertmanager_new(uv_loop_t *loop, const struct am_opts *o, const struct alerts *alerts,
		     struct alertmanager **ret, struct gw_err *err)
{
	struct alertmanager *m;
	int r;

	if (o->n_urls < 1)
		return gw_errf(err, -EINVAL, "alerts.alertmanager.urls: empty");
	if ((r = curl_global(err)) < 0)
		return r;
	m = gw_calloc(1, sizeof(*m));
	m->loop = loop;
	m->alerts = alerts;
	m->resend_ms = o->resend_ms;
	m->timeout_ms = o->timeout_ms;
	m->changed = o->changed;
	m->ud = o->ud;
	if (o->ca_file && *o->ca_file)
		m->ca_file = gw_strdup(o->ca_file);
	if ((r = auth_init(m, o, err)) < 0) {
		free(m->ca_file);
		free(m);
		return r;
	}
	m->multi = curl_multi_init();
	if (!m->multi) {
		free(m->userpwd);
		free(m->auth_hdr);
		free(m->ca_file);
		free(m);
		return gw_errf(err, -ENOMEM, "curl_multi_init failed");
	}
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	uv_timer_init(loop, &m->curl_timer);
	m->curl_timer.data = m;
	m->open_handles = 1;
	m->nt = o->n_urls;
	m->t = gw_calloc((size_t)m->nt, sizeof(*m->t));
	for (int i = 0; i < m->nt; i++) {
		struct target *t = &m->t[i];
		size_t n = strlen(o->urls[i]);

		while (n && o->urls[i][n - 1] == '/')
			n--;
		t->m = m;
		t->url = gw_malloc(n + sizeof("/api/v2/alerts"));
		memcpy(t->url, o->urls[i], n);
		memcpy(t->url + n, "/api/v2/alerts", sizeof("/api/v2/alerts"));
		uv_timer_init(loop, &t->timer);
		t->timer.data = t;
		m->open_handles++;
		schedule(t, 0);
	}
	*ret = m;
	return 0;
}

/* Take back t's queued resolution of fp, if any. */
static void unqueue(struct target *t, const char *fp)
{
	for (size_t i = 0; i < t->nres; i++)
		if (!strcmp(t->res[i].fp, fp)) {
			cJSON_Delete(t->res[i].alert);
			memmove(&t->res[i], &t->res[i + 1], (t->nres - i - 1) * sizeof(*t->res));
			t->nres--;
			return;
		}
}

/* Queue a resolution, at most `max` kept (the oldest dropped; with a
 * warning unless quiet). */
static void enqueue(struct target *t, const char *fp, const cJSON *al, uint64_t seq, size_t max,
		    bool quiet)
{
	unqueue(t, fp);
	if (t->nres >= max) {
		if (!quiet)
			log_warn("alertmanager: \"%s\": more than %zu resolutions undelivered; "
				 "dropping the oldest (Alertmanager resolves it after its "
				 "resolve_timeout)", t->url, max);
		cJSON_Delete(t->res[0].alert);
		memmove(&t->res[0], &t->res[1], (t->nres - 1) * sizeof(*t->res));
		t->nres--;
	}
	if (t->nres == t->capres) {
		t->capres = t->capres ? 2 * t->capres : 16;
		t->res = gw_realloc(t->res, t->capres * sizeof(*t->res));
	}
	t->res[t->nres].seq = seq;
	snprintf(t->res[t->nres].fp, sizeof(t->res[t->nres].fp), "%s", fp);
	t->res[t->nres].alert = postable(al, true);
	t->nres++;
}

void alertmanager_transition(struct alertmanager *m, const cJSON *event)
{
	struct alert_info in;
	struct gw_err err = { "" };
	const cJSON *al;
	bool resolved;

	if (!m || m->closing || alert_event_info(event, &in, &err) < 0)
		return;
	al = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(event, "alerts"), 0);
	resolved = !strcmp(in.status, "resolved");
	if (resolved)
		m->seq++;
	for (int i = 0; i < m->nt; i++) {
		struct target *t = &m->t[i];

		if (resolved)
			enqueue(t, in.fingerprint, al, m->seq, AM_RESOLVED_MAX, false);
		else
			unqueue(t, in.fingerprint);
		if (t->easy)
			t->dirty = true;
		else if (t->failures == 0)
			schedule(t, 0);
		/* A failing target keeps its backoff: the retry carries it. */
	}
}

void alertmanager_restore(struct alertmanager *m, const cJSON *events)
{
	const cJSON *e;

	if (!m || m->closing)
		return;
	cJSON_ArrayForEach(e, events) {
		struct gw_err err = { "" };
		struct alert_info in;
		const cJSON *al;

		if (alert_event_info(e, &in, &err) < 0)
			continue;
		al = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "alerts"), 0);
		if (!strcmp(in.status, "resolved"))
			m->seq++;
		for (int i = 0; i < m->nt; i++) {
			if (!strcmp(in.status, "resolved"))
				enqueue(&m->t[i], in.fingerprint, al, m->seq, AM_RESTORE_MAX, true);
			else
				unqueue(&m->t[i], in.fingerprint);
		}
	}
}

static void format_time(double t, char out[32])
{
	time_t secs = (time_t)floor(t);
	struct tm tm;

	if (!gmtime_r(&secs, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "%s", "1970-01-01T00:00:00Z");
}

cJSON *alertmanager_status_json(const struct alertmanager *m)
{
	cJSON *arr = cJSON_CreateArray();

	for (int i = 0; m && i < m->nt; i++) {
		const struct target *t = &m->t[i];
		cJSON *o = cJSON_CreateObject();
		char ts[32];

		add(o, "url", cJSON_CreateString(t->url));
		add(o, "ok", cJSON_CreateBool(t->ok));
		add(o, "sent", cJSON_CreateNumber((double)t->sent));
		add(o, "failures", cJSON_CreateNumber((double)t->failures));
		add(o, "failed_total", cJSON_CreateNumber((double)t->failed_total));
		if (t->last_error)
			add(o, "last_error", cJSON_CreateString(t->last_error));
		if (t->last_ok > 0) {
			format_time(t->last_ok, ts);
			add(o, "last_ok", cJSON_CreateString(ts));
		}
		add(o, "resolved_pending", cJSON_CreateNumber((double)t->nres));
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

void alertmanager_close(struct alertmanager *m)
{
	size_t dropped = 0;

	if (!m || m->closing)
		return;
	m->closing = true;
	for (int i = 0; i < m->nt; i++) {
		struct target *t = &m->t[i];

		dropped += t->nres;
		if (t->easy)
			post_done(t, CURLE_ABORTED_BY_CALLBACK);
		uv_close((uv_handle_t *)&t->timer, handle_closed);
		t->timer.data = m;
	}
	if (dropped)
		log_warn("alertmanager: stopping with %zu resolution%s undelivered", dropped,
			 dropped == 1 ? "" : "s");
	curl_multi_cleanup(m->multi);
	m->multi = NULL;
	/* Sockets libcurl did not report removed (it need not, at cleanup). */
	while (m->socks)
		sock_release(m->socks);
	uv_close((uv_handle_t *)&m->curl_timer, handle_closed);
}
