"""The batch of paired tests (cca_bench.stats.paired_tests / paired_p_values) gives every pair and metric the
numbers of its own lone test bit for bit: checked against the lone test's documented draws, re-done here per
metric from the primitives, on tied scores, COCO 1k-style folds, stacked seeds and every tie rule."""

import dataclasses

import numpy as np
import pytest

from cca_bench import metrics, stats
from cca_bench.errors import UserError
from cca_bench.power import mdd

METRICS = ["rsum", "R@1", "median_rank", *(f"{d}:{m}" for d in ("i2t", "t2i") for m in stats.METRICS)]


def _runs(n_img: int, folds: int, seeds: int, rule: str, rng, count: int = 3) -> list[stats.QueryRanks]:
    """``count`` runs on one split of ``n_img`` images with 1-4 captions each (a few without any), scored on
    3-d integer embeddings under dot (ties everywhere), each run ``seeds`` stacked rankings."""
    idx = np.sort(np.concatenate([np.arange(0, n_img, 7), rng.integers(0, n_img, size=3 * n_img)]))
    idx = idx[(idx % 11) != 5]  # images 5, 16, ... have no caption: not image queries
    out = []
    for _ in range(count):
        per_seed = []
        for _ in range(seeds):
            ims = rng.integers(-1, 2, size=(n_img, 3)).astype(np.float32)
            txt = rng.integers(-1, 2, size=(len(idx), 3)).astype(np.float32)
            ims[~ims.any(1), 0], txt[~txt.any(1), 0] = 1, 1
            per_seed.append(stats.from_fold_ranks(metrics.fold_counts(ims, txt, idx, "dot", folds), idx, n_img, rule))
        out.append(stats.stack_seeds(per_seed))
    return out


def _lone(a, b, metric: str, resamples: int, seed: int, level: float = 0.95) -> dict:
    """One paired test the way it was made before the batch, metric by metric: fresh draws of
    ``default_rng(seed)`` for the interval (per fold, all resamples at once) and of ``default_rng(seed + 1)``
    for the p-value (sign flips, or bootstrap counts for median ranks), from the module's primitives."""
    tasks, m = stats.parse_metric(metric)
    rng = np.random.default_rng(seed)
    counts = [stats.resample_counts(rng, len(images), resamples) for images, _ in a.folds()]
    deltas = stats.metric_value(stats.replicate_metrics(a, counts), tasks, m) - stats.metric_value(
        stats.replicate_metrics(b, counts), tasks, m
    )
    rng = np.random.default_rng(seed + 1)
    if m == "median_rank":
        counts = [stats.resample_counts(rng, len(images), resamples) for images, _ in a.folds()]
        d = stats.metric_value(stats.replicate_metrics(a, counts), tasks, m) - stats.metric_value(
            stats.replicate_metrics(b, counts), tasks, m
        )
        p = min(1.0, 2 * (1 + min(np.count_nonzero(d <= 0), np.count_nonzero(d >= 0))) / (1 + resamples))
    else:
        diff = stats._contributions(a, tasks, m) - stats._contributions(b, tasks, m)
        p = stats.sign_flip_p(diff, resamples, rng)
    se = float(np.std(deltas, ddof=1)) if resamples > 1 else 0.0
    point = stats.metric_value(stats.point_metrics(a), tasks, m) - stats.metric_value(stats.point_metrics(b), tasks, m)
    return {
        "metric": stats.metric_name(metric),
        "delta": float(point),
        "ci": [float(x) for x in np.percentile(deltas, [100 * (1 - level) / 2, 100 * (1 + level) / 2])],
        "p_value": p,
        "test": stats.TEST_BOOTSTRAP if m == "median_rank" else stats.TEST_SIGN_FLIP,
        "n_images": int(a.n_images),
        "resamples": int(resamples),
        "level": float(level),
        "lower_is_better": m in stats.LOWER_IS_BETTER,
        "se": se,
        "mdd": mdd(se),
    }


