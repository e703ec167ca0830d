"""The text pipeline protocol: one object per caption encoder, from options to cached features of a split.

Every registered text encoder (``TEXT_ENCODERS``) is run through one of the pipelines in
:data:`TEXT_PIPELINES`, chosen by the encoder's registered ``kind`` (``word_vectors`` by default, ``sentence``
for models that read whole captions). A pipeline, like a scikit-learn ``Pipeline`` step or a
sentence-transformers module, has one contract whatever it holds:

- ``cls(name, options, data_root, dataset_options)`` validates its own options (``--pooling`` given to a
  sentence model, ``--onnx-text-model`` to a word-vector table are UserErrors), before any work;
- ``fit(dataset) -> self`` learns from the train split (IDF, Fisher-vector mixtures; a no-op when stateless);
- ``state() -> (arrays, config)`` is what the model file stores of the fit; ``restore(arrays, config) -> self``
  rebuilds it from the arrays and config of a saved model (never refitting on val or test);
- ``key(dataset, split)`` is the feature cache key of a split (the one key for ``generate``, ``run_benchmark``,
  ``search`` and the web app); ``config()`` the options that go into run and model records;
- ``encode(dataset, split, cache_dir, log, key=None) -> ((n_captions, d) float32, info)`` through the feature cache, in
  blocks where the features are wide; ``encode_query(text) -> (1, d)`` for ``search``;
- ``word_vectors()`` loads the word-vector table for methods that embed words themselves (vse).

``options`` is the :class:`~cca_bench.features.options.FeatureOptions` of the command; ``data_root`` (where
word-vector files live) and ``dataset_options`` (the dataset builder's options, part of every cache key) come as
plain arguments.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np

from cca_bench.datasets.base import tokenize
from cca_bench.errors import UserError
from cca_bench.features.options import FeatureOptions
from cca_bench.features.protocol import Stateless, model_file_options
from cca_bench.registry import TEXT_ENCODERS, Registry

TEXT_PIPELINES = Registry("text pipeline")
TEXT_MODEL_FLAGS = {"onnx_text_model": "--onnx-text-model"}  # FeatureOptions field -> flag of a user's model file
TEXT_ENCODER_KEY = "text_encoder"  # where a model's config holds the fitted text encoder's config


def text_pipeline(name: str, options: FeatureOptions, data_root: Path, dataset_options: dict):
    """The pipeline of text encoder ``name`` under ``options`` (validated, nothing loaded yet)."""
    kind = TEXT_ENCODERS.meta(name).get("kind", "word_vectors")
    return TEXT_PIPELINES.get(kind)(name, options, data_root, dataset_options)


def text_options(opts: FeatureOptions) -> dict:
    """The text options of a run or model record (and of every text cache key)."""
    fv = {"pooling": opts.pooling, "fv_components": opts.fv_components, "fv_pca": opts.fv_pca}
    # mean pooling adds nothing: the cache keys of mean-vector features stay as they were
    return {
        "idf": opts.idf,
        "stopwords": opts.stopwords,
        "text_path": opts.text_path,
        **(fv if opts.pooling != "mean" else {}),
    }


def text_tag(opts: FeatureOptions) -> str:
    """``+idf`` / ``+stop`` / ``+gmm32`` / ``+pca100`` for the text options that are on (model and run names)."""
    fv = f"+{opts.pooling}{opts.fv_components}" if opts.pooling != "mean" else ""
    pca = f"+pca{opts.fv_pca}" if opts.pooling != "mean" and opts.fv_pca is not None else ""
    return ("+idf" if opts.idf else "") + ("+stop" if opts.stopwords else "") + fv + pca


class TextPipeline(Stateless):
    """What every text pipeline shares: the encoder's name and options, its model-file options and the
    cache key's common part. Subclasses implement ``encode``, ``encode_query`` and, when they learn, ``fit``."""

    def __init__(self, name: str, options: FeatureOptions, data_root: Path, dataset_options: dict):
        self.name, self.opts = name, options
        self.data_root, self.dataset_options = Path(data_root), dict(dataset_options)
        self.model_files = model_file_options(TEXT_ENCODERS.get(name), name, options, TEXT_MODEL_FLAGS)

    def fits(self) -> bool:
        """Whether the pipeline learns from the train split."""
        return False

    def config(self) -> dict:
        """The text options of run and model records (part of every text cache key)."""
        return text_options(self.opts)

    def key(self, dataset, split) -> dict:
        """Everything that decides a split's caption features: dataset, split content, encoder, options, and
        the identity of a user's model files."""
        key = {
            "kind": "text",
            "dataset": dataset.name,
            "split": split.name,
            "fingerprint": split.fingerprint(),
            "encoder": self.name,
            "dataset_options": self.dataset_options,
            **self.config(),
            "idf_fitted_on": self._train_fingerprint(dataset) if self.opts.idf else None,
        }
        return {**key, **self._fitted_key(dataset), **self._model_key()}

    def _train_fingerprint(self, dataset) -> str | None:
        return dataset.split("train").fingerprint() if self.fits() else None

    def _fitted_key(self, dataset) -> dict:
        return {}

    def _model_key(self) -> dict:
        identity = TEXT_ENCODERS.meta(self.name).get("identity")
        return {} if identity is None else {"model": identity(self.data_root, self.opts.text_path, **self.model_files)}

    def _log_encoded(self, dataset, split, texts: np.ndarray, hit: bool, log) -> None:
        log(
            f"{'loaded cached' if hit else 'computed'} {self.name} caption features for {dataset.name}/"
            f"{split.name}: {texts.shape[0]} x {texts.shape[1]}"
        )


