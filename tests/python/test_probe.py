#!/usr/bin/python3
"""test_probe.py — grokwatch.probe against the daemon's own probe reader.

Every case is a probe file read twice: by grokwatch.probe.load and by
`grokwatchd run -c CONFIG --check`, which loads the probe with the daemon's
probe_load and prints its hash.  Each case must be accepted by both with the
same hash, or refused by both; where the daemon's message names a line, the
Python message names the same line.  The cases: the fixture probes (JSON
Lines, u16 and u32 memmaps with offsets and groups), a table of edge cases of
the grammar and the sample rules (numbers as strtod reads them, white space
as cJSON skips it, escapes and surrogates, UTF-8, NUL, control characters,
duplicate keys, ids, groups, limits, BOM, CR, blank lines, a missing final
newline), memmap faults, and 300 seeded random mutations of valid lines.
"""

import json
import os
import random
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("GW_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "client", "python"))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from grokwatch import probe as gp  # noqa: E402
from gwtest import BIN, Tap  # noqa: E402

FX = os.environ.get("GW_FIXTURES", os.path.join(SRC, "build", "default", "fixtures"))
tap = Tap()
work = tempfile.mkdtemp(prefix="gwprobe.")
os.makedirs(os.path.join(work, "root"))


def daemon(path, fmt="jsonl", length=512, count=64, offset=0, group=None):
    """(hash, None) or (None, message) from grokwatchd run --check."""
    pr = {"path": path, "format": fmt}
    if fmt != "jsonl":
        pr.update(sample_length=length, count=count, offset=offset)
        if group is not None:
            pr["group"] = group
    cfg = {"watch": {"root": os.path.join(work, "root")}, "state_dir": os.path.join(work, "st"),
           "probe": pr}
    cp = os.path.join(work, "c.json")
    with open(cp, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([BIN, "run", "-c", cp, "--check"], capture_output=True, text=True,
                       errors="replace", timeout=60)
    m = re.search(r"probe hash ([0-9a-f]{64})", r.stdout)
    if r.returncode == 0 and m:
        return m.group(1), None
    return None, (r.stderr.strip() or r.stdout.strip() or "exit %d" % r.returncode)


def python(path, fmt="jsonl", length=512, count=64, offset=0, group=None):
    try:
        return gp.load(path, fmt, length, count, offset, group).hash, None
    except gp.ProbeError as e:
        return None, str(e)


def line_of(msg):
    m = re.search(r'" line (\d+):', msg or "")
    return m.group(1) if m else None


def same(name, path, lines=True, **kw):
    """Both readers agree on the file at `path`; returns whether it was
    accepted.  lines=False: the daemon refuses the values in its config (the
    memmap range keys have bounds there), so only the refusal is compared."""
    dh, de = daemon(path, **kw)
    ph, pe = python(path, **kw)
    if dh is not None:
        tap.ok(ph == dh, "%s: accepted by both, same hash" % name,
               "daemon %s\npython %s" % (dh, ph or pe))
    else:
        ok = ph is None and ('"%s"' % path) in pe and (not lines or line_of(de) == line_of(pe))
        tap.ok(ok, "%s: refused by both, naming the file%s" % (
            name, " and the same line" if lines else ""),
               "daemon: %s\npython: %s" % (de, pe or ph))
    return dh is not None


def case(name, data):
    path = os.path.join(work, "p.jsonl")
    with open(path, "wb") as f:
        f.write(data)
    return same(name, path)


# ---- the fixtures
same("fixture probe.jsonl", os.path.join(FX, "probe", "probe.jsonl"))
for fmt in ("u16", "u32"):
    same("fixture tokens.%s, 8 x 100 from 3, group g" % fmt,
         os.path.join(FX, "probe", "tokens." + fmt), fmt=fmt, length=100, count=8, offset=3,
         group="g")
    same("fixture tokens.%s, defaults" % fmt, os.path.join(FX, "probe", "tokens." + fmt),
         fmt=fmt, length=64, count=64)

# ---- the grammar and the rules
T = b'{"tokens":[1,2,3]'
CASES = [
    ("plain", T + b"}\n"),
    ("group and id", b'{"tokens":[5],"group":"math","id":"a"}\n'),
    ("integer id", b'{"tokens":[5],"id":-42}\n{"tokens":[5],"id":1e3}\n'),
    ("id -0 is 0", b'{"tokens":[5],"id":-0}\n'),
    ("id 2^53", b'{"tokens":[5],"id":9007199254740992}\n'),
    ("id beyond 2^53", b'{"tokens":[5],"id":9007199254740994}\n'),
    ("id 1.5", b'{"tokens":[5],"id":1.5}\n'),
    ("id true", b'{"tokens":[5],"id":true}\n'),
    ("empty id is none", b'{"tokens":[5],"id":""}\n{"tokens":[6],"id":""}\n'),
    ("id repeats in group", b'{"tokens":[5],"id":"x"}\n{"tokens":[6],"id":"x"}\n'),
    ("id repeats across groups", b'{"tokens":[5],"id":"x","group":"a"}\n'
                                 b'{"tokens":[6],"id":"x","group":"b"}\n'),
    ("id of 255 bytes", b'{"tokens":[5],"id":"' + b"x" * 255 + b'"}\n'),
    ("id of 256 bytes", b'{"tokens":[5],"id":"' + b"x" * 256 + b'"}\n'),
    ("id with a tab", b'{"tokens":[5],"id":"a\\tb"}\n'),
    ("id with DEL", b'{"tokens":[5],"id":"a\x7fb"}\n'),
    ("group of 127 bytes", b'{"tokens":[5],"group":"' + b"g" * 127 + b'"}\n'),
    ("group of 128 bytes", b'{"tokens":[5],"group":"' + b"g" * 128 + b'"}\n'),
    ("empty group", b'{"tokens":[5],"group":""}\n'),
    ("group not a string", b'{"tokens":[5],"group":7}\n'),
    ("unicode group", '{"tokens":[5],"group":"m\u00e4th \u6570"}\n'.encode()),
    ("escaped unicode group", b'{"tokens":[5],"group":"m\\u00e4th \\ud83d\\ude00"}\n'),
    ("lone high surrogate", b'{"tokens":[5],"group":"\\ud83d"}\n'),
    ("lone low surrogate", b'{"tokens":[5],"group":"\\ude00"}\n'),
    ("surrogate then bad hex", b'{"tokens":[5],"group":"\\ud83d\\u12zz"}\n'),
    ("escape without four hex digits", b'{"tokens":[5],"group":"ab\\u00zzcd"}\n'),
    ("escaped NUL", b'{"tokens":[5],"group":"a\\u0000"}\n'),
    ("escaped NUL in another key", b'{"tokens":[5],"x":"a\\u0000"}\n'),
    ("bad escape", b'{"tokens":[5],"group":"a\\q"}\n'),
    ("escaped slash and quote", b'{"tokens":[5],"group":"a\\/\\"\\\\b"}\n'),
    ("raw control byte in another key", b'{"tokens":[5],"text":"a\x01b\tc"}\n'),
    ("raw NUL", b'{"tokens":[5],"text":"a\x00b"}\n'),
    ("raw NUL outside strings", b'{"tokens":[5]\x00}\n'),
    ("invalid UTF-8", b'{"tokens":[5],"text":"\xff"}\n'),
    ("overlong UTF-8", b'{"tokens":[5],"text":"\xc0\xaf"}\n'),
    ("UTF-8 surrogate", b'{"tokens":[5],"text":"\xed\xa0\x80"}\n'),
    ("UTF-8 outside strings", b'{"tokens":[5]\xc3\xa9}\n'),
    ("numbers as strtod reads them", b'{"tokens":[7,7.0,7e0,70E-1,-0,1.,0.5e1,01,00]}\n'),
    ("-.5 is a number, not an integer", b'{"tokens":[-.5]}\n'),
    (".5 is not JSON", b'{"tokens":[.5]}\n'),
    ("+1 is not JSON", b'{"tokens":[+1]}\n'),
    ("1e is not JSON", b'{"tokens":[1e]}\n'),
    ("1-2 is not JSON", b'{"tokens":[1-2]}\n'),
    ("hex is not JSON", b'{"tokens":[0x10]}\n'),
    ("a 64-character number", b'{"tokens":[' + b"0" * 63 + b'1]}\n'),
    ("a 3000-digit fraction rounds to 1", b'{"tokens":[1.' + b"0" * 3000 + b'1]}\n'),
    ("tiny number is 0", b'{"tokens":[1e-400]}\n'),
    ("huge number", b'{"tokens":[1e999]}\n'),
    ("2^31-1", b'{"tokens":[2147483647]}\n'),
    ("2^31", b'{"tokens":[2147483648]}\n'),
    ("negative token", b'{"tokens":[-1]}\n'),
    ("fraction", b'{"tokens":[1.5]}\n'),
    ("string token", b'{"tokens":["7"]}\n'),
    ("null token", b'{"tokens":[null]}\n'),
    ("bool token", b'{"tokens":[true]}\n'),
    ("nested token", b'{"tokens":[[1]]}\n'),
    ("empty tokens", b'{"tokens":[]}\n'),
    ("tokens not an array", b'{"tokens":{"a":1}}\n'),
    ("no tokens", b'{"group":"a"}\n'),
    ("tokens twice", b'{"tokens":[1],"tokens":[2]}\n'),
    ("group twice", b'{"tokens":[1],"group":"a","group":"a"}\n'),
    ("unknown key twice", b'{"tokens":[1],"x":1,"x":2}\n'),
    ("a top-level array", b'[1,2]\n'),
    ("a top-level string", b'"x"\n'),
    ("trailing comma", b'{"tokens":[1,],}\n'),
    ("trailing comma in object", b'{"tokens":[1],}\n'),
    ("text after the value", T + b"} x\n"),
    ("spaces, tabs, CR after the value", T + b"} \t\r\n"),
    ("vertical tab before the value", b"\x0b" + T + b"}\n"),
    ("control bytes as white space inside", b'{\x01"tokens"\x1f:\x0c[1\x0b,2]}\n'),
    ("vertical tab after the value", T + b"}\x0b\n"),
    ("literal spelled wrong", b'{"tokens":[1],"x":tru}\n'),
    ("literal run on", b'{"tokens":[1],"x":truex}\n'),
    ("literals", b'{"tokens":[1],"x":[true,false,null]}\n'),
    ("unterminated string", b'{"tokens":[1],"x":"abc\n'),
    ("unterminated object", b'{"tokens":[1]\n'),
    ("empty object inside", b'{"tokens":[1],"m":{},"n":[]}\n'),
    ("nesting of 999 more", b'{"tokens":[1],"x":' + b"[" * 999 + b"]" * 999 + b"}\n"),
    ("nesting of 1000 more", b'{"tokens":[1],"x":' + b"[" * 1000 + b"]" * 1000 + b"}\n"),
    ("BOM on line 1", b"\xef\xbb\xbf" + T + b"}\n"),
    ("BOM on line 2", T + b"}\n\xef\xbb\xbf" + T + b"}\n"),
    ("CRLF lines", T + b"}\r\n" + T + b"}\r\n"),
    ("blank lines", b"\n \t\r\n" + T + b"}\n\n"),
    ("no final newline", T + b"}\n" + T + b"}"),
    ("cut last line", T + b"}\n" + b'{"tokens":[1,'),
    ("empty file", b""),
    ("blank file", b" \n\t\n"),
    ("fault on line 3", T + b"}\n\n" + b'{"tokens":[-1]}\n'),
    ("32768 tokens", b'{"tokens":[' + b",".join([b"1"] * 32768) + b"]}\n"),
    ("32769 tokens", b'{"tokens":[' + b",".join([b"1"] * 32769) + b"]}\n"),
    ("too many values in one line", b'{"tokens":[1],"x":[' + b",".join([b"0"] * 70000) + b"]}\n"),
    ("metadata ignored", b'{"tokens":[1],"text":"hello","metadata":{"a":[1,{"b":null}]}}\n'),
]
for name, data in CASES:
    case(name, data)

# ---- memmaps
mm = os.path.join(work, "t.u16")
with open(mm, "wb") as f:
    f.write(bytes(range(256)) * 4)  # 512 tokens
same("memmap: the last token reached", mm, fmt="u16", length=64, count=8, offset=0)
same("memmap: one token beyond", mm, fmt="u16", length=64, count=8, offset=1)
same("memmap: negative offset", mm, fmt="u16", length=8, count=1, offset=-1, lines=False)
same("memmap: length 0", mm, fmt="u16", length=0, count=1, lines=False)
same("memmap: count 0", mm, fmt="u16", length=1, count=0, lines=False)
same("memmap: bad group", mm, fmt="u16", length=1, count=1, group="a\tb")
odd = os.path.join(work, "t.u32")
with open(odd, "wb") as f:
    f.write(b"\x01\x00\x00\x00\x02\x00\x00\x80\x03")
same("memmap: size not a multiple of 4", odd, fmt="u32", length=1, count=1)
with open(odd, "wb") as f:
    f.write(b"\x01\x00\x00\x00\x02\x00\x00\x80")
same("memmap: a u32 token beyond 2^31 - 1", odd, fmt="u32", length=1, count=2)
same("missing file", os.path.join(work, "nope.jsonl"))
same("a directory", work)

# ---- vocabulary check (the daemon checks it against the model: same message shape)
p = gp.load(os.path.join(FX, "probe", "probe.jsonl"))
try:
    p.check_vocab(100)
    tap.ok(False, "check_vocab refuses a token at or beyond the vocabulary")
except gp.ProbeError as e:
    tap.ok(re.search(r'probe\.jsonl" line \d+: tokens\[\d+\] is \d+, at or beyond the '
                     r'vocabulary \(100\)', str(e)) is not None,
           "check_vocab names the file, line and token", str(e))

# ---- seeded mutations of valid lines
rng = random.Random(14)
ALPHABET = [b"0", b"1", b"9", b"-", b"+", b".", b"e", b"E", b'"', b"\\", b"u", b"{", b"}",
            b"[", b"]", b",", b":", b" ", b"\t", b"\r", b"\x0b", b"\x00", b"\x01", b"\xc3",
            b"\xa9", b"\xff", b"t", b"n", b"d", b"D", b"8", b"f", b"\n", b"\xef\xbb\xbf"]
BASE = [b'{"tokens":[12,0,7e0,3],"group":"code","id":"c-1"}',
        b'{"id":7,"tokens":[4,5],"text":"x\\u00e9\\n"}',
        b'{"tokens":[1],"group":"g\\ud83d\\ude00"}']
agree = accepted = 0
bad = []
for i in range(300):
    lines = [bytearray(rng.choice(BASE)) for _ in range(rng.randint(1, 3))]
    for _ in range(rng.randint(1, 3)):
        ln = rng.choice(lines)
        pos = rng.randrange(len(ln) + 1)
        op = rng.random()
        if op < 0.4 and pos < len(ln):
            ln[pos:pos + 1] = rng.choice(ALPHABET)
        elif op < 0.7:
            ln[pos:pos] = rng.choice(ALPHABET)
        elif pos < len(ln):
            del ln[pos]
    data = b"\n".join(bytes(x) for x in lines) + (b"\n" if rng.random() < 0.8 else b"")
    path = os.path.join(work, "m.jsonl")
    with open(path, "wb") as f:
        f.write(data)
    dh, de = daemon(path)
    ph, pe = python(path)
    if dh == ph and (dh is not None or line_of(de) == line_of(pe)):
        agree += 1
        accepted += dh is not None
    elif len(bad) < 5:
        bad.append("%r\n  daemon: %s\n  python: %s" % (data, dh or de, ph or pe))
tap.ok(agree == 300, "300 mutated probes: both readers agree on every one (%d accepted)"
       % accepted, "\n".join(bad))
tap.ok(20 <= accepted <= 280, "the mutations both pass and fail (%d accepted)"
       % accepted)

import shutil  # noqa: E402
shutil.rmtree(work, ignore_errors=True)
tap.done()
