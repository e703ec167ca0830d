"""Parsed-dataset cache: a CaptionDataset read from big source files, stored once as flat arrays.

COCO's Karpathy JSON (179 MB) takes seconds and a gigabyte to parse on every command; its parsed form (ids,
captions, tokens, image index, image rows, paths, split extras) fits in a few flat arrays that load in a
fraction of that. One ``.npz`` per dataset under ``DATA/cache/datasets/``, named by a hash of its key: the
layout, the dataset name, and each source file's and image folder's (resolved path, size, mtime_ns), so
editing, replacing or touching a source rebuilds it. Written atomically (``fsio``); read with
``allow_pickle=False``.

Strings are stored as one UTF-8 blob per field, records separated by ``\\x1e`` and tokens within a caption by
``\\x1f``: splitting a blob is one C call, where per-string offsets would cost a Python slice each. A dataset
whose strings hold those control characters, or whose images are not plain files (parquet bytes, tar
members, rendered builtins), is not cached (its reader is fast or its loader is not a file list).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from cca_bench.datasets.base import CaptionDataset, Split

FORMAT = 1
RS, US = "\x1e", "\x1f"
_READ_ONLY = contextvars.ContextVar("parsed_dataset_cache_read_only", default=False)


@contextlib.contextmanager
def read_only():
    """Within this block (this thread), :func:`cached_dataset` reads the entries it finds and writes none: the
    web app is read-only over the data root, yet loads COCO from the cache when a command has filled it."""
    token = _READ_ONLY.set(True)
    try:
        yield
    finally:
        _READ_ONLY.reset(token)


def source_fingerprint(paths: list[Path]) -> list:
    """(resolved path, size, mtime_ns) of each path; (path, None, None) for one that does not exist."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(Path(p).absolute()), None, None])
    return out


def cache_path(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{key['name']}-{key['layout']}-{digest}.npz"


def cached_dataset(
    cache_dir: Path | None,
    key: dict,
    sources: list[Path],
    build: Callable[[], CaptionDataset],
    loader: Callable[[list[Path]], Callable],
) -> CaptionDataset:
    """The dataset stored under ``key`` + the fingerprint of ``sources``, else ``build()`` stored.

    ``key`` holds at least ``name`` and ``layout``; ``loader(paths)`` rebuilds a split's image loader from
    its image paths. ``cache_dir=None`` builds without caching.
    """
    if cache_dir is None:
        return build()
    key = {**key, "format": FORMAT, "sources": source_fingerprint(sources)}
    path = cache_path(cache_dir, key)
    if path.is_file():
        try:
            return read(path, loader, image_roots(key["sources"]))
        except (OSError, ValueError, KeyError, UnicodeDecodeError, json.JSONDecodeError, zipfile.BadZipFile):
            pass  # a damaged entry is rebuilt below
    dataset = build()
    arrays = None if _READ_ONLY.get() else pack(dataset)
    if arrays is not None:
        from cca_bench.fsio import write_atomic

        try:
            write_atomic(path, lambda f: np.savez(f, **arrays))
        except OSError:
            pass  # a read-only data root still works, uncached
    return dataset


def image_roots(fingerprint: list) -> tuple[list[str], list[str]]:
    """(folders, absent paths) among a dataset's fingerprinted sources (resolved when fingerprinted): where its
    cached image paths may point. Paths under an absent image folder were never resolved; the folder appearing
    changes the fingerprint, so such an entry is not read again once it could lead anywhere."""
    folders = [p for p, size, _ in fingerprint if size is not None and os.path.isdir(p)]
    return folders, [p for p, size, _ in fingerprint if size is None]


def checked_paths(paths: list[str], roots: tuple[list[str], list[str]], where: str) -> list[Path]:
    """Cached image paths re-checked inside the dataset's folders (:func:`cca_bench.fsio.resolve_inside`) when
    the entry is read: a symlink planted below an image folder since the entry was written (which need not
    change the fingerprinted folder) or an edited entry does not lead out of the dataset.

    Each distinct folder is resolved once and each file costs one ``lstat`` (a full check only for symlinks):
    COCO's 123k train paths take a fraction of a second.
    """
    from cca_bench.errors import UserError
    from cca_bench.fsio import resolve_inside

    folders, absent = roots
    parents: dict[str, str] = {}  # folder of a cached path -> the root it was checked inside
    for p in paths:
        parent = os.path.dirname(p)
        if parent not in parents:
            root = _deepest_root(p, folders)
            if root is None:
                if _deepest_root(os.path.abspath(p), absent) and ".." not in Path(p).parts and not os.path.lexists(p):
                    continue  # under an image folder absent when fingerprinted (see image_roots)
                raise UserError(
                    f"{where}: cached image path {p!r} is not inside the dataset's folders; delete the "
                    "entry or run with --no-cache"
                )
            resolve_inside(root, os.path.relpath(parent, root), f"{where}: cached image folder")
            parents[parent] = root
        if os.path.islink(p):
            resolve_inside(parents[parent], os.path.relpath(p, parents[parent]), f"{where}: cached image")
    return [Path(p) for p in paths]


def _deepest_root(path: str, roots: list[str]) -> str | None:
    """The longest of ``roots`` that ``path`` lies below, or None."""
    return max((r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)), key=len, default=None)


