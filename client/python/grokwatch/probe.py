"""grokwatch.probe — probe sets read exactly as grokwatchd reads them.

A probe set is pre-tokenized training samples in named groups (SPEC §2).  This
module reads the two formats the daemon reads, with the daemon's rules and
limits (daemon/engine/probe.h is the reference), and computes the same probe
hash, so that a routing file written by grokwatch.trace and the daemon's own
forward pass over the same probe land in one series:

  - JSON Lines, one sample a line, {"tokens": [int, ...], "group": "math",
    "id": "optional"}: lines split at LF; a CR before it, a UTF-8 byte-order
    mark at the very start and lines of only spaces, tabs or CRs are allowed;
    each line is one JSON object in the grammar the daemon's parser (cJSON,
    behind its strict pre-scan) accepts: valid UTF-8 without NUL bytes or an
    escaped NUL, at most 1000 levels deep and 2 * 32768 + 4096 values, any
    bytes 0x01..0x20 as white space between tokens, raw control bytes inside
    strings, numbers as C's strtod reads them ("7", "7.0", "7e0", "-0", "1."
    and "-.5" are numbers, of any length).  "tokens" is a non-empty
    array of integers in [0, 2^31 - 1], at most 32768; "group" a string of 1
    to 127 bytes without control characters ("default" when absent); "id" a
    string of at most 255 such bytes or an integer of magnitude at most 2^53
    (kept as its decimal text).  Other keys are ignored, a known key given
    twice is refused, and so is an id that repeats within its group.
  - raw token memmaps as OLMo and Dolma write them: headerless little-endian
    uint16 or uint32 ids, cut into `count` samples of `length` tokens from
    token `offset`, all in one group, sample i with the id
    "memmap:<offset + i * length>".

The hash is SHA-256 over "grokwatch-probe-v1" NUL, then for each sample in
order: group NUL id NUL ntokens (uint32 LE) tokens (each uint32 LE).

Every fault raises ProbeError, whose message names the file, the line where
there is one, and the fault, as the daemon's does:
  "probe.jsonl" line 12: tokens[7] is 70000, at or beyond the vocabulary (50304)

Divided into: limits and the error; the line parser (a tokenizer and a small
state machine with the daemon's grammar); the sample rules; Probe (adding
files, the vocabulary check, the hash); load(), the one loader.
"""

import hashlib
import os
import re
import struct
from typing import List, Optional

import numpy as np

__all__ = ["ProbeError", "Sample", "Probe", "load", "LINE_MAX", "SAMPLE_MAX", "SAMPLES_MAX",
           "TOKENS_MAX", "GROUPS_MAX"]

# The daemon's limits (probe.h).
LINE_MAX = 16 * 1024 * 1024   # bytes in one JSON line
SAMPLE_MAX = 32768            # tokens in one sample
SAMPLES_MAX = 1000000         # samples in one probe
GROUP_MAX = 128               # a group name is shorter than this (bytes)
ID_MAX = 256                  # an id is shorter than this (bytes)
GROUPS_MAX = 4096             # groups in one probe
TOKENS_MAX = 1 << 26          # tokens in one probe
DEPTH_MAX = 1000              # JSON nesting
VALUES_MAX = 2 * SAMPLE_MAX + 4096  # JSON values in one line
EXACT_INT = 2 ** 53
TOKEN_MAX = 2 ** 31 - 1
HASH_TAG = b"grokwatch-probe-v1\0"


class ProbeError(ValueError):
    """A probe file that cannot be used; the message names it and the fault."""


class _Bad(Exception):
    """A fault in one line, before the file and line are known."""


# ---------------------------------------------------------------- the line parser

_TOKEN = re.compile(rb"""
    (?P<ws>[\x01-\x20]+)
  | (?P<str>"[^"\\]*(?:\\[\s\S][^"\\]*)*")
  | (?P<num>[-0-9][-+.eE0-9]*)
  | (?P<lit>[A-Za-z]+)
  | (?P<punct>[{}\[\]:,])
""", re.X)
# What C's strtod takes from the characters cJSON hands it.
_STRTOD = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}
_HEX = re.compile(r"[0-9A-Fa-f]{4}\Z")
_LITERALS = {b"true": True, b"false": False, b"null": None}


