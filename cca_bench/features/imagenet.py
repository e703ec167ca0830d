"""Image encoders from local ImageNet weight files: VGG16/19 fc7, ResNet-152, Inception v3, InceptionResNetV2.

The networks are this suite's plain-torch copies (:mod:`cca_bench.features.cnn`) named like the published
state dicts, so the standard files load with strict key checks and no unpickling (``weights_only=True``):

| encoder | dim | features | input | file (first found in ``DATA/weights/`` or ``$TORCH_HOME/hub/checkpoints/``) |
|---|---|---|---|---|
| vgg16 | 4096 | fc7 after its ReLU | 224 | ``vgg16-397923af.pth`` (torchvision) |
| vgg19 | 4096 | fc7 after its ReLU | 224 | ``vgg19-dcbb9e9d.pth`` (torchvision) |
| resnet152 | 2048 | global average pool | 224 | ``resnet152-394f9c45.pth`` or ``resnet152-b121ed2d.pth`` |
| inception_v3 | 2048 | global average pool | 299 | ``inception_v3_google-0cc3c7bd.pth`` (torchvision) |
| inceptionresnetv2 | 1536 | global average pool | 299 | see below |

inceptionresnetv2 reads timm's ``inception_resnet_v2-940b1cd6.pth``, timm's hub ``model.safetensors`` saved as
``inception_resnet_v2.tf_in1k.safetensors``, or Cadene's ``inceptionresnetv2-520b38e4.pth``.

fc7 is taken after its ReLU (``classifier[4]`` in torchvision's numbering), the classic "fc7 features" of
Karpathy's ``vgg_feats.mat`` and the CCA papers. Preprocessing follows the torchvision evaluation transform:
resize the short side (bilinear, antialiased) to 256 and centre-crop 224 with ImageNet mean/std, or, for the
two Google-trained Inception nets, crop 299 scaled to ``pixel / 127.5 - 1`` (what torchvision's
``transform_input=True`` computes from an ImageNet-normalised tensor, so the same numbers) after resizing to
342 (torchvision's Inception v3 transform) or 333 (InceptionResNetV2: timm's crop fraction 0.8975; timm
resizes bicubic, this suite bilinear).
``crops=10`` averages the features of the four corner and centre crops and their mirror images (the 10-crop
evaluation of Krizhevsky et al. 2012). JPEGs at least twice the resize size are first decoded at 1/2 - 1/8
scale (DCT scaling), which keeps huge photos cheap.

Unreadable, truncated or decompression-bomb images (Pillow's ``MAX_IMAGE_PIXELS`` policy) do not stop an
extraction: their row is all zeros and they are listed, with the reason, in a warning and in
``skipped.json`` of the shard folder. With ``shard_dir`` the features are written every
:data:`~cca_bench.features.store.SHARD_SIZE` images, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cca_bench.datasets.base import CaptionDataset, Split
from cca_bench.errors import UserError
from cca_bench.features.accel import native_precision
from cca_bench.registry import IMAGE_ENCODERS

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GOOGLE_MEAN, GOOGLE_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # pixel / 127.5 - 1
CROPS = (1, 10)
SHOW_SKIPPED = 10  # skipped images named in the warning (all of them are in skipped.json)
CPU_BATCH = 32  # images per batch on a CPU (larger batches gain nothing there and cost memory)


@dataclass(frozen=True)
class CNNSpec:
    """How to build, find, load and feed one network.

    arch/arch_args: builder in :mod:`cca_bench.features.cnn`; files: accepted weight file names (the first
    is suggested); source: what the file is, for error messages; size/resize: crop side and short-side resize;
    head: the classifier's key prefix (its row count gives ``num_classes``); rename: key prefixes of other
    layouts mapped to ours; width: channel multiplier (1.0; tests use less); onednn_stages: the methods holding
    every conv / batch norm, run on oneDNN tensors with prepacked weights under bf16 on a CPU
    (:func:`cca_bench.features.accel.fast_model`).
    """

    arch: str
    files: tuple[str, ...]
    source: str
    dim: int
    features: str
    size: int = 224
    resize: int = 256
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    head: str = "fc"
    arch_args: tuple = ()
    rename: dict = field(default_factory=dict)
    width: float = 1.0
    aliases: tuple[str, ...] = ()
    onednn_stages: tuple[str, ...] = ()


CNNS: dict[str, CNNSpec] = {
    "vgg16": CNNSpec(
        "vgg",
        ("vgg16-397923af.pth",),
        "torchvision's ImageNet VGG16 state dict",
        4096,
        "fc7 after ReLU",
        head="classifier.6",
        arch_args=("vgg16",),
        onednn_stages=("pool5",),
    ),
    "vgg19": CNNSpec(
        "vgg",
        ("vgg19-dcbb9e9d.pth",),
        "torchvision's ImageNet VGG19 state dict",
        4096,
        "fc7 after ReLU",
        head="classifier.6",
        arch_args=("vgg19",),
        onednn_stages=("pool5",),
    ),
    "resnet152": CNNSpec(
        "resnet152",
        ("resnet152-394f9c45.pth", "resnet152-b121ed2d.pth"),
        "torchvision's ImageNet ResNet-152 state dict",
        2048,
        "global average pool",
        onednn_stages=("trunk",),
    ),
    "inception_v3": CNNSpec(
        "inception_v3",
        ("inception_v3_google-0cc3c7bd.pth",),
        "torchvision's ImageNet Inception v3 state dict (Google's weights)",
        2048,
        "global average pool",
        299,
        342,
        GOOGLE_MEAN,
        GOOGLE_STD,
        aliases=("inception",),
        onednn_stages=("trunk",),
    ),
    "inceptionresnetv2": CNNSpec(
        "inception_resnet_v2",
        (
            "inception_resnet_v2-940b1cd6.pth",
            "inception_resnet_v2.tf_in1k.safetensors",
            "inceptionresnetv2-520b38e4.pth",
        ),
        "timm's (or Cadene's pretrainedmodels) ImageNet InceptionResNetV2 state dict",
        1536,
        "global average pool",
        299,
        333,
        GOOGLE_MEAN,
        GOOGLE_STD,
        head="classif",
        rename={"last_linear.": "classif."},
        aliases=("inception_resnet_v2",),
    ),
}


# ---------------------------------------------------------------------------------------------- weights


def torch_home() -> Path:
    """``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch`` (torch.hub's rule)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"


def find_weights(name: str, data_root: Path | None) -> Path:
    """The first of the encoder's file names present in ``DATA/weights/`` or the torch hub checkpoints."""
    from cca_bench.config import data_root as default_root

    spec = CNNS[name]
    folders = [Path(data_root or default_root()) / "weights", torch_home() / "hub" / "checkpoints"]
    for folder in folders:
        for f in spec.files:
            if (folder / f).is_file():
                return folder / f
    raise UserError(
        f"{name} weights not found: put {spec.files[0]} in {folders[0]}/ (or {folders[1]}/); it is {spec.source}"
    )


def read_state_dict(path: Path) -> dict:
    """Tensors of a ``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` file; no unpickling."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file, reported by name
        raise UserError(f"cannot read weights {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{path} is not a state dict (a mapping of parameter names to tensors)")
    return dict(sd)


def _renamed(sd: dict, rename: dict) -> dict:
    out = {}
    for k, v in sd.items():
        for old, new in rename.items():
            if k.startswith(old):
                k = new + k[len(old) :]
        out[k] = v
    return out


def check_keys(model, sd: dict, path: Path) -> None:
    """UserError naming ``path`` and the first missing / unexpected / misshapen keys, unless all match.

    ``num_batches_tracked`` buffers may be absent (files saved before torch 0.4.1 lack them).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    shapes = [
        f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    problems = [
        f"{label} {', '.join(keys[:3])}" + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes))
        if keys
    ]
    if problems:
        raise UserError(f"{path} does not match the {type(model).__name__} architecture: " + "; ".join(problems))


