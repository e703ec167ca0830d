"""ONNX encoders: image and text models built here with ``onnx.helper`` (no export toolchain) run through the
CLI / benchmark path and match onnxruntime run directly; bad JSON or a mismatched model is a one-line error."""

import json
from pathlib import Path

import numpy as np
import onnx  # noqa: E402  (the onnx extra, in the test extra)
import onnxruntime as ort  # noqa: E402
import pytest
from PIL import Image

from cca_bench.__main__ import main
from cca_bench.datasets.base import CaptionDataset, Split, open_rgb
from cca_bench.errors import UserError
from cca_bench.features import onnx_encoder
from cca_bench.features.store import cache_key

SMALL = ["-D", "n_train=120", "-D", "n_val=20", "-D", "n_test=30", "-q"]
SIDE, DIM = 12, 6


def save_model(path: Path, nodes, inputs, outputs, initializers) -> Path:
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        nodes, "test", inputs, outputs, initializer=[numpy_helper.from_array(v, k) for k, v in initializers.items()]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def image_model(path: Path, side: int = SIDE, layout: str = "nchw", batch="N", seed: int = 0) -> Path:
    """pixels (batch, 3, side, side) float -> tanh(flatten @ W) (batch, DIM)."""
    from onnx import TensorProto, helper

    shape = [batch, 3, side, side] if layout == "nchw" else [batch, side, side, 3]
    w = np.random.default_rng(seed).standard_normal((3 * side * side, DIM)).astype(np.float32) / side
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["z"]),
        helper.make_node("Tanh", ["z"], ["features"]),
    ]
    return save_model(
        path,
        nodes,
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, DIM])],
        {"W": w},
    )


def write_json(model: Path, cfg: dict) -> Path:
    model.with_name(model.name + ".json").write_text(json.dumps(cfg))
    return model


IMAGE_CFG = {"size": SIDE, "resize": 16, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


@pytest.fixture
def roots(tmp_path):
    return ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]


