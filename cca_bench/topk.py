"""Each query's top-k items, taken from the evaluation's own score tiles (no second GEMM, no extra read).

Order convention: best first by score, equal scores by item position (smallest first); the k kept are exactly
the first k of that order, ties at the k-th place included, so the lists are deterministic (unlike
``torch.topk`` or ``argpartition`` on ties).

How, without sorting whole rows: every entry at or above a LOWER BOUND of its query's k-th best score is a
candidate (one comparison and a ``flatnonzero`` of a cache-resident tile: about k + a few per query), and the
candidates alone are sorted. Nothing at or above the true k-th score is missed, ties included, so the result
is exact whatever the bound, as long as it is at most the true k-th score. The bounds:

- a row query (an image, whose whole row of caption scores lies in one tile): the k-th largest of the maxima
  of strided groups of its scores (:func:`row_threshold`; k groups each hold an item at or above it);
- a column query (a caption, whose images arrive tile by tile, block by block): the k-th largest of the
  maxima of DISJOINT groups of image rows seen so far (k distinct images score at or above it). Each worker
  keeps 2k running column maxima (:data:`SLOTS_PER_K`), one per group of the tiles it took (round robin);
  the groups are merged into the bound at the end of a block (after the first block, then each time the rows
  seen have doubled, or when the candidates grow past ``2 k n_txt``). The first block gets its bound from a
  read of its own tiles before its candidates are taken (:meth:`TileTop.prepass`).
"""

from __future__ import annotations

import threading

import numpy as np

SPLIT_CANDIDATES = 100_000  # column candidates from which the captions' lists are sorted in two halves at once
ROW_GROUP_ITEMS = 128  # items per group of a row query: fewer make a tighter threshold
SLOTS_PER_K = 2  # disjoint row groups per worker, per k, whose column maxima bound the captions' k-th scores


def row_threshold(s: np.ndarray, k: int) -> np.ndarray:
    """(m,) a lower bound of the k-th best score of each row of (m, n) ``s``; -inf where n < k.

    Group j of a row holds the positions j, j + W, j + 2W, ... (W = max(k, n // 128) groups, each non-empty):
    one reduction over the row read as (n // W, W), the remainder folded into the first groups."""
    m, n = s.shape
    if n < k:
        return np.full(m, -np.inf, dtype=s.dtype)
    width = max(k, n // ROW_GROUP_ITEMS)
    q = n // width
    gm = s[:, : q * width].reshape(m, q, width).max(1)
    rest = n - q * width
    if rest:
        np.maximum(gm[:, :rest], s[:, q * width :], out=gm[:, :rest])
    return np.partition(gm, width - k, axis=1)[:, width - k]


def _descending_key(score: np.ndarray) -> np.ndarray:
    """(c,) uint64 keys in [0, 2^32) that sort float32 ``score`` (finite) high to low; -0.0 and 0.0 alike."""
    u = (np.asarray(score, np.float32) + np.float32(0)).view(np.uint32)
    up = np.where(u >> np.uint32(31), ~u, u | np.uint32(2**31))  # ascending order of the floats
    return (~up).astype(np.uint64)


def first_k(query: np.ndarray, score: np.ndarray, item: np.ndarray, n_queries: int, k: int) -> np.ndarray:
    """Candidates (query, score, item) (c,) each -> (n_queries, k) int64 items, -1 padded: each query's first k
    by score desc, item asc."""
    key = _descending_key(score) | (query.astype(np.uint64) << np.uint64(32))
    order = np.argsort(key)  # one sort of one key; equal (query, score) pairs then need the item order
    ordered = key[order]
    same = ordered[1:] == ordered[:-1]
    if same.any():  # only the runs of equal keys are put in item order (a lexsort of all cost 20 ms per 263k)
        tied = np.flatnonzero(np.concatenate([same, [False]]) | np.concatenate([[False], same]))
        runs = order[tied]
        order[tied] = runs[np.lexsort((item[runs], key[runs]))]
    query = (ordered >> np.uint64(32)).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(np.bincount(query, minlength=n_queries))])
    place = np.arange(len(query)) - start[query]
    keep = place < k
    ids = np.full((n_queries, k), -1, dtype=np.int64)
    ids[query[keep], place[keep]] = item[order[keep]]
    return ids


