"""Glue from names to results: encode splits (cached), fit and save a model, evaluate it into a run record."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cca_bench.config import FeatureSpec, torch_device
from cca_bench.errors import UserError
from cca_bench.features.store import FeatureSet, load_or_compute
from cca_bench.registry import IMAGE_ENCODERS, METHODS, TEXT_ENCODERS

PROTOCOLS = {"full": None, "1k": 1000, "5k": 5000}


@dataclass
class Options:
    """Everything besides the names that decides what gets computed (all of it is part of the cache keys)."""

    data_root: Path = Path("data")
    results_root: Path = Path("results")
    dataset_options: dict = field(default_factory=dict)
    text_path: str | None = None
    idf: bool = False
    stopwords: bool = False
    batch_size: int = 64
    device: str = "auto"
    cache: bool = True
    progress: bool = True
    log: Callable[[str], None] = lambda msg: None

    def text_options(self) -> dict:
        return {"idf": self.idf, "stopwords": self.stopwords, "text_path": self.text_path}


def dataset_tag(name: str, options: dict) -> str:
    """``shapes`` or ``shapes[n_train=200,n_test=50]``: a dataset with its builder options."""
    return name + (f"[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]" if options else "")


def features_tag(spec: FeatureSpec, opts: Options) -> str:
    """``glove50_efficientnet_lite0`` plus ``+idf`` / ``+stop`` when those text options are on."""
    return spec.name + ("+idf" if opts.idf else "") + ("+stop" if opts.stopwords else "")


def load_dataset(name: str, opts: Options):
    from cca_bench.datasets import get_dataset

    return get_dataset(name, opts.data_root, **opts.dataset_options)


def _timed(timings: dict, key: str, fn):
    t0 = time.perf_counter()
    out = fn()
    timings[key] = round(time.perf_counter() - t0, 3)
    return out


def encode_images(dataset, split, spec: FeatureSpec, opts: Options, timings: dict) -> np.ndarray:
    encoder = IMAGE_ENCODERS.get(spec.image)
    key = {"kind": "image", "dataset": dataset.name, "split": split.name, "fingerprint": split.fingerprint(),
           "encoder": spec.image, "dataset_options": opts.dataset_options}
    cache = opts.data_root / "cache" if opts.cache else None
    compute = lambda: encoder(split, dataset, batch_size=opts.batch_size, device=opts.device,  # noqa: E731
                              progress=opts.progress)
    images, hit = _timed(timings, f"image_features_{split.name}", lambda: load_or_compute(cache, key, compute))
    opts.log(f"{'loaded cached' if hit else 'computed'} {spec.image} features for {dataset.name}/{split.name}: "
             f"{images.shape[0]} x {images.shape[1]}")
    if len(images) != split.n_images:
        raise UserError(f"{spec.image} gave {len(images)} feature rows for {split.n_images} images of "
                        f"{dataset.name}/{split.name}")
    return images


def text_encoder(dataset, spec: FeatureSpec, opts: Options):
    """The mean-word-vector encoder for ``spec.text``, with IDF fitted on the train split when asked."""
    from cca_bench.features.text import MeanVectorEncoder

    vectors = TEXT_ENCODERS.get(spec.text)(opts.data_root, path=opts.text_path)
    encoder = MeanVectorEncoder(vectors, idf=opts.idf, stopwords=opts.stopwords)
    return encoder.fit(dataset.split("train").tokens if opts.idf else [])


def encode_texts(dataset, split, spec: FeatureSpec, opts: Options, timings: dict, encoder=None):
    key = {"kind": "text", "dataset": dataset.name, "split": split.name, "fingerprint": split.fingerprint(),
           "encoder": spec.text, "dataset_options": opts.dataset_options, **opts.text_options(),
           "idf_fitted_on": dataset.split("train").fingerprint() if opts.idf else None}
    cache = opts.data_root / "cache" if opts.cache else None
    state = {}

    def compute():
        enc = encoder or text_encoder(dataset, spec, opts)
        out = enc.transform(split.tokens)
        state["n_empty"] = int(enc.n_empty_)
        return out

    texts, hit = _timed(timings, f"text_features_{split.name}", lambda: load_or_compute(cache, key, compute))
    if state.get("n_empty"):
        opts.log(f"warning: {state['n_empty']} of {split.n_captions} captions of {dataset.name}/{split.name} had "
                 f"no known {spec.text} word and were encoded as zero vectors")
    return texts, hit


def build_features(dataset, split_name: str, spec: FeatureSpec, opts: Options, timings: dict) -> FeatureSet:
    """Encode one split with the text and image encoders of ``spec`` (cached)."""
    split = dataset.split(split_name)
    if split.n_captions == 0:
        raise UserError(f"{dataset.name}/{split_name} has no captions")
    images = encode_images(dataset, split, spec, opts, timings)
    texts, _ = encode_texts(dataset, split, spec, opts, timings)
    meta = {"dataset": dataset.name, "split": split_name, "features": spec.name,
            "fingerprint": split.fingerprint(), "text_options": opts.text_options(),
            "data_root": str(opts.data_root)}
    vectors = lambda: TEXT_ENCODERS.get(spec.text)(opts.data_root, path=opts.text_path)  # noqa: E731
    return FeatureSet(images=images, texts=texts, image_index=split.image_index, tokens=split.tokens, meta=meta,
                      word_vectors=vectors)


def model_path(method: str, dataset: str, spec: FeatureSpec, opts: Options) -> Path:
    name = "__".join([method, dataset_tag(dataset, opts.dataset_options), features_tag(spec, opts)])
    return opts.results_root / "models" / name


def generate(method: str, dataset_name: str, features: str, params: dict, opts: Options) -> dict:
    """Encode the train split (restval included), fit ``method`` with ``params``, save it; returns a summary."""
    cls = METHODS.get(method)
    spec = FeatureSpec.parse(features)
    dataset = load_dataset(dataset_name, opts)
    timings: dict = {}
    train = build_features(dataset, "train", spec, opts, timings)
    val = None
    if getattr(cls, "uses_val", False) and "val" in dataset.splits:
        val = build_features(dataset, "val", spec, opts, timings)
    model = cls(**params)
    opts.log(f"fitting {method} on {len(train.texts)} captions of {train.images.shape[0]} images")
    _timed(timings, "fit", lambda: model.fit_features(train, val))
    path = model_path(method, dataset_name, spec, opts)
    extra = {"dataset": dataset_name, "dataset_options": opts.dataset_options, "features": spec.name,
             "feature_options": opts.text_options(), "timings": timings, "train_fingerprint": train.meta["fingerprint"]}
    model.save(path, extra=extra)
    return {"model": model, "path": path, "timings": timings, "n_images": len(train.images),
            "n_captions": len(train.texts)}


def protocol_folds(protocol: str, n_images: int, where: str) -> int:
    """Number of image folds for a protocol: full = 1; 1k = n/1000 folds of 1,000; 5k = all of 5,000."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")
    size = PROTOCOLS[protocol]
    if size is None:
        return 1
    if n_images % size:
        raise UserError(f"protocol {protocol} needs a multiple of {size} images but {where} has {n_images}")
    return n_images // size