@functools.lru_cache(maxsize=2)
def load_word_vectors(name: str, data_root: Path, path: str | None):
    """The word vectors of a text encoder, loaded once per process (user files can be gigabytes, and one
    ``generate`` encodes train and val and may hand the same table to the method)."""
    return TEXT_ENCODERS.get(name)(data_root, path=path)


@TEXT_PIPELINES.register("word_vectors", help="a word-vector table pooled over each caption's tokens")
class WordVectorPipeline(TextPipeline):
    """Tokens -> pooled word vectors: the mean (optionally IDF-weighted, stop words dropped) or a Fisher vector
    (:data:`cca_bench.features.fitted.POOLINGS`). The fitted pooling is saved in the model file."""

    def __init__(self, name: str, options: FeatureOptions, data_root: Path, dataset_options: dict):
        super().__init__(name, options, data_root, dataset_options)
        self.encoder_ = None

    def fits(self) -> bool:
        return bool(self.opts.idf or self.opts.pooling != "mean")

    def word_vectors(self):
        return load_word_vectors(self.name, self.data_root, self.opts.text_path)

    def _new(self):
        from cca_bench.features.fitted import POOLINGS

        return POOLINGS.get(self.opts.pooling).from_options(self.word_vectors(), self.opts)

    def fit(self, dataset) -> WordVectorPipeline:
        self.encoder_ = self._new().fit(dataset.split("train").tokens if self.fits() else [])
        return self

    def _encoder(self):
        """The fitted pooling; a stateless one fits on nothing the first time it is needed."""
        if self.encoder_ is None:
            if self.fits():
                raise ValueError(f"the {self.name} text pipeline needs fit() or restore() for --idf / --pooling")
            self.encoder_ = self._new().fit([])
        return self.encoder_

    def state(self) -> tuple[dict, dict]:
        from cca_bench.features.fitted import encoder_state

        arrays, config = encoder_state(self._encoder())
        return arrays, {TEXT_ENCODER_KEY: config}

    def restore(self, arrays: dict, config: dict, model: str = "the model") -> WordVectorPipeline:
        """The pooling fitted with a saved model (its ``arrays`` and ``config``). Models saved before encoders
        were stored hold none: fine for plain mean vectors, a UserError otherwise. The saved pooling must have
        the options the command asks for."""
        from cca_bench.features.fitted import from_saved

        wanted = self._new()
        saved = from_saved(arrays, config.get(TEXT_ENCODER_KEY), wanted.vectors)
        if saved is None:
            if self.fits():
                raise UserError(f"{model} holds no fitted text encoder (saved by an older version): run generate again")
            saved = wanted.fit([])
        check_same_config(saved.config(), wanted.config(), model)
        self.encoder_ = saved
        return self

    def _fitted_key(self, dataset) -> dict:
        if not self.fits():
            return {}
        return {"fitted_on": self._train_fingerprint(dataset), "text_encoder": self._encoder().fingerprint()}

    def encode(self, dataset, split, cache_dir: Path | None, log, key: dict | None = None) -> tuple[np.ndarray, dict]:
        """The split's caption features from the cache, else encoded block by block into it (empty captions
        counted); info: ``oov_rate``, the share of caption tokens without a word vector."""
        from cca_bench.features.store import load_or_stream

        encoder, info = self._encoder(), {}

        def blocks():
            for block in encoder.transform_blocks(split.tokens):
                info.update(n_empty=int(encoder.n_empty_), oov_rate=float(encoder.oov_rate_))
                yield block

        key = key or self.key(dataset, split)
        texts, hit = load_or_stream(cache_dir, key, (split.n_captions, encoder.n_features_), blocks, info=info)
        if not hit and info.get("n_empty"):
            warnings.warn(
                f"{info['n_empty']} of {split.n_captions} captions of {dataset.name}/{split.name} had "
                f"no known {self.name} word and were encoded as zero vectors",
                stacklevel=2,
            )  # kept by -q
        return texts, info

    def encode_query(self, text: str) -> np.ndarray:
        """(1, d) features of one caption; a caption without a known word is a UserError."""
        encoder = self._encoder()
        texts = encoder.transform([tokenize(text)])
        if encoder.n_empty_:
            dropped = " once stop words are dropped" if self.opts.stopwords else ""
            raise UserError(f"the query {text!r} has no word with a {self.name} vector{dropped}")
        return texts


