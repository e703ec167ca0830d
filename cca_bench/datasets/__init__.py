"""Datasets: builtin (openmoji, shapes), registered Karpathy ones (flickr8k, flickr30k, coco), layout folders."""

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
    """The layout of a dataset folder (``karpathy``, ``precomp``, ``parquet``, ...; see ``layouts.py``), None
    when it has none; a UserError when several layouts match."""
    from cca_bench.datasets.layouts import choose_layout

    return choose_layout(folder)


def user_folders(data_root: Path) -> list[str]:
    """Names of folders under data_root that are datasets with no code (not registered names)."""
    return list(folder_layouts(data_root))


def folder_layouts(data_root: Path) -> dict[str, list[str]]:
    """{folder name: the layouts it matches} for the unregistered dataset folders under data_root."""
    from cca_bench.datasets.layouts import matching_layouts

    if not Path(data_root).is_dir():
        return {}
    found = {
        p.name: list(matching_layouts(p))
        for p in sorted(Path(data_root).iterdir())
        if p.is_dir() and p.name not in DATASETS and p.name != "cache"
    }
    return {name: layouts for name, layouts in found.items() if layouts}


def check_name(name: str) -> str:
    """``name`` if it can name a dataset, else a UserError: a registered name or ONE folder directly under DATA.

    Names are not paths. Models, runs and parsed-dataset cache files are named after the dataset, so a name
    holding ``/`` (or ``\\``), NUL, ``..``, ``.`` or nothing would write them outside the data and results roots.
    """
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise UserError(
            f"dataset {name!r} is not a name: a dataset is a registered name or one folder directly "
            "under DATA (no '/', '..' or absolute path); for a folder elsewhere, point --data-root at "
            "the folder that holds it"
        )
    return name


def dataset_cache_dir(data_root: Path) -> Path:
    """Where parsed datasets are cached: ``DATA/cache/datasets``."""
    return Path(data_root) / "cache" / "datasets"


def get_dataset(name: str, data_root: Path, *, parsed_cache: bool = True, **options):
    """Build dataset ``name``: a registered one, or a folder ``data_root/name`` in a known layout.

    Registered builders are called as ``builder(data_root, **options)`` and return a CaptionDataset; those
    registered with ``parsed_cache=True`` also get ``cache_dir=`` (:func:`dataset_cache_dir`, or None). A folder
    is read by the layout that recognises it (option ``layout`` picks one when several do).
    ``parsed_cache=False`` (``--no-cache``) neither reads nor writes the parsed-dataset cache.
    """
    from cca_bench.datasets.layouts import load_folder

    check_name(name)
    load_all()
    cache_dir = dataset_cache_dir(data_root) if parsed_cache else None
    if name in DATASETS:
        uses_cache = DATASETS.meta(name).get("parsed_cache", False)
        if uses_cache and "cache_dir" in options:
            raise UserError(
                f"{name}: unknown option 'cache_dir' (the parsed-dataset cache is DATA/cache/datasets; "
                "--no-cache bypasses it)"
            )
        return DATASETS.get(name)(Path(data_root), **({"cache_dir": cache_dir} if uses_cache else {}), **options)
    folder = Path(data_root) / name
    if folder.is_dir() and name != "cache":
        return load_folder(folder, name, cache_dir, **options)
    raise UserError(
        DATASETS.suggest(name, extra=user_folders(Path(data_root)))
        + f"; a folder {folder} in a known layout is also a dataset (Karpathy dataset.json, Kiros "
        "{split}_caps.txt + {split}_ims.npy, parquet, webdataset tars, COCO captions JSON, Flickr8k token "
        "file: see data/README.md)"
    )
