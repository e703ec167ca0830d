"""Glue from names to results: encode splits (cached), fit and save a model, evaluate it into a run record."""
from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from cca_bench.config import FeatureSpec, torch_device
from cca_bench.errors import UserError
from cca_bench.features.fitted import model_extra
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
    pooling: str = "mean"
    fv_components: int = 32
    fv_pca: int | None = None
    batch_size: int | None = None  # None: each image encoder's own choice (from free memory on a GPU)
    crops: int = 1
    device: str = "auto"
    precision: str = "auto"  # fp32 | bf16 | fp16 | auto (cca_bench.features.accel)
    backend: str = "numpy"  # "dask": image shards are extracted as tasks on a Dask cluster
    dask_scheduler: str | None = None
    cache: bool = True
    progress: bool = True
    tag: str = ""
    onnx_model: str | None = None
    onnx_text_model: str | None = None
    log: Callable[[str], None] = lambda msg: None

    def text_options(self) -> dict:
        fv = {"pooling": self.pooling, "fv_components": self.fv_components, "fv_pca": self.fv_pca}
        # mean pooling adds nothing: the cache keys of mean-vector features stay as they were
        return {"idf": self.idf, "stopwords": self.stopwords, "text_path": self.text_path,
                **(fv if self.pooling != "mean" else {})}

    def fitted_text(self) -> bool:
        """Whether the caption encoder learns from train (IDF, Fisher-vector mixtures)."""
        return self.idf or self.pooling != "mean"


def dataset_tag(name: str, options: dict) -> str:
    """``shapes`` or ``shapes[n_train=200,n_test=50]``: a dataset with its builder options."""
    return name + (f"[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]" if options else "")


def features_tag(spec: FeatureSpec, opts: Options) -> str:
    """``glove50_efficientnet_lite0`` plus ``+idf`` / ``+stop`` / ``+gmm32`` / ``+pca100`` / ``+10crops`` when
    those options are on."""
    fv = f"+{opts.pooling}{opts.fv_components}" if opts.pooling != "mean" else ""
    pca = f"+pca{opts.fv_pca}" if opts.pooling != "mean" and opts.fv_pca is not None else ""
    return (spec.name + ("+idf" if opts.idf else "") + ("+stop" if opts.stopwords else "") + fv + pca
            + (f"+{opts.crops}crops" if opts.crops != 1 else ""))


def load_dataset(name: str, opts: Options):
    from cca_bench.datasets import get_dataset

    return get_dataset(name, opts.data_root, parsed_cache=opts.cache, **opts.dataset_options)


def sweep_outputs(opts: Options) -> None:
    """Remove the temporary files a killed run left (``fsio.sweep_stale_tmp``) from every folder a run writes
    into: RESULTS/models, runs, cv and, unless ``--no-cache``, DATA/cache and DATA/cache/datasets. Called once
    at the start of ``generate``, ``run_benchmark`` and ``evaluate`` (one listing per folder), so a folder this
    run does not write into is cleaned too."""
    from cca_bench.datasets import dataset_cache_dir
    from cca_bench.fsio import sweep_stale_tmp

    folders = [opts.results_root / kind for kind in ("models", "runs", "cv")]
    if opts.cache:
        folders += [opts.data_root / "cache", dataset_cache_dir(opts.data_root)]
    for folder in folders:
        sweep_stale_tmp(folder)


def _timed(timings: dict, key: str, fn):
    t0 = time.perf_counter()
    out = fn()
    timings[key] = round(time.perf_counter() - t0, 3)
    return out


def image_key(dataset, split, spec: FeatureSpec, opts: Options) -> dict:
    """Everything that decides a split's image features: the feature cache key."""
    key = {"kind": "image", "dataset": dataset.name, "split": split.name, "fingerprint": split.fingerprint(),
           "encoder": spec.image, "dataset_options": opts.dataset_options}
    precision = image_precision(spec.image, opts)
    if precision not in (None, "fp32"):
        key["precision"] = precision  # only then: fp32 keys stay as they were
    if opts.crops != 1:
        key["crops"] = opts.crops  # only then: the keys of 1-crop features stay as they were
    identity = IMAGE_ENCODERS.meta(spec.image).get("identity")
    if identity is not None:  # an encoder reading a user's model file: its hash (only then, as for crops)
        key["model"] = identity(**image_encoder_kwargs(spec.image, opts, None))
    return key


