"""The tie rule holds bit for bit in both directions: exact duplicates tie with the ground truth, degenerate
queries (all scores equal) are misses with the worst rank, never a free hit, and non-finite embeddings are
refused."""

import numpy as np
import pytest

from cca_bench import evaluate_retrieval
from cca_bench.errors import UserError
from cca_bench.metrics import fold_ranks, ranks, similarity


def duplicate_images(n_dup=200, n_other=300, k=128, seed=0):
    """Images: n_dup exact copies of one vector among n_other distinct ones (shuffled, so copies fall in
    every block and at block edges); one caption per image, close to it."""
    rng = np.random.default_rng(seed)
    ims = rng.standard_normal((n_dup + n_other, k)).astype(np.float32)
    ims[:n_dup] = ims[0]
    order = rng.permutation(len(ims))
    ims = ims[order]
    dup = np.flatnonzero(order < n_dup)
    texts = ims + 0.05 * rng.standard_normal(ims.shape).astype(np.float32)
    return ims, texts, np.arange(len(ims)), dup


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
@pytest.mark.parametrize("block", [37, 4096])
def test_identical_images_tie_exactly_in_image_search(distance, block):
    ims, texts, image_index, dup = duplicate_images()
    _, opt = ranks(ims, texts, image_index, distance, "optimistic", block=block)
    _, pes = ranks(ims, texts, image_index, distance, "pessimistic", block=block)
    _, exp = ranks(ims, texts, image_index, distance, block=block)
    assert (opt[dup] == 0).all()  # R@1 = 100: no other image scores strictly higher
    assert (pes[dup] == len(dup) - 1).all()  # R@1 = 0: the 199 copies tie with the right image
    assert (exp[dup] == (len(dup) - 1) / 2).all()  # the default: the middle of the 200 tied places
    others = np.setdiff1d(image_index, dup)
    assert (opt[others] == 0).all() and (pes[others] == 0).all() and (exp[others] == 0).all()


def test_identical_images_r_at_1_in_the_metrics():
    ims, texts, image_index, dup = duplicate_images()
    keep = np.isin(image_index, dup)
    opt = evaluate_retrieval(ims, texts[keep], image_index[keep], ties="optimistic")
    pes = evaluate_retrieval(ims, texts[keep], image_index[keep], ties="pessimistic")
    exp = evaluate_retrieval(ims, texts[keep], image_index[keep])
    assert opt["image_search"]["R@1"] == 100.0 and pes["image_search"]["R@1"] == 0.0
    assert exp["image_search"]["R@1"] == 100.0 / len(dup)  # one right image among 200 identical ones


def test_identical_images_through_the_torch_gemm():
    import torch  # noqa: F401

    ims, texts, image_index, dup = duplicate_images(n_dup=50, n_other=80)
    _, opt = ranks(ims, texts, image_index, "cosine", "optimistic", block=16, device="cpu")
    _, pes = ranks(ims, texts, image_index, "cosine", "pessimistic", block=16, device="cpu")
    _, exp = ranks(ims, texts, image_index, "cosine", block=16, device="cpu")
    assert (opt[dup] == 0).all() and (pes[dup] == len(dup) - 1).all() and (exp[dup] == (len(dup) - 1) / 2).all()


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
def test_identical_captions_tie_exactly_in_annotation(distance):
    """Caption b_i is an exact copy of image i's own caption a_i but belongs to image i + 1."""
    rng = np.random.default_rng(1)
    n, k = 150, 128
    ims = rng.standard_normal((n, k)).astype(np.float32)
    a = ims + 0.05 * rng.standard_normal((n, k)).astype(np.float32)
    texts = np.concatenate([a, a])
    image_index = np.concatenate([np.arange(n), (np.arange(n) + 1) % n])
    opt, _ = ranks(ims, texts, image_index, distance, "optimistic", block=41)
    pes, _ = ranks(ims, texts, image_index, distance, "pessimistic", block=41)
    exp, _ = ranks(ims, texts, image_index, distance, block=41)
    assert (opt == 0).all() and (pes == 1).all() and (exp == 0.5).all()
    m_opt = evaluate_retrieval(ims, texts, image_index, distance, ties="optimistic")["image_annotation"]["R@1"]
    m_pes = evaluate_retrieval(ims, texts, image_index, distance, ties="pessimistic")["image_annotation"]["R@1"]
    m_exp = evaluate_retrieval(ims, texts, image_index, distance)["image_annotation"]["R@1"]
    assert (m_opt, m_pes, m_exp) == (100.0, 0.0, 50.0)


