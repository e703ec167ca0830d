"""`compare`: tables over all stored runs beside published numbers (RESULTS.md, RESULTS.csv, plots)."""
from __future__ import annotations

from pathlib import Path

from cca_bench.cli.common import add_common, log

HELP = "tables over all stored runs beside published numbers; writes RESULTS.md and RESULTS.csv in the results root"
DESCRIPTION = ("One table per dataset / split / protocol: this suite's runs (Source \"this suite\") and the "
               "published reference rows of that group (Source = the paper or README, cited under the tables; '-' = "
               "not published), best R-sum first. Printed, and written to RESULTS.md and RESULTS.csv in the results "
               "root (--results-root, else $CCA_BENCH_RESULTS, else ./results: ./results/RESULTS.md), replacing the "
               "previous ones.")


def add_arguments(p, argv: list[str]) -> None:
    p.add_argument("--dataset", help="only this dataset (its name without builder options)")
    p.add_argument("--split", help="only this split")
    p.add_argument("--method", help="only this method (own runs) or method family (published rows): cca, vse")
    p.add_argument("--published", action="store_true",
                   help="show every published row, also for datasets/protocols without own runs "
                   "(default: only beside own runs)")
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV to PATH")
    p.add_argument("--significance", action="store_true",
                   help="mark in every column the best run and the runs not significantly worse than it (paired "
                   "sign-flip permutation tests on the same test images, Holm-corrected, alpha 0.05)")
    p.add_argument("--plot", action="store_true",
                   help="write R@K curves (K = 1..50) of each shown run as PNG under plots/ in the results root, and "
                   "one overlay per dataset/split/protocol group with several runs")
    add_common(p)


def run(args) -> None:
    from cca_bench.config import results_root
    from cca_bench.results import (compare_csv, compare_frame, compare_markdown, load_runs, published_frame,
                                   select_rows, significance_marks, write_text)

    root = results_root(args.results_root)
    runs, bad = load_runs(root)
    for b in bad:
        log(f"warning: skipped run file {b}")
    frame = select_rows(compare_frame(runs, published_frame()), args.dataset, args.split, args.method, args.published)
    marks = significance_marks(frame, runs) if args.significance and len(frame) else None
    text = compare_markdown(frame, marks)
    print(text)
    say = (lambda m: None) if args.quiet else log
    written = [write_text(root / "RESULTS.md", text), write_text(root / "RESULTS.csv", compare_csv(frame))]
    if args.csv:
        written.append(write_text(Path(args.csv), compare_csv(frame)))
    if args.plot:
        written += _plot_runs(runs, frame, root)
    say("written: " + ", ".join(map(str, written)))


def _plot_runs(runs: list[dict], frame, root) -> list:
    """R@K curve PNGs under RESULTS/plots/ for the runs that the compare table shows."""
    from cca_bench.results import plot_runs

    shown = set(frame.loc[frame["Source"] == "this suite", "_file"]) if len(frame) else set()
    plotted = []
    for run_ in runs:
        if run_["_file"] in shown and "recall_curve" not in run_:
            log(f"warning: {Path(run_['_file']).name} has no recall_curve (run before curves were stored): "
                "run run_benchmark again to plot it")
        elif run_["_file"] in shown:
            plotted.append(run_)
    return plot_runs(root, plotted)
