"""Bring your own embeddings: write a split out (``export-split``) and score another model's vectors (``evaluate``).

The row order is the contract between the two (docs/bring_your_own.md):

- images: the split's images in dataset-file order (``Split.image_ids``; ``images.txt`` line i = row i);
- captions: grouped by image in that order, each image's captions in sentence order (``captions.txt`` line j
  = row j, describing image ``image_index[j]``);
- any other caption order: pass ``--image-index FILE`` (``.npy`` or one integer a line) giving the image of
  each caption row.

Embedding files are ``.npy`` (read with ``allow_pickle=False``: a pickled file is refused, never unpickled) or
``.safetensors`` (its only tensor, or ``FILE:KEY`` to name one). Every mistake is a one-line UserError naming
the file, raised before anything is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from cca_bench.errors import UserError

LABEL_RE = r"[A-Za-z0-9_.+-]+"
EXTERNAL_FEATURES = "external"


def split_path_key(spec: str) -> tuple[Path, str | None]:
    """``FILE`` or ``FILE.safetensors:KEY`` -> (path, key or None)."""
    head, sep, key = spec.rpartition(":")
    if sep and head.endswith(".safetensors") and key and not Path(spec).is_file():
        return Path(head), key
    return Path(spec), None


def _load_npy(path: Path) -> np.ndarray:
    from cca_bench.fsio import open_npy

    return open_npy(path)


def _load_safetensors(path: Path, key: str | None) -> np.ndarray:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            keys = list(f.keys())
            if key is None and len(keys) != 1:
                raise UserError(
                    f"{path} holds {len(keys)} tensors ({', '.join(keys[:8]) or 'none'}): name one as {path}:KEY"
                )
            if key is not None and key not in keys:
                raise UserError(f"{path} has no tensor {key!r} (it has: {', '.join(keys[:8]) or 'none'})")
            return f.get_tensor(key or keys[0])
    except UserError:
        raise
    except (SafetensorError, OSError, TypeError, ValueError) as e:
        raise UserError(f"{path}: cannot read as safetensors ({e})") from None


# safetensors dtypes numpy reads as numbers (F8_*, BF16, BOOL and the rest are refused by name, not a traceback)
SAFETENSORS_DTYPES = {"F16", "F32", "F64", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}


def _safetensors_header(path: Path, key: str | None) -> tuple[tuple, str]:
    """(shape, dtype) that the safetensors file's JSON header declares for tensor ``key`` (the only one when None);
    nothing else is read. A UserError for a dtype numpy cannot hold (e.g. F8_E4M3) or a damaged header."""
    from cca_bench.fsio import safetensors_header

    header = safetensors_header(path)
    try:
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        keys = list(tensors)
        if key is None and len(keys) != 1:
            raise UserError(
                f"{path} holds {len(keys)} tensors ({', '.join(keys[:8]) or 'none'}): name one as {path}:KEY"
            )
        if key is not None and key not in tensors:
            raise UserError(f"{path} has no tensor {key!r} (it has: {', '.join(keys[:8]) or 'none'})")
        entry = tensors[key or keys[0]]
        shape, dtype = tuple(int(d) for d in entry["shape"]), str(entry["dtype"])
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: cannot read as safetensors ({e})") from None
    if dtype not in SAFETENSORS_DTYPES:
        raise UserError(
            f"{path}: tensor {key or keys[0]!r} is {dtype}, which numpy cannot read; save it as F32 "
            "(or F16, F64, an integer type)"
        )
    return shape, dtype


def embedding_shape(spec: str) -> tuple[tuple, Path]:
    """(the shape its header declares, path) of a ``FILE.npy`` / ``FILE.safetensors[:KEY]`` embedding file, read
    from the header alone: a 2-D numeric array of at least one column, or a one-line UserError. Nothing of the
    data is read, so a file claiming 10^6 x 10^5 rows can be compared with the split first."""
    from cca_bench.fsio import check_npy_header

    path, key = split_path_key(spec)
    if not path.is_file():
        raise UserError(f"{path}: embedding file not found")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".safetensors"):
        raise UserError(f"{path}: embeddings must be .npy or .safetensors")
    if suffix == ".npy":
        with open(path, "rb") as f:
            shape, dtype = check_npy_header(f, os.fstat(f.fileno()).st_size, str(path))
        numeric = np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)
    else:
        (shape, dtype), numeric = _safetensors_header(path, key), True
    if len(shape) != 2 or not numeric:
        raise UserError(f"{path}: expected a 2-D numeric array (rows x dimensions), got {dtype} {shape}")
    if shape[1] == 0:
        raise UserError(f"{path}: zero-width embeddings ({shape[0]} x 0): each row needs at least one dimension")
    return shape, path


def load_embeddings(spec: str) -> tuple[np.ndarray, Path]:
    """A (rows, d) finite float32 array from ``FILE.npy`` / ``FILE.safetensors[:KEY]`` (its header checked first:
    :func:`embedding_shape`), and its path."""
    embedding_shape(spec)
    path, key = split_path_key(spec)
    arr = _load_npy(path) if path.suffix.lower() == ".npy" else _load_safetensors(path, key)
    arr = np.asarray(arr, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if len(bad):
        raise UserError(f"{path}: NaN or infinite values in {len(bad)} rows (first: row {int(bad[0])})")
    return arr, path


def load_image_index(path: Path, n_rows: int, n_images: int) -> np.ndarray:
    """(n_rows,) int64 image of each caption row, from ``.npy`` or a text file of one integer a line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: image index file not found")
    if path.suffix.lower() == ".npy":
        idx = _load_npy(path)
    else:
        try:
            idx = np.array([int(v) for v in path.read_text(encoding="utf-8").split()], dtype=np.int64)
        except ValueError as e:
            raise UserError(f"{path}: expected one integer a line ({e})") from None
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise UserError(f"{path}: expected a 1-D integer array, got {idx.dtype} {idx.shape}")
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) != n_rows:
        raise UserError(f"{path}: {len(idx)} entries for {n_rows} caption rows")
    if len(idx) and (idx.min() < 0 or idx.max() >= n_images):
        raise UserError(
            f"{path}: image numbers must lie in 0..{n_images - 1} (found {int(idx.min())}..{int(idx.max())})"
        )
    return idx


