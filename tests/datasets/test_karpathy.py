"""Karpathy JSON loader: split merging, pairing, image paths, registered datasets and error messages."""

import json

import numpy as np
import pytest
from PIL import Image

from cca_bench.datasets import get_dataset
from cca_bench.datasets.karpathy import load_karpathy_folder, load_karpathy_json
from cca_bench.errors import UserError
from cca_bench.registry import DATASETS

# (filename, split, captions): position in this list = imgid = vgg_feats column
IMAGES = [
    ("a.jpg", "train", ["A dog runs.", "A brown dog."]),
    ("b.jpg", "restval", ["Two cats sleep."]),
    ("c.jpg", "val", ["A red car.", "Car on a road.", "A parked car."]),
    ("d.jpg", "test", ["A man surfing."]),
    ("e.jpg", "test", []),  # no sentence: skipped
    ("f.jpg", "train", ["A T-shirt, folded!"]),
]


def karpathy_json(images=IMAGES, tokens=True, filepath=None) -> dict:
    out = []
    for imgid, (fn, split, caps) in enumerate(images):
        sents = [{"raw": c, "imgid": imgid, "sentid": 10 * imgid + k} for k, c in enumerate(caps)]
        if tokens:
            for s in sents:
                s["tokens"] = s["raw"].lower().replace(".", "").replace(",", "").replace("!", "").split()
        entry = {"filename": fn, "imgid": imgid, "split": split, "sentences": sents}
        if filepath:
            entry["filepath"] = filepath
        out.append(entry)
    return {"dataset": "tiny", "images": out}


def write_images(folder, names, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.new("RGB", size, (40 * k, 255 - 40 * k, 100)).save(folder / name)


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps(karpathy_json()))
    write_images(tmp_path / "images", [fn for fn, _, _ in IMAGES])
    return tmp_path


def test_splits_merge_restval_and_pair_captions(tiny):
    ds = load_karpathy_json(tiny / "dataset.json", "tiny", [tiny / "images"])
    assert list(ds.splits) == ["train", "val", "test"]
    train, val, test = ds.split("train"), ds.split("val"), ds.split("test")
    assert train.image_ids == ["a.jpg", "b.jpg", "f.jpg"]
    assert train.image_rows.tolist() == [0, 1, 5]
    assert train.image_index.tolist() == [0, 0, 1, 2]
    assert train.captions[2] == "Two cats sleep."
    assert (val.n_images, val.n_captions, val.image_rows.tolist()) == (1, 3, [2])
    assert (test.n_images, test.n_captions) == (1, 1)
    assert test.extra["n_skipped_no_captions"] == 1 and train.extra["n_images_total"] == len(IMAGES)
    assert "skipped" in ds.description


def test_tokens_from_json_and_fallback(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps(karpathy_json(tokens=False)))
    ds = load_karpathy_folder(tmp_path, "tiny")
    assert ds.split("train").tokens[3] == ["a", "tshirt", "folded"]  # Karpathy-style fallback tokenizer
    (tmp_path / "dataset.json").write_text(json.dumps(karpathy_json()))
    assert load_karpathy_folder(tmp_path, "tiny").split("train").tokens[3] == ["a", "t-shirt", "folded"]


def test_image_paths_and_loader(tiny):
    ds = load_karpathy_folder(tiny, "tiny")
    sp = ds.split("train")
    assert sp.image_paths == [tiny / "images" / n for n in ("a.jpg", "b.jpg", "f.jpg")]
    im = sp.load_image(1)
    assert im.mode == "RGB" and im.size == (40, 30)
    (tiny / "images" / "f.jpg").unlink()
    with pytest.raises(UserError, match="f.jpg"):
        sp.load_image(2)


def test_grey_and_palette_images_load_as_rgb(tiny):
    Image.new("L", (8, 8), 3).save(tiny / "images" / "a.jpg")
    Image.new("P", (8, 8), 5).save(tiny / "images" / "b.jpg", format="PNG")  # wrong extension, still read
    sp = load_karpathy_folder(tiny, "tiny").split("train")
    assert sp.load_image(0).mode == sp.load_image(1).mode == "RGB"


def test_truncated_image_names_the_file(tiny):
    path = tiny / "images" / "a.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="a.jpg"):
        load_karpathy_folder(tiny, "tiny").split("train").load_image(0)


def test_coco_filepath_resolved_in_folder_itself(tmp_path):
    root = tmp_path / "coco"
    root.mkdir()
    (root / "dataset_coco.json").write_text(json.dumps(karpathy_json(filepath="val2014")))
    write_images(root / "val2014", [fn for fn, _, _ in IMAGES])
    ds = get_dataset("coco", tmp_path)
    sp = ds.split("val")
    assert sp.image_ids == ["val2014/c.jpg"] and sp.image_paths == [root / "val2014" / "c.jpg"]
    assert sp.load_image(0).size == (40, 30)
    assert ds.image_encoders == ()


def test_registered_flickr8k(tmp_path):
    root = tmp_path / "flickr8k"
    root.mkdir()
    (root / "dataset_flickr8k.json").write_text(json.dumps(karpathy_json()))
    write_images(root / "Flicker8k_Dataset", ["a.jpg"])
    (root / "vgg_feats.mat").write_bytes(b"")
    ds = get_dataset("flickr8k", tmp_path)
    assert ds.root == root and ds.image_encoders == ("vgg_karpathy",)
    assert ds.split("train").image_paths[0] == root / "Flicker8k_Dataset" / "a.jpg"
    assert ds.split("train").image_paths[1] == root / "Flicker8k_Dataset" / "b.jpg"  # expected place
    meta = DATASETS.meta("flickr8k")
    assert meta["builtin"] is False and meta["files"][0] == "flickr8k/dataset_flickr8k.json"
    with pytest.raises(UserError, match="unknown option"):
        get_dataset("flickr8k", tmp_path, size=3)


@pytest.mark.parametrize("name", ["flickr8k", "flickr30k", "coco"])
def test_missing_json_says_where(tmp_path, name):
    with pytest.raises(UserError, match=rf"dataset_{name}\.json.*data/README\.md"):
        get_dataset(name, tmp_path)


def test_any_folder_with_dataset_json(tiny, tmp_path):
    ds = get_dataset(tiny.name, tiny.parent)
    assert ds.name == tiny.name and ds.split("test").n_images == 1


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ('{"images": 3}', "'images' list"),
        ('{"images": [{"filename": "a.jpg", "sentences": []}]}', "no 'split'"),
        ('{"images": [{"filename": "a.jpg", "split": "dev", "sentences": [{"raw": "x"}]}]}', "split 'dev'"),
        ('{"images": [{"filename": "a.jpg", "split": "val", "sentences": []}]}', "no image with a sentence"),
        ('{"images": [{"filename": "a.jpg", "split": "val", "sentences": [{"id": 1}]}]}', "neither 'raw'"),
    ],
)
def test_bad_json_is_a_user_error_naming_the_file(tmp_path, text, match):
    (tmp_path / "dataset.json").write_text(text)
    with pytest.raises(UserError, match=match) as err:
        load_karpathy_folder(tmp_path, "bad")
    assert "dataset.json" in str(err.value)


def test_image_index_dtypes(tiny):
    sp = load_karpathy_folder(tiny, "tiny").split("val")
    assert sp.image_index.dtype == np.int64 and sp.image_rows.dtype == np.int64