class _Obj(list):
    """A JSON object: its (key, value) pairs in order, repeats kept."""


def _string(raw: bytes, at: int) -> str:
    """The text of a JSON string's body (between the quotes)."""
    if b"\0" in raw:
        raise _Bad("NUL byte at byte offset %d" % (at + raw.index(b"\0")))
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad("invalid UTF-8 at byte offset %d" % (at + e.start))
    if "\\" not in s:
        return s
    out = []
    i = 0
    while True:
        j = s.find("\\", i)
        if j < 0:
            out.append(s[i:])
            return "".join(out)
        out.append(s[i:j])
        c = s[j + 1]
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
            i = j + 2
            continue
        if c != "u" or not _HEX.match(s[j + 2:j + 6]):
            raise _Bad("invalid escape in a string at byte offset %d" % at)
        code = int(s[j + 2:j + 6], 16)
        i = j + 6
        if code == 0:
            raise _Bad("escaped NUL (\\u0000) at byte offset %d" % at)
        if 0xDC00 <= code <= 0xDFFF:
            raise _Bad("not valid JSON (a lone surrogate escape at byte offset %d)" % at)
        if 0xD800 <= code <= 0xDBFF:
            lo = s[i + 2:i + 6] if s[i:i + 2] == "\\u" else ""
            if not _HEX.match(lo) or not 0xDC00 <= int(lo, 16) <= 0xDFFF:
                raise _Bad("not valid JSON (a lone surrogate escape at byte offset %d)" % at)
            code = 0x10000 + (((code & 0x3FF) << 10) | (int(lo, 16) & 0x3FF))
            i += 6
        out.append(chr(code))


def _number(tok: bytes, at: int) -> float:
    """cJSON's number: strtod over the run of characters [0-9+-.eE] (Debian's
    cJSON takes a run of any length); the whole run must be what strtod took,
    or what follows is not JSON."""
    m = _STRTOD.match(tok)
    if m is None or m.end() != len(tok):
        raise _Bad("not valid JSON (near byte offset %d)" % (at + (m.end() if m else 0)))
    return float(m.group())