def load_network(name: str, path: Path):
    """The eval-mode network of encoder ``name`` with the weights of ``path`` (strict key check)."""
    import torch

    from cca_bench.features import cnn

    spec = CNNS[name]
    sd = _renamed(read_state_dict(path), spec.rename)
    head = sd.get(f"{spec.head}.weight")
    num_classes = int(head.shape[0]) if head is not None and head.ndim == 2 else 1000
    with torch.device("meta"):  # no random initialisation of weights about to be overwritten (0.5 s for VGG19)
        model = getattr(cnn, spec.arch)(*spec.arch_args, width=spec.width, num_classes=num_classes)
    check_keys(model, sd, path)
    model = model.to_empty(device="cpu")
    for key, buffer in model.named_buffers():
        if key not in sd:  # num_batches_tracked of old files (check_keys allows no other gap)
            buffer.zero_()
    model.load_state_dict(sd, strict=False)  # keys checked above
    return model.eval()


# ----------------------------------------------------------------------------------------------- pixels


def resize_short(im, side: int):
    """The image with its short side resized to ``side`` (bilinear, antialiased), aspect kept (as torchvision)."""
    from PIL import Image

    w, h = im.size
    size = (side, int(side * h / w)) if w <= h else (int(side * w / h), side)
    return im if size == (w, h) else im.resize(size, Image.BILINEAR)


