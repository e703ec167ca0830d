"""`similarity`: how alike are the two views' features? CKA, mutual k-NN, CKNNA, SVCCA and PWCCA, each against
a permutation null (:mod:`cca_bench.similarity`)."""

from __future__ import annotations

from pathlib import Path

from cca_bench.cli.common import add_common, add_features, options, positive_int, resamples, seed
from cca_bench.errors import UserError

HELP = "how alike are the two encoders? CKA, mutual k-NN, CKNNA, SVCCA, PWCCA with a calibrated null"
DESCRIPTION = (
    "Score the similarity of paired image and caption features (a split encoded with FEATURES, or "
    "--images/--texts files whose rows are paired as `evaluate` takes them). Captions of one image are "
    "averaged into one row per image. Each measure is calibrated against row-shuffled pairs (Groger et "
    "al. 2026): the calibrated score is 0 unless the score beats the null's 95% quantile, and the "
    "p-value is (1 + #null >= score) / (K + 1). See docs/similarity.md."
)
EPILOG = "example: python -m cca_bench similarity openmoji test minilm_efficientnet --json sim.json"


def add_arguments(p, argv: list[str]) -> None:
    """DATASET SPLIT FEATURES, or --images IMG --texts TXT [--image-index]."""
    from cca_bench.similarity import DEFAULT_DIM, DEFAULT_K, DEFAULT_PERMUTATIONS

    p.add_argument("dataset", nargs="?")
    p.add_argument("split", nargs="?")
    p.add_argument("features", nargs="?")
    p.add_argument("--images", metavar="IMG", help="image features, one row per image (.npy or .safetensors[:KEY])")
    p.add_argument(
        "--texts", metavar="TXT", help="caption features: one row per image, or per caption with --image-index"
    )
    p.add_argument("--image-index", metavar="FILE", help="image of each TXT row (.npy or one integer a line)")
    p.add_argument(
        "-k", type=positive_int, default=DEFAULT_K, help=f"neighbours of mutual k-NN and CKNNA (default {DEFAULT_K})"
    )
    p.add_argument(
        "--dim",
        type=positive_int,
        default=DEFAULT_DIM,
        help=f"singular directions kept per view by SVCCA and PWCCA (default {DEFAULT_DIM})",
    )
    p.add_argument(
        "--permutations",
        type=resamples,
        default=DEFAULT_PERMUTATIONS,
        metavar="K",
        help=f"row permutations of the null, 1 to 10^6 (default {DEFAULT_PERMUTATIONS})",
    )
    p.add_argument("--seed", type=seed, default=0, help="seed of the permutations, 0 to 2^32-1 (default 0)")
    p.add_argument("--json", metavar="FILE", help="also write {measure: {score, calibrated, p_value, ...}} to FILE")
    add_features(p)
    add_common(p)


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
    from cca_bench.benchmark import load_dataset, pipelines
    from cca_bench.config import FeatureSpec

    opts = options(args)
    dataset = load_dataset(args.dataset, opts)
    dataset.split(args.split)  # an unknown split fails before any encoding
    fs = (
        pipelines(FeatureSpec.parse(args.features), opts)
        .fit(dataset)
        .encode(dataset, args.split, {}, opts.locations.cache_dir, opts.log)
    )
    x, y = per_image(np.asarray(fs.images), np.asarray(fs.texts), fs.image_index)
    return x, y, f"{args.dataset}/{args.split} {args.features}"


def _file_pairs(images: str, texts: str, index_file: str | None):
    from cca_bench.external import load_embeddings, load_image_index
    from cca_bench.similarity import per_image

    x, x_path = load_embeddings(images)
    y, y_path = load_embeddings(texts)
    if index_file is None:
        if len(x) != len(y):
            raise UserError(
                f"{y_path}: {len(y)} rows but {x_path} has {len(x)}: the rows are not paired "
                "(give --image-index for several captions per image)"
            )
        return x, y, f"{x_path.name} / {y_path.name}"
    index = load_image_index(index_file, len(y), len(x))
    x, y = per_image(x, y, index)
    return x, y, f"{x_path.name} / {y_path.name}"


def run(args) -> None:
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

    rows = [
        [
            name,
            f"{r['score']:.4f}",
            f"{r['calibrated']:.4f}",
            format_p(r["p_value"], r["permutations"]),
            f"{r['null_mean']:.4f} ± {r['null_sd']:.4f}",
            f"{r['tau']:.4f}",
        ]
        for name, r in result.items()
    ]
    first = next(iter(result.values()))
    head = ["measure", "score", "calibrated", "p (permutation)", "null mean ± sd", "null 95% quantile"]
    return f"## {source}: {first['n_pairs']} pairs, {first['permutations']} permutations\n\n" + tabulate(
        rows, head, tablefmt="github", disable_numparse=True
    )
