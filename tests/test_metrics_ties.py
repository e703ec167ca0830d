"""The tie rule holds bit for bit in both directions: exact duplicates tie with the ground truth, and
degenerate queries and non-finite embeddings are refused."""
import numpy as np
import pytest

from cca_bench import evaluate_retrieval
from cca_bench.errors import UserError
from cca_bench.metrics import ranks


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
    assert (opt[dup] == 0).all()  # R@1 = 100: no other image scores strictly higher
    assert (pes[dup] == len(dup) - 1).all()  # R@1 = 0: the 199 copies tie with the right image
    others = np.setdiff1d(image_index, dup)
    assert (opt[others] == 0).all() and (pes[others] == 0).all()


def test_identical_images_r_at_1_in_the_metrics():
    ims, texts, image_index, dup = duplicate_images()
    keep = np.isin(image_index, dup)
    opt = evaluate_retrieval(ims, texts[keep], image_index[keep])
    pes = evaluate_retrieval(ims, texts[keep], image_index[keep], ties="pessimistic")
    assert opt["image_search"]["R@1"] == 100.0 and pes["image_search"]["R@1"] == 0.0


def test_identical_images_through_the_torch_gemm():
    pytest.importorskip("torch")
    ims, texts, image_index, dup = duplicate_images(n_dup=50, n_other=80)
    _, opt = ranks(ims, texts, image_index, "cosine", block=16, device="cpu")
    _, pes = ranks(ims, texts, image_index, "cosine", "pessimistic", block=16, device="cpu")
    assert (opt[dup] == 0).all() and (pes[dup] == len(dup) - 1).all()


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
def test_identical_captions_tie_exactly_in_annotation(distance):
    """Caption b_i is an exact copy of image i's own caption a_i but belongs to image i + 1."""
    rng = np.random.default_rng(1)
    n, k = 150, 128
    ims = rng.standard_normal((n, k)).astype(np.float32)
    a = ims + 0.05 * rng.standard_normal((n, k)).astype(np.float32)
    texts = np.concatenate([a, a])
    image_index = np.concatenate([np.arange(n), (np.arange(n) + 1) % n])
    opt, _ = ranks(ims, texts, image_index, distance, block=41)
    pes, _ = ranks(ims, texts, image_index, distance, "pessimistic", block=41)
    assert (opt == 0).all() and (pes == 1).all()
    m_opt = evaluate_retrieval(ims, texts, image_index, distance)["image_annotation"]["R@1"]
    m_pes = evaluate_retrieval(ims, texts, image_index, distance, ties="pessimistic")["image_annotation"]["R@1"]
    assert (m_opt, m_pes) == (100.0, 0.0)


def test_hand_built_ties_across_blocks():
    """Caption 0's image (3) comes in the last block; images 0 and 5 tie with it, image 1 beats it."""
    ims = np.array([[1, 0], [2, 0], [0, 1], [1, 0], [0, 0.5], [1, 0]], dtype=np.float32)
    texts = np.array([[1, 0], [0, 1]], dtype=np.float32)
    image_index = np.array([3, 2])
    for block in (1, 2, 4, 6):
        _, opt = ranks(ims, texts, image_index, "dot", block=block)
        _, pes = ranks(ims, texts, image_index, "dot", "pessimistic", block=block)
        assert opt.tolist() == [1, 0] and pes.tolist() == [3, 0]


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


@pytest.mark.parametrize("ties", ["optimistic", "pessimistic"])
@pytest.mark.parametrize("distance", ["cosine", "dot"])
def test_degenerate_queries_are_refused(ties, distance):
    rng = np.random.default_rng(4)
    ims, texts = rng.standard_normal((12, 6)), rng.standard_normal((12, 6))
    evaluate_retrieval(ims, texts, np.arange(12), distance, ties=ties)
    with pytest.raises(UserError, match="1 caption queries score every item"):  # an all-zero caption
        evaluate_retrieval(ims, np.where(np.arange(12)[:, None] == 5, 0, texts), np.arange(12), distance, ties=ties)
    with pytest.raises(UserError, match="1 image queries and 0 caption"):  # an all-zero image
        evaluate_retrieval(np.where(np.arange(12)[:, None] == 7, 0, ims), texts, np.arange(12), distance,
                           ties=ties)
    with pytest.raises(UserError, match="12 image queries and 12 caption"):  # the fake perfect score
        evaluate_retrieval(np.zeros((12, 6)), np.zeros((12, 6)), np.arange(12), distance, ties=ties)
