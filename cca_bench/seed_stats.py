"""Seed-aware comparison of two methods: a t test over training seeds and test images together.

A paired test over test images (:func:`cca_bench.stats.paired_test`) conditions on the trained models: it asks
whether THESE two models differ on the population of images. For a method whose model depends on a random
seed (kcca landmarks / random features, asif anchors, dcca, vse, Fisher mixtures) two seeds of one method
differ by more than the image-level SE, so that test calls seed luck a method difference (issue 27: 15.6% false
positives at alpha 0.05 over 45 seed pairs of kcca with random Fourier features). When a run holds several
seeds (``--seeds``), the question becomes whether the METHODS differ, over seeds and images.

Model (two-way random effects, per image i, seed s, run r; c = the image's additive share of the metric):
c_rsi = m_ri + u_rs + w_rsi, with u the seed's effect on the whole test set and w the seed-by-image noise.
The estimate delta = mean_s X_As - mean_s X_Bs (X_rs = sum_i c_rsi, the seed's metric) has variance

    V = var_s(X_A) / S_A + var_s(X_B) / S_B               (seeds: u and w together, estimated exactly)
      + sum_folds n_f [var_i(dbar) - sig2_wA / S_A - sig2_wB / S_B]   (images: method-by-image differences)

where dbar_i is the seed-averaged per-image difference and sig2_w the residual mean square of a run's
(seeds x images) table of contributions (the image term would otherwise count w twice). The test is
t = delta / sqrt(V) with Welch-Satterthwaite degrees of freedom (S_A - 1, S_B - 1 and n_images - 1 for the
three terms), two-sided. With 2-5 seeds this is what keeps the false-positive rate at alpha: a bootstrap over so
few seeds understates their variance by (S - 1) / S and its percentile interval is too narrow, so no two-level
bootstrap is used. Median ranks are no sum over images: their image term is the variance of the paired image
bootstrap of the seed-averaged medians, which still holds w (conservative, said in ``test``).

A run with one seed contributes no seed term: right for a deterministic method, and for a seed-dependent
method an omission that the caller must state (:func:`seed_note`).
"""

from __future__ import annotations

import math

import numpy as np

from cca_bench import power, stats

TEST = (
    "seed-aware t test over training seeds and test images (variance = each run's seed variance + the "
    "paired image variance net of seed-by-image noise; Welch-Satterthwaite df; two-sided)"
)
TEST_MEDIAN = (
    "seed-aware t test over training seeds and test images (variance = each run's seed variance + the "
    "paired image-bootstrap variance of the seed-averaged medians, which also holds seed-by-image noise: "
    "conservative; Welch-Satterthwaite df; two-sided)"
)


def seed_aware(a: stats.QueryRanks, b: stats.QueryRanks) -> bool:
    """Whether a comparison of these two runs tests methods over seeds (either holds several seeds)."""
    return stats.n_seeds(a) > 1 or stats.n_seeds(b) > 1


def seed_values(ranks: stats.QueryRanks, tasks: tuple[str, ...], metric: str) -> np.ndarray:
    """(S,) the metric of each seed of ``ranks`` on the whole test set."""
    return np.array([float(stats.metric_value(p, tasks, metric)) for p in stats.per_seed_metrics(ranks)])


def _seed_contributions(ranks: stats.QueryRanks, tasks, metric: str) -> np.ndarray:
    """(S, n_images) each seed's per-image shares of a linear metric (:func:`cca_bench.stats._contributions`)."""
    return np.stack(
        [stats._contributions(stats.seed_slice(ranks, s), tasks, metric) for s in range(stats.n_seeds(ranks))]
    )


def _residual_ms(table: np.ndarray) -> float:
    """Residual mean square of a (seeds x images) table after removing seed and image means (two-way ANOVA
    without replication); 0 for one seed (no estimate: the caller keeps w in the image term then)."""
    s, n = table.shape
    if s < 2 or n < 2:
        return 0.0
    r = table - table.mean(0) - table.mean(1, keepdims=True) + table.mean()
    return float((r**2).sum() / ((s - 1) * (n - 1)))


