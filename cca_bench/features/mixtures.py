"""Diagonal mixtures of word vectors for Fisher vectors: GMM (scikit-learn) and the hybrid Gaussian-Laplacian HGLMM.

A :class:`Mixture` holds K components over D dimensions. Each dimension of each component is either Gaussian,
``N(x; mu, sigma^2)``, or Laplacian, ``(1 / 2s) exp(-|x - mu| / s)``; ``scales`` holds sigma or s and
``gaussian`` says which. A GMM is the all-Gaussian case.

HGLMM (Klein, Lev, Sadeh, Wolf, CVPR 2015, "Associating Neural Word Embeddings with Deep Image Representations
using Fisher Vectors", and the longer arXiv:1411.7399): each dimension of a component is a weighted geometric mean
``N^beta L^(1 - beta)``. The expected complete log-likelihood is linear in beta, so the M-step puts every beta at 0
or 1: per component and dimension it fits both the Gaussian (weighted mean and variance) and the Laplacian
(weighted median and mean absolute deviation) and keeps the one with the higher expected log-likelihood. That
M-step is exact, so EM never lowers the likelihood (tested); once beta is binary the density is a proper one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cca_bench.errors import UserError

_LOG_2PI = float(np.log(2 * np.pi))
_BLOCK_ELEMENTS = 4_000_000  # rows x K x D per broadcast block (32 MB in float64)


@dataclass
class Mixture:
    """K diagonal components over D dimensions.

    weights (K,) sum to 1; means (K, D); scales (K, D): sigma (Gaussian) or s (Laplacian), > 0;
    gaussian (K, D) bool: which density each dimension of each component uses.
    """

    weights: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    gaussian: np.ndarray

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}weights": self.weights,
            f"{prefix}means": self.means,
            f"{prefix}scales": self.scales,
            f"{prefix}gaussian": self.gaussian.astype(np.uint8),
        }

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str) -> Mixture:
        return cls(
            np.asarray(arrays[f"{prefix}weights"], np.float64),
            np.asarray(arrays[f"{prefix}means"], np.float64),
            np.asarray(arrays[f"{prefix}scales"], np.float64),
            np.asarray(arrays[f"{prefix}gaussian"]).astype(bool),
        )


def _row_block(k: int, d: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, k * d))


def log_densities(X: np.ndarray, m: Mixture) -> np.ndarray:
    """(n, K) float64 ``log p(x | component k)`` of rows X (n, D).

    The Gaussian dimensions are three matrix products; the Laplacian ones need ``|x - mu|`` per component,
    broadcast over row blocks.
    """
    X = np.asarray(X, np.float64)
    g = m.gaussian
    inv_var = np.where(g, 1.0 / m.scales**2, 0.0)  # (K, D), zero on Laplacian dimensions
    const = np.where(g, -0.5 * _LOG_2PI - np.log(m.scales), -np.log(2 * m.scales)).sum(1)
    out = -0.5 * ((X**2) @ inv_var.T - 2 * X @ (inv_var * m.means).T + (inv_var * m.means**2).sum(1))
    out += const
    lap = ~g
    if lap.any():
        inv_s = np.where(lap, 1.0 / m.scales, 0.0)
        cols = np.flatnonzero(lap.any(0))  # only dimensions some component models as Laplacian
        mu, w = m.means[:, cols], inv_s[:, cols]
        step = _row_block(len(m.weights), len(cols))
        for s in range(0, len(X), step):
            out[s : s + step] -= np.einsum("nkd,kd->nk", np.abs(X[s : s + step, None, cols] - mu), w)
    return out


def posteriors(X: np.ndarray, m: Mixture) -> tuple[np.ndarray, np.ndarray]:
    """(responsibilities (n, K) float64, log-likelihood of each row (n,)) of rows X (n, D)."""
    from scipy.special import logsumexp

    joint = log_densities(X, m) + np.log(m.weights)
    ll = logsumexp(joint, axis=1)
    return np.exp(joint - ll[:, None]), ll


def fit_gmm(
    X: np.ndarray, n_components: int, random_state: int = 0, reg: float = 1e-6, max_iter: int = 100, tol: float = 1e-3
) -> Mixture:
    """A diagonal GMM of rows X (n, D) by scikit-learn's ``GaussianMixture`` (k-means initialisation)."""
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(
        n_components, covariance_type="diag", reg_covar=reg, max_iter=max_iter, tol=tol, random_state=random_state
    ).fit(np.asarray(X, np.float64))
    return Mixture(gm.weights_.copy(), gm.means_.copy(), np.sqrt(gm.covariances_), np.ones(gm.means_.shape, bool))


