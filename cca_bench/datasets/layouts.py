"""Dataset folder layouts: each says whether a folder is its own, and reads it into the same CaptionDataset.

A folder ``DATA/NAME`` with no registered builder is read by the one layout that recognises it (several:
a one-line error naming them, resolved with ``-D layout=NAME``). Every layout yields the splits the
Karpathy JSON would give for the same images and captions: ``train`` (with ``restval``), ``val``, ``test``;
images in the order of the dataset's files, captions grouped by image in sentence order; images with no
caption skipped (``extra["n_skipped_no_captions"]``); ``image_rows`` = position in the files' image order.

Each entry is registered as ``LAYOUTS.register(name, detect=fn, tree=str, help=str)(load)``:
``detect(folder) -> list[str]`` (the files that make it this layout; empty = not this one),
``load(folder, name, cache_dir) -> CaptionDataset``; ``tree`` shows the files (README, data/README.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cca_bench.datasets.base import CaptionDataset, FileLoader, Split, caption_text, tokenize
from cca_bench.errors import UserError
from cca_bench.fsio import resolve_inside
from cca_bench.registry import Registry

LAYOUTS = Registry("dataset layout")
_MODULES = ("layouts_builtin", "parquet", "webdataset", "coco_captions", "flickr8k_tokens")
SPLIT_OF = {"train": "train", "restval": "train", "val": "val", "dev": "val", "validation": "val", "test": "test"}
SPLIT_ORDER = ("train", "val", "test")


def load_layouts() -> None:
    """Import every layout module so its registration runs."""
    for m in _MODULES:
        importlib.import_module(f"cca_bench.datasets.{m}")


def matching_layouts(folder: Path) -> dict[str, list[str]]:
    """{layout: the files that make ``folder`` that layout} for every layout that recognises it."""
    load_layouts()
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {name: LAYOUTS.meta(name)["detect"](folder) for name in LAYOUTS.names()}
    return {name: files for name, files in found.items() if files}


def choose_layout(folder: Path, layout: str | None = None) -> str | None:
    """The layout of ``folder`` (``layout`` forces one); None when none matches; UserError when several do."""
    found = matching_layouts(folder)
    if layout is not None:
        LAYOUTS.get(layout)
        if layout not in found:
            raise UserError(f"{folder} is not in the {layout!r} layout ({LAYOUTS.meta(layout)['help']})")
        return layout
    if len(found) > 1:
        which = "; ".join(f"{n} ({', '.join(files[:2])})" for n, files in found.items())
        raise UserError(
            f"{folder} matches several dataset layouts: {which}; choose one with -D layout=NAME "
            "or move the other files away"
        )
    return next(iter(found), None)


def load_folder(folder: Path, name: str, cache_dir: Path | None = None, **options) -> CaptionDataset:
    """Read ``folder`` with its layout; options: ``layout`` (when several match). None matching: UserError."""
    unknown = sorted(set(options) - {"layout"})
    if unknown:
        raise UserError(f"dataset folder {name!r}: unknown option {unknown[0]!r} (valid: layout)")
    layout = choose_layout(folder, options.get("layout"))
    if layout is None:
        raise UserError(
            f"{folder} matches no dataset layout; recognised: "
            + "; ".join(f"{n} ({LAYOUTS.meta(n)['help']})" for n in LAYOUTS.names())
        )
    return LAYOUTS.get(layout)(Path(folder), name, cache_dir)


def layout_trees() -> str:
    """Markdown: one file tree per layout (what ``list`` and the docs show)."""
    load_layouts()
    return "\n\n".join(
        f"`{n}`: {LAYOUTS.meta(n)['help']}\n\n```\n{LAYOUTS.meta(n)['tree'].strip()}\n```" for n in LAYOUTS.names()
    )


# ------------------------------------------------------------------------------- shared by the layout readers


@dataclass
class Entry:
    """One image as a layout's files list it: id, split (train/val/test after SPLIT_OF, None = no split),
    and its captions as (raw, tokens) pairs in sentence order."""

    image_id: str
    split: str | None
    captions: list[tuple[str, list[str]]]


def caption(raw, where: str, tokens=None) -> tuple[str, list[str]]:
    """(stripped raw caption, tokens): the given tokens, else :func:`~cca_bench.datasets.base.tokenize`.

    ``raw`` and every token must be text (:func:`~cca_bench.datasets.base.caption_text`); ``where`` names the
    file and row for the error."""
    raw = caption_text(raw, where).strip()
    if isinstance(tokens, (list, tuple)):
        return raw, [caption_text(t, f"{where} (tokens)") for t in tokens]
    return raw, tokenize(raw)


def utf8_text(data: bytes, where: str) -> str:
    """``data`` decoded as UTF-8, or a UserError naming ``where``, the line and the byte:
    a caption file in Latin-1 or with a damaged byte is not read with replacement characters in it."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(
            f"{where} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None


