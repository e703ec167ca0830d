"""Monte Carlo precision of the bootstrap intervals: blockwise draws, and the recorded error of each bound."""

import numpy as np

from cca_bench import stats


def _quickstart_like(n_img=1000, caps=1, seed=0) -> stats.QueryRanks:
    """A synthetic test set shaped like the quickstart's (openmoji test: 1,000 images, R-sum near 100)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 3.0, n_img)
    idx = np.repeat(np.arange(n_img), caps)
    t2i = np.where(rng.random(len(idx)) < p[idx], rng.integers(0, 3, len(idx)), rng.integers(3, 400, len(idx)))
    i2t = np.where(rng.random(n_img) < p, rng.integers(0, 3, n_img), rng.integers(3, 400, n_img))
    return stats.query_ranks(i2t, t2i, idx)


def test_recorded_mc_error_predicts_how_far_the_bounds_move_with_the_seed():
    """Across 12 bootstrap seeds the R-sum bounds spread with an SD that the recorded Monte Carlo error
    predicts within a factor 2, at 1,000 and at 10,000 resamples (where it is sqrt(10) times smaller).
    Planted bug caught: the error without its 1/sqrt(B) (h = sqrt(q (1 - q))) is about 10x the spread."""
    ranks = _quickstart_like()
    for resamples in (1000, 10000):
        bounds, errors = [], []
        for seed in range(12):
            ci, mc = stats.bootstrap_ci_mc(ranks, resamples, 0.95, seed)
            bounds.append(ci["rsum"])
            errors.append(mc["rsum"])
        spread, predicted = np.std(bounds, axis=0, ddof=1), np.mean(errors, axis=0)
        assert np.all((spread / predicted > 0.5) & (spread / predicted < 2)), (resamples, spread, predicted)
    assert predicted.max() < 0.3  # at the default 10,000 resamples a bound moves by a few tenths at most


def test_blocks_continue_the_draws_of_the_first_block():
    """B above one block (1,000) draws further blocks from the same generator: the first 1,000 replicates of
    a 2,500-resample bootstrap are the 1,000-resample bootstrap's, bit for bit. Planted bug caught: the blocks
    concatenated in another order."""
    ranks = _quickstart_like(n_img=200, caps=2)
    small, big = stats.bootstrap_replicates(ranks, 1000, 3), stats.bootstrap_replicates(ranks, 2500, 3)
    assert big["rsum"].shape == (2500,)
    np.testing.assert_array_equal(big["rsum"][:1000], small["rsum"])
    np.testing.assert_array_equal(big["image_search"]["median_rank"][:1000], small["image_search"]["median_rank"])
