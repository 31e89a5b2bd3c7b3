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
import struct

import numpy as np

HEADER_MAX = 100 * 1024 * 1024

# dtype name -> (bytes per element, numpy dtype it is stored as)
DTYPES = {
    "F64": (8, "<f8"), "F32": (4, "<f4"), "F16": (2, "<f2"), "BF16": (2, "<u2"),
    "I64": (8, "<i8"), "I32": (4, "<i4"), "I16": (2, "<i2"), "I8": (1, "i1"),
    "U64": (8, "<u8"), "U32": (4, "<u4"), "U16": (2, "<u2"), "U8": (1, "u1"),
    "BOOL": (1, "u1"),
}


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
            if dt not in DTYPES:
                raise FormatError("%r: tensor %r: unknown dtype %r" % (path, name, dt))
            shape = tuple(e["shape"])
            b, en = e["data_offsets"]
            count = 1
            for d in shape:
                if not isinstance(d, int) or d < 0:
                    raise FormatError("%r: tensor %r: bad shape" % (path, name))
                count *= d
            if en - b != count * DTYPES[dt][0] or b < 0:
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


class Weights:
    """Tensors of a checkpoint by name, as float32 numpy arrays."""

    def __init__(self, d):
        self.dir = d
        self.cfg, self._where = load_checkpoint(d)

    def __contains__(self, name):
        return name in self._where

    def names(self):
        return list(self._where)

    def shape(self, name):
        return self._where[name].tensors[name][1]

    def dtype(self, name):
        return self._where[name].tensors[name][0]

    def get(self, name):
        if name not in self._where:
            raise KeyError("%s: tensor %r missing" % (self.dir, name))
        return self._where[name].get(name)


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
