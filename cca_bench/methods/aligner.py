"""Linear aligners of two frozen views from the CCA fit's streamed moments: the shared estimator skeleton.

Ridge maps, orthogonal Procrustes and PLS all start from the same second moments as
:class:`~cca_bench.methods.cca.RegularizedCCA` (``linalg.paired_moments``: means, Cxx, Cyy, Cxy over every
caption paired with its image) and end in two linear maps: an image embeds as ``(x' - mean_x) Wx``, a caption
as ``(y' - mean_y) Wy`` (``W = None``: the view itself), where ``x'`` is ``x`` L2-normalised when
``normalize`` is set. A subclass implements :meth:`LinearAligner.solve` (moments -> weights); fitting,
projection, save / load and the CV candidates are shared here.
"""

from __future__ import annotations

import numpy as np

from cca_bench import linalg
from cca_bench.checks import COUNT
from cca_bench.config import torch_device
from cca_bench.errors import UserError
from cca_bench.methods.base import BACKEND_CLI, CHUNK_CLI, check_arrays, load_saved, save_arrays
from cca_bench.methods.estimator import PairedEstimator

NORMALIZE_CLI = (bool, "ridge, procrustes, pls: L2-normalise every image and caption feature row first")
COMMON_CLI = {"normalize": NORMALIZE_CLI, **BACKEND_CLI, **CHUNK_CLI}  # the options every aligner takes


def l2_rows(a: np.ndarray) -> np.ndarray:
    """(n, d) -> float32 rows of unit L2 norm (zero rows stay zero)."""
    a = np.asarray(a, dtype=np.float32)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.maximum(norms, np.float32(1e-12))


def clipped_points(points: list[dict], train, knob: str = "n_components") -> list[dict]:
    """Grid points with ``knob`` clipped to the narrower feature width of ``train`` (repeats dropped)."""
    k_max = min(train.images.shape[1], train.texts.shape[1])
    out = []
    for p in points:
        q = {**p, knob: min(int(p[knob]), k_max)} if p.get(knob) is not None else p
        if q not in out:
            out.append(q)
    return out


