/*
 * client.c — the subscriber of grokwatch.h: one SUB and one DEALER socket
 * per daemon, driven synchronously by zmq_poll from the caller's thread.
 *
 * In order: endpoints; the client's lifecycle and settings; per daemon,
 * the splice state machine (live messages buffered while a snapshot is
 * asked for, the snapshot's results handed over once each, then the
 * buffered and live messages checked for gaps and restarts); the
 * request/reply plumbing shared by the splice and the blocking queries;
 * gw_client_next; the queries.
 *
 * A daemon's state is SYNCING from connect until its snapshot reply, then
 * LIVE; a gap or a new epoch sends it back to SYNCING.  Replies carry the
 * "id" of their request, so a late reply to a request given up on (or to
 * a snapshot superseded by a newer one) is recognised and dropped.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "internal.h"

#define DAEMONS_MAX 64
#define FILTERS_MAX 32
#define FILTER_MAX 255
#define BUFFER_MAX 10000       /* live messages held while a snapshot is awaited */
#define RECV_BATCH 256         /* messages read from one socket per poll round */
#define DEFAULT_TIMEOUT_MS 5000
#define MAX_BYTES ((int64_t)GWC_MSG_MAX)
#define SEQ_LIMIT 9007199254740992ULL

enum daemon_state { SYNCING = GW_DAEMON_SYNCING, LIVE = GW_DAEMON_LIVE, FAILED = GW_DAEMON_FAILED };

struct daemon {
	size_t index;
	char pub_ep[GW_ENDPOINT_MAX], query_ep[GW_ENDPOINT_MAX];
	void *sub, *dealer;
	enum daemon_state state;
	char run[128];
	char epoch[64];        /* "" before the first snapshot */
	uint64_t seq;          /* last seq applied in epoch */
	uint64_t snap_id;      /* id of the snapshot request awaited, 0 = none */
	long long snap_sent_ms;
	long long syncing_since_ms;
	const char *resync_reason; /* NULL for the first snapshot */
	uint64_t resync_from;      /* last seq applied before a gap */
	char resync_prev_epoch[64];
	struct gw_msg **buf;   /* live messages held while SYNCING */
	size_t nbuf;
	int64_t *steps;        /* steps handed over, sorted */
	size_t nsteps, capsteps;
	long long heard_ms;    /* -1 = never */
	uint64_t received, gaps, restarts, malformed;
	char failure[GW_ERROR_MAX];
};

struct gw_client {
	void *zctx;
	struct daemon *d[DAEMONS_MAX];
	size_t nd;
	char *filters[FILTERS_MAX];
	size_t nfilters;
	int timeout_ms;
	bool curve;
	char server_key[41];
	uint64_t next_id;
	struct gw_msg **q;     /* messages ready to hand over */
	size_t qhead, qlen, qcap;
	char err[GW_ERROR_MAX];
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct gw_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return code;
}

/* ---- endpoints --------------------------------------------------------------- */

static int copy_ep(char *dst, const char *src, size_t len)
{
	const char *sep;

	if (len == 0)
		return -EINVAL;
	if (len >= GW_ENDPOINT_MAX)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)src[i] <= 32 || src[i] == ',' || (unsigned char)src[i] >= 127)
			return -EINVAL;
	memcpy(dst, src, len);
	dst[len] = 0;
	/* A transport, "://", and an address. */
	sep = strstr(dst, "://");
	if (!sep || sep == dst || !sep[3])
		return -EINVAL;
	return 0;
}

int gw_endpoint_parse(const char *spec, char *ret_pub, char *ret_query)
{
	char pub[GW_ENDPOINT_MAX], query[GW_ENDPOINT_MAX];
	const char *comma, *colon, *host;
	unsigned long port;
	char *end;
	size_t hl;
	int r, n;

	if (!spec)
		return -EINVAL;
	if (strlen(spec) >= 2 * GW_ENDPOINT_MAX)
		return -ENAMETOOLONG;
	if ((comma = strchr(spec, ','))) {
		if ((r = copy_ep(pub, spec, (size_t)(comma - spec))) < 0 ||
		    (r = copy_ep(query, comma + 1, strlen(comma + 1))) < 0)
			return r;
		if (!strcmp(pub, query))
			return -EINVAL;
		goto out;
	}
	if ((r = copy_ep(pub, spec, strlen(spec))) < 0)
		return r;
	if (strncmp(pub, "tcp://", 6))
		return -EINVAL; /* no port to add 1 to */
	host = pub + 6;
	colon = strrchr(host, ':');
	if (!colon || colon == host)
		return -EINVAL;
	hl = (size_t)(colon - host);
	if (host[0] == '[' ? host[hl - 1] != ']' || hl < 3 : memchr(host, ']', hl) != NULL)
		return -EINVAL;
	if (colon[1] < '1' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || errno || port < 1 || port > 65534)
		return -EINVAL;
	n = snprintf(query, sizeof(query), "tcp://%.*s:%lu", (int)hl, host, port + 1);
	if (n < 0 || (size_t)n >= sizeof(query))
		return -ENAMETOOLONG;
out:
	memcpy(ret_pub, pub, strlen(pub) + 1);
	memcpy(ret_query, query, strlen(query) + 1);
	return 0;
}