def direct(model: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def reference_pixels(im: Image.Image, cfg: dict) -> np.ndarray:
    """torchvision-style Resize(resize, bicubic) + CenterCrop(size), then (x / 255 - mean) / std, HWC float32."""
    w, h = im.size
    r, s = cfg["resize"], cfg["size"]
    new = (r, int(r * h / w)) if w <= h else (int(r * w / h), r)
    im = im.resize(new, Image.Resampling.BICUBIC)
    top, left = int(round((new[1] - s) / 2.0)), int(round((new[0] - s) / 2.0))
    x = np.asarray(im.crop((left, top, left + s, top + s)), dtype=np.float32) / 255
    return ((x - np.float32(cfg["mean"])) / np.float32(cfg["std"])).astype(np.float32)


def test_image_model_through_the_cli_matches_onnxruntime(tmp_path, roots, capsys):
    from cca_bench.datasets import get_dataset

    model = write_json(image_model(tmp_path / "m.onnx"), IMAGE_CFG)
    args = ["glove50_onnx", "--onnx-model", str(model), *SMALL, *roots]
    assert main(["generate", "cca", "shapes", *args, "--reg", "0.1"]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", *args]) == 0
    assert "### Image Search" in capsys.readouterr().out
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "photo.png")  # a photo through the same model
    assert main(["search", "cca", "shapes", *args, "--similar", str(tmp_path / "photo.png"), "-k", "2"]) == 0
    assert "test-000" in capsys.readouterr().out
    split = get_dataset("shapes", tmp_path / "data", n_train=120, n_val=20, n_test=30).split("test")
    x = np.stack([reference_pixels(split.load_image(i).convert("RGB"), IMAGE_CFG) for i in range(split.n_images)])
    want = direct(model, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    cached = [p for p in (tmp_path / "data" / "cache").glob("shapes*_test_onnx-*.npy")]
    assert len(cached) == 1
    np.testing.assert_allclose(np.load(cached[0]), want, atol=1e-5)
    key = json.loads(cached[0].with_suffix(".json").read_text())
    assert key["model"]["onnx_sha1"] == onnx_encoder.sha1(model)
    saved = json.loads(next((tmp_path / "results" / "models").glob("*.json")).read_text())
    run = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    assert saved["model_files"] == {"onnx_model": str(model)} and run["config"]["onnx_model"] == str(model)


def photo_split(tmp_path: Path, sizes) -> tuple[Split, CaptionDataset]:
    paths = []
    for k, (w, h) in enumerate(sizes):
        rgb = np.random.default_rng(k).integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"p{k}.png")
        paths.append(tmp_path / f"p{k}.png")
    n = len(paths)
    sp = Split(
        dataset="p",
        name="test",
        image_ids=[p.name for p in paths],
        captions=["x"] * n,
        tokens=[["x"]] * n,
        image_index=np.arange(n),
        image_rows=np.arange(n),
        loader=lambda i: open_rgb(paths[i]),
        image_paths=paths,
    )
    return sp, CaptionDataset(name="p", root=None, splits={"test": sp})


def test_nhwc_bgr_fixed_batch_squash(tmp_path):
    """layout nhwc, channel_order bgr, crop none (squashed), scale 1, a model with a fixed batch of 2."""
    sp, ds = photo_split(tmp_path, [(30, 20), (20, 40), (25, 25)])
    model = image_model(tmp_path / "h.onnx", layout="nhwc", batch=2)
    cfg = {
        "size": [SIDE, SIDE],
        "mean": [100, 110, 120],
        "std": [50, 60, 70],
        "scale": 1,
        "crop": "none",
        "channel_order": "bgr",
        "layout": "nhwc",
        "interpolation": "bilinear",
    }
    write_json(model, cfg)
    got = onnx_encoder.encode_onnx(sp, ds, batch_size=3, progress=False, onnx_model=str(model))
    ims = [open_rgb(p).resize((SIDE, SIDE), Image.Resampling.BILINEAR) for p in sp.image_paths]
    x = (np.stack([np.asarray(im, np.float32) for im in ims]) - np.float32(cfg["mean"])) / np.float32(cfg["std"])
    x = np.ascontiguousarray(x[..., ::-1], dtype=np.float32)
    want = np.concatenate([direct(model, x[:2]), direct(model, np.concatenate([x[2:], np.zeros_like(x[:1])]))[:1]])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_extraction_resumes_from_its_shards(tmp_path, monkeypatch):
    from cca_bench.features import store

    sp, ds = photo_split(tmp_path, [(20, 20)] * 5)
    model = write_json(image_model(tmp_path / "m.onnx"), IMAGE_CFG)
    monkeypatch.setattr(store, "SHARD_SIZE", 2)
    shards = tmp_path / "shards"
    first = onnx_encoder.encode_onnx(sp, ds, progress=False, onnx_model=str(model), shard_dir=shards)
    assert sorted(p.name for p in shards.glob("*.npy")) == [
        "rows_000000000_000000002.npy",
        "rows_000000002_000000004.npy",
        "rows_000000004_000000005.npy",
    ]
    np.save(shards / "rows_000000002_000000004.npy", np.full((2, DIM), 7, np.float32))  # a finished shard is reused
    again = onnx_encoder.encode_onnx(sp, ds, progress=False, onnx_model=str(model), shard_dir=shards)
    np.testing.assert_array_equal(again[[0, 1, 4]], first[[0, 1, 4]])
    assert (again[2:4] == 7).all()


def test_unreadable_image_is_a_zero_row(tmp_path):
    sp, ds = photo_split(tmp_path, [(20, 20), (20, 20)])
    sp.image_paths[1].write_bytes(b"not an image")
    model = write_json(image_model(tmp_path / "m.onnx"), IMAGE_CFG)
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        got = onnx_encoder.encode_onnx(sp, ds, progress=False, onnx_model=str(model))
    assert (got[1] == 0).all() and np.abs(got[0]).sum() > 0


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda m: None, ".onnx.json not found"),
        (lambda m: write_json(m, {"size": SIDE, "mean": [0, 0, 0]}), "missing std"),
        (lambda m: write_json(m, {"mean": [0, 0, 0], "std": [1, 1, 1]}), "missing size"),
        (lambda m: write_json(m, {**IMAGE_CFG, "size": 14}), "height 12 != 14"),
        (lambda m: write_json(m, {**IMAGE_CFG, "layout": "nhwc"}), "channels 12 != 3"),
        (lambda m: write_json(m, {**IMAGE_CFG, "sise": 3}), "unknown key 'sise'"),
        (lambda m: write_json(m, {**IMAGE_CFG, "output": "logits"}), "output 'logits' is not in"),
        (lambda m: write_json(m, {**IMAGE_CFG, "resize": 8}), "resize 8 is smaller"),
        # values type- and range-checked before any image is allocated (issue 18 item 7)
        (
            lambda m: write_json(m, {**IMAGE_CFG, "resize": "16"}),
            "resize must be a whole number >= 1 and <= 8192, got '16'",
        ),
        (lambda m: write_json(m, {**IMAGE_CFG, "resize": 10**6}), "resize must be a whole number >= 1 and <= 8192"),
        (lambda m: write_json(m, {**IMAGE_CFG, "resize": 16.5}), "resize must be a whole number"),
        (lambda m: write_json(m, {**IMAGE_CFG, "size": True}), "size must be a whole number"),
        (lambda m: write_json(m, {**IMAGE_CFG, "size": [12, 10**9]}), "size must be a whole number >= 1 and <= 8192"),
        (lambda m: write_json(m, {**IMAGE_CFG, "mean": [0.5, "x", 0.3]}), "mean must be a finite number, got 'x'"),
        (lambda m: write_json(m, {**IMAGE_CFG, "mean": {"r": 1}}), "3 values each for mean and std"),
        (lambda m: write_json(m, {**IMAGE_CFG, "std": [0.2, 0, 0.3]}), "std must be a finite number > 0, got 0"),
        (lambda m: write_json(m, {**IMAGE_CFG, "scale": None}), "scale must be a finite number > 0, got None"),
        (lambda m: write_json(m, {**IMAGE_CFG, "input": 5}), "input must be the name of one of the model's inputs"),
        # external data: the files a model names stay in its folder and exist
        (lambda m: external(m, "../outside.data"), "external data of tensor 'W': path '../outside.data' leaves"),
        (lambda m: external(m, "gone.data", keep=False), "external data file 'gone.data' of tensor 'W' not found"),
    ],
)
def test_bad_model_or_json_is_one_line_and_writes_nothing(setup, message, tmp_path, roots, capsys):
    model = image_model(tmp_path / "m.onnx")
    setup(model)
    assert main(["generate", "cca", "shapes", "glove50_onnx", "--onnx-model", str(model), *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not list((tmp_path / "data" / "cache").glob("*onnx*")) and not (tmp_path / "results").exists()


def test_flag_mistakes(tmp_path, roots, capsys):
    model = write_json(image_model(tmp_path / "m.onnx"), IMAGE_CFG)
    assert main(["generate", "cca", "shapes", "glove50_onnx", *SMALL, *roots]) == 2
    assert "needs --onnx-model" in capsys.readouterr().err
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--onnx-model", str(model), *SMALL, *roots]) == 2
    assert "--onnx-model is not read by the encoder 'tinyimage'" in capsys.readouterr().err
    assert (
        main(["generate", "cca", "shapes", "glove50_tinyimage", "--onnx-text-model", str(model), *SMALL, *roots]) == 2
    )
    assert "--onnx-text-model is not read by the encoder 'glove50'" in capsys.readouterr().err


def external(model: Path, location: str = "m.onnx.data", keep: bool = True, seed: int = 0) -> Path:
    """Rewrite ``model`` with its weight W in the external-data file ``location`` (relative to the model)."""
    from onnx.external_data_helper import set_external_data

    proto = onnx.load(str(image_model(model, seed=seed)))
    w = proto.graph.initializer[0]
    data = w.raw_data
    set_external_data(w, location=location, offset=0, length=len(data))
    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    onnx.save(proto, str(model))
    if keep:
        (model.parent / location).write_bytes(data)
    return write_json(model, IMAGE_CFG)


def test_cache_key_covers_external_data(tmp_path):
    """Weights kept beside the model (``save_as_external_data``): new weights, same .onnx bytes, new key."""
    model = external(tmp_path / "m.onnx")
    a = onnx_encoder.onnx_image_identity(onnx_model=str(model))
    onnx_bytes = model.read_bytes()
    external(model, seed=1)
    b = onnx_encoder.onnx_image_identity(onnx_model=str(model))
    assert model.read_bytes() == onnx_bytes and a["onnx_sha1"] == b["onnx_sha1"]
    assert set(a["external_sha1"]) == {"m.onnx.data"} and a["external_sha1"] != b["external_sha1"]
    assert cache_key({"model": a}) != cache_key({"model": b})
    x = np.random.default_rng(0).standard_normal((2, 3, SIDE, SIDE)).astype(np.float32)
    run = onnx_encoder.image_runner(model, onnx_encoder.ImagePrep.read(model), "cpu")  # onnxruntime reads it
    assert run(np.zeros((2, SIDE, SIDE, 3), np.uint8)).shape == (2, DIM) and direct(model, x).shape == (2, DIM)
    plain = onnx_encoder.onnx_image_identity(onnx_model=str(write_json(image_model(tmp_path / "p.onnx"), IMAGE_CFG)))
    assert set(plain) == {"onnx_sha1", "json_sha1"}  # keys of self-contained models are as before


def test_device_names(tmp_path):
    model = write_json(image_model(tmp_path / "m.onnx"), IMAGE_CFG)
    assert "CPUExecutionProvider" in onnx_encoder.session(model, "cpu").get_providers()
    for bad in ("tpu", "cpu:1", "cuda:x"):
        with pytest.raises(UserError, match="run on auto, cpu, cuda or cuda:N"):
            onnx_encoder.session(model, bad)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(UserError, match="no CUDAExecutionProvider"):
            onnx_encoder.session(model, "cuda:0")


def test_cache_key_follows_the_model_file(tmp_path):
    model = write_json(image_model(tmp_path / "m.onnx"), IMAGE_CFG)
    a = onnx_encoder.onnx_image_identity(onnx_model=str(model))
    write_json(image_model(tmp_path / "m.onnx", seed=1), IMAGE_CFG)
    b = onnx_encoder.onnx_image_identity(onnx_model=str(model))
    write_json(model, {**IMAGE_CFG, "resize": 20})
    c = onnx_encoder.onnx_image_identity(onnx_model=str(model))
    assert a["onnx_sha1"] != b["onnx_sha1"] and b["json_sha1"] != c["json_sha1"]
    assert cache_key({"model": a}) != cache_key({"model": b})


# ---------------------------------------------------------------------------------------------------- text

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "a",
    "red",
    "blue",
    "green",
    "circle",
    "square",
    "star",
    "small",
    "large",
    "in",
    "the",
    "top",
    "left",
    "corner",
    "there",
    "is",
    "of",
    "and",
    "right",
]


def tokenizer_file(path: Path) -> Path:
    """A word-level Hugging Face tokenizer: lower-case, whitespace/punctuation split, [CLS] first."""
    import tokenizers
    from tokenizers import models, normalizers, pre_tokenizers, processors

    tok = tokenizers.Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 2)])
    tok.save(str(path))
    return path


