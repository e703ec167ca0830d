"""Ridge map: least squares from one view into the other, scored in the target view's space.

``direction="image2text"``: ``W = (Cxx + reg * lambda_max(Cxx) * I)^-1 Cxy`` (dx, dy) maps a centred image
into the caption space, where it is compared with the centred caption; ``text2image`` maps captions into the
image space the same way. This is the least-squares baseline for aligning frozen unimodal encoders (the
question Maniparambil et al., CVPR 2024, "Do Vision and Language Encoders Represent the World Similarly?",
study; the ``latentis`` library offers such linear translators). It uses the CCA fit's streamed moments
(:func:`cca_bench.linalg.paired_moments`), so it costs one covariance pass and one Cholesky solve. With the
moments scaled as covariances (scatter / (n - 1)) this is scikit-learn's ``Ridge(alpha=reg * lambda_max *
(n - 1), fit_intercept=center)`` on the n caption pairs (``tests/methods/test_ridge.py`` checks it).
"""

from __future__ import annotations

from cca_bench import linalg
from cca_bench.checks import NON_NEGATIVE
from cca_bench.errors import UserError
from cca_bench.methods.aligner import COMMON_CLI, LinearAligner
from cca_bench.registry import METHODS

DIRECTIONS = ("image2text", "text2image")


@METHODS.register(
    "ridge",
    help="ridge map (least squares) from image to text space or back, scored in the target "
    "space; closed form from the CCA moments",
)
class RidgeMap(LinearAligner):
    """Ridge regression between the views, scikit-learn style.

    Args:
        reg: ridge as a fraction of the source covariance's largest eigenvalue (as RegularizedCCA's ``reg``).
        direction: "image2text" (images mapped into the caption space) or "text2image".
        normalize: L2-normalise each input row before centring (both views).
        center: subtract the means (scikit-learn's ``fit_intercept``); False fits through the origin.
        device: "auto" (CUDA when present), "cpu" or "cuda" for the covariance products and the solve.
        chunk_rows: rows per chunk of the covariance pass; cov_precision: as RegularizedCCA's.
        backend, dask_scheduler: where the moments pass runs, "numpy" here or "dask" on a cluster (as
            RegularizedCCA's; :func:`cca_bench.linalg.streamed_moments`).
    Fitted: ``x_weights_`` (dx, dy) and ``y_weights_`` None (image2text), or the reverse; ``mean_x_``,
        ``mean_y_``, ``n_samples_``.
    """

    METHOD = "ridge"
    CLI_PARAMS = {
        "direction": (
            str,
            "ridge: image2text (default: map images into the caption space) or text2image",
            list(DIRECTIONS),
        ),
        "reg": (
            NON_NEGATIVE.cli(),
            "ridge: ridge as a fraction of the source covariance's largest eigenvalue (default 1e-2)",
        ),
        **COMMON_CLI,
    }
    CV_GRID = {"reg": ((1e-4, 1e-3, 1e-2, 0.1, 1.0), "--cv-reg")}

    def __init__(
        self,
        reg=1e-2,
        direction="image2text",
        normalize=False,
        center=True,
        device="auto",
        chunk_rows=linalg.CHUNK_ROWS,
        cov_precision="auto",
        backend="numpy",
        dask_scheduler=None,
    ):
        self.reg = reg
        self.direction = direction
        self._common(normalize, center, device, chunk_rows, cov_precision, backend, dask_scheduler)

    @property
    def PRECISION_REG(self) -> float:  # type: ignore[override]  # float64 products below FLOAT32_MIN_REG, as CCA
        return self.reg

    def check_params(self, n_images=None, n_captions=None) -> None:
        NON_NEGATIVE.check("reg", self.reg)
        if self.direction not in DIRECTIONS:
            raise UserError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")

    def solve(self, m: linalg.Moments):
        """W = (C_src + reg lambda_max I)^-1 C_src,tgt via a Cholesky factor, float64."""
        import torch

        cxx, cyy, cxy = self._tensors(m)
        source, cross, name = (cxx, cxy, "image") if self.direction == "image2text" else (cyy, cxy.T, "text")
        lower = linalg.cholesky_factor(linalg.ridge(source, self.reg), name, self.reg)
        w = torch.cholesky_solve(cross, lower).cpu().numpy()
        return (w, None) if self.direction == "image2text" else (None, w)

    def params_label(self) -> str:
        """``image2text reg=0.01``."""
        return f"{self.direction} reg={self.reg:g}" + (" l2" if self.normalize else "")
