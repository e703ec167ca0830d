"""The ``curve`` and ``similarity`` commands: their parsers and what they print (issue 28).

Kept apart from ``__main__`` so that the command-line package can take them over as two modules; they reuse
``__main__``'s option groups (method options, CV, features, intervals), so the flags mean what they mean for
``generate`` and ``run_benchmark``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from cca_bench.errors import UserError

DEFAULT_SEEDS = [0, 1, 2]


def add_curve(sub) -> None:
    """The ``curve`` subcommand: METHOD DATASET FEATURES --train-sizes ... [--seeds] [--split] [--cv] [--plot]."""
    from cca_bench import __main__ as m

    p = sub.add_parser("curve", help="data-efficiency curve: R-sum against the number of training pairs",
                       description="Fit METHOD on random subsets of the train split (one per seed and size; images "
                       "are drawn with all their captions) and score each on --split: one run per fit under "
                       "RESULTS/runs/ (so `significance` compares points) and the curve in "
                       "RESULTS/curves/<name>.json. --plot draws every stored curve of the dataset (the newest "
                       "per method and features) into RESULTS/plots/curves__<dataset>.png.")
    p.add_argument("method")
    p.add_argument("dataset")
    p.add_argument("features")
    p.add_argument("--train-sizes", required=True, metavar="N,N,...,all",
                   help="training pairs per point, increasing; 'all' (last) is the whole train split")
    p.add_argument("--split", default="test", help="the split each fit is scored on (default test)")
    p.add_argument("--distance", default="cosine", choices=["cosine", "dot", "euclidean"])
    p.add_argument("--plot", action="store_true", help="also draw R-sum against pairs (log x) with interval "
                   "bands for every stored curve of this dataset")
    m._add_method_params(p)
    seeds = next(a for a in p._actions if a.dest == "seeds")
    seeds.help = "one random subset per seed at each size (default 0,1,2); the method's own seed is --seed"
    m._add_cv(p)
    m._add_intervals(p)
    m._add_features(p)
    m._add_common(p)


def cmd_curve(args) -> None:
    """Compute, store and print one curve (and with --plot, the dataset's figure)."""
    from cca_bench import __main__ as m
    from cca_bench.curves import compute_curve, curve_markdown, parse_sizes, write_curve
    from cca_bench.registry import METHODS

    sizes = parse_sizes(args.train_sizes)
    cls = METHODS.get(args.method)
    params = {k: getattr(args, k) for k in getattr(cls, "CLI_PARAMS", {}) if getattr(args, k, None) is not None}
    if "random_state" in cls._param_names():
        params["random_state"] = args.seed
    opts = m._options(args)
    record = compute_curve(args.method, args.dataset, args.features, params, opts, sizes,
                           args.seeds or DEFAULT_SEEDS, args.split, m._cv_request(args), args.distance)
    path = write_curve(opts.results_root, record)
    print(curve_markdown(record))
    for note in sorted({n for p in record["points"] for n in p["notes"]}):
        print(f"note: {note}")
    print(f"curve stored in {path} (runs: {sum(len(p['runs']) for p in record['points'])} under "
          f"{opts.results_root / 'runs'})")
    if args.plot:
        print(f"figure: {plot_dataset_curves(opts.results_root, args.dataset)}")


def plot_dataset_curves(results_root: Path, dataset: str) -> Path:
    """Draw the newest stored curve of each method/features of ``dataset`` into one PNG; returns its path."""
    from cca_bench.curves import curve_label, latest_curves, load_curves
    from cca_bench.plots import curve_figure
    from cca_bench.results import write_figure

    curves = latest_curves(load_curves(results_root, dataset))
    if not curves:
        raise UserError(f"no stored curves of {dataset} under {Path(results_root) / 'curves'}")
    split = ", ".join(sorted({c["split"] for c in curves}))
    fig = curve_figure([(curve_label(c), c["points"]) for c in curves], f"{dataset} / {split}: data efficiency")
    return write_figure(Path(results_root) / "plots" / f"curves__{dataset}.png", fig)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
