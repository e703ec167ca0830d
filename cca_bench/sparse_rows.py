"""Sparse embeddings (scipy CSR rows) in the evaluation and in ``search``, without densifying them whole.

A method whose embeddings are mostly zeros (ASIF: ``top_k`` non-zeros over 414k anchors at COCO size) may return
a ``scipy.sparse`` matrix instead of an (n, k) array. :mod:`cca_bench.metrics` then takes its score blocks from
:func:`scorer`: ``(queries block, CSR) @ (gallery, CSR).T``, made dense one block of rows at a time, so memory is
the two sparse matrices plus one score block; the rest of the pass (tie counts, degenerate queries, folds) is the
dense path's own. Each score is scipy's float32 sum of the products over the shared non-zero columns, in the
query row's column order, so it does not depend on the block a row falls in (a BLAS GEMM's rounding does).
It agrees with a BLAS GEMM over the same rows made dense to float32 rounding, not bit for bit: exact ties (equal
rows, the many exact zeros of rows sharing no anchor) are ties on both paths, and ranks and tie counts are equal
wherever distinct scores are further apart than that rounding (tests/methods/test_asif_sparse.py checks this).
Cosine rows are L2-normalised as :func:`cca_bench.metrics.prepare` does it (float64 norm, float32 quotient) on
the stored values only.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

SCORE_ROWS = 256  # query rows per sparse product: bounds scipy's sparse intermediate, not the result


def is_sparse(a) -> bool:
    """True for a scipy.sparse matrix or array."""
    return sparse.issparse(a)


def as_csr(a) -> sparse.csr_matrix:
    """``a`` (n, k), dense or sparse, as a float32 CSR matrix with sorted, summed indices (a copy)."""
    out = sparse.csr_matrix(a, dtype=np.float32, copy=True)
    out.sum_duplicates()
    out.sort_indices()
    return out


def row_sq64(a: sparse.csr_matrix) -> np.ndarray:
    """(n,) float64 squared L2 norms of the rows of a CSR matrix (stored values only; empty rows 0). A float32
    value's square is exact in float64, so only the float64 sum rounds."""
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    return np.bincount(rows, weights=np.square(a.data.astype(np.float64)), minlength=a.shape[0])


def row_norms(a: sparse.csr_matrix) -> np.ndarray:
    """(n,) float64 L2 norms of the rows of a CSR matrix (stored values only; empty rows 0)."""
    return np.sqrt(row_sq64(a))


def row_sq(a: sparse.csr_matrix) -> np.ndarray:
    """(n,) float32 squared norms of the rows (euclidean scores): the float64 sum of the squares rounded once,
    as :func:`cca_bench.metrics._row_sq` rounds a dense row's, so both paths shift scores alike."""
    return row_sq64(a).astype(np.float32)


def prepare(emb, distance: str) -> tuple[sparse.csr_matrix, bool]:
    """(CSR rows ready for a dot product under ``distance``, whether every stored value is finite).

    cosine: rows divided by their float64 norm (at least 1e-12), the quotient cast to float32, as
    :func:`cca_bench.metrics.prepare` divides dense rows; a zero row stays zero. Never densifies."""
    with np.errstate(over="ignore"):
        out = as_csr(emb)
    finite = bool(np.isfinite(out.data).all())
    if distance == "cosine" and finite:
        norms = np.maximum(row_norms(out), 1e-12)
        out.data = (out.data / np.repeat(norms, np.diff(out.indptr))).astype(np.float32)
    return out, finite


def first_equal(a: sparse.csr_matrix) -> np.ndarray:
    """(n,) index of the first row equal to each row bit for bit (-0.0 equals 0.0; stored zeros ignored), as
    :func:`cca_bench.metrics.first_equal` for dense rows."""
    a = as_csr(a)
    a.data = a.data + np.float32(0)
    a.eliminate_zeros()
    seen: dict = {}
    first = np.empty(a.shape[0], dtype=np.int64)
    for i in range(a.shape[0]):
        s, e = a.indptr[i], a.indptr[i + 1]
        first[i] = seen.setdefault((a.indices[s:e].tobytes(), a.data[s:e].tobytes()), i)
    return first


def rowwise_dot(a: sparse.csr_matrix, b: sparse.csr_matrix, absolute: bool = False) -> np.ndarray:
    """(n,) float64 dot products of matching rows of (n, k) CSR matrices (of their absolute values)."""
    if absolute:
        a, b = abs(a), abs(b)
    return np.asarray(a.multiply(b).sum(1), dtype=np.float64).ravel()


def terms(a: sparse.csr_matrix, b: sparse.csr_matrix) -> int:
    """The most products one score sums: the fewer of the two sides' largest row counts of non-zeros."""
    most = [int(np.diff(m.indptr).max(initial=0)) for m in (a, b)]
    return max(1, min(most))


def product(q: sparse.csr_matrix, gallery_t: sparse.csr_matrix, out: np.ndarray | None = None) -> np.ndarray:
    """Dense float32 (n_q, n_g) scores ``q @ gallery_t`` (gallery_t: the gallery transposed, CSR (k, n_g)),
    computed ``SCORE_ROWS`` query rows at a time into ``out`` (allocated when None)."""
    if out is None:
        out = np.empty((q.shape[0], gallery_t.shape[1]), dtype=np.float32)
    for r in range(0, q.shape[0], SCORE_ROWS):
        (q[r : r + SCORE_ROWS] @ gallery_t).toarray(out=out[r : r + SCORE_ROWS])  # scipy zeroes ``out`` first
    return out


def scorer(txt: sparse.csr_matrix):
    """``(q, out) -> q @ txt.T`` for CSR query blocks q, into ``out`` (:func:`product`); ``txt`` transposed once."""
    gallery_t = txt.T.tocsr()
    gallery_t.sort_indices()
    return lambda q, out: product(q, gallery_t, out)
