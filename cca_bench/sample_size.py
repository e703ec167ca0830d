"""How many test images a paired test needs: a run's per-image contributions turned into power and sample size.

Above :mod:`cca_bench.stats` (per-image contributions) and :mod:`cca_bench.power` (the normal-theory formulas);
the `power` command's arithmetic. The model is stated in :func:`plan` and in docs/statistics.md.
"""

from __future__ import annotations

import math

import numpy as np

from cca_bench import stats
from cca_bench.errors import UserError
from cca_bench.power import ALPHA, POWER, images_needed, mdd_at, paired_unit_sd

# The correlation of two methods' per-image R-sum contributions assumed when `power` is given one run: the
# smallest measured over the pairs of openmoji test runs in benchmarks/power_numbers.py (REPORT_power.md);
# a smaller correlation means a larger paired variance, so the assumption errs towards more images.
DEFAULT_CORRELATION = 0.5


def unit_contributions(ranks, metric: str = "rsum") -> np.ndarray:
    """(n_images,) ``n * c_i``: each image's share of a linear metric in unit scale (the metric is their mean),
    seed-averaged (:func:`cca_bench.stats._contributions`)."""
    tasks, m = stats.parse_metric(metric)
    if m == "median_rank":
        raise UserError("power needs a metric that is a sum over images (rsum, R@K, mean_rank); the median rank is not")
    return ranks.n_images * stats._contributions(ranks, tasks, m)


def plan(
    ranks_a,
    ranks_b=None,
    metric: str = "rsum",
    delta: float | None = None,
    correlation: float = DEFAULT_CORRELATION,
    sizes=(500, 1000, 5000),
) -> dict:
    """How many test images a paired test of ``metric`` needs, from a run's per-image contributions.

    With ``ranks_b`` (a second run on the same images) the per-image paired SD is measured; without it the
    model of :func:`paired_unit_sd` assumes a second method of equal per-image variance at ``correlation``.
    Returns {metric, n_images, sd_unit, model, se, mdd (at this split's size), mdd_at {n: mdd}, delta,
    images_needed (None without ``delta``), alpha, power}. The new test set is assumed to hold images like
    this split's (the same captions per image and difficulty)."""
    ua = unit_contributions(ranks_a, metric)
    if ranks_b is not None:
        stats.check_same_images(ranks_a, ranks_b)
        sd = paired_unit_sd(ua, unit_contributions(ranks_b, metric))
        model = "measured: SD of the per-image differences between the two runs"
    else:
        sd = paired_unit_sd(ua, correlation=correlation)
        model = (
            f"assumed: a second method with this run's per-image variance whose per-image contributions "
            f"correlate {correlation:g} with this run's (sd_diff = sd * sqrt(2 (1 - rho)))"
        )
    n = int(ranks_a.n_images)
    return {
        "metric": metric,
        "n_images": n,
        "sd_unit": sd,
        "model": model,
        "se": sd / math.sqrt(n),
        "mdd": mdd_at(sd, n),
        "mdd_at": {int(k): mdd_at(sd, int(k)) for k in sorted({*sizes, n})},
        "delta": delta,
        "images_needed": None if delta is None else images_needed(sd, delta),
        "alpha": ALPHA,
        "power": POWER,
    }