def test_hand_built_ties_across_blocks():
    """Caption 0's image (3) comes in the last block; images 0 and 5 tie with it, image 1 beats it."""
    ims = np.array([[1, 0], [2, 0], [0, 1], [1, 0], [0, 0.5], [1, 0]], dtype=np.float32)
    texts = np.array([[1, 0], [0, 1]], dtype=np.float32)
    image_index = np.array([3, 2])
    for block in (1, 2, 4, 6):
        _, opt = ranks(ims, texts, image_index, "dot", "optimistic", block=block)
        _, pes = ranks(ims, texts, image_index, "dot", "pessimistic", block=block)
        _, exp = ranks(ims, texts, image_index, "dot", block=block)
        assert opt.tolist() == [1, 0] and pes.tolist() == [3, 0] and exp.tolist() == [2, 0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_embeddings_are_refused(bad):
    rng = np.random.default_rng(2)
    ims, texts = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
    for which in ("image", "caption"):
        a, b = ims.copy(), texts.copy()
        (a if which == "image" else b)[3, 1] = bad
        with pytest.raises(UserError, match=f"{which} embeddings contain NaN or infinite"):
            evaluate_retrieval(a, b, np.arange(10))
    with pytest.raises(UserError, match="NaN or infinite"):  # finite in float64, infinite as float32
        evaluate_retrieval(ims * 1e300, texts, np.arange(10), distance="dot")


def test_scores_that_would_overflow_are_refused():
    rng = np.random.default_rng(3)
    ims, texts = rng.standard_normal((10, 4)) * 1e20, rng.standard_normal((10, 4)) * 1e20
    with pytest.raises(UserError, match="overflow"):
        evaluate_retrieval(ims, texts, np.arange(10), distance="dot")
    evaluate_retrieval(ims, texts, np.arange(10), distance="cosine")  # normalised: fine


def hand_built_zero_caption():
    """4 images, 5 captions (dot); caption 2 is all zero: every image scores it 0."""
    ims = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.float32)
    texts = np.array([[2, 1], [1, 1], [0, 0], [1, -2], [-1, 3]], dtype=np.float32)
    return ims, texts, np.array([0, 1, 2, 3, 2])


def test_an_all_zero_caption_is_a_miss_and_the_others_keep_their_ranks():
    """By hand: caption 1 ties with image 0 (rank 0 or 1), caption 4 has image 1 above its own, image 1 has
    caption 4 above its caption and caption 0 tied with it; caption 2 (all zero) takes rank 4 - 1 = 3 under
    both rules, where the optimistic rule alone would have given it a free hit."""
    ims, texts, image_index = hand_built_zero_caption()
    want = {
        "optimistic": ([0, 1, 0, 0], [0, 0, 3, 0, 1]),
        "pessimistic": ([0, 2, 0, 0], [0, 1, 3, 0, 1]),
        "expected": ([0, 1.5, 0, 0], [0, 0.5, 3, 0, 1]),
    }
    for ties, (i2t, t2i) in want.items():
        for block in (1, 3, 2048):
            r_i2t, r_t2i, flat_i2t, flat_t2i = ranks(
                ims, texts, image_index, "dot", ties, block=block, return_flat=True
            )
            assert r_i2t.tolist() == i2t and r_t2i.tolist() == t2i
            assert flat_i2t.tolist() == [False] * 4 and flat_t2i.tolist() == [False, False, True, False, False]
        assert [r.tolist() for r in ranks(ims, texts, image_index, "dot", ties)] == [i2t, t2i]
    _, r_t2i, _, flat_t2i = ranks(ims, texts, image_index, "cosine", "optimistic", return_flat=True)  # zero: zero
    assert r_t2i[2] == 3 and flat_t2i.tolist() == [False, False, True, False, False]


@pytest.mark.parametrize("ties", ["optimistic", "pessimistic", "expected"])
def test_an_all_zero_image_is_a_miss_behind_every_other_caption(ties):
    """Image 1 (all zero, 2 captions among 4) ranks its best caption behind the 2 others: rank 2. Image 3 has
    no captions: not a query (the masks have 3 entries), but it is in every caption's gallery."""
    ims = np.array([[1, 0], [0, 0], [0, 1], [5, 5]], dtype=np.float32)
    texts = np.array([[1, 0], [1, 1], [0, 1], [0, 2]], dtype=np.float32)
    r_i2t, r_t2i, flat_i2t, flat_t2i = ranks(ims, texts, np.array([0, 1, 1, 2]), "dot", ties, return_flat=True)
    want = {
        "optimistic": ([0, 2, 0], [1, 3, 2, 1]),
        "pessimistic": ([1, 2, 0], [1, 3, 3, 1]),
        "expected": ([0.5, 2, 0], [1, 3, 2.5, 1]),
    }[ties]
    assert r_i2t.tolist() == want[0] and r_t2i.tolist() == want[1]
    assert flat_i2t.tolist() == [False, True, False] and not flat_t2i.any()


