"""Fitted text encoders: caption poolings that learn from the train captions (IDF today, Fisher-vector mixtures).

One protocol for all of them (registered by name in :data:`POOLINGS`):

- ``cls(vectors, **options).fit(train_token_lists)`` learns from train only, returns self;
- ``transform(token_lists) -> (n, n_features_) float32``; ``transform_blocks(token_lists)`` yields the same
  rows as consecutive float32 blocks (the feature cache streams them into its file, so 18,000-d caption
  features never sit in memory whole);
- ``state() -> (arrays, config)``: numpy arrays and a JSON-able dict (``config["pooling"]`` names the class);
  ``cls.from_state(vectors, arrays, config)`` rebuilds the fitted encoder bit for bit;
- ``fingerprint()``: a hash of that state, part of every feature cache key.

The fitted state is saved inside the model it was fitted with: arrays under ``text_encoder.<name>`` in the
model's safetensors, the config under ``config["text_encoder"]`` (:func:`encoder_state` at save time,
:func:`from_saved` when the model is reopened, both through
:class:`cca_bench.features.text_pipeline.WordVectorPipeline`), so val, test and search reuse the train fit and
never refit on test. Reading and writing the model file is the caller's business (this module sits below the
methods).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from cca_bench.errors import UserError
from cca_bench.registry import Registry

POOLINGS = Registry("pooling")
PREFIX = "text_encoder."


class FittedTextEncoder:
    """Shared behaviour of the poolings; subclasses set ``n_features_`` in ``fit``/``from_state`` and implement
    ``fit``, ``transform_blocks``, ``state`` and ``from_state``."""

    def transform(self, token_lists) -> np.ndarray:
        """(n, n_features_) float32 caption features."""
        self._check_fitted()
        out = np.empty((len(token_lists), self.n_features_), np.float32)
        start = 0
        for block in self.transform_blocks(token_lists):
            out[start : start + len(block)] = block
            start += len(block)
        return out

    def fingerprint(self) -> str:
        """sha1 (16 hex) of the fitted state: arrays (names, dtypes, shapes, bytes) and config."""
        arrays, config = self.state()
        h = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode())
        for name in sorted(arrays):
            a = np.ascontiguousarray(arrays[name])
            h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train_tokens) first")


def vectors_config(vectors) -> dict:
    """What a fitted state needs to know of its word-vector table (checked when the state is rebuilt)."""
    return {"vectors": vectors.name, "source": Path(vectors.source).name, "dim": vectors.dim}


def check_vectors(vectors, config: dict) -> None:
    """UserError when ``vectors`` is not the table the saved encoder was fitted with."""
    if config.get("vectors") != vectors.name or config.get("dim") != vectors.dim:
        raise UserError(
            f"the model's text features were fitted on {config.get('vectors')} vectors "
            f"({config.get('source')}, {config.get('dim')}-d), not {vectors.name} ({vectors.source}, "
            f"{vectors.dim}-d): run generate again with these features"
        )


def encoder_state(encoder) -> tuple[dict, dict]:
    """(arrays with the model-file prefix, config) of a fitted encoder."""
    arrays, config = encoder.state()
    return {PREFIX + k: v for k, v in arrays.items()}, config


def from_saved(arrays: dict, config: dict | None, vectors):
    """The fitted encoder a model file holds: ``arrays`` = the model's arrays (those under :data:`PREFIX` are
    the encoder's), ``config`` = its ``text_encoder`` config; None when the model holds none (saved before
    encoders were stored)."""
    if config is None:
        return None
    own = {k[len(PREFIX) :]: v for k, v in arrays.items() if k.startswith(PREFIX)}
    return POOLINGS.get(config["pooling"]).from_state(vectors, own, config)


def words_to_array(words: list[str]) -> np.ndarray:
    """Words as one uint8 array (UTF-8, newline-separated): safetensors holds numbers only."""
    return np.frombuffer("\n".join(words).encode(), dtype=np.uint8).copy()


def array_to_words(a: np.ndarray) -> list[str]:
    text = bytes(np.asarray(a, np.uint8)).decode()
    return text.split("\n") if text else []
