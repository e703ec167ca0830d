"""Power and equivalence (cca_bench.power, paired_test's se/mdd): checked by simulating test sets from a known
population of per-image success probabilities, where the true R-sum difference is planted exactly."""

import math

import numpy as np
import pytest

from cca_bench import power, stats
from cca_bench.errors import UserError

CAPS = 5


def _ranks(p: np.ndarray, rng) -> stats.QueryRanks:
    """One run on a test set of len(p) images, CAPS captions each: every query of image i is a hit at rank 0
    with probability p[i] (the captions share it: correlated outcomes), else a miss at a rank in 10..99. Its
    R-sum is 3 * (i2t R@1 + t2i R@1), so a shift s of every p moves the expected R-sum by 600 s."""
    idx = np.repeat(np.arange(len(p)), CAPS)
    t2i = np.where(rng.random(len(idx)) < p[idx], 0, rng.integers(10, 100, len(idx)))
    i2t = np.where(rng.random(len(p)) < p, 0, rng.integers(10, 100, len(p)))
    return stats.query_ranks(i2t, t2i, idx)


def _population(n: int, rng) -> np.ndarray:
    """Per-image probabilities in [0.1, 0.7], so shifts up to 0.1 need no clipping."""
    return 0.1 + 0.6 * rng.beta(2, 3, n)


def _pair(n: int, true_delta: float, rng) -> tuple[stats.QueryRanks, stats.QueryRanks]:
    """(A, B) on the same n images whose expected R-sum difference A - B is ``true_delta``."""
    p = _population(n, rng)
    return _ranks(p + true_delta / 600, rng), _ranks(p, rng)


def test_mdd_of_a_simulated_design_has_its_stated_power():
    """The minimum detectable difference that paired_test reports (80% power, two-sided alpha 0.05) is the
    difference the sign-flip test detects 80% of the time: simulated power at the MDD within 0.72-0.88 (10% of
    0.8; the MC SD over 300 sets is 0.023). Planted bug caught: an MDD without the power term (1.96 SE, which
    has 50% power) gives a simulated power near 0.5."""
    rng = np.random.default_rng(11)
    n = 150
    mdds = [stats.paired_test(*_pair(n, 0.0, rng), "rsum", 1000, seed=i)["mdd"] for i in range(8)]
    mdd = float(np.mean(mdds))
    assert 10 < mdd < 60  # a design where the test is neither hopeless nor trivial
    hits = [
        stats.paired_p_value(*_pair(n, mdd, rng), "rsum", 400, seed=int(rng.integers(1 << 30)))[0] < 0.05
        for _ in range(300)
    ]
    assert 0.72 <= np.mean(hits) <= 0.88, (mdd, np.mean(hits))


def test_tost_planted_equivalence_difference_and_its_size():
    """TOST on paired_test's delta and se. Planted equivalence (true difference 0, margin 3 SE): equivalent in
    most sets; planted difference (true difference 2 margins): never equivalent; at the margin itself
    (the boundary of H0) it claims equivalence at most ~alpha of the time, the size of the test. Planted bug
    caught: taking the smaller of the two one-sided p-values (instead of the larger) claims equivalence for
    about half the sets at the margin and for the planted difference."""
    rng = np.random.default_rng(5)
    n, sets = 150, 150
    se = np.mean([stats.paired_test(*_pair(n, 0.0, rng), "rsum", 500, seed=i)["se"] for i in range(6)])
    margin = 3 * se
    verdicts = {}
    for name, true_delta in (("equal", 0.0), ("at margin", margin), ("different", 2 * margin)):
        out = []
        for i in range(sets):
            r = stats.paired_test(*_pair(n, true_delta, rng), "rsum", 500, seed=i)
            out.append(power.tost(r["delta"], r["se"], margin)["equivalent"])
        verdicts[name] = np.mean(out)
    assert verdicts["equal"] >= 0.8, verdicts
    assert verdicts["at margin"] <= 0.1, verdicts
    assert verdicts["different"] == 0.0, verdicts


def test_tost_interval_agrees_with_its_p_value():
    for delta, se, margin in ((0.5, 1.0, 2.0), (1.5, 1.0, 2.0), (-1.9, 0.3, 2.0), (3.0, 1.0, 2.0)):
        r = power.tost(delta, se, margin)
        inside = -margin < r["interval"][0] and r["interval"][1] < margin
        assert r["equivalent"] == inside, (delta, se, margin)
    with pytest.raises(UserError, match="--equivalence"):
        power.tost(0.0, 1.0, 0.0)


def test_images_needed_inverts_the_mdd():
    sd = 40.0
    n = power.images_needed(sd, 5.0)
    assert power.mdd_at(sd, n) <= 5.0 < power.mdd_at(sd, n - 1)
    assert power.mdd(1.0) == pytest.approx(2.8016, abs=1e-3)  # (1.95996 + 0.84162) SE
    assert power.paired_unit_sd(np.array([1.0, 3.0, 5.0]), correlation=0.5) == pytest.approx(2.0)
    assert math.isfinite(power.mdd(1.0, df=4)) and power.mdd(1.0, df=4) > power.mdd(1.0)
