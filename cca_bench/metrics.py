"""Retrieval metrics for image annotation (i2t) and image search (t2i), after Kiros et al. 2014 / VSE++.

Conventions (see PROTOCOLS.md):
- ranks are 1-based; an annotation query (an image) takes the rank of its BEST-ranked caption;
- R@K is the percentage of queries with rank <= K; median rank = floor(median(r0)) + 1 and
  mean rank = mean(r0) + 1, with r0 the 0-based ranks;
- ties: ``ties="optimistic"`` (default, the protocol's rule) counts only items with a STRICTLY higher
  score than the ground truth against it; ``ties="pessimistic"`` also counts every other item whose score
  equals it. Images without captions are not annotation queries.
- degenerate queries: a query that scores every item of its gallery (2 or more items) equally, e.g. an
  all-zero embedding (an all-OOV caption, a sparse method's empty row), has no ranking, and the optimistic
  tie rule would hand it a free hit. It is scored as a miss with the WORST possible rank instead: 0-based
  n_images - 1 for image search; for image annotation n_captions - n_positives of that image (every other
  caption ahead of its best positive). ``ranks(..., return_flat=True)`` says which queries they were. One
  such query never voids an evaluation; a direction whose EVERY query is degenerate is refused (UserError).
- ``folds=5`` splits the images into 5 consecutive folds (COCO 1k protocol) and averages every metric.
The similarity matrix is never held whole: images go in blocks, each block's scores (one GEMM, on a torch
device when asked) serve both directions, and only the counts above the ground truth are kept, so memory is
O(block x gallery). The cost is one similarity GEMM plus ONE read of its scores: each block is compared in
cache-sized tiles, shared by all cores, for both directions at once (:class:`_OnePass`). Every ground-truth
score is read from the GEMM entry it is compared with (never recomputed), so ties follow the rule bit for bit.
Nothing is scored from NaN/inf embeddings.
"""
from __future__ import annotations

import numpy as np

from cca_bench.config import available_cores
from cca_bench.errors import UserError

DISTANCES = ("cosine", "dot", "euclidean")
KS = (1, 5, 10)
TASK_NAMES = ("image_annotation", "image_search")  # i2t, t2i: the order ranks() returns


def prepare(emb: np.ndarray, distance: str, name: str = "embeddings") -> np.ndarray:
    """(n, k) embeddings -> float32 rows ready for a dot product under ``distance``.

    cosine: L2-normalised rows (a zero row stays zero). euclidean: rows augmented so that
    ``a' . b'`` ranks like ``-||a - b||^2`` within a query (see :func:`similarity`).
    NaN or infinite values (also after the cast to float32) are a UserError naming ``name``: no score
    computed from them means anything.
    """
    if distance not in DISTANCES:
        raise UserError(f"unknown distance {distance!r} (choose from {', '.join(DISTANCES)})")
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused just below
        emb = np.asarray(emb, dtype=np.float32)
    if distance != "cosine":
        _refuse_non_finite(emb, name, bool(np.isfinite(emb).all()))
        return emb
    out = np.empty_like(emb)
    for s in range(0, len(emb), 2048):  # row blocks that stay in cache
        rows = emb[s : s + 2048]
        # norms in float64 (a float32 square of a large entry would overflow); a row with NaN/inf has no finite norm
        norms = np.linalg.norm(rows.astype(np.float64), axis=1, keepdims=True)
        _refuse_non_finite(emb, name, np.isfinite(norms).all())
        np.divide(rows, np.maximum(norms, 1e-12), out=out[s : s + 2048], casting="same_kind")
    return out


def _refuse_non_finite(emb: np.ndarray, name: str, finite: bool) -> None:
    """UserError naming ``name`` and its non-finite rows unless ``finite``."""
    if not finite:
        bad = int(np.count_nonzero(~np.isfinite(emb).all(axis=-1))) if emb.ndim == 2 else "some"
        raise UserError(f"{name} contain NaN or infinite values ({bad} rows; a damaged model file or a parameter "
                        "out of range?): refusing to score them")


