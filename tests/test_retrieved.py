"""Each query's top-10 retrieved items (cca_bench.retrieved), as a run's ranks file keeps them."""

import numpy as np
import pytest

from cca_bench.metrics import fold_ranks, similarity
from cca_bench.retrieved import top_items


def brute_force(image_emb, text_emb, image_index, distance, folds, k=10):
    """Every query's whole score row sorted (stable argsort), within its fold, first k positions, -1 padded."""
    n_img = len(image_emb)
    size = n_img // folds
    i2t, t2i = np.full((n_img, k), -1), np.full((len(text_emb), k), -1)
    for f in range(folds):
        images = np.arange(f * size, (f + 1) * size)
        caps = np.flatnonzero(np.isin(image_index, images))
        s = similarity(image_emb[images], text_emb[caps], distance).astype(np.float64)
        for r, i in enumerate(images):
            top = caps[np.argsort(-s[r], kind="stable")[:k]]
            i2t[i, : len(top)] = top
        for c, j in enumerate(caps):
            top = images[np.argsort(-s[:, c], kind="stable")[:k]]
            t2i[j, : len(top)] = top
    return i2t, t2i


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
@pytest.mark.parametrize("folds", [1, 3])
def test_top10_equals_a_brute_force_argsort(distance, folds):
    """Planted bugs it caught: keeping only the last image block's best images for each caption (no merge of
    the running top-10 across blocks: block=7 here), positions local to the fold instead of the split's, and
    rows ordered worst first."""
    rng = np.random.default_rng(0)
    n_img = 24 if folds == 1 else 27
    image_index = np.sort(rng.integers(0, n_img, 70))
    image_index[:n_img] = np.arange(n_img)  # every image has a caption
    image_index.sort()
    ims, txt = rng.normal(size=(n_img, 6)), rng.normal(size=(70, 6))
    i2t, t2i = top_items(ims, txt, image_index, distance, folds, block=7)
    want_i2t, want_t2i = brute_force(ims, txt, image_index, distance, folds)
    assert i2t.dtype == t2i.dtype == np.int32
    assert i2t.shape == (n_img, 10) and t2i.shape == (70, 10)
    np.testing.assert_array_equal(i2t, want_i2t)
    np.testing.assert_array_equal(t2i, want_t2i)


def test_short_galleries_are_padded_with_minus_one_and_agree_with_the_ranks():
    """A fold of 4 images has only 4 to retrieve: the rest is -1. Each query's stored rank (fold_ranks) is the
    position of its first ground truth in its top-10 where it lies there. Planted bug it caught: padding with
    0 (a real image) instead of -1."""
    rng = np.random.default_rng(1)
    image_index = np.repeat(np.arange(8), 2)
    ims, txt = rng.normal(size=(8, 5)), rng.normal(size=(16, 5))
    i2t, t2i = top_items(ims, txt, image_index, "cosine", folds=2)
    assert (t2i[:, 4:] == -1).all() and (t2i[:, :4] >= 0).all()
    assert (i2t[:, 8:] == -1).all()
    for f, (r_i2t, r_t2i) in enumerate(fold_ranks(ims, txt, image_index, "cosine", folds=2)):
        for q, r in enumerate(r_t2i):
            j = f * 8 + q
            assert list(t2i[j]).index(image_index[j]) == r
        for q, r in enumerate(r_i2t):
            i = f * 4 + q
            first = min(p for p, c in enumerate(i2t[i]) if c >= 0 and image_index[c] == i)
            assert first == r


def test_contrast_lists_a_wins_and_b_wins_on_planted_ranks():
    """Planted ranks: A beats B most on caption 3 (1 vs 40), then caption 0 (2 vs 20); B beats A on caption 5
    (1 vs 9); equal ranks are nobody's win. Planted bugs it caught: ordering by the difference of ranks (300 vs
    1000 would come before 1 vs 712), swapping the two lists, and listing ties as wins."""
    from cca_bench.retrieved import contrast
    from cca_bench.stats import query_ranks

    image_index = np.array([0, 0, 1, 1, 2, 2])
    a = query_ranks([0, 5, 2], [1, 3, 0, 0, 299, 8], image_index)
    b = query_ranks([0, 1, 30], [19, 3, 0, 39, 999, 0], image_index)
    out = contrast(a, b, n=3)
    assert out["image_search"]["a_wins"] == [(3, 1, 40), (0, 2, 20), (4, 300, 1000)]
    assert out["image_search"]["b_wins"] == [(5, 1, 9)]
    assert out["image_annotation"] == {"a_wins": [(2, 3, 31)], "b_wins": [(1, 2, 6)]}
    assert contrast(a, b, n=1)["image_search"]["a_wins"] == [(3, 1, 40)]
