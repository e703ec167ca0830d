"""Image encoders: EfficientNet-Lite0 (shape, determinism, backends agree, real-photo ImageNet sanity),
tiny images, and Karpathy's vgg_feats.mat in MATLAB v5 and v7.3 (HDF5) layouts."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cca_bench.config import resolve_image_encoder
from cca_bench.datasets.base import open_rgb
from cca_bench.datasets.karpathy import load_karpathy_folder
from cca_bench.errors import UserError
from cca_bench.features import image
from cca_bench.registry import IMAGE_ENCODERS


@pytest.fixture(scope="module", autouse=True)
def onnx_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(image, "CACHE_DIR", tmp_path_factory.mktemp("onnx_cache"))
        mp.delenv(image.BACKEND_ENV, raising=False)
        (image.CACHE_DIR / "efficientnet_lite0-0.onnx.999999999.tmp").write_bytes(b"half an export")  # killed
        yield image.CACHE_DIR


@pytest.fixture(scope="module")
def small_images(tmp_path_factory):
    """An RGB JPEG, a grey PNG and a CMYK JPEG of different sizes."""
    d = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(d / "rgb.jpg")
    Image.fromarray(rng.integers(0, 255, (300, 200), dtype=np.uint8)).save(d / "grey.png")
    Image.new("CMYK", (50, 50), (10, 200, 30, 5)).save(d / "cmyk.jpg")
    return [d / "rgb.jpg", d / "grey.png", d / "cmyk.jpg"]


def test_registry_metadata_and_alias():
    assert resolve_image_encoder("efficientnet") == "efficientnet_lite0"
    for name, dim, builtin in [
        ("efficientnet_lite0", 1280, True),
        ("tinyimage", 768, True),
        ("vgg_karpathy", 4096, False),
        ("precomp", None, False),
    ]:
        meta = IMAGE_ENCODERS.meta(name)
        assert (meta["dim"], meta["builtin"]) == (dim, builtin) and meta["help"]


def test_efficientnet_small_images_onnx_and_torch_agree(small_images, monkeypatch, onnx_cache, make_file_split):
    sp, ds = make_file_split(small_images)
    a = image.encode_efficientnet_lite0(sp, ds, batch_size=2, progress=False)
    assert a.shape == (3, 1280) and a.dtype == np.float32 and np.isfinite(a).all()
    assert (a >= 0).all() and a.std(axis=0).max() > 0  # ReLU6 activations, pooled; images differ
    np.testing.assert_array_equal(a, image.encode_efficientnet_lite0(sp, ds, batch_size=2, progress=False))
    np.testing.assert_allclose(a, image.encode_efficientnet_lite0(sp, ds, batch_size=3, progress=False), atol=1e-4)
    assert [p.suffix for p in onnx_cache.iterdir()] == [".onnx"]  # fsio.write_atomic: the stale temporary swept
    monkeypatch.setenv(image.BACKEND_ENV, "torch")
    np.testing.assert_allclose(image.encode_efficientnet_lite0(sp, ds, progress=False), a, atol=1e-4)
    monkeypatch.setenv(image.BACKEND_ENV, "tensorflow")
    with pytest.raises(UserError, match="CCA_BENCH_IMAGE_BACKEND"):
        image.encode_efficientnet_lite0(sp, ds, progress=False)


def test_onnx_failure_falls_back_to_torch_unless_asked_for(monkeypatch):
    def broken(device, precision):
        raise RuntimeError("no exporter")

    monkeypatch.setitem(image.LITE0_BACKENDS, "onnx", broken)
    monkeypatch.setitem(image.LITE0_BACKENDS, "torch", lambda device, precision: "torch runner")
    with pytest.warns(UserWarning, match="no exporter"):
        assert image.lite0_runner("cpu") == ("torch", "torch runner")
    monkeypatch.setenv(image.BACKEND_ENV, "onnx")
    with pytest.raises(RuntimeError):
        image.lite0_runner("cpu")


def real_photos() -> dict[Path, set[int]]:
    """Real photos shipped by installed packages -> acceptable ImageNet top-1 classes."""
    import sklearn.datasets as sklearn_datasets

    d = Path(sklearn_datasets.__file__).parent / "images"
    photos = {d / "china.jpg": {698}, d / "flower.jpg": {985}}  # palace; daisy
    if not all(p.is_file() for p in photos):
        pytest.skip("scikit-learn's sample photos are missing")
    return photos


def test_efficientnet_classifies_real_photos(tmp_path, make_file_split):
    """The pooled features through the shipped classifier give the right ImageNet class: the weights,
    the preprocessing and the feature extraction are all right (set_swish() would break this)."""
    photos = real_photos()
    try:
        import skimage.data

        Image.fromarray(skimage.data.chelsea()).save(tmp_path / "chelsea.png")
        photos[tmp_path / "chelsea.png"] = {281, 282, 283, 284, 285}  # tabby, tiger, Persian, Siamese, Egyptian cat
    except ImportError:
        pass
    sp, ds = make_file_split(list(photos))
    feats = image.encode_efficientnet_lite0(sp, ds, progress=False)
    sd = image.lite0_state_dict()
    logits = feats @ sd["_fc.weight"].numpy().T + sd["_fc.bias"].numpy()
    assert [int(k) in ok for k, ok in zip(logits.argmax(axis=1), photos.values())] == [True] * len(photos)


def test_unreadable_image_names_the_file(tmp_path, make_file_split):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    sp, ds = make_file_split([bad])
    for encode in (image.encode_efficientnet_lite0, image.encode_tinyimage):
        with pytest.raises(UserError, match="broken.jpg"):
            encode(sp, ds, progress=False)


def test_tinyimage(small_images, tmp_path, make_file_split):
    Image.new("RGB", (20, 10), (9, 9, 9)).save(tmp_path / "flat.png")
    sp, ds = make_file_split(small_images + [tmp_path / "flat.png"])
    x = image.encode_tinyimage(sp, ds, progress=False)
    assert x.shape == (4, 768) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x[:3], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-6)
    assert not x[3].any()  # a constant image has no pattern: zeros, not NaN
    for k, draft in [(0, (16, 16)), (1, None)]:  # JPEGs are decoded at reduced size (DCT scaling) first
        im = open_rgb(small_images[k], draft=draft)
        expected = np.asarray(im.resize((16, 16), Image.BOX), dtype=np.float32).ravel()
        expected -= expected.mean()
        np.testing.assert_allclose(x[k], expected / np.linalg.norm(expected), atol=1e-5)


# ------------------------------------------------------------------------------------------ vgg_feats.mat

N_IMG, DIM = 5, 7
FEATS = np.random.default_rng(1).standard_normal((DIM, N_IMG)).astype(np.float32)  # MATLAB: 4096 x n


def karpathy_folder(folder: Path) -> Path:
    images = [
        {"filename": f"{k}.jpg", "imgid": k, "split": s, "sentences": [{"raw": f"image {k}"}]}
        for k, s in enumerate(["train", "test", "restval", "val", "test"])
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps({"dataset": "t", "images": images}))
    return folder


def save_v5(path: Path, feats: np.ndarray, key="feats"):
    import scipy.io

    scipy.io.savemat(path, {key: feats})


def save_v73(path: Path, feats: np.ndarray):
    """HDF5 laid out as MATLAB 7.3 writes it: 512-byte user block with the MAT header, array transposed."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("feats", data=feats.T, chunks=(2, DIM)).attrs["MATLAB_class"] = np.bytes_("single")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2015 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + b"\0" * 8 + b"\x00\x02" + b"IM")


