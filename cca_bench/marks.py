"""Significance marks of a compare table: the best of each column, the runs not shown worse, and the untested.

Pure over a compare frame (:func:`cca_bench.results.compare_frame`) and the runs' per-query ranks: the caller
passes a ``load_ranks(record)`` that returns a :class:`cca_bench.stats.QueryRanks` or raises UserError.
Marks never mislead (issue 27):

- **bold** is the true best of the column among this suite's runs, whether or not it kept its ranks;
- a run is tested against that best (paired test on the same test images, :func:`cca_bench.seed_stats.compare`'s
  test: the sign-flip permutation test for R@K, R-sum and mean rank, the paired bootstrap for the median rank,
  the seed-aware t test when either run holds several seeds), Holm-corrected over the rows compared;
  "tied" (†) = not significantly worse at alpha;
- a run that cannot be tested (its or the best's ranks missing, other test images or queries, fewer seeds
  stored than it reports) is "untested" (‡), never left unmarked;
- the resamples grow with the rows compared, ``B >= 20 * rows / alpha``, so that Holm's smallest threshold
  alpha / rows lies above the resampling floor 1 / (B + 1) and a difference can be rejected in any table.
"""

from __future__ import annotations

import math

import numpy as np

from cca_bench import seed_stats, stats
from cca_bench.errors import UserError

OWN_SOURCE = "this suite"
GROUP = ["Dataset", "Split", "Protocol"]
COLUMN_METRIC = {
    "R-sum": "rsum",
    **{
        f"{s} {n}": f"{s}:{k}"
        for s in ("i2t", "t2i")
        for k, n in (("R@1", "R@1"), ("R@5", "R@5"), ("R@10", "R@10"), ("median_rank", "MedR"), ("mean_rank", "MeanR"))
    },
}
SYMBOL = {"tied": "†", "untested": "‡"}


def resamples_for(rows: int, alpha: float = 0.05) -> int:
    """Resamples of each test of a column comparing ``rows`` runs with the best: at least
    :data:`cca_bench.stats.PAIRED_RESAMPLES`, and ``20 * rows / alpha`` so that Holm can reject."""
    return max(stats.PAIRED_RESAMPLES, math.ceil(20 * rows / alpha))


def lower_is_better(column: str) -> bool:
    return column.endswith(("MedR", "MeanR"))


def column_test(column: str) -> str:
    """The name of the test a column's marks come from (one run per seed each)."""
    if column.endswith("MedR"):
        return "paired bootstrap over test images"
    return "paired sign-flip permutation test over test images"


def significance_marks(
    frame,
    runs: list[dict],
    load_ranks,
    alpha: float = 0.05,
    seed: int = stats.PAIRED_SEED,
    columns=tuple(COLUMN_METRIC),
) -> dict:
    """``{(run file, column): "best" | "tied" | "untested"}`` for every value column of every group of own runs
    of the compare frame (see the module docstring), plus ``{("_seed_aware", column): True}`` where a column
    used the seed-aware test."""
    by_file = {r["_file"]: r for r in runs}
    marks = {}
    for _, group in frame[frame["Source"].eq(OWN_SOURCE)].groupby(GROUP, sort=False):
        ranks = {}
        for f in group["_file"]:
            try:
                ranks[f] = _checked_ranks(by_file[f], load_ranks)
            except UserError:
                continue  # its cells get "untested"
        for column in columns:
            marks |= column_marks(group, column, ranks, by_file, alpha, seed)
    return marks


def _checked_ranks(record: dict, load_ranks) -> stats.QueryRanks:
    """A run's ranks, refused (UserError) when they hold fewer seeds than the run reports."""
    ranks = load_ranks(record)
    reported = len(record.get("seed_metrics") or [None])
    if stats.n_seeds(ranks) != reported:
        raise UserError(f"its ranks hold {stats.n_seeds(ranks)} seeds of the {reported} it reports")
    return ranks