def text_model(path: Path, dim: int = 5) -> tuple[Path, np.ndarray]:
    """input_ids (b, L) int64, attention_mask (b, L) -> token states Gather(table, ids) * mask (b, L, dim)."""
    from onnx import TensorProto, helper

    table = np.random.default_rng(3).standard_normal((len(WORDS), dim)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["emb"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["tokens"]),
    ]
    io = lambda n, t, s: helper.make_tensor_value_info(n, t, s)  # noqa: E731
    save_model(
        path,
        nodes,
        [io("input_ids", TensorProto.INT64, ["b", "L"]), io("attention_mask", TensorProto.INT64, ["b", "L"])],
        [io("tokens", TensorProto.FLOAT, ["b", "L", dim])],
        {"table": table, "axis": np.array([2], np.int64)},
    )
    return path, table


def test_text_model_encodes_like_its_formula(tmp_path):
    model, table = text_model(tmp_path / "t.onnx")
    tokenizer_file(tmp_path / "tok.json")
    write_json(model, {"tokenizer": "tok.json", "pooling": "mean", "normalize": True, "max_length": 4})
    enc = onnx_encoder.make_onnx_text(tmp_path, device="cpu", batch_size=2, progress=False, onnx_text_model=str(model))
    captions = ["A red circle", "blue", "a small green star in the top left corner", "zebra!", "Red circle"]
    got = enc.encode(captions)
    ids = [[2, 3, 4, 7], [2, 5], [2, 3, 10, 6], [2, 1, 1], [2, 4, 7]]  # [CLS] + words, truncated to 4, [UNK]
    want = np.stack([table[i].mean(0) for i in ids])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-6)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    ids0 = np.array([ids[0]], np.int64)
    direct_mean = sess.run(None, {"input_ids": ids0, "attention_mask": np.ones_like(ids0)})[0].mean(1)
    np.testing.assert_allclose(got[0], direct_mean[0] / np.linalg.norm(direct_mean), atol=1e-6)