def image_variance(a: stats.QueryRanks, b: stats.QueryRanks, tasks, metric: str, resamples: int, seed: int) -> float:
    """The image term of the module docstring's V (>= 0)."""
    if metric == "median_rank":
        deltas = stats._bootstrap_deltas(a, b, tasks, metric, resamples, seed)
        return float(np.var(deltas, ddof=1))
    ca, cb = _seed_contributions(a, tasks, metric), _seed_contributions(b, tasks, metric)
    total = 0.0
    for images, _ in a.folds():
        ta, tb = ca[:, images], cb[:, images]
        dbar = ta.mean(0) - tb.mean(0)
        noise = _residual_ms(ta) / len(ta) + _residual_ms(tb) / len(tb)
        total += len(images) * (float(np.var(dbar, ddof=1)) - noise)
    return max(total, 0.0)


def seed_aware_test(
    a: stats.QueryRanks,
    b: stats.QueryRanks,
    metric: str = "rsum",
    resamples: int = stats.PAIRED_RESAMPLES,
    seed: int = stats.PAIRED_SEED,
    level: float = 0.95,
) -> dict:
    """Difference A - B of ``metric`` between two METHODS, over their seeds and the shared test images.

    Returns :func:`cca_bench.stats.paired_test`'s keys (``resamples`` counts the image bootstrap, used by
    median ranks only) plus ``se``, ``mdd`` (80% power, two-sided alpha 0.05), ``df``, ``seed_aware`` (True),
    ``seeds`` ([S_A, S_B]), ``seed_sd`` ([sd_A, sd_B], None for one seed) and ``variance`` (its three terms)."""
    tasks, m = stats._check_pair(a, b, metric, resamples)
    xa, xb = seed_values(a, tasks, m), seed_values(b, tasks, m)
    va, vb = (float(np.var(x, ddof=1)) / len(x) if len(x) > 1 else 0.0 for x in (xa, xb))
    v_img = image_variance(a, b, tasks, m, resamples, seed)
    terms = [(va, len(xa) - 1), (vb, len(xb) - 1), (v_img, a.n_images - len(a.folds()))]
    v = sum(t for t, _ in terms)
    df = v**2 / sum(t**2 / d for t, d in terms if t > 0) if v > 0 else math.inf
    delta = float(xa.mean() - xb.mean())
    se = math.sqrt(v)
    p = 2 * power._sf(abs(delta) / se, df) if se > 0 else float(delta == 0)
    half = power._q(1 - (1 - level) / 2, df) * se
    return {
        "metric": stats.metric_name(metric),
        "delta": delta,
        "ci": [delta - half, delta + half],
        "p_value": min(1.0, p),
        "test": TEST_MEDIAN if m == "median_rank" else TEST,
        "n_images": int(a.n_images),
        "resamples": int(resamples),
        "level": float(level),
        "lower_is_better": m in stats.LOWER_IS_BETTER,
        "se": se,
        "mdd": power.mdd(se, df),
        "df": df,
        "seed_aware": True,
        "seeds": [len(xa), len(xb)],
        "seed_sd": [float(np.std(x, ddof=1)) if len(x) > 1 else None for x in (xa, xb)],
        "variance": {"seeds_a": va, "seeds_b": vb, "images": v_img},
    }


def compare(
    a: stats.QueryRanks,
    b: stats.QueryRanks,
    metric: str = "rsum",
    resamples: int = stats.PAIRED_RESAMPLES,
    seed: int = stats.PAIRED_SEED,
    level: float = 0.95,
) -> dict:
    """The one comparison of two runs every surface uses: :func:`seed_aware_test` when either run holds several
    seeds, else the image-level :func:`cca_bench.stats.paired_test` (``seed_aware`` False)."""
    if seed_aware(a, b):
        return seed_aware_test(a, b, metric, resamples, seed, level)
    return stats.paired_test(a, b, metric, resamples, seed, level) | {"seed_aware": False, "seeds": [1, 1]}


def seed_note(seed_dependent: tuple[bool, bool], n_seeds: tuple[int, int]) -> str | None:
    """The sentence a verdict carries when a seed-dependent run holds one seed (its seed variance is not in the
    test), or None. ``seed_dependent``/``n_seeds``: per run (A, B)."""
    single = [name for name, dep, s in zip("AB", seed_dependent, n_seeds) if dep and s == 1]
    if not single:
        return None
    who = (
        "runs A and B are seed-dependent methods" if len(single) == 2 else f"run {single[0]} is a seed-dependent method"
    )
    return (
        f"note: {who} scored with one seed, so this test conditions on the trained model(s) and leaves "
        f"their seed variance out (two seeds of one method often differ significantly); "
        f"to include it, fit and score several seeds: `generate ... --seeds 0,1,2,3,4` and "
        f"`run_benchmark ... --seeds 0,1,2,3,4`"
    )
