"""ASIF's sparse (CSR) relative representations through the evaluation and search: same values, same tie counts,
same run records as the dense path, never densified whole."""

import json

import numpy as np
import pytest
from aligner_data import paired
from scipy import sparse

from cca_bench import metrics, sparse_rows
from cca_bench.__main__ import main
from cca_bench.errors import UserError
from cca_bench.methods import asif
from cca_bench.methods.asif import ASIF
from cca_bench.search import FaissIndex, HNSWIndex

SMALL = ["-D", "n_train=300", "-D", "n_val=40", "-D", "n_test=60", "-q"]
FEATURES = "glove50_tinyimage"


def fitted(k=6, p=8.0):
    """A small ASIF model and a test split (images (24, 6), captions (48, 4), image_index (48,))."""
    x, y, index = paired(n_img=40, per=3, dx=6, dy=4, seed=5)
    qx, qy, qindex = paired(n_img=24, per=2, dx=6, dy=4, seed=6)
    return ASIF(top_k=k, exponent=p, device="cpu").fit(x, y, index), qx, qy, qindex


def both_paths(model, qx, qy, monkeypatch):
    """(dense image, dense caption, sparse image, sparse caption) embeddings: the sparse ones under a budget of 0."""
    dense = model.embed_images(qx), model.embed_texts(qy)
    monkeypatch.setattr(asif, "MAX_DENSE_BYTES", 0)
    return (*dense, model.embed_images(qx), model.embed_texts(qy))


def test_budget_switches_to_csr_with_the_same_values(monkeypatch):
    """Planted bugs caught: the sparse branch of ``ASIF.dense`` without ``finish`` (no exponent, no L2 rows), or
    with the exponent dropped (``finish(values, 1)``): its CSR rows then differ from the dense ones."""
    model, qx, qy, _ = fitted()
    di, dt, si, st = both_paths(model, qx, qy, monkeypatch)
    assert isinstance(di, np.ndarray) and sparse.issparse(si) and sparse.issparse(st)
    assert si.nnz == 6 * len(qx) and si.shape == di.shape
    np.testing.assert_array_equal(si.toarray(), di)  # bit for bit
    np.testing.assert_array_equal(st.toarray(), dt)


def _no_near_ties(scores):
    """True when distinct scores of every row are more than 1e-5 apart (then a last-bit difference between the
    BLAS GEMM and the sparse product cannot reorder them; exact ties, e.g. the many exact zeros, stay exact)."""
    for row in scores:
        u = np.unique(row)
        if len(u) > 1 and np.diff(u).min() <= 1e-5:
            return False
    return True


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
def test_sparse_tie_counts_equal_dense(distance, monkeypatch):
    """Tie counts of both directions (above, tied, ground truths tied, degenerate queries) from CSR embeddings
    equal those from the dense ones exactly, with rows scaled so that cosine must normalise them, in 2 folds.
    Planted bugs caught: ``sparse_rows.prepare`` not normalising (cosine), ``first_equal`` of CSR rows
    ignoring the values (``_copies_alike`` then copies scores between different captions); euclidean:
    ``sparse_rows.row_sq`` returning zeros (the squared-norm term dropped), or summing the squares in float32
    (scipy's order, not the dense path's: unit rows' norms then differ in the last bit, which splits or makes
    ties among the many captions that share no anchor with a query)."""
    model, qx, qy, qindex = fitted()
    di, dt, si, st = both_paths(model, qx, qy, monkeypatch)
    scale = np.random.default_rng(1).uniform(0.5, 3.0, (len(qy), 1)).astype(np.float32)
    dt, st = dt * scale, sparse.csr_matrix(st.multiply(scale))
    dt[3], st = dt[2], sparse.vstack([st[:3], st[2], st[4:]]).tocsr()  # a duplicate caption: an exact tie
    assert _no_near_ties(metrics.similarity(di, dt, distance))
    monkeypatch.setattr(sparse_rows, "SCORE_ROWS", 4)  # several sparse products per score block
    monkeypatch.setattr(metrics, "SCORE_BLOCK_BYTES", 400)  # several image blocks reuse one score buffer
    want = metrics.fold_counts(di, dt, qindex, distance, folds=2)
    got = metrics.fold_counts(si, st, qindex, distance, folds=2)
    assert sum(int(f[1].tied.sum()) for f in want) > 0  # the data has ties to get right
    for w, g in zip(want, got):
        for a, b in zip(w[:2], g[:2]):
            for field in ("above", "tied", "gt_tied"):
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_array_equal(w[2], g[2])
        np.testing.assert_array_equal(w[3], g[3])