def check_score_range(a: np.ndarray, b: np.ndarray, distance: str) -> None:
    """UserError when prepared rows (n_a, k), (n_b, k) could give scores beyond float32 (|a.b| <= |a||b|)."""
    na = float(np.linalg.norm(a.astype(np.float64), axis=1).max(initial=0))
    nb = float(np.linalg.norm(b.astype(np.float64), axis=1).max(initial=0))
    bound = (na + nb) ** 2 if distance == "euclidean" else na * nb
    if bound > 1e37:
        raise UserError(f"embedding norms up to {max(na, nb):.3g}: {distance} scores could overflow float32")


def similarity(a: np.ndarray, b: np.ndarray, distance: str = "cosine") -> np.ndarray:
    """(n_a, k), (n_b, k) -> (n_a, n_b) scores, higher is closer.

    euclidean gives ``-||a_i - b_j||^2``.
    """
    pa, pb = prepare(a, distance), prepare(b, distance)
    s = pa @ pb.T
    if distance == "euclidean":
        s = 2 * s - (pa * pa).sum(1)[:, None] - (pb * pb).sum(1)[None, :]
    return s


def ranks(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    image_index: np.ndarray,
    distance: str = "cosine",
    ties: str = "optimistic",
    block: int = 2048,
    device: str | None = None,
    *,
    return_flat: bool = False,
) -> tuple[np.ndarray, ...]:
    """0-based ranks for both directions, from ONE similarity GEMM taken in blocks of ``block`` images.

    Args:
        image_emb: (n_img, k); text_emb: (n_txt, k); image_index: (n_txt,) caption j describes image
            ``image_index[j]``.
        device: None for numpy; a torch device (e.g. "cuda") runs each block's GEMM there.
        return_flat: also return which queries were degenerate.
    Returns:
        (r_i2t, r_t2i): (n_img_with_captions,) and (n_txt,) int64 0-based ranks; with ``return_flat``,
        (r_i2t, r_t2i, flat_i2t, flat_t2i), the last two boolean masks aligned with the first two that mark
        the degenerate queries (scored as misses: see the module docstring).
    Each (block, n_txt) score block serves both directions: its rows rank captions for the block's images,
    and its columns add, for every caption, the block's images scoring above the caption's own image. Every
    comparison is with the ground truth's score as the same GEMM gives it (see :class:`_SearchCounts`), so
    the tie rule holds exactly. Memory is O(block x n_txt).
    Raises UserError for NaN/inf embeddings, scores that could overflow, and a direction whose every query
    is degenerate.
    """
    image_index = _checked_index(image_emb, text_emb, image_index, ties)
    ims, txt = prepare(image_emb, distance, "image embeddings"), prepare(text_emb, distance, "caption embeddings")
    if distance != "cosine":  # L2-normalised rows score within [-1, 1]
        check_score_range(ims, txt, distance)
    first = first_equal(ims)
    order = np.argsort(first, kind="stable")  # copies of an image side by side, in one block
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    r_i2t, r_t2i, flat_i2t, flat_t2i = _ranks_both(ims[order], txt, where[image_index], where[first[order]],
                                                   distance, ties, block, _scorer(txt, device))
    r_i2t, flat_i2t = r_i2t[where], flat_i2t[where]  # back to image order
    queries = np.flatnonzero(r_i2t >= 0)  # the images with captions
    r_i2t, flat_i2t = r_i2t[queries], flat_i2t[queries]
    n_pos = np.bincount(image_index, minlength=len(ims))[queries]
    _as_misses(r_i2t, r_t2i, flat_i2t, flat_t2i, len(txt) - n_pos, len(ims) - 1)
    return (r_i2t, r_t2i, flat_i2t, flat_t2i) if return_flat else (r_i2t, r_t2i)


def _checked_index(image_emb, text_emb, image_index, ties: str) -> np.ndarray:
    """``image_index`` as int64 after checking it, the embeddings' widths and the tie rule (UserError)."""
    if ties not in ("optimistic", "pessimistic"):
        raise UserError(f"unknown tie rule {ties!r} (optimistic or pessimistic)")
    image_index = np.asarray(image_index, dtype=np.int64)
    n_img, n_txt = len(image_emb), len(text_emb)
    if len(image_index) != n_txt:
        raise UserError(f"{n_txt} caption embeddings but {len(image_index)} entries in image_index")
    if image_emb.shape[1] != text_emb.shape[1]:
        raise UserError(f"image and text embeddings differ in width: {image_emb.shape[1]} vs {text_emb.shape[1]}")
    if n_txt and (image_index.min() < 0 or image_index.max() >= n_img):
        raise UserError(f"image_index points outside 0..{n_img - 1}")
    return image_index


