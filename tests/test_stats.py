"""Bootstrap intervals and paired tests over test images (cca_bench.stats), checked against brute force,
against the evaluation's own metrics, and by simulation (coverage, false-positive rate, power)."""

import numpy as np
import pytest

from cca_bench import metrics, stats
from cca_bench.errors import UserError
from cca_bench.ties import TieCounts


def _evaluated(n_img=60, caps=5, k=8, noise=1.5, folds=1, seed=0):
    """(QueryRanks, metrics.evaluate_retrieval output) of a small synthetic retrieval problem."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_img, k))
    ims = latent + rng.normal(size=(n_img, k))
    idx = np.repeat(np.arange(n_img), caps)
    txt = latent[idx] + noise * rng.normal(size=(len(idx), k))
    per_fold = metrics.fold_counts(ims, txt, idx, folds=folds)
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
            t2i = ranks.t2i[0, np.concatenate([caps[ranks.image_index[caps] == i] for i in chosen])]
            per_fold.append(
                {
                    "image_annotation": metrics.summarize(i2t[i2t.queries()], ranks.ties),
                    "image_search": metrics.summarize(t2i, ranks.ties),
                }
            )
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
    ranks = stats.from_fold_ranks(metrics.fold_counts(ims, txt, idx), idx, 30)
    assert (ranks.i2t.above[0] == -1).sum() == 30 - len(set(idx.tolist()))
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
    np.testing.assert_array_equal(
        reps["rsum"], sum(np.array(brute[t][f"R@{k}"]) for t in stats.TASKS for k in (1, 5, 10))
    )
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
        hits = (ranks.t2i.above[0] == 0).astype(float)
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
    ref = scipy_stats.permutation_test(
        (ca, cb), lambda x, y: np.sum(x - y), permutation_type="samples", n_resamples=4000, random_state=3
    )
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


def _tied(folds: int, n_img: int = 40, seed: int = 0):
    """Small integer embeddings under dot (ties everywhere, several captions of an image tied together, images
    without captions): (image embeddings, caption embeddings, image_index, fold_counts output)."""
    rng = np.random.default_rng(seed)
    ims = rng.integers(-1, 2, size=(n_img, 3)).astype(np.float32)
    idx = np.sort(rng.integers(0, n_img, size=3 * n_img))
    txt = rng.integers(-1, 2, size=(len(idx), 3)).astype(np.float32)
    ims[~ims.any(1), 0], txt[~txt.any(1), 0] = 1, 1
    return ims, txt, idx, metrics.fold_counts(ims, txt, idx, "dot", folds)


@pytest.mark.parametrize("ties", ["expected", "optimistic", "pessimistic"])
@pytest.mark.parametrize("folds", [1, 2])
def test_fractional_hits_give_the_evaluation_and_the_brute_force_bootstrap(ties, folds):
    """Under every rule, on scores full of ties: the point metrics equal the evaluation's bit for bit, every
    bootstrap replicate equals the slow expansion of its resample into queries (fractional hits: equal up to
    rounding), and the sign-flip test's per-image contributions add up to the metric. Planted bugs it caught:
    the bootstrap's hit columns as ``rank < K`` of the expected rank, and the same in the contributions."""
    ims, txt, idx, per_fold = _tied(folds)
    ranks = stats.from_fold_ranks(per_fold, idx, len(ims), ties)
    point = stats.point_metrics(ranks)
    assert point == metrics.evaluate_retrieval(ims, txt, idx, "dot", folds, ties)
    assert ties != "expected" or (ranks.i2t.tied > 0).any() and (ranks.i2t.gt_tied > 1).any()
    reps, brute = stats.bootstrap_replicates(ranks, 30, seed=7), _brute_force(ranks, 30, seed=7)
    for t in stats.TASKS:
        for m in stats.METRICS:
            np.testing.assert_allclose(reps[t][m], brute[t][m], rtol=1e-12, err_msg=f"{t} {m}")
    assert stats._contributions(ranks, stats.TASKS, "rsum").sum() == pytest.approx(stats.rsum_of(point), rel=1e-12)
    for t in stats.TASKS:
        assert stats._contributions(ranks, (t,), "mean_rank").sum() + 1 == pytest.approx(point[t]["mean_rank"])


