"""Where data and results live, how FEATURES names split into encoders, and which torch device to use."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cca_bench.errors import UserError


def data_root(flag: str | os.PathLike | None = None) -> Path:
    """The data folder: the flag, else ``$CCA_BENCH_DATA``, else ``./data``."""
    return Path(flag or os.environ.get("CCA_BENCH_DATA") or "data")


def results_root(flag: str | os.PathLike | None = None) -> Path:
    """The results folder: the flag, else ``$CCA_BENCH_RESULTS``, else ``./results``."""
    return Path(flag or os.environ.get("CCA_BENCH_RESULTS") or "results")


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
    def parse(cls, spec: str) -> "FeatureSpec":
        from cca_bench.features import load_all
        from cca_bench.registry import TEXT_ENCODERS

        load_all()
        parts = spec.split("_")
        for i in range(1, len(parts)):
            text, image = "_".join(parts[:i]), "_".join(parts[i:])
            if text in TEXT_ENCODERS:
                return cls(text, resolve_image_encoder(image))
        text = parts[0]
        raise UserError(
            f"cannot read FEATURES {spec!r}: expected TEXT_IMAGE such as glove50_efficientnet; "
            + TEXT_ENCODERS.suggest(text)
        )


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
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else is passed through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
