"""The numerics CCA rests on: streaming (co)variances, scaled ridge, Cholesky whitening, sign fixing.

Covariances accumulate over row chunks in float64 from float32 chunk products (numpy's ``A.T @ A`` on a
contiguous block runs SYRK, half a GEMM's flops), so memory beyond the input is O(d^2) plus one chunk, and
memory-mapped inputs stream from disk. Each chunk is centred on a provisional mean (the first chunk's) before
its product, which keeps float32 cancellation small; the exact means are corrected for at the end.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cca_bench.errors import UserError

CHUNK_ROWS = 16384


@dataclass
class Moments:
    """Centred second moments of paired views, all float64.

    n: number of pairs; mean_x (dx,), mean_y (dy,); cxx (dx, dx), cyy (dy, dy), cxy (dx, dy) are
    covariances (scatter / (n - 1)).
    """

    n: int
    mean_x: np.ndarray
    mean_y: np.ndarray
    cxx: np.ndarray
    cyy: np.ndarray
    cxy: np.ndarray


def _check_finite(name: str, a: np.ndarray) -> None:
    if not np.isfinite(a).all():
        raise UserError(f"{name} contains NaN or infinite values")


def _aggregate(y: np.ndarray, index: np.ndarray, n_x: int, chunk: int) -> np.ndarray:
    """(n_y, dy) rows summed into (n_x, dy) by ``index`` (caption vectors summed per image), float64."""
    out = np.zeros((n_x, y.shape[1]), dtype=np.float64)
    for s in range(0, len(y), chunk):
        np.add.at(out, index[s : s + chunk], np.asarray(y[s : s + chunk], dtype=np.float64))
    return out


def _scatter(a: np.ndarray, shift: np.ndarray, weights: np.ndarray | None, chunk: int):
    """Sum of rows and sum of outer products of ``(a - shift) * sqrt(weights)``, over chunks.

    Returns (sum (d,) float64, scatter (d, d) float64), both about ``shift``.
    """
    d = a.shape[1]
    total, scatter = np.zeros(d), np.zeros((d, d))
    for s in range(0, len(a), chunk):
        c = np.asarray(a[s : s + chunk], dtype=np.float32) - shift
        _check_finite("input features", c)
        w = None if weights is None else weights[s : s + chunk].astype(np.float32)
        total += (c if w is None else c * w[:, None]).sum(0, dtype=np.float64)
        if w is not None:
            c *= np.sqrt(w)[:, None]
        scatter += c.T @ c
    return total, scatter


def paired_moments(x, y, x_index: np.ndarray | None = None, chunk: int = CHUNK_ROWS) -> Moments:
    """Means and covariances of the pairs (x[x_index[j]], y[j]), streamed over row chunks.

    Args:
        x: (n_x, dx) array or memmap (images). y: (n, dy) (captions).
        x_index: (n,) row of x paired with each row of y; None means x and y are row-aligned.
            With an index, x's covariance uses each row once, weighted by how often it is paired, so an
            image with 5 captions costs one row, not five.
    """
    n = len(y)
    if x_index is None:
        if len(x) != n:
            raise UserError(f"x has {len(x)} rows but y has {n}: the views must be paired row by row")
        counts, y_by_x = None, None
    else:
        x_index = np.asarray(x_index, dtype=np.int64)
        if len(x_index) != n or (n and (x_index.min() < 0 or x_index.max() >= len(x))):
            raise UserError("x_index must give one row of x (0..n_x-1) for every row of y")
        counts = np.bincount(x_index, minlength=len(x)).astype(np.float64)
    if n < 2:
        raise UserError(f"CCA needs at least 2 pairs, got {n}")
    shift_x = np.asarray(x[: min(len(x), chunk)], dtype=np.float32).mean(0)
    shift_y = np.asarray(y[: min(n, chunk)], dtype=np.float32).mean(0)
    sum_x, sxx = _scatter(x, shift_x, counts, chunk)
    sum_y, syy = _scatter(y, shift_y, None, chunk)
    sxy = np.zeros((x.shape[1], y.shape[1]))
    if x_index is not None:
        y_by_x = _aggregate(y, x_index, len(x), chunk)
    for s in range(0, len(x), chunk):
        xc = np.asarray(x[s : s + chunk], dtype=np.float32) - shift_x
        if y_by_x is None:
            yc = np.asarray(y[s : s + chunk], dtype=np.float32) - shift_y
        else:
            yc = (y_by_x[s : s + chunk] - counts[s : s + chunk, None] * shift_y).astype(np.float32)
        sxy += xc.T @ yc
    dx, dy = sum_x / n, sum_y / n
    return Moments(
        n=n,
        mean_x=shift_x + dx,
        mean_y=shift_y + dy,
        cxx=(sxx - n * np.outer(dx, dx)) / (n - 1),
        cyy=(syy - n * np.outer(dy, dy)) / (n - 1),
        cxy=(sxy - n * np.outer(dx, dy)) / (n - 1),
    )


def top_eigenvalue(c, iters: int = 500, tol: float = 1e-7, seed: int = 0) -> float:
    """Largest eigenvalue of a symmetric PSD torch matrix by power iteration (Rayleigh quotient)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    v = torch.randn(c.shape[0], generator=g, dtype=c.dtype).to(c.device)
    v /= v.norm()
    lam = 0.0
    for _ in range(iters):
        w = c @ v
        new = float(v @ w)
        norm = w.norm()
        if norm == 0:
            return 0.0
        v = w / norm
        if abs(new - lam) <= tol * abs(new):
            return new
        lam = new
    return lam