@pytest.mark.parametrize(
    "folds, seeds, rule, resamples, seed, block",
    [
        (1, 1, "expected", 200, 0, None),
        (5, 1, "expected", 201, 3, None),  # COCO 1k: five folds of equal size, resampled within each
        (5, 2, "optimistic", 150, 0, None),  # two stacked seeds per run
        (2, 1, "pessimistic", 1, 9, None),  # one resample: se 0
        (5, 1, "pessimistic", 201, 4, 64),  # the resamples scored in blocks of 64, the last one short
        (1, 2, "expected", 130, 1, 50),
    ],
)
def test_the_batch_equals_each_lone_test_bit_for_bit(monkeypatch, folds, seeds, rule, resamples, seed, block):
    """Three runs on one split plus two on a split of another size, pairs in both orientations and on both
    splits, every metric: the batch's dicts equal the lone tests' own draws exactly, and paired_test /
    paired_p_value (one pair of the batch) equal them too. Planted bugs it caught: each metric's sign flips
    drawn from ``default_rng(seed + k)`` (the k-th column); the counts of every fold-size list drawn from one
    running rng instead of a fresh ``default_rng(seed)`` each; the median ranks' p-value taken from the
    interval's resamples (seed) instead of seed + 1; each block of resamples scored from the first block's
    positions (``d[:BLOCK]``), and the blocks' replicates joined in reverse order."""
    if block is not None:
        monkeypatch.setattr(stats, "BLOCK", block)
    rng = np.random.default_rng(seed + 100 * folds)
    runs = _runs(50, folds, seeds, rule, rng) + _runs(40, folds, seeds, rule, rng, count=2)
    pairs = [(1, 0), (0, 2), (3, 4)]
    batch = stats.paired_tests(runs, pairs, METRICS, resamples, seed)
    p_batch = stats.paired_p_values(runs, pairs, METRICS, resamples, seed + 1)
    assert (runs[0].ties, runs[0].n_images, len(runs[0].folds())) == (rule, 50, folds)
    assert (runs[0].i2t.tied > 0).any() and (runs[0].i2t.above == -1).any()
    for (i, j), row, p_row in zip(pairs, batch, p_batch):
        for metric in METRICS:
            want = _lone(runs[i], runs[j], metric, resamples, seed)
            assert row[metric] == want, (i, j, metric)
            assert p_row[metric] == (want["p_value"], want["test"])
            assert stats.paired_test(runs[i], runs[j], metric, resamples, seed) == want
            assert stats.paired_p_value(runs[i], runs[j], metric, resamples, seed + 1) == p_row[metric]


def _sign_flip_p_as_before(diff: np.ndarray, trials: int, rng, block: int = 1000) -> float:
    """The lone sign-flip test as it was written before the batch: per block, one (n, 1) matrix-vector product
    of the flips, its absolute values against the column's own sum."""
    d = np.asarray(diff, dtype=np.float64)[:, None]
    bound = 2 * len(d) * np.finfo(np.float64).eps * np.abs(d).sum()  # the rounding bound below |sum d|
    observed, extreme, done = max(np.abs(d.sum(0))[0] * (1 - 1e-12) - bound, 0.0), 0, 0
    while done < trials:
        b = min(block, trials - done)
        signs = rng.integers(0, 2, size=(b, len(d)), dtype=np.int8) * 2.0 - 1.0
        extreme += np.count_nonzero(np.abs(signs @ d) >= observed)
        done += b
    return (1 + extreme) / (1 + trials)


def test_shared_sign_flips_count_each_column_as_its_lone_test():
    """One set of flips for four columns, each column's p that of its lone test as written before: a zero-sum
    difference of +-0.1 (the true p is 1, but its flipped sums sit on its bar up to rounding, so only the lone
    product itself decides them), multiples of 0.1 (exact ties at the bar), a continuous one, all zeros.
    Planted bug it caught: the bar taken from the stacked matrix's column sums (another summation order: the
    zero-sum column's bar moved)."""
    rng = np.random.default_rng(0)
    n = 300
    zero_sum = np.repeat([0.1, -0.1, 0.0], [40, 40, n - 80])
    rng.shuffle(zero_sum)
    ties = np.round(rng.integers(-2, 3, n) * 0.1, 1)
    diffs = np.stack([zero_sum, ties, rng.normal(0.05, 1.0, n), np.zeros(n)], axis=1)
    got = stats.sign_flip_p_many(diffs, 3000, np.random.default_rng(5), block=700)
    want = [_sign_flip_p_as_before(diffs[:, j], 3000, np.random.default_rng(5), block=700) for j in range(4)]
    assert got.tolist() == want
    assert got[3] == 1.0 and [stats.sign_flip_p(d, 3000, np.random.default_rng(5), 700) for d in diffs.T] == want


