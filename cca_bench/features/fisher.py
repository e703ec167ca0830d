"""Fisher-vector caption encodings: a caption is the Fisher vector of its word vectors under a mixture fitted on
the train captions' words (Klein, Lev, Sadeh, Wolf, CVPR 2015, "Associating Neural Word Embeddings with Deep
Image Representations using Fisher Vectors").

For a caption of T word vectors x_t, a mixture (weights w_k; per component k and dimension d a Gaussian with
mean mu and deviation sigma, or a Laplacian with location mu and scale s) and posteriors gamma_t(k), the
improved Fisher vector (Perronnin, Sanchez, Mensink, ECCV 2010) holds, for every component and dimension,

    Gaussian:  G_mu = 1/(T sqrt(w_k)) sum_t gamma_t(k) (x_t - mu) / sigma
               G_sigma = 1/(T sqrt(2 w_k)) sum_t gamma_t(k) [(x_t - mu)^2 / sigma^2 - 1]
    Laplacian: G_mu = 1/(T sqrt(w_k)) sum_t gamma_t(k) sign(x_t - mu)
               G_s = 1/(T sqrt(w_k)) sum_t gamma_t(k) [|x_t - mu| / s - 1]

(log-likelihood gradients w.r.t. mean and scale, each divided by the square root of the diagonal Fisher
information: 1/sigma^2 and 2/sigma^2 for the Gaussian, 1/s^2 and 1/s^2 for the Laplacian), laid out as
``[G_mu (K x D) | G_scale (K x D)]``: 2 K D values; then the signed square root and L2 normalisation.
``gmm+hglmm`` concatenates the two normalised vectors, scaled by 1/sqrt(2) (Klein et al.'s best rows).
Captions with no word vector get zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cca_bench.errors import UserError
from cca_bench.features.fitted import POOLINGS, FittedTextEncoder, check_vectors, vectors_config
from cca_bench.features.mixtures import HybridGaussianLaplacianMixture, Mixture, fit_gmm, posteriors
from cca_bench.features.text import flatten, oov_rate, vocab_table

BLOCK_VALUES = 4_000_000  # distinct words of a caption block x FV width: ~16 MB per float32 array


def fisher_vectors(counts, table: np.ndarray, m: Mixture) -> np.ndarray:
    """Improved Fisher vectors of a block of captions.

    Args:
        counts: (n, u) sparse (or dense) token counts of each caption over the u distinct words of the block.
        table: (u, D) float64 word vectors (after PCA when used).
        m: the mixture.
    Returns:
        (n, 2 K D) float32: ``[G_mu | G_scale]`` (module docstring), signed square root, L2 (zero rows stay zero).
    """
    import scipy.sparse as sp

    counts = sp.csr_matrix(counts, dtype=np.float32)
    gamma = posteriors(table, m)[0].astype(np.float32)  # (u, K): one posterior per distinct word
    z = ((table[:, None, :] - m.means) / m.scales).astype(np.float32)  # (u, K, D)
    g = m.gaussian
    first = np.where(g, z, np.sign(z))
    second = np.where(g, (z * z - 1) / np.float32(np.sqrt(2)), np.abs(z) - 1)
    weight = (gamma / np.sqrt(m.weights).astype(np.float32))[:, :, None]  # gamma_t(k) / sqrt(w_k)
    per_word = np.concatenate([(weight * first).reshape(len(table), -1), (weight * second).reshape(len(table), -1)], 1)
    fv = np.asarray(counts @ per_word, dtype=np.float32)
    tokens = np.asarray(counts.sum(1)).ravel()
    fv /= np.maximum(tokens, 1)[:, None]
    return improved_normalisation(fv)


def improved_normalisation(fv: np.ndarray) -> np.ndarray:
    """Signed square root then row L2 normalisation (Perronnin et al. 2010), in place; zero rows stay zero."""
    np.multiply(np.sign(fv), np.sqrt(np.abs(fv)), out=fv)
    norms = np.linalg.norm(fv, axis=1, keepdims=True)
    np.divide(fv, norms, out=fv, where=norms > 0)
    return fv


KINDS = {"gmm": ("gmm",), "hglmm": ("hglmm",), "gmm+hglmm": ("gmm", "hglmm")}


class FisherVectorEncoder(FittedTextEncoder):
    """Caption -> Fisher vector of its word vectors under mixtures fitted on the train captions' words.

    Args:
        vectors: the word-vector table (:class:`~cca_bench.features.text.WordVectors`).
        pooling: "gmm" (diagonal GMM, scikit-learn), "hglmm" (Klein et al.'s hybrid Gaussian-Laplacian mixture,
            :class:`~cca_bench.features.mixtures.HybridGaussianLaplacianMixture`, started from that GMM) or
            "gmm+hglmm" (both, concatenated).
        n_components: K components per mixture.
        pca: reduce the word vectors to this many principal components (fitted on the train words) first;
            None keeps all D.
        stopwords: drop scikit-learn's English stop words.
        max_fit_words: the mixtures and PCA are fitted on at most this many train word occurrences (a seeded
            random sample; every one when there are fewer).
        progress: show progress bars (stderr) for the mixture fit and the encoding; not part of the config.
        random_state: seed of the sample and of the GMM's k-means initialisation.
    Fitted: ``mixtures_`` {kind: Mixture}, ``pca_mean_`` (D,), ``pca_components_`` (D', D) or None,
        ``n_fit_words_``, ``n_features_`` = 2 K D' per mixture; after ``transform``: ``n_empty_``, ``oov_rate_``.
    """

    def __init__(
        self,
        vectors,
        pooling: str = "gmm",
        n_components: int = 32,
        pca: int | None = None,
        stopwords: bool = False,
        max_fit_words: int = 100_000,
        random_state: int = 0,
        progress: bool = False,
    ):
        self.vectors = vectors
        self.progress = progress
        self.pooling = pooling
        self.n_components = n_components
        self.pca = pca
        self.stopwords = stopwords
        self.max_fit_words = max_fit_words
        self.random_state = random_state

    @classmethod
    def from_options(cls, vectors, opts) -> FisherVectorEncoder:
        """The encoder the feature options (:class:`~cca_bench.features.options.FeatureOptions`) ask for."""
        if opts.idf:
            raise UserError(f"--idf weights mean word vectors only; it does not combine with --pooling {opts.pooling}")
        return cls(
            vectors,
            pooling=opts.pooling,
            n_components=opts.fv_components,
            pca=opts.fv_pca,
            stopwords=opts.stopwords,
            progress=opts.progress,
        )

    def config(self) -> dict:
        return {
            "encoder": "fisher_vectors",
            "pooling": self.pooling,
            **vectors_config(self.vectors),
            "n_components": int(self.n_components),
            "pca": None if self.pca is None else int(self.pca),
            "stopwords": bool(self.stopwords),
            "max_fit_words": int(self.max_fit_words),
            "random_state": int(self.random_state),
        }

    def fit(self, token_lists: Sequence[Sequence[str]]) -> FisherVectorEncoder:
        """Fit PCA (when asked) and the mixtures on the word vectors of the train captions; returns self."""
        if self.pooling not in KINDS:
            raise UserError(f"unknown pooling {self.pooling!r} (choose from mean, {', '.join(KINDS)})")
        if self.pca is not None and not 1 <= self.pca <= self.vectors.dim:
            raise UserError(
                f"--fv-pca {self.pca} must be between 1 and the word dimension {self.vectors.dim} "
                f"of {self.vectors.name}"
            )
        words = self._fit_words(token_lists)
        self.pca_mean_, self.pca_components_ = words.mean(0), None
        if self.pca is not None:
            self.pca_components_ = principal_axes(words - self.pca_mean_, self.pca)
        x = self._project(words)
        hglmm = HybridGaussianLaplacianMixture(self.n_components, random_state=self.random_state)
        steps = 1 + (hglmm.max_iter if "hglmm" in KINDS[self.pooling] else 0)  # the GMM, then each HGLMM EM step
        with self._bar(steps, f"FV mixture fit (K={self.n_components}, {len(words):,} words)", "step") as bar:
            gmm = fit_gmm(x, self.n_components, self.random_state)
            bar.update(1)
            self.mixtures_ = {"gmm": gmm}
            if "hglmm" in KINDS[self.pooling]:
                self.mixtures_["hglmm"] = hglmm.fit(x, init=gmm, on_iteration=lambda: bar.update(1)).mixture_
        self.mixtures_ = {kind: self.mixtures_[kind] for kind in KINDS[self.pooling]}
        self.n_fit_words_ = len(words)
        self._set_width()
        return self

    def _fit_words(self, token_lists) -> np.ndarray:
        """(m, D) float64 vectors of (a sample of) the train word occurrences; UserError when too few words."""
        caption, codes, vocab = flatten(list(token_lists))
        table, col = vocab_table(self.vectors, vocab, self.stopwords)
        tok = col[codes]
        tok = tok[tok >= 0]
        n_distinct = len(np.unique(tok))
        if self.n_components < 1 or self.n_components > n_distinct:
            raise UserError(
                f"--fv-components {self.n_components} must be between 1 and the number of distinct train "
                f"words with a {self.vectors.name} vector ({n_distinct})"
            )
        if len(tok) > self.max_fit_words:
            rng = np.random.default_rng(self.random_state)
            tok = tok[np.sort(rng.choice(len(tok), self.max_fit_words, replace=False))]
        return table[tok]

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x if self.pca_components_ is None else (x - self.pca_mean_) @ self.pca_components_.T

    def _set_width(self) -> None:
        d = self.vectors.dim if self.pca_components_ is None else len(self.pca_components_)
        self.n_features_ = 2 * self.n_components * d * len(self.mixtures_)

    def transform_blocks(self, token_lists: Sequence[Sequence[str]]):
        """The (n, n_features_) float32 Fisher vectors, yielded as consecutive blocks of captions.

        The posteriors are computed once per distinct word; each block of captions is one sparse
        (captions x distinct words) product with the block's per-word gradient terms.
        """
        import scipy.sparse as sp

        self._check_fitted()
        token_lists = list(token_lists)
        caption, codes, vocab = flatten(token_lists)
        table, col = vocab_table(self.vectors, vocab, self.stopwords)
        table = self._project(table)
        tok_col = col[codes]
        used = tok_col >= 0
        counts = sp.csr_matrix(
            (np.ones(used.sum(), np.float32), (caption[used], tok_col[used])), shape=(len(token_lists), len(table))
        )
        step = max(1, BLOCK_VALUES // max(1, self.n_features_ * 4))
        self.n_empty_ = int(len(token_lists) - np.count_nonzero(np.asarray(counts.sum(1)).ravel()))
        self.oov_rate_ = oov_rate(tok_col)
        parts = len(self.mixtures_)
        with self._bar(len(token_lists), "FV encoding", "caption") as bar:
            for s in range(0, len(token_lists), step):
                block = counts[s : s + step]
                words = np.unique(block.indices)
                block = block[:, words]
                fvs = [fisher_vectors(block, table[words], m) for m in self.mixtures_.values()]
                bar.update(block.shape[0])
                yield fvs[0] if parts == 1 else np.concatenate(fvs, 1) / np.float32(np.sqrt(parts))

    def _bar(self, total: int, desc: str, unit: str):
        """A tqdm bar on stderr (hidden unless ``progress``), cleared when done."""
        import sys

        from tqdm import tqdm

        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            disable=not getattr(self, "progress", False),
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
        )

    def state(self) -> tuple[dict, dict]:
        """(arrays, config): PCA mean/components and each mixture's weights, means, scales, gaussian mask."""
        self._check_fitted()
        arrays = {"pca_mean": self.pca_mean_}
        if self.pca_components_ is not None:
            arrays["pca_components"] = self.pca_components_
        for kind, m in self.mixtures_.items():
            arrays.update(m.arrays(f"{kind}."))
        return arrays, {**self.config(), "n_fit_words_": int(self.n_fit_words_)}

    @classmethod
    def from_state(cls, vectors, arrays: dict, config: dict) -> FisherVectorEncoder:
        check_vectors(vectors, config)
        enc = cls(
            vectors,
            **{k: config[k] for k in ("pooling", "n_components", "pca", "stopwords", "max_fit_words", "random_state")},
        )
        enc.pca_mean_ = np.asarray(arrays["pca_mean"])
        enc.pca_components_ = np.asarray(arrays["pca_components"]) if "pca_components" in arrays else None
        enc.mixtures_ = {kind: Mixture.from_arrays(arrays, f"{kind}.") for kind in KINDS[config["pooling"]]}
        enc.n_fit_words_ = config["n_fit_words_"]
        enc._set_width()
        return enc


def principal_axes(centred: np.ndarray, k: int) -> np.ndarray:
    """(k, D) leading principal axes of centred rows (n, D), signs fixed (largest entry of each axis positive)."""
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:k]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])
    return vt * np.where(signs == 0, 1, signs)[:, None]


for _kind in KINDS:
    POOLINGS.register(_kind, help=f"Fisher vector of the words under a {_kind.upper()} fitted on train words")(
        FisherVectorEncoder
    )
