"""Cross-modal methods: regularized CCA, kernel CCA and the neural VSE ranker."""
from __future__ import annotations

import importlib

_MODULES = ("cca", "kcca", "vse")


def load_all() -> None:
    """Import every method module so its registrations run."""
    for m in _MODULES:
        importlib.import_module(f"cca_bench.methods.{m}")
