"""Glue from names to results: encode splits (cached), fit and save a model, evaluate it into a run record."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from cca_bench.checks import check_tag
from cca_bench.config import FeatureSpec, Locations, torch_device
from cca_bench.config import timed as _timed
from cca_bench.errors import UserError
from cca_bench.evaluation import RunOptions
from cca_bench.features.options import FeatureOptions
from cca_bench.features.pipelines import (
    Pipelines,
    features_tag,
    model_files,  # noqa: F401  (run records)
    option_flags,
    split_feature_grid,
)
from cca_bench.features.store import FeatureSet
from cca_bench.features.text_pipeline import text_options
from cca_bench.registry import METHODS

PROTOCOLS = {"full": None, "1k": 1000, "5k": 5000}


def _silent(msg: str) -> None:
    """The default ``log``: say nothing."""


@dataclass(frozen=True)
class Options:
    """What a command asks for besides the names, one object per layer that owns it, composed here for the
    orchestrator and its callers (the CLI, the web app, API users). It is never passed below: the features
    layer receives ``features``, evaluation ``run``, datasets and stores the roots of ``locations``.

    ``dataset_options`` (``-D k=v``, the dataset builder's) and ``tag`` (``--tag``) name the model with the
    features; ``log`` takes the one-line messages a command prints (``-q``: none). All of it but ``log`` and
    the run-time settings (device, batch size, backend, progress) is part of the cache keys and names.
    :meth:`of` builds one from flat keyword arguments, each sent to the layer that owns it.
    """

    locations: Locations = field(default_factory=Locations)
    features: FeatureOptions = field(default_factory=FeatureOptions)
    run: RunOptions = field(default_factory=RunOptions)
    dataset_options: dict = field(default_factory=dict)
    tag: str = ""
    log: Callable[[str], None] = _silent

    @classmethod
    def of(cls, **flat) -> Options:
        """``Options.of(data_root=..., idf=True, ties="optimistic", tag="x")``: every field of
        :class:`~cca_bench.config.Locations`, :class:`~cca_bench.features.options.FeatureOptions` and
        :class:`~cca_bench.evaluation.RunOptions` by its own name; an unknown name is a TypeError."""
        parts = {}
        for name, kind in (("locations", Locations), ("features", FeatureOptions), ("run", RunOptions)):
            names = {f.name for f in fields(kind)}
            parts[name] = kind(**{k: flat.pop(k) for k in list(flat) if k in names})
        return cls(**parts, **flat)

    @property
    def progress(self) -> bool:
        """Whether progress bars show (``-q``: no), for extraction and a method's fit alike."""
        return self.features.progress

    def with_features(self, **changes) -> Options:
        """A copy whose feature options have ``changes`` (a feature CV grid point, a saved model's options)."""
        return replace(self, features=self.features.with_(**changes))

    def text_options(self) -> dict:
        """The text options of run and model records (:func:`cca_bench.features.text_pipeline.text_options`)."""
        return text_options(self.features)


def dataset_tag(name: str, options: dict) -> str:
    """``shapes`` or ``shapes[n_train=200,n_test=50]``: a dataset with its builder options."""
    return name + (f"[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]" if options else "")


def load_dataset(name: str, opts: Options):
    from cca_bench.datasets import get_dataset

    return get_dataset(name, opts.locations.data_root, parsed_cache=opts.locations.cache, **opts.dataset_options)


def pipelines(spec: FeatureSpec, opts: Options) -> Pipelines:
    """The (unfitted) feature pipelines of ``spec`` under the feature options of ``opts``."""
    return Pipelines.of(spec, opts.features, opts.locations.data_root, opts.dataset_options)


def sweep_outputs(opts: Options) -> None:
    """Remove the temporary files a killed run left (``fsio.sweep_stale_tmp``) from every folder a run writes
    into: RESULTS/models, runs, cv and, unless ``--no-cache``, DATA/cache and DATA/cache/datasets. Called once
    at the start of ``generate``, ``run_benchmark`` and ``evaluate`` (one listing per folder), so a folder this
    run does not write into is cleaned too."""
    from cca_bench.datasets import dataset_cache_dir
    from cca_bench.fsio import sweep_stale_tmp

    where = opts.locations
    folders = [where.results_root / kind for kind in ("models", "runs", "cv")]
    if where.cache:
        folders += [where.cache_dir, dataset_cache_dir(where.data_root)]
    for folder in folders:
        sweep_stale_tmp(folder)


def saved_pipelines(path: Path, spec: FeatureSpec, opts: Options) -> Pipelines:
    """The text and image pipelines fitted with the model saved at ``path``, restored from its file (never
    refitted: run_benchmark, search and the web app reopen a model through this one path)."""
    from cca_bench.methods.base import load_arrays

    pipes = pipelines(spec, opts)
    arrays, config = load_arrays(path)
    return pipes.restore(arrays, config, f"the model {path.name}")


def save_model(model, path: Path, extra: dict, pipes: Pipelines) -> None:
    """Save ``model`` with ``extra`` in its config and the pipelines' fitted state in the same file."""
    from cca_bench.methods.base import EXTRA_ARRAYS

    arrays, config = pipes.state()
    model.save(path, extra={**extra, **config, EXTRA_ARRAYS: arrays})


def model_path(method: str, dataset: str, spec: FeatureSpec, opts: Options) -> Path:
    """``RESULTS/models/METHOD__DATASET__FEATURES[@TAG]``: a ``--tag`` keeps variants of one method apart."""
    name = "__".join([method, dataset_tag(dataset, opts.dataset_options), features_tag(spec, opts.features)])
    if opts.tag:
        name += f"@{check_tag(opts.tag)}"
    return opts.locations.results_root / "models" / name


def load_model(method: str, dataset_name: str, spec: FeatureSpec, opts: Options):
    """The model ``generate`` saved for (method, dataset with its options, features), via its class's ``load``."""
    from cca_bench.methods import load_all

    load_all()
    cls, path = METHODS.get(method), model_path(method, dataset_name, spec, opts)
    if not path.with_name(path.name + ".safetensors").is_file():
        prefix = f"{method}__{dataset_tag(dataset_name, opts.dataset_options)}__{spec.name}"
        raise UserError(missing_model(path, prefix))
    model = cls.load(path)
    if "backend" in model.get_params():  # scoring work (asif's top-k) runs where THIS command's --backend says,
        model.set_params(backend=opts.features.backend, dask_scheduler=opts.features.dask_scheduler)  # not the fit's
    return model


def saved_models(results_root: Path, prefix: str = "") -> list[str]:
    """Names of the models saved under ``RESULTS/models`` (a ``.safetensors`` file each) that start with ``prefix``."""
    folder = Path(results_root) / "models"
    return (
        sorted(f.name[: -len(".safetensors")] for f in folder.glob("*.safetensors") if f.name.startswith(prefix))
        if folder.is_dir()
        else []
    )


def missing_model(path: Path, prefix: str) -> str:
    """The one line for a model that is not saved: which models of that method, dataset and features are."""
    others = saved_models(path.parent.parent, prefix)
    if not others:
        return f"no fitted model {path.name} in {path.parent}: run `generate` first"
    shown = ", ".join(others[:6]) + (f" and {len(others) - 6} more" if len(others) > 6 else "")
    return (
        f"no fitted model {path.name} in {path.parent}; saved for these names: {shown} (pass one with "
        "--model NAME, or the --tag and feature options it was generated with)"
    )


def run_saved(name: str, split_name: str, opts: Options, distance: str = "cosine", protocol: str = "full") -> dict:
    """:func:`run_benchmark` of the model saved as ``RESULTS/models/<name>``: method, dataset, features, their
    options and the tag all come from the model's own JSON (:func:`saved_model_options`), none repeated by hand."""
    import difflib
    import json

    known = saved_models(opts.locations.results_root)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else f" ({len(known)} saved)" if known else ""
        raise UserError(f"--model: no saved model {name!r} in {opts.locations.results_root / 'models'}{hint}")
    saved = opts.locations.results_root / "models" / f"{name}.json"
    try:
        config = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{saved}: cannot read the model's JSON ({type(e).__name__})") from None
    method, dataset, features, out = saved_model_options(name, config, opts)
    return run_benchmark(method, dataset, split_name, features, out, distance, protocol)


def saved_model_options(name: str, config: dict, opts: Options) -> tuple[str, str, str, Options]:
    """The inverse of :func:`model_path`: ``(method, dataset, features, options)`` that reopen the model saved
    as ``RESULTS/models/<name>`` (``config`` = its JSON), keeping ``opts``'s roots and run-time settings.

    The dataset options, feature options (:func:`cca_bench.features.pipelines.saved_feature_options`), ONNX
    model files and ``--tag`` come from the saved JSON and the name. A name that these do not rebuild exactly is
    a UserError.
    """
    from cca_bench.features.pipelines import saved_feature_options

    try:
        method, dataset, features = config["method"], config["dataset"], config["features"]
        out = replace(
            opts.with_features(
                **saved_feature_options(config.get("feature_options", {}), name), **dict(config.get("model_files", {}))
            ),
            dataset_options=dict(config.get("dataset_options", {})),
            tag=name.partition("@")[2],
        )
        rebuilt = model_path(method, dataset, FeatureSpec.parse(features), out).name
    except (KeyError, TypeError, AttributeError):
        raise UserError(f"the saved model {name} lacks method, dataset or features in its JSON") from None
    if rebuilt != name:
        raise UserError(f"the saved model {name} does not match its own JSON (that describes {rebuilt})")
    return method, dataset, features, out


def generate(
    method: str,
    dataset_name: str,
    features: str,
    params: dict,
    opts: Options,
    cv: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """Encode the train split (restval included), fit ``method`` with ``params``, save it; returns a summary.

    ``cv`` = {"grid": {...}, "select": "rsum"|"medr"} asks :func:`cca_bench.cv.cross_validate` to choose the method's
    hyper-parameters on the val split instead; the best model is saved as the normal model, and the grid
    goes to RESULTS/cv/<model name>.json/.md. A model's ``figures()`` are saved as <model name>.<key>.png.

    A saved model of the same name fitted with other hyper-parameters (:func:`model_identity`) is never
    replaced unless ``overwrite``: a UserError says so before any work (``--tag`` keeps both).
    """
    from cca_bench.cv import check_params
    from cca_bench.results import versions, write_cv

    cls = METHODS.get(method)
    spec = FeatureSpec.parse(features)
    torch_device(opts.features.device)  # a missing GPU fails before any work
    sweep_outputs(opts)
    dataset = load_dataset(dataset_name, opts)
    split = dataset.split("train")  # bad parameters fail before minutes of encoding, and write nothing
    check_params(cls, params, None if cv is None else cv.get("grid", {}), split.n_images, split.n_captions)
    identity = model_identity(cls, params, cv)
    if not overwrite:  # refused before minutes of encoding; checked again below for a searched feature option
        check_identity(model_path(method, dataset_name, spec, opts), identity)
    timings: dict = {}
    cv, feature_grid = split_feature_grid(cv, opts.features)
    if feature_grid is None:
        (pipes, train, model), report = _encode_and_fit(cls, method, dataset, spec, opts, params, cv, timings)
    else:
        from cca_bench.cv import search_features

        fit_point = lambda point: _encode_and_fit(  # noqa: E731
            cls, method, dataset, spec, opts.with_features(**point), params, cv, timings
        )
        point, (pipes, train, model), report = search_features(feature_grid, fit_point, cv["select"])
        opts = opts.with_features(**point)
        opts.log(f"chose {option_flags(point)}: pass it to run_benchmark and search")
    path = model_path(method, dataset_name, spec, opts)
    if not overwrite:
        check_identity(path, identity)
    extra = {
        "identity": identity,
        "dataset": dataset_name,
        "dataset_options": opts.dataset_options,
        "features": spec.name,
        "feature_options": pipes.options(),
        "timings": timings,
        "train_fingerprint": train.meta["fingerprint"],
        "feature_cache": train.meta["cache_keys"],
        "versions": versions(),
        "oov_rate": train.meta["oov_rate"],
        "feature_dims": {"image": int(train.images.shape[1]), "text": int(train.texts.shape[1])},
    }
    if report is not None:
        extra["cv"] = cv_summary(report, path.name)
        write_cv(opts.locations.results_root, path.name, report)
    extra["model_files"] = model_files(opts.features)  # the ONNX files a reopened model needs again
    save_model(model, path, extra, pipes)  # the pipelines' fitted state in the same file
    figures = save_figures(model, path)
    return {
        "model": model,
        "path": path,
        "timings": timings,
        "n_images": len(train.images),
        "n_captions": len(train.texts),
        "cv": report,
        "figures": figures,
        "text_options": pipes.options(),
        "oov_rate": train.meta["oov_rate"],
    }


RUNTIME_PARAMS = ("backend", "dask_scheduler", "device", "chunk_rows", "progress")  # where, not what, is fitted


def model_identity(cls, params: dict, cv: dict | None) -> dict:
    """What makes a fitted model this model beyond its name (method, dataset and feature options are in the
    name): every hyper-parameter with the method's defaults filled in, less RUNTIME_PARAMS, and the ``--cv``
    request. ``{"hash": 12 hex digits of its canonical JSON, "params": ..., "cv": ...}``."""
    import hashlib
    import json

    model = cls(**params)
    full = {
        k: v
        for k, v in (model.get_params() if hasattr(model, "get_params") else params).items()
        if k not in RUNTIME_PARAMS
    }
    body = {"params": json.loads(json.dumps(full, default=str)), "cv": json.loads(json.dumps(cv, default=str))}
    text = json.dumps(body, sort_keys=True)
    return {"hash": hashlib.sha256(text.encode()).hexdigest()[:12], **body}


def check_identity(path: Path, identity: dict) -> None:
    """UserError (one line) when ``path`` holds a saved model whose identity differs from ``identity``: its
    JSON's ``identity``, or for models saved before identities, one rebuilt from its params without ``--cv``."""
    import json

    saved = path.with_name(path.name + ".json")
    if not saved.is_file() and not path.with_name(path.name + ".safetensors").is_file():
        return
    try:
        config = json.loads(saved.read_text(encoding="utf-8"))
        old = config.get("identity") or (
            None
            if config.get("cv")
            else {"cv": None, "params": {k: v for k, v in config["params"].items() if k not in RUNTIME_PARAMS}}
        )
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        old = None
    if old is not None and {k: old.get(k) for k in ("params", "cv")} == {k: identity[k] for k in ("params", "cv")}:
        return
    changed = _changed(old, identity) if old else "hyper-parameters not recorded"
    raise UserError(
        f"{path.name} is already saved with other hyper-parameters ({changed}): add --tag NAME to keep "
        "both, or --overwrite to replace it (runs stored from it stay readable)"
    )


def _changed(old: dict, new: dict) -> str:
    """``reg 0.001 -> 0.1, cv none -> {...}``: the first few differences of two identities."""
    diffs = [f"{k} {old['params'].get(k)} -> {v}" for k, v in new["params"].items() if old["params"].get(k) != v]
    if old.get("cv") != new.get("cv"):
        diffs.append(f"--cv {'none' if old.get('cv') is None else 'grid'} -> {'none' if new['cv'] is None else 'grid'}")
    return ", ".join(diffs[:4]) or "other settings"


def _encode_and_fit(
    cls, method: str, dataset, spec: FeatureSpec, opts: Options, params: dict, cv: dict | None, timings: dict
):
    """Fit the feature pipelines on train, encode train (and val when needed), fit or cross-validate the method.

    Returns ((fitted Pipelines, train FeatureSet, model), CV report or None).
    """
    pipes = pipelines(spec, opts).fit(dataset)
    train = pipes.encode(dataset, "train", timings, opts.locations.cache_dir, opts.log)
    val = None
    if (cv is not None or getattr(cls, "uses_val", False)) and "val" in dataset.splits:
        val = pipes.encode(dataset, "val", timings, opts.locations.cache_dir, opts.log)
    model, report = _timed(timings, "fit", lambda: fit_model(cls, method, train, val, params, cv, opts))
    return (pipes, train, model), report


def fit_model(cls, method: str, train, val, params: dict, cv: dict | None, opts: Options):
    """Fit with ``params``, or cross-validate on ``val`` when ``cv`` is given; returns (model, CV report or None)."""
    if cv is None:
        opts.log(f"fitting {method} on {len(train.texts)} captions of {train.images.shape[0]} images")
        if "progress" in getattr(cls, "_param_names", lambda: [])():
            params = {"progress": opts.progress, **params}  # -q silences a method's own progress bar too
        model = cls(**params)
        model.fit_features(train, val)
        return model, None
    from cca_bench.cv import cross_validate, searchable, val_interval

    if not searchable(cls):
        raise UserError(f"{method} has no --cv grid search")
    if val is None:
        raise UserError(f"--cv scores the grid on the val split, and {train.meta['dataset']} has none")
    opts.log(f"cross-validating {method} on {len(train.texts)} train / {len(val.texts)} val captions")
    model, report = cross_validate(
        cls, train, val, params=params, progress=opts.progress, log=opts.log, ties=opts.run.ties, **cv
    )
    return model, report | {"val_interval": val_interval(report, model, val)}


def cv_summary(report: dict, name: str) -> dict:
    """What the saved model records of its CV: the rule, the chosen params, their val scores, the grid file."""
    from cca_bench.cv import best_params

    best = report["best"]
    return {
        "select": report["select"],
        "ties": report.get("ties"),
        "chosen": best_params(report),
        "val_rsum": best["rsum"],
        "val_interval": report.get("val_interval"),
        "val_medr_sum": best["medr_sum"],
        "grid": report["grid"],
        "report": f"cv/{name}.json",
    }


def save_figures(model, path: Path) -> list[Path]:
    """Write each of ``model.figures()`` (when the method has any) as ``<model path>.<key>.png``."""
    from cca_bench.results import write_figure

    figures = getattr(model, "figures", None)
    if not callable(figures):
        return []
    if importlib.util.find_spec("matplotlib") is None:  # the model is saved already: say what was left out
        from cca_bench.extras import missing_message

        warnings.warn(f"{missing_message('matplotlib', 'the model figures')}; no figure written", stacklevel=2)
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


def run_benchmark(
    method: str,
    dataset_name: str,
    split_name: str,
    features: str,
    opts: Options,
    distance: str = "cosine",
    protocol: str = "full",
    seeds: list[int] | None = None,
) -> dict:
    """Load the model ``generate`` saved (one per seed of ``seeds``: ``generate --seeds``), encode the split,
    evaluate; returns the run record (not yet saved; its per-query ranks under ``_ranks``)."""
    spec = FeatureSpec.parse(features)
    torch_device(opts.features.device)  # a missing GPU fails before any work, also when every feature is cached
    sweep_outputs(opts)
    dataset = load_dataset(dataset_name, opts)
    split = dataset.split(split_name)
    folds = protocol_folds(protocol, split.n_images, f"{dataset_name}/{split_name}")
    if opts.run.bootstrap:
        from cca_bench.stats import check_resamples

        check_resamples("--bootstrap", opts.run.bootstrap, split.n_images)  # before the models run, not after
    timings: dict = {}
    embedded = [
        _embed_split(method, dataset, dataset_name, split_name, spec, seed_options(opts, s), timings)
        for s in (seeds or [None])
    ]
    model, path, fs = embedded[0][2:]
    embeddings = [e[:2] for e in embedded]
    evaluation = score_split(opts, embeddings, split, fs.image_index, distance, protocol, folds, timings)
    params = model.get_params() if hasattr(model, "get_params") else getattr(model, "config_", {}).get("params", {})
    name = path.name if not seeds else model_path(method, dataset_name, spec, seed_options(opts, seeds)).name
    return run_record(
        method=method,
        dataset_name=dataset_name,
        split=split,
        features=features_tag(spec, opts.features),
        distance=distance,
        protocol=protocol,
        folds=folds,
        timings=timings,
        opts=opts,
        model=name,
        **evaluation,
        params=params,
        params_label=params_label(method, model),
        model_config=getattr(model, "config_", {}),
        split_fingerprint=fs.meta["fingerprint"],
        feature_cache=fs.meta["cache_keys"],
        oov_rate=fs.meta["oov_rate"],
        seeds=seeds_of(model, opts) | ({"list": list(seeds)} if seeds else {}),
    )


def seed_options(opts: Options, seed: int | list[int] | None) -> Options:
    """The options naming the model ``generate --seeds`` fitted with ``seed`` (tag ``seed<N>``, or
    ``<tag>.seed<N>`` beside a ``--tag``), or for a list of seeds the run over all of them (``seeds0-1-2``);
    ``opts`` itself for None."""
    if seed is None:
        return opts
    name = "seeds" + "-".join(map(str, seed)) if isinstance(seed, list) else f"seed{seed}"
    return replace(opts, tag=f"{opts.tag}.{name}" if opts.tag else name)


def _embed_split(
    method: str, dataset, dataset_name: str, split_name: str, spec: FeatureSpec, opts: Options, timings: dict
):
    """(image embeddings (n_img, k), caption embeddings (n_txt, k), model, model path, FeatureSet) of a split
    under the saved model that ``opts`` names."""
    model = load_model(method, dataset_name, spec, opts)
    path = model_path(method, dataset_name, spec, opts)
    fs = saved_pipelines(path, spec, opts).encode(dataset, split_name, timings, opts.locations.cache_dir, opts.log)
    check_widths(getattr(model, "config_", {}), fs, path)
    emb_i = _timed(timings, "embed_images", lambda: model.embed_images(fs))
    emb_t = _timed(timings, "embed_texts", lambda: model.embed_texts(fs))
    return emb_i, emb_t, model, path, fs


def score_under(opts: Options, embeddings: list, image_index, distance: str, folds: int, timings: dict) -> dict:
    """:func:`cca_bench.evaluation.score` of ``embeddings`` (one (images, captions) pair per seed) under a
    command's options: its scoring options, the feature device (the similarity GEMM's) and the cache folder
    (the resample counts')."""
    from cca_bench.evaluation import score

    where = opts.locations
    return score(embeddings, image_index, distance, folds, opts.run, timings, opts.features.device, where.cache_dir)


def score_split(
    opts: Options, embeddings: list, split, image_index, distance: str, protocol: str, folds: int, timings: dict
) -> dict:
    """A run's evaluation fields: :func:`score_under`'s, and on COCO 5k the ECCV Caption / CxC fields
    (:func:`cca_bench.coco_extended.record_fields`, on the same resamples and cache folder)."""
    from cca_bench.coco_extended import record_fields

    evaluation = score_under(opts, embeddings, image_index, distance, folds, timings)
    where = opts.locations
    return evaluation | record_fields(embeddings, split, image_index, distance, protocol, opts.run, where.cache_dir)


def run_record(
    *,
    method: str,
    dataset_name: str,
    split,
    features: str,
    distance: str,
    protocol: str,
    folds: int,
    metrics: dict,
    recall_curve: dict,
    timings: dict,
    opts: Options,
    model: str,
    **fields,
) -> dict:
    """The run record ``results.write_run`` stores: the fields every run has, plus ``fields``
    (params, model config, fingerprints, intervals, ...). ``model`` starts the run id (``runrecord.config_name``)."""
    from cca_bench.results import now, versions

    return {
        "method": method,
        "dataset": dataset_tag(dataset_name, opts.dataset_options),
        "split": split.name,
        "features": features,
        "distance": distance,
        "protocol": protocol,
        "params": {},
        "params_label": "",
        "metrics": metrics,
        "recall_curve": recall_curve,
        "n_images": split.n_images,
        "n_captions": split.n_captions,
        "folds": folds,
        "timings": timings,
        "model": model,
        "config": run_config(opts, distance, protocol),
        "seeds": {},
        **fields,
        "versions": versions(),
        "created": now(),
    }


def check_widths(config: dict, fs: FeatureSet, model: Path) -> None:
    """The split's features must be as wide as those the model was fitted on (``feature_dims`` of its config):
    else a UserError naming the feature file and both widths."""
    fitted = config.get("feature_dims") or {}
    for kind, arr in (("image", fs.images), ("text", fs.texts)):
        if kind in fitted and arr.shape[1] != fitted[kind]:
            source = Path(fs.meta["data_root"]) / "cache" / fs.meta["cache_keys"][kind]
            raise UserError(
                f"{fs.meta['dataset']}/{fs.meta['split']} {kind} features ({source}) are "
                f"{arr.shape[1]} wide, but the model {model.name} was fitted on {fitted[kind]}-wide "
                f"{kind} features"
            )


def run_config(opts: Options, distance: str, protocol: str) -> dict:
    """The options of a run that are not in its name (with the model's params and seed, its full config)."""
    features, where = opts.features, opts.locations
    return {
        "dataset_options": opts.dataset_options,
        **opts.text_options(),
        "batch_size": features.batch_size,
        "device": features.device,
        "precision": features.precision,
        "feature_cache": where.cache,
        "data_root": str(where.data_root),
        **model_files(features),
        "distance": distance,
        "protocol": protocol,
        "ties": opts.run.ties,
    }


def seeds_of(model, opts: Options) -> dict:
    """The seeds behind a run: the model's ``random_state`` and a dataset builder's ``seed`` option."""
    params = model.get_params() if hasattr(model, "get_params") else {}
    return {"model": params.get("random_state"), "dataset": opts.dataset_options.get("seed")}


def params_label(method: str, model) -> str:
    """A short label of the hyper-parameters that matter, for tables (e.g. ``k=50 reg=0.001 p=1``)."""
    label = getattr(model, "params_label", None)
    return label() if callable(label) else ""


def run_split(record: dict, data_root: Path, kept=None):
    """The split a stored run was scored on, rebuilt read-only from the run's dataset name and dataset options
    (``kept(key, load)``: a store of parsed datasets, e.g. the web app's), or None when the data root cannot
    rebuild it or it no longer has the run's image count (then views name items by position)."""
    from cca_bench.datasets import get_dataset
    from cca_bench.datasets.cache import read_only

    options = (record.get("config") or {}).get("dataset_options") or {}
    name = str(record["dataset"]).partition("[")[0]
    if not isinstance(options, dict) or dataset_tag(name, options) != record["dataset"]:
        return None

    def load():
        with read_only():
            return get_dataset(name, Path(data_root), **options)

    try:
        split = (kept(("dataset", record["dataset"]), load) if kept else load()).split(record["split"])
    except (UserError, OSError, ValueError, TypeError):
        return None
    return split if split.n_images == record.get("n_images") else None
