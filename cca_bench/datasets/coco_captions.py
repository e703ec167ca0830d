"""COCO's own caption files (``captions_{train,val}2014.json``) with Karpathy's split file (``dataset_coco.json``).

The split file gives the images, their order (so ``image_rows`` are the columns of ``vgg_feats.mat``) and
their split; the captions come from COCO's ``annotations`` (``image_id``, ``caption``), each image's in the
order of the annotation file. Images are matched by ``cocoid`` (by file name when the split file has none).
Image ids and files are ``filepath/filename`` under ``images/`` or the folder, as for the Karpathy JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from cca_bench.datasets.layouts import LAYOUTS, Entry, assemble, caption, file_media, split_of
from cca_bench.errors import UserError

CAPTION_FILES = ("captions_train2014.json", "captions_val2014.json")
SPLIT_FILE = "dataset_coco.json"
IMAGE_DIRS = ("images", ".")


def caption_files(folder: Path) -> list[Path]:
    return [d / f for d in (folder, folder / "annotations") for f in CAPTION_FILES if (d / f).is_file()]


def _detect(folder: Path) -> list[str]:
    found = caption_files(folder)
    if not found or not (folder / SPLIT_FILE).is_file():
        return []
    return [str(p.relative_to(folder)) for p in found] + [SPLIT_FILE]


def _read(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise UserError(f"{path}: expected COCO captions JSON with 'images' and 'annotations' lists")
    return data


def coco_id(value, where: str) -> int:
    """A COCO image id: an integer (a string "123" or 123.0 would silently match no image and drop its captions)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{where}: COCO image id {value!r} is not an integer")
    return value


def read_captions(files: list[Path]) -> tuple[dict, dict]:
    """({coco image id: [caption, ...] in file order}, {file name: coco image id}) over all caption files."""
    by_id, by_name = {}, {}
    for path in files:
        data = _read(path)
        for k, im in enumerate(data.get("images") or []):
            if isinstance(im, dict) and "id" in im and "file_name" in im:
                by_name[str(im["file_name"])] = coco_id(im["id"], f"{path}: images[{k}] 'id'")
        for k, a in enumerate(data["annotations"]):
            if not isinstance(a, dict) or "image_id" not in a or "caption" not in a:
                raise UserError(f"{path}: annotations[{k}] lacks 'image_id' or 'caption'")
            where = f"{path}: annotations[{k}]"
            by_id.setdefault(coco_id(a["image_id"], f"{where} 'image_id'"), []).append(caption(a["caption"], where))
    return by_id, by_name


def read_entries(folder: Path) -> list[Entry]:
    from cca_bench.datasets.karpathy import _read_json

    split_path = folder / SPLIT_FILE
    by_id, by_name = read_captions(caption_files(folder))
    entries = []
    for pos, im in enumerate(_read_json(split_path)):
        if not isinstance(im, dict) or "filename" not in im or "split" not in im:
            raise UserError(f"{split_path}: images[{pos}] lacks 'filename' or 'split'")
        if "cocoid" in im:
            coco = coco_id(im["cocoid"], f"{split_path}: images[{pos}] 'cocoid'")
        else:
            coco = by_name.get(str(im["filename"]))
        image_id = f"{im['filepath']}/{im['filename']}" if im.get("filepath") else str(im["filename"])
        entries.append(Entry(image_id, split_of(im["split"], f"{split_path}: images[{pos}]"), by_id.get(coco, [])))
    return entries


@LAYOUTS.register(
    "coco_captions",
    detect=_detect,
    help="COCO captions_{train,val}2014.json + Karpathy's dataset_coco.json for the splits",
    tree="""
NAME/
  annotations/captions_train2014.json   (or beside dataset_coco.json)
  annotations/captions_val2014.json
  dataset_coco.json                     Karpathy's split file: image order and split of each image
  vgg_feats.mat                         optional (image encoder vgg_karpathy)
  images/train2014/*.jpg  images/val2014/*.jpg   (or train2014/, val2014/ beside the JSON)
""",
)
def load_coco_captions(folder: Path, name: str, cache_dir: Path | None = None):
    from cca_bench.datasets.cache import cached_dataset
    from cca_bench.datasets.karpathy import VGG_FILE, _FileLoader

    def build():
        entries = read_entries(folder)
        has_vgg = (folder / VGG_FILE).is_file()
        return assemble(
            name,
            folder,
            entries,
            file_media(folder, entries, IMAGE_DIRS, str(folder / SPLIT_FILE)),
            f"COCO captions + {SPLIT_FILE} in {folder}",
            ("vgg_karpathy",) if has_vgg else (),
        )

    sources = [folder / SPLIT_FILE, *caption_files(folder), folder / VGG_FILE, *(folder / d for d in IMAGE_DIRS)]
    return cached_dataset(cache_dir, {"name": name, "layout": "coco_captions"}, sources, build, _FileLoader)
