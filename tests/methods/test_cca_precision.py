"""reg = 0 is exact CCA on ill-conditioned features (float64 products where float32 would not do), and the
two correlation spectra: ridge-shrunk canonical correlations and the correlations of the projections."""

import numpy as np
import pytest

from benchmarks import bench_precision
from cca_bench.errors import UserError
from cca_bench.methods.cca import RegularizedCCA


def ill_conditioned(n=6000, dx=40, dy=15, cond=1e8, shift=3.0, seed=0):
    """Views sharing 5 latent signals whose covariances have condition number ~``cond``, off-centre, float32."""
    return bench_precision.ill_conditioned(n, dx, dy, cond, seed, shift, signals=5)


def textbook(x, y, reg):
    """Ridge CCA from scratch in float64 (numpy/scipy): (all canonical correlations,)."""
    return (bench_precision.textbook(x, y, reg),)


def test_the_data_is_as_ill_conditioned_as_claimed():
    x, _ = ill_conditioned()
    assert 3e7 < np.linalg.cond(np.cov(x.astype(np.float64), rowvar=False)) < 3e8


@pytest.mark.parametrize("reg", [0.0, 1e-7, 1e-5])
def test_small_ridges_are_exact_at_cond_1e8(reg):
    x, y = ill_conditioned()
    want = textbook(x, y, reg)[0][:10]
    model = RegularizedCCA(n_components=10, reg=reg, device="cpu").fit(x, y)
    assert model.cov_precision_ == "float64"
    assert np.abs(model.canonical_correlations_ - want).max() < 1e-6


def test_float32_products_are_not_enough_without_a_ridge():
    """Why the float64 path exists: forced float32 products cannot give reg = 0 to 1e-6. How they fail depends
    on the BLAS kernels' rounding (FMA or not, summation order): the covariance comes out singular, which the
    fit refuses, or it solves and misses by far more than 1e-5. Either is the property; which one is the CPU's."""
    x, y = ill_conditioned()
    want = textbook(x, y, 0.0)[0][:10]
    try:
        model = RegularizedCCA(n_components=10, reg=0.0, device="cpu", cov_precision="float32").fit(x, y)
    except UserError as err:
        assert "singular" in str(err) and "--reg" in str(err)
    else:
        assert np.abs(model.canonical_correlations_ - want).max() > 1e-5


def test_a_ridge_of_1e_3_keeps_the_fast_path_near_1e_6():
    """The ridge caps the condition number at ~1e3 whatever the data: float32 products stay within a few
    1e-6 (measured 3e-8 .. 2.7e-6 over sizes, shifts and seeds); --cov-precision float64 is exact."""
    x, y = ill_conditioned()
    want = textbook(x, y, 1e-3)[0][:10]
    model = RegularizedCCA(n_components=10, reg=1e-3, device="cpu").fit(x, y)
    assert model.cov_precision_ == "float32"
    assert np.abs(model.canonical_correlations_ - want).max() < 2e-6
    exact = RegularizedCCA(n_components=10, reg=1e-3, device="cpu", cov_precision="float64").fit(x, y)
    assert exact.cov_precision_ == "float64" and np.abs(exact.canonical_correlations_ - want).max() < 1e-8


def test_indexed_pairs_take_the_float64_path_too():
    x, y = ill_conditioned(n=3000)
    index = np.repeat(np.arange(1000), 3)
    x = x[:1000]
    want = textbook(x[index], y, 0.0)[0][:10]
    model = RegularizedCCA(n_components=10, reg=0.0, device="cpu", chunk_rows=700).fit(x, y, x_index=index)
    assert np.abs(model.canonical_correlations_ - want).max() < 1e-6


def projected_correlations(model, x, y):
    """Hand computation: the Pearson correlation of each pair of projections of the training pairs."""
    zx = (x.astype(np.float64) - model.mean_x_) @ model.x_weights_
    zy = (y.astype(np.float64) - model.mean_y_) @ model.y_weights_
    return np.array([np.corrcoef(zx[:, i], zy[:, i])[0, 1] for i in range(zx.shape[1])])


@pytest.mark.parametrize("reg", [0.0, 0.1, 1.0])
def test_two_spectra_ridge_shrunk_and_of_the_projections(reg):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((3000, 4))
    x = np.hstack([z, rng.standard_normal((3000, 8))]) @ rng.standard_normal((12, 12))
    y = np.hstack([z + rng.standard_normal((3000, 4)), rng.standard_normal((3000, 3))]) @ rng.standard_normal((7, 7))
    model = RegularizedCCA(n_components=6, reg=reg, device="cpu", cov_precision="float64").fit(x, y)
    assert np.allclose(model.projection_correlations_, projected_correlations(model, x, y), atol=1e-9)
    assert np.allclose(model.canonical_correlations_, textbook(x, y, reg)[0][:6], atol=1e-9)
    if reg == 0:
        assert np.allclose(model.canonical_correlations_, model.projection_correlations_, atol=1e-9)
    else:  # the ridge enlarges the variances in the denominator: shrunk, and the more so the larger reg
        assert (model.canonical_correlations_ < model.projection_correlations_ - 1e-3).all()