def image_precision(name: str, opts: Options) -> str | None:
    """The precision image encoder ``name`` runs at under ``opts`` (its registered ``precision`` rule decides
    ``auto``); None for encoders without one, which refuse an explicit bf16 / fp16."""
    from cca_bench.features.accel import resolve_precision

    auto = IMAGE_ENCODERS.meta(name).get("precision")
    if auto is None:
        if opts.precision not in ("auto", "fp32"):
            raise UserError(f"image encoder {name!r} has no --precision option (it runs no network)")
        return None
    return resolve_precision(opts.precision, torch_device(opts.device), auto)


IMAGE_MODEL_FLAGS = {"onnx_model": "--onnx-model"}  # Options field -> flag of a user's model file
TEXT_MODEL_FLAGS = {"onnx_text_model": "--onnx-text-model"}


def model_file_options(encoder: Callable, name: str, opts: Options, flags: dict) -> dict:
    """The model-file options of ``flags`` that encoder ``name`` reads (by its signature); one given to an
    encoder that does not read it is a UserError (it would be silently ignored)."""
    import inspect

    accepted = inspect.signature(encoder).parameters
    stray = [k for k in flags if getattr(opts, k) is not None and k not in accepted]
    if stray:
        raise UserError(f"{flags[stray[0]]} is not read by the encoder {name!r} (only by the onnx encoder)")
    return {k: getattr(opts, k) for k in flags if k in accepted}


def model_files(opts: Options) -> dict:
    """The user's model files given (``--onnx-model``, ``--onnx-text-model``), for run and model records."""
    return {k: getattr(opts, k) for k in (*IMAGE_MODEL_FLAGS, *TEXT_MODEL_FLAGS) if getattr(opts, k) is not None}


def text_model_key(spec: FeatureSpec, opts: Options) -> dict:
    """``{"model": identity}`` for a text encoder whose metadata has an ``identity`` of its model files, else {}."""
    extra = model_file_options(TEXT_ENCODERS.get(spec.text), spec.text, opts, TEXT_MODEL_FLAGS)
    identity = TEXT_ENCODERS.meta(spec.text).get("identity")
    return {} if identity is None else {"model": identity(opts.data_root, opts.text_path, **extra)}


def text_key(dataset, split, spec: FeatureSpec, opts: Options, encoder=None) -> dict:
    """Everything that decides a split's caption features: the feature cache key. Encoders fitted on train
    (IDF, Fisher-vector mixtures) add the train fingerprint and their fitted state's fingerprint."""
    train = dataset.split("train").fingerprint() if opts.fitted_text() else None
    key = {"kind": "text", "dataset": dataset.name, "split": split.name, "fingerprint": split.fingerprint(),
           "encoder": spec.text, "dataset_options": opts.dataset_options, **opts.text_options(),
           "idf_fitted_on": train if opts.idf else None}
    if opts.fitted_text() and encoder is not None:
        key.update(fitted_on=train, text_encoder=encoder.fingerprint())
    return {**key, **text_model_key(spec, opts)}


def image_encoder_kwargs(name: str, opts: Options, shard_dir: Path | None) -> dict:
    """Keyword arguments for image encoder ``name``: the common ones, plus ``crops``, ``data_root``,
    ``shard_dir`` and ``onnx_model`` for encoders whose signature takes them; ``--crops 10`` or ``--onnx-model``
    elsewhere is a UserError."""
    import inspect

    accepted = inspect.signature(IMAGE_ENCODERS.get(name)).parameters
    if opts.crops != 1 and "crops" not in accepted:
        raise UserError(f"image encoder {name!r} has no --crops option (it works on one view of each image)")
    extra = {"crops": opts.crops, "data_root": opts.data_root, "shard_dir": shard_dir,
             "precision": image_precision(name, opts)}
    own_batch = "batch_size" in accepted and accepted["batch_size"].default is None  # it picks its own size
    return {"batch_size": opts.batch_size if own_batch else opts.batch_size or 64, "device": opts.device,
            "progress": opts.progress, **{k: v for k, v in extra.items() if k in accepted},
            **model_file_options(IMAGE_ENCODERS.get(name), name, opts, IMAGE_MODEL_FLAGS)}


