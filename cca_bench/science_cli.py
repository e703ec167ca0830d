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


def add_similarity(sub) -> None:
    """The ``similarity`` subcommand: DATASET SPLIT FEATURES, or --images IMG --texts TXT [--image-index]."""
    from cca_bench import __main__ as m
    from cca_bench.similarity import DEFAULT_DIM, DEFAULT_K, DEFAULT_PERMUTATIONS

    p = sub.add_parser("similarity", help="how alike are the two encoders? CKA, mutual k-NN, CKNNA, SVCCA, PWCCA "
                       "with a permutation-calibrated null",
                       description="Score the similarity of paired image and caption features (a split encoded "
                       "with FEATURES, or --images/--texts files whose rows are paired as `evaluate` takes them). "
                       "Captions of one image are averaged into one row per image. Each measure is calibrated "
                       "against row-shuffled pairs (Groger et al. 2026): the calibrated score is 0 unless the "
                       "score beats the null's 95% quantile, and the p-value is (1 + #null >= score) / (K + 1).")
    p.add_argument("dataset", nargs="?")
    p.add_argument("split", nargs="?")
    p.add_argument("features", nargs="?")
    p.add_argument("--images", metavar="IMG", help="image features, one row per image (.npy or .safetensors[:KEY])")
    p.add_argument("--texts", metavar="TXT", help="caption features: one row per image, or per caption with "
                   "--image-index")
    p.add_argument("--image-index", metavar="FILE", help="image of each TXT row (.npy or one integer a line)")
    p.add_argument("-k", type=m._positive_int, default=DEFAULT_K, help=f"neighbours of mutual k-NN and CKNNA "
                   f"(default {DEFAULT_K})")
    p.add_argument("--dim", type=m._positive_int, default=DEFAULT_DIM,
                   help=f"singular directions kept per view by SVCCA and PWCCA (default {DEFAULT_DIM})")
    p.add_argument("--permutations", type=m._positive_int, default=DEFAULT_PERMUTATIONS, metavar="K",
                   help=f"row permutations of the null (default {DEFAULT_PERMUTATIONS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations (default 0)")
    p.add_argument("--json", metavar="FILE", help="also write {measure: {score, calibrated, p_value, ...}} to FILE")
    m._add_features(p)
    m._add_common(p)


def similarity_inputs(args):
    """(image rows (n, dx), caption rows (n, dy), where they came from): files or an encoded split, captions
    averaged per image."""
    import numpy as np

    from cca_bench.similarity import per_image

    named = [args.dataset, args.split, args.features]
    if args.images or args.texts:
        if any(named):
            raise UserError("give either DATASET SPLIT FEATURES or --images and --texts, not both")
        if not (args.images and args.texts):
            raise UserError("--images and --texts go together")
        return _file_pairs(args.images, args.texts, args.image_index)
    if not all(named):
        raise UserError("give DATASET SPLIT FEATURES, or --images IMG --texts TXT")
    if args.image_index:
        raise UserError("--image-index goes with --images and --texts")
    from cca_bench import __main__ as m
    from cca_bench.benchmark import load_dataset
    from cca_bench.config import FeatureSpec
    from cca_bench.features.pipelines import Pipelines

    opts = m._options(args)
    dataset = load_dataset(args.dataset, opts)
    dataset.split(args.split)  # an unknown split fails before any encoding
    fs = Pipelines.of(FeatureSpec.parse(args.features), opts).fit(dataset).encode(dataset, args.split, {})
    x, y = per_image(np.asarray(fs.images), np.asarray(fs.texts), fs.image_index)
    return x, y, f"{args.dataset}/{args.split} {args.features}"


def _file_pairs(images: str, texts: str, index_file: str | None):
    from cca_bench.external import load_embeddings, load_image_index
    from cca_bench.similarity import per_image

    x, x_path = load_embeddings(images)
    y, y_path = load_embeddings(texts)
    if index_file is None:
        if len(x) != len(y):
            raise UserError(f"{y_path}: {len(y)} rows but {x_path} has {len(x)}: the rows are not paired "
                            "(give --image-index for several captions per image)")
        return x, y, f"{x_path.name} / {y_path.name}"
    index = load_image_index(index_file, len(y), len(x))
    x, y = per_image(x, y, index)
    return x, y, f"{x_path.name} / {y_path.name}"


def cmd_similarity(args) -> None:
    """Print (and with --json write) every measure with its calibration."""
    import json

    from cca_bench.results import write_text
    from cca_bench.similarity import check_pairs, measure_all

    if args.json and not Path(args.json).parent.is_dir():
        raise UserError(f"--json {args.json}: its folder does not exist")
    x, y, source = similarity_inputs(args)
    check_pairs(x, y, args.k, args.dim, f"{source}: ")
    result = measure_all(x, y, args.k, args.dim, args.permutations, args.seed)
    print(similarity_table(result, source))
    if args.json:
        write_text(Path(args.json), json.dumps(result, indent=2, sort_keys=True))


def similarity_table(result: dict, source: str) -> str:
    """The markdown table ``similarity`` prints."""
    from tabulate import tabulate

    from cca_bench.stats import format_p

    rows = [[name, f"{r['score']:.4f}", f"{r['calibrated']:.4f}", format_p(r["p_value"], r["permutations"]),
             f"{r['null_mean']:.4f} ± {r['null_sd']:.4f}", f"{r['tau']:.4f}"] for name, r in result.items()]
    first = next(iter(result.values()))
    head = ["measure", "score", "calibrated", "p (permutation)", "null mean ± sd", "null 95% quantile"]
    return (f"## {source}: {first['n_pairs']} pairs, {first['permutations']} permutations\n\n"
            + tabulate(rows, head, tablefmt="github", disable_numparse=True))
