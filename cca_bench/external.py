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

import re
from pathlib import Path

import numpy as np

from cca_bench.checks import check_resamples
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
                raise UserError(f"{path} holds {len(keys)} tensors ({', '.join(keys[:8]) or 'none'}): name one as "
                                f"{path}:KEY")
            if key is not None and key not in keys:
                raise UserError(f"{path} has no tensor {key!r} (it has: {', '.join(keys[:8]) or 'none'})")
            return f.get_tensor(key or keys[0])
    except UserError:
        raise
    except (SafetensorError, OSError, TypeError, ValueError) as e:
        raise UserError(f"{path}: cannot read as safetensors ({e})") from None


def load_embeddings(spec: str) -> tuple[np.ndarray, Path]:
    """A (rows, d) finite numeric array from ``FILE.npy`` / ``FILE.safetensors[:KEY]``, and its path."""
    path, key = split_path_key(spec)
    if not path.is_file():
        raise UserError(f"{path}: embedding file not found")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".safetensors"):
        raise UserError(f"{path}: embeddings must be .npy or .safetensors")
    arr = _load_npy(path) if suffix == ".npy" else _load_safetensors(path, key)
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise UserError(f"{path}: expected a 2-D numeric array (rows x dimensions), got {arr.dtype} {arr.shape}")
    if arr.shape[1] == 0:
        raise UserError(f"{path}: zero-width embeddings ({arr.shape[0]} x 0): each row needs at least one dimension")
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
        raise UserError(f"{path}: image numbers must lie in 0..{n_images - 1} (found {int(idx.min())}.."
                        f"{int(idx.max())})")
    return idx


def fingerprint_file(path: Path) -> str:
    """sha1 of a file's bytes (first 16 hex digits): which embeddings a run scored."""
    from cca_bench.fsio import sha1_file

    return sha1_file(path)[:16]


def check_embeddings(split, images: np.ndarray, image_file: Path, texts: np.ndarray, text_file: Path,
                     image_index: np.ndarray | None) -> np.ndarray:
    """Rows and widths of both files against the split; returns the image index of the caption rows."""
    where = f"{split.dataset}/{split.name}"
    if len(images) != split.n_images:
        raise UserError(f"{image_file}: {len(images)} rows but {where} has {split.n_images} images "
                        "(one row per image, in the order export-split writes)")
    if image_index is None and len(texts) != split.n_captions:
        raise UserError(f"{text_file}: {len(texts)} rows but {where} has {split.n_captions} captions "
                        "(one row per caption, in the order export-split writes, or give --image-index)")
    if images.shape[1] != texts.shape[1]:
        raise UserError(f"{text_file}: {texts.shape[1]} dimensions but {image_file} has {images.shape[1]}; "
                        "both must live in one embedding space")
    return split.image_index if image_index is None else image_index


def evaluate_embeddings(dataset_name: str, split_name: str, image_spec: str, text_spec: str, label: str, opts,
                        distance: str = "cosine", protocol: str = "full", image_index_file: str | None = None) -> dict:
    """Score another model's embeddings on a split; returns the run record (``method`` = label, not yet saved)."""
    from cca_bench.benchmark import _timed, dataset_tag, load_dataset, protocol_folds, run_record, sweep_outputs
    from cca_bench.evaluation import score

    if not re.fullmatch(LABEL_RE, label):
        raise UserError(f"--name {label!r} may hold only letters, digits, '_', '.', '+' and '-'")
    sweep_outputs(opts)
    timings: dict = {}
    (images, image_file), (texts, text_file) = _timed(  # first: a bad file is refused before the dataset loads
        timings, "load_embeddings", lambda: (load_embeddings(image_spec), load_embeddings(text_spec)))
    split = load_dataset(dataset_name, opts).split(split_name)
    folds = protocol_folds(protocol, split.n_images, f"{dataset_name}/{split_name}")
    if opts.bootstrap:
        check_resamples("--bootstrap", opts.bootstrap, split.n_images)
    given = None if image_index_file is None else load_image_index(Path(image_index_file), len(texts), split.n_images)
    image_index = check_embeddings(split, images, image_file, texts, text_file, given)
    evaluation = score([(images, texts)], image_index, distance, folds, opts, timings)
    embeddings = {"images": {"file": str(image_file), "sha1": fingerprint_file(image_file), "dim": images.shape[1]},
                  "texts": {"file": str(text_file), "sha1": fingerprint_file(text_file), "rows": len(texts)}}
    if image_index_file is not None:
        embeddings["image_index"] = {"file": str(image_index_file), "sha1": fingerprint_file(Path(image_index_file))}
    return run_record(
        method=label, dataset_name=dataset_name, split=split, features=EXTERNAL_FEATURES, distance=distance,
        protocol=protocol, folds=folds, **evaluation, timings=timings, opts=opts,
        model="__".join([label, dataset_tag(dataset_name, opts.dataset_options), EXTERNAL_FEATURES]),
        n_captions=len(texts), split_fingerprint=split.fingerprint(), embeddings=embeddings)


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
    text = lambda lines: (lambda f: f.write("".join(f"{line}\n" for line in lines).encode("utf-8")))  # noqa: E731
    write_atomic(out_dir / "images.txt", text(images))
    write_atomic(out_dir / "captions.txt", text(" ".join(c.splitlines()) for c in split.captions))
    write_atomic(out_dir / "image_index.txt", text(map(str, split.image_index.tolist())))
    write_atomic(out_dir / "image_index.npy", lambda f: np.save(f, split.image_index))
    summary = {
        "dataset": dataset_name, "split": split.name, "n_images": split.n_images, "n_captions": split.n_captions,
        "images": kind, "fingerprint": split.fingerprint(),
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