@pytest.mark.parametrize("save", [save_v5, save_v73])
def test_vgg_karpathy_v5_and_v73_give_the_columns(tmp_path, save, monkeypatch):
    root = karpathy_folder(tmp_path / "d")
    save(root / "vgg_feats.mat", FEATS)
    monkeypatch.setattr(image, "VGG_BLOCK_BYTES", 2 * DIM * 4)  # several HDF5 blocks
    ds = load_karpathy_folder(root, "d")
    assert ds.image_encoders == ("vgg_karpathy",)
    for split, cols in [("train", [0, 2]), ("val", [3]), ("test", [1, 4])]:
        got = image.encode_vgg_karpathy(ds.split(split), ds)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, FEATS[:, cols].T)
    sub = ds.split("test").subset(np.array([1, 0]))
    np.testing.assert_array_equal(image.encode_vgg_karpathy(sub, ds), FEATS[:, [4, 1]].T)


@pytest.mark.parametrize("save", [save_v5, save_v73])
def test_vgg_karpathy_count_mismatch(tmp_path, save):
    root = karpathy_folder(tmp_path / "d")
    save(root / "vgg_feats.mat", FEATS[:, :4])
    ds = load_karpathy_folder(root, "d")
    with pytest.raises(UserError, match=r"vgg_feats\.mat.*lists 5 images"):
        image.encode_vgg_karpathy(ds.split("test"), ds)


