"""The library's evaluation face: retrieval metrics, per-query ranks, image-level intervals and paired tests.

Thin, typed entry points over :mod:`cca_bench.metrics` (ranking, PROTOCOLS.md's conventions) and
:mod:`cca_bench.stats` (the image-level bootstrap and the paired tests), taking embeddings as numpy arrays or
torch tensors (a CUDA tensor's similarity GEMM runs on its GPU), so that they fit inside a training loop.
Embeddings: ``image_emb`` (n_images, k), ``text_emb`` (n_captions, k), ``image_index`` (n_captions,): the image
each caption describes (default: caption i describes image i).
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from cca_bench.stats import PAIRED_RESAMPLES, PAIRED_SEED, QueryRanks
from cca_bench.ties import DEFAULT

Embeddings = Any  # a numpy array, an array-like or a torch tensor (CPU or CUDA), shape (n, k)
RanksOrEmbeddings = Union[QueryRanks, "tuple[Embeddings, Embeddings, Any]"]


def _as_numpy(a) -> tuple[np.ndarray, str | None]:
    """(numpy copy or view, device of the GEMM: the tensor's CUDA device, else None) without importing torch
    for numpy input."""
    if type(a).__module__.split(".")[0] == "torch":
        device = str(a.device) if a.device.type != "cpu" else None
        return a.detach().float().cpu().numpy(), device
    return np.asarray(a), None


def retrieval_ranks(
    image_emb: Embeddings,
    text_emb: Embeddings,
    image_index=None,
    distance: str = "cosine",
    folds: int = 1,
    ties: str = DEFAULT,
) -> QueryRanks:
    """Per-query 0-based ranks of image annotation (i2t) and image search (t2i), as a
    :class:`cca_bench.stats.QueryRanks` (what :func:`bootstrap_intervals` and :func:`paired_test` take).

    ``folds``: consecutive equal image folds ranked apart (COCO 1k: 5); ``ties``: the tie rule, "expected"
    (default: the expected rank under a random order of tied items), "optimistic" or "pessimistic"
    (:mod:`cca_bench.ties`).
    """
    from cca_bench.metrics import fold_counts
    from cca_bench.stats import from_fold_ranks

    ims, dev_i = _as_numpy(image_emb)
    txt, dev_t = _as_numpy(text_emb)
    index = np.arange(len(txt)) if image_index is None else np.asarray(_as_numpy(image_index)[0], dtype=np.int64)
    per_fold = fold_counts(ims, txt, index, distance, folds, device=dev_i or dev_t)
    return from_fold_ranks(per_fold, index, len(ims), ties)


def _ranks(x: RanksOrEmbeddings) -> QueryRanks:
    return x if isinstance(x, QueryRanks) else retrieval_ranks(*x)


def evaluate_retrieval(
    image_emb: Embeddings,
    text_emb: Embeddings,
    image_index=None,
    distance: str = "cosine",
    folds: int = 1,
    ties: str = DEFAULT,
    intervals: bool = False,
    resamples: int = PAIRED_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Image annotation and image search metrics (R@1, R@5, R@10 in percent; median and mean rank, 1-based).

    Returns ``{"image_annotation": {...}, "image_search": {...}}``; with ``intervals=True`` also ``"rsum"``
    and ``"ci"``: percentile intervals at ``level`` from ``resamples`` image-level bootstrap resamples
    (each test image with all its captions; :func:`cca_bench.stats.bootstrap_ci`), one ``[lo, hi]`` per metric
    and for R-sum. Raises UserError (a ValueError) for NaN/inf embeddings.
    """
    from cca_bench.stats import bootstrap_ci, point_metrics, rsum_of

    ranks = retrieval_ranks(image_emb, text_emb, image_index, distance, folds, ties)
    out = point_metrics(ranks)
    if intervals:
        out |= {"rsum": float(rsum_of(out)), "ci": bootstrap_ci(ranks, resamples, level, seed)}
    return out


def bootstrap_intervals(
    ranks: RanksOrEmbeddings, resamples: int = PAIRED_RESAMPLES, level: float = 0.95, seed: int = 0
) -> dict:
    """Image-level bootstrap percentile intervals of every metric and of R-sum, from :func:`retrieval_ranks`
    output or an ``(image_emb, text_emb, image_index)`` tuple: ``{"image_annotation": {"R@1": [lo, hi], ...},
    "image_search": {...}, "rsum": [lo, hi]}``."""
    from cca_bench.stats import bootstrap_ci

    return bootstrap_ci(_ranks(ranks), resamples, level, seed)


def paired_test(
    a: RanksOrEmbeddings,
    b: RanksOrEmbeddings,
    metric: str = "rsum",
    resamples: int = PAIRED_RESAMPLES,
    seed: int = PAIRED_SEED,
    level: float = 0.95,
) -> dict:
    """Is A's ``metric`` different from B's on the same test images? Each of ``a``, ``b``: ranks from
    :func:`retrieval_ranks` or an ``(image_emb, text_emb, image_index)`` tuple.

    Returns ``{"metric", "delta" (A - B), "ci" (paired bootstrap), "p_value" (two-sided: sign-flip permutation
    over images; paired bootstrap for the median rank), "test", "n_images", "resamples", "level",
    "lower_is_better"}`` (:func:`cca_bench.stats.paired_test`). ``metric``: "rsum", "R@1" (both directions
    summed), "i2t:R@1", "t2i:median_rank", ...
    """
    from cca_bench import stats

    return stats.paired_test(_ranks(a), _ranks(b), metric, resamples, seed, level)
