"""Approximate kernel feature maps as plain arrays: Nystroem and random Fourier features, fitted on train rows.

A map turns rows (m, d) into (m, M) features whose inner products approximate a kernel, so linear CCA on
the mapped views approximates kernel CCA (Hodosh, Young, Hockenmaier, JAIR 2013 ran KCCA on Flickr8k):

- ``nystroem`` (Williams and Seeger 2001; scikit-learn's ``Nystroem``): M train rows drawn at random are
  the landmarks C; ``phi(x) = k(x, C) N^T`` with ``N = K_CC^(-1/2)``, so ``phi(x) . phi(c) = k(x, c)`` for
  every landmark. N is scikit-learn's ``normalization_`` (there from an SVD, here from ``eigh``, which is
  the same matrix for a PSD kernel at a third of the time); eigenvalues below ``1e-12 * lambda_max`` get zero
  weight instead of scikit-learn's 1e-12 clip, so duplicate landmarks add zero features, not noise.
- ``rff`` (Rahimi and Recht 2007; scikit-learn's ``RBFSampler``): ``phi(x) = sqrt(2 / M) cos(x W + b)``
  with W (d, M) ~ N(0, 2 gamma), b (M,) ~ U(0, 2 pi); the rbf kernel only.

Kernels are scikit-learn's (``sklearn.metrics.pairwise``): rbf ``exp(-gamma |x - y|^2)``, chi2
``exp(-gamma sum (x - y)^2 / (x + y))`` (non-negative inputs: CNN activations), poly
``(gamma <x, y> + coef0)^degree``. Every map is its arrays plus (kind, kernel, gamma, degree, coef0): it is
rebuilt from them with numpy and saved in safetensors, never pickled. Everything runs in float64; the
mapped rows come back as float32, block by block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cca_bench.checks import FINITE, Bound
from cca_bench.errors import UserError
from cca_bench.registry import Registry

KERNEL_MAPS = Registry("kernel map")
KERNELS = ("rbf", "chi2", "poly")
HEURISTIC_SAMPLE = 1000  # train rows whose pairwise distances set the default gamma
BLOCK_ROWS = 4096  # rows mapped at once (float64 kernel block: BLOCK_ROWS x M)
EIG_CUTOFF = 1e-12  # Nystroem: landmark-Gram eigenvalues below this fraction of the largest get zero weight
# the poly kernel's degree: a whole power keeps (gamma <x, y> + coef0)^degree a positive semi-definite kernel
# (0 makes it constant, a negative or fractional one makes it no kernel); beyond 10 its values overflow float64
# for ordinary features and a Nystroem map of it is numerically meaningless
DEGREE = Bound(integer=True, low=1, high=10)


def kernel(name: str, a: np.ndarray, b: np.ndarray, gamma: float, degree: float, coef0: float) -> np.ndarray:
    """k(a_i, b_j) (m, M) float64 for rows a (m, d) and b (M, d), scikit-learn's definitions."""
    from sklearn.metrics.pairwise import pairwise_kernels

    if name == "chi2":
        check_non_negative(a, b)
    return pairwise_kernels(a, b, metric=name, filter_params=True, gamma=gamma, degree=degree, coef0=coef0)


def check_non_negative(*arrays: np.ndarray) -> None:
    """The chi2 kernel's domain: a UserError when any value is negative."""
    if any(x.min(initial=0) < 0 for x in arrays):
        raise UserError(
            "the chi2 kernel needs non-negative features (e.g. CNN activations after a ReLU); "
            "these have negative values: use --kernel rbf, or map only the other view (--kernel-views)"
        )


def kernel_distances(name: str, s: np.ndarray) -> np.ndarray:
    """The quantity gamma multiplies in kernel ``name``, for every pair i < j of the rows s (n, d), float64:
    rbf: squared Euclidean distance; chi2: the chi2 distance sum (x - y)^2 / (x + y); poly: |<x, y>|."""
    from sklearn.metrics.pairwise import additive_chi2_kernel, euclidean_distances

    if name == "chi2":
        check_non_negative(s)
    full = {
        "rbf": lambda: euclidean_distances(s, squared=True),
        "chi2": lambda: -additive_chi2_kernel(s),
        "poly": lambda: np.abs(s @ s.T),
    }[name]()
    return full[np.triu_indices(len(s), 1)]


def median_gamma(rows: np.ndarray, name: str) -> float:
    """The median heuristic: ``1 / median`` of :func:`kernel_distances` over the distinct pairs of ``rows``.

    With rbf this is ``exp(-|x - y|^2 / median |x - y|^2)``: a typical pair of train rows has kernel value
    1/e. Callers pass a random sample of at most HEURISTIC_SAMPLE train rows.
    """
    if len(rows) < 2:
        raise UserError("the gamma heuristic needs at least 2 train rows")
    med = float(np.median(kernel_distances(name, rows)))
    if not med > 0:
        raise UserError(f"the median pairwise {name} distance of the train features is {med:g}: set gamma")
    return 1.0 / med