def encode_images(dataset, split, spec: FeatureSpec, opts: Options, timings: dict, key: dict) -> np.ndarray:
    """The split's image features from the cache, else computed (in resumable shards when the encoder can)."""
    from cca_bench.features.store import finish_shards, shard_dir

    encoder = IMAGE_ENCODERS.get(spec.image)
    cache = opts.data_root / "cache" if opts.cache else None
    kwargs = image_encoder_kwargs(spec.image, opts, shard_dir(cache, key))
    if opts.backend == "dask":
        encoder = _on_dask(encoder, dataset, split, spec.image, opts, kwargs)
    compute = lambda: encoder(split, dataset, **kwargs)  # noqa: E731
    images, hit = _timed(timings, f"image_features_{split.name}",
                         lambda: load_or_compute(cache, key, compute, n_rows=split.n_images))
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


def _on_dask(encoder: Callable, dataset, split, name: str, opts: Options, kwargs: dict) -> Callable:
    """``encoder`` preceded by the extraction of the split's missing shards as tasks on a Dask cluster
    (workers write them into the cache's shard folder; ``encoder`` then only assembles them). Encoders
    without shards, or no cache to hold shards, extract locally."""
    from cca_bench.features.distributed import ExtractJob, extract_shards

    if kwargs.get("shard_dir") is None or "shard_rows" not in IMAGE_ENCODERS.meta(name):
        opts.log(f"{name}: extracting {dataset.name}/{split.name} locally (Dask extraction needs an image "
                 "encoder with shards and the feature cache)")
        return encoder
    job = ExtractJob.make(dataset.name, opts.data_root, opts.dataset_options, split, name, kwargs)

    def on_dask(*args, **kw):
        extract_shards(job, split.n_images, opts.dask_scheduler)
        return encoder(*args, **kw)

    return on_dask


@functools.lru_cache(maxsize=2)
def word_vectors(text_encoder_name: str, data_root: Path, path: str | None):
    """The word vectors of a text encoder, loaded once per process (user files can be gigabytes, and one
    ``generate`` encodes train and val and may hand the same table to the method)."""
    if text_kind(text_encoder_name) != "word_vectors":
        raise UserError(f"{text_encoder_name} is a sentence encoder: it has no word vectors for a method that "
                        "embeds words itself (such as vse); use a word-vector text encoder (glove50, word2vec, ...)")
    return TEXT_ENCODERS.get(text_encoder_name)(data_root, path=path)


def text_kind(name: str) -> str:
    """``word_vectors`` (a table the mean-vector encoder pools) or ``sentence`` (captions in, vectors out)."""
    return TEXT_ENCODERS.meta(name).get("kind", "word_vectors")


def sentence_encoder(spec: FeatureSpec, opts: Options):
    """The sentence encoder of ``spec.text`` (``encode(captions) -> (n, d)``), built once per process."""
    extra = _sentence_options(spec, opts)
    return _sentence_encoder(spec.text, opts.data_root, opts.text_path, opts.device, opts.batch_size or 64,
                             opts.progress, tuple(sorted(extra.items())))


def _sentence_options(spec: FeatureSpec, opts: Options) -> dict:
    """The model-file options a sentence encoder reads; word-vector options given to one are a UserError."""
    _sentence_kind(spec, opts)
    return model_file_options(TEXT_ENCODERS.get(spec.text), spec.text, opts, TEXT_MODEL_FLAGS)


@functools.lru_cache(maxsize=2)
def _sentence_encoder(name: str, data_root: Path, path: str | None, device: str, batch_size: int, progress: bool,
                      extra: tuple):
    return TEXT_ENCODERS.get(name)(data_root, path, device=device, batch_size=batch_size, progress=progress,
                                   **dict(extra))