def fingerprint_file(path: Path) -> str:
    """sha1 of a file's bytes (first 16 hex digits): which embeddings a run scored."""
    from cca_bench.fsio import sha1_file

    return sha1_file(path)[:16]


def check_embeddings(
    split, images: tuple, image_file: Path, texts: tuple, text_file: Path, image_index: np.ndarray | None
) -> np.ndarray:
    """Rows and widths of both files (their header shapes ``images``, ``texts``) against the split, before their
    data is read; returns the image index of the caption rows."""
    where = f"{split.dataset}/{split.name}"
    if images[0] != split.n_images:
        raise UserError(
            f"{image_file}: {images[0]} rows but {where} has {split.n_images} images "
            "(one row per image, in the order export-split writes)"
        )
    if image_index is None and texts[0] != split.n_captions:
        raise UserError(
            f"{text_file}: {texts[0]} rows but {where} has {split.n_captions} captions "
            "(one row per caption, in the order export-split writes, or give --image-index)"
        )
    if images[1] != texts[1]:
        raise UserError(
            f"{text_file}: {texts[1]} dimensions but {image_file} has {images[1]}; "
            "both must live in one embedding space"
        )
    return split.image_index if image_index is None else image_index


def evaluate_embeddings(
    dataset_name: str,
    split_name: str,
    image_spec: str,
    text_spec: str,
    label: str,
    opts,
    distance: str = "cosine",
    protocol: str = "full",
    image_index_file: str | None = None,
) -> dict:
    """Score another model's embeddings on a split; returns the run record (``method`` = label, not yet saved)."""
    from cca_bench.benchmark import (
        _timed,
        dataset_tag,
        load_dataset,
        protocol_folds,
        run_record,
        score_split,
        sweep_outputs,
    )

    if not re.fullmatch(LABEL_RE, label):
        raise UserError(f"--name {label!r} may hold only letters, digits, '_', '.', '+' and '-'")
    sweep_outputs(opts)
    timings: dict = {}
    (image_shape, image_file), (text_shape, text_file) = (embedding_shape(image_spec), embedding_shape(text_spec))
    split = load_dataset(dataset_name, opts).split(split_name)  # after the headers: a bad file fails first
    folds = protocol_folds(protocol, split.n_images, f"{dataset_name}/{split_name}")
    if opts.run.bootstrap:
        from cca_bench.stats import check_resamples

        check_resamples("--bootstrap", opts.run.bootstrap, split.n_images)
    given = (
        None if image_index_file is None else load_image_index(Path(image_index_file), text_shape[0], split.n_images)
    )
    image_index = check_embeddings(split, image_shape, image_file, text_shape, text_file, given)
    (images, _), (texts, _) = _timed(  # only now, rows and widths agreeing with the split, is data read
        timings, "load_embeddings", lambda: (load_embeddings(image_spec), load_embeddings(text_spec))
    )
    evaluation = score_split(opts, [(images, texts)], split, image_index, distance, protocol, folds, timings)
    embeddings = {
        "images": {"file": str(image_file), "sha1": fingerprint_file(image_file), "dim": images.shape[1]},
        "texts": {"file": str(text_file), "sha1": fingerprint_file(text_file), "rows": len(texts)},
    }
    if image_index_file is not None:
        embeddings["image_index"] = {"file": str(image_index_file), "sha1": fingerprint_file(Path(image_index_file))}
    return run_record(
        method=label,
        dataset_name=dataset_name,
        split=split,
        features=EXTERNAL_FEATURES,
        distance=distance,
        protocol=protocol,
        folds=folds,
        **evaluation,
        timings=timings,
        opts=opts,
        model="__".join([label, dataset_tag(dataset_name, opts.dataset_options), EXTERNAL_FEATURES]),
        n_captions=len(texts),
        split_fingerprint=split.fingerprint(),
        embeddings=embeddings,
    )


