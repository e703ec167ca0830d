"""Significance marks that never mislead (cca_bench.marks): the true best is bold even without ranks, runs that
cannot be tested are marked untested, the legend names each column's test, and Holm can reject in big tables."""

import numpy as np
import pandas as pd

from cca_bench import marks, stats
from cca_bench.errors import UserError


def _ranks(p: np.ndarray, rng, caps: int = 3) -> stats.QueryRanks:
    """A run whose every query of image i is a hit at rank 0 with probability p[i], else a rank in 10..99."""
    idx = np.repeat(np.arange(len(p)), caps)
    t2i = np.where(rng.random(len(idx)) < p[idx], 0, rng.integers(10, 100, len(idx)))
    i2t = np.where(rng.random(len(p)) < p, 0, rng.integers(10, 100, len(p)))
    return stats.query_ranks(i2t, t2i, idx)


def _table(named_ranks: dict, values: dict | None = None):
    """(compare frame, run records, load_ranks) for runs named -> QueryRanks (None: no ranks file); the frame's
    R-sum is each run's own (or ``values[name]`` for a run without ranks)."""
    values = values or {}
    rows, runs = [], []
    for name, r in named_ranks.items():
        value = values[name] if r is None else stats.rsum_of(stats.point_metrics(r))
        rows.append(
            {"Source": "this suite", "Dataset": "d", "Split": "test", "Protocol": "full", "_file": name, "R-sum": value}
        )
        runs.append({"_file": name, "split_fingerprint": "f"})

    def load(record):
        if named_ranks[record["_file"]] is None:
            raise UserError(f"{record['_file']} has no per-query ranks file")
        return named_ranks[record["_file"]]

    return pd.DataFrame(rows), runs, load


def test_best_without_ranks_is_bold_and_the_rest_untested():
    """The audit's case: cca+gmm (122.9) had no ranks file, cca (99.8) did; bold went to cca and cca+gmm sat
    unmarked, read as "significantly worse". Now the true best is bold and every run that cannot be tested
    against it is untested (‡). Planted bug caught: choosing the best among the runs with ranks only (the old
    rule) bolds "cca" and leaves "cca+gmm" unmarked."""
    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 0.6, 80)
    frame, runs, load = _table({"cca": _ranks(p, rng), "kcca": _ranks(p, rng), "cca+gmm": None}, {"cca+gmm": 999.0})
    got = marks.significance_marks(frame, runs, load, columns=("R-sum",))
    assert got[("cca+gmm", "R-sum")] == "best"
    assert got[("cca", "R-sum")] == got[("kcca", "R-sum")] == "untested"
    legend = marks.legend(got, ("R-sum", "t2i MedR"))
    assert "‡ = untested" in legend and "t2i MedR: paired bootstrap" in legend
    assert "R-sum: paired sign-flip permutation test" in legend
    assert marks.render("1.0", "untested") == "1.0 ‡" and marks.render("1.0", "best") == "**1.0**"


def test_runs_on_other_queries_or_missing_seeds_are_untested_not_unmarked():
    """A run scored on a subset of the queries (other image_index) cannot be paired with the best: untested.
    A run that reports 3 seeds but stored one ranking: untested. A testable, clearly worse run: unmarked.
    Planted bug caught: skipping untestable runs (the old rule) leaves them without a mark."""
    rng = np.random.default_rng(1)
    p = rng.uniform(0.3, 0.6, 80)
    best, worse = _ranks(p + 0.3, rng), _ranks(p - 0.25, rng)
    subset = _ranks(p[:60], rng)
    frame, runs, load = _table({"best": best, "worse": worse, "subset": subset, "seeds": _ranks(p, rng)})
    runs[3]["seed_metrics"] = [{}, {}, {}]
    got = marks.significance_marks(frame, runs, load, columns=("R-sum",))
    assert got[("best", "R-sum")] == "best"
    assert got[("subset", "R-sum")] == "untested" and got[("seeds", "R-sum")] == "untested"
    assert ("worse", "R-sum") not in got


def test_holm_can_reject_in_a_150_row_table():
    """150 runs clearly worse than the best: each sign-flip p sits at the resampling floor 1/(B+1), and Holm
    multiplies the smallest by 150. With resamples scaled to 20 x rows / alpha (60,000) every run is shown
    worse. Planted bug caught: resamples fixed at the old 2,000 make Holm's smallest adjusted p 150/2001 >
    alpha, so no run is rejected and all 150 get a dagger."""
    rng = np.random.default_rng(2)
    p = rng.uniform(0.2, 0.5, 40)
    named = {"best": _ranks(p + 0.45, rng)} | {f"run{i}": _ranks(p - 0.15, rng) for i in range(150)}
    frame, runs, load = _table(named)
    assert marks.resamples_for(150) * 0.05 >= 20 * 150
    got = marks.significance_marks(frame, runs, load, columns=("R-sum",))
    assert got[("best", "R-sum")] == "best"
    tied = [k for k, v in got.items() if v == "tied"]
    assert tied == [], f"{len(tied)} of 150 clearly worse runs not rejected"


def test_marks_share_the_sign_flips_and_equal_paired_test():
    """p_values_against draws one set of sign flips for all rows: each row's p equals paired_test's own p for
    that pair with the same resamples (one p for the same two runs on every surface)."""
    rng = np.random.default_rng(3)
    p = rng.uniform(0.2, 0.6, 50)
    best, others = _ranks(p + 0.05, rng), [_ranks(p, rng) for _ in range(3)]
    got, seed_aware = marks.p_values_against(best, others, "t2i:R@5", 2000)
    assert not seed_aware
    assert got == [stats.paired_test(best, o, "t2i:R@5", 2000)["p_value"] for o in others]


def test_published_rows_are_labelled_unpaired_and_take_no_marks():
    """A Flickr8k table holding an own run (without ranks) and Klein et al.'s published row: the published row
    gets no mark, the own run is bold (the best of this suite's runs), and the table says that published rows
    are compared only unpaired and approximately. Planted bug caught: letting published rows into the marks
    bolds the published R-sum instead of the own run."""
    from cca_bench.results import compare_frame, compare_markdown, published_frame, select_rows

    metrics = {t: {"R@1": 1.0, "R@5": 2.0, "R@10": 3.0, "median_rank": 90.0, "mean_rank": 120.0} for t in stats.TASKS}
    run = {
        "method": "cca",
        "dataset": "flickr8k",
        "split": "test",
        "features": "glove50_tinyimage",
        "distance": "cosine",
        "protocol": "full",
        "metrics": metrics,
        "_file": "own.json",
    }
    frame = select_rows(compare_frame([run], published_frame()), dataset="flickr8k")
    assert frame["Source"].ne("this suite").any()

    def load(record):
        raise UserError("no ranks file")

    got = marks.significance_marks(frame, [run], load, columns=("R-sum",))
    assert got == {("own.json", "R-sum"): "best"}
    text = compare_markdown(frame, got)
    assert "unpaired, approximate comparison" in text and "**12.0**" in text
