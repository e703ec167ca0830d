"""Cross-modal methods: regularized and kernel CCA, the neural VSE ranker and the aligners of frozen encoders."""

from __future__ import annotations

import importlib

_MODULES = ("cca", "kcca", "vse", "ridge", "procrustes", "pls", "asif", "dcca")


def load_all() -> None:
    """Import every method module so its registrations run."""
    for m in _MODULES:
        importlib.import_module(f"cca_bench.methods.{m}")
