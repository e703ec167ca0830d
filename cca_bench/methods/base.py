"""The CrossModalModel protocol and the safetensors + JSON format every fitted model is saved in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from cca_bench.checks import COUNT
from cca_bench.errors import UserError
from cca_bench.fsio import read_json_object
from cca_bench.linalg import CHUNK_ROWS


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


CONFIG_KEY, ID_KEY = "cca_bench_config", "model_id"  # the safetensors metadata entries save_arrays writes


def model_id(tensors: dict[str, np.ndarray], config_json: str) -> str:
    """SHA-256 (first 16 hex digits) of the config JSON and every array (name, dtype, shape, bytes): names
    one fitted model; written into both files so that a .json can be matched with its .safetensors."""
    import hashlib

    h = hashlib.sha256(config_json.encode())
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.reshape(-1).view(np.uint8).data)  # the same bytes as a.tobytes(), without the copy
    return h.hexdigest()[:16]


EXTRA_ARRAYS = "_extra_arrays"  # key of a save ``extra`` dict whose arrays join the model's own (same file)


def save_arrays(path: Path, tensors: dict[str, np.ndarray], config: dict) -> None:
    """Write the fitted model as ``path.safetensors``, self-describing, and ``path.json``, a readable copy.

    ``config[EXTRA_ARRAYS]`` (optional, from a method's ``save(path, extra)``) holds more arrays (with their own
    key prefix) that are saved in the same file, so a model and what was fitted with it land in one rename.

    The safetensors file holds the arrays, the config (JSON in its metadata) and their :func:`model_id`, so
    one rename makes a model whole: a kill before the ``.json`` rename leaves new weights beside an old
    ``.json``, which :func:`load_arrays` detects by the id and ignores. Both go through the atomic writer.
    """
    from safetensors.numpy import save

    from cca_bench.fsio import write_atomic

    st, js = model_files(path)
    config = dict(config)
    more = config.pop(EXTRA_ARRAYS, None) or {}  # arrays a caller adds through ``extra`` (a fitted text encoder)
    tensors = {k: np.ascontiguousarray(v) for k, v in {**tensors, **more}.items()}
    text = json.dumps(config, indent=2, sort_keys=True)
    mid = model_id(tensors, text)
    blob = save(tensors, metadata={CONFIG_KEY: text, ID_KEY: mid})
    write_atomic(st, lambda f: f.write(blob))
    copy = json.dumps({**config, ID_KEY: mid}, indent=2, sort_keys=True)
    write_atomic(js, lambda f: f.write(copy.encode()))


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, config) of a model :func:`save_arrays` wrote; the config comes from the safetensors file.

    The config returned holds ``model_id``. A missing, damaged or altered ``.safetensors`` (its id does not
    match its content) is a UserError naming it. A ``.json`` copy that does not match (another id, or none:
    a ``generate`` killed between the two renames, or an edited copy) only warns, because nothing is read from
    it: the weights and their config travel together. Models saved before the config moved into the
    safetensors metadata are read from the ``.json`` as before.
    """
    import warnings

    st, js = model_files(path)
    if not st.is_file():
        raise UserError(f"no fitted model at {st}: run `generate` first")
    arrays, meta = _read_safetensors(st)
    if CONFIG_KEY not in meta:  # saved by an older version: the .json is the only config
        return arrays, _read_json(js)
    try:
        config = json.loads(meta[CONFIG_KEY])
    except json.JSONDecodeError as e:
        raise UserError(f"the fitted model {st} is damaged: its config is not JSON ({e.msg})") from None
    if not isinstance(config, dict) or model_id(arrays, meta[CONFIG_KEY]) != meta.get(ID_KEY):
        raise UserError(
            f"the fitted model {st} is damaged or was altered (its content does not match its "
            f"model_id {meta.get(ID_KEY)}): run `generate` again"
        )
    copy = _json_copy(js)
    if copy != {**config, ID_KEY: meta[ID_KEY]}:
        why = (
            f"model_id {copy.get(ID_KEY)} vs {meta[ID_KEY]}: a `generate` stopped between writing the two?"
            if copy.get(ID_KEY) != meta[ID_KEY]
            else "the copy was edited"
        )
        warnings.warn(f"{js} does not describe {st.name} ({why}); using the config stored in {st.name}", stacklevel=2)
    return arrays, {**config, ID_KEY: meta[ID_KEY]}


def read_config(path: Path) -> dict:
    """The config of the model at ``path`` as its ``.safetensors`` file records it (in its header's metadata,
    with ``model_id``; the arrays are not read), never the ``.json`` copy beside it, which a ``generate`` killed
    between its two renames leaves stale. Models saved before the config moved into the metadata: the ``.json``.
    A missing or damaged weights file is a UserError naming it."""
    from cca_bench.fsio import safetensors_header

    st, js = model_files(path)
    if not st.is_file():
        raise UserError(f"no fitted model at {st}: run `generate` first")
    meta = safetensors_header(st).get("__metadata__") or {}
    if CONFIG_KEY not in meta:
        return _read_json(js)
    try:
        config = json.loads(meta[CONFIG_KEY])
    except (TypeError, json.JSONDecodeError) as e:
        raise UserError(f"the fitted model {st} is damaged: its config is not JSON ({e})") from None
    if not isinstance(config, dict):
        raise UserError(f"the fitted model {st} is damaged: its config is not a JSON object")
    return {**config, ID_KEY: meta.get(ID_KEY)}