/* ---- lifecycle -------------------------------------------------------------------- */

int gw_client_new(struct gw_client **ret_client)
{
	struct gw_client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	if (!(c->zctx = zmq_ctx_new())) {
		int e = errno ? errno : ENOMEM;

		free(c);
		return -e;
	}
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	c->next_id = 1;
	*ret_client = c;
	return 0;
}

static void daemon_free(struct daemon *d)
{
	if (!d)
		return;
	if (d->sub)
		zmq_close(d->sub);
	if (d->dealer)
		zmq_close(d->dealer);
	for (size_t i = 0; i < d->nbuf; i++)
		gw_msg_free(d->buf[i]);
	free(d->buf);
	free(d->steps);
	free(d);
}

void gw_client_free(struct gw_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nd; i++)
		daemon_free(c->d[i]);
	for (size_t i = 0; i < c->nfilters; i++)
		free(c->filters[i]);
	for (size_t i = 0; i < c->qlen; i++)
		gw_msg_free(c->q[(c->qhead + i) % c->qcap]);
	free(c->q);
	zmq_ctx_term(c->zctx); /* every socket has linger 0: returns at once */
	free(c);
}

const char *gw_client_error(const struct gw_client *c)
{
	return c->err;
}

void gw_client_set_timeout(struct gw_client *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms < 1 ? 1 : timeout_ms;
}

int gw_client_set_server_key(struct gw_client *c, const char *z85)
{
	uint8_t bin[32];

	if (!z85) {
		c->curve = false;
		return 0;
	}
	if (strlen(z85) != 40 || !zmq_z85_decode(bin, z85))
		return fail(c, -EINVAL, "server key: not a Z85 CURVE key (40 characters)");
	if (!zmq_has("curve"))
		return fail(c, -ENOTSUP, "server key: libzmq lacks CURVE");
	memcpy(c->server_key, z85, 41);
	c->curve = true;
	return 0;
}

int gw_client_subscribe(struct gw_client *c, const char *prefix)
{
	if (!prefix)
		return -EINVAL;
	if (strlen(prefix) > FILTER_MAX)
		return fail(c, -ENAMETOOLONG, "topic filter \"%.40s...\": over %d bytes", prefix,
			    FILTER_MAX);
	if (c->nfilters == FILTERS_MAX)
		return fail(c, -E2BIG, "more than %d topic filters", FILTERS_MAX);
	if (!(c->filters[c->nfilters] = strdup(prefix)))
		return -ENOMEM;
	c->nfilters++;
	return 0;
}

static int set_opts(struct gw_client *c, void *s, bool curve)
{
	int zero = 0;
	int64_t max = MAX_BYTES;
	char pub[41], sec[41];

	if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) < 0 ||
	    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) < 0)
		return -zmq_errno();
	if (!curve)
		return 0;
	if (zmq_curve_keypair(pub, sec) < 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, c->server_key, 40) < 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40) < 0 ||
	    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40) < 0)
		return -zmq_errno();
	return 0;
}

static int send_snapshot_request(struct gw_client *c, struct daemon *d);

