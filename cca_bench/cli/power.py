"""`power`: how many test images a paired test needs to see a difference, from a stored run."""

from __future__ import annotations

from pathlib import Path

from cca_bench.cli.common import add_common, metric, positive_float
from cca_bench.errors import UserError

HELP = "how many test images a paired test needs to see a difference"
DESCRIPTION = (
    "From a stored run's per-image contributions: the paired SE and the minimum detectable difference "
    "(80% power, two-sided alpha 0.05) on DATASET/SPLIT, at other test set sizes, and with --delta the "
    "images needed to see a D-point difference. With --versus the paired variance is measured between "
    "the two runs; else a second method whose per-image contributions correlate --correlation with "
    "this run's is assumed (docs/statistics.md)."
)
EPILOG = (
    "example: python -m cca_bench power openmoji test --run "
    "cca__openmoji__glove50_efficientnet_lite0__test__full__cosine --delta 5"
)


def add_arguments(p, argv: list[str]) -> None:
    p.add_argument("dataset")
    p.add_argument("split")
    p.add_argument("--run", required=True, help="a run JSON file or run name on DATASET/SPLIT (with its ranks file)")
    p.add_argument("--versus", metavar="RUN", help="a second run on the same split: measure the paired variance")
    p.add_argument("--delta", type=positive_float, metavar="D", help="the difference to detect (metric units)")
    p.add_argument(
        "--metric",
        default="rsum",
        type=metric,
        metavar="METRIC",
        help="rsum (default), R@1, R@5, R@10, mean_rank, or i2t:/t2i: before one (no median ranks)",
    )
    p.add_argument(
        "--correlation",
        type=float,
        default=None,
        metavar="RHO",
        help="assumed correlation of two methods' per-image contributions without --versus (default "
        "0.5: benchmarks/REPORT_power.md)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the answer as JSON to FILE")
    add_common(p)


def run(args) -> None:
    import json

    from cca_bench.cli.significance import paired_runs
    from cca_bench.config import results_root
    from cca_bench.results import load_ranks, resolve_run, write_text
    from cca_bench.sample_size import DEFAULT_CORRELATION, plan
    from cca_bench.verdict import power_text

    if args.versus and args.correlation is not None:
        raise UserError("--correlation is the assumption made without --versus: give one of them")
    root = results_root(args.results_root)
    run_ = resolve_run(root, args.run)
    base = run_["dataset"].split("[")[0]
    if (base, run_["split"]) != (args.dataset, args.split):
        raise UserError(f"--run {args.run} is on {base}/{run_['split']}, not {args.dataset}/{args.split}")
    other = paired_runs(root, args.run, args.versus)[1] if args.versus else None
    answer = plan(
        load_ranks(run_),
        load_ranks(other) if other else None,
        args.metric,
        args.delta,
        DEFAULT_CORRELATION if args.correlation is None else args.correlation,
    )
    answer |= {
        "dataset": args.dataset,
        "split": args.split,
        "run": Path(run_["_file"]).name,
        "versus": Path(other["_file"]).name if other else None,
    }
    print(power_text(answer))
    if args.json:
        write_text(Path(args.json), json.dumps(answer, indent=2))
