"""File primitives every layer uses: the one atomic writer, and the one check on paths read from data files."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from cca_bench.errors import UserError


def write_atomic(path: Path, write: Callable) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it over ``path`` (all or nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, obj) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(obj, indent=2, default=str).encode()))


def resolve_inside(root: Path, entry: str | os.PathLike, what: str) -> Path:
    """``root / entry`` resolved (symlinks followed), refused unless it stays inside ``root``.

    ``entry`` is a path read from a dataset file (an image file name, a ``filepath``); ``what`` names that
    file and entry for the one-line error, e.g. ``"data/flickr8k/dataset.json: image 'a.jpg'"``. Absolute
    entries, ``..`` and symlinks that leave ``root`` raise :class:`UserError`.
    """
    root = Path(root).resolve()
    if Path(entry).is_absolute():
        raise UserError(f"{what}: absolute path {str(entry)!r} is not allowed (paths must stay inside {root})")
    target = (root / entry).resolve()
    if target != root and root not in target.parents:
        raise UserError(f"{what}: path {str(entry)!r} leaves the dataset folder {root}")
    return target


def sha1_file(path: Path) -> str:
    """Hex sha1 of a file's bytes, read in 16 MiB blocks (model files and embeddings can be gigabytes)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()
