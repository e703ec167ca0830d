"""How image networks run near the hardware limit: precision (fp32 / bf16 / fp16), autocast, channels_last,
oneDNN-prepacked bf16 weights, pinned host-to-GPU copies, and the GPU batch size chosen from free memory.

Precision ``auto`` means bf16 on a CPU with native bf16 arithmetic (``avx512_bf16`` or ``amx_bf16`` in
``/proc/cpuinfo``), fp32 on other CPUs, fp16 on CUDA. bf16 is applied with ``torch.autocast`` (convolutions and
matrix products take bf16 inputs and accumulate in fp32, everything else stays fp32), or, for networks whose spec
names their conv trunk (VGG, ResNet, Inception v3), by :func:`prepack_bf16`: weights converted and reordered for
oneDNN once instead of on every call. Measured on the idle 2-core AMD EPYC with ``avx512_bf16`` (no AMX), VGG19 fc7,
batch 32, network alone: eager fp32 NCHW 6.7 img/s, fp32 channels_last 9.7, bf16 autocast + channels_last 18.2, bf16
prepacked 20.8 (its big convolutions at about 1 TFLOP/s, above the 0.9 TFLOP/s of a 2048-square bf16 GEMM in torch
here), fc7 at cosine 0.99999 of fp32 (``benchmarks/REPORT_extract.md`` has the pipeline runs). Precision other than
fp32 is part of the feature cache key (:meth:`cca_bench.features.image_pipeline.ImagePipeline.key`).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np

from cca_bench.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
GPU_MEMORY_FRACTION = 0.6  # of the free memory, for activations; the rest stays for the allocator and others
GPU_MAX_BATCH = 512


@functools.lru_cache(maxsize=1)
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset:
    """The CPU feature flags the kernel reports (empty where there is no ``/proc/cpuinfo``)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return frozenset()
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return frozenset(flags)