def test_text_model_through_the_cli_and_search(tmp_path, roots, capsys):
    model, _ = text_model(tmp_path / "t.onnx")
    tokenizer_file(tmp_path / "tok.json")
    write_json(
        model,
        {
            "tokenizer": "tok.json",
            "pooling": "max",
            "max_length": 16,
            "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask"},
            "output": "tokens",
        },
    )
    args = ["onnx_tinyimage", "--onnx-text-model", str(model), *SMALL, *roots]
    assert main(["generate", "cca", "shapes", *args, "--reg", "0.1"]) == 0
    assert main(["run_benchmark", "cca", "shapes", "test", *args]) == 0
    assert main(["search", "cca", "shapes", *args, "--text", "a red circle", "-k", "3"]) == 0
    assert "a red circle" in capsys.readouterr().out
    keys = [json.loads(p.read_text()) for p in (tmp_path / "data" / "cache").glob("*_onnx-*.json")]
    assert keys and all(k["model"]["tokenizer_sha1"] == onnx_encoder.sha1(tmp_path / "tok.json") for k in keys)


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"pooling": "mean"}, "missing tokenizer"),
        ({"tokenizer": "tok.json"}, "missing pooling"),
        ({"tokenizer": "../tok.json", "pooling": "mean"}, "leaves the dataset folder"),
        ({"tokenizer": "tok.json", "pooling": "avg"}, "pooling 'avg' is not one of"),
        ({"tokenizer": "tok.json", "pooling": "none"}, "needs (batch, d)"),
        (
            {"tokenizer": "tok.json", "pooling": "mean", "inputs": {"input_ids": "ids"}},
            "input_ids input 'ids' is not in",
        ),
        # values type- and range-checked before anything is allocated (issue 18 item 7)
        ({"tokenizer": "tok.json", "pooling": "mean", "normalize": "false"}, "normalize must be true or false"),
        ({"tokenizer": "tok.json", "pooling": "mean", "max_length": 10**9}, "max_length must be a whole number >= 2"),
        ({"tokenizer": "tok.json", "pooling": "mean", "max_length": True}, "max_length must be a whole number"),
        ({"tokenizer": "tok.json", "pooling": "mean", "max_length": "16"}, "max_length must be a whole number"),
        ({"tokenizer": 5, "pooling": "mean"}, "tokenizer must be a file name, got 5"),
        ({"tokenizer": "tok.json", "pooling": "mean", "inputs": {"input_ids": 0}}, "inputs must map some of"),
        ({"tokenizer": "tok.json", "pooling": "mean", "output": ["tokens"]}, "output must be the name of one"),
    ],
)
def test_bad_text_json_is_one_line(cfg, message, tmp_path, roots, capsys):
    (tmp_path / "m").mkdir()
    model, _ = text_model(tmp_path / "m" / "t.onnx")
    tokenizer_file(tmp_path / "m" / "tok.json")
    tokenizer_file(tmp_path / "tok.json")
    write_json(model, cfg)
    assert main(["generate", "cca", "shapes", "onnx_tinyimage", "--onnx-text-model", str(model), *SMALL, *roots]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "data" / "cache").exists() and not (tmp_path / "results").exists()


