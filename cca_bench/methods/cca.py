"""Regularized CCA: streaming covariances, scaled ridge, Cholesky whitening, SVD (Klein et al. 2015).

With covariances Cxx, Cyy (ridged as ``C + reg * lambda_max(C) * I``) and Cxy, let Lx, Ly be their Cholesky
factors. The SVD ``Lx^-1 Cxy Ly^-T = U S V^T`` gives the canonical correlations S and the weights
``Wx = Lx^-T U``, ``Wy = Ly^-T V``. Projections are ``(X - mean_x) Wx * S**eig_power`` (Gong et al. 2014
weight each dimension by a power of its correlation; Klein et al. use power 1). The solve runs in float64
in torch, on CUDA when ``device`` says so. The covariance chunk products are float32 when the ridge makes
that safe (reg >= 1e-3) and float64 below it, reg = 0 included (``cov_precision``, see
:func:`cca_bench.linalg.precision_for`).
"""

from __future__ import annotations

import warnings

import numpy as np

from cca_bench import linalg
from cca_bench.checks import COUNT, NON_NEGATIVE
from cca_bench.config import torch_device
from cca_bench.errors import UserError
from cca_bench.methods.base import BACKEND_CLI, CHUNK_CLI, check_arrays, load_saved, save_arrays
from cca_bench.methods.estimator import PairedEstimator
from cca_bench.registry import METHODS


def _check_variance(m: linalg.Moments) -> None:
    """A view whose features never vary (one training image, constant features) has nothing to correlate."""
    for view, c in (("image", m.cxx), ("text", m.cyy)):
        if not np.any(np.asarray(c)):
            raise UserError(
                f"the {view} features of the {m.n} training pairs do not vary (all equal): CCA needs "
                "at least two different images and captions to train on"
            )


SIMILARITIES = ("cosine", "csa")


def csa_embedding(proj: np.ndarray, rho: np.ndarray, power: float, first: bool) -> np.ndarray:
    """(n, k) projections -> (n, k + 2) float32 rows whose dot products are CSA's similarity.

    Li et al., ICLR 2025 (CSA, reference ``weighted_corr_sim``) score an image-caption pair by
    ``sum_j rho_j x_j y_j`` over L2-normalised projections x, y (normalised BEFORE the weighting; ``power``
    generalises rho_j to rho_j ** power). The rows here are ``rho^(power/2) * x / ||x||`` plus two padding
    columns, one per view (column k for images, ``first``; k + 1 for captions), holding
    ``sqrt(c - ||row||^2)`` with ``c = max(rho) ** power``: an image's and a caption's padding never meet, so
    dot products are exactly CSA's scores, and every row has norm sqrt(c), so cosine and euclidean rank the
    same way. This is not an eig_power setting of the cosine: that normalises AFTER the weighting.
    """
    w = np.maximum(rho, 0.0) ** (power / 2)
    unit = proj / np.maximum(np.linalg.norm(proj, axis=1, keepdims=True), 1e-300)
    out = np.zeros((len(proj), proj.shape[1] + 2))
    out[:, :-2] = unit * w
    c = float(np.max(w) ** 2) if len(w) else 0.0
    out[:, -2 if first else -1] = np.sqrt(np.maximum(c - (out[:, :-2] ** 2).sum(1), 0.0))
    return out.astype(np.float32)


