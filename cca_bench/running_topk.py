"""Each row's k largest scores over column blocks that arrive one at a time (numpy, CPU).

Order convention: largest first, equal scores by column (smallest first), the k kept being exactly the first k of
that order, ties at the k-th place included (as :mod:`cca_bench.topk`, whose candidate lists are merged by a
sort; here the lists are k wide, so a per-row selection is cheaper).

How (:class:`RunningTop`): each row holds at most 2k (value, column) entries in column order, and a floor, the
k-th largest held after its last compaction (or of the last block it took the k largest of). A block's scores
are compared with the floor once; the few above it (about k block / columns seen, once the floor is set) are
appended. A row that would overflow is compacted to its k largest (:func:`top_columns`, ``np.partition`` and a
mask: O(k) per row), which raises the floor; a row with more than k entries above its floor in one block (the
first block) keeps only that block's k largest. A score equal to the floor can be dropped: k held entries at or
above it come from earlier columns. So nothing of the true top k is lost, ties included. Each block costs one
comparison and a ``flatnonzero`` beside its GEMM, where ``torch.topk`` on every block (the GPU path) sorts
each block's rows: benchmarks/bench_topk_paths.py times both (benchmarks/REPORT_scale.md).
"""

from __future__ import annotations

import numpy as np


def top_columns(values: np.ndarray, cols: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row of ``values`` (r, w) with their ``cols`` (r, w), in column order; equal values
    at the k-th place go to the earlier column. Returns (values (r, k'), cols (r, k')), k' = min(k, w)."""
    w = values.shape[1]
    if w <= k:
        return values, cols
    t = np.partition(values, w - k, axis=1)[:, w - k, None]  # the k-th largest of each row
    keep, tied = values > t, values == t
    need = k - np.count_nonzero(keep, axis=1)[:, None]
    if (np.count_nonzero(tied, axis=1)[:, None] > need).any():  # a tie straddles the k-th place
        tied &= np.cumsum(tied, axis=1) <= need
    keep |= tied
    return values[keep].reshape(-1, k), cols[keep].reshape(-1, k)


class RunningTop:
    """The k largest (value, column) of each of ``n`` rows over blocks of columns given in increasing order.

    ``add(scores, start)``: a float32 block (n, b) of columns start .. start + b - 1. ``result()``: (values (n,
    k) float32 largest first, columns (n, k) int64), ties to the smaller column; rows that saw fewer than k
    columns are padded with -inf and column ``n_cols``. Memory: 2 n k (value, column) pairs.
    """

    def __init__(self, n: int, k: int, n_cols: int):
        self.k, self.width, self.n_cols = k, 2 * k, n_cols
        self.values = np.full((n, self.width), -np.inf, np.float32)
        self.cols = np.full((n, self.width), n_cols, np.int64)  # padding sorts after every real column
        self.count = np.zeros(n, np.int64)
        self.floor = np.full(n, -np.inf, np.float32)
        self.mask = np.empty(0, bool)

    def add(self, scores: np.ndarray, start: int) -> None:
        """Take the block ``scores`` (n, b) of columns ``start`` ..; only entries above a row's floor enter."""
        n, b = scores.shape
        if self.mask.size < scores.size:
            self.mask = np.empty(scores.size, bool)  # reused: a fresh mask per block costs page faults
        above = self.mask[: scores.size].reshape(n, b)
        np.greater(scores, self.floor[:, None], out=above)
        found = np.count_nonzero(above, axis=1)
        heavy = found > self.width - self.k  # more than fit beside k held: the block's own top k first
        adding = np.where(heavy, min(self.k, b), found)
        self._compact(np.flatnonzero(self.count + adding > self.width))
        if heavy.any():
            rows = np.flatnonzero(heavy)
            sub = scores if len(rows) == n else scores[rows]
            v, c = top_columns(sub, np.broadcast_to(np.arange(start, start + b), sub.shape), self.k)
            self._append(np.repeat(rows, v.shape[1]), v.ravel(), c.ravel())
            self.floor[rows] = np.maximum(self.floor[rows], v.min(axis=1))  # k entries held at or above it
            above[rows] = False
        flat = np.flatnonzero(above)
        self._append(flat // b, scores.ravel()[flat], flat % b + start)

    def _append(self, rows: np.ndarray, values: np.ndarray, cols: np.ndarray) -> None:
        """Append entries given row by row (``rows`` non-decreasing, each row's columns increasing)."""
        if not len(rows):
            return
        added = np.bincount(rows, minlength=len(self.count))
        first = np.cumsum(added) - added  # where each row's entries start in ``rows``
        place = rows * self.width + self.count[rows] + np.arange(len(rows)) - first[rows]
        self.values.ravel()[place], self.cols.ravel()[place] = values, cols
        self.count += added

    def _compact(self, rows: np.ndarray) -> None:
        """Keep the k largest entries of ``rows``; their floor becomes the k-th largest."""
        if not len(rows):
            return
        v, c = top_columns(self.values[rows], self.cols[rows], self.k)
        self.values[rows], self.cols[rows] = -np.inf, self.n_cols
        self.values[rows, : self.k], self.cols[rows, : self.k] = v, c
        self.count[rows], self.floor[rows] = self.k, v.min(axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(values (n, k), columns (n, k)): largest first, equal values by column."""
        self._compact(np.arange(len(self.count)))
        v, c = self.values[:, : self.k], self.cols[:, : self.k]
        order = np.argsort(-v, axis=1, kind="stable")  # held in column order: stable keeps ties by column
        return np.take_along_axis(v, order, 1), np.take_along_axis(c, order, 1)
