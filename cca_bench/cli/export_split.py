"""`export-split`: a split's images, captions and image index in evaluation order, for `evaluate`."""

from __future__ import annotations

from pathlib import Path

from cca_bench.cli.common import add_common, add_dataset_opt, add_no_cache, options

HELP = "write a split's images, captions and image index in evaluation order"
DESCRIPTION = (
    "Write DIR/images.txt (image paths; rendered or embedded images are written as PNG files), "
    "captions.txt, image_index.txt/.npy and split.json: embed them with any model, then run `evaluate`."
)


def add_arguments(p, argv: list[str]) -> None:
    p.add_argument("dataset")
    p.add_argument("split")
    p.add_argument("dir", help="output folder")
    add_dataset_opt(p)
    add_no_cache(p)
    add_common(p)


def run(args) -> None:
    from cca_bench.external import export_split

    out = export_split(args.dataset, args.split, Path(args.dir), options(args))
    print(
        f"wrote {out['n_images']} images ({out['images']}) and {out['n_captions']} captions of "
        f"{out['dataset']}/{out['split']} to {args.dir}: {', '.join(out['files'])}, split.json"
    )
