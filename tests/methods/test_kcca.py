"""Kernel CCA: exact KCCA when every train point is a landmark, the maps against scikit-learn, save/load, errors."""

import json

import numpy as np
import pytest

from cca_bench.errors import UserError
from cca_bench.kernel_maps import KernelMap, fit_map, median_gamma
from cca_bench.methods.kcca import KernelCCA


def tiny(n_img=24, per=2, seed=0):
    """Images x (n_img, 4), ``per`` captions each y (n_img * per, 3) sharing a nonlinear signal with them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_img, 4))
    index = np.repeat(np.arange(n_img), per)
    signal = np.tanh(x[index, :3] * x[index, 1:])
    y = signal + 0.3 * rng.standard_normal((len(index), 3))
    return x.astype(np.float32), y.astype(np.float32), index


def rbf(a, b, gamma):
    d = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-gamma * d)


def exact_kcca(kx, ky, reg):
    """Regularized KCCA in the dual (Hardoon, Szedmak, Shawe-Taylor 2004), written from the Gram matrices.

    Over the n pairs, with centred Grams Kc = H K H (H = I - 11^T / n), maximise
    a' Kcx Kcy b / sqrt((a' (Kcx^2 + kx Kcx) a) (b' (Kcy^2 + ky Kcy) b)). The primal ridge of RegularizedCCA,
    ``C + reg * lambda_max(C) I`` on the mapped covariance C = Phi_c' Phi_c / (n - 1), is this with
    kappa = reg * lambda_max(Kc): the optimal primal weights lie in the span of the centred mapped rows,
    w = Phi_c' a, so w' C w = a' Kc^2 a / (n - 1) and w' w = a' Kc a, and C and Kc / (n - 1) share their
    nonzero eigenvalues. In the eigenbasis Kc = U L U' (L > 0), the correlations are the singular values of
    diag(sqrt(Lx / (Lx + kx))) Ux' Uy diag(sqrt(Ly / (Ly + ky))), and a = Ux diag((Lx^2 + kx Lx)^-1/2) p.
    Returns (correlations, dual weights a (n, r), b (n, r)).
    """
    n = len(kx)
    h = np.eye(n) - 1.0 / n

    def basis(k):
        kc = h @ k @ h
        vals, vecs = np.linalg.eigh(kc)
        keep = vals > 1e-10 * vals[-1]
        vals, vecs = vals[keep], vecs[:, keep]
        kappa = reg * vals[-1]
        return vals, vecs, kappa

    lx, ux, kx_ = basis(kx)
    ly, uy, ky_ = basis(ky)
    m = np.sqrt(lx / (lx + kx_))[:, None] * (ux.T @ uy) * np.sqrt(ly / (ly + ky_))[None, :]
    p, s, qt = np.linalg.svd(m, full_matrices=False)
    a = ux @ (p / np.sqrt(lx**2 + kx_ * lx)[:, None])
    b = uy @ (qt.T / np.sqrt(ly**2 + ky_ * ly)[:, None])
    return s, a, b


def centred_test_kernel(k_test, k_train):
    """k~(x*, x_i) = (phi(x*) - mean) . (phi(x_i) - mean), mean over the n train pairs."""
    return k_test - k_test.mean(1, keepdims=True) - k_train.mean(0) + k_train.mean()


@pytest.mark.parametrize("views", ["both", "image"])
def test_every_train_point_a_landmark_is_exact_kernel_cca(views):
    x, y, index = tiny()
    reg, k = 0.1, 3
    model = KernelCCA(kernel_views=views, landmarks=None, reg=reg, eig_power=0, n_components=k)
    model.fit(x, y, x_index=index)
    assert model.map_x_.n_features_out == len(x)  # every image is a landmark (default: min(2000, rows))
    gx = model.map_x_.gamma
    kx = rbf(x[index], x[index], gx)  # the pair Gram: an image counts once per caption
    if views == "both":
        assert model.map_y_.n_features_out == len(y)
        ky = rbf(y, y, model.map_y_.gamma)
    else:
        assert model.map_y_ is None
        ky = y.astype(np.float64) @ y.T.astype(np.float64)
    corr, a, b = exact_kcca(kx, ky, reg)
    np.testing.assert_allclose(model.canonical_correlations_, corr[:k], rtol=2e-5)
    # projections of new points: sqrt(n - 1) k~(x*, train) a (the primal weights are whitened by C / (n - 1))
    xt, yt, _ = tiny(n_img=10, per=1, seed=5)
    n = len(index)
    px = centred_test_kernel(rbf(xt, x[index], gx), kx) @ a[:, :k] * np.sqrt(n - 1)
    kyt = rbf(yt, y, model.map_y_.gamma) if views == "both" else yt.astype(np.float64) @ y.T.astype(np.float64)
    py = centred_test_kernel(kyt, ky) @ b[:, :k] * np.sqrt(n - 1)
    ex, ey = model.transform_x(xt), model.transform_y(yt)
    signs = np.sign((ex * px).sum(0))  # each canonical pair is defined up to a common sign
    np.testing.assert_allclose(ex, px * signs, atol=2e-4 * np.abs(px).max())
    np.testing.assert_allclose(ey, py * signs, atol=2e-4 * np.abs(py).max())


def test_nystroem_map_gives_sklearn_features_and_the_kernel_on_landmarks():
    from sklearn.kernel_approximation import Nystroem

    x, _, _ = tiny(n_img=40)
    kmap = fit_map(x, "nystroem", "rbf", 15, gamma=0.3)
    landmarks = kmap.arrays["landmarks"]
    ours = kmap(x).astype(np.float64)
    theirs = Nystroem(kernel="rbf", gamma=0.3, n_components=15).fit(landmarks).transform(x.astype(np.float64))
    # scikit-learn permutes the landmarks and uses an SVD: the same features up to a rotation, so the same Gram
    np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, atol=1e-6)
    np.testing.assert_allclose(kmap(landmarks) @ kmap(landmarks).T, rbf(landmarks, landmarks, 0.3), atol=1e-6)


def test_rff_map_is_sklearns_rbf_sampler():
    from sklearn.kernel_approximation import RBFSampler

    x, _, _ = tiny(n_img=30)
    kmap = fit_map(x, "rff", "rbf", 500, gamma=0.2, seed=3)
    sampler = RBFSampler(gamma=0.2, n_components=500).fit(x)
    sampler.random_weights_, sampler.random_offset_ = kmap.arrays["weights"], kmap.arrays["offset"]
    np.testing.assert_allclose(kmap(x), sampler.transform(x.astype(np.float64)), atol=1e-6)
    assert np.abs(kmap(x) @ kmap(x).T - rbf(x, x, 0.2)).mean() < 0.05  # and it approximates the kernel


def test_median_heuristic_is_one_over_the_median_squared_distance():
    rows = np.array([[1.0, 0], [3, 4], [0, 1]])  # squared distances 20, 2, 18
    assert median_gamma(rows, "rbf") == pytest.approx(1 / 18)
    assert median_gamma(rows, "poly") == pytest.approx(1 / 3)  # |<x, y>|: 3, 0, 4
    chi2 = [4 / 6 + 16 / 6, 1 / 3 + 1 / 3, 9 / 5 + 9 / 7]  # sum (x - y)^2 / (x + y) of rows + 1
    assert median_gamma(rows + 1, "chi2") == pytest.approx(1 / np.median(chi2))
    with pytest.raises(UserError, match="set gamma"):
        median_gamma(np.ones((5, 2)), "rbf")


@pytest.mark.parametrize(
    "kernel,kind,views",
    [("rbf", "nystroem", "both"), ("rbf", "rff", "image"), ("chi2", "nystroem", "image"), ("poly", "nystroem", "text")],
)
def test_maps_survive_save_and_load_bit_for_bit(tmp_path, kernel, kind, views):
    x, y, index = tiny()
    x = np.abs(x)  # chi2 needs non-negative images
    model = KernelCCA(kernel=kernel, kernel_map=kind, kernel_views=views, landmarks=12, reg=0.1)
    model.fit(x, y, x_index=index)
    model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["method"] == "kcca" and saved["params"]["kernel"] == kernel
    loaded = KernelCCA.load(tmp_path / "m")
    for mine, theirs in ((model.map_x_, loaded.map_x_), (model.map_y_, loaded.map_y_)):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert (mine.kind, mine.kernel, mine.gamma, mine.degree, mine.coef0) == (
                theirs.kind,
                theirs.kernel,
                theirs.gamma,
                theirs.degree,
                theirs.coef0,
            )
            assert mine.arrays.keys() == theirs.arrays.keys()
            for k in mine.arrays:
                np.testing.assert_array_equal(mine.arrays[k], theirs.arrays[k])
    np.testing.assert_array_equal(model.transform_x(x), loaded.transform_x(x))
    np.testing.assert_array_equal(model.transform_y(y), loaded.transform_y(y))


def test_saved_keys_are_prefixed_and_nothing_is_pickled(tmp_path):
    from safetensors.numpy import load_file

    x, y, index = tiny()
    KernelCCA(kernel_views="both", landmarks=10).fit(x, y, x_index=index).save(tmp_path / "m")
    keys = set(load_file(str(tmp_path / "m.safetensors")))
    assert {"kernel_x.landmarks", "kernel_x.normalization", "kernel_x.gamma", "kernel_y.landmarks"} <= keys
    assert (
        KernelMap.from_arrays(
            load_file(str(tmp_path / "m.safetensors")), "kernel_y", {"kind": "nystroem", "kernel": "rbf"}
        ).n_features_out
        == 10
    )


def test_bad_options_are_user_errors_before_any_pass():
    x, y, index = tiny()
    cases = [
        ({"landmarks": len(x) + 1}, "above the 24 train images"),
        ({"gamma": 0.0}, "positive"),
        ({"gamma": -1.0}, "positive"),
        ({"kernel": "chi2"}, "non-negative"),
        ({"kernel": "chi2", "kernel_map": "rff"}, "rbf kernel only"),
        ({"kernel_views": "all"}, "kernel_views"),
    ]
    for params, message in cases:
        xs = x if params.get("kernel") != "chi2" else x - 10  # negative images for chi2
        with pytest.raises(UserError, match=message):
            KernelCCA(**params).fit(xs, y, x_index=index)
    # captions are the rows of the text view: 48 of them, so 30 landmarks fit there but not on the 24 images
    KernelCCA(kernel_views="text", landmarks=30).fit(x, y, x_index=index)


def test_chi2_checks_every_mapped_chunk():
    x, y, index = tiny()
    model = KernelCCA(kernel="chi2", kernel_views="image", landmarks=10).fit(np.abs(x), y, x_index=index)
    with pytest.raises(UserError, match="non-negative"):
        model.transform_x(x)  # new rows with negative values


def test_dask_backend_gives_the_numpy_fit():
    """With --backend dask the kernel maps run inside each chunk's task on the workers (a local cluster of
    threads here); the fit equals the numpy backend's."""
    import dask.distributed  # noqa: F401
    from dask.distributed import Client, LocalCluster

    x, y, index = tiny()
    params = dict(kernel_views="both", landmarks=12, n_components=4, reg=1e-2, chunk_rows=7)
    want = KernelCCA(**params).fit(x, y, x_index=index)
    with (
        LocalCluster(n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        got = KernelCCA(backend="dask", **params).fit(x, y, x_index=index)
    np.testing.assert_allclose(got.canonical_correlations_, want.canonical_correlations_, rtol=1e-5, atol=1e-6)
    a, b = want.transform_x(x), got.transform_x(x)
    np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-3, atol=1e-4 * np.abs(a).max())
