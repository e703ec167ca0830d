"""The CrossModalModel protocol and the safetensors + JSON format every fitted model is saved in."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from cca_bench.errors import UserError


class CrossModalModel(Protocol):
    """What the benchmark runner needs of a method.

    ``fit_features(train, val=None)`` fits on a :class:`cca_bench.features.store.FeatureSet` and returns
    self; ``embed_images(features)`` -> (n_img, k); ``embed_texts(features)`` -> (n_txt, k);
    ``save(path)`` writes ``path.safetensors`` + ``path.json``; ``load(path)`` (classmethod) reads them.
    """

    def fit_features(self, train, val=None): ...

    def embed_images(self, features) -> np.ndarray: ...

    def embed_texts(self, features) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...


def model_files(path: Path) -> tuple[Path, Path]:
    """``path.safetensors`` and ``path.json``, appended to the name (a model name may hold dots)."""
    path = Path(path)
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def save_arrays(path: Path, tensors: dict[str, np.ndarray], config: dict) -> None:
    """Write ``path.safetensors`` (arrays) and ``path.json`` (config), each via a temporary name."""
    from safetensors.numpy import save

    from cca_bench.fsio import write_atomic

    st, js = model_files(path)
    blob = save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
    write_atomic(st, lambda f: f.write(blob))
    write_atomic(js, lambda f: f.write(json.dumps(config, indent=2, sort_keys=True).encode()))


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read what :func:`save_arrays` wrote; a missing or damaged file is a UserError naming it."""
    from safetensors.numpy import load_file

    st, js = model_files(path)
    for f in (st, js):
        if not f.is_file():
            raise UserError(f"no fitted model at {f}: run `generate` first")
    try:
        return load_file(str(st)), json.loads(js.read_text())
    except Exception as e:  # safetensors and json raise several types for damaged files
        raise UserError(f"cannot read the fitted model {st} / {js}: {e}") from None


class Params:
    """scikit-learn's parameter protocol (``get_params``/``set_params``, so ``sklearn.base.clone`` works)
    without importing scikit-learn, which would cost the CLI a second and a half at start-up."""

    @classmethod
    def _param_names(cls) -> list[str]:
        import inspect

        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"invalid parameter {k!r} for {type(self).__name__} (valid: {', '.join(valid)})")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        import inspect

        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(changed)})"


def load_saved(cls, path: Path, method: str):
    """(unfitted model built from the saved params, arrays, config) of a model saved by ``method``."""
    arrays, config = load_arrays(path)
    if config.get("method") != method:
        raise UserError(f"{path}.json holds a {config.get('method')!r} model, not {method}")
    return cls(**config["params"]), arrays, config