@dataclass
class KernelMap:
    """A fitted feature map: ``self(rows)`` (m, d) -> (m, M) float32.

    kind: a KERNEL_MAPS name; kernel: rbf, chi2 or poly; gamma, degree, coef0: the kernel's parameters;
    arrays: the kind's arrays (nystroem: landmarks (M, d), normalization (M, M); rff: weights (d, M),
    offset (M,)), float64.
    """

    kind: str
    kernel: str
    gamma: float
    degree: float = 3.0
    coef0: float = 1.0
    arrays: dict = field(default_factory=dict)

    @property
    def n_features_in(self) -> int:
        return KERNEL_MAPS.get(self.kind).n_features_in(self.arrays)

    @property
    def n_features_out(self) -> int:
        return KERNEL_MAPS.get(self.kind).n_features_out(self.arrays)

    def __call__(self, rows) -> np.ndarray:
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.n_features_in:
            raise UserError(f"the kernel map takes rows of {self.n_features_in} features, got shape {rows.shape}")
        apply = KERNEL_MAPS.get(self.kind).apply
        out = np.empty((len(rows), self.n_features_out), dtype=np.float32)
        for s in range(0, len(rows), BLOCK_ROWS):
            out[s : s + BLOCK_ROWS] = apply(self, np.asarray(rows[s : s + BLOCK_ROWS], dtype=np.float64))
        return out

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """``{prefix.name: array}``: the kind's arrays and the kernel parameters as float64 (1,) arrays."""
        params = {k: np.array([getattr(self, k)], dtype=np.float64) for k in ("gamma", "degree", "coef0")}
        return {f"{prefix}.{k}": v for k, v in {**self.arrays, **params}.items()}

    def config(self) -> dict:
        """The names that are not arrays (kept in the model's JSON)."""
        return {"kind": self.kind, "kernel": self.kernel}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str, config: dict) -> KernelMap:
        """The map :meth:`to_arrays` and :meth:`config` describe, bit for bit."""
        mine = {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + ".")}
        params = {k: float(mine.pop(k)[0]) for k in ("gamma", "degree", "coef0")}
        return cls(config["kind"], config["kernel"], arrays=mine, **params)


def landmark_eigh(gram: np.ndarray, kmap: KernelMap) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and vectors of the symmetrised landmark Gram (M, M); values that are not finite, or a
    LAPACK solve that does not converge, are one UserError naming the kernel and its parameters."""
    params = f"{kmap.kernel} kernel, gamma={kmap.gamma:g}" + (
        f", degree={kmap.degree:g}, coef0={kmap.coef0:g}" if kmap.kernel == "poly" else ""
    )
    if not np.isfinite(gram).all():
        raise UserError(
            f"the {params} overflows on the train rows (its values are not finite): lower gamma or "
            "gamma_scale" + (" or degree" if kmap.kernel == "poly" else "")
        )
    from cca_bench.linalg import converging

    with converging(f"the eigen-solve of the {len(gram)} x {len(gram)} landmark kernel matrix ({params})"):
        return np.linalg.eigh((gram + gram.T) / 2)


@KERNEL_MAPS.register("nystroem", help="Nystroem landmarks (Williams and Seeger 2001)")
class Nystroem:
    """M random train rows as landmarks; see the module docstring."""

    landmarks_are_rows = True  # M cannot exceed the train rows

    @staticmethod
    def fit(rows: np.ndarray, kmap: KernelMap) -> dict:
        """rows (M, d): the landmarks, already drawn. Returns the arrays of the map."""
        gram = kernel(kmap.kernel, rows, rows, kmap.gamma, kmap.degree, kmap.coef0)
        vals, vecs = landmark_eigh(gram, kmap)
        keep = vals > EIG_CUTOFF * max(vals[-1], 0)
        scale = np.zeros_like(vals)
        scale[keep] = 1 / np.sqrt(vals[keep])
        return {"landmarks": rows, "normalization": (vecs * scale) @ vecs.T}

    @staticmethod
    def apply(kmap: KernelMap, block: np.ndarray) -> np.ndarray:
        a = kmap.arrays
        return kernel(kmap.kernel, block, a["landmarks"], kmap.gamma, kmap.degree, kmap.coef0) @ a["normalization"].T

    n_features_in = staticmethod(lambda a: a["landmarks"].shape[1])
    n_features_out = staticmethod(lambda a: a["landmarks"].shape[0])


@KERNEL_MAPS.register("rff", help="random Fourier features of the rbf kernel (Rahimi and Recht 2007)")
class RandomFourier:
    """scikit-learn's ``RBFSampler`` draws the weights; the map is ``sqrt(2 / M) cos(x W + b)``."""

    landmarks_are_rows = False  # M random features, any number

    @staticmethod
    def fit(rows: np.ndarray, kmap: KernelMap, n_features: int, seed: int) -> dict:
        from sklearn.kernel_approximation import RBFSampler

        sampler = RBFSampler(gamma=kmap.gamma, n_components=n_features, random_state=seed).fit(rows[:1])
        return {
            "weights": sampler.random_weights_.astype(np.float64),
            "offset": sampler.random_offset_.astype(np.float64),
        }

    @staticmethod
    def apply(kmap: KernelMap, block: np.ndarray) -> np.ndarray:
        a = kmap.arrays
        return np.cos(block @ a["weights"] + a["offset"]) * np.sqrt(2.0 / len(a["offset"]))

    n_features_in = staticmethod(lambda a: a["weights"].shape[0])
    n_features_out = staticmethod(lambda a: a["weights"].shape[1])


