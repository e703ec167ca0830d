"""Memory-map one uncompressed numeric matrix of a MATLAB v5 ``.mat`` file, so a few columns cost a few reads.

``scipy.io.loadmat`` reads a whole variable; Karpathy's Flickr8k/30k ``vgg_feats.mat`` (v5, uncompressed,
4096 x n single) would cost 131 / 520 MB to get a 1,000-image test split. MATLAB stores a matrix column-major,
so column i (image i) is ``d`` consecutive values: the data block, seen as a C-order (n, d) array, has image i
in row i. Layout per the MAT-File Format reference (MathWorks, "MAT-File Format", version 5): a 128-byte header
(``IM`` = little-endian), then data elements, each an 8-byte tag (type, byte count) or a "small element" (byte
count in the upper half of the first word, data in the second), padded to 8 bytes; a miMATRIX holds array
flags, dimensions, name and the real part. Anything else (compressed ``miCOMPRESSED`` elements, complex,
sparse, a big-endian file) returns None and the caller falls back to scipy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MI_MATRIX, MI_COMPRESSED = 14, 15
MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
NUMERIC_CLASSES = set(range(6, 16))  # mxDOUBLE .. mxUINT64
COMPLEX, SPARSE_CLASS = 0x0800, 5


def _tag(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """(type, nbytes, data start, next element) of the data element at ``pos``."""
    first, second = np.frombuffer(buf, "<u4", 2, pos)
    if first >> 16:  # small element: 2-byte count, 2-byte type, data in the next 4 bytes
        return int(first & 0xFFFF), int(first >> 16), pos + 4, pos + 8
    n = int(second)
    return int(first), n, pos + 8, pos + 8 + n + (-n % 8)


def mat5_matrix(path: Path, name: str) -> np.ndarray | None:
    """Variable ``name`` of shape (d, n) as a read-only (n, d) memmap (row i = column i), or None when the
    file or the variable is not laid out plainly (see the module docstring)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(128)
        if len(header) < 128 or header[126:128] != b"IM":
            return None
        pos = 128
        while pos + 8 <= size:
            f.seek(pos)
            mtype, _, _, nxt = _tag(f.read(8), 0)
            found = _matrix(f, path, pos + 8, name) if mtype == MI_MATRIX else None
            if found is not None:
                return found
            pos += nxt  # other variables (compressed ones included) are skipped by their byte count
    return None


def _matrix(f, path: Path, start: int, name: str) -> np.ndarray | None:
    """The memmap of the miMATRIX whose sub-elements start at byte ``start``, if it is ``name`` and plain."""
    f.seek(start)
    buf = f.read(4096)  # flags, dimensions and name fit easily
    t, n, d0, nxt = _tag(buf, 0)
    flags = int(np.frombuffer(buf, "<u4", 1, d0)[0])
    if flags & COMPLEX or (flags & 0xFF) == SPARSE_CLASS or (flags & 0xFF) not in NUMERIC_CLASSES:
        return None
    t, n, d0, nxt2 = _tag(buf, nxt)
    dims = np.frombuffer(buf, "<i4", n // 4, d0)
    t, n, d0, nxt3 = _tag(buf, nxt2)
    if buf[d0 : d0 + n].decode("latin-1") != name or len(dims) != 2:
        return None
    f.seek(start + nxt3)
    t, n, d0, _ = _tag(f.read(8), 0)
    dtype = MI_DTYPES.get(t)
    rows, cols = int(dims[0]), int(dims[1])
    if dtype is None or d0 != 8 or n != rows * cols * np.dtype(dtype).itemsize:
        return None
    return np.memmap(path, dtype="<" + dtype, mode="r", offset=start + nxt3 + 8, shape=(cols, rows))