def crops_of(im, size: int, resize: int, n_crops: int = 1) -> np.ndarray:
    """(n_crops, size, size, 3) uint8: the centre crop of the resized image, or 10 crops in torchvision's
    TenCrop order (top-left, top-right, bottom-left, bottom-right, centre, then the same of the mirror)."""
    im = resize_short(im, resize)  # resize >= size, so every crop lies inside
    w, h = im.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    boxes = [(left, top)] if n_crops == 1 else [(0, 0), (w - size, 0), (0, h - size), (w - size, h - size), (left, top)]
    out = [np.asarray(im.crop((x, y, x + size, y + size)), dtype=np.uint8) for x, y in boxes]
    if n_crops == 10:
        out += [c[:, ::-1] for c in out]
    return np.stack(out)


def _pixels_or_skip(split: Split, i: int, spec: CNNSpec, n_crops: int, reasons: dict) -> np.ndarray:
    """``crops_of`` image i, or zeros with ``reasons[i]`` set when the image cannot be read."""
    from PIL import Image

    from cca_bench.features.image import read_rgb

    try:
        im = read_rgb(split, i, (spec.resize, spec.resize))
    except (UserError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        reasons[i] = str(e)
        return np.zeros((n_crops, spec.size, spec.size, 3), dtype=np.uint8)
    return crops_of(im, spec.size, spec.resize, n_crops)


# ------------------------------------------------------------------------------------------------ running


def network_runner(name: str, path: Path, device: str, precision: str = "fp32") -> Callable[[np.ndarray], np.ndarray]:
    """``run(uint8 (b, crops, S, S, 3)) -> (b, d) float32``: crop features averaged, at most ``b`` crops per
    forward pass (10 crops of a whole batch at once would need 10x the activation memory).

    The network runs in channels_last memory under ``torch.inference_mode`` and, for bf16 / fp16, autocast,
    or with bf16 weights prepacked for oneDNN where the spec names ``onednn_stages`` and the CPU runs bf16
    (:func:`cca_bench.features.accel.fast_model`); on CUDA the pixels go through pinned memory.
    ``run.forward`` maps a normalised float (n, 3, S, S) batch on ``device`` to (n, d) float32 (the GPU
    batch-size probe uses it).
    """
    import torch

    from cca_bench.features import accel

    spec = CNNS[name]
    model, precision_context = accel.fast_model(load_network(name, path), device, precision, spec.onednn_stages)

    def forward(x):
        with torch.inference_mode(), precision_context():
            return model.extract(x.contiguous(memory_format=torch.channels_last)).float()

    def run(x: np.ndarray) -> np.ndarray:
        b, n_crops = x.shape[:2]
        flat = accel.to_device(x.reshape(b * n_crops, *x.shape[2:]), device)
        with torch.inference_mode():
            outs = [forward(normalise(chunk, spec)) for chunk in flat.split(max(1, b))]
            return torch.cat(outs).view(b, n_crops, -1).mean(dim=1).cpu().numpy()

    run.forward = forward
    return run


@functools.lru_cache(maxsize=1)
def _worker_runner(name: str, path: str, device: str, precision: str):
    """One network per process for shard tasks (a Dask worker computes many shards of one split)."""
    return network_runner(name, Path(path), device, precision)


def batch_size_for(name: str, run: Callable[[], Callable], device: str, requested: int | None) -> int:
    """``requested``, else :data:`CPU_BATCH` on the CPU, else what fits the GPU's free memory."""
    if requested or not device.startswith("cuda"):
        return int(requested or CPU_BATCH)
    import torch

    from cca_bench.features import accel

    size = CNNS[name].size
    example = torch.zeros(1, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    return accel.gpu_batch_size(run().forward, example, device, None)


def normalise(pixels, spec: CNNSpec):
    """uint8 (n, S, S, 3) tensor -> float32 (n, 3, S, S) ``(pixel / 255 - mean) / std`` of the network."""
    import torch

    mean = torch.tensor(spec.mean, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=pixels.device).view(1, 3, 1, 1)
    return (pixels.permute(0, 3, 1, 2).float() / 255 - mean) / std


def _rows(
    split: Split, name: str, run: Callable[[], Callable], n_crops: int, batch_size: int, bar, lo: int, hi: int
) -> tuple[np.ndarray, list[dict]]:
    """Features of images lo..hi-1: ((hi - lo, d) float32, skipped records); skipped rows are zeros.

    ``run()`` returns the network runner (built on first use, so finished shards never load the weights).
    """
    from cca_bench.features.image import batches

    spec, reasons = CNNS[name], {}
    pixels = functools.partial(_pixels_or_skip, spec=spec, n_crops=n_crops, reasons=reasons)
    parts = [run()(batch) for batch in batches(split, pixels, range(lo, hi), batch_size, bar)]
    out = np.concatenate(parts) if parts else np.zeros((0, spec.dim), dtype=np.float32)
    skipped = [{"index": i, "id": split.image_ids[i], "reason": r} for i, r in sorted(reasons.items())]
    for s in skipped:
        out[s["index"] - lo] = 0.0
    return out, skipped


def _warn_skipped(name: str, split: Split, skipped: list[dict]) -> None:
    shown = "; ".join(f"{s['id']}: {s['reason']}" for s in skipped[:SHOW_SKIPPED])
    more = f"; +{len(skipped) - SHOW_SKIPPED} more" if len(skipped) > SHOW_SKIPPED else ""
    warnings.warn(
        f"{name}: skipped {len(skipped)} of {split.n_images} images of {split.dataset}/{split.name} "
        f"(zero feature rows): {shown}{more}",
        stacklevel=3,
    )


def encode_cnn(
    name: str,
    split: Split,
    dataset: CaptionDataset,
    *,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
    crops: int = 1,
    data_root: Path | None = None,
    shard_dir: Path | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """(n_img, d) float32 features of network ``name`` (see the module table), ``crops`` = 1 or 10.

    The weights are found before anything else (a missing file fails at once) and loaded only when a shard
    has to be computed. ``shard_dir``: resumable extraction with skipped images in ``skipped.json``.
    ``precision``: fp32, bf16, fp16 (CUDA) or auto (:func:`cca_bench.features.accel.native_precision`).
    ``batch_size`` None: :data:`CPU_BATCH` on a CPU, chosen from free memory on a GPU.
    """
    from tqdm import tqdm

    from cca_bench.features.store import SHARD_SIZE, compute_sharded

    path, device, precision = _setup(name, device, precision, crops, data_root)
    run = functools.lru_cache(maxsize=1)(lambda: network_runner(name, path, device, precision))
    batch_size = batch_size_for(name, run, device, batch_size)
    desc = f"{name}[{device} {precision}{', 10 crops' if crops == 10 else ''}] {split.dataset}/{split.name}"
    with tqdm(total=split.n_images, unit="img", desc=desc, disable=not progress, file=sys.stderr) as bar:
        rows = functools.partial(_rows, split, name, run, crops, batch_size, bar)
        feats, skipped = compute_sharded(shard_dir, split.n_images, rows, SHARD_SIZE, bar)
    if skipped:
        _warn_skipped(name, split, skipped)
    return feats


def _setup(name: str, device: str, precision: str, crops: int, data_root: Path | None) -> tuple[Path, str, str]:
    """(weights file, resolved device, resolved precision), or a UserError for bad crops / missing weights."""
    from cca_bench.config import torch_device
    from cca_bench.features.accel import resolve_precision

    if crops not in CROPS:
        raise UserError(f"--crops {crops}: expected 1 (centre crop) or 10 (corners, centre and their mirrors)")
    device = torch_device(device)
    return find_weights(name, data_root), device, resolve_precision(precision, device)


def shard_rows(
    name: str,
    split: Split,
    dataset: CaptionDataset,
    lo: int,
    hi: int,
    *,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    crops: int = 1,
    data_root: Path | None = None,
    **_,
) -> tuple[np.ndarray, list[dict]]:
    """Rows lo..hi of :func:`encode_cnn` and their skipped records, for a shard task on another process
    (a Dask worker): the same batches as the local extraction, so the same numbers."""
    path, device, precision = _setup(name, device, precision, crops, data_root)
    run = functools.partial(_worker_runner, name, str(path), device, precision)
    return _rows(split, name, run, crops, batch_size_for(name, run, device, batch_size), None, lo, hi)


for _name, _spec in CNNS.items():
    IMAGE_ENCODERS.register(
        _name,
        aliases=list(_spec.aliases),
        dim=_spec.dim,
        builtin=False,
        crops=True,
        files=[f"weights/{f}" for f in _spec.files],
        precision=native_precision,
        shard_rows=functools.partial(shard_rows, _name),
        help=f"{_name} ImageNet features ({_spec.dim}-d {_spec.features}, {_spec.size} crop; "
        f"weights file {_spec.files[0]})",
    )(functools.partial(encode_cnn, _name))
