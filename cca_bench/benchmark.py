"""Glue from names to results: encode splits (cached), fit and save a model, evaluate it into a run record."""
from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cca_bench.config import FeatureSpec, torch_device
from cca_bench.errors import UserError
from cca_bench.features.store import FeatureSet, cache_key, load_or_compute
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
    crops: int = 1
    device: str = "auto"
    cache: bool = True
    progress: bool = True
    tag: str = ""
    log: Callable[[str], None] = lambda msg: None

    def text_options(self) -> dict:
        return {"idf": self.idf, "stopwords": self.stopwords, "text_path": self.text_path}


def dataset_tag(name: str, options: dict) -> str:
    """``shapes`` or ``shapes[n_train=200,n_test=50]``: a dataset with its builder options."""
    return name + (f"[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]" if options else "")


def features_tag(spec: FeatureSpec, opts: Options) -> str:
    """``glove50_efficientnet_lite0`` plus ``+idf`` / ``+stop`` / ``+10crops`` when those options are on."""
    return (spec.name + ("+idf" if opts.idf else "") + ("+stop" if opts.stopwords else "")
            + (f"+{opts.crops}crops" if opts.crops != 1 else ""))


def load_dataset(name: str, opts: Options):
    from cca_bench.datasets import get_dataset

    return get_dataset(name, opts.data_root, **opts.dataset_options)


def _timed(timings: dict, key: str, fn):
    t0 = time.perf_counter()
    out = fn()
    timings[key] = round(time.perf_counter() - t0, 3)
    return out


def image_key(dataset, split, spec: FeatureSpec, opts: Options) -> dict:
    """Everything that decides a split's image features: the feature cache key."""
    key = {"kind": "image", "dataset": dataset.name, "split": split.name, "fingerprint": split.fingerprint(),
           "encoder": spec.image, "dataset_options": opts.dataset_options}
    if opts.crops != 1:
        key["crops"] = opts.crops  # only then: the keys of 1-crop features stay as they were
    return key


def text_key(dataset, split, spec: FeatureSpec, opts: Options) -> dict:
    """Everything that decides a split's caption features (IDF is fitted on train): the feature cache key."""
    return {"kind": "text", "dataset": dataset.name, "split": split.name, "fingerprint": split.fingerprint(),
            "encoder": spec.text, "dataset_options": opts.dataset_options, **opts.text_options(),
            "idf_fitted_on": dataset.split("train").fingerprint() if opts.idf else None}


def image_encoder_kwargs(name: str, opts: Options, shard_dir: Path | None) -> dict:
    """Keyword arguments for image encoder ``name``: the common ones, plus ``crops``, ``data_root`` and
    ``shard_dir`` for encoders whose signature takes them; ``--crops 10`` elsewhere is a UserError."""
    import inspect

    accepted = inspect.signature(IMAGE_ENCODERS.get(name)).parameters
    if opts.crops != 1 and "crops" not in accepted:
        raise UserError(f"image encoder {name!r} has no --crops option (it works on one view of each image)")
    extra = {"crops": opts.crops, "data_root": opts.data_root, "shard_dir": shard_dir}
    return {"batch_size": opts.batch_size, "device": opts.device, "progress": opts.progress,
            **{k: v for k, v in extra.items() if k in accepted}}


def encode_images(dataset, split, spec: FeatureSpec, opts: Options, timings: dict, key: dict) -> np.ndarray:
    """The split's image features from the cache, else computed (in resumable shards when the encoder can)."""
    from cca_bench.features.store import finish_shards, shard_dir

    encoder = IMAGE_ENCODERS.get(spec.image)
    cache = opts.data_root / "cache" if opts.cache else None
    kwargs = image_encoder_kwargs(spec.image, opts, shard_dir(cache, key))
    compute = lambda: encoder(split, dataset, **kwargs)  # noqa: E731
    images, hit = _timed(timings, f"image_features_{split.name}", lambda: load_or_compute(cache, key, compute))
    opts.log(f"{'loaded cached' if hit else 'computed'} {spec.image} features for {dataset.name}/{split.name}: "
             f"{images.shape[0]} x {images.shape[1]}")
    skipped, listing = finish_shards(cache, key)
    if skipped:
        opts.log(f"warning: {len(skipped)} of {split.n_images} images were unreadable and have zero features "
                 f"(listed with reasons in {listing})")
    if len(images) != split.n_images:
        raise UserError(f"{spec.image} gave {len(images)} feature rows for {split.n_images} images of "
                        f"{dataset.name}/{split.name}")
    return images


@functools.lru_cache(maxsize=2)
def word_vectors(text_encoder_name: str, data_root: Path, path: str | None):
    """The word vectors of a text encoder, loaded once per process (user files can be gigabytes, and one
    ``generate`` encodes train and val and may hand the same table to the method)."""
    return TEXT_ENCODERS.get(text_encoder_name)(data_root, path=path)