def first_k_halves(query: np.ndarray, score: np.ndarray, item: np.ndarray, n_queries: int, k: int) -> np.ndarray:
    """:func:`first_k`, the two halves of the queries sorted in two threads when there are at least
    :data:`SPLIT_CANDIDATES` candidates (numpy's sort releases the GIL; at COCO 5k the captions' 263,000
    candidates took 23 ms in one sort, 16 ms in two)."""
    if len(query) < SPLIT_CANDIDATES or n_queries < 2:
        return first_k(query, score, item, n_queries, k)
    from concurrent.futures import ThreadPoolExecutor

    cut = n_queries // 2
    low = query < cut
    with ThreadPoolExecutor(1) as pool:
        high = pool.submit(first_k, query[~low] - cut, score[~low], item[~low], n_queries - cut, k)
        return np.concatenate([first_k(query[low], score[low], item[low], cut, k), high.result()])


def _entries(s: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, score) of the flat positions ``flat`` of tile ``s``."""
    r, c = np.divmod(flat, s.shape[1])
    return r, c, s.reshape(-1)[flat]


class TileTop:
    """Collects both directions' top-k from the evaluation's score tiles (see :func:`metrics.tie_counts`).

    ``image_ids`` (n_img,): the original position of each image row the evaluation scores (it sorts copies of an
    image side by side). The evaluation calls :meth:`begin` with each block of image rows, :meth:`prepass` on
    that block's tiles when :attr:`needs_prepass`, :meth:`rows` and :meth:`columns` (or :meth:`both`) on every
    tile (from any worker thread ``w``), then :meth:`end`. Row candidates are sorted per block; column ones are
    kept (int32 positions, at most about ``2 k n_txt`` of them) and sorted once by :meth:`result`.
    """

    def __init__(self, image_ids: np.ndarray, n_txt: int, k: int):
        self.k, self.ids, self.n_img, self.n_txt = k, np.asarray(image_ids, np.int64), len(image_ids), n_txt
        self.lock = threading.Lock()
        self.masks: dict = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything collected (the evaluation redoes its blocks when a GEMM rounded too coarsely)."""
        self.i2t = np.full((self.n_img, self.k), -1, dtype=np.int64)
        self.held = np.full((self.k, self.n_txt), -np.inf, dtype=np.float32)  # top-k maxima of disjoint groups
        self.bound = np.full(self.n_txt, -np.inf, dtype=np.float32)  # the k-th of them: <= each k-th score
        self.slots: dict = {}  # worker -> ((SLOTS, n_txt) maxima of its groups since the last merge, tiles taken)
        self.cands: list = []  # (image position int32, caption int32, score float32) arrays
        self.row_cands: list = []  # this block's (block row, score, caption) arrays
        self.n_cands, self.rows_merged, self.rows_seen, self.bounded = 0, 0, 0, False
        self.s0, self.block_ids, self.grouping = 0, self.ids[:0], True

    @property
    def needs_prepass(self) -> bool:
        """True for the first block: no column bound yet (every entry would be a candidate)."""
        return not self.bounded and self.n_img > self.k

    def begin(self, s0: int, n_rows: int) -> None:
        """The next block: image rows s0 .. s0 + n_rows."""
        self.s0, self.block_ids, self.grouping = s0, self.ids[s0 : s0 + n_rows], True

    def _masks(self, w, shape) -> tuple[np.ndarray, np.ndarray]:
        """Worker ``w``'s two boolean tiles of ``shape`` (reused: fresh masks per tile cost page faults)."""
        size = shape[0] * shape[1]
        if w not in self.masks or self.masks[w][0].size < size:
            self.masks[w] = (np.empty(size, dtype=bool), np.empty(size, dtype=bool))
        return tuple(m[:size].reshape(shape) for m in self.masks[w])

    def _group(self, w, s: np.ndarray) -> None:
        """Fold the column maxima of tile ``s`` (r, n_txt) into one of worker ``w``'s groups."""
        if w not in self.slots:
            self.slots[w] = [np.full((SLOTS_PER_K * self.k, self.n_txt), -np.inf, dtype=np.float32), 0]
        slot = self.slots[w]
        group = slot[0][slot[1] % len(slot[0])]
        np.maximum(group, s.max(0), out=group)
        slot[1] += 1

    def prepass(self, w, s: np.ndarray, a: int) -> None:
        """Column scores ``s`` (r, n_txt) of block rows a .. a + r, read only for the first block's bound."""
        self._group(w, s)

    def end_prepass(self) -> None:
        """The first block's groups -> the column bound; that block's rows are not grouped again."""
        self._merge()
        self.rows_merged, self.grouping, self.bounded = len(self.block_ids), False, True

    def rows(self, w, s: np.ndarray, a: int, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row scores ``s`` (r, n_txt) of block rows a .. a + r, ``thr`` (r,) their :func:`row_threshold`:
        those images' lists, whole. Returns the row candidates (tile row (c,), score (c,)): every entry at or
        above ``thr``."""
        flat = np.flatnonzero(np.greater_equal(s, thr[:, None], out=self._masks(w, s.shape)[0]))
        return self._take_rows(a, *_entries(s, flat))

    def columns(self, w, s: np.ndarray, a: int) -> tuple[np.ndarray, np.ndarray]:
        """Column scores ``s`` (r, n_txt) of block rows a .. a + r: candidates at or above the bound, kept and
        returned as (caption (c,), score (c,))."""
        if self.grouping:
            self._group(w, s)
        flat = np.flatnonzero(np.greater_equal(s, self.bound, out=self._masks(w, s.shape)[0]))
        return self._take_columns(a, *_entries(s, flat))

    def both(self, w, s: np.ndarray, a: int, thr: np.ndarray) -> tuple:
        """:meth:`rows` and :meth:`columns` of a tile whose row and column scores are the same ``s``: one
        ``flatnonzero`` of both masks, its entries then told apart by value. Returns both methods' candidates."""
        if self.grouping:
            self._group(w, s)
        rows, cols = self._masks(w, s.shape)
        np.greater_equal(s, thr[:, None], out=rows)
        flat = np.flatnonzero(np.logical_or(rows, np.greater_equal(s, self.bound, out=cols), out=rows))
        r, c, v = _entries(s, flat)
        col, row = v >= self.bound[c], v >= thr[r]
        cols = self._take_columns(a, r[col], c[col], v[col])
        return self._take_rows(a, r[row], c[row], v[row]), cols

    def _take_rows(self, a: int, r: np.ndarray, c: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep the row candidates (tile row ``r``, caption ``c``, score ``v``) of a tile of block rows a .., for
        the block's row lists; returns them as (tile row, score)."""
        with self.lock:
            self.row_cands.append((a + r, v, c))  # sorted once per block, in :meth:`end`
        return r, v

    def _take_columns(self, a: int, r: np.ndarray, c: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep the column candidates (tile row ``r``, caption ``c``, score ``v``) of a tile of block rows a ..;
        returns them as (caption, score)."""
        got = (self.block_ids[a + r].astype(np.int32), c.astype(np.int32), v)
        with self.lock:
            self.cands.append(got)
            self.n_cands += len(v)
        return c, v

    def end(self) -> None:
        """After a block's tiles: merge the groups into the bound once the rows seen have doubled (or the
        candidates outgrow ``2 k n_txt``), and drop the candidates below it."""
        if self.row_cands:
            row, score, item = (np.concatenate(part) for part in zip(*self.row_cands))
            self.i2t[self.block_ids] = first_k(row, score, item, len(self.block_ids), self.k)
            self.row_cands = []
        self.rows_seen += len(self.block_ids)
        if self.rows_seen >= 2 * self.rows_merged or self.n_cands > 2 * self.k * self.n_txt:
            self._merge()

    def _merge(self) -> None:
        """Held maxima and every worker's groups -> the top k (the new ``held``, its k-th the bound); the
        candidates below the bound are dropped."""
        groups = [self.held, *(slot[0] for slot in self.slots.values())]
        stack = np.concatenate(groups) if len(groups) > 1 else self.held
        self.held = np.partition(stack, len(stack) - self.k, axis=0)[len(stack) - self.k :]
        self.bound = self.held.min(0)
        self.slots = {}
        self.rows_merged = self.rows_seen
        if self.cands:
            img, cap, score = (np.concatenate(part) for part in zip(*self.cands))
            keep = score >= self.bound[cap]
            self.cands = [(img[keep], cap[keep], score[keep])]
            self.n_cands = int(np.count_nonzero(keep))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(i2t (n_img, k) caption positions, t2i (n_txt, k) image positions), int64, best first, -1 padded
        where fewer than k items exist."""
        self._merge()
        empty = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))
        img, cap, score = (np.concatenate(part) for part in zip(empty, *self.cands))
        return self.i2t, first_k_halves(cap, score, img.astype(np.int64), self.n_txt, self.k)
