"""The text and image pipelines of one FEATURES name, together: fit on train, save into and restore from the
model file, encode a split into a cached :class:`~cca_bench.features.store.FeatureSet`.

This is the one path from a dataset split to features: ``generate`` fits it, ``run_benchmark``, ``search`` and
the web app restore it from the model file, so every command computes the same cache keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cca_bench.cache_entries import cache_key
from cca_bench.config import FeatureSpec, timed
from cca_bench.errors import UserError
from cca_bench.features.image_pipeline import IMAGE_MODEL_FLAGS, ImagePipeline, image_tag
from cca_bench.features.options import FeatureOptions
from cca_bench.features.store import FeatureSet
from cca_bench.features.text_pipeline import TEXT_MODEL_FLAGS, text_pipeline, text_tag


def features_tag(spec: FeatureSpec, opts: FeatureOptions) -> str:
    """``glove50_efficientnet_lite0`` plus ``+idf`` / ``+stop`` / ``+gmm32`` / ``+pca100`` / ``+10crops`` when
    those options are on."""
    return spec.name + text_tag(opts) + image_tag(opts)


def model_files(opts: FeatureOptions) -> dict:
    """The user's model files given (``--onnx-model``, ``--onnx-text-model``), for run and model records."""
    return {k: getattr(opts, k) for k in (*IMAGE_MODEL_FLAGS, *TEXT_MODEL_FLAGS) if getattr(opts, k) is not None}


def saved_feature_options(feature_options: dict, name: str) -> dict:
    """The :class:`FeatureOptions` fields a saved model's ``feature_options`` (its JSON) and name give back: text
    options from the JSON, ``crops`` from the name (``+10crops``)."""
    crops = re.search(r"\+(\d+)crops(@|$)", name)
    text = feature_options
    return {
        "text_path": text.get("text_path"),
        "idf": bool(text.get("idf")),
        "stopwords": bool(text.get("stopwords")),
        "crops": int(crops[1]) if crops else 1,
        **{k: text[k] for k in ("pooling", "fv_components", "fv_pca") if k in text},
    }


def split_feature_grid(cv: dict | None, opts: FeatureOptions) -> tuple[dict | None, list[dict] | None]:
    """(the CV request without its feature grid, the feature option points to search or None): today the
    Fisher-vector sizes of ``--cv-fv-components``."""
    if cv is None or not cv.get("fv_components"):
        return cv, None
    if opts.pooling == "mean":
        raise UserError("--cv-fv-components searches Fisher-vector sizes: it needs --pooling gmm, hglmm or gmm+hglmm")
    return {k: v for k, v in cv.items() if k != "fv_components"}, [
        {"fv_components": int(k)} for k in cv["fv_components"]
    ]


def option_flags(point: dict) -> str:
    """``--fv-components 16`` for ``{"fv_components": 16}``: a chosen feature grid point as command-line flags."""
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in point.items())


@dataclass
class Pipelines:
    """The text and image pipelines of ``spec`` under ``feature_options`` (validated when built), reading
    encoder files under ``data_root``, for a dataset built with ``dataset_options`` (part of every cache key)."""

    spec: FeatureSpec
    feature_options: FeatureOptions
    data_root: Path
    text: object
    image: ImagePipeline

    @classmethod
    def of(
        cls, spec: FeatureSpec, options: FeatureOptions, data_root: Path, dataset_options: dict | None = None
    ) -> Pipelines:
        if not isinstance(options, FeatureOptions):  # the features layer takes its own options, nothing wider
            raise TypeError(f"Pipelines.of takes FeatureOptions, not {type(options).__name__}")
        where = (Path(data_root), dict(dataset_options or {}))
        return cls(
            spec,
            options,
            where[0],
            text_pipeline(spec.text, options, *where),
            ImagePipeline(spec.image, options, *where),
        )

    def fit(self, dataset) -> Pipelines:
        """Fit both on the dataset's train split (generate)."""
        self.text.fit(dataset)
        self.image.fit(dataset)
        return self

    def state(self) -> tuple[dict, dict]:
        """(arrays, config entries) the model file stores of both fits."""
        (ta, tc), (ia, ic) = self.text.state(), self.image.state()
        return {**ta, **ia}, {**tc, **ic}

    def restore(self, arrays: dict, config: dict, model: str) -> Pipelines:
        """Both fits from a saved model's arrays and config (``model`` names it in errors)."""
        self.text.restore(arrays, config, model)
        self.image.restore(arrays, config, model)
        return self

    def options(self) -> dict:
        """The feature options of run and model records (the text pipeline's config, as recorded since the first
        release; the image options are in the model and run names and in the cache keys)."""
        return self.text.config()

    def keys(self, dataset, split) -> dict:
        """{"image": cache key, "text": cache key} of a split."""
        return {"image": self.image.key(dataset, split), "text": self.text.key(dataset, split)}

    def cached(self, dataset, split_name: str, cache_dir: Path) -> bool:
        """Whether both feature arrays of the split are complete entries of ``cache_dir``."""
        stems = [cache_key(key) for key in self.keys(dataset, dataset.split(split_name)).values()]
        return all((Path(cache_dir) / f"{s}{ext}").is_file() for s in stems for ext in (".npy", ".json"))

    def encode(
        self,
        dataset,
        split_name: str,
        timings: dict,
        cache_dir: Path | None,
        log: Callable[[str], None] = lambda msg: None,
    ) -> FeatureSet:
        """One split through both pipelines, cached in ``cache_dir`` (DATA/cache; None: ``--no-cache``);
        ``log`` takes one line per feature array (computed or loaded)."""
        split = dataset.split(split_name)
        if split.n_captions == 0:
            raise UserError(f"{dataset.name}/{split_name} has no captions")
        keys = self.keys(dataset, split)
        images = timed(
            timings,
            f"image_features_{split_name}",
            lambda: self.image.encode(dataset, split, cache_dir, log, key=keys["image"]),
        )
        texts, info = timed(
            timings,
            f"text_features_{split_name}",
            lambda: self.text.encode(dataset, split, cache_dir, log, key=keys["text"]),
        )
        meta = {
            "dataset": dataset.name,
            "split": split_name,
            "features": self.spec.name,
            "oov_rate": info.get("oov_rate"),
            "fingerprint": keys["image"]["fingerprint"],
            "text_options": self.options(),
            "data_root": str(self.data_root),  # the cache file names (under DATA/cache) of both feature arrays
            "cache_keys": {kind: cache_key(key) + ".npy" for kind, key in keys.items()},
        }
        return FeatureSet(
            images=images,
            texts=texts,
            image_index=split.image_index,
            tokens=split.tokens,
            meta=meta,
            word_vectors=self.text.word_vectors,
        )
