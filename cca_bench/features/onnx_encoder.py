"""Bring-your-own ONNX encoders: an image encoder ``onnx`` (``--onnx-model``) and a text encoder ``onnx``
(``--onnx-text-model``), each run by onnxruntime with its preprocessing in ``FILE.onnx.json`` beside the model.

Any timm, open_clip or transformers model a user exports to ONNX becomes a feature (``glove50_onnx``,
``onnx_onnx``, ``minilm_onnx``) with no code change; ``docs/onnx.md`` documents every JSON key and shows the
exports. The image encoder resizes, crops and normalises as the JSON says, runs batches on
CUDAExecutionProvider when onnxruntime has it (else the CPU), and writes resumable shards like the CNN
encoders; unreadable images become zero rows listed in ``skipped.json``. The text encoder tokenises with the
JSON's Hugging Face ``tokenizer.json`` and pools the model's token states (mean / cls / max / none), optionally
L2-normalised (:class:`~cca_bench.features.sentence.SentenceEncoder`). The feature cache key holds the SHA-1 of
the model, of its JSON, of each external-data file it names and (text) of the tokenizer file, so a changed file
recomputes.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cca_bench.checks import FINITE, POSITIVE, Bound
from cca_bench.datasets.base import CaptionDataset, Split
from cca_bench.errors import UserError
from cca_bench.extras import require
from cca_bench.registry import IMAGE_ENCODERS, TEXT_ENCODERS

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box")
FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
TEXT_ROLES = ("input_ids", "attention_mask", "token_type_ids")
PIXELS = Bound(integer=True, low=1, high=8192)  # size and resize: checked before any image is allocated
TOKENS = Bound(integer=True, low=2, high=65536)  # max_length: a padded batch is (batch, max_length)


# ------------------------------------------------------------------------------------------------ files


def sidecar(model: Path) -> Path:
    """``FILE.onnx`` -> ``FILE.onnx.json``."""
    return model.with_name(model.name + ".json")


def model_file(path: str | None, flag: str, what: str) -> Path:
    """The ONNX file given with ``flag``, checked to exist with its JSON beside it."""
    if path is None:
        raise UserError(f"the onnx {what} encoder needs {flag} FILE.onnx (with FILE.onnx.json beside it)")
    model = Path(path).expanduser()
    if not model.is_file():
        raise UserError(f"ONNX model not found: {model} (given with {flag})")
    if not sidecar(model).is_file():
        raise UserError(
            f"{sidecar(model)} not found: the onnx {what} encoder reads its preprocessing from a JSON "
            "file beside the model (see docs/onnx.md)"
        )
    return model


@functools.lru_cache(maxsize=16)
def _sha1(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def sha1(path: Path) -> str:
    """SHA-1 of a file, computed once per process for an unchanged (size, mtime) file."""
    st = Path(path).stat()
    return _sha1(str(path), st.st_size, st.st_mtime_ns)


def model_identity(model: Path) -> dict:
    """The cache-key part every ONNX encoder shares: SHA-1 of the model, of its JSON and of each external-data
    file its tensors name (a model exported with ``save_as_external_data`` keeps its weights there)."""
    out = {"onnx_sha1": sha1(model), "json_sha1": sha1(sidecar(model))}
    files = external_files(model)
    if files:
        out["external_sha1"] = {name: sha1(path) for name, path in files.items()}
    return out


def external_files(model: Path) -> dict[str, Path]:
    """{location: file} of the external-data files the model's tensors name, each inside the model's folder."""
    from cca_bench.fsio import resolve_inside

    st = model.stat()
    out = {}
    for location, tensor in _external_locations(str(model), st.st_size, st.st_mtime_ns):
        path = resolve_inside(model.parent, location, f"{model}: external data of tensor {tensor!r}")
        if not path.is_file():
            raise UserError(f"{model}: external data file {location!r} of tensor {tensor!r} not found")
        out[location] = path
    return out


@functools.lru_cache(maxsize=16)
def _external_locations(model: str, size: int, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    """((location, first tensor naming it), ...) over every tensor of the graph, its subgraphs and functions."""
    onnx = require("onnx", "the onnx encoders")

    try:
        proto = onnx.load(model, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises its own types for a bad file
        raise UserError(f"cannot read {model} as an ONNX model: {' '.join(str(e).split())[:200]}") from None
    found: dict[str, str] = {}
    for t in _tensors(proto.graph.node, proto.graph.initializer, proto.graph.sparse_initializer, proto.functions):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in t.external_data if e.key == "location"), "")
            found.setdefault(location, t.name)
    return tuple(found.items())


def _tensors(nodes, initializers=(), sparse=(), functions=()):
    """Every TensorProto of a graph: initializers, sparse ones, node attributes, subgraphs, local functions."""
    yield from initializers
    for sp in sparse:
        yield from (sp.values, sp.indices)
    for node in [*nodes, *(n for f in functions for n in f.node)]:
        for a in node.attribute:
            yield from ([a.t] if a.HasField("t") else []) + list(a.tensors)
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _tensors(g.node, g.initializer, g.sparse_initializer)


def read_settings(model: Path, required: tuple[str, ...], known: tuple[str, ...]) -> dict:
    """``FILE.onnx.json`` as a dict; missing required keys or unknown keys are a UserError naming the file."""
    from cca_bench.fsio import read_json_object

    path = sidecar(model)
    cfg = read_json_object(path)
    missing = [k for k in required if k not in cfg]
    if missing:
        raise UserError(f"{path}: missing {', '.join(missing)} (required: {', '.join(required)}; see docs/onnx.md)")
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise UserError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    return cfg


def _names(cfg: dict, keys: tuple[str, ...], where: Path) -> None:
    """Input/output names, when given, are strings."""
    bad = next((k for k in keys if cfg.get(k) is not None and not isinstance(cfg[k], str)), None)
    if bad:
        raise UserError(f"{where}: {bad} must be the name of one of the model's {bad}s, got {cfg[bad]!r}")


def _choice(cfg: dict, key: str, choices: tuple[str, ...], default: str, where: Path) -> str:
    value = str(cfg.get(key, default)).lower()
    if value not in choices:
        raise UserError(f"{where}: {key} {cfg[key]!r} is not one of {', '.join(choices)}")
    return value


def session(model: Path, device: str):
    """An onnxruntime session on CUDA (``cuda`` or ``cuda:N``, or ``auto`` when onnxruntime has the CUDA
    provider), else the CPU; one per process for an unchanged file."""
    ort = require("onnxruntime", "the onnx encoders")

    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda") or not (index.isdigit() or index == "") or (index and kind != "cuda"):
        raise UserError(f"--device {device!r}: the onnx encoders run on auto, cpu, cuda or cuda:N")
    if kind == "cuda" and not cuda:
        raise UserError(
            f"--device {device}: this onnxruntime has no CUDAExecutionProvider "
            "(install onnxruntime-gpu, or use --device cpu)"
        )
    gpu = (("CUDAExecutionProvider", int(index or 0)),) if cuda and kind != "cpu" else ()
    return _session(str(model), sha1(model), gpu + (("CPUExecutionProvider", None),))


@functools.lru_cache(maxsize=4)
def _session(model: str, sha: str, providers: tuple[tuple[str, int | None], ...]):
    """providers: (name, device id or None) in order of preference."""
    ort = require("onnxruntime", "the onnx encoders")

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    chosen = [name if index is None else (name, {"device_id": index}) for name, index in providers]
    try:
        return ort.InferenceSession(model, opts, providers=chosen)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
        raise UserError(f"onnxruntime cannot load {model}: {' '.join(str(e).split())[:300]}") from None


def _io_name(names: list[str], wanted: str | None, kind: str, model: Path) -> str:
    """The JSON's input/output name (checked), or the model's only/first one."""
    if wanted is not None:
        if wanted not in names:
            raise UserError(f"{sidecar(model)}: {kind} {wanted!r} is not in {model.name} (it has {', '.join(names)})")
        return wanted
    if kind == "input" and len(names) != 1:
        raise UserError(f'{model.name} has inputs {", ".join(names)}: name one with "input" in {sidecar(model).name}')
    return names[0]


# ------------------------------------------------------------------------------------------------ images


@dataclass(frozen=True)
class ImagePrep:
    """How pixels reach the model (the keys of ``FILE.onnx.json``; docs/onnx.md).

    size (h, w); resize: short side before the centre crop (``crop="center"``), or None with ``crop="none"``
    (the whole image squashed to h x w); ``x = (pixel * scale - mean) / std`` per channel (given in RGB order),
    then ``channel_order`` (rgb/bgr) and ``layout`` (nchw/nhwc).
    """

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: int | None = None
    crop: str = "center"
    interpolation: str = "bicubic"
    channel_order: str = "rgb"
    layout: str = "nchw"
    scale: float = 1 / 255
    input: str | None = None
    output: str | None = None

    KEYS = (
        "size",
        "mean",
        "std",
        "resize",
        "crop",
        "interpolation",
        "channel_order",
        "layout",
        "scale",
        "input",
        "output",
    )

    @classmethod
    def read(cls, model: Path) -> ImagePrep:
        """Read and check ``FILE.onnx.json`` (size, mean and std required)."""
        cfg, where = read_settings(model, ("size", "mean", "std"), cls.KEYS), sidecar(model)
        size = cfg["size"] if isinstance(cfg["size"], list) else [cfg["size"]] * 2
        mean, std = cfg["mean"], cfg["std"]
        if len(size) != 2 or not (
            isinstance(mean, list) and len(mean) == 3 and isinstance(std, list) and len(std) == 3
        ):
            raise UserError(f"{where}: expected size H or [H, W], and 3 values each for mean and std")
        size = tuple(int(PIXELS.check(f"{where}: size", v)) for v in size)
        mean = tuple(float(FINITE.check(f"{where}: mean", v)) for v in mean)
        std = tuple(float(POSITIVE.check(f"{where}: std", v)) for v in std)
        scale = float(POSITIVE.check(f"{where}: scale", cfg.get("scale", 1 / 255)))
        resize = None if cfg.get("resize") is None else int(PIXELS.check(f"{where}: resize", cfg["resize"]))
        _names(cfg, ("input", "output"), where)
        crop = _choice(cfg, "crop", ("center", "none"), "center", where)
        resize = None if crop == "none" else (resize or max(size))
        if resize is not None and resize < max(size):
            raise UserError(f"{where}: resize {resize} is smaller than the {size[0]} x {size[1]} crop")
        return cls(
            size,
            mean,
            std,
            resize,
            crop,
            _choice(cfg, "interpolation", INTERPOLATIONS, "bicubic", where),
            _choice(cfg, "channel_order", ("rgb", "bgr"), "rgb", where),
            _choice(cfg, "layout", ("nchw", "nhwc"), "nchw", where),
            scale,
            cfg.get("input"),
            cfg.get("output"),
        )

    def pixels(self, im) -> np.ndarray:
        """(h, w, 3) uint8 RGB: short side resized to ``resize`` and the centre h x w cut (torchvision's
        Resize + CenterCrop), or the whole image resized to h x w (``crop="none"``)."""
        from PIL import Image

        h, w = self.size
        resample = getattr(Image.Resampling, self.interpolation.upper())
        if self.resize is None:
            return np.asarray(im.resize((w, h), resample), dtype=np.uint8)
        iw, ih = im.size
        new = (self.resize, int(self.resize * ih / iw)) if iw <= ih else (int(self.resize * iw / ih), self.resize)
        im = im if new == (iw, ih) else im.resize(new, resample)
        top, left = int(round((new[1] - h) / 2.0)), int(round((new[0] - w) / 2.0))
        return np.asarray(im.crop((left, top, left + w, top + h)), dtype=np.uint8)

    def tensor(self, pixels: np.ndarray, dtype=np.float32) -> np.ndarray:
        """(b, h, w, 3) uint8 RGB -> the model's input: scaled, normalised, channel order and layout applied."""
        x = (pixels.astype(np.float32) * np.float32(self.scale) - np.float32(self.mean)) / np.float32(self.std)
        if self.channel_order == "bgr":
            x = x[..., ::-1]
        if self.layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=dtype)