def test_text_flag_is_needed(tmp_path):
    with pytest.raises(UserError, match="needs --onnx-text-model"):
        onnx_encoder.make_onnx_text(tmp_path, progress=False)


def test_fixed_length_model_pooling_none(tmp_path):
    """A model of fixed length 6 that pools itself (ReduceMean over every position, pads included), fed only
    input_ids: ``padding: max_length`` pads each batch to 6 with the tokenizer's pad id ([PAD] = 0)."""
    from onnx import TensorProto, helper

    table = np.random.default_rng(4).standard_normal((len(WORDS), 3)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
        helper.make_node("ReduceMean", ["emb"], ["vec"], axes=[1], keepdims=0),
    ]  # opset 17: axes attribute
    model = save_model(
        tmp_path / "f.onnx",
        nodes,
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", 6])],
        [helper.make_tensor_value_info("vec", TensorProto.FLOAT, ["b", 3])],
        {"table": table},
    )
    tokenizer_file(tmp_path / "tok.json")
    write_json(
        model,
        {
            "tokenizer": "tok.json",
            "pooling": "none",
            "max_length": 6,
            "padding": "max_length",
            "inputs": {"input_ids": "ids"},
        },
    )
    enc = onnx_encoder.make_onnx_text(tmp_path, device="cpu", batch_size=2, progress=False, onnx_text_model=str(model))
    got = enc.encode(["a red circle", "blue", "a small green star in the top left corner"])
    ids = [[2, 3, 4, 7, 0, 0], [2, 5, 0, 0, 0, 0], [2, 3, 10, 6, 9, 12]]
    np.testing.assert_allclose(got, np.stack([table[i].mean(0) for i in ids]), atol=1e-6)
