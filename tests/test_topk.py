"""Top-k lists read from the evaluation's score blocks (cca_bench.topk via metrics.tie_counts(top=k)).

Integer embeddings under "dot" and "euclidean" give scores that are exact in float32 whatever the BLAS or
summation order, so the lists can be compared with a brute-force full sort exactly, ties included.
"""

import numpy as np
import pytest

from cca_bench import metrics, topk


def _brute_top(ims, txt, distance, k):
    """Reference: full similarity, each row sorted by (score desc, position asc), first k, -1 padded."""
    s = metrics.similarity(ims, txt, distance)

    def top(m):
        ids = np.broadcast_to(np.arange(m.shape[1]), m.shape)
        first = np.lexsort((ids, -m), axis=-1)[:, :k]
        return np.pad(first, ((0, 0), (0, k - first.shape[1])), constant_values=-1)

    return top(s), top(s.T)


def _tied_data(rng, span: int = 2):
    """Small-integer embeddings (many exact ties, copies of image 0), sizes that exercise the group-maxima
    thresholds (galleries many times k) and the short ones (fewer than k items)."""
    n, d = int(rng.integers(2, 300)), int(rng.integers(1, 5))
    ims = rng.integers(-span, span + 1, (n, d)).astype(np.float32)
    if span <= 2:  # copies of image 0 tie exactly; wide spans stay (mostly) untied
        ims[rng.integers(0, n, n // 3)] = ims[0]
    index = rng.integers(0, n, int(rng.integers(1, 400)))
    txt = rng.integers(-span, span + 1, (len(index), d)).astype(np.float32)
    return ims, txt, index


def test_top_lists_equal_a_full_sort_ties_included():
    """Randomised: both directions' top-k equal a brute-force sort, for any block size, with ties everywhere
    (``first_k``'s path that puts the runs of equal keys in item order). Planted bugs it caught: candidates
    taken strictly above the threshold (``np.greater`` in the earlier ``BlockTop._candidates``, and in
    ``TileTop.both``: a tie at the threshold is lost); equal scores ordered by position descending in
    ``first_k``; those runs left in the argsort's order; the running list of earlier blocks left out of the
    merge (``held`` all False, in the earlier collector)."""
    _check_against_full_sort(np.random.default_rng(5), span=2)


def test_top_lists_equal_a_full_sort_few_ties():
    """The same with scores that rarely tie (``first_k``'s one-key argsort path). Planted bug it caught: that
    path taking the sorted order reversed (``np.argsort(key)[::-1]``)."""
    _check_against_full_sort(np.random.default_rng(8), span=1000)


def _check_against_full_sort(rng, span: int) -> None:
    checked = 0
    for _ in range(40):
        ims, txt, index = _tied_data(rng, span)
        k = int(rng.integers(1, 12))
        for distance in ("dot", "euclidean"):
            if (ims == 0).all(1).all() or (txt == 0).all():
                continue
            try:
                got = metrics.tie_counts(ims, txt, index, distance, block=int(rng.integers(1, 200)), top=k)
            except metrics.UserError:  # every query degenerate (all-equal scores): nothing to compare
                continue
            want = _brute_top(ims, txt, distance, k)
            np.testing.assert_array_equal(got[4], want[0])
            np.testing.assert_array_equal(got[5], want[1])
            checked += 1
    assert checked > 40


def test_top_does_not_change_the_tie_counts():
    """The counts with top lists equal those without (the collector only reads the blocks; the annotation
    counts of rows whose best positive is at or above their top-k threshold come from the top-k candidates).
    Planted bugs it caught: the earlier ``BlockTop.add`` given the block BEFORE the counts and writing the
    euclidean shift into it in place; ``level`` from the candidates counted strictly above (``v > g``); rows
    below their threshold counted from the candidates (``gt >= thr - 1``); the first rows of the tile compared
    instead of the rows that need it (``s[: len(rest)]``)."""
    rng = np.random.default_rng(6)
    for _ in range(10):
        ims, txt, index = _tied_data(rng)
        for distance in ("cosine", "dot", "euclidean"):
            try:
                plain = metrics.tie_counts(ims, txt, index, distance, block=64)
            except metrics.UserError:
                continue
            with_top = metrics.tie_counts(ims, txt, index, distance, block=64, top=10)
            for a, b in zip(plain[:2], with_top[:2]):
                for field in ("above", "tied", "gt_tied"):
                    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_fold_top_lists_are_split_positions_within_the_fold():
    """With folds each list holds items of the query's own fold, as positions in the whole split. Planted bug
    it caught: fold-local positions returned (``_global`` skipped)."""
    rng = np.random.default_rng(7)
    ims = rng.integers(-3, 4, (40, 3)).astype(np.float32)
    index = np.repeat(np.arange(40), 2)
    txt = rng.integers(-3, 4, (80, 3)).astype(np.float32)
    per_fold = metrics.fold_counts(ims, txt, index, "dot", folds=2, top=5)
    for f, (lo, fold) in enumerate(zip((0, 20), per_fold)):
        want = _brute_top(ims[lo : lo + 20], txt[2 * lo : 2 * lo + 40], "dot", 5)
        np.testing.assert_array_equal(fold[4], want[0] + 2 * lo)
        np.testing.assert_array_equal(fold[5], want[1] + lo)


def _small_tiles(monkeypatch, rows: int) -> None:
    """Tiles of ``rows`` image rows in the one-pass evaluation (many tiles per block, as at COCO size)."""
    init = metrics._OnePass.__init__

    def wrapped(self, *args):
        init(self, *args)
        self.rows = rows

    monkeypatch.setattr(metrics._OnePass, "__init__", wrapped)


@pytest.mark.parametrize("gathered", [0.0, 1.0])
@pytest.mark.parametrize("cores", [1, 3])
def test_top_lists_from_many_small_tiles_on_several_workers(monkeypatch, cores, gathered):
    """Randomised, ties everywhere: lists collected tile by tile (tiles of 3 rows, blocks of 40 images, so the
    captions' bound comes from many disjoint row groups, merged as the rows seen double) by 1 or 3 workers
    equal a brute-force sort, in both the shared-scores path (dot: ``TileTop.both``) and the separate one
    (euclidean: ``rows`` / ``columns``), and the tie counts, partly counted from the candidates, equal those
    without lists. Planted bugs it caught: a caption counted from the candidates though its own score lies
    below its bound (``ge >= bound - 1``); those counts of "above" taken at or above (``v >= gt``); the open
    captions of the bracketed part added to the wrong ``reach`` entries (no shift by c); the first block's
    rows grouped again after its prepass (a row's maximum counted twice lifts the bound above the true k-th
    score: a tied entry is lost); the candidates kept strictly above the bound after a merge (``score >
    bound``); a tile's candidates taken strictly above the bound (``np.greater``); the open captions' "above"
    dropped (caught with every share of open captions gathered, ``OPEN_COLUMNS_GATHERED`` 1: the default
    1/16 rarely gathers any on data this small)."""
    _small_tiles(monkeypatch, 3)
    monkeypatch.setattr(metrics, "OPEN_COLUMNS_GATHERED", gathered)
    monkeypatch.setattr(metrics, "available_cores", lambda: cores)
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(12):
        n = int(rng.integers(60, 200))
        ims = rng.integers(-2, 3, (n, 3)).astype(np.float32)
        ims[rng.integers(0, n, n // 4)] = ims[0]
        index = rng.integers(0, n, int(rng.integers(50, 300)))
        txt = rng.integers(-2, 3, (len(index), 3)).astype(np.float32)
        k = int(rng.integers(1, 12))
        for distance in ("dot", "euclidean"):
            try:
                got = metrics.tie_counts(ims, txt, index, distance, block=40, top=k)
            except metrics.UserError:
                continue
            want = _brute_top(ims, txt, distance, k)
            np.testing.assert_array_equal(got[4], want[0])
            np.testing.assert_array_equal(got[5], want[1])
            plain = metrics.tie_counts(ims, txt, index, distance, block=40)
            for a, b in zip(plain[:2], got[:2]):
                for field in ("above", "tied", "gt_tied"):
                    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
            checked += 1
    assert checked > 15


def test_caption_candidates_are_pruned_and_stay_exact(monkeypatch):
    """When the kept caption candidates outgrow 2 k n_txt the bound is merged early and the candidates below it
    dropped (memory stays O(k n_txt)): still the brute-force lists. The pruning is forced here by a collector
    whose first-block bound is skipped. Planted bug it caught: the pruned candidates replaced by the
    survivors of the last tile only."""
    monkeypatch.setattr(topk.TileTop, "needs_prepass", property(lambda self: False))
    _small_tiles(monkeypatch, 2)
    merges = []
    real = topk.TileTop._merge

    def counted(self):
        merges.append(self.n_cands)
        real(self)

    monkeypatch.setattr(topk.TileTop, "_merge", counted)
    rng = np.random.default_rng(12)
    ims = rng.integers(-3, 4, (300, 3)).astype(np.float32)
    index = np.repeat(np.arange(300), 1)[:200]
    txt = rng.integers(-3, 4, (200, 3)).astype(np.float32)
    got = metrics.tie_counts(ims, txt, index, "dot", block=30, top=3)
    want = _brute_top(ims, txt, "dot", 3)
    np.testing.assert_array_equal(got[4], want[0])
    np.testing.assert_array_equal(got[5], want[1])
    assert max(merges) > 2 * 3 * 200  # the early merge ran


@pytest.mark.parametrize("n_queries", [2, 7, 1000])
def test_halves_sorted_at_once_give_the_one_sort(monkeypatch, n_queries):
    """``first_k_halves`` (the captions' lists, two halves of the captions in two threads) equals ``first_k``
    on candidates with many tied scores, items out of order and queries without candidates. Planted bugs it
    caught: the upper half's queries not shifted back by the cut; the halves concatenated in reverse order."""
    monkeypatch.setattr(topk, "SPLIT_CANDIDATES", 0)
    rng = np.random.default_rng(n_queries)
    m = 20 * n_queries
    query = rng.integers(0, n_queries, m)
    query[query == n_queries - 1] = 0  # the last query has no candidate: a row of -1
    score = rng.integers(-3, 4, m).astype(np.float32)
    item = rng.permutation(10 * m)[:m]
    for k in (1, 5, 30):
        want = topk.first_k(query, score, item, n_queries, k)
        np.testing.assert_array_equal(topk.first_k_halves(query, score, item, n_queries, k), want)
        assert (want[-1] == -1).all()
