"""Every method whose fit is a sum gives its local fit on a Dask cluster of 2 worker PROCESSES (not threads):
the ridge / Procrustes / PLS / kcca moments and ASIF's top-k run as tasks there (each fit's task stream is
checked), and the fitted arrays equal the numpy backend's to float tolerance; ASIF's neighbours exactly.
One cluster serves the module (starting worker processes costs seconds)."""

import numpy as np
import pytest
from dask.distributed import Client, LocalCluster, get_task_stream

from cca_bench.methods import asif
from cca_bench.methods.asif import ASIF, dask_relative_topk, relative_topk
from cca_bench.methods.kcca import KernelCCA
from cca_bench.methods.pls import PLSSVD
from cca_bench.methods.procrustes import Procrustes
from cca_bench.methods.ridge import RidgeMap


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as c,
    ):
        yield c


def indexed(seed=0, n_img=90, per=3, dx=9, dy=6):
    """Images (n_img, dx), captions (n_img * per - 7, dy) with a shared signal; the last images lack captions."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n_img, dx)) * 2 + 1).astype(np.float32)
    index = np.repeat(np.arange(n_img), per)[: n_img * per - 7]
    y = (x[index] @ rng.standard_normal((dx, dy)) + rng.standard_normal((len(index), dy)) - 3).astype(np.float32)
    return x, y, index


def on_cluster(client, fit):
    """``fit()``'s result and the names of the tasks it ran on ``client``'s workers, and on how many workers."""
    with get_task_stream(client) as stream:
        out = fit()
    names = [t["key"] if isinstance(t["key"], str) else t["key"][0] for t in stream.data]
    return out, " ".join(map(str, names)), len({t["worker"] for t in stream.data})


MODELS = [
    (RidgeMap, {"reg": 1e-2}),
    (RidgeMap, {"reg": 1e-4, "direction": "text2image", "normalize": True}),
    (Procrustes, {"n_components": 4}),
    (Procrustes, {"equalize": "pad"}),
    (PLSSVD, {"n_components": 5, "scale": True}),
    (PLSSVD, {"center": False}),
]


@pytest.mark.parametrize("cls, params", MODELS, ids=lambda v: getattr(v, "METHOD", None) or str(v))
def test_moment_aligners_on_two_worker_processes_equal_the_local_fit(client, cls, params):
    """Planted bugs caught: the aligners ignoring ``backend`` (no moment task on the workers) and an indexed
    Dask task that pairs every caption with its chunk's first image (weights differ)."""
    x, y, index = indexed()
    want = cls(chunk_rows=40, **params).fit(x, y, index)
    got, tasks, workers = on_cluster(client, lambda: cls(chunk_rows=40, backend="dask", **params).fit(x, y, index))
    assert "_indexed_block_products" in tasks and workers == 2, tasks
    for name in ("x_weights_", "y_weights_", "mean_x_", "mean_y_"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    assert got.n_samples_ == want.n_samples_ == len(y)


def test_kcca_maps_travel_to_worker_processes(client):
    """The kernel maps are pickled into the worker processes and applied there. Planted bug caught: the Dask
    task mapping only x (the text map dropped inside the task) gives other correlations."""
    x, y, index = indexed(1)
    params = {"landmarks": 30, "kernel_views": "both", "reg": 1e-2, "chunk_rows": 40, "n_components": 5}
    want = KernelCCA(**params).fit(x, y, index)
    got, tasks, workers = on_cluster(client, lambda: KernelCCA(backend="dask", **params).fit(x, y, index))
    assert "_indexed_block_products" in tasks and workers == 2, tasks
    np.testing.assert_allclose(got.canonical_correlations_, want.canonical_correlations_, atol=1e-5)
    np.testing.assert_allclose(
        np.abs(got.transform_x(x) @ got.transform_y(y).T),
        np.abs(want.transform_x(x) @ want.transform_y(y).T),
        rtol=1e-4,
        atol=1e-4,
    )


def test_asif_top_k_on_two_worker_processes_has_the_local_neighbours(client, monkeypatch):
    """Each query block's top-k is a task; the neighbours are exactly the local ones, in order, and the
    relative representations agree. Planted bugs caught: tasks whose query blocks start one row early (rows
    shifted), and ASIF ignoring backend="dask" (no relative_topk task on the workers)."""
    monkeypatch.setattr(asif, "BLOCK", 17)  # several anchor blocks per task: the running merge is exercised
    monkeypatch.setattr(asif, "QUERY_BLOCK", 25)  # several tasks per view
    x, y, index = indexed(2, n_img=60)
    qx, qy, _ = indexed(3, n_img=70)
    want = ASIF(top_k=12, exponent=4.0, device="cpu").fit(x, y, index)
    model = ASIF(top_k=12, exponent=4.0, backend="dask").fit(x, y, index)
    (ti, tt), tasks, workers = on_cluster(client, lambda: (model.topk_images(qx, 12), model.topk_texts(qy, 12)))
    assert tasks.count("relative_topk") >= 6 and workers == 2, tasks
    for got, exp in ((ti, want.topk_images(qx, 12)), (tt, want.topk_texts(qy, 12))):
        np.testing.assert_array_equal(got[1], exp[1])
        np.testing.assert_allclose(got[0], exp[0], atol=1e-6)
    np.testing.assert_allclose(model.dense(tt), want.embed_texts(qy), atol=1e-6)


def test_dask_top_k_function_equals_the_streamed_one(client):
    """The function itself, with uneven last blocks and k beyond an anchor block."""
    rng = np.random.default_rng(4)
    q, a = rng.standard_normal((53, 8)).astype(np.float32), rng.standard_normal((41, 8)).astype(np.float32)
    got = dask_relative_topk(q, a, 15, block=9, query_block=10)
    want = relative_topk(q, a, 15, block=9, query_block=10)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)  # BLAS rounding moves with the threads


