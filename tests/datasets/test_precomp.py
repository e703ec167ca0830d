"""Kiros / VSE++ precomputed layout: one row per image or per caption (repeated), splits, errors, the encoder."""

import numpy as np
import pytest

from cca_bench.datasets import get_dataset
from cca_bench.datasets.precomp import load_precomp_folder, repeat_of
from cca_bench.errors import UserError
from cca_bench.features.image import encode_precomp

RNG = np.random.default_rng(0)
IMS = RNG.standard_normal((4, 6)).astype(np.float32)  # 4 images, 6-d
CAPS = [f"caption {k} of image {k // 5}." for k in range(20)]  # 5 per image, in image order


def write(folder, split, ims, caps):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{split}_ims.npy", ims)
    (folder / f"{split}_caps.txt").write_text("\n".join(caps) + "\n\n")


@pytest.mark.parametrize("layout", ["per_image", "per_caption"])
def test_both_layouts_give_the_same_split_and_features(tmp_path, layout):
    ims = IMS if layout == "per_image" else np.repeat(IMS, 5, axis=0)
    write(tmp_path / "d", "test", ims, CAPS)
    write(tmp_path / "d", "dev", IMS[:2], CAPS[:10])
    ds = load_precomp_folder(tmp_path / "d", "d")
    assert list(ds.splits) == ["val", "test"] and ds.image_encoders == ("precomp",)
    sp = ds.split("test")
    assert (sp.n_images, sp.n_captions) == (4, 20)
    assert sp.image_index.tolist() == [k // 5 for k in range(20)]
    assert sp.extra["file_split"] == "test" and sp.extra["ims_repeat"] == (5 if layout == "per_caption" else 1)
    assert sp.tokens[0] == ["caption", "0", "of", "image", "0"]
    np.testing.assert_array_equal(encode_precomp(sp, ds), IMS)
    np.testing.assert_array_equal(encode_precomp(sp.subset(np.array([3, 1])), ds), IMS[[3, 1]])
    assert ds.split("val").extra["file_split"] == "dev"


def test_duplicate_neighbour_images_do_not_fool_the_detection():
    ims = np.repeat(IMS[[0, 0, 1, 2, 3]], 5, axis=0)  # images 0 and 1 identical: a run of 10
    assert repeat_of(ims, 25) == 5
    assert repeat_of(ims, 5) == 1  # rows != captions: one row per image
    assert repeat_of(IMS, 4) == 1


def test_one_caption_per_row_without_repeats(tmp_path):
    write(tmp_path, "train", IMS, CAPS[:4])
    sp = load_precomp_folder(tmp_path, "p").split("train")
    assert sp.image_index.tolist() == [0, 1, 2, 3] and sp.extra["captions_per_image"] == 1


def test_testall_and_folder_detection(tmp_path):
    write(tmp_path / "coco_precomp", "testall", IMS, CAPS)
    write(tmp_path / "coco_precomp", "test", IMS[:2], CAPS[:10])
    ds = get_dataset("coco_precomp", tmp_path)
    assert list(ds.splits) == ["test", "testall"] and ds.split("testall").n_images == 4


def test_counts_that_do_not_divide_name_the_file(tmp_path):
    write(tmp_path, "test", IMS[:3], CAPS)
    with pytest.raises(UserError, match=r"test_ims\.npy: 3 images for 20 captions"):
        load_precomp_folder(tmp_path, "p")


def test_missing_ims_and_pickled_arrays(tmp_path):
    (tmp_path / "test_caps.txt").write_text("a\nb\n")
    with pytest.raises(UserError, match=r"test_ims\.npy not found"):
        load_precomp_folder(tmp_path, "p")
    np.save(tmp_path / "test_ims.npy", np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(UserError, match=r"test_ims\.npy"):
        load_precomp_folder(tmp_path, "p")
    with pytest.raises(UserError, match="no {split}_caps.txt"):
        load_precomp_folder(tmp_path / "nothing", "p")


def test_nan_features_are_reported(tmp_path):
    bad = IMS.copy()
    bad[2, 1] = np.nan
    write(tmp_path, "test", bad, CAPS)
    ds = load_precomp_folder(tmp_path, "p")
    with pytest.raises(UserError, match="NaN"):
        encode_precomp(ds.split("test"), ds)
