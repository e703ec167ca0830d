"""Hugging Face parquet dumps of Flickr30k / COCO (Karpathy splits), read with pyarrow, image bytes on demand.

Two schemas are common:

- Flickr30k-style: ``image`` {bytes, path}, ``caption`` (list of strings), ``sentids``, ``split``, ``img_id``,
  ``filename``, in one or several shard files;
- COCO-Karpathy-style: ``sentences`` (list of strings, or of {raw, tokens} dicts), ``filepath`` +
  ``filename`` (image files under the folder) or ``url`` (not downloaded), ``split``, ``cocoid``.

Shards ``*.parquet`` in the folder or its ``data/`` are read in name order, rows in order; a file without a
``split`` column takes its split from its name (``test-00000-of-00001.parquet``). Only the caption and id
columns are read up front; the image column is read one row group at a time when an image is asked for
(the last row group stays in memory, since encoders ask in order).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from cca_bench.datasets.base import caption_text
from cca_bench.datasets.layouts import LAYOUTS, Entry, assemble, caption, file_media, split_of
from cca_bench.errors import UserError
from cca_bench.extras import require

CAPTION_COLUMNS = ("caption", "captions", "sentences", "sentences_raw")
ID_COLUMNS = ("filename", "file_name", "img_id", "cocoid", "imgid")
IMAGE_DIRS = ("images", ".")


def shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet")) + sorted((folder / "data").glob("*.parquet"))


def _detect(folder: Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in shards(folder)]


def _open(path: Path):
    pa = require("pyarrow", "the parquet dataset layout")
    pq = require("pyarrow.parquet", "the parquet dataset layout")

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path}: not a readable parquet file ({e})") from None


def _captions(value, where: str) -> list[tuple[str, list[str]]]:
    """A row's caption cell: a string, a list of strings, or a list of {raw, tokens} dicts (an empty list: an
    image without captions). A null cell, a bare record, bytes or a number is refused, never stringified."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        caption_text(value, f"{where} (caption cell)")  # raises: null, bytes, number or record
    out = []
    for k, v in enumerate(value):
        at = f"{where} caption {k}"
        if isinstance(v, dict):
            if v.get("raw") is None and v.get("tokens") is None:
                raise UserError(f"{at}: a sentence has neither 'raw' nor 'tokens'")
            tokens = v.get("tokens")
            if tokens is not None and not isinstance(tokens, list):
                raise UserError(f"{at}: 'tokens' must be a list of strings, got {type(tokens).__name__}")
            raw = v.get("raw") if v.get("raw") is not None else " ".join(caption_text(t, at) for t in tokens)
            out.append(caption(raw, at, tokens))
        else:
            out.append(caption(v, at))
    return out


def _split_from_name(path: Path) -> str:
    stem = path.name.split("-")[0].split(".")[0].split("_")[0]
    return split_of(stem, f"{path} (no 'split' column, so its name gives the split)")


def _image_id(row: dict, file: Path, k: int) -> str:
    name = next((str(row[c]) for c in ID_COLUMNS if row.get(c) is not None), None)
    if name is None:
        return f"{file.name}#{k}"
    return f"{row['filepath']}/{name}" if row.get("filepath") else name


def _check_image_column(kind, path: Path) -> None:
    """The ``image`` column must be the Hugging Face Image feature, a struct {bytes, path}: a plain binary or
    string column is not read (what its cells mean is a guess)."""
    pa = require("pyarrow", "the parquet dataset layout")

    fields = {kind.field(i).name for i in range(kind.num_fields)} if pa.types.is_struct(kind) else set()
    if not fields & {"bytes", "path"}:
        raise UserError(
            f"{path}: column 'image' is {kind}; only a struct {{bytes, path}} (the Hugging Face Image "
            "feature) is read: convert the column, or drop it and put the files under images/"
        )


