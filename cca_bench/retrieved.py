"""Each query's top-K retrieved items (what a run's failure views show without its model): one similarity block
of images at a time, ``argpartition`` along both axes of it, no full sort.

Conventions (PROTOCOLS.md): image annotation (i2t) queries are images over the captions, image search (t2i)
queries are captions over the images; with ``folds`` (COCO 1k) a query retrieves only from its own fold, as its
rank was computed. Scores are those of :func:`cca_bench.metrics.similarity`. Items are listed best first; items
of equal score by position. Where several items tie at the K-th score, which of them are kept is not specified
(``argpartition``), as in :func:`cca_bench.search.top_k`.
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


def top_items(image_emb: np.ndarray, text_emb: np.ndarray, image_index: np.ndarray, distance: str = "cosine",
              folds: int = 1, k: int = TOP_K, block: int = BLOCK_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """Top-k retrieved items of every query.

    Args:
        image_emb: (n_img, d); text_emb: (n_txt, d); image_index: (n_txt,) image of each caption.
        folds: consecutive equal image folds (:func:`cca_bench.metrics.fold_slices`); each query retrieves
            within its fold.
    Returns:
        (i2t_top (n_img, k) caption positions, t2i_top (n_txt, k) image positions), int32 positions in the
        whole split, best first, -1 where the query's fold holds fewer than k items.
    """
    from cca_bench.metrics import fold_slices

    image_index = np.asarray(image_index, dtype=np.int64)
    i2t = np.full((image_emb.shape[0], k), -1, dtype=np.int32)  # dense arrays or scipy CSR rows alike
    t2i = np.full((text_emb.shape[0], k), -1, dtype=np.int32)
    for images in fold_slices(image_emb.shape[0], folds):
        caps = np.flatnonzero((image_index >= images[0]) & (image_index <= images[-1]))
        if not len(caps):
            continue
        a, b = _fold_top(image_emb[images], text_emb[caps], distance, k, block)
        i2t[images, : a.shape[1]] = caps[a]
        t2i[caps, : b.shape[1]] = images[b]
    return i2t, t2i


def _fold_top(ims: np.ndarray, txt: np.ndarray, distance: str, k: int, block: int):
    """(rows' top-k caption positions (n_img, <=k), columns' top-k image positions (n_txt, <=k)), local to the
    fold, best first. One GEMM per image block serves both directions; the captions' running best are merged
    with each block's (k of the block, k kept)."""
    from cca_bench.metrics import prepare, similarity

    metric = "dot" if distance == "cosine" else distance
    ims, txt = prepare(ims, distance), prepare(txt, distance)  # cosine: normalised once, then dot products
    best_s = np.empty((txt.shape[0], 0), np.float32)
    best_i = np.empty((txt.shape[0], 0), np.int64)
    rows = []
    for s0 in range(0, ims.shape[0], block):
        s = similarity(ims[s0 : s0 + block], txt, metric)  # (b, n_txt)
        cols = np.broadcast_to(np.arange(s.shape[1]), s.shape)
        rows.append(best_first(*keep_top(s, cols, k))[1])
        col_s, col_i = keep_top(s.T, np.broadcast_to(np.arange(s0, s0 + len(s)), s.T.shape), k)
        best_s, best_i = keep_top(np.concatenate([best_s, col_s], 1), np.concatenate([best_i, col_i], 1), k)
    return np.concatenate(rows), best_first(best_s, best_i)[1]


def sample_and_worst(rng: np.random.Generator, ranks: np.ndarray, n_sample: int, n_worst: int):
    """(positions of ``n_sample`` queries drawn with ``rng``, in query order; positions of the ``n_worst``
    queries of largest rank, worst first, ties by position) among queries whose ranks are ``ranks`` (n_q,).
    The same ``rng`` seed and query count draw the same sample for every run of a split."""
    sample = np.sort(rng.choice(len(ranks), min(n_sample, len(ranks)), replace=False))
    return sample, np.argsort(-np.asarray(ranks), kind="stable")[:n_worst]


def stored_examples(i2t: np.ndarray, t2i: np.ndarray, image_index: np.ndarray, top: tuple, k: int = 5,
                    n_sample: int = 8, n_worst: int = 5, seed: int = 0) -> dict:
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
        out[task] = {name: [{"query": int(j), "rank": float(ranks1[task][j]),
                             "hits": [int(h) for h in hits[j, :k] if h >= 0], "scores": None} for j in q[pos]]
                     for name, pos in zip(("sample", "worst"), picks)}
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
