"""FeatureSet and the feature cache: arrays keyed by their full configuration, written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cca_bench.cache_entries import cache_key, entry_files, read_entry, write_npy_header
from cca_bench.errors import UserError
from cca_bench.fsio import write_atomic, write_json  # noqa: F401  (re-exported for old imports)


@dataclass
class FeatureSet:
    """Encoded features of one split.

    images: (n_img, d_i) float32; texts: (n_txt, d_t) float32; image_index: (n_txt,) image of each caption;
    tokens: (n_txt,) token lists (for methods that read words, such as the VSE ranker);
    meta: dataset, split, encoders, cache keys and counts (e.g. ``n_empty_captions``);
    word_vectors: ``word_vectors()`` loads the text encoder's :class:`~cca_bench.features.text.WordVectors`
    (for methods that embed words themselves; loaded only when called).
    """

    images: np.ndarray
    texts: np.ndarray
    image_index: np.ndarray
    tokens: list[list[str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    word_vectors: Callable[[], object] | None = None

    def __post_init__(self):
        if len(self.texts) != len(self.image_index):
            raise UserError(
                f"{self.meta.get('dataset', '?')}/{self.meta.get('split', '?')}: {len(self.texts)} caption "
                f"features but {len(self.image_index)} captions"
            )


def load_or_compute(
    cache_dir: Path | None,
    key: dict,
    compute: Callable[[], np.ndarray],
    info: dict | None = None,
    n_rows: int | None = None,
) -> tuple[np.ndarray, bool]:
    """Load the array cached under ``key`` or compute and cache it; returns (array, was_cached).

    The array goes to ``<stem>.npy`` with its key in ``<stem>.json``; both are written under a temporary
    name and renamed, so an interrupted run leaves no half-written cache entry. ``cache_dir=None`` disables
    caching. A cached array comes back memory-mapped read-only, so features larger than RAM stream from disk
    (the covariance pass reads them chunk by chunk) instead of being read whole.

    A damaged entry (zero bytes, truncated, not a 2-D float32 ``.npy``, ``n_rows`` rows expected but others
    found, a ``.json`` that is not its key) is recomputed and replaced. ``info``: a dict that ``compute``
    fills with facts about the array (e.g. an OOV rate); they are stored in the ``.json`` and, on a cache hit,
    copied back into ``info`` (an entry cached without them is computed once more).
    """
    if cache_dir is None:
        return compute(), False
    npy, meta = entry_files(cache_dir, key)
    cached = _cached(npy, meta, key, n_rows, info)
    if cached is not None:
        return cached, True
    arr = np.ascontiguousarray(compute(), dtype=np.float32)
    _check_finite(arr, key)
    write_atomic(npy, lambda f: np.save(f, arr))
    write_json(meta, _stored_key(key, info))
    return arr, False


def _cached(npy: Path, meta: Path, key: dict, n_rows: int | None, info: dict | None) -> np.ndarray | None:
    """The sound cached array for ``key``, its stored ``info`` copied into ``info``; None to (re)compute:
    missing, damaged, or cached before the facts ``info`` asks for were recorded."""
    cached = read_entry(npy, meta, key, n_rows)
    if cached is None or (info is not None and "info" not in cached[1]):
        return None
    if info is not None:
        info.update(cached[1].get("info") or {})
    return cached[0]


def _stored_key(key: dict, info: dict | None) -> dict:
    """What an entry's ``.json`` holds: its key, and the facts ``info`` collected while computing it."""
    return {**key, "info": info} if info is not None else key


def _check_finite(arr: np.ndarray, key: dict) -> None:
    if not np.isfinite(arr).all():
        raise UserError(
            f"{key.get('encoder')} produced NaN or infinite features for {key.get('dataset')}/{key.get('split')}"
        )


def load_or_stream(
    cache_dir: Path | None,
    key: dict,
    shape: tuple[int, int],
    blocks: Callable[[], Iterable[np.ndarray]],
    info: dict | None = None,
) -> tuple[np.ndarray, bool]:
    """:func:`load_or_compute` for wide arrays computed in row blocks: ``blocks()`` yields consecutive float32
    row blocks of a ``shape`` array, each written to the cache file as it comes (through the atomic writer),
    so the whole array is never in memory; it comes back memory-mapped. Without a cache the blocks fill an
    in-memory array. Returns (array, was_cached). Damaged entries and ``info`` are handled as in
    :func:`load_or_compute` (``blocks`` fills ``info`` while it runs)."""
    if cache_dir is None:
        out = np.empty(shape, np.float32)
        _fill_rows(blocks(), shape, key, lambda start, b: out.__setitem__(slice(start, start + len(b)), b))
        return out, False
    npy, meta = entry_files(cache_dir, key)
    cached = _cached(npy, meta, key, shape[0], info)
    if cached is not None:
        return cached, True

    def write(f):
        write_npy_header(f, np.float32, shape)
        _fill_rows(blocks(), shape, key, lambda start, b: f.write(np.ascontiguousarray(b, np.float32).tobytes()))

    write_atomic(npy, write)
    write_json(meta, _stored_key(key, info))
    return np.load(npy, mmap_mode="r", allow_pickle=False), False


