"""`search`: top-k images or captions of a split for a text or a photo."""

from __future__ import annotations

from cca_bench.cli.common import add_common, add_distance, add_features, log, options, positive_int

HELP = "top-k images or captions of a split for a text or a photo"
DESCRIPTION = (
    "Load the model `generate` saved and search SPLIT: --text gives images, --image gives captions, "
    "--similar gives images like the photo. Prints a markdown table."
)


def add_arguments(p, argv: list[str]) -> None:
    from cca_bench.search import INDEXES

    p.add_argument("method")
    p.add_argument("dataset")
    p.add_argument("features")
    q = p.exclusive(required=True)
    q.add_argument("--text", help="a caption: find the images it describes")
    q.add_argument("--image", metavar="PHOTO", help="an image file: find captions that describe it")
    q.add_argument("--similar", metavar="PHOTO", help="an image file: find images like it")
    p.add_argument("-k", type=positive_int, default=10, help="number of hits (default 10)")
    p.add_argument("--split", default="test", help="the split searched (default test)")
    add_distance(p)
    p.add_argument(
        "--index",
        default="exact",
        choices=INDEXES.names(),
        help="exact (default); faiss: exact FAISS flat index; hnsw: approximate FAISS HNSW graph "
        "for million-item galleries (pip install cca_bench[faiss])",
    )
    p.add_argument("--html", metavar="OUT.html", help="also write a self-contained page with thumbnails")
    add_features(p)
    add_common(p)


def run(args) -> None:
    from pathlib import Path

    from cca_bench.results import write_text
    from cca_bench.search import MODES, check_query, markdown_table, open_gallery, render_html, search

    mode, query = next((m, v) for m in MODES if (v := getattr(args, m)) is not None)
    check_query(mode, query)
    gallery = open_gallery(args.method, args.dataset, args.split, args.features, options(args))
    result = search(gallery, mode, query, args.k, args.distance, args.index)
    split = result.split
    print(
        f"## {split.dataset}/{split.name}: top {len(result.rows)} {MODES[mode].label} {query!r} "
        f"({args.method}, {args.features}, {args.distance})\n"
    )
    print(markdown_table(result))
    if args.html:
        written = write_text(Path(args.html), render_html(result))
        if not args.quiet:
            log(f"written to {written}")
