"""What a paired test could have seen: standard error, minimum detectable difference, TOST equivalence, sample size.

Pure functions of a difference's point estimate, its standard error (SE) and degrees of freedom (``df``; infinite
for the image-level tests, whose SE comes from hundreds of test images, finite for the seed-aware t test of
:mod:`cca_bench.seed_stats`). The normal / t approximations are the textbook ones (e.g. Chow, Shao and Wang,
"Sample Size Calculations in Clinical Research", ch. 3; Schuirmann 1987 for the two one-sided tests):

- minimum detectable difference (MDD) of a two-sided level-alpha test at power 1 - beta:
  ``(q(1 - alpha/2) + q(1 - beta)) * SE`` with q the normal (or t_df) quantile;
- TOST: the difference lies within +-margin when both one-sided tests reject, H0-: delta <= -margin and
  H0+: delta >= margin; p = max of the two one-sided p-values; equivalently the (1 - 2 alpha) interval lies
  inside (-margin, +margin);
- sample size: the paired SE of a sum over images shrinks as 1/sqrt(n) (per-image contributions u_i = n c_i
  with ``metric = mean(u)``), so n images detect ``delta`` at the stated power when
  ``n >= ((q(1 - alpha/2) + q(1 - beta)) * sd(u_A - u_B) / delta)^2``.
"""

from __future__ import annotations

import math

import numpy as np

from cca_bench.errors import UserError

ALPHA = 0.05
POWER = 0.80


def _q(p: float, df: float) -> float:
    """The p-quantile of t_df (the normal one for an infinite df)."""
    from scipy import stats as st

    return float(st.norm.ppf(p) if not math.isfinite(df) else st.t.ppf(p, df))


def _sf(x: float, df: float) -> float:
    from scipy import stats as st

    return float(st.norm.sf(x) if not math.isfinite(df) else st.t.sf(x, df))


def mdd(se: float, df: float = math.inf, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable difference of a two-sided level-``alpha`` test at ``power``: the true difference the
    test rejects with probability ``power`` when the estimate is normal (t_df) around it with SD ``se``."""
    return (_q(1 - alpha / 2, df) + _q(power, df)) * se


def tost(delta: float, se: float, margin: float, df: float = math.inf, alpha: float = ALPHA) -> dict:
    """Two one-sided tests (Schuirmann 1987) of ``|true difference| < margin`` for an estimate ``delta`` with
    standard error ``se``: {margin, p_value (the larger one-sided p), equivalent (p < alpha), interval (the
    1 - 2 alpha interval that lies inside +-margin exactly when equivalent), alpha}."""
    if not margin > 0 or not math.isfinite(margin):
        raise UserError(f"--equivalence takes a positive margin in the metric's units (got {margin})")
    if se <= 0:  # a difference without spread: equivalent exactly when it lies inside the margin
        p = 0.0 if abs(delta) < margin else 1.0
    else:
        p = max(_sf((delta + margin) / se, df), _sf((margin - delta) / se, df))
    half = _q(1 - alpha, df) * se
    return {
        "margin": float(margin),
        "p_value": float(p),
        "equivalent": bool(p < alpha),
        "interval": [float(delta - half), float(delta + half)],
        "alpha": alpha,
    }


def images_needed(sd_unit: float, delta: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Test images a paired test needs to detect a true difference ``delta`` at ``power`` (two-sided
    ``alpha``), for per-image paired differences of SD ``sd_unit`` in unit scale (see the module docstring)."""
    if not delta > 0:
        raise UserError(f"--delta must be a positive difference in the metric's units (got {delta})")
    return max(2, math.ceil(((_q(1 - alpha / 2, math.inf) + _q(power, math.inf)) * sd_unit / delta) ** 2))


def mdd_at(sd_unit: float, n_images: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The minimum detectable difference of a paired test on ``n_images`` images (per-image SD ``sd_unit``)."""
    return mdd(sd_unit / math.sqrt(n_images), math.inf, alpha, power)


def paired_unit_sd(unit_a: np.ndarray, unit_b: np.ndarray | None = None, correlation: float | None = None) -> float:
    """SD of the per-image paired difference u_A - u_B (unit scale: ``u = n * contribution``, (n,) each).

    With two runs: their actual differences. With one run (``unit_b`` None) the assumed model is a second
    method with the same per-image variance whose contributions correlate ``correlation`` with this run's:
    sd(u_A - u_B) = sd(u) sqrt(2 (1 - correlation))."""
    if unit_b is not None:
        return float(np.std(unit_a - unit_b, ddof=1))
    if correlation is None or not -1 <= correlation < 1:
        raise UserError(f"--correlation must lie in [-1, 1) (got {correlation})")
    return float(np.std(unit_a, ddof=1) * math.sqrt(2 * (1 - correlation)))