def text_encoder(dataset, spec: FeatureSpec, opts: Options):
    """The mean-word-vector encoder for ``spec.text``, with IDF fitted on the train split when asked."""
    from cca_bench.features.text import MeanVectorEncoder

    vectors = word_vectors(spec.text, opts.data_root, opts.text_path)
    encoder = MeanVectorEncoder(vectors, idf=opts.idf, stopwords=opts.stopwords)
    return encoder.fit(dataset.split("train").tokens if opts.idf else [])


def encode_texts(dataset, split, spec: FeatureSpec, opts: Options, timings: dict, key: dict) -> np.ndarray:
    """The split's mean-word-vector caption features from the cache, else computed (empty captions counted)."""
    cache = opts.data_root / "cache" if opts.cache else None
    state = {}

    def compute():
        enc = text_encoder(dataset, spec, opts)
        out = enc.transform(split.tokens)
        state["n_empty"] = int(enc.n_empty_)
        return out

    texts, hit = _timed(timings, f"text_features_{split.name}", lambda: load_or_compute(cache, key, compute))
    if state.get("n_empty"):
        opts.log(f"warning: {state['n_empty']} of {split.n_captions} captions of {dataset.name}/{split.name} had "
                 f"no known {spec.text} word and were encoded as zero vectors")
    return texts


def build_features(dataset, split_name: str, spec: FeatureSpec, opts: Options, timings: dict) -> FeatureSet:
    """Encode one split with the text and image encoders of ``spec`` (cached)."""
    split = dataset.split(split_name)
    if split.n_captions == 0:
        raise UserError(f"{dataset.name}/{split_name} has no captions")
    keys = {"image": image_key(dataset, split, spec, opts), "text": text_key(dataset, split, spec, opts)}
    images = encode_images(dataset, split, spec, opts, timings, key=keys["image"])
    texts = encode_texts(dataset, split, spec, opts, timings, key=keys["text"])
    meta = {"dataset": dataset.name, "split": split_name, "features": spec.name,
            "fingerprint": keys["image"]["fingerprint"], "text_options": opts.text_options(),
            "data_root": str(opts.data_root),  # the cache file names (under DATA/cache) of both feature arrays
            "cache_keys": {kind: cache_key(key) + ".npy" for kind, key in keys.items()}}
    vectors = functools.partial(word_vectors, spec.text, opts.data_root, opts.text_path)
    return FeatureSet(images=images, texts=texts, image_index=split.image_index, tokens=split.tokens, meta=meta,
                      word_vectors=vectors)


def model_path(method: str, dataset: str, spec: FeatureSpec, opts: Options) -> Path:
    """``RESULTS/models/METHOD__DATASET__FEATURES[@TAG]``: a ``--tag`` keeps variants of one method apart."""
    name = "__".join([method, dataset_tag(dataset, opts.dataset_options), features_tag(spec, opts)])
    if opts.tag:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", opts.tag):
            raise UserError(f"--tag {opts.tag!r} may hold only letters, digits, '_', '.' and '-'")
        name += f"@{opts.tag}"
    return opts.results_root / "models" / name


def load_model(method: str, dataset_name: str, spec: FeatureSpec, opts: Options):
    """The model ``generate`` saved for (method, dataset with its options, features), via its class's ``load``."""
    from cca_bench.methods import load_all

    load_all()
    return METHODS.get(method).load(model_path(method, dataset_name, spec, opts))


def generate(method: str, dataset_name: str, features: str, params: dict, opts: Options,
             cv: dict | None = None) -> dict:
    """Encode the train split (restval included), fit ``method`` with ``params``, save it; returns a summary.

    ``cv`` = {"grid": {...}, "select": "rsum"|"medr"} asks the method's ``cross_validate`` to choose its
    hyper-parameters on the val split instead; the best model is saved as the normal model, and the grid
    goes to RESULTS/cv/<model name>.json/.md. A model's ``figures()`` are saved as <model name>.<key>.png.
    """
    from cca_bench.cv import check_params
    from cca_bench.results import versions, write_cv

    cls = METHODS.get(method)
    spec = FeatureSpec.parse(features)
    dataset = load_dataset(dataset_name, opts)
    split = dataset.split("train")  # bad parameters fail before minutes of encoding, and write nothing
    check_params(cls, params, None if cv is None else cv.get("grid", {}), split.n_images, split.n_captions)
    timings: dict = {}
    train = build_features(dataset, "train", spec, opts, timings)
    val = None
    if (cv is not None or getattr(cls, "uses_val", False)) and "val" in dataset.splits:
        val = build_features(dataset, "val", spec, opts, timings)
    model, report = _timed(timings, "fit", lambda: fit_model(cls, method, train, val, params, cv, opts))
    path = model_path(method, dataset_name, spec, opts)
    extra = {"dataset": dataset_name, "dataset_options": opts.dataset_options, "features": spec.name,
             "feature_options": opts.text_options(), "timings": timings, "train_fingerprint": train.meta["fingerprint"],
             "feature_cache": train.meta["cache_keys"], "versions": versions()}
    if report is not None:
        extra["cv"] = cv_summary(report, path.name)
        write_cv(opts.results_root, path.name, report)
    model.save(path, extra=extra)
    figures = save_figures(model, path)
    return {"model": model, "path": path, "timings": timings, "n_images": len(train.images),
            "n_captions": len(train.texts), "cv": report, "figures": figures}


