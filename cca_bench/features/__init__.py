"""Feature pipelines: text encoders (mean word vectors) and image encoders (CNN features, precomputed files)."""
from __future__ import annotations

import importlib

_MODULES = ("text", "fisher", "image", "imagenet")


def load_all() -> None:
    """Import every encoder module so its registrations run."""
    for m in _MODULES:
        importlib.import_module(f"cca_bench.features.{m}")