def cpu_has_native_bf16(flags: frozenset | None = None) -> bool:
    """True when the CPU computes bf16 dot products natively (AVX-512 BF16 or AMX), so bf16 pays off."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def native_precision(device: str, flags: frozenset | None = None) -> str:
    """What ``auto`` means on ``device`` (a resolved torch device): fp16 on CUDA, bf16 on a CPU with native
    bf16, else fp32."""
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if cpu_has_native_bf16(flags) else "fp32"


def resolve_precision(requested: str, device: str, auto=native_precision) -> str:
    """``requested`` (one of :data:`PRECISIONS`) as run on ``device``; ``auto(device)`` decides ``auto``.

    fp16 on a CPU is refused (CPU kernels for it are slow and less accurate than bf16).
    """
    if requested not in PRECISIONS:
        raise UserError(f"--precision {requested!r}: expected one of {', '.join(PRECISIONS)}")
    precision = auto(device) if requested == "auto" else requested
    if precision == "fp16" and not device.startswith("cuda"):
        raise UserError("--precision fp16 needs a CUDA device; on a CPU use bf16 (or auto)")
    return precision


def autocast(device: str, precision: str):
    """A context running convolutions / matrix products in ``precision`` (nothing for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def prepare(model, device: str):
    """The eval-mode model on ``device`` in channels_last memory (oneDNN / cuDNN's fast layout for convs)."""
    import torch

    return model.to(device).to(memory_format=torch.channels_last).eval()


def onednn_bf16_available() -> bool:
    """True when this torch build runs oneDNN (mkldnn) bf16 kernels on this CPU."""
    import torch

    try:
        _onednn_modules()
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (ImportError, AttributeError, RuntimeError):  # a torch without these utilities: autocast instead
        return False


def _onednn_modules():
    """``torch.utils.mkldnn`` (its modules are TorchScript classes: importing it warns that TorchScript is
    deprecated, which says nothing to our users)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.utils import mkldnn
    return mkldnn


def prepack_bf16(model, stages: tuple[str, ...]):
    """``model`` with its convolutions, linear layers and batch norms replaced by oneDNN modules whose bf16
    weights are converted and reordered once, here, instead of on every call as autocast does. The methods
    named in ``stages`` (the conv trunk: VGG's ``pool5``, the others' ``trunk``) run on oneDNN tensors end to
    end, one layout conversion in and one out; they must hold every convolution and batch norm of the network
    (those modules take oneDNN tensors only). Linear layers outside take and return plain bf16 tensors. Run the
    result without autocast; its outputs are bf16.

    Measured 2026-11-30 on the idle 2-core AVX-512-BF16 EPYC, batch 32, network alone: VGG19 fc7 20.8 img/s
    against 18.2 under bf16 autocast + channels_last, ResNet-152 31.7 against 26.5, Inception v3 52.5 against
    47.4; Inception-ResNet-v2 lost (20.5 against 23.0: its many concatenations leave oneDNN tensors), so its
    spec names no stage. fp32 weights prepacked the same way gain nothing (VGG19 9.9 against 9.7 img/s), so
    only bf16 uses this.
    """
    import torch

    mkldnn = _onednn_modules()
    for name in stages:
        setattr(model, name, _on_onednn(getattr(model, name)))  # the instance attribute shadows the method
    return mkldnn.to_mkldnn(model, torch.bfloat16)


def _on_onednn(method):
    """``method`` called on a bf16 oneDNN copy of its input, its output back as a plain tensor."""
    import torch

    def run(x):
        return method(x.to_mkldnn(torch.bfloat16)).to_dense()

    return run


def fast_model(model, device: str, precision: str, onednn_stages: tuple[str, ...] = ()):
    """``(model, context)``: the model prepared for ``device`` and ``precision`` and a factory of the context
    to call it in. bf16 on a CPU with oneDNN bf16 and declared ``onednn_stages``: prepacked weights
    (:func:`prepack_bf16`), no autocast; otherwise channels_last under :func:`autocast`."""
    model = prepare(model, device)
    if precision == "bf16" and not device.startswith("cuda") and onednn_stages and onednn_bf16_available():
        return prepack_bf16(model, onednn_stages), contextlib.nullcontext
    return model, functools.partial(autocast, device, precision)


def keep_fp32(model, predicate) -> int:
    """Run every submodule for which ``predicate(module)`` holds in fp32 even under autocast (its input is
    cast up, autocast is off inside it); returns how many. For layers whose low-precision outputs cost more
    accuracy than their flops are worth (EfficientNet's depthwise convolutions: with them in bf16 the pooled
    features of real photos fell to cosine 0.9978 of fp32; in fp32, >= 0.9996)."""
    import torch

    def wrap(forward):
        def fp32_forward(x, *args, **kwargs):
            with torch.autocast(device_type=x.device.type, enabled=False):
                return forward(x.float(), *args, **kwargs)

        return fp32_forward

    count = 0
    for module in model.modules():
        if predicate(module):
            module.forward = wrap(module.forward)
            count += 1
    return count


def is_depthwise(module) -> bool:
    """A grouped convolution (depthwise separable networks): few flops per byte, little to gain from bf16."""
    import torch

    return isinstance(module, torch.nn.Conv2d) and module.groups > 1


def to_device(x: np.ndarray, device: str):
    """A uint8 numpy batch as a torch tensor on ``device``: on CUDA through pinned memory with a non-blocking
    copy (the copy overlaps the previous batch's kernels); on the CPU without a copy."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    if not device.startswith("cuda"):
        return t
    return t.pin_memory().to(device, non_blocking=True)


def choose_batch_size(
    free_bytes: int,
    per_image_bytes: int,
    fixed_bytes: int = 0,
    fraction: float = GPU_MEMORY_FRACTION,
    cap: int = GPU_MAX_BATCH,
) -> int:
    """Images per GPU batch that fit ``fraction`` of the free memory: ``(fraction * free - fixed) / per_image``,
    rounded down to a multiple of 8 (tensor-core friendly) when at least 8, clipped to 1..cap.

    free_bytes: ``torch.cuda.mem_get_info()[0]``; per_image_bytes: peak activation memory of one image
    (:func:`probe_bytes_per_image`); fixed_bytes: what a batch needs regardless of its size.
    """
    if per_image_bytes <= 0:
        return cap
    n = int((fraction * free_bytes - fixed_bytes) // per_image_bytes)
    if n >= 8:
        n -= n % 8
    return max(1, min(cap, n))


def probe_bytes_per_image(forward, example, device: str) -> tuple[int, int]:
    """(per-image, fixed) peak CUDA memory of ``forward`` from runs on 1 and 2 copies of ``example``
    ((1, ...) tensor on ``device``): the difference of the two peaks is one image's activations."""
    import torch

    peaks = []
    for b in (1, 2):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        forward(example.expand(b, *example.shape[1:]).contiguous())
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    per_image = max(1, peaks[1] - peaks[0])
    return per_image, max(0, peaks[0] - per_image)


def gpu_batch_size(forward, example, device: str, requested: int | None) -> int:
    """``requested`` when given, else the batch size :func:`choose_batch_size` gives for ``forward`` on the
    free memory of ``device``."""
    import torch

    if requested:
        return int(requested)
    per_image, fixed = probe_bytes_per_image(forward, example, device)
    return choose_batch_size(torch.cuda.mem_get_info(device)[0], per_image, fixed)
