"""`compare`: tables over all stored runs beside published numbers (RESULTS.md, RESULTS.csv, plots)."""

from __future__ import annotations

from pathlib import Path

from cca_bench.cli.common import add_common, log, metric
from cca_bench.errors import UserError

HELP = "tables over all stored runs beside published numbers; writes RESULTS.md and RESULTS.csv in the results root"
DESCRIPTION = (
    "One table per dataset / split / protocol: this suite's runs (the newest of each configuration; "
    "--all-runs: every run) and the published reference rows of that group (cited under the tables; '-' = "
    "not published), best R-sum first, at most 120 characters wide by default (every column is in the "
    "CSV). Printed, and written to RESULTS.md and RESULTS.csv in the results root (--results-root, else "
    "$CCA_BENCH_RESULTS, else ./results: ./results/RESULTS.md), replacing the previous ones."
)
EPILOG = (
    "example: python -m cca_bench compare --split test --baseline "
    "cca__openmoji__glove50_efficientnet_lite0__test__full__cosine"
)


def add_arguments(p, argv: list[str]) -> None:
    p.add_argument("--dataset", help="only this dataset (its name without builder options)")
    p.add_argument("--split", help="only this split")
    p.add_argument("--method", help="only this method (own runs) or method family (published rows): cca, vse")
    p.add_argument(
        "--published",
        action="store_true",
        help="show every published row, also for datasets/protocols without own runs (default: only beside own runs)",
    )
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV to PATH")
    p.add_argument(
        "--significance",
        action="store_true",
        help="mark in every column the best run and the runs not significantly worse than it (paired "
        "sign-flip permutation tests on the same test images, Holm-corrected, alpha 0.05)",
    )
    p.add_argument(
        "--plot",
        action="store_true",
        help="write R@K curves (K = 1..50) of each shown run as PNG under plots/ in the results root, and "
        "one overlay per dataset/split/protocol group with several runs",
    )
    p.add_argument(
        "--all-runs", action="store_true", help="every stored run (default: the newest run of each configuration)"
    )
    p.add_argument(
        "--baseline",
        metavar="RUN",
        help="add to every row its paired difference from RUN (a run id, short id, unique prefix, "
        "configuration name or run JSON path): delta [95%% interval], p-value, and Holm-corrected p across "
        "the rows (CSV columns run, delta, delta_lo, delta_hi, p_value, p_holm)",
    )
    p.add_argument(
        "--metric",
        default="rsum",
        type=metric,
        metavar="METRIC",
        help="the metric of --baseline's differences (default rsum; e.g. t2i:R@1, R@1, i2t:medr)",
    )
    p.add_argument(
        "--columns",
        metavar="C,C,...",
        type=lambda t: [c.strip() for c in t.split(",") if c.strip()],
        help="the table's columns, named as in RESULTS.csv (e.g. run,Method,R-sum,delta,p_value), or 'all' "
        "(default: run, Method, Features, R-sum, R@1 of both directions; with --baseline run, Method, "
        "R-sum, delta, p_value, p_holm; fewer where a table would pass 120 characters)",
    )
    add_common(p)


def run(args) -> None:
    from cca_bench.config import results_root
    from cca_bench.results import (
        add_baseline,
        compare_csv,
        compare_frame,
        compare_markdown,
        latest_runs,
        load_runs,
        published_frame,
        run_id,
        select_rows,
        short_id,
        significance_marks,
        table_columns,
        write_text,
    )

    root = results_root(args.results_root)
    runs, bad = load_runs(root)
    for b in bad:
        log(f"warning: skipped run file {b}")
    baseline = None if args.baseline is None else _baseline(root, runs, bad, args.baseline)
    shown = runs if args.all_runs else latest_runs(runs)
    if baseline is not None and baseline["_file"] not in {r["_file"] for r in shown}:
        shown.append(baseline)
    frame = select_rows(compare_frame(shown, published_frame()), args.dataset, args.split, args.method, args.published)
    if not len(frame):  # a new or mistyped results root: say so, and neither create it nor replace its tables
        raise UserError(
            f"no runs stored under {root / 'runs'}: run `run_benchmark` first, or point --results-root "
            "(or $CCA_BENCH_RESULTS) at the folder that holds them; --published shows the published rows alone"
        )
    table_columns(frame, args.columns)  # an unknown column fails before any test runs
    marks = significance_marks(frame, shown) if args.significance else None
    if baseline is not None:
        frame = add_baseline(frame, shown, baseline, args.metric)
    text = compare_markdown(frame, marks, args.columns, None if baseline is None else short_id(run_id(baseline)))
    print(text)
    say = (lambda m: None) if args.quiet else log
    written = [write_text(root / "RESULTS.md", text), write_text(root / "RESULTS.csv", compare_csv(frame))]
    if args.csv:
        written.append(write_text(Path(args.csv), compare_csv(frame)))
    if args.plot:
        written += _plot_runs(shown, frame, root)
    say("written: " + ", ".join(map(str, written)))


def _baseline(root, runs: list[dict], bad: list[str], spec: str) -> dict:
    """The run ``--baseline`` names (``results.resolve_run``: a path as given, else among ``runs``), with its
    ranks checked readable: a baseline without them is one line, not a column of reasons."""
    from cca_bench.results import find_run, load_ranks, resolve_run

    path_like = "/" in spec or "\\" in spec or spec.endswith(".json")
    record = resolve_run(root, spec) if path_like else find_run(runs, spec, bad, root / "runs")
    load_ranks(record)
    return record


def _plot_runs(runs: list[dict], frame, root) -> list:
    """R@K curve PNGs under RESULTS/plots/ for the runs that the compare table shows."""
    from cca_bench.results import plot_runs

    shown = set(frame.loc[frame["Source"] == "this suite", "_file"])
    plotted = []
    for run_ in runs:
        if run_["_file"] in shown and "recall_curve" not in run_:
            log(
                f"warning: {Path(run_['_file']).name} has no recall_curve (run before curves were stored): "
                "run run_benchmark again to plot it"
            )
        elif run_["_file"] in shown:
            plotted.append(run_)
    return plot_runs(root, plotted)
