"""The feature options: everything besides the FEATURES name that decides how captions and images become features.

One frozen :class:`FeatureOptions` is what the feature pipelines (:mod:`cca_bench.features.pipelines`) receive;
the orchestrator (:mod:`cca_bench.benchmark`) builds it from the CLI flags or API arguments. The options that
change the features are part of the cache keys, model and run names (``text_path``, ``idf``, ``stopwords``, the
pooling fields, ``crops``, the resolved precision, the model files); the others say how extraction runs
(``batch_size``, ``device``, ``backend``, ``dask_scheduler``, ``progress``). Each pipeline validates the options
its encoder reads when it is built (``--pooling`` given to a sentence model, ``--crops`` to an encoder without
crops are UserErrors); the choices no encoder decides are checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from cca_bench.errors import UserError

BACKENDS = ("numpy", "dask")  # where missing image feature shards are extracted: here, or as Dask tasks


@dataclass(frozen=True)
class FeatureOptions:
    """How the pipelines of one FEATURES name encode a dataset (defaults: the CLI's)."""

    text_path: str | None = None  # a user's word-vector or sentence-model file for the text encoder
    idf: bool = False
    stopwords: bool = False
    pooling: str = "mean"  # mean | gmm | hglmm | gmm+hglmm (cca_bench.features.fitted.POOLINGS)
    fv_components: int = 32
    fv_pca: int | None = None
    batch_size: int | None = None  # None: each image encoder's own choice (from free memory on a GPU)
    crops: int = 1
    device: str = "auto"
    precision: str = "auto"  # fp32 | bf16 | fp16 | auto (cca_bench.features.accel)
    backend: str = "numpy"  # "dask": image shards are extracted as tasks on a Dask cluster
    dask_scheduler: str | None = None
    onnx_model: str | None = None
    onnx_text_model: str | None = None
    progress: bool = True  # extraction and Fisher-vector progress bars (-q: off)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise UserError(f"unknown extraction backend {self.backend!r} (choose from {', '.join(BACKENDS)})")

    def with_(self, **changes) -> FeatureOptions:
        """A copy with ``changes`` (e.g. a CV grid point ``{"fv_components": 16}``); an unknown name is a
        UserError naming the feature options."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise UserError(
                f"{unknown[0]!r} is not a feature option (they are: {', '.join(f.name for f in fields(self))})"
            )
        return replace(self, **changes)