def run_benchmark(method: str, dataset_name: str, split_name: str, features: str, opts: Options,
                  distance: str = "cosine", protocol: str = "full") -> dict:
    """Load the model ``generate`` saved, encode the split, evaluate; returns the run record (not yet saved)."""
    from cca_bench.metrics import evaluate_retrieval
    from cca_bench.results import now, versions

    cls = METHODS.get(method)
    spec = FeatureSpec.parse(features)
    dataset = load_dataset(dataset_name, opts)
    split = dataset.split(split_name)
    folds = protocol_folds(protocol, split.n_images, f"{dataset_name}/{split_name}")
    path = model_path(method, dataset_name, spec, opts)
    model = cls.load(path)
    timings: dict = {}
    fs = build_features(dataset, split_name, spec, opts, timings)
    emb_i = _timed(timings, "embed_images", lambda: model.embed_images(fs))
    emb_t = _timed(timings, "embed_texts", lambda: model.embed_texts(fs))
    gemm_device = None if torch_device(opts.device) == "cpu" else torch_device(opts.device)
    metrics = _timed(timings, "evaluate", lambda: evaluate_retrieval(emb_i, emb_t, fs.image_index, distance, folds,
                                                                      device=gemm_device))
    params = model.get_params() if hasattr(model, "get_params") else getattr(model, "config_", {}).get("params", {})
    return {
        "method": method, "dataset": dataset_tag(dataset_name, opts.dataset_options), "split": split_name,
        "features": features_tag(spec, opts), "distance": distance, "protocol": protocol,
        "params": params, "params_label": params_label(method, model), "metrics": metrics,
        "n_images": split.n_images, "n_captions": split.n_captions, "folds": folds, "timings": timings,
        "model": path.name, "model_config": getattr(model, "config_", {}), "split_fingerprint": fs.meta["fingerprint"],
        "versions": versions(), "created": now(),
    }


def params_label(method: str, model) -> str:
    """A short label of the hyper-parameters that matter, for tables (e.g. ``k=50 reg=0.001 p=1``)."""
    label = getattr(model, "params_label", None)
    return label() if callable(label) else ""