def test_vgg_karpathy_file_problems(tmp_path):
    root = karpathy_folder(tmp_path / "d")
    ds = load_karpathy_folder(root, "d")
    with pytest.raises(UserError, match=r"vgg_feats\.mat not found"):
        image.encode_vgg_karpathy(ds.split("test"), ds)
    save_v5(root / "vgg_feats.mat", FEATS, key="features")
    with pytest.raises(UserError, match="no numeric variable 'feats'.*features"):
        image.encode_vgg_karpathy(ds.split("test"), ds)
    bad = FEATS.copy()
    bad[3, 4] = np.nan
    save_v5(root / "vgg_feats.mat", bad)
    with pytest.raises(UserError, match=r"NaN.*row 4"):
        image.encode_vgg_karpathy(ds.split("test"), ds)
    (root / "vgg_feats.mat").write_bytes(b"garbage" * 20)
    with pytest.raises(UserError, match="vgg_feats.mat"):
        image.encode_vgg_karpathy(ds.split("test"), ds)


def test_row_runs_merge_near_rows_and_cap_the_length():
    rows = np.array([0, 1, 3, 10, 11, 11, 40, 41, 42, 43, 44])
    assert image.row_runs(rows, max_gap=3, max_len=100) == [(0, 4), (10, 12), (40, 45)]
    assert image.row_runs(rows, max_gap=2, max_len=2) == [(0, 2), (3, 4), (10, 12), (40, 42), (42, 44), (44, 45)]
    assert image.row_runs(np.array([], dtype=np.int64), 3, 10) == []


def test_vgg_v73_reads_only_the_rows_it_needs(tmp_path, monkeypatch):
    """Scattered, unsorted and repeated rows come back in the order asked, and no row far from them is read."""
    import h5py

    n, d = 400, 8
    feats = np.random.default_rng(0).normal(size=(d, n)).astype(np.float32)
    path = tmp_path / "vgg_feats.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("feats", data=feats.T, chunks=(4, d))
    rows = np.array([350, 3, 120, 121, 3, 399, 0])
    read = []
    real = h5py.Dataset.__getitem__

    def spy(self, key):
        read.append(key)
        return real(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    monkeypatch.setattr(image, "VGG_GAP_BYTES", 4 * d * 4)
    np.testing.assert_array_equal(image._rows_hdf5(path, rows, n), feats[:, rows].T)
    covered = sum(k.stop - k.start for k in read)
    assert covered == 8 and len(read) == 4  # [0, 4), [120, 122), [350, 351), [399, 400)


@pytest.mark.parametrize("compress", [False, True])
def test_mat5_columns_are_memory_mapped_when_uncompressed(tmp_path, compress):
    import scipy.io

    from cca_bench.features.matfile import mat5_matrix

    feats = np.random.default_rng(0).normal(size=(6, 9)).astype(np.float32)
    path = tmp_path / "v.mat"
    scipy.io.savemat(path, {"other": np.arange(3.0), "feats": feats, "zz": "text"}, do_compression=compress)
    mapped = mat5_matrix(path, "feats")
    if compress:
        assert mapped is None  # scipy reads it instead
    else:
        assert isinstance(mapped, np.memmap) and mapped.shape == (9, 6)
        np.testing.assert_array_equal(mapped[[7, 2]], feats[:, [7, 2]].T)
    np.testing.assert_array_equal(image._rows_mat5(path, np.array([7, 2]), 9), feats[:, [7, 2]].T)
    assert mat5_matrix(path, "missing") is None
