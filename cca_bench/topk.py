"""Each query's top-k items, taken from the evaluation's own score blocks (no second GEMM).

Order convention: best first by score, equal scores by item position (smallest first); the k kept are exactly
the first k of that order, ties at the k-th place included, so the lists are deterministic (unlike
``torch.topk`` or ``argpartition`` on ties).

How, without sorting whole rows: maxima of strided groups of a query's scores (:func:`_group_max`, one
vectorised read) give a threshold, the k-th largest group maximum, that is at most the query's true k-th best
score (k groups each hold an item at or above it). Every item scoring at or above the threshold is a
candidate (one comparison and a ``flatnonzero``: about k + a few per query), and the candidates alone are
sorted. Nothing at or above the true k-th score is missed, ties included, so the result is exact.
"""

from __future__ import annotations

import numpy as np

GROUP_ITEMS = {1: 128, 0: 64}  # items per group for row / column queries: fewer make a tighter threshold


def _group_max(s: np.ndarray, width: int, axis: int) -> np.ndarray:
    """Maxima of ``width`` strided groups along ``axis`` of (m, n) ``s``, shaped (m, width) (axis 1) or
    (width, n) (axis 0): group j holds the positions j, j + width, j + 2 width, ... (each non-empty when
    size >= width). Elementwise maxima of contiguous slices: one vectorised read of s."""
    size = s.shape[axis]
    take = (lambda a, b: s[:, a:b]) if axis == 1 else (lambda a, b: s[a:b])
    out = take(0, width).copy()
    for a in range(width, size - width + 1, width):
        np.maximum(out, take(a, a + width), out=out)
    rest = size % width
    if rest and size > width:
        part = out[:, :rest] if axis == 1 else out[:rest]
        np.maximum(part, take(size - rest, size), out=part)
    return out


def _kth_largest(gm: np.ndarray, k: int) -> np.ndarray:
    """(q,) the k-th largest of each row of (q, G >= k) ``gm``."""
    import torch

    return torch.topk(torch.from_numpy(np.ascontiguousarray(gm)), k, dim=1).values[:, -1].numpy()


def threshold(s: np.ndarray, k: int, axis: int) -> np.ndarray:
    """A lower bound of each query's k-th best score: (m,) for rows (axis 1) or (n,) for columns (axis 0) of
    (m, n) ``s``; -inf where the query has fewer than k items (then every item is a candidate)."""
    size = s.shape[axis]
    if size < k:
        return np.full(s.shape[1 - axis], -np.inf, dtype=s.dtype)
    gm = _group_max(s, max(k, size // GROUP_ITEMS[axis]), axis)
    return _kth_largest(gm if axis == 1 else gm.T, k)


def _descending_key(score: np.ndarray) -> np.ndarray:
    """(c,) uint64 keys in [0, 2^32) that sort float32 ``score`` (finite) high to low; -0.0 and 0.0 alike."""
    u = (np.asarray(score, np.float32) + np.float32(0)).view(np.uint32)
    up = np.where(u >> np.uint32(31), ~u, u | np.uint32(2**31))  # ascending order of the floats
    return (~up).astype(np.uint64)


def first_k(query: np.ndarray, score: np.ndarray, item: np.ndarray, n_queries: int, k: int):
    """Candidates (query, score, item) (c,) each -> (scores (n_queries, k) float32 -inf padded, items
    (n_queries, k) int64 -1 padded): each query's first k by score desc, item asc."""
    key = _descending_key(score) | (query.astype(np.uint64) << np.uint64(32))
    order = np.argsort(key)  # one sort of one key; equal (query, score) pairs then need the item order
    if (key[order][1:] == key[order][:-1]).any():
        order = np.lexsort((item, key))
    query, score, item = query[order], score[order], item[order]
    start = np.searchsorted(query, np.arange(n_queries))
    place = np.arange(len(query)) - start[query]
    keep = place < k
    vals = np.full((n_queries, k), -np.inf, dtype=np.float32)
    ids = np.full((n_queries, k), -1, dtype=np.int64)
    vals[query[keep], place[keep]], ids[query[keep], place[keep]] = score[keep], item[keep]
    return vals, ids


class BlockTop:
    """Collects both directions' top-k from the evaluation's score blocks (see :func:`metrics.tie_counts`).

    ``image_ids`` (n_img,): the original position of each image row the evaluation scores (it sorts copies of an
    image side by side). A block holds the scores (b, n_txt) of image rows s0 .. s0 + b against all captions:
    its rows give those images' caption lists whole; its columns are merged into each caption's running list,
    whose k-th score so far also bounds the next blocks' candidates. ``row_shift`` / ``col_shift`` (euclidean
    only): the per-caption (n_txt,) and per-image (b,) terms that make an entry p the score ``2 p - shift``.
    """

    def __init__(self, image_ids: np.ndarray, n_txt: int, k: int):
        self.k, self.ids, self.n_img, self.n_txt = k, np.asarray(image_ids, np.int64), len(image_ids), n_txt
        self.mask = None
        self.reset()

    def reset(self) -> None:
        """Forget everything collected (the evaluation redoes its blocks when a GEMM rounded too coarsely)."""
        self.i2t = np.full((self.n_img, self.k), -1, dtype=np.int64)
        self.t2i = (np.full((self.n_txt, self.k), -np.inf, np.float32), np.full((self.n_txt, self.k), -1, np.int64))

    def _candidates(self, s: np.ndarray, thr: np.ndarray, axis: int):
        """(rows, cols, scores) of the entries of (b, n) ``s`` at or above ``thr`` (per row or per column)."""
        if self.mask is None or self.mask.size < s.size:
            self.mask = np.empty(s.size, dtype=bool)  # reused: a fresh mask per block costs page faults
        mask = self.mask[: s.size].reshape(s.shape)
        np.greater_equal(s, thr[:, None] if axis == 1 else thr, out=mask)
        flat = np.flatnonzero(mask)
        return flat // s.shape[1], flat % s.shape[1], np.ascontiguousarray(s).ravel()[flat]

    def add(self, p: np.ndarray, s0: int, row_shift=None, col_shift=None) -> None:
        """Take one (b, n_txt) block of the image rows s0 .. s0 + b."""
        img_ids = self.ids[s0 : s0 + len(p)]
        rows = p if row_shift is None else 2 * p - row_shift
        r, c, v = self._candidates(rows, threshold(rows, self.k, 1), 1)
        self.i2t[img_ids] = first_k(r, v, c, len(p), self.k)[1]
        cols = p if col_shift is None else 2 * p - col_shift[:, None]
        vals, ids = self.t2i
        thr = np.maximum(threshold(cols, self.k, 0), vals[:, -1])  # the k-th so far bounds it too
        r, c, v = self._candidates(cols, thr, 0)
        held = ids >= 0
        query = np.concatenate([c, np.nonzero(held)[0]])
        self.t2i = first_k(
            query, np.concatenate([v, vals[held]]), np.concatenate([img_ids[r], ids[held]]), self.n_txt, self.k
        )

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(i2t (n_img, k) caption positions, t2i (n_txt, k) image positions), int64, best first, -1 padded
        where fewer than k items exist."""
        return self.i2t, self.t2i[1]
