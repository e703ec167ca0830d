"""Encoder-similarity diagnostics between paired image and caption features, with a permutation-calibrated null.

Measures (rows are paired items: row i of X and row i of Y describe the same image):
- ``cka``: linear CKA, HSIC with centred Gram matrices (Kornblith et al. 2019): <HKH, HLH>_F / (|HKH| |HLH|),
  K = X X', L = Y Y' (the biased HSIC estimator of Gretton et al. 2005).
- ``unbiased_cka``: CKA with the unbiased HSIC estimator of Song et al. 2012 (eq. 5; "debiased CKA"):
  [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)), K~ = K with a zero diagonal.
- ``mutual_knn``: Huh et al. 2024 (platonic-rep ``metrics.py``): rows L2-normalised, each row's k nearest other
  rows by cosine in X and in Y, the mean fraction of the k shared by both.
- ``cknna``: Huh et al.'s CKNNA (unbiased form, their default): the unbiased HSIC of K and L restricted to the
  pairs (i, j) where j is among i's k nearest neighbours in both views, normalised as CKA; K, L on L2-normalised rows.
- ``svcca``: Raghu et al. 2017: each centred view reduced to its top ``dim`` singular directions, then CCA
  between them; the mean canonical correlation.
- ``pwcca``: Morcos et al. 2018: the canonical correlations of the same reduced views weighted by how much of
  X each canonical variate h_i accounts for, alpha_i proportional to sum_j |h_i . x_j| over X's centred columns.

Calibration (Groger, Wen and Brbic 2026, ``calibrated-similarity``'s ``calibrate``): the score of K row
permutations of Y (pairs broken) forms a null; tau is the ceil((1 - alpha)(K + 1))-th smallest of the null and
the observed score together, the calibrated score max(0, min(1, (s - tau) / (1 - tau))), the p-value
(1 + #{null >= s}) / (K + 1). Every measure here is at most 1, so s_max = 1.

Each measure is a pair of functions: ``prepare(X, Y, params)`` computes what permutations do not change (Gram
matrices, neighbour lists, bases) once; ``score(state, perm)`` scores Y's rows permuted by ``perm`` (None: the
observed pairing) in O(n^2) or less, so a thousand permutations cost about a thousand Gram-sized passes.
"""

from __future__ import annotations

import math

import numpy as np

from cca_bench.errors import UserError

DEFAULT_K = 10
DEFAULT_DIM = 10
DEFAULT_PERMUTATIONS = 200  # calibrated-similarity's default K
ALPHA = 0.05


def _centred_gram(a: np.ndarray) -> np.ndarray:
    """H A A' H (n, n) of a (n, d) float64 array: the Gram matrix of the centred rows."""
    c = a - a.mean(0)
    return c @ c.T


def _permuted(m: np.ndarray, perm: np.ndarray | None) -> np.ndarray:
    """M[perm][:, perm]: the (n, n) Gram-like matrix of Y's rows permuted by ``perm``."""
    return m if perm is None else m[np.ix_(perm, perm)]


def _prepare_cka(x, y, params):
    k, l_ = _centred_gram(x), _centred_gram(y)
    return {"k": k, "l": l_, "norm": math.sqrt(float((k * k).sum()) * float((l_ * l_).sum()))}


def _score_cka(s, perm) -> float:
    return float((s["k"] * _permuted(s["l"], perm)).sum()) / s["norm"] if s["norm"] > 0 else 0.0


