"""Regularized CCA: streaming covariances, scaled ridge, Cholesky whitening, SVD (Klein et al. 2015).

With covariances Cxx, Cyy (ridged as ``C + reg * lambda_max(C) * I``) and Cxy, let Lx, Ly be their Cholesky
factors. The SVD ``Lx^-1 Cxy Ly^-T = U S V^T`` gives the canonical correlations S and the weights
``Wx = Lx^-T U``, ``Wy = Ly^-T V``. Projections are ``(X - mean_x) Wx * S**eig_power`` (Gong et al. 2014
weight each dimension by a power of its correlation; Klein et al. use power 1). The solve runs in float64
in torch, on CUDA when ``device`` says so.
"""
from __future__ import annotations

import warnings

import numpy as np
from cca_bench import linalg
from cca_bench.config import torch_device
from cca_bench.errors import UserError
from cca_bench.methods.base import Params, load_saved, save_arrays
from cca_bench.registry import METHODS


@METHODS.register("cca", help="regularized CCA (Klein et al. 2015): covariances, ridge, Cholesky whitening, SVD")
class RegularizedCCA(Params):
    """Regularized canonical correlation analysis, scikit-learn style.

    Args:
        n_components: number of canonical pairs kept; None = min(dx, dy).
        reg: ridge, as a fraction of each covariance's largest eigenvalue (Klein et al.: 1e-3 .. 5e-5).
        eig_power: projected dimension i is scaled by ``canonical_correlations_[i] ** eig_power``.
        center: subtract the means (True for CCA proper).
        device: "auto" (CUDA when present), "cpu" or "cuda" for the solve.
        chunk_rows: rows per chunk when accumulating covariances.
        random_state: seed of the power iteration that finds the largest eigenvalues.
        backend: "numpy" (chunked SYRK on the CPU; torch products on the device when it is a GPU) or "dask"
            (:func:`cca_bench.linalg.dask_moments`: X, Y may be dask arrays).
        dask_scheduler: Dask scheduler address for backend="dask"; None = the current client or a LocalCluster.
    Fitted: ``canonical_correlations_`` (k,), ``x_weights_`` (dx, k), ``y_weights_`` (dy, k),
        ``mean_x_`` (dx,), ``mean_y_`` (dy,), ``n_components_``, ``n_samples_``.
    """

    METHOD = "cca"  # the name it is saved under (subclasses such as kcca save their own)
    CLI_PARAMS = {
        "n_components": (int, "number of canonical dimensions kept (default: min of the two feature widths)"),
        "reg": (float, "ridge as a fraction of the largest covariance eigenvalue (default 1e-3)"),
        "eig_power": (float, "scale each dimension by its canonical correlation to this power (default 1)"),
        "backend": (str, "where the covariances are accumulated: numpy (default; torch on a GPU device) or dask "
                    "(chunks as tasks on a Dask cluster)", ["numpy", "dask"]),
        "dask_scheduler": (str, "with --backend dask: scheduler address (default: a LocalCluster)"),
    }

    def __init__(self, n_components=None, reg=1e-3, eig_power=1.0, center=True, device="auto",
                 chunk_rows=linalg.CHUNK_ROWS, random_state=0, backend="numpy", dask_scheduler=None):
        self.n_components = n_components
        self.reg = reg
        self.eig_power = eig_power
        self.center = center
        self.device = device
        self.chunk_rows = chunk_rows
        self.random_state = random_state
        self.backend = backend
        self.dask_scheduler = dask_scheduler

    def fit(self, X, Y, x_index=None):
        """Fit on images X (n_x, dx) and texts Y (n, dy); ``x_index`` (n,) pairs Y's rows with X's rows."""
        self._check_reg()  # before the covariance pass, which can take minutes
        return self.fit_moments(self.moments(X, Y, x_index))

    def check_params(self, n_images: int | None = None, n_captions: int | None = None) -> None:
        """Raise a UserError for bad parameters before any features are encoded (train split sizes if known)."""
        self._check_reg()

    def _check_reg(self) -> None:
        if self.reg < 0:
            raise UserError(f"reg must be >= 0, got {self.reg}")

    def moments(self, X, Y, x_index=None) -> linalg.Moments:
        """The (co)variances a fit needs, as :meth:`fit` computes them (centred or not, per ``center``).

        Computing them once and calling :meth:`fit_moments` per setting is how a grid search stays cheap.
        """
        if X.ndim != 2 or Y.ndim != 2:
            raise UserError(f"CCA needs 2-d arrays, got shapes {X.shape} and {Y.shape}")
        m = self._moments(X, Y, x_index)
        if not self.center:
            m.cxx += np.outer(m.mean_x, m.mean_x) * m.n / (m.n - 1)
            m.cyy += np.outer(m.mean_y, m.mean_y) * m.n / (m.n - 1)
            m.cxy += np.outer(m.mean_x, m.mean_y) * m.n / (m.n - 1)
            m.mean_x, m.mean_y = np.zeros_like(m.mean_x), np.zeros_like(m.mean_y)
        return m

    def fit_moments(self, m: linalg.Moments, solution: linalg.CCASolution | None = None):
        """Fit from :meth:`moments`; ``solution`` (``linalg.solve_cca(m, self.reg)``) skips the solve.

        The fit keeps the first ``n_components`` columns of the solution, so every n_components (and every
        eig_power, applied at projection) of one reg shares one solve.
        """
        self._check_reg()
        if solution is None:
            solution = linalg.solve_cca(m, self.reg, torch_device(self.device))
        k = self._n_components(len(m.mean_x), len(m.mean_y))
        self.x_weights_ = solution.x_weights[:, :k].copy()
        self.y_weights_ = solution.y_weights[:, :k].copy()
        self.canonical_correlations_ = solution.correlations[:k].copy()
        self.mean_x_, self.mean_y_ = m.mean_x, m.mean_y
        self.n_components_, self.n_samples_ = k, m.n
        return self

    @classmethod
    def cross_validate(cls, train, val, grid: dict, params: dict, select: str = "rsum", progress: bool = False,
                       log=lambda msg: None):
        """Grid search on the val FeatureSet, one covariance pass (see :func:`cca_bench.cv.grid_search`).

        Returns (best fitted model, report).
        """
        from cca_bench.cv import grid_search

        return grid_search(cls, train, val, grid, params, select, progress, log)

    def _moments(self, X, Y, x_index) -> linalg.Moments:
        if self.backend == "dask":
            return linalg.dask_moments(X, Y, x_index, self.chunk_rows, self.dask_scheduler)
        if self.backend != "numpy":
            raise UserError(f"unknown backend {self.backend!r} (numpy or dask)")
        return linalg.paired_moments(X, Y, x_index, self.chunk_rows, device=torch_device(self.device))

    def _n_components(self, dx: int, dy: int) -> int:
        k_max = min(dx, dy)
        k = k_max if self.n_components is None else int(self.n_components)
        if k < 1:
            raise UserError(f"n_components must be >= 1, got {k}")
        if k > k_max:
            warnings.warn(f"n_components={k} exceeds min(dx, dy) = {k_max}; using {k_max}")
            k = k_max
        return k

    def params_label(self) -> str:
        """Short label for tables: ``k=50 reg=0.001 p=1``."""
        k = getattr(self, "n_components_", self.n_components)
        return f"k={k} reg={self.reg:g} p={self.eig_power:g}"

    def figures(self) -> dict:
        """{"spectrum": the canonical correlations plotted by component}, saved next to the model."""
        from cca_bench.plots import spectrum_figure

        self._check_fitted()
        return {"spectrum": spectrum_figure(self.canonical_correlations_, f"RegularizedCCA {self.params_label()}")}

    def _check_fitted(self):
        if not hasattr(self, "x_weights_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this RegularizedCCA is not fitted yet: call fit first")

    def _project(self, a, mean, weights, name):
        self._check_fitted()
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[1] != len(mean):
            raise UserError(f"{name} must have shape (n, {len(mean)}), got {a.shape}")
        out = (a.astype(np.float64) - mean) @ weights
        return (out * self.canonical_correlations_ ** self.eig_power).astype(np.float32)

    def transform_x(self, X):
        """(n, dx) -> (n, k) projected, correlation-weighted image embeddings."""
        return self._project(X, self.mean_x_, self.x_weights_, "X")

    def transform_y(self, Y):
        """(n, dy) -> (n, k) projected, correlation-weighted text embeddings."""
        return self._project(Y, self.mean_y_, self.y_weights_, "Y")

    def transform(self, X, Y=None):
        """Like scikit-learn's CCA: X's projection, or (X's, Y's) when Y is given."""
        return self.transform_x(X) if Y is None else (self.transform_x(X), self.transform_y(Y))

    # --- CrossModalModel protocol -------------------------------------------------------------
    def fit_features(self, train, val=None):
        """Fit on a FeatureSet: every caption paired with its image's features."""
        return self.fit(train.images, train.texts, x_index=train.image_index)

    def embed_images(self, features):
        return self.transform_x(features.images)

    def embed_texts(self, features):
        return self.transform_y(features.texts)

    _ARRAYS = ("x_weights_", "y_weights_", "canonical_correlations_", "mean_x_", "mean_y_")

    def save(self, path, extra: dict | None = None):
        self._check_fitted()
        params = {k: v for k, v in self.get_params().items()}
        config = {"method": self.METHOD, "params": params, "n_components_": self.n_components_,
                  "n_samples_": self.n_samples_, **self._extra_config(), **(extra or {})}
        save_arrays(path, {**{k: getattr(self, k) for k in self._ARRAYS}, **self._extra_arrays()}, config)

    @classmethod
    def load(cls, path):
        model, arrays, config = load_saved(cls, path, cls.METHOD)
        for k in cls._ARRAYS:
            setattr(model, k, arrays[k])
        model.n_components_, model.n_samples_ = config["n_components_"], config["n_samples_"]
        model.config_ = config
        model._restore_extra(arrays, config)
        return model

    # hooks for subclasses that save more state (kcca: its kernel maps)
    def _extra_arrays(self) -> dict:
        return {}

    def _extra_config(self) -> dict:
        return {}

    def _restore_extra(self, arrays: dict, config: dict) -> None:
        pass
