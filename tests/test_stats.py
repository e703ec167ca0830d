"""Bootstrap intervals and paired tests over test images (cca_bench.stats), checked against brute force,
against the evaluation's own metrics, and by simulation (coverage, false-positive rate, power)."""
import numpy as np
import pytest

from cca_bench import metrics, stats
from cca_bench.errors import UserError


def _evaluated(n_img=60, caps=5, k=8, noise=1.5, folds=1, seed=0):
    """(QueryRanks, metrics.evaluate_retrieval output) of a small synthetic retrieval problem."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_img, k))
    ims = latent + rng.normal(size=(n_img, k))
    idx = np.repeat(np.arange(n_img), caps)
    txt = latent[idx] + noise * rng.normal(size=(len(idx), k))
    per_fold = metrics.fold_ranks(ims, txt, idx, folds=folds)
    return stats.from_fold_ranks(per_fold, idx, n_img), metrics.evaluate_retrieval(ims, txt, idx, folds=folds)


def _brute_force(ranks: stats.QueryRanks, resamples: int, seed: int) -> dict:
    """Every resample evaluated the slow way: expand the drawn images into their queries, summarize, average
    over folds: the same rng draws (fold by fold, (B, n_f) positions) that stats documents."""
    rng = np.random.default_rng(seed)
    folds = ranks.folds()
    draws = [rng.integers(0, len(images), size=(resamples, len(images)), dtype=np.uint16) for images, _ in folds]
    out = {t: {m: [] for m in stats.METRICS} for t in stats.TASKS}
    for b in range(resamples):
        per_fold = []
        for (images, caps), drawn in zip(folds, draws):
            chosen = images[drawn[b]]
            i2t = ranks.i2t[0, chosen]
            t2i = np.concatenate([ranks.t2i[0, caps][ranks.image_index[caps] == i] for i in chosen])
            per_fold.append({"image_annotation": metrics.summarize(i2t[i2t >= 0]),
                             "image_search": metrics.summarize(t2i)})
        for t in stats.TASKS:
            for m in stats.METRICS:
                out[t][m].append(np.mean([f[t][m] for f in per_fold]))
    return out


@pytest.mark.parametrize("folds", [1, 3])
def test_point_metrics_equal_the_evaluation(folds):
    ranks, expected = _evaluated(n_img=60, folds=folds)
    assert stats.point_metrics(ranks) == expected


def test_uneven_caption_counts_and_images_without_captions():
    rng = np.random.default_rng(3)
    ims, idx = rng.normal(size=(30, 6)), np.array([0, 0, 1, 3, 3, 3, 4, 7, 7, 9] * 2 + [12, 20, 29])
    txt = ims[idx] + rng.normal(size=(len(idx), 6))
    ranks = stats.from_fold_ranks(metrics.fold_ranks(ims, txt, idx), idx, 30)
    assert (ranks.i2t[0] == -1).sum() == 30 - len(set(idx.tolist()))
    assert stats.point_metrics(ranks) == metrics.evaluate_retrieval(ims, txt, idx)
    reps = stats.bootstrap_replicates(ranks, 25, seed=4)
    brute = _brute_force(ranks, 25, seed=4)
    for t in stats.TASKS:
        for m in stats.METRICS:
            np.testing.assert_array_equal(reps[t][m], brute[t][m])


@pytest.mark.parametrize("folds", [1, 2])
def test_bootstrap_equals_brute_force_exactly(folds):
    ranks, _ = _evaluated(n_img=40, folds=folds, seed=1)
    reps = stats.bootstrap_replicates(ranks, 60, seed=7)
    brute = _brute_force(ranks, 60, seed=7)
    for t in stats.TASKS:
        for m in stats.METRICS:
            np.testing.assert_array_equal(reps[t][m], brute[t][m], err_msg=f"{t} {m}")
    np.testing.assert_array_equal(reps["rsum"], sum(np.array(brute[t][f"R@{k}"]) for t in stats.TASKS for k in (1, 5, 10)))
    ci = stats.bootstrap_ci(ranks, 60, 0.9, seed=7)
    assert ci["rsum"] == pytest.approx(list(np.percentile(reps["rsum"], [5, 95])))


def test_seeds_average_like_the_point_estimate():
    a, _ = _evaluated(seed=1)
    b, _ = _evaluated(seed=2)  # another 'seed' of the model on the same images and captions
    both = stats.stack_seeds([a, b])
    point = stats.point_metrics(both)
    ma, mb = stats.point_metrics(a), stats.point_metrics(b)
    for t in stats.TASKS:
        for m in stats.METRICS:
            assert point[t][m] == np.mean([ma[t][m], mb[t][m]])
    assert stats.per_seed_metrics(both) == [ma, mb]


def _simulated_ranks(p_img: np.ndarray, caps: int, rng, shift: float = 0.0) -> stats.QueryRanks:
    """Ranks whose hits at rank 1 follow per-image probabilities: captions of an image share its
    probability (correlated outcomes), a hit is rank 0 and a miss a rank drawn from 1..99."""
    n = len(p_img)
    idx = np.repeat(np.arange(n), caps)
    p = np.clip(p_img + shift, 0, 1)
    hit_t = rng.random(len(idx)) < p[idx]
    hit_i = rng.random(n) < p
    t2i = np.where(hit_t, 0, rng.integers(1, 100, len(idx)))
    i2t = np.where(hit_i, 0, rng.integers(1, 100, n))
    return stats.query_ranks(i2t, t2i, idx)


def test_image_bootstrap_covers_and_caption_bootstrap_does_not():
    """Synthetic test sets drawn from a known population: per-image success probabilities (Beta(0.5, 0.5):
    strongly image-dependent), 5 captions an image sharing theirs. The true t2i R@1 is 100 * E[p] = 50."""
    rng = np.random.default_rng(0)
    n_sets, n_img, caps, level = 400, 300, 5, 0.95
    image_cover = caption_cover = 0
    for _ in range(n_sets):
        ranks = _simulated_ranks(rng.beta(0.5, 0.5, n_img), caps, rng)
        lo, hi = stats.bootstrap_ci(ranks, 250, level, seed=int(rng.integers(1 << 30)))["image_search"]["R@1"]
        image_cover += lo <= 50 <= hi
        # the naive alternative: resample captions as if they were independent queries
        hits = (ranks.t2i[0] == 0).astype(float)
        draws = rng.integers(0, len(hits), size=(250, len(hits)))
        clo, chi = np.percentile(100 * hits[draws].mean(1), [2.5, 97.5])
        caption_cover += clo <= 50 <= chi
    assert 0.92 <= image_cover / n_sets <= 0.98
    assert caption_cover / n_sets < 0.85


def test_paired_test_false_positive_rate_and_power():
    rng = np.random.default_rng(1)
    n_pairs, n_img, caps = 300, 120, 5
    rejected = 0
    for _ in range(n_pairs):
        p = rng.beta(2, 3, n_img)  # both runs draw from the same per-image probabilities: only noise differs
        a, b = _simulated_ranks(p, caps, rng), _simulated_ranks(p, caps, rng)
        rejected += stats.paired_p_value(a, b, "rsum", 500, seed=int(rng.integers(1 << 30)))[0] < 0.05
    assert 0.02 <= rejected / n_pairs <= 0.08
    p = rng.beta(2, 3, n_img)
    better, base = _simulated_ranks(p, caps, rng, shift=0.15), _simulated_ranks(p, caps, rng)
    result = stats.paired_test(better, base, "rsum", 2000)
    assert result["p_value"] < 0.01 and result["delta"] > 0 and result["ci"][0] > 0


def test_paired_test_agrees_with_scipy_on_a_linear_metric():
    """The sign-flip p-value and its bootstrap interval against scipy's paired permutation test / bootstrap on
    the per-image contributions (same statistic, other random draws: equal within Monte Carlo error)."""
    import scipy.stats as scipy_stats
    a, _ = _evaluated(n_img=80, noise=1.3, seed=5)
    b, _ = _evaluated(n_img=80, noise=1.6, seed=5)
    mine = stats.paired_test(a, b, "t2i:R@5", 4000, seed=2)
    ca = stats._contributions(a, ("image_search",), "R@5")
    cb = stats._contributions(b, ("image_search",), "R@5")
    assert mine["delta"] == pytest.approx((ca - cb).sum())
    ref = scipy_stats.permutation_test((ca, cb), lambda x, y: np.sum(x - y), permutation_type="samples",
                                       n_resamples=4000, random_state=3)
    assert mine["p_value"] == pytest.approx(ref.pvalue, abs=0.03)


def test_holm_matches_the_definition():
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([0.6, 0.6]) == [1.0, 1.0]


def test_bad_requests_are_user_errors():
    a, _ = _evaluated(n_img=20)
    b, _ = _evaluated(n_img=30)
    with pytest.raises(UserError, match="same test images"):
        stats.paired_test(a, b)
    with pytest.raises(UserError, match="unknown metric"):
        stats.paired_test(a, a, "R@3")
    with pytest.raises(UserError, match="at least 1"):
        stats.bootstrap_ci(a, 0)
    with pytest.raises(UserError, match="exactly the images"):
        stats.query_ranks([0, -1], [0, 0], [0, 1])