def test_a_paired_test_needs_one_tie_rule():
    """Two runs of the same embeddings under different rules are refused in one line (their metrics differ by
    the rule, not by the model). Planted bug it caught: check_same_images without the rule check (p = 1)."""
    ims, txt, idx, per_fold = _tied(1)
    a, b = (stats.from_fold_ranks(per_fold, idx, len(ims), rule) for rule in ("expected", "optimistic"))
    with pytest.raises(UserError, match="different tie rules") as e:
        stats.paired_test(a, b)
    assert "\n" not in str(e.value)
    assert stats.paired_test(a, a)["p_value"] == 1.0


def _reference_replicates(ranks: stats.QueryRanks, resamples: int, seed: int) -> dict:
    """The bootstrap as it was computed before the fast path, written out plainly: the documented draws, a
    bincount per resample, the per-image columns (n, 10) and ONE float64 product per fold, seed and block,
    the same divisions, fold then seed means; each median by expanding the resample into its queries
    (``np.median`` of the repeated ranks: exact, the ranks are halves at worst)."""
    rng = np.random.default_rng(seed)
    folds, n_seeds = ranks.folds(), len(ranks.i2t)
    out = {t: {m: [] for m in stats.METRICS} for t in stats.TASKS}
    for start in range(0, resamples, stats.BLOCK):
        b = min(stats.BLOCK, resamples - start)
        counts = [
            np.stack([np.bincount(r, minlength=len(im)) for r in rng.integers(0, len(im), (b, len(im)), np.uint16)])
            for im, _ in folds
        ]
        per_fold = []
        for (images, caps), c in zip(folds, counts):
            c = c.astype(np.float64)
            owner, n = np.searchsorted(images, ranks.image_index[caps]), len(images)
            seeds = []
            for s in range(n_seeds):
                i2t, t2i = ranks.i2t[s, images], ranks.t2i[s, caps]
                q, ri, rt = i2t.queries(), i2t.rank(ranks.ties), t2i.rank(ranks.ties)
                cols = [q.astype(float), np.where(q, ri, 0.0), np.bincount(owner, minlength=n).astype(float)]
                cols += [np.bincount(owner, weights=rt, minlength=n)]
                for k in stats.KS:
                    cols += [i2t.hit(k, ranks.ties), np.bincount(owner, weights=t2i.hit(k, ranks.ties), minlength=n)]
                sums = (c @ np.stack(cols, axis=1)).T
                rec = {}
                for task, den, total, hits, vals, who in (
                    ("image_annotation", sums[0], sums[1], sums[4::2], ri[q], np.flatnonzero(q)),
                    ("image_search", sums[2], sums[3], sums[5::2], rt, owner),
                ):
                    rec[task] = {f"R@{k}": 100.0 * (h / den) for k, h in zip(stats.KS, hits)}
                    rec[task]["mean_rank"] = total / den + 1
                    expanded = [np.repeat(vals, c[r, who].astype(np.int64)) for r in range(b)]
                    rec[task]["median_rank"] = np.array([np.floor(np.median(e)) + 1 for e in expanded])
                seeds.append(rec)
            per_fold.append(seeds)
        for t in stats.TASKS:
            for m in stats.METRICS:
                out[t][m].append(
                    np.mean([np.mean([f[s][t][m] for f in per_fold], axis=0) for s in range(n_seeds)], axis=0)
                )
    return {t: {m: np.concatenate(out[t][m]) for m in stats.METRICS} for t in stats.TASKS}


