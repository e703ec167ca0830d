"""`run_benchmark`: evaluate a saved model on a split, print its tables and store the run."""

from __future__ import annotations

from cca_bench.cli.common import (
    add_common,
    add_distance,
    add_extract_backend,
    add_features,
    add_intervals,
    add_seeds,
    log,
    options,
    store_run,
)

HELP = "evaluate a saved model on a split and store the run"
DESCRIPTION = (
    "Load the model `generate` saved, encode SPLIT, print the Image Annotation and Image Search tables "
    "and store the run as a new JSON file under RESULTS/runs/ (a new run id each time: earlier runs are "
    "kept). `run_benchmark --model NAME SPLIT` reopens a saved model by its name, with the method, "
    "dataset, features, feature options and tag from its own file."
)
USAGE = "%(prog)s METHOD DATASET SPLIT FEATURES [options]\n       %(prog)s --model NAME SPLIT [options]"


def add_arguments(p, argv: list[str]) -> None:
    p.add_argument(
        "names",
        nargs="+",
        metavar="METHOD DATASET SPLIT FEATURES",
        help="the model's method, dataset and features and the split (test, val or train; testall for "
        "Kiros-layout COCO); with --model only SPLIT",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help="a saved model by its name under RESULTS/models (as generate "
        "printed it; a missing model's error lists the saved ones)",
    )
    add_distance(p)
    p.add_argument(
        "--protocol",
        default="full",
        choices=["full", "1k", "5k"],
        help="full: all images of the split at once (Flickr8k/30k test: 1,000 images, the usual 1k "
        "test); 1k: consecutive folds of 1,000 images, metrics averaged (COCO 1k: 5 folds of the 5k "
        "test); 5k: all 5,000 COCO test images at once. Part of the run's file name, JSON and compare "
        "table (default full)",
    )
    add_seeds(
        p,
        "score the models `generate --seeds` fitted, one per seed, into one run: metrics are the mean "
        "over seeds, with each seed's metrics and their standard deviation beside the bootstrap interval",
    )
    add_intervals(p)
    add_features(p)
    add_extract_backend(p)
    add_common(p)


def run(args) -> None:
    from cca_bench.benchmark import run_benchmark, run_saved
    from cca_bench.errors import UserError

    if args.model is not None:
        if len(args.names) != 1 or args.seeds:
            raise UserError("run_benchmark --model NAME takes one more argument, SPLIT (and no --seeds)")
        opts = options(args)
        store_run(opts, run_saved(args.model, args.names[0], opts, args.distance, args.protocol))
        return
    if len(args.names) != 4:
        raise UserError(
            f"run_benchmark takes METHOD DATASET SPLIT FEATURES (got {len(args.names)} of them), or --model NAME SPLIT"
        )
    args.method, args.dataset, args.split, args.features = args.names
    opts = options(args)
    store_run(
        opts,
        run_benchmark(
            args.method, args.dataset, args.split, args.features, opts, args.distance, args.protocol, seeds=_seeds(args)
        ),
    )


def _seeds(args) -> list[int] | None:
    """The seeds of run_benchmark's models; None for one model (no --seeds, or a method without a seed)."""
    from cca_bench.registry import METHODS

    if args.seeds and "random_state" not in METHODS.get(args.method)._param_names():
        log(f"note: {args.method} takes no random seed: its one model is scored (the seeds would be identical)")
        return None
    return args.seeds
