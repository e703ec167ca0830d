"""The image pipeline protocol: image encoder ``name`` with its options, from a split to cached features.

The same contract as :mod:`cca_bench.features.text_pipeline`, for every registered image encoder (builtin
CNNs, weight-file CNNs, ONNX models, precomputed files, tiny images):
``ImagePipeline(name, options, data_root, dataset_options)`` validates the options the encoder reads
(``--precision``, ``--crops``, ``--onnx-model``: each refused by an encoder that does not take it); ``fit`` /
``state`` / ``restore`` are no-ops (no image encoder learns from train yet);
``key(dataset, split)`` is the cache key; ``encode(dataset, split, cache_dir, log)`` reads the cache or extracts
in resumable shards (on a Dask cluster with ``--backend dask``); ``encode_query(path, dataset)`` encodes one
photo for ``search``. What an encoder can do comes from its registered metadata (``precision``, ``identity``,
``shard_rows``, ``precomputed``) and its signature, never from its name.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np

from cca_bench.config import torch_device
from cca_bench.errors import UserError
from cca_bench.features.options import FeatureOptions
from cca_bench.features.protocol import Stateless, model_file_options
from cca_bench.registry import IMAGE_ENCODERS

IMAGE_MODEL_FLAGS = {"onnx_model": "--onnx-model"}  # FeatureOptions field -> flag of a user's model file


def image_tag(opts: FeatureOptions) -> str:
    """``+10crops`` when more than one crop is averaged (model and run names)."""
    return f"+{opts.crops}crops" if opts.crops != 1 else ""


class ImagePipeline(Stateless):
    """Image encoder ``name`` under the feature ``options``; ``data_root`` is where weight and image files live,
    ``dataset_options`` the dataset builder's options (part of the cache key; Dask workers rebuild the dataset)."""

    def __init__(self, name: str, options: FeatureOptions, data_root: Path, dataset_options: dict):
        self.name, self.opts = name, options
        self.data_root, self.dataset_options = Path(data_root), dict(dataset_options)
        self.encoder, self.meta = IMAGE_ENCODERS.get(name), IMAGE_ENCODERS.meta(name)
        self.precision = self._precision()
        self.kwargs(None)  # --crops / --onnx-model given to an encoder without them fail now

    def config(self) -> dict:
        """What decides the image features besides the split: encoder, precision, crops, model files."""
        return {
            "encoder": self.name,
            "precision": self.precision,
            "crops": self.opts.crops,
            **model_file_options(self.encoder, self.name, self.opts, IMAGE_MODEL_FLAGS),
        }

    def _precision(self) -> str | None:
        """The precision the encoder runs at (its registered ``precision`` rule decides ``auto``); None for
        encoders without one, which refuse an explicit bf16 / fp16."""
        from cca_bench.features.accel import resolve_precision

        auto = self.meta.get("precision")
        if auto is None:
            if self.opts.precision not in ("auto", "fp32"):
                raise UserError(f"image encoder {self.name!r} has no --precision option (it runs no network)")
            return None
        return resolve_precision(self.opts.precision, torch_device(self.opts.device), auto)

    def kwargs(self, shard_dir: Path | None) -> dict:
        """Keyword arguments for the encoder: the common ones, plus ``crops``, ``data_root``, ``shard_dir``,
        ``precision`` and ``onnx_model`` where its signature takes them; ``--crops 10`` or ``--onnx-model``
        elsewhere is a UserError."""
        opts, accepted = self.opts, inspect.signature(self.encoder).parameters
        if opts.crops != 1 and "crops" not in accepted:
            raise UserError(f"image encoder {self.name!r} has no --crops option (it works on one view of each image)")
        extra = {"crops": opts.crops, "data_root": self.data_root, "shard_dir": shard_dir, "precision": self.precision}
        own_batch = "batch_size" in accepted and accepted["batch_size"].default is None  # it picks its own size
        return {
            "batch_size": opts.batch_size if own_batch else opts.batch_size or 64,
            "device": opts.device,
            "progress": opts.progress,
            **{k: v for k, v in extra.items() if k in accepted},
            **model_file_options(self.encoder, self.name, opts, IMAGE_MODEL_FLAGS),
        }

    def key(self, dataset, split) -> dict:
        """Everything that decides a split's image features: the feature cache key."""
        key = {
            "kind": "image",
            "dataset": dataset.name,
            "split": split.name,
            "fingerprint": split.fingerprint(),
            "encoder": self.name,
            "dataset_options": self.dataset_options,
        }
        if self.precision not in (None, "fp32"):
            key["precision"] = self.precision  # only then: fp32 keys stay as they were
        if self.opts.crops != 1:
            key["crops"] = self.opts.crops  # only then: the keys of 1-crop features stay as they were
        identity = self.meta.get("identity")
        if identity is not None:  # an encoder reading a user's model file: its hash (only then, as for crops)
            key["model"] = identity(**self.kwargs(None))
        return key

    def encode(self, dataset, split, cache_dir: Path | None, log, key: dict | None = None) -> np.ndarray:
        """The split's (n_images, d) image features from the cache, else computed (in resumable shards when the
        encoder can); images that could not be read are listed in a file beside the cache entry."""
        from cca_bench.features.store import finish_shards, load_or_compute, shard_dir

        key = key or self.key(dataset, split)
        kwargs = self.kwargs(shard_dir(cache_dir, key))
        encoder = self._on_dask(dataset, split, kwargs, log) if self.opts.backend == "dask" else self.encoder
        images, hit = load_or_compute(cache_dir, key, lambda: encoder(split, dataset, **kwargs), n_rows=split.n_images)
        log(
            f"{'loaded cached' if hit else 'computed'} {self.name} features for {dataset.name}/{split.name}: "
            f"{images.shape[0]} x {images.shape[1]}"
        )
        skipped, listing = finish_shards(cache_dir, key)
        if skipped:
            warnings.warn(
                f"{len(skipped)} of {split.n_images} images were unreadable and have zero features "
                f"(listed with reasons in {listing})",
                stacklevel=2,
            )  # shown under -q too, as its help says
        if len(images) != split.n_images:
            raise UserError(
                f"{self.name} gave {len(images)} feature rows for {split.n_images} images of "
                f"{dataset.name}/{split.name}"
            )
        return images

    def _on_dask(self, dataset, split, kwargs: dict, log):
        """The encoder preceded by the extraction of the split's missing shards as tasks on a Dask cluster
        (workers write them into the cache's shard folder; the encoder then only assembles them). Encoders
        without shards, or no cache to hold shards, extract locally."""
        from cca_bench.features.distributed import ExtractJob, extract_shards

        if kwargs.get("shard_dir") is None or "shard_rows" not in self.meta:
            log(
                f"{self.name}: extracting {dataset.name}/{split.name} locally (Dask extraction needs an image "
                "encoder with shards and the feature cache)"
            )
            return self.encoder
        job = ExtractJob.make(dataset.name, self.data_root, self.dataset_options, split, self.name, kwargs)

        def on_dask(*args, **kw):  # the cluster's bar shows the images done; assembling the shards needs none
            extract_shards(job, split.n_images, self.opts.dask_scheduler, progress=kw.get("progress", False))
            return self.encoder(*args, **{**kw, "progress": False})

        return on_dask

    def encode_query(self, path: str | Path, dataset) -> np.ndarray:
        """(1, d) features of the photo at ``path`` (as a one-image split of ``dataset``)."""
        from cca_bench.datasets.base import Split, open_rgb

        if self.meta.get("precomputed"):
            raise UserError(
                f"{self.name} features are read from the dataset's files and cannot encode {path}; "
                "use features with an image encoder that reads pixels (e.g. efficientnet, tinyimage)"
            )
        path = Path(path)
        split = Split(
            dataset="query",
            name="query",
            image_ids=[path.name],
            captions=[],
            tokens=[],
            image_index=np.zeros(0),
            image_rows=np.zeros(1),
            loader=lambda i: open_rgb(path),
            image_paths=[path],
        )
        return self.encoder(split, dataset, **{**self.kwargs(None), "batch_size": 1, "progress": False})