@pytest.mark.parametrize("dense_columns", [0, stats.DENSE_MEDIAN_COLUMNS])
@pytest.mark.parametrize("ties", ["expected", "pessimistic"])
def test_bootstrap_equals_the_plain_computation_bit_for_bit(monkeypatch, ties, dense_columns):
    """Every replicate (two seeds, three folds of 40 images, ties everywhere, 2,300 resamples: three blocks)
    equals :func:`_reference_replicates` EXACTLY, the sums from the float64 product (expected ranks: halves
    and fractions) or from float32 digits (pessimistic: whole numbers), the medians' weights one dense GEMM or the
    sparse product (``DENSE_MEDIAN_COLUMNS`` 0), their windows widened for some blocks. Planted bugs it
    caught: the dense weights not made cumulative over columns; a median accepted in the column above its
    window (``hi.max() > b - a + 1`` as the test for outside); the folds' draws of a block taken in reverse
    fold order; the sums' base-256 digits put back with the middle and high ones swapped (pessimistic: whole
    numbers, the float32 digit path); fractional columns sent down that path too (expected: its hit
    probabilities rounded away); each block counted into the buffer the previous block is still being scored
    from (``bootstrap_replicates`` scores in a helper thread)."""
    monkeypatch.setattr(stats, "DENSE_MEDIAN_COLUMNS", dense_columns)
    widths = []
    real = stats._Median._window

    def seen(self, half_width, dtype):
        widths.append(half_width)
        return real(self, half_width, dtype)

    monkeypatch.setattr(stats._Median, "_window", seen)
    ims, txt, idx, per_fold = _tied(3, n_img=120)
    rng = np.random.default_rng(1)  # a second "seed" of the model: other captions' embeddings, same split
    txt2 = np.where(rng.random(txt.shape) < 0.3, rng.integers(-1, 2, txt.shape), txt).astype(np.float32)
    txt2[~txt2.any(1), 0] = 1
    per_seed = [per_fold, metrics.fold_counts(ims, txt2, idx, "dot", 3)]
    ranks = stats.stack_seeds([stats.from_fold_ranks(p, idx, len(ims), ties) for p in per_seed])
    got, want = stats.bootstrap_replicates(ranks, 2300, seed=5), _reference_replicates(ranks, 2300, seed=5)
    for t in stats.TASKS:
        for m in stats.METRICS:
            np.testing.assert_array_equal(got[t][m], want[t][m], err_msg=f"{t} {m}")
    assert max(widths) > min(widths)  # some window was widened


@pytest.mark.parametrize("prefetch", [stats.PREFETCH_BYTES, 1])
def test_draws_started_early_give_the_same_intervals(monkeypatch, prefetch):
    """Draws made ahead by a :class:`stats.ResampleDraws` started before the bootstrap (as ``evaluation.score``
    starts them once its GEMM passes are done), or drawn when read because a block exceeds ``PREFETCH_BYTES``,
    give the intervals drawn on the spot, and a stream for another seed is not used. Planted bugs it caught:
    ``bootstrap_replicates`` taking any stream it is given (the other seed's intervals came out); the
    generator started afresh for each block (``default_rng(seed)`` inside the block loop)."""
    monkeypatch.setattr(stats, "PREFETCH_BYTES", prefetch)
    ranks, _ = _evaluated(n_img=60, folds=3)
    sizes = [len(images) for images, _ in ranks.folds()]
    plain = stats.bootstrap_ci_mc(ranks, 2100, 0.95, 4)
    early = stats.bootstrap_ci_mc(ranks, 2100, 0.95, 4, stats.ResampleDraws(sizes, 2100, 4))
    other = stats.bootstrap_ci_mc(ranks, 2100, 0.95, 4, stats.ResampleDraws(sizes, 2100, 5))
    assert early == plain and other == plain
    assert plain != stats.bootstrap_ci_mc(ranks, 2100, 0.95, 5)


def test_bootstrap_with_halves_takes_the_scaled_digits_bit_for_bit():
    """Ties only in pairs under the expected rule make expected ranks and hit probabilities halves: the sums'
    columns are scaled by 2 into whole numbers (``_limbs``) and every replicate still equals
    :func:`_reference_replicates` exactly. Planted bug it caught: the scaled sums put back without dividing
    by their scale (``_from_limbs``)."""
    rng = np.random.default_rng(3)
    n = 300
    idx = np.repeat(np.arange(n), 2)
    i2t = TieCounts(rng.integers(0, 40, n), rng.integers(0, 2, n), np.ones(n, dtype=np.int64))
    t2i = TieCounts(rng.integers(0, 40, 2 * n), rng.integers(0, 2, 2 * n), np.ones(2 * n, dtype=np.int64))
    ranks = stats.query_ranks(i2t, t2i, idx, ties="expected")
    plan = stats.fold_plans(ranks)[0][0][0]
    assert plan.limbs is not None and (plan.limbs[1] == 2).any()  # the scaled path, not the float64 product
    got, want = stats.bootstrap_replicates(ranks, 1200, seed=2), _reference_replicates(ranks, 1200, seed=2)
    for t in stats.TASKS:
        for m in stats.METRICS:
            np.testing.assert_array_equal(got[t][m], want[t][m], err_msg=f"{t} {m}")