class LinearAligner(PairedEstimator):
    """Base of the moment-based aligners (not registered itself).

    Subclasses set ``METHOD``, ``CV_GRID`` ({knob: (default values, --cv flag)}), take ``normalize``,
    ``center``, ``device``, ``chunk_rows``, ``cov_precision``, ``backend`` and ``dask_scheduler`` (where the
    moments pass runs: :func:`cca_bench.linalg.streamed_moments`) in their ``__init__`` and implement
    :meth:`solve`. Fitted: ``x_weights_`` (dx, k) or None, ``y_weights_`` (dy, k) or None, ``mean_x_`` (dx,),
    ``mean_y_`` (dy,), ``n_samples_``, plus what ``solve`` adds to ``_ARRAYS``.
    """

    METHOD = ""
    CV_GRID: dict = {}
    _ARRAYS: tuple = ()  # a subclass's own fitted arrays, saved beside the weights and means
    PRECISION_REG = 1.0  # the ridge whose precision the covariance products take (linalg.precision_for)

    def check_params(self, n_images: int | None = None, n_captions: int | None = None) -> None:
        """A UserError for a bad parameter, before any encoding (train split sizes when known)."""

    # --- fitting ------------------------------------------------------------------------------
    def moments(self, X, Y, x_index=None) -> linalg.Moments:
        """Streamed means and covariances of the pairs (x[x_index[j]], y[j]) (rows L2-normalised first when
        ``normalize``; not centred when ``center`` is False: then the 'covariances' are raw second moments)."""
        self.check_params(len(X), len(Y))
        COUNT.check("chunk_rows", self.chunk_rows)
        if X.ndim != 2 or Y.ndim != 2:
            raise UserError(f"{self.METHOD} needs 2-d feature arrays, got shapes {X.shape} and {Y.shape}")
        fn = l2_rows if self.normalize else None
        m = linalg.streamed_moments(
            X,
            Y,
            x_index,
            reg=self.PRECISION_REG,
            precision=self.cov_precision,
            backend=self.backend,
            scheduler=self.dask_scheduler,
            chunk=self.chunk_rows,
            device=torch_device(self.device),
            map_x=fn,
            map_y=fn,
        )
        return m if self.center else linalg.uncentred(m)

    def _fit(self, X, Y, x_index):
        """Fit on images X (n_x, dx) and captions Y (n, dy); ``x_index`` (n,) pairs Y's rows with X's rows."""
        return self.fit_moments(self.moments(X, Y, x_index))

    def fit_moments(self, m: linalg.Moments):
        """Fit from :meth:`moments` (one pass serves every grid point of ``solve``'s knobs)."""
        self.check_params()
        for view, c in (("image", m.cxx), ("text", m.cyy)):
            if not np.any(np.asarray(c)):
                raise UserError(
                    f"the {view} features of the {m.n} training pairs do not vary (all equal): "
                    f"{self.METHOD} needs at least two different images and captions"
                )
        self.x_weights_, self.y_weights_ = self.solve(m)
        self.mean_x_, self.mean_y_, self.n_samples_ = m.mean_x, m.mean_y, m.n
        return self

    def solve(self, m: linalg.Moments) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(Wx (dx, k) or None, Wy (dy, k) or None), float64, from the moments; sets the subclass's arrays."""
        raise NotImplementedError

    def _tensors(self, m: linalg.Moments):
        """(cxx, cyy, cxy) as float64 torch tensors on the solve device."""
        import torch

        dev = torch_device(self.device)
        return tuple(torch.as_tensor(c, dtype=torch.float64, device=dev) for c in (m.cxx, m.cyy, m.cxy))

    def _common(
        self, normalize, center, device, chunk_rows, cov_precision, backend="numpy", dask_scheduler=None
    ) -> None:
        """Store the constructor arguments every aligner takes (scikit-learn style: stored as given)."""
        self.normalize = normalize
        self.center = center
        self.device = device
        self.chunk_rows = chunk_rows
        self.cov_precision = cov_precision
        self.backend = backend
        self.dask_scheduler = dask_scheduler

    def _check_components(self) -> None:
        if getattr(self, "n_components", None) is not None:
            COUNT.check("n_components", getattr(self, "n_components"))

    @classmethod
    def cv_models(cls, train, val, points: list[dict], params: dict):
        """Yield (point, fitted model, val image embeddings, val caption embeddings) for every grid point;
        one moment pass per distinct (normalize, center) of the points, the solves per point. An
        ``n_components`` knob is clipped to the narrower feature width first (repeats dropped)."""
        passes = {}
        if "n_components" in cls.CV_GRID:
            points = clipped_points(points, train)
        for point in points:
            model = cls(**{**params, **point})
            key = (model.normalize, model.center)
            if key not in passes:
                passes[key] = model.moments(train.images, train.texts, train.image_index)
            model.fit_moments(passes[key])
            yield point, model, model.embed_images(val), model.embed_texts(val)

    # --- projection ---------------------------------------------------------------------------
    def _widths(self) -> tuple[int, int]:
        return len(self.mean_x_), len(self.mean_y_)

    def _project(self, a, mean, weights) -> np.ndarray:
        a = l2_rows(a) if self.normalize else a
        out = a.astype(np.float64) - mean
        return (out if weights is None else out @ weights).astype(np.float32)

    def _embed_x(self, X) -> np.ndarray:
        """(n, dx) -> (n, k) image embeddings."""
        return self._project(X, self.mean_x_, self.x_weights_)

    def _embed_y(self, Y) -> np.ndarray:
        """(n, dy) -> (n, k) caption embeddings."""
        return self._project(Y, self.mean_y_, self.y_weights_)

    # --- persistence --------------------------------------------------------------------------
    def _weights(self) -> dict:
        return {k: v for k, v in (("x_weights_", self.x_weights_), ("y_weights_", self.y_weights_)) if v is not None}

    def save(self, path, extra: dict | None = None):
        """``path.safetensors`` (weights, means, the method's arrays, config in its metadata) + ``path.json``."""
        self._check_fitted()
        arrays = {
            **self._weights(),
            "mean_x_": self.mean_x_,
            "mean_y_": self.mean_y_,
            **{k: getattr(self, k) for k in self._ARRAYS},
        }
        config = {
            "method": self.METHOD,
            "params": self.get_params(),
            "n_samples_": self.n_samples_,
            "weights": sorted(self._weights()),
            **(extra or {}),
        }
        save_arrays(path, arrays, config)

    @classmethod
    def load(cls, path):
        model, arrays, config = load_saved(cls, path, cls.METHOD, required={"n_samples_": int, "weights": list})
        has = set(config["weights"])  # without one view's weights, the other maps into that view's space
        expected: dict[str, tuple] = {"mean_x_": ("dx",), "mean_y_": ("dy",)}
        if "x_weights_" in has:
            expected["x_weights_"] = ("dx", "k" if "y_weights_" in has else "dy")
        if "y_weights_" in has:
            expected["y_weights_"] = ("dy", "k" if "x_weights_" in has else "dx")
        check_arrays(path, arrays, expected)
        missing = [k for k in cls._ARRAYS if k not in arrays]
        if missing:
            raise UserError(f"the fitted model {path}.safetensors has no array {missing[0]!r}: run `generate` again")
        model.x_weights_, model.y_weights_ = arrays.get("x_weights_"), arrays.get("y_weights_")
        model.mean_x_, model.mean_y_, model.n_samples_ = arrays["mean_x_"], arrays["mean_y_"], config["n_samples_"]
        model.n_features_in_ = len(model.mean_x_)
        for k in cls._ARRAYS:
            setattr(model, k, arrays[k])
        model.config_ = config
        return model
