"""grokwatch — the Python package of grokwatch (README.md, "From Python").

Three parts, each importing only what it needs, so that a training job can
use the tracer without pyzmq and a notebook can follow a daemon without torch:

  grokwatch.subscribe  follow grokwatchd daemons over ZeroMQ (python3-zmq):
                       Subscriber, Message, GrokwatchError, parse_endpoint,
                       also importable from grokwatch itself;
  grokwatch.frame      to_dataframe(): results as a pandas DataFrame, steps by
                       groups (pandas), also importable from grokwatch itself;
  grokwatch.probe      probe sets read with the daemon's rules and hash (numpy);
  grokwatch.trace      routing files from the training job itself (torch):
                       RoutingRecorder, write(); `python3 -m grokwatch.trace`.

The names re-exported here are loaded on first use (PEP 562), so
`import grokwatch` needs nothing beyond the standard library.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Subscriber": "grokwatch.subscribe",
    "Message": "grokwatch.subscribe",
    "GrokwatchError": "grokwatch.subscribe",
    "parse_endpoint": "grokwatch.subscribe",
    "STEP_LAST": "grokwatch.subscribe",
    "to_dataframe": "grokwatch.frame",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError("module 'grokwatch' has no attribute %r" % name)
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
