"""Each query's top-K retrieved items (what a run's failure views show without its model), read from the
evaluation's own score blocks (:mod:`cca_bench.topk`): no second similarity pass, no full sort.

Conventions (PROTOCOLS.md): image annotation (i2t) queries are images over the captions, image search (t2i)
queries are captions over the images; with ``folds`` (COCO 1k) a query retrieves only from its own fold, as its
rank was computed. Scores are those of the evaluation's GEMM blocks (as :func:`cca_bench.metrics.similarity`
gives them, copies of an item scored alike). Items are listed best first, equal scores by position, and the K
kept are exactly the first K of that order (ties at the K-th score included): deterministic.
"""

from __future__ import annotations

import numpy as np

TOP_K = 10  # retrieved items kept per query in a run's ranks file (``i2t_top10``, ``t2i_top10``)
BLOCK_IMAGES = 2048  # images per similarity block: (block, n_captions) float32 scores held at once


def keep_top(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row of (q, n) scores and their ids (q, n), unordered (argpartition)."""
    if scores.shape[1] <= k:
        return scores, ids
    cols = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(scores, cols, 1), np.take_along_axis(ids, cols, 1)


def best_first(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (scores, ids) ordered by score, highest first, equal scores by id."""
    order = np.lexsort((ids, -scores), axis=-1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def top_items(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    image_index: np.ndarray,
    distance: str = "cosine",
    folds: int = 1,
    k: int = TOP_K,
    block: int = BLOCK_IMAGES,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k retrieved items of every query, from the evaluation's own score blocks
    (:func:`cca_bench.metrics.fold_counts` with ``top``; :mod:`cca_bench.topk`). A run's evaluation takes them
    from its ranking pass (:func:`fold_top_lists`) instead of calling this.

    Args:
        image_emb: (n_img, d); text_emb: (n_txt, d); image_index: (n_txt,) image of each caption.
        folds: consecutive equal image folds (:func:`cca_bench.metrics.fold_slices`); each query retrieves
            within its fold.
    Returns:
        (i2t_top (n_img, k) caption positions, t2i_top (n_txt, k) image positions), int32 positions in the
        whole split, best first (equal scores by position), -1 where the query's fold holds fewer than k items.
    """
    from cca_bench.metrics import fold_counts

    per_fold = fold_counts(image_emb, text_emb, image_index, distance, folds, top=k, block=block)
    return fold_top_lists(per_fold, image_index, image_emb.shape[0])  # dense or scipy CSR rows


def fold_top_lists(per_fold: list[tuple], image_index: np.ndarray, n_img: int) -> tuple[np.ndarray, np.ndarray]:
    """(i2t_top (n_img, k), t2i_top (n_txt, k)) int32 from :func:`cca_bench.metrics.fold_counts` output taken
    with ``top=k`` (entries 4 and 5 of each fold: split positions already)."""
    from cca_bench.metrics import fold_slices

    image_index = np.asarray(image_index, dtype=np.int64)
    k = per_fold[0][4].shape[1]
    i2t = np.full((n_img, k), -1, dtype=np.int32)
    t2i = np.full((len(image_index), k), -1, dtype=np.int32)
    for images, fold in zip(fold_slices(n_img, len(per_fold)), per_fold):
        caps = np.flatnonzero((image_index >= images[0]) & (image_index <= images[-1]))
        i2t[images], t2i[caps] = fold[4], fold[5]
    return i2t, t2i


def sample_and_worst(rng: np.random.Generator, ranks: np.ndarray, n_sample: int, n_worst: int):
    """(positions of ``n_sample`` queries drawn with ``rng``, in query order; positions of the ``n_worst``
    queries of largest rank, worst first, ties by position) among queries whose ranks are ``ranks`` (n_q,).
    The same ``rng`` seed and query count draw the same sample for every run of a split."""
    sample = np.sort(rng.choice(len(ranks), min(n_sample, len(ranks)), replace=False))
    return sample, np.argsort(-np.asarray(ranks), kind="stable")[:n_worst]


def stored_examples(
    i2t: np.ndarray,
    t2i: np.ndarray,
    image_index: np.ndarray,
    top: tuple,
    k: int = 5,
    n_sample: int = 8,
    n_worst: int = 5,
    seed: int = 0,
) -> dict:
    """Qualitative examples of a stored run, from its 0-based ranks and top-10 (no model needed).

    Args:
        i2t: (n_img,) 0-based ranks (floats under the expected-rank tie rule), -1 for images without captions;
        t2i: (n_txt,); image_index: (n_txt,);
        top: (i2t_top (n_img, 10), t2i_top (n_txt, 10)) of :func:`top_items`.
    Returns:
        As :func:`cca_bench.search.retrieval_examples` (the same queries for the same ``seed``), each entry
        ``{"query", "rank" (1-based), "hits" (up to k positions), "scores": None}``.
    """
    queries = {"image_annotation": np.flatnonzero(np.asarray(i2t) >= 0), "image_search": np.arange(len(t2i))}
    ranks1 = {"image_annotation": np.asarray(i2t) + 1, "image_search": np.asarray(t2i) + 1}
    rng, out = np.random.default_rng(seed), {}
    for (task, q), hits in zip(queries.items(), top):
        picks = sample_and_worst(rng, ranks1[task][q], n_sample, n_worst)
        out[task] = {
            name: [
                {
                    "query": int(j),
                    "rank": float(ranks1[task][j]),
                    "hits": [int(h) for h in hits[j, :k] if h >= 0],
                    "scores": None,
                }
                for j in q[pos]
            ]
            for name, pos in zip(("sample", "worst"), picks)
        }
    return out


def contrast(a, b, n: int = 5) -> dict:
    """The queries where run A succeeds and run B fails most, and the reverse, from two runs' ranks on the same
    images (:class:`cca_bench.stats.QueryRanks`; the first seed of each).

    Ranks are each run's under its own tie rule (:meth:`~cca_bench.stats.QueryRanks.rank`: the expected rank
    under a random order of tied items by default, so they may end in .5). A query counts for A when A ranks its
    ground truth better; the queries are ordered by how much better, as
    log((r_B) / (r_A)) of the 1-based ranks (rank 1 vs 712 before 300 vs 1000), largest first, ties by query
    position. Returns ``{task: {"a_wins": [(query, r_A, r_B)], "b_wins": [(query, r_B, r_A)]}}``, at most
    ``n`` each, ranks 1-based floats; images without captions are no annotation queries.
    """
    from cca_bench.stats import check_same_images

    check_same_images(a, b)
    out = {}
    for task, side in (("image_annotation", "i2t"), ("image_search", "t2i")):
        ra, rb = a.rank(side)[0], b.rank(side)[0]  # 0-based ranks under each run's tie rule (expected ranks)
        q = np.flatnonzero(ra >= 0)
        gain = np.log1p(rb[q]) - np.log1p(ra[q])  # log(r_B / r_A) of the 1-based ranks
        out[task] = {}
        for name, sign, (r1, r2) in (("a_wins", 1, (ra, rb)), ("b_wins", -1, (rb, ra))):
            order = np.argsort(-sign * gain, kind="stable")
            keep = order[sign * gain[order] > 0][:n]
            out[task][name] = [(int(q[i]), float(r1[q[i]]) + 1, float(r2[q[i]]) + 1) for i in keep]
    return out
