#!/bin/sh
# test_client_python.sh — the grokwatch package's subscriber
# (client/python/grokwatch/subscribe.py) against gw_testd (the daemon's real
# publisher, scripted) and a raw PUB/ROUTER server written here: endpoints,
# late join, live, restart, gap, history, status, to_dataframe
# (python3-pandas), a daemon that is down; and the example script.  Skipped
# (TAP SKIP) only when python3-zmq is missing.
. "$GW_SRC/tests/lib.sh"
PY=${PYTHON:-/usr/bin/python3}

if ! "$PY" -c 'import zmq' 2>/dev/null; then
	echo "ok 1 # SKIP python3-zmq is not installed"
	echo "1..1"
	exit 0
fi
if [ -z "${GW_TESTD:-}" ] || [ ! -x "$GW_TESTD" ]; then
	echo "not ok 1 - GW_TESTD is not built (run through make check)"
	exit 1
fi

PYTHONPATH="$GW_SRC/client/python" "$PY" - "$GW_TESTD" "$TMP" <<'PYEOF'
import json, os, subprocess, sys, time
import zmq
from grokwatch import GrokwatchError, Subscriber, parse_endpoint

testd, tmp = sys.argv[1], sys.argv[2]
SLOW = int(os.environ["GW_SLOW"])  # the slow-run factor (tests/lib.sh)
n = 0
failed = 0

def check(cond, name, detail=""):
    global n, failed
    n += 1
    if cond:
        print("ok %d - %s" % (n, name))
    else:
        failed += 1
        print("not ok %d - %s" % (n, name))
        if detail:
            print("#   %s" % detail)

def result(step, d):
    return "result " + json.dumps({"step": step, "checkpoint": "step%d" % step,
        "groups": {"math": {"pathway_distance": d, "loss": None}, "all": {"pathway_distance": d + 1}}})

def start(name, lines, pub=None, query=None):
    script = os.path.join(tmp, name)
    ready = script + ".ready"
    open(script, "w").write("\n".join(lines) + "\n")
    args = [testd, "--run", "py-run", "--ready", ready, "--lifetime", str(30000 * SLOW)]
    if pub:
        args += ["--pub", pub, "--query", query]
    p = subprocess.Popen(args + [script])
    end = time.time() + 10 * SLOW
    while not os.path.exists(ready) and time.time() < end:
        time.sleep(0.01)
    pub, query = open(ready).read().split()
    return p, pub, query

def collect(sub, count, timeout_ms=5000):
    out = []
    while len(out) < count:
        m = sub.next(timeout_ms * SLOW)
        if m is None:
            break
        out.append(m)
    return out

# endpoints
check(parse_endpoint("tcp://127.0.0.1:5557") == ("tcp://127.0.0.1:5557", "tcp://127.0.0.1:5558"),
      "tcp endpoint: query on port + 1")
check(parse_endpoint("ipc:///a,ipc:///b") == ("ipc:///a", "ipc:///b"), "PUB,QUERY pair")
bad = ["", "tcp://h", "tcp://h:0", "tcp://h:65535", "tcp://h:x", "ipc:///a", "h:1", "a,a", "tcp://h:1,",
       "tcp://h :1", None, 5]
for b in bad:
    try:
        parse_endpoint(b)
        check(False, "endpoint %r refused" % (b,))
    except GrokwatchError as e:
        check("not an endpoint" in str(e), "endpoint %r refused" % (b,))

# late join, then live
go = os.path.join(tmp, "go")
p, pub, query = start("s1", [result(s, s / 100) for s in (100, 200, 300)] +
                      ["status {\"watching\": \"/ckpt\"}", "waitfile " + go, result(400, 4.0)])
