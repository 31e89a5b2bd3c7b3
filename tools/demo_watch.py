#!/usr/bin/python3
"""demo_watch.py — `make demo`: grokwatchd watching a short training run.

usage: demo_watch.py WORKDIR

Generates six tiny OLMoE checkpoints (tools/demo_series.py), starts
`grokwatchd run` on an empty watched directory, and then plays the trainer:
steps 1000-3000 and 5000-6000 are written under a temporary name and
renamed in, step 4000 is written slowly in place.  A ZeroMQ subscriber
(python3-zmq, with the snapshot splice) prints each metrics message as it
arrives; when all six are in, the daemon is stopped with SIGTERM.
"""

import os
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
import gwtest as g  # noqa: E402

STEPS = 6


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    work = argv[1]
    gen, root = os.path.join(work, "generated"), os.path.join(work, "checkpoints")
    os.makedirs(root)
    t0 = time.time()
    print("demo: generating %d tiny OLMoE checkpoints (steps 1000..%d000)" % (STEPS, STEPS))
    g.gen_series(gen, STEPS)
    dm = g.Daemon(work, root, os.path.join(gen, "probe.jsonl"), name="demo",
                  extra={"log_level": "info", "watch.quiet_period_ms": 500,
                         "publish.heartbeat_ms": 1000, "threads.blas": 1})
    dm.start()
    print("demo: grokwatchd run -c %s  (log: %s)" % (dm.cfg_path, dm.log_path))
    print("demo: watching %s, publishing on %s" % (root, dm.pub))
    sub = g.Subscriber(dm.pub, dm.query)

    def trainer():
        for k in range(1, STEPS + 1):
            src = os.path.join(gen, "step%d000" % k)
            if k == 4:
                g.place_slowly(src, root, "step4000", 2.0)
            else:
                g.place_atomic(src, root, "step%d000" % k)
            time.sleep(0.7)

    th = threading.Thread(target=trainer)
    th.start()
    print()
    print("%-6s %-6s %9s %12s %8s %10s" % ("step", "group", "distance", "consistency", "loss",
                                          "memorized"))
    shown = 0
    end = time.time() + 50
    while shown < STEPS and time.time() < end:
        sub.collect(g.n_metrics(shown + 1), max(0.1, end - time.time()))
        for m in sub.metrics()[shown:]:
            for name, grp in m["groups"].items():
                print("%-6d %-6s %9s %12s %8s %10d" % (
                    m["step"], name, fmt(grp["pathway_distance"], ".3f"),
                    fmt(grp["pathway_consistency"], ".4f"), fmt(grp["loss"], ".4f"),
                    grp["memorized"]["n_samples"]), flush=True)
            shown += 1
    th.join()
    rc = dm.stop()
    print()
    last = [line for line in dm.log().splitlines() if line.strip()][-1]
    print("demo: %d metrics messages; grokwatchd stopped on SIGTERM with status %s (%s)" %
          (shown, rc, last.split(": ", 2)[-1]))
    print("demo: pathway distance fell as the routers became structured, then levelled off:")
    print("demo: the signal grokwatch watches for.  %.0f s in all." % (time.time() - t0))
    return 0 if shown == STEPS and rc == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    finally:
        g.cleanup_all()
