"""Orthogonal Procrustes: the rotation that best maps one centred, scaled view onto the other.

Each view is centred and divided by its total standard deviation ``sqrt(trace C)`` (so both carry unit total
variance), then the two are brought to one width: ``equalize="pca"`` (default) projects a view wider than
``n_components`` onto its top principal components (``n_components`` = the narrower width by default), and
``equalize="pad"`` zero-pads the narrower view to the wider one's width (the ``latentis`` library's choice).
The rotation is ``R = U V'`` from the SVD ``U S V' = A' B`` of the (equalised) cross-covariance, the
minimiser of ``||A R - B||_F`` over orthogonal R (Schoenemann 1966); ``scipy.linalg.orthogonal_procrustes``
is the reference (``tests/methods/test_procrustes.py``). With padding only the first (narrower-width) columns
of R touch the padded view's non-zero coordinates, and those are the polar factor of the unpadded
cross-covariance, so the model stores just them. Scored in the narrower view's space.

With padding and the narrower view complete, Procrustes ranks as PLS at full rank (cosine, dot): with the SVD
``Cxy = U S V'``, images embed as ``x U V'`` and captions as ``y``, PLS embeds ``x U`` and ``y V``, and V is
square and orthogonal, so dot products and norms agree (measured: identical openmoji tables, docs/aligners.md).
"""

from __future__ import annotations

from cca_bench import linalg
from cca_bench.checks import COUNT
from cca_bench.errors import UserError
from cca_bench.methods.aligner import COMMON_CLI, LinearAligner
from cca_bench.registry import METHODS

EQUALIZE = ("pca", "pad")


def polar(g):
    """The orthogonal polar factor ``U V'`` of a (m, r) torch matrix (m >= r), from its thin SVD."""
    import torch

    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    return u @ vh


def top_components(m: linalg.Moments, view: str, c, k: int):
    """(d, k) eigenvectors of the k largest eigenvalues of the symmetric torch matrix ``c`` (the ``view``
    covariance of ``m``), strongest first, each column's largest-magnitude entry positive. The eigenvectors
    are kept on ``m``, so a CV grid over n_components decomposes each covariance once."""

    cache = m.__dict__.setdefault("_procrustes_eigh", {})
    if view not in cache or cache[view].shape[1] < k:
        cache[view] = _top_eigenvectors(c, k)
    top = cache[view][:, :k]
    return linalg.flip_signs(top, top)[0]


def _top_eigenvectors(c, k: int):
    """(d, k) eigenvectors of the k largest eigenvalues, strongest first: on the CPU only those k (LAPACK
    ``syevr`` through SciPy, several times faster than all d of them for k << d), elsewhere torch's ``eigh``."""
    import torch

    if c.device.type != "cpu":
        return torch.flip(torch.linalg.eigh(c)[1][:, -k:], dims=[1])
    from scipy.linalg import eigh

    d = len(c)
    vecs = eigh(c.numpy(), subset_by_index=[d - k, d - 1], driver="evr")[1]
    # a copy, not ascontiguousarray: with k = 1 the reversed (d, 1) view counts as contiguous and keeps its
    # negative stride, which torch refuses
    return torch.from_numpy(vecs[:, ::-1].copy())


@METHODS.register(
    "procrustes",
    help="orthogonal Procrustes rotation between the centred, scaled views (PCA of the "
    "wider view or zero-padding), scored in the narrower view's space",
)
class Procrustes(LinearAligner):
    """Orthogonal Procrustes alignment, scikit-learn style.

    Args:
        n_components: width both views are brought to (PCA; at most the narrower view's width, the default).
        equalize: "pca" (principal components of a wider view) or "pad" (zero-pad the narrower view; then
            n_components must be left at its default).
        normalize, center, device, chunk_rows, cov_precision, backend, dask_scheduler: as for
            :class:`~cca_bench.methods.ridge.RidgeMap`.
    Fitted: ``x_weights_`` (dx, k), ``y_weights_`` (dy, k), ``scales_`` (2,) the two total standard
        deviations, ``mean_x_``, ``mean_y_``, ``n_samples_``.
    """

    METHOD = "procrustes"
    CLI_PARAMS = {
        "n_components": (COUNT.cli(), "procrustes: width both views are brought to (default: the narrower one's)"),
        "equalize": (
            str,
            "procrustes: pca (project the wider view onto its principal components, default) or pad "
            "(zero-pad the narrower view)",
            list(EQUALIZE),
        ),
        **COMMON_CLI,
    }
    CV_GRID = {"n_components": ((32, 64, 128, 256, 512), "--cv-components")}
    _ARRAYS = ("scales_",)

    def __init__(
        self,
        n_components=None,
        equalize="pca",
        normalize=False,
        center=True,
        device="auto",
        chunk_rows=linalg.CHUNK_ROWS,
        cov_precision="auto",
        backend="numpy",
        dask_scheduler=None,
    ):
        self.n_components = n_components
        self.equalize = equalize
        self._common(normalize, center, device, chunk_rows, cov_precision, backend, dask_scheduler)

    def check_params(self, n_images=None, n_captions=None) -> None:
        if self.equalize not in EQUALIZE:
            raise UserError(f"equalize must be one of {', '.join(EQUALIZE)}, got {self.equalize!r}")
        self._check_components()
        if self.n_components is not None and self.equalize == "pad":
            raise UserError("Procrustes(equalize='pad') keeps every dimension: n_components needs equalize='pca'")

    def solve(self, m: linalg.Moments):
        """Scale, equalise the widths, rotate: (Wx (dx, k), Wy (dy, k)) in float64."""
        import torch

        cxx, cyy, cxy = self._tensors(m)
        scales = torch.sqrt(torch.stack([torch.trace(cxx), torch.trace(cyy)]))
        cxx, cyy, cxy = cxx / scales[0] ** 2, cyy / scales[1] ** 2, cxy / (scales[0] * scales[1])
        k_max = min(len(cxx), len(cyy))
        k = k_max if self.n_components is None else int(self.n_components)
        if k > k_max:
            raise UserError(
                f"Procrustes n_components={k} exceeds the narrower view's width {k_max} "
                f"(image {len(cxx)}, text {len(cyy)})"
            )
        eye = lambda c: torch.eye(len(c), dtype=c.dtype, device=c.device)  # noqa: E731
        if self.equalize == "pca":
            px = top_components(m, "x", cxx, k) if len(cxx) > k else eye(cxx)
            py = top_components(m, "y", cyy, k) if len(cyy) > k else eye(cyy)
            wx, wy = px @ polar(px.T @ cxy @ py), py
        elif len(cxx) >= len(cyy):  # pad the text view: the first dy columns of the rotation
            wx, wy = polar(cxy), eye(cyy)
        else:
            wx, wy = eye(cxx), polar(cxy.T)
        self.scales_ = scales.cpu().numpy()
        return (wx / scales[0]).cpu().numpy(), (wy / scales[1]).cpu().numpy()

    @classmethod
    def cv_grid(cls, values: dict, params: dict, n_images: int, n_captions: int) -> dict:
        """With ``equalize="pad"`` every dimension is kept: nothing to search (n_components stays None)."""
        return {"n_components": [None]} if params.get("equalize") == "pad" else values

    def params_label(self) -> str:
        """``pca k=128``."""
        k = self.x_weights_.shape[1] if hasattr(self, "x_weights_") else self.n_components  # type: ignore[union-attr]
        return f"{self.equalize} k={k}" + (" l2" if self.normalize else "")