with Subscriber(["%s,%s" % (pub, query)]) as sub:
    got = collect(sub, 3)
    check([m.step for m in got] == [100, 200, 300], "late join: the three results in order",
          [m.step for m in got])
    check(all(m.replayed and m.type == "metrics" and m.run == "py-run" for m in got),
          "late join: replayed metrics of the run")
    check(got[1].value("math", "pathway_distance") == 2.0 and got[1].value("all", "pathway_distance") == 3.0,
          "value(group, metric)")
    check(got[1].value("math", "loss") is None and got[1].value("nope", "loss") is None,
          "value: None where null or absent")
    open(go, "w").close()
    end = time.time() + 5
    m = None
    while m is None and time.time() < end:
        m = sub.next(0)  # a zero wait still reads what has arrived
        time.sleep(0.01)
    check(m is not None and m.step == 400 and not m.replayed and m.seq == 4, "live: the next result",
          repr(m))
    check(sub.next(300) is None, "then nothing (heartbeats are not yielded)")
    h = sub.history("pathway_distance", "math", start=200)
    check(h == [(200, 2.0), (300, 3.0), (400, 4.0)], "history from 200", repr(h))
    check(sub.history("loss", "math", stop=100) == [(100, None)], "history: null is None")
    check(sub.status() == {"watching": "/ckpt"}, "status")
    # to_dataframe: steps by groups, from a live snapshot, messages and a history.
    from grokwatch import to_dataframe
    try:
        import pandas
    except ImportError:
        pandas = None
    if pandas is None:
        try:
            to_dataframe(sub.snapshot())
            check(False, "to_dataframe without pandas says what is missing")
        except ImportError as e:
            check("python3-pandas" in str(e), "to_dataframe without pandas says what is missing")
    else:
        df = to_dataframe(sub.snapshot())
        check(list(df.index) == [100, 200, 300, 400] and list(df.columns) == ["math", "all"]
              and df.loc[200, "math"] == 2.0 and df.loc[400, "all"] == 5.0,
              "to_dataframe(snapshot): steps by groups, 'all' last", repr(df))
        dl = to_dataframe(sub.snapshot(), "loss")
        check(dl["math"].isna().all() and dl["all"].isna().all(), "to_dataframe: null is NaN")
        wide = to_dataframe(sub.snapshot(), metric=None)
        check(("math", "pathway_distance") in wide.columns and wide.columns.names == ["group", "metric"]
              and wide.loc[300, ("all", "pathway_distance")] == 4.0,
              "to_dataframe(metric=None): (group, metric) columns", repr(wide.columns))
        dm = to_dataframe(got + [m])
        check(list(dm.index) == [100, 200, 300, 400] and dm.loc[100, "math"] == 1.0,
              "to_dataframe(messages)", repr(dm))
        dh = to_dataframe(h, group="math")
        check(list(dh.index) == [200, 300, 400] and list(dh["math"]) == [2.0, 3.0, 4.0]
              and dh.index.name == "step", "to_dataframe(history)", repr(dh))
    try:
        sub.history("loss", "math", start=10**16)
        check(False, "history past the last step refused")
    except GrokwatchError as e:
        check(query in str(e) and "not a step" in str(e), "history past the last step refused", str(e))
p.terminate(); p.wait()

# restart: noticed, nothing twice
stop = os.path.join(tmp, "stop")
a, pub, query = start("a", [result(100, 1), result(200, 2), "waitfile " + stop, "exit"])
with Subscriber(["%s,%s" % (pub, query)]) as sub:
    got = collect(sub, 2)
    open(stop, "w").close()
    a.wait()
    b, _, _ = start("b", [result(100, 1).replace("result", "restore", 1),
                          result(200, 2).replace("result", "restore", 1), "sleep 200", result(300, 3)],
                    pub, query)
    got += collect(sub, 2)
    check([m.type for m in got] == ["metrics", "metrics", "resync", "metrics"],
          "restart: a resync, then only the new result", [m.json for m in got])
    check(got[2].body.get("reason") == "restart" and got[3].step == 300, "restart: reason and step")
    check(sub.next(300) is None, "restart: nothing more")
    b.terminate(); b.wait()

# a gap, from a raw server
ctx = zmq.Context()
rpub, rrouter = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
rpub.bind("tcp://127.0.0.1:*"); rrouter.bind("tcp://127.0.0.1:*")
spec = "%s,%s" % (rpub.getsockopt(zmq.LAST_ENDPOINT).decode(), rrouter.getsockopt(zmq.LAST_ENDPOINT).decode())
def body(seq, step, typ="metrics"):
    return {"type": typ, "seq": seq, "epoch": "E", "run": "raw", "time": 1, "step": step,
            "groups": {"all": {"pathway_distance": step}}}