def test_fit_from_files_read_on_the_workers_through_fsspec(client, tmp_path):
    """linalg.npy_rows: each worker reads its rows of a .npy file by an fsspec URL (file:// here; s3:// etc. on a
    cluster) and the fit equals the local one on the same arrays. Planted bug caught: a ranged read that starts
    one row late (rows shifted)."""
    from cca_bench.linalg import npy_rows

    x, y, index = indexed(5)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    xd, yd = (npy_rows((tmp_path / f"{v}.npy").as_uri(), chunk=50) for v in "xy")
    assert xd.shape == x.shape and yd.dtype == np.float32
    got, tasks, _ = on_cluster(client, lambda: RidgeMap(backend="dask", chunk_rows=50).fit(xd, yd, index))
    assert "file_rows" in tasks, tasks
    want = RidgeMap(chunk_rows=50).fit(x, y, index)
    np.testing.assert_allclose(got.x_weights_, want.x_weights_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("indexed_pairs", [False, True], ids=["aligned", "indexed"])
def test_moments_move_order_d2_bytes_per_worker_whatever_the_number_of_chunks(client, tmp_path, indexed_pairs):
    """docs/cluster.md, section 6: a moments pass over .npy files moves O(d^2) bytes per worker, not O(n). The
    rows are read by the task that uses them, and each worker adds up its own partial sums before one crosses.
    Planted bugs caught: the partials added in a tree over every chunk (about one partial per chunk crossed
    between the workers); the rows read by separate tasks (a chunk's captions travelled to its images' worker)."""
    from cca_bench import linalg

    rng = np.random.default_rng(1)
    n, dx, dy = 8000, 24, 16
    index = np.repeat(np.arange(n // 4), 4) if indexed_pairs else None
    x = rng.standard_normal((n // 4 if indexed_pairs else n, dx), dtype=np.float32)
    y = (x[index] if indexed_pairs else x)[:, :dy] + rng.standard_normal((n, dy), dtype=np.float32)
    np.save(tmp_path / "x.npy", x), np.save(tmp_path / "y.npy", y)
    xm, ym = (np.load(tmp_path / f"{v}.npy", mmap_mode="r") for v in "xy")

    def sent():
        return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())

    before = sent()
    got = linalg.dask_moments(xm, ym, index, chunk=100)  # 20 to 80 chunks
    moved, partial = sent() - before, 8 * (dx + dy) * (dx + dy + 1)
    assert moved <= 3 * partial, (moved, partial)  # 2 workers: one sum crosses, one comes back (+ slack)
    want = linalg.paired_moments(x, y, index, chunk=100)
    for name in ("mean_x", "mean_y", "cxx", "cyy", "cxy"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_fit_on_memmaps_lets_the_workers_read_the_files(client, tmp_path, monkeypatch):
    """The estimators' input check (scikit-learn's) returned an ndarray view of a memmap, so the Dask pass lost
    the file and shipped every row from the client, O(n d), though the cached features the CLI fits on are .npy
    memmaps. Planted bug caught: the checked view passed on (no file reaches dask_moments)."""
    from cca_bench import linalg

    x, y, index = indexed()
    np.save(tmp_path / "x.npy", x), np.save(tmp_path / "y.npy", y)
    xm, ym = (np.load(tmp_path / f"{v}.npy", mmap_mode="r") for v in "xy")
    seen, real = [], linalg.dask_moments
    monkeypatch.setattr(linalg, "dask_moments", lambda a, b, *r, **k: seen.append((a, b)) or real(a, b, *r, **k))
    model = RidgeMap(backend="dask").fit(xm, ym, index)
    assert [tuple(map(linalg.npy_file_of, ab)) for ab in seen] == [(str(tmp_path / "x.npy"), str(tmp_path / "y.npy"))]
    local = RidgeMap().fit(x, y, index)
    np.testing.assert_allclose(model.x_weights_, local.x_weights_, rtol=1e-4, atol=1e-5)