def check_image_input(sess, prep: ImagePrep, model: Path) -> tuple[str, str, int | None, type]:
    """(input name, output name, fixed batch size or None, input dtype); a shape that disagrees with the
    JSON (rank, channels, height, width) is a UserError naming both files."""
    inputs = {i.name: i for i in sess.get_inputs()}
    name = _io_name(list(inputs), prep.input, "input", model)
    out = _io_name([o.name for o in sess.get_outputs()], prep.output, "output", model)
    spec = inputs[name]
    if spec.type not in FLOAT_TYPES:
        raise UserError(f"{model.name}: input {name!r} is {spec.type}; the onnx image encoder feeds float pixels")
    shape = list(spec.shape)
    bad = ["rank != 4"]
    if len(shape) == 4:
        chw = (shape[1], shape[2], shape[3]) if prep.layout == "nchw" else (shape[3], shape[1], shape[2])
        bad = [
            f"{label} {got} != {want}"
            for label, got, want in zip(("channels", "height", "width"), chw, (3, *prep.size))
            if isinstance(got, int) and got != want
        ]
    if bad:
        raise UserError(
            f"{model.name}: input {name!r} has shape {shape} but {sidecar(model).name} says "
            f"{prep.layout} with size {prep.size[0]} x {prep.size[1]} ({'; '.join(bad)})"
        )
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return name, out, batch, FLOAT_TYPES[spec.type]


