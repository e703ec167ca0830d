"""Kiros / VSE++ precomputed layout: ``{split}_caps.txt`` (one caption a line) + ``{split}_ims.npy``.

File splits ``train``, ``dev`` (our ``val``; a ``val_*`` pair is read when there is no ``dev``), ``test`` and
``testall`` (COCO's 5k test images). Captions come in image order, ``k = n_caps / n_images`` consecutive
captions per image (VSE++ ``im_div``): caption j describes image ``j // k``.

Two ``.npy`` layouts exist: one row per image, or (older releases) one row per caption, each image's row
repeated k times. The second is detected (as many rows as captions, and the rows come in identical runs of
k) and collapsed: ``image_rows`` are then the first row of each run, so an encoder reads
``ims[image_rows]`` in both layouts. No pixels: the dataset has no loader; its image encoder is ``precomp``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cca_bench.datasets.base import CaptionDataset, Split, tokenize
from cca_bench.errors import UserError

# file split -> our split; the first file split found for a target wins (dev before val)
FILE_SPLITS = (("train", "train"), ("dev", "val"), ("val", "val"), ("test", "test"), ("testall", "testall"))
_BOMS = ((b"\xff\xfe\0\0", "UTF-32"), (b"\0\0\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
PREFIX_ROWS = 1000  # rows read to find the run length
N_CHECKED_RUNS = 256  # runs compared when confirming repeated rows (evenly spaced, first and last included)


def read_captions(path: Path) -> list[str]:
    """Lines of a ``*_caps.txt`` (UTF-8, a BOM allowed; trailing blank lines dropped), stripped.

    UTF-16/32 files (a BOM, or NUL bytes between ASCII letters) are a UserError saying how to convert them;
    a few invalid UTF-8 bytes are replaced (old caption files hold some Latin-1)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), None)
    if encoding is None and b"\0" in raw[:4096]:
        encoding = "UTF-16 or UTF-32 (NUL bytes)"
    if encoding:
        raise UserError(
            f"{path} is {encoding} text; captions must be UTF-8 (convert it, e.g. "
            f"iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8.txt)"
        )
    lines = raw.decode("utf-8-sig", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def open_ims(path: Path) -> np.ndarray:
    """``{split}_ims.npy`` memory-mapped (never unpickled), checked to be a 2-D numeric array."""
    if not path.is_file():
        raise UserError(f"{path} not found: each {{split}}_caps.txt needs its {{split}}_ims.npy beside it")
    from cca_bench.fsio import open_npy

    ims = open_npy(path)
    if ims.ndim != 2 or not np.issubdtype(ims.dtype, np.number) or ims.shape[1] == 0:
        raise UserError(
            f"{path}: expected a 2-D numeric array (images x features, at least one feature), got "
            f"{ims.dtype} {ims.shape}"
        )
    return ims


def repeat_of(ims: np.ndarray, n_caps: int) -> int:
    """k when the rows are one per caption in identical runs of k (k > 1), else 1.

    k is the shortest run of identical rows among the first ``PREFIX_ROWS`` rows (two neighbouring images
    with identical features make a run of 2k, never a shorter one); all runs are then confirmed constant on
    up to ``N_CHECKED_RUNS`` evenly spaced runs (reading a whole 5x COCO train file would cost gigabytes).
    """
    n = len(ims)
    if n != n_caps or n < 2:
        return 1
    prefix = np.asarray(ims[:PREFIX_ROWS])
    starts = np.flatnonzero(np.r_[True, (prefix[1:] != prefix[:-1]).any(axis=1)])
    runs = np.diff(np.r_[starts, len(prefix)]) if len(prefix) == n else np.diff(starts)
    k = int(runs.min()) if len(runs) else 1
    if k == 1 or n % k:
        return 1
    for r in np.unique(np.linspace(0, n // k - 1, min(N_CHECKED_RUNS, n // k)).astype(np.int64)):
        block = np.asarray(ims[r * k : (r + 1) * k])
        if not (block == block[0]).all():
            return 1
    return k


def precomp_split(folder: Path, name: str, file_split: str, split: str) -> Split:
    """Split ``split`` of dataset ``name`` from ``folder/{file_split}_caps.txt`` + ``_ims.npy``."""
    caps_path, ims_path = folder / f"{file_split}_caps.txt", folder / f"{file_split}_ims.npy"
    captions = read_captions(caps_path)
    ims = open_ims(ims_path)
    repeat = repeat_of(ims, len(captions))
    n_img = len(ims) // repeat
    if n_img == 0 or len(captions) % n_img:
        raise UserError(
            f"{ims_path}: {n_img} images for {len(captions)} captions in {caps_path.name}; the caption count "
            "must be a multiple of the image count (k consecutive captions per image)"
        )
    per_image = len(captions) // n_img
    return Split(
        dataset=name,
        name=split,
        image_ids=[f"{file_split}/{i}" for i in range(n_img)],
        captions=captions,
        tokens=[tokenize(c) for c in captions],
        image_index=np.arange(len(captions), dtype=np.int64) // per_image,
        image_rows=np.arange(n_img, dtype=np.int64) * repeat,
        extra={
            "file_split": file_split,
            "ims_repeat": repeat,
            "captions_per_image": per_image,
            "n_rows": len(ims),
            "dim": ims.shape[1],
        },
    )


def load_precomp_folder(folder: Path, name: str) -> CaptionDataset:
    """Read a Kiros / VSE++ precomputed folder (``train``/``dev``/``test``/``testall`` file splits)."""
    folder = Path(folder)
    splits: dict[str, Split] = {}
    for file_split, split in FILE_SPLITS:
        if split not in splits and (folder / f"{file_split}_caps.txt").is_file():
            splits[split] = precomp_split(folder, name, file_split, split)
    dims = {sp.extra["file_split"]: sp.extra["dim"] for sp in splits.values()}
    if len(set(dims.values())) > 1:
        b, db = next(iter(dims.items()))
        a, da = next((f, d) for f, d in dims.items() if d != db)
        raise UserError(
            f"{folder / f'{a}_ims.npy'} has {da} feature columns but {b}_ims.npy has {db}: every "
            "split of a dataset needs features of one width (from one image encoder)"
        )
    if not splits:
        raise UserError(
            f"{folder}: no {{split}}_caps.txt found (expected some of "
            f"{', '.join(f + '_caps.txt' for f, _ in FILE_SPLITS)}, each with its {{split}}_ims.npy)"
        )
    sizes = ", ".join(f"{s} {sp.n_images} images / {sp.n_captions} captions" for s, sp in splits.items())
    return CaptionDataset(
        name=name,
        root=folder,
        splits=splits,
        description=f"precomputed features (Kiros / VSE++ layout) in {folder}: {sizes}",
        image_encoders=("precomp",),
    )
