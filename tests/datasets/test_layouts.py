"""Dataset layouts: one small dataset written as Karpathy JSON, parquet (Flickr30k- and COCO-style), webdataset
tars, COCO captions JSON and Flickr8k token files gives the same splits, captions, tokens and metrics in each."""

import io
import json
import tarfile

import numpy as np
import pyarrow as pa  # noqa: E402  (the formats extra, in the test extra)
import pyarrow.parquet as pq  # noqa: E402
import pytest
from PIL import Image

from cca_bench.__main__ import main
from cca_bench.datasets import get_dataset
from cca_bench.datasets.base import tokenize

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 20),
    "white": (240, 240, 240),
    "black": (15, 15, 15),
}
WORDS = ["a", "the", "photo", "of", "some", "thing", "picture", "small", "big", "shows"]
SPLITS = ["train"] * 36 + ["restval"] * 6 + ["val"] * 8 + ["test"] * 20


def synthetic():
    """[(filename, split, png bytes, [captions])] in file order; image 3 has no caption."""
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    out = []
    for i, split in enumerate(SPLITS):
        colour = names[i % len(names)]
        pixels = np.clip(np.array(COLOURS[colour]) + rng.normal(0, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        n_caps = 0 if i == 3 else int(rng.integers(1, 6))
        caps = [
            " ".join([*rng.choice(WORDS, 2), colour, *rng.choice(WORDS, 1)]).capitalize() + "." for _ in range(n_caps)
        ]
        out.append((f"im{i:03d}.png", split, buf.getvalue(), caps))
    return out


def write_karpathy(folder, data):
    images = [
        {
            "filename": fn,
            "imgid": i,
            "split": s,
            "cocoid": 1000 + i,
            "filepath": "pics",
            "sentences": [
                {"raw": c, "tokens": tokenize(c), "imgid": i, "sentid": 10 * i + k} for k, c in enumerate(caps)
            ],
        }
        for i, (fn, s, _, caps) in enumerate(data)
    ]
    (folder / "images" / "pics").mkdir(parents=True)
    for fn, _, png, _ in data:
        (folder / "images" / "pics" / fn).write_bytes(png)
    (folder / "dataset.json").write_text(json.dumps({"dataset": "tiny", "images": images}))
    return images


def write_parquet_flickr(folder, data):
    (folder / "data").mkdir(parents=True)
    rows = [
        {
            "image": {"bytes": png, "path": fn},
            "caption": caps,
            "sentids": [str(k) for k in range(len(caps))],
            "split": s,
            "img_id": str(i),
            "filename": fn,
        }
        for i, (fn, s, png, caps) in enumerate(data)
    ]
    for k, part in enumerate((rows[:33], rows[33:])):  # two shards, row groups of 7 rows
        pq.write_table(pa.Table.from_pylist(part), folder / "data" / f"part-{k:05d}.parquet", row_group_size=7)


def write_parquet_coco(folder, data):
    (folder / "images" / "pics").mkdir(parents=True)
    rows = []
    for i, (fn, s, png, caps) in enumerate(data):
        (folder / "images" / "pics" / fn).write_bytes(png)
        rows.append(
            {
                "filepath": "pics",
                "filename": fn,
                "cocoid": 1000 + i,
                "split": s,
                "url": f"http://images.invalid/{fn}",
                "sentences": [{"raw": c, "tokens": tokenize(c)} for c in caps],
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), folder / "coco.parquet")


def write_webdataset(folder, data):
    for split_dir, members in (("train", ("train", "restval")), ("val", ("val",)), ("test", ("test",))):
        (folder / split_dir).mkdir(parents=True)
        with tarfile.open(folder / split_dir / "000000.tar", "w") as tar:
            for i, (fn, s, png, caps) in enumerate(data):
                if s not in members:
                    continue
                for name, payload in ((f"{i:06d}.png", png), (f"{i:06d}.txt", "\n".join(caps).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))


def write_coco_captions(folder, data, karpathy_images):
    (folder / "annotations").mkdir(parents=True)
    (folder / "images" / "pics").mkdir(parents=True)
    files = {
        "captions_train2014.json": {"images": [], "annotations": []},
        "captions_val2014.json": {"images": [], "annotations": []},
    }
    for i, (fn, s, png, caps) in enumerate(data):
        (folder / "images" / "pics" / fn).write_bytes(png)
        f = files["captions_train2014.json" if s == "train" else "captions_val2014.json"]
        f["images"].append({"id": 1000 + i, "file_name": fn})
        f["annotations"] += [{"image_id": 1000 + i, "id": 50 * i + k, "caption": c} for k, c in enumerate(caps)]
    for name, content in files.items():
        (folder / "annotations" / name).write_text(json.dumps(content))
    split_file = [{k: v for k, v in im.items() if k != "sentences"} | {"sentences": []} for im in karpathy_images]
    (folder / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": split_file}))


def write_flickr8k(folder, data):
    (folder / "Flicker8k_Dataset").mkdir(parents=True)
    lines, lists = [], {"train": [], "val": [], "test": []}
    for fn, s, png, caps in data:
        (folder / "Flicker8k_Dataset" / fn).write_bytes(png)
        lines += [f"{fn}#{k}\t{c}" for k, c in enumerate(caps)]
        lists["train" if s == "restval" else s].append(fn)
    (folder / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, f in (("train", "trainImages"), ("val", "devImages"), ("test", "testImages")):
        (folder / f"Flickr_8k.{f}.txt").write_text("\n".join(lists[split]) + "\n")


LAYOUTS = ["kp", "pq", "pqc", "wds", "cococap", "f8k"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts") / "data"
    data = synthetic()
    for name in LAYOUTS:
        (root / name).mkdir(parents=True)
    images = write_karpathy(root / "kp", data)
    write_parquet_flickr(root / "pq", data)
    write_parquet_coco(root / "pqc", data)
    write_webdataset(root / "wds", data)
    write_coco_captions(root / "cococap", data, images)
    write_flickr8k(root / "f8k", data)
    return root


def test_every_layout_gives_the_karpathy_splits(data_root):
    ref = get_dataset("kp", data_root)
    assert [sp.n_images for sp in ref.splits.values()] == [41, 8, 20]
    for name in LAYOUTS[1:]:
        ds = get_dataset(name, data_root)
        assert list(ds.splits) == list(ref.splits), name
        for s, r in ref.splits.items():
            sp = ds.split(s)
            assert (sp.n_images, sp.captions, sp.tokens) == (r.n_images, r.captions, r.tokens), (name, s)
            assert sp.image_index.tolist() == r.image_index.tolist(), (name, s)
            for i in (0, sp.n_images - 1):  # the same pixels, whether files, parquet bytes or tar members
                assert np.array_equal(np.asarray(sp.load_image(i)), np.asarray(r.load_image(i))), (name, s, i)
    assert get_dataset("cococap", data_root).split("test").image_rows.tolist() == ref.split("test").image_rows.tolist()


def test_every_layout_gives_the_same_features_and_metrics(data_root):
    """tinyimage + glove50 features of every split are identical in every layout, so CCA fitted on the Karpathy
    train split scores every layout's test split identically (features checked bit for bit, metrics exactly)."""
    from cca_bench.config import FeatureSpec
    from cca_bench.features.options import FeatureOptions
    from cca_bench.features.pipelines import Pipelines
    from cca_bench.methods.cca import RegularizedCCA
    from cca_bench.metrics import evaluate_retrieval

    spec = FeatureSpec.parse("glove50_tinyimage")
    pipes = Pipelines.of(spec, FeatureOptions(progress=False), data_root)  # plain mean vectors: nothing to fit
    ref = {s: pipes.encode(get_dataset("kp", data_root), s, {}, None) for s in ("train", "test")}
    cca = RegularizedCCA(n_components=8, reg=1e-2).fit_features(ref["train"])
    scores = lambda fs: evaluate_retrieval(cca.embed_images(fs), cca.embed_texts(fs), fs.image_index)  # noqa: E731
    expected = scores(ref["test"])
    assert expected["image_search"]["R@1"] > 3 * 100 / 20  # colours are learnable: well above chance
    for name in LAYOUTS[1:]:
        ds = get_dataset(name, data_root)
        for s in ("train", "test"):
            fs = pipes.encode(ds, s, {}, None)
            assert np.array_equal(fs.images, ref[s].images) and np.array_equal(fs.texts, ref[s].texts), (name, s)
        assert scores(fs) == expected, name


def test_cli_reads_a_layout_folder(data_root, tmp_path, capsys):
    assert main(["export-split", "wds", "test", str(tmp_path / "out"), "--data-root", str(data_root)]) == 0
    pngs = (tmp_path / "out" / "images.txt").read_text().splitlines()
    assert len(pngs) == 20 and Image.open(pngs[0]).size == (24, 24)
    assert main(["list", "--data-root", str(data_root)]) == 0
    assert (
        "cococap (coco_captions), f8k (flickr8k_tokens), kp (karpathy), pq (parquet), pqc (parquet), wds (webdataset)"
    ) in capsys.readouterr().out


def test_parquet_without_caption_column_is_one_line(tmp_path, capsys):
    (tmp_path / "data" / "bad").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist([{"image": {"bytes": b"x", "path": "a.png"}, "split": "test"}]),
        tmp_path / "data" / "bad" / "test.parquet",
    )
    assert main(["export-split", "bad", "test", str(tmp_path / "out"), "--data-root", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "test.parquet: no caption column" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_folder_matching_no_layout_or_several(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "both").mkdir()
    write_flickr8k(tmp_path / "both", synthetic()[:60])
    (tmp_path / "both" / "dataset.json").write_text(json.dumps({"images": []}))
    with pytest.raises(Exception, match="matches several dataset layouts: flickr8k_tokens"):
        get_dataset("both", tmp_path)
    ds = get_dataset("both", tmp_path, layout="flickr8k_tokens")
    assert ds.split("test").n_images == 10
    assert main(["export-split", "empty", "test", str(tmp_path / "o"), "--data-root", str(tmp_path)]) == 2
    assert "empty matches no dataset layout; recognised: coco_captions" in capsys.readouterr().err


def test_paths_from_files_stay_inside_the_folder(tmp_path):
    folder = tmp_path / "f8k"
    folder.mkdir()
    (folder / "Flickr8k.token.txt").write_text("../../etc/passwd#0\tA caption.\n")
    (folder / "Flickr_8k.testImages.txt").write_text("../../etc/passwd\n")
    with pytest.raises(Exception, match="leaves the dataset folder"):
        get_dataset("f8k", tmp_path)


def test_registered_names_read_their_folder_in_any_layout(data_root, tmp_path):
    """data/flickr30k/ holding the Hugging Face parquet files (no Karpathy JSON) is dataset flickr30k."""
    import shutil

    shutil.copytree(data_root / "pq", tmp_path / "flickr30k")
    ds = get_dataset("flickr30k", tmp_path)
    assert ds.name == "flickr30k" and ds.split("test").n_images == 20
    assert get_dataset("flickr30k", tmp_path, layout="parquet").split("val").n_images == 8


def test_parquet_reads_each_row_group_once_in_order(data_root, monkeypatch):
    import pyarrow.parquet as pqm

    calls = []
    real = pqm.ParquetFile.read_row_group
    monkeypatch.setattr(pqm.ParquetFile, "read_row_group", lambda self, g, **kw: calls.append(g) or real(self, g, **kw))
    split = get_dataset("pq", data_root).split("train")
    groups = {tuple(loc[:2]) for loc in split.loader.locs}
    for i in range(split.n_images):
        split.load_image(i)
    assert len(calls) == len(groups) == 7  # 42 train rows over row groups of 7, in two shards
    split.load_image(split.n_images - 1)  # the last groups stay in memory
    assert len(calls) == 7


def test_list_sees_registered_folders_in_every_layout(data_root, tmp_path, capsys):
    """`list` says present for flickr8k / flickr30k / coco folders in any layout that loading reads, with the
    layout it detected; an empty folder is not present."""
    import shutil

    for name, layout in (("flickr8k", "f8k"), ("flickr30k", "pq"), ("coco", "wds")):
        shutil.copytree(data_root / layout, tmp_path / name)
    assert main(["list", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("|")}
    files = out.replace("\n  ", " ")  # list wraps the "Files expected" lines at 120 columns
    for name, layout in (("flickr8k", "flickr8k_tokens"), ("flickr30k", "parquet"), ("coco", "webdataset")):
        cells = [c.strip() for c in rows[name].split("|")]
        assert cells[2] == "yes" and f"- {name}: {tmp_path / name}: {layout} layout (" in files, rows[name]
        assert get_dataset(name, tmp_path).split("test").n_images == 20  # what list says present does load
    shutil.rmtree(tmp_path / "coco")
    (tmp_path / "coco").mkdir()
    assert main(["list", "--data-root", str(tmp_path)]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines() if line.startswith("|")}
    assert [c.strip() for c in rows["coco"].split("|")][2] == "no"
