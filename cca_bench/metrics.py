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
O(block x gallery) and the cost is one similarity GEMM plus two comparisons per score.
"""
from __future__ import annotations

import numpy as np

from cca_bench.errors import UserError

DISTANCES = ("cosine", "dot", "euclidean")
KS = (1, 5, 10)
TASK_NAMES = ("image_annotation", "image_search")  # i2t, t2i: the order ranks() returns


def prepare(emb: np.ndarray, distance: str) -> np.ndarray:
    """(n, k) embeddings -> float32 rows ready for a dot product under ``distance``.

    cosine: L2-normalised rows (a zero row stays zero). euclidean: rows augmented so that
    ``a' . b'`` ranks like ``-||a - b||^2`` within a query (see :func:`similarity`).
    """
    if distance not in DISTANCES:
        raise UserError(f"unknown distance {distance!r} (choose from {', '.join(DISTANCES)})")
    emb = np.asarray(emb, dtype=np.float32)
    if distance == "cosine":
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return emb / np.maximum(norms, 1e-12)
    return emb


def similarity(a: np.ndarray, b: np.ndarray, distance: str = "cosine") -> np.ndarray:
    """(n_a, k), (n_b, k) -> (n_a, n_b) scores, higher is closer.

    euclidean gives ``-||a_i - b_j||^2``.
    """
    pa, pb = prepare(a, distance), prepare(b, distance)
    s = pa @ pb.T
    if distance == "euclidean":
        s = 2 * s - (pa * pa).sum(1)[:, None] - (pb * pb).sum(1)[None, :]
    return s


def _count_above(s: np.ndarray, gt: np.ndarray, n_pos_tied: np.ndarray, ties: str) -> np.ndarray:
    """0-based ranks from a (b, n) score block, the ground-truth score per row and, for pessimistic
    ties, the number of positives whose score is >= gt (they do not count against the query)."""
    if ties == "optimistic":
        return (s > gt[:, None]).sum(1)
    return (s >= gt[:, None]).sum(1) - n_pos_tied


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
    and its columns add, for every caption, the block's images scoring above the caption's own image (whose
    score is a row-wise dot product; its own entry is excluded, so rounding cannot count it). Memory is
    O(block x n_txt).
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
    ims, txt = prepare(image_emb, distance), prepare(text_emb, distance)
    return _ranks_both(ims, txt, image_index, distance == "euclidean", ties, block, _scorer(txt, device))


def _scorer(txt: np.ndarray, device: str | None):
    """``q -> q @ txt.T`` (float32): numpy, or torch on ``device`` with ``txt`` moved there once."""
    if device is None:
        return lambda q: q @ txt.T
    import torch

    g = torch.from_numpy(txt).to(device)
    return lambda q: (torch.from_numpy(q).to(device) @ g.T).cpu().numpy()


def _ranks_both(ims, txt, image_index, euclid, ties, block, score):
    ims_sq = (ims * ims).sum(1) if euclid else None
    txt_sq = (txt * txt).sum(1) if euclid else None
    gt_t2i = np.einsum("ij,ij->i", txt, ims[image_index])
    if euclid:  # -||t - i||^2 up to the caption's own norm, constant along its ranking
        gt_t2i = 2 * gt_t2i - ims_sq[image_index]
    r_i2t = np.full(len(ims), -1, dtype=np.int64)
    r_t2i = np.zeros(len(txt), dtype=np.int64)
    for s0 in range(0, len(ims), block):
        p = score(ims[s0 : s0 + block])
        r_i2t[s0 : s0 + len(p)] = _i2t_block(p if txt_sq is None else 2 * p - txt_sq, image_index, s0, ties)
        s = p if ims_sq is None else 2 * p - ims_sq[s0 : s0 + len(p), None]
        r_t2i += _t2i_block(s, gt_t2i, image_index, s0, ties)
    return r_i2t[np.bincount(image_index, minlength=len(ims)) > 0], r_t2i


def _block_positives(n_rows: int, image_index: np.ndarray, s0: int):
    """(rows, cols) of the ground-truth entries inside the score block of images s0 .. s0 + n_rows."""
    cols = np.flatnonzero((image_index >= s0) & (image_index < s0 + n_rows))
    return image_index[cols] - s0, cols


def _t2i_block(s, gt, image_index, s0, ties):
    """Per caption (column of s), how many of the block's images other than its own score above ``gt``
    (or tie it, for pessimistic ties)."""
    above = s > gt if ties == "optimistic" else s >= gt
    counts = above.view(np.uint8).sum(0, dtype=np.int64)
    rows, cols = _block_positives(len(s), image_index, s0)
    counts[cols] -= above[rows, cols]
    return counts


def _i2t_block(s, image_index, s0, ties):
    """0-based annotation ranks of the block's images (rows of s); -1 for images without captions."""
    rows, cols = _block_positives(len(s), image_index, s0)
    gt = np.full(len(s), -np.inf, dtype=s.dtype)
    np.maximum.at(gt, rows, s[rows, cols])
    n_pos_tied = np.bincount(rows[s[rows, cols] >= gt[rows]], minlength=len(s))
    return _count_above(s, gt, n_pos_tied, ties)


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