def encode_sentences(dataset, split, spec: FeatureSpec, opts: Options, timings: dict, key: dict) -> np.ndarray:
    """The split's caption features from a sentence encoder (raw caption strings), cached like every feature."""
    _sentence_options(spec, opts)  # also on a cache hit
    cache = opts.data_root / "cache" if opts.cache else None
    compute = lambda: sentence_encoder(spec, opts).encode(split.captions)  # noqa: E731
    texts, hit = _timed(timings, f"text_features_{split.name}", lambda: load_or_compute(cache, key, compute))
    opts.log(f"{'loaded cached' if hit else 'computed'} {spec.text} caption features for {dataset.name}/"
             f"{split.name}: {texts.shape[0]} x {texts.shape[1]}")
    return texts


CAPTION_ENCODERS = {"sentence": encode_sentences}  # text encoder kind -> how a split's captions are encoded


def new_text_encoder(spec: FeatureSpec, opts: Options):
    """The unfitted caption encoder of ``opts.pooling`` over the word vectors of ``spec.text`` (a word-vector
    text encoder: callers set sentence encoders apart with :func:`_sentence_kind` first)."""
    from cca_bench.features.fitted import POOLINGS

    vectors = word_vectors(spec.text, opts.data_root, opts.text_path)
    return POOLINGS.get(opts.pooling).from_options(vectors, opts)


def _sentence_kind(spec: FeatureSpec, opts: Options) -> bool:
    """True for a sentence encoder, which has no word-vector encoder to fit (pooling options refused)."""
    if text_kind(spec.text) != "sentence":
        return False
    given = [f for f, on in (("--idf", opts.idf), ("--stopwords", opts.stopwords),
                             (f"--pooling {opts.pooling}", opts.pooling != "mean")) if on]
    if given:
        raise UserError(f"{', '.join(given)}: --idf and --stopwords weight word vectors, --pooling pools them; "
                        f"{spec.text} is a sentence encoder that reads whole captions")
    return True


def fit_text_encoder(dataset, spec: FeatureSpec, opts: Options):
    """The caption encoder fitted on the train split (generate; stateless encoders fit on nothing; None for a
    sentence encoder, which reads whole captions)."""
    if _sentence_kind(spec, opts):
        return None
    encoder = new_text_encoder(spec, opts)
    return encoder.fit(dataset.split("train").tokens if opts.fitted_text() else [])


def saved_text_encoder(path: Path, spec: FeatureSpec, opts: Options):
    """The caption encoder fitted with the model saved at ``path`` (never refitted: run_benchmark, search).

    Models saved before encoders were stored hold none: fine for plain mean vectors, a UserError otherwise.
    The saved encoder must have the options the command asks for.
    """
    from cca_bench.features.fitted import load_from_model

    if _sentence_kind(spec, opts):
        return None
    wanted = new_text_encoder(spec, opts)
    encoder = load_from_model(path, wanted.vectors)
    if encoder is None:
        if opts.fitted_text():
            raise UserError(f"the model {path.name} holds no fitted text encoder (saved by an older version): "
                            "run generate again")
        return wanted.fit([])
    saved, asked = encoder.config(), wanted.config()
    differ = sorted(k for k in asked if saved.get(k) != asked[k] and k != "source")
    if differ:
        raise UserError(f"the model {path.name} was fitted with text encoder "
                        f"{', '.join(f'{k}={saved.get(k)}' for k in differ)}, not "
                        f"{', '.join(f'{k}={asked[k]}' for k in differ)}")
    return encoder


def encode_texts(dataset, split, spec: FeatureSpec, opts: Options, timings: dict, key: dict, encoder,
                 info: dict | None = None) -> np.ndarray:
    """The split's caption features from the cache, else encoded block by block into it (empty captions counted).

    Sentence encoders (``kind="sentence"``) read the raw captions and take no ``encoder``. ``info`` (optional)
    receives ``oov_rate``: the share of caption tokens without a word vector (stored with the cached features)."""
    from cca_bench.features.store import load_or_stream

    by_kind = CAPTION_ENCODERS.get(text_kind(spec.text))
    if by_kind is not None:  # sentence encoders read the raw captions, not word vectors
        return by_kind(dataset, split, spec, opts, timings, key)
    cache = opts.data_root / "cache" if opts.cache else None
    state = {} if info is None else info
    shape = (split.n_captions, encoder.n_features_)

    def blocks():
        for block in encoder.transform_blocks(split.tokens):
            state.update(n_empty=int(encoder.n_empty_), oov_rate=float(encoder.oov_rate_))
            yield block

    texts, hit = _timed(timings, f"text_features_{split.name}",
                        lambda: load_or_stream(cache, key, shape, blocks, info=state))
    if not hit and state.get("n_empty"):
        opts.log(f"warning: {state['n_empty']} of {split.n_captions} captions of {dataset.name}/{split.name} had "
                 f"no known {spec.text} word and were encoded as zero vectors")
    return texts


