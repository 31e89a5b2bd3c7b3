"""grokwatch.py — follow grokwatchd daemons from Python (notebooks, dashboards).

The same protocol and the same catch-up as the C library (include/grokwatch.h),
with Debian's python3-zmq and nothing else:

    from grokwatch import Subscriber
    with Subscriber(["tcp://127.0.0.1:5557"]) as sub:
        for m in sub.messages():
            if m.type == "metrics":
                print(m.step, m.value("all", "pathway_distance"))

A daemon has a PUB endpoint (messages: topic "<type>.<run>", a JSON body with
type, seq, epoch, run, time) and a query endpoint (snapshot and history).
"tcp://HOST:PORT" means the query endpoint is PORT+1; "PUB,QUERY" gives both.

Catching up: on connect the subscriber asks for a snapshot at once, yields its
results (replayed=True, in step order), then the live messages with a seq
above the snapshot's.  Within one daemon process (epoch) seq grows by one per
message and heartbeats repeat the last seq: a jump is a gap, a new epoch a
restart; either way a new snapshot is taken and only results not yet yielded
are yielded, after a synthetic message of type "resync" (reason "gap" or
"restart").  Only metrics can be recovered from a snapshot.

Errors raise GrokwatchError (a daemon refused a request or answered nonsense)
or TimeoutError (no reply within timeout_ms); the messages name the endpoint.
Not thread-safe: use one Subscriber per thread.
"""

import json
import time

import zmq

__all__ = ["GrokwatchError", "Message", "Subscriber", "parse_endpoint"]

STEP_LAST = 999999999999999  # the daemon's largest step
BUFFER_MAX = 10000  # live messages held while a snapshot is awaited
MAX_BYTES = 256 << 20


class GrokwatchError(Exception):
    """A daemon refused a request, or an endpoint is malformed."""


def parse_endpoint(spec):
    """Return (pub, query) for "tcp://HOST:PORT" (query on PORT+1) or "PUB,QUERY"."""
    if not isinstance(spec, str) or not spec or len(spec) >= 512:
        raise GrokwatchError("%r: not an endpoint (tcp://HOST:PORT, or PUB,QUERY)" % (spec,))

    def check(ep):
        if not ep or any(c <= " " or c == "," or c >= "\x7f" for c in ep):
            return False
        scheme, sep, rest = ep.partition("://")
        return bool(scheme and sep and rest)

    if "," in spec:
        pub, _, query = spec.partition(",")
        if not (check(pub) and check(query)) or pub == query:
            raise GrokwatchError("%r: not an endpoint (tcp://HOST:PORT, or PUB,QUERY)" % spec)
        return pub, query
    if not check(spec) or not spec.startswith("tcp://"):
        raise GrokwatchError("%r: not an endpoint (tcp://HOST:PORT, or PUB,QUERY)" % spec)
    host, _, port = spec[6:].rpartition(":")
    if not host or not port.isdigit() or port[0] == "0" or not 1 <= int(port) <= 65534:
        raise GrokwatchError("%r: not an endpoint (tcp://HOST:PORT, or PUB,QUERY)" % spec)
    return spec, "tcp://%s:%d" % (host, int(port) + 1)


