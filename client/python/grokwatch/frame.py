"""grokwatch.frame — grokwatchd results as pandas DataFrames, steps by groups.

    from grokwatch import Subscriber, to_dataframe
    with Subscriber("tcp://127.0.0.1:5557") as sub:
        df = to_dataframe(sub.snapshot())                    # pathway_distance
        df = to_dataframe(sub.snapshot(), "memorized.loss")  # any dotted metric
        wide = to_dataframe(sub.snapshot(), metric=None)     # every metric
        h = to_dataframe(sub.history("loss", "math"), group="math")

to_dataframe takes a snapshot reply (Subscriber.snapshot()), metrics messages
(Message objects or their bodies, as Subscriber.messages() yields them), or a
history [(step, value)] (Subscriber.history()).  The index is the step
(sorted; a step seen twice keeps its last result), the columns the groups in
the order they first appear, "all" last; a value that is absent or null is
NaN.  With metric=None the columns are (group, metric) pairs of every number
a group holds, nested names dotted ("memorized.pathway_distance").

pandas is needed (Debian: python3-pandas); without it the call raises
ImportError saying so.
"""

from typing import Any, Iterable, Optional

__all__ = ["to_dataframe"]


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("grokwatch.to_dataframe needs pandas (Debian: python3-pandas; pip: "
                          "pandas)") from None
    return pandas


def _number(v) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _at(node, path: str):
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return _number(node)


def _flat(node, prefix=""):
    """(dotted name, number) of every number under a group's object."""
    for k, v in node.items():
        name = prefix + k
        if isinstance(v, dict):
            yield from _flat(v, name + ".")
        elif _number(v) is not None:
            yield name, float(v)


def _bodies(data) -> Iterable[dict]:
    if isinstance(data, dict):
        if "results" not in data:
            raise ValueError("a dict passed to to_dataframe must be a snapshot reply "
                             "(with 'results')")
        data = data["results"]
    for item in data:
        body = getattr(item, "body", item)
        if not isinstance(body, dict):
            raise ValueError("to_dataframe: %r is neither a message nor a result" % (item,))
        if body.get("type", "metrics") != "metrics" or not isinstance(body.get("groups"), dict):
            continue
        if _number(body.get("step")) is None:
            continue
        yield body


def to_dataframe(data: Any, metric: Optional[str] = "pathway_distance",
                 group: Optional[str] = None):
    """A DataFrame of `metric` (a dotted path under each group, or None for
    every metric), indexed by step, one column per group; see the module."""
    pd = _pandas()
    if isinstance(data, list) and all(isinstance(p, (tuple, list)) and len(p) == 2
                                      and not isinstance(p, dict) for p in data) and \
            not any(hasattr(p, "body") for p in data):
        # A history: [(step, value)].
        name = group or metric or "value"
        df = pd.DataFrame({name: [_number(v) for _, v in data]},
                          index=pd.Index([int(s) for s, _ in data], name="step"), dtype=float)
        return df[~df.index.duplicated(keep="last")].sort_index()
    rows = {}
    order = []
    for body in _bodies(data):
        step = int(body["step"])
        row = {}
        for g, node in body["groups"].items():
            if not isinstance(node, dict):
                continue
            if g not in order:
                order.append(g)
            if metric is None:
                for name, v in _flat(node):
                    row[(g, name)] = v
            else:
                row[g] = _at(node, metric)
        rows[step] = row
    groups = [g for g in order if g != "all"] + (["all"] if "all" in order else [])
    steps = sorted(rows)
    index = pd.Index(steps, name="step")
    if metric is None:
        cols = []
        for g in groups:
            names = []
            for s in steps:
                for key in rows[s]:
                    if key[0] == g and key[1] not in names:
                        names.append(key[1])
            cols += [(g, n) for n in names]
        mi = pd.MultiIndex.from_tuples(cols, names=["group", "metric"])
        return pd.DataFrame([[rows[s].get(c) for c in cols] for s in steps], index=index,
                            columns=mi, dtype=float)
    df = pd.DataFrame([[rows[s].get(g) for g in groups] for s in steps], index=index,
                      columns=pd.Index(groups, name="group"), dtype=float)
    return df