def _blob(strings, what: str) -> np.ndarray | None:
    text = RS.join(strings)
    if text.count(RS) != max(len(strings) - 1, 0) or (what != "tokens" and US in text):
        return None
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _strings(arr: np.ndarray, n: int) -> list[str]:
    return arr.tobytes().decode("utf-8").split(RS) if n else []


def pack(dataset: CaptionDataset) -> dict | None:
    """Flat arrays of a dataset, or None when it cannot be cached (see the module docstring)."""
    meta = {
        "name": dataset.name,
        "root": None if dataset.root is None else str(dataset.root),
        "description": dataset.description,
        "image_encoders": list(dataset.image_encoders),
        "splits": [],
    }
    arrays = {}
    for s, split in dataset.splits.items():
        if split.loader is not None and split.image_paths is None:
            return None
        tokens = [US.join(t) for t in split.tokens]
        if any(US in t for toks in split.tokens for t in toks):
            return None
        blobs = {
            "ids": _blob(split.image_ids, "ids"),
            "captions": _blob(split.captions, "captions"),
            "tokens": _blob(tokens, "tokens"),
        }
        if split.image_paths is not None:
            blobs["paths"] = _blob([str(p) for p in split.image_paths], "paths")
        if any(b is None for b in blobs.values()):
            return None
        arrays.update({f"{s}.{k}": v for k, v in blobs.items()})
        arrays[f"{s}.image_index"], arrays[f"{s}.image_rows"] = split.image_index, split.image_rows
        meta["splits"].append(
            {
                "name": s,
                "n_images": split.n_images,
                "n_captions": split.n_captions,
                "paths": split.image_paths is not None,
                "extra": split.extra,
                "fingerprint": split.fingerprint(),
            }
        )
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return arrays


class LazySplits(Mapping):
    """The splits of a cached dataset, each turned into Python objects (ids, captions, token lists, paths)
    only when first asked for: ``run_benchmark ... test`` on COCO never builds the 566k-caption train split."""

    def __init__(self, meta: dict, arrays: dict, loader: Callable[[list[Path]], Callable], roots: tuple, where: str):
        self._meta = {m["name"]: m for m in meta["splits"]}
        self._dataset, self._arrays, self._loader, self._built = meta["name"], arrays, loader, {}
        self._roots, self._where = roots, where

    def __getitem__(self, name: str) -> Split:
        if name not in self._built:
            m, z = self._meta[name], self._arrays
            n_img, n_txt = m["n_images"], m["n_captions"]
            paths = checked_paths(_strings(z[f"{name}.paths"], n_img), self._roots, self._where) if m["paths"] else None
            split = Split(
                dataset=self._dataset,
                name=name,
                image_ids=_strings(z[f"{name}.ids"], n_img),
                captions=_strings(z[f"{name}.captions"], n_txt),
                tokens=[t.split(US) if t else [] for t in _strings(z[f"{name}.tokens"], n_txt)],
                image_index=z[f"{name}.image_index"],
                image_rows=z[f"{name}.image_rows"],
                loader=None if paths is None else self._loader(paths),
                image_paths=paths,
                extra=m["extra"],
            )
            split._fingerprint = m["fingerprint"]
            self._built[name] = split
        return self._built[name]

    def __iter__(self):
        return iter(self._meta)

    def __len__(self) -> int:
        return len(self._meta)


def read(path: Path, loader: Callable[[list[Path]], Callable], roots: tuple) -> CaptionDataset:
    """The CaptionDataset :func:`pack` stored in ``path`` (each split read and built on first use, its image
    paths checked to lie inside ``roots``, see :func:`image_roots`)."""
    arrays = np.load(path, allow_pickle=False)  # an NpzFile: each array is read when its split is built
    meta = json.loads(arrays["meta"].tobytes())
    missing = {
        f"{m['name']}.{k}" for m in meta["splits"] for k in ("ids", "captions", "tokens", "image_index", "image_rows")
    } - set(arrays.files)
    if missing:
        raise KeyError(f"{path} lacks {sorted(missing)[0]}")
    return CaptionDataset(
        name=meta["name"],
        root=None if meta["root"] is None else Path(meta["root"]),
        splits=LazySplits(meta, arrays, loader, roots, str(path)),
        description=meta["description"],
        image_encoders=tuple(meta["image_encoders"]),
    )