class HybridGaussianLaplacianMixture:
    """HGLMM fitted by EM (Klein et al. 2015), scikit-learn style.

    Args:
        n_components: K.
        max_iter: EM iterations at most; tol: stop when the mean log-likelihood per row rises by less.
        reg: floor of the variances (and of s^2), as scikit-learn's ``reg_covar``.
        random_state: seed of the initial GMM (scikit-learn, k-means initialisation).
    Fitted: ``mixture_`` (:class:`Mixture`), ``log_likelihoods_`` (mean log-likelihood per row of the
    initial GMM and after each EM iteration), ``n_iter_``, ``converged_``.
    """

    def __init__(
        self, n_components: int, max_iter: int = 50, tol: float = 1e-4, reg: float = 1e-6, random_state: int = 0
    ):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.reg = reg
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, init: Mixture | None = None, on_iteration: Callable[[], None] | None = None
    ) -> HybridGaussianLaplacianMixture:
        """EM from ``init`` (default: a diagonal GMM of X), on rows X (n, D); ``on_iteration()`` is called after
        each EM step (a progress bar)."""
        X = np.asarray(X, np.float64)
        if len(X) < self.n_components:
            raise UserError(f"HGLMM with {self.n_components} components needs at least as many rows, got {len(X)}")
        m = init if init is not None else fit_gmm(X, self.n_components, self.random_state, self.reg)
        order = np.argsort(X, axis=0, kind="stable")  # the data never change: sort once for every median
        resp, ll = posteriors(X, m)
        history = [float(ll.mean())]
        self.converged_ = False
        for _ in range(self.max_iter):
            m = hglmm_m_step(X, resp, order, self.reg)
            resp, ll = posteriors(X, m)
            history.append(float(ll.mean()))
            if on_iteration is not None:
                on_iteration()
            if history[-1] - history[-2] < self.tol:
                self.converged_ = True
                break
        self.mixture_, self.log_likelihoods_, self.n_iter_ = m, history, len(history) - 1
        return self

    def score(self, X: np.ndarray) -> float:
        """Mean log-likelihood per row of X under the fitted mixture."""
        return float(posteriors(X, self.mixture_)[1].mean())


def hglmm_m_step(X: np.ndarray, resp: np.ndarray, order: np.ndarray, reg: float) -> Mixture:
    """The exact M-step: per component and dimension the better of the weighted Gaussian and Laplacian fits.

    X (n, D) float64; resp (n, K) responsibilities; order (n, D) ``argsort(X, axis=0)``.
    Expected log-likelihood per unit weight: Gaussian ``-log(2 pi sigma^2) / 2 - v / (2 sigma^2)`` with v the
    weighted variance; Laplacian ``-log(2 s) - a / s`` with a the weighted mean absolute deviation about the
    weighted median (its minimiser).
    """
    nk = resp.sum(0) + 10 * np.finfo(np.float64).eps  # (K,), as scikit-learn guards empty components
    mean = resp.T @ X / nk[:, None]
    var = np.maximum(resp.T @ X**2 / nk[:, None] - mean**2, 0.0)
    sigma2 = np.maximum(var, reg)
    median, absdev = weighted_medians(X, resp, order)
    absdev /= nk[:, None]
    s = np.maximum(absdev, np.sqrt(reg))
    ll_gauss = -0.5 * (_LOG_2PI + np.log(sigma2)) - var / (2 * sigma2)
    ll_laplace = -np.log(2 * s) - absdev / s
    gaussian = ll_gauss >= ll_laplace
    return Mixture(nk / nk.sum(), np.where(gaussian, mean, median), np.where(gaussian, np.sqrt(sigma2), s), gaussian)


def weighted_medians(X: np.ndarray, resp: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted median (K, D) of each column of X under each component's weights, and the weighted sum of
    absolute deviations about it (K, D), from the sorted columns by cumulative sums (blocks of columns).

    The median is the first sorted value where the cumulative weight reaches half the total; with inclusive
    cumulative sums W, S of weights and weighted values at that position, ``sum w |x - med| =
    (S_tot - 2 S) - med (W_tot - 2 W)``.
    """
    n, d = X.shape
    k = resp.shape[1]
    median, absdev = np.empty((k, d)), np.empty((k, d))
    step = max(1, _BLOCK_ELEMENTS // (2 * n * k))
    kk = np.arange(k)
    for c0 in range(0, d, step):
        cols = np.arange(c0, min(d, c0 + step))
        idx = order[:, cols]  # (n, c)
        xs = np.take_along_axis(X[:, cols], idx, 0)  # (n, c) sorted values
        g = resp[idx]  # (n, c, K) weights in sorted order
        w = np.cumsum(g, axis=0)
        sx = np.cumsum(g * xs[:, :, None], axis=0)
        pos = np.minimum((w < w[-1] / 2).sum(0), n - 1)  # (c, K)
        cc = np.arange(len(cols))[:, None]
        med = xs[pos, cc]
        wl, sl = w[pos, cc, kk], sx[pos, cc, kk]
        median[:, cols] = med.T
        absdev[:, cols] = np.maximum((sx[-1] - 2 * sl) - med * (w[-1] - 2 * wl), 0.0).T
    return median, absdev
