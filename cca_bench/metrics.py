"""Retrieval metrics for image annotation (i2t) and image search (t2i), after Kiros et al. 2014 / VSE++.

Conventions (see PROTOCOLS.md):
- ranks are 1-based; an annotation query (an image) takes the rank of its BEST-ranked caption;
- R@K is the percentage of queries with rank <= K; median rank = floor(median(r0)) + 1 and
  mean rank = mean(r0) + 1, with r0 the 0-based ranks (under ties, the expected ones: a median that falls
  between whole ranks, e.g. 2.5 when two queries tie over the third place, is floored as Kiros / VSE++ floor
  the half-way median of two ranks, so the median stays a whole rank and equals theirs on untied scores);
- ties (:mod:`cca_bench.ties`): one pass counts, per query, the items scoring strictly above the ground truth
  (s), the other items scoring exactly equal to it (t) and, for annotation, the image's captions sharing its
  best score (m). ``ties="expected"`` (the default) scores the expectation over a uniformly random order of
  the tied items (R@K = mean probability of a hit, median and mean over expected ranks); ``"optimistic"``
  counts every tie for the query (rank s), ``"pessimistic"`` against it (rank s + t). Images without
  captions are not annotation queries.
- degenerate queries: a query that scores every item of its gallery (2 or more items) equally, e.g. an
  all-zero embedding (an all-OOV caption, a sparse method's empty row), has no ranking, and an optimistic
  tie rule would hand it a free hit. It is scored as a miss with the WORST possible rank instead: 0-based
  n_images - 1 for image search; for image annotation n_captions - n_positives of that image (every other
  caption ahead of its best positive). ``ranks(..., return_flat=True)`` says which queries they were. One
  such query never voids an evaluation; a direction whose EVERY query is degenerate is refused (UserError).
- ``folds=5`` splits the images into 5 consecutive folds (COCO 1k protocol) and averages every metric.
The similarity matrix is never held whole: images go in blocks, each block's scores (one GEMM, on a torch
device when asked) serve both directions, and only the counts above the ground truth are kept, so memory is
O(block x gallery). The cost is one similarity GEMM plus ONE read of its scores: each block is compared in
cache-sized tiles, shared by all cores, for both directions at once (:class:`_OnePass`). Every ground-truth
score is read from the GEMM entry it is compared with (never recomputed), so ties are counted bit for bit.
Nothing is scored from NaN/inf embeddings.
Sparse embeddings (scipy CSR, e.g. ASIF's over many anchors) are scored by :mod:`cca_bench.sparse_rows`: each
score block is the sparse product made dense, the rest of the pass unchanged; a dense side next to a sparse one
is made sparse.
"""

from __future__ import annotations

import numpy as np

from cca_bench import sparse_rows
from cca_bench.config import available_cores
from cca_bench.errors import UserError
from cca_bench.ties import DEFAULT, TieCounts, check_rule, exact_mean, exact_sum
from cca_bench.topk import TileTop, row_threshold

DISTANCES = ("cosine", "dot", "euclidean")
KS = (1, 5, 10)
# Share of open captions up to which their columns are gathered and compared, not all columns: a column gather
# (fancy indexing across a tile's rows) costs several compare passes. Timed at COCO 5k on one core (the search
# counts of every tile, synthetic sets of several difficulties): gathering 3% of the columns cost less than
# comparing all of them, gathering 12% already more, 39% (a COCO-like set) 2.5 times more; the cutoff was
# one half, which sent COCO-like sets down the slow path.
OPEN_COLUMNS_GATHERED = 1 / 16
# Images per score block (each a fresh (block x captions) float32 array; the first block is read once more for
# the captions' top-k bound). At COCO 5k 1,792 (three even blocks) took 0.87-0.95x the time of 2,048 (two large
# blocks and a small one) with the same results (benchmarks/REPORT_block.md).
DEFAULT_BLOCK = 1792
SCORE_BLOCK_BYTES = 512 * 2**20  # one (images x captions) float32 score block at most: any gallery size fits
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
    if sparse_rows.is_sparse(emb):  # CSR rows stay sparse (cosine: normalised on the stored values)
        out, finite = sparse_rows.prepare(emb, distance)
        _refuse_non_finite(out.data[None, :], name, finite)
        return out
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
        raise UserError(
            f"{name} contain NaN or infinite values ({bad} rows; a damaged model file or a parameter "
            "out of range?): refusing to score them"
        )


def check_score_range(a: np.ndarray, b: np.ndarray, distance: str) -> None:
    """UserError when prepared rows (n_a, k), (n_b, k) could give scores beyond float32 (|a.b| <= |a||b|)."""
    na, nb = (float(_row_norms(m).max(initial=0)) for m in (a, b))
    bound = (na + nb) ** 2 if distance == "euclidean" else na * nb
    if bound > 1e37:
        raise UserError(f"embedding norms up to {max(na, nb):.3g}: {distance} scores could overflow float32")


def _row_norms(a) -> np.ndarray:
    """(n,) float64 row norms of dense or CSR rows."""
    if sparse_rows.is_sparse(a):
        return sparse_rows.row_norms(a)
    return np.linalg.norm(a.astype(np.float64), axis=1)