def parse_line(line: bytes, values_max: int = VALUES_MAX):
    """One JSON value from line[0..), then only spaces, tabs and CRs: objects
    as _Obj, arrays as lists, numbers as float.  Raises _Bad."""
    pos, n = 0, len(line)
    stack = []          # open containers
    keys = []           # the key awaiting its value, per open object
    values = 0
    state = "value"     # value | value_or_close | key | key_or_close | colon | next
    match = _TOKEN.match
    while True:
        m = match(line, pos)
        if m is None:
            if pos >= n:
                raise _Bad("not valid JSON (the line ends inside the value)")
            b = line[pos]
            if b == 0:
                raise _Bad("NUL byte at byte offset %d" % pos)
            if b == 0x22:
                raise _Bad("ends inside the string at byte offset %d" % pos)
            if b >= 0x80:
                try:
                    line[pos:pos + 4].decode("utf-8", "strict")
                except UnicodeDecodeError as e:
                    if e.start == 0 and e.reason != "unexpected end of data":
                        raise _Bad("invalid UTF-8 at byte offset %d" % pos)
            raise _Bad("not valid JSON (near byte offset %d)" % pos)
        kind = m.lastgroup
        tok = m.group()
        at = pos
        pos = m.end()
        if kind == "ws":
            continue
        value = closed = None
        have = False
        if state in ("value", "value_or_close"):
            if kind == "punct" and tok in b"{[":
                values += 1
                if values > values_max:
                    raise _Bad("more than %d JSON values in one line" % values_max)
                if len(stack) == DEPTH_MAX:
                    raise _Bad("nests deeper than %d levels (at byte offset %d)" % (DEPTH_MAX, at))
                if tok == b"{":
                    stack.append(_Obj())
                    keys.append(None)
                    state = "key_or_close"
                else:
                    stack.append([])
                    keys.append(None)
                    state = "value_or_close"
                continue
            if kind == "punct" and tok == b"]" and state == "value_or_close":
                closed = True
            elif kind in ("str", "num", "lit"):
                values += 1
                if values > values_max:
                    raise _Bad("more than %d JSON values in one line" % values_max)
                if kind == "str":
                    value = _string(tok[1:-1], at)
                elif kind == "num":
                    value = _number(tok, at)
                elif tok in _LITERALS:
                    value = _LITERALS[tok]
                else:
                    raise _Bad("not valid JSON (near byte offset %d)" % at)
                have = True
            else:
                raise _Bad("not valid JSON (near byte offset %d)" % at)
        elif state in ("key", "key_or_close"):
            if kind == "punct" and tok == b"}" and state == "key_or_close":
                closed = True
            elif kind == "str":
                keys[-1] = _string(tok[1:-1], at)
                state = "colon"
                continue
            else:
                raise _Bad("not valid JSON (near byte offset %d)" % at)
        elif state == "colon":
            if tok != b":":
                raise _Bad("not valid JSON (near byte offset %d)" % at)
            state = "value"
            continue
        else:  # next
            top = stack[-1]
            if tok == b",":
                state = "key" if isinstance(top, _Obj) else "value"
                continue
            if tok == (b"}" if isinstance(top, _Obj) else b"]"):
                closed = True
            else:
                raise _Bad("not valid JSON (near byte offset %d)" % at)
        if closed:
            value = stack.pop()
            keys.pop()
            have = True
        if have:
            if not stack:
                rest = line[pos:]
                if rest.strip(b" \t\r"):
                    off = pos + len(rest) - len(rest.lstrip(b" \t\r"))
                    raise _Bad("text after the JSON value at byte offset %d" % off)
                return value
            top = stack[-1]
            if isinstance(top, _Obj):
                top.append((keys[-1], value))
            else:
                top.append(value)
            state = "next"


# ---------------------------------------------------------------- sample rules

def _kind(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, _Obj):
        return "an object"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, str):
        return "a string"
    return "a number"


def _name_fault(s: str, limit: int, empty_ok: bool) -> Optional[str]:
    """Why s cannot be a group (limit GROUP_MAX) or id (ID_MAX), or None."""
    n = len(s.encode("utf-8"))
    if n == 0 and not empty_ok:
        return "is empty"
    if n >= limit:
        return "is %d bytes, longer than %d" % (n, limit - 1)
    for i, ch in enumerate(s.encode("utf-8")):
        if ch < 0x20 or ch == 0x7F:
            return "holds a control character (byte %d)" % i
    return None


def _fmt(d: float) -> str:
    """A double as C's %.17g writes it, for messages."""
    return "%.17g" % d


class Sample:
    """One probe sample: tokens (numpy int32), group, id ("" when none),
    source (the file), where (1-based line, or index of the first token)."""

    __slots__ = ("tokens", "group", "id", "source", "where", "memmap")

    def __init__(self, tokens, group, id, source, where, memmap):
        self.tokens = tokens
        self.group = group
        self.id = id
        self.source = source
        self.where = where
        self.memmap = memmap

    def place(self) -> str:
        if self.memmap:
            return '"%s" token %d' % (self.source, self.where)
        return '"%s" line %d' % (self.source, self.where)

    def __len__(self):
        return len(self.tokens)

    def __repr__(self):
        return "Sample(%s, group=%r, id=%r, %d tokens)" % (self.place(), self.group, self.id,
                                                           len(self.tokens))


