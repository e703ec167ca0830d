"""The streamed row-wise top-k (cca_bench.running_topk, ASIF's CPU path) against a full stable sort, ties included."""

import numpy as np
import pytest

from cca_bench.methods.asif import _torch_topk, relative_topk
from cca_bench.running_topk import RunningTop, top_columns


def tied_features(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Small-integer queries (n, 3) and anchors (m, 3): every dot product is exact in float32 (no BLAS rounding
    to depend on) and takes few values, so most rows have ties at and around the k-th place."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-2, 3, (n, 3)).astype(np.float32), rng.integers(-2, 3, (m, 3)).astype(np.float32))


def sorted_top(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: a stable sort of each whole row by value, descending (ties: lower column first)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


@pytest.mark.parametrize(
    "n, m, k, block, query_block",
    [(9, 50, 6, 8, 4), (31, 200, 40, 16, 7), (31, 200, 40, 64, 31), (12, 30, 25, 7, 5), (5, 10, 20, 3, 2)],
)
def test_relative_topk_equals_a_full_stable_sort(n, m, k, block, query_block):
    """Values and anchor indices equal a full sort's exactly, with blocks smaller and larger than k, an uneven last
    block, k beyond the anchors, and many exact ties. Planted bugs caught: ``top_columns`` giving a tie at the
    k-th place to the later column (``np.cumsum(tied[:, ::-1], 1)[:, ::-1]``); ``_append`` not subtracting
    each row's first position (entries land in other rows' places); ``result`` sorting with
    ``kind="quicksort"`` (tied values then leave column order)."""
    q, a = tied_features(n, m, seed=n + m)
    want = sorted_top(q @ a.T, k)
    got = relative_topk(q, a, k, "cpu", block, query_block)
    assert (np.diff(want[0], axis=1) == 0).any()  # the data has ties to get right
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_cpu_path_equals_the_torch_path():
    """The numpy CPU path and the torch path (a GPU's, run here on the CPU) give the same neighbours, values and
    order. Planted bug caught: ``_compact`` setting the floor to the largest held value instead of the k-th
    (entries of the true top k are then filtered out of later blocks)."""
    q, a = tied_features(40, 300, seed=3)
    got = relative_topk(q, a, 30, "cpu", 32, 16)
    want = _torch_topk(q, a, 30, "cpu", 32, 16)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_floor_filters_blocks():
    """After the first block only entries above a row's floor are held: a block entirely below it adds nothing.
    Planted bug caught: the floor not raised after a block's own top k was taken (the first block): it stays at
    -inf and the second block's entries at or below the true floor are appended."""
    top = RunningTop(2, 3, 20)
    top.add(np.array([[5, 4, 3, 2, 1, 0], [9, 8, 7, 6, 5, 4]], np.float32), 0)
    before = top.count.copy()
    top.add(np.array([[2, 2, 1, 0], [4, 4, 3, 1]], np.float32), 6)  # at or below the floors 3 and 7
    np.testing.assert_array_equal(top.count, before)
    v, c = top.result()
    np.testing.assert_array_equal(v, [[5, 4, 3], [9, 8, 7]])
    np.testing.assert_array_equal(c, [[0, 1, 2], [0, 1, 2]])


def test_top_columns_keeps_column_order_and_earlier_ties():
    """Planted bug caught: the straddling tie kept without the cumulative count (reshape then fails)."""
    v = np.array([[1, 3, 2, 3, 3, 0]], np.float32)
    vals, cols = top_columns(v, np.arange(6)[None, :].repeat(1, 0), 2)
    np.testing.assert_array_equal(cols, [[1, 3]])
    np.testing.assert_array_equal(vals, [[3, 3]])
