"""cca_bench: classical (regularized CCA) and neural baselines for image-text retrieval, with honest statistics.

The public API (every name imports its module on first use, so ``import cca_bench`` stays light)::

    from cca_bench import RegularizedCCA, KernelCCA, RidgeMap, Procrustes, PLSSVD, ASIF, DeepCCA
    from cca_bench import evaluate_retrieval, retrieval_ranks, bootstrap_intervals, paired_test

The estimators follow scikit-learn (``fit(X, Y)``, ``transform(X, Y=None)``, ``score``); the functions take
numpy arrays or torch tensors. See docs/api.md.
"""

from __future__ import annotations

import os

# OpenBLAS's worker threads spin for 2^28 cycles (about 0.1 s) after every BLAS call before they sleep, taking
# the cores from the numpy work that follows (the evaluation compares each score block right after its GEMM).
# At 2^20 cycles (about 0.4 ms) the evaluation's ranks and top-10 lists at COCO 5k took 0.84x the time and
# LAPACK's eigh, whose BLAS calls come in short bursts, was unchanged; at 2^16 eigh on 256 x 256 was 12%
# slower (benchmarks/REPORT_blas_spin.md). Read once, when numpy loads OpenBLAS: it applies when cca_bench is
# imported first (the CLI, the web app); a value the user set wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

import importlib  # noqa: E402
from typing import TYPE_CHECKING

from cca_bench._version import __version__
from cca_bench.errors import UserError

_LAZY = {
    "RegularizedCCA": "cca_bench.methods.cca",
    "KernelCCA": "cca_bench.methods.kcca",
    "RidgeMap": "cca_bench.methods.ridge",
    "Procrustes": "cca_bench.methods.procrustes",
    "PLSSVD": "cca_bench.methods.pls",
    "ASIF": "cca_bench.methods.asif",
    "DeepCCA": "cca_bench.methods.dcca",
    "evaluate_retrieval": "cca_bench.api",
    "retrieval_ranks": "cca_bench.api",
    "bootstrap_intervals": "cca_bench.api",
    "paired_test": "cca_bench.api",
    "QueryRanks": "cca_bench.stats",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from cca_bench.api import bootstrap_intervals, evaluate_retrieval, paired_test, retrieval_ranks
    from cca_bench.methods.asif import ASIF
    from cca_bench.methods.cca import RegularizedCCA
    from cca_bench.methods.dcca import DeepCCA
    from cca_bench.methods.kcca import KernelCCA
    from cca_bench.methods.pls import PLSSVD
    from cca_bench.methods.procrustes import Procrustes
    from cca_bench.methods.ridge import RidgeMap
    from cca_bench.stats import QueryRanks


def __getattr__(name: str):
    """PEP 562: import a public name's module when it is first asked for."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cca_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ASIF",
    "PLSSVD",
    "DeepCCA",
    "KernelCCA",
    "Procrustes",
    "QueryRanks",
    "RegularizedCCA",
    "RidgeMap",
    "UserError",
    "__version__",
    "bootstrap_intervals",
    "evaluate_retrieval",
    "paired_test",
    "retrieval_ranks",
]