class Probe:
    """Samples in order, with groups and the hash (after finish())."""

    def __init__(self):
        self.samples: List[Sample] = []
        self.groups: List[str] = []
        self.hash = ""
        self._group_index = {}
        self._ids = {}
        self._ntokens = 0

    def __len__(self):
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def __getitem__(self, i):
        return self.samples[i]

    @property
    def n_tokens(self) -> int:
        return self._ntokens

    # -- adding -----------------------------------------------------------

    def _commit(self, new: List[Sample]):
        for s in new:
            if s.group not in self._group_index:
                self._group_index[s.group] = len(self.groups)
                self.groups.append(s.group)
            if s.id:
                self._ids[(s.group, s.id)] = s
            self._ntokens += len(s.tokens)
        self.samples.extend(new)
        self.hash = ""

    def add_jsonl(self, path: str, vocab: int = 0) -> None:
        """Add the samples of a JSON Lines file; all or none of them."""
        with _open_regular(path) as (f, size):
            data = f.read() if size is None else f.read(size + 1)
        if size is not None and len(data) != size:
            raise ProbeError('"%s": the file changed while being read (%d bytes when opened, %d '
                             'read)' % (path, size, len(data)))
        self.add_jsonl_bytes(path, data, vocab)

    def add_jsonl_bytes(self, name: str, data: bytes, vocab: int = 0) -> None:
        """The same for the text in `data`; `name` stands for the file."""
        new: List[Sample] = []
        ids = {}
        ngroups = set(self._group_index)
        ntok = self._ntokens
        pos, lineno, n = 0, 0, len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl
            lineno += 1
            line = data[pos:end]
            pos = end + 1
            if len(line) > LINE_MAX:
                raise ProbeError('"%s" line %d: longer than %d bytes' % (name, lineno, LINE_MAX))
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip(b" \t\r"):
                continue
            try:
                root = parse_line(line)
            except _Bad as e:
                hint = ("; the file ends without a newline, so this line may be cut short"
                        if nl < 0 and str(e).startswith("not valid JSON") else "")
                raise ProbeError('"%s" line %d: %s%s' % (name, lineno, e, hint)) from None
            s = self._sample(name, lineno, root, vocab, new, ids, ngroups, ntok)
            ntok += len(s.tokens)
            ngroups.add(s.group)
            if s.id:
                ids[(s.group, s.id)] = s
            new.append(s)
        if not new:
            raise ProbeError('"%s": no samples (the file is empty or blank)' % name)
        self._commit(new)

    def _sample(self, name, lineno, root, vocab, new, ids, ngroups, ntok) -> Sample:
        def fail(msg):
            return ProbeError('"%s" line %d: %s' % (name, lineno, msg))

        if not isinstance(root, _Obj):
            raise fail("not a JSON object but %s" % _kind(root))
        fields = {}
        for k, v in root:
            if k in ("tokens", "group", "id"):
                if k in fields:
                    raise fail('key "%s" given twice' % k)
                fields[k] = v
        if "tokens" not in fields:
            raise fail('no "tokens" field')
        tokens = fields["tokens"]
        if not isinstance(tokens, list) or isinstance(tokens, _Obj):
            raise fail('"tokens" is %s, not an array' % _kind(tokens))
        group = "default"
        if "group" in fields:
            g = fields["group"]
            if not isinstance(g, str):
                raise fail('"group" is %s, not a string' % _kind(g))
            why = _name_fault(g, GROUP_MAX, False)
            if why:
                raise fail('"group" %s' % why)
            group = g
        sid = ""
        if "id" in fields:
            v = fields["id"]
            if isinstance(v, str):
                why = _name_fault(v, ID_MAX, True)
                if why:
                    raise fail('"id" %s' % why)
                sid = v
            elif isinstance(v, float):
                if v == v and abs(v) != float("inf") and v == int(v) and abs(v) <= EXACT_INT:
                    sid = "%d" % int(v)
                else:
                    raise fail('"id" is %s, not an integer of at most 2^53' % _fmt(v))
            else:
                raise fail('"id" is %s, not a string or an integer' % _kind(v))
        nt = len(tokens)
        if nt == 0:
            raise fail('"tokens" is empty')
        if nt > SAMPLE_MAX:
            raise fail("%d tokens, more than the limit of %d a sample" % (nt, SAMPLE_MAX))
        if len(self.samples) + len(new) >= SAMPLES_MAX:
            raise fail("more than %d samples in the probe" % SAMPLES_MAX)
        if ntok + nt > TOKENS_MAX:
            raise fail("more than %d tokens in the probe" % TOKENS_MAX)
        if sid:
            prev = ids.get((group, sid)) or self._ids.get((group, sid))
            if prev is not None:
                raise fail('id "%s" repeats in group "%s" (first at %s)' % (sid, group,
                                                                            prev.place()))
        out = np.empty(nt, np.int32)
        for i, t in enumerate(tokens):
            if not isinstance(t, float) or isinstance(t, bool):
                if isinstance(t, str) and len(t.encode()) <= 16 and all(
                        0x20 <= ord(c) < 0x7F and c not in '"\\' for c in t):
                    raise fail('tokens[%d] is the string "%s", not an integer' % (i, t))
                raise fail("tokens[%d] is %s, not an integer" % (i, _kind(t)))
            if t != t or t in (float("inf"), float("-inf")):
                raise fail("tokens[%d] is %g, beyond the 32-bit range" % (i, t))
            if t != int(t):
                raise fail("tokens[%d] is %s, not an integer" % (i, _fmt(t)))
            if t < 0:
                raise fail("tokens[%d] is %s, negative" % (i, _fmt(t)))
            if t > TOKEN_MAX:
                raise fail("tokens[%d] is %s, beyond the 32-bit range" % (i, _fmt(t)))
            if vocab > 0 and t >= vocab:
                raise fail("tokens[%d] is %d, at or beyond the vocabulary (%d)"
                           % (i, int(t), vocab))
            out[i] = int(t)
        if group not in ngroups and len(ngroups) >= GROUPS_MAX:
            raise fail("more than %d groups in the probe" % GROUPS_MAX)
        return Sample(out, group, sid, name, lineno, False)

    def add_memmap(self, path: str, width: int, length: int, count: int, offset: int = 0,
                   group: Optional[str] = None, vocab: int = 0) -> None:
        """Add `count` samples of `length` tokens of `width` bytes (2 or 4)
        from token `offset` of a headerless little-endian memmap."""
        gname = "default" if group is None else group
        if width not in (2, 4):
            raise ProbeError('"%s": token width %d, not 2 or 4' % (path, width))
        if not 1 <= length <= SAMPLE_MAX:
            raise ProbeError('"%s": sample length %d is outside 1..%d' % (path, length,
                                                                            SAMPLE_MAX))
        if count < 1 or count > SAMPLES_MAX - len(self.samples):
            raise ProbeError('"%s": %d samples; the probe holds %d and takes at most %d'
                             % (path, count, len(self.samples), SAMPLES_MAX))
        if offset < 0:
            raise ProbeError('"%s": negative offset %d' % (path, offset))
        why = _name_fault(gname, GROUP_MAX, False)
        if why:
            raise ProbeError('"%s": group name %s' % (path, why))
        need = count * length
        if self._ntokens + need > TOKENS_MAX:
            raise ProbeError('"%s": %d tokens would make more than %d in the probe'
                             % (path, need, TOKENS_MAX))
        with _open_regular(path) as (f, size):
            if size is None:
                raise ProbeError('"%s": not a regular file' % path)
            if size % width:
                raise ProbeError('"%s": size %d bytes is not a multiple of the token width %d'
                                 % (path, size, width))
            ntok = size // width
            if offset > ntok or need > ntok - offset:
                raise ProbeError('"%s": %d samples of %d tokens from token %d reach beyond the '
                                 'end of its %d tokens' % (path, count, length, offset, ntok))
            if gname not in self._group_index and len(self.groups) >= GROUPS_MAX:
                raise ProbeError('"%s": more than %d groups in the probe' % (path, GROUPS_MAX))
            f.seek(offset * width)
            raw = f.read(need * width)
        if len(raw) != need * width:
            raise ProbeError('"%s": the file shrank while being read (no data at byte %d; %d '
                             'bytes when opened)' % (path, offset * width + len(raw), size))
        toks = np.frombuffer(raw, "<u2" if width == 2 else "<u4").astype(np.int64)
        big = np.nonzero(toks > TOKEN_MAX)[0]
        if big.size:
            k = int(big[0])
            raise ProbeError('"%s": token %d is %d, beyond the 32-bit range' % (
                path, offset + k, toks[k]))
        if vocab > 0:
            over = np.nonzero(toks >= vocab)[0]
            if over.size:
                k = int(over[0])
                raise ProbeError('"%s": token %d is %d, at or beyond the vocabulary (%d)' % (
                    path, offset + k, toks[k], vocab))
        toks = toks.astype(np.int32)
        new = []
        for i in range(count):
            first = offset + i * length
            sid = "memmap:%d" % first
            if (gname, sid) in self._ids:
                raise ProbeError('"%s": id "%s" repeats in group "%s"' % (path, sid, gname))
            new.append(Sample(toks[i * length:(i + 1) * length], gname, sid, path, first, True))
        self._commit(new)

    # -- checks and the hash ------------------------------------------------

    def check_vocab(self, vocab: int) -> None:
        """Refuse a token at or beyond `vocab`, naming where it came from."""
        if vocab <= 0:
            raise ValueError("vocab must be positive, not %r" % (vocab,))
        for s in self.samples:
            over = np.nonzero(s.tokens >= vocab)[0]
            if over.size:
                k = int(over[0])
                if s.memmap:
                    raise ProbeError('"%s": token %d is %d, at or beyond the vocabulary (%d)'
                                     % (s.source, s.where + k, s.tokens[k], vocab))
                raise ProbeError('"%s" line %d: tokens[%d] is %d, at or beyond the vocabulary '
                                 '(%d)' % (s.source, s.where, k, s.tokens[k], vocab))

    def finish(self) -> str:
        """Compute (and return) the probe hash, as the daemon's probe_finish."""
        h = hashlib.sha256(HASH_TAG)
        for s in self.samples:
            h.update(s.group.encode("utf-8") + b"\0" + s.id.encode("utf-8") + b"\0")
            h.update(struct.pack("<I", len(s.tokens)))
            h.update(s.tokens.astype("<u4").tobytes())
        self.hash = h.hexdigest()
        return self.hash