def image_runner(model: Path, prep: ImagePrep, device: str) -> Callable[[np.ndarray], np.ndarray]:
    """``run(uint8 (b, h, w, 3)) -> (b, d) float32``; a fixed-batch model is fed zero-padded batches of its size."""
    sess = session(model, device)
    name, out, fixed, dtype = check_image_input(sess, prep, model)

    def run(pixels: np.ndarray) -> np.ndarray:
        x, n = prep.tensor(pixels, dtype), len(pixels)
        if fixed is not None:
            pad = -n % fixed
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
            y = np.concatenate([sess.run([out], {name: x[i : i + fixed]})[0] for i in range(0, len(x), fixed)])[:n]
        else:
            y = sess.run([out], {name: x})[0]
        y = y.reshape(y.shape[:2]) if y.ndim > 2 and all(s == 1 for s in y.shape[2:]) else y
        if y.ndim != 2:
            raise UserError(
                f"{model.name}: output {out!r} has shape {list(y.shape)}; expected (batch, d): export "
                "the pooled features (see docs/onnx.md)"
            )
        return y.astype(np.float32)

    return run


def _pixels_or_skip(split: Split, i: int, prep: ImagePrep, reasons: dict) -> np.ndarray:
    """``prep.pixels`` of image i, or zeros with ``reasons[i]`` set when the image cannot be read."""
    from PIL import Image

    from cca_bench.features.image import read_rgb

    try:
        im = read_rgb(split, i, (prep.resize or max(prep.size),) * 2)
    except (UserError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        reasons[i] = str(e)
        return np.zeros((*prep.size, 3), dtype=np.uint8)
    return prep.pixels(im)


def onnx_image_identity(*, onnx_model: str | None = None, **_) -> dict:
    """The cache key part of the onnx image encoder: the SHA-1 of the model, its JSON and external data."""
    model = model_file(onnx_model, "--onnx-model", "image")
    ImagePrep.read(model)
    return model_identity(model)


@IMAGE_ENCODERS.register(
    "onnx",
    aliases=[],
    dim=None,
    builtin=False,
    identity=onnx_image_identity,
    help="your ONNX image model (--onnx-model FILE.onnx, preprocessing in FILE.onnx.json; docs/onnx.md)",
)
def encode_onnx(
    split: Split,
    dataset: CaptionDataset,
    *,
    batch_size: int = 64,
    device: str = "auto",
    progress: bool = True,
    onnx_model: str | None = None,
    shard_dir: Path | None = None,
) -> np.ndarray:
    """(n_img, d) float32 outputs of the ONNX model on the split's images (resumable with ``shard_dir``).

    The model and its JSON are checked before anything is computed or written.
    """
    from tqdm import tqdm

    from cca_bench.features.image import batches
    from cca_bench.features.store import SHARD_SIZE, compute_sharded

    model = model_file(onnx_model, "--onnx-model", "image")
    prep = ImagePrep.read(model)
    run = image_runner(model, prep, device)

    def rows(lo: int, hi: int) -> tuple[np.ndarray, list[dict]]:
        reasons: dict = {}
        pixels = functools.partial(_pixels_or_skip, prep=prep, reasons=reasons)
        parts = [run(b) for b in batches(split, pixels, range(lo, hi), batch_size, bar)]
        out = np.concatenate(parts) if parts else run(np.zeros((1, *prep.size, 3), np.uint8))[:0]
        skipped = [{"index": i, "id": split.image_ids[i], "reason": r} for i, r in sorted(reasons.items())]
        for s in skipped:
            out[s["index"] - lo] = 0.0
        return out, skipped

    with tqdm(
        total=split.n_images,
        unit="img",
        desc=f"onnx:{model.name} {split.dataset}/{split.name}",
        disable=not progress,
        file=sys.stderr,
    ) as bar:
        feats, skipped = compute_sharded(shard_dir, split.n_images, rows, SHARD_SIZE, bar)
    if skipped:
        import warnings

        warnings.warn(
            f"onnx: skipped {len(skipped)} of {split.n_images} images of {split.dataset}/{split.name} "
            f"(zero rows; first: {skipped[0]['id']}: {skipped[0]['reason']})",
            stacklevel=2,
        )
    return feats


# -------------------------------------------------------------------------------------------------- text

TEXT_KEYS = ("tokenizer", "pooling", "max_length", "padding", "inputs", "output", "normalize")


@dataclass(frozen=True)
class TextPrep:
    """The keys of a text model's ``FILE.onnx.json`` (docs/onnx.md)."""

    tokenizer: Path
    pooling: str
    max_length: int = 128
    inputs: tuple[tuple[str, str], ...] = ()  # (role, input name): input_ids, attention_mask, token_type_ids
    output: str | None = None
    normalize: bool = False
    padding: str = "longest"  # or "max_length": every batch padded to max_length (fixed-length models, CLIP)

    @classmethod
    def read(cls, model: Path) -> TextPrep:
        """Read and check the JSON (tokenizer and pooling required; the tokenizer path is relative to the JSON)."""
        from cca_bench.features.sentence import POOLINGS
        from cca_bench.fsio import resolve_inside

        cfg, where = read_settings(model, ("tokenizer", "pooling"), TEXT_KEYS), sidecar(model)
        if not isinstance(cfg["tokenizer"], str):
            raise UserError(f"{where}: tokenizer must be a file name, got {cfg['tokenizer']!r}")
        tokenizer = resolve_inside(model.parent, cfg["tokenizer"], f"{where}: tokenizer")
        if not tokenizer.is_file():
            raise UserError(f"{where}: tokenizer file {tokenizer} not found")
        pooling = _choice(cfg, "pooling", tuple(POOLINGS), "mean", where)
        inputs = cfg.get("inputs", {})
        if (
            not isinstance(inputs, dict)
            or set(inputs) - set(TEXT_ROLES)
            or not all(isinstance(v, str) for v in inputs.values())
        ):
            raise UserError(f"{where}: inputs must map some of {', '.join(TEXT_ROLES)} to the model's input names")
        max_length = int(TOKENS.check(f"{where}: max_length", cfg.get("max_length", 128)))
        if not isinstance(cfg.get("normalize", False), bool):
            raise UserError(f"{where}: normalize must be true or false, got {cfg['normalize']!r}")
        _names(cfg, ("output",), where)
        return cls(
            tokenizer,
            pooling,
            max_length,
            tuple(sorted(inputs.items())),
            cfg.get("output"),
            cfg.get("normalize", False),
            _choice(cfg, "padding", ("longest", "max_length"), "longest", where),
        )


def text_feeds(sess, prep: TextPrep, model: Path) -> tuple[dict[str, tuple[str, type]], str]:
    """({role: (input name, dtype)}, output name): the JSON's names, else inputs named like their role; an input
    the encoder cannot fill is a UserError."""
    inputs = {i.name: i for i in sess.get_inputs()}
    named = dict(prep.inputs) or {r: r for r in TEXT_ROLES if r in inputs}
    for role, name in named.items():
        if name not in inputs:
            raise UserError(
                f"{sidecar(model)}: {role} input {name!r} is not in {model.name} (it has {', '.join(inputs)})"
            )
    unfed = [n for n in inputs if n not in named.values()]
    if unfed or "input_ids" not in named:
        raise UserError(
            f"{model.name}: cannot feed input {(unfed or ['input_ids'])[0]!r}; map the model's inputs to "
            f'{", ".join(TEXT_ROLES)} with "inputs" in {sidecar(model).name}'
        )
    bad = [n for n in named.values() if inputs[n].type not in INT_TYPES]
    if bad:
        raise UserError(f"{model.name}: input {bad[0]!r} is {inputs[bad[0]].type}; token inputs must be int64 or int32")
    out = _io_name([o.name for o in sess.get_outputs()], prep.output, "output", model)
    return {r: (n, INT_TYPES[inputs[n].type]) for r, n in named.items()}, out


def text_forward(
    model: Path, prep: TextPrep, device: str
) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], int]:
    """(``forward(ids, mask) -> token states or vectors``, output width), the model checked against its JSON
    (inputs, output, the output's rank for the pooling) on a two-token caption."""
    sess = session(model, device)
    feeds, out = text_feeds(sess, prep, model)
    parts = {
        "input_ids": lambda ids, mask: ids,
        "attention_mask": lambda ids, mask: mask,
        "token_type_ids": lambda ids, mask: np.zeros_like(ids),
    }

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        y = sess.run([out], {name: parts[role](ids, mask).astype(dtype) for role, (name, dtype) in feeds.items()})[0]
        if y.ndim != (2 if prep.pooling == "none" else 3):
            raise UserError(
                f"{model.name}: output {out!r} has shape {list(y.shape)}, but pooling {prep.pooling!r} "
                f"needs {'(batch, d)' if prep.pooling == 'none' else '(batch, tokens, d)'}"
            )
        return y

    width = prep.max_length if prep.padding == "max_length" else 2
    probe = np.zeros((1, width), np.int64), (np.arange(width) < 2).astype(np.int64)[None]
    return forward, int(forward(*probe).shape[-1])