def _fill_rows(blocks: Iterable[np.ndarray], shape: tuple[int, int], key: dict, put) -> None:
    """Check each block (width, finiteness) and hand it to ``put(start_row, block)``; check the row count."""
    start = 0
    for b in blocks:
        if b.ndim != 2 or b.shape[1] != shape[1] or start + len(b) > shape[0]:
            raise ValueError(f"block of shape {b.shape} at row {start} does not fit an array of shape {shape}")
        _check_finite(b, key)
        put(start, b)
        start += len(b)
    if start != shape[0]:
        raise ValueError(f"the blocks held {start} rows, expected {shape[0]}")


SHARD_SIZE = 1024  # images per shard of a resumable extraction


def compute_sharded(
    shard_dir: Path | None,
    n: int,
    compute: Callable[[int, int], tuple[np.ndarray, list[dict]]],
    shard_size: int = SHARD_SIZE,
    bar=None,
) -> tuple[np.ndarray, list[dict]]:
    """Rows 0..n of ``compute(lo, hi) -> ((hi - lo, d) float32, skipped)``, one shard at a time; a progress
    ``bar`` that ``compute`` advances is also advanced by the shards read back from an earlier run.

    Each finished shard is saved in ``shard_dir`` as ``rows_<lo>_<hi>.npy`` with its skipped-image records
    (dicts with ``index``, ``id``, ``reason``) in a ``.json`` written first, so an interrupted extraction
    (Ctrl-C) resumes at the first missing shard. Returns ((n, d) float32, all skipped records), and writes the
    whole list (when not empty) to ``shard_dir/skipped.json``. ``shard_dir=None``: no files, the same chunks in memory.
    """
    parts, skipped = [], []
    for lo, hi in shard_ranges(n, shard_size):
        computed: list[int] = []
        rows, skips = shard(shard_dir, lo, hi, lambda a, b: computed.append(b - a) or compute(a, b))
        if bar is not None and not computed:  # kept from an earlier (interrupted) run: done, not skipped
            bar.update(hi - lo)
        parts.append(rows)
        skipped += skips
    if shard_dir is not None and skipped:
        write_json(Path(shard_dir) / "skipped.json", skipped)
    arr = np.concatenate(parts) if parts else compute(0, 0)[0]
    return np.ascontiguousarray(arr, dtype=np.float32), skipped


def shard_ranges(n: int, shard_size: int = SHARD_SIZE) -> list[tuple[int, int]]:
    """The (lo, hi) row ranges of the shards of n rows."""
    size = max(1, int(shard_size))
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


def shard_files(shard_dir: Path, lo: int, hi: int) -> tuple[Path, Path]:
    """(rows .npy, skipped .json) of one shard."""
    npy = Path(shard_dir) / f"rows_{lo:09d}_{hi:09d}.npy"
    return npy, npy.with_suffix(".json")


def shard_dir(cache_dir: Path | None, key: dict) -> Path | None:
    """Where the shards of the array cached under ``key`` are written (None without a cache)."""
    return None if cache_dir is None else Path(cache_dir) / f"{cache_key(key)}.shards"


def finish_shards(cache_dir: Path | None, key: dict) -> tuple[list[dict], Path | None]:
    """Once the assembled array is cached: keep the skip list as ``<stem>.skipped.json``, drop the shards.

    Returns (skipped records, the file listing them) -- also on later cache hits; ([], None) when none.
    """
    import shutil

    shards = shard_dir(cache_dir, key)
    if shards is None:
        return [], None
    listing = shards.with_name(f"{cache_key(key)}.skipped.json")
    if (shards / "skipped.json").is_file():
        os.replace(shards / "skipped.json", listing)
    shutil.rmtree(shards, ignore_errors=True)
    return (json.loads(listing.read_text()), listing) if listing.is_file() else ([], None)


def shard(shard_dir: Path | None, lo: int, hi: int, compute) -> tuple[np.ndarray, list[dict]]:
    """One shard: read back when both its files are complete, else computed and saved (json, then npy).

    Any process may compute a shard (a Dask worker writes into the same ``shard_dir``): the files are
    written atomically, so a reader sees a whole shard or none.
    """
    if shard_dir is None:
        return compute(lo, hi)
    npy, meta = shard_files(shard_dir, lo, hi)
    if npy.is_file() and meta.is_file():
        try:
            return np.load(npy, allow_pickle=False), json.loads(meta.read_text())
        except (ValueError, OSError):
            pass  # a damaged shard is computed again
    rows, skipped = compute(lo, hi)
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    write_json(meta, skipped)
    write_atomic(npy, lambda f: np.save(f, rows))
    return rows, skipped