int gw_client_connect(struct gw_client *c, const char *endpoint)
{
	struct daemon *d;
	int r;

	if (c->nd == DAEMONS_MAX)
		return fail(c, -E2BIG, "\"%s\": more than %d daemons", endpoint, DAEMONS_MAX);
	if (!(d = calloc(1, sizeof(*d))))
		return -ENOMEM;
	if ((r = gw_endpoint_parse(endpoint, d->pub_ep, d->query_ep)) < 0) {
		fail(c, r, "\"%.300s\": not an endpoint (tcp://HOST:PORT, or PUB,QUERY)",
		     endpoint ? endpoint : "(null)");
		goto fail;
	}
	d->index = c->nd;
	d->heard_ms = -1;
	d->state = SYNCING;
	d->syncing_since_ms = now_ms();
	d->sub = zmq_socket(c->zctx, ZMQ_SUB);
	d->dealer = zmq_socket(c->zctx, ZMQ_DEALER);
	if (!d->sub || !d->dealer) {
		r = fail(c, -zmq_errno(), "\"%s\": zmq_socket: %s", d->pub_ep,
			 zmq_strerror(zmq_errno()));
		goto fail;
	}
	if ((r = set_opts(c, d->sub, c->curve)) < 0 || (r = set_opts(c, d->dealer, c->curve)) < 0 ||
	    (zmq_setsockopt(d->sub, ZMQ_SUBSCRIBE, "", 0) < 0 && (r = -zmq_errno()))) {
		fail(c, r, "\"%s\": socket options: %s", d->pub_ep, zmq_strerror(-r));
		goto fail;
	}
	if (zmq_connect(d->sub, d->pub_ep) < 0) {
		r = fail(c, -zmq_errno(), "\"%s\": connect: %s", d->pub_ep, zmq_strerror(zmq_errno()));
		goto fail;
	}
	if (zmq_connect(d->dealer, d->query_ep) < 0) {
		r = fail(c, -zmq_errno(), "\"%s\": connect: %s", d->query_ep,
			 zmq_strerror(zmq_errno()));
		goto fail;
	}
	if ((r = send_snapshot_request(c, d)) < 0)
		goto fail;
	c->d[c->nd++] = d;
	return 0;
fail:
	daemon_free(d);
	return r;
}

size_t gw_client_daemon_count(const struct gw_client *c)
{
	return c->nd;
}

int gw_client_daemon_info(const struct gw_client *c, size_t i, struct gw_daemon_info *ret_info)
{
	const struct daemon *d;

	if (i >= c->nd)
		return -ERANGE;
	d = c->d[i];
	memset(ret_info, 0, sizeof(*ret_info));
	ret_info->pub_endpoint = d->pub_ep;
	ret_info->query_endpoint = d->query_ep;
	ret_info->run = d->run;
	ret_info->epoch = d->epoch;
	ret_info->state = (enum gw_daemon_state)d->state;
	ret_info->seq = d->seq;
	ret_info->silent_ms = d->heard_ms < 0 ? -1 : now_ms() - d->heard_ms;
	ret_info->received = d->received;
	ret_info->gaps = d->gaps;
	ret_info->restarts = d->restarts;
	ret_info->malformed = d->malformed;
	return 0;
}

/* ---- hand-over queue ---------------------------------------------------------------- */

static bool wanted(const struct gw_client *c, const struct gw_msg *m)
{
	if (c->nfilters == 0)
		return strcmp(m->type, "heartbeat") != 0;
	for (size_t i = 0; i < c->nfilters; i++)
		if (!strncmp(m->topic, c->filters[i], strlen(c->filters[i])))
			return true;
	return false;
}

