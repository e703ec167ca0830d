"""The one-pass evaluation's parts: tiles shared by threads, own scores known from their block on, hashed
duplicate detection and block-wise normalisation give exactly what the plain computations give."""

import numpy as np
import pytest

from cca_bench import metrics
from cca_bench.errors import UserError
from cca_bench.metrics import first_equal, prepare, ranks
from tests.test_metrics_one_gemm import direct_ranks


@pytest.mark.parametrize("order", ["sorted", "mostly_sorted", "shuffled"])
@pytest.mark.parametrize("ties", ["optimistic", "pessimistic", "expected"])
@pytest.mark.parametrize("distance", ["dot", "euclidean"])
def test_tiles_threads_and_known_own_scores_give_direct_counts(order, ties, distance, monkeypatch):
    """600 images in blocks of 170 (4 blocks), tiles of 255 rows or fewer, small integers: ties everywhere.
    Captions in image order have their own score known from their image's block on; shuffled ones are
    bracketed until then."""
    rng = np.random.default_rng(0)
    ims = rng.integers(-1, 2, size=(600, 3)).astype(np.float32)
    image_index = np.sort(rng.integers(0, 600, size=80))
    if order == "mostly_sorted":
        image_index[10:14] = image_index[10:14][::-1].copy()
    elif order == "shuffled":
        image_index = rng.permutation(image_index)
    texts = rng.integers(-1, 2, size=(80, 3)).astype(np.float32)
    texts[~texts.any(1), 0] = 1
    ims[~ims.any(1), 1] = 1  # no all-zero query: those are degenerate
    want = direct_ranks(ims, texts, image_index, distance, ties)
    for cores in (1, 3):
        monkeypatch.setattr(metrics, "available_cores", lambda: cores)
        got = ranks(ims, texts, image_index, distance, ties, block=170)
        assert got[0].tolist() == want[0] and got[1].tolist() == want[1]


def test_one_pass_shares_tiles_between_workers(monkeypatch):
    """Many tiles per block (tiles of 4 rows), several workers: the direct counts, as with one worker. Small
    integers under dot: exact scores, ties everywhere, no dependence on the BLAS's rounding."""
    rng = np.random.default_rng(1)
    ims = rng.integers(-2, 3, size=(300, 4)).astype(np.float32)
    image_index = np.repeat(np.arange(300), 2)
    texts = rng.integers(-2, 3, size=(600, 4)).astype(np.float32)
    ims[~ims.any(1), 0], texts[~texts.any(1), 0] = 1, 1  # no all-zero query: those are degenerate
    monkeypatch.setattr(metrics._OnePass, "__init__", _small_tiles(metrics._OnePass.__init__))
    want = direct_ranks(ims, texts, image_index, "dot", "expected")
    for cores in (1, 4):
        monkeypatch.setattr(metrics, "available_cores", lambda: cores)
        got = ranks(ims, texts, image_index, "dot", block=64)
        assert got[0].tolist() == want[0] and got[1].tolist() == want[1]


def _small_tiles(init):
    def wrapped(self, *args):
        init(self, *args)
        self.rows = 4

    return wrapped


def test_first_equal_finds_bitwise_copies():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((200, 7)).astype(np.float32)
    a[[5, 50, 199]] = a[3]
    a[77] = a[76]
    a[10, 2], a[11] = 0.0, a[10]
    a[11, 2] = -0.0  # -0.0 equals 0.0
    a[12] = a[3]
    a[12, 0] = np.nextafter(a[3, 0], np.float32(np.inf))  # one bit away: not a copy
    first = first_equal(a)
    want = [min(j for j in range(len(a)) if (a[j] == a[i]).all()) for i in range(len(a))]
    assert first.tolist() == want
    assert first[[5, 50, 199, 77, 11, 12]].tolist() == [3, 3, 3, 76, 10, 12]


def test_first_equal_survives_hash_collisions(monkeypatch):
    """Every row hashing alike: the bitwise check sees the different rows and the exact sort takes over."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, size=(60, 2)).astype(np.float64)
    want = first_equal(a)
    monkeypatch.setattr(metrics, "_row_hash", lambda words: np.zeros(len(words), dtype=np.uint64))
    assert first_equal(a).tolist() == want.tolist()
    assert first_equal(np.ones((4, 3))).tolist() == [0, 0, 0, 0]


def test_cosine_rows_normalised_in_blocks_as_a_whole():
    """The block-wise normalisation is bit for bit the whole-matrix one; NaN in a late block is refused."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5000, 9)) * np.exp(rng.uniform(-20, 20, size=(5000, 1)))
    x[[7, 4500]] = 0.0
    whole = (
        x.astype(np.float32)
        / np.maximum(np.linalg.norm(x.astype(np.float32).astype(np.float64), axis=1, keepdims=True), 1e-12)
    ).astype(np.float32)
    assert prepare(x, "cosine").tobytes() == whole.tobytes()
    x[4999, 3] = np.nan
    x[4100, 0] = np.inf
    with pytest.raises(UserError, match=r"caption embeddings contain NaN or infinite values \(2 rows"):
        prepare(x, "cosine", "caption embeddings")