@pytest.mark.parametrize(
    "diff",
    [
        np.array([1 / 3] * 6 + [-1.0, -1.0]),
        np.random.default_rng(3).permutation(
            np.concatenate([np.full(30, 1 / 3), np.full(10, -1.0), np.full(7, 0.2), np.full(2, -0.7), np.zeros(20)])
        ),
    ],
)
def test_differences_that_cancel_exactly_get_p_one(diff):
    """Per-image differences whose exact sum is 0 (thirds against wholes: two runs that win and lose the same
    amount) sum in floating point to a few 1e-16, not 0; every flipped sum is then as extreme as the observed
    one and p is 1, on any BLAS. Planted bug it caught: the bar at |sum d| (1 - 1e-12) without the rounding
    bound (p 0.875 and 0.995 on this machine: the flips that rounded to exactly 0 fell short of -2e-16)."""
    assert stats.sign_flip_p(diff, 2000, np.random.default_rng(0)) == 1.0
    assert stats.sign_flip_p_many(np.stack([diff, -diff], axis=1), 2000, np.random.default_rng(0)).tolist() == [1, 1]


def test_sums_near_the_bar_are_counted_by_the_lone_product():
    """The shared product may round otherwise than the lone one, by less than half the slack: simulated here by
    moving every lone sum by up to that much (this machine's BLAS may happen to round both alike), the counts
    stay the lone ones. Planted bugs it caught: the sums near the bar taken from the shared product (no
    recount); a band of a quarter of the slack."""
    rng = np.random.default_rng(1)
    ties = rng.permutation(np.repeat([0.1, -0.1, 0.0], [41, 40, 119]))  # sum 0.1: many flips reach it exactly
    diffs = np.stack([ties, rng.normal(0.1, 1.0, 200)], axis=1)
    signs = rng.integers(0, 2, size=(500, 200)).astype(np.float64) * 2 - 1
    lone = [np.abs(signs @ diffs[:, [j]])[:, 0] for j in range(2)]
    bar = np.array([np.abs(diffs[:, [j]].sum(0))[0] * (1 - 1e-12) for j in range(2)])
    slack = 4 * 200 * np.finfo(np.float64).eps * np.abs(diffs).sum(0)
    moved = np.stack(lone, axis=1) + rng.uniform(-0.49, 0.49, size=(500, 2)) * slack
    want = [np.count_nonzero(s >= b) for s, b in zip(lone, bar)]
    assert (np.abs(np.stack(lone, axis=1)[:, 0] - bar[0]) <= slack[0]).sum() > 10  # exact ties at the bar
    assert stats._reaching(moved, bar, slack, lambda j: lone[j]).tolist() == want
    assert np.count_nonzero(moved[:, 0] >= bar[0]) != want[0]  # the moved sums alone would count otherwise
    # one sum alone near its bar, moved by half the slack to the other side: the band must reach that far
    lone_sums, moved_sums = np.array([1.0, 5.0, 2.0001]), np.array([[1.0], [5.0], [1.9996]])
    assert stats._reaching(moved_sums, np.array([2.0]), np.array([1e-3]), lambda j: lone_sums).tolist() == [2]


def test_a_pair_gets_the_same_numbers_in_any_batch():
    """A pair's numbers do not depend on which other pairs and metrics share its batch (what lets the web page
    and compare --baseline batch whatever they show). Planted bug it caught: the sign flips drawn once for the
    whole batch as one long run of blocks (each column its own slice of one rng stream)."""
    rng = np.random.default_rng(4)
    runs = _runs(40, 1, 1, "expected", rng, count=4)
    alone = stats.paired_tests(runs, [(2, 0)], ["t2i:R@5"], 500)[0]
    crowded = stats.paired_tests(runs, [(1, 0), (2, 0), (3, 1)], METRICS, 500)[1]
    assert crowded["t2i:R@5"] == alone["t2i:R@5"]


def test_a_bad_pair_fails_the_batch_as_it_fails_alone():
    """The lone test's checks, in its order, for every pair: resamples, then images and tie rule, then metric."""
    rng = np.random.default_rng(5)
    a, b = _runs(30, 1, 1, "expected", rng, count=2)
    (other,) = _runs(20, 1, 1, "expected", rng, count=1)
    optimistic = dataclasses.replace(b, ties="optimistic")
    with pytest.raises(UserError, match="same test images"):
        stats.paired_tests([a, b, other], [(0, 1), (2, 0)], ["rsum"], 100)
    with pytest.raises(UserError, match="different tie rules"):
        stats.paired_p_values([a, b, optimistic], [(0, 1), (0, 2)], ["rsum"], 100)
    with pytest.raises(UserError, match="unknown metric"):
        stats.paired_tests([a, b], [(0, 1)], ["rsum", "R@3"], 100)
    with pytest.raises(UserError, match="at least 1"):
        stats.paired_tests([a, b], [(0, 1)], ["rsum"], 0)
    assert stats.paired_tests([a, b], [], ["rsum"], 100) == []
