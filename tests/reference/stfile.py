"""stfile.py — a minimal safetensors reader for the reference tests (no
`safetensors` package on Debian 12).

It reads what the reference writer and our fixture generator write: an 8-byte
little-endian header length, a JSON header of {name: {dtype, shape,
data_offsets}} plus an optional string-only __metadata__, then the data.  It
checks the header as far as the reference needs (sizes agree with dtype and
shape, offsets tile the data without holes, overlaps or trailing bytes) so a
broken fixture fails loudly instead of giving wrong numbers.

Tensors come back as float32 numpy arrays (BF16 widened exactly by a 16-bit
shift, F16 by numpy), or in their own integer dtype.  Files are memory-mapped,
so opening a large checkpoint costs nothing until a tensor is read.

Divided into: dtypes, SafeTensors (one file), and load_checkpoint (a Hugging
Face directory, single-file or sharded by model.safetensors.index.json).
"""

import json
import os
import re
import struct

import numpy as np

HEADER_MAX = 100 * 1024 * 1024

# dtype name -> (bytes per element, numpy dtype it is stored as)
DTYPES = {
    "F64": (8, "<f8"), "F32": (4, "<f4"), "F16": (2, "<f2"), "BF16": (2, "<u2"),
    "I64": (8, "<i8"), "I32": (4, "<i4"), "I16": (2, "<i2"), "I8": (1, "i1"),
    "U64": (8, "<u8"), "U32": (4, "<u4"), "U16": (2, "<u2"), "U8": (1, "u1"),
    "BOOL": (1, "u1"),
    "F8_E4M3": (1, "u1"), "F8_E5M2": (1, "u1"), "F8_E8M0": (1, "u1"),
}
# Dtypes sized in bits (packed), readable by nobody here; any other dtype
# name is accepted with its bytes unchecked and refused only when read.
PACKED_BITS = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}
UNKNOWN_DTYPE = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")


def _f8_table(exp_bits, man_bits, bias, ieee):
    """float32 value of every 8-bit code: sign, exp_bits exponent bits of
    `bias`, man_bits mantissa bits.  ieee: the top exponent is infinity (man
    0) or NaN; else (E4M3 "fn") only the all-ones code is NaN."""
    codes = np.arange(256, dtype=np.int64)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    e = (codes >> man_bits) & ((1 << exp_bits) - 1)
    m = codes & ((1 << man_bits) - 1)
    frac = m / float(1 << man_bits)
    val = np.where(e == 0, frac * 2.0 ** (1 - bias), (1.0 + frac) * 2.0 ** (e - bias))
    top = (1 << exp_bits) - 1
    if ieee:
        val = np.where(e == top, np.where(m == 0, np.inf, np.nan), val)
    else:
        val = np.where((e == top) & (m == (1 << man_bits) - 1), np.nan, val)
    return (sign * val).astype(np.float32)


F8_TABLES = {"F8_E4M3": _f8_table(4, 3, 7, False), "F8_E5M2": _f8_table(5, 2, 15, True)}


class FormatError(Exception):
    pass


def bf16_to_f32(u16):
    """BF16 bit patterns (uint16 array) -> float32, exactly."""
    return (np.asarray(u16, dtype=np.uint32) << np.uint32(16)).view(np.float32)