class Message:
    """One message: topic, type, run, seq, epoch, time, step (or None), the
    parsed body (a dict), json (the text), replayed (from a snapshot) and
    daemon (the index of the daemon it came from)."""

    __slots__ = ("topic", "body", "json", "replayed", "daemon")

    def __init__(self, topic, body, text, replayed=False, daemon=0):
        self.topic = topic
        self.body = body
        self.json = text
        self.replayed = replayed
        self.daemon = daemon

    type = property(lambda self: self.body.get("type"))
    run = property(lambda self: self.body.get("run", ""))
    epoch = property(lambda self: self.body.get("epoch", ""))
    time = property(lambda self: self.body.get("time"))

    @property
    def seq(self):
        s = self.body.get("seq")
        return s if _is_uint(s) else 0

    @property
    def step(self):
        s = self.body.get("step")
        return s if _is_uint(s) else None

    @property
    def groups(self):
        g = self.body.get("groups")
        return list(g) if isinstance(g, dict) else []

    def value(self, group, metric):
        """The number at the dotted path `metric` in `group`, None if absent or null."""
        node = (self.body.get("groups") or {}).get(group)
        for part in metric.split("."):
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            return None
        return float(node)

    @property
    def trainer(self):
        """The trainer's own figures at this step, where its trainer_state.json
        logged them: a dict with "loss", "loss_step", "learning_rate" and
        "learning_rate_step" (each pair only where logged), else None."""
        t = self.body.get("trainer")
        if not isinstance(t, dict):
            return None
        return {k: v for k, v in t.items()
                if k in ("loss", "loss_step", "learning_rate", "learning_rate_step")
                and isinstance(v, (int, float)) and not isinstance(v, bool)}

    def __repr__(self):
        return "Message(%r, %s)" % (self.topic, self.json[:200])