def test_projection_correlations_match_cca_zoo():
    """cca-zoo's RidgeCCA whitens with (1 - c) C + c I, which is C + c / (1 - c) I up to scale: with
    c = r / (1 + r), r = reg * lambda_max(C), both find the same projections, and the correlations of its
    transforms are our ``projection_correlations_``."""
    import cca_zoo  # noqa: F401  (the test extra)
    from cca_zoo.linear import RidgeCCA

    rng = np.random.default_rng(6)
    z = rng.standard_normal((2000, 3))
    x = np.hstack([z, rng.standard_normal((2000, 6))]) @ rng.standard_normal((9, 9))
    y = np.hstack([z + 0.8 * rng.standard_normal((2000, 3)), rng.standard_normal((2000, 2))])
    reg = 0.05
    ours = RegularizedCCA(n_components=4, reg=reg, device="cpu").fit(x, y)
    r = [reg * np.linalg.eigvalsh(np.cov(v, rowvar=False))[-1] for v in (x, y)]
    zoo = RidgeCCA(n_components=4, shrinkage=[ri / (1 + ri) for ri in r]).fit([x, y])
    zx, zy = zoo.transform([x, y])
    theirs = np.array([abs(np.corrcoef(zx[:, i], zy[:, i])[0, 1]) for i in range(4)])
    assert np.allclose(ours.projection_correlations_, theirs, atol=1e-5)
    assert not np.allclose(ours.canonical_correlations_, theirs, atol=1e-3)  # the shrunk spectrum is not theirs


def test_both_spectra_are_saved_and_plotted(tmp_path):
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((400, 6)), rng.standard_normal((400, 4))
    y[:, 0] += x[:, 0]
    model = RegularizedCCA(n_components=3, reg=0.1).fit(x, y)
    model.save(tmp_path / "m")
    back = RegularizedCCA.load(tmp_path / "m")
    assert np.array_equal(back.projection_correlations_, model.projection_correlations_)
    assert np.array_equal(back.canonical_correlations_, model.canonical_correlations_)
    assert back.cov_precision_ == "float32"
    labels = back.figures()["spectrum"].axes[0].get_legend_handles_labels()[1]
    assert len(labels) == 2 and "ridge-shrunk" in labels[0] and "projections" in labels[1]
    one = RegularizedCCA(n_components=3, reg=0.0).fit(x, y).figures()["spectrum"].axes[0]
    assert len(one.get_legend_handles_labels()[1]) == 1


def test_models_saved_before_the_second_spectrum_still_load(tmp_path):
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(8)
    model = RegularizedCCA(n_components=2, reg=0.1).fit(rng.standard_normal((100, 4)), rng.standard_normal((100, 3)))
    model.save(tmp_path / "m")
    arrays = load_file(str(tmp_path / "m.safetensors"))
    del arrays["projection_correlations_"]
    save_file(arrays, str(tmp_path / "m.safetensors"))
    back = RegularizedCCA.load(tmp_path / "m")
    assert not hasattr(back, "projection_correlations_")
    assert np.array_equal(back.transform_x(np.ones((1, 4))), model.transform_x(np.ones((1, 4))))
    assert len(back.figures()["spectrum"].axes[0].get_legend_handles_labels()[1]) == 1


def test_dask_backend_takes_the_float64_path_too():
    import dask.distributed as distributed

    x, y = ill_conditioned(n=3000)
    want = textbook(x, y, 0.0)[0][:10]
    index = np.repeat(np.arange(1000), 3)
    want_indexed = textbook(x[:1000][index], y, 0.0)[0][:10]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        with distributed.Client(c):
            model = RegularizedCCA(n_components=10, reg=0.0, backend="dask", chunk_rows=2000).fit(x, y)
            indexed = RegularizedCCA(n_components=10, reg=0.0, backend="dask", chunk_rows=800).fit(
                x[:1000], y, x_index=index
            )
    assert model.cov_precision_ == "float64" and np.abs(model.canonical_correlations_ - want).max() < 1e-6
    assert np.abs(indexed.canonical_correlations_ - want_indexed).max() < 1e-6


def test_cv_moments_take_the_precision_of_the_smallest_reg():
    from types import SimpleNamespace

    from cca_bench.cv import grid_search

    x, y = ill_conditioned(n=3000)
    train = SimpleNamespace(images=x[:2000], texts=y[:2000], image_index=np.arange(2000))
    val = SimpleNamespace(images=x[2000:], texts=y[2000:], image_index=np.arange(1000))
    grid = {"n_components": [5], "reg": [0.0, 0.1], "eig_power": [1.0]}
    model, report = grid_search(RegularizedCCA, train, val, grid, {"device": "cpu"})
    assert model.cov_precision_ == "float64" and len(report["rows"]) == 2