def onnx_text_identity(data_root: Path, path: str | None = None, *, onnx_text_model: str | None = None) -> dict:
    """The cache key part of the onnx text encoder: SHA-1 of the model, its JSON, its external data and its
    tokenizer file. The model is checked here (on the CPU), before any feature of the run is computed or written."""
    model = model_file(onnx_text_model, "--onnx-text-model", "text")
    prep = TextPrep.read(model)
    identity = model_identity(model)  # before the session: an external file outside the folder is never read
    text_forward(model, prep, "cpu")
    return {**identity, "tokenizer_sha1": sha1(prep.tokenizer)}


@TEXT_ENCODERS.register(
    "onnx",
    kind="sentence",
    builtin=False,
    files=[],
    identity=onnx_text_identity,
    help="your ONNX text model (--onnx-text-model FILE.onnx; tokenizer, pooling in FILE.onnx.json; docs/onnx.md)",
)
def make_onnx_text(
    data_root: Path,
    path: str | None = None,
    *,
    device: str = "auto",
    batch_size: int = 64,
    progress: bool = True,
    onnx_text_model: str | None = None,
):
    """A :class:`~cca_bench.features.sentence.SentenceEncoder` over the ONNX text model."""
    from cca_bench.features.sentence import SentenceEncoder, load_tokenizer

    if path is not None:
        raise UserError("the onnx text encoder reads --onnx-text-model FILE.onnx, not --text-path")
    model = model_file(onnx_text_model, "--onnx-text-model", "text")
    prep = TextPrep.read(model)
    tokenizer, pad_id = load_tokenizer(prep.tokenizer, prep.max_length)
    forward, dim = text_forward(model, prep, device)
    return SentenceEncoder(
        tokenizer,
        forward,
        prep.pooling,
        prep.normalize,
        dim,
        batch_size,
        progress,
        pad_id,
        label=f"onnx:{model.name}",
        pad_to=prep.max_length if prep.padding == "max_length" else 0,
    )
