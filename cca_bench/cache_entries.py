"""Cache entries on disk: an array as ``<stem>.npy`` beside its key as ``<stem>.json``.

The stem is readable fields of the key plus a hash of the whole key. Used by the feature cache
(:mod:`cca_bench.features.store`) and the resample cache (:mod:`cca_bench.resample_cache`); both write through
:func:`cca_bench.fsio.write_atomic`."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

READABLE = ("dataset", "split", "encoder")  # the key fields a feature entry's file stem shows


def cache_key(key: dict, readable: tuple[str, ...] = READABLE) -> str:
    """A file stem naming the cached array: the ``readable`` fields of the key plus a hash of the whole key."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    parts = [str(key.get(k)) for k in readable if key.get(k) is not None]
    text = re.sub(r"[^A-Za-z0-9_.=-]+", "-", "_".join(parts))
    return f"{text}-{digest}"


def entry_files(cache_dir: Path, key: dict, readable: tuple[str, ...] = READABLE) -> tuple[Path, Path]:
    """``<stem>.npy`` and ``<stem>.json`` of the entry cached under ``key`` (appended: stems may hold dots)."""
    stem = Path(cache_dir) / cache_key(key, readable)
    return stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + ".json")


def read_entry(
    npy: Path, meta: Path, key: dict, n_rows: int | None, dtype=np.float32
) -> tuple[np.ndarray, dict] | None:
    """(array, stored .json) of a sound cache entry for ``key``: a 2-D ``dtype`` array (of ``n_rows`` rows when
    given) memory-mapped read-only, else None (missing or damaged)."""
    if not (npy.is_file() and meta.is_file()):
        return None
    import zipfile

    try:
        stored = json.loads(meta.read_text(encoding="utf-8"))
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):  # zero bytes, truncated, not .npy, not JSON
        return None
    same_key = (
        isinstance(stored, dict)
        and isinstance(arr, np.ndarray)
        and {k: v for k, v in stored.items() if k != "info"} == json.loads(json.dumps(key, default=str))
    )
    if not same_key or arr.ndim != 2 or arr.dtype != dtype or (n_rows is not None and len(arr) != n_rows):
        return None
    return arr, stored


def write_npy_header(f, dtype, shape: tuple[int, ...]) -> None:
    """The ``.npy`` header of a C-order ``dtype`` array of ``shape`` whose rows are written after it."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(int(v) for v in shape),
    }
    np.lib.format.write_array_header_2_0(f, header)
