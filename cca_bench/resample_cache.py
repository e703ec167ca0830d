"""The interval bootstrap's resample counts, kept on disk between evaluations (``DATA/cache/resamples``).

Why: an evaluation's intervals resample the test images (:mod:`cca_bench.stats`): which images each resample holds
depends only on the fold sizes, the number of resamples and the seed, never on the run. Every run scored on the
same test split with the same ``--bootstrap`` and interval seed (``RunOptions.ci_seed``) draws the same resamples;
at COCO 5k with the default 10,000 resamples that is 50 million positions drawn and counted, which costs about as
much CPU as the similarity GEMM itself. The first evaluation stores the counts (one byte per image and resample: 50
MB there) as it makes them; later ones read them instead of drawing. Same numbers either way: the counts are what
the documented draw order gives, and the key holds everything they depend on (fold sizes, resamples, seed, the draw
order's block, numpy's version: numpy does not promise its generators' streams across versions).

An entry is written under a temporary name and renamed once every block is in (an interrupted or failed
evaluation leaves none), with its key beside it as JSON; a damaged or foreign entry is drawn again and replaced.
Nothing is stored past :data:`MAX_BYTES`, or when a count does not fit a byte (possible only above 255 images
per fold, and then with a vanishing probability). A cache folder that cannot be written costs the cache, not
the evaluation. ``--no-cache`` (no cache folder) draws every time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from cca_bench.errors import UserError

MAX_BYTES = 256 * 2**20  # largest entry kept (COCO 5k x 10,000 resamples: 50 MB)
FOLDER = "resamples"  # under the cache folder (DATA/cache)
READABLE = ("what", "resamples", "seed")  # the key fields an entry's file stem shows


def key(fold_sizes, resamples: int, seed: int, block: int) -> dict:
    """Everything the counts depend on (the draw order of :mod:`cca_bench.stats`, blocks of ``block``)."""
    return {
        "what": "bootstrap-counts",
        "fold_sizes": [int(n) for n in fold_sizes],
        "resamples": int(resamples),
        "seed": int(seed),
        "block": int(block),
        "numpy": np.__version__,
    }


def fits(k: dict) -> bool:
    """Whether an entry for key ``k`` is small enough to keep."""
    return sum(k["fold_sizes"]) * k["resamples"] <= MAX_BYTES


def _files(cache_dir: Path, k: dict) -> tuple[Path, Path]:
    from cca_bench.cache_entries import entry_files

    return entry_files(Path(cache_dir) / FOLDER, k, READABLE)


def load(cache_dir: Path | None, k: dict) -> np.ndarray | None:
    """The stored (resamples, sum of fold sizes) uint8 counts for key ``k``, memory-mapped read-only (each
    row: the folds' counts side by side, in fold order), or None (no cache folder, none stored, damaged)."""
    if cache_dir is None:
        return None
    from cca_bench.cache_entries import read_entry

    entry = read_entry(*_files(cache_dir, k), k, k["resamples"], np.uint8)
    if entry is None or entry[0].shape[1] != sum(k["fold_sizes"]):
        return None
    return entry[0]


def blocks(counts: np.ndarray, fold_sizes, block: int):
    """Stored counts as the draws' blocks: per block of ``block`` resamples, per fold, its (b, n_f) counts."""
    edges = np.cumsum([0, *fold_sizes])
    for start in range(0, len(counts), block):
        rows = counts[start : start + block]
        yield [rows[:, lo:hi] for lo, hi in zip(edges[:-1], edges[1:])]


class _NotKept(Exception):
    """An entry left unwritten (a count above 255, a failed write, blocks missing): its temporary file goes."""


def store_while(cache_dir: Path, k: dict, run: Callable):
    """``run(put)``'s result, where ``put(block)`` takes each block's per-fold (b, n_f) counts (any numeric
    dtype, whole numbers) in order and appends them to the entry for ``k``, which is kept only if ``run``
    returns with every resample put. An exception in ``run`` (Ctrl-C included) leaves no entry and goes on up;
    one writing the entry (disk full, no permission, a file where the folder should be) is swallowed: the
    result stands, uncached."""
    from cca_bench.cache_entries import write_npy_header
    from cca_bench.fsio import write_atomic, write_json

    npy, meta = _files(cache_dir, k)
    shape = (k["resamples"], sum(k["fold_sizes"]))
    done: dict = {}

    def write(f) -> None:
        write_npy_header(f, np.uint8, shape)
        written, failed = 0, []

        def put(block) -> None:
            nonlocal written
            if failed:
                return
            rows = np.concatenate(block, axis=1) if len(block) > 1 else block[0]
            if max(k["fold_sizes"]) > 255 and rows.max() > 255:
                failed.append("a count above 255")
                return
            try:
                f.write(np.ascontiguousarray(rows, np.uint8).data)
                written += len(rows)
            except OSError as e:
                failed.append(e)

        try:
            done["result"] = run(put)
        except BaseException as e:  # noqa: BLE001 (raised again below, once the temporary file is gone)
            done["error"] = e
            raise _NotKept from None
        if failed or written != shape[0]:
            raise _NotKept

    try:
        write_atomic(npy, write)
        write_json(meta, k)
    except (_NotKept, OSError, UserError):
        if "error" in done:
            raise done["error"] from None
        if "result" not in done:  # the folder could not be made: nothing ran yet
            return run(lambda block: None)
    return done["result"]