def fit_model(cls, method: str, train, val, params: dict, cv: dict | None, opts: Options):
    """Fit with ``params``, or cross-validate on ``val`` when ``cv`` is given; returns (model, CV report or None)."""
    if cv is None:
        opts.log(f"fitting {method} on {len(train.texts)} captions of {train.images.shape[0]} images")
        if "progress" in getattr(cls, "_param_names", lambda: [])():
            params = {"progress": opts.progress, **params}  # -q silences a method's own progress bar too
        model = cls(**params)
        model.fit_features(train, val)
        return model, None
    if not hasattr(cls, "cross_validate"):
        raise UserError(f"{method} has no --cv grid search")
    if val is None:
        raise UserError(f"--cv scores the grid on the val split, and {train.meta['dataset']} has none")
    opts.log(f"cross-validating {method} on {len(train.texts)} train / {len(val.texts)} val captions")
    return cls.cross_validate(train, val, params=params, progress=opts.progress, log=opts.log, **cv)


def cv_summary(report: dict, name: str) -> dict:
    """What the saved model records of its CV: the rule, the chosen params, their val scores, the grid file."""
    from cca_bench.cv import best_params

    best = report["best"]
    return {"select": report["select"], "chosen": best_params(report), "val_rsum": best["rsum"],
            "val_medr_sum": best["medr_sum"], "grid": report["grid"], "report": f"cv/{name}.json"}


def save_figures(model, path: Path) -> list[Path]:
    """Write each of ``model.figures()`` (when the method has any) as ``<model path>.<key>.png``."""
    from cca_bench.results import write_figure

    figures = getattr(model, "figures", None)
    if not callable(figures):
        return []
    return [write_figure(path.with_name(f"{path.name}.{key}.png"), fig) for key, fig in figures().items()]


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
    from cca_bench.metrics import evaluate_with_curves
    from cca_bench.results import now, versions

    spec = FeatureSpec.parse(features)
    dataset = load_dataset(dataset_name, opts)
    split = dataset.split(split_name)
    folds = protocol_folds(protocol, split.n_images, f"{dataset_name}/{split_name}")
    model = load_model(method, dataset_name, spec, opts)
    path = model_path(method, dataset_name, spec, opts)
    timings: dict = {}
    fs = build_features(dataset, split_name, spec, opts, timings)
    emb_i = _timed(timings, "embed_images", lambda: model.embed_images(fs))
    emb_t = _timed(timings, "embed_texts", lambda: model.embed_texts(fs))
    gemm_device = None if torch_device(opts.device) == "cpu" else torch_device(opts.device)
    metrics, curves = _timed(timings, "evaluate", lambda: evaluate_with_curves(
        emb_i, emb_t, fs.image_index, distance, folds, device=gemm_device))
    params = model.get_params() if hasattr(model, "get_params") else getattr(model, "config_", {}).get("params", {})
    return {
        "method": method, "dataset": dataset_tag(dataset_name, opts.dataset_options), "split": split_name,
        "features": features_tag(spec, opts), "distance": distance, "protocol": protocol,
        "params": params, "params_label": params_label(method, model), "metrics": metrics,
        "recall_curve": curves, "n_images": split.n_images, "n_captions": split.n_captions, "folds": folds,
        "timings": timings, "model": path.name, "model_config": getattr(model, "config_", {}),
        "split_fingerprint": fs.meta["fingerprint"], "feature_cache": fs.meta["cache_keys"],
        "config": run_config(opts, distance, protocol), "seeds": seeds(model, opts),
        "versions": versions(), "created": now(),
    }


def run_config(opts: Options, distance: str, protocol: str) -> dict:
    """The options of a run that are not in its name (with the model's params and seed, its full config)."""
    return {"dataset_options": opts.dataset_options, **opts.text_options(), "batch_size": opts.batch_size,
            "device": opts.device, "feature_cache": opts.cache, "data_root": str(opts.data_root),
            "distance": distance, "protocol": protocol, "ties": "optimistic"}


def seeds(model, opts: Options) -> dict:
    """The seeds behind a run: the model's ``random_state`` and a dataset builder's ``seed`` option."""
    params = model.get_params() if hasattr(model, "get_params") else {}
    return {"model": params.get("random_state"), "dataset": opts.dataset_options.get("seed")}


def params_label(method: str, model) -> str:
    """A short label of the hyper-parameters that matter, for tables (e.g. ``k=50 reg=0.001 p=1``)."""
    label = getattr(model, "params_label", None)
    return label() if callable(label) else ""