class _open_regular:
    """Open for reading, refuse a directory; yields (file, size or None)."""

    def __init__(self, path):
        self.path = path
        self.f = None

    def __enter__(self):
        try:
            self.f = open(self.path, "rb")
            st = os.fstat(self.f.fileno())
        except OSError as e:
            if self.f:
                self.f.close()
            raise ProbeError('"%s": %s' % (self.path, e.strerror)) from None
        import stat
        if stat.S_ISDIR(st.st_mode):
            self.f.close()
            raise ProbeError('"%s": is a directory, not a file' % self.path)
        return self.f, (st.st_size if stat.S_ISREG(st.st_mode) else None)

    def __exit__(self, *exc):
        self.f.close()


FORMATS = ("jsonl", "u16", "u32")


def load(path: str, format: str = "jsonl", length: int = 512, count: int = 64,
         offset: int = 0, group: Optional[str] = None) -> Probe:
    """The one loader, as the daemon's probe_load and its probe.* keys: a
    finished probe (hash computed) from a JSON Lines file, or from a u16 / u32
    memmap cut into `count` samples of `length` tokens from `offset`."""
    p = Probe()
    if format == "jsonl":
        p.add_jsonl(path)
    elif format in ("u16", "u32"):
        p.add_memmap(path, 2 if format == "u16" else 4, length, count, offset, group)
    else:
        raise ProbeError('"%s": probe format %r is not one of %s' % (path, format,
                                                                     ", ".join(FORMATS)))
    p.finish()
    return p