def build_features(dataset, split_name: str, spec: FeatureSpec, opts: Options, timings: dict,
                   text_encoder=None) -> FeatureSet:
    """Encode one split with the image encoder of ``spec`` and ``text_encoder`` (fitted; default: the
    stateless encoder of ``opts``, which must then need no fit), cached."""
    split = dataset.split(split_name)
    if split.n_captions == 0:
        raise UserError(f"{dataset.name}/{split_name} has no captions")
    if text_encoder is None and not _sentence_kind(spec, opts):
        if opts.fitted_text():
            raise ValueError("build_features needs the fitted text encoder for --idf / --pooling")
        text_encoder = fit_text_encoder(dataset, spec, opts)
    keys = {"image": image_key(dataset, split, spec, opts), "text": text_key(dataset, split, spec, opts, text_encoder)}
    images = encode_images(dataset, split, spec, opts, timings, key=keys["image"])
    info: dict = {}
    texts = encode_texts(dataset, split, spec, opts, timings, key=keys["text"], encoder=text_encoder, info=info)
    meta = {"dataset": dataset.name, "split": split_name, "features": spec.name, "oov_rate": info.get("oov_rate"),
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


def saved_model_options(name: str, config: dict, opts: Options) -> tuple[str, str, str, Options]:
    """The inverse of :func:`model_path`: ``(method, dataset, features, options)`` that reopen the model saved
    as ``RESULTS/models/<name>`` (``config`` = its JSON), keeping ``opts``'s roots and run-time settings.

    The dataset options, text options (pooling and Fisher-vector size included), ONNX model files and ``--tag``
    come from the saved JSON and the name;
    ``--crops`` only from the name (``+10crops``). A name that these do not rebuild exactly is a UserError.
    """
    import dataclasses

    try:
        method, dataset, features = config["method"], config["dataset"], config["features"]
        text = config.get("feature_options", {})
        crops = re.search(r"\+(\d+)crops(@|$)", name)
        out = dataclasses.replace(opts, dataset_options=dict(config.get("dataset_options", {})),
                                  text_path=text.get("text_path"), idf=bool(text.get("idf")),
                                  stopwords=bool(text.get("stopwords")), crops=int(crops[1]) if crops else 1,
                                  **{k: text[k] for k in ("pooling", "fv_components", "fv_pca") if k in text},
                                  tag=name.partition("@")[2], **dict(config.get("model_files", {})))
        rebuilt = model_path(method, dataset, FeatureSpec.parse(features), out).name
    except (KeyError, TypeError, AttributeError):
        raise UserError(f"the saved model {name} lacks method, dataset or features in its JSON") from None
    if rebuilt != name:
        raise UserError(f"the saved model {name} does not match its own JSON (that describes {rebuilt})")
    return method, dataset, features, out


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
    torch_device(opts.device)  # a missing GPU fails before any work
    sweep_outputs(opts)
    dataset = load_dataset(dataset_name, opts)
    split = dataset.split("train")  # bad parameters fail before minutes of encoding, and write nothing
    check_params(cls, params, None if cv is None else cv.get("grid", {}), split.n_images, split.n_captions)
    timings: dict = {}
    cv, fv_grid = split_features_grid(cv, opts)
    if fv_grid is None:
        (encoder, train, model), report = _encode_and_fit(cls, method, dataset, spec, opts, params, cv, timings)
    else:
        from cca_bench.cv import search_features

        fit_point = lambda point: _encode_and_fit(  # noqa: E731
            cls, method, dataset, spec, replace(opts, **point), params, cv, timings)
        point, (encoder, train, model), report = search_features(
            [{"fv_components": k} for k in fv_grid], fit_point, cv["select"])
        opts = replace(opts, **point)
        opts.log(f"chose --fv-components {opts.fv_components}: pass it to run_benchmark and search")
    path = model_path(method, dataset_name, spec, opts)
    extra = {"dataset": dataset_name, "dataset_options": opts.dataset_options, "features": spec.name,
             "feature_options": opts.text_options(), "timings": timings, "train_fingerprint": train.meta["fingerprint"],
             "feature_cache": train.meta["cache_keys"], "versions": versions(), "oov_rate": train.meta["oov_rate"],
             "feature_dims": {"image": int(train.images.shape[1]), "text": int(train.texts.shape[1])}}
    if report is not None:
        extra["cv"] = cv_summary(report, path.name)
        write_cv(opts.results_root, path.name, report)
    extra["model_files"] = model_files(opts)  # the ONNX files a reopened model needs again
    model.save(path, extra={**extra, **model_extra(encoder)})  # the fitted text encoder in the same file
    figures = save_figures(model, path)
    return {"model": model, "path": path, "timings": timings, "n_images": len(train.images),
            "n_captions": len(train.texts), "cv": report, "figures": figures, "text_options": opts.text_options(),
            "oov_rate": train.meta["oov_rate"]}


def split_features_grid(cv: dict | None, opts: Options) -> tuple[dict | None, list[int] | None]:
    """(the CV request without its features grid, the ``fv_components`` values to search or None)."""
    if cv is None or not cv.get("fv_components"):
        return cv, None
    if opts.pooling == "mean":
        raise UserError("--cv-fv-components searches Fisher-vector sizes: it needs --pooling gmm, hglmm or gmm+hglmm")
    return {k: v for k, v in cv.items() if k != "fv_components"}, [int(k) for k in cv["fv_components"]]


def _encode_and_fit(cls, method: str, dataset, spec: FeatureSpec, opts: Options, params: dict, cv: dict | None,
                    timings: dict):
    """Fit the text encoder on train, encode train (and val when needed), fit or cross-validate the method.

    Returns ((text encoder, train FeatureSet, model), CV report or None).
    """
    encoder = fit_text_encoder(dataset, spec, opts)
    train = build_features(dataset, "train", spec, opts, timings, encoder)
    val = None
    if (cv is not None or getattr(cls, "uses_val", False)) and "val" in dataset.splits:
        val = build_features(dataset, "val", spec, opts, timings, encoder)
    model, report = _timed(timings, "fit", lambda: fit_model(cls, method, train, val, params, cv, opts))
    return (encoder, train, model), report


def fit_model(cls, method: str, train, val, params: dict, cv: dict | None, opts: Options):
    """Fit with ``params``, or cross-validate on ``val`` when ``cv`` is given; returns (model, CV report or None)."""
    if cv is None:
        opts.log(f"fitting {method} on {len(train.texts)} captions of {train.images.shape[0]} images")
        if "progress" in getattr(cls, "_param_names", lambda: [])():
            params = {"progress": opts.progress, **params}  # -q silences a method's own progress bar too
        model = cls(**params)
        model.fit_features(train, val)
        return model, None
    search = getattr(cls, "cross_validate", None)
    if search is None and hasattr(cls, "CV_GRID"):  # methods that only declare their knobs
        from cca_bench.cv import search_grid

        search = functools.partial(search_grid, cls)
    if search is None:
        raise UserError(f"{method} has no --cv grid search")
    if val is None:
        raise UserError(f"--cv scores the grid on the val split, and {train.meta['dataset']} has none")
    opts.log(f"cross-validating {method} on {len(train.texts)} train / {len(val.texts)} val captions")
    return search(train, val, params=params, progress=opts.progress, log=opts.log, **cv)


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
    spec = FeatureSpec.parse(features)
    torch_device(opts.device)  # a missing GPU fails before any work, also when every feature is cached
    sweep_outputs(opts)
    dataset = load_dataset(dataset_name, opts)
    split = dataset.split(split_name)
    folds = protocol_folds(protocol, split.n_images, f"{dataset_name}/{split_name}")
    model = load_model(method, dataset_name, spec, opts)
    path = model_path(method, dataset_name, spec, opts)
    timings: dict = {}
    fs = build_features(dataset, split_name, spec, opts, timings, saved_text_encoder(path, spec, opts))
    check_widths(getattr(model, "config_", {}), fs, path)
    emb_i = _timed(timings, "embed_images", lambda: model.embed_images(fs))
    emb_t = _timed(timings, "embed_texts", lambda: model.embed_texts(fs))
    metrics, curves = score(emb_i, emb_t, fs.image_index, distance, folds, opts, timings)
    params = model.get_params() if hasattr(model, "get_params") else getattr(model, "config_", {}).get("params", {})
    return run_record(
        method=method, dataset_name=dataset_name, split=split, features=features_tag(spec, opts), distance=distance,
        protocol=protocol, folds=folds, metrics=metrics, curves=curves, timings=timings, opts=opts,
        model=path.name, params=params, params_label=params_label(method, model),
        model_config=getattr(model, "config_", {}), split_fingerprint=fs.meta["fingerprint"],
        feature_cache=fs.meta["cache_keys"], oov_rate=fs.meta["oov_rate"], seeds=seeds(model, opts))


def score(emb_i: np.ndarray, emb_t: np.ndarray, image_index: np.ndarray, distance: str, folds: int,
          opts: Options, timings: dict) -> tuple[dict, dict]:
    """(metrics, R@K curves) of (n_img, k) image and (n_txt, k) caption embeddings; the similarity GEMM runs
    on ``opts.device`` when that is a GPU (timed as ``evaluate``)."""
    from cca_bench.metrics import evaluate_with_curves

    gemm_device = None if torch_device(opts.device) == "cpu" else torch_device(opts.device)
    return _timed(timings, "evaluate", lambda: evaluate_with_curves(
        emb_i, emb_t, image_index, distance, folds, device=gemm_device))


def run_record(*, method: str, dataset_name: str, split, features: str, distance: str, protocol: str, folds: int,
               metrics: dict, curves: dict, timings: dict, opts: Options, model: str, **fields) -> dict:
    """The run record ``results.write_json`` stores: the fields every run has, plus ``fields``
    (params, model config, fingerprints, ...). ``model`` names the run file (``run_path``)."""
    from cca_bench.results import now, versions

    return {
        "method": method, "dataset": dataset_tag(dataset_name, opts.dataset_options), "split": split.name,
        "features": features, "distance": distance, "protocol": protocol, "params": {}, "params_label": "",
        "metrics": metrics, "recall_curve": curves, "n_images": split.n_images, "n_captions": split.n_captions,
        "folds": folds, "timings": timings, "model": model, "config": run_config(opts, distance, protocol),
        "seeds": {}, **fields, "versions": versions(), "created": now(),
    }


def check_widths(config: dict, fs: FeatureSet, model: Path) -> None:
    """The split's features must be as wide as those the model was fitted on (``feature_dims`` of its config):
    else a UserError naming the feature file and both widths."""
    fitted = config.get("feature_dims") or {}
    for kind, arr in (("image", fs.images), ("text", fs.texts)):
        if kind in fitted and arr.shape[1] != fitted[kind]:
            source = Path(fs.meta["data_root"]) / "cache" / fs.meta["cache_keys"][kind]
            raise UserError(f"{fs.meta['dataset']}/{fs.meta['split']} {kind} features ({source}) are "
                            f"{arr.shape[1]} wide, but the model {model.name} was fitted on {fitted[kind]}-wide "
                            f"{kind} features")


def run_config(opts: Options, distance: str, protocol: str) -> dict:
    """The options of a run that are not in its name (with the model's params and seed, its full config)."""
    return {"dataset_options": opts.dataset_options, **opts.text_options(), "batch_size": opts.batch_size,
            "device": opts.device, "precision": opts.precision, "feature_cache": opts.cache,
            "data_root": str(opts.data_root), **model_files(opts), "distance": distance, "protocol": protocol, "ties": "optimistic"}


def seeds(model, opts: Options) -> dict:
    """The seeds behind a run: the model's ``random_state`` and a dataset builder's ``seed`` option."""
    params = model.get_params() if hasattr(model, "get_params") else {}
    return {"model": params.get("random_state"), "dataset": opts.dataset_options.get("seed")}


def params_label(method: str, model) -> str:
    """A short label of the hyper-parameters that matter, for tables (e.g. ``k=50 reg=0.001 p=1``)."""
    label = getattr(model, "params_label", None)
    return label() if callable(label) else ""
