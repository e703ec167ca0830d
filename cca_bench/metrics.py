"""Retrieval metrics for image annotation (i2t) and image search (t2i), after Kiros et al. 2014 / VSE++.

Conventions (see PROTOCOLS.md):
- ranks are 1-based; an annotation query (an image) takes the rank of its BEST-ranked caption;
- R@K is the percentage of queries with rank <= K; median rank = floor(median(r0)) + 1 and
  mean rank = mean(r0) + 1, with r0 the 0-based ranks;
- ties: ``ties="optimistic"`` (default, the protocol's rule) counts only items with a STRICTLY higher
  score than the ground truth against it; ``ties="pessimistic"`` also counts every other item whose score
  equals it. Images without captions are not annotation queries.
- ``folds=5`` splits the images into 5 consecutive folds (COCO 1k protocol) and averages every metric.
The similarity matrix is never held whole: images go in blocks, each block's scores (one GEMM, on a torch
device when asked) serve both directions, and only the counts above the ground truth are kept, so memory is
O(block x gallery) and the cost is one similarity GEMM plus three comparisons per score. Every ground-truth
score is read from the GEMM entry it is compared with (never recomputed), so ties follow the rule bit for bit.
Nothing is scored from NaN/inf embeddings, and queries whose scores are all equal are refused (UserError).
"""
from __future__ import annotations

import numpy as np

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
    if not np.isfinite(emb).all():
        bad = int(np.count_nonzero(~np.isfinite(emb).all(axis=-1))) if emb.ndim == 2 else "some"
        raise UserError(f"{name} contain NaN or infinite values ({bad} rows; a damaged model file or a parameter "
                        "out of range?): refusing to score them")
    if distance == "cosine":  # norms in float64: a float32 square of a large entry would overflow
        norms = np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
        return (emb / np.maximum(norms, 1e-12)).astype(np.float32)
    return emb


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
) -> tuple[np.ndarray, np.ndarray]:
    """0-based ranks for both directions, from ONE similarity GEMM taken in blocks of ``block`` images.

    Args:
        image_emb: (n_img, k); text_emb: (n_txt, k); image_index: (n_txt,) caption j describes image
            ``image_index[j]``.
        device: None for numpy; a torch device (e.g. "cuda") runs each block's GEMM there.
    Returns:
        (r_i2t, r_t2i): (n_img_with_captions,) and (n_txt,) int64 0-based ranks.
    Each (block, n_txt) score block serves both directions: its rows rank captions for the block's images,
    and its columns add, for every caption, the block's images scoring above the caption's own image. Every
    comparison is with the ground truth's score as the same GEMM gives it (see :class:`_SearchCounts`), so
    the tie rule holds exactly. Memory is O(block x n_txt).
    Raises UserError for NaN/inf embeddings, scores that could overflow, and degenerate queries (all of a
    query's scores equal, e.g. an all-zero embedding, in a gallery of 2 or more).
    """
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
    ims, txt = prepare(image_emb, distance, "image embeddings"), prepare(text_emb, distance, "caption embeddings")
    check_score_range(ims, txt, distance)
    order = np.argsort(first_equal(ims), kind="stable")  # copies of an image side by side, in one block
    where = np.empty_like(order)
    where[order] = np.arange(len(order))
    r_i2t, r_t2i = _ranks_both(ims[order], txt, where[image_index], distance == "euclidean", ties, block,
                               _scorer(txt, device))
    r_i2t = r_i2t[where]
    return r_i2t[r_i2t >= 0], r_t2i


def first_equal(a: np.ndarray) -> np.ndarray:
    """(n,) for the rows of ``a`` (n, k): the index of the first row equal to it bit for bit (itself if unique).

    -0.0 and 0.0 count as equal.
    """
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.ascontiguousarray(a + a.dtype.type(0)).view(np.dtype((np.void, a.dtype.itemsize * a.shape[1])))
    _, first, inverse = np.unique(rows.ravel(), return_index=True, return_inverse=True)
    return first[inverse.ravel()]


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


