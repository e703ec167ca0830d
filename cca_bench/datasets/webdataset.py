"""CLIP_benchmark webdataset shards: ``NAME/{train,val,test}/*.tar``, each sample ``KEY.jpg|png|webp`` + ``KEY.txt``.

A sample's key is its member path up to the first dot of the file name (the webdataset convention); its
``.txt`` holds one caption a line. Shards are read in name order, members in order, which is the image order.
Each tar is scanned once with :mod:`tarfile` (headers only, the image data is skipped) to record where each
image's bytes lie; an image is then read by seeking to that offset. Only uncompressed tars can be read by
offset (CLIP_benchmark writes those).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

from cca_bench.datasets.layouts import LAYOUTS, Entry, assemble, caption, utf8_text
from cca_bench.errors import UserError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
SPLIT_DIRS = {"train": "train", "val": "val", "test": "test"}


def _tars(folder: Path, split_dir: str) -> list[Path]:
    return sorted((folder / split_dir).glob("*.tar"))


def _detect(folder: Path) -> list[str]:
    return [f"{d}/{p.name}" for d in SPLIT_DIRS for p in _tars(folder, d)][:3]


def _split_key(member: str) -> tuple[str, str]:
    """(key, extension) of a member path: ``a/b/0001.jpg`` -> (``a/b/0001``, ``.jpg``)."""
    head, _, base = member.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), (dot + ext).lower()


def index_tar(path: Path) -> list[tuple[str, tuple[int, int] | None, list[str]]]:
    """(key, (image offset, size) or None, caption lines) of each sample of one tar, in order.

    A shard cut short is refused, not read up to the cut: :mod:`tarfile` ends its listing quietly at a missing
    or damaged header, so every member's data must lie inside the file and the listing must end at an
    end-of-archive (zero) block."""
    samples: dict[str, dict] = {}
    try:
        size = path.stat().st_size
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if m.offset_data + m.size > size:
                    raise UserError(
                        f"{path}: truncated: member {m.name!r} needs bytes up to {m.offset_data + m.size} "
                        f"but the file ends at byte {size}"
                    )
                if not m.isfile():
                    continue
                key, ext = _split_key(m.name)
                s = samples.setdefault(key, {"image": None, "text": None})
                if ext in IMAGE_EXTS:
                    s["image"] = (m.offset_data, m.size)
                elif ext == ".txt":
                    s["text"] = utf8_text(tar.extractfile(m).read(), f"{path}: member {m.name!r}")
            _check_end(path, tar.offset, next(reversed(samples), None))
    except (tarfile.TarError, OSError) as e:
        raise UserError(f"{path}: not a readable uncompressed tar ({e})") from None
    out = []
    for key, s in samples.items():
        if s["image"] is None and s["text"] is not None:
            raise UserError(f"{path}: sample {key!r} has a .txt but no {'/'.join(IMAGE_EXTS)} image")
        lines = [line for line in (s["text"] or "").splitlines() if line.strip()]
        out.append((key, s["image"], lines))
    return out


def _check_end(path: Path, offset: int, last: str | None) -> None:
    """The 512-byte block where the listing stopped must be an end-of-archive block (all zeros)."""
    with open(path, "rb") as f:
        f.seek(offset)
        block = f.read(512)
    if len(block) < 512 or block.count(0) != 512:
        after = f"after sample {last!r}" if last is not None else "before the first sample"
        raise UserError(
            f"{path}: truncated or damaged at byte {offset} ({after}): no end-of-archive block there, "
            "so the samples after it cannot be read; copy the shard again"
        )


class TarImages:
    """``loader(i)``: image i read from ``tars[where[i, 0]]`` at byte ``where[i, 1]`` (``where[i, 2]`` bytes)."""

    def __init__(self, tars: list[Path], where: np.ndarray):
        self.tars, self.where = tars, where

    def __call__(self, i: int):
        from cca_bench.datasets.base import open_rgb

        t, offset, size = (int(v) for v in self.where[i])
        with open(self.tars[t], "rb") as f:
            f.seek(offset)
            data = f.read(size)
        try:
            return open_rgb(io.BytesIO(data))
        except UserError:
            raise UserError(f"{self.tars[t]}: the image at byte {offset} is not a readable image") from None


@LAYOUTS.register(
    "webdataset",
    detect=_detect,
    help="CLIP_benchmark webdataset shards: {train,val,test}/*.tar of KEY.jpg|png|webp + KEY.txt",
    tree="""
NAME/
  train/*.tar     optional
  val/*.tar       optional
  test/*.tar      each sample: KEY.jpg (or .png, .webp) + KEY.txt (one caption a line)
""",
)
def load_webdataset(folder: Path, name: str, cache_dir: Path | None = None):
    entries, tars, where = [], [], []
    for split_dir, split in SPLIT_DIRS.items():
        for tar in _tars(folder, split_dir):
            for key, image, lines in index_tar(tar):
                if image is None:
                    continue
                entries.append(
                    Entry(f"{split_dir}/{tar.name}/{key}", split, [caption(c, f"{tar}: sample {key!r}") for c in lines])
                )
                where.append((len(tars), *image))
            tars.append(tar)
    where = np.asarray(where, dtype=np.int64).reshape(-1, 3)
    return assemble(
        name,
        folder,
        entries,
        lambda rows: (TarImages(tars, where[rows]), None),
        f"webdataset shards in {folder} ({len(tars)} tars)",
    )
