"""Feature pipelines: text encoders (mean word vectors, sentence encoders) and image encoders (CNN features,
precomputed files, ONNX models)."""

from __future__ import annotations

import importlib

_MODULES = ("text", "fisher", "image", "imagenet", "sentence", "onnx_encoder")


def load_all() -> None:
    """Import every encoder module so its registrations run."""
    for m in _MODULES:
        importlib.import_module(f"cca_bench.features.{m}")