def _ranks_both(ims, txt, image_index, euclid, ties, block, score):
    """Both directions' 0-based ranks over the image blocks; see :func:`ranks` and :class:`_SearchCounts`.

    Returns (r_i2t (n_img,), -1 for images without captions; r_t2i (n_txt,)). Copies of an image must be
    adjacent (``ranks`` sorts them so). BLAS kernels round one dot product differently at different places
    of the output (OpenBLAS on AVX-512: rows 0-5 and 6-15 of a tile differ in the last bit), so every copy
    of an image or caption gets its first copy's scores: identical items tie exactly, as the rule says.
    The score block and one boolean mask are allocated once and reused (fresh 200 MB arrays per block cost
    page faults), and masks are counted in 16/32-bit integers (twice the SIMD width of int64).
    """
    img_src, txt_src = first_equal(ims), first_equal(txt)
    dup_cols = np.flatnonzero(txt_src != np.arange(len(txt)))
    ims_sq = (ims * ims).sum(1)[img_src] if euclid else None
    txt_sq = (txt * txt).sum(1)[txt_src] if euclid else None
    bounds = _block_bounds(img_src, block)
    rows = max((e - s for s, e in bounds), default=0)
    scores, mask = np.empty((rows, len(txt)), dtype=np.float32), np.empty((rows, len(txt)), dtype=bool)
    widen = 2.0
    while True:
        t2i = _SearchCounts(ims, txt, image_index, ims_sq, ties, widen)
        r_i2t = np.full(len(ims), -1, dtype=np.int64)
        degenerate_i2t = 0
        for s0, e in bounds:
            p = score(ims[s0:e], scores[: e - s0])
            src = img_src[s0:e] - s0
            copies = np.flatnonzero(src != np.arange(e - s0))
            p[copies] = p[src[copies]]
            p[:, dup_cols] = p[:, txt_src[dup_cols]]
            s = p if txt_sq is None else 2 * p - txt_sq
            r_i2t[s0:e], n_flat = _i2t_block(s, image_index, s0, ties, mask[: e - s0])
            degenerate_i2t += n_flat
            t2i.add(p if ims_sq is None else 2 * p - ims_sq[s0:e, None], s0, mask[: e - s0])
        r_t2i, needed = t2i.ranks()
        if r_t2i is not None:
            break
        widen *= 4 * needed  # the GEMM rounded beyond the float32 bound (e.g. TF32 on a GPU): widen, redo
    _refuse_degenerate(degenerate_i2t, t2i.n_degenerate)
    return r_i2t, r_t2i


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


def _refuse_degenerate(n_i2t: int, n_t2i: int) -> None:
    """A query whose scores are all equal has no ranking: its rank would be the tie rule's, not the model's."""
    if n_i2t or n_t2i:
        raise UserError(
            f"{n_i2t} image queries and {n_t2i} caption queries score every item of the gallery equally "
            "(e.g. all-zero or identical embeddings): their ranks would be the tie rule's, not the model's")


def _block_positives(n_rows: int, image_index: np.ndarray, s0: int):
    """(rows, cols) of the ground-truth entries inside the score block of images s0 .. s0 + n_rows."""
    cols = np.flatnonzero((image_index >= s0) & (image_index < s0 + n_rows))
    return image_index[cols] - s0, cols


def _count(mask: np.ndarray, axis: int) -> np.ndarray:
    """True entries of a boolean mask along ``axis``, summed in the narrowest safe integer type."""
    dtype = np.int16 if mask.shape[axis] < 2**15 else np.int32 if mask.shape[axis] < 2**31 else np.int64
    return mask.view(np.uint8).sum(axis, dtype=dtype)


class _SearchCounts:
    """Image-search (t2i) ranks, counted block by block against each caption's own score AS THE GEMM GIVES IT.

    A caption's own score lives in its image's block, which may come after other blocks. So every block is
    compared with a bracket [lo, hi] around a provisional own score (a row-wise dot product) that holds any
    float32 rounding of it: a dot product of k terms is within ``gamma_k sum |t_i x_i|``, gamma_k =
    k u / (1 - k u), u = 2^-24, of the exact value in any summation order (Higham, *Accuracy and Stability of
    Numerical Algorithms*, 2nd ed. 2002, eq. 3.5), so the einsum and the GEMM are within twice that (widened
    2x). Scores above hi count against the caption, scores below lo do not; the few inside (near-ties and
    exact duplicates) are kept as (caption, score) and compared with the exact own score, read from the GEMM
    entry itself, at the end. So the tie rule holds bit for bit: an exact duplicate of the right image counts
    only under pessimistic ties. Memory: the near-ties, O(n_txt) on real data. An own score outside its
    bracket (a GEMM less precise than float32, e.g. TF32) makes :meth:`ranks` ask for a wider one.
    """

    def __init__(self, ims, txt, image_index, ims_sq, ties: str, widen: float):
        own = ims[image_index]
        mid = np.einsum("ij,ij->i", txt, own).astype(np.float64)
        k = txt.shape[1]
        gamma = k * 2.0**-24 / (1 - k * 2.0**-24)
        err = widen * 2 * gamma * np.einsum("ij,ij->i", np.abs(txt), np.abs(own), dtype=np.float64)
        shift = 0.0 if ims_sq is None else ims_sq[image_index].astype(np.float64)
        scale = 1.0 if ims_sq is None else 2.0  # euclidean: 2 t.x - |x|^2, rounded once more
        self.mid = scale * mid - shift
        self.err = scale * err + widen * 2.0**-23 * (np.abs(scale * mid) + np.abs(shift))
        self.lo = np.nextafter((self.mid - self.err).astype(np.float32), np.float32(-np.inf))
        self.hi = np.nextafter((self.mid + self.err).astype(np.float32), np.float32(np.inf))
        self.image_index, self.ties, self.n_img = image_index, ties, len(ims)
        self.own = np.zeros(len(txt), dtype=np.float32)
        self.count = np.zeros(len(txt), dtype=np.int64)
        self.near_cols, self.near_vals = [], []
        self.n_degenerate = 0

    def add(self, s: np.ndarray, s0: int, mask: np.ndarray) -> None:
        """Count one (b, n_txt) score block of the images s0 .. s0 + b (``mask``: a (b, n_txt) bool buffer)."""
        rows, cols = _block_positives(len(s), self.image_index, s0)
        own = s[rows, cols]
        self.own[cols] = own
        above = _count(np.greater(s, self.hi, out=mask), 0)
        near = _count(np.greater_equal(s, self.lo, out=mask), 0) - above
        self.count += above
        near[cols] -= (own >= self.lo[cols]) & (own <= self.hi[cols])
        near_cols = np.flatnonzero(near > 0)
        if near_cols.size:
            sub = s[:, near_cols]
            inside = (sub >= self.lo[near_cols]) & (sub <= self.hi[near_cols])
            own_row = self.image_index[near_cols] - s0
            mine = (own_row >= 0) & (own_row < len(s))
            inside[own_row[mine], np.flatnonzero(mine)] = False
            r, c = np.nonzero(inside)
            self.near_cols.append(near_cols[c])
            self.near_vals.append(sub[r, c])

    def ranks(self) -> tuple[np.ndarray | None, float]:
        """(0-based ranks, 1.0), or (None, how much wider the bracket must be) when an own score fell outside."""
        outside = (self.own < self.lo) | (self.own > self.hi)
        if outside.any():
            off = np.abs(self.own[outside] - self.mid[outside]) / np.maximum(self.err[outside], 1e-300)
            return None, float(max(off.max(), 2.0))
        cols = np.concatenate([np.zeros(0, dtype=np.int64), *self.near_cols])
        vals = np.concatenate([np.zeros(0, dtype=np.float32), *self.near_vals])
        own = self.own[cols]
        counted = vals > own if self.ties == "optimistic" else vals >= own
        if self.n_img > 1:  # degenerate: every other image scores exactly the own score
            n_equal = np.bincount(cols[vals == own], minlength=len(self.own))
            self.n_degenerate = int(np.count_nonzero(n_equal == self.n_img - 1))
        return self.count + np.bincount(cols[counted], minlength=len(self.own)), 1.0