def _as_misses(r_i2t, r_t2i, flat_i2t, flat_t2i, worst_i2t, worst_t2i: int) -> None:
    """Give the degenerate queries (masks ``flat_*``) the worst rank, in place: ``worst_i2t`` (per image query)
    and ``worst_t2i``; UserError when every query of a direction is degenerate (nothing would be measured)."""
    every = [f"all {flat.size} {what} queries" for what, flat in (("image", flat_i2t), ("caption", flat_t2i))
             if flat.size and flat.all()]
    if every:
        raise UserError(f"{' and '.join(every)} score every item of the gallery equally (e.g. all-zero or "
                        "identical embeddings): there is no ranking to evaluate")
    r_i2t[flat_i2t] = worst_i2t[flat_i2t]
    r_t2i[flat_t2i] = worst_t2i


def first_equal(a: np.ndarray) -> np.ndarray:
    """(n,) for the rows of ``a`` (n, k): the index of the first row equal to it bit for bit (itself if unique).

    -0.0 and 0.0 count as equal. Rows are grouped by a 64-bit integer hash of their bits, and every row
    grouped under another is checked against it bit for bit; a hash collision falls back to sorting the rows.
    """
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    a = np.ascontiguousarray(a + a.dtype.type(0))
    words = a.view(np.dtype(f"u{a.itemsize}")).reshape(len(a), -1)
    key = _row_hash(words)
    order = np.argsort(key, kind="stable")
    starts = np.ones(len(a), dtype=bool)
    np.not_equal(key[order][1:], key[order][:-1], out=starts[1:])
    first = np.empty(len(a), dtype=np.int64)
    first[order] = order[starts][np.cumsum(starts) - 1]  # stable: a group's smallest index leads it
    dup = np.flatnonzero(first != np.arange(len(a)))
    if (words[dup] == words[first[dup]]).all():
        return first
    rows = a.view(np.dtype((np.void, a.itemsize * a.shape[1])))
    _, first, inverse = np.unique(rows.ravel(), return_index=True, return_inverse=True)
    return first[inverse.ravel()]