def ridge(c, reg: float):
    """``C + reg * lambda_max(C) * I`` (Klein et al. 2015 scale the ridge by the top eigenvalue)."""
    import torch

    if reg == 0:
        return c
    lam = top_eigenvalue(c)
    return c + reg * lam * torch.eye(c.shape[0], dtype=c.dtype, device=c.device)


def cholesky_factor(c, name: str, reg: float):
    """Lower Cholesky factor of a covariance, or a UserError that suggests a ridge when it is singular."""
    import torch

    lower, info = torch.linalg.cholesky_ex(c)
    diag = torch.diagonal(lower) if int(info) == 0 else None
    if diag is None or not torch.isfinite(diag).all() or float(diag.min() ** 2) <= 1e-12 * float(diag.max() ** 2):
        raise UserError(
            f"the {name} covariance is singular or nearly so (rank-deficient features"
            f"{' with reg=0' if reg == 0 else f' even with reg={reg:g}'}): use a larger ridge, e.g. --reg 1e-3"
        )
    return lower


@dataclass
class CCASolution:
    """Every canonical pair of one ridge, strongest first: the first k columns are the k-component fit.

    x_weights (dx, K), y_weights (dy, K), correlations (K,) float64 numpy, K = min(dx, dy).
    """

    x_weights: np.ndarray
    y_weights: np.ndarray
    correlations: np.ndarray


def solve_cca(m: Moments, reg: float, device: str = "cpu") -> CCASolution:
    """All canonical pairs of ridged moments (Klein et al. 2015), on a torch device, in float64.

    With Lx, Ly the Cholesky factors of the ridged Cxx, Cyy, the SVD ``Lx^-1 Cxy Ly^-T = U S V^T`` gives the
    correlations S and ``Wx = Lx^-T U``, ``Wy = Ly^-T V``; signs are fixed column by column, so slicing the
    first k columns is the k-component solution (one solve serves every n_components).
    """
    import torch

    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
    lx = cholesky_factor(ridge(t(m.cxx), reg), "image", reg)
    ly = cholesky_factor(ridge(t(m.cyy), reg), "text", reg)
    whitened = torch.linalg.solve_triangular(lx, t(m.cxy), upper=False)
    whitened = torch.linalg.solve_triangular(ly, whitened.T, upper=False).T
    u, s, vh = torch.linalg.svd(whitened, full_matrices=False)
    u, v = flip_signs(u, vh.T)
    wx = torch.linalg.solve_triangular(lx.T, u, upper=True)
    wy = torch.linalg.solve_triangular(ly.T, v, upper=True)
    return CCASolution(wx.cpu().numpy(), wy.cpu().numpy(), s.cpu().numpy())


def flip_signs(u, v):
    """Deterministic signs: the largest-magnitude entry of each column of u is positive; v follows u."""
    import torch

    idx = u.abs().argmax(0)
    signs = torch.sign(u[idx, torch.arange(u.shape[1], device=u.device)])
    signs[signs == 0] = 1
    return u * signs, v * signs