def _is_uint(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and v == int(v)


class _Daemon:
    def __init__(self, index, pub, query):
        self.index, self.pub, self.query = index, pub, query
        self.state = "syncing"
        self.run = ""
        self.epoch = ""
        self.seq = 0
        self.snap_id = None
        self.snap_sent = 0.0
        self.syncing_since = time.monotonic()
        self.resync_reason = None
        self.prev_epoch = ""
        self.buf = []
        self.steps = set()
        self.failure = None
        self.malformed = 0
        self.sub = self.dealer = None


class Subscriber:
    """Follow one or more daemons; see the module's text."""

    def __init__(self, endpoints, topics=None, timeout_ms=5000, context=None):
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        self.timeout = max(1, int(timeout_ms)) / 1000.0
        self.topics = list(topics or [])
        self._ctx = context or zmq.Context()
        self._own_ctx = context is None
        self._next_id = 1
        self._ready = []
        self._poller = zmq.Poller()
        self._daemons = []
        try:
            for spec in endpoints:
                self._connect(spec)
        except BaseException:
            self.close()
            raise

    # -- lifecycle --------------------------------------------------------

    def _connect(self, spec):
        pub, query = parse_endpoint(spec)
        d = _Daemon(len(self._daemons), pub, query)
        for kind in ("sub", "dealer"):
            s = self._ctx.socket(zmq.SUB if kind == "sub" else zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.MAXMSGSIZE, MAX_BYTES)
            setattr(d, kind, s)
        d.sub.setsockopt(zmq.SUBSCRIBE, b"")
        d.sub.connect(pub)
        d.dealer.connect(query)
        self._poller.register(d.sub, zmq.POLLIN)
        self._poller.register(d.dealer, zmq.POLLIN)
        self._daemons.append(d)
        self._send_snapshot_request(d)

    def close(self):
        for d in self._daemons:
            for s in (d.sub, d.dealer):
                if s is not None:
                    s.close(0)
        self._daemons = []
        if self._own_ctx and self._ctx is not None:
            self._ctx.term()
        self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the splice -------------------------------------------------------

    def _wanted(self, m):
        if not self.topics:
            return m.type != "heartbeat"
        return any(m.topic.startswith(t) for t in self.topics)

    def _hand_over(self, m):
        if self._wanted(m):
            self._ready.append(m)

    def _send_request(self, d, req):
        req = dict(req, id=self._next_id)
        self._next_id += 1
        try:
            d.dealer.send(json.dumps(req).encode(), zmq.NOBLOCK)
        except zmq.Again:
            pass  # lost at the high-water mark; the timeout resends
        return req["id"]

    def _send_snapshot_request(self, d):
        d.buf = []
        d.snap_id = self._send_request(d, {"req": "snapshot"})
        d.snap_sent = time.monotonic()

    def _resync(self, d, m, restart):
        d.resync_reason = "restart" if restart else "gap"
        d.prev_epoch = d.epoch
        d.state = "syncing"
        d.syncing_since = time.monotonic()
        self._send_snapshot_request(d)
        d.buf.append(m)

    def _apply_live(self, d, m):
        if m.epoch != d.epoch:
            return self._resync(d, m, True)
        if m.type == "heartbeat":
            if m.seq > d.seq:
                return self._resync(d, m, False)
            return self._hand_over(m)
        if m.seq <= d.seq:
            return None  # already seen
        if m.seq > d.seq + 1:
            return self._resync(d, m, False)
        d.seq = m.seq
        if m.type == "metrics" and m.step is not None:
            d.steps.add(m.step)
        return self._hand_over(m)

    def _apply_snapshot(self, d, reply):
        epoch, run, seq = reply.get("epoch"), reply.get("run"), reply.get("seq")
        results = reply.get("results")
        if not (isinstance(epoch, str) and epoch and isinstance(run, str) and _is_uint(seq)
                and isinstance(results, list)):
            d.malformed += 1
            return
        d.snap_id = None
        d.run = run
        new_epoch = epoch != d.epoch
        if d.resync_reason:
            reason = "restart" if new_epoch else d.resync_reason
            body = {"type": "resync", "reason": reason, "run": run, "epoch": epoch,
                    "endpoint": d.pub, "time": time.time()}
            if reason == "restart":
                body["previous_epoch"] = d.prev_epoch
            else:
                body["after_seq"] = d.seq
            self._hand_over(Message("resync." + run, body, json.dumps(body), False, d.index))
        d.resync_reason = None
        applied = 0 if new_epoch else d.seq
        for r in results:
            if not isinstance(r, dict) or not _is_uint(r.get("seq")) or not _is_uint(r.get("step")):
                d.malformed += 1
                continue
            if (r["seq"] <= applied) if r["seq"] > 0 else (r["step"] in d.steps):
                continue
            d.steps.add(r["step"])
            topic = "%s.%s" % (r.get("type", "metrics"), r.get("run", run))
            self._hand_over(Message(topic, r, json.dumps(r), True, d.index))
        d.epoch, d.seq, d.state = epoch, int(seq), "live"
        held, d.buf, seen = d.buf, [], False
        for m in held:
            # Another epoch before any of this one: from before a restart
            # the snapshot already covers.
            if not seen and m.epoch != d.epoch:
                continue
            seen = True
            if d.state == "live":
                self._apply_live(d, m)
            elif len(d.buf) < BUFFER_MAX:
                d.buf.append(m)

    def _drain_sub(self, d):
        while True:
            try:
                frames = d.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                if len(frames) != 2:
                    raise ValueError("frames")
                topic = frames[0].decode()
                text = frames[1].decode()
                body = json.loads(text)
                if (not isinstance(body, dict) or not isinstance(body.get("type"), str)
                        or not body.get("epoch") or not _is_uint(body.get("seq"))):
                    raise ValueError("fields")
            except (ValueError, UnicodeDecodeError):
                d.malformed += 1
                continue
            m = Message(topic, body, text, False, d.index)
            if d.state == "failed":
                continue
            if d.state == "syncing":
                if len(d.buf) >= BUFFER_MAX:
                    self._send_snapshot_request(d)
                else:
                    d.buf.append(m)
            else:
                self._apply_live(d, m)

    def _drain_dealer(self, d, want=None):
        """Apply splice replies; return the reply with id `want`, if it came."""
        got = None
        while True:
            try:
                frames = d.dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return got
            try:
                reply = json.loads(frames[-1].decode())
                if not isinstance(reply, dict):
                    raise ValueError
            except (ValueError, UnicodeDecodeError):
                d.malformed += 1
                continue
            rid = reply.get("id")
            if want is not None and rid == want:
                got = reply
            elif d.snap_id is not None and rid == d.snap_id:
                if reply.get("type") == "snapshot":
                    self._apply_snapshot(d, reply)
                else:
                    d.failure = "%r: the daemon refused the snapshot request: %s" % (
                        d.query, reply.get("error", reply))
                    d.state, d.snap_id, d.buf = "failed", None, []

    def _poll(self, wait, want_daemon=None, want=None):
        now = time.monotonic()
        for d in self._daemons:
            if d.state == "syncing" and now - d.snap_sent >= self.timeout:
                self._send_snapshot_request(d)
        events = dict(self._poller.poll(max(0, int(wait * 1000))))
        got = None
        for d in self._daemons:
            if d.sub in events:
                self._drain_sub(d)
            if d.dealer in events:
                r = self._drain_dealer(d, want if d is want_daemon else None)
                got = r if r is not None else got
        return got

    # -- the stream --------------------------------------------------------

    def next(self, timeout_ms=None):
        """The next message, or None after timeout_ms (None = no limit).

        Raises TimeoutError if a daemon has not answered its first snapshot
        request within the subscriber's timeout_ms (or, when this call's time
        is up, any pending one); GrokwatchError if a daemon refused it.  After a
        daemon has answered once, a restart is waited through."""
        end = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000.0
        polled = False
        while True:
            if self._ready:
                return self._ready.pop(0)
            for d in self._daemons:
                if d.failure:
                    msg, d.failure = d.failure, None
                    raise GrokwatchError(msg)
            now = time.monotonic()
            never = [d for d in self._daemons
                     if d.state == "syncing" and not d.epoch and now - d.syncing_since >= self.timeout]
            if never:
                raise TimeoutError("; ".join(
                    "%r: no reply to the snapshot request in %d ms (is grokwatchd running "
                    "there?)" % (d.query, (now - d.syncing_since) * 1000) for d in never))
            if polled and end is not None and now >= end:  # read at least once
                late = [d for d in self._daemons if d.state == "syncing"]
                if late:
                    raise TimeoutError("; ".join(
                        "%r: no reply to the snapshot request in %d ms (is grokwatchd running "
                        "there?)" % (d.query, (now - d.syncing_since) * 1000) for d in late))
                return None
            wait = self.timeout if end is None else max(0, min(self.timeout, end - now))
            polled = True
            self._poll(wait)

    def messages(self, timeout_ms=None):
        """Yield messages; stop when none came for timeout_ms (None = never)."""
        while True:
            m = self.next(timeout_ms)
            if m is None:
                return
            yield m

    # -- queries -----------------------------------------------------------

    def _query(self, daemon, req, kind):
        d = self._daemons[daemon]
        rid = self._send_request(d, req)
        end = time.monotonic() + self.timeout
        while True:
            now = time.monotonic()
            if now >= end:
                raise TimeoutError("%r: no reply to the %s request within %d ms (is grokwatchd "
                                   "running there?)" % (d.query, kind, self.timeout * 1000))
            reply = self._poll(end - now, d, rid)
            if reply is None:
                continue
            if reply.get("type") != kind:
                raise GrokwatchError("%r: the daemon refused the %s request: %s" % (
                    d.query, kind, reply.get("error", reply)))
            return reply

    @staticmethod
    def _range(req, start, stop):
        if start is not None:
            req["from"] = int(start)
        if stop is not None:
            req["to"] = int(stop)
        return req

    def history(self, metric, group="all", start=None, stop=None, daemon=0):
        """[(step, value or None), ...] of `metric` in `group` from daemon `daemon`."""
        reply = self._query(daemon, self._range(
            {"req": "history", "metric": metric, "group": group}, start, stop), "history")
        points = reply.get("points")
        if not isinstance(points, list) or not all(
                isinstance(p, list) and len(p) == 2 and _is_uint(p[0]) for p in points):
            raise GrokwatchError("%r: malformed history reply" % self._daemons[daemon].query)
        return [(int(s), None if v is None else float(v)) for s, v in points]

    def snapshot(self, daemon=0, start=None, stop=None):
        """The daemon's snapshot reply (a dict: seq, epoch, run, status, results, ...)."""
        return self._query(daemon, self._range({"req": "snapshot"}, start, stop), "snapshot")

    def status(self, daemon=0):
        """The daemon's status object (from a snapshot without results)."""
        return self.snapshot(daemon, STEP_LAST).get("status", {})
