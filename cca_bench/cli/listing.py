"""`list`: datasets (and whether their files are present), encoders and methods."""

from __future__ import annotations

from cca_bench.cli.common import add_common

HELP = "datasets (and whether their files are present), encoders and methods"
DESCRIPTION = (
    "List the datasets (and whether their files are present under DATA), the text and image encoders and the methods."
)


def add_arguments(p, argv: list[str]) -> None:
    add_common(p)


def run(args) -> None:
    from cca_bench.catalog import catalog
    from cca_bench.config import data_root

    print(catalog(data_root(args.data_root)))  # no Options: they would import torch to check the device