def _row_sq(a) -> np.ndarray:
    """(n,) float32 squared row norms of dense or CSR rows (euclidean scores): the squares (exact in float64)
    summed in float64 and rounded to float32 once, so the dense and the CSR form of a row get the same value
    (a float32 sum would round differently in each order, and unit rows' norms, 1 within an ulp, would then
    break or make ties between captions that share no anchor with the query)."""
    if sparse_rows.is_sparse(a):
        return sparse_rows.row_sq(a)
    return np.einsum("ij,ij->i", a, a, dtype=np.float64).astype(np.float32)


def _same_kind(a, b):
    """(a, b) as they are when both are dense, both as CSR when either is sparse."""
    if sparse_rows.is_sparse(a) or sparse_rows.is_sparse(b):
        return sparse_rows.as_csr(a), sparse_rows.as_csr(b)
    return a, b


def similarity(a: np.ndarray, b: np.ndarray, distance: str = "cosine") -> np.ndarray:
    """(n_a, k), (n_b, k) -> (n_a, n_b) dense scores, higher is closer (either side may be scipy CSR rows).

    euclidean gives ``-||a_i - b_j||^2``.
    """
    pa, pb = _same_kind(prepare(a, distance), prepare(b, distance))
    s = sparse_rows.scorer(pb)(pa, None) if sparse_rows.is_sparse(pa) else pa @ pb.T
    if distance == "euclidean":
        s = 2 * s - _row_sq(pa)[:, None] - _row_sq(pb)[None, :]
    return s


def ranks(
    image_emb,
    text_emb,
    image_index,
    distance: str = "cosine",
    ties: str = DEFAULT,
    block: int = DEFAULT_BLOCK,
    device: str | None = None,
    *,
    return_flat: bool = False,
) -> tuple[np.ndarray, ...]:
    """0-based ranks of both directions under the tie rule ``ties`` (:func:`tie_counts` and
    :meth:`cca_bench.ties.TieCounts.rank`): int64 for ``optimistic`` / ``pessimistic``, float64 expected ranks
    for ``expected`` (whole numbers where nothing ties).

    Returns (r_i2t (n_img_with_captions,), r_t2i (n_txt,)), with ``return_flat`` also the degenerate masks.
    """
    check_rule(ties)
    i2t, t2i, *flat = tie_counts(image_emb, text_emb, image_index, distance, block, device)
    out = tuple(c.rank(ties) if ties == "expected" else c.rank(ties).astype(np.int64) for c in (i2t, t2i))
    return (*out, *flat) if return_flat else out


