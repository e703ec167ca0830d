"""FeatureSet and the feature cache: arrays keyed by their full configuration, written atomically."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cca_bench.errors import UserError


@dataclass
class FeatureSet:
    """Encoded features of one split.

    images: (n_img, d_i) float32; texts: (n_txt, d_t) float32; image_index: (n_txt,) image of each caption;
    tokens: (n_txt,) token lists (for methods that read words, such as the VSE ranker);
    meta: dataset, split, encoders, cache keys and counts (e.g. ``n_empty_captions``);
    word_vectors: ``word_vectors()`` loads the text encoder's :class:`~cca_bench.features.text.WordVectors`
    (for methods that embed words themselves; loaded only when called).
    """

    images: np.ndarray
    texts: np.ndarray
    image_index: np.ndarray
    tokens: list[list[str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    word_vectors: Callable[[], object] | None = None

    def __post_init__(self):
        if len(self.texts) != len(self.image_index):
            raise UserError(
                f"{self.meta.get('dataset', '?')}/{self.meta.get('split', '?')}: {len(self.texts)} caption "
                f"features but {len(self.image_index)} captions"
            )


def cache_key(key: dict) -> str:
    """A file stem naming the cached array: readable parts plus a hash of the whole key."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    parts = [str(key.get(k)) for k in ("dataset", "split", "encoder") if key.get(k) is not None]
    readable = re.sub(r"[^A-Za-z0-9_.=-]+", "-", "_".join(parts))
    return f"{readable}-{digest}"


def load_or_compute(cache_dir: Path | None, key: dict, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """Load the array cached under ``key`` or compute and cache it; returns (array, was_cached).

    The array goes to ``<stem>.npy`` with its key in ``<stem>.json``; both are written under a temporary
    name and renamed, so an interrupted run leaves no half-written cache entry. ``cache_dir=None`` disables
    caching. A cached array comes back memory-mapped read-only, so features larger than RAM stream from disk
    (the covariance pass reads them chunk by chunk) instead of being read whole.
    """
    if cache_dir is None:
        return compute(), False
    stem = Path(cache_dir) / cache_key(key)
    npy, meta = stem.with_suffix(".npy"), stem.with_suffix(".json")
    if npy.is_file() and meta.is_file():
        try:
            return np.load(npy, mmap_mode="r", allow_pickle=False), True
        except (ValueError, OSError):
            pass  # a damaged entry is recomputed below
    arr = np.ascontiguousarray(compute(), dtype=np.float32)
    if not np.isfinite(arr).all():
        raise UserError(f"{key.get('encoder')} produced NaN or infinite features for {key.get('dataset')}/{key.get('split')}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    for final, write in ((npy, lambda f: np.save(f, arr)), (meta, lambda f: f.write(json.dumps(key, indent=2, default=str).encode()))):
        tmp = final.with_name(final.name + f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, final)
    return arr, False
