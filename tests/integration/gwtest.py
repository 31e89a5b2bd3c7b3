"""gwtest.py — drive the real grokwatchd from Python, for the integration
tests, the daemon benchmark and `make demo`.

- Daemon: writes a config, starts `grokwatchd run -c` (under $GW_WRAP when
  set), reads the bound endpoints from its log, stops it.
- Subscriber: a real ZeroMQ SUB socket (python3-zmq) plus a DEALER for
  queries, doing the splice publish.h describes: subscribe, wait for the
  first message, ask for a snapshot, drop live messages with seq <= the
  snapshot's.
- Trainer: writes checkpoints into the watched directory the ways trainers
  do (atomic rename of a finished directory, slowly in place).
- tap: a minimal TAP emitter.

Time.  Every wait here takes its timeout in seconds as on an idle machine
and multiplies it by SLOW, the one slow-run factor (slow_factor()), so the
callers never scale a timeout themselves.  That something did not happen
(no second result, no alert sent again) is never shown by sleeping:
Subscriber.settle() waits for a heartbeat that proves the daemon has
published all it was going to.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import zmq

SRC = os.environ.get("GW_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("GW_BIN", os.path.join(SRC, "build", "default", "grokwatchd"))
PY = os.environ.get("PYTHON", "/usr/bin/python3")
WRAP = os.environ.get("GW_WRAP", "").split()


def slow_factor():
    """How many times longer than on an idle machine a run may take: $GW_SLOW
    when set (a positive integer), else 10 under $GW_WRAP (valgrind), 3 for a
    sanitizer build ($GW_BUILD is build/san, as `make check SANITIZE=...`
    sets it), else 1.  tests/lib.sh derives the same for the shell tests."""
    env = os.environ.get("GW_SLOW", "")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError("GW_SLOW=%r: not a positive integer" % env)
        return int(env)
    if WRAP:
        return 10
    if os.path.basename(os.path.normpath(os.environ.get("GW_BUILD", ""))) == "san":
        return 3
    return 1


SLOW = slow_factor()


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, detail=None):
        self.n += 1
        print(("ok %d - %s" if cond else "not ok %d - %s") % (self.n, name), flush=True)
        if not cond:
            self.failed += 1
            if detail is not None:
                for line in str(detail).splitlines()[-40:]:
                    print("#   " + line)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:      %r\nexpected: %r" % (got, want))

    def done(self):
        print("1..%d" % self.n)
        sys.exit(1 if self.failed else 0)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def gen_series(outdir, steps):
    """Checkpoints step1000 .. step<steps>000 and probe.jsonl, from the demo
    generator (seeded: the same bytes every time)."""
    subprocess.run([PY, os.path.join(SRC, "tools", "demo_series.py"), outdir, str(steps)],
                   check=True, stdout=subprocess.DEVNULL)


def place_atomic(src, root, name):
    """Copy a finished checkpoint under a temporary name, then rename it in."""
    tmp = os.path.join(root, "tmp-" + name)
    shutil.copytree(src, tmp)
    os.rename(tmp, os.path.join(root, name))


def place_slowly(src, root, name, seconds, chunks=8):
    """Write a checkpoint in place: config first, then the weights in
    `chunks` pieces over `seconds`, then the rest."""
    dst = os.path.join(root, name)
    os.mkdir(dst)
    shutil.copy(os.path.join(src, "config.json"), dst)
    with open(os.path.join(src, "model.safetensors"), "rb") as f:
        data = f.read()
    step = (len(data) + chunks - 1) // chunks
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(seconds / chunks)
    for fn in os.listdir(src):
        if not os.path.exists(os.path.join(dst, fn)):
            shutil.copy(os.path.join(src, fn), dst)


RUNNING = []  # daemons started and not yet stopped, for cleanup_all()
WRAP_ERRORS = []  # logs of daemons that exited 99: the checker ($GW_WRAP) found errors


def cleanup_all():
    """Kill every daemon a failed case left running."""
    while RUNNING:
        d = RUNNING.pop()
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def finish(tap, workdir):
    """End a test file: stop what is left, remove its directory, fail if
    $GW_WRAP flagged any daemon, print the plan and exit."""
    cleanup_all()
    shutil.rmtree(workdir, ignore_errors=True)
    if WRAP:
        tap.ok(not WRAP_ERRORS, "no errors from %s" % WRAP[0], "\n".join(WRAP_ERRORS))
    tap.done()


class Daemon:
    def __init__(self, workdir, root, probe, extra=None, env=None, name="test"):
        self.dir = workdir
        self.state = os.path.join(workdir, "state")
        os.makedirs(self.state, exist_ok=True)
        self.cfg_path = os.path.join(workdir, "grokwatchd.json")
        self.log_path = os.path.join(workdir, "daemon.log")
        cfg = {
            "run": name,
            "state_dir": self.state,
            "log_level": "debug",
            "watch": {"root": root, "quiet_period_ms": 300, "mode": "events",
                      "poll_interval_ms": 200},
            "probe": {"path": probe},
            "publish": {"endpoint": "tcp://127.0.0.1:*", "query_endpoint": "tcp://127.0.0.1:*",
                        "heartbeat_ms": 300},
            "threads": {"blas": 1},
            "jobs": {"retry_backoff_ms": 200, "max_retries": 1},
        }
        for k, v in (extra or {}).items():
            cur = cfg
            parts = k.split(".")
            for p in parts[:-1]:
                cur = cur.setdefault(p, {})
            cur[parts[-1]] = v
        self.cfg = cfg
        self.write_config()
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.pub = self.query = None

    def write_config(self, cfg=None):
        with open(self.cfg_path, "w") as f:
            json.dump(cfg or self.cfg, f, indent=1)

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(WRAP + [BIN, "run", "-c", self.cfg_path],
                                     stdout=self.logf, stderr=self.logf, env=self.env)
        RUNNING.append(self)
        if wait:
            before = len(re.findall(r'publishing on (\S+), queries on (\S+),', self.log()))
            self.wait_log(r'publishing on (\S+), queries on (\S+),', 20, before + 1)
            m = re.findall(r'publishing on (\S+), queries on (\S+),', self.log())[-1]
            self.pub, self.query = m
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, timeout, count=1):
        """Wait until pattern occurs count times in the log (timeout * SLOW
        seconds at most, or until the daemon exits); TimeoutError if not."""
        end = time.time() + timeout * SLOW
        while time.time() < end:
            if len(re.findall(pattern, self.log())) >= count:
                return True
            if self.proc and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if len(re.findall(pattern, self.log())) >= count:
            return True
        raise TimeoutError("no %r (x%d) in the log:\n%s" % (pattern, count, self.log()[-3000:]))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if not self.proc:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.logf.close()
        self.proc = None
        if WRAP and rc == 99:
            WRAP_ERRORS.append(self.log())
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()
        self.proc = None

    def journal(self):
        out = []
        p = os.path.join(self.state, "journal.jsonl")
        if os.path.exists(p):
            with open(p) as f:
                for line in f:
                    if line.endswith("\n"):
                        out.append(json.loads(line))
        return out


class Subscriber:
    """SUB + DEALER with the snapshot splice."""

    def __init__(self, pub, query, snapshot=True, timeout=20):
        self.ctx = zmq.Context.instance()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(pub)
        self.query_ep = query
        self.messages = []     # spliced: snapshot results, then live ones
        self.last_seq = 0
        self.epoch = None
        self.snapshot_seq = None
        self.heartbeat = None  # the last heartbeat received
        first = self._recv(timeout * SLOW)
        if first is None:
            raise TimeoutError("no first message from %s" % pub)
        if snapshot:
            snap = self.request({"req": "snapshot"}, timeout)
            self.snapshot_seq = snap["seq"]
            self.epoch = snap["epoch"]
            self.messages.extend(snap["results"])
            self.last_seq = snap["seq"]
            self._take(first)
        else:
            self._take(first, force=True)

    def request(self, req, timeout=10):
        d = self.ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(self.query_ep)
        d.send(json.dumps(req).encode())
        if not d.poll(timeout * 1000 * SLOW):
            d.close()
            raise TimeoutError("no reply from %s" % self.query_ep)
        rep = json.loads(d.recv())
        d.close()
        return rep

    def _recv(self, timeout):
        if not self.sub.poll(int(timeout * 1000)):
            return None
        topic, body = self.sub.recv_multipart()
        msg = json.loads(body)
        msg["_topic"] = topic.decode()
        return msg

    def _take(self, msg, force=False):
        if msg["type"] == "heartbeat":
            self.heartbeat = msg
            return
        if not force and msg["seq"] <= self.last_seq:
            return
        self.last_seq = msg["seq"]
        self.messages.append(msg)

    def collect(self, until, timeout):
        """Receive until until(messages) is true; returns whether it became so."""
        end = time.time() + timeout * SLOW
        while not until(self.messages):
            left = end - time.time()
            if left <= 0:
                return False
            m = self._recv(left)
            if m is not None:
                self._take(m)
        return True

    def settle(self, timeout=30, after=None):
        """Wait until the daemon has published everything it was going to:
        for a heartbeat whose seq is at least `after` (default: the seq of
        the last message received so far) and whose status says idle with
        nothing queued.  A heartbeat carries the seq of the last message
        sent and messages arrive in order, so every message up to it is in
        self.messages by then; a checkpoint about to be computed a second
        time would be queued or computing, or its result sent, before that
        heartbeat.  (The status's "pending" count is not asked: it is as of
        the last status change, not of the heartbeat.)  Returns the
        heartbeat, or None after timeout * SLOW seconds."""
        want = self.last_seq if after is None else after
        end = time.time() + timeout * SLOW
        self.heartbeat = None
        while True:
            hb = self.heartbeat
            st = hb.get("status", {}) if hb else {}
            if hb and hb["seq"] >= want and st.get("state") == "idle" and not st.get("queue"):
                return hb
            left = end - time.time()
            if left <= 0:
                return None
            m = self._recv(left)
            if m is not None:
                self._take(m)

    def metrics(self):
        return [m for m in self.messages if m["type"] == "metrics"]

    def close(self):
        self.sub.close()


def steps_of(msgs):
    return [m["step"] for m in msgs if m.get("type") == "metrics"]


def n_metrics(n):
    return lambda msgs: len([m for m in msgs if m["type"] == "metrics"]) >= n
