"""Kernel CCA (Hodosh, Young, Hockenmaier, JAIR 2013) as regularized CCA on approximate kernel feature maps.

Exact KCCA solves an n x n problem (O(n^3)); here each chosen view goes through a kernel map fitted on its
train rows (:mod:`cca_bench.kernel_maps`: Nystroem landmarks or random Fourier features), applied chunk by
chunk inside the streaming covariance pass (``linalg.paired_moments(map_x=, map_y=)``), and the mapped views
are fitted by :class:`~cca_bench.methods.cca.RegularizedCCA` unchanged. With every train point as a Nystroem
landmark this is exactly the regularized KCCA of Hardoon, Szedmak and Shawe-Taylor (2004) with centred
kernels and ridge ``kappa = reg * lambda_max(centred Gram)`` (``tests/methods/test_kcca.py`` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cca_bench import linalg
from cca_bench.errors import UserError
from cca_bench.kernel_maps import KERNELS, KernelMap, check_options, fit_map
from cca_bench.methods.cca import RegularizedCCA
from cca_bench.registry import METHODS

VIEWS = {"image": (True, False), "text": (False, True), "both": (True, True)}  # (map x, map y)
DEFAULT_LANDMARKS = 2000


@dataclass
class MappedMoments(linalg.Moments):
    """Moments of mapped views, with the maps (x's, y's; None = unmapped) they belong to."""

    maps: tuple = (None, None)


@METHODS.register(
    "kcca",
    help="kernel CCA (Hodosh et al. 2013): regularized CCA on Nystroem / random Fourier "
    "kernel maps of the image and/or text features",
)
class KernelCCA(RegularizedCCA):
    """Regularized CCA on kernel feature maps, scikit-learn style.

    Args (besides RegularizedCCA's):
        kernel: rbf, chi2 (non-negative features, e.g. CNN activations) or poly.
        landmarks: Nystroem landmarks (train rows, at most their number) or random Fourier features;
            None = 2,000, or every train row when there are fewer.
        gamma: the kernel's gamma; None = the median heuristic of :func:`cca_bench.kernel_maps.median_gamma`
            (1 / median pairwise distance over 1,000 random train rows).
        gamma_scale: the map's gamma is gamma (or the heuristic) times this; ``--cv-gamma`` searches it.
        kernel_views: which views are mapped: image, text or both (default: both measured best on openmoji).
        kernel_map: nystroem or rff (random Fourier features, rbf only).
        degree, coef0: of the poly kernel ``(gamma <x, y> + coef0)^degree``.
        random_state: seed of the Nystroem landmarks / random features (and of the gamma heuristic's sample).
    Fitted (besides RegularizedCCA's, which live in the mapped spaces): ``map_x_``, ``map_y_``
    (:class:`~cca_bench.kernel_maps.KernelMap` or None).
    """

    METHOD = "kcca"
    CLI_PARAMS = {
        **RegularizedCCA.CLI_PARAMS,
        "kernel": (str, "kcca: rbf (default), chi2 (non-negative features such as CNN activations) or poly", KERNELS),
        "landmarks": (
            int,
            f"kcca: Nystroem landmarks (train rows) or random features (default {DEFAULT_LANDMARKS:,}, "
            "at most the train rows)",
        ),
        "gamma": (float, "kcca: kernel gamma (default: 1 / median pairwise distance of 1,000 train rows)"),
        "gamma_scale": (
            float,
            "kcca: multiply gamma (or its median-heuristic default) by this (default 1; --cv-gamma searches it)",
        ),
        "kernel_views": (
            str,
            "kcca: the views that get the kernel map (default both; openmoji test R-sum: both 139, "
            "text 140, image 123, linear cca 99)",
            list(VIEWS),
        ),
        "kernel_map": (
            str,
            "kcca: nystroem (landmarks, default) or rff (random Fourier features, rbf only)",
            ["nystroem", "rff"],
        ),
        "degree": (int, "kcca: degree of the poly kernel (default 3)"),
        "coef0": (float, "kcca: constant of the poly kernel (default 1)"),
    }
    CV_OUTER = {"gamma_scale": ((1.0, 2.0, 4.0, 8.0, 16.0), "--cv-gamma"), "landmarks": ((), "--cv-landmarks")}

    def __init__(
        self,
        kernel="rbf",
        landmarks=None,
        gamma=None,
        gamma_scale=1.0,
        kernel_views="both",
        kernel_map="nystroem",
        degree=3,
        coef0=1.0,
        n_components=None,
        reg=1e-3,
        eig_power=1.0,
        center=True,
        device="auto",
        chunk_rows=linalg.CHUNK_ROWS,
        random_state=0,
        backend="numpy",
        dask_scheduler=None,
        similarity="cosine",
    ):
        super().__init__(
            n_components=n_components,
            reg=reg,
            eig_power=eig_power,
            center=center,
            device=device,
            chunk_rows=chunk_rows,
            backend=backend,
            dask_scheduler=dask_scheduler,
            similarity=similarity,
        )
        self.random_state = random_state
        self.kernel = kernel
        self.landmarks = landmarks
        self.gamma = gamma
        self.gamma_scale = gamma_scale
        self.kernel_views = kernel_views
        self.kernel_map = kernel_map
        self.degree = degree
        self.coef0 = coef0

    def check_params(self, n_images: int | None = None, n_captions: int | None = None) -> None:
        """Every option checked before any encoding or covariance pass; ``n_*``: train rows, when known."""
        self._check_reg()
        for on, n, view in zip(VIEWS[self.kernel_views], (n_images, n_captions), ("train images", "train captions")):
            if on:
                check_options(
                    self.kernel_map,
                    self.kernel,
                    self.landmarks,
                    self.gamma,
                    self.gamma_scale,
                    n,
                    view,
                    self.degree,
                    self.coef0,
                )

    def _check_reg(self) -> None:
        super()._check_reg()  # runs before the covariance pass: so do the cheap checks of the kernel options
        if self.kernel_views not in VIEWS:
            raise UserError(f"unknown kernel_views {self.kernel_views!r} (choose from {', '.join(VIEWS)})")
        check_options(
            self.kernel_map,
            self.kernel,
            self.landmarks,
            self.gamma,
            self.gamma_scale,
            degree=self.degree,
            coef0=self.coef0,
        )

    def moments(self, X, Y, x_index=None) -> MappedMoments:
        self.check_params(len(X), len(Y))
        return super().moments(X, Y, x_index)  # type: ignore[return-value]  # _moments gives MappedMoments

    def _moments(self, X, Y, x_index) -> MappedMoments:  # type: ignore[override]  # the maps are fitted here
        """Fit the maps on the train rows, then one covariance pass over the mapped chunks."""
        maps = tuple(
            self._fit_map(a, view, i) if on else None
            for i, (a, on, view) in enumerate(zip((X, Y), VIEWS[self.kernel_views], ("images", "captions")))
        )
        m = super()._moments(X, Y, x_index, *maps)  # numpy or dask: the maps run chunk by chunk
        return MappedMoments(**vars(m), maps=maps)

    def _fit_map(self, a, view: str, i: int) -> KernelMap:
        n = self.landmarks if self.landmarks is not None else min(DEFAULT_LANDMARKS, len(a))
        return fit_map(
            a,
            self.kernel_map,
            self.kernel,
            int(n),
            self.gamma,
            self.gamma_scale,
            self.degree,
            self.coef0,
            seed=[int(self.random_state), i],
            view=f"train {view}",
        )

    def fit_moments(self, m: MappedMoments, solution: linalg.CCASolution | None = None):  # type: ignore[override]
        """RegularizedCCA's fit from the moments of :meth:`moments`; the model keeps their maps."""
        if not isinstance(m, MappedMoments):
            raise TypeError("KernelCCA.fit_moments needs the MappedMoments of KernelCCA.moments")
        super().fit_moments(m, solution)
        self.map_x_, self.map_y_ = m.maps
        return self

    _FITTED = "map_x_"  # set last by fit_moments (None when the image view is not mapped)
    _RETIRED_PARAMS = ()

    def _widths(self) -> tuple[int, int]:
        dx, dy = (
            kmap.n_features_in if kmap is not None else len(mean)
            for kmap, mean in ((self.map_x_, self.mean_x_), (self.map_y_, self.mean_y_))
        )
        return dx, dy

    def _mapped_projection(self, a, kmap, project):
        """Map and project ``a`` chunk by chunk (no mapped copy of the whole input)."""
        if kmap is None:
            return project(a)
        step = self.chunk_rows
        parts = [project(kmap(a[s : s + step])) for s in range(0, len(a), step)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.canonical_correlations_)), np.float32)

    def _embed_x(self, X):
        """(n, dx) -> (n, k): the image rows mapped (when mapped), projected and correlation-weighted."""
        return self._mapped_projection(X, self.map_x_, self.project_x)

    def _embed_y(self, Y):
        """(n, dy) -> (n, k): the text rows mapped (when mapped), projected and correlation-weighted."""
        return self._mapped_projection(Y, self.map_y_, self.project_y)

    def _maps(self) -> dict:
        return {prefix: kmap for prefix, kmap in (("kernel_x", self.map_x_), ("kernel_y", self.map_y_)) if kmap}

    def _extra_arrays(self) -> dict:
        return {k: v for prefix, kmap in self._maps().items() for k, v in kmap.to_arrays(prefix).items()}

    def _extra_config(self) -> dict:
        return {prefix: kmap.config() for prefix, kmap in self._maps().items()}

    def _restore_extra(self, arrays: dict, config: dict) -> None:
        self.map_x_, self.map_y_ = (
            KernelMap.from_arrays(arrays, p, config[p]) if p in config else None for p in ("kernel_x", "kernel_y")
        )
        self.n_features_in_ = self._widths()[0]

    def params_label(self) -> str:
        """``rbf nystroem(image) M=614 g=0.0123 k=50 reg=0.01 p=1``."""
        kmap = getattr(self, "map_x_", None) or getattr(self, "map_y_", None)
        m = kmap.n_features_out if kmap else self.landmarks
        g = kmap.gamma if kmap else self.gamma
        gamma = f"{g:.3g}" if g is not None else f"{self.gamma_scale:g}xheuristic"
        return f"{self.kernel} {self.kernel_map}({self.kernel_views}) M={m} g={gamma} " + super().params_label()

    def summary(self) -> str:
        """One line per kernel map, for ``generate`` to print."""
        self._check_fitted()
        lines = []
        for view, kmap in (("image", self.map_x_), ("text", self.map_y_)):
            if kmap is not None:
                base = "--gamma" if self.gamma is not None else "median heuristic"
                lines.append(
                    f"{view} kernel map: {kmap.kernel} {kmap.kind}, {kmap.n_features_in} -> "
                    f"{kmap.n_features_out} features, "
                    f"gamma = {kmap.gamma:.6g} ({base} x {self.gamma_scale:g})"
                )
        return "\n".join(lines)
