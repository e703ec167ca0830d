"""`runs`: the stored runs, newest first, with the ids every other command takes."""

from __future__ import annotations

from cca_bench.cli.common import add_common, log

HELP = "the stored runs, newest first: run id, dataset, split, method, features, tag, distance, R-sum, date"
DESCRIPTION = (
    "List the runs under RESULTS/runs, newest first, at most 120 characters wide. The 'run' column is "
    "the run's short id (the UTC time and random suffix of its run id), which `significance` and "
    "`compare --baseline` take as well as the full run id (--long), a unique prefix of it, or a "
    "configuration name (its newest run). Files that are not valid run records are skipped with a "
    "warning naming the file and the field."
)
EPILOG = "example: python -m cca_bench runs --dataset openmoji --split test"


def add_arguments(p, argv: list[str]) -> None:
    p.add_argument("--dataset", help="only this dataset (its name without builder options)")
    p.add_argument("--split", help="only this split")
    p.add_argument("--long", action="store_true", help="also every full run id, numbered, above the table")
    add_common(p)


def run(args) -> None:
    from cca_bench.config import results_root
    from cca_bench.results import load_runs, runs_table

    runs, bad = load_runs(results_root(args.results_root))
    for b in bad:
        log(f"warning: skipped run file {b}")
    print(runs_table(runs, args.dataset, args.split, args.long))
