"""`evaluate`: score another model's image and caption embeddings on a split and store the run."""

from __future__ import annotations

from cca_bench.cli.common import (
    add_common,
    add_dataset_opt,
    add_distance,
    add_intervals,
    add_no_cache,
    options,
    store_run,
)

HELP = "score another model's image and caption embeddings on a split"
DESCRIPTION = (
    "Read IMG (n_images x d) and TXT (n_captions x d) embeddings (.npy, never unpickled, or "
    ".safetensors[:KEY]) whose rows follow the order `export-split` writes, print the Image Annotation "
    "and Image Search tables and store the run (method = --name) for `compare`. See "
    "docs/bring_your_own.md."
)


def add_arguments(p, argv: list[str]) -> None:
    p.add_argument("dataset")
    p.add_argument("split", help="test, val or train")
    p.add_argument("--images", required=True, metavar="IMG", help="image embeddings, one row per image of the split")
    p.add_argument("--texts", required=True, metavar="TXT", help="caption embeddings, one row per caption")
    p.add_argument("--name", required=True, metavar="LABEL", help="the method name runs and tables show")
    p.add_argument(
        "--image-index",
        metavar="FILE",
        help="image of each TXT row (.npy or one integer a line), for captions in another order than export-split's",
    )
    add_distance(p)
    p.add_argument("--protocol", default="full", choices=["full", "1k", "5k"], help="as for run_benchmark")
    add_dataset_opt(p)
    p.add_argument("--device", default="auto", help="where the similarity GEMM runs: auto, cpu or cuda")
    add_intervals(p)
    add_no_cache(p)
    add_common(p)


def run(args) -> None:
    from cca_bench.external import evaluate_embeddings

    opts = options(args)
    store_run(
        opts,
        evaluate_embeddings(
            args.dataset,
            args.split,
            args.images,
            args.texts,
            args.name,
            opts,
            args.distance,
            args.protocol,
            args.image_index,
        ),
    )
