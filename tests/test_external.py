"""evaluate and export-split: another model's embeddings scored exactly like evaluate_retrieval; bad input refused."""

import json
import pickle

import numpy as np
import pytest
from safetensors.numpy import save_file

from cca_bench import evaluate_retrieval
from cca_bench.__main__ import main
from cca_bench.datasets import get_dataset

SMALL = ["-D", "n_train=40", "-D", "n_val=10", "-D", "n_test=30"]
OPTS = {"n_train": "40", "n_val": "10", "n_test": "30"}


@pytest.fixture
def roots(tmp_path):
    return ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]


@pytest.fixture
def split(tmp_path):
    return get_dataset("shapes", tmp_path / "data", **OPTS).split("test")


def embeddings(split, d=8, seed=0):
    """Noisy embeddings where caption j sits near its image: non-trivial, untied ranks."""
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(split.n_images, d)).astype(np.float32)
    txt = (img[split.image_index] + 0.8 * rng.normal(size=(split.n_captions, d))).astype(np.float32)
    return img, txt


def test_export_then_evaluate_reproduces_evaluate_retrieval(split, roots, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export-split", "shapes", "test", str(out), *SMALL, *roots]) == 0
    lines = (out / "images.txt").read_text().splitlines()
    assert len(lines) == split.n_images and all(open(p, "rb").read(4) == b"\x89PNG" for p in lines[:3])
    assert (out / "captions.txt").read_text().splitlines() == split.captions
    assert np.load(out / "image_index.npy").tolist() == split.image_index.tolist()
    assert (out / "image_index.txt").read_text().split() == [str(i) for i in split.image_index]
    meta = json.loads((out / "split.json").read_text())
    assert (meta["n_images"], meta["n_captions"]) == (split.n_images, split.n_captions)

    img, txt = embeddings(split)
    np.save(tmp_path / "img.npy", img)
    save_file({"text_embeds": txt, "other": txt[:2]}, str(tmp_path / "txt.safetensors"))
    for distance in ("cosine", "euclidean"):
        assert (
            main(
                [
                    "evaluate",
                    "shapes",
                    "test",
                    "--images",
                    str(tmp_path / "img.npy"),
                    "--texts",
                    f"{tmp_path / 'txt.safetensors'}:text_embeds",
                    "--name",
                    "mymodel",
                    "--distance",
                    distance,
                    "-q",
                    *SMALL,
                    *roots,
                ]
            )
            == 0
        )
        runs = sorted((tmp_path / "results" / "runs").glob(f"*{distance}__*.json"))
        record = json.loads(runs[0].read_text())
        assert record["metrics"] == evaluate_retrieval(img, txt, split.image_index, distance=distance)
        assert record["method"] == "mymodel" and record["features"] == "external"
        assert len(record["embeddings"]["images"]["sha1"]) == 16
    # both evaluations drew the same resamples: stored by the first, read by the second (resample_cache)
    assert len(list((tmp_path / "data" / "cache" / "resamples").glob("*.npy"))) == 1
    assert "### Image Annotation" in capsys.readouterr().out
    assert main(["compare", *roots]) == 0
    assert "mymodel" in capsys.readouterr().out


def test_image_index_allows_any_caption_order(split, roots, tmp_path):
    img, txt = embeddings(split)
    perm = np.random.default_rng(1).permutation(split.n_captions)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "txt.npy", txt[perm])
    (tmp_path / "idx.txt").write_text("\n".join(map(str, split.image_index[perm])))
    assert (
        main(
            [
                "evaluate",
                "shapes",
                "test",
                "--images",
                str(tmp_path / "img.npy"),
                "--texts",
                str(tmp_path / "txt.npy"),
                "--image-index",
                str(tmp_path / "idx.txt"),
                "--name",
                "perm",
                "-q",
                *SMALL,
                *roots,
            ]
        )
        == 0
    )
    record = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    assert record["metrics"] == evaluate_retrieval(img, txt, split.image_index)


def _bad_inputs(split, tmp_path):
    img, txt = embeddings(split)
    nan = txt.copy()
    nan[3, 1] = np.nan
    files = {
        "short_img.npy": img[:-1],
        "short_txt.npy": txt[:-2],
        "wide_txt.npy": np.hstack([txt, txt]),
        "nan_txt.npy": nan,
        "img.npy": img,
        "txt.npy": txt,
    }
    for name, arr in files.items():
        np.save(tmp_path / name, arr)
    with open(tmp_path / "pickled.npy", "wb") as f:  # an object array: np.save pickles it
        np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "notnpy.npy").write_bytes(pickle.dumps([1, 2]))
    return tmp_path


@pytest.mark.parametrize(
    "images, texts, message",
    [
        ("short_img.npy", "txt.npy", "short_img.npy: 29 rows but shapes/test has 30 images"),
        ("img.npy", "short_txt.npy", "short_txt.npy"),
        ("img.npy", "wide_txt.npy", "wide_txt.npy: 16 dimensions"),
        ("img.npy", "nan_txt.npy", "nan_txt.npy: NaN or infinite values in 1 rows (first: row 3)"),
        ("pickled.npy", "txt.npy", "pickled.npy: a pickled (object) .npy"),
        ("notnpy.npy", "txt.npy", "notnpy.npy"),
        ("missing.npy", "txt.npy", "missing.npy: embedding file not found"),
    ],
)
def test_bad_embeddings_one_line_exit_2_nothing_written(split, roots, tmp_path, capsys, images, texts, message):
    d = _bad_inputs(split, tmp_path)
    code = main(
        [
            "evaluate",
            "shapes",
            "test",
            "--images",
            str(d / images),
            "--texts",
            str(d / texts),
            "--name",
            "bad",
            *SMALL,
            *roots,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results" / "runs").exists()


def test_safetensors_with_several_tensors_needs_a_key(split, roots, tmp_path, capsys):
    img, txt = embeddings(split)
    save_file({"a": img, "b": img}, str(tmp_path / "img.safetensors"))
    np.save(tmp_path / "txt.npy", txt)
    assert (
        main(
            [
                "evaluate",
                "shapes",
                "test",
                "--images",
                str(tmp_path / "img.safetensors"),
                "--texts",
                str(tmp_path / "txt.npy"),
                "--name",
                "x",
                *SMALL,
                *roots,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "img.safetensors holds 2 tensors (a, b): name one as" in err and "cannot read" not in err