def test_sparse_evaluation_never_densifies_whole(monkeypatch):
    """Only blocks of at most ``SCORE_ROWS`` query rows are ever made dense. Planted bug caught:
    ``sparse_rows.prepare`` normalising via ``emb.toarray()`` (a full n x anchors array)."""
    model, qx, qy, qindex = fitted()
    _, _, si, st = both_paths(model, qx, qy, monkeypatch)
    monkeypatch.setattr(sparse_rows, "SCORE_ROWS", 8)
    rows, toarray = [], sparse.csr_matrix.toarray

    def spy(self, *a, **kw):
        rows.append(self.shape[0])
        return toarray(self, *a, **kw)

    monkeypatch.setattr(sparse.csr_matrix, "toarray", spy)
    metrics.fold_counts(si, st, qindex, "cosine")
    assert rows and max(rows) <= 8


def _last_run(tmp_path) -> tuple[dict, dict]:
    """The run record written last under tmp_path/results/runs and the arrays of its ranks file."""
    runs = sorted((tmp_path / "results" / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    with np.load(runs[-1].with_name(runs[-1].stem + ".ranks.npz"), allow_pickle=False) as z:
        return json.loads(runs[-1].read_text()), {k: z[k] for k in z.files}


def test_run_benchmark_and_search_sparse_equal_dense(tmp_path, monkeypatch, capsys):
    """``run_benchmark`` with the relative representations as CSR (budget 0) gives the dense run's metrics,
    recall curves, intervals, degenerate queries, per-query ranks and top-10 lists exactly, and ``search`` the
    same hits. Planted bugs caught:
    the exponent dropped in the sparse branch of ``ASIF.dense``; the sparse scorer not used (the spy's count)."""
    roots = ["--data-root", str(tmp_path / "data"), "--results-root", str(tmp_path / "results")]
    argv = ["asif", "shapes", FEATURES, "--top-k", "50", *SMALL, *roots]
    assert main(["generate", *argv]) == 0
    assert main(["run_benchmark", "asif", "shapes", "test", FEATURES, *SMALL, *roots]) == 0
    dense, dense_ranks = _last_run(tmp_path)
    capsys.readouterr()
    assert main(["search", "asif", "shapes", FEATURES, "--text", "a red circle", "-k", "5", *SMALL, *roots]) == 0
    dense_hits = capsys.readouterr().out
    calls, scorer = [], sparse_rows.scorer
    monkeypatch.setattr(sparse_rows, "scorer", lambda txt: calls.append(txt.shape) or scorer(txt))
    monkeypatch.setattr(asif, "MAX_DENSE_BYTES", 0)
    assert main(["run_benchmark", "asif", "shapes", "test", FEATURES, *SMALL, *roots]) == 0
    sparse_run, sparse_ranks = _last_run(tmp_path)
    assert calls  # the evaluation took the sparse path
    for field in ("metrics", "recall_curve", "ci", "degenerate_queries"):
        assert sparse_run[field] == dense[field], field
    assert dense_ranks.keys() == sparse_ranks.keys() and any("top10" in k for k in dense_ranks)
    for key in dense_ranks:  # per-query tie counts / ranks and the top-10 lists
        np.testing.assert_array_equal(sparse_ranks[key], dense_ranks[key], err_msg=key)
    capsys.readouterr()
    assert main(["search", "asif", "shapes", FEATURES, "--text", "a red circle", "-k", "5", *SMALL, *roots]) == 0
    assert capsys.readouterr().out == dense_hits


@pytest.mark.parametrize("index, name", [(FaissIndex, "faiss"), (HNSWIndex, "hnsw")])
def test_faiss_indexes_refuse_sparse_galleries(index, name, monkeypatch):
    """A FAISS index holds dense rows: a CSR gallery is refused in one line naming the flag. Planted bug caught:
    the check removed (FaissIndex then fails on the CSR matrix with an IndexError, not a UserError)."""
    model, qx, qy, _ = fitted()
    _, _, si, _ = both_paths(model, qx, qy, monkeypatch)
    with pytest.raises(UserError, match=f"--index {name} takes dense embeddings.*use --index exact"):
        index(si, "cosine")