def _i2t_block(s, image_index, s0, ties, mask):
    """0-based annotation ranks of the block's images (rows of s; -1 for images without captions) and how
    many of them score every caption equally (degenerate queries). Only items with a strictly higher score
    than the best positive count (optimistic), or also the other items tied with it (pessimistic)."""
    rows, cols = _block_positives(len(s), image_index, s0)
    gt = np.full(len(s), -np.inf, dtype=s.dtype)
    np.maximum.at(gt, rows, s[rows, cols])
    if ties == "optimistic":
        r = _count(np.greater(s, gt[:, None], out=mask), 1).astype(np.int64)
        flat = r == 0  # nothing above the best positive: degenerate if nothing below either
    else:
        n_pos = np.bincount(rows, minlength=len(s))
        n_pos_tied = np.bincount(rows[s[rows, cols] >= gt[rows]], minlength=len(s))
        r = _count(np.greater_equal(s, gt[:, None], out=mask), 1) - n_pos_tied
        flat = r == s.shape[1] - n_pos  # every other caption ties or beats it: degenerate if none beats it
    return np.where(gt > -np.inf, r, -1), _n_flat(s, gt, np.flatnonzero(flat & (gt > -np.inf)), ties)


def _n_flat(s: np.ndarray, gt: np.ndarray, cand: np.ndarray, ties: str) -> int:
    """How many of the rows ``cand`` of s hold the single value ``gt`` (from the rows alone when they are
    few). Optimistic candidates have nothing above gt, so their minimum decides; pessimistic ones need both."""
    if not cand.size or s.shape[1] < 2:
        return 0
    if cand.size < len(s) // 4:
        s, gt, cand = s[cand], gt[cand], slice(None)
    flat = s.min(1) == gt
    if ties != "optimistic":
        flat &= s.max(1) == gt
    return int(np.count_nonzero(flat[cand]))


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
               ties: str = "optimistic", device: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(r_i2t, r_t2i) 0-based ranks of each of ``folds`` consecutive image folds (see :func:`ranks`).

    Args:
        image_emb: (n_img, k); text_emb: (n_txt, k); image_index: (n_txt,) image of each caption.
    """
    image_emb, text_emb = np.asarray(image_emb), np.asarray(text_emb)
    image_index = np.asarray(image_index, dtype=np.int64)
    if len(image_index) != len(text_emb) or (len(image_index) and (image_index.min() < 0 or image_index.max() >= len(image_emb))):
        raise UserError(f"image_index must give an image in 0..{len(image_emb) - 1} for each of the {len(text_emb)} captions")
    out = []
    for images in fold_slices(len(image_emb), folds):
        caps = np.flatnonzero((image_index >= images[0]) & (image_index <= images[-1]))
        out.append(ranks(image_emb[images], text_emb[caps], image_index[caps] - images[0], distance, ties,
                         device=device))
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
    curves = [[recall_curve(r0, k_max) for r0 in r] for r in per_fold]  # fold x task x K
    return metrics, dict(zip(TASK_NAMES, np.mean(curves, axis=0).tolist()))
