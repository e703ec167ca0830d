"""Partial least squares (PLS-SVD): the directions of largest cross-covariance between the views.

The SVD ``U S V' = Cxy`` of the cross-covariance from the CCA fit's streamed moments gives the weights
``Wx = U[:, :k]``, ``Wy = V[:, :k]``; an image embeds as ``(x - mean_x) Wx``, a caption as ``(y - mean_y) Wy``.
With ``scale`` each feature is first divided by its standard deviation (ddof 1). This is scikit-learn's
``PLSSVD`` (Wegelin 2000, "A survey of Partial Least Squares (PLS) methods, with emphasis on the two-block
case"), checked against it up to the sign of each component in ``tests/methods/test_pls.py``; it is also CCA
with the covariances replaced by identities (cca-zoo calls PLS ridge CCA with c = 1). Unlike CCA it needs no
inverse, so it is stable on rank-deficient features. The deflated ``PLSCanonical`` variant is not offered.
"""

from __future__ import annotations

from cca_bench import linalg
from cca_bench.checks import COUNT
from cca_bench.errors import UserError
from cca_bench.methods.aligner import COMMON_CLI, LinearAligner
from cca_bench.registry import METHODS


@METHODS.register("pls", help="partial least squares (PLS-SVD, scikit-learn's PLSSVD): SVD of the cross-covariance")
class PLSSVD(LinearAligner):
    """Two-block PLS by one SVD of the cross-covariance, scikit-learn style.

    Args:
        n_components: components kept (default: the narrower feature width).
        scale: divide every feature by its standard deviation first (scikit-learn's ``scale=True``).
        normalize, center, device, chunk_rows, cov_precision, backend, dask_scheduler: as for
            :class:`~cca_bench.methods.ridge.RidgeMap`.
    Fitted: ``x_weights_`` (dx, k), ``y_weights_`` (dy, k) (per-feature scaling folded in),
        ``singular_values_`` (k,), ``mean_x_``, ``mean_y_``, ``n_samples_``.
    """

    METHOD = "pls"
    CLI_PARAMS = {
        "n_components": (COUNT.cli(), "pls: components kept (default: the narrower feature width)"),
        "scale": (bool, "pls: divide every feature by its standard deviation first (as scikit-learn's PLSSVD)"),
        **COMMON_CLI,
    }
    CV_GRID = {"n_components": ((32, 64, 128, 256, 512), "--cv-components")}
    _ARRAYS = ("singular_values_",)

    def __init__(
        self,
        n_components=None,
        scale=False,
        normalize=False,
        center=True,
        device="auto",
        chunk_rows=linalg.CHUNK_ROWS,
        cov_precision="auto",
        backend="numpy",
        dask_scheduler=None,
    ):
        self.n_components = n_components
        self.scale = scale
        self._common(normalize, center, device, chunk_rows, cov_precision, backend, dask_scheduler)

    def check_params(self, n_images=None, n_captions=None) -> None:
        self._check_components()

    def solve(self, m: linalg.Moments):
        """SVD of the (scaled) cross-covariance, signs fixed: (Wx (dx, k), Wy (dy, k)) in float64."""
        import torch

        cxx, cyy, cxy = self._tensors(m)
        k_max = min(cxy.shape)
        k = k_max if self.n_components is None else int(self.n_components)
        if k > k_max:
            raise UserError(f"PLSSVD n_components={k} exceeds the narrower feature width {k_max}")
        sx, sy = (_stds(c) if self.scale else torch.ones(len(c), dtype=c.dtype, device=c.device) for c in (cxx, cyy))
        u, s, vh = torch.linalg.svd(cxy / sx[:, None] / sy[None, :], full_matrices=False)
        u, v = linalg.flip_signs(u[:, :k], vh[:k].T)
        self.singular_values_ = s[:k].cpu().numpy()
        return (u / sx[:, None]).cpu().numpy(), (v / sy[:, None]).cpu().numpy()

    def params_label(self) -> str:
        """``k=128``."""
        k = self.x_weights_.shape[1] if hasattr(self, "x_weights_") else self.n_components  # type: ignore[union-attr]
        return f"k={k}" + (" scaled" if self.scale else "") + (" l2" if self.normalize else "")


def _stds(c):
    """Per-feature standard deviations from a covariance's diagonal; constant features get 1 (as scikit-learn)."""
    import torch

    sd = torch.sqrt(torch.clamp(torch.diagonal(c), min=0))
    return torch.where(sd > 0, sd, torch.ones_like(sd))