def export_split(dataset_name: str, split_name: str, out_dir: Path, opts) -> dict:
    """Write a split's rows in the evaluation order to ``out_dir``; returns what ``split.json`` holds.

    Files: ``images.txt`` (line i: the absolute path of image i; datasets whose images are not files, such as
    the builtin rendered ones or parquet / webdataset bytes, get them written as ``images/NNNNNN.png``),
    ``captions.txt`` (line j: caption j, line breaks inside a caption replaced by spaces),
    ``image_index.txt`` / ``image_index.npy`` (entry j: the image of caption j) and ``split.json``.
    """
    from cca_bench.benchmark import load_dataset
    from cca_bench.fsio import write_atomic, write_json

    split = load_dataset(dataset_name, opts).split(split_name)
    out_dir = Path(out_dir)
    images, kind = _image_files(split, out_dir)
    text = lambda lines: lambda f: f.write("".join(f"{line}\n" for line in lines).encode("utf-8"))  # noqa: E731
    write_atomic(out_dir / "images.txt", text(images))
    write_atomic(out_dir / "captions.txt", text(" ".join(c.splitlines()) for c in split.captions))
    write_atomic(out_dir / "image_index.txt", text(map(str, split.image_index.tolist())))
    write_atomic(out_dir / "image_index.npy", lambda f: np.save(f, split.image_index))
    summary = {
        "dataset": dataset_name,
        "split": split.name,
        "n_images": split.n_images,
        "n_captions": split.n_captions,
        "images": kind,
        "fingerprint": split.fingerprint(),
        "order": "images.txt line i = row i of --images; captions.txt line j = row j of --texts and describes "
        "image image_index[j]; captions are grouped by image in image order, each image's in sentence "
        "order (see docs/bring_your_own.md)",
        "files": ["images.txt", "captions.txt", "image_index.txt", "image_index.npy"],
        "evaluate": f"python -m cca_bench evaluate {dataset_name} {split.name} --images IMAGES.npy "
        "--texts TEXTS.npy --name YOUR_MODEL",
        "image_ids": split.image_ids,
    }
    write_json(out_dir / "split.json", summary)
    return summary


def _image_files(split, out_dir: Path) -> tuple[list[str], str]:
    """(line per image for images.txt, kind): the image files, PNGs rendered from the loader, or bare ids."""
    from cca_bench.fsio import write_atomic

    if split.image_paths is not None:
        return [str(Path(p).resolve()) for p in split.image_paths], "paths of the dataset's image files"
    if split.loader is None:
        return list(split.image_ids), "image ids only (this dataset has precomputed features, no pixels)"
    lines = []
    for i in range(split.n_images):
        path = out_dir / "images" / f"{i:06d}.png"
        image = split.load_image(i)
        write_atomic(path, lambda f, im=image: im.save(f, format="PNG"))
        lines.append(str(path.resolve()))
    return lines, "PNG files written by export-split under images/"