def tie_counts(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    image_index: np.ndarray,
    distance: str = "cosine",
    block: int = DEFAULT_BLOCK,
    device: str | None = None,
    top: int = 0,
) -> tuple:
    """Both directions' tie counts (:class:`cca_bench.ties.TieCounts`), from ONE similarity GEMM taken in
    blocks of ``block`` images; with ``top`` > 0 also each query's top-``top`` items from the same blocks.

    Args:
        image_emb: (n_img, k); text_emb: (n_txt, k); image_index: (n_txt,) caption j describes image
            ``image_index[j]``.
        device: None for numpy; a torch device (e.g. "cuda") runs each block's GEMM there.
    Returns:
        (i2t, t2i, flat_i2t, flat_t2i): TieCounts of shape (n_img_with_captions,) and (n_txt,), and boolean masks
        aligned with them that mark the degenerate queries (scored as misses: see the module docstring);
        with ``top``, then (i2t_top (n_img, top) caption positions, t2i_top (n_txt, top) image positions), int64,
        in :mod:`cca_bench.topk`'s exact order (score desc, position asc), -1 padded. The top lists cost no
        second GEMM: they are read from the same score blocks (as ``similarity`` scores them).
    Each (block, n_txt) score block serves both directions: its rows rank captions for the block's images,
    and its columns add, for every caption, the block's images scoring above (and equal to) the caption's own
    image. Every comparison is with the ground truth's score as the same GEMM gives it (see
    :class:`_SearchCounts`), so ties are counted exactly. Memory is O(block x n_txt) with ``block`` cut so that
    a score block stays within ``SCORE_BLOCK_BYTES`` (a million captions: 128 images a block), plus O(n_txt k).
    Raises UserError for NaN/inf embeddings, scores that could overflow, and a direction whose every query
    is degenerate.
    """
    image_index = _checked_index(image_emb, text_emb, image_index)
    ims, txt = _same_kind(
        prepare(image_emb, distance, "image embeddings"), prepare(text_emb, distance, "caption embeddings")
    )
    if distance != "cosine":  # L2-normalised rows score within [-1, 1]
        check_score_range(ims, txt, distance)
    n_img, n_txt = ims.shape[0], txt.shape[0]
    block = max(1, min(block, SCORE_BLOCK_BYTES // (4 * max(n_txt, 1))))  # bounded memory at any gallery size
    first = _first_equal(ims)
    order = np.argsort(first, kind="stable")  # copies of an image side by side, in one block
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    collect = None if not top else TileTop(order, n_txt, top)
    i2t, t2i, flat_i2t, flat_t2i = _ranks_both(
        ims[order], txt, where[image_index], where[first[order]], distance, block, _scorer(txt, device), collect
    )
    queries = np.flatnonzero(i2t.above[where] >= 0)  # back to image order: the images with captions
    i2t, flat_i2t = i2t[where[queries]], flat_i2t[where[queries]]
    n_pos = np.bincount(image_index, minlength=n_img)[queries]
    out = (*_as_misses(i2t, t2i, flat_i2t, flat_t2i, n_txt - n_pos, n_img - 1), flat_i2t, flat_t2i)
    return out if collect is None else (*out, *collect.result())


def _checked_index(image_emb, text_emb, image_index) -> np.ndarray:
    """``image_index`` as int64 after checking it and the embeddings' widths (UserError)."""
    image_index = np.asarray(image_index, dtype=np.int64)
    n_img, n_txt = image_emb.shape[0], text_emb.shape[0]
    if len(image_index) != n_txt:
        raise UserError(f"{n_txt} caption embeddings but {len(image_index)} entries in image_index")
    if image_emb.shape[1] != text_emb.shape[1]:
        raise UserError(f"image and text embeddings differ in width: {image_emb.shape[1]} vs {text_emb.shape[1]}")
    if n_txt and (image_index.min() < 0 or image_index.max() >= n_img):
        raise UserError(f"image_index points outside 0..{n_img - 1}")
    return image_index


def _as_misses(i2t: TieCounts, t2i: TieCounts, flat_i2t, flat_t2i, worst_i2t, worst_t2i: int):
    """(i2t, t2i) with the degenerate queries (masks ``flat_*``) given the worst rank and no ties:
    ``worst_i2t`` (per image query) and ``worst_t2i``; UserError when every query of a direction is degenerate
    (nothing would be measured)."""
    every = [
        f"all {flat.size} {what} queries"
        for what, flat in (("image", flat_i2t), ("caption", flat_t2i))
        if flat.size and flat.all()
    ]
    if every:
        raise UserError(
            f"{' and '.join(every)} score every item of the gallery equally (e.g. all-zero or "
            "identical embeddings): there is no ranking to evaluate"
        )
    out = []
    for counts, flat, worst in ((i2t, flat_i2t, worst_i2t), (t2i, flat_t2i, np.full(len(flat_t2i), worst_t2i))):
        above, tied, gt = counts.above.copy(), counts.tied.copy(), counts.gt_tied.copy()
        above[flat], tied[flat], gt[flat] = worst[flat], 0, 1
        out.append(TieCounts(above, tied, gt))
    return tuple(out)


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


def _first_equal(a) -> np.ndarray:
    """:func:`first_equal` of dense or CSR rows."""
    return sparse_rows.first_equal(a) if sparse_rows.is_sparse(a) else first_equal(a)


def _row_hash(words: np.ndarray) -> np.ndarray:
    """(n,) uint64 hash of the rows of an (n, m) unsigned integer array: a dot product with fixed odd
    multipliers, modulo 2^64 (equal rows always hash alike; different rows rarely do)."""
    mult = np.random.default_rng(0).integers(0, 2**62, words.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return words @ mult


def refuse_flat_queries(queries: np.ndarray, gallery: np.ndarray, distance: str, what: str = "query") -> None:
    """UserError when a query (rows of (q, k)) scores every item of a gallery (n >= 2, k) alike: a ranking of
    it would be the tie-break's, not the model's. One similarity pass (q x n), for a few queries (search)."""
    if gallery.shape[0] < 2 or not queries.shape[0]:
        return
    s = similarity(queries, gallery, distance)
    flat = np.flatnonzero(s.min(1) == s.max(1))
    if flat.size:
        raise UserError(
            f"the {what} scores all {len(gallery)} gallery items equally (e.g. an all-zero "
            "embedding): there is no ranking to show"
        )


def _scorer(txt: np.ndarray, device: str | None):
    """``(q, out) -> q @ txt.T`` (float32): numpy into the reused ``out``, or torch on ``device`` with ``txt``
    moved there once."""
    if sparse_rows.is_sparse(txt):  # CSR rows: sparse products on the CPU (cca_bench.sparse_rows)
        return sparse_rows.scorer(txt)
    if device is None:
        return lambda q, out: np.matmul(q, txt.T, out=out)
    import torch

    g = torch.from_numpy(txt).to(device)
    return lambda q, out: (torch.from_numpy(q).to(device) @ g.T).cpu().numpy()


def _ranks_both(ims, txt, image_index, img_src, distance, block, score, collect=None):
    """Both directions' tie counts over the image blocks; see :func:`tie_counts` and :class:`_SearchCounts`.

    ``img_src``: :func:`first_equal` of ``ims``, whose copies must be adjacent (``tie_counts`` sorts them so).
    Returns (i2t TieCounts (n_img,), ``above`` -1 for images without captions; t2i TieCounts (n_txt,); flat_i2t
    (n_img,), flat_t2i (n_txt,): the degenerate queries, whose counts are still the scores'). Each block's
    scores are read
    once, by :class:`_OnePass`, for both directions. The score block is allocated once and reused (fresh
    200 MB arrays per block cost page faults). ``collect``: None or a :class:`cca_bench.topk.TileTop` that
    is given every score tile while it is cached.
    """
    txt_src = _first_equal(txt)
    euclid = distance == "euclidean"
    ims_sq = _row_sq(ims)[img_src] if euclid else None
    txt_sq = _row_sq(txt)[txt_src] if euclid else None
    n_img, n_txt = ims.shape[0], txt.shape[0]
    bounds = _block_bounds(img_src, block)
    scores = np.empty((max((e - s for s, e in bounds), default=0), n_txt), dtype=np.float32)
    widen = 2.0
    with _OnePass(n_txt, txt_sq) as one_pass:
        while True:
            t2i = _SearchCounts(ims, txt, image_index, ims_sq, widen, distance == "cosine")
            if collect is not None:
                collect.reset()
            i2t = [np.full(n_img, -1, dtype=np.int64), np.zeros(n_img, np.int64), np.ones(n_img, np.int64)]
            flat_i2t = np.zeros(n_img, dtype=bool)
            for s0, e in bounds:
                p = _copies_alike(score(ims[s0:e], scores[: e - s0]), img_src[s0:e] - s0, txt_src)
                isq = None if ims_sq is None else ims_sq[s0:e]
                gt, n_gt = _best_positives(p, image_index, s0, txt_sq)
                c = t2i.known(p, isq, s0)
                if collect is not None:
                    collect.begin(s0, e - s0)
                    if collect.needs_prepass:
                        one_pass.prepass(p, isq, collect)
                beaten, level, above, level_c, reach, near = one_pass(p, gt, t2i, c, isq, collect)
                query = gt > -np.inf
                i2t[0][s0:e] = np.where(query, beaten, -1)
                i2t[1][s0:e] = np.where(query, level - beaten - n_gt, 0)  # ">=" also counted the tied positives
                i2t[2][s0:e] = np.maximum(n_gt, 1)
                flat_i2t[s0:e] = _flat_rows(p, query, txt_sq)
                t2i.add(p, isq, s0, c, above, level_c, reach, near)
                if collect is not None:
                    collect.end()
            counts = t2i.counts()
            if counts is not None:
                break
            widen *= 4 * t2i.needed  # the GEMM rounded beyond the float32 bound (e.g. TF32 on a GPU): redo
    return TieCounts(*i2t), counts, flat_i2t, t2i.flat()


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


def _best_positives(p, image_index, s0, txt_sq):
    """(gt, n_gt) for the images of a GEMM block p (b, n_txt) starting at image s0: gt (b,) float32, each
    image's best positive score (-inf for images without captions); n_gt (b,) how many of its positives score
    exactly gt (the ground truths of its tie group, m; 0 for images without captions)."""
    rows, cols = _block_positives(len(p), image_index, s0)
    pos = p[rows, cols] if txt_sq is None else 2 * p[rows, cols] - txt_sq[cols]
    gt = np.full(len(p), -np.inf, dtype=np.float32)
    np.maximum.at(gt, rows, pos)
    return gt, np.bincount(rows[pos == gt[rows]], minlength=len(p))


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
    each image's best positive; level (b,): at or above it (positives included); above (n_txt,): the block's
    images scoring above the own score for ``[0, c)``, above ``hi`` for ``[c, n_txt)``; level_c (c,): at or
    above the own score (the own entry included); reach (n_txt - c,): at or above ``lo``). Counting ``>`` and
    ``>=`` of the same cached tile costs one more comparison, not one more read of the block. Use it as a
    context manager (it owns threads).
    """

    def __init__(self, n_txt: int, txt_sq):
        self.rows = int(np.clip(2**20 // max(n_txt, 1), 1, 255))  # ~4 MB of float32 scores, uint8 counts
        self.n_txt, self.txt_sq = n_txt, txt_sq
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

    def _spread(self, work, n_rows: int, *job) -> list:
        """``work(w, tiles, *job)`` on every worker that gets a tile of ``n_rows`` rows; their results in a list.
        ``tiles`` is shared: each worker takes the next tile start (GIL-atomic) until none is left."""
        tiles = iter(range(0, n_rows, self.rows))
        n = min(self.workers, -(-n_rows // self.rows))
        if n < 2:
            return [work(0, tiles, *job)]
        return [f.result() for f in [self.pool.submit(work, w, tiles, *job) for w in range(n)]]

    def _buffers(self, w):
        """Worker ``w``'s (mask, float buffer or None): a boolean tile and, for euclidean scores, a float one."""
        if w not in self.buffers:
            self.buffers[w] = (
                np.empty((self.rows, self.n_txt), dtype=bool),
                None if self.txt_sq is None else np.empty((self.rows, self.n_txt), np.float32),
            )
        return self.buffers[w]

    def __call__(self, p, gt, t2i: _SearchCounts, c: int, ims_sq, collect=None):
        beaten, level = np.empty(len(p), dtype=np.int64), np.empty(len(p), dtype=np.int64)
        cols = _SearchColumns(t2i.own[:c], t2i.lo[c:], t2i.hi[c:], None if collect is None else collect.bound)
        job = (p, gt, cols, ims_sq, beaten, level, collect)
        counts = self._spread(self._work, len(p), *job)
        *sums, near = zip(*counts)
        return (beaten, level, *(sum(part) for part in sums), [tile for part in near for tile in part])

    def prepass(self, p, ims_sq, collect) -> None:
        """Give ``collect`` (:class:`cca_bench.topk.TileTop`) the column scores of every tile of block ``p``
        for its first bound, then close that read."""

        def work(w, tiles):
            f = self._buffers(w)[1]
            for a in tiles:
                b = min(a + self.rows, len(p))
                collect.prepass(w, _shifted(p[a:b], None if f is None else f[: b - a], ims_sq, a), a)

        self._spread(work, len(p))
        collect.end_prepass()

    def _work(self, w, tiles, p, gt, cols, ims_sq, beaten, level, collect):
        """One worker's share: tiles from ``tiles`` until none is left; fills ``beaten`` and ``level``, returns
        its (above, level_c, reach) counts (:class:`_SearchColumns`) and its tiles' bracketed captions ([(a, b,
        captions)]: the captions past ``c`` with some score of block rows a .. b inside their bracket); hands each
        tile's row and column scores to ``collect`` too, and counts from its candidates where they hold every
        entry that counts."""
        mask, buf = self._buffers(w)
        above, reach = np.zeros(self.n_txt, dtype=np.int32), np.zeros(self.n_txt - cols.c, dtype=np.int32)
        level_c, near = np.zeros(cols.c, dtype=np.int32), []
        for a in tiles:
            b = min(a + self.rows, len(p))
            t, m, f = p[a:b], mask[: b - a], None if buf is None else buf[: b - a]
            s = t if f is None else np.subtract(np.multiply(t, 2, out=f), self.txt_sq, out=f)  # row scores
            thr = None if collect is None else row_threshold(s, collect.k)
            _annotation_counts(s, gt[a:b], thr, m, beaten[a:b], level[a:b])
            col_cands = None
            if thr is not None:  # the row scores are the column scores unless euclidean
                row_cands, col_cands = collect.both(w, s, a, thr) if f is None else (collect.rows(w, s, a, thr), None)
                _annotation_counts_from(row_cands, gt[a:b], thr, beaten[a:b], level[a:b])
            if f is not None:
                s = _shifted(t, f, ims_sq, a)
                col_cands = None if collect is None else collect.columns(w, s, a)
            bracketed = cols.count(s, m, col_cands, above, level_c, reach)
            if len(bracketed):
                near.append((a, b, bracketed))
        return above, level_c, reach, near


class _SearchColumns:
    """One block's image-search comparisons, per caption: captions ``[0, c)`` against their own score ``own``
    (c,), the others against their bracket's ``hi`` and ``lo`` (see :class:`_SearchCounts`).

    With top-k lists (``bound``: :attr:`cca_bench.topk.TileTop.bound`, (n_txt,)), a caption whose own score (or
    ``lo``) is at or above its bound has every entry that counts among the tile's column candidates (those at or
    above the bound), so those alone count it; only the other ("open") captions' columns are compared, when
    they are at most :data:`OPEN_COLUMNS_GATHERED` of them (else every column is, as without lists)."""

    def __init__(self, own, lo, hi, bound):
        self.c, self.sure = len(own), None
        self.gt, self.ge = np.concatenate([own, hi]), np.concatenate([own, lo])  # ">" and ">=" per caption
        if bound is not None:
            sure = self.ge >= bound
            open_ = np.flatnonzero(~sure)
            if len(open_) <= OPEN_COLUMNS_GATHERED * len(sure):  # else comparing all columns costs less
                self.sure, self.open_known, self.open_rest = sure, open_[open_ < self.c], open_[open_ >= self.c]

    def count(self, s, m, cands, above, level_c, reach) -> np.ndarray:
        """Add tile ``s``'s (r, n_txt) column scores to ``above`` (n_txt,), ``level_c`` (c,), ``reach``
        (n_txt - c,): see :class:`_OnePass`. ``m``: a boolean tile; ``cands``: its column candidates (caption,
        score) when ``bound`` was given. Returns the captions past ``c`` that have a score of this tile inside
        their bracket (at or above ``lo``, not above ``hi``), whose entries :meth:`_SearchCounts.add` keeps: it
        reads them from these rows alone, not from every row of the block."""
        c = self.c
        if self.sure is None:
            over, at = _over_and_at(s, self.gt, self.ge, m)
            above += over
            level_c += at[:c]
            reach += at[c:]
            return c + np.flatnonzero(at[c:] > over[c:])
        bracketed = []
        for cols, counts, shift, unknown in ((self.open_known, level_c, 0, False), (self.open_rest, reach, c, True)):
            if len(cols):
                over, at = _over_and_at(s[:, cols], self.gt[cols], self.ge[cols], m[:, : len(cols)])
                above[cols] += over
                counts[cols - shift] += at
                if unknown:
                    bracketed.append(cols[at > over])
        col, v = cands
        keep = self.sure[col]
        col, v = col[keep], v[keep]
        above += np.bincount(col[v > self.gt[col]], minlength=len(above)).astype(np.int32)
        ge = v >= self.ge[col]
        at = np.bincount(col[ge], minlength=len(above))
        level_c += at[:c].astype(np.int32)
        reach += at[c:].astype(np.int32)
        bracketed.append(np.unique(col[ge & (v <= self.gt[col]) & (col >= c)]))
        return np.concatenate(bracketed)


def _over_and_at(s: np.ndarray, gt: np.ndarray, ge: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of the (r, n) tile ``s``: how many of its scores lie above ``gt`` (n,) and how many at or above
    ``ge`` (n,), as uint8 (a tile has fewer than 256 rows), compared into the boolean buffer ``m`` (r, n)."""
    u8 = np.uint8
    over = np.add.reduce(np.greater(s, gt, out=m).view(u8), axis=0, dtype=u8)
    return over, np.add.reduce(np.greater_equal(s, ge, out=m).view(u8), axis=0, dtype=u8)


def _annotation_counts(s, gt, thr, m, beaten, level) -> None:
    """Fill ``beaten`` / ``level`` (r,) with the entries of the tile's row scores ``s`` (r, n_txt) above / at or
    above each row's best positive ``gt`` (r,), for the rows that need a comparison: every row, or with the
    top-k lists' row thresholds ``thr`` (r,) only those with ``gt < thr`` when they are at most half the rows
    (the others are counted from the top-k candidates, :func:`_annotation_counts_from`; copying most rows out
    would cost more than comparing them all). ``m``: a boolean tile to compare into."""
    rest = slice(None) if thr is None else np.flatnonzero(gt < thr)
    if thr is not None and 2 * len(rest) > len(s):  # most rows: compare them all, no copy (the rest agree)
        rest = slice(None)
    elif thr is not None and len(rest) < len(s):
        if not len(rest):
            return
        s, m = s[rest], m[: len(rest)]
    beaten[rest] = _count(np.greater(s, gt[rest, None], out=m), 1)
    level[rest] = _count(np.greater_equal(s, gt[rest, None], out=m), 1)


def _annotation_counts_from(cands, gt, thr, beaten, level) -> None:
    """``beaten`` / ``level`` of the rows whose best positive ``gt`` is at or above their top-k threshold
    ``thr``: every entry at or above it is a top-k candidate (``cands``: (tile row, score) of the entries at or
    above ``thr``), so the candidates alone count them, exactly."""
    sure = gt >= thr
    if sure.any():
        r, v = cands
        g = gt[r]
        beaten[sure] = np.bincount(r[v > g], minlength=len(gt))[sure]
        level[sure] = np.bincount(r[v >= g], minlength=len(gt))[sure]


def _shifted(t: np.ndarray, f: np.ndarray | None, ims_sq, a: int) -> np.ndarray:
    """Image-search scores of the tile ``t`` (rows ``a`` .. of a block): ``t`` itself, or for euclidean scores
    (``f`` a float buffer shaped like ``t``) ``2 t - |x|^2`` written into ``f`` (:func:`_column_scores` without
    a new array)."""
    if f is None:
        return t
    return np.subtract(np.multiply(t, 2, out=f), ims_sq[a : a + len(t), None], out=f)


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
    exact own score, read from the GEMM entry itself, at the end. So ties are counted bit for bit: an exact
    duplicate of the right image is a tie, never above. Memory: the near-ties, O(n_txt) on real
    data. An own score outside its bracket (a GEMM less precise than float32, e.g. TF32) makes :meth:`ranks`
    ask for a wider one.
    """

    def __init__(self, ims, txt, image_index, ims_sq, widen: float, unit: bool):
        own = ims[image_index]
        if sparse_rows.is_sparse(txt):  # a score sums at most k products of stored values
            mid, k = sparse_rows.rowwise_dot(txt, own), sparse_rows.terms(txt, own)
        else:
            mid, k = np.einsum("ij,ij->i", txt, own).astype(np.float64), txt.shape[1]
        gamma = k * 2.0**-24 / (1 - k * 2.0**-24)
        abs_dot = (
            1.0 + 2.0**-20
            if unit
            else sparse_rows.rowwise_dot(txt, own, absolute=True)
            if sparse_rows.is_sparse(txt)
            else np.einsum("ij,ij->i", np.abs(txt), np.abs(own), dtype=np.float64)
        )
        err = widen * 2 * gamma * abs_dot
        shift = 0.0 if ims_sq is None else ims_sq[image_index].astype(np.float64)
        scale = 1.0 if ims_sq is None else 2.0  # euclidean: 2 t.x - |x|^2, rounded once more
        self.mid = scale * mid - shift
        self.err = scale * err + widen * 2.0**-23 * (np.abs(scale * mid) + np.abs(shift))
        self.lo = np.nextafter((self.mid - self.err).astype(np.float32), np.float32(-np.inf))
        self.hi = np.nextafter((self.mid + self.err).astype(np.float32), np.float32(np.inf))
        self.image_index, self.n_img = image_index, ims.shape[0]
        self.first_unknown = np.maximum.accumulate(image_index) if len(image_index) else image_index
        self.own = np.zeros(txt.shape[0], dtype=np.float32)
        self.count = np.zeros(txt.shape[0], dtype=np.int64)
        self.tied = np.zeros(txt.shape[0], dtype=np.int64)
        self.near_cols, self.near_vals = [], []
        self.flat_cols, self.flat_vals = None, None
        self.needed = 1.0

    def known(self, p: np.ndarray, ims_sq, s0: int) -> int:
        """Read the own scores of the captions of the block's images (p: (b, n_txt) GEMM block of the images
        s0 .. s0 + b); return c: captions ``[0, c)`` all have their own score known from here on."""
        rows, cols = _block_positives(len(p), self.image_index, s0)
        self.own[cols] = p[rows, cols] if ims_sq is None else 2 * p[rows, cols] - ims_sq[rows]
        return int(np.searchsorted(self.first_unknown, s0 + len(p)))

    def add(
        self,
        p: np.ndarray,
        ims_sq,
        s0: int,
        c: int,
        above: np.ndarray,
        level_c: np.ndarray,
        reach: np.ndarray,
        near: list,
    ) -> None:
        """Count one block (as :meth:`known` took it) from :class:`_OnePass`'s ``above``, ``level_c``, ``reach``
        and ``near``: [(a, b, captions)], the captions past ``c`` with a score of block rows a .. b inside their
        bracket (:meth:`_SearchColumns.count`). Those scores are kept, read from those rows only (reading the
        whole block's columns of every such caption cost 20 ms a block at COCO 5k); a caption's own entry is
        not kept: it is the score the others are compared with."""
        rows, cols = _block_positives(len(p), self.image_index, s0)
        self.count += above
        self.tied[:c] += level_c - above[:c]
        self.tied[cols[cols < c]] -= 1  # ">=" counted each known own entry itself
        for a, b, caps in near:
            sub = _column_scores(p[a:b, caps], None if ims_sq is None else ims_sq[a:b])
            inside = (sub >= self.lo[caps]) & (sub <= self.hi[caps])
            own_row = self.image_index[caps] - s0 - a  # the caption's own image, as a row of this tile
            mine = (own_row >= 0) & (own_row < b - a)
            inside[own_row[mine], np.flatnonzero(mine)] = False
            r, q = np.nonzero(inside)
            self.near_cols.append(caps[q])
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

    def counts(self) -> TieCounts | None:
        """The captions' TieCounts, or None when an own score fell outside its bracket (then ``needed`` says
        how much wider it must be). ``flat()`` then gives the degenerate captions."""
        outside = (self.own < self.lo) | (self.own > self.hi)
        if outside.any():
            off = np.abs(self.own[outside] - self.mid[outside]) / np.maximum(self.err[outside], 1e-300)
            self.needed = float(max(off.max(), 2.0))
            return None
        cols = np.concatenate([np.zeros(0, dtype=np.int64), *self.near_cols])
        vals = np.concatenate([np.zeros(0, dtype=np.float32), *self.near_vals])
        n = len(self.own)
        above = self.count + np.bincount(cols[vals > self.own[cols]], minlength=n)
        tied = self.tied + np.bincount(cols[vals == self.own[cols]], minlength=n)
        return TieCounts(above, tied, np.ones(n, dtype=np.int64))

    def flat(self) -> np.ndarray:
        """(n_txt,) bool: captions that every image scores alike (in a gallery of 2 or more images)."""
        flat = np.zeros(len(self.own), dtype=bool)
        if self.n_img > 1 and self.flat_cols is not None:
            flat[self.flat_cols] = True
        return flat


def summarize(r0, ties: str = DEFAULT) -> dict:
    """0-based ranks or :class:`~cca_bench.ties.TieCounts` of one direction's queries -> {"R@1","R@5","R@10"
    (percent), "median_rank", "mean_rank"} (1-based ranks) under the tie rule ``ties``.

    R@K is the mean probability of a hit (a plain share on untied ranks), median rank floor(median(r0)) + 1 and
    mean rank mean(r0) + 1 over the rule's (expected) 0-based ranks (Kiros / VSE++ formulas). Sums are
    correctly rounded (:func:`cca_bench.ties.exact_mean`): the same counts give the same numbers anywhere.
    """
    counts = TieCounts.of(r0)
    if len(counts) == 0:
        raise UserError("no queries to evaluate")
    ranked = counts.rank(ties)
    out = {f"R@{k}": float(100.0 * exact_mean(counts.hit(k, ties))) for k in KS}
    out["median_rank"] = float(np.floor(np.median(ranked)) + 1)
    out["mean_rank"] = float(exact_mean(ranked) + 1)
    return out


def fold_slices(n_img: int, folds: int) -> list[np.ndarray]:
    """Image positions of each of ``folds`` consecutive, equal folds (COCO 1k: 5 folds of 1,000)."""
    if folds < 1 or n_img % folds:
        raise UserError(f"cannot split {n_img} images into {folds} equal folds")
    size = n_img // folds
    return [np.arange(f * size, (f + 1) * size) for f in range(folds)]


def recall_curve(r0, k_max: int = 50, ties: str = DEFAULT) -> list[float]:
    """0-based ranks or TieCounts -> [R@1, ..., R@k_max] in percent under ``ties`` (see :func:`summarize`)."""
    counts = TieCounts.of(r0)
    if len(counts) == 0:
        raise UserError("no queries to evaluate")
    sure = counts.tied == 0 if ties == "expected" else np.ones(len(counts), dtype=bool)  # whole hits
    ranked = counts.rank(ties)[sure].astype(np.int64)
    hits = np.cumsum(np.bincount(np.minimum(ranked, k_max), minlength=k_max + 1)[:k_max])
    fractional = counts[~sure]
    if not len(fractional):
        return (100.0 * hits / len(counts)).tolist()
    return [
        100.0 * (exact_sum(fractional.hit(k, ties), int(h)) / len(counts))  # as summarize's R@K
        for k, h in zip(range(1, k_max + 1), hits)
    ]


def fold_counts(
    image_emb,
    text_emb,
    image_index,
    distance: str = "cosine",
    folds: int = 1,
    device: str | None = None,
    top: int = 0,
    block: int = DEFAULT_BLOCK,
) -> list[tuple]:
    """(i2t, t2i, flat_i2t, flat_t2i) of each of ``folds`` consecutive image folds (see :func:`tie_counts`);
    with ``top`` > 0 also (i2t_top (fold images, top), t2i_top (fold captions, top)) of positions in the WHOLE
    split (a query retrieves within its fold), -1 padded.

    Args:
        image_emb: (n_img, k); text_emb: (n_txt, k); image_index: (n_txt,) image of each caption.
    """
    image_emb, text_emb = (e if sparse_rows.is_sparse(e) else np.asarray(e) for e in (image_emb, text_emb))
    image_index = np.asarray(image_index, dtype=np.int64)
    n_img, n_txt = image_emb.shape[0], text_emb.shape[0]
    if len(image_index) != n_txt or (n_txt and (image_index.min() < 0 or image_index.max() >= n_img)):
        raise UserError(f"image_index must give an image in 0..{n_img - 1} for each of the {n_txt} captions")
    out = []
    for images in fold_slices(n_img, folds):
        caps = np.flatnonzero((image_index >= images[0]) & (image_index <= images[-1]))
        got = tie_counts(image_emb[images], text_emb[caps], image_index[caps] - images[0], distance, block, device, top)
        if top:
            got = (*got[:4], _global(got[4], caps), _global(got[5], images))
        out.append(got)
    return out


def _global(top: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Fold-local item positions (-1 padded) -> positions in the split."""
    return np.where(top >= 0, positions[np.maximum(top, 0)], -1)


def fold_ranks(
    image_emb,
    text_emb,
    image_index,
    distance: str = "cosine",
    folds: int = 1,
    ties: str = DEFAULT,
    device: str | None = None,
    *,
    return_flat: bool = False,
) -> list[tuple[np.ndarray, ...]]:
    """(r_i2t, r_t2i) 0-based ranks under ``ties`` (as :func:`ranks` gives them) of each of ``folds``
    consecutive image folds; with ``return_flat``, (r_i2t, r_t2i, flat_i2t, flat_t2i) per fold."""
    check_rule(ties)
    as_rank = (lambda c: c.rank(ties)) if ties == "expected" else (lambda c: c.rank(ties).astype(np.int64))
    return [
        (as_rank(i2t), as_rank(t2i), *flat)[: 4 if return_flat else 2]
        for i2t, t2i, *flat in fold_counts(image_emb, text_emb, image_index, distance, folds, device)
    ]


def _fold_mean(per_fold: list[dict]) -> dict:
    """Average ``{task: {metric: value}}`` records over folds."""
    return {task: {m: float(np.mean([f[task][m] for f in per_fold])) for m in per_fold[0][task]} for task in TASK_NAMES}


def evaluate_retrieval(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    image_index: np.ndarray,
    distance: str = "cosine",
    folds: int = 1,
    ties: str = DEFAULT,
    device: str | None = None,
) -> dict:
    """Image annotation (i2t) and image search (t2i) metrics under the tie rule ``ties``, averaged over
    ``folds`` image folds.

    Args:
        image_emb: (n_img, k); text_emb: (n_txt, k); image_index: (n_txt,) image of each caption.
        device: None (numpy) or a torch device for the similarity GEMM (see :func:`tie_counts`).
    Returns:
        ``{"image_annotation": {...}, "image_search": {...}}``, each as :func:`summarize` returns.
    """
    return evaluate_with_curves(image_emb, text_emb, image_index, distance, folds, ties, k_max=0, device=device)[0]


def evaluate_with_curves(
    image_emb,
    text_emb,
    image_index,
    distance: str = "cosine",
    folds: int = 1,
    ties: str = DEFAULT,
    k_max: int = 50,
    device: str | None = None,
) -> tuple[dict, dict]:
    """:func:`evaluate_retrieval`'s metrics and, from the same counts, the R@1..R@k_max curves.

    Returns:
        (metrics, curves): curves is ``{"image_annotation": [R@1..R@k_max], "image_search": [...]}``
        averaged over folds (empty lists when ``k_max`` is 0).
    """
    check_rule(ties)
    per_fold = fold_counts(image_emb, text_emb, image_index, distance, folds, device)
    metrics = _fold_mean([dict(zip(TASK_NAMES, (summarize(c, ties) for c in r[:2]))) for r in per_fold])
    if not k_max:
        return metrics, {task: [] for task in TASK_NAMES}
    return metrics, dict(zip(TASK_NAMES, fold_curves(per_fold, k_max, ties).tolist()))


def fold_curves(per_fold: list[tuple], k_max: int = 50, ties: str = DEFAULT) -> np.ndarray:
    """(2, k_max) R@1..R@k_max of both directions averaged over folds (:func:`fold_counts` or
    :func:`fold_ranks` output; entries past the first two, such as the degenerate masks, are ignored)."""
    return np.mean([[recall_curve(r0, k_max, ties) for r0 in fold[:2]] for fold in per_fold], axis=0)