def hsic_unbiased(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. 2012 eq. 5 of (n, n) K and L (n >= 4); their diagonals are ignored. For asymmetric inputs
    (CKNNA's masked kernels) tr(K~L~) = sum_ij K~_ij L~_ji, as platonic-rep computes it."""
    n = len(k)
    kt, lt = k.copy(), l_.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    value = (kt * lt.T).sum() + kt.sum() * lt.sum() / ((n - 1) * (n - 2)) - 2 * (kt.sum(0) @ lt.sum(1)) / (n - 2)
    return float(value / (n * (n - 3)))


def _zero_diagonal(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    np.fill_diagonal(out, 0.0)
    return out


def _prepare_unbiased_cka(x, y, params):
    """K~, L~ with their sums and row sums: under a permutation only tr(K~L~) and 1'K~L~1 change."""
    kt, lt = _zero_diagonal(x @ x.T), _zero_diagonal(y @ y.T)
    return {
        "k": kt,
        "l": lt,
        "ksum": kt.sum(1),
        "lsum": lt.sum(1),
        "kk": hsic_unbiased(kt, kt),
        "ll": hsic_unbiased(lt, lt),
    }


def _score_unbiased_cka(s, perm) -> float:
    """Song et al.'s eq. 5 with L~ permuted (symmetric K~, L~: tr(K~L~) = <K~, L~>_F)."""
    n, lsum = len(s["k"]), s["lsum"] if perm is None else s["lsum"][perm]
    value = (
        (s["k"] * _permuted(s["l"], perm)).sum()
        + s["ksum"].sum() * lsum.sum() / ((n - 1) * (n - 2))
        - 2 * (s["ksum"] @ lsum) / (n - 2)
    ) / (n * (n - 3))
    denom = math.sqrt(max(s["kk"] * s["ll"], 0.0))
    return float(value) / denom if denom > 0 else 0.0


def l2_rows(a: np.ndarray) -> np.ndarray:
    """(n, d) rows divided by their norms (an all-zero row stays zero)."""
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norms > 0, norms, 1.0)


def neighbours(gram: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k largest off-diagonal entries of ``gram``, largest first; ties go to the
    lower index (a stable sort), so the result does not depend on the sort's implementation."""
    g = gram.copy()
    np.fill_diagonal(g, -np.inf)
    return np.argsort(-g, axis=1, kind="stable")[:, :k]


def _mask(nn: np.ndarray) -> np.ndarray:
    """(n, n) boolean: m[i, j] when j is among row i's neighbours ``nn`` (n, k)."""
    m = np.zeros((len(nn), len(nn)), dtype=bool)
    m[np.arange(len(nn))[:, None], nn] = True
    return m


def _prepare_knn(x, y, params):
    k = params["k"]
    kx, ky = l2_rows(x), l2_rows(y)
    return {"mask_x": _mask(neighbours(kx @ kx.T, k)), "nn_y": neighbours(ky @ ky.T, k), "k": k}


def _score_knn(s, perm) -> float:
    """The neighbours of permuted row i are the images under perm^-1 of the neighbours of row perm[i]."""
    nn = s["nn_y"]
    if perm is not None:
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        nn = inverse[nn[perm]]
    shared = s["mask_x"][np.arange(len(nn))[:, None], nn]
    return float(shared.sum(1).mean() / s["k"])


def _prepare_cknna(x, y, params):
    xn, yn = l2_rows(x), l2_rows(y)
    k, l_ = xn @ xn.T, yn @ yn.T
    nn_k, nn_l = neighbours(k, params["k"]), neighbours(l_, params["k"])
    mask_k, mask_l = _mask(nn_k), _mask(nn_l)
    kk, ll = hsic_unbiased(mask_k * k, mask_k * k), hsic_unbiased(mask_l * l_, mask_l * l_)
    return {"k": k, "l": l_, "nn_k": nn_k, "nn_y": nn_l, "denom": math.sqrt(max(kk * ll, 0.0))}


def _score_cknna(s, perm) -> float:
    """Huh et al.'s HSIC of K and L masked to the pairs that are neighbours in both views, evaluated on those at
    most n k pairs (sparse) instead of the n x n masked matrices; ``hsic_unbiased`` of the dense masks is the
    reference it is tested against."""
    n, nn_k = len(s["k"]), s["nn_k"]
    nn_l, p = s["nn_y"], np.arange(n) if perm is None else perm
    if perm is not None:
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(n)
        nn_l = inverse[nn_l[perm]]
    hit = (nn_k[:, :, None] == nn_l[:, None, :]).any(2)  # (n, k): nn_k[i, a] is a neighbour in both views
    rows, cols = np.nonzero(hit)[0], nn_k[hit]
    kv, lv = s["k"][rows, cols], s["l"][p[rows], p[cols]]
    value = _sparse_hsic_unbiased(n, rows, cols, kv, lv)
    return value / s["denom"] if s["denom"] > 0 else 0.0


def _sparse_hsic_unbiased(n: int, rows, cols, kv, lv) -> float:
    """``hsic_unbiased`` of K~, L~ that are zero but at (rows, cols) (no diagonal), holding kv and lv there."""
    lin = rows * n + cols
    order = np.argsort(lin)
    at = np.searchsorted(lin[order], cols * n + rows)  # where (j, i) is, for tr(K~L~) = sum_ij K~_ij L~_ji
    at = np.minimum(at, len(lin) - 1)
    found = lin[order][at] == cols * n + rows
    trace = float(kv[found] @ lv[order][at][found])
    k_cols, l_rows = np.bincount(cols, kv, n), np.bincount(rows, lv, n)
    value = trace + kv.sum() * lv.sum() / ((n - 1) * (n - 2)) - 2 * (k_cols @ l_rows) / (n - 2)
    return float(value / (n * (n - 3)))


def reduced_basis(a: np.ndarray, dim: int) -> np.ndarray:
    """(n, dim') orthonormal basis of the centred view's top ``dim`` singular directions (dim' = min(dim,
    rank)): the SVCCA reduction (Raghu et al. 2017)."""
    u, sv, _ = np.linalg.svd(a - a.mean(0), full_matrices=False)
    rank = int((sv > sv[0] * 1e-10).sum()) if len(sv) and sv[0] > 0 else 0
    return u[:, : min(dim, rank)]


def _prepare_cca(x, y, params):
    qx = reduced_basis(x, params["dim"])
    return {"qx": qx, "qy": reduced_basis(y, params["dim"]), "load": qx.T @ (x - x.mean(0))}


def canonical(s, perm) -> tuple[np.ndarray, np.ndarray]:
    """(canonical correlations (m,), X-side directions (dim_x, m)) of the reduced views, Y permuted."""
    qy = s["qy"] if perm is None else s["qy"][perm]
    u, rho, _ = np.linalg.svd(s["qx"].T @ qy, full_matrices=False)
    return np.clip(rho, 0.0, 1.0), u[:, : len(rho)]


def _score_svcca(s, perm) -> float:
    rho, _ = canonical(s, perm)
    return float(rho.mean()) if len(rho) else 0.0


def _score_pwcca(s, perm) -> float:
    """alpha_i = sum_j |h_i . x_j| with h_i = Q_x a_i, so h_i' X = a_i' (Q_x' X) (``load``)."""
    rho, a = canonical(s, perm)
    weights = np.abs(a.T @ s["load"]).sum(1)
    return float(weights @ rho / weights.sum()) if weights.sum() > 0 else 0.0


MEASURES = {  # name -> (prepare, score, the parameters it reads)
    "cka": (_prepare_cka, _score_cka, ()),
    "unbiased_cka": (_prepare_unbiased_cka, _score_unbiased_cka, ()),
    "mutual_knn": (_prepare_knn, _score_knn, ("k",)),
    "cknna": (_prepare_cknna, _score_cknna, ("k",)),
    "svcca": (_prepare_cca, _score_svcca, ("dim",)),
    "pwcca": (_prepare_cca, _score_pwcca, ("dim",)),
}


def calibrate(observed: float, null: np.ndarray, alpha: float = ALPHA) -> dict:
    """Groger et al.'s calibration of ``observed`` against the (K,) ``null``: tau, calibrated score, p-value."""
    combined = np.sort(np.append(null, observed))
    tau = float(combined[min(max(math.ceil((1 - alpha) * (len(null) + 1)) - 1, 0), len(null))])
    calibrated = min(max((observed - tau) / max(1.0 - tau, 1e-12), 0.0), 1.0)
    return {
        "calibrated": float(calibrated),
        "p_value": float((1 + np.sum(null >= observed)) / (len(null) + 1)),
        "tau": tau,
        "null_mean": float(null.mean()),
        "null_sd": float(null.std()),
    }


def check_pairs(x: np.ndarray, y: np.ndarray, k: int, dim: int, where: str = "") -> None:
    """UserError (one line) unless x (n, dx) and y (n, dy) are finite 2-D arrays with the same rows, enough of
    them for the unbiased HSIC (n >= 4) and for k neighbours (k < n - 1), and k, dim >= 1."""
    for name, a in (("images", x), ("texts", y)):
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            raise UserError(f"{where}{name}: expected a non-empty 2-D array, got shape {a.shape}")
        bad = ~np.isfinite(a).all(1)
        if bad.any():
            raise UserError(
                f"{where}{name}: {int(bad.sum())} rows hold NaN or infinite values (first: row "
                f"{int(np.flatnonzero(bad)[0])})"
            )
    if len(x) != len(y):
        raise UserError(f"{where}the views are not paired: {len(x)} image rows but {len(y)} text rows")
    if len(x) < 4:
        raise UserError(f"{where}{len(x)} pairs: the unbiased HSIC needs at least 4")
    if not 1 <= k < len(x) - 1:
        raise UserError(f"-k {k}: choose 1 <= k < {len(x) - 1} (the pairs less one, less the row itself)")
    if dim < 1:
        raise UserError(f"--dim must be at least 1, got {dim}")


def per_image(images: np.ndarray, texts: np.ndarray, image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(images with captions (m, dx), the mean of each one's caption rows (m, dy)): one pair per image, as
    Huh et al. pair an image with its caption. image_index (n_txt,): image of each text row (as ``evaluate``)."""
    counts = np.bincount(image_index, minlength=len(images))
    sums = np.zeros((len(images), texts.shape[1]))
    np.add.at(sums, image_index, texts)
    keep = counts > 0
    return images[keep], sums[keep] / counts[keep, None]


def measure_all(
    x: np.ndarray,
    y: np.ndarray,
    k: int = DEFAULT_K,
    dim: int = DEFAULT_DIM,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    names=None,
    progress=None,
) -> dict:
    """{measure: {"score", "calibrated", "p_value", "tau", "null_mean", "null_sd", "permutations", "n_pairs",
    and its k or dim}} of paired x (n, dx) and y (n, dy), float64. The same ``permutations`` row permutations
    of y (``default_rng(seed)``) make every measure's null."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    check_pairs(x, y, k, dim)
    if permutations < 1:
        raise UserError(f"--permutations must be at least 1, got {permutations}")
    params = {"k": k, "dim": dim}
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(len(x)) for _ in range(permutations)]
    out = {}
    for name in names or MEASURES:
        prepare, score, knobs = MEASURES[name]
        state = prepare(x, y, params)
        observed = score(state, None)
        null = np.array([score(state, p) for p in perms])
        out[name] = {
            "score": observed,
            **calibrate(observed, null),
            "permutations": permutations,
            "seed": seed,
            "n_pairs": len(x),
            **{kn: params[kn] for kn in knobs},
        }
        if progress:
            progress(name)
    return out