def column_marks(
    group, column: str, ranks: dict, by_file: dict, alpha: float = 0.05, seed: int = stats.PAIRED_SEED
) -> dict:
    """The marks of one column of one group: the best value (bold), then each other run with a value tested
    against it, Holm-corrected; untestable runs get "untested"."""
    values = group[column].dropna()
    if values.empty:
        return {}
    files = group.loc[values.index, "_file"].tolist()
    best = files[int(np.argmin(values.to_numpy()) if lower_is_better(column) else np.argmax(values.to_numpy()))]
    out = {(best, column): "best"}
    testable = [f for f in files if f != best and _comparable(best, f, ranks, by_file)]
    out |= {(f, column): "untested" for f in files if f != best and f not in testable}
    if not testable:
        return out
    resamples = resamples_for(len(testable), alpha)
    p, seed_aware = p_values_against(ranks[best], [ranks[f] for f in testable], COLUMN_METRIC[column], resamples, seed)
    for f, adjusted in zip(testable, stats.holm(p)):
        if adjusted > alpha:
            out[(f, column)] = "tied"
    if seed_aware:
        out[("_seed_aware", column)] = True
    return out


def _comparable(best: str, other: str, ranks: dict, by_file: dict) -> bool:
    """Whether ``other`` can be tested against ``best``: both kept their ranks, on one split fingerprint, with
    the same images and queries."""
    if best not in ranks or other not in ranks:
        return False
    if by_file[best].get("split_fingerprint") != by_file[other].get("split_fingerprint"):
        return False
    try:
        stats.check_same_images(ranks[best], ranks[other])
    except UserError:
        return False
    return True


def p_values_against(
    best: stats.QueryRanks, others: list, metric: str, resamples: int, seed: int = stats.PAIRED_SEED
) -> tuple[list[float], bool]:
    """(two-sided p-value of each of ``others`` against ``best`` on ``metric``, whether any used the seed-aware
    test). Single-seed pairs take :func:`cca_bench.stats.paired_p_value` with the draws of
    :func:`cca_bench.stats.paired_test` (seed + 1), all in one :func:`cca_bench.stats.paired_p_values` batch
    (the draws shared, each p the lone test's own), so a pair prints the same p here as in ``significance``
    when the resamples agree."""
    seeded = [seed_stats.seed_aware(best, o) for o in others]
    single = [i for i, s in enumerate(seeded) if not s]
    p = [None] * len(others)
    batch = stats.paired_p_values([best, *others], [(0, i + 1) for i in single], [metric], resamples, seed + 1)
    for i, row in zip(single, batch):
        p[i] = row[metric][0]
    for i in (i for i, s in enumerate(seeded) if s):
        p[i] = seed_stats.seed_aware_test(best, others[i], metric, resamples, seed)["p_value"]
    return p, any(seeded)


def render(text: str, mark: str | None) -> str:
    """A table cell's text with its mark: **bold** best, ``text †`` tied, ``text ‡`` untested."""
    if mark == "best":
        return f"**{text}**"
    return f"{text} {SYMBOL[mark]}" if mark in SYMBOL else text


def legend(marks: dict, columns=tuple(COLUMN_METRIC), alpha: float = 0.05) -> str:
    """The legend printed above marked tables: what each mark means and the test behind each column."""
    linear = [c for c in columns if not c.endswith("MedR")]
    medians = [c for c in columns if c.endswith("MedR")]
    seeds = [c for c in columns if marks.get(("_seed_aware", c))]
    text = (
        f"Marks (per column, within each table, among this suite's runs): **bold** = the best value of the "
        f"column; † = not significantly worse than the best (a paired test against it on the same test images, "
        f'Holm-corrected across the rows compared, alpha {alpha:g}; "not shown worse", not "equivalent"); '
        f"‡ = untested: no paired test against the best was possible (a ranks file missing, other test images or "
        f"queries, or seeds missing); an unmarked value is significantly worse than the best. Tests: "
    )
    text += "; ".join(f"{', '.join(cs)}: {column_test(cs[0])}" for cs in (linear, medians) if cs)
    if seeds:
        text += f"; where either run holds several seeds ({', '.join(seeds)}): {seed_stats.TEST}"
    text += (
        ". Resamples per test: max(10,000, 20 x rows / alpha). A run of a seed-dependent method with one "
        "seed is tested as that trained model: its seed variance is not included (`--seeds` includes it).\n"
    )
    return text


PUBLISHED_NOTE = (
    "Published rows carry no per-query ranks, so no paired test sets them against this suite's runs "
    "and they take no marks. Reading a run's 95% interval against a published value is an unpaired, "
    "approximate comparison: it ignores the published number's own test-set noise and any protocol, "
    "feature or tie-rule difference.\n"
)
