#!/usr/bin/python3
"""example.py — print a line per result from grokwatchd daemons, catching up first.

usage: example.py [ENDPOINT...] [--metric M] [--group G] [--idle-exit MS]

ENDPOINT is tcp://HOST:PORT (queries on PORT+1) or PUB,QUERY; the default is
tcp://127.0.0.1:5557.  With --idle-exit it stops once no message came for MS
milliseconds, else it follows until Ctrl-C.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grokwatch import GrokwatchError, Subscriber  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="Follow grokwatchd daemons.")
    ap.add_argument("endpoints", nargs="*", default=["tcp://127.0.0.1:5557"])
    ap.add_argument("--metric", default="pathway_distance")
    ap.add_argument("--group", default="all")
    ap.add_argument("--timeout", type=int, default=5000, help="ms to wait for a daemon")
    ap.add_argument("--idle-exit", type=int, default=None, metavar="MS")
    a = ap.parse_args()
    try:
        with Subscriber(a.endpoints, topics=["metrics.", "resync.", "alert."],
                        timeout_ms=a.timeout) as sub:
            for m in sub.messages(a.idle_exit if a.idle_exit is not None else None):
                if m.type == "metrics":
                    print("%s step %s %s %s=%s%s" % (m.run, m.step, a.group, a.metric,
                                                     m.value(a.group, a.metric),
                                                     " (replayed)" if m.replayed else ""),
                          flush=True)
                elif m.type == "resync":
                    print("%s resync: %s" % (m.run, m.body["reason"]), flush=True)
                else:
                    print("%s %s %s" % (m.run, m.type, m.json), flush=True)
    except (GrokwatchError, TimeoutError) as e:
        print("example.py: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