/* Queue m (consumed) for gw_client_next if the filters want it. */
static int hand_over(struct gw_client *c, struct gw_msg *m)
{
	if (!wanted(c, m)) {
		gw_msg_free(m);
		return 0;
	}
	if (c->qlen == c->qcap) {
		size_t cap = c->qcap ? 2 * c->qcap : 64;
		struct gw_msg **q = malloc(cap * sizeof(*q));

		if (!q) {
			gw_msg_free(m);
			return -ENOMEM;
		}
		for (size_t i = 0; i < c->qlen; i++)
			q[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = q;
		c->qcap = cap;
		c->qhead = 0;
	}
	c->q[(c->qhead + c->qlen) % c->qcap] = m;
	c->qlen++;
	return 0;
}

/* ---- steps handed over -------------------------------------------------------------- */

static size_t step_lower_bound(const struct daemon *d, int64_t step)
{
	size_t lo = 0, hi = d->nsteps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->steps[mid] < step)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool step_seen(const struct daemon *d, int64_t step)
{
	size_t i = step_lower_bound(d, step);

	return i < d->nsteps && d->steps[i] == step;
}

static int step_mark(struct daemon *d, int64_t step)
{
	size_t i = step_lower_bound(d, step);

	if (i < d->nsteps && d->steps[i] == step)
		return 0;
	if (d->nsteps == d->capsteps) {
		size_t cap = d->capsteps ? 2 * d->capsteps : 64;
		int64_t *s = realloc(d->steps, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		d->steps = s;
		d->capsteps = cap;
	}
	memmove(d->steps + i + 1, d->steps + i, (d->nsteps - i) * sizeof(*d->steps));
	d->steps[i] = step;
	d->nsteps++;
	return 0;
}

/* ---- the splice ------------------------------------------------------------------------ */

static void buffer_clear(struct daemon *d)
{
	for (size_t i = 0; i < d->nbuf; i++)
		gw_msg_free(d->buf[i]);
	d->nbuf = 0;
}

/* Keep m (consumed) until the snapshot reply; on overflow, start over with
 * a new snapshot request. */
static int buffer_add(struct gw_client *c, struct daemon *d, struct gw_msg *m)
{
	if (!d->buf && !(d->buf = malloc(BUFFER_MAX * sizeof(*d->buf)))) {
		gw_msg_free(m);
		return -ENOMEM;
	}
	if (d->nbuf == BUFFER_MAX) {
		buffer_clear(d);
		gw_msg_free(m);
		return send_snapshot_request(c, d);
	}
	d->buf[d->nbuf++] = m;
	return 0;
}

/* Leave LIVE for a new snapshot; m (consumed) is the message that showed
 * the gap or the new epoch. */
static int resync(struct gw_client *c, struct daemon *d, struct gw_msg *m, bool restart)
{
	int r;

	d->resync_reason = restart ? "restart" : "gap";
	d->resync_from = d->seq;
	snprintf(d->resync_prev_epoch, sizeof(d->resync_prev_epoch), "%s", d->epoch);
	if (restart)
		d->restarts++;
	else
		d->gaps++;
	d->state = SYNCING;
	d->syncing_since_ms = now_ms();
	if ((r = send_snapshot_request(c, d)) < 0) {
		gw_msg_free(m);
		return r;
	}
	return buffer_add(c, d, m);
}

/* A live message (consumed) for a LIVE daemon. */
static int apply_live(struct gw_client *c, struct daemon *d, struct gw_msg *m)
{
	int64_t step;
	int r;

	if (strcmp(m->epoch, d->epoch))
		return resync(c, d, m, true);
	if (!strcmp(m->type, "heartbeat")) {
		if (m->seq > d->seq)
			return resync(c, d, m, false);
		return hand_over(c, m);
	}
	if (m->seq <= d->seq) {
		gw_msg_free(m); /* seen in the snapshot or before */
		return 0;
	}
	if (m->seq > d->seq + 1)
		return resync(c, d, m, false);
	d->seq = m->seq;
	if (!strcmp(m->type, "metrics") && gw_msg_step(m, &step) == 0 &&
	    (r = step_mark(d, step)) < 0) {
		gw_msg_free(m);
		return r;
	}
	return hand_over(c, m);
}

static int resync_notice(struct gw_client *c, struct daemon *d, const char *epoch)
{
	cJSON *b = cJSON_CreateObject();
	struct gw_msg *m;
	int r;

	if (!b)
		return -ENOMEM;
	if (!cJSON_AddStringToObject(b, "type", "resync") ||
	    !cJSON_AddStringToObject(b, "reason", d->resync_reason) ||
	    !cJSON_AddStringToObject(b, "run", d->run) ||
	    !cJSON_AddStringToObject(b, "epoch", epoch) ||
	    !cJSON_AddStringToObject(b, "endpoint", d->pub_ep) ||
	    !cJSON_AddNumberToObject(b, "time", (double)time(NULL)) ||
	    (!strcmp(d->resync_reason, "gap") &&
	     !cJSON_AddNumberToObject(b, "after_seq", (double)d->resync_from)) ||
	    (!strcmp(d->resync_reason, "restart") &&
	     !cJSON_AddStringToObject(b, "previous_epoch", d->resync_prev_epoch))) {
		cJSON_Delete(b);
		return -ENOMEM;
	}
	if ((r = gwc_msg_new(b, NULL, NULL, &m)) < 0)
		return r;
	m->daemon = d->index;
	return hand_over(c, m);
}

/* The snapshot reply (borrowed; type "snapshot", id checked) for d. */
static int apply_snapshot(struct gw_client *c, struct daemon *d, cJSON *reply)
{
	const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(reply, "epoch");
	const cJSON *run = cJSON_GetObjectItemCaseSensitive(reply, "run");
	cJSON *results = cJSON_GetObjectItemCaseSensitive(reply, "results"), *res;
	uint64_t snap_seq, applied;
	bool new_epoch, seen_epoch = false;
	size_t i, nbuf;
	int r = 0;

	if (!cJSON_IsString(epoch) || !*epoch->valuestring ||
	    strlen(epoch->valuestring) >= sizeof(d->epoch) || !cJSON_IsString(run) ||
	    gwc_json_uint(cJSON_GetObjectItemCaseSensitive(reply, "seq"), SEQ_LIMIT, &snap_seq) < 0 ||
	    !cJSON_IsArray(results)) {
		d->malformed++;
		return 0; /* resent after the timeout */
	}
	d->snap_id = 0;
	snprintf(d->run, sizeof(d->run), "%s", run->valuestring);
	new_epoch = strcmp(d->epoch, epoch->valuestring) != 0;
	if (d->resync_reason && new_epoch)
		d->resync_reason = "restart";
	if (d->resync_reason && (r = resync_notice(c, d, epoch->valuestring)) < 0)
		return r;
	d->resync_reason = NULL;
	/* Results already handed over: those of this epoch up to d->seq, and
	 * those of earlier epochs (seq 0 here: restored from the journal). */
	applied = new_epoch ? 0 : d->seq;
	cJSON_ArrayForEach(res, results) {
		uint64_t seq, step;
		cJSON *copy;
		struct gw_msg *m;

		if (!cJSON_IsObject(res) ||
		    gwc_json_uint(cJSON_GetObjectItemCaseSensitive(res, "seq"), SEQ_LIMIT, &seq) < 0 ||
		    gwc_json_uint(cJSON_GetObjectItemCaseSensitive(res, "step"), SEQ_LIMIT, &step) < 0) {
			d->malformed++;
			continue;
		}
		if (seq > 0 ? seq <= applied : step_seen(d, (int64_t)step))
			continue;
		if ((r = step_mark(d, (int64_t)step)) < 0)
			return r;
		if (!(copy = cJSON_Duplicate(res, 1)))
			return -ENOMEM;
		if ((r = gwc_msg_new(copy, NULL, NULL, &m)) < 0)
			return r;
		m->replayed = true;
		m->daemon = d->index;
		if ((r = hand_over(c, m)) < 0)
			return r;
	}
	snprintf(d->epoch, sizeof(d->epoch), "%s", epoch->valuestring);
	d->seq = snap_seq;
	d->state = LIVE;
	/* The held messages: those of another epoch that came before any of
	 * this epoch were sent before a restart the snapshot already covers;
	 * the rest go through the live rules (which may resync again). */
	nbuf = d->nbuf;
	d->nbuf = 0;
	for (i = 0; i < nbuf; i++) {
		struct gw_msg *m = d->buf[i];

		d->buf[i] = NULL;
		if (r < 0 || (!seen_epoch && strcmp(m->epoch, d->epoch))) {
			gw_msg_free(m);
			continue;
		}
		seen_epoch = true;
		if (d->state == LIVE)
			r = apply_live(c, d, m);
		else
			r = buffer_add(c, d, m);
	}
	return r;
}

/* ---- requests and replies ---------------------------------------------------------------- */

static int send_request(struct gw_client *c, struct daemon *d, cJSON *req, uint64_t *ret_id)
{
	uint64_t id = c->next_id++;
	char *text;
	int r = 0;

	if (!cJSON_AddNumberToObject(req, "id", (double)id) || !(text = cJSON_PrintUnformatted(req)))
		return -ENOMEM;
	/* DEALER queues while disconnected; EAGAIN only at the high-water
	 * mark, where the request is lost and its timeout resends it. */
	if (zmq_send(d->dealer, text, strlen(text), ZMQ_DONTWAIT) < 0 && zmq_errno() != EAGAIN)
		r = fail(c, -zmq_errno(), "\"%s\": send: %s", d->query_ep, zmq_strerror(zmq_errno()));
	free(text);
	if (r == 0)
		*ret_id = id;
	return r;
}

static int send_snapshot_request(struct gw_client *c, struct daemon *d)
{
	cJSON *req = cJSON_CreateObject();
	int r = -ENOMEM;

	buffer_clear(d);
	if (req && cJSON_AddStringToObject(req, "req", "snapshot"))
		r = send_request(c, d, req, &d->snap_id);
	cJSON_Delete(req);
	if (r == 0)
		d->snap_sent_ms = now_ms();
	return r;
}

/* Receive one whole message from s without waiting: the frames' count
 * (at most 2 kept in f, the rest dropped), 0 if none, or -errno. */
static int recv_frames(void *s, zmq_msg_t f[2])
{
	int n = 0, more = 1;

	while (more) {
		zmq_msg_t tmp, *m = n < 2 ? &f[n] : &tmp;
		size_t sz = sizeof(more);

		zmq_msg_init(m);
		if (zmq_msg_recv(m, s, ZMQ_DONTWAIT) < 0) {
			int e = zmq_errno();

			zmq_msg_close(m);
			for (int i = 0; i < n && i < 2; i++)
				zmq_msg_close(&f[i]);
			return n == 0 && e == EAGAIN ? 0 : -e;
		}
		if (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &sz) < 0)
			more = 0;
		if (m == &tmp)
			zmq_msg_close(m);
		n++;
	}
	return n;
}

static void close_frames(zmq_msg_t f[2], int n)
{
	for (int i = 0; i < n && i < 2; i++)
		zmq_msg_close(&f[i]);
}

/* Read what the SUB socket of d holds. */
static int drain_sub(struct gw_client *c, struct daemon *d)
{
	for (int k = 0; k < RECV_BATCH; k++) {
		zmq_msg_t f[2];
		char topic[FILTER_MAX + 1];
		struct gw_msg *m;
		int n = recv_frames(d->sub, f), r;

		if (n <= 0)
			return n == -EAGAIN ? 0 : n;
		d->received++;
		d->heard_ms = now_ms();
		if (n != 2 || zmq_msg_size(&f[0]) > FILTER_MAX ||
		    memchr(zmq_msg_data(&f[0]), 0, zmq_msg_size(&f[0]))) {
			d->malformed++;
			close_frames(f, n);
			continue;
		}
		memcpy(topic, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]));
		topic[zmq_msg_size(&f[0])] = 0;
		r = gw_msg_parse(topic, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &m);
		close_frames(f, n);
		if (r == -ENOMEM)
			return r;
		/* The live rules need seq and epoch on everything. */
		if (r < 0 || !*m->epoch ||
		    !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(m->body, "seq"))) {
			d->malformed++;
			if (r == 0)
				gw_msg_free(m);
			continue;
		}
		m->daemon = d->index;
		if (d->state == FAILED)
			gw_msg_free(m);
		else if (d->state == SYNCING)
			r = buffer_add(c, d, m);
		else
			r = apply_live(c, d, m);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Parse a reply; NULL (and malformed counted) if it is not an object.
 * ret_id: the id, 0 if none. */
