"""Karpathy-split datasets: ``dataset_{flickr8k,flickr30k,coco}.json`` and any folder holding a ``dataset.json``.

The JSON (Karpathy & Fei-Fei, CVPR 2015, "Deep visual-semantic alignments") reads::

    {"dataset": "flickr8k", "images": [{"filename": "...jpg", "imgid": 0, "split": "train",
      "sentences": [{"raw": "...", "tokens": [...], "imgid": 0, "sentid": 0}, ...],
      "filepath": "val2014"?, "cocoid": 42?}, ...]}

Conventions followed:

- ``restval`` images join ``train`` (as every paper after Karpathy's does); splits are ``train``, ``val``,
  ``test``; a split with no image is left out.
- ``image_rows`` = the position of the image in the JSON's ``images`` list, which is the column of the
  ``vgg_feats.mat`` shipped in the same archive; ``split.extra["n_images_total"]`` = length of that list.
- Tokens are the JSON's ``tokens`` (lower-case, punctuation-free); :func:`tokenize` of ``raw`` when absent.
- Images with no sentence are skipped (they can be neither a query's answer nor a query with an answer);
  ``split.extra["n_skipped_no_captions"]`` counts them.
- Image ids are ``filepath/filename`` (COCO) or ``filename``; each file is looked up in the image folders in
  order and the first one holding it wins. Missing image files are reported when an image is loaded, so a
  dataset without its pictures still works with the ``vgg_karpathy`` encoder.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from cca_bench.datasets.base import CaptionDataset, FileLoader, Split, caption_text, tokenize
from cca_bench.errors import UserError
from cca_bench.fsio import resolve_inside
from cca_bench.registry import DATASETS

SPLIT_OF = {"train": "train", "restval": "train", "val": "val", "test": "test"}
SPLIT_ORDER = ("train", "val", "test")
VGG_FILE = "vgg_feats.mat"

# name -> image folders tried in order (relative to data_root/name); "." is the folder itself
KARPATHY_DATASETS = {
    "flickr8k": {
        "image_dirs": ("Flicker8k_Dataset", "images"),
        "help": "Flickr8k, Karpathy splits (6,000 / 1,000 / 1,000 images, 5 captions each)",
    },
    "flickr30k": {
        "image_dirs": ("flickr30k-images", "images"),
        "help": "Flickr30k, Karpathy splits (29,000 / 1,014 / 1,000 images, 5 captions each)",
    },
    "coco": {
        "image_dirs": ("images", "."),  # + each image's filepath: images/val2014/... or val2014/...
        "help": "MS-COCO 2014, Karpathy splits (113,287 with restval / 5,000 / 5,000 images)",
    },
}


def _read_json(json_path: Path) -> list[dict]:
    """The ``images`` list of a Karpathy JSON, with the top-level shape checked."""
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{json_path} not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{json_path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{json_path} is not UTF-8 text: {e.reason} at byte {e.start}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{json_path}: expected a JSON object with an 'images' list (Karpathy's dataset_*.json format)")
    return data["images"]


def _image_id(json_path: Path, pos: int, entry) -> str:
    """``filepath/filename`` or ``filename`` of image entry ``pos``, after checking its keys."""
    if not isinstance(entry, dict):
        raise UserError(f"{json_path}: images[{pos}] is not an object")
    for key in ("filename", "split", "sentences"):
        if key not in entry:
            raise UserError(f"{json_path}: images[{pos}] ({entry.get('filename', 'no filename')}) has no {key!r} key")
    if entry["split"] not in SPLIT_OF:
        raise UserError(
            f"{json_path}: images[{pos}] ({entry['filename']}) has split {entry['split']!r}; "
            f"expected one of {', '.join(SPLIT_OF)}"
        )
    return f"{entry['filepath']}/{entry['filename']}" if entry.get("filepath") else str(entry["filename"])


def _caption(json_path: Path, image_id: str, sentence, where: str) -> tuple[str, list[str]]:
    """(raw caption, tokens) of one sentence entry; tokens from the JSON, else :func:`tokenize`. Raw text and
    tokens must be text (``where`` names the image and sentence for the error)."""
    if not isinstance(sentence, dict) or ("raw" not in sentence and "tokens" not in sentence):
        raise UserError(f"{json_path}: a sentence of image {image_id} has neither 'raw' nor 'tokens'")
    tokens = sentence.get("tokens")
    tokens = [caption_text(t, f"{where} (tokens)") for t in tokens] if isinstance(tokens, list) else None
    raw = caption_text(sentence["raw"], where).strip() if "raw" in sentence else " ".join(tokens or [])
    return raw, tokens if tokens is not None else tokenize(raw)


def _resolve(image_id: str, image_dirs: list[Path], what: str) -> Path:
    """The first ``dir / image_id`` that exists; the first directory's when none does.

    Each candidate must resolve inside its image folder (:func:`cca_bench.fsio.resolve_inside`): an absolute
    ``filename``/``filepath``, ``..`` or a symlink out of the folder is a UserError naming the entry."""
    first = None
    for d in image_dirs:
        p = resolve_inside(d, image_id, what)
        if os.path.exists(p):
            return p
        first = first or p
    return first


def _lexical(folder: Path, image_id: str, what: str) -> Path:
    """``folder / image_id`` for a folder that does not exist (nothing to resolve): no absolute path, no ``..``."""
    if Path(image_id).is_absolute() or ".." in Path(image_id).parts:
        resolve_inside(folder, image_id, what)  # raises, with the same message as for an existing folder
    return folder / image_id


_FileLoader = FileLoader  # its old name, still imported by other readers


def _build_split(
    name: str, split: str, rows: list[int], entries: list[tuple], image_dirs: list[Path], extra: dict, json_path: Path
) -> Split:
    """One Split from its JSON rows; ``entries[row] = (image_id, [(raw, tokens), ...])``."""
    ids = [entries[r][0] for r in rows]
    pairs = [(i, cap) for i, r in enumerate(rows) for cap in entries[r][1]]
    look = any(d.is_dir() for d in image_dirs)  # no image folder at all: only the entries' text is checked
    what = lambda r: f"{json_path}: images[{r}] ({entries[r][0]!r})"  # noqa: E731
    paths = [
        _resolve(entries[r][0], image_dirs, what(r)) if look else _lexical(image_dirs[0], entries[r][0], what(r))
        for r in rows
    ]
    return Split(
        dataset=name,
        name=split,
        image_ids=ids,
        captions=[c[0] for _, c in pairs],
        tokens=[c[1] for _, c in pairs],
        image_index=np.array([i for i, _ in pairs], dtype=np.int64),
        image_rows=np.array(rows, dtype=np.int64),
        loader=_FileLoader(paths),
        image_paths=paths,
        extra=dict(extra),
    )


def _coco_ids(entry: dict) -> tuple[int, list[int]] | None:
    """(cocoid, the sentences' sentids) of a COCO entry (the COCO image and caption annotation ids ECCV Caption
    and CxC are keyed by), or None when either is missing or not an integer."""
    ids = [entry.get("cocoid")] + [s.get("sentid") if isinstance(s, dict) else None for s in entry["sentences"] or []]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ids):
        return None
    return ids[0], ids[1:]


def _split_coco_ids(coco: list, rows: list[int]) -> dict:
    """``{"coco_ids": {"images": [...], "captions": [...]}}`` of a split when every image of it has COCO ids
    (captions in split order), else {}."""
    if not rows or any(coco[r] is None for r in rows):
        return {}
    return {"coco_ids": {"images": [coco[r][0] for r in rows], "captions": [c for r in rows for c in coco[r][1]]}}


def load_karpathy_json(json_path: Path, name: str, image_dirs: list[Path]) -> CaptionDataset:
    """Read a Karpathy ``dataset_*.json`` into a CaptionDataset (splits train = train + restval, val, test).

    Args:
        json_path: the JSON file; its folder becomes ``dataset.root`` (where ``vgg_feats.mat`` is looked for).
        name: dataset name used in ids, messages and cache keys.
        image_dirs: folders tried in order for each image file (``filepath/filename`` for COCO).
    """
    json_path, image_dirs = Path(json_path), [Path(d) for d in image_dirs] or [Path(json_path).parent]
    images = _read_json(json_path)
    entries, rows, coco = [], {s: [] for s in SPLIT_ORDER}, []
    skipped = dict.fromkeys(SPLIT_ORDER, 0)
    for pos, entry in enumerate(images):
        image_id = _image_id(json_path, pos, entry)
        caps = [
            _caption(json_path, image_id, s, f"{json_path}: images[{pos}] sentences[{k}]")
            for k, s in enumerate(entry["sentences"] or [])
        ]
        entries.append((image_id, caps))
        coco.append(_coco_ids(entry))
        split = SPLIT_OF[entry["split"]]
        if caps:
            rows[split].append(pos)
        else:
            skipped[split] += 1
    if not any(rows.values()):
        raise UserError(f"{json_path}: no image with a sentence")
    splits = {
        s: _build_split(
            name,
            s,
            rows[s],
            entries,
            image_dirs,
            {"n_images_total": len(images), "n_skipped_no_captions": skipped[s], **_split_coco_ids(coco, rows[s])},
            json_path,
        )
        for s in SPLIT_ORDER
        if rows[s]
    }
    sizes = ", ".join(f"{s} {sp.n_images} images / {sp.n_captions} captions" for s, sp in splits.items())
    has_vgg = (json_path.parent / VGG_FILE).is_file()
    return CaptionDataset(
        name=name,
        root=json_path.parent,
        splits=splits,
        description=f"Karpathy splits from {json_path.name}: {sizes}"
        + (f"; {sum(skipped.values())} images without sentences skipped" if any(skipped.values()) else ""),
        image_encoders=("vgg_karpathy",) if has_vgg else (),
    )


def load_karpathy_cached(json_path: Path, name: str, image_dirs: list[Path], cache_dir: Path | None) -> CaptionDataset:
    """:func:`load_karpathy_json` through the parsed-dataset cache (``datasets/cache.py``) in ``cache_dir``."""
    from cca_bench.datasets.cache import cached_dataset

    key = {"name": name, "layout": "karpathy", "image_dirs": [str(d) for d in image_dirs], "coco_ids": 1}
    sources = [json_path, json_path.parent / VGG_FILE, *image_dirs]
    return cached_dataset(cache_dir, key, sources, lambda: load_karpathy_json(json_path, name, image_dirs), _FileLoader)


def load_karpathy_folder(folder: Path, name: str, cache_dir: Path | None = None) -> CaptionDataset:
    """A folder holding ``dataset.json`` (Karpathy format), images in ``folder/images`` or ``folder``."""
    folder = Path(folder)
    return load_karpathy_cached(folder / "dataset.json", name, [folder / "images", folder], cache_dir)


def _json_for(root: Path, name: str) -> Path:
    """``dataset_<name>.json`` or ``dataset.json`` in ``root``; a UserError saying where to put it."""
    for candidate in (root / f"dataset_{name}.json", root / "dataset.json"):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"dataset {name!r} needs Karpathy's split file at {root / f'dataset_{name}.json'} "
        f"(or {root / 'dataset.json'}); "
        "see data/README.md for where to download it"
    )


def build_karpathy(data_root: Path, name: str, cache_dir: Path | None = None, **options) -> CaptionDataset:
    """Registered builder of ``flickr8k`` / ``flickr30k`` / ``coco`` under ``data_root/<name>/``; without
    a Karpathy JSON (or with ``-D layout=...``) the folder is read in whichever other layout it has.
    ``cache_dir``: the parsed-dataset cache (None: not used)."""
    from cca_bench.datasets.layouts import load_folder

    root = Path(data_root) / name
    found = folder_layouts(data_root, name)
    if "layout" in options or (found and "karpathy" not in found):
        return load_folder(root, name, cache_dir, **options)
    if options:
        raise UserError(f"{name}: unknown option {min(options)!r} (this dataset takes none but layout)")
    dirs = [root / d if d != "." else root for d in KARPATHY_DATASETS[name]["image_dirs"]]
    return load_karpathy_cached(_json_for(root, name), name, dirs, cache_dir)


def folder_layouts(data_root: Path, name: str) -> dict[str, list[str]]:
    """{layout: its files} that :func:`build_karpathy` would read ``data_root/name`` in (without ``-D layout``):
    ``karpathy`` when the Karpathy JSON is there, else every layout the folder matches (``list`` shows this)."""
    from cca_bench.datasets.layouts import matching_layouts

    root = Path(data_root) / name
    json_file = next((f for f in (f"dataset_{name}.json", "dataset.json") if (root / f).is_file()), None)
    return {"karpathy": [json_file]} if json_file else matching_layouts(root)


def _files(name: str) -> list[str]:
    """Expected files, relative to data_root: the JSON (required), the VGG features and image folders (optional)."""
    dirs = [f"{name}/{d}/" for d in KARPATHY_DATASETS[name]["image_dirs"] if d != "."]
    return [f"{name}/dataset_{name}.json", f"{name}/{VGG_FILE}", *dirs]


for _name, _spec in KARPATHY_DATASETS.items():
    DATASETS.register(
        _name,
        help=_spec["help"] + f"; Karpathy's JSON ({VGG_FILE} and the images optional) or any dataset layout",
        builtin=False,
        parsed_cache=True,
        files=_files(_name),
        layouts=functools.partial(folder_layouts, name=_name),
    )(functools.partial(build_karpathy, name=_name))