def answer(sub, results, seq):
    end = time.time() + 5
    while not rrouter.poll(0):
        try:
            assert sub.next(10) is None
        except TimeoutError:
            pass  # the splice's own snapshot is the one pending
        assert time.time() < end, "no request"
    ident, req = rrouter.recv_multipart()
    req = json.loads(req)
    rrouter.send_multipart([ident, json.dumps({"type": "snapshot", "seq": seq, "epoch": "E", "run": "raw",
        "status": {}, "results": results, "id": req["id"]}).encode()])
with Subscriber([spec], timeout_ms=3000) as sub:
    answer(sub, [body(1, 10)], 1)
    check(sub.next(2000).step == 10, "raw: the snapshot's result")
    while not sub._daemons[0].sub.poll(0):  # wait for the subscription to be through
        rpub.send_multipart([b"heartbeat.raw", json.dumps(body(1, 0, "heartbeat")).encode()])
        time.sleep(0.02)
    rpub.send_multipart([b"metrics.raw", b"{not json"])
    rpub.send_multipart([b"metrics.raw", json.dumps(body(2, 20)).encode()])
    rpub.send_multipart([b"metrics.raw", json.dumps(body(2, 20)).encode()])
    rpub.send_multipart([b"metrics.raw", json.dumps(body(5, 50)).encode()])
    m = sub.next(2000)
    check(m is not None and m.step == 20, "raw: live 2")
    answer(sub, [body(1, 10), body(2, 20), body(3, 30), body(4, 40), body(5, 50)], 5)
    got = collect(sub, 4, 1000)
    check([g.type for g in got] == ["resync", "metrics", "metrics", "metrics"] and
          [g.step for g in got[1:]] == [30, 40, 50] and got[0].body["reason"] == "gap",
          "raw: a gap resyncs, each result once", [g.json for g in got])
    check(sub.next(200) is None and sub._daemons[0].malformed == 1, "raw: the malformed one dropped")
rpub.close(0); rrouter.close(0); ctx.term()

# a daemon that is down: a bounded TimeoutError naming the endpoint
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER); s.bind("tcp://127.0.0.1:*")
port = int(s.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
s.close(0); ctx.term()
t0 = time.time()
try:
    with Subscriber(["tcp://127.0.0.1:%d" % (port - 1)], timeout_ms=300) as sub:
        for m in sub.messages():
            pass
    check(False, "daemon down: TimeoutError")
except TimeoutError as e:
    check("tcp://127.0.0.1:%d" % port in str(e) and "is grokwatchd running" in str(e),
          "daemon down: TimeoutError naming the query endpoint", str(e))
check(time.time() - t0 < 3, "daemon down: within the timeout (%.2f s)" % (time.time() - t0))
try:
    Subscriber(["bogus"])
    check(False, "bad endpoint refused")
except GrokwatchError:
    check(True, "bad endpoint refused")

open(os.path.join(tmp, "count"), "w").write(str(n))
sys.exit(1 if failed else 0)
PYEOF
rc=$?
[ $rc -eq 0 ] || exit $rc

# The example, end to end.
{ echo 'result {"step":5,"groups":{"all":{"pathway_distance":1.5}}}'; } >"$TMP/ex"
rm -f "$TMP/ex.ready"
"$GW_TESTD" --ready "$TMP/ex.ready" --run ex --lifetime $((20000 * GW_SLOW)) "$TMP/ex" &
D=$!
wait_for 10 test -s "$TMP/ex.ready"
EP="$(cut -d' ' -f1 "$TMP/ex.ready"),$(cut -d' ' -f2 "$TMP/ex.ready")"
out=$("$PY" "$GW_SRC/client/python/example.py" "$EP" --idle-exit 500 2>&1)
kill $D; wait $D 2>/dev/null
n=$(($(cat "$TMP/count") + 1))
case "$out" in
*"ex step 5 all pathway_distance=1.5 (replayed)"*) echo "ok $n - example.py prints the result" ;;
*) echo "not ok $n - example.py prints the result"; echo "# $out"; echo "1..$n"; exit 1 ;;
esac
echo "1..$n"
