"""`curve METHOD DATASET FEATURES --train-sizes N,N,all`: a data-efficiency curve (:mod:`cca_bench.curves`).

METHOD's own options and its --cv grid flags are those `generate METHOD` offers (built by the same functions of
:mod:`cca_bench.cli.generate`); --seeds here are the seeds of the random train subsets (one per seed and size),
--seed the method's own.
"""

from __future__ import annotations

from cca_bench.cli import generate
from cca_bench.cli.common import add_common, add_distance, add_features, add_intervals, add_seeds, options, seed

HELP = "data-efficiency curve: R-sum against the number of training pairs"
DESCRIPTION = (
    "Fit METHOD on random subsets of the train split (one per seed and size; images are drawn with "
    "all their captions) and score each on --split: one run per fit under RESULTS/runs/ (so "
    "`significance` compares points) and the curve in RESULTS/curves/<name>.json. --plot draws every "
    "stored curve of the dataset (the newest per method and features) into "
    "RESULTS/plots/curves__<dataset>.png. `curve METHOD --help` lists METHOD's own options."
)
EPILOG = "example: python -m cca_bench curve asif openmoji minilm_efficientnet --train-sizes 100,300,all --seeds 0,1,2"
DEFAULT_SEEDS = [0, 1, 2]


def add_arguments(p, argv: list[str]) -> None:
    from cca_bench.registry import METHODS

    name = generate._method_of(p.prog, argv)
    cls = METHODS.get(name) if name is not None else None
    p.add_argument("method", metavar="METHOD", help="see `list`; `curve METHOD --help` lists its options")
    p.add_argument("dataset")
    p.add_argument("features", help="TEXT_IMAGE, e.g. minilm_efficientnet")
    p.add_argument(
        "--train-sizes",
        required=True,
        metavar="N,N,...,all",
        help="training pairs per point, increasing; 'all' (last) is the whole train split",
    )
    p.add_argument("--split", default="test", help="the split each fit is scored on (default test)")
    add_distance(p)
    p.add_argument(
        "--plot",
        action="store_true",
        help="also draw R-sum against pairs (log x) with interval bands for every stored curve of this dataset",
    )
    if cls is not None:
        generate._add_method_options(p, name, cls)
        p.help_hint, p.refuse = f"{p.prog} {name}", generate._refuser(name, p)
    p.add_argument("--seed", type=seed, default=0, help="the method's random seed, 0 to 2^32-1 (default 0)")
    add_seeds(p, "one random subset of the train split per seed at each size (default 0,1,2)")
    generate._add_cv(p, cls)
    add_intervals(p)
    add_features(p)
    add_common(p)


def run(args) -> None:
    """Compute, store and print one curve (and with --plot, the dataset's figure)."""
    from cca_bench.curves import compute_curve, curve_markdown, parse_sizes, plot_dataset_curves, write_curve
    from cca_bench.registry import METHODS

    sizes = parse_sizes(args.train_sizes)
    cls = METHODS.get(args.method)
    params = {k: getattr(args, k) for k in getattr(cls, "CLI_PARAMS", {}) if getattr(args, k, None) is not None}
    if "random_state" in cls._param_names():
        params["random_state"] = args.seed
    opts = options(args)
    record = compute_curve(
        args.method,
        args.dataset,
        args.features,
        params,
        opts,
        sizes,
        args.seeds or DEFAULT_SEEDS,
        args.split,
        generate._cv_request(args, cls),
        args.distance,
    )
    path = write_curve(opts.locations.results_root, record)
    print(curve_markdown(record))
    for note in sorted({n for p in record["points"] for n in p["notes"]}):
        print(f"note: {note}")
    print(
        f"curve stored in {path} (runs: {sum(len(p['runs']) for p in record['points'])} under "
        f"{opts.locations.results_root / 'runs'})"
    )
    if args.plot:
        print(f"figure: {plot_dataset_curves(opts.locations.results_root, args.dataset)}")