def _row_hash(words: np.ndarray) -> np.ndarray:
    """(n,) uint64 hash of the rows of an (n, m) unsigned integer array: a dot product with fixed odd
    multipliers, modulo 2^64 (equal rows always hash alike; different rows rarely do)."""
    mult = np.random.default_rng(0).integers(0, 2**62, words.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return words @ mult


def refuse_flat_queries(queries: np.ndarray, gallery: np.ndarray, distance: str, what: str = "query") -> None:
    """UserError when a query (rows of (q, k)) scores every item of a gallery (n >= 2, k) alike: a ranking of
    it would be the tie-break's, not the model's. One similarity pass (q x n), for a few queries (search)."""
    if len(gallery) < 2 or not len(queries):
        return
    s = similarity(queries, gallery, distance)
    flat = np.flatnonzero(s.min(1) == s.max(1))
    if flat.size:
        raise UserError(f"the {what} scores all {len(gallery)} gallery items equally (e.g. an all-zero "
                        "embedding): there is no ranking to show")


def _scorer(txt: np.ndarray, device: str | None):
    """``(q, out) -> q @ txt.T`` (float32): numpy into the reused ``out``, or torch on ``device`` with ``txt``
    moved there once."""
    if device is None:
        return lambda q, out: np.matmul(q, txt.T, out=out)
    import torch

    g = torch.from_numpy(txt).to(device)
    return lambda q, out: (torch.from_numpy(q).to(device) @ g.T).cpu().numpy()


def _ranks_both(ims, txt, image_index, img_src, distance, ties, block, score):
    """Both directions' 0-based ranks over the image blocks; see :func:`ranks` and :class:`_SearchCounts`.

    ``img_src``: :func:`first_equal` of ``ims``, whose copies must be adjacent (``ranks`` sorts them so).
    Returns (r_i2t (n_img,), -1 for images without captions; r_t2i (n_txt,); flat_i2t (n_img,), flat_t2i
    (n_txt,): the degenerate queries, whose ranks are still the tie rule's). Each block's scores are read
    once, by :class:`_OnePass`, for both directions. The score block is allocated once and reused (fresh
    200 MB arrays per block cost page faults).
    """
    txt_src = first_equal(txt)
    euclid = distance == "euclidean"
    ims_sq = (ims * ims).sum(1)[img_src] if euclid else None
    txt_sq = (txt * txt).sum(1)[txt_src] if euclid else None
    bounds = _block_bounds(img_src, block)
    scores = np.empty((max((e - s for s, e in bounds), default=0), len(txt)), dtype=np.float32)
    widen = 2.0
    with _OnePass(len(txt), txt_sq, ties) as one_pass:
        while True:
            t2i = _SearchCounts(ims, txt, image_index, ims_sq, ties, widen, distance == "cosine")
            r_i2t, flat_i2t = np.full(len(ims), -1, dtype=np.int64), np.zeros(len(ims), dtype=bool)
            for s0, e in bounds:
                p = _copies_alike(score(ims[s0:e], scores[: e - s0]), img_src[s0:e] - s0, txt_src)
                isq = None if ims_sq is None else ims_sq[s0:e]
                gt, n_tied = _best_positives(p, image_index, s0, txt_sq, ties)
                c = t2i.known(p, isq, s0)
                beaten, above, reach = one_pass(p, gt, t2i, c, isq)
                r_i2t[s0:e] = np.where(gt > -np.inf, beaten - n_tied, -1)
                flat_i2t[s0:e] = _flat_rows(p, gt > -np.inf, txt_sq)
                t2i.add(p, isq, s0, c, above, reach)
            r_t2i = t2i.ranks()
            if r_t2i is not None:
                break
            widen *= 4 * t2i.needed  # the GEMM rounded beyond the float32 bound (e.g. TF32 on a GPU): redo
    return r_i2t, r_t2i, flat_i2t, t2i.flat()


def _copies_alike(p: np.ndarray, src: np.ndarray, txt_src: np.ndarray) -> np.ndarray:
    """Give every copy of an image (``src``: first copy's row in the block) and of a caption (``txt_src``)
    its first copy's scores, in place. BLAS kernels round one dot product differently at different places
    of the output (OpenBLAS on AVX-512: rows 0-5 and 6-15 of a tile differ in the last bit; 1 and 2 threads
    differ too), so only this makes identical items tie exactly, as the rule says."""
    copies = np.flatnonzero(src != np.arange(len(p)))
    p[copies] = p[src[copies]]
    dup_cols = np.flatnonzero(txt_src != np.arange(len(txt_src)))
    p[:, dup_cols] = p[:, txt_src[dup_cols]]
    return p


def _block_bounds(first: np.ndarray, block: int) -> list[tuple[int, int]]:
    """[(start, end)] image blocks of about ``block`` rows that never split a run of copies (``first``:
    :func:`first_equal` of images whose copies are adjacent)."""
    starts = np.flatnonzero(first == np.arange(len(first)))  # where each run of copies begins
    bounds, s0 = [], 0
    while s0 < len(first):
        i = np.searchsorted(starts, s0 + block)  # the first run starting at or after s0 + block
        e = int(starts[i]) if i < len(starts) else len(first)
        bounds.append((s0, e))
        s0 = e
    return bounds


def _block_positives(n_rows: int, image_index: np.ndarray, s0: int):
    """(rows, cols) of the ground-truth entries inside the score block of images s0 .. s0 + n_rows."""
    cols = np.flatnonzero((image_index >= s0) & (image_index < s0 + n_rows))
    return image_index[cols] - s0, cols


def _count(mask: np.ndarray, axis: int) -> np.ndarray:
    """True entries of a boolean mask along ``axis``, summed in the narrowest safe integer type."""
    dtype = np.int16 if mask.shape[axis] < 2**15 else np.int32 if mask.shape[axis] < 2**31 else np.int64
    return mask.view(np.uint8).sum(axis, dtype=dtype)


def _best_positives(p, image_index, s0, txt_sq, ties):
    """(gt, n_tied) for the images of a GEMM block p (b, n_txt) starting at image s0: gt (b,) float32, each
    image's best positive score (-inf for images without captions); n_tied (b,), under pessimistic ties, how
    many of its positives reach gt (``>=`` counts them, but they are not other items), else 0."""
    rows, cols = _block_positives(len(p), image_index, s0)
    pos = p[rows, cols] if txt_sq is None else 2 * p[rows, cols] - txt_sq[cols]
    gt = np.full(len(p), -np.inf, dtype=np.float32)
    np.maximum.at(gt, rows, pos)
    if ties == "optimistic":
        return gt, 0
    return gt, np.bincount(rows[pos >= gt[rows]], minlength=len(p))


def _flat_rows(p, queries, txt_sq) -> np.ndarray:
    """(b,) True for the ``queries`` rows of a GEMM block p (b, n_txt >= 2) whose annotation scores are all
    equal (degenerate queries). Rows whose first 64 scores differ are not; the few others are read whole."""
    flat = np.zeros(len(p), dtype=bool)
    if p.shape[1] < 2:
        return flat
    head = p[:, :64] if txt_sq is None else 2 * p[:, :64] - txt_sq[:64]
    cand = np.flatnonzero(queries & (head.min(1) == head.max(1)))
    if cand.size:
        s = p[cand] if txt_sq is None else 2 * p[cand] - txt_sq
        flat[cand] = s.min(1) == s.max(1)
    return flat


class _OnePass:
    """The one read of a GEMM block that yields both directions' counts.

    Reading the (b, n_txt) scores once per comparison costs as much as the GEMM itself at k = 128 (it streams
    from memory), so the block is cut into tiles of a few rows that stay in a core's cache, the cores share the
    tiles, and each tile is compared while it is cached: with its images' best positives (annotation), and per
    caption with its own score where that is known (captions ``[0, c)``) or else with the bracket's ``hi`` and
    ``lo`` (see :class:`_SearchCounts`). Called with a block, it returns (beaten (b,): captions scoring above
    each image's best positive (``>=`` under pessimistic ties, positives included); above (n_txt,): the
    block's images scoring above the own score (``>=`` under pessimistic ties) for ``[0, c)``, above ``hi`` for
    ``[c, n_txt)``; reach (n_txt - c,): at or above ``lo``). Use it as a context manager (it owns threads).
    """

    def __init__(self, n_txt: int, txt_sq, ties: str):
        self.rows = int(np.clip(2**20 // max(n_txt, 1), 1, 255))  # ~4 MB of float32 scores, uint8 counts
        self.n_txt, self.txt_sq = n_txt, txt_sq
        self.cmp = np.greater if ties == "optimistic" else np.greater_equal
        self.pool, self.buffers = None, {}

    def __enter__(self):
        from concurrent.futures import ThreadPoolExecutor

        self.workers = min(available_cores(), 8)
        if self.workers > 1:
            self.pool = ThreadPoolExecutor(self.workers)
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown()

    def __call__(self, p, gt, t2i: "_SearchCounts", c: int, ims_sq):
        beaten = np.empty(len(p), dtype=np.int64)
        tiles = iter(range(0, len(p), self.rows))  # shared: each worker takes the next tile (GIL-atomic)
        job = (p, gt, t2i.own[:c], t2i.lo[c:], t2i.hi[c:], ims_sq, tiles, beaten)
        n = min(self.workers, -(-len(p) // self.rows))
        counts = [self._work(0, *job)] if n < 2 else [f.result() for f in
                                                      [self.pool.submit(self._work, w, *job) for w in range(n)]]
        return beaten, sum(a for a, _ in counts), sum(r for _, r in counts)

    def _work(self, w, p, gt, own, lo, hi, ims_sq, tiles, beaten):
        """One worker's share: tiles from ``tiles`` until none is left; fills ``beaten``, returns its counts."""
        if w not in self.buffers:  # a mask and, for euclidean scores, a float buffer per worker
            self.buffers[w] = (np.empty((self.rows, self.n_txt), dtype=bool),
                               None if self.txt_sq is None else np.empty((self.rows, self.n_txt), np.float32))
        mask, buf = self.buffers[w]
        c, u8 = len(own), np.uint8
        above, reach = np.zeros(self.n_txt, dtype=np.int32), np.zeros(self.n_txt - c, dtype=np.int32)
        for a in tiles:
            b = min(a + self.rows, len(p))
            t, m, f = p[a:b], mask[: b - a], None if buf is None else buf[: b - a]
            s = t if f is None else np.subtract(np.multiply(t, 2, out=f), self.txt_sq, out=f)
            beaten[a:b] = _count(self.cmp(s, gt[a:b, None], out=m), 1)
            if f is not None:
                s = np.subtract(np.multiply(t, 2, out=f), ims_sq[a:b, None], out=f)
            above[:c] += np.add.reduce(self.cmp(s[:, :c], own, out=m[:, :c]).view(u8), axis=0, dtype=u8)
            above[c:] += np.add.reduce(np.greater(s[:, c:], hi, out=m[:, c:]).view(u8), axis=0, dtype=u8)
            reach += np.add.reduce(np.greater_equal(s[:, c:], lo, out=m[:, c:]).view(u8), axis=0, dtype=u8)
        return above, reach


def _column_scores(q: np.ndarray, ims_sq) -> np.ndarray:
    """Image-search scores of GEMM rows q (b, m): q itself, or ``2 q - |x|^2`` for euclidean (``ims_sq`` (b,))."""
    return q if ims_sq is None else 2 * q - ims_sq[:, None]


class _SearchCounts:
    """Image-search (t2i) ranks, counted block by block against each caption's own score AS THE GEMM GIVES IT.

    A caption's own score lives in its image's block. Once that block is computed the own score is known and
    later blocks are compared with it directly; captions come in image order in every dataset layout, so
    the known ones are a prefix ``[0, c)`` (:meth:`known`). Before that, a block is compared with a bracket
    [lo, hi] around a provisional own score (a row-wise dot product) that holds any float32 rounding of it:
    a dot product of k terms is within ``gamma_k sum |t_i x_i|``, gamma_k = k u / (1 - k u), u = 2^-24, of
    the exact value in any summation order (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.
    2002, eq. 3.5), so the einsum and the GEMM are within twice that (widened 2x); for L2-normalised rows
    ``sum |t_i x_i| <= |t| |x| <= 1 + 2^-20``. Scores above hi count against the caption, scores below lo do
    not; the few inside (near-ties and exact duplicates) are kept as (caption, score) and compared with the
    exact own score, read from the GEMM entry itself, at the end. So the tie rule holds bit for bit: an exact
    duplicate of the right image counts only under pessimistic ties. Memory: the near-ties, O(n_txt) on real
    data. An own score outside its bracket (a GEMM less precise than float32, e.g. TF32) makes :meth:`ranks`
    ask for a wider one.
    """

    def __init__(self, ims, txt, image_index, ims_sq, ties: str, widen: float, unit: bool):
        own = ims[image_index]
        mid = np.einsum("ij,ij->i", txt, own).astype(np.float64)
        k = txt.shape[1]
        gamma = k * 2.0**-24 / (1 - k * 2.0**-24)
        abs_dot = 1.0 + 2.0**-20 if unit else np.einsum("ij,ij->i", np.abs(txt), np.abs(own), dtype=np.float64)
        err = widen * 2 * gamma * abs_dot
        shift = 0.0 if ims_sq is None else ims_sq[image_index].astype(np.float64)
        scale = 1.0 if ims_sq is None else 2.0  # euclidean: 2 t.x - |x|^2, rounded once more
        self.mid = scale * mid - shift
        self.err = scale * err + widen * 2.0**-23 * (np.abs(scale * mid) + np.abs(shift))
        self.lo = np.nextafter((self.mid - self.err).astype(np.float32), np.float32(-np.inf))
        self.hi = np.nextafter((self.mid + self.err).astype(np.float32), np.float32(np.inf))
        self.image_index, self.ties, self.n_img = image_index, ties, len(ims)
        self.first_unknown = np.maximum.accumulate(image_index) if len(image_index) else image_index
        self.own = np.zeros(len(txt), dtype=np.float32)
        self.count = np.zeros(len(txt), dtype=np.int64)
        self.near_cols, self.near_vals = [], []
        self.flat_cols, self.flat_vals = None, None
        self.needed = 1.0

    def known(self, p: np.ndarray, ims_sq, s0: int) -> int:
        """Read the own scores of the captions of the block's images (p: (b, n_txt) GEMM block of the images
        s0 .. s0 + b); return c: captions ``[0, c)`` all have their own score known from here on."""
        rows, cols = _block_positives(len(p), self.image_index, s0)
        self.own[cols] = p[rows, cols] if ims_sq is None else 2 * p[rows, cols] - ims_sq[rows]
        return int(np.searchsorted(self.first_unknown, s0 + len(p)))

    def add(self, p: np.ndarray, ims_sq, s0: int, c: int, above: np.ndarray, reach: np.ndarray) -> None:
        """Count one block (as :meth:`known` took it) from :class:`_OnePass`'s ``above`` and ``reach``."""
        rows, cols = _block_positives(len(p), self.image_index, s0)
        self.count += above
        if self.ties != "optimistic":  # ">=" counted each known own entry itself
            self.count[cols[cols < c]] -= 1
        near = reach - above[c:]
        unknown = cols >= c
        own = self.own[cols[unknown]]
        near[cols[unknown] - c] -= (own >= self.lo[cols[unknown]]) & (own <= self.hi[cols[unknown]])
        near_cols = c + np.flatnonzero(near > 0)
        if near_cols.size:
            sub = _column_scores(p[:, near_cols], ims_sq)
            inside = (sub >= self.lo[near_cols]) & (sub <= self.hi[near_cols])
            own_row = self.image_index[near_cols] - s0
            mine = (own_row >= 0) & (own_row < len(p))
            inside[own_row[mine], np.flatnonzero(mine)] = False
            r, q = np.nonzero(inside)
            self.near_cols.append(near_cols[q])
            self.near_vals.append(sub[r, q])
        self._screen_flat(p, ims_sq)

    def _screen_flat(self, p, ims_sq) -> None:
        """Keep the captions whose scores were all equal so far (degenerate queries): the first block's first
        16 rows screen every caption, later blocks read only the survivors' columns."""
        if self.flat_cols is None:
            head = _column_scores(p[:16], None if ims_sq is None else ims_sq[:16])
            self.flat_cols = np.flatnonzero(head.min(0) == head.max(0))
            self.flat_vals = head[0, self.flat_cols]
        if self.flat_cols.size:
            same = (_column_scores(p[:, self.flat_cols], ims_sq) == self.flat_vals).all(0)
            self.flat_cols, self.flat_vals = self.flat_cols[same], self.flat_vals[same]

    def ranks(self) -> np.ndarray | None:
        """0-based ranks, or None when an own score fell outside its bracket (then ``needed`` says how much
        wider it must be). ``flat()`` then gives the degenerate captions."""
        outside = (self.own < self.lo) | (self.own > self.hi)
        if outside.any():
            off = np.abs(self.own[outside] - self.mid[outside]) / np.maximum(self.err[outside], 1e-300)
            self.needed = float(max(off.max(), 2.0))
            return None
        cols = np.concatenate([np.zeros(0, dtype=np.int64), *self.near_cols])
        vals = np.concatenate([np.zeros(0, dtype=np.float32), *self.near_vals])
        counted = vals > self.own[cols] if self.ties == "optimistic" else vals >= self.own[cols]
        return self.count + np.bincount(cols[counted], minlength=len(self.own))

    def flat(self) -> np.ndarray:
        """(n_txt,) bool: captions that every image scores alike (in a gallery of 2 or more images)."""
        flat = np.zeros(len(self.own), dtype=bool)
        if self.n_img > 1 and self.flat_cols is not None:
            flat[self.flat_cols] = True
        return flat


def summarize(r0: np.ndarray) -> dict:
    """0-based ranks -> {"R@1","R@5","R@10" (percent), "median_rank", "mean_rank"} (1-based ranks)."""
    r0 = np.asarray(r0)
    if r0.size == 0:
        raise UserError("no queries to evaluate")
    out = {f"R@{k}": float(100.0 * np.mean(r0 < k)) for k in KS}
    out["median_rank"] = float(np.floor(np.median(r0)) + 1)
    out["mean_rank"] = float(np.mean(r0) + 1)
    return out


def fold_slices(n_img: int, folds: int) -> list[np.ndarray]:
    """Image positions of each of ``folds`` consecutive, equal folds (COCO 1k: 5 folds of 1,000)."""
    if folds < 1 or n_img % folds:
        raise UserError(f"cannot split {n_img} images into {folds} equal folds")
    size = n_img // folds
    return [np.arange(f * size, (f + 1) * size) for f in range(folds)]


def recall_curve(r0: np.ndarray, k_max: int = 50) -> list[float]:
    """0-based ranks -> [R@1, ..., R@k_max] in percent (R@K = share of queries with rank <= K)."""
    r0 = np.asarray(r0)
    if r0.size == 0:
        raise UserError("no queries to evaluate")
    hits = np.bincount(np.minimum(r0, k_max), minlength=k_max + 1)[:k_max]
    return (100.0 * np.cumsum(hits) / r0.size).tolist()


def fold_ranks(image_emb, text_emb, image_index, distance: str = "cosine", folds: int = 1,
               ties: str = "optimistic", device: str | None = None, *,
               return_flat: bool = False) -> list[tuple[np.ndarray, ...]]:
    """(r_i2t, r_t2i) 0-based ranks of each of ``folds`` consecutive image folds (see :func:`ranks`); with
    ``return_flat``, (r_i2t, r_t2i, flat_i2t, flat_t2i) per fold (the degenerate queries' masks).

    Args:
        image_emb: (n_img, k); text_emb: (n_txt, k); image_index: (n_txt,) image of each caption.
    """
    image_emb, text_emb = np.asarray(image_emb), np.asarray(text_emb)
    image_index = np.asarray(image_index, dtype=np.int64)
    n_img, n_txt = len(image_emb), len(text_emb)
    if len(image_index) != n_txt or (n_txt and (image_index.min() < 0 or image_index.max() >= n_img)):
        raise UserError(f"image_index must give an image in 0..{n_img - 1} for each of the {n_txt} captions")
    out = []
    for images in fold_slices(n_img, folds):
        caps = np.flatnonzero((image_index >= images[0]) & (image_index <= images[-1]))
        out.append(ranks(image_emb[images], text_emb[caps], image_index[caps] - images[0], distance, ties,
                         device=device, return_flat=return_flat))
    return out


def _fold_mean(per_fold: list[dict]) -> dict:
    """Average ``{task: {metric: value}}`` records over folds."""
    return {task: {m: float(np.mean([f[task][m] for f in per_fold])) for m in per_fold[0][task]} for task in TASK_NAMES}


def evaluate_retrieval(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    image_index: np.ndarray,
    distance: str = "cosine",
    folds: int = 1,
    ties: str = "optimistic",
    device: str | None = None,
) -> dict:
    """Image annotation (i2t) and image search (t2i) metrics, averaged over ``folds`` image folds.

    Args:
        image_emb: (n_img, k); text_emb: (n_txt, k); image_index: (n_txt,) image of each caption.
        device: None (numpy) or a torch device for the similarity GEMM (see :func:`ranks`).
    Returns:
        ``{"image_annotation": {...}, "image_search": {...}}``, each as :func:`summarize` returns.
    """
    return evaluate_with_curves(image_emb, text_emb, image_index, distance, folds, ties, k_max=0, device=device)[0]


def evaluate_with_curves(image_emb, text_emb, image_index, distance: str = "cosine", folds: int = 1,
                         ties: str = "optimistic", k_max: int = 50,
                         device: str | None = None) -> tuple[dict, dict]:
    """:func:`evaluate_retrieval`'s metrics and, from the same ranks, the R@1..R@k_max curves.

    Returns:
        (metrics, curves): curves is ``{"image_annotation": [R@1..R@k_max], "image_search": [...]}``
        averaged over folds (empty lists when ``k_max`` is 0).
    """
    per_fold = fold_ranks(image_emb, text_emb, image_index, distance, folds, ties, device)
    metrics = _fold_mean([dict(zip(TASK_NAMES, map(summarize, r))) for r in per_fold])
    if not k_max:
        return metrics, {task: [] for task in TASK_NAMES}
    return metrics, dict(zip(TASK_NAMES, fold_curves(per_fold, k_max).tolist()))


def fold_curves(per_fold: list[tuple], k_max: int = 50) -> np.ndarray:
    """(2, k_max) R@1..R@k_max of both directions averaged over folds (:func:`fold_ranks` output; entries past
    the two rank arrays, such as the degenerate masks, are ignored)."""
    return np.mean([[recall_curve(r0, k_max) for r0 in fold[:2]] for fold in per_fold], axis=0)
