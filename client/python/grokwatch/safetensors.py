"""grokwatch.safetensors — write a safetensors file, atomically.

The format (SPEC §2): 8 bytes little-endian header length N, N bytes of JSON
header {name: {"dtype", "shape", "data_offsets": [begin, end)}, "__metadata__":
{str: str}}, then the data, tensors back to back from offset 0 with no hole,
overlap or trailing byte.  The header is padded with spaces to a multiple of 8
so that every tensor starts aligned, and may hold at most 100 MB.

The file is replaced whole, as the daemon replaces its own files
(daemon/engine/file.h): written to a temporary name in the same directory,
flushed to disk (fsync), renamed over the target, and the directory synced; a
reader sees the old file or the new one, never a part.  On any failure (a full
disk, a missing directory) the temporary file is removed, the old file is left
as it was, and OSError names the path.
"""

import json
import os
import struct
from typing import Dict, Mapping

import numpy as np

__all__ = ["write", "HEADER_MAX"]

HEADER_MAX = 100 * 1000 * 1000

# numpy dtype -> safetensors dtype
_DTYPES = {
    np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64",
    np.dtype("<i4"): "I32", np.dtype("<i8"): "I64", np.dtype("<i2"): "I16",
    np.dtype("i1"): "I8", np.dtype("<u2"): "U16", np.dtype("<u4"): "U32",
    np.dtype("<u8"): "U64", np.dtype("u1"): "U8",
}


def header(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The 8-byte length and the padded JSON header for `tensors` laid out in
    name order."""
    hdr: Dict[str, object] = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("metadata must map str to str, not %r: %r" % (k, v))
        hdr["__metadata__"] = dict(metadata)
    pos = 0
    for name in sorted(tensors):
        a = tensors[name]
        dt = _DTYPES.get(a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype)
        if dt is None:
            raise TypeError("tensor %r: dtype %s cannot be written" % (name, a.dtype))
        hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [pos, pos + a.nbytes]}
        pos += a.nbytes
    text = json.dumps(hdr, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    if len(text) > HEADER_MAX:
        raise ValueError("the safetensors header would be %d bytes, more than %d"
                         % (len(text), HEADER_MAX))
    return struct.pack("<Q", len(text)) + text


def _sync_dir(d: str) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path: str, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Replace `path` with a safetensors file of `tensors` (numpy arrays,
    written little-endian) and `metadata` (str to str), atomically."""
    arrays = {}
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        arrays[name] = a
    head = header(arrays, metadata)
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, ".%s.tmp-%d" % (os.path.basename(path), os.getpid()))
    fd = -1
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb", buffering=0) as f:
            fd = -1  # the file object owns it now
            _write_all(f, head)
            for name in sorted(arrays):
                _write_all(f, memoryview(arrays[name]).cast("B"))
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _sync_dir(d)
    except OSError as e:
        raise OSError(e.errno, '"%s": %s' % (path, e.strerror or e)) from None
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _write_all(f, data) -> None:
    view = memoryview(data)
    while view.nbytes:
        n = f.write(view[:1 << 26])
        if not n:
            raise OSError(5, "short write")
        view = view[n:]
