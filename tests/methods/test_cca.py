"""RegularizedCCA against known canonical correlations and a plain scipy generalized eigen-solve."""

import numpy as np
import pytest
import scipy.linalg
from sklearn.base import clone

from cca_bench.errors import UserError
from cca_bench.methods.cca import RegularizedCCA

NOISE = np.array([0.1, 0.5, 1.0])


def paired(n=20000, seed=0):
    """Views sharing 3 latent signals with noise NOISE on the text side: rho_i = 1 / sqrt(1 + noise_i^2)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    x = np.hstack([z, rng.standard_normal((n, 17))]) @ rng.standard_normal((20, 20))
    y = np.hstack([z + rng.standard_normal((n, 3)) * NOISE, rng.standard_normal((n, 7))]) @ rng.standard_normal(
        (10, 10)
    )
    return x.astype(np.float32), y.astype(np.float32)


def test_recovers_known_canonical_correlations():
    x, y = paired()
    m = RegularizedCCA(reg=0).fit(x, y)
    assert m.canonical_correlations_[:3] == pytest.approx(1 / np.sqrt(1 + NOISE**2), abs=0.01)
    assert m.canonical_correlations_[3] < 0.1
    a, b = m.transform(x, y)
    for i in range(3):  # projections are canonical variates: their correlation is rho_i
        assert np.corrcoef(a[:, i], b[:, i])[0, 1] == pytest.approx(m.canonical_correlations_[i], abs=1e-4)


def test_agrees_with_scipy_generalized_eigenproblem():
    x, y = paired(n=3000, seed=1)
    reg = 1e-2
    m = RegularizedCCA(reg=reg).fit(x, y)
    xc, yc = x - x.mean(0), y - y.mean(0)
    cxx, cyy, cxy = (a.T.astype(np.float64) @ b / (len(x) - 1) for a, b in ((xc, xc), (yc, yc), (xc, yc)))
    cxx += reg * np.linalg.eigvalsh(cxx)[-1] * np.eye(20)
    cyy += reg * np.linalg.eigvalsh(cyy)[-1] * np.eye(10)
    lhs = np.block([[np.zeros((20, 20)), cxy], [cxy.T, np.zeros((10, 10))]])
    rhs = scipy.linalg.block_diag(cxx, cyy)
    rho = scipy.linalg.eigh(lhs, rhs, eigvals_only=True)[::-1][:10]
    assert m.canonical_correlations_ == pytest.approx(rho, abs=1e-5)


def test_paired_rows_by_index_equal_repeated_rows():
    rng = np.random.default_rng(2)
    images = rng.standard_normal((200, 12)).astype(np.float32)
    index = np.repeat(np.arange(200), 5)
    texts = (images[index] @ rng.standard_normal((12, 6)) + rng.standard_normal((1000, 6))).astype(np.float32)
    a = RegularizedCCA(reg=1e-3).fit(images, texts, x_index=index)
    b = RegularizedCCA(reg=1e-3).fit(images[index], texts)
    assert a.canonical_correlations_ == pytest.approx(b.canonical_correlations_, abs=1e-6)
    np.testing.assert_allclose(a.transform_x(images), b.transform_x(images), atol=1e-4)


def test_chunking_and_memmap_give_the_same_fit(tmp_path):
    x, y = paired(n=5000, seed=3)
    np.save(tmp_path / "x.npy", x)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r", allow_pickle=False)
    a = RegularizedCCA(reg=1e-4).fit(x, y)
    b = RegularizedCCA(reg=1e-4, chunk_rows=777).fit(xm, y)
    # float32 chunk products summed in float64: agreement to float32 precision
    assert a.canonical_correlations_ == pytest.approx(b.canonical_correlations_, abs=2e-5)
    # the 3 strong, well-separated pairs are determined; the noise pairs (rho ~ 0.02..0.07) are not
    np.testing.assert_allclose(a.x_weights_[:, :3], b.x_weights_[:, :3], rtol=1e-3, atol=1e-5)


def test_signs_are_deterministic_and_eig_power_scales():
    """Reversed rows sum the float32 products in another order: the weights move by rounding (how far depends on
    the BLAS kernels) but never flip sign, which would move a column by twice its size. eig_power is compared on
    the very same fit, so only the scaling is under test."""
    x, y = paired(n=4000, seed=4)
    a = RegularizedCCA(n_components=3, eig_power=0).fit(x, y)
    b = RegularizedCCA(n_components=3, eig_power=0).fit(x[::-1].copy(), y[::-1].copy())
    cos = (
        (a.x_weights_ * b.x_weights_).sum(0)
        / np.linalg.norm(a.x_weights_, axis=0)
        / np.linalg.norm(b.x_weights_, axis=0)
    )
    assert (cos > 0.999).all()
    c = RegularizedCCA(n_components=3, eig_power=2).fit(x, y)
    pa, pc = a.transform_x(x), c.transform_x(x)
    np.testing.assert_allclose(pc, pa * a.canonical_correlations_**2, rtol=1e-5, atol=1e-6 * np.abs(pa).max())
    assert pa.shape == (4000, 3)


def test_sklearn_clone_and_params():
    m = RegularizedCCA(n_components=5, reg=0.1)
    c = clone(m)
    assert c.get_params() == m.get_params() and c is not m
    assert "reg=0.1" in repr(m)


def test_rank_deficient_without_ridge_is_a_clear_error():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((500, 4)) @ rng.standard_normal((4, 8))  # rank 4 in 8 dims
    y = rng.standard_normal((500, 3))
    with pytest.raises(UserError, match="--reg"):
        RegularizedCCA(reg=0).fit(x, y)
    m = RegularizedCCA(reg=1e-3).fit(x, y)
    assert np.isfinite(m.x_weights_).all()


def test_nan_input_and_bad_shapes_are_errors():
    x, y = paired(n=100)
    x[3, 2] = np.nan
    with pytest.raises(UserError, match="NaN"):
        RegularizedCCA().fit(x, y)
    with pytest.raises(UserError, match="paired"):
        RegularizedCCA().fit(x[:50], y)
    m = RegularizedCCA().fit(*paired(n=100))
    with pytest.raises(UserError, match="X has 3 features, but RegularizedCCA is expecting"):
        m.transform_x(np.zeros((2, 3)))


def test_save_load_round_trip(tmp_path):
    x, y = paired(n=2000)
    m = RegularizedCCA(n_components=4, reg=1e-3).fit(x, y)
    m.save(tmp_path / "model")
    assert not list(tmp_path.glob("*.tmp"))
    loaded = RegularizedCCA.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.transform_x(x), m.transform_x(x))
    np.testing.assert_array_equal(loaded.transform_y(y), m.transform_y(y))
    with pytest.raises(UserError, match="generate"):
        RegularizedCCA.load(tmp_path / "missing")


def test_one_solve_serves_every_n_components():
    from cca_bench import linalg

    x, y = paired(n=3000, seed=6)
    proto = RegularizedCCA(reg=1e-2)
    m = proto.moments(x, y)
    solution = linalg.solve_cca(m, 1e-2)
    for k in (2, 5, 10):
        shared = RegularizedCCA(n_components=k, reg=1e-2, eig_power=2).fit_moments(m, solution)
        direct = RegularizedCCA(n_components=k, reg=1e-2, eig_power=2).fit(x, y)
        np.testing.assert_array_equal(shared.transform_x(x), direct.transform_x(x))
        np.testing.assert_array_equal(shared.transform_y(y), direct.transform_y(y))


def test_csa_similarity_is_the_correlation_weighted_score_of_unit_projections():
    """Li et al. 2025: score = sum_j rho_j x_j y_j over L2-normalised projections; every distance ranks by it."""
    from cca_bench.metrics import ranks

    x, y = paired(n=2000, seed=3)
    plain = RegularizedCCA(reg=1e-2, n_components=5, eig_power=0).fit(x, y)
    csa = RegularizedCCA(reg=1e-2, n_components=5, similarity="csa").fit(x, y)
    px, py = plain.transform(x[:50], y[:60])
    rho = plain.canonical_correlations_
    ux = px.astype(np.float64) / np.linalg.norm(px, axis=1, keepdims=True)
    uy = py.astype(np.float64) / np.linalg.norm(py, axis=1, keepdims=True)
    want = (ux * rho) @ uy.T
    ex, ey = csa.transform(x[:50], y[:60])
    np.testing.assert_allclose(ex.astype(np.float64) @ ey.T, want, atol=1e-5)
    norms = np.linalg.norm(np.vstack([ex, ey]), axis=1)
    np.testing.assert_allclose(norms, np.sqrt(rho.max()), rtol=1e-5)  # so cosine / euclidean rank alike
    index = np.minimum(np.arange(60), 49)  # captions 49..59 all describe image 49
    by = {d: ranks(ex, ey, index, distance=d) for d in ("dot", "cosine", "euclidean")}
    for d in ("cosine", "euclidean"):
        for a, b in zip(by["dot"], by[d]):
            np.testing.assert_array_equal(a, b)
    # not an eig_power of the cosine: normalising after the weighting ranks differently
    half = RegularizedCCA(reg=1e-2, n_components=5, eig_power=0.5).fit(x, y)
    hx, hy = half.transform(x[:50], y[:60])
    hx, hy = hx / np.linalg.norm(hx, axis=1, keepdims=True), hy / np.linalg.norm(hy, axis=1, keepdims=True)
    assert not np.array_equal((hx @ hy.T).argmax(1), want.argmax(1))
