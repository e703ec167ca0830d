"""dask_moments with an image index accumulates per image, as the numpy path does, and agrees with it."""

import dask.distributed  # noqa: F401,E402  (the dask extra, in the test extra)
import numpy as np
import pytest

from cca_bench import linalg


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None) as cluster,
        Client(cluster) as c,
    ):
        yield c


def indexed_data(seed=0, n_x=57, n_y=160):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n_x, 7)) * 3 + 5).astype(np.float32)
    x_index = rng.integers(0, n_x - 4, n_y)  # the last images have no caption: weight 0
    y = (rng.standard_normal((n_y, 4)) + 0.5 * x[x_index, :4] - 2).astype(np.float32)
    return x, y, x_index


def test_indexed_dask_moments_match_the_numpy_path(client, monkeypatch, tmp_path):
    x, y, x_index = indexed_data()
    real, log = linalg._indexed_block_products, tmp_path / "tasks.txt"

    def spy(xb, yb, local, sx, sy, *dtype):  # tasks are serialised even in-process: record them in a file
        with open(log, "a") as f:
            f.write(f"{len(xb)} {len(yb)}\n")
        return real(xb, yb, local, sx, sy, *dtype)

    monkeypatch.setattr(linalg, "_indexed_block_products", spy)
    got = linalg.dask_moments(x, y, x_index, chunk=16)
    want = linalg.paired_moments(x, y, x_index, chunk=16)
    seen = [tuple(map(int, line.split())) for line in log.read_text().splitlines()]
    assert sum(a for a, _ in seen) == len(x) and sum(b for _, b in seen) == len(y)  # each row once
    assert len(seen) == 4  # one task per 16-row chunk of x (57 rows)
    assert got.n == want.n == len(y)
    for name in ("mean_x", "mean_y", "cxx", "cyy", "cxy"):
        np.testing.assert_allclose(
            getattr(got, name), getattr(want, name), rtol=1e-6, atol=1e-6, err_msg=name
        )  # float32 products
    # and against the textbook definition on the repeated rows
    rep = x[x_index].astype(np.float64)
    np.testing.assert_allclose(got.cxx, np.cov(rep, rowvar=False), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.cxy, np.cov(rep, y.astype(np.float64), rowvar=False)[:7, 7:], rtol=1e-5, atol=1e-6)


def test_row_aligned_dask_moments_still_match(client):
    x, y, x_index = indexed_data(1)
    got, want = linalg.dask_moments(x[x_index], y, chunk=32), linalg.paired_moments(x[x_index], y, chunk=32)
    np.testing.assert_allclose(got.cxy, want.cxy, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.cxx, want.cxx, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("indexed", [True, False])
def test_mapped_dask_moments_match_the_numpy_path(client, indexed):
    """Feature maps (kcca's kernel maps) run inside the tasks: the moments are those of the mapped views,
    as paired_moments gives them."""
    x, y, x_index = indexed_data(2)
    w = np.random.default_rng(3).standard_normal((7, 11)).astype(np.float32)
    map_x = lambda a: np.tanh(a @ w)  # noqa: E731  (7 -> 11 columns)
    map_y = lambda a: np.exp(-np.square(a))[:, ::-1].copy()  # noqa: E731
    if not indexed:
        x, x_index = x[x_index], None
    got = linalg.dask_moments(x, y, x_index, chunk=16, map_x=map_x, map_y=map_y)
    want = linalg.paired_moments(x, y, x_index, chunk=16, map_x=map_x, map_y=map_y)
    assert got.cxx.shape == (11, 11) and got.cyy.shape == (4, 4)
    for name in ("mean_x", "mean_y", "cxx", "cyy", "cxy"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-5, atol=1e-6, err_msg=name)


def test_cached_feature_files_are_read_on_the_workers(client, tmp_path):
    """A whole-file memmap (what the feature cache returns) becomes tasks that read their rows from the file, so
    the graph carries a path, not the rows (what keeps a cluster fit's traffic at O(d^2) per worker); a slice of
    it is shipped as before. Planted bug caught: npy_file_of always None (the graph then holds every row)."""
    import pickle

    x, y, x_index = indexed_data(4, n_x=300, n_y=900)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    xm, ym = (np.load(tmp_path / f"{v}.npy", mmap_mode="r") for v in "xy")
    assert linalg.npy_file_of(xm) == str(tmp_path / "x.npy") and linalg.npy_file_of(xm[1:]) is None
    graph = dict(linalg._dask_rows(ym, 128).__dask_graph__())
    assert len(pickle.dumps(graph)) < ym.nbytes / 4, len(pickle.dumps(graph))
    got = linalg.dask_moments(xm, ym, x_index, chunk=128)
    want = linalg.paired_moments(x, y, x_index, chunk=128)
    for name in ("mean_x", "mean_y", "cxx", "cyy", "cxy"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-6, atol=1e-6, err_msg=name)
