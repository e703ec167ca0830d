"""Where data and results live, how FEATURES names split into encoders, and which torch device to use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cca_bench.errors import UserError


def data_root(flag: str | os.PathLike | None = None) -> Path:
    """The data folder: the flag, else ``$CCA_BENCH_DATA``, else ``./data`` (a file there is a UserError)."""
    return _folder(flag, "CCA_BENCH_DATA", "data", "--data-root")


def results_root(flag: str | os.PathLike | None = None) -> Path:
    """The results folder: the flag, else ``$CCA_BENCH_RESULTS``, else ``./results`` (a file: UserError)."""
    return _folder(flag, "CCA_BENCH_RESULTS", "results", "--results-root")


def _folder(flag, env: str, default: str, option: str) -> Path:
    path = Path(flag or os.environ.get(env) or default)
    if path.exists() and not path.is_dir():
        source = option if flag else (f"${env}" if os.environ.get(env) else "the default")
        raise UserError(f"{source} {str(path)!r} is a file, not a folder")
    return path


@dataclass(frozen=True)
class Locations:
    """Where a command reads and writes: the data and results roots, and whether the caches under DATA/cache
    (feature arrays, parsed datasets, resample counts) are used (``--no-cache``: neither read nor written). Built from
    ``--data-root`` / ``--results-root`` / ``--no-cache`` (or API arguments) by the orchestrator's callers."""

    data_root: Path = Path("data")
    results_root: Path = Path("results")
    cache: bool = True

    def __post_init__(self):
        object.__setattr__(self, "data_root", Path(self.data_root))
        object.__setattr__(self, "results_root", Path(self.results_root))

    @property
    def cache_dir(self) -> Path | None:
        """DATA/cache, or None under ``--no-cache`` (the feature pipelines' and the resample cache's
        ``cache_dir``)."""
        return self.data_root / "cache" if self.cache else None


@dataclass(frozen=True)
class FeatureSpec:
    """A FEATURES argument such as ``glove50_efficientnet``: text encoder, then image encoder.

    The split happens at the first underscore whose left part is a known text encoder, so image
    encoder names may contain underscores (``glove50_efficientnet_lite0``, ``word2vec_vgg_karpathy``).
    Short image aliases (``efficientnet`` -> ``efficientnet_lite0``) are resolved by the image registry.
    """

    text: str
    image: str

    @property
    def name(self) -> str:
        return f"{self.text}_{self.image}"

    @classmethod
    def parse(cls, spec: str) -> FeatureSpec:
        from cca_bench.registry import TEXT_ENCODERS  # fills itself from cca_bench.features

        parts = spec.split("_")
        for i in range(1, len(parts)):
            text, image = "_".join(parts[:i]), "_".join(parts[i:])
            if text in TEXT_ENCODERS and image:
                return cls(text, resolve_image_encoder(image))
        text = spec.rstrip("_")
        if text in TEXT_ENCODERS:  # "glove50" or "glove50_": not a typo of itself
            from cca_bench.registry import IMAGE_ENCODERS

            raise UserError(
                f"FEATURES {spec!r} names no image encoder: write TEXT_IMAGE, e.g. {text}_efficientnet "
                f"(image encoders: {', '.join(IMAGE_ENCODERS.names())})"
            )
        close = closest_spec(spec)
        raise UserError(
            f"cannot read FEATURES {spec!r}: "
            + (f"did you mean {close!r}? " if close else "")
            + "expected TEXT_IMAGE such as glove50_efficientnet; "
            + TEXT_ENCODERS.suggest(text)
        )


def closest_spec(spec: str) -> str | None:
    """The TEXT_IMAGE name (image aliases included) closest to a misspelled FEATURES, or None."""
    import difflib

    from cca_bench.registry import IMAGE_ENCODERS, TEXT_ENCODERS

    images = [a for name in IMAGE_ENCODERS.names() for a in (name, *IMAGE_ENCODERS.meta(name).get("aliases", ()))]
    names = [f"{text}_{image}" for text in TEXT_ENCODERS.names() for image in images]
    close = difflib.get_close_matches(spec, names, n=1, cutoff=0.8)
    return close[0] if close else None


def resolve_image_encoder(name: str) -> str:
    """Map an alias (registered with ``aliases=[...]``) to its image encoder name."""
    from cca_bench.registry import IMAGE_ENCODERS

    if name in IMAGE_ENCODERS:
        return name
    for real in IMAGE_ENCODERS.names():
        if name in IMAGE_ENCODERS.meta(real).get("aliases", ()):
            return real
    raise UserError(IMAGE_ENCODERS.suggest(name))


def torch_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` are
    checked against what this machine has, so a missing GPU is a UserError before any work starts (also
    when every feature is cached); any other name is a UserError."""
    import re

    if device == "cpu":
        return device
    if device != "auto" and not re.fullmatch(r"cuda(:\d+)?|mps", device):
        raise UserError(
            f"--device {device!r} is not a device this suite can use (choose auto, cpu, cuda, cuda:N or mps)"
        )
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError("--device mps: this machine's torch has no MPS (Apple GPU) device; use --device cpu")
        return device
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= n:
        have = f"{n} CUDA device{'s' if n != 1 else ''}" if n else "no CUDA GPU (or a torch built without CUDA)"
        raise UserError(f"--device {device}: this machine has {have}; use --device cpu or auto")
    return device


def timed(timings: dict, key: str, fn):
    """``fn()``, its wall time in seconds (3 decimals) stored as ``timings[key]``."""
    import time

    t0 = time.perf_counter()
    out = fn()
    timings[key] = round(time.perf_counter() - t0, 3)
    return out


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory this process can still allocate without swapping: Linux's ``MemAvailable`` (or the cgroup
    limit minus usage, whichever is smaller); elsewhere the free physical pages. What the range checks of size
    flags compare against before anything is allocated."""
    import os

    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 34
    try:
        from pathlib import Path

        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(avail, 0)