@METHODS.register("cca", help="regularized CCA (Klein et al. 2015): covariances, ridge, Cholesky whitening, SVD")
class RegularizedCCA(PairedEstimator):
    """Regularized canonical correlation analysis, scikit-learn style.

    Args:
        n_components: number of canonical pairs kept; None = min(dx, dy).
        reg: ridge, as a fraction of each covariance's largest eigenvalue (Klein et al.: 1e-3 .. 5e-5).
        eig_power: projected dimension i is scaled by ``canonical_correlations_[i] ** eig_power``.
        center: subtract the means (True for CCA proper).
        device: "auto" (CUDA when present), "cpu" or "cuda" for the solve.
        chunk_rows: rows per chunk when accumulating covariances.
        backend: "numpy" (chunked SYRK on the CPU; torch products on the device when it is a GPU) or "dask"
            (:func:`cca_bench.linalg.dask_moments`: X, Y may be dask arrays).
        dask_scheduler: Dask scheduler address for backend="dask"; None = the current client or a LocalCluster.
        cov_precision: "auto" (float32 covariance products when reg >= 1e-3, float64 below, exact to ~1e-9 at
            cond(Cxx) = 1e8 with reg = 0), "float32" or "float64".
        similarity: "cosine" (projections scaled by rho ** eig_power, then the run's distance) or "csa"
            (:func:`csa_embedding`: CSA's correlation-weighted similarity of unit projections, Li et al. 2025).
    Fitted: ``x_weights_`` (dx, k), ``y_weights_`` (dy, k), ``mean_x_`` (dx,), ``mean_y_`` (dy,),
        ``n_components_``, ``n_samples_``, ``cov_precision_`` (the dtype the products used), and two (k,) spectra
        that agree when reg = 0:
        ``canonical_correlations_``: the ridge-shrunk canonical correlations (singular values of the ridged,
        whitened cross-covariance; Klein et al.), which ``eig_power`` weights the projections by;
        ``projection_correlations_``: the correlation of each pair of projections on the training pairs,
        what cca-zoo and pyrcca report as canonical correlations.
    """

    METHOD = "cca"  # the name it is saved under (subclasses such as kcca save their own)
    # params of older releases that saved models may hold: random_state seeded nothing (the fit is deterministic)
    _RETIRED_PARAMS: tuple = ("random_state",)
    BOUNDS = {"n_components": COUNT, "reg": NON_NEGATIVE, "eig_power": NON_NEGATIVE, "chunk_rows": COUNT}
    CLI_PARAMS = {
        "n_components": (COUNT.cli(), "number of canonical dimensions kept (default: min of the two feature widths)"),
        "reg": (
            NON_NEGATIVE.cli(),
            "ridge as a fraction of the largest covariance eigenvalue (default 1e-3; ridge: 1e-2)",
        ),
        "eig_power": (
            NON_NEGATIVE.cli(),
            "scale each dimension by its canonical correlation to this power (default 1)",
        ),
        **BACKEND_CLI,
        **CHUNK_CLI,
        "similarity": (
            str,
            "cca, kcca: cosine (default: projections weighted by rho^eig_power, then the run's "
            "distance) or csa (Li et al. 2025: unit projections, score sum_j rho_j^eig_power x_j y_j, "
            "the same ranking under every --distance)",
            list(SIMILARITIES),
        ),
        "cov_precision": (
            str,
            "covariance products: auto (float32 when --reg >= 1e-3, else float64: exact CCA on "
            "ill-conditioned features), float32 or float64",
            list(linalg.PRECISIONS),
        ),
    }

    def __init__(
        self,
        n_components=None,
        reg=1e-3,
        eig_power=1.0,
        center=True,
        device="auto",
        chunk_rows=linalg.CHUNK_ROWS,
        backend="numpy",
        dask_scheduler=None,
        cov_precision="auto",
        similarity="cosine",
    ):
        self.n_components = n_components
        self.reg = reg
        self.eig_power = eig_power
        self.center = center
        self.device = device
        self.chunk_rows = chunk_rows
        self.backend = backend
        self.dask_scheduler = dask_scheduler
        self.cov_precision = cov_precision
        self.similarity = similarity

    def _fit(self, X, Y, x_index):
        """Fit on images X (n_x, dx) and texts Y (n, dy); ``x_index`` (n,) pairs Y's rows with X's rows."""
        self._check_reg()  # before the covariance pass, which can take minutes
        return self.fit_moments(self.moments(X, Y, x_index))

    def check_params(self, n_images: int | None = None, n_captions: int | None = None) -> None:
        """Raise a UserError for bad parameters before any features are encoded (train split sizes if known)."""
        self._check_reg()

    def _check_reg(self) -> None:
        """reg and every other numeric parameter finite and in range (``BOUNDS``), or a UserError naming it."""
        for name, bound in self.BOUNDS.items():
            value = getattr(self, name)
            if value is not None or name != "n_components":
                bound.check(name, value)
        if getattr(self, "similarity", "cosine") not in SIMILARITIES:
            raise UserError(f"similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}")

    def moments(self, X, Y, x_index=None) -> linalg.Moments:
        """The (co)variances a fit needs, as :meth:`fit` computes them (centred or not, per ``center``).

        Computing them once and calling :meth:`fit_moments` per setting is how a grid search stays cheap.
        """
        if X.ndim != 2 or Y.ndim != 2:
            raise UserError(f"CCA needs 2-d arrays, got shapes {X.shape} and {Y.shape}")
        m = self._moments(X, Y, x_index)
        return m if self.center else linalg.uncentred(m)

    def fit_moments(self, m: linalg.Moments, solution: linalg.CCASolution | None = None):
        """Fit from :meth:`moments`; ``solution`` (``linalg.solve_cca(m, self.reg)``) skips the solve.

        The fit keeps the first ``n_components`` columns of the solution, so every n_components (and every
        eig_power, applied at projection) of one reg shares one solve.
        """
        self._check_reg()
        _check_variance(m)
        if solution is None:
            solution = linalg.solve_cca(m, self.reg, torch_device(self.device))
        k = self._n_components(len(m.mean_x), len(m.mean_y))
        self.x_weights_ = solution.x_weights[:, :k].copy()
        self.y_weights_ = solution.y_weights[:, :k].copy()
        self.canonical_correlations_ = solution.correlations[:k].copy()
        if solution.projection_correlations is not None:
            self.projection_correlations_ = solution.projection_correlations[:k].copy()
        self.cov_precision_ = m.dtype
        self.mean_x_, self.mean_y_ = m.mean_x, m.mean_y
        self.n_components_, self.n_samples_ = k, m.n
        return self

    def _moments(self, X, Y, x_index, map_x=None, map_y=None) -> linalg.Moments:
        """The covariance pass in the chosen backend (:func:`cca_bench.linalg.streamed_moments`); ``map_x`` /
        ``map_y`` (feature maps, e.g. kcca's kernel maps) are applied chunk by chunk, inside each task with dask."""
        return linalg.streamed_moments(
            X,
            Y,
            x_index,
            reg=self.reg,
            precision=self.cov_precision,
            backend=self.backend,
            scheduler=self.dask_scheduler,
            chunk=self.chunk_rows,
            device=torch_device(self.device),
            map_x=map_x,
            map_y=map_y,
        )

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
        """{"spectrum": both correlation spectra by component}, saved next to the model."""
        from cca_bench.plots import spectrum_figure

        self._check_fitted()
        series = {"canonical correlation (reg=0: also the projections' correlation)": self.canonical_correlations_}
        if self.reg > 0:
            series = {
                f"canonical correlation, ridge-shrunk (reg={self.reg:g}): "
                "weights the projections": self.canonical_correlations_
            }
            if hasattr(self, "projection_correlations_"):
                series["correlation of the projections on the train pairs (as cca-zoo, pyrcca report)"] = (
                    self.projection_correlations_
                )
        return {"spectrum": spectrum_figure(series, f"RegularizedCCA {self.params_label()}")}

    def _widths(self) -> tuple[int, int]:
        return len(self.mean_x_), len(self.mean_y_)

    def _project(self, a, mean, weights, name):
        """Rows of the (mapped) view space (n, len(mean)) -> (n, k) float32 embeddings, no input validation."""
        self._check_fitted()
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[1] != len(mean):
            raise UserError(f"{name} must have shape (n, {len(mean)}), got {a.shape}")
        out = (a.astype(np.float64) - mean) @ weights
        if getattr(self, "similarity", "cosine") == "csa":
            return csa_embedding(out, self.canonical_correlations_, self.eig_power, name == "X")
        return (out * self.canonical_correlations_**self.eig_power).astype(np.float32)

    def project_x(self, a):
        """(n, len(mean_x_)) rows of the space the CCA was solved in (kcca: the mapped one) -> (n, k)."""
        return self._project(a, self.mean_x_, self.x_weights_, "X")

    def project_y(self, a):
        """(n, len(mean_y_)) rows of the space the CCA was solved in (kcca: the mapped one) -> (n, k)."""
        return self._project(a, self.mean_y_, self.y_weights_, "Y")

    def _embed_x(self, X):
        """(n, dx) -> (n, k) projected, correlation-weighted image embeddings."""
        return self.project_x(X)

    def _embed_y(self, Y):
        """(n, dy) -> (n, k) projected, correlation-weighted text embeddings."""
        return self.project_y(Y)

    _ARRAYS = ("x_weights_", "y_weights_", "canonical_correlations_", "mean_x_", "mean_y_")
    _OPTIONAL_ARRAYS = ("projection_correlations_",)  # absent from models saved before it existed

    def save(self, path, extra: dict | None = None):
        self._check_fitted()
        params = {k: v for k, v in self.get_params().items()}
        config = {
            "method": self.METHOD,
            "params": params,
            "n_components_": self.n_components_,
            "n_samples_": self.n_samples_,
            "cov_precision_": getattr(self, "cov_precision_", None),
            **self._extra_config(),
            **(extra or {}),
        }
        names = self._ARRAYS + tuple(k for k in self._OPTIONAL_ARRAYS if hasattr(self, k))
        save_arrays(path, {**{k: getattr(self, k) for k in names}, **self._extra_arrays()}, config)

    @classmethod
    def load(cls, path):
        model, arrays, config = load_saved(cls, path, cls.METHOD, required={"n_components_": int, "n_samples_": int})
        check_arrays(
            path,
            arrays,
            {
                "x_weights_": ("dx", "k"),
                "y_weights_": ("dy", "k"),
                "mean_x_": ("dx",),
                "mean_y_": ("dy",),
                "canonical_correlations_": (config["n_components_"],),
            },
        )
        for k in cls._ARRAYS:
            setattr(model, k, arrays[k])
        model.n_components_, model.n_samples_ = config["n_components_"], config["n_samples_"]
        model.n_features_in_ = len(model.mean_x_)
        for k in cls._OPTIONAL_ARRAYS:
            if k in arrays:
                setattr(model, k, arrays[k])
        if config.get("cov_precision_"):
            model.cov_precision_ = config["cov_precision_"]
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