def split_of(value, where: str) -> str:
    """train/val/test for a split name of the files (``restval`` joins train; ``dev``, ``validation`` = val)."""
    try:
        return SPLIT_OF[str(value).strip().lower()]
    except KeyError:
        raise UserError(f"{where}: unknown split {value!r} (expected one of {', '.join(SPLIT_OF)})") from None


def assemble(
    name: str,
    root: Path,
    entries: list[Entry],
    media: Callable[[np.ndarray], tuple],
    source: str,
    image_encoders: tuple[str, ...] = (),
) -> CaptionDataset:
    """Splits from ``entries`` (file order), the way the Karpathy loader builds them.

    ``media(rows) -> (loader, image_paths or None)`` gives the images of the entries at ``rows``.
    """
    rows: dict[str, list[int]] = {s: [] for s in SPLIT_ORDER}
    skipped = dict.fromkeys(SPLIT_ORDER, 0)
    for pos, e in enumerate(entries):
        if e.split is None:
            continue
        if e.captions:
            rows[e.split].append(pos)
        else:
            skipped[e.split] += 1
    if not any(rows.values()):
        raise UserError(f"{source}: no image with a caption in a train, val or test split")
    splits = {}
    for s in SPLIT_ORDER:
        if not rows[s]:
            continue
        r = np.asarray(rows[s], dtype=np.int64)
        pairs = [(i, c) for i, pos in enumerate(rows[s]) for c in entries[pos].captions]
        loader, paths = media(r)
        splits[s] = Split(
            dataset=name,
            name=s,
            image_ids=[entries[pos].image_id for pos in rows[s]],
            captions=[c[0] for _, c in pairs],
            tokens=[c[1] for _, c in pairs],
            image_index=np.array([i for i, _ in pairs], dtype=np.int64),
            image_rows=r,
            loader=loader,
            image_paths=paths,
            extra={"n_images_total": len(entries), "n_skipped_no_captions": skipped[s]},
        )
    sizes = ", ".join(f"{s} {sp.n_images} images / {sp.n_captions} captions" for s, sp in splits.items())
    return CaptionDataset(
        name=name, root=Path(root), splits=splits, description=f"{source}: {sizes}", image_encoders=image_encoders
    )


def image_files(root: Path, ids: list[str], dirs: tuple[str, ...], where: str) -> list[Path]:
    """Path of each image id: the first of ``root/dir/id`` that exists (else under the first dir); every
    path checked to stay inside ``root`` (ids come from the user's files)."""
    bases = [root / d if d != "." else root for d in dirs]
    look = [b for b in bases if b.is_dir()]
    out = []
    for image_id in ids:
        cands = [resolve_inside(root, b.relative_to(root) / image_id, f"{where}: image {image_id!r}") for b in look]
        out.append(
            next((p for p in cands if p.exists()), None)
            or resolve_inside(root, bases[0].relative_to(root) / image_id, f"{where}: image {image_id!r}")
        )
    return out


def file_media(root: Path, entries: list[Entry], dirs: tuple[str, ...], where: str) -> Callable:
    """``media`` for layouts whose images are files named by their ids under one of ``dirs``."""

    def media(rows: np.ndarray):
        paths = image_files(root, [entries[r].image_id for r in rows], dirs, where)
        return FileLoader(paths), paths

    return media


def first_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``folder/name`` that is a file."""
    return next((folder / n for n in names if (folder / n).is_file()), None)