def read_entries(folder: Path) -> tuple[list[Entry], list[tuple[int, int, int]], bool]:
    """(entries in file order, (shard, row group, row in group) of each, whether an ``image`` column exists)."""
    files = shards(folder)
    entries, where, has_image = [], [], True
    for f_idx, path in enumerate(files):
        pf = _open(path)
        names = pf.schema_arrow.names
        cap = next((c for c in CAPTION_COLUMNS if c in names), None)
        if cap is None:
            raise UserError(
                f"{path}: no caption column (expected one of {', '.join(CAPTION_COLUMNS)}; it has {', '.join(names)})"
            )
        has_image = has_image and "image" in names
        if "image" in names:
            _check_image_column(pf.schema_arrow.field("image").type, path)
        cols = [c for c in (cap, "split", "filepath", *ID_COLUMNS) if c in names]
        rows = pf.read(columns=cols).to_pylist()
        split = None if "split" in names else _split_from_name(path)
        for k, row in enumerate(rows):
            s = split or split_of(row.get("split"), f"{path} row {k}")
            entries.append(Entry(_image_id(row, path, k), s, _captions(row[cap], f"{path} row {k}")))
        sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
        for g, n in enumerate(sizes):
            where += [(f_idx, g, r) for r in range(n)]
    return entries, where, has_image


class ParquetImages:
    """``loader(i)``: the ``image`` cell {bytes, path} of row ``locs[i] = (shard, row group, row)``, decoded
    as RGB. Row groups are read whole, one at a time, and the last ``KEEP`` kept: encoders ask for images in
    order from a few threads, so a batch that straddles two row groups reads each once."""

    KEEP = 3

    def __init__(self, folder: Path, files: list[Path], locs: np.ndarray):
        self.folder, self.files, self.locs = folder, files, locs
        self._lock, self._groups = threading.Lock(), OrderedDict()

    def __getstate__(self):
        return {"folder": self.folder, "files": self.files, "locs": self.locs}

    def __setstate__(self, state):
        self.__init__(**state)

    def _cell(self, i: int) -> dict:
        f, g, r = (int(v) for v in self.locs[i])
        with self._lock:
            if (f, g) not in self._groups:
                self._groups[(f, g)] = _open(self.files[f]).read_row_group(g, columns=["image"]).column("image")
                while len(self._groups) > self.KEEP:
                    self._groups.popitem(last=False)
            self._groups.move_to_end((f, g))
            return self._groups[(f, g)][r].as_py() or {}

    def __call__(self, i: int):
        from cca_bench.datasets.base import open_rgb
        from cca_bench.fsio import resolve_inside

        cell = self._cell(i)
        f = self.files[int(self.locs[i][0])]
        if cell.get("bytes"):
            try:
                return open_rgb(io.BytesIO(cell["bytes"]))
            except UserError:
                raise UserError(
                    f"{f}: the image bytes of row group {self.locs[i][1]} row {self.locs[i][2]} "
                    "are not a readable image"
                ) from None
        if cell.get("path"):
            return open_rgb(resolve_inside(self.folder, cell["path"], f"{f}: image path"))
        raise UserError(f"{f}: row group {self.locs[i][1]} row {self.locs[i][2]} has no image bytes or path")


@LAYOUTS.register(
    "parquet",
    detect=_detect,
    help="Hugging Face parquet dump (Flickr30k: image, caption, split; COCO: sentences, filepath)",
    tree="""
NAME/
  *.parquet  or  data/*.parquet     shards read in name order
    Flickr30k-style columns: image {bytes, path}, caption [str], sentids, split, img_id, filename
    COCO-style columns:      sentences [str | {raw, tokens}], filepath, filename, url, split, cocoid
  images/                           only when rows name files (filepath/filename) instead of holding bytes
""",
)
def load_parquet(folder: Path, name: str, cache_dir: Path | None = None):
    from cca_bench.datasets.cache import cached_dataset
    from cca_bench.datasets.karpathy import _FileLoader

    files = shards(folder)

    def build():
        entries, where, has_image = read_entries(folder)
        locs = np.asarray(where, dtype=np.int64).reshape(-1, 3)
        if has_image:
            media = lambda rows: (ParquetImages(folder, files, locs[rows]), None)  # noqa: E731
        else:
            media = file_media(folder, entries, IMAGE_DIRS, f"{folder} (parquet)")
        return assemble(name, folder, entries, media, f"parquet dump {folder} ({len(files)} files)")

    # rows that name image files (COCO-style) are cached like a Karpathy JSON; embedded bytes are not (their
    # loader reads the parquet files themselves, and the metadata columns read fast)
    sources = [*files, *(folder / d for d in IMAGE_DIRS)]
    return cached_dataset(cache_dir, {"name": name, "layout": "parquet"}, sources, build, _FileLoader)
