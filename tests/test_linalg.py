"""Streaming moments: the torch product path, out-of-core memmaps, and the Dask backend agree with numpy."""

import tracemalloc

import numpy as np
import pytest

from cca_bench import linalg
from cca_bench.methods.cca import RegularizedCCA


def views(n=3000, dx=24, dy=9, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4))
    x = z @ rng.standard_normal((4, dx)) + rng.standard_normal((n, dx)) + 3.0
    y = z @ rng.standard_normal((4, dy)) + rng.standard_normal((n, dy)) - 2.0
    return x.astype(np.float32), y.astype(np.float32)


def exact(x, y):
    """float64 reference: centred copies and their products."""
    xy = np.hstack([x, y]).astype(np.float64)
    cov = np.cov(xy, rowvar=False)
    dx = x.shape[1]
    return xy.mean(0)[:dx], xy.mean(0)[dx:], cov[:dx, :dx], cov[dx:, dx:], cov[:dx, dx:]


def assert_moments_close(m, ref, atol=1e-5):
    for got, want in zip((m.mean_x, m.mean_y, m.cxx, m.cyy, m.cxy), ref):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol)


def test_chunked_moments_match_float64_reference():
    x, y = views()
    assert_moments_close(linalg.paired_moments(x, y, chunk=500), exact(x, y))


def test_indexed_moments_equal_repeated_rows():
    rng = np.random.default_rng(1)
    x, _ = views(n=300)
    index = rng.integers(0, 300, size=1100)  # unsorted, some images without captions
    _, y = views(n=1100, seed=2)
    m = linalg.paired_moments(x, y, index, chunk=128)
    assert_moments_close(m, exact(x[index], y))


@pytest.mark.parametrize("indexed", [False, True])
def test_torch_products_agree_with_numpy(monkeypatch, indexed):
    """The CUDA code path, run on the CPU: float32 products accumulated in float64 by torch."""
    x, y = views()
    index = np.repeat(np.arange(600), 5) if indexed else None
    xs = x[:600] if indexed else x
    a = linalg.paired_moments(xs, y, index, chunk=700)
    monkeypatch.setattr(linalg, "products_for", lambda device: lambda b, d: linalg._products_torch(b, d, "cpu"))
    b = linalg.paired_moments(xs, y, index, chunk=700)
    assert_moments_close(b, (a.mean_x, a.mean_y, a.cxx, a.cyy, a.cxy), atol=1e-6)


def test_memmap_input_is_streamed_not_copied(tmp_path):
    """200k x 512 float32 (400 MB) on disk: traced allocations stay near one chunk plus the d^2 matrices."""
    n, dx, dy = 200_000, 512, 64
    xm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(n, dx))
    rng = np.random.default_rng(0)
    for s in range(0, n, 50_000):
        xm[s : s + 50_000] = rng.standard_normal((50_000, dx), dtype=np.float32)
    xm.flush()
    del xm
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    y = rng.standard_normal((n, dy), dtype=np.float32)
    tracemalloc.start()
    try:
        m = linalg.paired_moments(x, y, chunk=8192)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * x.nbytes  # 8192 x 576 float32 chunk + a few 576^2 float64: ~25 MB of 410 MB
    assert np.isfinite(m.cxx).all() and abs(m.cxx[0, 0] - 1) < 0.02


def test_dask_backend_matches_in_memory_fit():
    import dask.distributed as distributed

    x, y = views(n=5000, seed=3)
    index = np.repeat(np.arange(1000), 5)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        with distributed.Client(c):
            for xs, idx in ((x, None), (x[:1000], index)):
                a = RegularizedCCA(reg=1e-3, chunk_rows=600).fit(xs, y, idx)
                b = RegularizedCCA(reg=1e-3, chunk_rows=600, backend="dask").fit(xs, y, idx)
                np.testing.assert_allclose(b.canonical_correlations_, a.canonical_correlations_, atol=1e-6)
                np.testing.assert_allclose(b.x_weights_[:, :4], a.x_weights_[:, :4], rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(b.mean_x_, a.mean_x_, atol=1e-5)


@pytest.mark.parametrize("d", [3, 700])
def test_top_eigenvalue_is_the_largest_eigenvalue(d):
    import torch

    rng = np.random.default_rng(d)
    a = rng.standard_normal((d + 40, d))
    c = a.T @ a / len(a)
    assert linalg.top_eigenvalue(torch.as_tensor(c)) == pytest.approx(np.linalg.eigvalsh(c)[-1], rel=1e-9)
