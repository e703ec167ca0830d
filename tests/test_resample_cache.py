"""The interval bootstrap's resample counts kept between evaluations (cca_bench.resample_cache): the same
intervals from stored counts as from fresh draws, nothing stored that could give other numbers, nothing half
written."""

import numpy as np
import pytest
from test_stats import _evaluated

from cca_bench import resample_cache, stats


def _ci(ranks, cache_dir, resamples=2100, seed=4):
    sizes = [len(images) for images, _ in ranks.folds()]
    return stats.bootstrap_ci_mc(ranks, resamples, 0.95, seed, stats.ResampleDraws(sizes, resamples, seed, cache_dir))


def _entries(cache_dir):
    return sorted(p.name for p in (cache_dir / resample_cache.FOLDER).iterdir())


def _no_draws(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("drew resamples although their counts were stored")

    monkeypatch.setattr(stats, "_draw", refuse)


@pytest.mark.parametrize("folds", [1, 3])
def test_the_second_evaluation_reads_the_counts_and_gets_the_same_intervals(tmp_path, monkeypatch, folds):
    """The first evaluation stores the counts as it counts them; the second draws nothing and gets the
    intervals of fresh draws bit for bit (COCO 1k's folds too: each fold's counts side by side). Planted bugs
    it caught: the counts not put (the second evaluation drew); the stored folds read back in reverse order
    (other intervals); a block of the stored counts skipped (other intervals)."""
    ranks, _ = _evaluated(n_img=60, folds=folds)
    plain = _ci(ranks, None)
    assert _ci(ranks, tmp_path) == plain
    assert [name.rsplit(".", 1)[1] for name in _entries(tmp_path)] == ["json", "npy"]
    _no_draws(monkeypatch)
    assert _ci(ranks, tmp_path) == plain


def test_counts_of_another_seed_resamples_size_or_numpy_are_not_read(tmp_path, monkeypatch):
    """The key holds everything the counts depend on. Planted bugs it caught: the seed left out of the key (the
    seed-5 intervals came out as seed 4's); numpy's version left out."""
    ranks, _ = _evaluated(n_img=60)
    _ci(ranks, tmp_path, 2100, 4)
    k = resample_cache.key([60], 2100, 4, stats.BLOCK)
    assert resample_cache.load(tmp_path, k) is not None
    for other in ([60], 2100, 5), ([60], 2000, 4), ([61], 2100, 4):
        assert resample_cache.load(tmp_path, resample_cache.key(*other, stats.BLOCK)) is None, other
    assert _ci(ranks, tmp_path, 2100, 5) == _ci(ranks, None, 2100, 5)
    monkeypatch.setattr(np, "__version__", "0.0.0")
    assert resample_cache.load(tmp_path, resample_cache.key([60], 2100, 4, stats.BLOCK)) is None


@pytest.mark.parametrize("damage", ["truncated", "empty", "other key"])
def test_a_damaged_entry_is_drawn_again_and_replaced(tmp_path, damage):
    """A truncated or empty array, or a key file that names another key: drawn again, the same intervals, and
    the entry replaced. Planted bug it caught: the stored key file not compared with the key asked for (the
    counts of the entry were taken as another seed's)."""
    ranks, _ = _evaluated(n_img=60)
    plain = _ci(ranks, None)
    _ci(ranks, tmp_path)
    npy, meta = (tmp_path / resample_cache.FOLDER / name for name in _entries(tmp_path)[::-1])
    if damage == "truncated":
        npy.write_bytes(npy.read_bytes()[:-1000])
    elif damage == "empty":
        npy.write_bytes(b"")
    else:
        meta.write_text(meta.read_text().replace('"seed": 4', '"seed": 5'))
    k = resample_cache.key([60], 2100, 4, stats.BLOCK)
    assert resample_cache.load(tmp_path, k) is None
    assert _ci(ranks, tmp_path) == plain
    assert resample_cache.load(tmp_path, k) is not None  # replaced


def test_an_evaluation_that_fails_or_is_interrupted_leaves_no_entry(tmp_path, monkeypatch):
    """The error goes on up (not swallowed into an uncached retry) and no entry or temporary file stays.
    Planted bug it caught: store_while catching the failure and scoring again without the cache."""
    ranks, _ = _evaluated(n_img=60)
    real, calls = stats.replicate_metrics, []

    def fail_later(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(stats, "replicate_metrics", fail_later)
    with pytest.raises(KeyboardInterrupt):
        _ci(ranks, tmp_path)
    assert len(calls) == 2
    assert _entries(tmp_path) == []


def test_a_cache_folder_that_cannot_be_written_costs_the_cache_not_the_intervals(tmp_path):
    """A file where the cache folder should be: the intervals come out as without a cache. Planted bug it
    caught: the UserError of the writer let through (the evaluation failed)."""
    ranks, _ = _evaluated(n_img=60)
    (tmp_path / resample_cache.FOLDER).write_text("not a folder")
    assert _ci(ranks, tmp_path) == _ci(ranks, None)


def test_counts_above_a_byte_or_past_the_size_cap_are_not_stored(tmp_path, monkeypatch):
    """A count that a byte cannot hold (only possible above 255 images per fold) keeps the entry from being
    written; so does an entry over MAX_BYTES. Planted bugs it caught: the count check dropped (256 stored as
    0); the size cap not applied."""
    k = resample_cache.key([300], 2, 0, stats.BLOCK)
    block = [np.array([[256.0] + [0.0] * 299, [1.0] * 300], np.float32)]
    assert resample_cache.store_while(tmp_path, k, lambda put: put(block) or "scored") == "scored"
    assert resample_cache.load(tmp_path, k) is None and _entries(tmp_path) == []
    block[0][0, :2] = [255, 1]
    resample_cache.store_while(tmp_path, k, lambda put: put(block))
    np.testing.assert_array_equal(resample_cache.load(tmp_path, k), block[0])

    ranks, _ = _evaluated(n_img=60)
    monkeypatch.setattr(resample_cache, "MAX_BYTES", 60 * 2100 - 1)
    draws = stats.ResampleDraws([60], 2100, 4, tmp_path / "small")
    assert draws.cache_dir is None
    stats.bootstrap_ci_mc(ranks, 2100, 0.95, 4, draws)
    assert not (tmp_path / "small").exists()


@pytest.mark.parametrize("rows", [2, 4])
def test_exactly_the_keys_resamples_must_be_put_for_the_entry_to_stay(tmp_path, rows):
    """A run that puts fewer or more resamples than its key says stores nothing. Planted bug it caught: the
    row count not checked (4 rows put under a key of 3 were stored, and read back)."""
    k = resample_cache.key([10], 3, 0, stats.BLOCK)
    assert resample_cache.store_while(tmp_path, k, lambda put: put([np.ones((rows, 10))]) or 7) == 7
    assert resample_cache.load(tmp_path, k) is None and _entries(tmp_path) == []


def test_stored_counts_are_never_positions():
    """Stored counts reach the counting step as uint8 and positions never do: the draw order's position dtypes
    are uint16 and int64, so the dtype tells the two apart."""
    rng = np.random.default_rng(0)
    assert {stats._draw(rng, n, 2).dtype for n in (10, 1 << 16, (1 << 16) + 1)} == {
        np.dtype(np.uint16),
        np.dtype(np.int64),
    }
    counts = np.array([[2, 0, 1]], np.uint8)
    np.testing.assert_array_equal(stats._counts(counts, np.float32), counts)


@pytest.mark.parametrize("n_img, resamples", [(60, 30_000), (2_000, 10_000)])
def test_the_memory_refusal_bound_holds_the_traced_peak(n_img, resamples):
    """``stats.resampling_bytes`` (what --bootstrap and significance --resamples are refused on) is at least the
    peak numpy allocations traced while the interval bootstrap and a paired test run, and, now that both work
    in blocks, well under the (resamples x images) float64 matrix and draws that the old bound assumed. Planted
    bugs it caught: the replicates left out of the bound (the 60-image case); a paired test's whole draws left
    out (the 2,000-image case); the old 16 bytes x resamples x images (the 2,000-image case's upper check)."""
    import tracemalloc

    ranks, _ = _evaluated(n_img=n_img)
    peaks = []
    for run in (
        lambda r: stats.bootstrap_ci_mc(ranks, r, 0.95, 0),
        lambda r: stats.paired_tests([ranks, ranks], [(0, 1)], ["rsum", "t2i:median_rank"], r, 0),
    ):
        run(10)  # first-call imports (scipy for the detectable difference) are not the statistic's memory
        tracemalloc.start()
        try:
            run(resamples)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    bound = [stats.resampling_bytes(resamples, n_img, paired) for paired in (False, True)]
    assert bound[0] >= peaks[0] and bound[1] >= peaks[1], (bound, peaks)
    if n_img >= 1000:
        assert max(bound) < 16 * resamples * n_img / 2