def check_same_config(saved: dict, asked: dict, model: str) -> None:
    """UserError when a saved fitted encoder's config differs from the one the command asks for."""
    differ = sorted(k for k in asked if saved.get(k) != asked[k] and k != "source")
    if differ:
        raise UserError(
            f"{model} was fitted with text encoder {', '.join(f'{k}={saved.get(k)}' for k in differ)}, "
            f"not {', '.join(f'{k}={asked[k]}' for k in differ)}"
        )


@TEXT_PIPELINES.register("sentence", help="a model that reads whole captions (sentence-transformers, ONNX)")
class SentencePipeline(TextPipeline):
    """Raw captions -> a sentence model's vectors (stateless: nothing is fitted, nothing saved)."""

    def __init__(self, name: str, options: FeatureOptions, data_root: Path, dataset_options: dict):
        given = [
            f
            for f, on in (
                ("--idf", options.idf),
                ("--stopwords", options.stopwords),
                (f"--pooling {options.pooling}", options.pooling != "mean"),
            )
            if on
        ]
        if given:
            raise UserError(
                f"{', '.join(given)}: --idf and --stopwords weight word vectors, --pooling pools them; "
                f"{name} is a sentence encoder that reads whole captions"
            )
        super().__init__(name, options, data_root, dataset_options)

    def word_vectors(self):
        raise UserError(
            f"{self.name} is a sentence encoder: it has no word vectors for a method that embeds words "
            "itself (such as vse); use a word-vector text encoder (glove50, word2vec, ...)"
        )

    def _model(self):
        o = self.opts
        return _sentence_model(
            self.name,
            self.data_root,
            o.text_path,
            o.device,
            o.batch_size or 64,
            o.progress,
            tuple(sorted(self.model_files.items())),
        )

    def encode(self, dataset, split, cache_dir: Path | None, log, key: dict | None = None) -> tuple[np.ndarray, dict]:
        """The split's caption features from the sentence model (raw caption strings), cached."""
        from cca_bench.features.store import load_or_compute

        key = key or self.key(dataset, split)
        texts, hit = load_or_compute(cache_dir, key, lambda: self._model().encode(split.captions))
        self._log_encoded(dataset, split, texts, hit, log)
        return texts, {}

    def encode_query(self, text: str) -> np.ndarray:
        return self._model().encode([text])


@functools.lru_cache(maxsize=2)
def _sentence_model(
    name: str, data_root: Path, path: str | None, device: str, batch_size: int, progress: bool, extra: tuple
):
    """The sentence model of text encoder ``name`` (``encode(captions) -> (n, d)``), built once per process."""
    return TEXT_ENCODERS.get(name)(
        data_root, path, device=device, batch_size=batch_size, progress=progress, **dict(extra)
    )