static cJSON *parse_reply(struct daemon *d, zmq_msg_t *f, uint64_t *ret_id, char **ret_text)
{
	size_t len = zmq_msg_size(f);
	const char *end = NULL;
	char *text;
	cJSON *r;

	*ret_id = 0;
	if (memchr(zmq_msg_data(f), 0, len) || !(text = malloc(len + 1))) {
		d->malformed++;
		return NULL;
	}
	memcpy(text, zmq_msg_data(f), len);
	text[len] = 0;
	r = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!cJSON_IsObject(r)) {
		d->malformed++;
		cJSON_Delete(r);
		free(text);
		return NULL;
	}
	if (gwc_json_uint(cJSON_GetObjectItemCaseSensitive(r, "id"), SEQ_LIMIT, ret_id) < 0)
		*ret_id = 0;
	*ret_text = text;
	return r;
}

/*
 * Read what the DEALER of d holds.  A reply whose id is `want` (not 0) is
 * returned in *ret_reply and *ret_text instead of being applied; snapshot
 * replies for the splice are applied; anything else is stale and dropped.
 */
static int drain_dealer(struct gw_client *c, struct daemon *d, uint64_t want, cJSON **ret_reply,
			char **ret_text)
{
	for (int k = 0; k < RECV_BATCH; k++) {
		zmq_msg_t f[2];
		uint64_t id;
		char *text = NULL;
		cJSON *reply;
		int n = recv_frames(d->dealer, f), r = 0;

		if (n <= 0)
			return n == -EAGAIN ? 0 : n;
		d->heard_ms = now_ms();
		if (n != 1) {
			d->malformed++;
			close_frames(f, n);
			continue;
		}
		reply = parse_reply(d, &f[0], &id, &text);
		close_frames(f, n);
		if (!reply)
			continue;
		if (want && id == want) {
			*ret_reply = reply;
			*ret_text = text;
			return 1;
		}
		if (d->snap_id && id == d->snap_id) {
			const cJSON *type = cJSON_GetObjectItemCaseSensitive(reply, "type");
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");

			if (cJSON_IsString(type) && !strcmp(type->valuestring, "snapshot")) {
				r = apply_snapshot(c, d, reply);
			} else {
				snprintf(d->failure, sizeof(d->failure),
					 "\"%.200s\": the daemon refused the snapshot request: %.200s",
					 d->query_ep, cJSON_IsString(e) ? e->valuestring : text);
				d->state = FAILED;
				d->snap_id = 0;
				buffer_clear(d);
			}
		}
		cJSON_Delete(reply);
		free(text);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- gw_client_next ------------------------------------------------------------------------ */

static struct gw_msg *pop(struct gw_client *c)
{
	struct gw_msg *m = c->q[c->qhead];

	c->qhead = (c->qhead + 1) % c->qcap;
	c->qlen--;
	return m;
}

/*
 * One round: resend overdue snapshot requests, wait up to wait_ms for any
 * socket (plus `extra`, a DEALER whose reply with id `want` is awaited),
 * and read them all.  Returns 1 if the awaited reply came (in *ret_reply,
 * *ret_text), 0 otherwise, or -errno.
 */
static int poll_round(struct gw_client *c, int wait_ms, struct daemon *extra, uint64_t want,
		      cJSON **ret_reply, char **ret_text)
{
	zmq_pollitem_t items[2 * DAEMONS_MAX];
	long long now = now_ms();
	int n, r, got = 0;

	for (size_t i = 0; i < c->nd; i++) {
		struct daemon *d = c->d[i];

		if (d->state == SYNCING && now - d->snap_sent_ms >= c->timeout_ms &&
		    (r = send_snapshot_request(c, d)) < 0)
			return r;
		items[2 * i] = (zmq_pollitem_t){ .socket = d->sub, .events = ZMQ_POLLIN };
		items[2 * i + 1] = (zmq_pollitem_t){ .socket = d->dealer, .events = ZMQ_POLLIN };
	}
	n = zmq_poll(items, (int)(2 * c->nd), wait_ms);
	if (n < 0)
		return zmq_errno() == EINTR ? -EINTR : -zmq_errno();
	for (size_t i = 0; i < c->nd; i++) {
		struct daemon *d = c->d[i];

		if ((items[2 * i].revents & ZMQ_POLLIN) && (r = drain_sub(c, d)) < 0)
			return r;
		if (items[2 * i + 1].revents & ZMQ_POLLIN) {
			r = drain_dealer(c, d, d == extra ? want : 0, ret_reply, ret_text);
			if (r < 0)
				return r;
			if (r == 1)
				got = 1;
		}
	}
	return got;
}

static int timeout_error(struct gw_client *c, int timeout_ms)
{
	long long now = now_ms();
	size_t len = 0;

	c->err[0] = 0;
	for (size_t i = 0; i < c->nd; i++) {
		const struct daemon *d = c->d[i];
		int n;

		if (d->state != SYNCING || len >= sizeof(c->err))
			continue;
		n = snprintf(c->err + len, sizeof(c->err) - len,
			     "%s\"%s\": no reply to the snapshot request in %lld ms "
			     "(is grokwatchd running there?)", len ? "; " : "", d->query_ep,
			     now - d->syncing_since_ms);
		if (n > 0)
			len += (size_t)n;
	}
	if (!len)
		snprintf(c->err, sizeof(c->err), "no message within %d ms", timeout_ms);
	return -ETIMEDOUT;
}

int gw_client_next(struct gw_client *c, int timeout_ms, struct gw_msg **ret_msg)
{
	long long end = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	bool polled = false;
	int r;

	if (c->nd == 0)
		return fail(c, -ENOTCONN, "no daemon to follow (connect to one first)");
	for (;;) {
		long long now = now_ms(), wait;

		if (c->qlen) {
			*ret_msg = pop(c);
			return 0;
		}
		for (size_t i = 0; i < c->nd; i++)
			if (c->d[i]->state == FAILED && c->d[i]->failure[0]) {
				r = fail(c, -EPROTO, "%s", c->d[i]->failure);
				c->d[i]->failure[0] = 0;
				return r;
			}
		/* The sockets are read at least once, even with no time to wait. */
		if (polled && end >= 0 && now >= end)
			return timeout_error(c, timeout_ms);
		/* Wake up in time to resend a snapshot request. */
		wait = end < 0 ? c->timeout_ms : end - now;
		if (wait > c->timeout_ms)
			wait = c->timeout_ms;
		if (wait < 0)
			wait = 0;
		polled = true;
		if ((r = poll_round(c, (int)wait, NULL, 0, NULL, NULL)) < 0)
			return r == -EINTR ? fail(c, r, "interrupted")
					   : fail(c, r, "receive: %s", strerror(-r));
	}
}

/* ---- queries -------------------------------------------------------------------------------- */

/* Send req (borrowed) to daemon i and wait for its reply. */
static int query(struct gw_client *c, size_t i, cJSON *req, const char *what, cJSON **ret_reply,
		 char **ret_text)
{
	struct daemon *d;
	long long end;
	uint64_t id;
	int r;

	if (i >= c->nd)
		return fail(c, -ERANGE, "no daemon %zu", i);
	d = c->d[i];
	if ((r = send_request(c, d, req, &id)) < 0)
		return r;
	end = now_ms() + c->timeout_ms;
	for (;;) {
		long long now = now_ms();

		if (now >= end)
			return fail(c, -ETIMEDOUT,
				    "\"%s\": no reply to the %s request within %d ms "
				    "(is grokwatchd running there?)", d->query_ep, what, c->timeout_ms);
		r = poll_round(c, (int)(end - now), d, id, ret_reply, ret_text);
		if (r < 0)
			return fail(c, r, "\"%s\": %s request: %s", d->query_ep, what, strerror(-r));
		if (r == 1)
			return 0;
	}
}

static int check_reply(struct gw_client *c, size_t i, cJSON *reply, const char *text,
		       const char *type)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(reply, "type");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");

	if (cJSON_IsString(t) && !strcmp(t->valuestring, type))
		return 0;
	if (cJSON_IsString(t) && !strcmp(t->valuestring, "error") && cJSON_IsString(e))
		return fail(c, -EPROTO, "\"%s\": the daemon refused the %s request: %.300s",
			    c->d[i]->query_ep, type, e->valuestring);
	return fail(c, -EPROTO, "\"%s\": unexpected reply to the %s request: %.200s",
		    c->d[i]->query_ep, type, text);
}

/* Send req (borrowed) to daemon i and hand its reply, of the given type, back as a message. */
static int query_msg(struct gw_client *c, size_t i, cJSON *req, const char *type,
		     struct gw_msg **ret_msg)
{
	cJSON *reply = NULL;
	char *text = NULL;
	struct gw_msg *m;
	int r;

	if ((r = query(c, i, req, type, &reply, &text)) < 0 ||
	    (r = check_reply(c, i, reply, text, type)) < 0) {
		cJSON_Delete(reply);
		free(text);
		return r;
	}
	if ((r = gwc_msg_new(reply, NULL, text, &m)) == 0) {
		m->daemon = i;
		*ret_msg = m;
	}
	return r;
}

static int add_range(cJSON *req, int64_t from, int64_t to)
{
	if (from >= 0 && !cJSON_AddNumberToObject(req, "from", (double)from))
		return -ENOMEM;
	if (to >= 0 && !cJSON_AddNumberToObject(req, "to", (double)to))
		return -ENOMEM;
	return 0;
}

static int check_range(struct gw_client *c, int64_t from, int64_t to)
{
	if (from < GW_STEP_NONE || to < GW_STEP_NONE || (from >= 0 && to >= 0 && from > to) ||
	    from >= (int64_t)SEQ_LIMIT || to >= (int64_t)SEQ_LIMIT)
		return fail(c, -EINVAL, "step range %lld..%lld: expected 0 <= from <= to",
			    (long long)from, (long long)to);
	return 0;
}

int gw_client_history(struct gw_client *c, size_t i, const char *metric, const char *group,
		      int64_t from, int64_t to, struct gw_history **ret_history)
{
	cJSON *req = NULL, *reply = NULL;
	char *text = NULL, why[200];
	int r;

	if (!metric || !*metric || strlen(metric) > 128 || !group || !*group || strlen(group) > 128)
		return fail(c, -EINVAL, "history: metric and group must be 1 to 128 bytes");
	if ((r = check_range(c, from, to)) < 0)
		return r;
	r = -ENOMEM;
	if (!(req = cJSON_CreateObject()) || !cJSON_AddStringToObject(req, "req", "history") ||
	    !cJSON_AddStringToObject(req, "metric", metric) ||
	    !cJSON_AddStringToObject(req, "group", group) || add_range(req, from, to) < 0)
		goto out;
	if ((r = query(c, i, req, "history", &reply, &text)) < 0 ||
	    (r = check_reply(c, i, reply, text, "history")) < 0)
		goto out;
	if ((r = gwc_history_new(reply, text, ret_history, why, sizeof(why))) == -EPROTO)
		fail(c, r, "\"%s\": %s", c->d[i]->query_ep, why);
out:
	cJSON_Delete(req);
	cJSON_Delete(reply);
	free(text);
	return r;
}

int gw_client_alerts(struct gw_client *c, size_t i, int resolved, struct gw_msg **ret_alerts)
{
	cJSON *req = NULL;
	int r;

	if (resolved < 0 || resolved > 1000)
		return fail(c, -EINVAL, "alerts: resolved must be 0 to 1000, not %d", resolved);
	r = -ENOMEM;
	if (!(req = cJSON_CreateObject()) || !cJSON_AddStringToObject(req, "req", "alerts") ||
	    !cJSON_AddNumberToObject(req, "resolved", resolved))
		goto out;
	r = query_msg(c, i, req, "alerts", ret_alerts);
out:
	cJSON_Delete(req);
	return r;
}

int gw_client_snapshot(struct gw_client *c, size_t i, int64_t from, int64_t to,
		       struct gw_msg **ret_snapshot)
{
	cJSON *req = NULL;
	int r;

	if ((r = check_range(c, from, to)) < 0)
		return r;
	r = -ENOMEM;
	if (!(req = cJSON_CreateObject()) || !cJSON_AddStringToObject(req, "req", "snapshot") ||
	    add_range(req, from, to) < 0)
		goto out;
	r = query_msg(c, i, req, "snapshot", ret_snapshot);
out:
	cJSON_Delete(req);
	return r;
}