@pytest.mark.parametrize("distance", ["cosine", "dot"])
def test_a_direction_of_only_degenerate_queries_is_refused(distance):
    """Identical images: every caption scores them alike (but each image still ranks the captions). Identical
    captions: the other way round. All zero: both directions."""
    rng = np.random.default_rng(4)
    ims, texts = rng.standard_normal((12, 6)), rng.standard_normal((12, 6))
    same_ims, same_texts = np.tile(ims[:1], (12, 1)), np.tile(texts[:1], (12, 1))
    for a, b, what in (
        (same_ims, texts, "^all 12 caption queries score"),
        (ims, same_texts, "^all 12 image queries score"),
        (ims * 0, texts * 0, "^all 12 image queries and all 12 caption queries"),
    ):
        for ties in ("optimistic", "pessimistic", "expected"):
            with pytest.raises(UserError, match=what) as e:
                evaluate_retrieval(a, b, np.arange(12), distance, ties=ties)
            assert "\n" not in str(e.value) and "equally" in str(e.value)


@pytest.mark.parametrize("ties", ["optimistic", "pessimistic"])
@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
def test_degenerate_queries_against_a_brute_force_reference(distance, ties):
    """Random small integers (ties everywhere) with zero rows on both sides: degenerate under cosine and dot
    (under euclidean a zero row is not; see the next test). dot and euclidean scores are exact integers, so
    every rank is checked; cosine ones are not (the reference's GEMM may round otherwise), so only the
    degenerate queries' ranks and the masks are."""
    rng = np.random.default_rng(5)
    ims = rng.integers(-1, 2, size=(40, 3)).astype(np.float32)
    image_index = np.sort(rng.integers(0, 40, size=120))
    texts = rng.integers(-1, 2, size=(120, 3)).astype(np.float32)
    s = similarity(ims, texts, distance)
    worse = np.greater if ties == "optimistic" else np.greater_equal
    queries = np.unique(image_index)
    flat_i2t = np.array([s[i].min() == s[i].max() for i in queries])
    flat_t2i = s.min(0) == s.max(0)
    assert distance == "euclidean" or (flat_t2i.any() and flat_i2t.any())
    want_i2t = np.array(
        [
            len(texts) - np.sum(image_index == i)
            if f
            else int(worse(s[i, image_index != i], s[i, image_index == i].max()).sum())
            for i, f in zip(queries, flat_i2t)
        ]
    )
    want_t2i = np.array(
        [
            len(ims) - 1 if flat_t2i[j] else int(worse(np.delete(s[:, j], image_index[j]), s[image_index[j], j]).sum())
            for j in range(len(texts))
        ]
    )
    exact = (slice(None), slice(None)) if distance != "cosine" else (flat_i2t, flat_t2i)
    for block in (7, 2048):
        r_i2t, r_t2i, f_i2t, f_t2i = ranks(ims, texts, image_index, distance, ties, block=block, return_flat=True)
        assert f_i2t.tolist() == flat_i2t.tolist() and f_t2i.tolist() == flat_t2i.tolist()
        assert r_i2t[exact[0]].tolist() == want_i2t[exact[0]].tolist()
        assert r_t2i[exact[1]].tolist() == want_t2i[exact[1]].tolist()


def test_identical_images_make_every_caption_degenerate():
    ims = np.tile(np.array([[1.0, 2.0]]), (5, 1))
    with pytest.raises(UserError, match="all 5 caption queries"):
        evaluate_retrieval(ims, np.eye(5, 2) + 1, np.arange(5), "euclidean")


def test_degenerate_queries_count_as_misses_in_the_metrics():
    """Identity embeddings score perfectly; one zero caption of 10 costs image search 10 points of R@1 and
    adds its worst rank (9, 0-based) to the mean, and its image still finds its other caption."""
    ims = np.eye(10, dtype=np.float32)
    image_index = np.concatenate([np.arange(10), [3]])
    texts = ims[image_index].copy()
    texts[3] = 0
    m = evaluate_retrieval(ims, texts, image_index)
    assert m["image_search"]["R@1"] == pytest.approx(100 * 10 / 11)
    assert m["image_search"]["mean_rank"] == pytest.approx(9 / 11 + 1)
    assert m["image_annotation"]["R@1"] == 100.0


def test_folds_report_their_own_degenerate_queries():
    """Two folds of 6 images: a zero caption in the second fold ranks last among that fold's 6 images; a fold
    whose every caption is zero is refused."""
    rng = np.random.default_rng(6)
    ims = rng.standard_normal((12, 5)).astype(np.float32)
    image_index = np.repeat(np.arange(12), 2)
    texts = ims[image_index] + 0.01 * rng.standard_normal((24, 5)).astype(np.float32)
    texts[15] = 0
    (a_i2t, a_t2i, a_fi, a_ft), (b_i2t, b_t2i, b_fi, b_ft) = fold_ranks(
        ims, texts, image_index, folds=2, return_flat=True
    )
    assert not a_ft.any() and np.flatnonzero(b_ft).tolist() == [15 - 12] and b_t2i[3] == 5
    assert not a_fi.any() and not b_fi.any() and (a_t2i == 0).all() and len(a_i2t) == len(b_i2t) == 6
    assert [len(r) for r in fold_ranks(ims, texts, image_index, folds=2)[1]] == [6, 12]
    texts[12:] = 0
    with pytest.raises(UserError, match="all 12 caption queries"):
        fold_ranks(ims, texts, image_index, folds=2)