class SafeTensors:
    """One safetensors file: .metadata (dict of str), .tensors {name: (dtype, shape)},
    .get(name) -> numpy array (float32 for float dtypes), .raw(name) -> stored array."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise FormatError("%r: shorter than 8 bytes" % path)
            (n,) = struct.unpack("<Q", head)
            if n > HEADER_MAX or 8 + n > size:
                raise FormatError("%r: header length %d out of bounds" % (path, n))
            try:
                hdr = json.loads(f.read(n).decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise FormatError("%r: header is not JSON: %s" % (path, e))
        if not isinstance(hdr, dict):
            raise FormatError("%r: header is not an object" % path)
        self.metadata = hdr.pop("__metadata__", {}) or {}
        if not all(isinstance(v, str) for v in self.metadata.values()):
            raise FormatError("%r: __metadata__ holds a non-string" % path)
        self.data_start = 8 + n
        self.tensors = {}
        self._off = {}
        spans = []
        for name, e in hdr.items():
            dt = e.get("dtype")
            if dt not in DTYPES and dt not in PACKED_BITS and not (
                    isinstance(dt, str) and UNKNOWN_DTYPE.match(dt)):
                raise FormatError("%r: tensor %r: unknown dtype %r" % (path, name, dt))
            shape = tuple(e["shape"])
            b, en = e["data_offsets"]
            count = 1
            for d in shape:
                if not isinstance(d, int) or d < 0:
                    raise FormatError("%r: tensor %r: bad shape" % (path, name))
                count *= d
            if dt in DTYPES:
                want = count * DTYPES[dt][0]
            elif dt in PACKED_BITS:
                want = count * PACKED_BITS[dt] // 8
            else:
                want = en - b
            if en - b != want or b < 0:
                raise FormatError("%r: tensor %r: %d bytes for %s %s" % (path, name, en - b, dt, shape))
            self.tensors[name] = (dt, shape)
            self._off[name] = (b, en)
            spans.append((b, en, name))
        spans.sort()
        pos = 0
        for b, en, name in spans:
            if b != pos:
                raise FormatError("%r: tensor %r at %d, expected %d (hole or overlap)" % (path, name, b, pos))
            pos = en
        if self.data_start + pos != size:
            raise FormatError("%r: file is %d bytes, header says %d" % (path, size, self.data_start + pos))
        self._map = np.memmap(path, dtype=np.uint8, mode="r") if size > 0 else None

    def raw(self, name):
        dt, shape = self.tensors[name]
        if dt not in DTYPES:
            raise FormatError("%r: tensor %r is %s, which the reference does not read"
                              % (self.path, name, dt))
        b, en = self._off[name]
        buf = self._map[self.data_start + b:self.data_start + en]
        return buf.view(DTYPES[dt][1]).reshape(shape)

    def get(self, name):
        dt = self.tensors[name][0]
        a = self.raw(name)
        if dt == "BF16":
            return bf16_to_f32(a)
        if dt in ("F16", "F32", "F64"):
            return a.astype(np.float32)
        if dt in F8_TABLES:
            return F8_TABLES[dt][a]
        return np.array(a)


def checkpoint_files(d):
    """(index or None, [safetensors paths]) of a Hugging Face checkpoint directory."""
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            index = json.load(f)
        files = sorted(set(index["weight_map"].values()))
        return index, [os.path.join(d, fn) for fn in files]
    return None, [os.path.join(d, "model.safetensors")]


def load_checkpoint(d):
    """(config dict, {name: (SafeTensors, name)}) for a checkpoint directory.
    With an index, tensors resolve only through its weight_map, and each must
    be in the shard it names."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    index, files = checkpoint_files(d)
    opened = {p: SafeTensors(p) for p in files}
    where = {}
    if index is not None:
        for name, fn in index["weight_map"].items():
            st = opened[os.path.join(d, fn)]
            if name not in st.tensors:
                raise FormatError("%r: index names %r, which its shard lacks" % (fn, name))
            where[name] = st
    else:
        st = opened[files[0]]
        for name in st.tensors:
            where[name] = st
    return cfg, where


def canonical(name):
    """The Hugging Face name a stored name stands for: wrapper prefixes of
    torch.compile ("_orig_mod.") and DDP ("module.") dropped, and "model."
    put in front of what the base model's own state_dict() saved."""
    m = re.match(r"^((?:_orig_mod\.|module\.)*)(.+)$", name)
    rest = m.group(2)
    if rest.split(".", 1)[0] in ("model", "lm_head"):
        return rest
    return "model." + rest


class Weights:
    """Tensors of a checkpoint by their Hugging Face name (whatever prefixes
    they were stored under), as float32 numpy arrays; FP8 weights times
    their 128 x 128 block scales (name + "_scale_inv") where stored."""

    def __init__(self, d):
        self.dir = d
        self.cfg, self._where = load_checkpoint(d)
        self._canon = {}
        for stored in self._where:
            self._canon.setdefault(canonical(stored), []).append(stored)

    def stored(self, name):
        got = self._canon.get(name, [])
        if len(got) > 1:
            raise FormatError("%s: %s are all %r" % (self.dir, sorted(got), name))
        if not got:
            raise KeyError("%s: tensor %r missing" % (self.dir, name))
        return got[0]

    def __contains__(self, name):
        return name in self._canon

    def names(self):
        return list(self._canon)

    def shape(self, name):
        s = self.stored(name)
        return self._where[s].tensors[s][1]

    def dtype(self, name):
        s = self.stored(name)
        return self._where[s].tensors[s][0]

    def get(self, name, scales=True):
        s = self.stored(name)
        a = self._where[s].get(s)
        if scales and self.dtype(name) in F8_TABLES and name + "_scale_inv" in self:
            sc = self.get(name + "_scale_inv")
            full = np.repeat(np.repeat(sc, 128, axis=0), 128, axis=1)
            a = a * full[:a.shape[0], :a.shape[1]]
        return a


NP_TO_DTYPE = {"<f4": "F32", "<f8": "F64", "<f2": "F16", "<i4": "I32", "<i8": "I64",
               "<u2": "U16", "<u4": "U32", "|u1": "U8", "|i1": "I8"}


def write_file(path, tensors, metadata=None):
    """Write {name: numpy array} (F32/F64/F16/I32/I64/U16/U32/U8/I8) as a
    safetensors file, tensors in name order, header padded with spaces to a
    multiple of 8.  For tests that need routing files."""
    hdr = {}
    if metadata is not None:
        hdr["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blobs = []
    pos = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"))
        dt = NP_TO_DTYPE[a.dtype.str]
        b = a.tobytes()
        hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [pos, pos + len(b)]}
        pos += len(b)
        blobs.append(b)
    text = json.dumps(hdr, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for b in blobs:
            f.write(b)