def _rows(a, index: np.ndarray) -> np.ndarray:
    """a[index] as float64 (index sorted, so memory-mapped files are read in order)."""
    return np.asarray(a[np.sort(index)], dtype=np.float64)


def check_options(
    kind: str,
    kernel_name: str,
    n_features: int | None,
    gamma: float | None,
    gamma_scale: float,
    n_rows: int | None = None,
    view: str = "train",
    degree: float = 3,
    coef0: float = 1.0,
) -> None:
    """A UserError for options no map can be fitted with (n_rows: the train rows of the view, when known)."""
    spec = KERNEL_MAPS.get(kind)
    if kernel_name not in KERNELS:
        raise UserError(f"unknown kernel {kernel_name!r} (choose from {', '.join(KERNELS)})")
    if kind == "rff" and kernel_name != "rbf":
        raise UserError(
            f"kernel_map='rff' approximates the rbf kernel only, not {kernel_name}: use kernel_map='nystroem'"
        )
    if gamma is not None and not (gamma > 0 and math.isfinite(gamma)):
        raise UserError(f"gamma must be positive and finite, got {gamma:g}")
    if not (gamma_scale > 0 and math.isfinite(gamma_scale)):
        raise UserError(f"gamma_scale must be positive and finite, got {gamma_scale:g}")
    DEGREE.check("degree (of the poly kernel)", degree)  # (gamma <x, y> + coef0)^degree: a PSD kernel
    FINITE.check("coef0 (of the poly kernel)", coef0)
    if n_features is not None and n_features < 1:
        raise UserError(f"landmarks must be >= 1, got {n_features}")
    if n_features is not None and n_rows is not None and spec.landmarks_are_rows and n_features > n_rows:
        raise UserError(
            f"landmarks={n_features} is above the {n_rows} {view}: Nystroem landmarks are train "
            f"rows, so use at most {n_rows}"
        )


def fit_map(
    a,
    kind: str,
    kernel_name: str,
    n_features: int,
    gamma: float | None = None,
    gamma_scale: float = 1.0,
    degree: float = 3.0,
    coef0: float = 1.0,
    seed=0,
    view: str = "train",
) -> KernelMap:
    """Fit a map on the train rows ``a`` (n, d) (array or memmap; only sampled rows are read).

    gamma: the kernel's gamma; None = :func:`median_gamma` of HEURISTIC_SAMPLE random rows. The map's gamma
    is ``gamma_scale`` times it. n_features: landmarks (nystroem: at most n) or random features (rff).
    seed: seeds one generator that draws the heuristic sample first and then the landmarks, so maps that
    differ only in gamma_scale or n_features share their gamma.
    """
    spec = KERNEL_MAPS.get(kind)
    check_options(kind, kernel_name, n_features, gamma, gamma_scale, len(a), view, degree, coef0)
    n = len(a)
    rng = np.random.default_rng(seed)
    sample = _rows(a, rng.choice(n, min(n, HEURISTIC_SAMPLE), replace=False))
    if kernel_name == "chi2":
        check_non_negative(sample)  # an error before any covariance pass; each mapped chunk is checked too
    base = median_gamma(sample, kernel_name) if gamma is None else float(gamma)
    kmap = KernelMap(kind, kernel_name, base * gamma_scale, float(degree), float(coef0))
    if spec.landmarks_are_rows:
        kmap.arrays = spec.fit(_rows(a, rng.choice(n, n_features, replace=False)), kmap)
    else:
        kmap.arrays = spec.fit(sample, kmap, n_features, int(rng.integers(2**31)))
    return kmap