def _read_safetensors(st: Path) -> tuple[dict[str, np.ndarray], dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(st), framework="np") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:  # safetensors raises several types for damaged files
        raise UserError(
            f"cannot read the fitted model {st}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None


def _read_json(js: Path) -> dict:
    if not js.is_file():
        raise UserError(f"no fitted model at {js}: run `generate` first")
    return read_json_object(js, "a fitted model's config")


def _json_copy(js: Path) -> dict:
    """The readable copy as a dict ({} when missing or unreadable)."""
    try:
        copy = json.loads(js.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return {}
    return copy if isinstance(copy, dict) else {}


def check_arrays(path: Path, arrays: dict[str, np.ndarray], expected: dict[str, tuple]) -> dict[str, int]:
    """Check a loaded model's arrays: each name in ``expected`` present, floating point, of the expected
    rank, and its dimensions consistent: ``expected = {"x_weights_": ("dx", "k"), "mean_x_": ("dx",)}``
    (a str names a size shared between arrays, an int is fixed). Extra arrays are allowed (other parts of a
    model store theirs under their own prefixes). Returns the sizes found; a mismatch is a UserError naming
    the file, the array and the shapes."""
    sizes: dict[str, int] = {}
    where = f"{Path(path).name}.safetensors"
    for name, dims in expected.items():
        if name not in arrays:
            raise UserError(
                f"the fitted model {where} has no array {name!r} (it has: {', '.join(sorted(arrays))}); "
                "it was not written by this method: run `generate` again"
            )
        a = arrays[name]
        if not np.issubdtype(a.dtype, np.floating):
            raise UserError(f"the fitted model {where}: array {name!r} is {a.dtype}, expected floating point")
        if a.ndim != len(dims):
            raise UserError(
                f"the fitted model {where}: array {name!r} has shape {a.shape}, expected {len(dims)} "
                f"dimensions ({', '.join(map(str, dims))})"
            )
        for dim, n in zip(dims, a.shape):
            want = sizes.setdefault(dim, n) if isinstance(dim, str) else dim
            if n != want:
                raise UserError(
                    f"the fitted model {where}: array {name!r} has shape {a.shape}, but {dim} = {want} "
                    "from the other arrays or the config"
                )
    return sizes


BACKEND_CLI = {  # the --backend contract of every method whose fit is a sum (docs/cluster.md); dcca trains here
    "backend": (
        str,
        "numpy (default: on this machine; torch products on a GPU --device) or dask: the fit's sums "
        "(covariance moments; asif's top-k) run as tasks on a Dask cluster, and missing image feature shards "
        "are extracted there too (docs/cluster.md)",
        ["numpy", "dask"],
    ),
    "dask_scheduler": (
        str,
        "with --backend dask: the scheduler's address, e.g. tcp://10.0.0.5:8786 (default: a "
        "LocalCluster on this machine)",
    ),
}


CHUNK_CLI = {  # the memory knob of a moments pass: docs/cluster.md, section 6 (asif streams no moments)
    "chunk_rows": (
        COUNT.cli(),
        f"rows per chunk of the covariance pass (default {CHUNK_ROWS:,}); with --backend dask one task each, so "
        "a worker holds one chunk and two d x d sums (docs/cluster.md)",
    ),
}


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


def load_saved(cls, path: Path, method: str, required: dict[str, type | tuple] | tuple[str, ...] = ()):
    """(unfitted model built from the saved params, arrays, config) of a model saved by ``method``.

    ``required``: config keys the method's ``load`` reads, with their types (``{"n_components_": int}``) or
    without (a tuple of keys); a missing or mistyped one is a UserError, as are params the class does not
    take."""
    arrays, config = load_arrays(path)
    where = f"{Path(path).name}.safetensors"
    if config.get("method") != method:
        raise UserError(f"{where} holds a {config.get('method')!r} model, not {method}")
    types = {"params": dict, **(required if isinstance(required, dict) else dict.fromkeys(required, object))}
    missing = [k for k in types if k not in config]
    if missing:
        raise UserError(f"the fitted model {where} has no {missing[0]!r} in its config: run `generate` again")
    wrong = [k for k, t in types.items() if not isinstance(config[k], t) or isinstance(config[k], bool) and t is int]
    if wrong:
        raise UserError(
            f"the fitted model {where}: config {wrong[0]!r} is {config[wrong[0]]!r}, not of the "
            "expected type: run `generate` again"
        )
    params = {k: v for k, v in config["params"].items() if k not in getattr(cls, "_RETIRED_PARAMS", ())}
    try:
        return cls(**params), arrays, config
    except TypeError as e:
        raise UserError(
            f"the fitted model {where} has params this {method} does not take ({e}): run `generate` again"
        ) from None
