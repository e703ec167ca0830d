"""What `significance` and `power` report: the comparison of two stored runs and its printed verdict.

Between the CLI (which resolves run names and reads files) and the statistics (:mod:`cca_bench.seed_stats`,
:mod:`cca_bench.power`): one result dict with the JSON contract's keys (``delta``, ``ci``, ``p_value``,
``test``, ``se``, ``mdd``, ``seed_aware``, with ``--equivalence`` an ``equivalence`` record) and the lines
printed for it.
"""

from __future__ import annotations

from pathlib import Path

from cca_bench import power, seed_stats, stats

# Methods whose fitted model depends on their random_state (kcca: Nystroem landmarks / random Fourier features;
# asif: sampled anchors; dcca and vse: initial weights and batch order). cca, ridge, procrustes and pls take no seed
# that changes the result (cca's random_state only starts a power iteration for the ridge's eigenvalue).
SEED_DEPENDENT_METHODS = ("kcca", "asif", "dcca", "vse")


def seed_dependent(record: dict) -> bool:
    """Whether a run's numbers depend on a training seed: a method of :data:`SEED_DEPENDENT_METHODS`, or
    captions encoded as Fisher vectors of a fitted mixture (pooling other than mean)."""
    pooling = (record.get("config") or {}).get("pooling", "mean")
    return record.get("method") in SEED_DEPENDENT_METHODS or pooling not in ("mean", None)


def compare_runs(
    records: tuple[dict, dict],
    ranks: tuple,
    metric: str = "rsum",
    resamples: int = stats.PAIRED_RESAMPLES,
    seed: int = stats.PAIRED_SEED,
    equivalence: float | None = None,
) -> dict:
    """The comparison A - B of two stored runs (records as :func:`cca_bench.results.resolve_run` returns them,
    with their :class:`cca_bench.stats.QueryRanks`): :func:`cca_bench.seed_stats.compare`, ``run_a``/``run_b``,
    ``seed_note`` (or None) and, for an ``equivalence`` margin, the TOST record of :func:`cca_bench.power.tost`."""
    result = seed_stats.compare(ranks[0], ranks[1], metric, resamples, seed)
    result |= {
        "run_a": Path(records[0]["_file"]).name,
        "run_b": Path(records[1]["_file"]).name,
        "seed_note": seed_stats.seed_note(
            tuple(seed_dependent(r) for r in records), tuple(stats.n_seeds(r) for r in ranks)
        ),
    }
    if equivalence is not None:
        result["equivalence"] = power.tost(result["delta"], result["se"], equivalence, result.get("df", float("inf")))
    if result.get("df") == float("inf"):
        result["df"] = None  # JSON has no infinity
    return result


def significance_text(r: dict) -> str:
    """The lines `significance` prints for :func:`compare_runs`' result."""
    better = "lower" if r["lower_is_better"] else "higher"
    verdict = (
        ("A is better" if (r["delta"] < 0) == r["lower_is_better"] else "B is better")
        if r["p_value"] < 0.05 and r["delta"]
        else "no significant difference at alpha 0.05"
    )
    p = _p_text(r)
    lines = [
        f"A = {r['run_a']}",
        f"B = {r['run_b']}",
        f"{r['metric']} (a {better} value is better): A - B = {r['delta']:+.2f}, "
        f"{100 * r['level']:g}% interval [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}], {p} "
        f"({r['test']}, {_basis(r)}): {verdict}",
        f"paired SE {r['se']:.2f}; minimum detectable difference at 80% power (two-sided alpha 0.05): "
        f"{r['mdd']:.2f} on these {r['n_images']} test images"
        + (
            ""
            if r["p_value"] < 0.05
            else " (a smaller true difference may well be missed: "
            '"not significant" is not "equivalent"; --equivalence MARGIN tests that)'
        ),
    ]
    if r.get("equivalence"):
        e = r["equivalence"]
        said = "equivalent within" if e["equivalent"] else "NOT shown equivalent within"
        lines.append(
            f"equivalence (TOST, two one-sided tests at alpha {e['alpha']:g}): {said} +-{e['margin']:g} "
            f"(p = {e['p_value']:.3g}; {100 * (1 - 2 * e['alpha']):g}% interval [{e['interval'][0]:+.2f}, "
            f"{e['interval'][1]:+.2f}])"
        )
    if r["seed_aware"]:
        lines.append(
            f"seed-aware: the difference of the METHODS over seeds ({r['seeds'][0]} vs {r['seeds'][1]}) and test images"
        )
    if r.get("seed_note"):
        lines.append(r["seed_note"])
    return "\n".join(lines)


def _p_text(r: dict) -> str:
    """The p-value as printed: :func:`cca_bench.stats.format_p` for a resampling test (a bound at its floor);
    the seed-aware t test's p is analytic, printed to three decimals."""
    if not r["seed_aware"]:
        return stats.format_p(r["p_value"], r["resamples"])
    return "p < 0.001" if r["p_value"] < 0.001 else f"p = {r['p_value']:.3f}"


def _basis(r: dict) -> str:
    if r["seed_aware"]:
        df = "inf" if r.get("df") is None else f"{r['df']:.1f}"
        return f"{df} df, {r['n_images']} images"
    return f"{r['resamples']} resamples, {r['n_images']} images"


def power_text(a: dict) -> str:
    """The lines `power` prints for :func:`cca_bench.sample_size.plan`'s answer."""
    sizes = ", ".join(f"{n:,} images: {v:.1f}" for n, v in a["mdd_at"].items())
    lines = [
        f"{a['dataset']}/{a['split']}: {a['metric']} of {a['run']}" + (f" vs {a['versus']}" if a.get("versus") else ""),
        f"paired variance: {a['model']}",
        f"paired SE on these {a['n_images']:,} test images: {a['se']:.2f}; minimum detectable difference at "
        f"{100 * a['power']:g}% power (two-sided alpha {a['alpha']:g}): {a['mdd']:.1f}",
        f"minimum detectable difference by test set size: {sizes}",
    ]
    if a.get("delta") is not None:
        lines.append(
            f"to see a {a['delta']:g}-point {a['metric']} difference at {100 * a['power']:g}% power: "
            f"{a['images_needed']:,} test images like these"
        )
    return "\n".join(lines)
