"""Datasets: builtin (openmoji, shapes), Karpathy-format (flickr8k, flickr30k, coco, any folder), Kiros precomp."""
from __future__ import annotations

import importlib
from pathlib import Path

from cca_bench.errors import UserError
from cca_bench.registry import DATASETS

_MODULES = ("openmoji", "shapes", "karpathy", "precomp")


def load_all() -> None:
    """Import every dataset module so its registrations run."""
    for m in _MODULES:
        importlib.import_module(f"cca_bench.datasets.{m}")


def folder_kind(folder: Path) -> str | None:
    """``karpathy`` for a folder with a dataset.json, ``precomp`` for the Kiros layout, else None."""
    if (folder / "dataset.json").is_file():
        return "karpathy"
    if any((folder / f"{s}_caps.txt").is_file() for s in ("train", "dev", "val", "test", "testall")):
        return "precomp"
    return None


def user_folders(data_root: Path) -> list[str]:
    """Names of folders under data_root that are datasets with no code (not registered names)."""
    if not data_root.is_dir():
        return []
    return sorted(p.name for p in data_root.iterdir() if p.is_dir() and p.name not in DATASETS and folder_kind(p))


def get_dataset(name: str, data_root: Path, **options):
    """Build dataset ``name``: a registered one, or a folder ``data_root/name`` in a known layout.

    Registered builders are called as ``builder(data_root, **options)`` and return a CaptionDataset.
    """
    load_all()
    if name in DATASETS:
        return DATASETS.get(name)(Path(data_root), **options)
    folder = Path(data_root) / name
    kind = folder_kind(folder) if folder.is_dir() else None
    if kind == "karpathy":
        from cca_bench.datasets.karpathy import load_karpathy_folder

        return load_karpathy_folder(folder, name=name)
    if kind == "precomp":
        from cca_bench.datasets.precomp import load_precomp_folder

        return load_precomp_folder(folder, name=name)
    raise UserError(
        DATASETS.suggest(name, extra=user_folders(Path(data_root)))
        + f"; a folder {folder} with a dataset.json (Karpathy format) or {{split}}_caps.txt + {{split}}_ims.npy "
        "(Kiros layout) is also a dataset"
    )
